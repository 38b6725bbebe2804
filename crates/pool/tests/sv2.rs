//! The pool's Stratum V2 endpoint end to end on loopback: an SV2 miner (the `sv2` crate's
//! client session) and a V1 miner on one pool, one ledger, one regtest chain.

use std::net::SocketAddr;
use std::time::Duration;

use hashforge_pool::testing::{
    exported_blocks, fresh_dir, http_get, mine, mine_sv2, Sv2Connection,
};
use hashforge_pool::{Pool, PoolConfig, SV2_KEY_FILE};
use hashforge_stratum::ClientEvent;
use hashforge_sv2::{AuthorityKeypair, Sv2ClientConfig};
use serde_json::Value;

fn config(dir: &std::path::Path) -> PoolConfig {
    let mut c = PoolConfig {
        stratum: SocketAddr::from(([127, 0, 0, 1], 0)),
        sv2: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
        http: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
        data_dir: dir.to_path_buf(),
        start_difficulty: 1e-4,
        ..PoolConfig::default()
    };
    c.vardiff.min = 1e-6;
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sv2_and_v1_miners_mine_blocks_into_one_ledger() {
    let dir = fresh_dir("pool-test-sv2");
    let pool = Pool::start(config(&dir)).await.unwrap();
    let key = pool.sv2_authority().unwrap();
    let url = pool.sv2_url().unwrap();
    assert!(url.starts_with("stratum2+tcp://127.0.0.1:") && url.ends_with(&key.to_string()));

    let v2 = mine_sv2(
        pool.sv2_addr().unwrap(),
        key,
        "carol.sv2rig",
        3,
        Duration::from_secs(60),
    )
    .await
    .unwrap();
    assert_eq!(v2.accepted.len(), 3, "{v2:?}");
    // Stale against the pool's own new block is the only refusal there may be.
    assert!(v2.rejected.iter().all(|(_, code)| *code == 21), "{v2:?}");
    let v1 = mine(
        pool.stratum_addr(),
        "dave.v1rig",
        2,
        Duration::from_secs(60),
    )
    .await
    .unwrap();
    assert_eq!(v1.accepted.len(), 2, "{v1:?}");

    let http = pool.http_addr().unwrap();
    let workers: Value = serde_json::from_str(&http_get(http, "/api/workers").await).unwrap();
    let text = workers.to_string();
    assert!(
        text.contains("carol.sv2rig") && text.contains("dave.v1rig"),
        "{text}"
    );
    let api: Value = serde_json::from_str(&http_get(http, "/api/pool").await).unwrap();
    // On regtest every share is a block: both protocols' blocks are in one chain.
    assert!(api["live"]["blocks_found"].as_u64().unwrap() >= 5, "{api}");
    // Which protocol each worker speaks, in the API and on the page; open connections by
    // protocol in /metrics.
    let live: Value = serde_json::from_str(&http_get(http, "/api/workers").await).unwrap();
    assert_eq!(live["live"]["carol.sv2rig"]["protocol"], "sv2", "{live}");
    assert_eq!(live["live"]["dave.v1rig"]["protocol"], "v1", "{live}");
    let page = http_get(http, "/").await;
    assert!(page.contains("<td>carol.sv2rig</td><td>sv2</td>"), "{page}");
    let metrics = http_get(http, "/metrics").await;
    assert!(
        metrics.contains("hashforge_pool_protocol_connections{protocol=\"sv2\"}"),
        "{metrics}"
    );
    pool.stop().await;
    let blocks = exported_blocks(&dir);
    assert!(blocks.len() >= 5, "{} blocks", blocks.len());
    for b in &blocks {
        assert!(b.check_merkle_root() && b.check_witness_commitment());
    }

    // The key survives a restart: miners keep the authority_pubkey they were given.
    let pool = Pool::start(config(&dir)).await.unwrap();
    assert_eq!(pool.sv2_authority(), Some(key));
    assert!(std::fs::read_to_string(dir.join(SV2_KEY_FILE))
        .unwrap()
        .contains(&key.to_string()));
    pool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_miner_pinning_another_key_gets_no_work() {
    let dir = fresh_dir("pool-test-sv2-key");
    let pool = Pool::start(config(&dir)).await.unwrap();
    let other = AuthorityKeypair::from_entropy([3; 32]).unwrap().public();
    assert_ne!(Some(other), pool.sv2_authority());
    let err = mine_sv2(
        pool.sv2_addr().unwrap(),
        other,
        "eve",
        1,
        Duration::from_secs(10),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("authority key"), "{err}");
    pool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_channel_that_says_its_hash_rate_starts_at_the_difficulty_for_it() {
    let dir = fresh_dir("pool-test-sv2-rate");
    let pool = Pool::start(config(&dir)).await.unwrap();
    let mut c = Sv2ClientConfig::new("fast", pool.sv2_authority().unwrap());
    // Vardiff's 10 shares a minute at difficulty 4: 4 x 2^32 hashes every 6 s.
    c.nominal_hash_rate = (4.0 * 4_294_967_296.0 / 6.0) as f32;
    let mut conn = Sv2Connection::open_with(pool.sv2_addr().unwrap(), c)
        .await
        .unwrap();
    let job = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            for e in conn.events().await.unwrap() {
                if let ClientEvent::Job(j) = e {
                    return j;
                }
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(job.difficulty.as_f64(), 4.0);
    pool.stop().await;
}
