//! Frame codec throughput, and the hashing rate of an emulated S21 Pro (195 chips on 3
//! chains, driven by the real driver over in-memory links) against the bare scanner on
//! the same number of threads.

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use hashforge_asic::board_test::{test_header, BoardTestConfig};
use hashforge_asic::emulator::{EmulatedMachine, HashPool};
use hashforge_asic::frame::{Command, CommandDecoder, FullJob, Reply, ReplyDecoder};
use hashforge_asic::{Chain, ChipFamily, EmulatedSpec};
use hashforge_core::Target;
use hashforge_sha256d::{Control, Scanner, Work};

const FRAMES: usize = 1000;

fn codec(c: &mut Criterion) {
    let fam = ChipFamily::Bm1370;
    let replies: Vec<Reply> = (0..FRAMES as u32)
        .map(|i| Reply::Nonce {
            nonce: i.wrapping_mul(0x9E37_79B9),
            midstate: 0,
            job_byte: fam.job_byte(24, (i & 15) as u8),
            version_bits: i as u16,
        })
        .collect();
    let mut g = c.benchmark_group("frames");
    g.throughput(Throughput::Elements(FRAMES as u64));
    g.bench_function("nonce replies encoded+decoded", |b| {
        let mut buf = Vec::with_capacity(FRAMES * 11);
        let mut d = ReplyDecoder::new(fam);
        b.iter(|| {
            buf.clear();
            for r in &replies {
                r.encode(fam, &mut buf);
            }
            d.push(&buf);
            let mut n = 0;
            while let Some(r) = d.next_reply() {
                black_box(r);
                n += 1;
            }
            assert_eq!(n, FRAMES);
        })
    });
    let commands: Vec<Command> = (0..FRAMES)
        .map(|i| match i % 4 {
            0 => Command::Job(FullJob::from_header(24, &test_header(i as u64))),
            1 => Command::ReadRegister {
                dest: hashforge_asic::Dest::All,
                register: 0x54,
            },
            _ => Command::WriteRegister {
                dest: hashforge_asic::Dest::Chip(i as u8),
                register: 0x08,
                value: [0x40, 0xA0, 0x02, 0x41],
            },
        })
        .collect();
    g.bench_function("commands (1/4 jobs) encoded+decoded", |b| {
        let mut buf = Vec::with_capacity(FRAMES * 40);
        let mut d = CommandDecoder::new();
        b.iter(|| {
            buf.clear();
            for c in &commands {
                c.encode(&mut buf);
            }
            d.push(&buf);
            let mut n = 0;
            while let Some(c) = d.next_command() {
                black_box(&c);
                n += 1;
            }
            assert_eq!(n, FRAMES);
        })
    });
    g.finish();
}

/// Hashes per measured unit.
const UNIT: u64 = 1 << 24;
const THREADS: usize = 2;

fn emulated_s21pro(c: &mut Criterion) {
    let scanner = Scanner::fastest();
    let mut g = c.benchmark_group("hashing");
    g.throughput(Throughput::Elements(UNIT));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(8));

    g.bench_function("bare scanner, 2 threads", |b| {
        b.iter_custom(|iters| {
            let work = Work::new(test_header(1), Target::DIFF1)
                .with_versions(0x1fff_e000, 0, 16 * 1024)
                .unwrap()
                .with_nonces(0, iters * UNIT / (16 * 1024))
                .unwrap();
            let ctl = Control::new();
            let t = Instant::now();
            black_box(scanner.scan_parallel(&work, THREADS, &ctl));
            t.elapsed()
        })
    });

    // The emulated machine: its own pool of 2 workers, its 3 chains driven by the real
    // driver on a tokio thread that drains every nonce (ticket 2^-20, as the board test).
    let pool = HashPool::new(THREADS, scanner);
    let handle = pool.handle();
    let spec: EmulatedSpec = "s21pro".parse().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let h2 = handle.clone();
    let driver_thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let (machine, links) = EmulatedMachine::spawn(spec.profile, &[0, 1, 2], &[], &h2);
            let cfg = BoardTestConfig::emulated(&spec, 0.0);
            let mut tasks = Vec::new();
            for (i, link) in links.into_iter().enumerate() {
                let cfg = cfg.clone();
                let stop = stop2.clone();
                tasks.push(tokio::spawn(async move {
                    let mut chain = Chain::new(link, cfg.chain.clone());
                    chain.enumerate(&cfg.bring_up).await.unwrap();
                    chain.bring_up(&cfg.bring_up).await.unwrap();
                    chain.send_job(&test_header(100 + i as u64)).await.unwrap();
                    while !stop.load(Ordering::Relaxed) {
                        let until = tokio::time::Instant::now() + Duration::from_millis(50);
                        while chain.next_event(until).await.unwrap().is_some() {}
                    }
                    chain.driver().chips().iter().map(|c| c.nonces).sum::<u64>()
                }));
            }
            let mut nonces = 0;
            for t in tasks {
                nonces += t.await.unwrap();
            }
            drop(machine);
            nonces
        })
    });
    // Let bring-up finish.
    while handle.hashes() == 0 {
        std::thread::sleep(Duration::from_millis(10));
    }
    g.bench_function("emulated S21 Pro (195 chips, 3 chains), 2 threads", |b| {
        b.iter_custom(|iters| {
            let start = handle.hashes();
            let t = Instant::now();
            while handle.hashes() - start < iters * UNIT {
                std::thread::sleep(Duration::from_millis(1));
            }
            // Scale to exactly the hashes asked for (the last piece overshoots a little).
            let done = (handle.hashes() - start).max(1) as f64;
            t.elapsed().mul_f64((iters * UNIT) as f64 / done)
        })
    });
    g.finish();
    stop.store(true, Ordering::Relaxed);
    let nonces = driver_thread.join().unwrap();
    eprintln!("emulated S21 Pro: {nonces} nonces checked by the driver during the benchmark");
    drop(pool);
}

criterion_group!(benches, codec, emulated_s21pro);
criterion_main!(benches);
