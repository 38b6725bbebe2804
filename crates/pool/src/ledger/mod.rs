//! The share ledger: every accepted share and every block, durable before the miner hears
//! `true`, and the PPLNS payouts computed from them.
//!
//! One code path, one schema and one set of migrations serve SQLite (the default: one file
//! in WAL mode with `synchronous=NORMAL`, whose commits survive the process being killed,
//! though not the machine losing power) and PostgreSQL, through `sqlx::AnyPool` and portable
//! SQL with `$n` placeholders.
//!
//! Writes go through one writer task that commits whatever has queued up in one transaction
//! (group commit); [`Ledger::record_share`] resolves only after its share's transaction has
//! committed. The writer assigns each new share the next `seq`, the order PPLNS walks, so
//! one database has one writing pool process. Reads go straight to the connection pool.
//! Refused shares are counts, not rows: [`Ledger::count_reject`] adds to a tally in memory
//! that the writer's next batch adds to the `rejects` table.
//!
//! The ledger knows rows, not sockets: it never sees a miner, only what the server accepted.
//! So it records every share it is handed: refusing a replayed share is the servers' work.
//! Each session remembers the hashes it accepted since the last tip, and no two sessions
//! share an extranonce (so never a header). A unique key on the hash would do it again at
//! the cost of one random page per share, which grows with the table (migration 0004).

mod dialect;
mod migrate;
mod pplns;
mod writer;

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};
use tokio::sync::{mpsc, oneshot};

use writer::{Command, Writer};

/// Refused shares counted but not yet written, by (worker, reason).
type RejectCounts = HashMap<(Option<String>, String), u64>;

/// Commands that may wait for the writer before callers feel back-pressure.
const QUEUE: usize = 65_536;
/// Longest worker name or job id the ledger stores, in bytes.
const MAX_NAME: usize = 1024;
/// Shares read per query while PPLNS walks back through the window.
const PPLNS_PAGE: i64 = 10_000;

/// Why the ledger could not do what was asked.
#[derive(Clone, Debug, thiserror::Error)]
pub enum LedgerError {
    /// The URL, the connection or a migration.
    #[error(transparent)]
    Store(#[from] hashforge_store::StoreError),
    #[error("database: {0}")]
    Database(Arc<sqlx::Error>),
    #[error("invalid {what}: {why}")]
    Invalid { what: &'static str, why: String },
    #[error("unknown block {0}")]
    UnknownBlock(String),
    #[error(
        "the share that found block {0} is not in the ledger: record it (is_block = true) before computing its PPLNS payout"
    )]
    BlockShareMissing(String),
    #[error(
        "the ledger writer has stopped (the ledger was closed, or the writer failed: see the log); nothing more can be recorded"
    )]
    WriterStopped,
}

impl From<sqlx::Error> for LedgerError {
    fn from(e: sqlx::Error) -> LedgerError {
        LedgerError::Database(Arc::new(e))
    }
}

/// An accepted share, as the server hands it to the ledger.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ShareRecord {
    pub worker: String,
    pub job_id: String,
    pub height: u64,
    /// Credited difficulty: the difficulty of the job the share was sent under.
    pub difficulty: f64,
    /// The difficulty the share's hash actually reached.
    pub share_difficulty: f64,
    /// SHA-256d of the header, internal byte order (as `hashforge_stratum::ShareCheck`
    /// gives it). Stored as its 32 bytes in display order, so a block's share carries the
    /// block's hash; shown (JSON, [`ShareRecord::hash_hex`]) as display hex.
    #[serde(serialize_with = "serialize_hash")]
    pub hash: [u8; 32],
    pub is_block: bool,
    /// Unix time, milliseconds.
    pub time_ms: i64,
}

impl ShareRecord {
    /// The hash in display hex (byte-reversed), as explorers show it.
    pub fn hash_hex(&self) -> String {
        display_hex(&self.hash)
    }

    fn validate(&self) -> Result<(), LedgerError> {
        check_name("worker", &self.worker)?;
        check_name("job id", &self.job_id)?;
        check_u64("share height", self.height)?;
        for (what, d) in [
            ("share difficulty", self.difficulty),
            ("share hash difficulty", self.share_difficulty),
        ] {
            if !d.is_finite() || d < 0.0 {
                return Err(invalid(
                    what,
                    format!("{d} is not a finite non-negative number"),
                ));
            }
        }
        Ok(())
    }
}

/// A share as stored, with the order the ledger gave it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StoredShare {
    pub seq: u64,
    #[serde(flatten)]
    pub share: ShareRecord,
}

/// A block the pool found.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BlockRecord {
    /// Block hash, display hex (as explorers and bitcoind show it).
    pub hash: String,
    pub height: u64,
    pub worker: String,
    pub reward_sats: u64,
    /// Unix time, milliseconds.
    pub time_ms: i64,
    pub status: BlockStatus,
}

impl BlockRecord {
    fn validate(&mut self) -> Result<(), LedgerError> {
        self.hash = normalize_block_hash(&self.hash)?;
        check_name("worker", &self.worker)?;
        check_u64("block height", self.height)?;
        check_u64("block reward", self.reward_sats)?;
        self.status.validate()
    }
}

/// What became of a block after the pool submitted it. Stored as text: `submitted`,
/// `accepted`, or `rejected: <reason>`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BlockStatus {
    Submitted,
    Accepted,
    Rejected(String),
}

impl BlockStatus {
    fn validate(&self) -> Result<(), LedgerError> {
        match self {
            BlockStatus::Rejected(reason) => check_text("rejection reason", reason),
            _ => Ok(()),
        }
    }
}

impl fmt::Display for BlockStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BlockStatus::Submitted => f.write_str("submitted"),
            BlockStatus::Accepted => f.write_str("accepted"),
            BlockStatus::Rejected(reason) => write!(f, "rejected: {reason}"),
        }
    }
}

impl FromStr for BlockStatus {
    type Err = LedgerError;

    fn from_str(s: &str) -> Result<BlockStatus, LedgerError> {
        match s {
            "submitted" => Ok(BlockStatus::Submitted),
            "accepted" => Ok(BlockStatus::Accepted),
            _ => match s.strip_prefix("rejected: ") {
                Some(reason) => Ok(BlockStatus::Rejected(reason.to_owned())),
                None => Err(invalid(
                    "block status",
                    format!("`{s}` is not one the ledger writes"),
                )),
            },
        }
    }
}

/// One worker's cut of one block.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PayoutRow {
    /// Display hex.
    pub block_hash: String,
    pub worker: String,
    pub amount_sats: u64,
    /// Difficulty units of the window credited to this worker.
    pub difficulty: f64,
    /// The block share's time, Unix milliseconds.
    pub time_ms: i64,
}

/// The PPLNS payout of one block.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PayoutSet {
    pub block_hash: String,
    pub reward_sats: u64,
    /// Window size, difficulty units.
    pub window: f64,
    pub fee: f64,
    /// One row per worker owed at least one satoshi, by worker name.
    pub rows: Vec<PayoutRow>,
    /// What stays with the pool: the fee, rounding, and the part of a window the pool's
    /// history could not fill.
    pub pool_sats: u64,
    /// Difficulty units the shares covered (the window size once the pool has that much
    /// history).
    pub credited: f64,
}

/// Accepted work per worker since a point in time.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct WorkerStats {
    pub worker: String,
    pub shares: u64,
    /// Sum of credited difficulty: hashrate is `difficulty_sum * 2^32 / seconds`.
    pub difficulty_sum: f64,
    /// Unix milliseconds.
    pub last_share_ms: i64,
    pub best_share_difficulty: f64,
}

impl WorkerStats {
    /// Hashes per second over `seconds`.
    pub fn hashrate(&self, seconds: f64) -> f64 {
        hashforge_core::HashRate::from_diff1_shares(self.difficulty_sum, seconds).as_hs()
    }
}

/// Shares refused for one reason, all time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RejectCount {
    /// The worker the share was sent as; `None` for shares refused before one was named.
    pub worker: Option<String>,
    pub reason: String,
    pub count: u64,
}

/// The ledger. Cheap to clone: clones share one connection pool and one writer.
#[derive(Clone)]
pub struct Ledger {
    pool: AnyPool,
    tx: mpsc::Sender<Command>,
    /// Refused shares counted since the writer's last batch.
    rejects: Arc<Mutex<RejectCounts>>,
}

impl fmt::Debug for Ledger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ledger").finish_non_exhaustive()
    }
}

/// A queued write: resolves once its transaction committed (or failed).
#[derive(Debug)]
pub struct Pending(oneshot::Receiver<Result<(), LedgerError>>);

impl std::future::Future for Pending {
    type Output = Result<(), LedgerError>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.0)
            .poll(cx)
            .map(|r| r.unwrap_or(Err(LedgerError::WriterStopped)))
    }
}

impl Ledger {
    /// Opens (creating if missing) and migrates the ledger at `url`:
    /// `sqlite:///path/to/pool.db`, `sqlite:path`, or `postgres://user:pass@host/db`.
    pub async fn open(url: &str) -> Result<Ledger, LedgerError> {
        let connections = hashforge_store::Connections {
            sqlite: 4,
            postgres: 8,
            sqlite_cache_kib: 8192,
        };
        let (pool, dialect) = hashforge_store::open(url, connections).await?;
        migrate::LEDGER.migrate(&pool, dialect).await?;
        let last: Option<i64> = sqlx::query("SELECT MAX(seq) FROM shares")
            .fetch_one(&pool)
            .await?
            .try_get(0)?;
        let (tx, rx) = mpsc::channel(QUEUE);
        let rejects = Arc::default();
        let next_seq = last.map_or(0, |s| s + 1);
        let writer = Writer::new(pool.clone(), rx, next_seq, dialect, Arc::clone(&rejects));
        tokio::spawn(writer.run());
        Ok(Ledger { pool, tx, rejects })
    }

    /// Records an accepted share; resolves once it is committed. The caller has refused
    /// duplicates: a share handed over twice is recorded twice.
    pub async fn record_share(&self, share: ShareRecord) -> Result<(), LedgerError> {
        self.queue_share(share).await?.await
    }

    /// Queues a share for the writer and returns at once (or when the queue has room):
    /// the returned [`Pending`] resolves once the share is committed. The writer commits in
    /// queue order, so one caller's pending shares resolve in the order it queued them. A
    /// Stratum connection uses this to keep reading while its shares are being written.
    pub async fn queue_share(&self, share: ShareRecord) -> Result<Pending, LedgerError> {
        share.validate()?;
        self.queue(|reply| Command::Share(share, reply)).await
    }

    /// Counts a refused share; the writer adds it to the ledger with its next batch, so
    /// this never waits and never slows the accepted shares' path. `None` is a share
    /// refused before its connection named a worker. A worker name the ledger cannot store
    /// (see [`ShareRecord`]'s limits) counts as `None`. Counts not yet written when the
    /// process dies are lost; [`Ledger::close`] writes them.
    pub fn count_reject(&self, worker: Option<&str>, reason: &str) {
        if check_name("reject reason", reason).is_err() {
            tracing::warn!(reason = %reason.escape_debug(), "refused share with an unstorable reason; not recorded");
            return;
        }
        let worker = worker.filter(|w| check_name("worker", w).is_ok());
        let mut pending = writer::lock(&self.rejects);
        let first = pending.is_empty();
        *pending
            .entry((worker.map(str::to_owned), reason.to_owned()))
            .or_default() += 1;
        drop(pending);
        // Wake an idle writer. A full queue means a busy writer, whose next batch takes
        // these counts anyway.
        if first {
            let _ = self.tx.try_send(Command::Rejects);
        }
    }

    /// Refused shares by worker and reason, all time (as written: counts from the last
    /// moments are still on their way), by worker then reason.
    pub async fn rejects(&self) -> Result<Vec<RejectCount>, LedgerError> {
        let rows = sqlx::query(
            "SELECT CASE WHEN has_worker THEN 1 ELSE 0 END, worker, reason, count FROM rejects \
             ORDER BY has_worker, worker, reason",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(RejectCount {
                    worker: (r.try_get::<i64, _>(0)? != 0)
                        .then(|| r.try_get(1))
                        .transpose()?,
                    reason: r.try_get(2)?,
                    count: r.try_get::<i64, _>(3)?.max(0) as u64,
                })
            })
            .collect()
    }

    /// Records a found block; durable before it returns. A block already recorded keeps
    /// its first record (change its status with [`Ledger::set_block_status`]).
    pub async fn record_block(&self, mut block: BlockRecord) -> Result<(), LedgerError> {
        block.validate()?;
        self.send(|reply| Command::Block(block, reply)).await
    }

    pub async fn set_block_status(
        &self,
        hash: &str,
        status: BlockStatus,
    ) -> Result<(), LedgerError> {
        let hash = normalize_block_hash(hash)?;
        status.validate()?;
        self.send(|reply| Command::Status(hash, status, reply))
            .await
    }

    async fn send(
        &self,
        command: impl FnOnce(writer::Reply) -> Command,
    ) -> Result<(), LedgerError> {
        self.queue(command).await?.await
    }

    async fn queue(
        &self,
        command: impl FnOnce(writer::Reply) -> Command,
    ) -> Result<Pending, LedgerError> {
        let (reply, done) = oneshot::channel();
        self.tx
            .send(command(reply))
            .await
            .map_err(|_| LedgerError::WriterStopped)?;
        Ok(Pending(done))
    }

    /// The PPLNS payout of a block: the shares in the last `window` difficulty units up to
    /// and including the block's own share (by `seq`) each earn
    /// `(1 - fee) * reward * d_i / window`, the share straddling the window's edge only for
    /// its part inside. Amounts are summed per worker and rounded down to whole satoshis;
    /// what is left stays with the pool. Stored once per block: a second call returns the
    /// stored payout, whatever its arguments.
    ///
    /// The block's share must be recorded first (its `record_share` has resolved).
    pub async fn pplns(
        &self,
        block_hash: &str,
        reward_sats: u64,
        window: f64,
        fee: f64,
    ) -> Result<PayoutSet, LedgerError> {
        let block_hash = normalize_block_hash(block_hash)?;
        check_u64("block reward", reward_sats)?;
        if !(window.is_finite() && window > 0.0) {
            return Err(invalid(
                "PPLNS window",
                format!("{window} is not a positive number of difficulty units"),
            ));
        }
        if !(0.0..=1.0).contains(&fee) {
            return Err(invalid("pool fee", format!("{fee} is not between 0 and 1")));
        }
        if let Some(stored) = self.stored_payout(&block_hash).await? {
            return Ok(stored);
        }
        let key = hex::decode(&block_hash).map_err(|e| invalid("block hash", e.to_string()))?;
        let found = sqlx::query("SELECT seq, time_ms FROM shares WHERE hash = $1 AND is_block")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| LedgerError::BlockShareMissing(block_hash.clone()))?;
        let (block_seq, time_ms): (i64, i64) = (found.try_get(0)?, found.try_get(1)?);

        // Shares up to the block's are never rewritten, so the walk needs no transaction.
        let mut w = pplns::Window::new(window);
        let mut below = block_seq + 1;
        'walk: loop {
            let page = sqlx::query(
                "SELECT seq, worker, difficulty FROM shares WHERE seq < $1 ORDER BY seq DESC LIMIT $2",
            )
            .bind(below)
            .bind(PPLNS_PAGE)
            .fetch_all(&self.pool)
            .await?;
            let full_page = page.len() as i64 == PPLNS_PAGE;
            for row in &page {
                below = row.try_get(0)?;
                let worker: String = row.try_get(1)?;
                if w.push(&worker, row.try_get(2)?) {
                    break 'walk;
                }
            }
            if !full_page {
                break;
            }
        }
        let (split, pool_sats) = w.split(reward_sats, fee);
        let set = PayoutSet {
            rows: split
                .into_iter()
                .map(|(worker, amount_sats, difficulty)| PayoutRow {
                    block_hash: block_hash.clone(),
                    worker,
                    amount_sats,
                    difficulty,
                    time_ms,
                })
                .collect(),
            block_hash,
            reward_sats,
            window,
            fee,
            pool_sats,
            credited: w.covered(),
        };

        let mut tx = self.pool.begin().await?;
        // Writing first takes SQLite's write lock up front (a read-then-write transaction
        // could not upgrade after the writer commits) and makes a concurrent call for the
        // same block wait, then find the payout stored.
        let claimed = sqlx::query(
            "INSERT INTO payout_blocks (block_hash, reward_sats, window_units, fee, pool_sats, last_share_seq, credited, time_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (block_hash) DO NOTHING",
        )
        .bind(set.block_hash.as_str())
        .bind(reward_sats as i64)
        .bind(window)
        .bind(fee)
        .bind(pool_sats as i64)
        .bind(block_seq)
        .bind(set.credited)
        .bind(time_ms)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if claimed == 0 {
            tx.rollback().await?;
            return self
                .stored_payout(&set.block_hash)
                .await?
                .ok_or_else(|| LedgerError::UnknownBlock(set.block_hash.clone()));
        }
        for row in &set.rows {
            sqlx::query(
                "INSERT INTO payouts (block_hash, worker, amount_sats, difficulty, time_ms) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(row.block_hash.as_str())
            .bind(row.worker.as_str())
            .bind(row.amount_sats as i64)
            .bind(row.difficulty)
            .bind(row.time_ms)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(set)
    }

    async fn stored_payout(&self, block_hash: &str) -> Result<Option<PayoutSet>, LedgerError> {
        let Some(head) = sqlx::query(
            "SELECT reward_sats, window_units, fee, pool_sats, credited FROM payout_blocks WHERE block_hash = $1",
        )
        .bind(block_hash)
        .fetch_optional(&self.pool)
        .await?
        else {
            return Ok(None);
        };
        let rows = sqlx::query(
            "SELECT block_hash, worker, amount_sats, difficulty, time_ms FROM payouts WHERE block_hash = $1 ORDER BY worker",
        )
        .bind(block_hash)
        .fetch_all(&self.pool)
        .await?;
        Ok(Some(PayoutSet {
            block_hash: block_hash.to_owned(),
            reward_sats: head.try_get::<i64, _>(0)? as u64,
            window: head.try_get(1)?,
            fee: head.try_get(2)?,
            pool_sats: head.try_get::<i64, _>(3)? as u64,
            credited: head.try_get(4)?,
            rows: rows.iter().map(payout_row).collect::<Result<_, _>>()?,
        }))
    }

    /// Accepted work per worker from `since_ms` (Unix milliseconds) on, by worker name.
    pub async fn workers(&self, since_ms: i64) -> Result<Vec<WorkerStats>, LedgerError> {
        let rows = sqlx::query(
            "SELECT worker, COUNT(*), SUM(difficulty), MAX(time_ms), MAX(share_difficulty) \
             FROM shares WHERE time_ms >= $1 GROUP BY worker ORDER BY worker",
        )
        .bind(since_ms)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(WorkerStats {
                    worker: r.try_get(0)?,
                    shares: r.try_get::<i64, _>(1)? as u64,
                    difficulty_sum: r.try_get(2)?,
                    last_share_ms: r.try_get(3)?,
                    best_share_difficulty: r.try_get(4)?,
                })
            })
            .collect()
    }

    /// The newest `limit` blocks, newest first.
    pub async fn blocks(&self, limit: u32) -> Result<Vec<BlockRecord>, LedgerError> {
        let rows = sqlx::query(
            "SELECT hash, height, worker, reward_sats, time_ms, status FROM blocks \
             ORDER BY time_ms DESC, height DESC, hash LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(BlockRecord {
                    hash: r.try_get(0)?,
                    height: r.try_get::<i64, _>(1)? as u64,
                    worker: r.try_get(2)?,
                    reward_sats: r.try_get::<i64, _>(3)? as u64,
                    time_ms: r.try_get(4)?,
                    status: r.try_get::<String, _>(5)?.parse()?,
                })
            })
            .collect()
    }

    /// The newest `limit` payout rows, newest block first.
    pub async fn payouts(&self, limit: u32) -> Result<Vec<PayoutRow>, LedgerError> {
        let rows = sqlx::query(
            "SELECT block_hash, worker, amount_sats, difficulty, time_ms FROM payouts \
             ORDER BY time_ms DESC, block_hash, worker LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(payout_row).collect()
    }

    /// The share with this hash (internal byte order), if recorded. Only block shares'
    /// hashes are indexed: for any other share this reads the whole table (tests, tools).
    pub async fn share(&self, hash: &[u8; 32]) -> Result<Option<StoredShare>, LedgerError> {
        let row = sqlx::query(
            "SELECT seq, worker, job_id, height, difficulty, share_difficulty, \
             CASE WHEN is_block THEN 1 ELSE 0 END, time_ms FROM shares WHERE hash = $1",
        )
        .bind(display_order(hash).to_vec())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(StoredShare {
                seq: r.try_get::<i64, _>(0)? as u64,
                share: ShareRecord {
                    worker: r.try_get(1)?,
                    job_id: r.try_get(2)?,
                    height: r.try_get::<i64, _>(3)? as u64,
                    difficulty: r.try_get(4)?,
                    share_difficulty: r.try_get(5)?,
                    hash: *hash,
                    is_block: r.try_get::<i64, _>(6)? != 0,
                    time_ms: r.try_get(7)?,
                },
            })
        })
        .transpose()
    }

    /// Shares recorded, all time.
    pub async fn share_count(&self) -> Result<u64, LedgerError> {
        let n: i64 = sqlx::query("SELECT COUNT(*) FROM shares")
            .fetch_one(&self.pool)
            .await?
            .try_get(0)?;
        Ok(n as u64)
    }

    /// Writes everything already queued, stops the writer and closes the connections.
    /// Other clones' later calls fail with [`LedgerError::WriterStopped`] (writes) or a
    /// closed-pool error (reads).
    pub async fn close(self) {
        let (done, stopped) = oneshot::channel();
        if self.tx.send(Command::Close(done)).await.is_ok() {
            let _ = stopped.await;
        }
        self.pool.close().await;
    }
}

fn payout_row(r: &AnyRow) -> Result<PayoutRow, LedgerError> {
    Ok(PayoutRow {
        block_hash: r.try_get(0)?,
        worker: r.try_get(1)?,
        amount_sats: r.try_get::<i64, _>(2)? as u64,
        difficulty: r.try_get(3)?,
        time_ms: r.try_get(4)?,
    })
}

/// The URL to connect with, and which database it is. SQLite files (and their directory)
/// are created if missing.
/// A hash held in internal byte order, in display order: the bytes the ledger stores.
fn display_order(hash: &[u8; 32]) -> [u8; 32] {
    let mut reversed = *hash;
    reversed.reverse();
    reversed
}

/// Display hex of a hash held in internal byte order.
fn display_hex(hash: &[u8; 32]) -> String {
    hex::encode(display_order(hash))
}

fn normalize_block_hash(hash: &str) -> Result<String, LedgerError> {
    if hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(hash.to_ascii_lowercase())
    } else {
        Err(invalid(
            "block hash",
            format!("`{}` is not 64 hex digits", hash.escape_debug()),
        ))
    }
}

fn check_name(what: &'static str, s: &str) -> Result<(), LedgerError> {
    if s.len() > MAX_NAME {
        return Err(invalid(
            what,
            format!("{} bytes is longer than {MAX_NAME}", s.len()),
        ));
    }
    check_text(what, s)
}

/// PostgreSQL's TEXT cannot hold NUL, so neither database gets one.
fn check_text(what: &'static str, s: &str) -> Result<(), LedgerError> {
    if s.contains('\0') {
        return Err(invalid(what, "contains a NUL character".into()));
    }
    Ok(())
}

/// Both databases store BIGINT, which is signed.
fn check_u64(what: &'static str, v: u64) -> Result<(), LedgerError> {
    if i64::try_from(v).is_err() {
        return Err(invalid(
            what,
            format!("{v} is larger than the ledger can store"),
        ));
    }
    Ok(())
}

fn invalid(what: &'static str, why: String) -> LedgerError {
    LedgerError::Invalid { what, why }
}

fn serialize_hash<S: serde::Serializer>(hash: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&display_hex(hash))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_status_round_trips_through_text() {
        for s in [
            BlockStatus::Submitted,
            BlockStatus::Accepted,
            BlockStatus::Rejected("bad-txnmrklroot: x".into()),
        ] {
            assert_eq!(s.to_string().parse::<BlockStatus>().unwrap(), s);
        }
        assert!("lost".parse::<BlockStatus>().is_err());
    }

    #[test]
    fn share_hashes_are_stored_in_display_order() {
        let mut hash = [0u8; 32];
        hash[0] = 0xab;
        hash[31] = 0x01;
        let hex = display_hex(&hash);
        assert!(hex.starts_with("01") && hex.ends_with("ab"), "{hex}");
    }

    #[test]
    fn hostile_values_are_refused_before_the_writer_sees_them() {
        let share = ShareRecord {
            worker: "w".into(),
            job_id: "1".into(),
            height: 1,
            difficulty: 1.0,
            share_difficulty: 2.0,
            hash: [0; 32],
            is_block: false,
            time_ms: 0,
        };
        assert!(share.validate().is_ok());
        for bad in [
            ShareRecord {
                worker: "a\0b".into(),
                ..share.clone()
            },
            ShareRecord {
                worker: "x".repeat(MAX_NAME + 1),
                ..share.clone()
            },
            ShareRecord {
                difficulty: f64::NAN,
                ..share.clone()
            },
            ShareRecord {
                share_difficulty: -1.0,
                ..share.clone()
            },
            ShareRecord {
                height: u64::MAX,
                ..share.clone()
            },
        ] {
            assert!(
                matches!(bad.validate(), Err(LedgerError::Invalid { .. })),
                "{bad:?}"
            );
        }
    }
}
