//! Live numbers: per worker and for the pool, kept in memory for the API and /metrics (the
//! ledger keeps the durable record). Everything counts from the pool's start except refused
//! shares, which count all time: the pool starts from the ledger's totals
//! ([`Stats::restore_rejected`]).

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Instant;

use hashforge_core::{Difficulty, DifficultySum, HashRate};
use serde::Serialize;

use crate::ledger::RejectCount;

/// Hash rates weigh the last ~5 minutes of shares (an exponential average with this time
/// constant).
pub const RATE_WINDOW_SECS: f64 = 300.0;

/// A hash rate estimated from accepted work: an exponentially weighted sum of share
/// difficulties, divided by the weight the time since the worker appeared can carry, so the
/// estimate is unbiased from the first minute on rather than climbing for five.
#[derive(Clone, Copy, Debug, Default)]
struct RateEstimate {
    /// Σ difficulty · e^(-(now - t)/τ), as of `at`.
    weighted_difficulty: f64,
    /// Σ e^(-(now - t)/τ): how many shares the estimate rests on.
    weighted_shares: f64,
    at: f64,
    /// When the worker appeared (seconds since the pool started).
    since: Option<f64>,
}

impl RateEstimate {
    fn start(&mut self, t: f64) {
        self.since.get_or_insert(t);
    }

    fn decay_to(&mut self, t: f64) {
        let k = (-(t - self.at).max(0.0) / RATE_WINDOW_SECS).exp();
        self.weighted_difficulty *= k;
        self.weighted_shares *= k;
        self.at = self.at.max(t);
    }

    fn add(&mut self, t: f64, difficulty: f64) {
        self.start(t);
        self.decay_to(t);
        self.weighted_difficulty += difficulty;
        self.weighted_shares += 1.0;
    }

    /// The rate at `t`, and the (weighted) number of shares it rests on.
    fn rate(&mut self, t: f64) -> (HashRate, f64) {
        self.decay_to(t);
        let Some(since) = self.since else {
            return (HashRate::ZERO, 0.0);
        };
        // ∫ e^(-s/τ) ds over the time the worker has been hashing.
        let span = RATE_WINDOW_SECS * (1.0 - (-(t - since).max(0.0) / RATE_WINDOW_SECS).exp());
        (
            HashRate::from_diff1_shares(self.weighted_difficulty, span),
            self.weighted_shares,
        )
    }
}

/// One worker's live numbers (JSON: difficulties as numbers, the rate in H/s).
#[derive(Default, Debug, Clone, Serialize)]
pub struct WorkerLive {
    /// Shares accepted, blocks below the share target included.
    pub accepted: u64,
    /// Accepted work at its job's difficulty (blocks below the share target excluded).
    pub accepted_difficulty: DifficultySum,
    /// Refused shares by reason, all time.
    pub rejected: BTreeMap<String, u64>,
    /// The highest difficulty a hash of an accepted share reached.
    pub best_share: Option<Difficulty>,
    /// Seconds since the pool started.
    pub last_share_secs: Option<f64>,
    /// From accepted difficulty over about the last five minutes.
    #[serde(rename = "hashrate_hs")]
    pub hashrate: HashRate,
    /// How many shares (weighted by age) the hash rate rests on: its relative error is
    /// about 1/√n.
    pub hashrate_shares: f64,
    pub blocks: u64,
    /// The protocol it last authorized (V1) or opened a channel (SV2) over.
    pub protocol: Option<Protocol>,
    #[serde(skip)]
    rate: RateEstimate,
}

impl WorkerLive {
    fn accepted(&mut self, t: f64, work: Option<f64>, share_difficulty: f64) {
        self.accepted += 1;
        if let Some(d) = work.and_then(|d| Difficulty::new(d).ok()) {
            self.accepted_difficulty += d;
            self.rate.add(t, d.as_f64());
        }
        if let Ok(d) = Difficulty::new(share_difficulty) {
            self.best_share = Some(self.best_share.map_or(d, |b| if d > b { d } else { b }));
        }
        self.last_share_secs = Some(t);
    }

    fn at(&mut self, t: f64) -> WorkerLive {
        (self.hashrate, self.hashrate_shares) = self.rate.rate(t);
        self.clone()
    }
}

/// Which Stratum a connection speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Protocol {
    #[serde(rename = "v1")]
    V1,
    #[serde(rename = "sv2")]
    Sv2,
    /// Stratum V2's job declaration protocol: a miner's Job Declarator Client.
    #[serde(rename = "sv2-jd")]
    Sv2Jd,
    /// Stratum V2's template distribution protocol: a client of the pool's templates.
    #[serde(rename = "sv2-tp")]
    Sv2Tp,
}

impl Protocol {
    pub const ALL: [Protocol; 4] = [
        Protocol::V1,
        Protocol::Sv2,
        Protocol::Sv2Jd,
        Protocol::Sv2Tp,
    ];

    /// As the API, the page and `/metrics` say it.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::V1 => "v1",
            Protocol::Sv2 => "sv2",
            Protocol::Sv2Jd => "sv2-jd",
            Protocol::Sv2Tp => "sv2-tp",
        }
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
    /// Open connections by the protocol they speak (`Protocol as usize`).
    open: [u64; Protocol::ALL.len()],
    connections_total: u64,
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
    /// Of `connections`, those speaking Stratum V1, Stratum V2's mining protocol, its job
    /// declaration protocol and its template distribution protocol.
    pub connections_v1: u64,
    pub connections_sv2: u64,
    pub connections_sv2_jd: u64,
    pub connections_sv2_tp: u64,
    pub connections_total: u64,
    pub workers: usize,
    pub shares_accepted: u64,
    /// Refused shares by reason, all time.
    pub shares_rejected: BTreeMap<String, u64>,
    pub blocks_found: u64,
    pub blocks_rejected: u64,
    #[serde(rename = "hashrate_hs")]
    pub hashrate: HashRate,
    /// How many shares (weighted by age) the hash rate rests on.
    pub hashrate_shares: f64,
    pub best_share: Option<Difficulty>,
}

impl PoolLive {
    /// Open connections speaking `protocol`.
    pub fn open(&self, protocol: Protocol) -> u64 {
        match protocol {
            Protocol::V1 => self.connections_v1,
            Protocol::Sv2 => self.connections_sv2,
            Protocol::Sv2Jd => self.connections_sv2_jd,
            Protocol::Sv2Tp => self.connections_sv2_tp,
        }
    }
}

impl Inner {
    fn rejected(&mut self, worker: Option<&str>, reason: &str, n: u64) {
        *self.rejected.entry(reason.to_string()).or_default() += n;
        if let Some(w) = worker {
            *self
                .workers
                .entry(w.to_string())
                .or_default()
                .rejected
                .entry(reason.to_string())
                .or_default() += n;
        }
    }
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

    pub fn connected(&self, protocol: Protocol) {
        let mut i = self.lock();
        i.connections_total += 1;
        i.open[protocol as usize] += 1;
    }

    /// Open connections.
    pub fn connections(&self) -> u64 {
        self.lock().open.iter().sum()
    }

    pub fn disconnected(&self, protocol: Protocol) {
        let open = &mut self.lock().open[protocol as usize];
        *open = open.saturating_sub(1);
    }

    /// A worker was authorized (V1) or opened a channel (SV2): its hash rate counts time
    /// from now.
    pub fn authorized(&self, worker: &str, protocol: Protocol) {
        let t = self.now();
        let mut i = self.lock();
        let w = i.workers.entry(worker.to_string()).or_default();
        w.protocol = Some(protocol);
        w.rate.start(t);
        i.pool.rate.start(t);
    }

    /// An accepted share. `work` is its job's difficulty when it met it (what the hash rate
    /// counts); `None` for a block below the share target.
    pub fn accepted(&self, worker: &str, work: Option<f64>, share_difficulty: f64) {
        let t = self.now();
        let mut i = self.lock();
        i.workers
            .entry(worker.to_string())
            .or_default()
            .accepted(t, work, share_difficulty);
        i.pool.accepted(t, work, share_difficulty);
    }

    pub fn rejected(&self, worker: Option<&str>, reason: &str) {
        self.lock().rejected(worker, reason, 1);
    }

    /// Adds the refused shares a ledger recorded before this start.
    pub fn restore_rejected(&self, counts: impl IntoIterator<Item = RejectCount>) {
        let mut i = self.lock();
        for c in counts {
            i.rejected(c.worker.as_deref(), &c.reason, c.count);
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
        let pool = i.pool.at(t);
        PoolLive {
            uptime_secs: t,
            connections: i.open.iter().sum(),
            connections_v1: i.open[Protocol::V1 as usize],
            connections_sv2: i.open[Protocol::Sv2 as usize],
            connections_sv2_jd: i.open[Protocol::Sv2Jd as usize],
            connections_sv2_tp: i.open[Protocol::Sv2Tp as usize],
            connections_total: i.connections_total,
            workers: i.workers.len(),
            shares_accepted: pool.accepted,
            shares_rejected: i.rejected.clone(),
            blocks_found: i.blocks_found,
            blocks_rejected: i.blocks_rejected,
            hashrate: pool.hashrate,
            hashrate_shares: pool.hashrate_shares,
            best_share: pool.best_share,
        }
    }

    pub fn workers(&self) -> BTreeMap<String, WorkerLive> {
        let t = self.now();
        let mut i = self.lock();
        i.workers
            .iter_mut()
            .map(|(k, w)| (k.clone(), w.at(t)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A worker whose true rate is known: Poisson shares at difficulty `d` from a miner of
    /// `rate` H/s, seen over `secs`.
    fn simulate(rate: f64, d: f64, secs: f64, seed: u64) -> RateEstimate {
        let mut rng = seed;
        let mut uniform = || {
            // xorshift64*: reproducible without a dependency.
            rng ^= rng >> 12;
            rng ^= rng << 25;
            rng ^= rng >> 27;
            (rng.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
        };
        let per_second = rate / (d * 4_294_967_296.0);
        let mut e = RateEstimate::default();
        e.start(0.0);
        let mut t = 0.0;
        loop {
            t += -(1.0 - uniform()).ln() / per_second;
            if t > secs {
                break;
            }
            e.add(t, d);
        }
        e
    }

    #[test]
    fn the_rate_is_right_from_the_first_minute() {
        // 14 MH/s at a share a second (difficulty ≈ 0.00326): after 60 s the estimate rests on
        // ~60 shares, so it is within 4/√60 ≈ 52% always and near 13% typically; averaged
        // over many workers it is unbiased (a plain decaying sum would read 18% here).
        let rate = 14e6;
        let d = rate / 4_294_967_296.0;
        let mut sum = 0.0;
        let runs = 200;
        for seed in 1..=runs {
            let mut e = simulate(rate, d, 60.0, seed);
            let (r, n) = e.rate(60.0);
            assert!((30.0..=95.0).contains(&n), "{n} shares");
            assert!((r.as_hs() / rate - 1.0).abs() < 0.52, "{r}");
            sum += r.as_hs();
        }
        let mean = sum / runs as f64;
        assert!((mean / rate - 1.0).abs() < 0.03, "mean {mean}");
        // And long after, the same.
        let mut e = simulate(rate, d, 3600.0, 7);
        let (r, _) = e.rate(3600.0);
        assert!((r.as_hs() / rate - 1.0).abs() < 0.2, "{r}");
    }

    #[test]
    fn a_block_below_the_share_target_is_not_work() {
        let s = Stats::default();
        s.authorized("w", Protocol::V1);
        s.accepted("w", Some(1024.0), 2000.0);
        s.accepted("w", None, 0.5);
        let w = &s.workers()["w"];
        assert_eq!(w.accepted, 2);
        assert_eq!(w.accepted_difficulty.as_f64(), 1024.0);
        assert_eq!(w.best_share.map(Difficulty::as_f64), Some(2000.0));
        assert!((w.hashrate_shares - 1.0).abs() < 1e-3);
        let p = s.pool();
        assert_eq!(p.shares_accepted, 2);
        assert!((p.hashrate_shares - 1.0).abs() < 1e-3);
    }

    #[test]
    fn nobody_yet_is_zero() {
        let s = Stats::default();
        assert_eq!(s.pool().hashrate, HashRate::ZERO);
        assert_eq!(s.pool().best_share, None);
    }
}
