//! Interop with the Stratum Reference Implementation's own Job Declarator Client
//! (`jd_client_sv2`, crates.io 0.6.0, full-template mode) on one `hashforge pool`: the pool
//! is its Template Provider (`--sv2-tp`), its Job Declarator Server (`--sv2-jd`) and its
//! pool (`--sv2`, work selection). The JDC builds jobs from the pool's templates with its
//! own coinbase, declares them, mines them through a `hashforge mine` that connects to it
//! over SV2, and the pool's chain grows with blocks whose coinbase the JDC wrote.
//!
//! Building the JDC takes about half an hour on two cores, more than CI's budget, so this
//! test is ignored in `cargo test`; `.ci/sri-interop` installs it (once, cached) and runs it
//! with `HASHFORGE_JD_CLIENT_SV2` naming the binary.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hashforge_pool::testing::{free_port, fresh_dir};

mod sri;
use sri::{
    api_json, signed_blocks, start_miner, start_pool, start_sri, tail, Children, EASY_SHARES,
};

/// What the JDC writes into every coinbase it builds.
const SIGNATURE: &str = "hashforge-jdc-interop";

#[test]
#[ignore = "needs SRI's jd_client_sv2 binary: run .ci/sri-interop"]
fn sri_jd_client_declares_and_mines_its_own_blocks_on_the_pool() {
    let jdc = std::env::var("HASHFORGE_JD_CLIENT_SV2")
        .expect("HASHFORGE_JD_CLIENT_SV2 names SRI's jd_client_sv2 binary (.ci/sri-interop)");
    let dir = fresh_dir("sri-jd");
    std::fs::create_dir_all(&dir).unwrap();
    let [v1, sv2, jd, tp, http, downstream] = [(); 6].map(|()| free_port());
    let mut children = Children(Vec::new());
    let key = start_pool(
        &mut children,
        &[
            ("--stratum", v1),
            ("--sv2", sv2),
            ("--sv2-jd", jd),
            ("--sv2-tp", tp),
            ("--http", http),
        ],
        &EASY_SHARES,
        &dir.join("pool"),
    );

    // The JDC's own key, for the miners that connect to it.
    let jdc_key = hashforge_sv2::AuthorityKeypair::generate();
    let config = dir.join("jdc.toml");
    std::fs::write(
        &config,
        format!(
            "listening_address = \"127.0.0.1:{downstream}\"\n\
             max_supported_version = 2\n\
             min_supported_version = 2\n\
             authority_public_key = \"{}\"\n\
             authority_secret_key = \"{}\"\n\
             cert_validity_sec = 3600\n\
             shares_per_minute = 30.0\n\
             share_batch_size = 1\n\
             mode = \"FULLTEMPLATE\"\n\
             jdc_signature = \"{SIGNATURE}\"\n\
             coinbase_reward_script = \"raw(51)\"\n\
             supported_extensions = []\n\
             [template_provider_type.Sv2Tp]\n\
             address = \"127.0.0.1:{tp}\"\n\
             public_key = \"{key}\"\n\
             [[upstreams]]\n\
             authority_pubkey = \"{key}\"\n\
             pool_address = \"127.0.0.1\"\n\
             pool_port = {sv2}\n\
             jds_address = \"127.0.0.1\"\n\
             jds_port = {jd}\n\
             user_identity = \"jdc\"\n",
            jdc_key.public(),
            jdc_key.secret_text(),
        ),
    )
    .unwrap();
    let log_path = dir.join("jdc.log");
    start_sri(
        &mut children,
        &jdc,
        &config,
        &log_path,
        downstream,
        "the JDC",
    );

    // A miner behind the JDC, over SV2, pinning the JDC's key.
    let url = format!("stratum2+tcp://127.0.0.1:{downstream}/{}", jdc_key.public());
    start_miner(&mut children, &url, "behind-jdc", None);

    // The pool records blocks from the JDC's channel, and they are the JDC's blocks.
    let api = SocketAddr::from(([127, 0, 0, 1], http));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let deadline = Instant::now() + Duration::from_secs(180);
    let pool_dir = dir.join("pool");
    loop {
        let blocks = api_json(&runtime, api, "/api/blocks");
        let accepted = blocks
            .as_array()
            .into_iter()
            .flatten()
            .filter(|b| b["status"] == "accepted" && b["worker"] == "jdc")
            .count();
        let signed = signed_blocks(&pool_dir, SIGNATURE);
        // The JDC pushes its blocks to the JDS and the Template Provider too: the share's
        // own submission then finds the block known, which is still this pool's block.
        assert!(!blocks.to_string().contains("duplicate"), "{blocks:#}");
        if accepted >= 3 && signed >= 3 {
            eprintln!("{accepted} blocks from the JDC's channel, {signed} with its coinbase");
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            let complaints: Vec<&str> = log
                .lines()
                .filter(|l| l.contains("WARN") || l.contains("ERROR"))
                .collect();
            eprintln!(
                "the JDC's log: {} lines, {} warnings or errors{}",
                log.lines().count(),
                complaints.len(),
                complaints
                    .iter()
                    .take(10)
                    .map(|l| format!("\n  {l}"))
                    .collect::<String>()
            );
            // Nothing refused, no fallback, the miner behind it never dropped (the one
            // handshake failure expected is this test's own probe of the port).
            let lower = log.to_lowercase();
            for word in ["fallback", "refused", "disconnect"] {
                assert!(!lower.contains(word), "the JDC's log says {word}: {log}");
            }
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no blocks of the JDC's in 180 s (accepted {accepted}, signed {signed}): {blocks:#}\nJDC log tail:\n{}",
            tail(&log_path, 40)
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    drop(children);
    let _ = std::fs::remove_dir_all(&dir);
}
