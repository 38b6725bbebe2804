//! Which pool to mine on: a pure function of each pool's health and the time, so that tests
//! drive it directly. The manager applies the choice (dispatching the pool's job).
//!
//! Rules: mine on the first healthy pool in priority order (healthy = enabled, authorized,
//! and a job younger than the stall limit). Go back to a higher-priority pool that
//! disconnected only once it has been healthy for the failback delay; one that never
//! failed (it was only slower to answer at start) is taken at once.

use std::time::{Duration, Instant};

/// What failover needs to know about one pool, in priority order.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PoolHealth {
    pub enabled: bool,
    /// Authorized and ready since.
    pub ready_since: Option<Instant>,
    /// When its last job arrived.
    pub last_job_at: Option<Instant>,
    /// How often its connection ended.
    pub disconnects: u64,
}

impl PoolHealth {
    fn healthy(&self, now: Instant, stall: Duration) -> bool {
        self.enabled
            && self.ready_since.is_some()
            && self
                .last_job_at
                .is_some_and(|at| now.saturating_duration_since(at) < stall)
    }
}

/// The limits failover works with.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Limits {
    /// A pool without a new job for this long is down.
    pub stall: Duration,
    /// A pool that came back must be healthy this long before the miner returns to it.
    pub failback: Duration,
}

/// The position of the pool to mine on, given the one mined on now; `None` when no pool is
/// usable.
pub fn choose(
    pools: &[PoolHealth],
    active: Option<usize>,
    now: Instant,
    limits: Limits,
) -> Option<usize> {
    let healthy = |i: usize| pools.get(i).is_some_and(|p| p.healthy(now, limits.stall));
    let active = active.filter(|&a| healthy(a));
    let best = (0..pools.len()).find(|&i| healthy(i));
    match (active, best) {
        (Some(a), Some(b)) if b < a => {
            let p = &pools[b];
            let since = p.ready_since.expect("healthy pools are ready");
            if p.disconnects == 0 || now.saturating_duration_since(since) >= limits.failback {
                Some(b)
            } else {
                Some(a)
            }
        }
        (Some(a), _) => Some(a),
        (None, b) => b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        stall: Duration::from_secs(120),
        failback: Duration::from_secs(60),
    };

    fn up(since: Instant, job: Instant, disconnects: u64) -> PoolHealth {
        PoolHealth {
            enabled: true,
            ready_since: Some(since),
            last_job_at: Some(job),
            disconnects,
        }
    }

    #[test]
    fn first_healthy_pool_in_priority_order() {
        let t = Instant::now();
        let down = PoolHealth::default();
        assert_eq!(choose(&[down, up(t, t, 0)], None, t, LIMITS), Some(1));
        assert_eq!(
            choose(&[up(t, t, 0), up(t, t, 0)], None, t, LIMITS),
            Some(0)
        );
        assert_eq!(choose(&[down, down], Some(0), t, LIMITS), None);
        assert_eq!(choose(&[], None, t, LIMITS), None);
        // Disabled is not healthy.
        let disabled = PoolHealth {
            enabled: false,
            ..up(t, t, 0)
        };
        assert_eq!(choose(&[disabled, up(t, t, 0)], None, t, LIMITS), Some(1));
    }

    #[test]
    fn a_stalled_pool_is_left() {
        let t = Instant::now();
        let later = t + Duration::from_secs(121);
        let pools = [up(t, t, 0), up(t, later, 0)];
        assert_eq!(choose(&pools, Some(0), later, LIMITS), Some(1));
        assert_eq!(
            choose(&pools, Some(0), t + Duration::from_secs(119), LIMITS),
            Some(0)
        );
    }

    #[test]
    fn failback_waits_for_a_pool_that_failed_but_not_for_one_that_never_did() {
        let t = Instant::now();
        let back = t + Duration::from_secs(10);
        // Pool 0 reconnected at `back` after a disconnect; the miner is on pool 1.
        let pools = |now: Instant| [up(back, now, 1), up(t, now, 0)];
        let soon = back + Duration::from_secs(59);
        assert_eq!(choose(&pools(soon), Some(1), soon, LIMITS), Some(1));
        let proven = back + Duration::from_secs(60);
        assert_eq!(choose(&pools(proven), Some(1), proven, LIMITS), Some(0));
        // Never failed: only slower at start, so taken at once.
        let slow = [up(back, back, 0), up(t, back, 0)];
        assert_eq!(choose(&slow, Some(1), back, LIMITS), Some(0));
    }
}
