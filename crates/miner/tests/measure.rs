//! Measurements for the issue's targets; ignored by default, they print numbers:
//!
//! ```sh
//! cargo test --release -p hashforge-miner --test measure -- --ignored --nocapture --test-threads 1
//! ```
//!
//! - the CPU device's rate mining on a loopback pool (from accepted difficulty and from the
//!   device's own hash count) against the bare scanner on the same threads;
//! - clean notify to every device thread hashing the new job (p50, p99, max);
//! - failover: primary killed to the first share accepted by the backup.

mod support;

use std::time::{Duration, Instant};

use hashforge_core::{HashRate, Target};
use hashforge_miner::{DeviceSpec, Miner};
use hashforge_sha256d::{Control, Scanner, Work};
use support::{miner_config, wait_for, TestPool};

const THREADS: usize = 2;

fn bench_rate(seconds: f64) -> f64 {
    let scanner = Scanner::detect();
    let work = Work::new([3u8; 80], Target::from_le_bytes([0; 32]))
        .with_versions(0x1fffe000, 0, 1 << 16)
        .unwrap();
    let ctl = Control::new();
    let start = Instant::now();
    std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(Duration::from_secs_f64(seconds));
            ctl.stop();
        });
        scanner.scan_parallel(&work, THREADS, &ctl);
    });
    ctl.hashes() as f64 / start.elapsed().as_secs_f64()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: run with --ignored --nocapture"]
async fn rate_and_clean_switch_latency() {
    let seconds: f64 = std::env::var("MEASURE_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60.0);
    let bench_before = bench_rate(10.0);
    let difficulty = 0.05;
    let pool = TestPool::start(0, difficulty).await;
    let mut config = miner_config(&[(&pool.url(), "w")]);
    config.devices = vec![DeviceSpec::Cpu {
        threads: Some(THREADS),
    }];
    let miner = Miner::start(config).await.unwrap();
    wait_for("mining", Duration::from_secs(60), || pool.accepted() >= 1).await;
    let hashes0 = miner.snapshot().devices[0].hashes.unwrap();
    let accepted0 = pool.accepted();
    let start = Instant::now();
    // A clean job every 2 s, as a busy pool on a fast chain would.
    while start.elapsed().as_secs_f64() < seconds {
        tokio::time::sleep(Duration::from_secs(2)).await;
        pool.new_job(true);
    }
    let elapsed = start.elapsed().as_secs_f64();
    let accepted = pool.accepted() - accepted0;
    let hashes = miner.snapshot().devices[0].hashes.unwrap() - hashes0;
    let from_shares = HashRate::from_diff1_shares(accepted as f64 * difficulty, elapsed).as_hs();
    let counted = hashes as f64 / elapsed;
    let mut lat = miner.switch_latencies();
    lat.sort();
    miner.stop().await;
    // The machine may be shared: bench before and after, and compare with the mean.
    let bench_after = bench_rate(10.0);
    let bench = (bench_before + bench_after) / 2.0;
    println!(
        "bench before {:.1} MH/s, after {:.1} MH/s",
        bench_before / 1e6,
        bench_after / 1e6
    );
    println!("bench sha256d, {THREADS} threads: {:.1} MH/s", bench / 1e6);
    println!(
        "mining {elapsed:.0} s on a loopback pool: {accepted} shares at difficulty {difficulty} = {:.1} MH/s ({:.1}% of bench); device-counted {:.1} MH/s ({:.1}% of bench)",
        from_shares / 1e6,
        from_shares / bench * 100.0,
        counted / 1e6,
        counted / bench * 100.0
    );
    println!(
        "clean notify -> all {THREADS} threads on the new job: n={} p50={:?} p99={:?} max={:?}",
        lat.len(),
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        lat.last().copied().unwrap_or_default()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: run with --ignored --nocapture"]
async fn failover_time() {
    let mut times = Vec::new();
    for _ in 0..5 {
        let primary = TestPool::start(0, 0.002).await;
        let backup = TestPool::start(0, 0.002).await;
        let mut config = miner_config(&[(&primary.url(), "w"), (&backup.url(), "w")]);
        config.devices = vec![DeviceSpec::Cpu {
            threads: Some(THREADS),
        }];
        let miner = Miner::start(config).await.unwrap();
        wait_for("shares on the primary", Duration::from_secs(60), || {
            primary.accepted() >= 3
        })
        .await;
        let before = backup.accepted();
        let killed = Instant::now();
        primary.kill();
        wait_for("a share on the backup", Duration::from_secs(60), || {
            backup.accepted() > before
        })
        .await;
        times.push(killed.elapsed());
        miner.stop().await;
    }
    times.sort();
    println!(
        "failover (primary killed -> first share accepted by the backup): {:?}",
        times
    );
}
