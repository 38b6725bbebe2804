//! Synthetic `assets.csv` / `events.csv` for benchmarks and tests: makers in the network's
//! shares (82/15/2/1), origins per maker, shipments of 200 machines, a third of them held by
//! customs, and every machine failing and being repaired on site or by RMA; exactly
//! `events_per_asset` = 10 events each (seeded, so a run is repeatable).

use std::fmt::Write as _;

use crate::date::Date;

/// A seeded splitmix64.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Events each machine gets.
pub const EVENTS_PER_ASSET: usize = 10;

/// The serial of the synthetic fleet's machine `i`.
pub fn serial(i: usize) -> String {
    format!("SN{i:08}")
}

/// (assets.csv, events.csv) for `assets` machines.
pub fn csvs(assets: usize, seed: u64) -> (String, String) {
    let mut rng = Rng(seed);
    let mut a = String::with_capacity(assets * 90);
    let mut e = String::with_capacity(assets * EVENTS_PER_ASSET * 60);
    a.push_str("serial,maker,model,nameplate_ths,nameplate_w,origin,hts_code,price_usd,order_id,ordered_on\n");
    e.push_str("serial,event,date,place,shipment,reason,fee_usd_per_unit_day,note\n");
    let start = Date::from_ymd(2024, 1, 1).unwrap_or(Date::from_days(19_723));
    for i in 0..assets {
        let pick = rng.below(100);
        let (maker, model, ths, w, price, origins): (&str, &str, &str, u32, u32, &[&str]) =
            match pick {
                0..=81 => (
                    "Bitmain",
                    "S21 Pro",
                    "234",
                    3510,
                    4200,
                    &["CN", "MY", "MY", "ID", "TH", "US"],
                ),
                82..=96 => ("MicroBT", "M60S", "186", 3422, 3100, &["MY", "TH", "CN"]),
                97..=98 => ("Canaan", "A1466", "150", 3230, 2300, &["MY", "ID"]),
                _ => ("Auradine", "AT2880", "260", 5100, 5200, &["US"]),
            };
        let origin = origins[rng.below(origins.len() as u64) as usize];
        let shipment = format!("SHP-{}-{}", origin, i / 200);
        let ordered = start.plus((i / 200 % 400) as i32);
        let serial = serial(i);
        let _ = writeln!(
            a,
            "{serial},{maker},{model},{ths},{w},{origin},8543.70.99,{price},PO-{},{ordered}",
            i / 200
        );
        // A shipment's machines travel together: its dates come from the shipment's own
        // seeded draws; production varies per machine but ends before the shipment leaves.
        let mut ship_rng = Rng(seed ^ (i / 200) as u64 ^ (origin.as_bytes()[0] as u64) << 40);
        let produced = ordered.plus(ship_rng.below(60) as i32 + 5);
        let shipped = produced.plus(ship_rng.below(10) as i32 + 1);
        let held_on = shipped.plus(ship_rng.below(20) as i32 + 1);
        let released = held_on.plus(ship_rng.below(150) as i32 + 1);
        let held = origin != "US" && (i / 200) % 3 == 0;
        let delivered = if held { released } else { held_on }.plus(ship_rng.below(10) as i32 + 1);
        let line = |e: &mut String,
                    event: &str,
                    day: Date,
                    place: &str,
                    ship: &str,
                    reason: &str,
                    fee: &str| {
            let _ = writeln!(e, "{serial},{event},{day},{place},{ship},{reason},{fee},");
        };
        line(
            &mut e,
            "produced",
            produced.plus(-(rng.below(5) as i32)),
            "factory",
            "",
            "",
            "",
        );
        line(&mut e, "shipped", shipped, "factory", &shipment, "", "");
        if held {
            line(
                &mut e,
                "customs_hold",
                held_on,
                "LAX",
                &shipment,
                "FCC authorisation",
                "4.50",
            );
            line(
                &mut e,
                "customs_release",
                released,
                "LAX",
                &shipment,
                "",
                "",
            );
        }
        line(&mut e, "delivered", delivered, "tx1", &shipment, "", "");
        let mut day = delivered;
        #[allow(clippy::too_many_arguments)]
        let mut ev = |e: &mut String,
                      rng: &mut Rng,
                      event: &str,
                      gap: u64,
                      place: &str,
                      ship: &str,
                      reason: &str,
                      fee: &str| {
            day = day.plus(rng.below(gap) as i32 + 1);
            let _ = writeln!(e, "{serial},{event},{day},{place},{ship},{reason},{fee},");
        };
        let pos = format!("tx1/R{}/K{}/{}", i % 40, (i / 40) % 50, i % 20);
        ev(&mut e, &mut rng, "deployed", 7, &pos, "", "", "");
        let faults = ["bad_chips", "board_gone", "psu", "fan_failed"];
        let fault = faults[rng.below(4) as usize];
        ev(&mut e, &mut rng, "failed", 300, "", "", fault, "");
        if !held {
            ev(&mut e, &mut rng, "deployed", 3, &pos, "", "", "");
            ev(&mut e, &mut rng, "failed", 200, "", "", fault, "");
        }
        let centre = if rng.below(2) == 0 {
            "Bitmain US (Houston)"
        } else {
            "Bitmain Malaysia"
        };
        ev(
            &mut e,
            &mut rng,
            "repair_sent",
            5,
            centre,
            &format!("RMA-{i}"),
            "",
            "",
        );
        ev(
            &mut e,
            &mut rng,
            "repair_back",
            40,
            "tx1",
            &format!("RMA-{i}"),
            "",
            "",
        );
        ev(&mut e, &mut rng, "failed", 300, "", "", fault, "");
    }
    (a, e)
}
