//! Criterion benches of each backend's scanning kernel, in both lane layouts, on one thread.
//! `hashforge bench sha256d` is the user-facing rate (threads, roofline); these track the
//! kernels themselves between commits.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use hashforge_core::Target;
use hashforge_sha256d::{Backend, Scanner, Work};

fn header() -> [u8; 80] {
    let mut h = [0u8; 80];
    for (i, b) in h.iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(151).wrapping_add(7);
    }
    h[0..4].copy_from_slice(&0x2000_0000u32.to_le_bytes());
    h
}

fn kernels(c: &mut Criterion) {
    let hashes = 1u64 << 16;
    let mut group = c.benchmark_group("scan");
    group.throughput(Throughput::Elements(hashes));
    let nonce_lanes = Work::new(header(), Target::DIFF1)
        .with_nonces(0, hashes)
        .unwrap();
    let version_lanes = Work::new(header(), Target::DIFF1)
        .with_versions(0x1fffe000, 0, 16)
        .unwrap()
        .with_nonces(0, hashes / 16)
        .unwrap();
    for backend in Backend::available() {
        let scanner = Scanner::new(backend).unwrap();
        group.bench_with_input(
            BenchmarkId::new("nonce-lanes", backend),
            &nonce_lanes,
            |b, w| b.iter(|| scanner.scan(w)),
        );
        group.bench_with_input(
            BenchmarkId::new("version-lanes", backend),
            &version_lanes,
            |b, w| b.iter(|| scanner.scan(w)),
        );
    }
    group.finish();
}

criterion_group!(benches, kernels);
criterion_main!(benches);
