//! The roofline: how many raw SHA-256 compressions a backend does per second, and how many
//! a nonce needs, so that a scanner's rate can be compared with what its backend allows.

use std::time::{Duration, Instant};

use crate::{lanes, Backend, Scanner};

/// Compressions a nonce costs the scanners, counted in rounds: 61 of the first hash's second
/// block (rounds 0..3 are shared by every nonce) and 61 of the second hash (it stops after
/// round 60), over 64 rounds per compression. The midstate is shared by all nonces.
pub fn compressions_per_nonce() -> f64 {
    (61.0 + 61.0) / 64.0
}

/// Full SHA-256 compressions per second that `scanner`'s backend does on this thread,
/// measured for about `duration`.
pub fn measure_compressions(scanner: &Scanner, duration: Duration) -> f64 {
    let start = Instant::now();
    let mut iters = 256u64;
    let mut done = 0u64;
    let mut sink = 0u32;
    while start.elapsed() < duration {
        let (x, per_iter) = run(scanner.backend(), iters);
        sink ^= x;
        done += iters * per_iter;
        iters = (iters * 2).min(1 << 16);
    }
    std::hint::black_box(sink);
    done as f64 / start.elapsed().as_secs_f64()
}

/// Runs `iters` iterations; returns the sink value and the compressions per iteration.
fn run(backend: Backend, iters: u64) -> (u32, u64) {
    match backend {
        // SAFETY (all arms): `Scanner` guarantees the backend's CPU features.
        Backend::Portable => {
            let [a, b] = unsafe { lanes::compress_chain::<u32>(iters) };
            (a ^ b, 2)
        }
        #[cfg(target_arch = "x86_64")]
        Backend::ShaNi => (
            unsafe { crate::shani::compress_chain(iters) },
            crate::shani::NONCES as u64,
        ),
        #[cfg(target_arch = "x86_64")]
        Backend::Avx2 => (unsafe { crate::x86::avx2_compress_chain(iters) }, 16),
        #[cfg(target_arch = "x86_64")]
        Backend::Avx512 => (unsafe { crate::x86::avx512_compress_chain(iters) }, 32),
        #[cfg(not(target_arch = "x86_64"))]
        _ => unreachable!("no SIMD backend off x86_64"),
    }
}
