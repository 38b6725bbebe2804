//! `hashforge fleet`: the console (discover, poll, alert, serve the web UI), `fleet scan`
//! (one-shot discovery) and `fleet simulate` (a simulated fleet on loopback addresses).

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Subcommand};
use hashforge_fleet::alerts::Rules;
use hashforge_fleet::client::MinerPorts;
use hashforge_fleet::poll::{Collector, CollectorConfig};
use hashforge_fleet::range::Ranges;
use hashforge_fleet::scan::{scan, ScanConfig};
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
    #[arg(long = "scan", value_name = "RANGE")]
    scan: Vec<String>,
    /// Seconds between poll cycles.
    #[arg(long, default_value_t = 60.0)]
    poll_every: f64,
    /// Seconds between rescans of the ranges, for miners that appear later.
    #[arg(long, default_value_t = 600.0)]
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
        default_value = "s21pro=60,s21=20,t21=10,s19xp=7,bitaxe=1,hashforge=2"
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
        None => console(args.console),
    }
}

fn scan_once(a: ScanArgs) -> Result<(), String> {
    let ranges =
        Ranges::parse_all(a.ranges.iter().map(String::as_str)).map_err(|e| e.to_string())?;
    let rt = runtime()?;
    let report = rt.block_on(scan(
        &ranges,
        ScanConfig {
            ports: a.ports.miner_ports(),
            concurrency: a.concurrency,
            ..ScanConfig::default()
        },
    ));
    // A read per miner for the hash rate the JSON carries.
    let readings = rt.block_on(async {
        let mut out = Vec::new();
        for f in &report.found {
            let expected = hashforge_fleet::poll::expected_chips(&f.model);
            let r = hashforge_fleet::client::read(
                f.ip,
                f.contract,
                a.ports.miner_ports(),
                expected,
                Duration::from_secs(3),
            )
            .await;
            out.push(r.ok().map(|s| s.hashrate.last_5s.as_ths()));
        }
        out
    });
    for (f, ths) in report.found.iter().zip(&readings) {
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
        eprintln!("  watch them: hashforge fleet --scan {range} --web-password {}", a.web_password);
        let _ = tokio::signal::ctrl_c().await;
        sim.stop().await;
        Ok(())
    })
}

/// The collector's configuration from the console's flags.
fn collector_config(c: &ConsoleArgs) -> Result<CollectorConfig, String> {
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

/// Starts the collector and the console in the current runtime; returns the console's
/// address and a sender that stops both.
pub async fn start_console(
    c: &ConsoleArgs,
    ranges: Ranges,
) -> Result<(SocketAddr, Arc<Collector>, watch::Sender<bool>), String> {
    if !(c.poll_every.is_finite() && c.poll_every >= 1.0) {
        return Err("--poll-every must be at least 1 second".into());
    }
    let collector = Collector::new(collector_config(c)?);
    let listener = tokio::net::TcpListener::bind(c.listen).await.map_err(|e| {
        format!(
            "cannot listen on {}: {e}; pick another (--listen HOST:PORT)",
            c.listen
        )
    })?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let (stop, stop_rx) = watch::channel(false);
    tokio::spawn(hashforge_fleet::console::serve(
        listener,
        Arc::clone(&collector),
        stop_rx.clone(),
    ));
    let every = Duration::from_secs_f64(c.poll_every);
    let rescan = Duration::from_secs_f64(c.rescan_every.max(c.poll_every));
    let me = Arc::clone(&collector);
    tokio::spawn(async move {
        let mut stop_rx = stop_rx;
        loop {
            let (report, fresh) = me.discover(&ranges).await;
            tracing::info!(
                "discovery: {} miner(s) in {} address(es), {:.2} s; {} new",
                report.found.len(),
                report.addresses,
                report.elapsed.as_secs_f64(),
                fresh.len()
            );
            me.enrol(fresh).await;
            let until = tokio::time::Instant::now() + rescan;
            while tokio::time::Instant::now() < until {
                let started = tokio::time::Instant::now();
                let r = me.poll_cycle().await;
                tracing::info!(
                    "poll: {} of {} answered in {:.2} s, {} alert(s) opened",
                    r.answered,
                    r.miners,
                    r.elapsed_secs,
                    r.alerts_opened
                );
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
    if c.scan.is_empty() {
        return Err("give the ranges to watch: --scan 10.0.0.0/16 (repeatable)".into());
    }
    let ranges = Ranges::parse_all(c.scan.iter().map(String::as_str)).map_err(|e| e.to_string())?;
    let rt = runtime()?;
    rt.block_on(async {
        let (addr, _collector, stop) = start_console(&c, ranges).await?;
        eprintln!("hashforge fleet: console at http://{addr}/ (JSON at /api/fleet, Prometheus at /metrics); Ctrl-C stops");
        let _ = tokio::signal::ctrl_c().await;
        let _ = stop.send(true);
        Ok(())
    })
}
