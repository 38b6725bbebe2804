//! The miner on the real pool over Stratum V2: `stratum2+tcp://host:port/<authority_pubkey>`
//! in the same pool list as V1, regtest blocks found, V1 and V2 miners in one ledger, and a
//! pool that does not hold the pinned key refused.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use hashforge_miner::Miner;
use hashforge_pool::testing::{fresh_dir, http_get};
use hashforge_pool::Pool;
use serde_json::Value;
use support::{miner_config, wait_for};

const BOUND: Duration = Duration::from_secs(90);

async fn pool(name: &str) -> Pool {
    let mut c = hashforge_pool::PoolConfig {
        stratum: SocketAddr::from(([127, 0, 0, 1], 0)),
        sv2: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
        http: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
        data_dir: fresh_dir(name),
        start_difficulty: 1e-4,
        ..hashforge_pool::PoolConfig::default()
    };
    c.vardiff.min = 1e-6;
    Pool::start(c).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v1_and_v2_miners_mine_blocks_into_one_ledger() {
    let pool = pool("miner-sv2").await;
    let sv2_url = pool.sv2_url().unwrap();
    let v2 = Miner::start(miner_config(&[(&sv2_url, "carol.sv2")]))
        .await
        .unwrap();
    let v1 = Miner::start(miner_config(&[(&pool.stratum_url(), "dave.v1")]))
        .await
        .unwrap();
    wait_for("shares and a block from both miners", BOUND, || {
        let (a, b) = (v2.snapshot(), v1.snapshot());
        a.shares.accepted >= 3 && b.shares.accepted >= 3 && a.found_blocks >= 1
    })
    .await;
    let s = v2.snapshot();
    assert_eq!(s.hardware_errors, 0);
    assert_eq!(s.active_pool, Some(0));
    assert_eq!(s.pools[0].url, sv2_url);
    assert_eq!(s.pools[0].status, "Alive");
    assert!(s.pools[0].network_difficulty.unwrap().as_f64() < 1e-9);
    v2.stop().await;
    v1.stop().await;

    // One ledger: both workers, each with what its miner was told was accepted.
    let http = pool.http_addr().unwrap();
    let workers: Value = serde_json::from_str(&http_get(http, "/api/workers").await).unwrap();
    let text = workers.to_string();
    assert!(
        text.contains("carol.sv2") && text.contains("dave.v1"),
        "{text}"
    );
    let api: Value = serde_json::from_str(&http_get(http, "/api/pool").await).unwrap();
    assert!(api["live"]["blocks_found"].as_u64().unwrap() >= 1, "{api}");
    pool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_that_does_not_hold_the_pinned_key_gets_no_work_and_the_backup_does() {
    let pool = pool("miner-sv2-key").await;
    let addr = pool.sv2_addr().unwrap();
    // SRI's example key: a pool's key, just not this pool's.
    let wrong =
        format!("stratum2+tcp://{addr}/9auqWEzQDVyd2oe1JVGFLMLHZtCo2FFqZwtKA5gd9xbuEu7PH72");
    let miner = Miner::start(miner_config(&[
        (&wrong, "mallory"),
        (&pool.stratum_url(), "backup"),
    ]))
    .await
    .unwrap();
    wait_for("shares on the V1 backup", BOUND, || {
        miner.snapshot().pools[1].shares.accepted >= 2
    })
    .await;
    let s = miner.snapshot();
    assert_eq!(s.pools[0].status, "Dead");
    assert_eq!(s.pools[0].jobs, 0);
    assert_eq!(s.pools[0].shares.sent, 0);
    let why = s.pools[0].last_error.clone().unwrap_or_default();
    assert!(why.contains("authority key"), "{why}");
    assert_eq!(s.active_pool, Some(1));
    miner.stop().await;
    pool.stop().await;
}
