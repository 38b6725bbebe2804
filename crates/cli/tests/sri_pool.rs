//! Interop with the Stratum Reference Implementation's own pool (`pool_sv2`, crates.io
//! 0.7.0): a `hashforge mine` mines on it over Stratum V2 (Noise pinned to SRI's key, an
//! extended channel, SRI's jobs and targets), and SRI's pool takes its templates from a
//! `hashforge pool --sv2-tp` on the embedded regtest chain, which takes the blocks the
//! SRI pool submits. So hashforge's SV2 client works against SRI's server, and hashforge's
//! Template Provider serves SRI's pool.
//!
//! Building the pool takes half an hour on two cores, more than CI's budget, so this test is
//! ignored in `cargo test`; `.ci/sri-interop` installs it (once, cached) and runs it with
//! `HASHFORGE_POOL_SV2` naming the binary.

use std::time::{Duration, Instant};

use hashforge_pool::testing::{free_port, fresh_dir};

mod sri;
use sri::{signed_blocks, start_miner, start_pool, start_sri, tail, Children};

/// What SRI's pool writes into every coinbase.
const SIGNATURE: &str = "SRI pool on hashforge templates";

#[test]
#[ignore = "needs SRI's pool_sv2 binary: run .ci/sri-interop"]
fn hashforge_mines_on_sri_pool_fed_by_hashforge_templates() {
    let sri_pool = std::env::var("HASHFORGE_POOL_SV2")
        .expect("HASHFORGE_POOL_SV2 names SRI's pool_sv2 binary (.ci/sri-interop)");
    let dir = fresh_dir("sri-pool");
    std::fs::create_dir_all(&dir).unwrap();
    let [v1, sv2, tp, listen] = [(); 4].map(|()| free_port());
    let mut children = Children(Vec::new());
    let key = start_pool(
        &mut children,
        &[("--stratum", v1), ("--sv2", sv2), ("--sv2-tp", tp)],
        &[],
        &dir.join("templates"),
    );

    let pool_key = hashforge_sv2::AuthorityKeypair::generate();
    let config = dir.join("pool.toml");
    std::fs::write(
        &config,
        format!(
            "authority_public_key = \"{}\"\n\
             authority_secret_key = \"{}\"\n\
             cert_validity_sec = 3600\n\
             listen_address = \"127.0.0.1:{listen}\"\n\
             coinbase_reward_script = \"raw(51)\"\n\
             server_id = 1\n\
             pool_signature = \"{SIGNATURE}\"\n\
             shares_per_minute = 30.0\n\
             share_batch_size = 1\n\
             [template_provider_type.Sv2Tp]\n\
             address = \"127.0.0.1:{tp}\"\n\
             public_key = \"{key}\"\n",
            pool_key.public(),
            pool_key.secret_text(),
        ),
    )
    .unwrap();
    let log_path = dir.join("pool_sv2.log");
    start_sri(
        &mut children,
        &sri_pool,
        &config,
        &log_path,
        listen,
        "SRI's pool",
    );

    let miner_log = dir.join("miner.log");
    let url = format!("stratum2+tcp://127.0.0.1:{listen}/{}", pool_key.public());
    start_miner(&mut children, &url, "hashforge-on-sri", Some(&miner_log));

    // SRI's blocks (its signature in the coinbase) land on the hashforge chain.
    let deadline = Instant::now() + Duration::from_secs(180);
    let templates = dir.join("templates");
    loop {
        let signed = signed_blocks(&templates, SIGNATURE);
        if signed >= 3 {
            eprintln!("{signed} blocks of SRI's pool on the hashforge chain");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no blocks of SRI's pool in 180 s ({signed}):\nSRI pool log tail:\n{}\nminer log tail:\n{}",
            tail(&log_path, 30),
            tail(&miner_log, 30)
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    // The miner never took SRI's pool's bytes for bad input (and so never reconnected).
    let miner = std::fs::read_to_string(&miner_log).unwrap_or_default();
    assert!(!miner.contains("bad input"), "{}", tail(&miner_log, 30));
    drop(children);
    let _ = std::fs::remove_dir_all(&dir);
}
