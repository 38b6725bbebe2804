//! The demo operation `hashforge up` seeds its register with, as the `assets.csv` /
//! `events.csv` an operator would import: two orders from two origins (Bitmain's US factory
//! and Malaysia), the Malaysian order's first shipment held by customs for 12 days over its
//! classification and then deployed, its second shipment (40 T21s) held for a UFLPA review
//! since 47 days before `today` and still accruing storage, the machines of a simulated
//! fleet and the emulated ones mining in racks, and a few repairs already done (one at a US
//! repair centre, one shipped to China whose return customs held, one fixed on site). Dates count back from
//! `today`, so the open hold keeps accruing day by day on a register that persists.
//!
//! Prices are round demo figures of the 2025 market, not quotes.

use std::fmt::Write as _;

use crate::date::Date;
use crate::sim::{Kind, SimFleet};

/// A machine of the operation that is not simulated: an emulated one mining (`hashforge
/// up`'s own miner).
#[derive(Clone, Debug)]
pub struct OwnMachine {
    pub serial: String,
    pub kind: Kind,
}

/// Where a demo order comes from.
struct Order {
    id: &'static str,
    origin: &'static str,
    ordered: i32,
    produced: i32,
    shipped: i32,
    shipment: &'static str,
    /// (start, end, reason, storage fee a unit a day), days before today.
    hold: Option<(i32, Option<i32>, &'static str, &'static str)>,
    delivered: Option<i32>,
    deployed: Option<i32>,
}

const US: Order = Order {
    id: "PO-US-004",
    origin: "US",
    ordered: 150,
    produced: 122,
    shipped: 118,
    shipment: "US-TRUCK-0412",
    hold: None,
    delivered: Some(115),
    deployed: Some(112),
};

const MY_FIRST: Order = Order {
    id: "PO-MY-017",
    origin: "MY",
    ordered: 170,
    produced: 140,
    shipped: 134,
    shipment: "MY-SEA-0093",
    hold: Some((104, Some(92), "classification (8543.70 vs 8471)", "3.00")),
    delivered: Some(88),
    deployed: Some(85),
};

const MY_HELD: Order = Order {
    id: "PO-MY-017",
    origin: "MY",
    ordered: 170,
    produced: 90,
    shipped: 76,
    shipment: "MY-SEA-0107",
    hold: Some((47, None, "UFLPA review", "5.00")),
    delivered: None,
    deployed: None,
};

/// Machines in the held shipment.
pub const HELD_UNITS: usize = 40;
/// The held shipment's id.
pub const HELD_SHIPMENT: &str = "MY-SEA-0107";

fn maker(kind: Kind) -> &'static str {
    match kind {
        Kind::M60s => "MicroBT",
        Kind::Avalon => "Canaan",
        Kind::Bitaxe => "Bitaxe",
        _ => "Bitmain",
    }
}

/// Round demo prices, USD a unit.
fn price(kind: Kind) -> u32 {
    match kind {
        Kind::S21Pro | Kind::Hashforge => 3_500,
        Kind::S21 => 2_800,
        Kind::T21 => 2_300,
        Kind::S19Xp => 1_000,
        Kind::M60s => 2_500,
        Kind::Avalon => 700,
        Kind::Bitaxe => 150,
    }
}

fn model(kind: Kind) -> String {
    let n = kind.nameplate();
    match kind {
        Kind::Avalon => "Avalon A1246".into(),
        Kind::M60s => "Whatsminer M60S".into(),
        Kind::Bitaxe => "Bitaxe Gamma".into(),
        _ => format!("Antminer {}", n.model),
    }
}

struct Files {
    assets: String,
    events: String,
    today: Date,
}

impl Files {
    fn day(&self, before: i32) -> Date {
        Date::from_days(self.today.days() - before)
    }

    fn asset(&mut self, serial: &str, kind: Kind, order: &Order, mac: &str) {
        let n = kind.nameplate();
        let _ = writeln!(
            self.assets,
            "{serial},{},{},{},{},{},8543.70.99,{},{},{},USD,,{mac}",
            maker(kind),
            model(kind),
            n.nominal_ths,
            n.nominal_watts,
            order.origin,
            price(kind),
            order.id,
            self.day(order.ordered),
        );
    }

    fn event(&mut self, serial: &str, event: &str, before: i32, place: &str, rest: &str) {
        let _ = writeln!(
            self.events,
            "{serial},{event},{},{place},{rest}",
            self.day(before)
        );
    }

    /// The order's life up to deployment at `place` (or as far as it got).
    fn life(&mut self, serial: &str, order: &Order, place: &str) {
        let s = order.shipment;
        self.event(serial, "produced", order.produced, "", ",,,");
        self.event(serial, "shipped", order.shipped, "", &format!("{s},,,"));
        if let Some((start, end, reason, fee)) = order.hold {
            let port = if order.origin == "US" {
                ""
            } else {
                "Port of Los Angeles"
            };
            self.event(
                serial,
                "customs_hold",
                start,
                port,
                &format!("{s},{reason},{fee},"),
            );
            if let Some(end) = end {
                self.event(serial, "customs_release", end, port, &format!("{s},,,"));
            }
        }
        if let Some(d) = order.delivered {
            self.event(serial, "delivered", d, "", ",,,");
        }
        if let Some(d) = order.deployed {
            self.event(serial, "deployed", d, place, ",,,");
        }
    }
}

/// (assets.csv, events.csv) for the demo operation: `fleet`'s machines (at `site`, in the
/// racks its positions give) and `own`, deployed; the held shipment; three past repairs.
pub fn csvs(
    fleet: Option<&SimFleet>,
    own: &[OwnMachine],
    site: &str,
    today: Date,
) -> (String, String) {
    let mut f = Files {
        assets: format!("{},currency,firmware,mac\n", super::ASSET_COLUMNS.join(",")),
        events: format!("{}\n", super::EVENT_COLUMNS.join(",")),
        today,
    };
    for (i, m) in own.iter().enumerate() {
        f.asset(&m.serial, m.kind, &US, "");
        f.life(&m.serial, &US, &format!("{site}/R0/K0/{}", i + 1));
    }
    let mut deployed: Vec<(String, &Order)> = Vec::new();
    if let Some(fleet) = fleet {
        for i in 0..fleet.len() {
            let kind = fleet.kind(i);
            // Bitmain's machines alternate between the two orders; the other makers'
            // come with the Malaysian one.
            let order = if maker(kind) == "Bitmain" && i % 2 == 0 {
                &US
            } else {
                &MY_FIRST
            };
            let serial = fleet.serial(i);
            let (_, row, rack, pos) = fleet.position(i);
            f.asset(&serial, kind, order, &fleet.mac(i));
            f.life(&serial, order, &format!("{site}/R{row}/K{rack}/{pos}"));
            deployed.push((serial, order));
        }
    }
    for n in 1..=HELD_UNITS {
        let serial = format!("JYZZT1D{n:06}");
        f.asset(&serial, Kind::T21, &MY_HELD, "");
        f.life(&serial, &MY_HELD, "");
    }
    // Past repairs, on the first simulated machines of each order.
    let us: Vec<&String> = deployed
        .iter()
        .filter(|d| d.1.origin == "US")
        .map(|d| &d.0)
        .collect();
    let my: Vec<&String> = deployed
        .iter()
        .filter(|d| d.1.origin == "MY")
        .map(|d| &d.0)
        .collect();
    if let Some(s) = us.first() {
        let s = s.as_str();
        f.event(
            s,
            "failed",
            60,
            "",
            ",bad_chips,,board 1: chip 30 silent or bad",
        );
        f.event(
            s,
            "repair_sent",
            58,
            "Bitmain repair centre Houston US",
            "RMA-0101,,,",
        );
        f.event(s, "repair_back", 44, "", "RMA-0101,,,");
    }
    if let Some(s) = my.first() {
        let s = s.as_str();
        f.event(
            s,
            "failed",
            70,
            "",
            ",missing_chips,,board 2: 71 of 108 chips answer",
        );
        f.event(
            s,
            "repair_sent",
            68,
            "Bitmain repair centre Shenzhen CN",
            "RMA-0088,,,",
        );
        // On its way back, customs holds the RMA shipment too.
        f.event(
            s,
            "customs_hold",
            40,
            "Port of Los Angeles",
            "RMA-0088,FCC authorisation,3.00,",
        );
        f.event(
            s,
            "customs_release",
            34,
            "Port of Los Angeles",
            "RMA-0088,,,",
        );
        f.event(s, "repair_back", 31, "", "RMA-0088,,,");
    }
    if let Some(s) = us.get(1) {
        let s = s.as_str();
        f.event(s, "failed", 20, "", ",board_gone,,board 0 gone");
        // Reseated on site: back in the rack two days later.
        f.event(s, "deployed", 18, "", ",,,reseated the data cable");
    }
    (f.assets, f.events)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::assets::{parse_assets, parse_events};
    use crate::sim::FleetSpec;
    use crate::tariffs::Schedule;

    #[test]
    fn the_demo_files_parse() {
        let fleet = SimFleet::new(FleetSpec::new(50, std::net::Ipv4Addr::new(127, 16, 0, 1)));
        let own = [OwnMachine {
            serial: "HFUP0001".into(),
            kind: Kind::Hashforge,
        }];
        let today: Date = "2026-12-01".parse().unwrap();
        let (a, e) = csvs(Some(&fleet), &own, "local", today);
        let assets = parse_assets(&a, &Schedule::builtin()).unwrap();
        assert_eq!(assets.len(), 1 + 50 + HELD_UNITS);
        let events = parse_events(&e).unwrap();
        assert!(events.len() > 6 * 51, "{}", events.len());
        // Every event follows the lifecycle (the import runs the same `Track::apply`).
        let mut tracks: std::collections::HashMap<String, crate::assets::Track> = assets
            .iter()
            .enumerate()
            .map(|(i, (_, a))| {
                let t = crate::assets::Track::ordered(i as i64, a.ordered_on);
                (a.serial.clone(), t)
            })
            .collect();
        let (mut holds, mut repairs) = (Vec::new(), Vec::new());
        for (line, ev) in &events {
            let t = tracks.get_mut(&ev.serial).unwrap();
            let fx = t.apply(ev).unwrap_or_else(|e| panic!("line {line}: {e}"));
            holds.extend(fx.hold);
            repairs.extend(fx.repair);
        }
        let open_holds = tracks.values().filter(|t| t.open_hold.is_some()).count();
        assert_eq!(open_holds, HELD_UNITS);
        let deployed = tracks
            .values()
            .filter(|t| t.state == crate::lifecycle::State::Deployed)
            .count();
        assert_eq!(deployed, 51);
        assert!(tracks.values().all(|t| t.open_repair.is_none()));
        assert!(holds
            .iter()
            .any(|h| h.shipment.as_deref() == Some("RMA-0088")));
    }
}
