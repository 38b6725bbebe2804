//! The fleet database against SQLite and a real PostgreSQL (`HASHFORGE_TEST_POSTGRES`,
//! started by `.ci/run`): two collectors (two sites) writing into one database and one
//! console reading both; a collector's restart continuing its miners and alerts; hourly
//! rollups written and read back; a machine keeping its row when its identity becomes
//! known or its address changes.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use hashforge_fleet::alerts::AlertKind;
use hashforge_fleet::client::{Contract, Identified, MinerPorts};
use hashforge_fleet::poll::{Collector, CollectorConfig};
use hashforge_fleet::range::Ranges;
use hashforge_fleet::sim::{FleetSpec, Kind, Ports, SimFault, SimFleet, Simulator};
use hashforge_fleet::state::{Miner, Sample};
use hashforge_fleet::store::{readings_batch, CycleWrite, MinerRow, RowRef, Store};

hashforge_store::both_databases!(
    "fleet.db";
    two_sites_write_one_database_and_one_console_reads_both,
    hours_are_rolled_up_written_and_read_back,
    a_machine_keeps_its_row_across_identity_and_address_changes,
    two_machines_claiming_one_serial_keep_a_row_each,
);

/// A collector of `site` on the simulated miners of `range`.
async fn collector(url: &str, site: &str, ports: Ports) -> Arc<Collector> {
    let config = CollectorConfig {
        ports: MinerPorts {
            cgminer: ports.cgminer,
            http: ports.http,
        },
        concurrency: 64,
        timeout: Duration::from_secs(5),
        web_passwords: vec!["farm".into()],
        site: site.into(),
        ..CollectorConfig::default()
    };
    let store = Store::open(url, site)
        .await
        .expect("open the fleet database");
    Collector::with_store(config, store)
        .await
        .expect("read the site back")
}

/// `variant` keeps the SQLite and PostgreSQL runs of a test on addresses and ports of their
/// own, so they can run at once.
async fn two_sites_write_one_database_and_one_console_reads_both(url: &str) {
    let variant = u8::from(url.starts_with("postgres"));
    // Each site's simulator on ports of its own (one listener per port serves a fleet).
    let ports = |site: u16| Ports {
        cgminer: 25028 + 100 * site + u16::from(variant),
        http: 25080 + 100 * site + u16::from(variant),
    };
    let (north_base, south_base) = (
        Ipv4Addr::new(127, 22, 2 * variant, 1),
        Ipv4Addr::new(127, 22, 2 * variant + 1, 1),
    );
    let spec = |base: Ipv4Addr, seed: u64| {
        let mut spec = FleetSpec::new(20, base);
        spec.boot_spread_secs = 0.0;
        spec.faults_per_hour = 0.0;
        spec.seed = seed;
        spec
    };
    let mut sims = Vec::new();
    for (site, base) in [north_base, south_base].into_iter().enumerate() {
        let fleet = SimFleet::new(spec(base, site as u64 + 1));
        sims.push(Simulator::start(fleet, ports(site as u16)).await.unwrap());
    }
    let north = collector(url, "north", ports(0)).await;
    let south = collector(url, "south", ports(1)).await;
    let range =
        |b: Ipv4Addr| Ranges::parse(&format!("{b}-{}", Ipv4Addr::from(u32::from(b) + 19))).unwrap();
    let (found, fresh) = north.discover(&range(north_base)).await;
    assert_eq!(found.found.len(), 20, "{:?}", found.unsure);
    north.enrol(fresh).await;
    let (found, fresh) = south.discover(&range(south_base)).await;
    assert_eq!(found.found.len(), 20);
    south.enrol(fresh).await;

    // A chip dies at the north site.
    let dying = (0..20)
        .find(|i| sims[0].fleet.kind(*i) != Kind::Bitaxe)
        .unwrap();
    let dying_ip = IpAddr::V4(sims[0].fleet.address(dying));
    // The machine is in the register, deployed: its chip alert will open a repair ticket.
    let serial = north
        .inventory()
        .get(dying_ip)
        .unwrap()
        .serial
        .clone()
        .unwrap();
    let register = north.store.as_ref().unwrap();
    let assets = format!(
        "serial,maker,model,nameplate_ths,nameplate_w,origin,hts_code,price_usd,order_id,ordered_on\n\
         {serial},Bitmain,S21 Pro,234,3510,US,8543.70.99,4200,PO-1,2025-01-01\n"
    );
    let events = format!(
        "serial,event,date,place,shipment,reason,fee_usd_per_unit_day,note\n\
         {serial},produced,2025-01-10,,,,,\n{serial},shipped,2025-01-12,,,,,\n\
         {serial},delivered,2025-01-20,,,,,\n{serial},deployed,2025-01-21,north/R1,,,,\n"
    );
    let schedule = hashforge_fleet::tariffs::Schedule::builtin();
    register
        .import_assets(&hashforge_fleet::assets::parse_assets(&assets, &schedule).unwrap())
        .await
        .unwrap();
    register
        .import_events(&hashforge_fleet::assets::parse_events(&events).unwrap())
        .await
        .unwrap();
    let t = sims[0].elapsed();
    sims[0]
        .fleet
        .inject(dying, t, SimFault::ChipDies { board: 2, chip: 7 });
    let mut repairs = 0;
    for _ in 0..2 {
        for c in [&north, &south] {
            let r = c.poll_cycle().await;
            assert_eq!((r.answered, r.missed), (20, 0));
            assert_eq!(r.store_error, None);
            repairs += r.repairs_opened;
        }
    }
    assert_eq!(repairs, 1, "the dead chip's ticket, and no other");
    let reg = register.register().await.unwrap();
    let ticket = &reg.repairs[0];
    assert_eq!(
        (ticket.fault.as_str(), ticket.board, ticket.chips.as_deref()),
        ("bad_chips", Some(2), Some("7"))
    );
    let chip_alert = |c: &Collector| {
        c.alerts()
            .open_for(dying_ip)
            .iter()
            .find(|a| a.kind == AlertKind::BadChips && a.board == Some(2))
            .map(|a| (a.id, a.site.clone(), a.evidence.clone()))
    };
    let (alert_id, site, evidence) = chip_alert(&north).expect("the dead chip's alert");
    assert_eq!(site, "north");
    assert!(evidence.contains("chip 7"), "{evidence}");

    // One console, no ranges of its own, reads both sites.
    let console = Collector::with_reader(
        CollectorConfig::default(),
        Store::open(url, "console").await.unwrap(),
    );
    console.refresh().await.unwrap();
    {
        let inv = console.inventory();
        assert_eq!(inv.miners.len(), 40);
        for (site, base) in [("north", north_base), ("south", south_base)] {
            let at_site: Vec<&Miner> = inv.miners.iter().filter(|m| m.site == site).collect();
            assert_eq!(at_site.len(), 20, "{site}");
            let first = inv.get(IpAddr::V4(base)).unwrap();
            assert_eq!(first.site, site);
            assert!(first.online && first.hashrate_ths > 0.0, "{first:?}");
        }
        let own = north.inventory();
        let (theirs, ours) = (inv.get(dying_ip).unwrap(), own.get(dying_ip).unwrap());
        assert_eq!(
            theirs.boards, ours.boards,
            "the reading as the collector had it"
        );
        assert_eq!(theirs.serial, ours.serial);
        assert!(theirs.serial.is_some(), "identity from the web CGI");
    }
    assert_eq!(chip_alert(&console).map(|a| a.0), Some(alert_id));
    let sites = console.sites.lock().unwrap().clone();
    assert_eq!(
        sites.iter().map(|s| s.0.as_str()).collect::<Vec<_>>(),
        ["north", "south"]
    );
    assert!(sites.iter().all(|s| s.2.answered == 20));

    // The north collector restarts: its miners and open alert come back before any scan,
    // and the next cycle neither opens the alert again nor reuses its number.
    let restarted = collector(url, "north", ports(0)).await;
    assert_eq!(restarted.inventory().miners.len(), 20);
    assert_eq!(chip_alert(&restarted).map(|a| a.0), Some(alert_id));
    let r = restarted.poll_cycle().await;
    assert_eq!((r.answered, r.alerts_opened, r.repairs_opened), (20, 0, 0));
    assert_eq!(chip_alert(&restarted).map(|a| a.0), Some(alert_id));
    // The south site's power goes: its miners are offline, in the database too; it comes
    // back: the alerts close, with their end written.
    let south_sim = sims.pop().unwrap();
    south_sim.stop().await;
    let r = south.poll_cycle().await;
    assert_eq!((r.missed, r.alerts_opened), (20, 20));
    console.refresh().await.unwrap();
    let offline = |c: &Collector| {
        c.alerts()
            .open()
            .iter()
            .filter(|a| a.kind == AlertKind::Offline && a.site == "south")
            .count()
    };
    assert_eq!(offline(&console), 20);
    sims.push(
        Simulator::start(SimFleet::new(spec(south_base, 2)), ports(1))
            .await
            .unwrap(),
    );
    let r = south.poll_cycle().await;
    assert_eq!(r.answered, 20);
    console.refresh().await.unwrap();
    assert_eq!(offline(&console), 0);
    let closed = console
        .alerts()
        .closed
        .iter()
        .filter(|a| a.kind == AlertKind::Offline && a.site == "south" && a.end.is_some())
        .count();
    assert_eq!(closed, 20, "closed in the database");
    for s in sims {
        s.stop().await;
    }
}

fn identified(ip: &str) -> Identified {
    Identified {
        ip: ip.parse().unwrap(),
        ports: MinerPorts::default(),
        contract: Contract::Bmminer,
        make: "Antminer".into(),
        model: "S21 Pro".into(),
        firmware: "x".into(),
    }
}

async fn hours_are_rolled_up_written_and_read_back(url: &str) {
    let store = Store::open(url, "a").await.unwrap();
    let mut m = Miner::new(&identified("10.0.0.5"), "a", 0);
    m.serial = Some("SN1".into());
    m.online = true;
    m.last_seen = Some(1);
    let hour = 500_000u64;
    let mut rows = Vec::new();
    // Two hours at one sample a minute, every fourth one missed, then the first sample of a
    // third hour closes the second.
    for k in 0..121u64 {
        let answered = k % 4 != 3;
        let s = Sample {
            at: (hour * 3600 + k * 60) as u32,
            hashrate_ths: if answered { 200.0 } else { 0.0 },
            temp: if answered { 70.0 } else { f32::NAN },
            power_w: if answered { 3500.0 } else { f32::NAN },
        };
        rows.extend(m.record(s, answered));
    }
    assert_eq!(rows.len(), 2);
    let h = &rows[0];
    assert_eq!((h.hour, h.samples, h.answered), (hour, 60, 45));
    assert!((h.hashrate_ths - 150.0).abs() < 0.01, "{h:?}");
    assert_eq!((h.temp, h.power_w), (Some(70.0), Some(3500.0)));

    let row = MinerRow::of(&m);
    let write = CycleWrite {
        miners: vec![row.clone()],
        hours: rows
            .iter()
            .map(|h| (RowRef::New(0), h.clone(), m.ip))
            .collect(),
        ..CycleWrite::default()
    };
    let ids = store.write(&write).await.unwrap();
    store
        .write_readings(&readings_batch([(ids[0], &m)].into_iter()))
        .await
        .unwrap();
    // Written again (a restart mid-hour): the row is replaced, not doubled.
    store.write(&write).await.unwrap();
    let back = store.hours_of(m.ip, hour).await.unwrap();
    assert_eq!(back.len(), 2);
    assert_eq!(back[0].hour, hour);
    assert_eq!((back[0].samples, back[0].answered), (60, 45));
    assert!((back[0].hashrate_ths - 150.0).abs() < 0.01);
    assert_eq!(back[0].temp, Some(70.0));
    let loaded = store.load_miners(false, (hour + 3) * 3600).await.unwrap();
    assert_eq!(loaded.len(), 1);
    assert_eq!(loaded[0].stored.map(|s| s.id), Some(ids[0]));
    assert_eq!(loaded[0].hourly.len(), 2, "the day's hours come back");
    assert_eq!(loaded[0].serial.as_deref(), Some("SN1"));
    let (rows, bytes) = store.size().await.unwrap();
    assert_eq!(rows, 2);
    assert!(bytes > 0);
    store.close().await;
}

async fn a_machine_keeps_its_row_across_identity_and_address_changes(url: &str) {
    let store = Store::open(url, "a").await.unwrap();
    let write_one = |m: &Miner| {
        let row = MinerRow::of(m);
        CycleWrite {
            miners: vec![row],
            ..CycleWrite::default()
        }
    };
    // First seen without an identity: keyed by its address.
    let mut m = Miner::new(&identified("10.0.0.5"), "a", 100);
    assert_eq!(m.identity_key(), "ip:a/10.0.0.5");
    let w = write_one(&m);
    let id = store.write(&w).await.unwrap()[0];
    m.stored = Some(w.miners[0].stored(id));
    // Its serial becomes known: the same row, renamed.
    m.serial = Some("SN9".into());
    let w = write_one(&m);
    assert_eq!(w.miners[0].old_key.as_deref(), Some("ip:a/10.0.0.5"));
    assert_eq!(store.write(&w).await.unwrap()[0], id);
    // It moves to another address (another process, which does not know its row): the
    // serial finds the same row, and both addresses are kept.
    let mut moved = Miner::new(&identified("10.0.0.9"), "a", 200);
    moved.serial = Some("SN9".into());
    moved.last_seen = Some(200);
    assert_eq!(store.write(&write_one(&moved)).await.unwrap()[0], id);
    let mut reading = moved.clone();
    reading.online = true;
    store
        .write_readings(&readings_batch([(id, &reading)].into_iter()))
        .await
        .unwrap();
    let loaded = store.load_miners(false, 300).await.unwrap();
    assert_eq!(loaded.len(), 1);
    assert_eq!(loaded[0].ip.to_string(), "10.0.0.9");
    assert_eq!(loaded[0].first_seen, 200, "the reading as written");
    let addresses = store.addresses_of(id).await.unwrap();
    assert_eq!(
        addresses.iter().map(|a| a.0.as_str()).collect::<Vec<_>>(),
        ["10.0.0.5", "10.0.0.9"]
    );
    store.close().await;
}

async fn two_machines_claiming_one_serial_keep_a_row_each(url: &str) {
    let store = Store::open(url, "a").await.unwrap();
    let c = Collector::with_store(
        CollectorConfig {
            site: "a".into(),
            ..CollectorConfig::default()
        },
        store.clone(),
    )
    .await
    .unwrap();
    {
        let mut inv = c.inventory.write().unwrap();
        inv.enroll(&[identified("10.0.0.1"), identified("10.0.0.2")], "a", 10);
        for (i, m) in inv.miners.iter_mut().enumerate() {
            m.serial = Some("CLONED".into());
            m.last_seen = Some(10 + i as u64);
        }
    }
    c.persist(Vec::new(), &Default::default()).await.unwrap();
    // Twice: the second cycle writes readings only.
    c.persist(Vec::new(), &Default::default()).await.unwrap();
    let mut loaded = store.load_miners(false, 100).await.unwrap();
    loaded.sort_by_key(|m| m.ip);
    assert_eq!(loaded.len(), 2);
    let keyed_by_address: Vec<Option<IpAddr>> = c
        .inventory()
        .miners
        .iter()
        .map(|m| m.stored.unwrap().address_key)
        .collect();
    assert_eq!(
        keyed_by_address,
        [Some("10.0.0.1".parse().unwrap()), None],
        "the one seen last has the serial; the other is kept by its address"
    );
    store.close().await;
}
