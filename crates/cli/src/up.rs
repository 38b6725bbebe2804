//! `hashforge up`: everything on one laptop: a pool on an embedded regtest chain, and a miner
//! mining real regtest blocks on it, all on loopback, with the pages to look at.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use hashforge_fleet::alerts::Rules;
use hashforge_fleet::client::MinerPorts;
use hashforge_fleet::date::Date;
use hashforge_fleet::poll::CollectorConfig;
use hashforge_fleet::poll::DEFAULT_SITE;
use hashforge_fleet::range::Ranges;
use hashforge_fleet::sim::{FleetSpec, Kind, Ports, SimFleet, Simulator};
use hashforge_fleet::store::Store;
use hashforge_fleet::tariffs::Schedule;
use hashforge_miner::{DeviceSpec, Miner, MinerConfig, PoolConfig as MinerPool};
use hashforge_pool::{Pool, PoolConfig};

use crate::fleet::{start_console, ConsoleSetup};

#[derive(Args, Debug)]
pub struct UpArgs {
    /// Where the embedded chain and the ledger live.
    #[arg(long, value_name = "DIR", default_value = "hashforge-up")]
    data_dir: PathBuf,
    /// The pool's Stratum port.
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:3333")]
    stratum: SocketAddr,
    /// Also serve Stratum V2 here, and mine over it: the miner pins the key the pool made
    /// in --data-dir (`stratum2+tcp://HOST:PORT/<authority_pubkey>`).
    #[arg(long, value_name = "HOST:PORT")]
    sv2: Option<SocketAddr>,
    /// The pool's status page and API.
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:8080")]
    pool_http: SocketAddr,
    /// The miner's status page, REST API and /metrics.
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:8081")]
    miner_http: SocketAddr,
    /// The miner's cgminer API (what pyasic and fleet tools read).
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:4028")]
    api: SocketAddr,
    /// The miner's devices (repeatable): emulated:<profile>[:board] (s21pro, s21, t21, s19xp,
    /// bitaxe-gamma: BM13xx chains driven byte for byte, hashing on this CPU) or cpu[:threads].
    #[arg(
        long = "device",
        value_name = "DEVICE",
        default_value = "emulated:s21pro"
    )]
    devices: Vec<String>,
    #[arg(long = "fault", value_name = "KIND:ARGS", help = crate::fault_help())]
    faults: Vec<String>,
    /// The fleet console, watching this miner and the simulated fleet.
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:8090")]
    console: SocketAddr,
    /// Simulated miners beside this one for the console to watch (0: none).
    #[arg(long, value_name = "N", default_value_t = 50)]
    fleet: u32,
    /// The simulated fleet's cgminer API port (on 127.16.0.1 onwards).
    #[arg(long, value_name = "PORT", default_value_t = 14028)]
    fleet_cgminer_port: u16,
    /// The simulated fleet's web port.
    #[arg(long, value_name = "PORT", default_value_t = 10080)]
    fleet_http_port: u16,
    /// Seconds until one chip of the miner's first emulated machine dies (falls silent):
    /// the demo's alert and repair ticket (0: none).
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    chip_dies_after: u64,
    /// Stop after this many seconds (default: run until Ctrl-C).
    #[arg(long, value_name = "SECS")]
    seconds: Option<u64>,
}

pub fn run(args: UpArgs) -> Result<(), String> {
    crate::logging();
    let devices = args
        .devices
        .iter()
        .map(|d| {
            d.parse::<DeviceSpec>()
                .map_err(|e| format!("--device {d}: {e}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let emulated = matches!(devices.first(), Some(DeviceSpec::Emulated { .. }));
    let runtime = tokio::runtime::Runtime::new()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    runtime.block_on(async {
        let mut pool_config = PoolConfig {
            stratum: args.stratum,
            sv2: args.sv2,
            http: Some(args.pool_http),
            data_dir: args.data_dir.clone(),
            // A CPU finds difficulty-1 shares every minute or two; start low, vardiff does
            // the rest.
            start_difficulty: 1.0 / 1024.0,
            ..PoolConfig::default()
        };
        pool_config.vardiff.min = 1.0 / 1_048_576.0;
        // A share a second: the pool's hash rate for the miner then rests on ~45-90 shares
        // after a minute (±11-15%) instead of ~10 (±32%). On regtest every share is also a
        // block, so this is a block a second too.
        pool_config.vardiff.shares_per_minute = 60.0;
        let pool = Pool::start(pool_config)
            .await
            .map_err(|e| format!("pool: {e}"))?;
        let mut miner_config = MinerConfig {
            devices,
            faults: args.faults.clone(),
            ..MinerConfig::default()
        };
        // Over SV2 when it runs: the miner then pins the pool's authority key.
        let url = pool
            .sv2_url()
            .unwrap_or_else(|| format!("stratum+tcp://{}", pool.stratum_addr()));
        miner_config.pools.push(MinerPool {
            url: url.parse().map_err(|e| format!("{e}"))?,
            user: "hashforge-up.rig1".into(),
            password: "x".into(),
        });
        miner_config.api.listen = Some(args.api);
        miner_config.http.listen = Some(args.miner_http);
        // The stock web CGI, where the fleet console reads the machine's serial and matches
        // it to the demo register.
        miner_config.http.web_password = Some(WEB_PASSWORD.into());
        miner_config.serial = Some(OWN_SERIAL.into());
        // The console curtails it (and the simulated hashforge miners) with this token.
        miner_config.api.write_token = Some(API_TOKEN.into());
        let miner = Miner::start(miner_config)
            .await
            .map_err(|e| format!("miner: {e}"))?;
        let (console, sim, stop_console) = start_fleet(&args, &miner, &pool.stratum_url()).await?;
        eprintln!();
        eprintln!("hashforge is up, mining an embedded REGTEST chain (test coins, not mainnet)");
        eprintln!(
            "  pool:   {}   page http://{}/",
            pool.stratum_url(),
            pool.http_addr().expect("configured")
        );
        if let Some(url) = pool.sv2_url() {
            eprintln!("  sv2:    {url}   (the miner mines over it)");
        }
        if let Some(http) = miner.http_addr() {
            eprintln!(
                "  miner:  page http://{http}/   (serial {OWN_SERIAL}; web CGI user root, password {WEB_PASSWORD}; API token {API_TOKEN})"
            );
        }
        if let Some(api) = miner.api_addr() {
            eprintln!(
                "  cgminer API on {api}   (echo '{{\"command\":\"summary\"}}' | nc {} {})",
                api.ip(),
                api.port()
            );
        }
        eprintln!(
            "  fleet:  console http://{console}/   watching this miner{}",
            sim.as_ref().map_or(String::new(), |s| format!(
                " and {} simulated ones",
                s.fleet.len()
            ))
        );
        eprintln!(
            "  register: http://{console}/register   (a demo operation: orders from two origins, a shipment held by customs, repairs; at ${DEMO_HASHPRICE}/PH/day and ${DEMO_ENERGY}/kWh)"
        );
        eprintln!("  curtail: http://{console}/curtail   (sleep, wake or a power target for a group)");
        eprintln!(
            "  blocks: hashforge chain export --data-dir {}",
            args.data_dir.display()
        );
        eprintln!("  Ctrl-C stops everything.");
        eprintln!();
        let stop = async {
            match args.seconds {
                Some(s) => tokio::time::sleep(Duration::from_secs(s)).await,
                None => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        };
        tokio::pin!(stop);
        let mut status = tokio::time::interval(Duration::from_secs(5));
        status.tick().await;
        let dies = async {
            if args.chip_dies_after == 0 || !emulated {
                return std::future::pending::<()>().await;
            }
            tokio::time::sleep(Duration::from_secs(args.chip_dies_after)).await;
        };
        tokio::pin!(dies);
        let mut died = false;
        loop {
            tokio::select! {
                _ = &mut stop => break,
                _ = status.tick() => eprintln!("{}", miner.status_line()),
                _ = &mut dies, if !died => {
                    died = true;
                    chip_dies(&miner).await;
                }
            }
        }
        eprintln!("stopping");
        let _ = stop_console.send(true);
        if let Some(sim) = sim {
            sim.stop().await;
        }
        miner.stop().await;
        pool.stop().await;
        Ok(())
    })
}

/// The demo's dying chip: chip 30 of chain 1 (or of chain 0 on a one-board machine) of
/// device 0 falls silent; the console's alert on it opens the machine's repair ticket.
async fn chip_dies(miner: &hashforge_miner::MinerHandle) {
    let fault = hashforge_asic::Fault::SilentChip { chip: 30 };
    let done = match miner.inject(0, Some(1), fault).await {
        Ok(m) => Ok(m),
        Err(_) => miner.inject(0, Some(0), fault).await,
    };
    match done {
        Ok(_) => eprintln!(
            "  demo: a chip of {OWN_SERIAL} just died; the console's alert opens its repair ticket when a second poll still sees it (see /register/repairs)"
        ),
        Err(e) => tracing::warn!("demo: the chip could not die: {e}"),
    }
}

/// The demo miner's serial, in the demo register.
const OWN_SERIAL: &str = "HF-UP-0001";
/// The demo register's hashprice (USD per PH/s per day) and energy price (USD per kWh):
/// round inputs the console shows in its forms, not market data.
const DEMO_HASHPRICE: &str = "50";
const DEMO_ENERGY: &str = "0.06";
/// The write token of the demo's hashforge miners, which its console curtails them with.
const API_TOKEN: &str = "hashforge-up";
/// The demo miner's web CGI password (user root).
const WEB_PASSWORD: &str = "hashforge";

/// The simulated kind that describes an emulated machine of `profile` in the register.
fn kind_of(device: &DeviceSpec) -> Option<Kind> {
    let DeviceSpec::Emulated { profile } = device else {
        return None;
    };
    match profile.split(':').next().unwrap_or("") {
        "s21pro" => Some(Kind::Hashforge),
        "s21" => Some(Kind::S21),
        "t21" => Some(Kind::T21),
        "s19xp" => Some(Kind::S19Xp),
        "bitaxe-gamma" => Some(Kind::Bitaxe),
        _ => None,
    }
}

/// On a fresh data directory, the demo operation's register (`assets::demo`): this miner
/// and the simulated fleet deployed, two orders from two origins, a shipment held by
/// customs, past repairs. A register that has machines is left as it is.
async fn seed_register(
    url: &str,
    fleet: Option<&SimFleet>,
    own: Option<Kind>,
) -> Result<(), String> {
    use hashforge_fleet::assets::{demo, parse_assets, parse_events};
    let fail = |e: &dyn std::fmt::Display| format!("demo register: {e}");
    let store = Store::open(url, DEFAULT_SITE).await.map_err(|e| fail(&e))?;
    let known: i64 = store
        .state_counts()
        .await
        .map_err(|e| fail(&e))?
        .iter()
        .map(|(_, n)| n)
        .sum();
    if known == 0 {
        let own: Vec<demo::OwnMachine> = own
            .map(|kind| demo::OwnMachine {
                serial: OWN_SERIAL.into(),
                kind,
            })
            .into_iter()
            .collect();
        let (assets, events) = demo::csvs(fleet, &own, DEFAULT_SITE, Date::today());
        let assets = parse_assets(&assets, &Schedule::builtin()).map_err(|e| fail(&e))?;
        store.import_assets(&assets).await.map_err(|e| fail(&e))?;
        let events = parse_events(&events).map_err(|e| fail(&e))?;
        store.import_events(&events).await.map_err(|e| fail(&e))?;
        tracing::debug!("demo register: {} machines", assets.len());
    }
    store.close().await;
    Ok(())
}

/// The fleet console on `--console`, watching this miner (its API and web on their own
/// ports) and `--fleet` simulated miners from 127.16.0.1.
async fn start_fleet(
    args: &UpArgs,
    miner: &hashforge_miner::MinerHandle,
    own_pool: &str,
) -> Result<
    (
        SocketAddr,
        Option<Simulator>,
        tokio::sync::watch::Sender<bool>,
    ),
    String,
> {
    let sim = if args.fleet > 0 {
        let mut spec = FleetSpec::new(args.fleet, Ipv4Addr::new(127, 16, 0, 1));
        // A few faults an hour across the fleet, so the chip that dies on this miner is
        // the demo's story and not one of many.
        spec.faults_per_hour = 4.0;
        spec.api_token = API_TOKEN.into();
        let ports = Ports {
            cgminer: args.fleet_cgminer_port,
            http: args.fleet_http_port,
        };
        Some(
            Simulator::start(SimFleet::new(spec), ports)
                .await
                .map_err(|e| format!("simulated fleet: {e}"))?,
        )
    } else {
        None
    };
    let mut extra = Vec::new();
    if let (Some(api), Some(http)) = (miner.api_addr(), miner.http_addr()) {
        extra.push((
            api.ip(),
            MinerPorts {
                cgminer: api.port(),
                http: http.port(),
            },
        ));
    }
    let ranges = match &sim {
        Some(s) => Some(
            Ranges::parse(&crate::fleet::sim_range(&s.fleet.spec)).map_err(|e| e.to_string())?,
        ),
        None => None,
    };
    let database = format!("sqlite://{}", args.data_dir.join("fleet.db").display());
    let own = args
        .devices
        .iter()
        .filter_map(|d| d.parse().ok())
        .find_map(|d| kind_of(&d));
    seed_register(&database, sim.as_ref().map(|s| &*s.fleet), own).await?;
    let config = CollectorConfig {
        ports: MinerPorts {
            cgminer: args.fleet_cgminer_port,
            http: args.fleet_http_port,
        },
        web_passwords: sim
            .as_ref()
            .map(|s| s.fleet.spec.farm_password.clone())
            .into_iter()
            .chain([WEB_PASSWORD.to_string()])
            .collect(),
        rules: Rules {
            pools_allowed: sim
                .as_ref()
                .map(|s| s.fleet.spec.pools.clone())
                .unwrap_or_default()
                .into_iter()
                .chain([own_pool.to_string()])
                .collect(),
            ..Rules::default()
        },
        log_alerts: false,
        api_token: Some(API_TOKEN.into()),
        // The demo's prices (inputs the register's pages show and take: not market data).
        prices: hashforge_fleet::console::PriceDefaults {
            hashprice: Some(DEMO_HASHPRICE.into()),
            energy: Some(DEMO_ENERGY.into()),
            storage_rate: None,
        },
        ..CollectorConfig::default()
    };
    let setup = ConsoleSetup {
        listen: args.console,
        database: Some(database),
        poll_every: Duration::from_secs(10),
        // The simulated machines come up over half a minute: look again soon.
        rescan_every: Duration::from_secs(40),
        config,
        ranges,
        extra,
        quiet: true,
    };
    let (addr, _collector, stop) = start_console(setup).await?;
    Ok((addr, sim, stop))
}
