//! One scanner per thread over ranges that never overlap, in short pieces so that a stop
//! request is honoured within milliseconds and progress can be shown.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::work::{Hit, Work};
use crate::Scanner;

/// About this many hashes per piece: a few milliseconds of work on one core.
const PIECE_HASHES: u64 = 1 << 18;

/// Shared between the threads of a parallel scan and whoever watches it.
#[derive(Debug, Default)]
pub struct Control {
    stop: AtomicBool,
    hashes: AtomicU64,
}

impl Control {
    pub fn new() -> Control {
        Control::default()
    }
    /// Asks every thread to stop after its current piece.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }
    pub fn is_stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
    /// Hashes done so far (counted per finished piece).
    pub fn hashes(&self) -> u64 {
        self.hashes.load(Ordering::Relaxed)
    }
}

impl Scanner {
    /// Scans `work` on `threads` threads, each over its own part of it, until done or
    /// until `ctl` is stopped. Returns the hits found.
    pub fn scan_parallel(&self, work: &Work, threads: usize, ctl: &Control) -> Vec<Hit> {
        let lanes = self.backend().lanes();
        let parts = work.split(threads.max(1), lanes);
        std::thread::scope(|s| {
            let handles: Vec<_> = parts
                .iter()
                .map(|part| s.spawn(move || self.scan_pieces(part, ctl)))
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().expect("a scan thread panicked"))
                .collect()
        })
    }

    /// Scans `work` piece by piece on this thread, honouring `ctl`.
    pub fn scan_pieces(&self, work: &Work, ctl: &Control) -> Vec<Hit> {
        let mut hits = Vec::new();
        let lanes = self.backend().lanes() as u64;
        let version_block = if work.version_count() >= lanes {
            lanes
        } else {
            1
        };
        let nonce_chunk = (PIECE_HASHES / version_block).max(1);
        let mut v = 0u64;
        while v < work.version_count() {
            let vc = version_block.min(work.version_count() - v);
            let mut n = 0u64;
            while n < work.nonce_count() {
                if ctl.is_stopped() {
                    return hits;
                }
                let nc = nonce_chunk.min(work.nonce_count() - n);
                let piece = work.piece(
                    work.version_start() + v as u32,
                    vc,
                    work.nonce_start().wrapping_add(n as u32),
                    nc,
                );
                self.scan_into(&piece, &mut hits);
                ctl.hashes.fetch_add(vc * nc, Ordering::Relaxed);
                n += nc;
            }
            v += vc;
        }
        hits
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Backend;
    use hashforge_core::Target;

    #[test]
    fn parallel_scan_finds_what_one_thread_finds() {
        let mut header = [7u8; 80];
        header[0..4].copy_from_slice(&0x2000_0000u32.to_le_bytes());
        let target = Target::from_le_bytes({
            let mut t = [0xff; 32];
            t[31] = 0x00;
            t[30] = 0x40;
            t
        });
        let work = Work::new(header, target)
            .with_versions(0x1fffe000, 3, 40)
            .unwrap()
            .with_nonces(1000, 3000)
            .unwrap();
        let scanner = Scanner::new(Backend::Portable).unwrap();
        let mut one = scanner.scan(&work);
        let ctl = Control::new();
        let mut many = scanner.scan_parallel(&work, 3, &ctl);
        one.sort();
        many.sort();
        assert!(!one.is_empty());
        assert_eq!(one, many);
        assert_eq!(ctl.hashes(), 40 * 3000);
    }

    #[test]
    fn a_stopped_scan_returns_at_once() {
        let work = Work::new([0; 80], Target::MAX);
        let ctl = Control::new();
        ctl.stop();
        let hits = Scanner::fastest().scan_parallel(&work, 2, &ctl);
        assert!(hits.is_empty());
        assert_eq!(ctl.hashes(), 0);
    }
}
