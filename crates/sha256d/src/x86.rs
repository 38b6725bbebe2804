//! AVX2 (8 lanes) and AVX-512 (16 lanes) implementations of [`Word`], and the
//! `#[target_feature]` entry points that instantiate the generic kernels with them.
//!
//! Every kernel here is checked against the portable one on random headers (tests in
//! `lib.rs` and `tests/agreement.rs`).

use std::arch::x86_64::*;

use crate::lanes::{self, Word};
use crate::work::{Hit, Work};

/// 16 lanes in a ZMM register.
#[derive(Clone, Copy)]
pub(crate) struct X16(__m512i);

macro_rules! xor3_512 {
    ($a:expr, $b:expr, $c:expr) => {
        X16(_mm512_ternarylogic_epi32::<0x96>($a, $b, $c))
    };
}

impl Word for X16 {
    const LANES: usize = 16;
    #[inline(always)]
    unsafe fn splat(x: u32) -> X16 {
        X16(_mm512_set1_epi32(x as i32))
    }
    #[inline(always)]
    unsafe fn add(self, o: X16) -> X16 {
        X16(_mm512_add_epi32(self.0, o.0))
    }
    #[inline(always)]
    unsafe fn big_s0(self) -> X16 {
        let x = self.0;
        xor3_512!(
            _mm512_ror_epi32::<2>(x),
            _mm512_ror_epi32::<13>(x),
            _mm512_ror_epi32::<22>(x)
        )
    }
    #[inline(always)]
    unsafe fn big_s1(self) -> X16 {
        let x = self.0;
        xor3_512!(
            _mm512_ror_epi32::<6>(x),
            _mm512_ror_epi32::<11>(x),
            _mm512_ror_epi32::<25>(x)
        )
    }
    #[inline(always)]
    unsafe fn small_s0(self) -> X16 {
        let x = self.0;
        xor3_512!(
            _mm512_ror_epi32::<7>(x),
            _mm512_ror_epi32::<18>(x),
            _mm512_srli_epi32::<3>(x)
        )
    }
    #[inline(always)]
    unsafe fn small_s1(self) -> X16 {
        let x = self.0;
        xor3_512!(
            _mm512_ror_epi32::<17>(x),
            _mm512_ror_epi32::<19>(x),
            _mm512_srli_epi32::<10>(x)
        )
    }
    #[inline(always)]
    unsafe fn ch(e: X16, f: X16, g: X16) -> X16 {
        X16(_mm512_ternarylogic_epi32::<0xca>(e.0, f.0, g.0))
    }
    #[inline(always)]
    unsafe fn maj(a: X16, b: X16, c: X16) -> X16 {
        X16(_mm512_ternarylogic_epi32::<0xe8>(a.0, b.0, c.0))
    }
    #[inline(always)]
    unsafe fn lane_index() -> X16 {
        X16(_mm512_setr_epi32(
            0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
        ))
    }
    #[inline(always)]
    unsafe fn bswap(self) -> X16 {
        let m = _mm512_broadcast_i32x4(_mm_setr_epi8(
            3, 2, 1, 0, 7, 6, 5, 4, 11, 10, 9, 8, 15, 14, 13, 12,
        ));
        X16(_mm512_shuffle_epi8(self.0, m))
    }
    #[inline(always)]
    unsafe fn le_mask(self, t: u32) -> u64 {
        u64::from(_mm512_cmple_epu32_mask(self.0, _mm512_set1_epi32(t as i32)))
    }
    #[inline(always)]
    unsafe fn load(src: &[u32]) -> X16 {
        assert!(src.len() >= 16);
        X16(_mm512_loadu_si512(src.as_ptr().cast()))
    }
    #[inline(always)]
    unsafe fn store(self, dst: &mut [u32]) {
        assert!(dst.len() >= 16);
        _mm512_storeu_si512(dst.as_mut_ptr().cast(), self.0)
    }
}

/// 8 lanes in a YMM register.
#[derive(Clone, Copy)]
pub(crate) struct X8(__m256i);

#[inline(always)]
unsafe fn ror256<const R: i32, const L: i32>(x: __m256i) -> __m256i {
    _mm256_or_si256(_mm256_srli_epi32::<R>(x), _mm256_slli_epi32::<L>(x))
}

impl Word for X8 {
    const LANES: usize = 8;
    #[inline(always)]
    unsafe fn splat(x: u32) -> X8 {
        X8(_mm256_set1_epi32(x as i32))
    }
    #[inline(always)]
    unsafe fn add(self, o: X8) -> X8 {
        X8(_mm256_add_epi32(self.0, o.0))
    }
    #[inline(always)]
    unsafe fn big_s0(self) -> X8 {
        let x = self.0;
        X8(_mm256_xor_si256(
            _mm256_xor_si256(ror256::<2, 30>(x), ror256::<13, 19>(x)),
            ror256::<22, 10>(x),
        ))
    }
    #[inline(always)]
    unsafe fn big_s1(self) -> X8 {
        let x = self.0;
        X8(_mm256_xor_si256(
            _mm256_xor_si256(ror256::<6, 26>(x), ror256::<11, 21>(x)),
            ror256::<25, 7>(x),
        ))
    }
    #[inline(always)]
    unsafe fn small_s0(self) -> X8 {
        let x = self.0;
        X8(_mm256_xor_si256(
            _mm256_xor_si256(ror256::<7, 25>(x), ror256::<18, 14>(x)),
            _mm256_srli_epi32::<3>(x),
        ))
    }
    #[inline(always)]
    unsafe fn small_s1(self) -> X8 {
        let x = self.0;
        X8(_mm256_xor_si256(
            _mm256_xor_si256(ror256::<17, 15>(x), ror256::<19, 13>(x)),
            _mm256_srli_epi32::<10>(x),
        ))
    }
    #[inline(always)]
    unsafe fn ch(e: X8, f: X8, g: X8) -> X8 {
        X8(_mm256_xor_si256(
            g.0,
            _mm256_and_si256(e.0, _mm256_xor_si256(f.0, g.0)),
        ))
    }
    #[inline(always)]
    unsafe fn maj(a: X8, b: X8, c: X8) -> X8 {
        X8(_mm256_or_si256(
            _mm256_and_si256(a.0, b.0),
            _mm256_and_si256(c.0, _mm256_or_si256(a.0, b.0)),
        ))
    }
    #[inline(always)]
    unsafe fn lane_index() -> X8 {
        X8(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7))
    }
    #[inline(always)]
    unsafe fn bswap(self) -> X8 {
        let m = _mm256_setr_epi8(
            3, 2, 1, 0, 7, 6, 5, 4, 11, 10, 9, 8, 15, 14, 13, 12, 3, 2, 1, 0, 7, 6, 5, 4, 11, 10,
            9, 8, 15, 14, 13, 12,
        );
        X8(_mm256_shuffle_epi8(self.0, m))
    }
    #[inline(always)]
    unsafe fn le_mask(self, t: u32) -> u64 {
        let x = self.0;
        let le = _mm256_cmpeq_epi32(_mm256_min_epu32(x, _mm256_set1_epi32(t as i32)), x);
        u64::from(_mm256_movemask_ps(_mm256_castsi256_ps(le)) as u8)
    }
    #[inline(always)]
    unsafe fn load(src: &[u32]) -> X8 {
        assert!(src.len() >= 8);
        X8(_mm256_loadu_si256(src.as_ptr().cast()))
    }
    #[inline(always)]
    unsafe fn store(self, dst: &mut [u32]) {
        assert!(dst.len() >= 8);
        _mm256_storeu_si256(dst.as_mut_ptr().cast(), self.0)
    }
}

/// # Safety
/// The CPU must support AVX-512F and AVX-512BW.
#[target_feature(enable = "avx512f,avx512bw")]
pub(crate) unsafe fn avx512_nonce_lanes(work: &Work, hits: &mut Vec<Hit>) {
    lanes::scan_nonce_lanes::<X16>(work, hits)
}

/// # Safety
/// The CPU must support AVX-512F and AVX-512BW.
#[target_feature(enable = "avx512f,avx512bw")]
pub(crate) unsafe fn avx512_version_lanes(work: &Work, hits: &mut Vec<Hit>) {
    lanes::scan_version_lanes::<X16>(work, hits)
}

/// # Safety
/// The CPU must support AVX2.
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn avx2_nonce_lanes(work: &Work, hits: &mut Vec<Hit>) {
    lanes::scan_nonce_lanes::<X8>(work, hits)
}

/// # Safety
/// The CPU must support AVX2.
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn avx2_version_lanes(work: &Work, hits: &mut Vec<Hit>) {
    lanes::scan_version_lanes::<X8>(work, hits)
}

/// # Safety
/// The CPU must support AVX-512F and AVX-512BW.
#[target_feature(enable = "avx512f,avx512bw")]
pub(crate) unsafe fn avx512_compress_chain(iters: u64) -> u32 {
    let [a, b] = lanes::compress_chain::<X16>(iters);
    _mm512_reduce_add_epi32(_mm512_xor_si512(a.0, b.0)) as u32
}

/// # Safety
/// The CPU must support AVX2.
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn avx2_compress_chain(iters: u64) -> u32 {
    let [a, b] = lanes::compress_chain::<X8>(iters);
    _mm256_extract_epi32::<0>(_mm256_xor_si256(a.0, b.0)) as u32
}
