//! The pool end to end on loopback: real shares from a real Stratum client, real blocks on the
//! embedded regtest chain, and a bitcoind stand-in serving Bitcoin Core's own template.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bitcoin::{consensus, Address, Block, KnownHrp, ScriptBuf};
use hashforge_pool::bitcoind::RpcAuth;
use hashforge_pool::testing::{exported_blocks, fresh_dir, http_get, mine, scan_job, Connection};
use hashforge_pool::{Pool, PoolConfig, SourceConfig};
use hashforge_sha256d::{Scanner, Work};
use hashforge_stratum::{ClientConfig, ClientEvent, Share};
use serde_json::{json, Value};

fn config(dir: &std::path::Path) -> PoolConfig {
    let mut c = PoolConfig {
        stratum: SocketAddr::from(([127, 0, 0, 1], 0)),
        http: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
        data_dir: dir.to_path_buf(),
        start_difficulty: 1e-4,
        ..PoolConfig::default()
    };
    c.vardiff.min = 1e-6;
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_miner_finds_real_blocks_on_the_embedded_regtest_chain() {
    let dir = fresh_dir("pool-test-embedded");
    let pool = Pool::start(config(&dir)).await.unwrap();
    assert!(pool.source().contains("REGTEST"));
    // Every share is a block on regtest (network difficulty ~4.7e-10).
    let report = mine(
        pool.stratum_addr(),
        "alice.rig1",
        3,
        Duration::from_secs(60),
    )
    .await
    .unwrap();
    assert_eq!(report.accepted.len(), 3, "{report:?}");
    // A share found on the old job before the clean job (that our own block caused) arrived
    // is stale; nothing else may be refused.
    assert!(
        report.rejected.iter().all(|(_, code)| *code == 21),
        "{report:?}"
    );

    let http = pool.http_addr().unwrap();
    let api: Value = serde_json::from_str(&http_get(http, "/api/pool").await).unwrap();
    assert_eq!(api["network"], "regtest");
    assert!(api["live"]["blocks_found"].as_u64().unwrap() >= 3, "{api}");
    let blocks: Value = serde_json::from_str(&http_get(http, "/api/blocks").await).unwrap();
    assert!(blocks.as_array().unwrap().len() >= 3, "{blocks}");
    let metrics = http_get(http, "/metrics").await;
    assert!(
        metrics.contains("hashforge_pool_shares_accepted_total 3"),
        "{metrics}"
    );
    assert!(http_get(http, "/").await.contains("REGTEST"));
    pool.stop().await;

    // The chain on disk: consecutive, proof of work met, BIP 34 heights, paid as configured.
    let blocks = exported_blocks(&dir);
    assert!(blocks.len() >= 3);
    let mut prev =
        bitcoin::blockdata::constants::genesis_block(bitcoin::Network::Regtest).block_hash();
    for (i, b) in blocks.iter().enumerate() {
        assert_eq!(b.header.prev_blockhash, prev);
        assert!(b.header.validate_pow(b.header.target()).is_ok());
        let height = bitcoin::script::Builder::new()
            .push_int(i as i64 + 1)
            .into_script();
        assert!(b.txdata[0].input[0]
            .script_sig
            .as_bytes()
            .starts_with(height.as_bytes()));
        assert!(b.check_merkle_root() && b.check_witness_commitment());
        assert_eq!(
            b.txdata[0].output[0].script_pubkey,
            ScriptBuf::from_bytes(vec![0x51])
        );
        prev = b.block_hash();
    }
    // Restarting resumes the same chain.
    let pool = Pool::start(config(&dir)).await.unwrap();
    let report = mine(
        pool.stratum_addr(),
        "alice.rig1",
        1,
        Duration::from_secs(30),
    )
    .await
    .unwrap();
    assert_eq!(report.accepted.len(), 1);
    pool.stop().await;
    assert_eq!(exported_blocks(&dir).len(), blocks.len() + 1);
    let _ = std::fs::remove_dir_all(&dir);
}

/// On regtest a hash can meet nBits and miss the share target. The pool takes it as the block
/// it is, but credits it at the network difficulty it was found against, not at the job's:
/// hash rates, vardiff and `/api/workers` count only work that met the share target.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_below_the_share_target_is_a_block_and_not_job_difficulty_work() {
    let dir = fresh_dir("pool-test-credit");
    let mut c = config(&dir);
    c.start_difficulty = 1e6;
    let pool = Pool::start(c).await.unwrap();
    let mut conn = Connection::open(pool.stratum_addr(), ClientConfig::new("carol.cpu", "x"))
        .await
        .unwrap();
    let job = conn.first_job().await.unwrap();
    assert_eq!(job.difficulty.as_f64(), 1e6);
    // A nonce that meets regtest's nBits (about half do) and misses difficulty 10^6.
    let en2 = vec![0u8; job.extranonce2_size];
    let network = job.parts.nbits.to_target().unwrap();
    let header = job.header(&en2, job.parts.ntime, 0, job.parts.version);
    let work = Work::new(header.to_bytes(), network)
        .with_nonces(0, 64)
        .unwrap();
    let share_target = job.difficulty.to_target();
    let hit = Scanner::detect()
        .scan(&work)
        .into_iter()
        .find(|h| !share_target.is_met_by(&h.hash))
        .expect("half the nonces meet regtest's nBits");
    let share = Share {
        job_id: job.job_id.clone(),
        extranonce2: en2,
        ntime: job.parts.ntime,
        nonce: hit.nonce,
        version: job.parts.version,
    };
    conn.session
        .submit(share, std::time::Instant::now())
        .unwrap();
    let verdict = loop {
        let events = conn.events().await.unwrap();
        if let Some(v) = events.into_iter().find_map(|e| match e {
            ClientEvent::ShareAccepted { .. } => Some(Ok(())),
            ClientEvent::ShareRejected { error, .. } => Some(Err(error)),
            _ => None,
        }) {
            break v;
        }
    };
    assert_eq!(
        verdict,
        Ok(()),
        "a block is never refused for its difficulty"
    );

    let http = pool.http_addr().unwrap();
    let api: Value = serde_json::from_str(&http_get(http, "/api/pool").await).unwrap();
    assert_eq!(api["live"]["blocks_found"], 1, "{api}");
    assert_eq!(api["live"]["shares_accepted"], 1, "{api}");
    assert_eq!(
        api["live"]["hashrate_hs"], 0.0,
        "no work at the job's difficulty: {api}"
    );
    let workers: Value = serde_json::from_str(&http_get(http, "/api/workers").await).unwrap();
    let live = &workers["live"]["carol.cpu"];
    assert_eq!(live["accepted"], 1, "{workers}");
    assert_eq!(live["accepted_difficulty"], 0.0, "{workers}");
    assert_eq!(live["hashrate_hs"], 0.0, "{workers}");
    assert_eq!(live["blocks"], 1, "{workers}");
    // The ledger credits the network difficulty the hash was found against (regtest's
    // ~4.66e-10), which is what PPLNS pays on.
    let recorded = &workers["last_10_minutes"][0];
    let credited = recorded["difficulty_sum"].as_f64().unwrap();
    let regtest = network.difficulty().as_f64();
    assert!((credited / regtest - 1.0).abs() < 1e-9, "{recorded}");
    pool.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// Two blocks on one job, sent back to back before the miner could read the new tip: the
/// first is the block, the second is stale work (its parent is no longer the tip), not a
/// second block for the node to refuse.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_on_a_tip_this_pool_just_replaced_is_stale() {
    let dir = fresh_dir("pool-test-race");
    let pool = Pool::start(config(&dir)).await.unwrap();
    let mut conn = Connection::open(pool.stratum_addr(), ClientConfig::new("dave.cpu", "x"))
        .await
        .unwrap();
    let job = conn.first_job().await.unwrap();
    let en2 = vec![0u8; job.extranonce2_size];
    // About ten shares at difficulty 1e-4 in 2^22 nonces.
    let shares = scan_job(&Scanner::detect(), &job, &en2, 0, 1 << 22);
    assert!(shares.len() >= 2, "{} shares", shares.len());
    let now = std::time::Instant::now();
    let first = conn.session.submit(shares[0].0.clone(), now).unwrap();
    let second = conn.session.submit(shares[1].0.clone(), now).unwrap();
    let (mut accepted, mut stale) = (Vec::new(), Vec::new());
    while accepted.len() + stale.len() < 2 {
        for e in conn.events().await.unwrap() {
            match e {
                ClientEvent::ShareAccepted { id, .. } => accepted.push(id),
                ClientEvent::ShareRejected { id, error, .. } => {
                    assert_eq!(error.code, 21, "{error:?}");
                    stale.push(id);
                }
                _ => {}
            }
        }
    }
    assert_eq!((accepted, stale), (vec![first], vec![second]));
    let api: Value =
        serde_json::from_str(&http_get(pool.http_addr().unwrap(), "/api/pool").await).unwrap();
    assert_eq!(api["live"]["blocks_found"], 1, "{api}");
    assert_eq!(api["live"]["blocks_rejected"], 0, "{api}");
    assert_eq!(api["live"]["shares_rejected"]["stale"], 1, "{api}");
    pool.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn solo_blocks_pay_the_address_in_the_username() {
    let dir = fresh_dir("pool-test-solo");
    let mut c = config(&dir);
    c.solo = true;
    let pool = Pool::start(c).await.unwrap();
    let address = Address::p2wsh(&ScriptBuf::from_bytes(vec![0x51]), KnownHrp::Regtest);
    let report = mine(
        pool.stratum_addr(),
        &format!("{address}.laptop"),
        1,
        Duration::from_secs(30),
    )
    .await
    .unwrap();
    assert_eq!(report.accepted.len(), 1, "{report:?}");
    let refused = mine(
        pool.stratum_addr(),
        "not-an-address.laptop",
        1,
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    assert_eq!(refused.authorized, Some(false));
    let mainnet = "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq.x";
    assert_eq!(
        mine(pool.stratum_addr(), mainnet, 1, Duration::from_secs(10))
            .await
            .unwrap()
            .authorized,
        Some(false)
    );
    pool.stop().await;
    let blocks = exported_blocks(&dir);
    assert_eq!(
        blocks[0].txdata[0].output[0].script_pubkey,
        address.script_pubkey()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn gbt_fixture() -> Value {
    // The manifest directory at run time (see crates/sha256d/tests/agreement.rs).
    let path = format!(
        "{}/../../fixtures/bitcoind/regtest-gbt-112.json",
        std::env::var("CARGO_MANIFEST_DIR").expect("cargo test sets CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// A stand-in bitcoind answering JSON-RPC with Bitcoin Core's recorded template, checking
/// the Basic auth and every block it is given.
async fn fake_bitcoind(submitted: Arc<Mutex<Vec<Block>>>) -> SocketAddr {
    use axum::http::{HeaderMap, StatusCode};
    use axum::routing::post;
    let fixture = gbt_fixture();
    let app = axum::Router::new().route(
        "/",
        post(move |headers: HeaderMap, body: axum::Json<Value>| {
            let fixture = fixture.clone();
            let submitted = Arc::clone(&submitted);
            async move {
                // "user:pass" in base64.
                if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some("Basic dXNlcjpwYXNz") {
                    return (StatusCode::UNAUTHORIZED, axum::Json(json!(null)));
                }
                let gbt = &fixture["getblocktemplate"];
                let result = match body["method"].as_str().unwrap_or_default() {
                    "getblockchaininfo" => json!({"chain": "regtest", "blocks": 111, "initialblockdownload": false}),
                    "getbestblockhash" => json!(gbt["previousblockhash"]),
                    "getblocktemplate" => {
                        assert_eq!(body["params"][0]["rules"], json!(["segwit"]));
                        gbt.clone()
                    }
                    "submitblock" => {
                        let raw = hex::decode(body["params"][0].as_str().unwrap()).unwrap();
                        let block: Block = consensus::deserialize(&raw).unwrap();
                        let ok = block.check_merkle_root() && block.check_witness_commitment() && block.header.validate_pow(block.header.target()).is_ok();
                        submitted.lock().unwrap().push(block);
                        if ok { json!(null) } else { json!("bad-block") }
                    }
                    other => return (StatusCode::OK, axum::Json(json!({"result": null, "error": {"code": -32601, "message": format!("Method not found: {other}")}, "id": body["id"]}))),
                };
                (StatusCode::OK, axum::Json(json!({"result": result, "error": null, "id": body["id"]})))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocks_from_a_bitcoind_template_carry_its_transactions_and_are_submitted() {
    let submitted = Arc::new(Mutex::new(Vec::new()));
    let rpc = fake_bitcoind(Arc::clone(&submitted)).await;
    let dir = fresh_dir("pool-test-bitcoind");
    let mut c = config(&dir);
    c.source = SourceConfig::Bitcoind {
        url: format!("http://{rpc}/"),
        auth: RpcAuth::UserPass {
            user: "user".into(),
            password: "pass".into(),
        },
    };
    let address = Address::p2wsh(&ScriptBuf::from_bytes(vec![0x51]), KnownHrp::Regtest);
    c.payout_address = Some(address.to_string());
    let pool = Pool::start(c).await.unwrap();
    assert!(pool.source().contains("bitcoind"));
    let report = mine(pool.stratum_addr(), "bob", 1, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(report.accepted.len(), 1, "{report:?}");
    pool.stop().await;
    let blocks = submitted.lock().unwrap().clone();
    assert_eq!(blocks.len(), 1);
    let b = &blocks[0];
    let fixture = gbt_fixture();
    assert_eq!(
        b.txdata.len(),
        1 + fixture["getblocktemplate"]["transactions"]
            .as_array()
            .unwrap()
            .len()
    );
    assert_eq!(b.bip34_block_height().unwrap(), 112);
    assert_eq!(b.txdata[0].output[0].script_pubkey, address.script_pubkey());
    assert_eq!(b.txdata[0].output[0].value.to_sat(), 5_000_630_000);

    // Wrong credentials: a clear error, not a hang.
    let mut c = config(&fresh_dir("pool-test-badauth"));
    c.source = SourceConfig::Bitcoind {
        url: format!("http://{rpc}/"),
        auth: RpcAuth::UserPass {
            user: "user".into(),
            password: "nope".into(),
        },
    };
    let err = Pool::start(c).await.err().expect("refused");
    assert!(err.to_string().contains("credentials"), "{err}");
}

#[test]
fn bitcoind_template_112_becomes_the_block_bitcoin_core_accepted_byte_for_byte() {
    use hashforge_core::Header;
    use hashforge_pool::jobs::JobFactory;
    use hashforge_pool::template::Template;
    let fixture = gbt_fixture();
    let template = Arc::new(Template::from_gbt(&fixture["getblocktemplate"]).unwrap());
    // The fixture's coinbase: no extranonce space, the tag "/hashforge-fixture/", OP_TRUE.
    let factory = JobFactory::new(b"/hashforge-fixture/".to_vec(), 0);
    let job = factory
        .build(
            Arc::clone(&template),
            ScriptBuf::from_bytes(vec![0x51]),
            "1".into(),
            true,
        )
        .unwrap();
    let parts = &job.server_job.parts;
    let header: Header = parts.header(&[], &[], template.time, 0, template.version);
    let coinbase = job.coinbase.transaction(&[]).unwrap();
    let block =
        hashforge_core::assemble_block(&header, coinbase, template.transactions.clone()).unwrap();
    assert_eq!(
        consensus::encode::serialize_hex(&block),
        fixture["block"]["block_hex"].as_str().unwrap()
    );
}
