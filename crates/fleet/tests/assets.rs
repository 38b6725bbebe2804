//! The asset register against SQLite and a real PostgreSQL (`HASHFORGE_TEST_POSTGRES`):
//! imports that are all or nothing, the lifecycle refusing a wrong event with the machine's
//! state, and the issue's "done when" case: 200 machines held by customs for five months at
//! a storage rate, whose storage and cost of delay `report customs --json` gives.

mod common;

use common::http;

use hashforge_fleet::assets::db::ImportFailure;
use hashforge_fleet::assets::{parse_assets, parse_events, synthetic, EventSpec};
use hashforge_fleet::date::Date;
use hashforge_fleet::economics::{Market, Series};
use hashforge_fleet::lifecycle::State;
use hashforge_fleet::money::Usd;
use hashforge_fleet::reports::{self, Params};
use hashforge_fleet::store::Store;
use hashforge_fleet::tariffs::Schedule;

hashforge_store::both_databases!(
    "fleet.db";
    two_hundred_machines_held_five_months,
    a_bad_file_imports_nothing,
    events_follow_the_lifecycle_across_imports,
    a_synthetic_fleet_imports_and_reports,
    the_api_records_events_and_serves_reports,
    a_chip_alert_opens_a_ticket_and_miners_are_matched,
    the_console_keeps_the_register_until_it_changes,
);

const ASSETS: &str =
    "serial,maker,model,nameplate_ths,nameplate_w,origin,hts_code,price_usd,order_id,ordered_on\n";
const EVENTS: &str = "serial,event,date,place,shipment,reason,fee_usd_per_unit_day,note\n";

fn d(s: &str) -> Date {
    s.parse().unwrap()
}

async fn open(url: &str) -> Store {
    Store::open(url, "test")
        .await
        .expect("open the fleet database")
}

async fn import(store: &Store, assets: &str, events: &str) {
    let rows = parse_assets(assets, &Schedule::builtin()).expect("assets parse");
    store.import_assets(&rows).await.expect("assets import");
    let rows = parse_events(events).expect("events parse");
    store.import_events(&rows).await.expect("events import");
}

fn params(at: &str, hashprice: Option<Usd>) -> Params {
    Params {
        at: d(at),
        market: Market {
            hashprice: hashprice.map(Series::flat).unwrap_or_default(),
            energy: Series::flat(Usd::parse("0.06").unwrap()),
            growth_per_month: 0.0,
            storage_rate: None,
        },
        tariffs: Schedule::builtin(),
        what_if: None,
        per_machine: false,
    }
}

/// 200 S21 XPs of 270 TH/s, held from 2024-10-01 to 2025-03-01 (151 days) at $5.00 per
/// unit per day, at a hashprice of $50/PH/day: storage 200 x 151 x $5 = $151,000; cost of
/// delay 200 x 0.27 PH x $50 x 151 = $407,700. Half of them (100) are released on
/// 2025-03-01; the other half still held on 2025-03-01 accrue until the report's day.
async fn two_hundred_machines_held_five_months(url: &str) {
    let store = open(url).await;
    let mut assets = ASSETS.to_string();
    let mut events = EVENTS.to_string();
    for i in 0..200 {
        assets.push_str(&format!(
            "XP{i:03},Bitmain,S21 XP,270,3645,CN,8543.70.99,5200,PO-7,2024-06-01\n"
        ));
        events.push_str(&format!(
            "XP{i:03},produced,2024-08-01,Shenzhen,,,,\n\
             XP{i:03},shipped,2024-09-01,Shenzhen,SHP-42,,,\n\
             XP{i:03},customs_hold,2024-10-01,LAX,SHP-42,FCC authorisation,5.00,\n"
        ));
    }
    for i in 0..100 {
        events.push_str(&format!(
            "XP{i:03},customs_release,2025-03-01,LAX,SHP-42,,,\n"
        ));
    }
    import(&store, &assets, &events).await;
    let register = store.register().await.unwrap();
    let p = params("2025-03-01", Some(Usd::from_dollars(50)));
    let (json, table) = reports::by_name("customs", &register, &p).unwrap();
    let total = &json["total"];
    assert_eq!(total["units"], 200);
    assert_eq!(total["open_units"], 100, "{json:#}");
    assert_eq!(total["unit_days"], 200 * 151);
    assert_eq!(total["storage"], 151_000.0, "{json:#}");
    assert_eq!(total["cost_of_delay"], 407_700.0);
    assert_eq!(total["total_cost"], 558_700.0);
    assert_eq!(total["held_ths"], 27_000.0);
    assert_eq!(total["units_without_rate"], 0);
    let ship = &json["shipments"][0];
    assert_eq!(ship["shipment"], "SHP-42");
    assert_eq!(ship["reasons"][0], "FCC authorisation");
    assert_eq!(ship["first_start"], "2024-10-01");
    assert_eq!(ship["last_end"], serde_json::Value::Null);
    assert!(table.text().contains("$151,000.00"), "{}", table.text());
    // Day by day, the same money: nothing before the hold, all of it by the report's day.
    let days = json["by_day"].as_array().unwrap();
    assert_eq!(days.len(), 152, "2024-10-01 to 2025-03-01");
    assert_eq!(
        (&days[0]["date"], &days[0]["storage"]),
        (&"2024-10-01".into(), &0.0.into())
    );
    assert_eq!(days[1]["storage"], 1_000.0);
    let last = days.last().unwrap();
    assert_eq!(last["date"], "2025-03-01");
    assert_eq!(last["storage"], 151_000.0);
    assert_eq!(last["cost_of_delay"], 407_700.0);
    // A month later the open half has accrued 31 more days each.
    let p = params("2025-04-01", Some(Usd::from_dollars(50)));
    let (json, _) = reports::by_name("customs", &register, &p).unwrap();
    assert_eq!(json["total"]["storage"], 151_000.0 + 100.0 * 31.0 * 5.0);
    // No hashprice: the cost of delay is unknown, not zero.
    let (json, _) = reports::by_name("customs", &register, &params("2025-03-01", None)).unwrap();
    assert_eq!(json["total"]["cost_of_delay"], serde_json::Value::Null);
    assert_eq!(json["total"]["storage"], 151_000.0);
    // The tariffs report: entered 2024-10-01 from China at 27.6% (2.6% + Section 301).
    let (json, _) = reports::by_name("tariffs", &register, &params("2025-03-01", None)).unwrap();
    assert_eq!(json["total"]["units"], 200);
    assert_eq!(json["total"]["duty"], 287_040.0);
    assert_eq!(json["entries"][0]["duty_rate_pct"], 27.6);
    assert_eq!(json["total"]["fees"], 634.62);
    store.close().await;
}

async fn a_bad_file_imports_nothing(url: &str) {
    let store = open(url).await;
    let assets = format!(
        "{ASSETS}A1,Bitmain,S21,200,3500,CN,8543.70.99,4000,PO-1,2025-01-01\n\
         A2,Bitmain,S21,200,3500,XX,8543.70.99,4000,PO-1,2025-01-01\n"
    );
    let e = parse_assets(&assets, &Schedule::builtin()).unwrap_err();
    assert_eq!(e.errors[0].line, 3);
    let good = format!("{ASSETS}A1,Bitmain,S21,200,3500,CN,8543.70.99,4000,PO-1,2025-01-01\n");
    let rows = parse_assets(&good, &Schedule::builtin()).unwrap();
    store.import_assets(&rows).await.unwrap();
    // Line 3 is fine alone, line 4 goes backwards, line 5 names an unknown machine: the
    // file is refused whole, and its good lines are not half imported.
    let events = format!(
        "{EVENTS}A1,produced,2025-01-10,,,,,\n\
         A1,shipped,2025-02-01,,S1,,,\n\
         A1,delivered,2025-01-20,,,,,\n\
         B9,produced,2025-01-10,,,,,\n"
    );
    let rows = parse_events(&events).unwrap();
    let Err(ImportFailure::Rows(e)) = store.import_events(&rows).await else {
        panic!("the file must be refused");
    };
    assert_eq!(e.total, 2, "{e}");
    assert_eq!(e.errors[0].line, 4);
    assert!(
        e.errors[0].reason.contains("dates may not go backwards"),
        "{e}"
    );
    assert_eq!(e.errors[1].line, 5);
    assert!(
        e.errors[1].reason.contains("`B9` is not in the register"),
        "{e}"
    );
    let register = store.register().await.unwrap();
    assert_eq!(register.assets[0].state, State::Ordered);
    assert!(store.events_of("A1").await.unwrap().is_empty());
    store.close().await;
}

async fn events_follow_the_lifecycle_across_imports(url: &str) {
    let store = open(url).await;
    import(
        &store,
        &format!(
            "{ASSETS}M1,MicroBT,M60S,186,3422,MY,8543.70.99,3100,PO-2,2025-01-01\n\
             M2,Canaan,A1466,150,3230,US,8543.70.99,2300,PO-3,2025-01-01\n"
        ),
        &format!(
            "{EVENTS}M1,produced,2025-01-15,,,,,\n\
             M1,shipped,2025-02-01,Penang,SHP-1,,,\n\
             M1,customs_hold,2025-03-01,LAX,,UFLPA review,,\n"
        ),
    )
    .await;
    // A second file continues the open hold.
    let one = |event: &str, date: &str, place: Option<&str>| EventSpec {
        serial: "M1".into(),
        event: event.into(),
        date: date.into(),
        place: place.map(str::to_owned),
        shipment: None,
        reason: Some("bad_chips".into()),
        fee_usd_per_unit_day: None,
        note: None,
    };
    // Deployed while held: refused, naming the state.
    let e = one("deployed", "2025-03-05", None).check().unwrap();
    let Err(ImportFailure::Rows(refused)) = store.import_events(&[(1, e)]).await else {
        panic!("a wrong transition must be refused");
    };
    assert!(
        refused.errors[0]
            .reason
            .contains("the machine is customs_hold"),
        "{refused}"
    );
    for (i, (ev, date, place)) in [
        ("customs_release", "2025-06-01", None),
        ("delivered", "2025-06-05", None),
        ("deployed", "2025-06-06", Some("tx1/R1/K2/3")),
        ("failed", "2025-07-01", None),
        ("repair_sent", "2025-07-03", Some("Bitmain US (Houston)")),
    ]
    .into_iter()
    .enumerate()
    {
        let e = one(ev, date, place).check().unwrap();
        store.import_events(&[(i + 1, e)]).await.unwrap();
    }
    for step in ["reseat: fault stayed", "board test: fail, chips 30-32"] {
        assert!(store.add_triage("M1", step).await.unwrap());
    }
    let e = one("repair_back", "2025-08-01", None).check().unwrap();
    store.import_events(&[(1, e)]).await.unwrap();
    let register = store.register().await.unwrap();
    let m1 = register.assets.iter().find(|a| a.serial == "M1").unwrap();
    assert_eq!(m1.state, State::Deployed);
    assert_eq!(m1.milestones.held, Some(d("2025-03-01")));
    assert_eq!(m1.site.as_deref(), Some("tx1"));
    assert_eq!(register.holds.len(), 1);
    assert_eq!(register.holds[0].end, Some(d("2025-06-01")));
    assert_eq!(register.holds[0].shipment.as_deref(), Some("SHP-1"));
    assert_eq!(register.repairs.len(), 1);
    let r = &register.repairs[0];
    assert_eq!(
        (r.sent, r.back, r.outcome),
        (Some(d("2025-07-03")), Some(d("2025-08-01")), Some("rma"))
    );
    assert_eq!(
        r.triage.as_deref(),
        Some("reseat: fault stayed; board test: fail, chips 30-32")
    );
    assert!(
        !store.add_triage("M1", "late").await.unwrap(),
        "the ticket is closed"
    );
    assert_eq!(store.events_of("M1").await.unwrap().len(), 9);
    let p = params("2025-09-01", Some(Usd::from_dollars(50)));
    let (json, _) = reports::by_name("repairs", &register, &p).unwrap();
    assert_eq!(json["tickets"], 1);
    assert_eq!(json["by_centre"][0]["key"], "Bitmain US (Houston)");
    assert_eq!(json["by_centre"][0]["median_days"], 31);
    // 186 TH/s x 31 days.
    assert_eq!(json["ths_days_lost"], 5766.0);
    let (json, _) = reports::by_name("leadtimes", &register, &p).unwrap();
    let stages = &json["by_vendor"][1]["stages"];
    assert_eq!(json["by_vendor"][1]["key"], "MicroBT");
    assert_eq!(stages[3]["stage"], "customs");
    assert_eq!(stages[3]["median_days"], 92);
    assert_eq!(stages[2]["median_days"], 124 - 92);
    let (json, _) = reports::by_name("vendors", &register, &p).unwrap();
    assert_eq!(json["units"], 2);
    assert_eq!(json["hhi_units"], 5000);
    assert_eq!(json["network_hhi"], 6954);
    store.close().await;
}

async fn a_synthetic_fleet_imports_and_reports(url: &str) {
    let store = open(url).await;
    let (assets, events) = synthetic::csvs(600, 7);
    import(&store, &assets, &events).await;
    let register = store.register().await.unwrap();
    assert_eq!(register.assets.len(), 600);
    let p = params("2026-06-01", Some(Usd::from_dollars(45)));
    for name in reports::NAMES {
        let (json, table) = reports::by_name(name, &register, &p).unwrap();
        assert!(json.is_object(), "{name}");
        assert!(!table.csv().is_empty(), "{name}");
    }
    let (json, _) = reports::by_name("economics", &register, &p).unwrap();
    assert_eq!(json["fleet"]["name"], "fleet");
    assert!(json["fleet"]["lost_to_customs"].as_f64().unwrap() > 0.0);
    assert!(json["fleet"]["lost_to_repairs"].as_f64().unwrap() > 0.0);
    // At $1/PH/day no machine earns its power: no payback, and the table says so.
    let (json, table) = reports::by_name(
        "economics",
        &register,
        &params("2026-06-01", Some(Usd::from_dollars(1))),
    )
    .unwrap();
    let models = json["by_model"].as_array().unwrap();
    assert!(!models.is_empty());
    assert!(
        models.iter().all(|m| m["payback_days"].is_null()),
        "{json:#}"
    );
    let nevers = table
        .rows
        .iter()
        .filter(|r| r.contains(&"never".to_string()))
        .count();
    assert_eq!(nevers, models.len(), "{}", table.text());
    store.close().await;
}

async fn the_api_records_events_and_serves_reports(url: &str) {
    use hashforge_fleet::poll::{Collector, CollectorConfig};
    let store = open(url).await;
    import(
        &store,
        &format!("{ASSETS}K1,Bitmain,S21 Pro,234,3510,MY,8543.70.99,4200,PO-9,2025-08-01\n"),
        EVENTS,
    )
    .await;
    let collector = Collector::with_reader(CollectorConfig::default(), store);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(hashforge_fleet::console::serve(
        listener, collector, stop_rx,
    ));
    let post = |body: &'static str| http(addr, "POST", "/api/assets/events", body);
    let (code, body) = post(r#"{"serial":"K1","event":"produced","date":"2025-08-10"}"#).await;
    assert_eq!(code, 201, "{body}");
    assert!(body.contains(r#""state":"produced""#), "{body}");
    // A wrong transition: 409 with the machine's state in the reason.
    let (code, body) = post(r#"{"serial":"K1","event":"deployed","date":"2025-08-11"}"#).await;
    assert_eq!(code, 409, "{body}");
    assert!(body.contains("the machine is produced"), "{body}");
    // Backwards: 409.
    let (code, body) = post(r#"{"serial":"K1","event":"shipped","date":"2025-08-01"}"#).await;
    assert_eq!(code, 409, "{body}");
    assert!(body.contains("backwards"), "{body}");
    // Malformed: 422. Unknown machine: 404.
    let (code, body) = post(r#"{"serial":"K1","event":"teleported","date":"2025-08-11"}"#).await;
    assert_eq!(code, 422, "{body}");
    assert!(body.contains("unknown event"), "{body}");
    let (code, _) = post(r#"{"serial":"K1","event":"shipped","date":"2025-13-01"}"#).await;
    assert_eq!(code, 422);
    let (code, _) = post(
        r#"{"serial":"K1","event":"shipped","date":"2025-08-11","fee_usd_per_unit_day":"-2"}"#,
    )
    .await;
    assert_eq!(code, 422);
    let (code, _) = post(r#"{"serial":"ZZ","event":"produced","date":"2025-08-11"}"#).await;
    assert_eq!(code, 404);
    let (code, _) = post("not json").await;
    assert_eq!(code, 422);
    for e in [
        r#"{"serial":"K1","event":"shipped","date":"2025-08-12","shipment":"SHP-7"}"#,
        r#"{"serial":"K1","event":"customs_hold","date":"2025-09-01","reason":"classification","fee_usd_per_unit_day":"3"}"#,
    ] {
        assert_eq!(post(e).await.0, 201);
    }
    let (code, body) = http(
        addr,
        "GET",
        "/api/assets/reports/customs?at=2025-09-11&hashprice=50",
        "",
    )
    .await;
    assert_eq!(code, 200, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["total"]["storage"], 30.0);
    // 0.234 PH x $50 x 10 days.
    assert_eq!(json["total"]["cost_of_delay"], 117.0);
    let (code, body) = http(
        addr,
        "GET",
        "/api/assets/reports/customs?at=2025-09-11&format=csv",
        "",
    )
    .await;
    assert_eq!(code, 200);
    assert!(body.starts_with("shipment,reasons,units"), "{body}");
    assert!(body.contains("SHP-7,classification,1,1,10"), "{body}");
    let (code, _) = http(addr, "GET", "/api/assets/reports/nonsense", "").await;
    assert_eq!(code, 404);
    // The same report as a console page: its chart, its table, links to CSV and JSON.
    let (code, body) = http(
        addr,
        "GET",
        "/register/customs?at=2025-09-11&hashprice=50",
        "",
    )
    .await;
    assert_eq!(code, 200, "{body}");
    for needle in [
        "<svg",
        "SHP-7",
        "$30.00",
        "$117.00",
        "format=csv",
        "what the holds had cost, day by day (storage and cost of delay)",
    ] {
        assert!(body.contains(needle), "{needle} in {body}");
    }
    let (code, _) = http(addr, "GET", "/register/nonsense", "").await;
    assert_eq!(code, 404);
    let (code, body) = http(addr, "GET", "/register/customs?at=yesterday", "").await;
    assert_eq!(code, 422, "{body}");
    let (code, body) = http(addr, "GET", "/register", "").await;
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("polled miners nobody ordered"), "{body}");
    if let Some(dom) = common::chromium_dom(addr, "/register/customs?at=2025-09-11&hashprice=50") {
        assert!(dom.contains("<rect"), "the chart's bars render: {dom}");
        assert!(dom.contains("$117.00"), "{dom}");
    }
    let (code, _) = http(addr, "GET", "/api/assets/reports/customs?at=yesterday", "").await;
    assert_eq!(code, 422);
    // A repair ticket by hand needs a deployed machine: refused while it is held.
    let (code, body) = http(
        addr,
        "POST",
        "/api/assets/repairs",
        r#"{"serial":"K1","date":"2025-09-12","fault":"bad_chips","board":1,"chips":"30, 31"}"#,
    )
    .await;
    assert_eq!(code, 409, "{body}");
    assert!(body.contains("the machine is customs_hold"), "{body}");
    let (code, _) = http(
        addr,
        "POST",
        "/api/assets/repairs",
        r#"{"alert":99,"date":"2025-09-12"}"#,
    )
    .await;
    assert_eq!(code, 404);
    // A board test report attached to a hash board's serial, and read back.
    let (code, _) = http(
        addr,
        "POST",
        "/api/assets/boards/HB-1/reports",
        r#"{"verdict":"fail","suspects":[30]}"#,
    )
    .await;
    assert_eq!(code, 201);
    let (code, _) = http(addr, "POST", "/api/assets/boards/HB-1/reports", "not json").await;
    assert_eq!(code, 422);
    let (code, body) = http(addr, "GET", "/api/assets/boards/HB-1/reports", "").await;
    assert_eq!(code, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["reports"][0]["report"]["verdict"], "fail", "{body}");
    let (code, body) = http(addr, "GET", "/api/assets/K1/events", "").await;
    assert_eq!(code, 200);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).unwrap()["events"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    // The machine's page records an event from its form: a wrong one is refused with the
    // machine's state, a right one lands in its life.
    let (code, body) = http(
        addr,
        "POST",
        "/register/machine/K1",
        "event=deployed&date=2025-09-20",
    )
    .await;
    assert_eq!(code, 409, "{body}");
    assert!(
        body.contains("Not recorded: K1: cannot record `deployed`: the machine is customs_hold"),
        "{body}"
    );
    let (code, _) = http(
        addr,
        "POST",
        "/register/machine/K1",
        "event=customs_release&date=2025-09-20&place=LAX&note=",
    )
    .await;
    assert_eq!(code, 303);
    let (code, body) = http(addr, "GET", "/register/machine/K1", "").await;
    assert_eq!(code, 200);
    for needle in ["customs release", "LAX", "<option>delivered</option>"] {
        assert!(body.contains(needle), "{needle} in {body}");
    }
    // Triage needs an open ticket; a step must be text.
    let (code, body) = http(
        addr,
        "POST",
        "/api/assets/K1/triage",
        r#"{"step":"reseat"}"#,
    )
    .await;
    assert_eq!(code, 404, "{body}");
    let (code, _) = http(addr, "POST", "/api/assets/K1/triage", r#"{"step":"  "}"#).await;
    assert_eq!(code, 422);
    // The tariffs page's what-if: one order from every origin, side by side.
    let (code, body) = http(
        addr,
        "GET",
        "/register/tariffs?at=2025-09-21&what_if_units=200&what_if_model=S21+XP&what_if_price=5000",
        "",
    )
    .await;
    assert_eq!(code, 200, "{body}");
    for needle in [
        "What if: 200 x S21 XP at $5,000.00 each",
        "<td class=\"t\">CN</td>",
        "<td class=\"t\">US</td>",
    ] {
        assert!(body.contains(needle), "{needle} in {body}");
    }
    let (code, body) = http(addr, "GET", "/register/tariffs?what_if_units=200", "").await;
    assert_eq!(code, 422, "{body}");
    assert!(body.contains("the what-if needs a model"), "{body}");
    let _ = stop.send(true);
}

async fn a_chip_alert_opens_a_ticket_and_miners_are_matched(url: &str) {
    use hashforge_fleet::alerts::{Alert, AlertKind};
    use hashforge_fleet::client::{Contract, Identified, MinerPorts};
    use hashforge_fleet::state::Miner;
    use hashforge_fleet::store::{CycleWrite, MinerRow};
    // The collector of site tx1 writes its polled miners under its site.
    let store = Store::open(url, "tx1").await.unwrap();
    import(
        &store,
        &format!(
            "{},mac\nP1,Bitmain,S21 Pro,234,3510,US,8543.70.99,4200,PO-1,2025-01-01,\n\
             P2,Bitmain,S21 Pro,234,3510,US,8543.70.99,4200,PO-1,2025-01-01,AA:BB:CC:00:00:02\n",
            ASSETS.trim_end()
        ),
        &format!(
            "{EVENTS}P1,produced,2025-01-10,,,,,\nP1,shipped,2025-01-12,,,,,\n\
             P1,delivered,2025-01-20,,,,,\nP1,deployed,2025-01-21,tx1/R1/K1/1,,,,\n"
        ),
    )
    .await;
    // Three polled miners: one by serial, one by MAC, one nobody ordered.
    let seen = |ip: &str, serial: Option<&str>, mac: Option<&str>| {
        let mut m = Miner::new(
            &Identified {
                ip: ip.parse().unwrap(),
                ports: MinerPorts::default(),
                contract: Contract::Bmminer,
                make: "Antminer".into(),
                model: "S21 Pro".into(),
                firmware: "x".into(),
            },
            "tx1",
            100,
        );
        m.serial = serial.map(str::to_owned);
        m.mac = mac.map(str::to_owned);
        MinerRow::of(&m)
    };
    store
        .write(&CycleWrite {
            miners: vec![
                seen("10.0.0.1", Some("P1"), None),
                seen("10.0.0.2", None, Some("aa:bb:cc:00:00:02")),
                seen("10.0.0.3", Some("ROGUE"), None),
            ],
            ..CycleWrite::default()
        })
        .await
        .unwrap();
    let m = store.match_miners().await.unwrap();
    let matched: Vec<(&str, Option<&str>)> = m
        .matched
        .iter()
        .map(|x| (x.asset.as_deref().unwrap(), x.matched_by))
        .collect();
    assert_eq!(matched, [("P1", Some("serial")), ("P2", Some("mac"))]);
    assert_eq!(m.unordered.len(), 1);
    assert_eq!(m.unordered[0].serial.as_deref(), Some("ROGUE"));
    // A dead chip on the deployed machine becomes its repair ticket.
    let alert = Alert {
        id: 1,
        site: "tx1".into(),
        kind: AlertKind::BadChips,
        ip: "10.0.0.1".parse().unwrap(),
        board: Some(2),
        start: 0,
        end: None,
        evidence: "board 2: chip 7 silent or bad".into(),
    };
    let (serial, state) = store
        .repair_from_alert(&alert, d("2025-03-01"))
        .await
        .unwrap();
    assert_eq!((serial.as_str(), state), ("P1", State::Failed));
    let register = store.register().await.unwrap();
    let r = &register.repairs[0];
    assert_eq!(
        (r.fault.as_str(), r.board, r.chips.as_deref()),
        ("bad_chips", Some(2), Some("7"))
    );
    // The machine is failed now: a second alert cannot fail it again.
    let again = store
        .repair_from_alert(&alert, d("2025-03-02"))
        .await
        .unwrap_err();
    assert!(
        again.to_string().contains("the machine is failed"),
        "{again}"
    );
    store.close().await;
}

/// The console's pages read the register once per version: the same register while
/// nothing changes, a new one after any change (from this store, or from another process's
/// import), and reports over it equal to the reports over the parts each reads.
async fn the_console_keeps_the_register_until_it_changes(url: &str) {
    use std::sync::Arc;
    let store = open(url).await;
    let other = open(url).await;
    let (assets, events) = synthetic::csvs(600, 7);
    import(&store, &assets, &events).await;
    let first = store.register_cached().await.unwrap();
    assert!(Arc::ptr_eq(&first, &store.register_cached().await.unwrap()));
    let p = params("2026-06-01", Some(Usd::from_dollars(45)));
    for name in reports::NAMES {
        let own = store.register_with(reports::parts(name)).await.unwrap();
        assert_eq!(
            reports::by_name(name, &first, &p).unwrap().0,
            reports::by_name(name, &own, &p).unwrap().0,
            "{name} over the whole register"
        );
    }
    // A file refused whole changes nothing, so the register is kept.
    let v = store.register_version().await.unwrap();
    let bad = parse_events(&format!("{EVENTS}NOPE-1,produced,2026-01-01,,,,,\n")).unwrap();
    assert!(other.import_events(&bad).await.is_err());
    assert_eq!(store.register_version().await.unwrap(), v);
    assert!(Arc::ptr_eq(&first, &store.register_cached().await.unwrap()));
    // Another process's import is seen.
    let rows = parse_assets(
        &format!("{ASSETS}NEW-1,Bitmain,S21 Pro,234,3510,US,8543.70.99,4200,PO-1,2026-05-01\n"),
        &Schedule::builtin(),
    )
    .unwrap();
    other.import_assets(&rows).await.unwrap();
    let second = store.register_cached().await.unwrap();
    assert!(!Arc::ptr_eq(&first, &second));
    assert_eq!(second.assets.len(), 601);
    assert_eq!(
        first.assets.len(),
        600,
        "a page that holds the old one keeps it whole"
    );
    // An event, then a triage step on the ticket it opened: each one a new register.
    let serial = "NEW-1";
    let rows = parse_events(&format!(
        "{EVENTS}{serial},produced,2026-05-02,,,,,\n{serial},shipped,2026-05-03,,,,,\n\
         {serial},delivered,2026-05-09,,,,,\n{serial},deployed,2026-05-10,,,,,\n\
         {serial},failed,2026-05-20,,,,,\n"
    ))
    .unwrap();
    store.import_events(&rows).await.unwrap();
    let third = store.register_cached().await.unwrap();
    assert!(!Arc::ptr_eq(&second, &third));
    let id = third.assets.iter().find(|a| a.serial == serial).unwrap().id;
    assert_eq!(third.asset(id).unwrap().state, State::Failed);
    assert!(store
        .add_triage(serial, "reseat: fault stayed")
        .await
        .unwrap());
    let fourth = other.register_cached().await.unwrap();
    let ticket = fourth
        .repairs
        .iter()
        .find(|r| r.asset_id == id && r.outcome.is_none())
        .expect("the open ticket");
    assert_eq!(ticket.triage.as_deref(), Some("reseat: fault stayed"));
    assert!(!Arc::ptr_eq(
        &third,
        &store.register_cached().await.unwrap()
    ));
    store.close().await;
    other.close().await;
}
