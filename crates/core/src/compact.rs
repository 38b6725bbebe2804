//! Compact targets (a block header's nBits), with Bitcoin Core's exact decoding rules.

use crate::target::Target;
use crate::u256::U256;

/// A target in the compact form block headers carry (nBits): the top byte is a base-256
/// exponent (the target's length in bytes), the low 23 bits a mantissa, and bit 23 a sign.
/// The value is `mantissa * 256^(exponent - 3)`.
///
/// The `u32` is the number itself; in a header it is stored little-endian (bytes 72..76),
/// and Stratum and `getblocktemplate` write it as 8 big-endian hex digits (`"1d00ffff"`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct CompactTarget(pub u32);

/// Why compact bits do not describe a usable target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CompactError {
    /// The sign bit (0x00800000) is set and the mantissa is non-zero.
    #[error("compact bits {0:#010x} encode a negative target")]
    Negative(u32),
    /// The value does not fit in 256 bits (Bitcoin Core's overflow rule).
    #[error("compact bits {0:#010x} encode a target wider than 256 bits")]
    Overflow(u32),
    /// The value is zero: no hash but the all-zero one would meet it.
    #[error("compact bits {0:#010x} encode a zero target")]
    Zero(u32),
}

impl CompactTarget {
    /// The number as a `u32` (big-endian when written as hex, little-endian in a header).
    pub fn to_u32(self) -> u32 {
        self.0
    }

    /// Decodes the target exactly as Bitcoin Core's `arith_uint256::SetCompact` does,
    /// refusing the three values that `CheckProofOfWork` refuses: negative, overflowing and
    /// zero targets.
    pub fn to_target(self) -> Result<Target, CompactError> {
        let decoded = set_compact(self.0);
        if decoded.negative {
            Err(CompactError::Negative(self.0))
        } else if decoded.overflow {
            Err(CompactError::Overflow(self.0))
        } else if decoded.value.is_zero() {
            Err(CompactError::Zero(self.0))
        } else {
            Ok(Target::from_u256(decoded.value))
        }
    }
}

impl From<u32> for CompactTarget {
    fn from(bits: u32) -> Self {
        CompactTarget(bits)
    }
}

impl From<CompactTarget> for u32 {
    fn from(bits: CompactTarget) -> Self {
        bits.0
    }
}

/// The 8 hex digits Stratum, `getblocktemplate` and Core's RPCs use (`1d00ffff`).
impl std::fmt::Display for CompactTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:08x}", self.0)
    }
}

/// What `SetCompact` computes, flags included. `value` is meaningful only when `overflow`
/// is false.
struct Decoded {
    value: U256,
    negative: bool,
    overflow: bool,
}

fn set_compact(compact: u32) -> Decoded {
    let size = compact >> 24;
    let mut word = compact & 0x007f_ffff;
    let value = if size <= 3 {
        word >>= 8 * (3 - size);
        U256::from_u64(u64::from(word))
    } else {
        U256::from_u64(u64::from(word)).shl(8 * (size - 3))
    };
    Decoded {
        value,
        negative: word != 0 && (compact & 0x0080_0000) != 0,
        overflow: word != 0
            && (size > 34 || (word > 0xff && size > 33) || (word > 0xffff && size > 32)),
    }
}

/// Bitcoin Core's `arith_uint256::GetCompact(false)`.
pub(crate) fn get_compact(value: U256) -> CompactTarget {
    let mut size = value.bits().div_ceil(8);
    let mut compact = if size <= 3 {
        (value.low_u64() << (8 * (3 - size))) as u32
    } else {
        value.shr(8 * (size - 3)).low_u64() as u32
    };
    // Bit 23 is the sign: a mantissa that would set it moves one byte right.
    if compact & 0x0080_0000 != 0 {
        compact >>= 8;
        size += 1;
    }
    CompactTarget(compact | (size << 24))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hex(v: U256) -> String {
        Target::from_u256(v).to_string()
    }

    /// `arith_uint256_tests.cpp`, test case `bignum_SetCompact`, Bitcoin Core: each line is
    /// (nBits, value as hex without leading zeros, GetCompact(negative) of that value,
    /// fNegative, fOverflow).
    #[test]
    fn bitcoin_core_set_compact_vectors() {
        let cases: &[(u32, u128, u32, bool, bool)] = &[
            (0x0000_0000, 0, 0, false, false),
            (0x0012_3456, 0, 0, false, false),
            (0x0100_3456, 0, 0, false, false),
            (0x0200_0056, 0, 0, false, false),
            (0x0300_0000, 0, 0, false, false),
            (0x0400_0000, 0, 0, false, false),
            (0x0092_3456, 0, 0, false, false),
            (0x0180_3456, 0, 0, false, false),
            (0x0280_0056, 0, 0, false, false),
            (0x0380_0000, 0, 0, false, false),
            (0x0480_0000, 0, 0, false, false),
            (0x0112_3456, 0x12, 0x0112_0000, false, false),
            (0x01fe_dcba, 0x7e, 0x01fe_0000, true, false),
            (0x0212_3456, 0x1234, 0x0212_3400, false, false),
            (0x0312_3456, 0x12_3456, 0x0312_3456, false, false),
            (0x0412_3456, 0x1234_5600, 0x0412_3456, false, false),
            (0x0492_3456, 0x1234_5600, 0x0492_3456, true, false),
            (0x0500_9234, 0x9234_0000, 0x0500_9234, false, false),
        ];
        for &(bits, value, compact, negative, overflow) in cases {
            let d = set_compact(bits);
            let expect = U256([value as u64, (value >> 64) as u64, 0, 0]);
            assert_eq!(d.value, expect, "{bits:#010x}");
            assert_eq!(d.negative, negative, "{bits:#010x}");
            assert_eq!(d.overflow, overflow, "{bits:#010x}");
            // Core re-encodes with the sign it decoded; we only ever encode non-negative.
            let mut re = get_compact(d.value).0;
            if negative && re & 0x007f_ffff != 0 {
                re |= 0x0080_0000;
            }
            assert_eq!(re, compact, "{bits:#010x}");
        }

        let d = set_compact(0x2012_3456);
        assert_eq!(hex(d.value), format!("123456{}", "0".repeat(58)));
        assert_eq!(get_compact(d.value), CompactTarget(0x2012_3456));
        assert!(!d.negative && !d.overflow);

        let d = set_compact(0xff12_3456);
        assert!(d.overflow && !d.negative);
    }

    #[test]
    fn get_compact_never_sets_the_sign_bit() {
        // Core: "Make sure that we don't generate compacts with the 0x00800000 bit set".
        assert_eq!(
            get_compact(U256::from_u64(0x80)),
            CompactTarget(0x0200_8000)
        );
    }

    #[test]
    fn to_target_gives_typed_errors() {
        use CompactError::*;
        assert_eq!(
            CompactTarget(0x0492_3456).to_target(),
            Err(Negative(0x0492_3456))
        );
        assert_eq!(
            CompactTarget(0x01fe_dcba).to_target(),
            Err(Negative(0x01fe_dcba))
        );
        assert_eq!(
            CompactTarget(0xff12_3456).to_target(),
            Err(Overflow(0xff12_3456))
        );
        assert_eq!(
            CompactTarget(0x0100_3456).to_target(),
            Err(Zero(0x0100_3456))
        );
        assert_eq!(CompactTarget(0).to_target(), Err(Zero(0)));
        // The sign bit with a zero mantissa is zero, not negative (Core: 0x01803456 -> 0).
        assert_eq!(
            CompactTarget(0x0180_3456).to_target(),
            Err(Zero(0x0180_3456))
        );
        assert_eq!(
            CompactTarget(0x0492_3456)
                .to_target()
                .unwrap_err()
                .to_string(),
            "compact bits 0x04923456 encode a negative target"
        );
    }

    #[test]
    fn overflow_boundaries_follow_core() {
        // Exponent 34 with a one-byte mantissa still fits: 0x01 * 256^31.
        assert!(CompactTarget(0x2200_0001).to_target().is_ok());
        assert_eq!(
            CompactTarget(0x2300_0001).to_target(),
            Err(CompactError::Overflow(0x2300_0001))
        );
        assert!(CompactTarget(0x2100_00ff).to_target().is_ok());
        assert_eq!(
            CompactTarget(0x2200_0100).to_target(),
            Err(CompactError::Overflow(0x2200_0100))
        );
        assert!(CompactTarget(0x2000_ffff).to_target().is_ok());
        assert_eq!(
            CompactTarget(0x2101_0000).to_target(),
            Err(CompactError::Overflow(0x2101_0000))
        );
        assert_eq!(
            CompactTarget(0x207f_ffff).to_target().unwrap().to_string(),
            format!("7fffff{}", "0".repeat(58))
        );
        // A zero mantissa never overflows, whatever the exponent: it is zero.
        assert_eq!(
            CompactTarget(0xff00_0000).to_target(),
            Err(CompactError::Zero(0xff00_0000))
        );
    }

    #[test]
    fn known_network_bits() {
        let mainnet = CompactTarget(0x1d00_ffff).to_target().unwrap();
        assert_eq!(mainnet, Target::DIFF1);
        assert_eq!(mainnet.to_compact_lossy(), CompactTarget(0x1d00_ffff));
        let regtest = CompactTarget(0x207f_ffff).to_target().unwrap();
        assert_eq!(regtest.to_compact_lossy(), CompactTarget(0x207f_ffff));
        // pow_tests.cpp: the first retarget (block 32255 -> 0x1d00d86a).
        let t = CompactTarget(0x1d00_d86a).to_target().unwrap();
        assert_eq!(t.to_string(), format!("00000000d86a{}", "0".repeat(52)));
        assert_eq!(CompactTarget(0x1d00_ffff).to_string(), "1d00ffff");
        assert_eq!(Target::MAX.to_compact_lossy(), CompactTarget(0x2100_ffff));
    }

    proptest! {
        #[test]
        fn valid_bits_round_trip_through_the_target(bits in any::<u32>()) {
            if let Ok(target) = CompactTarget(bits).to_target() {
                let normalised = target.to_compact_lossy();
                prop_assert_eq!(normalised.to_target(), Ok(target));
                prop_assert_eq!(normalised.to_target().unwrap().to_compact_lossy(), normalised);
            }
        }

        #[test]
        fn agrees_with_rust_bitcoin(bits in any::<u32>()) {
            // rust-bitcoin wraps on overflow and maps negatives to zero; where Core's rules
            // accept the bits the two must agree exactly.
            if let Ok(target) = CompactTarget(bits).to_target() {
                let theirs = bitcoin::Target::from_compact(bitcoin::CompactTarget::from_consensus(bits));
                prop_assert_eq!(target.to_le_bytes(), theirs.to_le_bytes());
            }
        }

        #[test]
        fn compact_of_any_target_is_its_truncation(bytes in any::<[u8; 32]>(), shift in 0u32..256) {
            let t = Target::from_u256(Target::from_le_bytes(bytes).to_u256().shr(shift));
            let compact = t.to_compact_lossy();
            prop_assert_eq!(compact.0 & 0x0080_0000, 0);
            let theirs = bitcoin::Target::from_le_bytes(t.to_le_bytes()).to_compact_lossy();
            prop_assert_eq!(compact.0, theirs.to_consensus());
            match compact.to_target() {
                Ok(back) => {
                    prop_assert!(back <= t);
                    // At most the top 24 significant bits survive (16 or 8 if the sign bit
                    // forced a byte shift): nothing is lost above bit bits() - 16.
                    let drop = t.to_u256().bits().saturating_sub(16);
                    prop_assert_eq!(back.to_u256().shr(drop), t.to_u256().shr(drop));
                }
                Err(CompactError::Zero(_)) => prop_assert!(t.to_u256().is_zero()),
                Err(e) => prop_assert!(false, "{e}"),
            }
        }
    }
}
