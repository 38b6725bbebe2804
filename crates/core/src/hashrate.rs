//! Hash rates.

/// 2^32: the expected number of hashes per difficulty-1 share (to within 1 part in 65536,
/// the convention every pool and miner uses).
pub(crate) const HASHES_PER_DIFF1_SHARE: f64 = 4_294_967_296.0;

/// A hash rate in hashes (SHA-256d of an 80-byte header) per second.
/// With the `serde` feature it serializes as the plain number of H/s.
#[derive(Clone, Copy, PartialEq, PartialOrd, Debug, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize), serde(transparent))]
pub struct HashRate(f64);

const UNITS: [&str; 7] = ["H/s", "kH/s", "MH/s", "GH/s", "TH/s", "PH/s", "EH/s"];

impl HashRate {
    /// No hashing.
    pub const ZERO: HashRate = HashRate(0.0);

    /// From hashes per second.
    pub fn from_hs(hs: f64) -> HashRate {
        HashRate(hs)
    }
    /// From kilohashes (10^3) per second.
    pub fn from_khs(khs: f64) -> HashRate {
        HashRate(khs * 1e3)
    }
    /// From megahashes (10^6) per second.
    pub fn from_mhs(mhs: f64) -> HashRate {
        HashRate(mhs * 1e6)
    }
    /// From gigahashes (10^9) per second.
    pub fn from_ghs(ghs: f64) -> HashRate {
        HashRate(ghs * 1e9)
    }
    /// From terahashes (10^12) per second.
    pub fn from_ths(ths: f64) -> HashRate {
        HashRate(ths * 1e12)
    }
    /// From petahashes (10^15) per second.
    pub fn from_phs(phs: f64) -> HashRate {
        HashRate(phs * 1e15)
    }
    /// From exahashes (10^18) per second.
    pub fn from_ehs(ehs: f64) -> HashRate {
        HashRate(ehs * 1e18)
    }
    /// The rate of `hashes` done in `seconds`; zero when `seconds` is not positive.
    pub fn from_hashes_in(hashes: u64, seconds: f64) -> HashRate {
        if seconds > 0.0 {
            HashRate(hashes as f64 / seconds)
        } else {
            HashRate::ZERO
        }
    }

    /// The rate that finds shares worth `difficulty_sum` (the sum of their difficulties) in
    /// `seconds`: a share at difficulty d stands for d x 2^32 hashes on average, whatever the
    /// hardware claims. This is how pools and cgminer measure a miner. Zero when `seconds`
    /// is not positive.
    pub fn from_diff1_shares(difficulty_sum: f64, seconds: f64) -> HashRate {
        if seconds > 0.0 {
            HashRate(difficulty_sum * HASHES_PER_DIFF1_SHARE / seconds)
        } else {
            HashRate::ZERO
        }
    }

    /// In hashes per second.
    pub fn as_hs(self) -> f64 {
        self.0
    }
    /// In kilohashes per second.
    pub fn as_khs(self) -> f64 {
        self.0 / 1e3
    }
    /// In megahashes per second.
    pub fn as_mhs(self) -> f64 {
        self.0 / 1e6
    }
    /// In gigahashes per second.
    pub fn as_ghs(self) -> f64 {
        self.0 / 1e9
    }
    /// In terahashes per second.
    pub fn as_ths(self) -> f64 {
        self.0 / 1e12
    }
    /// In petahashes per second.
    pub fn as_phs(self) -> f64 {
        self.0 / 1e15
    }
    /// In exahashes per second.
    pub fn as_ehs(self) -> f64 {
        self.0 / 1e18
    }
}

impl std::ops::Add for HashRate {
    type Output = HashRate;
    fn add(self, rhs: HashRate) -> HashRate {
        HashRate(self.0 + rhs.0)
    }
}

impl std::iter::Sum for HashRate {
    fn sum<I: Iterator<Item = HashRate>>(iter: I) -> HashRate {
        HashRate(iter.map(|r| r.0).sum())
    }
}

/// The largest SI unit (H/s up to EH/s) that keeps the number at or above 1, two decimals
/// unless a precision is given: `31.40 MH/s`, `{:.0}` gives `31 MH/s`.
impl std::fmt::Display for HashRate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let precision = f.precision().unwrap_or(2);
        let mut value = self.0;
        let mut unit = 0;
        // Round first, so 999.999 kH/s prints as 1.00 MH/s rather than 1000.00 kH/s.
        let rounds_to =
            |v: f64| (v * 10f64.powi(precision as i32)).round() / 10f64.powi(precision as i32);
        while unit + 1 < UNITS.len() && value.is_finite() && rounds_to(value.abs()) >= 1000.0 {
            value /= 1000.0;
            unit += 1;
        }
        write!(f, "{value:.precision$} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_picks_the_unit() {
        assert_eq!(HashRate::from_mhs(31.4).to_string(), "31.40 MH/s");
        assert_eq!(HashRate::from_hs(0.0).to_string(), "0.00 H/s");
        assert_eq!(HashRate::from_hs(999.0).to_string(), "999.00 H/s");
        assert_eq!(HashRate::from_hs(1000.0).to_string(), "1.00 kH/s");
        assert_eq!(HashRate::from_khs(999.999).to_string(), "1.00 MH/s");
        assert_eq!(HashRate::from_ghs(12.5).to_string(), "12.50 GH/s");
        assert_eq!(HashRate::from_ths(234.0).to_string(), "234.00 TH/s");
        assert_eq!(HashRate::from_phs(314.0).to_string(), "314.00 PH/s");
        assert_eq!(HashRate::from_ehs(800.0).to_string(), "800.00 EH/s");
        assert_eq!(HashRate::from_ehs(5000.0).to_string(), "5000.00 EH/s");
        assert_eq!(format!("{:.0}", HashRate::from_mhs(31.4)), "31 MH/s");
        assert_eq!(format!("{:.1}", HashRate::from_ths(0.5)), "500.0 GH/s");
        assert_eq!(HashRate::from_hs(f64::NAN).to_string(), "NaN H/s");
    }

    #[test]
    fn units_convert() {
        let r = HashRate::from_ths(1.5);
        assert_eq!(r.as_hs(), 1.5e12);
        assert_eq!(r.as_ghs(), 1500.0);
        assert_eq!(HashRate::from_mhs(2.0).as_khs(), 2000.0);
        assert_eq!(HashRate::from_ehs(1.0).as_phs(), 1000.0);
        assert_eq!(HashRate::from_phs(1.0).as_ths(), 1000.0);
        assert_eq!(HashRate::from_ghs(1.0).as_mhs(), 1000.0);
        assert_eq!(HashRate::from_ehs(2.0).as_ehs(), 2.0);
        assert_eq!(HashRate::from_hashes_in(50, 2.0).as_hs(), 25.0);
        assert_eq!(HashRate::from_hashes_in(50, 0.0), HashRate::ZERO);
        let total: HashRate = [HashRate::from_mhs(1.0), HashRate::from_mhs(2.0)]
            .into_iter()
            .sum();
        assert_eq!(total, HashRate::from_mhs(3.0));
    }

    #[test]
    fn rates_from_found_difficulty() {
        // One difficulty-1 share a second is 2^32 H/s.
        assert_eq!(
            HashRate::from_diff1_shares(60.0, 60.0).as_hs(),
            4_294_967_296.0
        );
        // 300 shares at difficulty 1024 in 10 minutes: 2.199 TH/s.
        let r = HashRate::from_diff1_shares(300.0 * 1024.0, 600.0);
        assert_eq!(r.as_hs(), 300.0 * 1024.0 * 4_294_967_296.0 / 600.0);
        assert_eq!(r.to_string(), "2.20 TH/s");
        // Fractional difficulty, as pools set for CPUs.
        assert_eq!(
            HashRate::from_diff1_shares(0.5, 2.0).as_hs(),
            1_073_741_824.0
        );
        assert_eq!(HashRate::from_diff1_shares(5.0, 0.0), HashRate::ZERO);
        assert_eq!(HashRate::from_diff1_shares(5.0, -1.0), HashRate::ZERO);
        // The inverse of Difficulty::expected_shares_per_second.
        let d = crate::Difficulty::new(4096.0).unwrap();
        let rate = HashRate::from_ths(100.0);
        let per_second = d.expected_shares_per_second(rate);
        let back = HashRate::from_diff1_shares(per_second * 4096.0 * 3600.0, 3600.0);
        assert!((back.as_hs() / rate.as_hs() - 1.0).abs() < 1e-12, "{back}");
    }
}
