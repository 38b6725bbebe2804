//! The single writer task: group commit. It takes whatever commands have queued up (at most
//! [`MAX_BATCH`]), writes them in one transaction, the shares in one INSERT whose rows come
//! from one JSON parameter, and answers each caller only after the commit, so a caller's
//! `Ok` means durable. Under load the queue
//! refills while a transaction commits, which is what makes the batches large; an idle pool
//! commits each share on its own, without waiting for company.
//!
//! Refused shares ride along: the counts `Ledger::count_reject` gathered since the last
//! batch are added to `rejects` in the next batch's transaction (a batch of nothing but
//! shares, the common case, stays one statement). Nobody waits for them.

use std::sync::{Arc, Mutex};

use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyPool, Connection, Transaction};
use tokio::sync::{mpsc, oneshot, watch};

use super::dialect::{Dialect, LedgerSql};
use super::{BlockRecord, BlockStatus, LedgerError, RejectCounts, ShareRecord};

/// Shares per transaction at most.
pub(crate) const MAX_BATCH: usize = 1000;

pub(crate) type Reply = oneshot::Sender<Result<(), LedgerError>>;

pub(crate) enum Command {
    Share(ShareRecord, Reply),
    Block(BlockRecord, Reply),
    Status(String, BlockStatus, Reply),
    /// Refused shares were counted while the writer had nothing queued: write them. (The
    /// counts themselves wait in [`Writer::rejects`], which every batch empties.)
    Rejects,
    /// Stop once everything queued before and after it is written.
    Close(oneshot::Sender<()>),
}

/// What a batch does besides inserting shares, in the order asked.
enum Update {
    Block(BlockRecord),
    Status(String, BlockStatus),
}

pub(crate) struct Writer {
    pool: AnyPool,
    /// The writer's own connection, kept between batches: SQLite drops a connection's page
    /// cache whenever another connection wrote last, so writing through whichever pooled
    /// connection is free re-read the index pages every batch.
    conn: Option<PoolConnection<Any>>,
    /// Told after each batch: SQLite's background checkpointer listens.
    written: Option<watch::Sender<()>>,
    rx: mpsc::Receiver<Command>,
    next_seq: i64,
    dialect: Dialect,
    /// Refused-share counts not yet written, filled by `Ledger::count_reject`.
    rejects: Arc<Mutex<RejectCounts>>,
}

impl Writer {
    pub(crate) fn new(
        pool: AnyPool,
        rx: mpsc::Receiver<Command>,
        next_seq: i64,
        dialect: Dialect,
        rejects: Arc<Mutex<RejectCounts>>,
    ) -> Writer {
        let written = (dialect == Dialect::Sqlite).then(|| {
            let (written, batches) = watch::channel(());
            tokio::spawn(checkpointer(pool.clone(), batches));
            written
        });
        Writer {
            pool,
            conn: None,
            written,
            rx,
            next_seq,
            dialect,
            rejects,
        }
    }

    pub(crate) async fn run(mut self) {
        let mut closers = Vec::new();
        while let Some(first) = self.rx.recv().await {
            let mut batch = vec![first];
            let mut shares = usize::from(matches!(batch[0], Command::Share(..)));
            while shares < MAX_BATCH {
                match self.rx.try_recv() {
                    Ok(cmd) => {
                        shares += usize::from(matches!(cmd, Command::Share(..)));
                        batch.push(cmd);
                    }
                    Err(_) => break,
                }
            }
            let mut work = Vec::with_capacity(batch.len());
            for cmd in batch {
                match cmd {
                    Command::Close(done) => {
                        // Refuse new commands; keep writing the ones already queued.
                        self.rx.close();
                        closers.push(done);
                    }
                    other => work.push(other),
                }
            }
            if !work.is_empty() {
                self.write(work).await;
                if let Some(written) = &self.written {
                    written.send_replace(());
                }
            }
        }
        // Counted after the last batch, or put back by a failed one.
        if !lock(&self.rejects).is_empty() {
            self.write(Vec::new()).await;
        }
        for done in closers {
            let _ = done.send(());
        }
    }

    /// Writes one batch in one transaction and answers every caller in it.
    async fn write(&mut self, work: Vec<Command>) {
        let mut shares = Vec::new();
        let mut others = Vec::new();
        let mut share_replies = Vec::new();
        for cmd in work {
            match cmd {
                Command::Share(share, reply) => {
                    shares.push((self.next_seq, share));
                    // Gaps are harmless (a failed batch); reuse is not (the primary key).
                    self.next_seq += 1;
                    share_replies.push(reply);
                }
                Command::Block(block, reply) => others.push((Update::Block(block), reply)),
                Command::Status(hash, status, reply) => {
                    others.push((Update::Status(hash, status), reply))
                }
                Command::Rejects | Command::Close(_) => {}
            }
        }
        let rejects = std::mem::take(&mut *lock(&self.rejects));
        let began = std::time::Instant::now();
        let outcome = self.transaction(&shares, &others, &rejects).await;
        tracing::trace!(shares = shares.len(), others = others.len(), rejects = rejects.len(), elapsed = ?began.elapsed(), "ledger batch");
        match outcome {
            Ok(results) => {
                for reply in share_replies {
                    let _ = reply.send(Ok(()));
                }
                for ((_, reply), result) in others.into_iter().zip(results) {
                    let _ = reply.send(result);
                }
            }
            Err(e) => {
                // The connection may be what failed: take a fresh one next time.
                self.conn = None;
                let e = LedgerError::from(e);
                tracing::error!("ledger write failed: {e}");
                // Counts have no caller to tell: they wait for the next batch.
                let mut pending = lock(&self.rejects);
                for (key, n) in rejects {
                    *pending.entry(key).or_default() += n;
                }
                drop(pending);
                for reply in share_replies {
                    let _ = reply.send(Err(e.clone()));
                }
                for (_, reply) in others {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
    }

    /// Writes everything in one transaction. Returns each of `others`' own result (an
    /// unknown block for a status update) in order; an `Err` means nothing was written.
    async fn transaction(
        &mut self,
        shares: &[(i64, ShareRecord)],
        others: &[(Update, Reply)],
        rejects: &RejectCounts,
    ) -> Result<Vec<Result<(), LedgerError>>, sqlx::Error> {
        if self.conn.is_none() {
            self.conn = Some(self.pool.acquire().await?);
        }
        let conn = self.conn.as_mut().expect("just set");
        if others.is_empty() && rejects.is_empty() {
            // One statement is atomic on its own: no BEGIN and COMMIT round trips to the
            // database, and SQLite needs no statement journal.
            sqlx::query(self.dialect.insert_shares())
                .bind(shares_json(shares))
                .execute(&mut **conn)
                .await?;
            return Ok(Vec::new());
        }
        let mut tx = conn.begin().await?;
        if !shares.is_empty() {
            sqlx::query(self.dialect.insert_shares())
                .bind(shares_json(shares))
                .execute(&mut *tx)
                .await?;
        }
        if !rejects.is_empty() {
            sqlx::query(self.dialect.add_rejects())
                .bind(rejects_json(rejects))
                .execute(&mut *tx)
                .await?;
        }
        let mut results = Vec::with_capacity(others.len());
        for (update, _) in others {
            results.push(match update {
                Update::Block(block) => {
                    insert_block(&mut tx, block).await?;
                    Ok(())
                }
                Update::Status(hash, status) => {
                    let updated = sqlx::query("UPDATE blocks SET status = $1 WHERE hash = $2")
                        .bind(status.to_string())
                        .bind(hash.as_str())
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                    if updated == 0 {
                        Err(LedgerError::UnknownBlock(hash.clone()))
                    } else {
                        Ok(())
                    }
                }
            });
        }
        tx.commit().await?;
        Ok(results)
    }
}

/// Copies SQLite's WAL into the database file in the background, at most every
/// [`CHECKPOINT_EVERY`] while the writer writes, so that the writer's own checkpoint (when
/// the WAL reaches `wal_autocheckpoint` pages, which then also lets the WAL start over)
/// finds little left to copy. Left to the writer alone, each checkpoint
/// copied 64 MiB of random index pages in the middle of a commit: 50-130 ms with every
/// miner waiting.
/// PASSIVE never waits for the writer nor blocks it. Ends with the writer.
async fn checkpointer(pool: AnyPool, mut batches: watch::Receiver<()>) {
    while batches.changed().await.is_ok() {
        let began = std::time::Instant::now();
        match sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .fetch_optional(&pool)
            .await
        {
            Ok(_) => tracing::trace!(elapsed = ?began.elapsed(), "ledger checkpoint"),
            Err(e) if pool.is_closed() => {
                tracing::debug!("ledger checkpointer stops: {e}");
                return;
            }
            Err(e) => tracing::warn!("ledger checkpoint failed: {e}"),
        }
        tokio::time::sleep(CHECKPOINT_EVERY).await;
    }
}

const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(20);

/// `[[hash, seq, worker, job_id, height, difficulty, share_difficulty, is_block, time_ms],
/// ...]`: the rows of [`LedgerSql::insert_shares`], the hash in display hex. Floats are
/// written shortest-round-trip, so both databases read back the same `f64`.
fn shares_json(shares: &[(i64, ShareRecord)]) -> String {
    let rows: Vec<_> = shares
        .iter()
        .map(|(seq, s)| {
            (
                s.hash_hex(),
                seq,
                &s.worker,
                &s.job_id,
                s.height as i64,
                s.difficulty,
                s.share_difficulty,
                s.is_block,
                s.time_ms,
            )
        })
        .collect();
    serde_json::to_string(&rows).expect("plain values serialize")
}

/// `[[has_worker, worker, reason, count], ...]`: the rows of [`LedgerSql::add_rejects`].
fn rejects_json(rejects: &RejectCounts) -> String {
    let rows: Vec<_> = rejects
        .iter()
        .map(|((worker, reason), n)| {
            (
                worker.is_some(),
                worker.as_deref().unwrap_or(""),
                reason,
                i64::try_from(*n).unwrap_or(i64::MAX),
            )
        })
        .collect();
    serde_json::to_string(&rows).expect("plain values serialize")
}

pub(crate) fn lock(rejects: &Mutex<RejectCounts>) -> std::sync::MutexGuard<'_, RejectCounts> {
    rejects.lock().unwrap_or_else(|p| p.into_inner())
}

/// A block already recorded keeps its first record: status changes go through
/// `set_block_status`, so a replay can never overwrite an accepted block.
async fn insert_block(
    tx: &mut Transaction<'_, Any>,
    block: &BlockRecord,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO blocks (hash, height, worker, reward_sats, time_ms, status) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (hash) DO NOTHING",
    )
    .bind(block.hash.clone())
    .bind(block.height as i64)
    .bind(block.worker.clone())
    .bind(block.reward_sats as i64)
    .bind(block.time_ms)
    .bind(block.status.to_string())
    .execute(&mut **tx)
    .await?;
    Ok(())
}
