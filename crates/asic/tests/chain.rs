//! The driver against the emulator on in-memory duplex links: bring-up, real nonces,
//! every fault named by the board test, and bad input counted without a panic or hang.

use std::sync::OnceLock;
use std::time::Duration;

use hashforge_asic::board_test::{self, Verdict};
use hashforge_asic::chip::{owner_of_field, NonceOrigin};
use hashforge_asic::emulator::{EmulatedMachine, HashPool, PoolHandle};
use hashforge_asic::frame::Reply;
use hashforge_asic::{
    BoardReport, BringUp, Chain, ChainConfig, ChainEvent, ChipFamily, EmulatedSpec, Fault,
    MachineProfile,
};
use hashforge_sha256d::{sha256d_header, Scanner};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

/// One pool for every test of this file, one worker per core.
fn pool() -> PoolHandle {
    static POOL: OnceLock<HashPool> = OnceLock::new();
    POOL.get_or_init(|| HashPool::new(2, Scanner::detect()))
        .handle()
}

fn emulated_config(p: MachineProfile) -> ChainConfig {
    ChainConfig::emulated(&p, 20)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn driver_brings_up_an_emulated_board_and_gets_real_nonces() {
    let profile: MachineProfile = "s21pro".parse().unwrap();
    let (machine, mut links) = EmulatedMachine::spawn(profile, &[0], &[], &pool());
    let mut chain = Chain::new(links.pop().unwrap(), emulated_config(profile));
    let e = chain.enumerate(&BringUp::EMULATED).await.unwrap();
    assert_eq!((e.found, e.first_missing), (65, None));
    assert!(e.chip_ids.iter().all(|&id| id == 0x1370));
    chain.bring_up(&BringUp::EMULATED).await.unwrap();
    let header = board_test::test_header(7);
    let id = chain.send_job(&header).await.unwrap();
    assert_eq!(id, 0);
    let addresses: Vec<u8> = chain.driver().chips().iter().map(|c| c.address).collect();
    let mut nonces = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while nonces < 50 {
        let Some(ev) = chain.next_event(deadline).await.unwrap() else {
            panic!("no nonces before the deadline");
        };
        if let ChainEvent::Nonce(n) = ev {
            // Checked again here, independently of the driver.
            let mut h = header;
            h[0..4].copy_from_slice(&n.version.to_le_bytes());
            h[76..80].copy_from_slice(&n.nonce.to_le_bytes());
            assert_eq!(sha256d_header(&h), n.hash);
            assert_eq!(n.version & !0x1fff_e000, 0x2000_0000);
            let field = NonceOrigin::of(n.nonce).address_field;
            assert_eq!(owner_of_field(&addresses, field), Some(n.chip));
            assert_eq!(n.job_id, id);
            nonces += 1;
        }
    }
    let chips = chain.driver().chips();
    assert_eq!(chips.iter().map(|c| c.hardware_errors).sum::<u64>(), 0);
    assert_eq!(chain.driver().link_stats().bad_crc, 0);
    assert!(machine.boards[0].hashes() > 0);
}

async fn board(faults: &[&str], seconds: f64) -> BoardReport {
    let spec: EmulatedSpec = "s21pro:0".parse().unwrap();
    let faults: Vec<Fault> = faults.iter().map(|f| f.parse().unwrap()).collect();
    board_test::run_emulated(&spec, 0, &faults, seconds, &pool(), |_| {})
        .await
        .unwrap()
}

fn verdict_of(r: &BoardReport, position: usize) -> Verdict {
    r.chips[position].verdict
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_board_passes() {
    let r = board(&[], 3.0).await;
    assert!(r.passed, "{:#?}", (&r.suspects, &r.findings));
    assert_eq!(r.enumeration.found, 65);
    assert!(r.chips.iter().all(|c| c.nonces > 0));
    // Real chips split the nonce space evenly, one address step each; so does the
    // emulator, the last chip included (it once took every field up to 255: 21 times an
    // even share). The pool walks the space in pieces, so allow for that as well as chance.
    let mean = r.valid_nonces as f64 / 65.0;
    for c in &r.chips {
        let off = (c.nonces as f64 - mean).abs();
        assert!(
            off <= (0.5 * mean).max(6.0 * mean.sqrt()),
            "chip {} found {} nonces, {mean:.0} expected (1/65)",
            c.position,
            c.nonces
        );
        assert_eq!(c.verdict, Verdict::Ok);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_chip_breaks_the_chain_there() {
    let r = board(&["dead-chip:20"], 1.0).await;
    assert!(!r.passed);
    assert_eq!(r.enumeration.found, 20);
    assert_eq!(r.enumeration.first_missing, Some(20));
    assert!(r.suspects.iter().any(|s| s.first == 19 && s.last == 20));
    assert!((20..65).all(|i| verdict_of(&r, i) == Verdict::Missing));
    // The 20 that answer split the work evenly; none of them is named.
    assert!((0..20).all(|i| verdict_of(&r, i) == Verdict::Ok));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_board_finds_no_chips() {
    let r = board(&["lost-board:0"], 1.0).await;
    assert!(!r.passed);
    assert_eq!(r.enumeration.found, 0);
    assert!(r.suspects[0].reason.contains("0 chips"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_and_bad_nonce_chips_are_named() {
    let r = board(&["silent-chip:10", "bad-nonces:30:0.3"], 3.0).await;
    assert!(!r.passed);
    assert_eq!(verdict_of(&r, 10), Verdict::NoNonces);
    assert_eq!(verdict_of(&r, 30), Verdict::HardwareErrors);
    let bad: Vec<usize> = r
        .chips
        .iter()
        .filter(|c| !c.verdict.passes())
        .map(|c| c.position)
        .collect();
    assert_eq!(bad, [10, 30]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_domain_is_named_as_a_range() {
    let r = board(&["lost-domain:25:5"], 3.0).await;
    assert!(!r.passed);
    assert!((25..30).all(|i| verdict_of(&r, i) == Verdict::DomainLost));
    assert!(r.suspects.iter().any(|s| s.first == 25 && s.last == 29));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hot_chip_and_crc_errors_are_named() {
    let r = board(&["hot-chip:40", "crc-errors:0.05"], 5.0).await;
    assert!(!r.passed);
    assert_eq!(verdict_of(&r, 40), Verdict::OverTemperature);
    assert!(
        r.findings.iter().any(|f| f.contains("CRC errors")),
        "{:?}",
        r.findings
    );
    assert!(r.link.bad_crc > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_fan_overheats_the_board() {
    let r = board(&["failed-fan:1"], 5.0).await;
    assert!(!r.passed);
    assert!(
        r.findings.iter().any(|f| f.contains("fans")),
        "{:?}",
        r.findings
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_counted_never_a_panic() {
    let profile: MachineProfile = "bitaxe-gamma".parse().unwrap();
    let (host, mut chip) = tokio::io::duplex(4096);
    let mut chain = Chain::new(host, emulated_config(profile));
    // A fake single chip: answers enumeration twice, then sends garbage, a truncated
    // frame, a reply from an address no chip has, and a nonce for a job never sent.
    let fam = ChipFamily::Bm1370;
    let fake = tokio::spawn(async move {
        let mut buf = [0u8; 256];
        let _ = chip.read(&mut buf).await;
        let id = Reply::Register {
            value: [0x13, 0x70, 0, 0],
            address: 0,
            register: 0,
            extra: [0, 0],
        };
        let mut out = id.to_bytes(fam);
        out.extend(id.to_bytes(fam));
        chip.write_all(&out).await.unwrap();
        let _ = chip.read(&mut buf).await;
        let mut out = vec![0x13, 0x37, 0xAA, 0x55, 0x02];
        let nonce = Reply::Nonce {
            nonce: 0x1234_5678,
            midstate: 0,
            job_byte: fam.job_byte(48, 1),
            version_bits: 0,
        };
        out.extend(&nonce.to_bytes(fam)[..6]);
        let mut corrupt = nonce.to_bytes(fam);
        corrupt[4] ^= 0x10; // CRC5 catches every single-bit error
        out.extend(corrupt);
        out.extend(
            Reply::Register {
                value: [0; 4],
                address: 77,
                register: 0x54,
                extra: [0, 0],
            }
            .to_bytes(fam),
        );
        out.extend(nonce.to_bytes(fam));
        chip.write_all(&out).await.unwrap();
        chip
    });
    let e = chain.enumerate(&BringUp::EMULATED).await.unwrap();
    assert_eq!(
        e.found, 2,
        "the chip answering twice shows as an extra chip"
    );
    chain.bring_up(&BringUp::EMULATED).await.unwrap();
    chain
        .pump_until_quiet(Duration::from_millis(100), Duration::from_secs(2))
        .await
        .unwrap();
    let _chip = fake.await.unwrap();
    let a = chain.driver().anomalies();
    let link = chain.driver().link_stats();
    assert_eq!(a.unknown_job, 1, "{a:?}");
    assert!(a.wrong_address >= 1, "{a:?}");
    assert!(link.garbage_bytes > 0 && link.bad_crc > 0, "{link:?}");
}
