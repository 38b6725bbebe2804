//! `hashforge up` end to end: a pool on the embedded regtest chain and a miner whose device is
//! an emulated S21 Pro board (BM1370 chips behind the real chain driver, byte for byte) mine
//! real blocks; `hashforge chain export` prints them.

use std::net::TcpListener;
use std::process::Command;

fn free_addr() -> String {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string()
}

#[test]
fn up_mines_regtest_blocks_with_an_emulated_s21_pro_board() {
    let dir = std::env::temp_dir().join(format!("hashforge-up-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let status = Command::new(env!("CARGO_BIN_EXE_hashforge"))
        .args([
            "up",
            "--seconds",
            "8",
            "--device",
            "emulated:s21pro:0",
            "--fault",
            "dead-chip:40",
        ])
        .args([
            "--stratum",
            &free_addr(),
            "--pool-http",
            &free_addr(),
            "--miner-http",
            &free_addr(),
            "--api",
            &free_addr(),
        ])
        .arg("--data-dir")
        .arg(&dir)
        .env("RUST_LOG", "warn")
        .status()
        .expect("hashforge runs");
    assert!(status.success());
    let export = Command::new(env!("CARGO_BIN_EXE_hashforge"))
        .args(["chain", "export", "--data-dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(export.status.success());
    let blocks: Vec<bitcoin::Block> = String::from_utf8(export.stdout)
        .unwrap()
        .lines()
        .map(|l| bitcoin::consensus::deserialize(&hex::decode(l).unwrap()).unwrap())
        .collect();
    assert!(!blocks.is_empty(), "no block in 8 s");
    for b in &blocks {
        assert!(b.header.validate_pow(b.header.target()).is_ok());
        assert!(b.check_merkle_root() && b.check_witness_commitment());
    }
    let _ = std::fs::remove_dir_all(&dir);
}
