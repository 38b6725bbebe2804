//! Kill `hashforge pool` with SIGKILL while miners submit, start it again: every share a
//! miner was told `true` for is in the ledger, and every block it found is on the chain.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hashforge_pool::ledger::Ledger;
use hashforge_pool::testing::{free_port, mine};

fn start_pool(dir: &std::path::Path, port: u16) -> Child {
    Command::new(env!("CARGO_BIN_EXE_hashforge"))
        .args([
            "pool",
            "--stratum",
            &format!("127.0.0.1:{port}"),
            "--start-difficulty",
            "0.0001",
            "--min-difficulty",
            "0.000001",
        ])
        .arg("--data-dir")
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the hashforge binary starts")
}

fn wait_listening(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "the pool did not start listening"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn acknowledged_shares_and_found_blocks_survive_sigkill() {
    let dir = std::env::temp_dir().join(format!("hashforge-sigkill-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let port = free_port();
    let mut pool = start_pool(&dir, port);
    wait_listening(port);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let reports = runtime.block_on(async {
        let miners: Vec<_> = (0..3)
            .map(|i| {
                tokio::spawn(async move {
                    mine(addr, &format!("w{i}"), 1_000_000, Duration::from_secs(20)).await
                })
            })
            .collect();
        // Let them mine, then kill the pool mid-stream.
        tokio::time::sleep(Duration::from_secs(3)).await;
        pool.kill().expect("SIGKILL");
        pool.wait().unwrap();
        let mut reports = Vec::new();
        for m in miners {
            reports.push(m.await.unwrap().unwrap_or_default());
        }
        reports
    });
    let acknowledged: usize = reports.iter().map(|r| r.accepted.len()).sum();
    assert!(
        acknowledged > 0,
        "the miners got no share accepted before the kill"
    );

    // Start again on the same data: the chain reopens (a torn last block is cut off).
    let port = free_port();
    let mut pool = start_pool(&dir, port);
    wait_listening(port);
    pool.kill().unwrap();
    pool.wait().unwrap();

    runtime.block_on(async {
        let ledger = Ledger::open(&format!("sqlite://{}", dir.join("pool.db").display()))
            .await
            .unwrap();
        let recorded = ledger.workers(0).await.unwrap();
        for (i, r) in reports.iter().enumerate() {
            let worker = format!("w{i}");
            let stored = recorded
                .iter()
                .find(|w| w.worker == worker)
                .map_or(0, |w| w.shares);
            assert!(
                stored >= r.accepted.len() as u64,
                "{worker}: {} acknowledged, {stored} recorded",
                r.accepted.len()
            );
        }
        // Every block the ledger says was accepted is on the chain.
        let chain = hashforge_pool::chain::EmbeddedChain::export(&dir).unwrap();
        let on_chain: Vec<String> = chain
            .lines()
            .map(|l| {
                bitcoin::consensus::deserialize::<bitcoin::Block>(&hex::decode(l).unwrap())
                    .unwrap()
                    .block_hash()
                    .to_string()
            })
            .collect();
        for b in ledger.blocks(100_000).await.unwrap() {
            if matches!(b.status, hashforge_pool::ledger::BlockStatus::Accepted) {
                assert!(
                    on_chain.contains(&b.hash),
                    "block {} recorded as accepted but not on the chain",
                    b.hash
                );
            }
        }
        assert!(!on_chain.is_empty());
        ledger.close().await;
    });
    let _ = std::fs::remove_dir_all(&dir);
}
