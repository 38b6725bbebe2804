//! The few 256-bit unsigned operations that target and difficulty arithmetic need.
//!
//! Private to the crate: the public face of a 256-bit number is [`crate::Target`].

use std::cmp::Ordering;

/// A 256-bit unsigned integer as four little-endian 64-bit limbs (`0[0]` least significant).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub(crate) struct U256(pub(crate) [u64; 4]);

impl U256 {
    pub(crate) const ZERO: U256 = U256([0; 4]);
    pub(crate) const ONE: U256 = U256([1, 0, 0, 0]);

    pub(crate) fn from_u64(v: u64) -> U256 {
        U256([v, 0, 0, 0])
    }

    pub(crate) fn is_zero(self) -> bool {
        self.0 == [0; 4]
    }

    /// The low 64 bits.
    pub(crate) fn low_u64(self) -> u64 {
        self.0[0]
    }

    /// Number of significant bits: 0 for zero, 256 when the top bit is set.
    pub(crate) fn bits(self) -> u32 {
        for i in (0..4).rev() {
            if self.0[i] != 0 {
                return 64 * i as u32 + (64 - self.0[i].leading_zeros());
            }
        }
        0
    }

    /// Left shift; bits shifted past bit 255 are lost, shifts of 256 or more give zero.
    pub(crate) fn shl(self, shift: u32) -> U256 {
        if shift >= 256 {
            return U256::ZERO;
        }
        let limbs = (shift / 64) as usize;
        let bits = shift % 64;
        let mut out = [0u64; 4];
        for (i, o) in out.iter_mut().enumerate().skip(limbs) {
            *o = self.0[i - limbs] << bits;
            if bits != 0 && i > limbs {
                *o |= self.0[i - limbs - 1] >> (64 - bits);
            }
        }
        U256(out)
    }

    /// Right shift; shifts of 256 or more give zero.
    pub(crate) fn shr(self, shift: u32) -> U256 {
        if shift >= 256 {
            return U256::ZERO;
        }
        let limbs = (shift / 64) as usize;
        let bits = shift % 64;
        let mut out = [0u64; 4];
        for (i, o) in out.iter_mut().enumerate().take(4 - limbs) {
            *o = self.0[i + limbs] >> bits;
            if bits != 0 && i + limbs + 1 < 4 {
                *o |= self.0[i + limbs + 1] << (64 - bits);
            }
        }
        U256(out)
    }

    /// Quotient and remainder of a division by a non-zero `divisor` (returns `None` for 0).
    pub(crate) fn div_rem_u64(self, divisor: u64) -> Option<(U256, u64)> {
        if divisor == 0 {
            return None;
        }
        let mut quotient = [0u64; 4];
        let mut rem: u128 = 0;
        for i in (0..4).rev() {
            let cur = (rem << 64) | u128::from(self.0[i]);
            quotient[i] = (cur / u128::from(divisor)) as u64;
            rem = cur % u128::from(divisor);
        }
        Some((U256(quotient), rem as u64))
    }

    /// The value rounded to the nearest `f64` (ties to even), like an exact conversion would.
    pub(crate) fn to_f64(self) -> f64 {
        let bits = self.bits();
        if bits <= 64 {
            return self.0[0] as f64;
        }
        let shift = bits - 64;
        let top = self.shr(shift).low_u64();
        // A sticky bit for anything shifted out keeps the u64 -> f64 rounding correct: the
        // top 64 bits carry 11 bits below the f64 mantissa, so the sticky bit only breaks
        // ties, never moves a value across one.
        let sticky = u64::from(!self.shl(256 - shift).is_zero());
        (top | sticky) as f64 * 2f64.powi(shift as i32)
    }
}

impl PartialOrd for U256 {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for U256 {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.iter().rev().cmp(other.0.iter().rev())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn to_u128_pair(v: U256) -> (u128, u128) {
        (
            u128::from(v.0[0]) | (u128::from(v.0[1]) << 64),
            u128::from(v.0[2]) | (u128::from(v.0[3]) << 64),
        )
    }

    #[test]
    fn bits_counts_significant_bits() {
        assert_eq!(U256::ZERO.bits(), 0);
        assert_eq!(U256::ONE.bits(), 1);
        assert_eq!(U256([0, 0, 0, 1 << 63]).bits(), 256);
        assert_eq!(U256([0, 1, 0, 0]).bits(), 65);
    }

    #[test]
    fn shifts_move_bits_across_limbs() {
        assert_eq!(U256::ONE.shl(64), U256([0, 1, 0, 0]));
        assert_eq!(U256::ONE.shl(255), U256([0, 0, 0, 1 << 63]));
        assert_eq!(U256::ONE.shl(256), U256::ZERO);
        assert_eq!(U256([0, 0, 0, 1 << 63]).shr(255), U256::ONE);
        assert_eq!(U256([0, 0, 0xff, 0]).shr(68), U256([0xf << 60, 0xf, 0, 0]));
        assert_eq!(U256([u64::MAX; 4]).shr(256), U256::ZERO);
    }

    #[test]
    fn to_f64_rounds_to_nearest() {
        assert_eq!(U256::ZERO.to_f64(), 0.0);
        assert_eq!(U256([u64::MAX; 4]).to_f64(), 2f64.powi(256));
        // 2^64 + 2^11 sits exactly halfway between two f64s and rounds to even (2^64);
        // one more unit below the halfway point must round up.
        let halfway = U256([1 << 11, 1, 0, 0]);
        assert_eq!(halfway.to_f64(), 2f64.powi(64));
        let above = U256([(1 << 11) + 1, 1, 0, 0]);
        assert_eq!(above.to_f64(), 2f64.powi(64) + 2f64.powi(12));
        // A sticky bit far below the top word still breaks the tie upwards.
        let far = U256([1, 0, 1 << 11, 1]);
        assert_eq!(far.to_f64(), 2f64.powi(192) + 2f64.powi(140));
    }

    proptest! {
        #[test]
        fn shl_then_shr_agrees_with_u128_pairs(lo in any::<u128>(), shift in 0u32..128) {
            let v = U256([lo as u64, (lo >> 64) as u64, 0, 0]);
            let (l, h) = to_u128_pair(v.shl(shift));
            let expect_h = if shift == 0 { 0 } else { lo >> (128 - shift) };
            prop_assert_eq!(l, lo << shift);
            prop_assert_eq!(h, expect_h);
            prop_assert_eq!(v.shl(shift).shr(shift), v);
        }

        #[test]
        fn div_rem_reconstructs(limbs in any::<[u64; 4]>(), d in 1u64..) {
            let v = U256(limbs);
            let (q, r) = v.div_rem_u64(d).unwrap();
            prop_assert!(r < d);
            // q * d + r == v, checked limb by limb with carries.
            let mut carry: u128 = u128::from(r);
            for i in 0..4 {
                let cur = u128::from(q.0[i]) * u128::from(d) + carry;
                prop_assert_eq!(cur as u64, v.0[i]);
                carry = cur >> 64;
            }
            prop_assert_eq!(carry, 0);
        }

        #[test]
        fn to_f64_matches_u128_conversion(lo in any::<u128>()) {
            let v = U256([lo as u64, (lo >> 64) as u64, 0, 0]);
            prop_assert_eq!(v.to_f64(), lo as f64);
        }

        #[test]
        fn to_f64_is_monotonic(a in any::<[u64; 4]>(), b in any::<[u64; 4]>()) {
            let (a, b) = (U256(a), U256(b));
            let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
            prop_assert!(lo.to_f64() <= hi.to_f64());
        }
    }
}
