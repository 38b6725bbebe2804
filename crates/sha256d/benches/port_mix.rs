//! Does software SHA-256 on 128-bit vector lanes run alongside `sha256rnds2`, or do the two
//! compete for the same execution resources? Three kernels, each a fixed amount of work:
//! eight independent SHA-NI streams (enough to keep the SHA unit saturated, as the scanner's
//! eight rolled versions do), one 4-lane software round stream (VEX encoded, so the upper
//! halves stay clean next to the legacy-SSE SHA instructions), and both interleaved in one
//! loop. If software lanes used execution slots the SHA unit leaves idle, `both` would take
//! about as long as the slower of the other two; if `both` takes their sum, interleaving
//! software lanes into the SHA-NI scanner cannot add hash rate on that CPU.
//!
//! On the 2-vCPU AMD EPYC (Zen 3) of the README: sha-ni 23.5 us, software 60.8-64.4 us, both
//! 74.3-83.1 us: nearly the sum. Counted in rounds, SHA-NI alone does 5.6 rounds a
//! nanosecond and the mix 2.4-2.6 (lane rounds).
//!
//! `cargo bench -p hashforge-sha256d --bench port_mix`. The values are not hashes of
//! anything: only the instruction mix and its dependencies matter here.

use criterion::{criterion_group, criterion_main, Criterion};

#[cfg(target_arch = "x86_64")]
mod mix {
    use core::arch::x86_64::*;

    /// Loop iterations per measured call.
    pub const ITERS: usize = 4096;

    pub struct State {
        sha: [[__m128i; 2]; 8],
        soft: [__m128i; 8],
        /// Message words plus round constants, as a software kernel reads them from memory.
        wk: [__m128i; 64],
        round: usize,
    }

    pub fn supported() -> bool {
        is_x86_feature_detected!("sha") && is_x86_feature_detected!("avx")
    }

    impl State {
        pub fn new() -> State {
            // SAFETY: SSE2 is part of x86_64.
            unsafe {
                let v = |x: i32| _mm_set1_epi32(x);
                State {
                    sha: core::array::from_fn(|i| [v(3 * i as i32 + 1), v(7 * i as i32 + 5)]),
                    soft: core::array::from_fn(|i| v(i as i32 + 1)),
                    wk: core::array::from_fn(|i| v((i as i32).wrapping_mul(0x0101_0101) + 7)),
                    round: 0,
                }
            }
        }
    }

    macro_rules! rotr {
        ($x:expr, $n:literal) => {
            _mm_or_si128(_mm_srli_epi32::<$n>($x), _mm_slli_epi32::<{ 32 - $n }>($x))
        };
    }

    /// One SHA-256 round on four lanes; `$wk` is the message word plus the round constant.
    macro_rules! soft_round {
        ($a:ident, $b:ident, $c:ident, $d:ident, $e:ident, $f:ident, $g:ident, $h:ident,
         $wk:expr) => {{
            let s1 = _mm_xor_si128(_mm_xor_si128(rotr!($e, 6), rotr!($e, 11)), rotr!($e, 25));
            let ch = _mm_xor_si128(_mm_and_si128($e, $f), _mm_andnot_si128($e, $g));
            let t1 = _mm_add_epi32(_mm_add_epi32($h, s1), _mm_add_epi32(ch, $wk));
            let s0 = _mm_xor_si128(_mm_xor_si128(rotr!($a, 2), rotr!($a, 13)), rotr!($a, 22));
            let mj = _mm_xor_si128(
                _mm_and_si128(_mm_xor_si128($a, $b), $c),
                _mm_and_si128($a, $b),
            );
            $d = _mm_add_epi32($d, t1);
            $h = _mm_add_epi32(t1, _mm_add_epi32(s0, mj));
        }};
    }

    /// Four SHA-NI rounds on each of eight streams.
    macro_rules! sha_step {
        ($st:expr, $msg:expr) => {
            for s in $st.sha.iter_mut() {
                s[1] = _mm_sha256rnds2_epu32(s[1], s[0], $msg);
                s[0] = _mm_sha256rnds2_epu32(s[0], s[1], $msg);
            }
        };
    }

    /// Four software rounds on one 4-lane stream: about the time of the SHA-NI step alone.
    macro_rules! soft_step {
        ($st:expr) => {{
            let r = $st.round;
            let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut h] = $st.soft;
            soft_round!(a, b, c, d, e, f, g, h, $st.wk[r % 64]);
            soft_round!(h, a, b, c, d, e, f, g, $st.wk[(r + 1) % 64]);
            soft_round!(g, h, a, b, c, d, e, f, $st.wk[(r + 2) % 64]);
            soft_round!(f, g, h, a, b, c, d, e, $st.wk[(r + 3) % 64]);
            $st.soft = [a, b, c, d, e, f, g, h];
            $st.round = r + 4;
        }};
    }

    /// # Safety
    /// The CPU has SHA and AVX ([`supported`]).
    #[target_feature(enable = "sha,avx")]
    pub unsafe fn sha_only(st: &mut State) {
        let msg = _mm_set_epi32(0x1234_5678, -0x6543_2110, 0x0fed_cba9, -0x789a_bcdf);
        for _ in 0..ITERS {
            sha_step!(st, msg);
        }
    }

    /// # Safety
    /// The CPU has SHA and AVX ([`supported`]).
    #[target_feature(enable = "sha,avx")]
    pub unsafe fn soft_only(st: &mut State) {
        for _ in 0..ITERS {
            soft_step!(st);
        }
    }

    /// # Safety
    /// The CPU has SHA and AVX ([`supported`]).
    #[target_feature(enable = "sha,avx")]
    pub unsafe fn mixed(st: &mut State) {
        let msg = _mm_set_epi32(0x1234_5678, -0x6543_2110, 0x0fed_cba9, -0x789a_bcdf);
        for _ in 0..ITERS {
            sha_step!(st, msg);
            soft_step!(st);
        }
    }
}

#[cfg(target_arch = "x86_64")]
fn port_mix(c: &mut Criterion) {
    if !mix::supported() {
        eprintln!("port_mix: this CPU has no SHA extensions; nothing to measure");
        return;
    }
    let mut group = c.benchmark_group("port-mix");
    type Kernel = unsafe fn(&mut mix::State);
    let kernels: [(&str, Kernel); 3] = [
        ("sha-ni", mix::sha_only),
        ("software", mix::soft_only),
        ("both", mix::mixed),
    ];
    for (name, kernel) in kernels {
        let mut st = mix::State::new();
        group.bench_function(name, |b| {
            // SAFETY: `supported` checked SHA and AVX above.
            b.iter(|| unsafe { kernel(std::hint::black_box(&mut st)) })
        });
    }
    group.finish();
}

#[cfg(not(target_arch = "x86_64"))]
fn port_mix(_: &mut Criterion) {}

criterion_group!(benches, port_mix);
criterion_main!(benches);
