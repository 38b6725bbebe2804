//! `hashforge fleet`: the console (discover, poll, alert, serve the web UI), `fleet scan`
//! (one-shot discovery), `fleet simulate` (a simulated fleet on loopback addresses), and
//! the asset register's `fleet import` / `fleet report` (in `assets.rs`).

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Subcommand};
use hashforge_fleet::alerts::Rules;
use hashforge_fleet::client::MinerPorts;
use hashforge_fleet::poll::{Collector, CollectorConfig};
use hashforge_fleet::range::Ranges;
use hashforge_fleet::sim::{parse_mix, FleetSpec, Ports, SimFleet, Simulator};
use tokio::sync::watch;

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct FleetArgs {
    #[command(subcommand)]
    command: Option<FleetCommand>,
    #[command(flatten)]
    console: ConsoleArgs,
}

#[derive(Subcommand)]
enum FleetCommand {
    /// Discover miners once and print what answered (one JSON object per miner with --json).
    Scan(ScanArgs),
    /// A simulated fleet on loopback addresses: Antminers, Bitaxes and hashforge miners that
    /// answer as their makes do, with seeded lives and faults. Runs until Ctrl-C.
    Simulate(SimArgs),
    /// Import the asset register's files: machines (--assets) and their events (--events).
    /// A file with any bad row is refused whole, each bad row named with its line.
    Import(crate::assets::ImportArgs),
    /// Print a report over the asset register: customs, tariffs, repairs, vendors,
    /// economics or leadtimes (a table, --json or --csv).
    Report(Box<crate::assets::ReportArgs>),
    /// Match the polled miners to the register by serial, else MAC, and list the ones
    /// nobody ordered.
    Match(crate::assets::MatchArgs),
    /// Curtail a group of machines: sleep, wake, a power target in watts, or clear it;
    /// hashforge miners through their cgminer API (--api-token), stock Antminers through
    /// their web CGI (sleep and wake). Each machine is read back until it confirms.
    Curtail(CurtailArgs),
}

#[derive(Args)]
pub struct CurtailArgs {
    /// `sleep`, `wake`, `clear` (the power target), or a power target in watts (`2500`).
    action: String,
    /// The ranges to find the group in (as the console's --scan; repeatable).
    #[arg(long = "scan", value_name = "RANGE", required = true)]
    scan: Vec<String>,
    /// Only machines of this model (`S21 Pro`).
    #[arg(long)]
    model: Option<String>,
    /// Only machines whose address, serial, model or hostname contains this.
    #[arg(long = "matching", value_name = "TEXT")]
    text: Option<String>,
    /// A serial or address never touched (repeatable).
    #[arg(long, value_name = "SERIAL|IP")]
    protect: Vec<String>,
    /// hashforge miners' write token.
    #[arg(long, value_name = "T", env = "HASHFORGE_API_TOKEN")]
    api_token: Option<String>,
    /// Web passwords to try on stock Antminers (repeatable; the maker's is tried where it
    /// is still set).
    #[arg(long = "web-password", value_name = "P")]
    web_passwords: Vec<String>,
    /// A price signal: act only when --price is above this (USD per MWh).
    #[arg(
        long,
        value_name = "USD_PER_MWH",
        requires = "price",
        conflicts_with = "below"
    )]
    above: Option<f64>,
    /// A price signal: act only when --price is below this (USD per MWh).
    #[arg(long, value_name = "USD_PER_MWH", requires = "price")]
    below: Option<f64>,
    /// The energy price now (USD per MWh), from the operator's feed (ERCOT's real-time
    /// price, a utility's tariff).
    #[arg(long, value_name = "USD_PER_MWH")]
    price: Option<f64>,
    /// The whole run as JSON.
    #[arg(long)]
    json: bool,
    #[arg(long, default_value_t = 1024)]
    concurrency: usize,
    #[command(flatten)]
    ports: PortArgs,
}

#[derive(Args, Clone)]
pub struct PortArgs {
    /// The cgminer API port miners answer on.
    #[arg(long, default_value_t = 4028)]
    pub cgminer_port: u16,
    /// The web port miners answer on.
    #[arg(long, default_value_t = 80)]
    pub http_port: u16,
}

impl PortArgs {
    pub fn miner_ports(&self) -> MinerPorts {
        MinerPorts {
            cgminer: self.cgminer_port,
            http: self.http_port,
        }
    }
}

#[derive(Args)]
pub struct ConsoleArgs {
    /// Where the web console listens.
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:8090")]
    listen: SocketAddr,
    /// Address ranges to discover miners in (10.0.0.0/16, 10.0.1.5-40, a list); repeatable.
    /// Without any (and with --database), the console shows every site's collectors from the
    /// database instead of polling.
    #[arg(long = "scan", value_name = "RANGE")]
    scan: Vec<String>,
    /// Where inventory, history and alerts are kept: sqlite://FILE or
    /// postgres://USER:PASS@HOST/DB. Several collectors (one per --site) may share one
    /// PostgreSQL. [default with --scan: sqlite://hashforge-fleet/fleet.db]
    #[arg(long, value_name = "URL", env = "HASHFORGE_FLEET_DATABASE")]
    database: Option<String>,
    /// The site this collector watches; its miners and alerts carry the name.
    #[arg(long, default_value = hashforge_fleet::poll::DEFAULT_SITE)]
    site: String,
    /// Seconds between poll cycles.
    #[arg(long, default_value_t = 60.0)]
    poll_every: f64,
    /// Seconds between rescans of the ranges, for miners that appear later.
    #[arg(long, default_value_t = 60.0)]
    rescan_every: f64,
    /// A pool miners may mine to (stratum+tcp://host:port); repeatable. Any other raises a
    /// hijack alert. Without one, pools are not checked.
    #[arg(long = "pools-allowed", value_name = "URL")]
    pools_allowed: Vec<String>,
    /// A firmware name prefix that is allowed; repeatable. Without one, not checked.
    #[arg(long = "firmware-allowed", value_name = "PREFIX")]
    firmware_allowed: Vec<String>,
    /// The farm's web password(s) for stock Antminers (user root); repeatable.
    #[arg(
        long = "web-password",
        value_name = "P",
        env = "HASHFORGE_FLEET_WEB_PASSWORD"
    )]
    web_passwords: Vec<String>,
    /// POST opened alerts as JSON to this URL (http://HOST:PORT/path).
    #[arg(long, value_name = "URL")]
    webhook: Option<String>,
    /// Reads in flight at once.
    #[arg(long, default_value_t = 1024)]
    concurrency: usize,
    #[command(flatten)]
    ports: PortArgs,
    /// The hashprice the register's pages assume where a request names none (USD per PH/s
    /// per day).
    #[arg(long, value_name = "USD")]
    hashprice: Option<String>,
    /// The energy price they assume (USD per kWh).
    #[arg(long, value_name = "USD")]
    energy: Option<String>,
    /// The storage rate card for holds whose event named no fee (USD per unit per day).
    #[arg(long, value_name = "USD")]
    storage_rate: Option<String>,
    /// hashforge miners' write token, for curtailment (/curtail).
    #[arg(long, value_name = "T", env = "HASHFORGE_API_TOKEN")]
    api_token: Option<String>,
}

#[derive(Args)]
struct ScanArgs {
    /// Address ranges (10.0.0.0/16, 10.0.1.5-40, 10.0.2.9).
    #[arg(required = true, value_name = "RANGE")]
    ranges: Vec<String>,
    /// One JSON object per miner found.
    #[arg(long)]
    json: bool,
    #[arg(long, default_value_t = 1024)]
    concurrency: usize,
    #[command(flatten)]
    ports: PortArgs,
}

#[derive(Args)]
pub struct SimArgs {
    /// How many miners.
    #[arg(long, default_value_t = 1000)]
    pub miners: u32,
    /// The first miner's address (127.0.0.0/8 only); the others follow it.
    #[arg(long, default_value = "127.16.0.1")]
    pub base: Ipv4Addr,
    /// Kinds and their weights.
    #[arg(
        long,
        default_value = "s21pro=50,s21=15,t21=10,s19xp=5,m60s=15,avalon=2,bitaxe=1,hashforge=2"
    )]
    pub mix: String,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Faults across the fleet per hour (fans, chips, boards, reboots, pool changes).
    #[arg(long, default_value_t = 60.0)]
    pub faults_per_hour: f64,
    /// The farm's web password; 5% of stock machines keep the maker's (root).
    #[arg(long, default_value = "farm")]
    pub web_password: String,
    /// Machines come up over this many seconds, as a farm does after a power cut.
    #[arg(long, default_value_t = 30.0)]
    pub boot_secs: f64,
    /// The write token the simulated hashforge miners take (curtailment).
    #[arg(long, default_value = "farm-token")]
    pub api_token: String,
    #[command(flatten)]
    pub ports: PortArgs,
}

impl SimArgs {
    pub fn spec(&self) -> Result<FleetSpec, String> {
        if self.base.octets()[0] != 127 {
            return Err(format!(
                "--base {}: simulated fleets live on 127.0.0.0/8 only",
                self.base
            ));
        }
        let last = u64::from(u32::from(self.base)) + u64::from(self.miners).saturating_sub(1);
        if last > u64::from(u32::from(Ipv4Addr::new(127, 255, 255, 254))) {
            return Err(format!(
                "{} miners from {} run past 127.255.255.254",
                self.miners, self.base
            ));
        }
        let mut spec = FleetSpec::new(self.miners, self.base);
        spec.mix = parse_mix(&self.mix)?;
        spec.seed = self.seed;
        if !(self.faults_per_hour.is_finite() && self.faults_per_hour >= 0.0) {
            return Err("--faults-per-hour must be 0 or more".into());
        }
        spec.faults_per_hour = self.faults_per_hour;
        spec.farm_password = self.web_password.clone();
        if !(self.boot_secs.is_finite() && self.boot_secs >= 0.0) {
            return Err("--boot-secs must be 0 or more".into());
        }
        spec.boot_spread_secs = self.boot_secs;
        spec.api_token.clone_from(&self.api_token);
        Ok(spec)
    }

    pub fn sim_ports(&self) -> Ports {
        Ports {
            cgminer: self.ports.cgminer_port,
            http: self.ports.http_port,
        }
    }
}

/// The smallest range from the first to the last simulated miner, as `a.b.c.d-e.f.g.h`.
pub fn sim_range(spec: &FleetSpec) -> String {
    let last = Ipv4Addr::from(u32::from(spec.base) + spec.miners.saturating_sub(1));
    format!("{}-{last}", spec.base)
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))
}

pub fn run(args: FleetArgs) -> Result<(), String> {
    crate::logging();
    match args.command {
        Some(FleetCommand::Scan(a)) => scan_once(a),
        Some(FleetCommand::Simulate(a)) => simulate(a),
        Some(FleetCommand::Import(a)) => crate::assets::import(a),
        Some(FleetCommand::Report(a)) => crate::assets::report(*a),
        Some(FleetCommand::Match(a)) => crate::assets::match_miners(a),
        Some(FleetCommand::Curtail(a)) => curtail(a),
        None => console(args.console),
    }
}

fn scan_once(a: ScanArgs) -> Result<(), String> {
    let ranges =
        Ranges::parse_all(a.ranges.iter().map(String::as_str)).map_err(|e| e.to_string())?;
    let rt = runtime()?;
    let collector = Collector::new(CollectorConfig {
        ports: a.ports.miner_ports(),
        concurrency: a.concurrency.clamp(1, 8192),
        ..CollectorConfig::default()
    });
    // Discovery, then one read of every miner found (for the hash rate), both concurrent.
    let report = rt.block_on(async {
        let (report, _) = collector.discover(&ranges).await;
        collector.poll_cycle().await;
        report
    });
    let inv = collector.inventory();
    for f in &report.found {
        let ths = inv
            .get(f.ip)
            .filter(|m| m.online)
            .map(|m| (f64::from(m.hashrate_ths) * 1000.0).round() / 1000.0);
        if a.json {
            println!(
                "{}",
                serde_json::json!({
                    "ip": f.ip,
                    "make": f.make,
                    "model": f.model,
                    "firmware": f.firmware,
                    "contract": f.contract,
                    "hashrate_ths": ths,
                })
            );
        } else {
            println!(
                "{:<16} {:<10} {:<10} {:>12}  {}",
                f.ip,
                f.make,
                f.model,
                ths.map_or("–".to_string(), |t| format!("{t:.2} TH/s")),
                f.firmware
            );
        }
    }
    if !report.unsure.is_empty() {
        let some: Vec<String> = report
            .unsure
            .iter()
            .take(10)
            .map(|ip| ip.to_string())
            .collect();
        eprintln!("timed out every time: {}", some.join(" "));
    }
    eprintln!(
        "scanned {} address(es) in {:.2} s: {} miner(s){}",
        report.addresses,
        report.elapsed.as_secs_f64(),
        report.found.len(),
        if report.unsure.is_empty() {
            String::new()
        } else {
            format!(", {} address(es) timed out every time", report.unsure.len())
        }
    );
    Ok(())
}

/// Whether the price signal says to act: no signal, or the price past its threshold.
fn price_says_act(a: &CurtailArgs) -> Result<Option<String>, String> {
    let Some(price) = a.price else {
        return Ok(None);
    };
    if !price.is_finite() {
        return Err("--price must be a number".into());
    }
    match (a.above, a.below) {
        (Some(l), _) if price > l => Ok(None),
        (Some(l), _) => Ok(Some(format!(
            "price {price} USD/MWh is not above {l}: nothing done"
        ))),
        (_, Some(l)) if price < l => Ok(None),
        (_, Some(l)) => Ok(Some(format!(
            "price {price} USD/MWh is not below {l}: nothing done"
        ))),
        (None, None) => Err("--price needs --above or --below (the threshold)".into()),
    }
}

fn curtail(a: CurtailArgs) -> Result<(), String> {
    use hashforge_fleet::curtail::{Action, Group};
    let action = Action::parse(&a.action)?;
    if let Some(why) = price_says_act(&a)? {
        eprintln!("{why}");
        return Ok(());
    }
    let ranges = Ranges::parse_all(a.scan.iter().map(String::as_str)).map_err(|e| e.to_string())?;
    let rt = runtime()?;
    let collector = Collector::new(CollectorConfig {
        ports: a.ports.miner_ports(),
        concurrency: a.concurrency.clamp(1, 8192),
        web_passwords: a.web_passwords.clone(),
        api_token: a.api_token.clone(),
        log_alerts: false,
        ..CollectorConfig::default()
    });
    let group = Group {
        site: None,
        model: a.model.clone(),
        text: a.text.clone(),
        protect: a.protect.clone(),
    };
    let run = rt.block_on(async {
        let (_, fresh) = collector.discover(&ranges).await;
        collector.enrol(fresh).await;
        collector.poll_cycle().await;
        collector.curtail(action, group).await
    });
    if a.json {
        println!(
            "{}",
            serde_json::to_string(&run).map_err(|e| e.to_string())?
        );
    } else {
        for r in &run.results {
            println!(
                "{:<16} {:<18} {:<10} {:<12} {:<12} {:>9} -> {:>9}  {}",
                r.ip,
                r.serial.as_deref().unwrap_or("–"),
                r.model,
                if r.via.is_empty() { "–" } else { r.via },
                format!("{:?}", r.outcome).to_ascii_lowercase(),
                r.power_before_w.map_or("–".into(), |w| format!("{w:.0} W")),
                r.power_after_w.map_or("–".into(), |w| format!("{w:.0} W")),
                r.detail
            );
        }
    }
    eprintln!(
        "{} on {} machine(s): {} confirmed{}, {} not done, {} left alone; {:.0} W -> {:.0} W in {:.2} s",
        action.label(),
        run.machines,
        run.confirmed,
        run.confirmed_within_ms
            .map_or(String::new(), |ms| format!(" (the last after {:.2} s)", ms as f64 / 1000.0)),
        run.unconfirmed + run.refused + run.unreachable,
        run.unsupported + run.protected,
        run.power_before_w,
        run.power_after_w,
        run.elapsed_secs
    );
    if run.unconfirmed + run.refused + run.unreachable > 0 {
        return Err("some machines did not do it (see above)".into());
    }
    Ok(())
}

fn simulate(a: SimArgs) -> Result<(), String> {
    let spec = a.spec()?;
    let range = sim_range(&spec);
    let rt = runtime()?;
    rt.block_on(async {
        let sim = Simulator::start(SimFleet::new(spec), a.sim_ports())
            .await
            .map_err(|e| e.to_string())?;
        eprintln!(
            "hashforge fleet simulate: {} miners on {range} (cgminer API port {}, web port {}); Ctrl-C stops",
            sim.fleet.len(),
            sim.ports.cgminer,
            sim.ports.http
        );
        eprintln!("  watch them: hashforge fleet --scan {range} --web-password {} --api-token {}", a.web_password, a.api_token);
        let _ = tokio::signal::ctrl_c().await;
        sim.stop().await;
        Ok(())
    })
}

/// The collector's configuration from the console's flags.
pub fn collector_config(c: &ConsoleArgs) -> Result<CollectorConfig, String> {
    for url in &c.pools_allowed {
        if !url.contains("://") {
            return Err(format!(
                "--pools-allowed {url}: write the pool's URL (stratum+tcp://host:port)"
            ));
        }
    }
    Ok(CollectorConfig {
        ports: c.ports.miner_ports(),
        concurrency: c.concurrency.clamp(1, 8192),
        web_passwords: c.web_passwords.clone(),
        rules: Rules {
            pools_allowed: c.pools_allowed.clone(),
            firmware_allowed: c.firmware_allowed.clone(),
            ..Rules::default()
        },
        webhook: c.webhook.clone(),
        ..CollectorConfig::default()
    })
}

/// What a console watches and how.
pub struct ConsoleSetup {
    pub listen: SocketAddr,
    /// The fleet database; with no ranges and no extra miners, the console reads every
    /// site from it instead of polling.
    pub database: Option<String>,
    pub poll_every: Duration,
    pub rescan_every: Duration,
    pub config: CollectorConfig,
    pub ranges: Option<Ranges>,
    /// Single miners on ports of their own (`hashforge up`'s miner).
    pub extra: Vec<(std::net::IpAddr, MinerPorts)>,
    /// Discovery and poll lines at debug level (for `hashforge up`, whose log is the miner's).
    pub quiet: bool,
}

impl ConsoleArgs {
    fn setup(&self) -> Result<ConsoleSetup, String> {
        if !(self.poll_every.is_finite() && self.poll_every >= 1.0) {
            return Err("--poll-every must be at least 1 second".into());
        }
        if !(self.rescan_every.is_finite() && self.rescan_every >= 1.0) {
            return Err("--rescan-every must be at least 1 second".into());
        }
        if self.scan.is_empty() && self.database.is_none() {
            return Err("give the ranges to watch (--scan 10.0.0.0/16, repeatable), or the database whose sites to show (--database URL)".into());
        }
        let site = self.site.trim();
        if site.is_empty() || site.len() > 64 || site.chars().any(char::is_control) {
            return Err(format!(
                "--site `{}`: give a short name (1 to 64 characters)",
                self.site.escape_debug()
            ));
        }
        let ranges = if self.scan.is_empty() {
            None
        } else {
            Some(
                Ranges::parse_all(self.scan.iter().map(String::as_str))
                    .map_err(|e| e.to_string())?,
            )
        };
        let database = self.database.clone().or_else(|| {
            ranges
                .is_some()
                .then(|| "sqlite://hashforge-fleet/fleet.db".to_string())
        });
        let mut config = collector_config(self)?;
        config.site = site.to_owned();
        config.prices = hashforge_fleet::console::PriceDefaults {
            hashprice: self.hashprice.clone(),
            energy: self.energy.clone(),
            storage_rate: self.storage_rate.clone(),
        };
        config.api_token.clone_from(&self.api_token);
        config
            .prices
            .check()
            .map_err(|e| format!("--hashprice/--energy/--storage-rate: {e}"))?;
        Ok(ConsoleSetup {
            listen: self.listen,
            database,
            poll_every: Duration::from_secs_f64(self.poll_every),
            rescan_every: Duration::from_secs_f64(self.rescan_every.max(self.poll_every)),
            config,
            ranges,
            extra: Vec::new(),
            quiet: false,
        })
    }
}

/// Starts the collector and the console in the current runtime; returns the console's
/// address, the collector and a sender that stops both.
pub async fn start_console(
    setup: ConsoleSetup,
) -> Result<(SocketAddr, Arc<Collector>, watch::Sender<bool>), String> {
    let reader = setup.ranges.is_none() && setup.extra.is_empty();
    let collector = match &setup.database {
        Some(url) => {
            let store = hashforge_fleet::store::Store::open(url, &setup.config.site)
                .await
                .map_err(|e| format!("--database {}: {e}", hashforge_store::redact(url)))?;
            if !setup.quiet {
                tracing::info!(
                    "fleet database: {} ({})",
                    hashforge_store::redact(url),
                    if reader {
                        "showing every site".to_string()
                    } else {
                        format!("site {}", setup.config.site)
                    }
                );
            }
            if reader {
                let c = Collector::with_reader(setup.config, store);
                c.refresh().await.map_err(|e| e.to_string())?;
                c
            } else {
                Collector::with_store(setup.config, store)
                    .await
                    .map_err(|e| e.to_string())?
            }
        }
        None => Collector::new(setup.config),
    };
    let listener = tokio::net::TcpListener::bind(setup.listen)
        .await
        .map_err(|e| {
            format!(
                "cannot listen on {}: {e}; pick another (--listen HOST:PORT)",
                setup.listen
            )
        })?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let (stop, stop_rx) = watch::channel(false);
    tokio::spawn(hashforge_fleet::console::serve(
        listener,
        Arc::clone(&collector),
        stop_rx.clone(),
    ));
    let me = Arc::clone(&collector);
    let (every, rescan, quiet, ranges, extra) = (
        setup.poll_every,
        setup.rescan_every,
        setup.quiet,
        setup.ranges,
        setup.extra,
    );
    if reader {
        tokio::spawn(async move {
            let mut stop_rx = stop_rx;
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(every) => {}
                    _ = stop_rx.changed() => return,
                }
                if let Err(e) = me.refresh().await {
                    tracing::warn!("fleet database: {e}");
                }
            }
        });
        return Ok((addr, collector, stop));
    }
    tokio::spawn(async move {
        let mut stop_rx = stop_rx;
        loop {
            let mut fresh = Vec::new();
            for (ip, ports) in &extra {
                match me.watch(*ip, *ports).await {
                    Ok(true) => fresh.push(*ip),
                    Ok(false) => {}
                    Err(e) => tracing::debug!("{ip}: {e}"),
                }
            }
            if let Some(ranges) = &ranges {
                let (report, new) = me.discover(ranges).await;
                let line = format!(
                    "discovery: {} miner(s) in {} address(es), {:.2} s; {} new",
                    report.found.len(),
                    report.addresses,
                    report.elapsed.as_secs_f64(),
                    new.len()
                );
                if quiet {
                    tracing::debug!("{line}");
                } else {
                    tracing::info!("{line}");
                }
                fresh.extend(new);
            }
            me.enrol(fresh).await;
            let until = tokio::time::Instant::now() + rescan;
            while tokio::time::Instant::now() < until {
                let started = tokio::time::Instant::now();
                let r = me.poll_cycle().await;
                let line = format!(
                    "poll: {} of {} answered in {:.2} s, {} alert(s) opened",
                    r.answered, r.miners, r.elapsed_secs, r.alerts_opened
                );
                if quiet {
                    tracing::debug!("{line}");
                } else {
                    tracing::info!("{line}");
                }
                tokio::select! {
                    _ = tokio::time::sleep_until(started + every) => {}
                    _ = stop_rx.changed() => return,
                }
            }
        }
    });
    Ok((addr, collector, stop))
}

fn console(c: ConsoleArgs) -> Result<(), String> {
    let setup = c.setup()?;
    let rt = runtime()?;
    rt.block_on(async {
        let (addr, _collector, stop) = start_console(setup).await?;
        eprintln!("hashforge fleet: console at http://{addr}/ (JSON at /api/fleet, Prometheus at /metrics); Ctrl-C stops");
        let _ = tokio::signal::ctrl_c().await;
        let _ = stop.send(true);
        Ok(())
    })
}
