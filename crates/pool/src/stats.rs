//! Live numbers: per worker and for the pool, kept in memory for the API and /metrics (the
//! ledger keeps the durable record).

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Instant;

use hashforge_core::HashRate;
use serde::Serialize;

/// Hash rates are averaged over about this long.
const RATE_WINDOW_SECS: f64 = 300.0;

#[derive(Default, Debug, Clone, Serialize)]
pub struct WorkerLive {
    pub accepted: u64,
    pub accepted_difficulty: f64,
    pub rejected: BTreeMap<String, u64>,
    pub best_share: f64,
    /// Seconds since the pool started.
    pub last_share_secs: Option<f64>,
    /// Hashes per second, from accepted difficulty, decayed over about five minutes.
    pub hashrate: f64,
    #[serde(skip)]
    rate_at: Option<f64>,
    pub blocks: u64,
}

impl WorkerLive {
    fn decay(&mut self, t: f64) {
        if let Some(at) = self.rate_at {
            self.hashrate *= (-(t - at).max(0.0) / RATE_WINDOW_SECS).exp();
        }
        self.rate_at = Some(t);
    }
}

#[derive(Debug)]
pub struct Stats {
    started: Instant,
    inner: Mutex<Inner>,
}

#[derive(Default, Debug)]
struct Inner {
    workers: HashMap<String, WorkerLive>,
    connections: u64,
    connections_total: u64,
    accepted: u64,
    rejected: BTreeMap<String, u64>,
    blocks_found: u64,
    blocks_rejected: u64,
    pool: WorkerLive,
}

/// A snapshot for the API.
#[derive(Debug, Clone, Serialize)]
pub struct PoolLive {
    pub uptime_secs: f64,
    pub connections: u64,
    pub connections_total: u64,
    pub workers: usize,
    pub shares_accepted: u64,
    pub shares_rejected: BTreeMap<String, u64>,
    pub blocks_found: u64,
    pub blocks_rejected: u64,
    pub hashrate: f64,
    pub best_share: f64,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            started: Instant::now(),
            inner: Mutex::default(),
        }
    }
}

impl Stats {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn now(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    pub fn connected(&self) {
        let mut i = self.lock();
        i.connections += 1;
        i.connections_total += 1;
    }

    /// Open connections.
    pub fn connections(&self) -> u64 {
        self.lock().connections
    }

    pub fn disconnected(&self) {
        let mut i = self.lock();
        i.connections = i.connections.saturating_sub(1);
    }

    pub fn accepted(&self, worker: &str, difficulty: f64, share_difficulty: f64) {
        let t = self.now();
        let mut i = self.lock();
        i.accepted += 1;
        let update = |w: &mut WorkerLive| {
            w.decay(t);
            w.accepted += 1;
            w.accepted_difficulty += difficulty;
            w.best_share = w.best_share.max(share_difficulty);
            w.last_share_secs = Some(t);
            w.hashrate += HashRate::from_diff1_shares(difficulty, RATE_WINDOW_SECS).as_hs();
        };
        update(i.workers.entry(worker.to_string()).or_default());
        update(&mut i.pool);
    }

    pub fn rejected(&self, worker: Option<&str>, reason: &str) {
        let mut i = self.lock();
        *i.rejected.entry(reason.to_string()).or_default() += 1;
        if let Some(w) = worker {
            *i.workers
                .entry(w.to_string())
                .or_default()
                .rejected
                .entry(reason.to_string())
                .or_default() += 1;
        }
    }

    pub fn block(&self, worker: &str, accepted: bool) {
        let mut i = self.lock();
        if accepted {
            i.blocks_found += 1;
            i.workers.entry(worker.to_string()).or_default().blocks += 1;
        } else {
            i.blocks_rejected += 1;
        }
    }

    pub fn pool(&self) -> PoolLive {
        let t = self.now();
        let mut i = self.lock();
        i.pool.decay(t);
        PoolLive {
            uptime_secs: t,
            connections: i.connections,
            connections_total: i.connections_total,
            workers: i.workers.len(),
            shares_accepted: i.accepted,
            shares_rejected: i.rejected.clone(),
            blocks_found: i.blocks_found,
            blocks_rejected: i.blocks_rejected,
            hashrate: i.pool.hashrate,
            best_share: i.pool.best_share,
        }
    }

    pub fn workers(&self) -> BTreeMap<String, WorkerLive> {
        let t = self.now();
        let mut i = self.lock();
        i.workers
            .iter_mut()
            .map(|(k, w)| {
                w.decay(t);
                (k.clone(), w.clone())
            })
            .collect()
    }
}
