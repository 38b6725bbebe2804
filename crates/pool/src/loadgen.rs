//! A Stratum load generator: many connections (V1, or V2 with `LoadConfig::sv2`) to any
//! pool, each submitting valid shares found before the clock starts, measuring reply latency
//! and how fast a new tip reaches every connection. `hashforge bench pool` presents it.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hashforge_sha256d::Scanner;
use hashforge_stratum::{ClientConfig, ClientEvent, Job, Share, SubmitError, SubmitId};
use hashforge_sv2::AuthorityPublicKey;
use tokio::sync::{watch, Barrier};

use crate::testing::{scan_job, Connection, Sv2Connection};

/// One load connection, whichever protocol it speaks.
enum LoadConn {
    V1(Box<Connection>),
    V2(Box<Sv2Connection>),
}

impl LoadConn {
    async fn open(cfg: &LoadConfig, user: String) -> std::io::Result<LoadConn> {
        match cfg.sv2 {
            Some(key) => Ok(LoadConn::V2(Box::new(
                Sv2Connection::open(cfg.target, key, &user, cfg.timeout).await?,
            ))),
            None => {
                let mut client = ClientConfig::new(user, "x");
                client.version_rolling_mask = None;
                client.submit_timeout = cfg.timeout;
                Ok(LoadConn::V1(Box::new(
                    Connection::open(cfg.target, client).await?,
                )))
            }
        }
    }

    async fn events(&mut self) -> std::io::Result<Vec<ClientEvent>> {
        match self {
            LoadConn::V1(c) => c.events().await,
            LoadConn::V2(c) => c.events().await,
        }
    }

    fn submit(&mut self, share: Share, now: Instant) -> Result<SubmitId, SubmitError> {
        match self {
            LoadConn::V1(c) => c.session.submit(share, now),
            LoadConn::V2(c) => c.session.submit(share, now),
        }
    }

    async fn clean_notify(&mut self) -> std::io::Result<()> {
        match self {
            LoadConn::V1(c) => c.clean_notify().await,
            LoadConn::V2(c) => c.clean_notify().await,
        }
    }
}

/// How far ahead of the go signal the first share is due: long enough for every task to have
/// woken from the signal and gone back to sleep until its own due time.
const START_LEAD: Duration = Duration::from_millis(500);

/// What to throw at the pool.
#[derive(Clone, Debug)]
pub struct LoadConfig {
    pub target: SocketAddr,
    pub connections: usize,
    /// Shares each connection finds beforehand and submits.
    pub shares_per_connection: usize,
    /// Shares a connection keeps in flight.
    pub window: usize,
    /// Give up on a phase after this long.
    pub timeout: Duration,
    /// Open loop: submit at this many shares per second in total, spread evenly over the
    /// connections (latency at a given load). `None`: every connection submits as fast as
    /// its window allows (throughput at saturation).
    pub rate: Option<f64>,
    /// Speak Stratum V2 to a pool with this authority key (`target` is its SV2 endpoint).
    pub sv2: Option<AuthorityPublicKey>,
}

/// What was measured.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct LoadReport {
    pub connections: usize,
    pub connect_failures: usize,
    /// Why they failed: each distinct error (or the setup timing out) and how often.
    pub connect_errors: std::collections::BTreeMap<String, usize>,
    pub shares_sent: usize,
    pub accepted: usize,
    pub rejected: usize,
    pub seconds: f64,
    pub shares_per_second: f64,
    pub latency_ms_p50: f64,
    pub latency_ms_p99: f64,
    pub latency_ms_max: f64,
    /// Connections that saw the new tip's clean job.
    pub fanout_reached: usize,
    pub fanout_ms_p50: f64,
    pub fanout_ms_p99: f64,
    pub fanout_ms_max: f64,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

struct ConnResult {
    latencies_ms: Vec<f64>,
    accepted: usize,
    rejected: usize,
    sent: usize,
    fanout_ms: Option<f64>,
}

/// Shares of `job` that meet its difficulty but not the network target (so the pool sees
/// plain shares, not blocks), and one that is a block when `block` is set.
fn find_shares(job: &Job, en2_seed: u64, count: usize, block: bool) -> (Vec<Share>, Option<Share>) {
    let mut en2 = vec![0u8; job.extranonce2_size];
    let seed = en2_seed.to_le_bytes();
    let n = en2.len().min(8);
    en2[..n].copy_from_slice(&seed[..n]);
    let network = job.parts.nbits.to_target().ok();
    let scanner = Scanner::detect();
    let (mut shares, mut found_block) = (Vec::new(), None);
    let mut start = 0u32;
    while shares.len() < count || (block && found_block.is_none()) {
        for (share, hash) in scan_job(&scanner, job, &en2, start, 256) {
            if network.is_some_and(|t| t.is_met_by(&hash)) {
                if block && found_block.is_none() {
                    found_block = Some(share);
                }
            } else if shares.len() < count {
                shares.push(share);
            }
        }
        start = start.wrapping_add(256);
        if start == 0 {
            break;
        }
    }
    (shares, found_block)
}

/// Runs the load: connect everyone, find shares, release them all at once, then trigger one
/// block and time its clean notify reaching every connection.
pub async fn run(
    config: LoadConfig,
    progress: impl Fn(&str, usize) + Send + Sync + 'static,
) -> LoadReport {
    let progress = Arc::new(progress);
    let ready = Arc::new(Barrier::new(config.connections + 1));
    let fanout_ready = Arc::new(Barrier::new(config.connections + 1));
    let (go, go_rx) = watch::channel(None::<Instant>);
    let (block_go, block_rx) = watch::channel(None::<Instant>);
    let block_go = Arc::new(block_go);
    let connected = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::with_capacity(config.connections);
    for i in 0..config.connections {
        let (cfg, ready, fanout_ready, connected, progress) = (
            config.clone(),
            Arc::clone(&ready),
            Arc::clone(&fanout_ready),
            Arc::clone(&connected),
            Arc::clone(&progress),
        );
        let (mut go_rx, mut block_rx, block_go) =
            (go_rx.clone(), block_rx.clone(), Arc::clone(&block_go));
        tasks.push(tokio::spawn(async move {
            let setup = async {
                let mut conn = LoadConn::open(&cfg, format!("load.{i}")).await?;
                let job = loop {
                    if let Some(j) = conn.events().await?.into_iter().find_map(|e| {
                        if let ClientEvent::Job(j) = e {
                            Some(j)
                        } else {
                            None
                        }
                    }) {
                        break j;
                    }
                };
                let (shares, block) =
                    find_shares(&job, i as u64, cfg.shares_per_connection, i == 0);
                Ok::<_, std::io::Error>((conn, shares, block))
            };
            let setup = tokio::time::timeout(cfg.timeout, setup).await;
            let n = connected.fetch_add(1, Ordering::Relaxed) + 1;
            progress("connecting and finding shares", n);
            ready.wait().await;
            let setup = match setup {
                Ok(set) => set.map_err(|e| e.to_string()),
                Err(_) => Err(format!("no job within {:?}", cfg.timeout)),
            };
            let (mut conn, shares, block) = match setup {
                Ok(set) => set,
                Err(why) => {
                    fanout_ready.wait().await;
                    return Err(why);
                }
            };
            let start = go_rx.wait_for(Option::is_some).await.ok().and_then(|s| *s);
            // Every task wakes at the go signal; the first share is due only at `start`, once
            // that wake-up has passed, so no reply is timed while the generator itself is busy
            // waking tens of thousands of tasks.
            if let Some(at) = start {
                tokio::time::sleep_until(at.into()).await;
            }
            let mut r = ConnResult {
                latencies_ms: Vec::new(),
                accepted: 0,
                rejected: 0,
                sent: 0,
                fanout_ms: None,
            };
            let mut sent_at = std::collections::VecDeque::new();
            let mut next = shares.into_iter().peekable();
            let deadline = Instant::now() + cfg.timeout;
            // Open loop: connection i submits share k at start + (i + k * connections) / rate.
            let due = |k: usize| -> Option<Instant> {
                let rate = cfg.rate?;
                let offset = (i as f64 + k as f64 * cfg.connections as f64) / rate;
                Some(start.expect("released") + Duration::from_secs_f64(offset))
            };
            loop {
                while sent_at.len() < cfg.window && next.peek().is_some() {
                    if let Some(at) = due(r.sent) {
                        if Instant::now() < at {
                            if sent_at.is_empty() {
                                tokio::time::sleep_until(at.into()).await;
                            } else {
                                break;
                            }
                        }
                    }
                    let Some(s) = next.next() else { break };
                    let now = Instant::now();
                    if conn.submit(s, now).is_err() {
                        break;
                    }
                    sent_at.push_back(now);
                    r.sent += 1;
                }
                if (sent_at.is_empty() && next.peek().is_none()) || Instant::now() > deadline {
                    break;
                }
                if sent_at.is_empty() {
                    continue;
                }
                let Ok(Ok(events)) = tokio::time::timeout_at(deadline.into(), conn.events()).await
                else {
                    break;
                };
                for e in events {
                    let done = match e {
                        ClientEvent::ShareAccepted { .. } => {
                            r.accepted += 1;
                            true
                        }
                        ClientEvent::ShareRejected { .. } | ClientEvent::ShareTimedOut { .. } => {
                            r.rejected += 1;
                            true
                        }
                        _ => false,
                    };
                    if done {
                        if let Some(t) = sent_at.pop_front() {
                            r.latencies_ms.push(t.elapsed().as_secs_f64() * 1e3);
                        }
                    }
                }
            }
            fanout_ready.wait().await;
            // Phase two: one connection finds a block; everyone times the clean notify.
            if let Some(b) = block {
                let _ = conn.submit(b, Instant::now());
                let _ = block_go.send(Some(Instant::now()));
            }
            let _ = block_rx.wait_for(Option::is_some).await;
            let t0 = block_rx.borrow().expect("set");
            let fanout_deadline = Instant::now() + cfg.timeout;
            if let Ok(Ok(())) =
                tokio::time::timeout_at(fanout_deadline.into(), conn.clean_notify()).await
            {
                r.fanout_ms = Some(t0.elapsed().as_secs_f64() * 1e3);
            }
            // The connection stays open until every connection has been timed: closing it
            // now would load the pool with disconnects while others still wait.
            Ok((r, conn))
        }));
    }
    ready.wait().await;
    progress("submitting", config.connections);
    let start = Instant::now() + START_LEAD;
    let _ = go.send(Some(start));
    fanout_ready.wait().await;
    let seconds = start.elapsed().as_secs_f64();
    progress("timing the new tip's notify", config.connections);
    let mut report = LoadReport {
        connections: config.connections,
        seconds,
        ..LoadReport::default()
    };
    let (mut latencies, mut fanout) = (Vec::new(), Vec::new());
    let mut open = Vec::with_capacity(tasks.len());
    for t in tasks {
        match t
            .await
            .unwrap_or_else(|e| Err(format!("generator task: {e}")))
        {
            Ok((r, conn)) => {
                open.push(conn);
                report.shares_sent += r.sent;
                report.accepted += r.accepted;
                report.rejected += r.rejected;
                latencies.extend(r.latencies_ms);
                fanout.extend(r.fanout_ms);
            }
            Err(why) => {
                report.connect_failures += 1;
                *report.connect_errors.entry(why).or_default() += 1;
            }
        }
    }
    progress("timed", config.connections);
    latencies.sort_by(f64::total_cmp);
    fanout.sort_by(f64::total_cmp);
    report.shares_per_second = report.accepted as f64 / seconds.max(1e-9);
    report.latency_ms_p50 = percentile(&latencies, 0.5);
    report.latency_ms_p99 = percentile(&latencies, 0.99);
    report.latency_ms_max = latencies.last().copied().unwrap_or(0.0);
    report.fanout_reached = fanout.len();
    report.fanout_ms_p50 = percentile(&fanout, 0.5);
    report.fanout_ms_p99 = percentile(&fanout, 0.99);
    report.fanout_ms_max = fanout.last().copied().unwrap_or(0.0);
    drop(open);
    report
}
