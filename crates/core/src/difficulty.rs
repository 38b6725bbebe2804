//! Pool difficulty: how many times harder than difficulty 1 a target is.

use crate::hashrate::{HashRate, HASHES_PER_DIFF1_SHARE};
use crate::target::Target;
use crate::u256::U256;

/// A pool (or network) difficulty: `DIFF1 / target`, where the difficulty-1 target is
/// 0xFFFF x 2^208. Always finite and positive; values below 1 are legal (pools set them
/// for CPU miners, and regtest's target has difficulty about 4.66e-10).
#[derive(Clone, Copy, PartialEq, PartialOrd, Debug)]
pub struct Difficulty(f64);

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
