//! Interop with the Stratum Reference Implementation: SRI's own `translator_sv2` (crates.io
//! 0.6.0) in front of `hashforge pool --sv2` serves a V1 miner (`hashforge mine`), whose
//! shares reach the pool over Stratum V2 (Noise NX against the pool's authority key, an
//! extended channel) and find regtest blocks; beside it a V1 miner on the pool's V1 port and
//! a V2 miner on its SV2 port, all three in one ledger.
//!
//! Building the translator takes about 25 minutes on two cores, more than CI's budget, so
//! this test is ignored in `cargo test`; `.ci/sri-interop` installs the translator (once,
//! cached) and runs it with `HASHFORGE_TRANSLATOR_SV2` naming the binary.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hashforge_pool::testing::{free_port, fresh_dir, http_get};
use serde_json::Value;

mod sri;
use sri::{start_miner, start_pool, start_sri, tail, Children};

#[test]
#[ignore = "needs SRI's translator_sv2 binary: run .ci/sri-interop"]
fn sri_translator_feeds_a_v1_miner_to_the_sv2_pool() {
    let translator = std::env::var("HASHFORGE_TRANSLATOR_SV2")
        .expect("HASHFORGE_TRANSLATOR_SV2 names SRI's translator_sv2 binary (.ci/sri-interop)");
    let dir = fresh_dir("sri");
    std::fs::create_dir_all(&dir).unwrap();
    let (v1, sv2, http, downstream) = (free_port(), free_port(), free_port(), free_port());
    let mut children = Children(Vec::new());

    // The pool, on the embedded regtest chain; its banner on stderr gives its authority key.
    let key = start_pool(
        &mut children,
        &[
            "--stratum",
            &format!("127.0.0.1:{v1}"),
            "--sv2",
            &format!("127.0.0.1:{sv2}"),
            "--http",
            &format!("127.0.0.1:{http}"),
            // Easy shares, so each of three CPU miners sharing two cores with the pool and
            // the translator sends some within the minute.
            "--start-difficulty",
            "0.0001",
            "--min-difficulty",
            "0.000001",
        ],
        &dir.join("pool"),
    );

    // SRI's translator: V1 downstream, our pool upstream, pinned to the pool's key.
    let config = dir.join("tproxy.toml");
    std::fs::write(
        &config,
        format!(
            "downstream_address = \"127.0.0.1\"\n\
             downstream_port = {downstream}\n\
             max_supported_version = 2\n\
             min_supported_version = 2\n\
             downstream_extranonce2_size = 4\n\
             user_identity = \"tproxy\"\n\
             verify_payout = false\n\
             aggregate_channels = true\n\
             supported_extensions = []\n\
             [downstream_difficulty_config]\n\
             min_individual_miner_hashrate = 1_000_000.0\n\
             shares_per_minute = 30.0\n\
             enable_vardiff = true\n\
             job_keepalive_interval_secs = 60\n\
             [[upstreams]]\n\
             address = \"127.0.0.1\"\n\
             port = {sv2}\n\
             authority_pubkey = \"{key}\"\n\
             user_identity = \"translator\"\n"
        ),
    )
    .unwrap();
    // No V1 port: it could not reach the pool?
    let log = dir.join("tproxy.log");
    start_sri(
        &mut children,
        &translator,
        &config,
        &log,
        downstream,
        "the translator",
    );

    // Three miners: V1 through the translator, V1 direct, V2 direct.
    for (pool, user) in [
        (
            format!("stratum+tcp://127.0.0.1:{downstream}"),
            "via-translator",
        ),
        (format!("stratum+tcp://127.0.0.1:{v1}"), "v1"),
        (format!("stratum2+tcp://127.0.0.1:{sv2}/{key}"), "v2"),
    ] {
        start_miner(&mut children, &pool, user, None);
    }

    // Every one of them gets shares into the ledger, and the translator's finds blocks.
    let api = SocketAddr::from(([127, 0, 0, 1], http));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    let (workers, blocks) = loop {
        let (workers, blocks) = runtime.block_on(async {
            (
                http_get(api, "/api/workers").await,
                http_get(api, "/api/blocks").await,
            )
        });
        let workers: Value = serde_json::from_str(&workers).unwrap_or_default();
        let blocks: Value = serde_json::from_str(&blocks).unwrap_or_default();
        let shares = |w: &str| workers["live"][w]["accepted"].as_u64().unwrap_or(0);
        let translated = blocks
            .as_array()
            .into_iter()
            .flatten()
            .filter(|b| {
                b["status"] == "accepted"
                    && b["worker"]
                        .as_str()
                        .is_some_and(|w| w.starts_with("translator"))
            })
            .count();
        let translator_worker = workers["live"]
            .as_object()
            .into_iter()
            .flatten()
            .any(|(w, v)| w.starts_with("translator") && v["accepted"].as_u64() > Some(0));
        if translated >= 3 && translator_worker && shares("v1") > 0 && shares("v2") > 0 {
            break (workers, blocks);
        }
        assert!(
            Instant::now() < deadline,
            "no shares from every miner in 120 s: workers {workers:#}\ntranslator log tail: {}",
            tail(&dir.join("tproxy.log"), 20)
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    eprintln!("workers: {workers}");
    eprintln!("blocks: {}", blocks.as_array().map_or(0, |b| b.len()));
    drop(children);
    let _ = std::fs::remove_dir_all(&dir);
}
