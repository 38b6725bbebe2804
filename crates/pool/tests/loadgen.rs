//! `hashforge bench pool`'s load generator against the pool, small: every share it found
//! beforehand is accepted, and the block it finds afterwards reaches every connection as a
//! clean notify.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use hashforge_pool::loadgen::{self, LoadConfig};
use hashforge_pool::testing::fresh_dir;
use hashforge_pool::{Pool, PoolConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_load_generator_times_every_share_and_the_new_tip_on_every_connection() {
    load(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_load_generator_speaks_stratum_v2_too() {
    load(true).await;
}

async fn load(sv2: bool) {
    let dir = fresh_dir(if sv2 { "loadgen-sv2" } else { "loadgen" });
    let mut config = PoolConfig {
        stratum: "127.0.0.1:0".parse().unwrap(),
        sv2: sv2.then(|| "127.0.0.1:0".parse().unwrap()),
        data_dir: dir.clone(),
        // What `bench pool` starts its own pool with.
        start_difficulty: 1e-10,
        ..PoolConfig::default()
    };
    config.vardiff.min = 1e-10;
    let pool = Pool::start(config).await.unwrap();
    let phases = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&phases);
    let report = loadgen::run(
        LoadConfig {
            target: if sv2 {
                pool.sv2_addr().unwrap()
            } else {
                pool.stratum_addr()
            },
            sv2: if sv2 { pool.sv2_authority() } else { None },
            connections: 40,
            shares_per_connection: 5,
            window: 2,
            timeout: Duration::from_secs(60),
            rate: Some(400.0),
        },
        move |phase, _| seen.lock().unwrap().push(phase.to_string()),
    )
    .await;
    pool.stop().await;
    let _ = std::fs::remove_dir_all(&dir);

    assert_eq!(report.connect_failures, 0, "{report:?}");
    assert_eq!(
        (report.shares_sent, report.accepted),
        (200, 200),
        "{report:?}"
    );
    assert_eq!(report.rejected, 0, "{report:?}");
    // 200 shares at 400 a second: about half a second, whatever the machine.
    assert!(report.seconds >= 0.45, "{report:?}");
    assert!(report.latency_ms_p50 > 0.0 && report.latency_ms_p50 <= report.latency_ms_p99);
    assert_eq!(report.fanout_reached, 40, "{report:?}");
    assert!(report.fanout_ms_p50 > 0.0 && report.fanout_ms_p50 <= report.fanout_ms_max);
    let phases = phases.lock().unwrap().clone();
    for phase in [
        "connecting and finding shares",
        "submitting",
        "timing the new tip's notify",
        "timed",
    ] {
        assert!(phases.iter().any(|p| p == phase), "{phase}: {phases:?}");
    }
}
