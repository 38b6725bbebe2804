//! The x86 SHA extensions: `sha256rnds2` does two rounds, `sha256msg1`/`sha256msg2` the
//! message schedule. One hash is one dependency chain of 61 `sha256rnds2`; several are
//! interleaved so that their chains overlap in the pipeline: `VERSIONS` rolled versions of one
//! nonce, whose first hashes share one message schedule (the second block's message is the
//! same for every version), or, without version rolling, `NONCES` nonces.
//!
//! The state lives in the instructions' own layout: `abef` holds (F, E, B, A) in lanes 0..3,
//! `cdgh` holds (H, G, D, C).

// Kernels index several parallel arrays (streams, message words) by the same counter.
#![allow(clippy::needless_range_loop)]

use std::arch::x86_64::*;

use crate::lanes::{confirm, Tail};
use crate::sha256::{self, IV, K};
use crate::work::{Hit, Work};

/// Nonces interleaved per step when versions are not rolled (measured on Intel: 2 and 3
/// beat 1; 4 spills registers).
pub(crate) const NONCES: usize = 2;

/// Rolled versions hashed per step, sharing one message schedule of the first hash's second
/// block. Measured on a Zen 3 EPYC, one thread, 16 rolled versions: 8 versions 27.7 MH/s
/// against 20.6 for 2 interleaved nonces; 4 versions 22-26, 16 versions 23 (the 32 state
/// registers spill).
pub(crate) const VERSIONS: usize = 8;

#[inline(always)]
unsafe fn k4(i: usize) -> __m128i {
    _mm_loadu_si128(K[i..].as_ptr().cast())
}

#[inline(always)]
unsafe fn set4(w: [u32; 4]) -> __m128i {
    _mm_set_epi32(w[3] as i32, w[2] as i32, w[1] as i32, w[0] as i32)
}

/// (abef, cdgh) of a state `[a, b, c, d, e, f, g, h]`.
#[inline(always)]
unsafe fn pack(s: &[u32; 8]) -> (__m128i, __m128i) {
    (
        set4([s[5], s[4], s[1], s[0]]),
        set4([s[7], s[6], s[3], s[2]]),
    )
}

/// Four rounds with `K + W` in `wk`.
#[inline(always)]
unsafe fn rounds4(abef: &mut __m128i, cdgh: &mut __m128i, wk: __m128i) {
    *cdgh = _mm_sha256rnds2_epu32(*cdgh, *abef, wk);
    *abef = _mm_sha256rnds2_epu32(*abef, *cdgh, _mm_shuffle_epi32::<0x0e>(wk));
}

/// The next four schedule words from the last sixteen (`m[0]` oldest).
#[inline(always)]
unsafe fn next4(m: &[__m128i; 4]) -> __m128i {
    let t = _mm_add_epi32(
        _mm_sha256msg1_epu32(m[0], m[1]),
        _mm_alignr_epi8::<4>(m[3], m[2]),
    );
    _mm_sha256msg2_epu32(t, m[3])
}

/// Per-version constants: the midstate, and the first hash's second block after round 3
/// with a nonce word of zero. The nonce is word 3: rounds 0-2 never change, and round 3
/// adds its word to A and to E and nowhere else (T1 feeds both), so the state after round 3
/// is this one plus the nonce in those two lanes ([`with_nonce`]). That takes one
/// `sha256rnds2` (of 62) off every hash: the SHA unit is the bottleneck.
#[derive(Clone, Copy)]
struct Prep {
    mid: (__m128i, __m128i),
    s4: (__m128i, __m128i),
}

impl Prep {
    unsafe fn new(mid: [u32; 8], tail: &Tail) -> Prep {
        let mut s = mid;
        sha256::round(&mut s, K[0].wrapping_add(tail.w0()));
        sha256::round(&mut s, K[1].wrapping_add(tail.w1()));
        sha256::round(&mut s, K[2].wrapping_add(tail.w2()));
        sha256::round(&mut s, K[3]);
        Prep {
            mid: pack(&mid),
            s4: pack(&s),
        }
    }
}

/// What round 3 adds for nonce word `n`: `n` in the lanes of A and E of an `abef`.
#[inline(always)]
unsafe fn with_nonce(n: u32) -> __m128i {
    set4([0, n, 0, n])
}

/// H7 of SHA-256d for `L` nonce words (`n[i]` is nonce `i` byte-swapped), one version.
#[inline(always)]
unsafe fn sha256d_h7<const L: usize>(p: &Prep, tail: &Tail, n: [u32; L]) -> [u32; L] {
    let w2 = tail.w2();
    let mut abef = [p.s4.0; L];
    let mut cdgh = [p.s4.1; L];
    let mut m = [[_mm_setzero_si128(); 4]; L];
    for l in 0..L {
        abef[l] = _mm_add_epi32(abef[l], with_nonce(n[l]));
        m[l] = [
            set4([tail.w0(), tail.w1(), w2, n[l]]),
            set4([0x8000_0000, 0, 0, 0]),
            _mm_setzero_si128(),
            set4([0, 0, 0, 640]),
        ];
    }
    // Rounds 4..16: padding, constant.
    for i in [4, 8, 12] {
        let wk = _mm_add_epi32(m[0][i / 4], k4(i));
        for l in 0..L {
            rounds4(&mut abef[l], &mut cdgh[l], wk);
        }
    }
    for i in (16..64).step_by(4) {
        for l in 0..L {
            let w = next4(&m[l]);
            m[l] = [m[l][1], m[l][2], m[l][3], w];
            rounds4(&mut abef[l], &mut cdgh[l], _mm_add_epi32(w, k4(i)));
        }
    }
    hash2_h7::<L>([p.mid; L], abef, cdgh)
}

/// H7 of SHA-256d for one nonce word `n` (byte-swapped) under `V` versions: the second
/// block of the first hash is the same message for every version, so its schedule is
/// computed once and feeds `V` round chains; the second hashes run `P` streams at a time.
#[inline(always)]
unsafe fn sha256d_h7_versions<const V: usize, const P: usize>(
    p: &[Prep; V],
    tail: &Tail,
    n: u32,
) -> [u32; V] {
    let w2 = tail.w2();
    let nonce = with_nonce(n);
    let mut abef: [__m128i; V] = std::array::from_fn(|v| _mm_add_epi32(p[v].s4.0, nonce));
    let mut cdgh: [__m128i; V] = std::array::from_fn(|v| p[v].s4.1);
    let mut m = [
        set4([tail.w0(), tail.w1(), w2, n]),
        set4([0x8000_0000, 0, 0, 0]),
        _mm_setzero_si128(),
        set4([0, 0, 0, 640]),
    ];
    for i in [4, 8, 12] {
        let wk = _mm_add_epi32(m[i / 4], k4(i));
        for v in 0..V {
            rounds4(&mut abef[v], &mut cdgh[v], wk);
        }
    }
    for i in (16..64).step_by(4) {
        let w = next4(&m);
        m = [m[1], m[2], m[3], w];
        let wk = _mm_add_epi32(w, k4(i));
        for v in 0..V {
            rounds4(&mut abef[v], &mut cdgh[v], wk);
        }
    }
    let mut out = [0u32; V];
    for g in (0..V).step_by(P) {
        let h = hash2_h7::<P>(
            std::array::from_fn(|j| p[g + j].mid),
            std::array::from_fn(|j| abef[g + j]),
            std::array::from_fn(|j| cdgh[g + j]),
        );
        out[g..g + P].copy_from_slice(&h);
    }
    out
}

/// The second hash of `L` streams from their first hash's state (before the midstate is
/// added), stopped once H7 is known.
#[inline(always)]
unsafe fn hash2_h7<const L: usize>(
    mid: [(__m128i, __m128i); L],
    mut abef: [__m128i; L],
    mut cdgh: [__m128i; L],
) -> [u32; L] {
    let mut m = [[_mm_setzero_si128(); 4]; L];
    // Second hash: its message is the first hash (A..H) and constant padding.
    let (iv_abef, iv_cdgh) = pack(&IV);
    let mut out = [0u32; L];
    for l in 0..L {
        let abef1 = _mm_add_epi32(abef[l], mid[l].0);
        let cdgh1 = _mm_add_epi32(cdgh[l], mid[l].1);
        let m0 = _mm_shuffle_epi32::<0xb1>(_mm_unpackhi_epi64(abef1, cdgh1));
        let m1 = _mm_shuffle_epi32::<0xb1>(_mm_unpacklo_epi64(abef1, cdgh1));
        m[l] = [m0, m1, set4([0x8000_0000, 0, 0, 0]), set4([0, 0, 0, 256])];
        abef[l] = iv_abef;
        cdgh[l] = iv_cdgh;
    }
    for i in [0, 4, 8, 12] {
        for l in 0..L {
            let wk = _mm_add_epi32(m[l][i / 4], k4(i));
            rounds4(&mut abef[l], &mut cdgh[l], wk);
        }
    }
    for i in (16..60).step_by(4) {
        for l in 0..L {
            let w = next4(&m[l]);
            m[l] = [m[l][1], m[l][2], m[l][3], w];
            rounds4(&mut abef[l], &mut cdgh[l], _mm_add_epi32(w, k4(i)));
        }
    }
    for l in 0..L {
        // Rounds 60 and 61 leave e61 (the final H before IV is added) in F, lane 0.
        let w = next4(&m[l]);
        let abef62 = _mm_sha256rnds2_epu32(cdgh[l], abef[l], _mm_add_epi32(w, k4(60)));
        out[l] = (_mm_cvtsi128_si32(abef62) as u32).wrapping_add(IV[7]);
    }
    out
}

/// Scans `work`, with the VEX-encoded kernel where the CPU has AVX.
///
/// # Safety
/// The CPU must support SHA, SSE4.1 and SSSE3.
pub(crate) unsafe fn scan(work: &Work, hits: &mut Vec<Hit>) {
    if std::is_x86_feature_detected!("avx") {
        scan_vex(work, hits)
    } else {
        scan_legacy(work, hits)
    }
}

/// The kernel with the vector work around `sha256rnds2` (adds, shuffles, `palignr`) in
/// three-operand VEX form: `sha256rnds2` has no VEX form, but 128-bit VEX and legacy SSE
/// mix without a penalty when the upper halves are clean, and the copies the two-operand
/// forms need are gone (in the release build, 1,712 instructions here against 1,852 in
/// `scan_legacy`, 345 register moves against 512). Measured on the Zen 3 EPYC, alternating runs of each: one thread,
/// 24 pairs, 26.11 MH/s against 25.46 (+2.5%); two threads, 10 pairs, 49.9 against 50.2
/// (no gain).
///
/// # Safety
/// The CPU must support SHA, SSE4.1, SSSE3 and AVX.
#[target_feature(enable = "sha,sse4.1,ssse3,avx")]
unsafe fn scan_vex(work: &Work, hits: &mut Vec<Hit>) {
    scan_body(work, hits)
}

/// The kernel in legacy SSE encoding, for CPUs with SHA but no AVX (Goldmont and its Atom
/// successors).
///
/// # Safety
/// The CPU must support SHA, SSE4.1 and SSSE3.
#[target_feature(enable = "sha,sse4.1,ssse3")]
unsafe fn scan_legacy(work: &Work, hits: &mut Vec<Hit>) {
    scan_body(work, hits)
}

#[inline(always)]
unsafe fn scan_body(work: &Work, hits: &mut Vec<Hit>) {
    let tail = Tail::new(work.header());
    let top = work.target().top_u32();
    let mut k = 0u64;
    // Whole groups of VERSIONS rolled versions share their first hash's schedule.
    while work.version_count() - k >= VERSIONS as u64 {
        let versions: [u32; VERSIONS] = std::array::from_fn(|v| {
            work.rolled_version(work.version_start() + (k + v as u64) as u32)
        });
        let preps =
            versions.map(|ver| Prep::new(sha256::midstate(&work.header_with(ver, 0)), &tail));
        for j in 0..work.nonce_count() {
            let nonce = work.nonce_start().wrapping_add(j as u32);
            let h7 = sha256d_h7_versions::<VERSIONS, NONCES>(&preps, &tail, nonce.swap_bytes());
            for v in 0..VERSIONS {
                if h7[v].swap_bytes() <= top {
                    confirm(work, versions[v], nonce, hits);
                }
            }
        }
        k += VERSIONS as u64;
    }
    // The versions left over, one at a time, NONCES nonces interleaved.
    for k in k..work.version_count() {
        let version = work.rolled_version(work.version_start() + k as u32);
        let prep = Prep::new(sha256::midstate(&work.header_with(version, 0)), &tail);
        let mut done = 0u64;
        while done < work.nonce_count() {
            let n0 = work.nonce_start().wrapping_add(done as u32);
            let nonces: [u32; NONCES] = std::array::from_fn(|l| n0.wrapping_add(l as u32));
            let h7 = sha256d_h7::<NONCES>(&prep, &tail, nonces.map(u32::swap_bytes));
            let valid = (work.nonce_count() - done).min(NONCES as u64) as usize;
            for l in 0..valid {
                if h7[l].swap_bytes() <= top {
                    confirm(work, version, nonces[l], hits);
                }
            }
            done += NONCES as u64;
        }
    }
}

/// One full compression of each of `L` independent streams, chained `iters` times; returns
/// a value that depends on every compression.
///
/// # Safety
/// The CPU must support SHA, SSE4.1 and SSSE3.
#[target_feature(enable = "sha,sse4.1,ssse3")]
pub(crate) unsafe fn compress_chain(iters: u64) -> u32 {
    const L: usize = NONCES;
    let (a0, c0) = pack(&IV);
    let mut abef = [a0; L];
    let mut cdgh = [c0; L];
    for l in 0..L {
        abef[l] = _mm_add_epi32(abef[l], _mm_set1_epi32(l as i32));
    }
    for _ in 0..iters {
        let mut m: [[__m128i; 4]; L] = std::array::from_fn(|l| {
            [
                abef[l],
                cdgh[l],
                _mm_xor_si128(abef[l], cdgh[l]),
                _mm_add_epi32(abef[l], cdgh[l]),
            ]
        });
        let (sa, sc) = (abef, cdgh);
        for i in (0..16).step_by(4) {
            for l in 0..L {
                rounds4(
                    &mut abef[l],
                    &mut cdgh[l],
                    _mm_add_epi32(m[l][i / 4], k4(i)),
                );
            }
        }
        for i in (16..64).step_by(4) {
            for l in 0..L {
                let w = next4(&m[l]);
                m[l] = [m[l][1], m[l][2], m[l][3], w];
                rounds4(&mut abef[l], &mut cdgh[l], _mm_add_epi32(w, k4(i)));
            }
        }
        for l in 0..L {
            abef[l] = _mm_add_epi32(abef[l], sa[l]);
            cdgh[l] = _mm_add_epi32(cdgh[l], sc[l]);
        }
    }
    (0..L).fold(0u32, |acc, l| acc ^ _mm_cvtsi128_si32(abef[l]) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Backend, Scanner};
    use hashforge_core::Target;

    /// Both encodings of the kernel find exactly what the portable backend finds, the
    /// leftover versions (fewer than `VERSIONS`) included.
    #[test]
    fn both_encodings_agree_with_the_portable_backend() {
        if !Backend::ShaNi.is_available() {
            return;
        }
        let portable = Scanner::new(Backend::Portable).unwrap();
        let mut easy = [0xffu8; 32];
        easy[28..32].copy_from_slice(&0x00ff_ffffu32.to_le_bytes());
        let target = Target::from_le_bytes(easy);
        for seed in 0u8..4 {
            let header: [u8; 80] = std::array::from_fn(|i| (i as u8).wrapping_mul(31) ^ seed);
            let work = Work::new(header, target)
                .with_nonces(0x1234_0000 + u32::from(seed), 200)
                .unwrap()
                .with_versions(0x1fff_e000, 0, VERSIONS as u64 + 3)
                .unwrap();
            let want = sorted(portable.scan(&work));
            assert!(!want.is_empty());
            let mut legacy = Vec::new();
            unsafe { scan_legacy(&work, &mut legacy) };
            assert_eq!(sorted(legacy), want);
            if std::is_x86_feature_detected!("avx") {
                let mut vex = Vec::new();
                unsafe { scan_vex(&work, &mut vex) };
                assert_eq!(sorted(vex), want);
            }
        }
    }

    fn sorted(mut v: Vec<Hit>) -> Vec<Hit> {
        v.sort();
        v
    }
}
