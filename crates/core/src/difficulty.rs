//! Pool difficulty: how many times harder than difficulty 1 a target is.

use crate::hashrate::{HashRate, HASHES_PER_DIFF1_SHARE};
use crate::target::Target;
use crate::u256::U256;

/// A pool (or network) difficulty: `DIFF1 / target`, where the difficulty-1 target is
/// 0xFFFF x 2^208. Always finite and positive; values below 1 are legal (pools set them
/// for CPU miners, and regtest's target has difficulty about 4.66e-10).
/// With the `serde` feature it serializes as the plain number.
#[derive(Clone, Copy, PartialEq, PartialOrd, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize), serde(transparent))]
pub struct Difficulty(f64);

/// The sum of share difficulties (the work a set of shares stands for): zero before the
/// first share, never negative. A [`Difficulty`] is one share's and is never zero.
#[derive(Clone, Copy, PartialEq, PartialOrd, Debug, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize), serde(transparent))]
pub struct DifficultySum(f64);

impl DifficultySum {
    /// No shares.
    pub const ZERO: DifficultySum = DifficultySum(0.0);

    /// The number.
    pub fn as_f64(self) -> f64 {
        self.0
    }

    /// The hash rate that finds this much difficulty in `seconds`; see
    /// [`HashRate::from_diff1_shares`].
    pub fn rate_over(self, seconds: f64) -> HashRate {
        HashRate::from_diff1_shares(self.0, seconds)
    }

    /// The short form miners read (`1.2K`, `65.5M`); see [`Difficulty::short`].
    pub fn short(self) -> ShortDifficulty {
        ShortDifficulty(self.0)
    }
}

impl std::ops::AddAssign<Difficulty> for DifficultySum {
    fn add_assign(&mut self, d: Difficulty) {
        self.0 += d.0;
    }
}

impl std::ops::Add<Difficulty> for DifficultySum {
    type Output = DifficultySum;
    fn add(self, d: Difficulty) -> DifficultySum {
        DifficultySum(self.0 + d.0)
    }
}

impl std::iter::Sum<Difficulty> for DifficultySum {
    fn sum<I: Iterator<Item = Difficulty>>(iter: I) -> DifficultySum {
        iter.fold(DifficultySum::ZERO, |s, d| s + d)
    }
}

/// A difficulty in the short form miners and pools show: three significant digits and an SI
/// suffix from K (10^3) to E (10^18) (`512`, `1.2K`, `65.5M`, `120T`); below 1, three
/// significant digits (`0.00391`), and scientific notation below 0.001 (`4.66e-10`, regtest's
/// network difficulty).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ShortDifficulty(f64);

impl std::fmt::Display for ShortDifficulty {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        const SUFFIXES: [&str; 7] = ["", "K", "M", "G", "T", "P", "E"];
        let v = self.0;
        if !v.is_finite() || v == 0.0 {
            return write!(f, "{v}");
        }
        if v.abs() < 0.001 {
            return write!(f, "{v:.2e}");
        }
        if v.abs() < 1.0 {
            // Three significant digits, trailing zeros dropped.
            let decimals = (2 - v.abs().log10().floor() as i32).max(0) as usize;
            let s = format!("{v:.decimals$}");
            let s = s.trim_end_matches('0').trim_end_matches('.');
            return f.write_str(s);
        }
        let mut scaled = v;
        let mut unit = 0;
        // Round to three significant digits first, so 999.95K prints as 1M, not 1000K.
        let three = |x: f64| {
            let digits = x.abs().log10().floor() as i32;
            let step = 10f64.powi(digits - 2);
            (x / step).round() * step
        };
        while unit + 1 < SUFFIXES.len() && three(scaled).abs() >= 1000.0 {
            scaled /= 1000.0;
            unit += 1;
        }
        let scaled = three(scaled);
        let decimals = if scaled.abs() >= 100.0 {
            0
        } else if scaled.abs() >= 10.0 {
            1
        } else {
            2
        };
        let s = format!("{scaled:.decimals$}");
        let s = if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.')
        } else {
            &s
        };
        write!(f, "{s}{}", SUFFIXES[unit])
    }
}

/// Why a number is not a difficulty.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
pub enum DifficultyError {
    /// NaN.
    #[error("difficulty is not a number")]
    NaN,
    /// Positive or negative infinity.
    #[error("difficulty must be finite, got {0}")]
    Infinite(f64),
    /// Zero or negative.
    #[error("difficulty must be greater than zero, got {0}")]
    NotPositive(f64),
}

impl Difficulty {
    /// Difficulty 1: the target 0xFFFF x 2^208.
    pub const ONE: Difficulty = Difficulty(1.0);

    /// A difficulty from a positive, finite number.
    pub fn new(value: f64) -> Result<Difficulty, DifficultyError> {
        if value.is_nan() {
            Err(DifficultyError::NaN)
        } else if value.is_infinite() {
            Err(DifficultyError::Infinite(value))
        } else if value <= 0.0 {
            Err(DifficultyError::NotPositive(value))
        } else {
            Ok(Difficulty(value))
        }
    }

    /// The number.
    pub fn as_f64(self) -> f64 {
        self.0
    }

    /// The share difficulty of a hash: `DIFF1 / hash`, the hash (32 bytes in internal
    /// order, as SHA-256d outputs them) read as a 256-bit little-endian number. The
    /// all-zero hash is given the difficulty of hash 1, so the result stays finite.
    pub fn of_hash(hash: &[u8; 32]) -> Difficulty {
        Difficulty::from_ratio_to_diff1(Target::from_le_bytes(*hash).to_u256())
    }

    /// The target a share must meet at this difficulty; see [`Target::from_difficulty`].
    pub fn to_target(self) -> Target {
        Target::from_difficulty(self)
    }

    /// Expected shares per second from a miner hashing at `rate`:
    /// `rate / (difficulty * 2^32)`.
    pub fn expected_shares_per_second(self, rate: HashRate) -> f64 {
        rate.as_hs() / (self.0 * HASHES_PER_DIFF1_SHARE)
    }

    /// The short form miners read (`1.2K`, `65.5M`); see [`ShortDifficulty`].
    pub fn short(self) -> ShortDifficulty {
        ShortDifficulty(self.0)
    }

    /// `DIFF1 / max(value, 1)`; finite and positive for every 256-bit value.
    pub(crate) fn from_ratio_to_diff1(value: U256) -> Difficulty {
        let value = if value.is_zero() { U256::ONE } else { value };
        Difficulty(Target::DIFF1.to_u256().to_f64() / value.to_f64())
    }
}

impl Default for Difficulty {
    fn default() -> Self {
        Difficulty::ONE
    }
}

impl TryFrom<f64> for Difficulty {
    type Error = DifficultyError;
    fn try_from(value: f64) -> Result<Self, Self::Error> {
        Difficulty::new(value)
    }
}

/// The plain number, honouring a requested precision (`{:.3}`).
impl std::fmt::Display for Difficulty {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&self.0, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn new_rejects_what_is_not_a_difficulty() {
        assert_eq!(Difficulty::new(f64::NAN), Err(DifficultyError::NaN));
        assert_eq!(
            Difficulty::new(f64::INFINITY),
            Err(DifficultyError::Infinite(f64::INFINITY))
        );
        assert_eq!(
            Difficulty::new(f64::NEG_INFINITY),
            Err(DifficultyError::Infinite(f64::NEG_INFINITY))
        );
        assert_eq!(Difficulty::new(0.0), Err(DifficultyError::NotPositive(0.0)));
        assert_eq!(
            Difficulty::new(-0.0),
            Err(DifficultyError::NotPositive(-0.0))
        );
        assert_eq!(
            Difficulty::new(-3.0),
            Err(DifficultyError::NotPositive(-3.0))
        );
        assert_eq!(Difficulty::new(0.001).map(Difficulty::as_f64), Ok(0.001));
        assert_eq!(
            Difficulty::new(-3.0).unwrap_err().to_string(),
            "difficulty must be greater than zero, got -3"
        );
    }

    #[test]
    fn hash_at_diff1_target_has_difficulty_one() {
        assert_eq!(
            Difficulty::of_hash(&Target::DIFF1.to_le_bytes()),
            Difficulty::ONE
        );
        assert!(Difficulty::of_hash(&[0; 32]).as_f64().is_finite());
        assert!(Difficulty::of_hash(&[0xff; 32]).as_f64() < 1e-9);
    }

    #[test]
    fn genesis_hash_difficulty() {
        // Genesis block hash 000000000019d668... in display order; its share difficulty
        // is 2536.426...
        let mut hash = [0u8; 32];
        let display = crate::hexutil::decode_array::<32>(
            "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f",
        )
        .unwrap();
        for (i, b) in display.iter().rev().enumerate() {
            hash[i] = *b;
        }
        let d = Difficulty::of_hash(&hash).as_f64();
        assert!((d - 2536.4263).abs() < 1e-4, "{d}");
    }

    #[test]
    fn expected_share_rate() {
        // 4.294967296 GH/s at difficulty 1 is one share per second.
        let rate = HashRate::from_hs(4_294_967_296.0);
        assert_eq!(Difficulty::ONE.expected_shares_per_second(rate), 1.0);
        let d = Difficulty::new(1024.0).unwrap();
        assert_eq!(d.expected_shares_per_second(rate), 1.0 / 1024.0);
        // A 200 TH/s miner at difficulty 65536: about 0.71 shares per second.
        let s21 = HashRate::from_ths(200.0);
        let spm = Difficulty::new(65536.0)
            .unwrap()
            .expected_shares_per_second(s21);
        assert!((spm - 0.7105).abs() < 1e-3, "{spm}");
    }

    #[test]
    fn display_is_the_number() {
        assert_eq!(Difficulty::new(0.001).unwrap().to_string(), "0.001");
        assert_eq!(
            format!("{:.2}", Difficulty::new(1.0 / 3.0).unwrap()),
            "0.33"
        );
    }

    #[test]
    fn short_form_is_what_miners_show() {
        let short = |v: f64| Difficulty::new(v).unwrap().short().to_string();
        assert_eq!(short(512.0), "512");
        assert_eq!(short(1.0), "1");
        assert_eq!(short(1234.0), "1.23K");
        assert_eq!(short(65_536.0), "65.5K");
        assert_eq!(short(65_500_000.0), "65.5M");
        assert_eq!(short(999_950.0), "1M");
        assert_eq!(short(120e12), "120T");
        assert_eq!(short(4.2e21), "4200E");
        assert_eq!(short(1.0 / 256.0), "0.00391");
        assert_eq!(short(0.5), "0.5");
        assert_eq!(short(0.001), "0.001");
        assert_eq!(short(4.656542373906925e-10), "4.66e-10");
        assert_eq!(DifficultySum::ZERO.short().to_string(), "0");
    }

    #[test]
    fn sums_add_shares_and_give_rates() {
        let d = Difficulty::new(1024.0).unwrap();
        let sum: DifficultySum = [d, d, d].into_iter().sum();
        assert_eq!(sum.as_f64(), 3072.0);
        let mut s = DifficultySum::ZERO;
        s += d;
        assert_eq!(s, DifficultySum::ZERO + d);
        assert_eq!(
            sum.rate_over(60.0),
            HashRate::from_diff1_shares(3072.0, 60.0)
        );
    }

    proptest! {
        #[test]
        fn of_hash_is_monotonic_and_consistent_with_targets(a in any::<[u8; 32]>(), b in any::<[u8; 32]>()) {
            let (da, db) = (Difficulty::of_hash(&a), Difficulty::of_hash(&b));
            let (ta, tb) = (Target::from_le_bytes(a), Target::from_le_bytes(b));
            if ta <= tb {
                prop_assert!(da >= db);
            }
            prop_assert_eq!(da, ta.difficulty());
        }

        #[test]
        fn a_hash_meets_the_target_of_a_slightly_lower_difficulty(bytes in any::<[u8; 32]>(), shift in 0u32..200) {
            let hash = Target::from_u256(Target::from_le_bytes(bytes).to_u256().shr(shift)).to_le_bytes();
            let d = Difficulty::of_hash(&hash);
            let easier = Difficulty::new(d.as_f64() * (1.0 - 1e-9)).unwrap();
            prop_assert!(easier.to_target().is_met_by(&hash));
        }
    }
}
