//! When a connection sends the pool's next job.
//!
//! A new tip goes out at once: every second a miner spends on the old one is wasted. A
//! refresh of the same tip (a new ntime, new transactions, every `refresh` seconds) is not
//! urgent, and sent to every connection in the same instant it is a herd: 19,900 SV2
//! connections took the pool's two cores ~0.45 s to encrypt and write, and every share
//! reply in that window waited behind it (the bench's SV2 reply p99 at 10k shares/s: 16
//! and 20 ms against a pool sending no refresh, 285 and 309 ms with one in the run). So
//! each connection sends a refresh at its own offset within a spread, and the offsets of
//! successive connections cover the spread evenly.

use std::time::Duration;

use tokio::time::Instant;

/// The golden ratio's fractional part: successive multiples of it, modulo 1, fill the unit
/// interval evenly (a Weyl sequence), whatever the number of connections.
const WEYL: f64 = 0.618_033_988_749_894_9;

/// The longest a refresh waits: a refresh carries new transactions' fees, and a few
/// seconds of delay on a 30 s cycle costs the pool nothing it would notice.
const MAX_SPREAD: Duration = Duration::from_secs(5);

/// The spread for a pool refreshing every `refresh`: a sixth of it, at most [`MAX_SPREAD`].
pub(crate) fn spread(refresh: Duration) -> Duration {
    (refresh / 6).min(MAX_SPREAD)
}

/// One connection's schedule for refreshed jobs.
#[derive(Debug)]
pub(crate) struct JobPacer {
    offset: Duration,
    due: Option<Instant>,
    /// The pool's count of new tips when this connection last got a job.
    tips: u64,
}

impl JobPacer {
    /// The pacer of the `slot`-th connection (any counter the connections share).
    pub(crate) fn new(slot: u64, spread: Duration) -> JobPacer {
        let fraction = (slot as f64 * WEYL).fract();
        JobPacer {
            offset: spread.mul_f64(fraction),
            due: None,
            tips: 0,
        }
    }

    /// The connection got the current job for another reason (its first): `tips` is the
    /// pool's count of new tips then.
    pub(crate) fn saw(&mut self, tips: u64) {
        self.tips = tips;
    }

    /// A new job generation, the pool's count of new tips now `tips`: whether to send it
    /// now. A new tip goes at once (and a refresh still waiting is dropped: the new tip's
    /// job replaces it); a refresh becomes due at this connection's offset, unless one is
    /// due already.
    pub(crate) fn changed(&mut self, tips: u64, now: Instant) -> bool {
        let clean = tips != self.tips;
        self.tips = tips;
        if clean || self.offset.is_zero() {
            self.due = None;
            return true;
        }
        self.due.get_or_insert(now + self.offset);
        false
    }

    /// When the waiting refresh is due, if one is.
    pub(crate) fn due(&self) -> Option<Instant> {
        self.due
    }

    /// Waits until the refresh is due (forever if none is); the caller then sends the
    /// current job.
    pub(crate) async fn wait(&mut self) {
        match self.due {
            Some(at) => {
                tokio::time::sleep_until(at).await;
                self.due = None;
            }
            None => std::future::pending().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_tip_goes_at_once_and_drops_a_waiting_refresh() {
        let now = Instant::now();
        let mut p = JobPacer::new(1, Duration::from_secs(5));
        p.saw(4);
        assert!(!p.changed(4, now));
        assert!(p.due().is_some());
        assert!(p.changed(5, now));
        assert_eq!(p.due(), None);
    }

    #[test]
    fn a_new_tip_missed_under_a_later_refresh_still_goes_at_once() {
        // The watch held tip 2's clean generation, then a refresh on it, before this
        // connection looked: it sees only the refresh, with the tip count moved on.
        let mut p = JobPacer::new(1, Duration::from_secs(5));
        p.saw(1);
        assert!(p.changed(2, Instant::now()));
        assert_eq!(p.due(), None);
    }

    #[test]
    fn a_second_refresh_keeps_the_first_ones_time() {
        let now = Instant::now();
        let mut p = JobPacer::new(3, Duration::from_secs(5));
        assert!(!p.changed(0, now));
        let first = p.due().unwrap();
        assert!(!p.changed(0, now + Duration::from_secs(1)));
        assert_eq!(p.due(), Some(first));
    }

    #[test]
    fn offsets_cover_the_spread_evenly() {
        let spread = Duration::from_secs(5);
        let mut buckets = [0u32; 10];
        for slot in 0..20_000 {
            let p = JobPacer::new(slot, spread);
            assert!(p.offset < spread);
            buckets[(p.offset.as_secs_f64() / 0.5) as usize] += 1;
        }
        // 2,000 each if perfectly even; a Weyl sequence is within a few.
        for b in buckets {
            assert!((1_990..=2_010).contains(&b), "{buckets:?}");
        }
    }

    #[test]
    fn no_spread_sends_refreshes_at_once() {
        let mut p = JobPacer::new(7, Duration::ZERO);
        assert!(p.changed(0, Instant::now()));
        assert_eq!(p.due(), None);
    }

    #[test]
    fn the_spread_is_a_sixth_of_the_refresh_at_most_five_seconds() {
        assert_eq!(spread(Duration::from_secs(30)), Duration::from_secs(5));
        assert_eq!(spread(Duration::from_secs(6)), Duration::from_secs(1));
        assert_eq!(spread(Duration::from_secs(600)), Duration::from_secs(5));
    }

    #[tokio::test]
    async fn wait_returns_when_due_and_clears_it() {
        let mut p = JobPacer::new(1, Duration::from_millis(50));
        let start = Instant::now();
        assert!(!p.changed(0, start));
        let due = p.due().unwrap();
        assert!(due > start);
        p.wait().await;
        assert!(Instant::now() >= due);
        assert_eq!(p.due(), None);
    }
}
