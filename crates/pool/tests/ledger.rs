//! The share ledger against real databases: a SQLite file, and PostgreSQL when
//! `HASHFORGE_TEST_POSTGRES` names one (`.ci/run` starts one; under `CI=true` its absence
//! fails the PostgreSQL tests instead of skipping them). Each PostgreSQL test runs in a
//! schema of its own, dropped when it passes.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hashforge_pool::ledger::{
    BlockRecord, BlockStatus, Ledger, LedgerError, PayoutRow, RejectCount, ShareRecord,
};
use hashforge_pool::testing::{fresh_dir, http_get, Connection as StratumConnection};
use hashforge_pool::{Pool, PoolConfig};
use hashforge_store::testing::{postgres_enabled, TestDb};
use hashforge_stratum::{ClientConfig, ClientEvent, Share};
use serde_json::Value;
use sqlx::{Connection, Executor, Row};

/// Set in the SIGKILL test's child process: the database URL it writes to.
const CHILD_ENV: &str = "HASHFORGE_LEDGER_SIGKILL_CHILD";

hashforge_store::both_databases!(
    "pool.db";
    shares_and_blocks_read_back,
    concurrent_shares_are_batched_and_each_recorded,
    pplns_pays_the_window_up_to_the_block,
    pplns_straddles_the_edge_and_is_idempotent,
    pplns_needs_the_block_share,
    everything_survives_a_reopen,
    bad_values_are_refused_and_the_writer_goes_on,
    closing_stops_the_writer_with_a_clear_error,
    dollar_placeholders_repeat_and_reorder,
    a_database_error_reaches_the_caller,
    awkward_values_read_back_exactly,
    a_hex_keyed_ledger_migrates,
    refused_shares_are_counted_durably,
    refused_shares_survive_a_pool_restart,
);

fn hash(n: u64) -> [u8; 32] {
    let mut h = [0u8; 32];
    h[..8].copy_from_slice(&n.to_le_bytes());
    h[31] = 0x5a;
    h
}

fn display(h: &[u8; 32]) -> String {
    let mut r = *h;
    r.reverse();
    hex::encode(r)
}

fn share(worker: &str, n: u64, difficulty: f64) -> ShareRecord {
    ShareRecord {
        worker: worker.into(),
        job_id: format!("{:x}", n % 7),
        height: 100 + n % 3,
        difficulty,
        share_difficulty: difficulty * 1.5 + n as f64,
        hash: hash(n),
        is_block: false,
        time_ms: 1_700_000_000_000 + n as i64,
    }
}

fn block_share(worker: &str, n: u64, difficulty: f64) -> ShareRecord {
    ShareRecord {
        is_block: true,
        ..share(worker, n, difficulty)
    }
}

fn block(share: &ShareRecord, reward_sats: u64) -> BlockRecord {
    BlockRecord {
        hash: display(&share.hash),
        height: share.height,
        worker: share.worker.clone(),
        reward_sats,
        time_ms: share.time_ms,
        status: BlockStatus::Submitted,
    }
}

async fn shares_and_blocks_read_back(url: &str) {
    let ledger = Ledger::open(url).await.unwrap();
    let a = share("alice.rig1", 1, 1024.0);
    let b = block_share("bob", 2, 2048.0);
    ledger.record_share(a.clone()).await.unwrap();
    ledger.record_share(b.clone()).await.unwrap();
    assert_eq!(ledger.share_count().await.unwrap(), 2);

    let stored_a = ledger.share(&a.hash).await.unwrap().unwrap();
    let stored_b = ledger.share(&b.hash).await.unwrap().unwrap();
    assert_eq!(stored_a.share, a);
    assert_eq!(stored_b.share, b);
    assert!(stored_a.seq < stored_b.seq);
    assert!(ledger.share(&hash(99)).await.unwrap().is_none());

    let mut found = block(&b, 312_500_000);
    // Upper-case hex from a caller is the same block.
    found.hash = found.hash.to_uppercase();
    ledger.record_block(found.clone()).await.unwrap();
    found.hash = found.hash.to_lowercase();
    assert_eq!(ledger.blocks(10).await.unwrap(), vec![found.clone()]);
    ledger
        .set_block_status(&found.hash, BlockStatus::Rejected("bad-txnmrklroot".into()))
        .await
        .unwrap();
    assert_eq!(
        ledger.blocks(10).await.unwrap()[0].status,
        BlockStatus::Rejected("bad-txnmrklroot".into())
    );
    // A replayed record does not overwrite the status.
    ledger.record_block(found.clone()).await.unwrap();
    assert_eq!(
        ledger.blocks(10).await.unwrap()[0].status,
        BlockStatus::Rejected("bad-txnmrklroot".into())
    );
    ledger
        .set_block_status(&found.hash, BlockStatus::Accepted)
        .await
        .unwrap();
    assert_eq!(
        ledger.blocks(10).await.unwrap()[0].status,
        BlockStatus::Accepted
    );
    let unknown = display(&hash(77));
    assert!(matches!(
        ledger.set_block_status(&unknown, BlockStatus::Accepted).await,
        Err(LedgerError::UnknownBlock(h)) if h == unknown
    ));

    let stats = ledger.workers(0).await.unwrap();
    assert_eq!(stats.len(), 2);
    assert_eq!(stats[0].worker, "alice.rig1");
    assert_eq!(stats[0].shares, 1);
    assert_eq!(stats[0].difficulty_sum, 1024.0);
    assert_eq!(stats[0].last_share_ms, a.time_ms);
    assert_eq!(stats[0].best_share_difficulty, a.share_difficulty);
    assert_eq!(stats[1].worker, "bob");
    // Only shares from `since_ms` on.
    let recent = ledger.workers(b.time_ms).await.unwrap();
    assert_eq!(
        recent.iter().map(|w| w.worker.as_str()).collect::<Vec<_>>(),
        ["bob"]
    );
    ledger.close().await;
}

/// Shares reach the database as one JSON parameter per batch: every float comes back as
/// the same `f64`, and names with quotes, backslashes, control characters and non-ASCII
/// come back as they went in.
async fn awkward_values_read_back_exactly(url: &str) {
    let ledger = Ledger::open(url).await.unwrap();
    let floats = [
        1e-10,
        0.1 + 0.2,
        1.0 / 3.0,
        f64::MIN_POSITIVE,
        5e-324,
        1.7976931348623157e308,
        123_456_789.123_456_78,
        0.0,
    ];
    let names = [
        "a\"quoted\"\\worker",
        "tab\there\nnewline",
        "ünïcødé.矿工",
        "emoji.⛏️",
        "\u{1}\u{1f}",
        "x",
        "'; DROP TABLE shares; --",
        "",
    ];
    let mut pending = Vec::new();
    for (i, (d, name)) in floats.iter().zip(names).enumerate() {
        let mut s = share(name, 1_000 + i as u64, *d);
        s.share_difficulty = d * 0.5;
        s.job_id = format!("{name}/job");
        s.height = i64::MAX as u64 - i as u64;
        s.time_ms = i64::MIN + i as i64;
        pending.push(s);
    }
    // Queued together, so they share a batch.
    let queued: Vec<_> = queue_all_then_wait(&ledger, &pending).await;
    assert!(queued.iter().all(Result::is_ok), "{queued:?}");
    for s in &pending {
        let stored = ledger.share(&s.hash).await.unwrap().unwrap();
        assert_eq!(&stored.share, s);
        assert_eq!(
            stored.share.difficulty.to_bits(),
            s.difficulty.to_bits(),
            "{}",
            s.difficulty
        );
    }
    assert_eq!(ledger.share_count().await.unwrap(), floats.len() as u64);
    ledger.close().await;
}

/// Queues every share before awaiting any, so they are written as one batch.
async fn queue_all_then_wait(
    ledger: &Ledger,
    shares: &[ShareRecord],
) -> Vec<Result<(), hashforge_pool::ledger::LedgerError>> {
    let mut queued = Vec::new();
    for s in shares {
        queued.push(ledger.queue_share(s.clone()).await.unwrap());
    }
    let mut results = Vec::new();
    for q in queued {
        results.push(q.await);
    }
    results
}

async fn concurrent_shares_are_batched_and_each_recorded(url: &str) {
    let ledger = Ledger::open(url).await.unwrap();
    let tasks: Vec<_> = (0..50u64)
        .map(|t| {
            let ledger = ledger.clone();
            tokio::spawn(async move {
                for i in 0..200u64 {
                    ledger
                        .record_share(share(&format!("w{t}"), t * 1000 + i, 1.0))
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(ledger.share_count().await.unwrap(), 50 * 200);
    let workers = ledger.workers(0).await.unwrap();
    assert_eq!(workers.len(), 50);
    assert!(workers
        .iter()
        .all(|w| (w.shares, w.difficulty_sum) == (200, 200.0)));
    // Each share has its own place in the order PPLNS walks, and one task's shares keep
    // the order it recorded them in.
    let mut seqs = Vec::new();
    for i in 0..200u64 {
        seqs.push(ledger.share(&hash(7000 + i)).await.unwrap().unwrap().seq);
    }
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    ledger.close().await;
}

fn amounts(rows: &[PayoutRow]) -> Vec<(&str, u64)> {
    rows.iter()
        .map(|r| (r.worker.as_str(), r.amount_sats))
        .collect()
}

async fn pplns_pays_the_window_up_to_the_block(url: &str) {
    let ledger = Ledger::open(url).await.unwrap();
    // Oldest first. The window (10 units) reaches back exactly to the first share.
    let history = [("a", 3.0), ("b", 2.0), ("a", 2.0), ("c", 1.0)];
    for (n, (w, d)) in history.iter().enumerate() {
        ledger.record_share(share(w, n as u64, *d)).await.unwrap();
    }
    let found = block_share("b", 10, 2.0);
    ledger.record_share(found.clone()).await.unwrap();
    // Shares after the block's own are not in its window.
    ledger.record_share(share("late", 11, 100.0)).await.unwrap();
    ledger
        .record_block(block(&found, 5_000_000_000))
        .await
        .unwrap();

    let set = ledger
        .pplns(&display(&found.hash), 5_000_000_000, 10.0, 0.02)
        .await
        .unwrap();
    // 0.98 * 5e9 = 4.9e9 split 5:4:1 over 10 units.
    assert_eq!(
        amounts(&set.rows),
        [
            ("a", 2_450_000_000),
            ("b", 1_960_000_000),
            ("c", 490_000_000)
        ]
    );
    assert_eq!(set.pool_sats, 100_000_000);
    assert_eq!(set.credited, 10.0);
    assert_eq!(
        set.rows.iter().map(|r| r.difficulty).collect::<Vec<_>>(),
        [5.0, 4.0, 1.0]
    );
    assert!(set
        .rows
        .iter()
        .all(|r| r.time_ms == found.time_ms && r.block_hash == set.block_hash));
    let mut listed = ledger.payouts(100).await.unwrap();
    listed.sort_by(|x, y| x.worker.cmp(&y.worker));
    assert_eq!(listed, set.rows);
    ledger.close().await;
}

async fn pplns_straddles_the_edge_and_is_idempotent(url: &str) {
    let ledger = Ledger::open(url).await.unwrap();
    // Oldest first: the window of 10 covers c (4, the block's), b (4) and 2 of a's 4.
    ledger.record_share(share("old", 0, 50.0)).await.unwrap();
    ledger.record_share(share("a", 1, 4.0)).await.unwrap();
    ledger.record_share(share("b", 2, 4.0)).await.unwrap();
    let found = block_share("c", 3, 4.0);
    ledger.record_share(found.clone()).await.unwrap();
    let hash = display(&found.hash);

    let first = ledger.pplns(&hash, 1_000, 10.0, 0.0).await.unwrap();
    assert_eq!(amounts(&first.rows), [("a", 200), ("b", 400), ("c", 400)]);
    assert_eq!(first.pool_sats, 0);
    assert_eq!(first.rows[0].difficulty, 2.0);

    // Same again, and other arguments change nothing: the first payout is final.
    assert_eq!(ledger.pplns(&hash, 1_000, 10.0, 0.0).await.unwrap(), first);
    assert_eq!(ledger.pplns(&hash, 9_999, 3.0, 0.5).await.unwrap(), first);
    assert_eq!(ledger.payouts(100).await.unwrap().len(), 3);

    // A window longer than the pool's history pays only what it covers; rounding down
    // keeps the remainder with the pool.
    let second = block_share("d", 4, 1.0);
    ledger.record_share(second.clone()).await.unwrap();
    let set = ledger
        .pplns(&display(&second.hash), 1_000, 300.0, 0.0)
        .await
        .unwrap();
    // Units: old 50, a 4, b 4, c 4, d 1 = 63 of 300.
    assert_eq!(
        amounts(&set.rows),
        [("a", 13), ("b", 13), ("c", 13), ("d", 3), ("old", 166)]
    );
    assert_eq!(set.pool_sats, 1_000 - 13 * 3 - 3 - 166);
    assert_eq!(set.credited, 63.0);

    // Calls racing for one block store it once.
    let third = block_share("e", 5, 1.0);
    ledger.record_share(third.clone()).await.unwrap();
    let racing: Vec<_> = (0..8)
        .map(|_| {
            let ledger = ledger.clone();
            let h = display(&third.hash);
            tokio::spawn(async move { ledger.pplns(&h, 700, 7.0, 0.0).await.unwrap() })
        })
        .collect();
    let mut results = Vec::new();
    for r in racing {
        results.push(r.await.unwrap());
    }
    assert!(results.windows(2).all(|p| p[0] == p[1]));
    // e 1, d 1, c 4 and 1 of b's 4.
    assert_eq!(
        amounts(&results[0].rows),
        [("b", 100), ("c", 400), ("d", 100), ("e", 100)]
    );
    // 3 + 5 + 4 rows in all.
    assert_eq!(ledger.payouts(100).await.unwrap().len(), 12);
    ledger.close().await;
}

async fn pplns_needs_the_block_share(url: &str) {
    let ledger = Ledger::open(url).await.unwrap();
    ledger.record_share(share("a", 1, 1.0)).await.unwrap();
    let unknown = display(&hash(5));
    assert!(matches!(
        ledger.pplns(&unknown, 1_000, 10.0, 0.0).await,
        Err(LedgerError::BlockShareMissing(h)) if h == unknown
    ));
    let h = display(&hash(1));
    for (window, fee) in [(0.0, 0.0), (f64::NAN, 0.0), (10.0, -0.1), (10.0, 1.5)] {
        assert!(matches!(
            ledger.pplns(&h, 1_000, window, fee).await,
            Err(LedgerError::Invalid { .. })
        ));
    }
    assert!(matches!(
        ledger.pplns("not-a-hash", 1_000, 1.0, 0.0).await,
        Err(LedgerError::Invalid { .. })
    ));
    assert!(ledger.payouts(10).await.unwrap().is_empty());
    ledger.close().await;
}

async fn everything_survives_a_reopen(url: &str) {
    let ledger = Ledger::open(url).await.unwrap();
    for n in 0..100 {
        ledger.record_share(share("a", n, 2.0)).await.unwrap();
    }
    let found = block_share("b", 100, 2.0);
    ledger.record_share(found.clone()).await.unwrap();
    ledger.record_block(block(&found, 1_000)).await.unwrap();
    let paid = ledger
        .pplns(&display(&found.hash), 1_000, 20.0, 0.0)
        .await
        .unwrap();
    let last_seq = ledger.share(&found.hash).await.unwrap().unwrap().seq;
    ledger.close().await;

    let ledger = Ledger::open(url).await.unwrap();
    assert_eq!(ledger.share_count().await.unwrap(), 101);
    assert_eq!(ledger.blocks(10).await.unwrap(), vec![block(&found, 1_000)]);
    assert_eq!(
        ledger.pplns(&paid.block_hash, 1, 1.0, 0.0).await.unwrap(),
        paid
    );
    // New shares continue the order after a reopen.
    let next = share("c", 200, 1.0);
    ledger.record_share(next.clone()).await.unwrap();
    assert!(ledger.share(&next.hash).await.unwrap().unwrap().seq > last_seq);
    ledger.close().await;
}

async fn bad_values_are_refused_and_the_writer_goes_on(url: &str) {
    let ledger = Ledger::open(url).await.unwrap();
    let bad = [
        ShareRecord {
            worker: "nul\0byte".into(),
            ..share("x", 1, 1.0)
        },
        ShareRecord {
            difficulty: f64::INFINITY,
            ..share("x", 2, 1.0)
        },
        ShareRecord {
            height: u64::MAX,
            ..share("x", 3, 1.0)
        },
    ];
    for s in bad {
        assert!(matches!(
            ledger.record_share(s).await,
            Err(LedgerError::Invalid { .. })
        ));
    }
    let mut b = block(&share("x", 4, 1.0), 1);
    b.hash = "zz".into();
    assert!(matches!(
        ledger.record_block(b).await,
        Err(LedgerError::Invalid { .. })
    ));
    // Names with quotes and non-ASCII are data, not SQL.
    let odd = share("bc1q'; DROP TABLE shares; --.rig✓", 5, 1.0);
    ledger.record_share(odd.clone()).await.unwrap();
    assert_eq!(ledger.share(&odd.hash).await.unwrap().unwrap().share, odd);
    assert_eq!(ledger.share_count().await.unwrap(), 1);
    ledger.close().await;
}

async fn closing_stops_the_writer_with_a_clear_error(url: &str) {
    let ledger = Ledger::open(url).await.unwrap();
    let other = ledger.clone();
    // Everything queued before the close is written.
    let queued: Vec<_> = (0..500)
        .map(|n| {
            let ledger = ledger.clone();
            tokio::spawn(async move { ledger.record_share(share("a", n, 1.0)).await })
        })
        .collect();
    for q in queued {
        q.await.unwrap().unwrap();
    }
    ledger.close().await;
    let e = other.record_share(share("a", 9999, 1.0)).await.unwrap_err();
    assert!(matches!(e, LedgerError::WriterStopped));
    assert!(e.to_string().contains("writer has stopped"));
    let reopened = Ledger::open(url).await.unwrap();
    assert_eq!(reopened.share_count().await.unwrap(), 500);
    reopened.close().await;
}

/// The ledger's SQL uses `$n` placeholders for both databases; SQLite must bind them by
/// number, including repeated and out-of-order ones.
async fn dollar_placeholders_repeat_and_reorder(url: &str) {
    // Opening installs the drivers.
    Ledger::open(url).await.unwrap().close().await;
    let mut conn = sqlx::AnyConnection::connect(url).await.unwrap();
    let row = sqlx::query(
        "SELECT CAST($2 AS BIGINT) - CAST($1 AS BIGINT), CAST($2 AS BIGINT) + CAST($2 AS BIGINT)",
    )
    .bind(5i64)
    .bind(7i64)
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(row.try_get::<i64, _>(0).unwrap(), 2);
    assert_eq!(row.try_get::<i64, _>(1).unwrap(), 14);
    conn.close().await.unwrap();
}

async fn a_database_error_reaches_the_caller(url: &str) {
    let ledger = Ledger::open(url).await.unwrap();
    ledger.record_share(share("a", 1, 1.0)).await.unwrap();
    let mut conn = sqlx::AnyConnection::connect(url).await.unwrap();
    conn.execute("ALTER TABLE shares RENAME TO shares_away")
        .await
        .unwrap();
    let e = ledger.record_share(share("a", 2, 1.0)).await.unwrap_err();
    assert!(matches!(e, LedgerError::Database(_)), "{e:?}");
    assert!(e.to_string().contains("shares"), "{e}");
    // The writer outlives the error and writes again once the database is back.
    conn.execute("ALTER TABLE shares_away RENAME TO shares")
        .await
        .unwrap();
    conn.close().await.unwrap();
    ledger.record_share(share("a", 3, 1.0)).await.unwrap();
    assert_eq!(ledger.share_count().await.unwrap(), 2);
    assert!(ledger.share(&hash(2)).await.unwrap().is_none());
    ledger.close().await;
}

#[tokio::test]
async fn sqlite_files_are_in_wal_mode() {
    let db = TestDb::sqlite("wal", "pool.db");
    let ledger = Ledger::open(&db.url).await.unwrap();
    ledger.record_share(share("a", 1, 1.0)).await.unwrap();
    let mut conn = sqlx::AnyConnection::connect(&db.url).await.unwrap();
    let mode: String = sqlx::query("PRAGMA journal_mode")
        .fetch_one(&mut conn)
        .await
        .unwrap()
        .try_get(0)
        .unwrap();
    assert_eq!(mode, "wal");
    conn.close().await.unwrap();
    ledger.close().await;
    db.remove().await;
}

/// Shares/s through `record_share` from many concurrent callers (as the Stratum server
/// calls it). A measurement, not a check: `cargo test -p hashforge-pool --release --test
/// ledger -- --ignored --nocapture throughput`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement; prints shares/s"]
async fn throughput_sqlite() {
    let db = TestDb::sqlite("throughput", "pool.db");
    measure(&db.url, "SQLite").await;
    db.remove().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement; prints shares/s"]
async fn throughput_postgres() {
    if !postgres_enabled() {
        return;
    }
    let db = TestDb::postgres("throughput").await;
    measure(&db.url, "PostgreSQL").await;
    db.remove().await;
}

async fn measure(url: &str, name: &str) {
    const CALLERS: u64 = 1_000;
    const EACH: u64 = 200;
    let ledger = Ledger::open(url).await.unwrap();
    let start = Instant::now();
    let tasks: Vec<_> = (0..CALLERS)
        .map(|t| {
            let ledger = ledger.clone();
            tokio::spawn(async move {
                let mut worst = Duration::ZERO;
                for i in 0..EACH {
                    let began = Instant::now();
                    ledger
                        .record_share(share(&format!("w{t}"), t * EACH + i, 1.0))
                        .await
                        .unwrap();
                    worst = worst.max(began.elapsed());
                }
                worst
            })
        })
        .collect();
    let mut worst = Duration::ZERO;
    for t in tasks {
        worst = worst.max(t.await.unwrap());
    }
    let elapsed = start.elapsed();
    assert_eq!(ledger.share_count().await.unwrap(), CALLERS * EACH);
    println!(
        "{name}: {} shares from {CALLERS} concurrent callers in {elapsed:.2?}: {:.0} shares/s, slowest record_share {worst:.2?}",
        CALLERS * EACH,
        (CALLERS * EACH) as f64 / elapsed.as_secs_f64()
    );
    ledger.close().await;
}

/// SIGKILL mid-load: every share whose `record_share` returned is in the ledger after a
/// restart. The child is this test binary again, running `sigkill_child` below.
#[test]
fn sigkill_keeps_every_acknowledged_share_sqlite() {
    let db = TestDb::sqlite("sigkill", "pool.db");
    kill_and_check(&db.url);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(db.remove());
}

#[test]
fn sigkill_keeps_every_acknowledged_share_postgres() {
    if !postgres_enabled() {
        return;
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let db = rt.block_on(TestDb::postgres("sigkill"));
    kill_and_check(&db.url);
    rt.block_on(db.remove());
}

fn kill_and_check(url: &str) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "sigkill_child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, url)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut acked = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    // Kill it in full flight: well after the first batches, with writers still going.
    while acked.len() < 5_000 {
        assert!(
            Instant::now() < deadline,
            "the child acknowledged only {} shares",
            acked.len()
        );
        let line = lines.next().expect("the child exited early").unwrap();
        if let Some(n) = line.strip_prefix("ack ") {
            acked.push(n.parse::<u64>().unwrap());
        }
    }
    child.kill().unwrap(); // SIGKILL on Unix
    child.wait().unwrap();
    // Acknowledgements already written before the kill count too.
    for line in lines {
        if let Some(n) = line.unwrap().strip_prefix("ack ") {
            if let Ok(n) = n.parse::<u64>() {
                acked.push(n);
            }
        }
    }

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let ledger = Ledger::open(url).await.unwrap();
        for n in &acked {
            assert!(
                ledger.share(&hash(*n)).await.unwrap().is_some(),
                "share {n} was acknowledged but is not in the ledger after SIGKILL"
            );
        }
        let count = ledger.share_count().await.unwrap();
        assert!(count >= acked.len() as u64, "{count} < {}", acked.len());
        eprintln!(
            "killed after {} acknowledged shares; {count} in the ledger",
            acked.len()
        );
        let block_share = share("finder", 1 << 40, 1.0);
        assert!(
            ledger.share(&block_share.hash).await.unwrap().is_some(),
            "the block's share was acknowledged first and must be there"
        );
        assert_eq!(
            ledger.blocks(10).await.unwrap().len(),
            1,
            "a block was lost"
        );
        ledger.close().await;
    });
}

/// The SIGKILL test's child: records shares from many tasks as fast as it can and prints
/// `ack N` once share N's `record_share` has returned, until it is killed.
#[test]
#[ignore = "run by the sigkill tests in a child process"]
fn sigkill_child() {
    let Ok(url) = std::env::var(CHILD_ENV) else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async move {
        let ledger = Ledger::open(&url).await.unwrap();
        let found = share("finder", 1 << 40, 1.0);
        ledger.record_share(found.clone()).await.unwrap();
        ledger.record_block(block(&found, 50)).await.unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<u64>();
        for t in 0..32u64 {
            let ledger = ledger.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                for i in 0.. {
                    let n = t + 32 * i;
                    ledger
                        .record_share(share(&format!("w{t}"), n, 1.0))
                        .await
                        .unwrap();
                    if tx.send(n).is_err() {
                        return;
                    }
                }
            });
        }
        drop(tx);
        let mut out = std::io::stdout().lock();
        while let Some(n) = rx.recv().await {
            writeln!(out, "ack {n}").unwrap();
            out.flush().unwrap();
        }
    });
}

/// A pool's ledger as the first release left it (only migration 0001 applied: share hashes
/// as display hex), with shares and a block in it, is upgraded on open and keeps working:
/// the same workers, blocks and PPLNS payout, and new shares follow the old ones.
async fn a_hex_keyed_ledger_migrates(url: &str) {
    sqlx::any::install_default_drivers();
    let connect_url = match url.strip_prefix("sqlite://") {
        Some(path) => {
            std::fs::create_dir_all(std::path::Path::new(path).parent().unwrap()).unwrap();
            format!("{url}?mode=rwc")
        }
        None => url.to_owned(),
    };
    let mut conn = sqlx::AnyConnection::connect(&connect_url).await.unwrap();
    // What migrate.rs and 0001 created, byte for byte.
    conn.execute(
        "CREATE TABLE schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_ms BIGINT NOT NULL)",
    )
    .await
    .unwrap();
    sqlx::raw_sql(include_str!("../migrations/0001_ledger.sql"))
        .execute(&mut conn)
        .await
        .unwrap();
    conn.execute("INSERT INTO schema_migrations VALUES (1, '0001_ledger', 0)")
        .await
        .unwrap();
    // Oldest first; the block's share last but one, a later share after it.
    let mut old = vec![
        share("a", 0, 3.0),
        share("b", 1, 2.0),
        share("a", 2, 2.0),
        share("c", 3, 1.0),
    ];
    let found = block_share("b", 10, 2.0);
    old.push(found.clone());
    old.push(share("late", 11, 100.0));
    for (seq, s) in old.iter().enumerate() {
        sqlx::query(
            "INSERT INTO shares (hash, seq, worker, job_id, height, difficulty, share_difficulty, is_block, time_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(display(&s.hash))
        .bind(seq as i64)
        .bind(s.worker.as_str())
        .bind(s.job_id.as_str())
        .bind(s.height as i64)
        .bind(s.difficulty)
        .bind(s.share_difficulty)
        .bind(s.is_block)
        .bind(s.time_ms)
        .execute(&mut conn)
        .await
        .unwrap();
    }
    let mut found_block = block(&found, 5_000_000_000);
    found_block.status = BlockStatus::Accepted;
    sqlx::query(
        "INSERT INTO blocks (hash, height, worker, reward_sats, time_ms, status) VALUES ($1, $2, $3, $4, $5, 'accepted')",
    )
    .bind(found_block.hash.as_str())
    .bind(found_block.height as i64)
    .bind(found_block.worker.as_str())
    .bind(found_block.reward_sats as i64)
    .bind(found_block.time_ms)
    .execute(&mut conn)
    .await
    .unwrap();
    conn.close().await.unwrap();

    let ledger = Ledger::open(url).await.unwrap();
    assert_eq!(ledger.share_count().await.unwrap(), 6);
    for (seq, s) in old.iter().enumerate() {
        let stored = ledger.share(&s.hash).await.unwrap().unwrap();
        assert_eq!((stored.seq, &stored.share), (seq as u64, s));
    }
    assert_eq!(ledger.blocks(10).await.unwrap(), vec![found_block]);
    let workers: Vec<_> = ledger
        .workers(0)
        .await
        .unwrap()
        .into_iter()
        .map(|w| (w.worker, w.shares, w.difficulty_sum))
        .collect();
    assert_eq!(
        workers,
        [
            ("a".to_owned(), 2, 5.0),
            ("b".to_owned(), 2, 4.0),
            ("c".to_owned(), 1, 1.0),
            ("late".to_owned(), 1, 100.0)
        ]
    );
    // PPLNS finds the block's share by its hash and walks back from it.
    let set = ledger
        .pplns(&display(&found.hash), 5_000_000_000, 10.0, 0.02)
        .await
        .unwrap();
    assert_eq!(
        amounts(&set.rows),
        [
            ("a", 2_450_000_000),
            ("b", 1_960_000_000),
            ("c", 490_000_000)
        ]
    );
    assert_eq!(ledger.payouts(100).await.unwrap().len(), 3);
    // A new share follows the old order.
    let next = share("d", 12, 1.0);
    ledger.record_share(next.clone()).await.unwrap();
    assert_eq!(ledger.share(&next.hash).await.unwrap().unwrap().seq, 6);
    assert_eq!(ledger.share_count().await.unwrap(), 7);
    ledger.close().await;

    // Every key is now the hash's 32 bytes, in display order.
    let mut conn = sqlx::AnyConnection::connect(url).await.unwrap();
    let row = sqlx::query("SELECT MIN(length(hash)), MAX(length(hash)) FROM shares")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        (
            row.try_get::<i64, _>(0).unwrap(),
            row.try_get::<i64, _>(1).unwrap()
        ),
        (32, 32)
    );
    let key: Vec<u8> = sqlx::query("SELECT hash FROM shares WHERE seq = 4")
        .fetch_one(&mut conn)
        .await
        .unwrap()
        .try_get(0)
        .unwrap();
    assert_eq!(hex::encode(key), display(&found.hash));
    conn.close().await.unwrap();
}

fn reject(worker: Option<&str>, reason: &str, count: u64) -> RejectCount {
    RejectCount {
        worker: worker.map(str::to_owned),
        reason: reason.to_owned(),
        count,
    }
}

async fn refused_shares_are_counted_durably(url: &str) {
    let ledger = Ledger::open(url).await.unwrap();
    assert!(ledger.rejects().await.unwrap().is_empty());
    for _ in 0..3 {
        ledger.count_reject(Some("alice"), "duplicate");
    }
    ledger.count_reject(None, "malformed");
    ledger.count_reject(Some("bob"), "stale");
    // Names the ledger cannot store count for the pool only.
    ledger.count_reject(Some("nul\0byte"), "low-difficulty");
    ledger.count_reject(Some(&"x".repeat(5000)), "low-difficulty");
    // A share queued after them is committed after them.
    ledger.record_share(share("alice", 1, 1.0)).await.unwrap();
    let expected = vec![
        reject(None, "low-difficulty", 2),
        reject(None, "malformed", 1),
        reject(Some("alice"), "duplicate", 3),
        reject(Some("bob"), "stale", 1),
    ];
    assert_eq!(ledger.rejects().await.unwrap(), expected);
    // Counted but not yet written when the ledger closes: written by the close.
    ledger.count_reject(Some("bob"), "stale");
    ledger.count_reject(Some("carol"), "unauthorized");
    ledger.close().await;

    let ledger = Ledger::open(url).await.unwrap();
    assert_eq!(
        ledger.rejects().await.unwrap(),
        vec![
            reject(None, "low-difficulty", 2),
            reject(None, "malformed", 1),
            reject(Some("alice"), "duplicate", 3),
            reject(Some("bob"), "stale", 2),
            reject(Some("carol"), "unauthorized", 1),
        ]
    );
    assert_eq!(ledger.share_count().await.unwrap(), 1);
    ledger.close().await;
}

/// Opens a Stratum connection as `user` and waits for its first job.
async fn miner(
    pool: &Pool,
    user: &str,
) -> (StratumConnection, std::sync::Arc<hashforge_stratum::Job>) {
    let mut conn = StratumConnection::open(pool.stratum_addr(), ClientConfig::new(user, "x"))
        .await
        .unwrap();
    let job = conn.first_job().await.unwrap();
    (conn, job)
}

/// Submits `share` and waits for the pool's verdict: `Ok` or the error code.
async fn verdict(conn: &mut StratumConnection, share: Share) -> Result<(), i64> {
    conn.session
        .submit(share, std::time::Instant::now())
        .unwrap();
    loop {
        for e in conn.events().await.unwrap() {
            match e {
                ClientEvent::ShareAccepted { .. } => return Ok(()),
                ClientEvent::ShareRejected { error, .. } => return Err(error.code),
                _ => {}
            }
        }
    }
}

/// What `/api/pool`, `/api/workers` and `/metrics` say about refused shares.
async fn refused_as_served(pool: &Pool, worker: &str) -> (Value, Value, Vec<String>) {
    let http = pool.http_addr().unwrap();
    let api: Value = serde_json::from_str(&http_get(http, "/api/pool").await).unwrap();
    let workers: Value = serde_json::from_str(&http_get(http, "/api/workers").await).unwrap();
    let metrics = http_get(http, "/metrics")
        .await
        .lines()
        .filter(|l| l.starts_with("hashforge_pool_shares_rejected_total{"))
        .map(str::to_owned)
        .collect();
    (
        api["live"]["shares_rejected"].clone(),
        workers["live"][worker]["rejected"].clone(),
        metrics,
    )
}

/// Shares the pool refuses (a duplicate, one for an unknown job, one below the share
/// target) still count after the pool restarts on the same ledger, and go on counting.
async fn refused_shares_survive_a_pool_restart(url: &str) {
    let dir = fresh_dir("ledger-refused-restart");
    let config = || {
        let mut c = PoolConfig {
            stratum: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
            http: Some(std::net::SocketAddr::from(([127, 0, 0, 1], 0))),
            data_dir: dir.clone(),
            database: Some(url.to_owned()),
            // Easier than regtest's nBits (~4.66e-10) and not every hash: some hashes are
            // plain shares (no block, so the job stays current), some are below it.
            start_difficulty: 3.5e-10,
            ..PoolConfig::default()
        };
        c.vardiff.min = 1e-10;
        c
    };
    let pool = Pool::start(config()).await.unwrap();
    let (mut conn, job) = miner(&pool, "dave.rig").await;
    let share_target = job.difficulty.to_target();
    let network = job.parts.nbits.to_target().unwrap();
    let en2 = vec![0u8; job.extranonce2_size];
    let share_at = |nonce| Share {
        job_id: job.job_id.clone(),
        extranonce2: en2.clone(),
        ntime: job.parts.ntime,
        nonce,
        version: job.parts.version,
    };
    let hash_of = |nonce| {
        let header = job.header(&en2, job.parts.ntime, nonce, job.parts.version);
        hashforge_sha256d::sha256d_header(&header.to_bytes())
    };
    let plain = (0..)
        .find(|n| {
            let h = hash_of(*n);
            share_target.is_met_by(&h) && !network.is_met_by(&h)
        })
        .unwrap();
    let low = (0..)
        .find(|n| {
            let h = hash_of(*n);
            !share_target.is_met_by(&h) && !network.is_met_by(&h)
        })
        .unwrap();
    assert_eq!(verdict(&mut conn, share_at(plain)).await, Ok(()));
    assert_eq!(
        verdict(&mut conn, share_at(plain)).await,
        Err(22),
        "duplicate"
    );
    assert_eq!(
        verdict(&mut conn, share_at(low)).await,
        Err(23),
        "low difficulty"
    );
    let unknown_job = Share {
        job_id: "ffffffff".into(),
        ..share_at(plain)
    };
    assert_eq!(
        verdict(&mut conn, unknown_job.clone()).await,
        Err(21),
        "stale"
    );
    let (live_pool, live_worker, metrics) = refused_as_served(&pool, "dave.rig").await;
    let counts = serde_json::json!({"duplicate": 1, "low-difficulty": 1, "stale": 1});
    assert_eq!(live_pool, counts);
    assert_eq!(live_worker, counts);
    assert_eq!(
        metrics,
        [
            "hashforge_pool_shares_rejected_total{reason=\"duplicate\"} 1",
            "hashforge_pool_shares_rejected_total{reason=\"low-difficulty\"} 1",
            "hashforge_pool_shares_rejected_total{reason=\"stale\"} 1",
        ]
    );
    drop(conn);
    pool.stop().await;

    let pool = Pool::start(config()).await.unwrap();
    let (live_pool, live_worker, metrics) = refused_as_served(&pool, "dave.rig").await;
    assert_eq!(live_pool, counts, "after a restart");
    assert_eq!(live_worker, counts, "after a restart");
    assert_eq!(metrics.len(), 3, "{metrics:?}");
    // And they go on counting.
    let (mut conn, _) = miner(&pool, "dave.rig").await;
    assert_eq!(verdict(&mut conn, unknown_job).await, Err(21));
    let (live_pool, _, _) = refused_as_served(&pool, "dave.rig").await;
    assert_eq!(
        live_pool,
        serde_json::json!({"duplicate": 1, "low-difficulty": 1, "stale": 2})
    );
    drop(conn);
    pool.stop().await;
    let pool = Pool::start(config()).await.unwrap();
    let (_, live_worker, _) = refused_as_served(&pool, "dave.rig").await;
    assert_eq!(
        live_worker,
        serde_json::json!({"duplicate": 1, "low-difficulty": 1, "stale": 2})
    );
    pool.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}
