//! The contracts held still: golden replies for a fixed status (stock Antminer's shapes,
//! key order included), round trips from a status through the wire and back, and the
//! parsers fed random bytes.
//!
//! The Whatsminer (btminer) and Avalon shapes follow what real firmware sends as recorded
//! in the readers' own fixtures: asic-rs 0.8.6 (`asic-rs-firmwares-whatsminer`
//! `src/test/json/v2/*.json`, an M-series on API 2.0.5 with firmware 20230803.11.REL;
//! `asic-rs-firmwares-avalonminer` `src/test/json/avalon_a_stats.json`, an A1246's `stats`,
//! and `version.json`) and pyasic's `tests/miners_tests/backends_tests/avalonminer_tests/
//! version_24102401_25462b2_9ddf522.py` (an A1566's `version`, `devs`, `pools`, `stats` in
//! firmware key order), and the Whatsminer API V2 reply shape (`STATUS` a string, `Code`
//! 131, `Msg` an object) that both readers check.
//!
//! To accept a deliberate change of a golden reply: `HASHFORGE_BLESS=1 cargo test -p
//! hashforge-minerapi --test contracts`, then read the diff.

use hashforge_core::{Celsius, HashRate};
use hashforge_minerapi::cgminer::{decode_reply, Request, Stamp};
use hashforge_minerapi::{
    antminer_web, avalon, bmminer, btminer, ChainState, ChainStatus, ChipHealth, Identity, Make,
    MinerStatus, PoolState, PoolStatus, Rates, Shares,
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
        // Stock firmware says neither: its goldens carry neither.
        power_limit_w: None,
        sleeping: None,
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

/// The example curtailed by hashforge: a 2500 W target in force, awake. Its STATS is the
/// stock one with hashforge's two keys after `chain_power`, nothing else changed.
#[test]
fn hashforge_power_keys_follow_chain_power_and_read_back() {
    let mut s = example();
    s.power_w = Some(2496.4);
    s.power_limit_w = Some(2500.0);
    s.sleeping = Some(false);
    let curtailed = bmminer::read_command("stats", &s).json();
    golden("bmminer_stats_hashforge_power.json", &curtailed);
    let stock: Value =
        serde_json::from_str(&bmminer::read_command("stats", &example()).json()).unwrap();
    let curtailed: Value = serde_json::from_str(&curtailed).unwrap();
    let keys =
        |v: &Value| -> Vec<String> { v["STATS"][1].as_object().unwrap().keys().cloned().collect() };
    let mut added = keys(&curtailed);
    added.retain(|k| !keys(&stock).contains(k));
    assert_eq!(added, [bmminer::POWER_LIMIT_KEY, bmminer::SLEEPING_KEY]);
    assert_eq!(curtailed["STATS"][1]["chain_power"], "2496 W");
    assert_eq!(curtailed["STATS"][1][bmminer::POWER_LIMIT_KEY], 2500.0);
    assert_eq!(curtailed["STATS"][1][bmminer::SLEEPING_KEY], false);
    let back = read_back(&s);
    assert_eq!(
        (back.power_w, back.power_limit_w, back.sleeping),
        (Some(2496.0), Some(2500.0), Some(false))
    );
    // Stock firmware says neither: unknown, not "no limit" and "awake".
    let stock = read_back(&example());
    assert_eq!((stock.power_limit_w, stock.sleeping), (None, None));
    // Readers take the yes-or-no however it is written.
    for (written, reads) in [
        (Value::from(true), Some(true)),
        (Value::from(0), Some(false)),
        (Value::from("Y"), Some(true)),
        (Value::from("false"), Some(false)),
        (Value::from("maybe"), None),
        (Value::from(7), None),
    ] {
        let mut v: Value = serde_json::from_str(&format!(
            "{{\"version\":[{}],\"summary\":[{}],\"stats\":[{}],\"pools\":[{}]}}",
            bmminer::read_command("version", &s).json(),
            bmminer::read_command("summary", &s).json(),
            bmminer::read_command("stats", &s).json(),
            bmminer::read_command("pools", &s).json(),
        ))
        .unwrap();
        v["stats"][0]["STATS"][1][bmminer::SLEEPING_KEY] = written.clone();
        let back = bmminer::read(&v, Some(65)).unwrap();
        assert_eq!(back.sleeping, reads, "{written}");
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
        power_limit in proptest::option::of(1u32..100_000_000),
        sleeping in proptest::option::of(any::<bool>()),
    ) -> MinerStatus {
        let mut s = example();
        s.power_limit_w = power_limit.map(|centiwatts| f64::from(centiwatts) / 100.0);
        s.sleeping = sleeping;
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
        prop_assert_eq!(back.power_limit_w, s.power_limit_w);
        prop_assert_eq!(back.sleeping, s.sleeping);
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
        hashforge_minerapi::fuzzing::avalon_mm(&bytes);
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

/// A Whatsminer M60S (variant VK10, 215 chips a board) with the example's life: a silent
/// chip on board 0, a board with 40 chips working, a failed board.
fn whatsminer() -> MinerStatus {
    let mut s = example();
    s.identity = Identity {
        make: Make::Whatsminer,
        model: "M60S VK10".into(),
        firmware: "20240524.18.REL".into(),
        serial: Some("HTM60SVK10A24051800001".into()),
        mac: Some("c4:08:28:00:a4:19".into()),
        hostname: Some("WhatsMiner".into()),
    };
    s.fans_rpm = vec![5400, 5280];
    for c in &mut s.chains {
        c.expected_chips = Some(215);
        c.serial = Some(format!("BHM5CSD1302803K3000{}", c.index));
        c.hashrate.last_1m = Some(c.hashrate.last_5s);
        c.board_temp = c.chip_temp.map(|t| Celsius(t.0 - 9.0));
        c.frequency_mhz = Some(600.0);
    }
    s.chains[0].chips = vec![ChipHealth::Ok; 215];
    s.chains[0].chips[30] = ChipHealth::Silent;
    s
}

/// An Avalon A1246 (120 chips a board) with the example's life.
fn avalon_example() -> MinerStatus {
    let mut s = example();
    s.identity = Identity {
        make: Make::Avalon,
        model: "1246-90".into(),
        firmware: "21072802_4ec6bb0_211fc46".into(),
        serial: Some("02010000cbd2fd6d".into()),
        mac: Some("b4:a2:eb:01:02:03".into()),
        hostname: None,
    };
    for c in &mut s.chains {
        c.expected_chips = Some(120);
        c.board_temp = c.chip_temp.map(|t| Celsius((t.0 - 9.0).round()));
        c.chip_temp = c.chip_temp.map(|t| Celsius(t.0.round()));
        c.hardware_errors = 2;
        c.frequency_mhz = Some(502.41);
    }
    s.chains[0].chips = vec![ChipHealth::Ok; 120];
    s.chains[0].chips[30] = ChipHealth::Silent;
    s
}

#[test]
fn btminer_replies_keep_whatsminer_shapes() {
    let s = whatsminer();
    for cmd in ["summary", "devs", "pools", "devdetails", "version"] {
        golden(
            &format!("btminer_{cmd}.json"),
            &btminer::read_command(cmd, &s).json(),
        );
    }
    for cmd in btminer::OWN_READS {
        golden(
            &format!("btminer_{cmd}.json"),
            &btminer::read_command(cmd, &s).json(),
        );
    }
    // A write, without the admin password's token.
    let req = Request::new("update_pools", "");
    golden("btminer_refused.json", &btminer::respond(&req, &s));
}

#[test]
fn what_btminer_shapes_say() {
    let s = whatsminer();
    let v: Value = serde_json::from_str(&btminer::read_command("get_version", &s).json()).unwrap();
    // btminer's own shape: STATUS a string, Code 131, Msg an object.
    assert_eq!(
        (v["STATUS"].as_str(), v["Code"].as_u64()),
        (Some("S"), Some(131))
    );
    assert_eq!(v["Msg"]["fw_ver"], "20240524.18.REL");
    let devs: Value = serde_json::from_str(&btminer::read_command("devs", &s).json()).unwrap();
    // A silent chip does not work: Effective Chips counts the ones that do.
    assert_eq!(devs["DEVS"][0]["Effective Chips"], 214);
    assert_eq!(devs["DEVS"][2]["Status"], "Dead");
    // A failed board has no temperature: the firmware's none, 0.
    assert_eq!(devs["DEVS"][2]["Chip Temp Avg"], 0.0);
    let dd: Value = serde_json::from_str(&btminer::read_command("devdetails", &s).json()).unwrap();
    assert_eq!(dd["DEVDETAILS"][0]["Driver"], "bitmicro");
    assert_eq!(dd["DEVDETAILS"][0]["Model"], "M60S_VK10");
    // Own commands cannot be joined; writes are refused, joined or not.
    let joined = btminer::respond(&Request::new("summary+get_version+reboot", ""), &s);
    let j: Value = serde_json::from_str(&joined).unwrap();
    assert_eq!(j["summary"][0]["STATUS"][0]["STATUS"], "S");
    assert_eq!(j["get_version"][0]["Code"], 14);
    assert_eq!(j["reboot"][0]["Msg"], "can't access write cmd");
    let bad = btminer::respond(&Request::new("nonsense", ""), &s);
    assert!(bad.contains("\"invalid cmd\""), "{bad}");
}

/// What a reader of a Whatsminer gets back, with the other side's rendering in between.
fn read_back_btminer(s: &MinerStatus) -> MinerStatus {
    let wire = |command: &str| {
        let mut bytes = btminer::respond(&Request::new(command, ""), s).into_bytes();
        bytes.push(0);
        decode_reply(&bytes).unwrap()
    };
    let own: Vec<(&str, Value)> = btminer::READ_OWN.iter().map(|c| (*c, wire(c))).collect();
    let merged = btminer::merge(wire(btminer::READ_JOINED), &own);
    btminer::read(&merged, Some(215)).unwrap()
}

#[test]
fn a_whatsminer_reading_gets_back_what_the_status_said() {
    let s = whatsminer();
    let back = read_back_btminer(&s);
    assert_eq!(back.identity, s.identity);
    assert_eq!(back.uptime_secs, 3600);
    assert_eq!(back.chains.len(), 3);
    // The contract carries working chips, not positions: 214 of 215 answer.
    assert_eq!(back.chains[0].chips_found(), 214);
    assert_eq!(back.chains[0].expected_chips, Some(215));
    assert!(matches!(back.chains[2].state, ChainState::Failed(_)));
    assert_eq!(back.chains[0].chip_temp, Some(Celsius(68.5)));
    assert_eq!(back.chains[0].board_temp, Some(Celsius(59.5)));
    assert_eq!(back.chains[2].chip_temp, None);
    assert_eq!(
        back.chains[1].serial.as_deref(),
        Some("BHM5CSD1302803K30001")
    );
    assert_eq!(back.fans_rpm, s.fans_rpm);
    assert_eq!(back.power_w, Some(3510.0));
    assert_eq!(back.ideal, Some(HashRate::from_ths(234.0)));
    assert_eq!(back.pools[1].state, PoolState::Dead);
    assert_eq!(
        back.active_pool().unwrap().url,
        "stratum+tcp://pool.example:3333"
    );
    assert_eq!(back.shares.accepted, 1200);
    assert_eq!(back.when, s.when);
    // Numbers as strings and a trailing NUL are read as real firmware's.
    let mut wire = br#"{"STATUS":[{"STATUS":"S"}],"SUMMARY":[{"Elapsed":"77","MHS 5s":"1000000.5","Fan Speed In":"5000"}],"DEVS":[{"ASC":"1","Effective Chips":"214","MHS 5s":"5.0","Chip Temp Max":"70.5"}],"POOLS":[],"id":1}"#.to_vec();
    wire.push(0);
    let v = decode_reply(&wire).unwrap();
    let r = btminer::read(&v, None).unwrap();
    assert_eq!((r.uptime_secs, r.fans_rpm.clone()), (77, vec![5000]));
    assert_eq!((r.chains[0].index, r.chains[0].chips_found()), (1, 214));
    assert_eq!(r.chains[0].chip_temp, Some(Celsius(70.5)));
}

#[test]
fn avalon_replies_keep_avalon_shapes() {
    let s = avalon_example();
    for cmd in [
        "version",
        "summary",
        "devs",
        "estats",
        "stats",
        "pools",
        "devdetails",
    ] {
        golden(
            &format!("avalon_{cmd}.json"),
            &avalon::read_command(cmd, &s).json(),
        );
    }
}

#[test]
fn what_avalon_shapes_say() {
    let s = avalon_example();
    let v: Value = serde_json::from_str(&avalon::read_command("version", &s).json()).unwrap();
    assert_eq!(v["VERSION"][0]["PROD"], "AvalonMiner 1246-90");
    assert_eq!(v["VERSION"][0]["MAC"], "b4a2eb010203");
    let mm = avalon::parse_mm(&avalon::mm_id0(&s));
    assert_eq!(mm["MW0"].split(' ').filter(|w| *w == "0").count(), 1);
    assert_eq!(mm["PVT_T1"].split(' ').count(), 40);
    assert!(
        !mm.contains_key("PVT_T2"),
        "a failed board has no chips: {mm:?}"
    );
    assert_eq!(mm["MTmax"], "69 70 0");
    assert_eq!(mm["Fan3"], "0");
    let bad = avalon::read_command("nonsense", &s).json();
    assert!(bad.contains("\"Code\":14"), "{bad}");
}

fn read_back_avalon(s: &MinerStatus) -> MinerStatus {
    let req = Request::new(avalon::READ_ALL, "");
    let replies: Vec<_> = req
        .commands
        .iter()
        .map(|c| avalon::read_command(c, s))
        .collect();
    let mut wire = req.join(&replies).into_bytes();
    wire.push(0);
    avalon::read(&decode_reply(&wire).unwrap(), Some(120)).unwrap()
}

#[test]
fn an_avalon_reading_gets_back_what_the_status_said() {
    let s = avalon_example();
    let back = read_back_avalon(&s);
    assert_eq!(back.identity, s.identity);
    assert_eq!(back.chains.len(), 3);
    assert_eq!(back.chains[0].bad_positions(), vec![30]);
    assert_eq!(back.chains[1].chips_found(), 40);
    assert!(matches!(back.chains[2].state, ChainState::Failed(_)));
    assert_eq!(back.chains[0].chip_temp, Some(Celsius(69.0)));
    assert_eq!(back.chains[0].board_temp, Some(Celsius(60.0)));
    assert_eq!(back.chains[0].hardware_errors, 2);
    assert_eq!(back.fans_rpm, s.fans_rpm);
    assert_eq!(back.power_w, Some(3510.0));
    assert_eq!(back.ideal, Some(HashRate::from_ths(234.0)));
    assert_eq!(back.hashrate.last_1m, s.hashrate.last_1m);
    assert_eq!(back.pools.len(), 2);
    assert_eq!(back.uptime_secs, 3600);
}

prop_compose! {
    fn any_whatsminer()(s in any_status(), fans in proptest::collection::vec(0u32..20_000, 0..3)) -> MinerStatus {
        let mut w = whatsminer();
        w.identity.model = format!("{} VK10", s.identity.model.replace(' ', ""));
        w.identity.mac = s.identity.mac;
        w.chains = s.chains;
        w.fans_rpm = fans;
        w.shares = s.shares;
        w.uptime_secs = s.uptime_secs;
        w.pools = s.pools;
        w
    }
}

proptest! {
    #[test]
    fn btminer_round_trip_keeps_what_the_contract_carries(s in any_whatsminer()) {
        let back = read_back_btminer(&s);
        // The model is said per board (DEVDETAILS): a machine without boards has none.
        let model = if s.chains.is_empty() { "" } else { s.identity.model.as_str() };
        prop_assert_eq!(back.identity.model.as_str(), model);
        prop_assert_eq!(&back.identity.mac, &s.identity.mac);
        prop_assert_eq!(back.uptime_secs, s.uptime_secs);
        prop_assert_eq!(back.shares.accepted, s.shares.accepted);
        prop_assert_eq!(&back.fans_rpm, &s.fans_rpm);
        prop_assert_eq!(&back.pools[0].user, &s.pools[0].user);
        prop_assert_eq!(back.chains.len(), s.chains.len());
        for (b, c) in back.chains.iter().zip(&s.chains) {
            prop_assert_eq!(b.chips_found(), c.chips.iter().filter(|h| h.is_ok()).count());
            prop_assert_eq!(b.hardware_errors, c.hardware_errors);
            prop_assert_eq!(b.chip_temp, c.chip_temp);
            prop_assert_eq!(
                matches!(b.state, ChainState::Failed(_)),
                matches!(c.state, ChainState::Failed(_)) || c.chips.iter().all(|h| !h.is_ok()) && c.hashrate.last_5s.as_hs() == 0.0
            );
            prop_assert!((b.hashrate.last_5s.as_ghs() - c.hashrate.last_5s.as_ghs()).abs() <= 0.0005 + 1e-9);
        }
    }

    #[test]
    fn avalon_round_trip_keeps_what_the_contract_carries(s in any_status()) {
        let mut a = avalon_example();
        a.identity.mac = s.identity.mac.clone();
        a.chains = s.chains.clone();
        for c in &mut a.chains {
            c.chip_temp = c.chip_temp.map(|t| Celsius(t.0.round()));
        }
        a.fans_rpm = s.fans_rpm.clone();
        a.uptime_secs = s.uptime_secs;
        a.shares = s.shares;
        let back = read_back_avalon(&a);
        prop_assert_eq!(&back.identity, &a.identity);
        prop_assert_eq!(back.uptime_secs, a.uptime_secs);
        prop_assert_eq!(back.shares.accepted, a.shares.accepted);
        prop_assert_eq!(&back.fans_rpm, &a.fans_rpm);
        prop_assert_eq!(back.chains.len(), a.chains.len());
        for (b, c) in back.chains.iter().zip(&a.chains) {
            prop_assert_eq!(b.chips_found(), c.chips_found());
            prop_assert_eq!(b.bad_positions(), c.bad_positions());
            prop_assert_eq!(b.hardware_errors, c.hardware_errors);
            // Whole degrees on this wire; 0 is no reading.
            prop_assert_eq!(b.chip_temp, c.chip_temp.filter(|t| t.0 >= 0.5));
            prop_assert_eq!(matches!(b.state, ChainState::Failed(_)), matches!(c.state, ChainState::Failed(_)));
            prop_assert!((b.hashrate.last_5s.as_ghs() - c.hashrate.last_5s.as_ghs()).abs() <= 0.005 + 1e-9);
        }
    }

    #[test]
    fn new_readers_take_any_json_in_the_right_envelope(
        keys in proptest::collection::vec(("[A-Za-z_ ]{1,12}[0-9]?", any::<i32>()), 0..20),
        mm in "[A-Za-z_0-9 \\[\\]]{0,200}",
    ) {
        let fields: serde_json::Map<String, Value> =
            keys.into_iter().map(|(k, v)| (k, Value::from(v))).collect();
        let obj = Value::Object(fields);
        let reply = serde_json::json!({
            "summary": [{"SUMMARY": [obj]}],
            "devs": [{"DEVS": [obj, obj]}],
            "pools": [{"POOLS": [obj]}],
            "devdetails": [{"DEVDETAILS": [obj]}],
            "get_version": {"STATUS": "S", "Msg": obj},
            "version": [{"VERSION": [obj]}],
            "estats": [{"STATS": [{"MM ID0": mm}]}],
        });
        let _ = btminer::read(&reply, None);
        let _ = avalon::read(&reply, None);
        hashforge_minerapi::fuzzing::avalon_mm(mm.as_bytes());
    }
}
