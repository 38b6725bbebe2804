//! The tariff schedule, sans I/O: HTS code x origin x date range -> duty layers (base,
//! Section 301, IEEPA, reciprocal) and per-entry fees (MPF), read from a CSV the operator
//! can edit (`data/tariffs.csv` is built in), and what they make of a price: the landed
//! cost of a machine at its entry date and the what-if of one order from several origins.

use serde::Serialize;

use crate::assets::{hts_shape, hts_under, Country, ImportErrors};
use crate::csv::{check_header, read_rows};
use crate::date::Date;
use crate::money::{Ppm, Usd};

/// The schedule shipped with hashforge.
pub const BUILTIN: &str = include_str!("../data/tariffs.csv");

/// The tariff file's columns.
pub const COLUMNS: [&str; 9] = [
    "hts_code", "origin", "from", "until", "layer", "rate_pct", "min_usd", "max_usd", "note",
];

/// One row: a layer in force for a code, an origin and a range of days.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Layer {
    pub hts_code: String,
    /// `None`: every origin but the US.
    pub origin: Option<Country>,
    pub from: Date,
    pub until: Option<Date>,
    pub name: String,
    pub rate: Ppm,
    /// Per entry (fees): the least and most charged.
    pub min: Option<Usd>,
    pub max: Option<Usd>,
    pub note: String,
}

impl Layer {
    /// A fee charged per entry rather than a duty per machine.
    pub fn per_entry(&self) -> bool {
        self.min.is_some() || self.max.is_some()
    }

    /// A per-entry fee on an entry of `value`.
    fn fee_on(&self, value: Usd) -> Usd {
        let mut amount = value.at(self.rate);
        if let Some(min) = self.min {
            amount = amount.max(min);
        }
        if let Some(max) = self.max {
            amount = amount.min(max);
        }
        amount
    }

    fn applies(&self, hts: &str, origin: Country, on: Date) -> bool {
        let code = hts_under(hts, &self.hts_code);
        let origin = match self.origin {
            Some(o) => o == origin,
            None => origin != Country::US,
        };
        code && origin && self.from <= on && self.until.is_none_or(|u| on <= u)
    }
}

/// Every layer of a schedule.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Schedule {
    pub layers: Vec<Layer>,
}

/// What the duties and fees on some machines come to.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Duties {
    /// Each layer in force and what it adds, for all the units together.
    pub layers: Vec<LayerCost>,
    /// The duty rate: every per-machine layer added up.
    pub duty_rate_pct: f64,
    pub duty: Usd,
    pub fees: Usd,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LayerCost {
    pub layer: String,
    pub rate_pct: f64,
    pub amount: Usd,
}

impl Schedule {
    /// [`BUILTIN`], which is tested to parse.
    pub fn builtin() -> Schedule {
        Schedule::parse(BUILTIN).unwrap_or_default()
    }

    /// A tariff file: [`COLUMNS`] (more may follow), `#` lines are comments.
    pub fn parse(text: &str) -> Result<Schedule, ImportErrors> {
        // Comments become blank lines, so line numbers stay the file's.
        let text: String = text
            .split_inclusive('\n')
            .map(|l| {
                if !l.trim_start().starts_with('#') {
                    l
                } else if l.ends_with('\n') {
                    "\n"
                } else {
                    ""
                }
            })
            .collect();
        let rows = read_rows(
            &text,
            |h| check_header(h, &COLUMNS).map_err(|e| e.reason),
            |_, r| layer(&r.fields),
        )
        .map_err(ImportErrors::from)?;
        Ok(Schedule {
            layers: rows.into_iter().map(|(_, l)| l).collect(),
        })
    }

    /// Whether any row names this code (or the code it is a subheading of).
    pub fn knows(&self, hts: &str) -> bool {
        self.layers.iter().any(|l| hts_under(hts, &l.hts_code))
    }

    /// The codes the schedule names, sorted.
    pub fn codes(&self) -> Vec<String> {
        let mut c: Vec<String> = self.layers.iter().map(|l| l.hts_code.clone()).collect();
        c.sort();
        c.dedup();
        c
    }

    /// The layers in force for `hts` from `origin` on `on`.
    pub fn in_force<'a>(
        &'a self,
        hts: &'a str,
        origin: Country,
        on: Date,
    ) -> impl Iterator<Item = &'a Layer> + 'a {
        self.layers
            .iter()
            .filter(move |l| l.applies(hts, origin, on))
    }

    /// The duty rate on `hts` from `origin` on `on`: every per-machine layer in force, added.
    pub fn duty_rate(&self, hts: &str, origin: Country, on: Date) -> Ppm {
        self.in_force(hts, origin, on)
            .filter(|l| !l.per_entry())
            .fold(Ppm(0), |r, l| r + l.rate)
    }

    /// The per-entry fees on an entry of `value` (each within its minimum and maximum).
    pub fn entry_fees(&self, hts: &str, origin: Country, on: Date, value: Usd) -> Usd {
        self.in_force(hts, origin, on)
            .filter(|l| l.per_entry())
            .map(|l| l.fee_on(value))
            .sum()
    }

    /// The duties and fees on `units` machines of `unit_value` each, entered together (one
    /// entry: per-entry fees are charged once, within their minimum and maximum).
    pub fn duties(
        &self,
        hts: &str,
        origin: Country,
        on: Date,
        unit_value: Usd,
        units: u64,
    ) -> Duties {
        let value = unit_value.mul_div(i128::from(units), 1);
        let mut out = Duties {
            layers: Vec::new(),
            duty_rate_pct: 0.0,
            duty: Usd::ZERO,
            fees: Usd::ZERO,
        };
        let mut rate = Ppm(0);
        for l in self.in_force(hts, origin, on) {
            let amount = if l.per_entry() {
                let fee = l.fee_on(value);
                out.fees += fee;
                fee
            } else {
                rate = rate + l.rate;
                out.duty += value.at(l.rate);
                value.at(l.rate)
            };
            out.layers.push(LayerCost {
                layer: l.name.clone(),
                rate_pct: l.rate.percent(),
                amount,
            });
        }
        out.duty_rate_pct = rate.percent();
        out
    }
}

fn layer(f: &[std::borrow::Cow<'_, str>]) -> Result<Layer, String> {
    let get = |i: usize| f.get(i).map(|s| s.trim()).unwrap_or("");
    if f.len() < 6 {
        return Err(format!("{} field(s), the header has at least 6", f.len()));
    }
    let hts_code = get(0).to_owned();
    if !hts_shape(&hts_code) {
        return Err(format!(
            "hts_code `{hts_code}` is not a HTS code (e.g. 8543.70.99)"
        ));
    }
    let origin = match get(1) {
        "*" => None,
        o => Some(
            Country::parse(o)
                .ok_or_else(|| format!("origin `{o}` is not an ISO 3166 country code or `*`"))?,
        ),
    };
    let from: Date = get(2).parse().map_err(|e| format!("from: {e}"))?;
    let until = match get(3) {
        "" => None,
        u => Some(u.parse::<Date>().map_err(|e| format!("until: {e}"))?),
    };
    if until.is_some_and(|u| u < from) {
        return Err(format!("until {} is before from {from}", get(3)));
    }
    let name = get(4).to_owned();
    if name.is_empty() {
        return Err("`layer` is empty (base, section_301, ieepa_reciprocal, mpf...)".into());
    }
    let rate = Ppm::parse_percent(get(5)).map_err(|e| format!("rate_pct: {e}"))?;
    let money = |i: usize, col: &str| -> Result<Option<Usd>, String> {
        match get(i) {
            "" => Ok(None),
            t => Usd::parse_non_negative(t)
                .map(Some)
                .map_err(|e| format!("{col}: {e}")),
        }
    };
    let min = money(6, "min_usd")?;
    let max = money(7, "max_usd")?;
    if let (Some(a), Some(b)) = (min, max) {
        if b < a {
            return Err("max_usd is below min_usd".into());
        }
    }
    Ok(Layer {
        hts_code,
        origin,
        from,
        until,
        name,
        rate,
        min,
        max,
        note: get(8).to_owned(),
    })
}

/// One origin's column of a what-if.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct WhatIfOrigin {
    pub origin: Country,
    pub duty_rate_pct: f64,
    pub layers: Vec<LayerCost>,
    pub duty: Usd,
    pub fees: Usd,
    pub landed_per_unit: Usd,
    pub landed_total: Usd,
}

/// The same order from each origin, on one date.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct WhatIf {
    pub model: String,
    pub units: u64,
    pub unit_price: Usd,
    pub hts_code: String,
    pub date: Date,
    pub origins: Vec<WhatIfOrigin>,
}

/// The origins a what-if compares by default: the US factory, Malaysia, Indonesia,
/// Thailand, China.
pub fn default_origins() -> Vec<Country> {
    ["US", "MY", "ID", "TH", "CN"]
        .iter()
        .filter_map(|c| Country::parse(c))
        .collect()
}

impl Schedule {
    /// `units` of `model` at `unit_price` entered on `date` from each of `origins`.
    pub fn what_if(
        &self,
        model: &str,
        units: u64,
        unit_price: Usd,
        hts: &str,
        date: Date,
        origins: &[Country],
    ) -> WhatIf {
        let origins = origins
            .iter()
            .map(|&origin| {
                let d = self.duties(hts, origin, date, unit_price, units);
                let total = unit_price.mul_div(i128::from(units), 1) + d.duty + d.fees;
                WhatIfOrigin {
                    origin,
                    duty_rate_pct: d.duty_rate_pct,
                    layers: d.layers,
                    duty: d.duty,
                    fees: d.fees,
                    landed_per_unit: total.mul_div(1, i128::from(units.max(1))),
                    landed_total: total,
                }
            })
            .collect();
        WhatIf {
            model: model.to_owned(),
            units,
            unit_price,
            hts_code: hts.to_owned(),
            date,
            origins,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Date {
        s.parse().unwrap()
    }

    fn c(s: &str) -> Country {
        Country::parse(s).unwrap()
    }

    #[test]
    fn the_builtin_schedule_gives_the_facts_rates() {
        let s = Schedule::parse(BUILTIN).expect("the built-in schedule parses");
        let rate = |o: &str, on: &str| {
            s.duties("8543.70.99", c(o), d(on), Usd::from_dollars(1000), 1)
                .duty_rate_pct
        };
        assert_eq!(rate("CN", "2025-08-20"), 57.6);
        assert_eq!(rate("CN", "2025-11-10"), 47.6);
        assert_eq!(rate("CN", "2024-06-01"), 27.6);
        assert_eq!(rate("MY", "2025-08-07"), 21.6);
        assert_eq!(rate("ID", "2025-09-01"), 21.6);
        assert_eq!(rate("TH", "2025-08-06"), 12.6);
        assert_eq!(rate("US", "2025-09-01"), 0.0);
        // A statistical suffix falls under its subheading.
        assert!(s.knows("8543.70.9960"));
        assert!(!s.knows("8543.70.9"));
        assert!(!s.knows("8543.70.991"));
        assert!(!s.knows("8471.50.01"));
    }

    #[test]
    fn the_what_if_adds_duty_and_capped_fees() {
        let s = Schedule::builtin();
        let w = s.what_if(
            "S21 Pro",
            200,
            Usd::from_dollars(4_000),
            "8543.70.99",
            d("2025-09-01"),
            &default_origins(),
        );
        let by = |o: &str| w.origins.iter().find(|x| x.origin == c(o)).unwrap();
        // $800,000 from China at 57.6%: $460,800 duty; MPF 0.3464% = $2,771.20, capped at $634.62.
        assert_eq!(by("CN").duty, Usd::from_dollars(460_800));
        assert_eq!(by("CN").fees, Usd::parse("634.62").unwrap());
        assert_eq!(by("CN").landed_total, Usd::parse("1261434.62").unwrap());
        assert_eq!(by("MY").duty, Usd::from_dollars(172_800));
        assert_eq!(by("US").landed_total, Usd::from_dollars(800_000));
        assert_eq!(by("US").landed_per_unit, Usd::from_dollars(4_000));
        // One machine: the MPF minimum.
        let one = s.duties(
            "8543.70.99",
            c("MY"),
            d("2025-09-01"),
            Usd::from_dollars(1_000),
            1,
        );
        assert_eq!(one.fees, Usd::parse("32.71").unwrap());
    }

    #[test]
    fn bad_rows_name_their_line() {
        let head = COLUMNS.join(",");
        for (row, why) in [
            ("8543.70.99,XX,2025-01-01,,base,2.6,,,", "origin `XX`"),
            (
                "8543.70.99,CN,2025-01-01,2024-01-01,base,2.6,,,",
                "before from",
            ),
            ("8543.70.99,CN,2025-01-01,,base,-2.6,,,", "negative"),
            ("8543.70.99,CN,2025-01-01,,,2.6,,,", "`layer` is empty"),
            ("85437099,CN,2025-01-01,,base,2.6,,,", "not a HTS code"),
            ("8543.70.99,CN,2025-01-01,,mpf,0.3,10,5,", "below min"),
            ("8543.70.99,CN", "field(s)"),
        ] {
            let e =
                Schedule::parse(&format!("# comment, with \"quotes\n{head}\n{row}\n")).unwrap_err();
            assert_eq!(e.errors[0].line, 3, "{row}");
            assert!(e.errors[0].reason.contains(why), "{row}: {}", e.errors[0]);
        }
    }
}
