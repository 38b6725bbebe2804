//! PPLNS arithmetic, free of I/O: walk the shares back from the block's own share until
//! `window` difficulty units are covered, then split `(1 - fee) * reward` by credited
//! units over the whole window.

use std::collections::BTreeMap;

/// Relative slack for float noise before rounding down: `0.98 * 5e9` is
/// `4899999999.9999995` in binary floating point and must still pay 4,900,000,000 sats. At
/// 21e6 BTC the slack is under 0.003 sat, so it can never pay a satoshi that is not owed by
/// more than float error.
const FLOOR_SLACK: f64 = 1e-12;

/// Credits shares, newest first, until the window is full.
#[derive(Debug)]
pub(crate) struct Window {
    size: f64,
    covered: f64,
    credit: BTreeMap<String, f64>,
}

impl Window {
    pub(crate) fn new(size: f64) -> Window {
        Window {
            size,
            covered: 0.0,
            credit: BTreeMap::new(),
        }
    }

    /// Credits the next older share; the one straddling the window's edge counts only its
    /// part inside. Returns whether the window is now full.
    pub(crate) fn push(&mut self, worker: &str, difficulty: f64) -> bool {
        let part = difficulty.min(self.size - self.covered).max(0.0);
        if part > 0.0 {
            *self.credit.entry(worker.to_owned()).or_insert(0.0) += part;
            self.covered += part;
        }
        self.is_full()
    }

    pub(crate) fn is_full(&self) -> bool {
        self.covered >= self.size
    }

    /// Difficulty units credited so far (the window size once full).
    pub(crate) fn covered(&self) -> f64 {
        self.covered
    }

    /// Satoshis per worker (rounded down, workers owed nothing left out) with the units
    /// each was credited, and what stays with the pool: the fee, the rounding, and the
    /// unfilled part of a window the pool's history could not cover.
    pub(crate) fn split(&self, reward_sats: u64, fee: f64) -> (Vec<(String, u64, f64)>, u64) {
        let distributable = reward_sats as f64 * (1.0 - fee);
        let mut paid = 0u64;
        let mut rows = Vec::with_capacity(self.credit.len());
        for (worker, &units) in &self.credit {
            let exact = distributable * (units / self.size);
            let amount = (exact * (1.0 + FLOOR_SLACK)).floor();
            // Float noise must never pay out more than the block is worth.
            let amount = (amount.max(0.0) as u64).min(reward_sats - paid);
            if amount > 0 {
                paid += amount;
                rows.push((worker.clone(), amount, units));
            }
        }
        (rows, reward_sats - paid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn run(
        shares_newest_first: &[(&str, f64)],
        window: f64,
        reward: u64,
        fee: f64,
    ) -> (Vec<(String, u64, f64)>, u64) {
        let mut w = Window::new(window);
        for (worker, d) in shares_newest_first {
            if w.push(worker, *d) {
                break;
            }
        }
        w.split(reward, fee)
    }

    #[test]
    fn fee_comes_off_before_the_split() {
        // 0.98 * 5e9 is just under 4.9e9 in binary; the miners still get every satoshi.
        let (rows, pool) = run(
            &[("a", 3.0), ("b", 2.0), ("a", 5.0)],
            10.0,
            5_000_000_000,
            0.02,
        );
        assert_eq!(
            rows,
            vec![
                ("a".into(), 3_920_000_000, 8.0),
                ("b".into(), 980_000_000, 2.0)
            ]
        );
        assert_eq!(pool, 100_000_000);
    }

    #[test]
    fn rounding_down_leaves_the_remainder_with_the_pool() {
        let (rows, pool) = run(&[("a", 1.0), ("b", 1.0), ("c", 1.0)], 3.0, 100, 0.0);
        assert_eq!(rows.iter().map(|r| r.1).collect::<Vec<_>>(), [33, 33, 33]);
        assert_eq!(pool, 1);
    }

    #[test]
    fn the_share_on_the_edge_counts_its_part() {
        let mut w = Window::new(10.0);
        assert!(!w.push("c", 4.0));
        assert!(!w.push("b", 4.0));
        assert!(w.push("a", 4.0));
        let (rows, pool) = w.split(1_000, 0.0);
        assert_eq!(
            rows,
            vec![
                ("a".into(), 200, 2.0),
                ("b".into(), 400, 4.0),
                ("c".into(), 400, 4.0)
            ]
        );
        assert_eq!(pool, 0);
    }

    #[test]
    fn an_unfilled_window_pays_only_its_share() {
        let (rows, pool) = run(&[("a", 1.0)], 4.0, 1_000, 0.0);
        assert_eq!(rows, vec![("a".into(), 250, 1.0)]);
        assert_eq!(pool, 750);
    }

    #[test]
    fn a_full_fee_pays_nobody() {
        let (rows, pool) = run(&[("a", 1.0)], 1.0, 1_000, 1.0);
        assert!(rows.is_empty());
        assert_eq!(pool, 1_000);
    }

    proptest! {
        #[test]
        fn never_pays_more_than_the_reward_and_loses_under_a_sat_per_worker(
            shares in proptest::collection::vec((0usize..5, 0.001f64..1e6), 1..200),
            window in 0.01f64..1e7,
            reward in 0u64..2_100_000_000_000_000,
            fee in 0.0f64..=1.0,
        ) {
            let names = ["a", "b", "c", "d", "e"];
            let mut w = Window::new(window);
            for (i, d) in &shares {
                if w.push(names[*i], *d) {
                    break;
                }
            }
            prop_assert!(w.covered() <= window * (1.0 + 1e-9));
            let (rows, pool) = w.split(reward, fee);
            let paid: u64 = rows.iter().map(|r| r.1).sum();
            prop_assert_eq!(paid + pool, reward);
            let owed = reward as f64 * (1.0 - fee) * (w.covered() / window);
            // Each worker loses less than one satoshi to rounding (plus float noise).
            prop_assert!(paid as f64 <= owed * (1.0 + 1e-9) + 1.0);
            prop_assert!(paid as f64 >= owed * (1.0 - 1e-9) - rows.len().max(1) as f64 - names.len() as f64);
        }
    }
}
