//! Curtailment against a simulated fleet on loopback: hashforge machines take a power
//! target, sleep and wake through their cgminer API with the farm's token (refused without
//! it); stock Antminers sleep and wake through their web CGI; Whatsminers are left alone
//! and say so; protected machines are never touched; the group's power falls, each machine
//! confirms, and a sleeping machine raises no "not hashing" alert.

mod common;

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use hashforge_fleet::alerts::AlertKind;
use hashforge_fleet::client::MinerPorts;
use hashforge_fleet::curtail::{Action, Group, Outcome};
use hashforge_fleet::poll::{Collector, CollectorConfig};
use hashforge_fleet::range::Ranges;
use hashforge_fleet::sim::{parse_mix, FleetSpec, Kind, Ports, SimFleet, Simulator};

const PORTS: Ports = Ports {
    cgminer: 26028,
    http: 26080,
};

async fn collector(token: Option<&str>, base: Ipv4Addr, n: u32) -> Arc<Collector> {
    let c = Collector::new(CollectorConfig {
        ports: MinerPorts {
            cgminer: PORTS.cgminer,
            http: PORTS.http,
        },
        concurrency: 64,
        timeout: Duration::from_secs(5),
        web_passwords: vec!["farm".into()],
        api_token: token.map(str::to_owned),
        ..CollectorConfig::default()
    });
    let range = Ranges::parse(&format!(
        "{base}-{}",
        Ipv4Addr::from(u32::from(base) + n - 1)
    ))
    .unwrap();
    let (found, fresh) = c.discover(&range).await;
    assert_eq!(found.found.len() as u32, n, "{:?}", found.unsure);
    c.enrol(fresh).await;
    let r = c.poll_cycle().await;
    assert_eq!(r.answered as u32, n);
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_sleeps_wakes_and_holds_a_power_target() {
    let base = Ipv4Addr::new(127, 23, 0, 1);
    let n = 30;
    let mut spec = FleetSpec::new(n, base);
    spec.mix = parse_mix("hashforge=2,s21pro=2,m60s=1").unwrap();
    spec.boot_spread_secs = 0.0;
    spec.faults_per_hour = 0.0;
    let sim = Simulator::start(SimFleet::new(spec), PORTS).await.unwrap();
    let kinds: Vec<(IpAddr, Kind)> = (0..n)
        .map(|i| (IpAddr::V4(sim.fleet.address(i)), sim.fleet.kind(i)))
        .collect();
    let of = |k: Kind| kinds.iter().filter(move |x| x.1 == k).map(|x| x.0);
    let hashforge: Vec<IpAddr> = of(Kind::Hashforge).collect();
    let stock: Vec<IpAddr> = of(Kind::S21Pro).collect();
    assert!(hashforge.len() >= 3 && stock.len() >= 3, "{kinds:?}");

    // Without the token, hashforge machines refuse; stock ones take no power target.
    let c = collector(None, base, n).await;
    let run = c
        .curtail(Action::PowerTarget { watts: 2500 }, Group::default())
        .await;
    assert_eq!(run.refused, hashforge.len(), "{:?}", run.results);
    assert_eq!(run.confirmed, 0);
    assert_eq!(run.unsupported, n as usize - hashforge.len());
    let refused = run.results.iter().find(|r| r.ip == hashforge[0]).unwrap();
    assert!(refused.detail.contains("--api-token"), "{}", refused.detail);

    let c = collector(Some("farm-token"), base, n).await;
    // A power target on the S21 Pros: the hashforge ones hold it, the stock ones cannot.
    let group = Group {
        model: Some("s21 pro".into()),
        ..Group::default()
    };
    let run = c.curtail(Action::PowerTarget { watts: 2500 }, group).await;
    assert_eq!(run.confirmed, hashforge.len(), "{:?}", run.results);
    assert_eq!(run.unsupported, stock.len());
    for r in run
        .results
        .iter()
        .filter(|r| r.outcome == Outcome::Confirmed)
    {
        assert!(r.power_after_w.unwrap() <= 2500.0, "{r:?}");
        assert!(r.confirmed_ms.is_some());
    }
    // The wire says so too: the next reading carries the limit.
    c.poll_cycle().await;
    let limit = c.inventory().get(hashforge[0]).unwrap().power_limit_w;
    assert_eq!(limit, Some(2500.0));

    // Sleep everything but one protected stock machine: hashforge through its API, stock
    // Antminers through the web CGI, Whatsminers left alone.
    let protected = stock[0];
    let group = Group {
        protect: vec![protected.to_string()],
        ..Group::default()
    };
    let run = c.curtail(Action::Sleep, group).await;
    let whatsminers = of(Kind::M60s).count();
    assert_eq!(run.protected, 1);
    assert_eq!(run.unsupported, whatsminers);
    assert_eq!(
        run.confirmed,
        hashforge.len() + stock.len() - 1,
        "{:?}",
        run.results
    );
    assert!(run.power_after_w < run.power_before_w * 0.2, "{run:?}");
    let via = |ip: IpAddr| run.results.iter().find(|r| r.ip == ip).unwrap().via;
    assert_eq!(
        (via(hashforge[0]), via(stock[1])),
        ("cgminer API", "web CGI")
    );
    let p = sim.fleet.index_of(match protected {
        IpAddr::V4(a) => a,
        IpAddr::V6(_) => unreachable!(),
    });
    assert!(
        !sim.fleet.power(p.unwrap()).sleep,
        "the protected machine hashes on"
    );
    // Asleep is not "not hashing": no alert for the sleeping machines.
    for _ in 0..2 {
        c.poll_cycle().await;
    }
    let not_hashing = c
        .alerts()
        .open()
        .iter()
        .filter(|a| matches!(a.kind, AlertKind::NotHashing | AlertKind::LowHashrate))
        .count();
    assert_eq!(not_hashing, 0);
    assert_eq!(
        c.inventory().get(stock[1]).unwrap().sleeping,
        Some(true),
        "a stock machine's sleep, as the console confirmed it"
    );
    // Wake: every machine that slept hashes again, the hashforge ones at their target.
    let run = c.curtail(Action::Wake, Group::default()).await;
    assert_eq!(
        run.confirmed,
        hashforge.len() + stock.len(),
        "{:?}",
        run.results
    );
    c.poll_cycle().await;
    let m = c.inventory().get(hashforge[0]).unwrap().clone();
    assert!(m.hashrate_ths > 0.0 && m.sleeping == Some(false), "{m:?}");
    assert_eq!(m.power_limit_w, Some(2500.0));
    let run = c.curtail(Action::ClearTarget, Group::default()).await;
    assert_eq!(run.confirmed, hashforge.len());
    assert_eq!(c.curtailments.lock().unwrap().len(), 4);

    // The console: the form runs one, the page shows it; the API is the same as JSON.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(hashforge_fleet::console::serve(
        listener,
        Arc::clone(&c),
        stopped,
    ));
    let form = format!("action=sleep&model=S21+Pro&protect={}", stock[0]);
    let (code, body) = common::http(addr, "POST", "/curtail", &form).await;
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("Curtailment 5: sleep"), "{body}");
    assert!(body.contains("model S21 Pro, 1 protected"), "{body}");
    let (code, body) = common::http(addr, "POST", "/curtail", "action=target&watts=lots").await;
    assert_eq!(code, 422);
    assert!(body.contains("watts: `lots`"), "{body}");
    let (code, body) = common::http(
        addr,
        "POST",
        "/api/curtail",
        r#"{"action":"wake","protect":[]}"#,
    )
    .await;
    assert_eq!(code, 200, "{body}");
    let run: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(run["id"], 6);
    assert_eq!(run["action"]["kind"], "wake");
    assert!(run["power_after_w"].as_f64().unwrap() > run["power_before_w"].as_f64().unwrap());
    let (_, body) = common::http(addr, "GET", "/api/curtail", "").await;
    let runs: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(runs["runs"].as_array().unwrap().len(), 6);
    if let Some(dom) = common::chromium_dom(addr, "/curtail/5") {
        assert!(dom.contains("The group's power"), "{dom}");
        assert!(dom.contains("confirmed"), "{dom}");
        assert!(dom.contains("protected: left alone"), "{dom}");
    }
    let _ = stop.send(true);
    sim.stop().await;
}
