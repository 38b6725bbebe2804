//! `hashforge bench`: rates measured on this machine, for people (a table and progress
//! bars) and for machines (`--json`, one object per line).

use std::thread;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use hashforge_core::Target;
use hashforge_sha256d::{
    compressions_per_nonce, measure_compressions, Backend, Control, Scanner, Work,
};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

#[derive(Subcommand)]
pub enum BenchCommand {
    /// SHA-256d nonce scanning: MH/s per backend and thread count, against each backend's
    /// roofline (raw compressions per second / compressions a nonce needs).
    Sha256d(Sha256dArgs),
    /// A Stratum V1 load generator: many connections submitting valid shares (found before
    /// the clock starts), reply latency, new-tip notify fan-out, and the pool's memory per
    /// connection. Without --target it starts its own `hashforge pool` on a temporary
    /// regtest chain.
    Pool(PoolBenchArgs),
    /// The fleet console against a simulated fleet in this process: discovery time and
    /// found/expected, poll-cycle time, per-miner read latency, the console's memory per
    /// miner with a day of history, and the miner table's first page.
    Fleet(FleetBenchArgs),
    /// The asset register: generate an assets.csv and an events.csv (makers in the
    /// network's shares, a third of the shipments held by customs, failures and repairs),
    /// import both into a fresh database and time it, then time every report over it.
    Assets(AssetsBenchArgs),
    /// Curtailment: a simulated fleet of hashforge miners and stock Antminers in this
    /// process, found and read once, then put to sleep, woken and held under a power
    /// target, each run timed until every machine confirmed.
    Curtail(CurtailBenchArgs),
}

#[derive(Args)]
pub struct CurtailBenchArgs {
    /// Simulated miners (from 127.16.0.1).
    #[arg(long, default_value_t = 10_000)]
    miners: u32,
    /// Kinds and their weights (as `fleet simulate --mix`).
    #[arg(long, default_value = "hashforge=50,s21pro=50")]
    mix: String,
    /// Commands (and reads) in flight at once.
    #[arg(long, default_value_t = 1024)]
    concurrency: usize,
    /// One JSON object instead of a table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    ports: crate::fleet::PortArgs,
}

#[derive(Args)]
pub struct AssetsBenchArgs {
    /// Machines (each gets 10 events).
    #[arg(long, default_value_t = 100_000)]
    assets: usize,
    /// The database to import into [default: a fresh SQLite file, removed afterwards]; it
    /// should be empty.
    #[arg(long, value_name = "URL")]
    database: Option<String>,
    /// Keep the generated CSVs in this directory.
    #[arg(long, value_name = "DIR")]
    keep: Option<std::path::PathBuf>,
    /// One JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct FleetBenchArgs {
    /// Simulated miners (from 127.16.0.1).
    #[arg(long, default_value_t = 10_000)]
    miners: u32,
    /// Poll cycles to time.
    #[arg(long, default_value_t = 3)]
    cycles: usize,
    /// Reads (and probes) in flight at once.
    #[arg(long, default_value_t = 1024)]
    concurrency: usize,
    /// One JSON object instead of a table.
    #[arg(long)]
    json: bool,
    /// Kinds and their weights (as `fleet simulate --mix`) [default: the simulator's].
    #[arg(long)]
    mix: Option<String>,
    /// The fleet database to write to [default: a fresh SQLite file, removed afterwards].
    #[arg(long, value_name = "URL")]
    database: Option<String>,
    #[command(flatten)]
    ports: crate::fleet::PortArgs,
}

#[derive(Args)]
pub struct PoolBenchArgs {
    /// Any Stratum V1 pool to load instead of a fresh hashforge pool (it must allow a share
    /// difficulty of about 1e-10, and accept the worker names `load.N`).
    #[arg(long, value_name = "HOST:PORT")]
    target: Option<std::net::SocketAddr>,
    /// Concurrent connections (each needs a file descriptor here and in the pool: raise
    /// `ulimit -n` for tens of thousands).
    #[arg(long, default_value_t = 1000)]
    connections: usize,
    /// Shares each connection submits.
    #[arg(long, default_value_t = 20)]
    shares: usize,
    /// Shares each connection keeps in flight.
    #[arg(long, default_value_t = 4)]
    window: usize,
    /// Open loop: submit this many shares per second in total (reply latency at a given
    /// load) instead of as fast as possible (throughput).
    #[arg(long, value_name = "SHARES_PER_SEC")]
    rate: Option<f64>,
    /// Speak Stratum V2 (Noise-encrypted, one extended channel per connection) to the pool's
    /// SV2 endpoint; with --target, name the pool's key with --sv2-authority.
    #[arg(long)]
    sv2: bool,
    /// The authority_pubkey of the SV2 pool at --target.
    #[arg(long, value_name = "KEY", requires_all = ["sv2", "target"])]
    sv2_authority: Option<hashforge_sv2::AuthorityPublicKey>,
    /// One JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct Sha256dArgs {
    /// Only this backend: portable, sha-ni, avx2, avx512 (default: every one this CPU has).
    #[arg(long, env = "HASHFORGE_SHA256D_BACKEND")]
    backend: Option<Backend>,
    /// Only this many threads (default: 1, then one per core).
    #[arg(long)]
    threads: Option<usize>,
    /// Seconds for each measurement (the scan, then the roofline).
    #[arg(long, default_value_t = 4.0)]
    seconds: f64,
    /// Scan one version with nonces in the lanes instead of rolling BIP 320 version bits.
    #[arg(long)]
    no_version_rolling: bool,
    /// One JSON object per line instead of a table.
    #[arg(long)]
    json: bool,
}

pub fn run(cmd: BenchCommand) -> Result<(), String> {
    match cmd {
        BenchCommand::Sha256d(args) => sha256d(args),
        BenchCommand::Pool(args) => pool(args),
        BenchCommand::Fleet(args) => fleet(args),
        BenchCommand::Assets(args) => assets(args),
        BenchCommand::Curtail(args) => curtail(args),
    }
}

/// The first and last address of `miners` (at least 1) simulated miners from 127.16.0.1.
fn sim_addresses(miners: u32) -> Result<(std::net::Ipv4Addr, std::net::Ipv4Addr), String> {
    let base = std::net::Ipv4Addr::new(127, 16, 0, 1);
    let last = u32::from(base)
        .checked_add(miners - 1)
        .map(std::net::Ipv4Addr::from);
    match last {
        Some(last) if last.octets()[0] == 127 => Ok((base, last)),
        _ => Err(format!(
            "{miners} miners do not fit in 127.16.0.1-127.255.255.254"
        )),
    }
}

fn curtail(args: CurtailBenchArgs) -> Result<(), String> {
    use hashforge_fleet::curtail::{Action, Group};
    use hashforge_fleet::poll::{Collector, CollectorConfig};
    use hashforge_fleet::range::Ranges;
    use hashforge_fleet::sim::{FleetSpec, Ports, SimFleet, Simulator};
    if args.miners == 0 {
        return Err("--miners must be at least 1".into());
    }
    let (base, last) = sim_addresses(args.miners)?;
    let ranges = Ranges::parse(&format!("{base}-{last}")).map_err(|e| e.to_string())?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async {
        let mut spec = FleetSpec::new(args.miners, base);
        spec.mix = hashforge_fleet::sim::parse_mix(&args.mix)?;
        spec.boot_spread_secs = 0.0;
        spec.faults_per_hour = 0.0;
        // Warmed up, drawing their nameplate watts.
        spec.head_start_secs = 600.0;
        let token = spec.api_token.clone();
        let password = spec.farm_password.clone();
        let ports = Ports {
            cgminer: args.ports.cgminer_port,
            http: args.ports.http_port,
        };
        let sim = Simulator::start(SimFleet::new(spec), ports)
            .await
            .map_err(|e| e.to_string())?;
        let collector = Collector::new(CollectorConfig {
            ports: args.ports.miner_ports(),
            concurrency: args.concurrency,
            web_passwords: vec![password],
            api_token: Some(token),
            log_alerts: false,
            ..CollectorConfig::default()
        });
        if !args.json {
            eprintln!("finding and reading {} simulated miners ...", args.miners);
        }
        let (_, fresh) = collector.discover(&ranges).await;
        collector.enrol(fresh).await;
        collector.poll_cycle().await;
        let mut runs = Vec::new();
        for action in [
            Action::Sleep,
            Action::Wake,
            Action::PowerTarget { watts: 2500 },
            Action::ClearTarget,
        ] {
            let run = collector.curtail(action, Group::default()).await;
            if !args.json {
                println!(
                    "{:<24} {:>6} machines: {:>6} confirmed, {:>4} not done, {:>6} left alone in {:>6.2} s (last confirmed at {}); {:.1} kW -> {:.1} kW",
                    action.label(),
                    run.machines,
                    run.confirmed,
                    run.unconfirmed + run.refused + run.unreachable,
                    run.unsupported + run.protected,
                    run.elapsed_secs,
                    run.confirmed_within_ms
                        .map_or("–".into(), |ms| format!("{:.2} s", ms as f64 / 1000.0)),
                    run.power_before_w / 1000.0,
                    run.power_after_w / 1000.0,
                );
            }
            runs.push(serde_json::json!({
                "action": action.label(),
                "machines": run.machines,
                "confirmed": run.confirmed,
                "not_done": run.unconfirmed + run.refused + run.unreachable,
                "left_alone": run.unsupported + run.protected,
                "elapsed_secs": run.elapsed_secs,
                "confirmed_within_ms": run.confirmed_within_ms,
                "power_before_w": run.power_before_w,
                "power_after_w": run.power_after_w,
            }));
        }
        if args.json {
            println!("{}", serde_json::json!({ "miners": args.miners, "runs": runs }));
        }
        sim.stop().await;
        Ok::<(), String>(())
    })
}

#[derive(Serialize)]
struct Sha256dResult {
    backend: String,
    threads: usize,
    mhs: f64,
    roofline_mhs: f64,
    ratio: f64,
    version_rolling: bool,
    /// Of all CPUs' time during the hashing run (not the roofline's), in percent.
    cpu_stolen_percent: Option<f64>,
}

fn sha256d(args: Sha256dArgs) -> Result<(), String> {
    if !(args.seconds.is_finite() && args.seconds > 0.0 && args.seconds <= 3600.0) {
        return Err(format!(
            "--seconds must be between 0 and 3600, got {}",
            args.seconds
        ));
    }
    let scanners: Vec<Scanner> = match args.backend {
        Some(b) => vec![Scanner::new(b).map_err(|e| e.to_string())?],
        None => Backend::available()
            .into_iter()
            .map(|b| Scanner::new(b).expect("available"))
            .collect(),
    };
    let cores = thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let thread_counts: Vec<usize> = match args.threads {
        Some(0) => return Err("--threads must be at least 1".into()),
        Some(n) => vec![n],
        None if cores > 1 => vec![1, cores],
        None => vec![1],
    };
    let duration = Duration::from_secs_f64(args.seconds);
    let calibration = hashforge_sha256d::calibration();
    if args.json {
        let rates: serde_json::Map<String, serde_json::Value> = calibration
            .rates
            .iter()
            .map(|(b, hs)| (b.name().to_string(), round2(hs / 1e6).into()))
            .collect();
        let line = serde_json::json!({
            "calibration": { "mhs": rates, "chosen": calibration.chosen.name() }
        });
        println!("{line}");
    } else {
        let rates: Vec<String> = calibration
            .rates
            .iter()
            .map(|(b, hs)| format!("{b} {:.1} MH/s", hs / 1e6))
            .collect();
        println!(
            "calibration (one thread, a few ms each): {} -> {} is the default",
            rates.join(", "),
            calibration.chosen
        );
    }
    if !args.json {
        println!(
            "SHA-256d on {cores} core(s), {} s per run, {}",
            args.seconds,
            if args.no_version_rolling {
                "nonces in lanes"
            } else {
                "rolling BIP 320 version bits"
            }
        );
        println!(
            "{:<10} {:>7} {:>10} {:>14} {:>7} {:>8}",
            "backend", "threads", "MH/s", "roofline MH/s", "ratio", "stolen"
        );
    }
    for scanner in &scanners {
        for &threads in &thread_counts {
            let before = Steal::now();
            let mhs = scan_rate(
                scanner,
                threads,
                duration,
                !args.no_version_rolling,
                args.json,
            )?;
            let stolen = before.zip(Steal::now()).map(|(a, b)| a.percent_until(b));
            let roofline_mhs = roofline(scanner, threads, duration, args.json);
            let r = Sha256dResult {
                backend: scanner.backend().name().to_string(),
                threads,
                mhs: round2(mhs),
                roofline_mhs: round2(roofline_mhs),
                ratio: round2(mhs / roofline_mhs),
                version_rolling: !args.no_version_rolling,
                cpu_stolen_percent: stolen,
            };
            if args.json {
                println!("{}", serde_json::to_string(&r).expect("plain struct"));
            } else {
                let stolen = r
                    .cpu_stolen_percent
                    .map_or("-".to_string(), |p| format!("{p:.1}%"));
                println!(
                    "{:<10} {:>7} {:>10.2} {:>14.2} {:>7.2} {:>8}",
                    r.backend, r.threads, r.mhs, r.roofline_mhs, r.ratio, stolen
                );
            }
        }
    }
    Ok(())
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn progress(label: String, duration: Duration, quiet: bool) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(duration.as_millis() as u64);
    bar.set_style(
        ProgressStyle::with_template("{prefix:>22} [{bar:30}] {msg}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_prefix(label);
    bar
}

/// MH/s of `scanner` on `threads` threads over a synthetic header, for `duration`.
fn scan_rate(
    scanner: &Scanner,
    threads: usize,
    duration: Duration,
    roll: bool,
    quiet: bool,
) -> Result<f64, String> {
    // A header like a pool job's (version 0x20000000, difficulty-1 target); a real one
    // would only change which nonces hit.
    let mut header = [0u8; 80];
    for (i, b) in header.iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(151).wrapping_add(7);
    }
    header[0..4].copy_from_slice(&0x2000_0000u32.to_le_bytes());
    let mut work = Work::new(header, Target::DIFF1);
    if roll {
        work = work
            .with_versions(0x1fff_e000, 0, 1 << 16)
            .map_err(|e| e.to_string())?;
    }
    let ctl = Control::new();
    let bar = progress(
        format!("{} x{}", scanner.backend(), threads),
        duration,
        quiet,
    );
    let start = Instant::now();
    let elapsed = thread::scope(|s| {
        let worker = s.spawn(|| scanner.scan_parallel(&work, threads, &ctl));
        while start.elapsed() < duration {
            thread::sleep(Duration::from_millis(100));
            let secs = start.elapsed().as_secs_f64();
            bar.set_position(start.elapsed().as_millis() as u64);
            bar.set_message(format!("{:.2} MH/s", ctl.hashes() as f64 / secs / 1e6));
        }
        ctl.stop();
        let _hits = worker.join().expect("scan threads do not panic");
        start.elapsed()
    });
    bar.finish_and_clear();
    Ok(ctl.hashes() as f64 / elapsed.as_secs_f64() / 1e6)
}

/// The roofline in MH/s: raw compressions per second on `threads` threads, over the
/// compressions one nonce needs.
fn roofline(scanner: &Scanner, threads: usize, duration: Duration, quiet: bool) -> f64 {
    let bar = progress(
        format!("{} x{} roofline", scanner.backend(), threads),
        duration,
        quiet,
    );
    bar.enable_steady_tick(Duration::from_millis(100));
    let total: f64 = thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| s.spawn(|| measure_compressions(scanner, duration)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("no panic"))
            .sum()
    });
    bar.finish_and_clear();
    total / compressions_per_nonce() / 1e6
}

/// CPU seconds used so far by (the pool, the load generator), when each knows, and the
/// hypervisor's steal so far.
type CpuMark = (Option<f64>, Option<f64>, Option<Steal>);

/// Time the hypervisor kept this virtual machine's CPUs from running while they had work
/// (`/proc/stat`'s `steal`, Linux; 0 on bare metal). A shared host taking a fifth of the
/// CPUs moves hash rates and latency tails more than most changes measured with them, so
/// the benches report it beside their figures.
#[derive(Clone, Copy, Debug)]
struct Steal {
    /// Summed over the CPUs, seconds.
    seconds: f64,
    cpus: usize,
    /// When it was read.
    at: Instant,
}

impl Steal {
    fn now() -> Option<Steal> {
        Steal::parse(&std::fs::read_to_string("/proc/stat").ok()?)
    }

    /// The `cpu` line's eighth value (ticks of 1/100 s, Linux's USER_HZ), and the count of
    /// `cpuN` lines.
    fn parse(stat: &str) -> Option<Steal> {
        let total = stat.lines().find(|l| l.starts_with("cpu "))?;
        let ticks: u64 = total.split_whitespace().nth(8)?.parse().ok()?;
        let cpus = stat
            .lines()
            .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit))
            .count();
        (cpus > 0).then_some(Steal {
            seconds: ticks as f64 / 100.0,
            cpus,
            at: Instant::now(),
        })
    }

    /// The share of all CPUs' time stolen from `self` to `later`, in percent.
    fn percent_until(self, later: Steal) -> f64 {
        let stolen = (later.seconds - self.seconds).max(0.0);
        let wall = later.at.duration_since(self.at).as_secs_f64();
        round2(100.0 * stolen / (wall.max(1e-9) * self.cpus as f64))
    }
}

/// CPU seconds (user + system) a process has used: `/proc/PID/stat` fields 14 and 15, in
/// clock ticks of 1/100 s (Linux's USER_HZ on every architecture hashforge runs on).
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; the fields after it are plain.
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some((user + system) as f64 / 100.0)
}

/// Resident memory of a process, KiB (Linux).
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn pool(args: PoolBenchArgs) -> Result<(), String> {
    use hashforge_pool::loadgen::{run, LoadConfig};
    use std::sync::{Arc, Mutex};
    if args.connections == 0 || args.shares == 0 || args.window == 0 {
        return Err("--connections, --shares and --window must be at least 1".into());
    }
    if let Some(r) = args.rate.filter(|r| !(r.is_finite() && *r > 0.0)) {
        return Err(format!(
            "--rate must be a positive number of shares per second, got {r}"
        ));
    }
    if args.sv2 && args.target.is_some() && args.sv2_authority.is_none() {
        return Err("--sv2 with --target needs the pool's --sv2-authority KEY".into());
    }
    let mut child = None;
    let mut sv2_key = args.sv2_authority;
    let target = match args.target {
        Some(t) => t,
        None => {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map_err(|e| e.to_string())?
                .port();
            let dir =
                std::env::temp_dir().join(format!("hashforge-bench-pool-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            let exe = std::env::current_exe().map_err(|e| e.to_string())?;
            // With --sv2 the pool listens for V2 on a second port and the load goes there.
            let sv2_port = if args.sv2 {
                Some(
                    std::net::TcpListener::bind("127.0.0.1:0")
                        .and_then(|l| l.local_addr())
                        .map_err(|e| e.to_string())?
                        .port(),
                )
            } else {
                None
            };
            let mut command = std::process::Command::new(exe);
            command.args([
                "pool",
                "--stratum",
                &format!("127.0.0.1:{port}"),
                "--min-difficulty",
                "1e-10",
                "--start-difficulty",
                "1e-10",
            ]);
            if let Some(p) = sv2_port {
                command.args(["--sv2", &format!("127.0.0.1:{p}")]);
            }
            let c = command
                .arg("--data-dir")
                .arg(&dir)
                .env("RUST_LOG", "warn")
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .map_err(|e| format!("cannot start hashforge pool: {e}"))?;
            let deadline = Instant::now() + Duration::from_secs(30);
            while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
                if Instant::now() > deadline {
                    return Err("the pool did not start listening within 30 s".into());
                }
                thread::sleep(Duration::from_millis(50));
            }
            let port = match sv2_port {
                Some(p) => {
                    while std::net::TcpStream::connect(("127.0.0.1", p)).is_err() {
                        if Instant::now() > deadline {
                            return Err(
                                "the pool's SV2 endpoint did not start listening within 30 s"
                                    .into(),
                            );
                        }
                        thread::sleep(Duration::from_millis(50));
                    }
                    let key = hashforge_pool::sv2_key_in(&dir)
                        .map_err(|e| e.to_string())?
                        .ok_or("the pool listens for SV2 but kept no key")?;
                    sv2_key = Some(key.public());
                    p
                }
                None => port,
            };
            child = Some((c, dir));
            std::net::SocketAddr::from(([127, 0, 0, 1], port))
        }
    };
    let pid = child.as_ref().map(|(c, _)| c.id());
    let rss_idle = pid.and_then(rss_kib);
    let rss_connected = Arc::new(Mutex::new(None));
    // CPU seconds of (the pool, this generator) when submitting starts, when it ends and
    // the new tip is triggered, and at the end: what each side spent on each phase.
    let cpu_marks: Arc<Mutex<Vec<CpuMark>>> = Arc::default();
    let me = std::process::id();
    let bar = if args.json {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(args.connections as u64)
    };
    bar.set_style(
        ProgressStyle::with_template("{msg:>30} [{bar:30}] {pos}/{len}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    let (bar2, rss2, marks2) = (
        bar.clone(),
        Arc::clone(&rss_connected),
        Arc::clone(&cpu_marks),
    );
    let config = LoadConfig {
        target,
        connections: args.connections,
        shares_per_connection: args.shares,
        window: args.window,
        timeout: Duration::from_secs(120),
        rate: args.rate,
        sv2: sv2_key,
    };
    let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    let report = runtime.block_on(run(config, move |phase, n| {
        bar2.set_message(phase.to_string());
        bar2.set_position(n as u64);
        if phase == "submitting" {
            *rss2.lock().unwrap_or_else(|p| p.into_inner()) = pid.and_then(rss_kib);
        }
        if phase != "connecting and finding shares" {
            let mark = (pid.and_then(cpu_seconds), cpu_seconds(me), Steal::now());
            marks2.lock().unwrap_or_else(|p| p.into_inner()).push(mark);
        }
    }));
    // Marks at "submitting", "timing the new tip's notify" and "timed": (pool, generator)
    // CPU seconds spent submitting, then on the new tip.
    let marks = std::mem::take(&mut *cpu_marks.lock().unwrap_or_else(|p| p.into_inner()));
    let spent = |from: usize, pick: fn(&CpuMark) -> Option<f64>| {
        Some(pick(marks.get(from + 1)?)? - pick(marks.get(from)?)?)
    };
    let pool_cpu_submit = spent(0, |m| m.0);
    let gen_cpu_submit = spent(0, |m| m.1);
    let pool_cpu_fanout = spent(1, |m| m.0);
    let gen_cpu_fanout = spent(1, |m| m.1);
    let pool_us_per_share = pool_cpu_submit.map(|c| c * 1e6 / (report.accepted.max(1)) as f64);
    let stolen_submit = match (
        marks.first().and_then(|m| m.2),
        marks.get(1).and_then(|m| m.2),
    ) {
        (Some(a), Some(b)) => Some(a.percent_until(b)),
        _ => None,
    };
    bar.finish_and_clear();
    let per_conn_kib = match (
        rss_idle,
        *rss_connected.lock().unwrap_or_else(|p| p.into_inner()),
    ) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a) as f64 / args.connections as f64),
        _ => None,
    };
    if let Some((mut c, dir)) = child {
        let _ = c.kill();
        let _ = c.wait();
        let _ = std::fs::remove_dir_all(dir);
    }
    if args.json {
        let mut v = serde_json::to_value(&report).expect("plain struct");
        v["protocol"] = serde_json::json!(if sv2_key.is_some() { "sv2" } else { "v1" });
        v["pool_kib_per_connection"] = serde_json::json!(per_conn_kib);
        v["pool_cpu_s_submitting"] = serde_json::json!(pool_cpu_submit);
        v["generator_cpu_s_submitting"] = serde_json::json!(gen_cpu_submit);
        v["pool_cpu_us_per_share"] = serde_json::json!(pool_us_per_share);
        v["cpu_stolen_percent_submitting"] = serde_json::json!(stolen_submit);
        v["pool_cpu_s_new_tip"] = serde_json::json!(pool_cpu_fanout);
        v["generator_cpu_s_new_tip"] = serde_json::json!(gen_cpu_fanout);
        println!("{v}");
    } else {
        let protocol = if sv2_key.is_some() {
            "Stratum V2"
        } else {
            "Stratum V1"
        };
        println!(
            "{} {protocol} connections ({} failed) to {target}",
            report.connections, report.connect_failures
        );
        for (why, n) in &report.connect_errors {
            println!("  {n} failed: {why}");
        }
        println!(
            "shares: {} sent, {} accepted, {} rejected in {:.2} s: {:.0} shares/s",
            report.shares_sent,
            report.accepted,
            report.rejected,
            report.seconds,
            report.shares_per_second
        );
        println!(
            "reply latency: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            report.latency_ms_p50, report.latency_ms_p99, report.latency_ms_max
        );
        println!(
            "new-tip notify reached {} connections: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            report.fanout_reached, report.fanout_ms_p50, report.fanout_ms_p99, report.fanout_ms_max
        );
        if let Some(k) = per_conn_kib {
            println!("pool memory per connection: {k:.1} KiB");
        }
        if let (Some(p), Some(g), Some(us)) = (pool_cpu_submit, gen_cpu_submit, pool_us_per_share) {
            println!(
                "CPU while submitting: pool {p:.2} s ({us:.1} us per accepted share), generator {g:.2} s"
            );
        }
        if let (Some(p), Some(g)) = (pool_cpu_fanout, gen_cpu_fanout) {
            println!("CPU for the new tip: pool {p:.2} s, generator {g:.2} s");
        }
        if let Some(st) = stolen_submit {
            println!(
                "CPU stolen by the hypervisor while submitting: {st:.1}% of the CPUs' time{}",
                if st >= 5.0 {
                    " (a busy host: latency tails measure it as much as the pool)"
                } else {
                    ""
                }
            );
        }
    }
    Ok(())
}

#[derive(Serialize)]
struct FleetBenchResult {
    miners: u32,
    scan_range: String,
    scan_addresses: u64,
    scan_secs: f64,
    found: usize,
    poll_cycles: Vec<hashforge_fleet::poll::CycleReport>,
    console_rss_mib: f64,
    console_bytes_per_miner: f64,
    table_page_ms: f64,
    overview_ms: f64,
    /// The database's growth per miner and day of history (hourly rows, addresses).
    db_bytes_per_miner_day: f64,
    /// That, for 100,000 miners over 30 days.
    db_month_100k_gb: f64,
    /// Writing a day of history for every miner.
    db_day_write_secs: f64,
    database: String,
}

/// The smallest CIDR block, /16 or larger, that holds `first..=last`.
fn covering_block(first: std::net::Ipv4Addr, last: std::net::Ipv4Addr) -> String {
    let (a, b) = (u32::from(first), u32::from(last));
    let mut bits = 16;
    while bits > 8 && (a >> (32 - bits)) != (b >> (32 - bits)) {
        bits -= 1;
    }
    let base = a & (u32::MAX << (32 - bits));
    format!("{}/{bits}", std::net::Ipv4Addr::from(base))
}

fn fleet(args: FleetBenchArgs) -> Result<(), String> {
    use hashforge_fleet::poll::{Collector, CollectorConfig};
    use hashforge_fleet::range::Ranges;
    use hashforge_fleet::sim::{FleetSpec, Ports, SimFleet, Simulator};
    use hashforge_fleet::state::{Sample, HOURLY};
    use std::sync::Arc;
    if args.miners == 0 || args.cycles == 0 {
        return Err("--miners and --cycles must be at least 1".into());
    }
    let (base, last) = sim_addresses(args.miners)?;
    let block = covering_block(base, last);
    let ranges = Ranges::parse(&block).map_err(|e| e.to_string())?;
    let pid = std::process::id();
    let scratch = std::env::temp_dir().join(format!("hashforge-bench-fleet-{pid}"));
    let database = args
        .database
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}", scratch.join("fleet.db").display()));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let result = rt.block_on(async {
        let mut spec = FleetSpec::new(args.miners, base);
        if let Some(mix) = &args.mix {
            spec.mix = hashforge_fleet::sim::parse_mix(mix)?;
        }
        // Every machine up from the start and no faults: this measures the console, and a
        // rebooting machine would rightly count as missed.
        spec.boot_spread_secs = 0.0;
        spec.faults_per_hour = 0.0;
        let ports = Ports {
            cgminer: args.ports.cgminer_port,
            http: args.ports.http_port,
        };
        let sim = Simulator::start(SimFleet::new(spec), ports)
            .await
            .map_err(|e| e.to_string())?;
        let store = hashforge_fleet::store::Store::open(&database, "bench")
            .await
            .map_err(|e| e.to_string())?;
        let collector = Collector::with_store(
            CollectorConfig {
                ports: args.ports.miner_ports(),
                concurrency: args.concurrency,
                ..CollectorConfig::default()
            },
            store.clone(),
        )
        .await
        .map_err(|e| e.to_string())?;
        let rss_before = rss_kib(pid).unwrap_or(0);
        if !args.json {
            eprintln!(
                "scanning {block} ({} addresses) for {} simulated miners ...",
                ranges.len(),
                args.miners
            );
        }
        let (scan, _) = collector.discover(&ranges).await;
        let mut cycles = Vec::new();
        for i in 0..args.cycles {
            let r = collector.poll_cycle().await;
            if !args.json {
                eprintln!(
                    "poll cycle {}: {} of {} answered in {:.2} s, written in {:.2} s",
                    i + 1,
                    r.answered,
                    r.miners,
                    r.elapsed_secs,
                    r.store_secs
                );
            }
            cycles.push(r);
        }
        // A day of history as the rollup keeps it (the last hour per minute, hourly means
        // in memory), and written to the database as the collector writes it.
        store.checkpoint().await.map_err(|e| e.to_string())?;
        let (_, bytes_before) = store.size().await.map_err(|e| e.to_string())?;
        // Hour by hour, as a running collector meets them: each hour's rows closed at the
        // top of the hour and written with that cycle.
        let now = hashforge_fleet::unix_now();
        let last = cycles.last().cloned().unwrap_or_default();
        let mut day_rows = 0;
        let mut db_write = Duration::ZERO;
        for hour in 0..(HOURLY + 1) as u64 {
            let hours = {
                let mut inv = collector
                    .inventory
                    .write()
                    .unwrap_or_else(|e| e.into_inner());
                let mut hours = Vec::with_capacity(inv.miners.len());
                for m in inv.miners.iter_mut() {
                    for k in 0..60 {
                        let sample = Sample {
                            at: hashforge_fleet::state::secs32(
                                now - 86_400 - 3_600 + (hour * 60 + k) * 60,
                            ),
                            hashrate_ths: m.hashrate_ths,
                            temp: 70.0,
                            power_w: m.power_w.unwrap_or(f32::NAN),
                        };
                        if let Some(h) = m.record(sample, true) {
                            hours.push((m.ip, h));
                        }
                    }
                }
                hours
            };
            day_rows += hours.len();
            let t = Instant::now();
            collector
                .persist(hours, &last)
                .await
                .map_err(|e| e.to_string())?;
            db_write += t.elapsed();
        }
        // Each of those cycles also rewrote every miner's reading, as a real one does.
        let db_day_write_secs = db_write.as_secs_f64();
        store.checkpoint().await.map_err(|e| e.to_string())?;
        let (_, bytes_after) = store.size().await.map_err(|e| e.to_string())?;
        let days = day_rows as f64 / HOURLY as f64 / f64::from(args.miners);
        let db_bytes_per_miner_day = bytes_after.saturating_sub(bytes_before) as f64
            / f64::from(args.miners)
            / days.max(1e-9);
        store.close().await;
        let rss_after = rss_kib(pid).unwrap_or(0);
        // The UI: the first page of the table, filtered and sorted, and the overview.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| e.to_string())?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        tokio::spawn(hashforge_fleet::console::serve(
            listener,
            Arc::clone(&collector),
            stop_rx,
        ));
        let table_page_ms = page_ms(addr, "/miners?q=S21&sort=hashrate&dir=desc", 7)
            .await?
            .0;
        let overview_ms = page_ms(addr, "/", 7).await?.0;
        let _ = stop.send(true);
        sim.stop().await;
        let grown = rss_after.saturating_sub(rss_before) as f64 * 1024.0;
        Ok::<_, String>(FleetBenchResult {
            miners: args.miners,
            scan_range: block.clone(),
            scan_addresses: scan.addresses,
            scan_secs: scan.elapsed.as_secs_f64(),
            found: scan.found.len(),
            poll_cycles: cycles,
            console_rss_mib: grown / 1048576.0,
            console_bytes_per_miner: grown / f64::from(args.miners),
            table_page_ms,
            overview_ms,
            db_bytes_per_miner_day,
            db_month_100k_gb: db_bytes_per_miner_day * 100_000.0 * 30.0 / 1e9,
            db_day_write_secs,
            database: hashforge_store::redact(&database),
        })
    });
    if args.database.is_none() {
        let _ = std::fs::remove_dir_all(&scratch);
    }
    let result = result?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string(&result).map_err(|e| e.to_string())?
        );
        return Ok(());
    }
    println!(
        "discovery    {} addresses of {} in {:.2} s: {} of {} miners found",
        result.scan_addresses, result.scan_range, result.scan_secs, result.found, result.miners
    );
    for (i, c) in result.poll_cycles.iter().enumerate() {
        println!(
            "poll {}       {} of {} read in {:.2} s ({} after a retry, {} missed); a read p50 {:.1} ms, p99 {:.1} ms",
            i + 1,
            c.answered,
            c.miners,
            c.elapsed_secs,
            c.retried,
            c.missed,
            c.read_p50_ms,
            c.read_p99_ms
        );
    }
    println!(
        "memory       the console grew {:.1} MiB with a day of history: {:.0} bytes per miner",
        result.console_rss_mib, result.console_bytes_per_miner
    );
    println!(
        "UI           miner table, first page filtered and sorted: {:.1} ms; overview {:.1} ms",
        result.table_page_ms, result.overview_ms
    );
    println!(
        "disk         {:.0} bytes per miner-day of history ({}): {:.1} GB for 100,000 miners over 30 days; a day of {} miners' hours, with every reading each hour, written in {:.2} s",
        result.db_bytes_per_miner_day,
        result.database,
        result.db_month_100k_gb,
        result.miners,
        result.db_day_write_secs
    );
    Ok(())
}

/// A console page's time over `n` GETs, as a person's browser waits for it (the whole
/// body read): (median, slowest) in milliseconds. A page that is not a 200 is an error.
async fn page_ms(addr: std::net::SocketAddr, path: &str, n: usize) -> Result<(f64, f64), String> {
    let mut ms = Vec::with_capacity(n);
    for _ in 0..n.max(1) {
        let t = Instant::now();
        let r = hashforge_fleet::http::get(addr, path, None, Duration::from_secs(30))
            .await
            .map_err(|e| format!("GET {path}: {e}"))?;
        ms.push(t.elapsed().as_secs_f64() * 1e3);
        if r.code != 200 {
            return Err(format!("GET {path}: HTTP {}", r.code));
        }
    }
    ms.sort_by(f64::total_cmp);
    Ok((ms[ms.len() / 2], ms[ms.len() - 1]))
}

fn assets(args: AssetsBenchArgs) -> Result<(), String> {
    use hashforge_fleet::assets::{parse_assets, parse_events, synthetic};
    use hashforge_fleet::economics::{Market, Series};
    use hashforge_fleet::money::Usd;
    use hashforge_fleet::reports::{self, Params};
    use hashforge_fleet::tariffs::Schedule;
    use std::time::Instant;
    if args.assets == 0 {
        return Err("--assets must be at least 1".into());
    }
    let scratch =
        std::env::temp_dir().join(format!("hashforge-bench-assets-{}", std::process::id()));
    let database = args
        .database
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}", scratch.join("fleet.db").display()));
    let t = Instant::now();
    let (assets_csv, events_csv) = synthetic::csvs(args.assets, 1);
    let generate_s = t.elapsed().as_secs_f64();
    if let Some(dir) = &args.keep {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        for (name, text) in [("assets.csv", &assets_csv), ("events.csv", &events_csv)] {
            std::fs::write(dir.join(name), text).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let result = rt.block_on(async {
        let store = hashforge_fleet::store::Store::open(&database, "bench")
            .await
            .map_err(|e| e.to_string())?;
        let tariffs = Schedule::builtin();
        let t = Instant::now();
        let rows = parse_assets(&assets_csv, &tariffs).map_err(|e| e.to_string())?;
        let parse_assets_s = t.elapsed().as_secs_f64();
        store.import_assets(&rows).await.map_err(|e| e.to_string())?;
        let assets_s = t.elapsed().as_secs_f64();
        drop(rows);
        let t = Instant::now();
        let rows = parse_events(&events_csv).map_err(|e| e.to_string())?;
        let parse_events_s = t.elapsed().as_secs_f64();
        let done = store.import_events(&rows).await.map_err(|e| e.to_string())?;
        let events_s = t.elapsed().as_secs_f64();
        drop(rows);
        let params = Params {
            at: "2026-01-01".parse().map_err(|e: hashforge_fleet::date::BadDate| e.to_string())?,
            market: Market {
                hashprice: Series::flat(Usd::from_dollars(45)),
                energy: Series::flat(Usd::parse("0.06").map_err(|e| e.to_string())?),
                growth_per_month: 0.02,
                storage_rate: None,
            },
            tariffs,
            what_if: None,
            per_machine: false,
        };
        // What `hashforge fleet report NAME` does: read what the report needs, compute it.
        let mut timings = Vec::new();
        for name in reports::NAMES {
            let t = Instant::now();
            let register = store
                .register_with(reports::parts(name))
                .await
                .map_err(|e| e.to_string())?;
            let (json, _) = reports::by_name(name, &register, &params).ok_or("unknown report")?;
            let text = json.to_string();
            timings.push((name, t.elapsed().as_secs_f64(), text.len()));
        }
        // What the console does: the whole register read once, then every page from it.
        let t = Instant::now();
        let register = store.register_cached().await.map_err(|e| e.to_string())?;
        let load_s = t.elapsed().as_secs_f64();
        drop(register);
        let collector = hashforge_fleet::poll::Collector::with_store(
            hashforge_fleet::poll::CollectorConfig::default(),
            store.clone(),
        )
        .await
        .map_err(|e| e.to_string())?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| e.to_string())?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        tokio::spawn(hashforge_fleet::console::serve(listener, collector, stop_rx));
        let serial = synthetic::serial(args.assets / 2);
        let mut pages = Vec::new();
        for path in [
            "/register".to_string(),
            "/register/machines".into(),
            format!("/register/machine/{serial}"),
        ]
        .into_iter()
        .chain(reports::NAMES.iter().map(|n| format!("/register/{n}")))
        {
            let (p50, max) = page_ms(addr, &path, 5).await?;
            pages.push((path, p50, max));
        }
        let _ = stop.send(true);
        store.close().await;
        Ok::<_, String>(serde_json::json!({
            "assets": args.assets,
            "events": done.rows,
            "generate_s": generate_s,
            "assets_parse_s": parse_assets_s,
            "assets_import_s": assets_s,
            "events_parse_s": parse_events_s,
            "events_import_s": events_s,
            "import_total_s": assets_s + events_s,
            "register_load_s": load_s,
            "reports_s": timings.iter().map(|(n, s, _)| (n.to_string(), serde_json::json!(s))).collect::<serde_json::Map<_, _>>(),
            "report_json_bytes": timings.iter().map(|(n, _, b)| (n.to_string(), serde_json::json!(b))).collect::<serde_json::Map<_, _>>(),
            "pages_ms": pages.iter().map(|(p, p50, max)| (p.clone(), serde_json::json!({"p50": p50, "max": max}))).collect::<serde_json::Map<_, _>>(),
        }))
    });
    if args.database.is_none() {
        let _ = std::fs::remove_dir_all(&scratch);
    }
    let r = result?;
    if args.json {
        println!("{r}");
    } else {
        println!(
            "imported {} assets in {:.2} s (parse {:.2} s) and {} events in {:.2} s (parse {:.2} s): {:.2} s in all",
            r["assets"], r["assets_import_s"].as_f64().unwrap_or(0.0), r["assets_parse_s"].as_f64().unwrap_or(0.0),
            r["events"], r["events_import_s"].as_f64().unwrap_or(0.0), r["events_parse_s"].as_f64().unwrap_or(0.0),
            r["import_total_s"].as_f64().unwrap_or(0.0)
        );
        if let Some(m) = r["reports_s"].as_object() {
            for (name, s) in m {
                println!(
                    "report {name:<10} {:.3} s (what `fleet report` does: its part of the register read, then computed)",
                    s.as_f64().unwrap_or(0.0)
                );
            }
        }
        println!(
            "console: the whole register read in {:.3} s, once per change; then its pages (5 GETs each):",
            r["register_load_s"].as_f64().unwrap_or(0.0)
        );
        if let Some(m) = r["pages_ms"].as_object() {
            for (path, t) in m {
                println!(
                    "page {path:<36} {:>7.1} ms median, {:>7.1} ms slowest",
                    t["p50"].as_f64().unwrap_or(0.0),
                    t["max"].as_f64().unwrap_or(0.0)
                );
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steal_is_the_cpu_lines_eighth_value_over_its_cpus() {
        let stat = "cpu  5759767 516727 873644 3128909 84045 0 112123 147000 0 0\n\
                    cpu0 2879883 258363 436822 1564454 42022 0 56061 73500 0 0\n\
                    cpu1 2879884 258364 436822 1564455 42023 0 56062 73500 0 0\n\
                    intr 1 2 3\nctxt 42\n";
        let a = Steal::parse(stat).expect("parses");
        assert_eq!(a.cpus, 2);
        assert!((a.seconds - 1470.0).abs() < 1e-9);
        // 3 s stolen of 2 CPUs over 10 s: 15%.
        let b = Steal {
            seconds: a.seconds + 3.0,
            cpus: 2,
            at: a.at + Duration::from_secs(10),
        };
        assert_eq!(a.percent_until(b), 15.0);
        assert!(
            Steal::parse("cpu  1 2 3\n").is_none(),
            "a kernel without steal"
        );
        assert!(Steal::parse("intr 1\n").is_none());
    }
}
