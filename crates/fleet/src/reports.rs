//! The reports over the asset register, sans I/O: each is a typed struct computed from a
//! [`Register`] (loaded once from the database) and [`Params`] (the day, prices, tariffs),
//! serialized as JSON with stable keys, and shown as a [`Table`] (text for people, CSV for
//! spreadsheets). The CLI (`hashforge fleet report NAME`) and the console's routes render
//! the same structs.
//!
//! `--at DATE` is the day the report is read on: holds and repairs accrue until it, prices
//! are that day's, and events after it are not counted; a machine's state is its state in
//! the register.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::assets::db::{AssetRecord, Parts, Register};
use crate::assets::Country;
use crate::date::Date;
use crate::economics::{joules_per_th, payback_days, power_per_day, revenue_per_day, Market, Sums};
use crate::lifecycle::State;
use crate::money::Usd;
use crate::tariffs::{Schedule, WhatIf};

/// The report names, as the CLI and the API take them.
pub const NAMES: [&str; 6] = [
    "customs",
    "tariffs",
    "repairs",
    "vendors",
    "economics",
    "leadtimes",
];

/// What every report is computed with.
#[derive(Clone, Debug)]
pub struct Params {
    pub at: Date,
    pub market: Market,
    pub tariffs: Schedule,
    /// The tariff what-if to add to the tariffs report.
    pub what_if: Option<WhatIfOrder>,
    /// Economics: one row per machine as well.
    pub per_machine: bool,
}

/// A planned order for the what-if.
#[derive(Clone, Debug)]
pub struct WhatIfOrder {
    pub model: String,
    pub units: u64,
    pub unit_price: Usd,
    pub hts_code: String,
    pub origins: Vec<Country>,
}

/// Rows for people and spreadsheets.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Table {
    pub title: String,
    pub headers: Vec<String>,
    pub rows: Vec<Vec<String>>,
    /// Lines under the table (totals, notes).
    pub notes: Vec<String>,
}

impl Table {
    fn new(title: impl Into<String>, headers: &[&str]) -> Table {
        Table {
            title: title.into(),
            headers: headers.iter().map(|h| h.to_string()).collect(),
            ..Table::default()
        }
    }

    /// Aligned columns: text left, numbers right.
    pub fn text(&self) -> String {
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for r in &self.rows {
            for (i, c) in r.iter().enumerate() {
                if let Some(w) = widths.get_mut(i) {
                    *w = (*w).max(c.chars().count());
                }
            }
        }
        let numeric = |s: &str| {
            s.starts_with(|c: char| c.is_ascii_digit() || c == '$' || c == '-')
                && !s.contains(char::is_alphabetic)
        };
        let line = |cells: &[String]| {
            cells
                .iter()
                .zip(&widths)
                .map(|(c, w)| {
                    if numeric(c) {
                        format!("{c:>w$}")
                    } else {
                        format!("{c:<w$}")
                    }
                })
                .collect::<Vec<_>>()
                .join("  ")
                .trim_end()
                .to_string()
        };
        let mut out = format!("{}\n{}\n", self.title, line(&self.headers));
        for r in &self.rows {
            out.push_str(&line(r));
            out.push('\n');
        }
        for n in &self.notes {
            out.push_str(n);
            out.push('\n');
        }
        out
    }

    /// RFC 4180 CSV of the headers and rows.
    pub fn csv(&self) -> String {
        let cell = |c: &str| {
            if c.contains([',', '"', '\n', '\r']) {
                format!("\"{}\"", c.replace('"', "\"\""))
            } else {
                c.to_owned()
            }
        };
        let mut out = String::new();
        for r in std::iter::once(&self.headers).chain(&self.rows) {
            out.push_str(&r.iter().map(|c| cell(c)).collect::<Vec<_>>().join(","));
            out.push_str("\r\n");
        }
        out
    }
}

fn money(u: Option<Usd>) -> String {
    u.map_or("–".into(), |u| u.to_string())
}

fn ths(ghs: u64) -> f64 {
    ghs as f64 / 1000.0
}

/// Nearest-rank percentile of sorted whole days.
fn percentile(sorted: &[i32], p: f64) -> Option<i32> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p * sorted.len() as f64).ceil().max(1.0) as usize;
    Some(sorted[rank.min(sorted.len()) - 1])
}

/// Days: how many, median, p90, mean.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DayStats {
    pub n: usize,
    pub median_days: Option<i32>,
    pub p90_days: Option<i32>,
    pub mean_days: Option<f64>,
}

impl DayStats {
    fn of(mut days: Vec<i32>) -> DayStats {
        days.sort_unstable();
        DayStats {
            n: days.len(),
            median_days: percentile(&days, 0.5),
            p90_days: percentile(&days, 0.9),
            mean_days: (!days.is_empty()).then(|| {
                (days.iter().map(|&d| f64::from(d)).sum::<f64>() / days.len() as f64 * 10.0).round()
                    / 10.0
            }),
        }
    }

    fn cells(&self) -> [String; 3] {
        let o = |d: Option<i32>| d.map_or("–".into(), |d| d.to_string());
        [
            o(self.median_days),
            o(self.p90_days),
            self.mean_days.map_or("–".into(), |m| format!("{m:.1}")),
        ]
    }
}

/// Hashprice sums over the days a report can touch.
fn hashprice_sums(reg: &Register, p: &Params) -> Option<Sums> {
    if p.market.hashprice.is_empty() {
        return None;
    }
    let first = reg
        .holds
        .iter()
        .map(|h| h.start)
        .chain(reg.repairs.iter().map(|r| r.opened))
        .min()
        .unwrap_or(p.at)
        .min(p.at);
    Some(p.market.hashprice.sums(first, p.at))
}

// ---------------------------------------------------------------------------------------
// Customs

/// Customs holds per shipment and in total, as of a day.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CustomsReport {
    pub at: Date,
    /// The rate card: storage per unit per day where a hold's event named none.
    pub storage_rate_usd_per_unit_day: Option<Usd>,
    pub shipments: Vec<ShipmentHolds>,
    pub total: HoldTotals,
    /// What the holds had cost by each day (over the days before it), from the first hold
    /// to the report's day (the last 3,650 days at most): storage and cost of delay.
    pub by_day: Vec<DayCost>,
}

/// The holds' cost accrued by the end of a day.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DayCost {
    pub date: Date,
    pub storage: Usd,
    pub cost_of_delay: Option<Usd>,
}

/// [`CustomsReport::by_day`]: open holds' rates added up day by day (a hold counts from its
/// start to the day before its end, as its days do).
fn cost_by_day(reg: &Register, p: &Params, sums: Option<&Sums>) -> Vec<DayCost> {
    let holds: Vec<&crate::assets::Hold> = reg.holds.iter().filter(|h| h.start <= p.at).collect();
    let Some(first) = holds.iter().map(|h| h.start).min() else {
        return Vec::new();
    };
    let first = first.max(p.at.plus(-3649));
    let n = usize::try_from(p.at.since(first) + 1).unwrap_or(0);
    // Per day: the change in storage a day (micro-dollars) and in nameplate GH/s held; what
    // holds cost before the window (when it is cut) is counted in at its start.
    let mut fee_delta = vec![0i128; n + 1];
    let mut ghs_delta = vec![0i128; n + 1];
    let mut before_storage = 0i128;
    let mut before_delay = Usd::ZERO;
    for h in holds {
        let ghs = reg.asset(h.asset_id).map_or(0, |a| a.nameplate_ghs);
        let fee = h
            .fee
            .or(p.market.storage_rate)
            .map_or(0, |f| i128::from(f.micros()));
        let start = h.start.since(first);
        let end = h.end.map_or(n as i32, |e| e.since(first).min(n as i32));
        if start < 0 {
            let until = h.end.map_or(first, |e| e.min(first));
            before_storage += fee * i128::from(until.since(h.start).max(0));
            if let Some(s) = sums {
                before_delay += s.revenue(ghs, h.start, until);
            }
        }
        if end <= 0 {
            continue;
        }
        let from = start.max(0) as usize;
        fee_delta[from] += fee;
        ghs_delta[from] += i128::from(ghs);
        fee_delta[end as usize] -= fee;
        ghs_delta[end as usize] -= i128::from(ghs);
    }
    let (mut fee, mut ghs) = (0i128, 0i128);
    let mut storage = before_storage;
    let mut delay = sums.map(|_| before_delay);
    let mut out = Vec::with_capacity(n);
    for d in 0..n {
        let day = first.plus(d as i32);
        // By the day: the days before it, as a hold's days count until the report's day.
        out.push(DayCost {
            date: day,
            storage: Usd::from_micros(storage.clamp(0, i128::from(i64::MAX)) as i64),
            cost_of_delay: delay,
        });
        fee += fee_delta[d];
        ghs += ghs_delta[d];
        storage += fee;
        if let (Some(total), Some(s)) = (delay.as_mut(), sums) {
            *total += s.revenue(u64::try_from(ghs).unwrap_or(0), day, day.plus(1));
        }
    }
    out
}

/// The holds of one shipment.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ShipmentHolds {
    /// The shipment id (`-` when the events named none).
    pub shipment: String,
    pub reasons: Vec<String>,
    pub first_start: Date,
    /// The last release, when every unit is released.
    pub last_end: Option<Date>,
    #[serde(flatten)]
    pub totals: HoldTotals,
}

/// Sums over holds.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct HoldTotals {
    /// Holds (a unit held twice counts twice).
    pub units: u64,
    /// Still held on the report's day.
    pub open_units: u64,
    /// Days held, added over units.
    pub unit_days: i64,
    /// The nameplate hashrate held (TH/s), of the open holds.
    pub held_ths: f64,
    /// Storage so far; of the holds whose rate is known.
    pub storage: Usd,
    /// Holds with no rate (neither their event's fee nor a rate card): not in `storage`.
    pub units_without_rate: u64,
    /// What the held nameplate hashrate would have earned at each day's hashprice; `null`
    /// without a hashprice.
    pub cost_of_delay: Option<Usd>,
    /// Storage plus cost of delay.
    pub total_cost: Option<Usd>,
}

impl HoldTotals {
    fn add(&mut self, o: &HoldTotals) {
        self.units += o.units;
        self.open_units += o.open_units;
        self.unit_days += o.unit_days;
        self.held_ths += o.held_ths;
        self.storage += o.storage;
        self.units_without_rate += o.units_without_rate;
        self.cost_of_delay = match (self.cost_of_delay, o.cost_of_delay) {
            (Some(a), Some(b)) => Some(a + b),
            _ => None,
        };
        self.total_cost = self.cost_of_delay.map(|c| c + self.storage);
    }
}

/// Days a hold has lasted by `at`, whether it is open on `at`, and its cost of delay.
fn hold_days(start: Date, end: Option<Date>, at: Date) -> (i64, bool) {
    let until = end.map_or(at, |e| e.min(at));
    (
        i64::from(until.since(start).max(0)),
        end.is_none_or(|e| e > at),
    )
}

/// Money a hold cost by `at`: (storage if its rate is known, cost of delay if the hashprice is).
pub fn hold_cost(
    h: &crate::assets::Hold,
    ghs: u64,
    at: Date,
    market: &Market,
    sums: Option<&Sums>,
) -> (Option<Usd>, Option<Usd>) {
    let (days, _) = hold_days(h.start, h.end, at);
    let until = h.start.plus(days as i32);
    let storage = h
        .fee
        .or(market.storage_rate)
        .map(|fee| fee.mul_div(i128::from(days), 1));
    let delay = sums.map(|s| s.revenue(ghs, h.start, until));
    (storage, delay)
}

pub fn customs(reg: &Register, p: &Params) -> CustomsReport {
    let sums = hashprice_sums(reg, p);
    let mut by: BTreeMap<String, (ShipmentHolds, Vec<String>)> = BTreeMap::new();
    for h in reg.holds.iter().filter(|h| h.start <= p.at) {
        let ghs = reg.asset(h.asset_id).map_or(0, |a| a.nameplate_ghs);
        let (days, open) = hold_days(h.start, h.end, p.at);
        let (storage, delay) = hold_cost(h, ghs, p.at, &p.market, sums.as_ref());
        let key = h.shipment.clone().unwrap_or_else(|| "-".into());
        let entry = by.entry(key.clone()).or_insert_with(|| {
            (
                ShipmentHolds {
                    shipment: key,
                    reasons: Vec::new(),
                    first_start: h.start,
                    last_end: Some(h.start),
                    totals: HoldTotals {
                        cost_of_delay: sums.is_some().then_some(Usd::ZERO),
                        ..HoldTotals::default()
                    },
                },
                Vec::new(),
            )
        });
        let s = &mut entry.0;
        s.first_start = s.first_start.min(h.start);
        s.last_end = match (s.last_end, h.end.filter(|e| *e <= p.at)) {
            (Some(a), Some(b)) if !open => Some(a.max(b)),
            _ => None,
        };
        if let Some(r) = &h.reason {
            if !entry.1.contains(r) {
                entry.1.push(r.clone());
            }
        }
        s.totals.add(&HoldTotals {
            units: 1,
            open_units: u64::from(open),
            unit_days: days,
            held_ths: if open { ths(ghs) } else { 0.0 },
            storage: storage.unwrap_or_default(),
            units_without_rate: u64::from(storage.is_none()),
            cost_of_delay: delay,
            total_cost: None,
        });
    }
    let mut total = HoldTotals {
        cost_of_delay: sums.is_some().then_some(Usd::ZERO),
        ..HoldTotals::default()
    };
    let shipments: Vec<ShipmentHolds> = by
        .into_values()
        .map(|(mut s, reasons)| {
            s.reasons = reasons;
            s.totals.held_ths = (s.totals.held_ths * 1000.0).round() / 1000.0;
            total.add(&s.totals);
            s
        })
        .collect();
    total.held_ths = (total.held_ths * 1000.0).round() / 1000.0;
    total.total_cost = total.cost_of_delay.map(|c| c + total.storage);
    CustomsReport {
        at: p.at,
        storage_rate_usd_per_unit_day: p.market.storage_rate,
        shipments,
        total,
        by_day: cost_by_day(reg, p, sums.as_ref()),
    }
}

impl CustomsReport {
    pub fn table(&self) -> Table {
        let mut t = Table::new(
            format!("Customs holds as of {}", self.at),
            &[
                "shipment",
                "reasons",
                "units",
                "held now",
                "unit-days",
                "held TH/s",
                "storage",
                "cost of delay",
                "total",
                "since",
                "released",
            ],
        );
        let row = |name: &str, reasons: &str, x: &HoldTotals, since: String, end: String| {
            vec![
                name.to_owned(),
                reasons.to_owned(),
                x.units.to_string(),
                x.open_units.to_string(),
                x.unit_days.to_string(),
                format!("{:.1}", x.held_ths),
                x.storage.to_string(),
                money(x.cost_of_delay),
                money(x.total_cost),
                since,
                end,
            ]
        };
        for s in &self.shipments {
            t.rows.push(row(
                &s.shipment,
                &s.reasons.join("; "),
                &s.totals,
                s.first_start.to_string(),
                s.last_end.map_or("held".into(), |d| d.to_string()),
            ));
        }
        t.rows
            .push(row("TOTAL", "", &self.total, String::new(), String::new()));
        if self.total.units_without_rate > 0 {
            t.notes.push(format!(
                "{} hold(s) have no storage rate (no fee on the event, no --storage-rate): not in storage",
                self.total.units_without_rate
            ));
        }
        if self.total.cost_of_delay.is_none() {
            t.notes.push(
                "cost of delay needs a hashprice (--hashprice, or --difficulty with --btc-price)"
                    .into(),
            );
        }
        t
    }
}

// ---------------------------------------------------------------------------------------
// Tariffs

/// The day a machine entered the US: the day customs first had it (a hold's start) or, with
/// no hold, its delivery.
pub fn entry_date(a: &AssetRecord) -> Option<Date> {
    a.milestones.held.or(a.milestones.delivered)
}

/// Duties and fees on the machines entered by a day, per entry and origin, and a what-if.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TariffsReport {
    pub at: Date,
    pub entries: Vec<EntryCost>,
    pub by_origin: Vec<OriginCost>,
    pub total: OriginCost,
    /// Machines not entered by the report's day (not counted above).
    pub not_entered: u64,
    pub what_if: Option<WhatIf>,
}

/// One entry: the machines of a shipment with one origin, code and entry day.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EntryCost {
    pub shipment: String,
    pub origin: String,
    pub hts_code: String,
    pub entry_date: Date,
    pub units: u64,
    pub value: Usd,
    pub duty_rate_pct: f64,
    pub duty: Usd,
    pub fees: Usd,
    pub landed: Usd,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct OriginCost {
    pub origin: String,
    pub units: u64,
    pub value: Usd,
    pub duty: Usd,
    pub fees: Usd,
    pub landed: Usd,
    pub landed_per_unit: Usd,
}

/// Each machine's landed cost (price, its duty, its share of its entry's fees), in the
/// order of `reg.assets`; a machine not entered by `at` costs its price.
pub fn landed_costs(reg: &Register, tariffs: &Schedule, at: Date) -> (Vec<EntryCost>, Vec<Usd>) {
    let mut groups: BTreeMap<(&str, &str, &str, Date), Vec<&AssetRecord>> = BTreeMap::new();
    let mut landed: Vec<Usd> = reg.assets.iter().map(|a| a.price).collect();
    let index = |a: &AssetRecord| reg.by_id.get(&a.id).copied();
    for a in &reg.assets {
        if let Some(d) = entry_date(a).filter(|d| *d <= at) {
            let key = (
                a.shipment.as_deref().unwrap_or("-"),
                a.origin.as_str(),
                a.hts_code.as_str(),
                d,
            );
            groups.entry(key).or_default().push(a);
        }
    }
    let mut entries = Vec::with_capacity(groups.len());
    for ((shipment, origin, hts, date), machines) in groups {
        let Some(country) = Country::parse(origin) else {
            continue;
        };
        // The layers in force are the entry's; duty per machine (prices differ), per-entry
        // fees on the entry's whole value, shared equally.
        let rate = tariffs.duty_rate(hts, country, date);
        let mut duty = Usd::ZERO;
        let mut value = Usd::ZERO;
        for a in &machines {
            let d = a.price.at(rate);
            duty += d;
            value += a.price;
            if let Some(l) = index(a).and_then(|i| landed.get_mut(i)) {
                *l = a.price + d;
            }
        }
        let fees = tariffs.entry_fees(hts, country, date, value);
        let n = machines.len() as i128;
        for a in &machines {
            if let Some(l) = index(a).and_then(|i| landed.get_mut(i)) {
                *l += fees.mul_div(1, n);
            }
        }
        let rate = rate.percent();
        let (shipment, origin, hts) = (shipment.to_owned(), origin.to_owned(), hts.to_owned());
        entries.push(EntryCost {
            shipment,
            origin,
            hts_code: hts,
            entry_date: date,
            units: machines.len() as u64,
            value,
            duty_rate_pct: rate,
            duty,
            fees,
            landed: value + duty + fees,
        });
    }
    (entries, landed)
}

pub fn tariffs(reg: &Register, p: &Params) -> TariffsReport {
    let (entries, _) = landed_costs(reg, &p.tariffs, p.at);
    let entered: u64 = entries.iter().map(|e| e.units).sum();
    let mut by: BTreeMap<String, OriginCost> = BTreeMap::new();
    let mut total = OriginCost {
        origin: "TOTAL".into(),
        ..OriginCost::default()
    };
    for e in &entries {
        for o in [
            by.entry(e.origin.clone()).or_insert_with(|| OriginCost {
                origin: e.origin.clone(),
                ..OriginCost::default()
            }),
            &mut total,
        ] {
            o.units += e.units;
            o.value += e.value;
            o.duty += e.duty;
            o.fees += e.fees;
            o.landed += e.landed;
        }
    }
    let per_unit =
        |o: &mut OriginCost| o.landed_per_unit = o.landed.mul_div(1, i128::from(o.units.max(1)));
    let mut by_origin: Vec<OriginCost> = by.into_values().collect();
    by_origin.iter_mut().for_each(per_unit);
    per_unit(&mut total);
    TariffsReport {
        at: p.at,
        entries,
        by_origin,
        total,
        not_entered: reg.assets.len() as u64 - entered,
        what_if: p.what_if.as_ref().map(|w| {
            p.tariffs.what_if(
                &w.model,
                w.units,
                w.unit_price,
                &w.hts_code,
                p.at,
                &w.origins,
            )
        }),
    }
}

impl TariffsReport {
    pub fn table(&self) -> Table {
        let mut t = Table::new(
            format!(
                "Duties and landed cost of the machines entered by {}",
                self.at
            ),
            &[
                "origin",
                "units",
                "value",
                "duty",
                "fees",
                "landed",
                "landed/unit",
            ],
        );
        for o in self.by_origin.iter().chain(std::iter::once(&self.total)) {
            t.rows.push(vec![
                o.origin.clone(),
                o.units.to_string(),
                o.value.to_string(),
                o.duty.to_string(),
                o.fees.to_string(),
                o.landed.to_string(),
                o.landed_per_unit.to_string(),
            ]);
        }
        t.notes.push(format!(
            "{} entries; {} machine(s) not entered by {}",
            self.entries.len(),
            self.not_entered,
            self.at
        ));
        if let Some(w) = &self.what_if {
            t.notes.push(format!(
                "\nWhat-if: {} x {} at {} ({}), entered {}",
                w.units, w.model, w.unit_price, w.hts_code, w.date
            ));
            let mut wt = Table::new(
                "",
                &[
                    "origin",
                    "duty rate",
                    "duty",
                    "fees",
                    "landed/unit",
                    "landed total",
                ],
            );
            for o in &w.origins {
                wt.rows.push(vec![
                    o.origin.to_string(),
                    format!("{}%", o.duty_rate_pct),
                    o.duty.to_string(),
                    o.fees.to_string(),
                    o.landed_per_unit.to_string(),
                    o.landed_total.to_string(),
                ]);
            }
            t.notes.push(wt.text().trim_start().to_string());
        }
        t
    }
}

// ---------------------------------------------------------------------------------------
// Repairs

/// Repair turnaround and what the downtime cost, per centre, vendor and fault.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RepairsReport {
    pub at: Date,
    pub tickets: u64,
    pub open: u64,
    pub by_centre: Vec<Turnaround>,
    pub by_vendor: Vec<Turnaround>,
    pub by_fault: Vec<Turnaround>,
    /// Nameplate TH/s times days out of service, all tickets.
    pub ths_days_lost: f64,
    pub revenue_lost: Option<Usd>,
}

/// Days out of service (opened to back in service; open tickets until the report's day).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Turnaround {
    /// The centre (`on site` for a fix at the farm), the maker, or the fault kind.
    pub key: String,
    pub tickets: u64,
    pub open: u64,
    /// Of the closed tickets.
    #[serde(flatten)]
    pub days: DayStats,
    pub ths_days_lost: f64,
    pub revenue_lost: Option<Usd>,
}

pub fn repairs(reg: &Register, p: &Params) -> RepairsReport {
    let sums = hashprice_sums(reg, p);
    type Acc = (u64, u64, Vec<i32>, f64, Option<Usd>);
    let mut centre: BTreeMap<&str, Acc> = BTreeMap::new();
    let mut vendor: BTreeMap<&str, Acc> = BTreeMap::new();
    let mut fault: BTreeMap<&str, Acc> = BTreeMap::new();
    let (mut tickets, mut open_n, mut ths_days) = (0u64, 0u64, 0.0);
    let mut lost = sums.is_some().then_some(Usd::ZERO);
    for r in reg.repairs.iter().filter(|r| r.opened <= p.at) {
        let Some(a) = reg.asset(r.asset_id) else {
            continue;
        };
        let back = r.back.filter(|b| *b <= p.at);
        let open = back.is_none() && r.outcome != Some("retired");
        let until = back.unwrap_or(p.at);
        let days = until.since(r.opened).max(0);
        let td = ths(a.nameplate_ghs) * f64::from(days);
        let money = sums
            .as_ref()
            .map(|s| s.revenue(a.nameplate_ghs, r.opened, until));
        tickets += 1;
        open_n += u64::from(open);
        ths_days += td;
        lost = lost.zip(money).map(|(a, b)| a + b);
        let c = match (&r.centre, r.outcome) {
            (Some(c), _) => c.as_str(),
            (None, Some("retired")) => "retired",
            (None, _) => "on site",
        };
        for (map, key) in [
            (&mut centre, c),
            (&mut vendor, a.maker.as_str()),
            (&mut fault, r.fault.as_str()),
        ] {
            let e = map.entry(key).or_insert((
                0,
                0,
                Vec::new(),
                0.0,
                sums.is_some().then_some(Usd::ZERO),
            ));
            e.0 += 1;
            e.1 += u64::from(open);
            if back.is_some() {
                e.2.push(days);
            }
            e.3 += td;
            e.4 = e.4.zip(money).map(|(a, b)| a + b);
        }
    }
    let list = |m: BTreeMap<&str, Acc>| -> Vec<Turnaround> {
        m.into_iter()
            .map(|(key, (tickets, open, days, td, lost))| Turnaround {
                key: key.to_owned(),
                tickets,
                open,
                days: DayStats::of(days),
                ths_days_lost: (td * 10.0).round() / 10.0,
                revenue_lost: lost,
            })
            .collect()
    };
    RepairsReport {
        at: p.at,
        tickets,
        open: open_n,
        by_centre: list(centre),
        by_vendor: list(vendor),
        by_fault: list(fault),
        ths_days_lost: (ths_days * 10.0).round() / 10.0,
        revenue_lost: lost,
    }
}

impl RepairsReport {
    pub fn table(&self) -> Table {
        let mut t = Table::new(
            format!(
                "Repairs as of {}: {} ticket(s), {} open",
                self.at, self.tickets, self.open
            ),
            &[
                "by",
                "key",
                "tickets",
                "open",
                "median d",
                "p90 d",
                "mean d",
                "TH·days lost",
                "revenue lost",
            ],
        );
        for (by, list) in [
            ("centre", &self.by_centre),
            ("vendor", &self.by_vendor),
            ("fault", &self.by_fault),
        ] {
            for x in list {
                let [m, p90, mean] = x.days.cells();
                t.rows.push(vec![
                    by.into(),
                    x.key.clone(),
                    x.tickets.to_string(),
                    x.open.to_string(),
                    m,
                    p90,
                    mean,
                    format!("{:.1}", x.ths_days_lost),
                    money(x.revenue_lost),
                ]);
            }
        }
        t.notes.push(format!(
            "TH·days lost: {:.1}; revenue lost: {}",
            self.ths_days_lost,
            money(self.revenue_lost)
        ));
        t
    }
}

// ---------------------------------------------------------------------------------------
// Vendors

/// The network's shares by maker (units, 2025 survey): Bitmain 82%, MicroBT 15%, Canaan 2%.
pub const NETWORK_SHARES: [(&str, f64); 4] = [
    ("Bitmain", 82.0),
    ("MicroBT", 15.0),
    ("Canaan", 2.0),
    ("other", 1.0),
];

/// The fleet's dependence on its makers.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct VendorsReport {
    pub at: Date,
    /// Machines in the fleet (ordered by the day, not retired).
    pub units: u64,
    pub nameplate_ths: f64,
    pub makers: Vec<MakerShare>,
    /// Herfindahl-Hirschman index of the fleet's makers (0-10,000), by units and hashrate.
    pub hhi_units: u32,
    pub hhi_hashrate: u32,
    /// The network's shares and index, for comparison.
    pub network: Vec<NetworkShare>,
    pub network_hhi: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NetworkShare {
    pub maker: String,
    pub share_pct: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MakerShare {
    pub maker: String,
    pub units: u64,
    pub unit_share_pct: f64,
    pub nameplate_ths: f64,
    pub hashrate_share_pct: f64,
    pub network_share_pct: Option<f64>,
    /// Ordered but not yet mining (produced, shipped, at customs, delivered): what a hold
    /// on this maker's shipments would delay.
    pub pipeline_units: u64,
    pub pipeline_ths: f64,
    /// What the pipeline would earn a day at the day's hashprice: the daily cost of holding
    /// all of it.
    pub pipeline_revenue_per_day: Option<Usd>,
}

fn hhi(shares_pct: impl Iterator<Item = f64>) -> u32 {
    shares_pct.map(|s| s * s).sum::<f64>().round() as u32
}

pub fn vendors(reg: &Register, p: &Params) -> VendorsReport {
    let hp = p.market.hashprice.at(p.at);
    let mut by: BTreeMap<String, (u64, u64, u64, u64)> = BTreeMap::new();
    for a in reg
        .assets
        .iter()
        .filter(|a| a.ordered_on <= p.at && a.state != State::Retired)
    {
        let e = by.entry(a.maker.clone()).or_default();
        e.0 += 1;
        e.1 += a.nameplate_ghs;
        if !matches!(a.state, State::Deployed | State::Failed | State::InRepair) {
            e.2 += 1;
            e.3 += a.nameplate_ghs;
        }
    }
    let units: u64 = by.values().map(|v| v.0).sum();
    let ghs: u64 = by.values().map(|v| v.1).sum();
    let pct = |x: u64, of: u64| {
        if of == 0 {
            0.0
        } else {
            (x as f64 * 10_000.0 / of as f64).round() / 100.0
        }
    };
    let makers: Vec<MakerShare> = by
        .into_iter()
        .map(|(maker, (u, g, pu, pg))| MakerShare {
            network_share_pct: NETWORK_SHARES
                .iter()
                .find(|(m, _)| m.eq_ignore_ascii_case(&maker))
                .map(|n| n.1),
            maker,
            units: u,
            unit_share_pct: pct(u, units),
            nameplate_ths: ths(g),
            hashrate_share_pct: pct(g, ghs),
            pipeline_units: pu,
            pipeline_ths: ths(pg),
            pipeline_revenue_per_day: hp.map(|h| revenue_per_day(pg, h)),
        })
        .collect();
    VendorsReport {
        at: p.at,
        units,
        nameplate_ths: ths(ghs),
        hhi_units: hhi(makers.iter().map(|m| m.unit_share_pct)),
        hhi_hashrate: hhi(makers.iter().map(|m| m.hashrate_share_pct)),
        network: NETWORK_SHARES
            .iter()
            .map(|(m, s)| NetworkShare {
                maker: (*m).into(),
                share_pct: *s,
            })
            .collect(),
        network_hhi: hhi(NETWORK_SHARES.iter().map(|n| n.1)),
        makers,
    }
}

impl VendorsReport {
    pub fn table(&self) -> Table {
        let mut t = Table::new(
            format!(
                "Makers of the fleet's {} machines ({:.1} TH/s) as of {}",
                self.units, self.nameplate_ths, self.at
            ),
            &[
                "maker",
                "units",
                "units %",
                "TH/s",
                "hashrate %",
                "network %",
                "pipeline",
                "pipeline TH/s",
                "held: lost/day",
            ],
        );
        for m in &self.makers {
            t.rows.push(vec![
                m.maker.clone(),
                m.units.to_string(),
                format!("{:.2}", m.unit_share_pct),
                format!("{:.1}", m.nameplate_ths),
                format!("{:.2}", m.hashrate_share_pct),
                m.network_share_pct
                    .map_or("–".into(), |s| format!("{s:.0}")),
                m.pipeline_units.to_string(),
                format!("{:.1}", m.pipeline_ths),
                money(m.pipeline_revenue_per_day),
            ]);
        }
        t.notes.push(format!(
            "Herfindahl index: {} by units, {} by hashrate; the network's (82/15/2/1): {}",
            self.hhi_units, self.hhi_hashrate, self.network_hhi
        ));
        t
    }
}

// ---------------------------------------------------------------------------------------
// Economics

/// Revenue, power, margin and payback per model and for the fleet, and money lost to
/// customs holds and repair downtime.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EconomicsReport {
    pub at: Date,
    pub hashprice_usd_per_ph_day: Option<Usd>,
    pub energy_usd_per_kwh: Option<f64>,
    pub difficulty_growth_pct_per_month: f64,
    pub fleet: Economics,
    pub by_model: Vec<Economics>,
    /// With `per_machine` only.
    pub machines: Vec<MachineEconomics>,
}

/// A group of deployed machines' day, and what the group lost so far.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Economics {
    /// `fleet`, or `maker model`.
    pub name: String,
    /// Deployed (mining) machines.
    pub machines: u64,
    pub nameplate_ths: f64,
    pub nameplate_kw: f64,
    pub j_per_th: Option<f64>,
    pub revenue_per_day: Option<Usd>,
    pub power_per_day: Option<Usd>,
    pub margin_per_day: Option<Usd>,
    /// Landed cost (price, duty, fees) of the group's machines, deployed or not.
    pub invested: Usd,
    /// Days for one average machine of the group to pay back its landed cost.
    pub payback_days: Option<u32>,
    /// Revenue the group's machines did not earn while held by customs, and storage paid.
    pub lost_to_customs: Option<Usd>,
    /// Revenue not earned while failed or in repair.
    pub lost_to_repairs: Option<Usd>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MachineEconomics {
    pub serial: String,
    pub model: String,
    pub state: State,
    pub j_per_th: Option<f64>,
    pub revenue_per_day: Option<Usd>,
    pub power_per_day: Option<Usd>,
    pub margin_per_day: Option<Usd>,
    pub landed_cost: Usd,
    pub payback_days: Option<u32>,
    pub lost_to_customs: Option<Usd>,
    pub lost_to_repairs: Option<Usd>,
}

#[derive(Default)]
struct EconAcc {
    machines: u64,
    ghs: u64,
    watts: u64,
    all: u64,
    invested: Usd,
    customs: Usd,
    repairs: Usd,
}

pub fn economics(reg: &Register, p: &Params) -> EconomicsReport {
    let sums = hashprice_sums(reg, p);
    let hp = p.market.hashprice.at(p.at);
    let kwh = p.market.energy.at(p.at);
    let (_, landed) = landed_costs(reg, &p.tariffs, p.at);
    // What each machine lost, in the order of `reg.assets`.
    let mut customs_lost = vec![Usd::ZERO; reg.assets.len()];
    for h in reg.holds.iter().filter(|h| h.start <= p.at) {
        let Some(&i) = reg.by_id.get(&h.asset_id) else {
            continue;
        };
        let (storage, delay) = hold_cost(
            h,
            reg.assets[i].nameplate_ghs,
            p.at,
            &p.market,
            sums.as_ref(),
        );
        customs_lost[i] += storage.unwrap_or_default() + delay.unwrap_or_default();
    }
    let mut repair_lost = vec![Usd::ZERO; reg.assets.len()];
    if let Some(s) = &sums {
        for r in reg.repairs.iter().filter(|r| r.opened <= p.at) {
            let Some(&i) = reg.by_id.get(&r.asset_id) else {
                continue;
            };
            let until = r.back.filter(|b| *b <= p.at).unwrap_or(p.at);
            repair_lost[i] += s.revenue(reg.assets[i].nameplate_ghs, r.opened, until);
        }
    }
    let growth = p.market.growth_per_month;
    let mut by: BTreeMap<(&str, &str), EconAcc> = BTreeMap::new();
    let mut machines = Vec::new();
    for (i, a) in reg
        .assets
        .iter()
        .enumerate()
        .filter(|(_, a)| a.ordered_on <= p.at && a.state != State::Retired)
    {
        let cost = landed[i];
        let e = by.entry((&a.maker, &a.model)).or_default();
        e.all += 1;
        e.invested += cost;
        e.customs += customs_lost[i];
        e.repairs += repair_lost[i];
        if a.state.mining() {
            e.machines += 1;
            e.ghs += a.nameplate_ghs;
            e.watts += u64::from(a.nameplate_w);
        }
        if p.per_machine {
            let rev = hp.map(|h| revenue_per_day(a.nameplate_ghs, h));
            let pow = kwh.map(|k| power_per_day(a.nameplate_w, k));
            machines.push(MachineEconomics {
                serial: a.serial.clone(),
                model: a.model.clone(),
                state: a.state,
                j_per_th: joules_per_th(a.nameplate_w, a.nameplate_ghs)
                    .map(|j| (j * 10.0).round() / 10.0),
                revenue_per_day: rev,
                power_per_day: pow,
                margin_per_day: rev.zip(pow).map(|(r, p)| r - p),
                landed_cost: cost,
                payback_days: rev
                    .zip(pow)
                    .and_then(|(r, p)| payback_days(cost, r, p, growth)),
                lost_to_customs: sums.as_ref().map(|_| customs_lost[i]),
                lost_to_repairs: sums.as_ref().map(|_| repair_lost[i]),
            });
        }
    }
    let group = |name: String, e: &EconAcc, unit: Option<(u64, u32)>| {
        let rev = hp.map(|h| revenue_per_day(e.ghs, h));
        let pow = kwh.map(|k| power_per_day(e.watts.min(u64::from(u32::MAX)) as u32, k));
        let avg_cost = e.invested.mul_div(1, i128::from(e.all.max(1)));
        Economics {
            name,
            machines: e.machines,
            nameplate_ths: ths(e.ghs),
            nameplate_kw: e.watts as f64 / 1000.0,
            j_per_th: joules_per_th(e.watts.min(u64::from(u32::MAX)) as u32, e.ghs)
                .map(|j| (j * 10.0).round() / 10.0),
            revenue_per_day: rev,
            power_per_day: pow,
            margin_per_day: rev.zip(pow).map(|(r, p)| r - p),
            invested: e.invested,
            payback_days: unit.and_then(|(ghs, w)| {
                let r = revenue_per_day(ghs, hp?);
                let p = power_per_day(w, kwh?);
                payback_days(avg_cost, r, p, growth)
            }),
            lost_to_customs: sums.as_ref().map(|_| e.customs),
            lost_to_repairs: sums.as_ref().map(|_| e.repairs),
        }
    };
    let mut fleet = EconAcc::default();
    let mut by_model = Vec::with_capacity(by.len());
    let nameplate: HashMap<(&str, &str), (u64, u32)> = reg
        .assets
        .iter()
        .map(|a| {
            (
                (a.maker.as_str(), a.model.as_str()),
                (a.nameplate_ghs, a.nameplate_w),
            )
        })
        .collect();
    for ((maker, model), e) in &by {
        fleet.machines += e.machines;
        fleet.ghs += e.ghs;
        fleet.watts += e.watts;
        fleet.all += e.all;
        fleet.invested += e.invested;
        fleet.customs += e.customs;
        fleet.repairs += e.repairs;
        let unit = nameplate.get(&(*maker, *model)).copied();
        by_model.push(group(format!("{maker} {model}"), e, unit));
    }
    EconomicsReport {
        at: p.at,
        hashprice_usd_per_ph_day: hp,
        energy_usd_per_kwh: kwh.map(|k| k.micros() as f64 / 1e6),
        difficulty_growth_pct_per_month: growth * 100.0,
        fleet: group("fleet".into(), &fleet, None),
        by_model,
        machines,
    }
}

impl EconomicsReport {
    pub fn table(&self) -> Table {
        let mut t = Table::new(
            format!(
                "Economics as of {}: hashprice {}/PH/day, energy {}/kWh, difficulty +{}%/month",
                self.at,
                money(self.hashprice_usd_per_ph_day),
                self.energy_usd_per_kwh
                    .map_or("–".into(), |e| format!("${e:.4}")),
                self.difficulty_growth_pct_per_month
            ),
            &[
                "model",
                "mining",
                "TH/s",
                "kW",
                "J/TH",
                "revenue/day",
                "power/day",
                "margin/day",
                "invested",
                "payback d",
                "lost: customs",
                "lost: repairs",
            ],
        );
        let models = self.by_model.iter().map(|e| (e, true));
        for (e, one_model) in models.chain(std::iter::once((&self.fleet, false))) {
            // A model's machines with a margin known but no payback never pay back (within
            // ten years, or the margin is negative); the fleet's mix has no one machine's.
            let payback = match e.payback_days {
                Some(d) => d.to_string(),
                None if one_model && e.margin_per_day.is_some() => "never".into(),
                None => "–".into(),
            };
            t.rows.push(vec![
                e.name.clone(),
                e.machines.to_string(),
                format!("{:.1}", e.nameplate_ths),
                format!("{:.1}", e.nameplate_kw),
                e.j_per_th.map_or("–".into(), |j| format!("{j:.1}")),
                money(e.revenue_per_day),
                money(e.power_per_day),
                money(e.margin_per_day),
                e.invested.to_string(),
                payback,
                money(e.lost_to_customs),
                money(e.lost_to_repairs),
            ]);
        }
        t
    }
}

// ---------------------------------------------------------------------------------------
// Lead times

/// The stages of a machine's way from order to rack, in order.
pub const STAGES: [&str; 6] = [
    "production",
    "dispatch",
    "transit",
    "customs",
    "install",
    "order_to_deploy",
];

/// Lead times (median, p90) per stage, overall and per vendor, origin and route.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LeadtimesReport {
    pub at: Date,
    pub overall: Group,
    pub by_vendor: Vec<Group>,
    pub by_origin: Vec<Group>,
    /// By shipment.
    pub by_route: Vec<Group>,
    /// Where the days from order to rack went: mean days per stage of the deployed
    /// machines, and their share of the whole.
    pub where_the_days_went: Vec<StageShare>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Group {
    pub key: String,
    pub machines: u64,
    pub stages: Vec<StageStats>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StageStats {
    pub stage: &'static str,
    #[serde(flatten)]
    pub days: DayStats,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StageShare {
    pub stage: &'static str,
    pub mean_days: f64,
    pub share_pct: f64,
}

/// A machine's days per stage ([`STAGES`]), each known once both ends happened by `at`.
fn stage_days(a: &AssetRecord, at: Date) -> [Option<i32>; 6] {
    let m = &a.milestones;
    let by = |d: Option<Date>| d.filter(|d| *d <= at);
    let span = |from: Option<Date>, to: Option<Date>| Some(by(to)?.since(by(from)?));
    let customs = span(m.held, m.released);
    let transit = span(m.shipped, m.delivered).map(|t| t - customs.unwrap_or(0));
    [
        span(Some(a.ordered_on), m.produced),
        span(m.produced, m.shipped),
        transit,
        customs,
        span(m.delivered, m.deployed),
        span(Some(a.ordered_on), m.deployed),
    ]
}

fn group(key: String, rows: &[[Option<i32>; 6]]) -> Group {
    Group {
        key,
        machines: rows.len() as u64,
        stages: STAGES
            .iter()
            .enumerate()
            .map(|(i, stage)| StageStats {
                stage,
                days: DayStats::of(rows.iter().filter_map(|r| r[i]).collect()),
            })
            .collect(),
    }
}

pub fn leadtimes(reg: &Register, p: &Params) -> LeadtimesReport {
    let mut all = Vec::with_capacity(reg.assets.len());
    let mut vendor: BTreeMap<&str, Vec<[Option<i32>; 6]>> = BTreeMap::new();
    let mut origin: BTreeMap<&str, Vec<[Option<i32>; 6]>> = BTreeMap::new();
    let mut route: BTreeMap<&str, Vec<[Option<i32>; 6]>> = BTreeMap::new();
    for a in reg.assets.iter().filter(|a| a.ordered_on <= p.at) {
        let d = stage_days(a, p.at);
        all.push(d);
        vendor.entry(&a.maker).or_default().push(d);
        origin.entry(&a.origin).or_default().push(d);
        route
            .entry(a.shipment.as_deref().unwrap_or("-"))
            .or_default()
            .push(d);
    }
    // Where the days went: machines that made it all the way.
    let done: Vec<&[Option<i32>; 6]> = all.iter().filter(|d| d[5].is_some()).collect();
    let total: f64 = done.iter().filter_map(|d| d[5]).map(f64::from).sum();
    let where_the_days_went = STAGES[..5]
        .iter()
        .enumerate()
        .map(|(i, stage)| {
            let sum: f64 = done.iter().map(|d| f64::from(d[i].unwrap_or(0))).sum();
            StageShare {
                stage,
                mean_days: if done.is_empty() {
                    0.0
                } else {
                    (sum / done.len() as f64 * 10.0).round() / 10.0
                },
                share_pct: if total > 0.0 {
                    (sum * 1000.0 / total).round() / 10.0
                } else {
                    0.0
                },
            }
        })
        .collect();
    let groups = |m: BTreeMap<&str, Vec<[Option<i32>; 6]>>| {
        m.into_iter()
            .map(|(k, v)| group(k.to_owned(), &v))
            .collect()
    };
    LeadtimesReport {
        at: p.at,
        overall: group("all".into(), &all),
        by_vendor: groups(vendor),
        by_origin: groups(origin),
        by_route: groups(route),
        where_the_days_went,
    }
}

impl LeadtimesReport {
    pub fn table(&self) -> Table {
        let mut headers = vec!["by", "key", "machines"];
        let names: Vec<String> = STAGES.iter().map(|s| format!("{s} p50/p90")).collect();
        headers.extend(names.iter().map(String::as_str));
        let mut t = Table::new(format!("Lead times in days as of {}", self.at), &headers);
        let show = |by: &str, g: &Group| {
            let mut row = vec![by.to_owned(), g.key.clone(), g.machines.to_string()];
            for s in &g.stages {
                let [m, p90, _] = s.days.cells();
                row.push(format!("{m}/{p90}"));
            }
            row
        };
        t.rows.push(show("all", &self.overall));
        for (by, list) in [
            ("vendor", &self.by_vendor),
            ("origin", &self.by_origin),
            ("route", &self.by_route),
        ] {
            for g in list.iter().take(200) {
                t.rows.push(show(by, g));
            }
        }
        let went: Vec<String> = self
            .where_the_days_went
            .iter()
            .map(|s| format!("{} {:.1} d ({:.1}%)", s.stage, s.mean_days, s.share_pct))
            .collect();
        t.notes.push(format!(
            "Where the days went (deployed machines, mean): {}",
            went.join(", ")
        ));
        t
    }
}

/// What report `name` reads of the register besides the machines.
pub fn parts(name: &str) -> Parts {
    Parts {
        holds: matches!(name, "customs" | "economics"),
        repairs: matches!(name, "repairs" | "economics"),
        repair_details: false,
        asset_details: matches!(name, "tariffs" | "economics"),
        keys: name != "economics",
    }
}

/// A report by name, as JSON and as a table.
pub fn by_name(name: &str, reg: &Register, p: &Params) -> Option<(serde_json::Value, Table)> {
    fn pack<T: Serialize>(r: T, t: impl Fn(&T) -> Table) -> (serde_json::Value, Table) {
        let table = t(&r);
        (serde_json::to_value(&r).unwrap_or_default(), table)
    }
    Some(match name {
        "customs" => pack(customs(reg, p), CustomsReport::table),
        "tariffs" => pack(tariffs(reg, p), TariffsReport::table),
        "repairs" => pack(repairs(reg, p), RepairsReport::table),
        "vendors" => pack(vendors(reg, p), VendorsReport::table),
        "economics" => pack(economics(reg, p), EconomicsReport::table),
        "leadtimes" => pack(leadtimes(reg, p), LeadtimesReport::table),
        _ => return None,
    })
}
