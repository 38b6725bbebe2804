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
    }
}

#[derive(Serialize)]
struct Sha256dResult {
    backend: String,
    threads: usize,
    mhs: f64,
    roofline_mhs: f64,
    ratio: f64,
    version_rolling: bool,
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
            "{:<10} {:>7} {:>10} {:>14} {:>7}",
            "backend", "threads", "MH/s", "roofline MH/s", "ratio"
        );
    }
    for scanner in &scanners {
        for &threads in &thread_counts {
            let mhs = scan_rate(
                scanner,
                threads,
                duration,
                !args.no_version_rolling,
                args.json,
            )?;
            let roofline_mhs = roofline(scanner, threads, duration, args.json);
            let r = Sha256dResult {
                backend: scanner.backend().name().to_string(),
                threads,
                mhs: round2(mhs),
                roofline_mhs: round2(roofline_mhs),
                ratio: round2(mhs / roofline_mhs),
                version_rolling: !args.no_version_rolling,
            };
            if args.json {
                println!("{}", serde_json::to_string(&r).expect("plain struct"));
            } else {
                println!(
                    "{:<10} {:>7} {:>10.2} {:>14.2} {:>7.2}",
                    r.backend, r.threads, r.mhs, r.roofline_mhs, r.ratio
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
