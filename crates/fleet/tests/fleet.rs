//! The console against a simulated fleet on loopback: every miner found and read, faults
//! injected into the simulation coming back as alerts that name the board and position,
//! the security checks, the console's pages; and miners that misbehave on the wire.

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hashforge_fleet::alerts::{AlertKind, Rules};
use hashforge_fleet::client::{self, Contract, MinerPorts, ReadError};
use hashforge_fleet::poll::{Collector, CollectorConfig};
use hashforge_fleet::range::Ranges;
use hashforge_fleet::sim::{FleetSpec, Kind, Ports, SimFault, SimFleet, Simulator};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const PORTS: Ports = Ports {
    cgminer: 24028,
    http: 20080,
};

fn miner_ports(p: Ports) -> MinerPorts {
    MinerPorts {
        cgminer: p.cgminer,
        http: p.http,
    }
}

fn alerts_for(c: &Collector, ip: IpAddr) -> Vec<(AlertKind, Option<u8>, String)> {
    c.alerts()
        .open_for(ip)
        .iter()
        .map(|a| (a.kind, a.board, a.evidence.clone()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_simulated_fleet_is_found_read_and_its_faults_become_alerts() {
    let base = Ipv4Addr::new(127, 20, 0, 1);
    let mut spec = FleetSpec::new(200, base);
    // Antminers and Bitaxes: the web CGI's checks below are theirs.
    spec.mix =
        hashforge_fleet::sim::parse_mix("s21pro=60,s21=20,t21=10,s19xp=7,bitaxe=1,hashforge=2")
            .unwrap();
    spec.boot_spread_secs = 0.0;
    spec.faults_per_hour = 0.0;
    let allowed = spec.pools.clone();
    let sim = Simulator::start(SimFleet::new(spec), PORTS)
        .await
        .expect("simulator");
    let (hook_url, posted) = webhook().await;
    let collector = Collector::new(CollectorConfig {
        webhook: Some(hook_url),
        ports: miner_ports(PORTS),
        concurrency: 64,
        timeout: Duration::from_secs(5),
        web_passwords: vec!["farm".into()],
        rules: Rules {
            pools_allowed: allowed,
            ..Rules::default()
        },
        ..CollectorConfig::default()
    });

    let (scan, fresh) = collector
        .discover(&Ranges::parse("127.20.0.0/24").unwrap())
        .await;
    assert_eq!(
        scan.found.len(),
        200,
        "every miner found: {:?}",
        scan.unsure
    );
    assert_eq!(scan.addresses, 256);
    let bitaxes = (0..200)
        .filter(|i| sim.fleet.kind(*i) == Kind::Bitaxe)
        .count();
    assert_eq!(
        scan.found
            .iter()
            .filter(|f| f.contract == Contract::AxeOs)
            .count(),
        bitaxes
    );
    collector.enrol(fresh).await;
    let first = collector.poll_cycle().await;
    assert_eq!((first.answered, first.missed), (200, 0), "{first:?}");

    // The security checks found what the simulation holds.
    for i in 0..200u32 {
        let ip = IpAddr::V4(sim.fleet.address(i));
        let kinds: Vec<AlertKind> = alerts_for(&collector, ip)
            .into_iter()
            .map(|a| a.0)
            .collect();
        let stock_antminer = !matches!(sim.fleet.kind(i), Kind::Bitaxe | Kind::Hashforge);
        assert_eq!(
            kinds.contains(&AlertKind::DefaultPassword),
            stock_antminer && sim.fleet.web_password(i) == "root",
            "miner {i}: {kinds:?}"
        );
        assert_eq!(
            kinds.contains(&AlertKind::ApiOpen),
            stock_antminer,
            "miner {i}: {kinds:?}"
        );
        let inv = collector.inventory();
        let m = inv.get(ip).unwrap();
        if sim.fleet.kind(i) != Kind::Bitaxe {
            assert!(
                m.mac.is_some() && m.serial.is_some(),
                "identity from the web CGI: {m:?}"
            );
        }
    }

    // Faults, now: a chip dies, a fan stops, a pool changes, a board drops.
    let (chip, fan, hijack, board) = (5u32, 6u32, 7u32, 8u32);
    for i in [chip, fan, hijack, board] {
        assert_ne!(sim.fleet.kind(i), Kind::Bitaxe, "pick Antminers for these");
    }
    let t = sim.elapsed();
    sim.fleet
        .inject(chip, t, SimFault::ChipDies { board: 1, chip: 30 });
    sim.fleet.inject(fan, t, SimFault::FanFails(2));
    sim.fleet.inject(hijack, t, SimFault::PoolHijack);
    sim.fleet.inject(board, t, SimFault::BoardDrops(0));
    // Within two poll cycles.
    for _ in 0..2 {
        collector.poll_cycle().await;
    }
    let ip = |i: u32| IpAddr::V4(sim.fleet.address(i));
    let a = alerts_for(&collector, ip(chip));
    assert!(
        a.iter()
            .any(|(k, b, e)| *k == AlertKind::BadChips && *b == Some(1) && e.contains("chip 30")),
        "{a:?}"
    );
    let a = alerts_for(&collector, ip(fan));
    assert!(
        a.iter()
            .any(|(k, _, e)| *k == AlertKind::FanFailed && e.contains("fan 2")),
        "{a:?}"
    );
    let a = alerts_for(&collector, ip(hijack));
    assert!(
        a.iter()
            .any(|(k, _, e)| *k == AlertKind::PoolHijack && e.contains("203.0.113.66")),
        "{a:?}"
    );
    let a = alerts_for(&collector, ip(board));
    assert!(
        a.iter()
            .any(|(k, b, _)| *k == AlertKind::BoardGone && *b == Some(0)),
        "{a:?}"
    );
    // The webhook was told, with the evidence.
    let sent: Vec<Value> = posted
        .lock()
        .unwrap()
        .iter()
        .flat_map(|v| v.as_array().cloned().unwrap_or_default())
        .collect();
    assert!(
        sent.iter()
            .any(|a| a["kind"] == "bad_chips" && a["evidence"] == "board 1: chip 30 silent or bad"),
        "{} alerts posted",
        sent.len()
    );

    // The console: JSON and pages.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(hashforge_fleet::console::serve(
        listener,
        Arc::clone(&collector),
        stop_rx,
    ));
    let get = |path: String| async move {
        let r = hashforge_fleet::http::get(addr, &path, None, Duration::from_secs(10))
            .await
            .unwrap();
        assert_eq!(r.code, 200, "{path}");
        String::from_utf8(r.body).unwrap()
    };
    let fleet: Value = serde_json::from_str(&get("/api/fleet".into()).await).unwrap();
    assert_eq!(fleet["overview"]["miners"], 200);
    assert_eq!(fleet["overview"]["online"], 200);
    let q: Value =
        serde_json::from_str(&get("/api/miners?q=203.0.113&sort=hashrate&dir=desc".into()).await)
            .unwrap();
    assert_eq!(
        q["total"], 1,
        "the hijacked miner is the one mining there: {q}"
    );
    let page = get(format!("/miner/{}", ip(chip))).await;
    assert!(
        page.contains("board 1: chip 30 silent or bad"),
        "the miner page names it"
    );
    let metrics = get("/metrics".into()).await;
    assert!(
        metrics.contains("hashforge_fleet_alerts_open{kind=\"bad chips\"} 1"),
        "{metrics}"
    );
    browser_check(addr, ip(chip));
    let _ = stop.send(true);
    sim.stop().await;
}

type Posted = Arc<std::sync::Mutex<Vec<Value>>>;

/// A webhook on loopback that keeps the JSON bodies POSTed to it.
async fn webhook() -> (String, Posted) {
    let hook = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/alerts", hook.local_addr().unwrap());
    let posted: Posted = Arc::default();
    let keep = Arc::clone(&posted);
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = hook.accept().await else {
                return;
            };
            let mut buf = Vec::new();
            let mut chunk = [0u8; 65536];
            // Until the body the Content-Length announces is all there.
            while let Ok(n) = s.read(&mut chunk).await {
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&buf).to_string();
                let Some((head, body)) = text.split_once("\r\n\r\n") else {
                    continue;
                };
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("Content-Length: "))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                if body.len() >= len {
                    if let Ok(v) = serde_json::from_str::<Value>(body) {
                        keep.lock().unwrap().push(v);
                    }
                    break;
                }
            }
            let _ = s
                .write_all(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
                .await;
        }
    });
    (url, posted)
}

/// The pages in a real browser (headless Chromium, Debian's package): they render, and the
/// numbers the browser shows are the collector's.
fn browser_check(addr: SocketAddr, chip_miner: IpAddr) {
    let Some(_) = common::chromium_dom(addr, "/") else {
        return;
    };
    let dump = |path: &str| common::chromium_dom(addr, path).unwrap_or_default();
    let overview = dump("/");
    assert!(
        overview.contains("200</div><div class=\"l\">miners known"),
        "{overview}"
    );
    assert!(overview.contains("<svg"), "a chart");
    let miner = dump(&format!("/miner/{chip_miner}"));
    assert!(miner.contains("chip x"), "the chip map marks the dead chip");
    let table = dump("/miners?state=alerting&sort=hashrate&dir=desc");
    assert!(table.contains("miner(s) match"), "{table}");
}

/// A host that answers the cgminer port with `reply` (then closes), or never answers.
async fn bad_miner(ip: Ipv4Addr, port: u16, reply: Option<Vec<u8>>) {
    let l = TcpListener::bind((ip, port)).await.unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            let reply = reply.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                match reply {
                    Some(r) => {
                        let _ = s.write_all(&r).await;
                    }
                    // Hold the connection, answer nothing.
                    None => tokio::time::sleep(Duration::from_secs(30)).await,
                }
            });
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn misbehaving_miners_get_typed_errors_and_never_stall_a_cycle() {
    let port = 24029;
    let ip = |n: u8| Ipv4Addr::new(127, 21, 0, n);
    let good = br#"{"STATUS":[{"STATUS":"S","When":1,"Code":22,"Msg":"v","Description":"x"}],"VERSION":[{"Type":"Antminer S21"}],"id":1}"#;
    let mut nul = good.to_vec();
    nul.push(0);
    bad_miner(ip(1), port, Some(br#"{"STATUS":[{"STATUS":"S""#.to_vec())).await;
    bad_miner(ip(2), port, Some(nul)).await;
    bad_miner(ip(3), port, Some(vec![b' '; 10 * 1024 * 1024])).await;
    bad_miner(ip(4), port, None).await;
    bad_miner(ip(5), port, Some(br#"{"STATUS":[{"STATUS":"S"}],"VERSION":[{"Type":{"nested":[1,2]}}],"SUMMARY":[{"GHS 5s":{"x":1},"Elapsed":"soon"}],"STATS":[{},{"chain_acn1":"many","fan_num":1e300}],"POOLS":[{"URL":7}],"id":1}"#.to_vec())).await;
    // A web server whose digest challenge never ends.
    let web = TcpListener::bind((ip(6), port)).await.unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = web.accept().await else {
                return;
            };
            let mut buf = [0u8; 2048];
            let _ = s.read(&mut buf).await;
            let _ = s
                .write_all(b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Digest realm=\"antMiner Configuration\", nonce=\"abc\", qop=\"auth\"\r\nContent-Length: 0\r\n\r\n")
                .await;
        }
    });
    let t = Duration::from_secs(1);
    let at = |n: u8| SocketAddr::new(IpAddr::V4(ip(n)), port);
    assert!(matches!(
        client::cgminer(at(1), "version", t).await,
        Err(ReadError::Decode(_))
    ));
    assert!(
        client::cgminer(at(2), "version", t).await.is_ok(),
        "a trailing NUL is fine"
    );
    assert!(matches!(
        client::cgminer(at(3), "version", t).await,
        Err(ReadError::TooLong(_))
    ));
    let started = Instant::now();
    assert!(matches!(
        client::cgminer(at(4), "version", t).await,
        Err(ReadError::Timeout(_))
    ));
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the timeout holds"
    );
    let wrong_types = client::read(
        IpAddr::V4(ip(5)),
        Contract::Bmminer,
        MinerPorts {
            cgminer: port,
            http: port,
        },
        Some(108),
        t,
    )
    .await;
    match wrong_types {
        Ok(s) => assert_eq!(s.chains.len(), 1, "a chain of unknowns: {s:?}"),
        Err(e) => assert!(matches!(e, ReadError::Decode(_)), "{e}"),
    }
    let web =
        hashforge_fleet::http::get(at(6), "/cgi-bin/get_system_info.cgi", Some("root"), t).await;
    assert!(matches!(web, Err(ReadError::Unauthorized)), "{web:?}");

    // A poll cycle over all of them ends within its timeouts, each counted.
    let collector = Collector::new(CollectorConfig {
        ports: MinerPorts {
            cgminer: port,
            http: port,
        },
        timeout: t,
        attempts: 2,
        ..CollectorConfig::default()
    });
    let (scan, _) = collector
        .discover(&Ranges::parse("127.21.0.1-5").unwrap())
        .await;
    assert!(
        scan.found.iter().any(|f| f.ip == IpAddr::V4(ip(2))),
        "{scan:?}"
    );
    let started = Instant::now();
    let r = collector.poll_cycle().await;
    assert!(started.elapsed() < Duration::from_secs(10), "{r:?}");
    assert_eq!(r.answered + r.missed, r.miners);
}

/// Whatsminers and Avalons among Antminers and Bitaxes: every one found as its make, read
/// through its own contract with its boards, and a chip that dies on an M60S is seen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mixed_fleet_with_whatsminers_and_avalons_is_found_and_read() {
    let ports = Ports {
        cgminer: 24030,
        http: 20081,
    };
    let mut spec = FleetSpec::new(40, Ipv4Addr::new(127, 22, 0, 1));
    spec.mix = hashforge_fleet::sim::parse_mix("s21pro=2,bitaxe=1,m60s=2,avalon=2").unwrap();
    spec.boot_spread_secs = 0.0;
    spec.faults_per_hour = 0.0;
    let sim = Simulator::start(SimFleet::new(spec), ports)
        .await
        .expect("simulator");
    let collector = Collector::new(CollectorConfig {
        ports: miner_ports(ports),
        concurrency: 16,
        timeout: Duration::from_secs(5),
        web_passwords: vec!["farm".into()],
        ..CollectorConfig::default()
    });
    let (scan, fresh) = collector
        .discover(&Ranges::parse("127.22.0.1-40").unwrap())
        .await;
    assert_eq!(scan.found.len(), 40, "every miner found: {:?}", scan.unsure);
    let kinds: Vec<Kind> = (0..40).map(|i| sim.fleet.kind(i)).collect();
    for k in [Kind::M60s, Kind::Avalon, Kind::S21Pro, Kind::Bitaxe] {
        assert!(kinds.contains(&k), "seed 1 has a {k:?} among 40: {kinds:?}");
    }
    for f in &scan.found {
        let IpAddr::V4(v4) = f.ip else { unreachable!() };
        let kind = sim.fleet.kind(sim.fleet.index_of(v4).unwrap());
        let want = match kind {
            Kind::M60s => (
                Contract::Btminer,
                "Whatsminer",
                "M60S VK10",
                "20240624.18.REL",
            ),
            Kind::Avalon => (
                Contract::Avalon,
                "Avalon",
                "1246-90",
                "21072802_4ec6bb0_211fc46",
            ),
            Kind::Bitaxe => (Contract::AxeOs, "Bitaxe", "Gamma", "v2.9.0"),
            _ => (
                Contract::Bmminer,
                "Antminer",
                "S21 Pro",
                "Thu Oct 10 11:43:12 CST 2024",
            ),
        };
        assert_eq!(
            (
                f.contract,
                f.make.as_str(),
                f.model.as_str(),
                f.firmware.as_str()
            ),
            want,
            "{kind:?} at {}",
            f.ip
        );
    }
    collector.enrol(fresh).await;
    let cycle = collector.poll_cycle().await;
    assert_eq!((cycle.answered, cycle.missed), (40, 0), "{cycle:?}");
    let first = |k: Kind| kinds.iter().position(|x| *x == k).unwrap() as u32;
    let (m60s, avalon) = (first(Kind::M60s), first(Kind::Avalon));
    let ip = |i: u32| IpAddr::V4(sim.fleet.address(i));
    {
        let inv = collector.inventory();
        let m = inv.get(ip(m60s)).unwrap();
        assert_eq!(
            (m.make.as_str(), m.expected_chips),
            ("Whatsminer", Some(215))
        );
        assert_eq!(m.boards.len(), 3, "{m:?}");
        assert!(m
            .boards
            .iter()
            .all(|b| b.chips_found == 215 && b.failed.is_none()));
        // Warming up: hashing, on the way to its nameplate.
        assert!(m.hashrate_ths > 0.0, "{m:?}");
        assert!((m.ideal_ths.unwrap() - 172.0).abs() < 0.01, "{m:?}");
        assert_eq!(m.fans_rpm.len(), 2);
        assert!(
            m.mac.is_some() && m.serial.is_some(),
            "identity from get_miner_info: {m:?}"
        );
        let a = inv.get(ip(avalon)).unwrap();
        assert_eq!((a.make.as_str(), a.expected_chips), ("Avalon", Some(120)));
        assert_eq!(a.boards.len(), 3, "{a:?}");
        assert!(a
            .boards
            .iter()
            .all(|b| b.chips_found == 120 && b.bad_chips.is_empty()));
        // Warming up: hashing, on the way to its nameplate.
        assert!(a.hashrate_ths > 0.0, "{a:?}");
        assert!((a.ideal_ths.unwrap() - 90.0).abs() < 0.01, "{a:?}");
        assert_eq!(a.fans_rpm.len(), 4);
        assert!(
            a.mac.is_some() && a.serial.is_some(),
            "identity from version: {a:?}"
        );
    }

    // A chip dies on the M60S and on the Avalon: btminer says how many chips work, Avalon
    // which one stopped.
    let t = sim.elapsed();
    sim.fleet
        .inject(m60s, t, SimFault::ChipDies { board: 1, chip: 30 });
    sim.fleet
        .inject(avalon, t, SimFault::ChipDies { board: 2, chip: 7 });
    collector.poll_cycle().await;
    let a = alerts_for(&collector, ip(m60s));
    assert!(
        a.iter().any(|(k, b, e)| *k == AlertKind::MissingChips
            && *b == Some(1)
            && e.contains("214 of 215")),
        "{a:?}"
    );
    let a = alerts_for(&collector, ip(avalon));
    assert!(
        a.iter()
            .any(|(k, b, e)| *k == AlertKind::BadChips && *b == Some(2) && e.contains("chip 7")),
        "{a:?}"
    );
    sim.stop().await;
}
