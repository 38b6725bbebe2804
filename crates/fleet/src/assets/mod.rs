//! The asset register: every machine by serial, from purchase order to retirement, sans I/O
//! here ([`db`] keeps it in the fleet database).
//!
//! - [`AssetSpec`] / [`EventSpec`]: one row of `assets.csv` / `events.csv`, parsed and
//!   checked ([`parse_assets`], [`parse_events`]): a bad row becomes an [`ImportError`]
//!   with its line and reason.
//! - [`Track`]: what the register knows of a machine's life (state, last event, the first
//!   date of each stage, its open customs hold and repair); [`Track::apply`] runs an event
//!   through [`crate::lifecycle::step`] and says what it changes ([`Effects`]).

pub mod country;
pub mod db;
pub mod demo;
pub mod synthetic;

use std::borrow::Cow;
use std::collections::HashMap;

pub use country::Country;
use serde::Serialize;

use crate::csv::{check_header, read_rows, Record};
use crate::date::Date;
use crate::lifecycle::{self, Event, State};
use crate::money::{parse_fixed, Usd};
use crate::tariffs::Schedule;

/// `assets.csv`'s columns, in this order (scripts depend on them; more may follow).
pub const ASSET_COLUMNS: [&str; 10] = [
    "serial",
    "maker",
    "model",
    "nameplate_ths",
    "nameplate_w",
    "origin",
    "hts_code",
    "price_usd",
    "order_id",
    "ordered_on",
];

/// Optional columns after them, by name: `currency` (ISO 4217, default USD: the price is
/// in USD whatever the order was paid in), `firmware`, `mac`, `control_board`, `psu`,
/// `hash_boards` (serials separated by spaces or `;`).
pub const ASSET_EXTRAS: [&str; 6] = [
    "currency",
    "firmware",
    "mac",
    "control_board",
    "psu",
    "hash_boards",
];

/// `events.csv`'s columns, in this order.
pub const EVENT_COLUMNS: [&str; 8] = [
    "serial",
    "event",
    "date",
    "place",
    "shipment",
    "reason",
    "fee_usd_per_unit_day",
    "note",
];

/// Currencies an order may have been paid in.
const CURRENCIES: &str = "USD EUR CNY HKD MYR IDR THB SGD JPY KRW TWD CAD GBP CHF AUD AED \
NOK SEK ISK PYG ETB KZT RUB BRL ARS MXN";

/// Longest text a field may hold (a note, a chip map).
pub const MAX_FIELD: usize = 4096;

/// A machine as ordered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AssetSpec {
    pub serial: String,
    pub maker: String,
    pub model: String,
    /// Nameplate hashrate in GH/s (whole: `nameplate_ths` to three decimals).
    pub nameplate_ghs: u64,
    pub nameplate_w: u32,
    pub origin: Country,
    pub hts_code: String,
    pub price: Usd,
    pub currency: String,
    pub order_id: String,
    pub ordered_on: Date,
    pub firmware: Option<String>,
    /// Lowercase, `aa:bb:cc:dd:ee:ff`.
    pub mac: Option<String>,
    pub control_board: Option<String>,
    pub psu: Option<String>,
    pub hash_boards: Vec<String>,
}

/// One event of `events.csv` (or the API).
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
pub struct EventSpec {
    pub serial: String,
    pub event: String,
    pub date: String,
    #[serde(default)]
    pub place: Option<String>,
    #[serde(default)]
    pub shipment: Option<String>,
    #[serde(default)]
    pub reason: Option<String>,
    /// Storage per unit per day, for a customs hold (dollars, e.g. `2.50`).
    #[serde(default)]
    pub fee_usd_per_unit_day: Option<String>,
    #[serde(default)]
    pub note: Option<String>,
}

/// An event checked on its own (its serial known, its transition not yet).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckedEvent {
    pub serial: String,
    pub event: Event,
    pub date: Date,
    pub place: Option<String>,
    pub shipment: Option<String>,
    pub reason: Option<String>,
    pub fee: Option<Usd>,
    pub note: Option<String>,
}

/// A row refused.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct ImportError {
    pub line: usize,
    pub reason: String,
}

/// Every row a file was refused for (the first [`ImportErrors::SHOWN`]), and how many.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, thiserror::Error)]
pub struct ImportErrors {
    pub errors: Vec<ImportError>,
    pub total: usize,
}

impl From<Vec<crate::csv::CsvError>> for ImportErrors {
    fn from(errors: Vec<crate::csv::CsvError>) -> ImportErrors {
        let mut out = ImportErrors {
            errors: Vec::new(),
            total: 0,
        };
        for e in errors {
            out.push(ImportError {
                line: e.line,
                reason: e.reason,
            });
        }
        out
    }
}

impl ImportErrors {
    pub const SHOWN: usize = 50;

    fn push(&mut self, e: ImportError) {
        self.total += 1;
        if self.errors.len() < ImportErrors::SHOWN {
            self.errors.push(e);
        }
    }

    fn is_empty(&self) -> bool {
        self.total == 0
    }
}

impl std::fmt::Display for ImportErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} bad row(s); nothing was imported", self.total)?;
        for e in &self.errors {
            write!(f, "\n  {e}")?;
        }
        if self.total > self.errors.len() {
            write!(f, "\n  ... and {} more", self.total - self.errors.len())?;
        }
        Ok(())
    }
}

fn field(f: Option<&Cow<'_, str>>) -> Option<String> {
    f.map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

fn required(r: &Record<'_>, i: usize, name: &str) -> Result<String, String> {
    field(r.fields.get(i)).ok_or_else(|| format!("`{name}` is empty"))
}

fn check_len(r: &Record<'_>) -> Result<(), String> {
    match r.fields.iter().position(|f| f.len() > MAX_FIELD) {
        Some(i) => Err(format!("field {} is longer than {MAX_FIELD} bytes", i + 1)),
        None => Ok(()),
    }
}

/// `AA-BB-CC-DD-EE-FF` or `aa:bb:...` as `aa:bb:cc:dd:ee:ff`.
pub fn normal_mac(s: &str) -> Option<String> {
    let hex: String = s
        .chars()
        .filter(|c| !matches!(c, ':' | '-' | '.'))
        .collect();
    if hex.len() != 12 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let hex = hex.to_ascii_lowercase();
    Some(
        (0..6)
            .map(|i| &hex[2 * i..2 * i + 2])
            .collect::<Vec<_>>()
            .join(":"),
    )
}

/// A HTS code's shape: `8543.70.99` (subheading) or `8543.70.9960` (with the statistical
/// suffix).
pub fn hts_shape(s: &str) -> bool {
    let parts: Vec<&str> = s.split('.').collect();
    let digits = |p: &str, n: usize| p.len() == n && p.bytes().all(|b| b.is_ascii_digit());
    match parts.as_slice() {
        [a, b, c] => digits(a, 4) && digits(b, 2) && (digits(c, 2) || digits(c, 4)),
        _ => false,
    }
}

/// Whether `code` is `heading` or falls under it (`8543.70.9960` under `8543.70.99`).
pub fn hts_under(code: &str, heading: &str) -> bool {
    code.strip_prefix(heading).is_some_and(|rest| {
        rest.is_empty() || (rest.len() == 2 && rest.bytes().all(|b| b.is_ascii_digit()))
    })
}

fn asset_row(
    r: &Record<'_>,
    extras: &HashMap<String, usize>,
    tariffs: &Schedule,
) -> Result<AssetSpec, String> {
    check_len(r)?;
    if r.fields.len() < ASSET_COLUMNS.len() {
        return Err(format!(
            "{} field(s), the header has at least {}",
            r.fields.len(),
            ASSET_COLUMNS.len()
        ));
    }
    let serial = required(r, 0, "serial")?;
    let maker = required(r, 1, "maker")?;
    let model = required(r, 2, "model")?;
    let ths = required(r, 3, "nameplate_ths")?;
    let nameplate_ghs = parse_fixed(&ths, 3)
        .ok()
        .filter(|g| *g > 0 && *g <= 1_000_000_000)
        .ok_or_else(|| format!("nameplate_ths `{ths}` must be a positive number of TH/s up to 1000000 (e.g. 234 or 1.2)"))?
        as u64;
    let w = required(r, 4, "nameplate_w")?;
    let nameplate_w = w
        .parse::<u32>()
        .ok()
        .filter(|w| *w > 0 && *w <= 1_000_000)
        .ok_or_else(|| format!("nameplate_w `{w}` must be whole watts, 1 to 1000000"))?;
    let origin_text = required(r, 5, "origin")?;
    let origin = Country::parse(&origin_text).ok_or_else(|| {
        format!("origin `{origin_text}` is not an ISO 3166 country code (US, CN, MY, ID, TH...)")
    })?;
    let hts_code = required(r, 6, "hts_code")?;
    if !hts_shape(&hts_code) {
        return Err(format!(
            "hts_code `{hts_code}` is not a HTS code (e.g. 8543.70.99)"
        ));
    }
    if !tariffs.knows(&hts_code) {
        return Err(format!(
            "hts_code `{hts_code}` is not in the tariff schedule (known: {}); add its rows to the schedule (--tariffs FILE) first",
            tariffs.codes().join(", ")
        ));
    }
    let price_text = required(r, 7, "price_usd")?;
    let price = Usd::parse_non_negative(&price_text).map_err(|e| format!("price_usd: {e}"))?;
    let order_id = required(r, 8, "order_id")?;
    let ordered = required(r, 9, "ordered_on")?;
    let ordered_on: Date = ordered.parse().map_err(|e| format!("ordered_on: {e}"))?;
    let extra = |name: &str| extras.get(name).and_then(|&i| field(r.fields.get(i)));
    let currency = extra("currency").unwrap_or_else(|| "USD".into());
    let currency = currency.to_ascii_uppercase();
    if !CURRENCIES.split(' ').any(|c| c == currency) {
        return Err(format!(
            "currency `{currency}` is unknown (ISO 4217: USD, EUR, CNY, MYR...)"
        ));
    }
    let mac = match extra("mac") {
        Some(m) => Some(normal_mac(&m).ok_or_else(|| format!("mac `{m}` is not a MAC address"))?),
        None => None,
    };
    Ok(AssetSpec {
        serial,
        maker,
        model,
        nameplate_ghs,
        nameplate_w,
        origin,
        hts_code,
        price,
        currency,
        order_id,
        ordered_on,
        firmware: extra("firmware"),
        mac,
        control_board: extra("control_board"),
        psu: extra("psu"),
        hash_boards: extra("hash_boards")
            .map(|b| {
                b.split([' ', ';'])
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default(),
    })
}

/// Every row of an `assets.csv`, or every bad one. A serial twice in one file is refused
/// (the second names the first's line).
pub fn parse_assets(
    text: &str,
    tariffs: &Schedule,
) -> Result<Vec<(usize, AssetSpec)>, ImportErrors> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    read_rows(
        text,
        |h| {
            check_header(h, &ASSET_COLUMNS)
                .map(|x| x.into_iter().collect::<HashMap<String, usize>>())
                .map_err(|e| e.reason)
        },
        |extras, r| {
            let a = asset_row(r, extras, tariffs)?;
            match seen.insert(a.serial.clone(), r.line) {
                Some(first) => Err(format!("serial `{}` is also on line {first}", a.serial)),
                None => Ok(a),
            }
        },
    )
    .map_err(ImportErrors::from)
}

impl EventSpec {
    /// The event with its fields typed: a known event, an ISO date, a fee that is a
    /// non-negative amount (and only on a customs hold).
    pub fn check(&self) -> Result<CheckedEvent, String> {
        let clean = |s: &Option<String>| {
            s.as_deref()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        for f in [&self.place, &self.shipment, &self.reason, &self.note]
            .into_iter()
            .flatten()
        {
            if f.len() > MAX_FIELD {
                return Err(format!("a field is longer than {MAX_FIELD} bytes"));
            }
        }
        let serial = self.serial.trim();
        if serial.is_empty() {
            return Err("`serial` is empty".into());
        }
        let event: Event = self.event.trim().parse().map_err(|e| format!("{e}"))?;
        let date: Date = self.date.trim().parse().map_err(|e| format!("date: {e}"))?;
        let fee = match clean(&self.fee_usd_per_unit_day) {
            None => None,
            Some(f) => {
                let fee = Usd::parse_non_negative(&f)
                    .map_err(|e| format!("fee_usd_per_unit_day: {e}"))?;
                if event != Event::CustomsHold {
                    return Err(format!(
                        "fee_usd_per_unit_day is for customs_hold events, not {event}"
                    ));
                }
                Some(fee)
            }
        };
        Ok(CheckedEvent {
            serial: serial.to_owned(),
            event,
            date,
            place: clean(&self.place),
            shipment: clean(&self.shipment),
            reason: clean(&self.reason),
            fee,
            note: clean(&self.note),
        })
    }
}

/// Every row of an `events.csv` typed on its own, or every bad one (transitions are checked
/// against the register by [`Track::apply`]).
pub fn parse_events(text: &str) -> Result<Vec<(usize, CheckedEvent)>, ImportErrors> {
    read_rows(
        text,
        |h| check_header(h, &EVENT_COLUMNS).map_err(|e| e.reason),
        |_, r| {
            if r.fields.len() < EVENT_COLUMNS.len() {
                return Err(format!(
                    "{} field(s), the header has at least {}",
                    r.fields.len(),
                    EVENT_COLUMNS.len()
                ));
            }
            let f = |i: usize| field(r.fields.get(i));
            EventSpec {
                serial: f(0).unwrap_or_default(),
                event: f(1).unwrap_or_default(),
                date: f(2).unwrap_or_default(),
                place: f(3),
                shipment: f(4),
                reason: f(5),
                fee_usd_per_unit_day: f(6),
                note: f(7),
            }
            .check()
        },
    )
    .map_err(ImportErrors::from)
}

/// The first date a machine reached each stage.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Milestones {
    pub produced: Option<Date>,
    pub shipped: Option<Date>,
    pub held: Option<Date>,
    pub released: Option<Date>,
    pub delivered: Option<Date>,
    pub deployed: Option<Date>,
    pub retired: Option<Date>,
}

/// A customs hold: opened by `customs_hold`, closed by `customs_release` (or `retired`:
/// seized).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hold {
    pub asset_id: i64,
    /// The `customs_hold` event's number in the machine's life.
    pub seq: i32,
    pub shipment: Option<String>,
    pub reason: Option<String>,
    pub place: Option<String>,
    pub start: Date,
    pub end: Option<Date>,
    /// Storage per unit per day; `None`: the rate card's.
    pub fee: Option<Usd>,
}

/// A repair ticket: opened by `failed` (from an alert, by hand, or a file), sent to a
/// centre by `repair_sent`, closed by `repair_back`, an on-site fix (`deployed`) or
/// `retired`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Repair {
    pub asset_id: i64,
    /// The `failed` event's number.
    pub seq: i32,
    pub opened: Date,
    /// The fault kind (`bad_chips`, `board_gone`, `psu`...): the `failed` event's reason.
    pub fault: String,
    pub board: Option<u8>,
    /// Chip positions on the board, as the alert or the technician gives them.
    pub chips: Option<String>,
    /// The chip map, an alert's evidence, a technician's note.
    pub evidence: Option<String>,
    /// The triage steps taken, `; `-separated (`reseat: fault stayed; board test: fail`).
    pub triage: Option<String>,
    pub centre: Option<String>,
    pub shipment: Option<String>,
    pub sent: Option<Date>,
    /// Back in service.
    pub back: Option<Date>,
    /// `on_site`, `rma` or `retired` once closed.
    pub outcome: Option<&'static str>,
}

/// A machine's place once deployed: `site/row/rack/position` (as much of it as is given).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Position {
    pub site: Option<String>,
    pub row: Option<String>,
    pub rack: Option<String>,
    pub position: Option<String>,
}

impl Position {
    pub fn parse(place: &str) -> Position {
        let mut parts = place.split('/').map(|p| {
            let p = p.trim();
            (!p.is_empty()).then(|| p.to_owned())
        });
        Position {
            site: parts.next().flatten(),
            row: parts.next().flatten(),
            rack: parts.next().flatten(),
            position: parts.next().flatten(),
        }
    }
}

/// What the register knows of one machine's life.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Track {
    pub id: i64,
    pub state: State,
    /// The last event's name (`ordered` before any) and date.
    pub last_event: String,
    pub last_on: Date,
    /// Events so far.
    pub seq: i32,
    pub milestones: Milestones,
    /// The last shipment it travelled in.
    pub shipment: Option<String>,
    pub position: Position,
    pub open_hold: Option<Hold>,
    pub open_repair: Option<Repair>,
}

/// What an event changed besides the track: holds and repairs opened, updated or closed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Effects {
    pub hold: Option<Hold>,
    pub repair: Option<Repair>,
}

impl Track {
    /// A machine just ordered.
    pub fn ordered(id: i64, on: Date) -> Track {
        Track {
            id,
            state: State::Ordered,
            last_event: "ordered".into(),
            last_on: on,
            seq: 0,
            milestones: Milestones::default(),
            shipment: None,
            position: Position::default(),
            open_hold: None,
            open_repair: None,
        }
    }

    /// Runs `e` through the lifecycle; on success the track moves on and the holds and
    /// repairs it touched come back (to be written), on refusal nothing changes.
    pub fn apply(&mut self, e: &CheckedEvent) -> Result<Effects, lifecycle::Refused> {
        let from = self.state;
        let to = lifecycle::step(from, (&self.last_event, self.last_on), e.event, e.date)?;
        if from == State::InRepair {
            let held = self.open_hold.is_some();
            let why = match e.event {
                Event::CustomsHold if held => Some("is held by customs already"),
                Event::CustomsRelease if !held => Some("is not held by customs"),
                Event::RepairBack if held => {
                    Some("is still held by customs (record its customs_release first)")
                }
                _ => None,
            };
            if let Some(why) = why {
                return Err(lifecycle::Refused::Rma {
                    event: e.event,
                    why,
                });
            }
        }
        // An RMA shipment's hold is the repair's, not a stage of the machine's delivery.
        let rma = from == State::InRepair;
        self.state = to;
        self.seq += 1;
        self.last_event = e.event.name().to_owned();
        self.last_on = e.date;
        let m = &mut self.milestones;
        let first = |slot: &mut Option<Date>| {
            slot.get_or_insert(e.date);
        };
        let mut fx = Effects::default();
        match e.event {
            Event::Produced => first(&mut m.produced),
            Event::Shipped => {
                first(&mut m.shipped);
                if e.shipment.is_some() {
                    self.shipment.clone_from(&e.shipment);
                }
            }
            Event::CustomsHold => {
                if !rma {
                    first(&mut m.held);
                }
                let shipment = if rma {
                    self.open_repair.as_ref().and_then(|r| r.shipment.clone())
                } else {
                    self.shipment.clone()
                };
                let hold = Hold {
                    asset_id: self.id,
                    seq: self.seq,
                    shipment: e.shipment.clone().or(shipment),
                    reason: e.reason.clone(),
                    place: e.place.clone(),
                    start: e.date,
                    end: None,
                    fee: e.fee,
                };
                self.open_hold = Some(hold.clone());
                fx.hold = Some(hold);
            }
            Event::CustomsRelease => {
                if !rma {
                    first(&mut m.released);
                }
                fx.hold = self.open_hold.take().map(|mut h| {
                    h.end = Some(e.date);
                    h
                });
            }
            Event::Delivered => first(&mut m.delivered),
            Event::Deployed => {
                first(&mut m.deployed);
                if let Some(p) = &e.place {
                    self.position = Position::parse(p);
                }
                if from == State::Failed {
                    fx.repair = self.open_repair.take().map(|mut r| {
                        r.back = Some(e.date);
                        r.outcome = Some("on_site");
                        r
                    });
                }
            }
            Event::Failed => {
                let repair = Repair {
                    asset_id: self.id,
                    seq: self.seq,
                    opened: e.date,
                    fault: e.reason.clone().unwrap_or_else(|| "unknown".into()),
                    board: None,
                    chips: None,
                    evidence: e.note.clone(),
                    triage: None,
                    centre: None,
                    shipment: None,
                    sent: None,
                    back: None,
                    outcome: None,
                };
                self.open_repair = Some(repair.clone());
                fx.repair = Some(repair);
            }
            Event::RepairSent => {
                if let Some(r) = &mut self.open_repair {
                    r.centre.clone_from(&e.place);
                    r.shipment.clone_from(&e.shipment);
                    r.sent = Some(e.date);
                    fx.repair = Some(r.clone());
                }
            }
            Event::RepairBack => {
                fx.repair = self.open_repair.take().map(|mut r| {
                    r.back = Some(e.date);
                    r.outcome = Some("rma");
                    r
                });
            }
            Event::Retired => {
                first(&mut m.retired);
                fx.hold = self.open_hold.take().map(|mut h| {
                    h.end = Some(e.date);
                    h
                });
                fx.repair = self.open_repair.take().map(|mut r| {
                    r.outcome = Some("retired");
                    r
                });
            }
        }
        Ok(fx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule() -> Schedule {
        Schedule::builtin()
    }

    const HEADER: &str = "serial,maker,model,nameplate_ths,nameplate_w,origin,hts_code,price_usd,order_id,ordered_on";

    #[test]
    fn good_assets_and_their_extras() {
        let text = format!(
            "{HEADER},currency,mac,hash_boards,colour\n\
             S1,Bitmain,S21 Pro,234,3510,CN,8543.70.99,4200.50,PO-1,2025-01-02,usd,AA-BB-CC-00-11-22,HB1 HB2;HB3,red\n\
             S2,MicroBT,M60S,186.5,3422,my,8543.70.99,3000,PO-2,2025-01-03,,,,\n"
        );
        let rows = parse_assets(&text, &schedule()).unwrap();
        assert_eq!(rows.len(), 2);
        let (line, a) = &rows[0];
        assert_eq!(*line, 2);
        assert_eq!(a.nameplate_ghs, 234_000);
        assert_eq!(a.price.cents(), 420_050);
        assert_eq!(a.currency, "USD");
        assert_eq!(a.mac.as_deref(), Some("aa:bb:cc:00:11:22"));
        assert_eq!(a.hash_boards, ["HB1", "HB2", "HB3"]);
        assert_eq!(rows[1].1.nameplate_ghs, 186_500);
        assert_eq!(rows[1].1.origin.code(), "MY");
    }

    #[test]
    fn bad_assets_name_line_and_reason() {
        let bad = [
            (
                "S1,Bitmain,S21,234,3510,XX,8543.70.99,1,PO,2025-01-02",
                "origin `XX`",
            ),
            (
                "S1,Bitmain,S21,234,3510,CN,8471.50.01,1,PO,2025-01-02",
                "not in the tariff schedule",
            ),
            (
                "S1,Bitmain,S21,234,3510,CN,8543,1,PO,2025-01-02",
                "not a HTS code",
            ),
            (
                "S1,Bitmain,S21,234,3510,CN,8543.70.99,-1,PO,2025-01-02",
                "negative",
            ),
            (
                "S1,Bitmain,S21,0,3510,CN,8543.70.99,1,PO,2025-01-02",
                "nameplate_ths",
            ),
            (
                "S1,Bitmain,S21,234,3510,CN,8543.70.99,1,PO,2025-02-30",
                "ordered_on",
            ),
            ("S1,Bitmain,S21,234,3510,CN,8543.70.99,1,PO", "field(s)"),
            (
                ",Bitmain,S21,234,3510,CN,8543.70.99,1,PO,2025-01-02",
                "`serial` is empty",
            ),
        ];
        for (row, why) in bad {
            let e = parse_assets(&format!("{HEADER}\n{row}\n"), &schedule()).unwrap_err();
            assert_eq!(e.total, 1, "{row}");
            assert_eq!(e.errors[0].line, 2);
            assert!(e.errors[0].reason.contains(why), "{row}: {}", e.errors[0]);
        }
        let e = parse_assets(
            &format!("{HEADER},currency\nS1,B,S,1,1,US,8543.70.99,1,P,2025-01-01,DOGE\n"),
            &schedule(),
        )
        .unwrap_err();
        assert!(e.errors[0].reason.contains("currency `DOGE`"), "{e}");
        let e = parse_assets("serial,maker\nS1,B\n", &schedule()).unwrap_err();
        assert_eq!(e.errors[0].line, 1);
        let e = parse_assets(&format!("{HEADER}\nS1,B,S,1,1,US,8543.70.99,1,P,2025-01-01\nS1,B,S,1,1,US,8543.70.99,1,P,2025-01-01\n"), &schedule()).unwrap_err();
        assert_eq!(e.errors[0].line, 3);
        assert!(e.errors[0].reason.contains("also on line 2"));
    }

    #[test]
    fn events_parse_and_refuse() {
        let head = EVENT_COLUMNS.join(",");
        let ok = parse_events(&format!(
            "{head}\nS1,customs_hold,2025-02-01,LA port,SHP-1,FCC,2.50,\nS1,shipped,2025-01-01,,,,,\"a, note\"\n"
        ))
        .unwrap();
        assert_eq!(ok[0].1.fee, Some(Usd::parse("2.5").unwrap()));
        assert_eq!(ok[1].1.note.as_deref(), Some("a, note"));
        for (row, why) in [
            ("S1,shiped,2025-01-01,,,,,", "unknown event `shiped`"),
            ("S1,customs_hold,2025-01-01,,,,-1,", "negative"),
            ("S1,shipped,2025-01-01,,,,1,", "for customs_hold events"),
            ("S1,shipped,01/02/2025,,,,,", "date"),
            ("S1,shipped,2025-01-01", "field(s)"),
        ] {
            let e = parse_events(&format!("{head}\n{row}\n")).unwrap_err();
            assert!(e.errors[0].reason.contains(why), "{row}: {}", e.errors[0]);
            assert_eq!(e.errors[0].line, 2);
        }
    }

    #[test]
    fn a_track_opens_and_closes_holds_and_repairs() {
        let d = |s: &str| s.parse::<Date>().unwrap();
        let ev = |event: Event, date: &str, place: Option<&str>| CheckedEvent {
            serial: "S1".into(),
            event,
            date: d(date),
            place: place.map(str::to_owned),
            shipment: Some("SHP-9".into()),
            reason: Some("FCC".into()),
            fee: None,
            note: None,
        };
        let mut t = Track::ordered(7, d("2025-01-01"));
        t.apply(&ev(Event::Produced, "2025-01-05", None)).unwrap();
        t.apply(&ev(Event::Shipped, "2025-01-10", None)).unwrap();
        let fx = t
            .apply(&ev(Event::CustomsHold, "2025-02-01", None))
            .unwrap();
        assert_eq!(fx.hold.unwrap().start, d("2025-02-01"));
        let fx = t
            .apply(&ev(Event::CustomsRelease, "2025-07-01", None))
            .unwrap();
        assert_eq!(fx.hold.unwrap().end, Some(d("2025-07-01")));
        assert!(t.open_hold.is_none());
        t.apply(&ev(Event::Delivered, "2025-07-05", None)).unwrap();
        t.apply(&ev(Event::Deployed, "2025-07-06", Some("tx1/R2/K3/4")))
            .unwrap();
        assert_eq!(t.position.rack.as_deref(), Some("K3"));
        let fx = t.apply(&ev(Event::Failed, "2025-08-01", None)).unwrap();
        assert_eq!(fx.repair.unwrap().fault, "FCC");
        let fx = t.apply(&ev(Event::Deployed, "2025-08-03", None)).unwrap();
        let r = fx.repair.unwrap();
        assert_eq!(
            (r.back, r.outcome),
            (Some(d("2025-08-03")), Some("on_site"))
        );
        let before = t.clone();
        let e = t
            .apply(&ev(Event::Delivered, "2025-08-04", None))
            .unwrap_err();
        assert!(e.to_string().contains("the machine is deployed"), "{e}");
        let e = t.apply(&ev(Event::Failed, "2025-08-02", None)).unwrap_err();
        assert!(e.to_string().contains("backwards"), "{e}");
        assert_eq!(t, before, "a refused event changes nothing");
        assert_eq!(t.milestones.shipped, Some(d("2025-01-10")));
        assert_eq!(t.shipment.as_deref(), Some("SHP-9"));
        // An RMA: the board goes to an overseas centre and customs holds it on its way back.
        t.apply(&ev(Event::Failed, "2025-09-01", None)).unwrap();
        let rma = |event, date| CheckedEvent {
            shipment: Some("RMA-7".into()),
            ..ev(event, date, Some("Shenzhen CN"))
        };
        t.apply(&rma(Event::RepairSent, "2025-09-02")).unwrap();
        let e = t
            .apply(&rma(Event::CustomsRelease, "2025-10-01"))
            .unwrap_err();
        assert!(e.to_string().contains("is not held"), "{e}");
        let fx = t
            .apply(&ev(Event::CustomsHold, "2025-10-01", None))
            .unwrap();
        let hold = fx.hold.unwrap();
        assert_eq!(
            hold.shipment.as_deref(),
            Some("SHP-9"),
            "the event's shipment"
        );
        assert_eq!(t.state, State::InRepair);
        let before = t.clone();
        let e = t.apply(&rma(Event::RepairBack, "2025-10-05")).unwrap_err();
        assert!(e.to_string().contains("still held by customs"), "{e}");
        assert_eq!(t, before);
        t.apply(&rma(Event::CustomsRelease, "2025-10-09")).unwrap();
        let fx = t.apply(&rma(Event::RepairBack, "2025-10-12")).unwrap();
        assert_eq!(fx.repair.unwrap().outcome, Some("rma"));
        assert_eq!(
            (t.milestones.held, t.milestones.released),
            (Some(d("2025-02-01")), Some(d("2025-07-01"))),
            "the RMA's hold is not a stage of the delivery"
        );
    }

    proptest::proptest! {
        /// Any sequence of events on any days: a refused event changes nothing, an accepted
        /// one moves the track exactly as `lifecycle::next` says, dates never go backwards,
        /// and at most one hold and one repair are open at a time.
        #[test]
        fn random_lives_follow_the_lifecycle(
            steps in proptest::collection::vec((0usize..10, -5i32..40), 0..60)
        ) {
            let start = Date::from_days(20_000);
            let mut t = Track::ordered(1, start);
            let mut day = start;
            for (e, gap) in steps {
                let event = Event::ALL[e];
                let date = day.plus(gap);
                let ev = CheckedEvent {
                    serial: "S".into(),
                    event,
                    date,
                    place: Some("a/b/c/d".into()),
                    shipment: Some("X".into()),
                    reason: None,
                    fee: None,
                    note: None,
                };
                let before = t.clone();
                match t.apply(&ev) {
                    Ok(_) => {
                        proptest::prop_assert_eq!(Ok(t.state), lifecycle::next(before.state, event));
                        proptest::prop_assert!(date >= before.last_on);
                        proptest::prop_assert_eq!(t.seq, before.seq + 1);
                        day = date;
                    }
                    Err(_) => proptest::prop_assert_eq!(&t, &before),
                }
                if t.state != State::InRepair {
                    // (In repair, the RMA shipment may be held.)
                    proptest::prop_assert_eq!(t.open_hold.is_some(), t.state == State::CustomsHold);
                }
                proptest::prop_assert_eq!(
                    t.open_repair.is_some(),
                    matches!(t.state, State::Failed | State::InRepair)
                );
            }
        }
    }
}
