//! Per-connection variable difficulty: aim at a share rate, move in powers of two, only when
//! the rate is off by more than 2x, within the pool's bounds and above the miner's own floor.

use std::time::{Duration, Instant};

/// Vardiff settings.
#[derive(Clone, Copy, Debug)]
pub struct VardiffConfig {
    pub shares_per_minute: f64,
    pub min: f64,
    pub max: f64,
    /// How long to watch before judging the rate (the first judgement comes sooner).
    pub retarget: Duration,
}

impl Default for VardiffConfig {
    fn default() -> Self {
        VardiffConfig {
            shares_per_minute: 10.0,
            min: 1.0 / 65536.0,
            max: 1e15,
            retarget: Duration::from_secs(60),
        }
    }
}

/// The shortest span an early retarget measures a share rate over.
const MIN_RATE_SPAN_SECS: f64 = 1.0;

/// One connection's vardiff state.
#[derive(Clone, Debug)]
pub struct Vardiff {
    config: VardiffConfig,
    current: f64,
    /// The miner's own lower bound (`minimum-difficulty`, `mining.suggest_difficulty`).
    floor: f64,
    since: Instant,
    shares: u32,
    first: bool,
}

/// The nearest power of two (2^-30 .. 2^60).
pub fn power_of_two(x: f64) -> f64 {
    2f64.powi(x.log2().round().clamp(-30.0, 60.0) as i32)
}

impl Vardiff {
    pub fn new(config: VardiffConfig, start: f64, now: Instant) -> Vardiff {
        Vardiff {
            current: start.clamp(config.min, config.max),
            config,
            floor: 0.0,
            since: now,
            shares: 0,
            first: true,
        }
    }

    pub fn difficulty(&self) -> f64 {
        self.current
    }

    fn clamp(&self, d: f64) -> f64 {
        d.max(self.floor).clamp(self.config.min, self.config.max)
    }

    /// The miner asked for a difficulty (suggest_difficulty or minimum-difficulty): it
    /// becomes the floor and, within bounds, the current difficulty.
    pub fn suggest(&mut self, d: f64, now: Instant) -> Option<f64> {
        self.floor = d.clamp(self.config.min, self.config.max);
        self.change(self.clamp(d), now)
    }

    fn change(&mut self, d: f64, now: Instant) -> Option<f64> {
        self.since = now;
        self.shares = 0;
        self.first = false;
        if d == self.current {
            return None;
        }
        self.current = d;
        Some(d)
    }

    /// Counts an accepted share; may retarget early when shares come too fast.
    pub fn on_share(&mut self, now: Instant) -> Option<f64> {
        self.shares += 1;
        // A rate is judged over a second at least: inside one, a handful of shares is a burst
        // (a board handing back the nonces of its first work at once), not a rate.
        let elapsed = now
            .duration_since(self.since)
            .as_secs_f64()
            .max(MIN_RATE_SPAN_SECS);
        let per_minute = f64::from(self.shares) * 60.0 / elapsed;
        // Far too fast on a few shares, or clearly too fast (over 2x, the band `retarget`
        // leaves alone) on enough shares that noise cannot fake it: P(24 or more | 10
        // expected) is about 1e-4. Either way the miner need not wait out a whole period.
        let target = self.config.shares_per_minute;
        if (self.shares >= 8 && per_minute > 4.0 * target)
            || (self.shares >= 24 && per_minute > 2.0 * target)
        {
            return self.retarget(per_minute, now);
        }
        None
    }

    /// Judges the rate when the watch period is over; call every few seconds.
    pub fn tick(&mut self, now: Instant) -> Option<f64> {
        let elapsed = now.duration_since(self.since);
        let period = if self.first {
            self.config.retarget / 4
        } else {
            self.config.retarget
        };
        if elapsed < period {
            return None;
        }
        let minutes = elapsed.as_secs_f64() / 60.0;
        // No share at all: the rate is at most one share per period; assume a quarter of that.
        let per_minute = if self.shares == 0 {
            0.25 / minutes
        } else {
            f64::from(self.shares) / minutes
        };
        self.retarget(per_minute, now)
    }

    fn retarget(&mut self, per_minute: f64, now: Instant) -> Option<f64> {
        let ratio = per_minute / self.config.shares_per_minute;
        if (0.5..=2.0).contains(&ratio) {
            self.since = now;
            self.shares = 0;
            self.first = false;
            return None;
        }
        let d = self.clamp(power_of_two(self.current * ratio));
        self.change(d, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_shares_raise_the_difficulty_in_powers_of_two() {
        let t0 = Instant::now();
        let mut v = Vardiff::new(VardiffConfig::default(), 1.0, t0);
        let mut changed = None;
        for i in 1..=8 {
            changed = v.on_share(t0 + Duration::from_millis(100 * i));
        }
        // 8 shares in 0.8 s = 600/min, 60x the target: 64.
        assert_eq!(changed, Some(64.0));
    }

    #[test]
    fn a_burst_inside_a_second_counts_over_a_second() {
        let t0 = Instant::now();
        let mut v = Vardiff::new(VardiffConfig::default(), 1.0, t0);
        let mut changed = None;
        for i in 1..=8 {
            changed = v.on_share(t0 + Duration::from_millis(30 * i));
        }
        // 8 shares in 0.24 s would be 2,000/min (256x); over a second they are 480/min: 64.
        assert_eq!(changed, Some(64.0));
    }

    #[test]
    fn a_steady_rate_over_twice_the_target_retargets_before_the_period_ends() {
        let t0 = Instant::now();
        let mut v = Vardiff::new(VardiffConfig::default(), 1.0, t0);
        // 25 shares a minute (2.5x the target of 10): below the 4x early rule, so only the
        // 24-share rule can move it, at the 24th share (57.6 s), not at the 60 s tick.
        for i in 1..=23 {
            assert_eq!(v.on_share(t0 + Duration::from_millis(2400 * i)), None);
        }
        assert_eq!(v.on_share(t0 + Duration::from_millis(2400 * 24)), Some(2.0));
        // 1.8x the target is inside the band: 24 shares and more change nothing.
        let t1 = t0 + Duration::from_millis(2400 * 24);
        let mut v = Vardiff::new(VardiffConfig::default(), 1.0, t1);
        for i in 1..=30 {
            assert_eq!(v.on_share(t1 + Duration::from_millis(3333 * i)), None);
        }
    }

    #[test]
    fn silence_lowers_it_and_a_good_rate_leaves_it_alone() {
        let t0 = Instant::now();
        let mut v = Vardiff::new(VardiffConfig::default(), 1.0, t0);
        assert_eq!(v.tick(t0 + Duration::from_secs(5)), None);
        let d = v.tick(t0 + Duration::from_secs(15)).unwrap();
        assert!(d < 1.0 && d.log2().fract() == 0.0);
        let t1 = t0 + Duration::from_secs(15);
        for i in 0..10 {
            v.on_share(t1 + Duration::from_secs(6 * i));
        }
        assert_eq!(v.tick(t1 + Duration::from_secs(61)), None);
    }

    #[test]
    fn the_miners_floor_and_the_pools_bounds_hold() {
        let t0 = Instant::now();
        let config = VardiffConfig {
            min: 0.5,
            max: 1024.0,
            ..VardiffConfig::default()
        };
        let mut v = Vardiff::new(config, 1.0, t0);
        assert_eq!(v.suggest(1e9, t0), Some(1024.0));
        assert_eq!(v.suggest(0.001, t0), Some(0.5));
        v.suggest(16.0, t0);
        assert_eq!(
            v.tick(t0 + Duration::from_secs(3600)),
            None,
            "silence cannot go below the floor"
        );
        assert_eq!(v.difficulty(), 16.0);
    }
}
