//! The contracts held still: golden replies for a fixed status (stock Antminer's shapes,
//! key order included), round trips from a status through the wire and back, and the
//! parsers fed random bytes.
//!
//! To accept a deliberate change of a golden reply: `HASHFORGE_BLESS=1 cargo test -p
//! hashforge-minerapi --test contracts`, then read the diff.

use hashforge_core::{Celsius, HashRate};
use hashforge_minerapi::cgminer::{decode_reply, Request, Stamp};
use hashforge_minerapi::{
    antminer_web, bmminer, ChainState, ChainStatus, ChipHealth, Identity, Make, MinerStatus,
    PoolState, PoolStatus, Rates, Shares,
};
use proptest::prelude::*;
use serde_json::Value;

fn chain(index: usize, chips: Vec<ChipHealth>, ghs: f64, temp: Option<f64>) -> ChainStatus {
    ChainStatus {
        index,
        state: ChainState::Running,
        expected_chips: Some(65),
        chips,
        hashrate: Rates {
            last_5s: HashRate::from_ghs(ghs),
            ..Rates::default()
        },
        ideal: Some(HashRate::from_ghs(78000.0)),
        hardware_errors: 3,
        board_temp: None,
        chip_temp: temp.map(Celsius),
        serial: None,
        frequency_mhz: None,
    }
}

/// An S21 Pro with a silent chip at position 30 of board 0, a board that found only 40
/// chips, and a board that failed.
fn example() -> MinerStatus {
    let mut board0 = vec![ChipHealth::Ok; 65];
    board0[30] = ChipHealth::Silent;
    let mut failed = chain(2, Vec::new(), 0.0, None);
    failed.state = ChainState::Failed("found 0 of 65 chips".into());
    MinerStatus {
        identity: Identity {
            make: Make::Antminer,
            model: "S21 Pro".into(),
            firmware: "hashforge 0.1.0".into(),
            serial: Some("JYZZA1BBCCDD0001".into()),
            mac: Some("02:fc:00:00:00:01".into()),
            hostname: Some("rack4-pos17".into()),
        },
        when: 1_790_000_000,
        uptime_secs: 3600,
        hashrate: Rates {
            last_5s: HashRate::from_ths(150.25),
            last_1m: Some(HashRate::from_ths(151.0)),
            last_15m: None,
            average: Some(HashRate::from_ths(149.5)),
        },
        ideal: Some(HashRate::from_ths(234.0)),
        power_w: Some(3510.0),
        shares: Shares {
            accepted: 1200,
            rejected: 3,
            stale: 2,
            lost: 1,
            accepted_difficulty: 1200.0 * 65536.0,
            rejected_difficulty: 3.0 * 65536.0,
            stale_difficulty: 2.0 * 65536.0,
        },
        diff1_work: 78_643_200.0,
        hardware_errors: 6,
        best_share: 123_456_789.0,
        found_blocks: 0,
        chains: vec![
            chain(0, board0, 75_125.0, Some(68.5)),
            chain(1, vec![ChipHealth::Ok; 40], 75_125.0, Some(70.0)),
            failed,
        ],
        fans_rpm: vec![6120, 6060, 0, 6180],
        pools: vec![
            PoolStatus {
                index: 0,
                url: "stratum+tcp://pool.example:3333".into(),
                user: "farm.rack4pos17".into(),
                state: PoolState::Alive,
                active: true,
                shares: Shares {
                    accepted: 1200,
                    ..Shares::default()
                },
                difficulty: Some(65536.0),
                jobs: 240,
                best_share: 123_456_789.0,
                last_share_time: 1_789_999_990,
                last_share_difficulty: 65536.0,
                get_failures: 0,
                bad_work: 0,
            },
            PoolStatus {
                index: 1,
                url: "stratum+tcp://backup.example:3333".into(),
                user: "farm.rack4pos17".into(),
                state: PoolState::Dead,
                active: false,
                shares: Shares::default(),
                difficulty: None,
                jobs: 0,
                best_share: 0.0,
                last_share_time: 0,
                last_share_difficulty: 0.0,
                get_failures: 4,
                bad_work: 0,
            },
        ],
        messages: vec![],
    }
}

/// Compares with the stored reply byte for byte (key order included), one line per file.
fn golden(name: &str, got: &str) {
    // The manifest directory at run time (see crates/sha256d/tests/agreement.rs).
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo test sets CARGO_MANIFEST_DIR");
    let path = format!("{dir}/tests/golden/{name}");
    serde_json::from_str::<Value>(got).expect("a reply is JSON");
    let pretty = format!("{got}\n");
    if std::env::var_os("HASHFORGE_BLESS").is_some() {
        std::fs::write(&path, &pretty).unwrap();
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{path}: {e} (HASHFORGE_BLESS=1 writes it)"));
    assert_eq!(pretty, want, "{name} changed: a contract with fleet tools");
}

#[test]
fn bmminer_replies_keep_stock_antminer_shapes() {
    let s = example();
    for cmd in ["version", "summary", "stats", "pools", "devs", "devdetails"] {
        golden(
            &format!("bmminer_{cmd}.json"),
            &bmminer::read_command(cmd, &s).json(),
        );
    }
    for page in [
        "get_system_info",
        "summary",
        "stats",
        "pools",
        "get_miner_conf",
    ] {
        let body = antminer_web::render(page, &s).unwrap().to_string();
        golden(&format!("web_{page}.json"), &body);
    }
}

#[test]
fn what_stock_shapes_say_about_unknowns_and_failures() {
    let s = example();
    let stats: Value = serde_json::from_str(&bmminer::read_command("stats", &s).json()).unwrap();
    let st = &stats["STATS"][1];
    // A silent chip is an `x`, counted among the chips that answered.
    assert_eq!(st["chain_acn1"], 65);
    assert_eq!(
        st["chain_acs1"]
            .as_str()
            .unwrap()
            .chars()
            .filter(|c| *c == 'x')
            .count(),
        1
    );
    assert_eq!(st["chain_acn2"], 40);
    // No board sensor: no `tempN`; a failed chain has no chip temperature either.
    assert!(
        st.get("temp1").is_none() && st.get("temp2_3").is_none(),
        "{st}"
    );
    assert_eq!(st["temp2_1"], 68.5);
    let devs: Value = serde_json::from_str(&bmminer::read_command("devs", &s).json()).unwrap();
    assert_eq!(devs["DEVS"][2]["Status"], "Dead");
    assert!(devs["DEVS"][2].get("Temperature").is_none());
    assert_eq!(devs["DEVS"][0]["Status"], "Alive");
    let bad = bmminer::read_command("nonsense", &s).json();
    assert!(bad.contains("\"Code\":14"), "{bad}");
}

/// What a reader gets back from the cgminer API and the web CGI, with the other side's
/// rendering in between.
fn read_back(s: &MinerStatus) -> MinerStatus {
    let req = Request::new(bmminer::READ_ALL, "");
    let replies: Vec<_> = req
        .commands
        .iter()
        .map(|c| bmminer::read_command(c, s))
        .collect();
    let wire = req.join(&replies).into_bytes();
    let mut wire_nul = wire.clone();
    wire_nul.push(0);
    let v = decode_reply(&wire_nul).unwrap();
    let mut back = bmminer::read(&v, Some(65)).unwrap();
    let info = antminer_web::render("get_system_info", s).unwrap();
    antminer_web::read_system_info(&info, &mut back.identity);
    back
}

#[test]
fn a_reading_gets_back_what_the_status_said() {
    let s = example();
    let back = read_back(&s);
    assert_eq!(back.identity, s.identity);
    assert_eq!(back.uptime_secs, 3600);
    assert_eq!(back.chains.len(), 3);
    assert_eq!(back.chains[0].bad_positions(), vec![30]);
    assert_eq!(back.chains[1].chips_found(), 40);
    assert_eq!(back.chains[1].expected_chips, Some(65));
    assert!(matches!(back.chains[2].state, ChainState::Failed(_)));
    assert_eq!(back.chains[0].chip_temp, Some(Celsius(68.5)));
    assert_eq!(back.chains[0].board_temp, None);
    assert_eq!(back.fans_rpm, s.fans_rpm);
    assert_eq!(back.power_w, Some(3510.0));
    assert_eq!(
        back.pools[0].difficulty,
        Some(65540.0),
        "65.54K, as cgminer writes it"
    );
    assert_eq!(back.pools[1].state, PoolState::Dead);
    assert_eq!(
        back.active_pool().unwrap().url,
        "stratum+tcp://pool.example:3333"
    );
    assert_eq!(back.when, s.when);
}

fn health() -> impl Strategy<Value = ChipHealth> {
    prop_oneof![
        Just(ChipHealth::Ok),
        Just(ChipHealth::Bad),
        Just(ChipHealth::Silent)
    ]
}

prop_compose! {
    fn any_chain(index: usize)(
        chips in proptest::collection::vec(health(), 0..130),
        centi_ghs in 0u64..100_000_000,
        // 0 is "no sensor" in stock shapes, so a reading of exactly 0 °C cannot cross.
        temp in proptest::option::of(1u32..1500),
        hw in 0u64..1_000_000,
    ) -> ChainStatus {
        let mut c = chain(index, chips, centi_ghs as f64 / 100.0, temp.map(|t| t as f64 / 10.0));
        c.hardware_errors = hw;
        if c.chips.is_empty() && centi_ghs == 0 {
            c.state = ChainState::Failed("no chips found".into());
        }
        c
    }
}

prop_compose! {
    fn any_status()(
        chains in (0usize..5).prop_flat_map(|n| (0..n).map(any_chain).collect::<Vec<_>>()),
        fans in proptest::collection::vec(0u32..20_000, 0..6),
        accepted in 0u64..1 << 40,
        rejected in 0u64..1 << 20,
        uptime in 0u64..1 << 32,
        model in "[A-Z][0-9]{2}[a-z +]{0,6}",
        user in "[a-z0-9._]{1,20}",
        mac in proptest::option::of("[0-9a-f]{2}(:[0-9a-f]{2}){5}"),
    ) -> MinerStatus {
        let mut s = example();
        s.identity.model = model.trim().to_string();
        s.identity.mac = mac;
        s.chains = chains;
        s.fans_rpm = fans;
        s.shares.accepted = accepted;
        s.shares.rejected = rejected;
        s.uptime_secs = uptime;
        s.pools[0].user = user;
        s
    }
}

proptest! {
    #[test]
    fn round_trip_keeps_what_the_contract_carries(s in any_status()) {
        let back = read_back(&s);
        prop_assert_eq!(&back.identity.model, &s.identity.model);
        prop_assert_eq!(&back.identity.mac, &s.identity.mac);
        prop_assert_eq!(back.uptime_secs, s.uptime_secs);
        prop_assert_eq!(back.shares.accepted, s.shares.accepted);
        prop_assert_eq!(back.shares.rejected, s.shares.rejected);
        prop_assert_eq!(&back.fans_rpm, &s.fans_rpm);
        prop_assert_eq!(&back.pools[0].user, &s.pools[0].user);
        prop_assert_eq!(back.chains.len(), s.chains.len());
        for (b, c) in back.chains.iter().zip(&s.chains) {
            prop_assert_eq!(b.chips_found(), c.chips_found());
            prop_assert_eq!(b.bad_positions(), c.bad_positions());
            prop_assert_eq!(b.hardware_errors, c.hardware_errors);
            prop_assert_eq!(b.chip_temp, c.chip_temp);
            prop_assert_eq!(matches!(b.state, ChainState::Failed(_)), matches!(c.state, ChainState::Failed(_)));
            prop_assert!((b.hashrate.last_5s.as_ghs() - c.hashrate.last_5s.as_ghs()).abs() <= 0.005 + 1e-9);
        }
    }

    #[test]
    fn parsers_take_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        hashforge_minerapi::fuzzing::cgminer_request(&bytes);
        hashforge_minerapi::fuzzing::cgminer_reply(&bytes);
        hashforge_minerapi::fuzzing::digest_header(&bytes);
    }

    #[test]
    fn readers_take_any_json_in_the_right_envelope(
        keys in proptest::collection::vec(("[a-z_]{1,12}[0-9]?", any::<i32>()), 0..20)
    ) {
        // Sections whose fields have the wrong names or types read as unknowns, never a panic.
        let fields: serde_json::Map<String, Value> =
            keys.into_iter().map(|(k, v)| (k, Value::from(v))).collect();
        let obj = Value::Object(fields);
        let reply = serde_json::json!({
            "version": [{"VERSION": [obj]}],
            "summary": [{"SUMMARY": [obj]}],
            "stats": [{"STATS": [obj, obj]}],
            "pools": [{"POOLS": [obj]}],
        });
        let _ = bmminer::read(&reply, None);
    }
}

#[test]
fn stamps_are_the_statuses() {
    let s = example();
    let at: Stamp = bmminer::stamp(&s);
    assert_eq!(
        (at.when, at.description),
        (1_790_000_000, "hashforge 0.1.0")
    );
}
