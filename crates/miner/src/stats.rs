//! Counters and hash rates. Rates come from found difficulty, as cgminer's do: a nonce at
//! difficulty d stands for d x 2^32 hashes on average, whatever the hardware claims.

use std::collections::{BTreeMap, VecDeque};

use hashforge_core::{Difficulty, DifficultySum, HashRate};
use hashforge_minerapi::ChipHealth;
use serde::Serialize;

/// Found difficulty per second over the last 15 minutes.
#[derive(Clone, Debug, Default)]
pub struct RateWindow {
    /// (second since start, difficulty found in it), oldest first.
    buckets: VecDeque<(u64, f64)>,
    total: f64,
}

const WINDOW_KEEP: u64 = 15 * 60;

impl RateWindow {
    pub fn add(&mut self, second: u64, difficulty: f64) {
        self.total += difficulty;
        match self.buckets.back_mut() {
            Some((s, d)) if *s == second => *d += difficulty,
            _ => self.buckets.push_back((second, difficulty)),
        }
        while self
            .buckets
            .front()
            .is_some_and(|(s, _)| *s + WINDOW_KEEP < second)
        {
            self.buckets.pop_front();
        }
    }

    /// The rate over the last `window` seconds (or since the start, if shorter), at
    /// `elapsed` seconds (fractional) since the start.
    pub fn rate(&self, elapsed: f64, window: u64) -> HashRate {
        if elapsed <= 0.0 {
            return HashRate::ZERO;
        }
        let from = (elapsed as u64).saturating_sub(window);
        // The buckets counted run from second `from` to now, the current one partly.
        let span = (elapsed - from as f64).max(1e-3);
        let found: f64 = self
            .buckets
            .iter()
            .filter(|(s, _)| *s >= from)
            .map(|(_, d)| d)
            .sum();
        HashRate::from_diff1_shares(found, span)
    }

    /// The rate since the start.
    pub fn average(&self, elapsed: f64) -> HashRate {
        HashRate::from_diff1_shares(self.total, elapsed)
    }

    /// All difficulty found since the start.
    pub fn total(&self) -> f64 {
        self.total
    }
}

/// One book of shares: a pool's, a device's, or the miner's totals.
///
/// Every share found for a pool is counted once, as `stale` (never sent) or as `sent`; every
/// sent share ends as exactly one of `accepted`, `rejected` or `lost` and is `in_flight` until
/// then, so `sent == accepted + rejected + lost + in_flight` always holds. Counters change only
/// through [`ShareCounts::record`].
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ShareCounts {
    /// Submitted on the pool's connection.
    pub sent: u64,
    pub accepted: u64,
    /// Refused by the pool, whatever its reason (stale ones included; see `reject_reasons`).
    pub rejected: u64,
    /// Sent, but no verdict will come: the pool did not answer in time, or the connection
    /// ended first. The pool may or may not have credited them.
    pub lost: u64,
    /// Sent, verdict pending.
    pub in_flight: u64,
    /// Found for the pool but never sent: a clean job or a new connection had made its job
    /// stale first, or the connection could not take it (cgminer's `Stale`).
    pub stale: u64,
    pub accepted_difficulty: DifficultySum,
    pub rejected_difficulty: DifficultySum,
    pub lost_difficulty: DifficultySum,
    pub stale_difficulty: DifficultySum,
    /// Rejections by the pool's reason.
    pub reject_reasons: BTreeMap<String, u64>,
}

/// What became of a share found for a pool, as [`ShareCounts::record`] books it.
#[derive(Clone, Debug, PartialEq)]
pub enum ShareOutcome {
    /// Submitted on the pool's connection; its verdict is pending.
    Sent,
    /// The pool's verdicts on a sent share.
    Accepted,
    Rejected {
        reason: String,
    },
    /// Sent, but no verdict will come (no answer in time, or the connection ended first).
    Lost,
    /// Never sent.
    Stale,
}

impl ShareCounts {
    /// Books `outcome` for a share of `difficulty` (the difficulty its job was sent under).
    /// A verdict must follow that share's `Sent`.
    pub fn record(&mut self, difficulty: Difficulty, outcome: &ShareOutcome) {
        let mut settle = || {
            debug_assert!(self.in_flight > 0, "a verdict for a share never sent");
            self.in_flight = self.in_flight.saturating_sub(1);
        };
        match outcome {
            ShareOutcome::Sent => {
                self.sent += 1;
                self.in_flight += 1;
            }
            ShareOutcome::Accepted => {
                settle();
                self.accepted += 1;
                self.accepted_difficulty += difficulty;
            }
            ShareOutcome::Rejected { reason } => {
                settle();
                self.rejected += 1;
                self.rejected_difficulty += difficulty;
                *self.reject_reasons.entry(reason.clone()).or_default() += 1;
            }
            ShareOutcome::Lost => {
                settle();
                self.lost += 1;
                self.lost_difficulty += difficulty;
            }
            ShareOutcome::Stale => {
                self.stale += 1;
                self.stale_difficulty += difficulty;
            }
        }
    }

    /// `sent == accepted + rejected + lost + in_flight`.
    pub fn adds_up(&self) -> bool {
        self.sent == self.accepted + self.rejected + self.lost + self.in_flight
    }
}

/// One chip's record.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ChipStats {
    pub nonces: u64,
    pub hardware_errors: u64,
    pub found_difficulty: f64,
    /// The chain's good-nonce count when this chip returned its last one (0: none yet).
    pub chain_nonces_at_last: u64,
}

/// Nonces a chip's share of its chain's nonces should have brought before the chip counts
/// as silent: the chance that a working chip returns none of 20 it is due is e^-20, about 2
/// in a billion. Counted in the chain's nonces, not in seconds, so a chain that slows down
/// (a busy host, a lower clock) makes no chip look silent.
pub const SILENT_AFTER_NONCES: f64 = 20.0;

/// A chip whose nonces are wrong more than this often is bad (a working chip's are almost
/// never wrong; a dying one's often are).
const BAD_SHARE: f64 = 0.1;
const BAD_AT_LEAST: u64 = 8;

impl ChipStats {
    /// How the chip is doing, when its chain has returned `chain_nonces` good nonces from
    /// `chips` chips that answered.
    pub fn health(&self, chain_nonces: u64, chips: usize) -> ChipHealth {
        let all = self.nonces + self.hardware_errors;
        if self.hardware_errors >= BAD_AT_LEAST
            && self.hardware_errors as f64 > BAD_SHARE * all as f64
        {
            return ChipHealth::Bad;
        }
        // Its share of what the chain found since its own last nonce.
        let due =
            chain_nonces.saturating_sub(self.chain_nonces_at_last) as f64 / chips.max(1) as f64;
        if due >= SILENT_AFTER_NONCES {
            ChipHealth::Silent
        } else {
            ChipHealth::Ok
        }
    }
}

/// A device's record.
#[derive(Clone, Debug, Default)]
pub struct DeviceStats {
    pub window: RateWindow,
    pub hardware_errors: u64,
    pub shares: ShareCounts,
    pub best_share: f64,
    /// Per chain.
    pub chain_windows: Vec<RateWindow>,
    pub chain_hardware_errors: Vec<u64>,
    /// Per chain: good nonces.
    pub chain_nonces: Vec<u64>,
    /// Per chain, per chip.
    pub chips: Vec<Vec<ChipStats>>,
}

impl DeviceStats {
    pub fn new(chains: &[usize]) -> DeviceStats {
        DeviceStats {
            chips: chains
                .iter()
                .map(|n| vec![ChipStats::default(); *n])
                .collect(),
            chain_windows: vec![RateWindow::default(); chains.len()],
            chain_hardware_errors: vec![0; chains.len()],
            chain_nonces: vec![0; chains.len()],
            ..DeviceStats::default()
        }
    }

    pub fn chip(&mut self, chain: usize, chip: usize) -> Option<&mut ChipStats> {
        self.chips.get_mut(chain)?.get_mut(chip)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chip_is_silent_by_the_chains_nonces_not_by_the_clock() {
        // 65 chips; this one's last nonce came when the chain had found 1,000.
        let chip = ChipStats {
            nonces: 15,
            chain_nonces_at_last: 1_000,
            ..ChipStats::default()
        };
        // However long ago that was, 19 of its share since then is not yet silence.
        assert_eq!(chip.health(1_000 + 19 * 65, 65), ChipHealth::Ok);
        assert_eq!(chip.health(1_000 + 20 * 65, 65), ChipHealth::Silent);
        // Wrong nonces make a bad chip first.
        let bad = ChipStats {
            nonces: 10,
            hardware_errors: 9,
            ..ChipStats::default()
        };
        assert_eq!(bad.health(0, 65), ChipHealth::Bad);
        let rare = ChipStats {
            nonces: 1_000,
            hardware_errors: 9,
            ..ChipStats::default()
        };
        assert_eq!(rare.health(0, 65), ChipHealth::Ok);
    }

    /// One difficulty-1 nonce per second.
    const ONE_PER_SECOND: f64 = 4_294_967_296.0;

    #[test]
    fn rates_come_from_found_difficulty() {
        let mut w = RateWindow::default();
        for s in 0..60 {
            w.add(s, 1.0);
        }
        // one difficulty-1 nonce per second is 2^32 H/s
        let r = w.rate(60.0, 60).as_hs();
        assert!((r / ONE_PER_SECOND - 1.0).abs() < 0.05, "{r}");
        assert!((w.average(60.0).as_hs() / ONE_PER_SECOND - 1.0).abs() < 1e-9);
        // nothing found for the last 5 s
        assert_eq!(w.rate(70.0, 5).as_hs(), 0.0);
        // Mid-second: the current bucket is partly filled and the span is partly over.
        let mut steady = RateWindow::default();
        for s in 0..60 {
            steady.add(s, 1.0);
        }
        steady.add(60, 0.9);
        let r = steady.rate(60.9, 5).as_hs();
        assert!((r / ONE_PER_SECOND - 1.0).abs() < 1e-9, "{r}");
        // 15 minutes later the old buckets are gone
        w.add(2000, 2.0);
        assert_eq!(w.buckets.len(), 1);
        assert_eq!(w.total(), 62.0);
    }

    #[test]
    fn every_sent_share_ends_once_and_is_in_flight_until_then() {
        let mut c = ShareCounts::default();
        let two = Difficulty::new(2.0).unwrap();
        for _ in 0..4 {
            c.record(two, &ShareOutcome::Sent);
        }
        c.record(two, &ShareOutcome::Accepted);
        c.record(
            two,
            &ShareOutcome::Rejected {
                reason: "duplicate".into(),
            },
        );
        c.record(two, &ShareOutcome::Lost);
        c.record(two, &ShareOutcome::Stale);
        assert!(c.adds_up(), "{c:?}");
        assert_eq!((c.sent, c.in_flight, c.stale), (4, 1, 1));
        assert_eq!(c.reject_reasons["duplicate"], 1);
        assert_eq!(c.lost_difficulty.as_f64(), 2.0);
        c.record(two, &ShareOutcome::Accepted);
        assert_eq!((c.in_flight, c.accepted_difficulty.as_f64()), (0, 4.0));
        assert!(c.adds_up());
    }
}
