//! Discovery: probe every address of some ranges with bounded concurrency, and say what
//! answered. An address whose probe timed out is probed again before it counts as empty,
//! so a busy moment loses no miner.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::client::{identify, Identified, MinerPorts, ReadError};
use crate::range::Ranges;

/// How a scan runs.
#[derive(Clone, Copy, Debug)]
pub struct ScanConfig {
    pub ports: MinerPorts,
    /// Probes in flight at once (each holds up to one descriptor).
    pub concurrency: usize,
    pub timeout: Duration,
    /// Probes of an address that timed out, before it counts as empty.
    pub attempts: u32,
}

impl Default for ScanConfig {
    fn default() -> ScanConfig {
        ScanConfig {
            ports: MinerPorts::default(),
            concurrency: 1024,
            timeout: Duration::from_secs(2),
            attempts: 3,
        }
    }
}

/// What a scan found.
#[derive(Debug, Default)]
pub struct ScanReport {
    pub found: Vec<Identified>,
    pub addresses: u64,
    /// Addresses still timing out after every attempt: not known to be empty.
    pub unsure: Vec<IpAddr>,
    pub elapsed: Duration,
}

/// Probes every address of `ranges`.
pub async fn scan(ranges: &Ranges, config: ScanConfig) -> ScanReport {
    let start = Instant::now();
    let permits = Arc::new(Semaphore::new(config.concurrency.max(1)));
    let mut tasks = JoinSet::new();
    let mut report = ScanReport::default();
    for ip in ranges.addresses() {
        report.addresses += 1;
        let permit = Arc::clone(&permits).acquire_owned().await.expect("open");
        tasks.spawn(async move {
            let _permit = permit;
            let ip = IpAddr::V4(ip);
            let mut last = Ok(None);
            for attempt in 0..config.attempts.max(1) {
                last = identify(ip, config.ports, config.timeout).await;
                match &last {
                    Err(e) if e.is_transient() => {
                        tokio::time::sleep(Duration::from_millis(50 << attempt)).await;
                    }
                    _ => break,
                }
            }
            (ip, last)
        });
        // Reap as we go, so finished tasks do not pile up.
        while let Some(r) = tasks.try_join_next() {
            absorb(r, &mut report);
        }
    }
    while let Some(r) = tasks.join_next().await {
        absorb(r, &mut report);
    }
    report.found.sort_by_key(|f| f.ip);
    report.unsure.sort();
    report.elapsed = start.elapsed();
    report
}

type Probe = Result<(IpAddr, Result<Option<Identified>, ReadError>), tokio::task::JoinError>;

fn absorb(r: Probe, report: &mut ScanReport) {
    match r {
        Ok((_, Ok(Some(found)))) => report.found.push(found),
        Ok((ip, Err(_))) => report.unsure.push(ip),
        _ => {}
    }
}
