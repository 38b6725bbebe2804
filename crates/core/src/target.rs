//! 256-bit proof-of-work targets, and their conversions to and from pool difficulty.

use crate::difficulty::Difficulty;
use crate::hexutil::{self, HexError};
use crate::u256::U256;

/// A 256-bit proof-of-work target. A hash meets it when the hash, read as a 256-bit
/// little-endian integer (the byte order SHA-256d outputs, "internal byte order"), is less
/// than or equal to the target.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Target {
    /// Little-endian 64-bit limbs: `limbs[0]` is the least significant.
    limbs: [u64; 4],
}

impl Target {
    /// The easiest possible target: every hash meets it.
    pub const MAX: Target = Target {
        limbs: [u64::MAX; 4],
    };
    /// The difficulty-1 target, 0xFFFF x 2^208.
    pub const DIFF1: Target = Target {
        limbs: [0, 0, 0, 0x0000_0000_FFFF_0000],
    };

    /// Reads a target from its 32 little-endian bytes.
    pub fn from_le_bytes(bytes: [u8; 32]) -> Target {
        let mut limbs = [0u64; 4];
        for (limb, chunk) in limbs.iter_mut().zip(bytes.chunks_exact(8)) {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            *limb = u64::from_le_bytes(word);
        }
        Target { limbs }
    }

    /// The target's 32 little-endian bytes.
    pub fn to_le_bytes(self) -> [u8; 32] {
        let mut out = [0u8; 32];
        for (i, limb) in self.limbs.iter().enumerate() {
            out[i * 8..i * 8 + 8].copy_from_slice(&limb.to_le_bytes());
        }
        out
    }

    /// Reads a target from its 32 big-endian bytes (the order it is displayed in).
    pub fn from_be_bytes(mut bytes: [u8; 32]) -> Target {
        bytes.reverse();
        Target::from_le_bytes(bytes)
    }

    /// The target's 32 big-endian bytes (the order it is displayed in).
    pub fn to_be_bytes(self) -> [u8; 32] {
        let mut out = self.to_le_bytes();
        out.reverse();
        out
    }

    /// Parses 64 hex digits in big-endian (display) order, as `getblocktemplate`'s
    /// `target` field and this type's `Display` write them.
    pub fn from_be_hex(s: &str) -> Result<Target, HexError> {
        hexutil::decode_array::<32>(s).map(Target::from_be_bytes)
    }

    /// Whether `hash` (32 bytes in internal byte order, as SHA-256d outputs them) meets
    /// this target.
    pub fn is_met_by(&self, hash: &[u8; 32]) -> bool {
        Target::from_le_bytes(*hash) <= *self
    }

    /// The most significant 32 bits of the target, which a nonce scanner compares against
    /// the top word of each hash before it looks at the rest.
    pub fn top_u32(&self) -> u32 {
        (self.limbs[3] >> 32) as u32
    }

    /// The target for a pool difficulty: `DIFF1 / difficulty`, rounded down.
    ///
    /// Computed in integer arithmetic from the `f64`'s exact binary value, so the only
    /// rounding is the final floor. Difficulties below `DIFF1 / MAX` (about 2.3e-10) give
    /// [`Target::MAX`]; difficulties above `DIFF1` itself (about 2.7e67) give the hardest
    /// non-zero target, 1, since a zero target would be met by no hash but the zero hash.
    pub fn from_difficulty(difficulty: Difficulty) -> Target {
        let (mantissa, exponent) = decompose(difficulty.as_f64());
        let diff1 = Target::DIFF1.to_u256();
        let quotient = if exponent >= 0 {
            // floor(floor(a / 2^e) / m) == floor(a / (m * 2^e)) for integers.
            diff1
                .shr(exponent as u32)
                .div_rem_u64(mantissa)
                .map(|(q, _)| q)
        } else {
            div_scaled(diff1, exponent.unsigned_abs(), mantissa)
        };
        match quotient {
            None => Target::MAX,
            Some(q) if q.is_zero() => Target::from_u256(U256::ONE),
            Some(q) => Target::from_u256(q),
        }
    }

    /// The pool difficulty of this target: `DIFF1 / target`, rounded to the nearest `f64`
    /// twice (each operand, then the quotient). A zero target is treated as 1, the hardest
    /// target a hash can still meet other than by being zero.
    pub fn difficulty(&self) -> Difficulty {
        Difficulty::from_ratio_to_diff1(self.to_u256())
    }

    /// The compact (nBits) encoding of this target, rounded down to a 3-byte mantissa the
    /// way Bitcoin Core's `arith_uint256::GetCompact` does (never with the sign bit set).
    pub fn to_compact_lossy(&self) -> crate::CompactTarget {
        crate::compact::get_compact(self.to_u256())
    }

    pub(crate) fn to_u256(self) -> U256 {
        U256(self.limbs)
    }

    pub(crate) fn from_u256(v: U256) -> Target {
        Target { limbs: v.0 }
    }
}

/// Splits a positive finite `f64` into an odd integer mantissa and a power of two:
/// `value == mantissa * 2^exponent` exactly.
fn decompose(value: f64) -> (u64, i32) {
    let bits = value.to_bits();
    let biased = ((bits >> 52) & 0x7ff) as i32;
    let fraction = bits & ((1 << 52) - 1);
    let (mut mantissa, mut exponent) = if biased == 0 {
        (fraction, -1074)
    } else {
        (fraction | (1 << 52), biased - 1075)
    };
    if mantissa == 0 {
        return (0, 0);
    }
    let zeros = mantissa.trailing_zeros();
    mantissa >>= zeros;
    exponent += zeros as i32;
    (mantissa, exponent)
}

/// `floor(n * 2^shift / divisor)`, or `None` when it does not fit in 256 bits (or the
/// divisor is zero).
fn div_scaled(n: U256, shift: u32, divisor: u64) -> Option<U256> {
    let (quotient, mut rem) = n.div_rem_u64(divisor)?;
    if !quotient.is_zero() && quotient.bits() + shift > 256 {
        return None;
    }
    let mut out = quotient.shl(shift);
    // The fractional part rem / divisor contributes `shift` more quotient bits; rem < 2^64,
    // so doubling it in a u128 cannot overflow.
    let mut fraction = U256::ZERO;
    for _ in 0..shift.min(256) {
        let doubled = u128::from(rem) << 1;
        fraction = fraction.shl(1);
        if doubled >= u128::from(divisor) {
            rem = (doubled - u128::from(divisor)) as u64;
            fraction.0[0] |= 1;
        } else {
            rem = doubled as u64;
        }
    }
    // `out` has zeros in its low `shift` bits, so OR-ing the fraction is an addition.
    for (o, f) in out.0.iter_mut().zip(fraction.0) {
        *o |= f;
    }
    Some(out)
}

impl PartialOrd for Target {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Target {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.limbs.iter().rev().cmp(other.limbs.iter().rev())
    }
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Target({self})")
    }
}

/// Big-endian hex, the way block explorers and Bitcoin Core display targets.
impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for limb in self.limbs.iter().rev() {
            write!(f, "{limb:016x}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn target_strategy() -> impl Strategy<Value = Target> {
        (any::<[u8; 32]>(), 0u32..256).prop_map(|(bytes, shift)| {
            // Random magnitudes, not just random 256-bit numbers (which are nearly all huge).
            Target::from_u256(Target::from_le_bytes(bytes).to_u256().shr(shift))
        })
    }

    #[test]
    fn constants_have_their_documented_values() {
        assert_eq!(
            Target::DIFF1.to_string(),
            "00000000ffff0000000000000000000000000000000000000000000000000000"
        );
        assert_eq!(Target::MAX.to_string(), "f".repeat(64));
        assert_eq!(Target::DIFF1.top_u32(), 0);
        assert_eq!(Target::MAX.top_u32(), u32::MAX);
    }

    #[test]
    fn byte_orders_round_trip_and_mirror() {
        let mut le = [0u8; 32];
        le[0] = 0x01;
        le[31] = 0x80;
        let t = Target::from_le_bytes(le);
        assert_eq!(t.to_le_bytes(), le);
        let mut be = le;
        be.reverse();
        assert_eq!(t.to_be_bytes(), be);
        assert_eq!(Target::from_be_bytes(be), t);
        assert_eq!(Target::from_be_hex(&t.to_string()), Ok(t));
    }

    #[test]
    fn from_be_hex_rejects_bad_input() {
        assert!(matches!(
            Target::from_be_hex("00"),
            Err(HexError::WrongLength { .. })
        ));
        assert!(matches!(
            Target::from_be_hex(&"g".repeat(64)),
            Err(HexError::InvalidDigit { index: 0, .. })
        ));
    }

    #[test]
    fn is_met_by_compares_as_little_endian_and_includes_equality() {
        let target = Target::DIFF1;
        assert!(target.is_met_by(&target.to_le_bytes()));
        let mut just_above = target.to_le_bytes();
        just_above[0] = 1;
        assert!(!target.is_met_by(&just_above));
        assert!(Target::MAX.is_met_by(&[0xff; 32]));
    }

    #[test]
    fn difficulty_one_is_diff1_exactly() {
        assert_eq!(Target::DIFF1.difficulty().as_f64(), 1.0);
        assert_eq!(Target::from_difficulty(Difficulty::ONE), Target::DIFF1);
    }

    #[test]
    fn power_of_two_difficulties_are_exact_shifts() {
        for k in 0..40 {
            let d = Difficulty::new(2f64.powi(k)).unwrap();
            assert_eq!(
                Target::from_difficulty(d).to_u256(),
                Target::DIFF1.to_u256().shr(k as u32)
            );
            let d = Difficulty::new(2f64.powi(-k)).unwrap();
            if k <= 32 {
                assert_eq!(
                    Target::from_difficulty(d).to_u256(),
                    Target::DIFF1.to_u256().shl(k as u32)
                );
            }
        }
    }

    #[test]
    fn non_power_of_two_difficulty_is_floor_of_exact_quotient() {
        // diff1 / 3 = 0x5555 * 2^208 exactly (0xffff = 3 * 0x5555).
        let d = Difficulty::new(3.0).unwrap();
        assert_eq!(
            Target::from_difficulty(d).to_string(),
            "0000000055550000000000000000000000000000000000000000000000000000"
        );
        // diff1 / 0.75 = 0xffff * 2^210 / 3 = 0x5555 * 2^210.
        let d = Difficulty::new(0.75).unwrap();
        assert_eq!(
            Target::from_difficulty(d).to_string(),
            "0000000155540000000000000000000000000000000000000000000000000000"
        );
        // diff1 / 1.5: 0xffff * 2^209 / 3, exact again.
        let d = Difficulty::new(1.5).unwrap();
        assert_eq!(
            Target::from_difficulty(d).to_u256(),
            U256([0, 0, 0, 0x5555 << 17])
        );
    }

    #[test]
    fn regtest_target_has_its_tiny_difficulty() {
        // Bitcoin Core's getdifficulty on regtest: 4.656542373906925e-10.
        let regtest = Target::from_be_hex(&format!("7fffff{}", "0".repeat(58))).unwrap();
        let d = regtest.difficulty().as_f64();
        assert!((d - 4.656542373906925e-10).abs() < 1e-24, "{d}");
        let back = Target::from_difficulty(regtest.difficulty());
        let rel =
            (back.to_u256().to_f64() - regtest.to_u256().to_f64()) / regtest.to_u256().to_f64();
        assert!(rel.abs() < 1e-15, "{back}");
    }

    #[test]
    fn extreme_difficulties_clamp() {
        let tiny = Difficulty::new(1e-12).unwrap();
        assert_eq!(Target::from_difficulty(tiny), Target::MAX);
        let smallest = Difficulty::new(f64::from_bits(1)).unwrap();
        assert_eq!(Target::from_difficulty(smallest), Target::MAX);
        let huge = Difficulty::new(1e300).unwrap();
        assert_eq!(Target::from_difficulty(huge).to_u256(), U256::ONE);
        let max = Difficulty::new(f64::MAX).unwrap();
        assert_eq!(Target::from_difficulty(max).to_u256(), U256::ONE);
        // Zero is met only by the zero hash; its difficulty is that of target 1.
        let zero = Target::from_le_bytes([0; 32]);
        assert_eq!(zero.difficulty(), Target::from_u256(U256::ONE).difficulty());
        assert!(zero.difficulty().as_f64().is_finite());
    }

    proptest! {
        #[test]
        fn le_bytes_round_trip(bytes in any::<[u8; 32]>()) {
            prop_assert_eq!(Target::from_le_bytes(bytes).to_le_bytes(), bytes);
            prop_assert_eq!(Target::from_be_bytes(bytes).to_be_bytes(), bytes);
        }

        #[test]
        fn ord_matches_big_endian_bytes(a in any::<[u8; 32]>(), b in any::<[u8; 32]>()) {
            let (ta, tb) = (Target::from_le_bytes(a), Target::from_le_bytes(b));
            prop_assert_eq!(ta.cmp(&tb), ta.to_be_bytes().cmp(&tb.to_be_bytes()));
        }

        #[test]
        fn difficulty_round_trip_within_rounding(log_d in -9.0f64..40.0) {
            let d = Difficulty::new(10f64.powf(log_d)).unwrap();
            let back = Target::from_difficulty(d).difficulty().as_f64();
            let rel = (back - d.as_f64()).abs() / d.as_f64();
            prop_assert!(rel < 1e-12, "d={} back={}", d.as_f64(), back);
        }

        #[test]
        fn target_round_trip_within_rounding(bytes in any::<[u8; 32]>(), shift in 0u32..190) {
            // Keep at least ~60 significant bits so flooring in from_difficulty is invisible.
            let mut bytes = bytes;
            bytes[31] |= 0x80;
            let t = Target::from_u256(Target::from_le_bytes(bytes).to_u256().shr(shift));
            let back = Target::from_difficulty(t.difficulty());
            let (a, b) = (t.to_u256().to_f64(), back.to_u256().to_f64());
            prop_assert!(((a - b) / a).abs() < 1e-12, "{} -> {}", t, back);
        }

        #[test]
        fn from_difficulty_is_monotonic(a in 1e-11f64..1e70, b in 1e-11f64..1e70) {
            let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
            let (lo, hi) = (Difficulty::new(lo).unwrap(), Difficulty::new(hi).unwrap());
            prop_assert!(Target::from_difficulty(lo) >= Target::from_difficulty(hi));
        }

        #[test]
        fn difficulty_is_monotonic(a in target_strategy(), b in target_strategy()) {
            let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
            prop_assert!(lo.difficulty() >= hi.difficulty());
        }

        #[test]
        fn from_difficulty_agrees_with_float_division(d in 1e-9f64..1e40) {
            // Up to 1e40 the target keeps 90 bits, so flooring it costs nothing visible.
            let t = Target::from_difficulty(Difficulty::new(d).unwrap()).to_u256().to_f64();
            let expect = Target::DIFF1.to_u256().to_f64() / d;
            prop_assert!(((t - expect) / expect).abs() < 1e-12);
        }
    }
}
