//! The SHA-256d nonce-scanning kernel, written once for any lane width.
//!
//! [`Word`] is a vector of 32-bit lanes (a plain `u32` is one lane); the AVX2 and AVX-512
//! backends implement it with `core::arch` intrinsics and instantiate these generic functions
//! inside `#[target_feature]` functions, where everything here is inlined.
//!
//! Work per nonce, after the midstate of the header's first 64 bytes:
//! - rounds 0..3 of the first hash's second block do not depend on the nonce (it is word 3),
//!   so they are done once per header ([`Prep`]);
//! - the message words of that block are mostly constant padding, so most of its schedule
//!   folds into per-header constants ([`Tail`]);
//! - the second hash's input is padded the same way every time, so the same holds there;
//! - the second hash stops after round 60: the hash's most significant word (H7) is ready then,
//!   and it is the only word a scanner needs to decide whether a hash is worth a full check.
//!
//! Two ways to fill the lanes:
//! - **nonce lanes**: each lane hashes another nonce of one version;
//! - **version lanes**: each lane hashes the same nonce under another rolled version. The
//!   second block of the first hash (merkle tail, time, bits, nonce) is then the same in every
//!   lane, so its whole message schedule is computed once, in scalar registers, and enters the
//!   vector rounds as a broadcast operand: the AsicBoost idea, applied to a CPU.
// Kernels index several parallel arrays (rounds, lanes) by the same counter.
#![allow(clippy::needless_range_loop)]

use crate::sha256::{self, IV, K};
use crate::work::{Hit, Work};

/// A vector of 32-bit lanes and the SHA-256 operations on it.
///
/// # Safety
///
/// Implementations call CPU-specific intrinsics: every method may only run on a CPU with the
/// features the implementation names, which the backend checks before it calls any kernel.
pub(crate) trait Word: Copy {
    const LANES: usize;
    unsafe fn splat(x: u32) -> Self;
    unsafe fn add(self, o: Self) -> Self;
    unsafe fn big_s0(self) -> Self;
    unsafe fn big_s1(self) -> Self;
    unsafe fn small_s0(self) -> Self;
    unsafe fn small_s1(self) -> Self;
    unsafe fn ch(e: Self, f: Self, g: Self) -> Self;
    unsafe fn maj(a: Self, b: Self, c: Self) -> Self;
    /// Lane `i` holds `i`.
    unsafe fn lane_index() -> Self;
    unsafe fn bswap(self) -> Self;
    /// Bit `i` set where lane `i` is at most `t` (unsigned).
    unsafe fn le_mask(self, t: u32) -> u64;
    /// Lane values from a slice of at least `LANES` words.
    unsafe fn load(src: &[u32]) -> Self;
    /// Writes the lanes to the first `LANES` words of `dst`.
    unsafe fn store(self, dst: &mut [u32]);
}

impl Word for u32 {
    const LANES: usize = 1;
    #[inline(always)]
    unsafe fn splat(x: u32) -> u32 {
        x
    }
    #[inline(always)]
    unsafe fn add(self, o: u32) -> u32 {
        self.wrapping_add(o)
    }
    #[inline(always)]
    unsafe fn big_s0(self) -> u32 {
        sha256::big_s0(self)
    }
    #[inline(always)]
    unsafe fn big_s1(self) -> u32 {
        sha256::big_s1(self)
    }
    #[inline(always)]
    unsafe fn small_s0(self) -> u32 {
        sha256::small_s0(self)
    }
    #[inline(always)]
    unsafe fn small_s1(self) -> u32 {
        sha256::small_s1(self)
    }
    #[inline(always)]
    unsafe fn ch(e: u32, f: u32, g: u32) -> u32 {
        sha256::ch(e, f, g)
    }
    #[inline(always)]
    unsafe fn maj(a: u32, b: u32, c: u32) -> u32 {
        sha256::maj(a, b, c)
    }
    #[inline(always)]
    unsafe fn lane_index() -> u32 {
        0
    }
    #[inline(always)]
    unsafe fn bswap(self) -> u32 {
        self.swap_bytes()
    }
    #[inline(always)]
    unsafe fn le_mask(self, t: u32) -> u64 {
        u64::from(self <= t)
    }
    #[inline(always)]
    unsafe fn load(src: &[u32]) -> u32 {
        src[0]
    }
    #[inline(always)]
    unsafe fn store(self, dst: &mut [u32]) {
        dst[0] = self;
    }
}

/// One round on `s = [a..h]` with the round's `K + W` already summed.
#[inline(always)]
unsafe fn round<V: Word>(s: &mut [V; 8], kw: V) {
    let [a, b, c, d, e, f, g, h] = *s;
    let t1 = h.add(kw).add(e.big_s1()).add(V::ch(e, f, g));
    let t2 = a.big_s0().add(V::maj(a, b, c));
    *s = [t1.add(t2), a, b, c, d.add(t1), e, f, g];
}

/// A round that only produces the new `e` (the last rounds before H7 is read).
#[inline(always)]
unsafe fn round_e_only<V: Word>(s: &mut [V; 8], kw: V) {
    let [a, b, c, d, e, f, g, h] = *s;
    let t1 = h.add(kw).add(e.big_s1()).add(V::ch(e, f, g));
    // The new `a` is never read again; `a` stands in for it.
    *s = [a, a, b, c, d.add(t1), e, f, g];
}

/// The general message-schedule step.
#[inline(always)]
unsafe fn expand<V: Word>(w: &[V; 64], i: usize) -> V {
    w[i - 2]
        .small_s1()
        .add(w[i - 7])
        .add(w[i - 15].small_s0())
        .add(w[i - 16])
}

/// The constant words of the first hash's second block: merkle-root tail, time, bits
/// (as SHA-256 message words, that is big-endian reads of header bytes 64..76), and the
/// schedule words that depend on them alone.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Tail {
    w0: u32,
    w1: u32,
    w2: u32,
    w16: u32,
    w17: u32,
    /// W18 less sigma0(nonce word).
    c18: u32,
    /// W19 less the nonce word.
    c19: u32,
}

impl Tail {
    pub(crate) fn w0(&self) -> u32 {
        self.w0
    }
    pub(crate) fn w1(&self) -> u32 {
        self.w1
    }
    pub(crate) fn w2(&self) -> u32 {
        self.w2
    }

    pub(crate) fn new(header: &[u8; 80]) -> Tail {
        let w = sha256::words_of(&header[64..80]);
        let (w0, w1, w2) = (w[0], w[1], w[2]);
        let w16 = sha256::small_s0(w1).wrapping_add(w0);
        let w17 = sha256::small_s1(640)
            .wrapping_add(sha256::small_s0(w2))
            .wrapping_add(w1);
        Tail {
            w0,
            w1,
            w2,
            w16,
            w17,
            c18: sha256::small_s1(w16).wrapping_add(w2),
            c19: sha256::small_s1(w17).wrapping_add(sha256::small_s0(0x8000_0000)),
        }
    }
}

/// The state of the first hash's second block after its three nonce-free rounds, for one
/// version (one midstate).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Prep {
    mid: [u32; 8],
    /// State after rounds 0..3.
    s3: [u32; 8],
    /// Round 3's T1 less the nonce word.
    t1_base: u32,
    /// Round 3's T2 (no nonce in it).
    t2: u32,
}

impl Prep {
    pub(crate) fn new(mid: [u32; 8], tail: &Tail) -> Prep {
        let mut s = mid;
        sha256::round(&mut s, K[0].wrapping_add(tail.w0));
        sha256::round(&mut s, K[1].wrapping_add(tail.w1));
        sha256::round(&mut s, K[2].wrapping_add(tail.w2));
        let [a, b, c, _, e, f, g, h] = s;
        Prep {
            mid,
            s3: s,
            t1_base: h
                .wrapping_add(sha256::big_s1(e))
                .wrapping_add(sha256::ch(e, f, g))
                .wrapping_add(K[3]),
            t2: sha256::big_s0(a).wrapping_add(sha256::maj(a, b, c)),
        }
    }
}

/// `K[i] + W[i]` of the first hash's second block for rounds 4..16, where W is padding.
const KW_PAD: [u32; 16] = {
    let mut kw = [0u32; 16];
    let mut i = 4;
    while i < 16 {
        kw[i] = K[i].wrapping_add(match i {
            4 => 0x8000_0000,
            15 => 640,
            _ => 0,
        });
        i += 1;
    }
    kw
};

/// The schedule of the first hash's second block from word 18 on, for nonce word `n`
/// (the nonce byte-swapped). Words below 18 are left as they are.
#[inline(always)]
unsafe fn hash1_schedule<V: Word>(t: &Tail, n: V, w: &mut [V; 64]) {
    let w16 = V::splat(t.w16);
    let w17 = V::splat(t.w17);
    w[16] = w16;
    w[17] = w17;
    w[18] = V::splat(t.c18).add(n.small_s0());
    w[19] = V::splat(t.c19).add(n);
    w[20] = w[18].small_s1().add(V::splat(0x8000_0000));
    w[21] = w[19].small_s1();
    w[22] = w[20].small_s1().add(V::splat(640));
    w[23] = w[21].small_s1().add(w16);
    w[24] = w[22].small_s1().add(w17);
    w[25] = w[23].small_s1().add(w[18]);
    w[26] = w[24].small_s1().add(w[19]);
    w[27] = w[25].small_s1().add(w[20]);
    w[28] = w[26].small_s1().add(w[21]);
    w[29] = w[27].small_s1().add(w[22]);
    w[30] = w[28]
        .small_s1()
        .add(w[23])
        .add(V::splat(sha256::small_s0(640)));
    w[31] = w[29]
        .small_s1()
        .add(w[24])
        .add(V::splat(sha256::small_s0(t.w16).wrapping_add(640)));
    w[32] = w[30]
        .small_s1()
        .add(w[25])
        .add(V::splat(sha256::small_s0(t.w17).wrapping_add(t.w16)));
    let mut i = 33;
    while i < 64 {
        w[i] = expand(w, i);
        i += 1;
    }
}

/// The second hash (its input: the first hash's state words), stopped after round 60;
/// returns H7 of the final hash, the word holding the hash's most significant 32 bits
/// (byte-swapped).
#[inline(always)]
unsafe fn hash2_h7<V: Word>(h1: [V; 8]) -> V {
    let mut w = [V::splat(0); 64];
    w[..8].copy_from_slice(&h1);
    // Round 0 from the constant initial state: only W0 varies.
    let [a, b, c, d, e, f, g, h] = IV;
    let t1c = h
        .wrapping_add(sha256::big_s1(e))
        .wrapping_add(sha256::ch(e, f, g))
        .wrapping_add(K[0]);
    let t2c = sha256::big_s0(a).wrapping_add(sha256::maj(a, b, c));
    let t1 = w[0].add(V::splat(t1c));
    let mut s = [
        t1.add(V::splat(t2c)),
        V::splat(a),
        V::splat(b),
        V::splat(c),
        t1.add(V::splat(d)),
        V::splat(e),
        V::splat(f),
        V::splat(g),
    ];
    let mut i = 1;
    while i < 8 {
        round(&mut s, w[i].add(V::splat(K[i])));
        i += 1;
    }
    // Rounds 8..16: the padding words, constant.
    round(&mut s, V::splat(K[8].wrapping_add(0x8000_0000)));
    let mut i = 9;
    while i < 15 {
        round(&mut s, V::splat(K[i]));
        i += 1;
    }
    round(&mut s, V::splat(K[15].wrapping_add(256)));
    // The schedule, with the constant padding words folded in.
    w[16] = w[1].small_s0().add(w[0]);
    w[17] = w[2]
        .small_s0()
        .add(w[1])
        .add(V::splat(sha256::small_s1(256)));
    w[18] = w[16].small_s1().add(w[3].small_s0()).add(w[2]);
    w[19] = w[17].small_s1().add(w[4].small_s0()).add(w[3]);
    w[20] = w[18].small_s1().add(w[5].small_s0()).add(w[4]);
    w[21] = w[19].small_s1().add(w[6].small_s0()).add(w[5]);
    w[22] = w[20]
        .small_s1()
        .add(w[7].small_s0())
        .add(w[6])
        .add(V::splat(256));
    w[23] = w[21]
        .small_s1()
        .add(w[16])
        .add(w[7])
        .add(V::splat(sha256::small_s0(0x8000_0000)));
    w[24] = w[22].small_s1().add(w[17]).add(V::splat(0x8000_0000));
    w[25] = w[23].small_s1().add(w[18]);
    w[26] = w[24].small_s1().add(w[19]);
    w[27] = w[25].small_s1().add(w[20]);
    w[28] = w[26].small_s1().add(w[21]);
    w[29] = w[27].small_s1().add(w[22]);
    w[30] = w[28]
        .small_s1()
        .add(w[23])
        .add(V::splat(sha256::small_s0(256)));
    w[31] = w[29]
        .small_s1()
        .add(w[24])
        .add(w[16].small_s0())
        .add(V::splat(256));
    let mut i = 16;
    while i < 57 {
        if i >= 32 {
            w[i] = expand(&w, i);
        }
        round(&mut s, w[i].add(V::splat(K[i])));
        i += 1;
    }
    while i < 61 {
        w[i] = expand(&w, i);
        round_e_only(&mut s, w[i].add(V::splat(K[i])));
        i += 1;
    }
    s[4].add(V::splat(IV[7]))
}

/// H7 of SHA-256d for one version in every lane and nonce word `n` per lane.
#[inline(always)]
pub(crate) unsafe fn sha256d_nonce_lanes<V: Word>(p: &Prep, t: &Tail, n: V) -> V {
    let mut w = [V::splat(0); 64];
    hash1_schedule(t, n, &mut w);
    let t1 = V::splat(p.t1_base).add(n);
    let [a, b, c, _, e, f, g, _] = p.s3.map(|x| V::splat(x));
    let mut s = [
        t1.add(V::splat(p.t2)),
        a,
        b,
        c,
        t1.add(V::splat(p.s3[3])),
        e,
        f,
        g,
    ];
    let mut i = 4;
    while i < 18 {
        round(
            &mut s,
            V::splat(if i < 16 {
                KW_PAD[i]
            } else if i == 16 {
                K[16].wrapping_add(t.w16)
            } else {
                K[17].wrapping_add(t.w17)
            }),
        );
        i += 1;
    }
    while i < 64 {
        round(&mut s, w[i].add(V::splat(K[i])));
        i += 1;
    }
    let mut h1 = s;
    for (x, m) in h1.iter_mut().zip(p.mid) {
        *x = x.add(V::splat(m));
    }
    hash2_h7(h1)
}

/// [`Prep`] for one version per lane.
#[derive(Clone, Copy)]
pub(crate) struct PrepLanes<V> {
    mid: [V; 8],
    /// State after round 3 less the nonce word (lanes 0 and 4: T2 + T1 base, D + T1 base).
    a4_base: V,
    e4_base: V,
    s3: [V; 8],
}

impl<V: Word> PrepLanes<V> {
    /// Packs one [`Prep`] per lane; `preps` has `V::LANES` entries.
    #[inline(always)]
    pub(crate) unsafe fn new(preps: &[Prep]) -> PrepLanes<V> {
        let gather = |f: &dyn Fn(&Prep) -> u32| {
            let vals: Vec<u32> = preps.iter().map(f).collect();
            // SAFETY: the caller runs on a CPU with this backend's features.
            unsafe { V::load(&vals) }
        };
        PrepLanes {
            mid: [0, 1, 2, 3, 4, 5, 6, 7].map(|j| gather(&|p| p.mid[j])),
            a4_base: gather(&|p| p.t1_base.wrapping_add(p.t2)),
            e4_base: gather(&|p| p.t1_base.wrapping_add(p.s3[3])),
            s3: [0, 1, 2, 3, 4, 5, 6, 7].map(|j| gather(&|p| p.s3[j])),
        }
    }
}

/// Up to 16 nonces' first-hash schedules, transposed: `kw[16 * i + j]` is `K[i] + W[i]` for
/// nonce `j` (entries for rounds 4..64 are filled).
pub(crate) struct SharedSchedules {
    kw: [u32; 64 * 16],
}

impl SharedSchedules {
    pub(crate) fn new() -> SharedSchedules {
        SharedSchedules { kw: [0; 64 * 16] }
    }

    /// Fills the schedules of `V::LANES` consecutive nonces from `nonce`, in one vector pass
    /// (cheaper than one scalar pass per nonce, whose integer work would compete with the
    /// vector rounds for execution ports).
    #[inline(always)]
    pub(crate) unsafe fn fill<V: Word>(&mut self, t: &Tail, nonce: u32) {
        let n = V::splat(nonce).add(V::lane_index()).bswap();
        let mut w = [V::splat(0); 64];
        hash1_schedule::<V>(t, n, &mut w);
        for i in 4..16 {
            V::splat(KW_PAD[i]).store(&mut self.kw[16 * i..]);
        }
        for i in 16..64 {
            w[i].add(V::splat(K[i])).store(&mut self.kw[16 * i..]);
        }
    }

    #[inline(always)]
    fn get(&self, i: usize, j: usize) -> &u32 {
        &self.kw[16 * i + (j & 15)]
    }
}

/// H7 of SHA-256d for one nonce word `n` and one version per lane, with the first hash's
/// schedule in column `j` of `kw`.
#[inline(always)]
pub(crate) unsafe fn sha256d_version_lanes<V: Word>(
    p: &PrepLanes<V>,
    n: u32,
    kw: &SharedSchedules,
    j: usize,
) -> V {
    let nv = V::splat(n);
    let [a, b, c, _, e, f, g, _] = p.s3;
    let mut s = [p.a4_base.add(nv), a, b, c, p.e4_base.add(nv), e, f, g];
    let mut i = 4;
    while i < 64 {
        // A scalar loaded from memory: AVX-512 folds the splat into the add as a broadcast.
        round(&mut s, V::splat(*kw.get(i, j)));
        i += 1;
    }
    let mut h1 = s;
    for (x, m) in h1.iter_mut().zip(p.mid) {
        *x = x.add(m);
    }
    hash2_h7(h1)
}

/// Re-hashes a candidate in full and records it if it meets the target.
#[cold]
#[inline(never)]
pub(crate) fn confirm(work: &Work, version: u32, nonce: u32, hits: &mut Vec<Hit>) {
    let hash = sha256::sha256d_header(&work.header_with(version, nonce));
    if work.target().is_met_by(&hash) {
        hits.push(Hit {
            version,
            nonce,
            hash,
        });
    }
}

/// Scans `work` with nonces in the lanes, one version after another.
#[inline(always)]
pub(crate) unsafe fn scan_nonce_lanes<V: Word>(work: &Work, hits: &mut Vec<Hit>) {
    let tail = Tail::new(work.header());
    let top = work.target().top_u32();
    let lanes = V::LANES as u64;
    for k in 0..work.version_count() {
        let version = work.rolled_version(work.version_start() + k as u32);
        let prep = Prep::new(sha256::midstate(&work.header_with(version, 0)), &tail);
        let mut done = 0u64;
        while done < work.nonce_count() {
            let n0 = work.nonce_start().wrapping_add(done as u32);
            let nonces = V::splat(n0).add(V::lane_index());
            let h7 = sha256d_nonce_lanes(&prep, &tail, nonces.bswap());
            let valid = work.nonce_count() - done;
            let mut m = h7.bswap().le_mask(top);
            if valid < lanes {
                m &= (1u64 << valid) - 1;
            }
            while m != 0 {
                let lane = m.trailing_zeros();
                confirm(work, version, n0.wrapping_add(lane), hits);
                m &= m - 1;
            }
            done += lanes;
        }
    }
}

/// Scans `work` with versions in the lanes and one shared message schedule per nonce.
#[inline(always)]
pub(crate) unsafe fn scan_version_lanes<V: Word>(work: &Work, hits: &mut Vec<Hit>) {
    let tail = Tail::new(work.header());
    let top = work.target().top_u32();
    let lanes = V::LANES as u64;
    let mut kw = SharedSchedules::new();
    let mut k = 0u64;
    while k < work.version_count() {
        let live = (work.version_count() - k).min(lanes);
        let versions: Vec<u32> = (0..lanes)
            .map(|l| work.rolled_version(work.version_start() + (k + l.min(live - 1)) as u32))
            .collect();
        let preps: Vec<Prep> = versions
            .iter()
            .map(|&v| Prep::new(sha256::midstate(&work.header_with(v, 0)), &tail))
            .collect();
        let p = PrepLanes::<V>::new(&preps);
        let live_mask = if live == 64 {
            u64::MAX
        } else {
            (1u64 << live) - 1
        };
        let mut j0 = 0u64;
        while j0 < work.nonce_count() {
            let first = work.nonce_start().wrapping_add(j0 as u32);
            kw.fill::<V>(&tail, first);
            let block = (work.nonce_count() - j0).min(lanes) as usize;
            for j in 0..block {
                let nonce = first.wrapping_add(j as u32);
                let h7 = sha256d_version_lanes(&p, nonce.swap_bytes(), &kw, j);
                let mut m = h7.bswap().le_mask(top) & live_mask;
                while m != 0 {
                    let lane = m.trailing_zeros() as usize;
                    confirm(work, versions[lane], nonce, hits);
                    m &= m - 1;
                }
            }
            j0 += lanes;
        }
        k += live;
    }
}

/// Full compressions (schedule, 64 rounds, feed-forward) of two independent chains of
/// `V::LANES` states, `iters` times; each block is derived from the state so nothing can be
/// hoisted. Returns a value that depends on every compression.
#[inline(always)]
pub(crate) unsafe fn compress_chain<V: Word>(iters: u64) -> [V; 2] {
    let mut st = [IV.map(|x| V::splat(x)), IV.map(|x| V::splat(x ^ 1))];
    for _ in 0..iters {
        for s in st.iter_mut() {
            let mut w = [V::splat(0); 64];
            for i in 0..8 {
                w[i] = s[i];
                w[i + 8] = s[i].add(V::splat(i as u32));
            }
            for i in 16..64 {
                w[i] = expand(&w, i);
            }
            let mut r = *s;
            for (i, wi) in w.iter().enumerate() {
                round(&mut r, wi.add(V::splat(K[i])));
            }
            for (x, y) in s.iter_mut().zip(r) {
                *x = x.add(y);
            }
        }
    }
    [st[0][0], st[1][0]]
}
