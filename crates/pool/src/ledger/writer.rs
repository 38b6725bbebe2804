//! The single writer task: group commit. It takes whatever commands have queued up (at most
//! [`MAX_BATCH`]), writes them in one transaction with multi-row INSERTs, and answers each
//! caller only after the commit, so a caller's `Ok` means durable. Under load the queue
//! refills while a transaction commits, which is what makes the batches large; an idle pool
//! commits each share on its own, without waiting for company.

use std::collections::HashSet;

use sqlx::{Any, AnyPool, Transaction};
use tokio::sync::{mpsc, oneshot};

use super::{BlockRecord, BlockStatus, LedgerError, ShareRecord};

/// Shares per transaction at most.
pub(crate) const MAX_BATCH: usize = 1000;
/// Rows per INSERT statement at most. Statements come in power-of-two sizes up to this, so
/// a connection's prepared-statement cache holds at most five of them. Small on purpose:
/// sqlx's SQLite driver looks each `$n` up by name, a scan that makes binding a statement
/// quadratic in its placeholders: 256 rows ran at ~13k shares/s, 8 to 16 at ~28k.
const MAX_ROWS_PER_INSERT: usize = 16;
const SHARE_COLUMNS: usize = 9;

pub(crate) type Reply = oneshot::Sender<Result<(), LedgerError>>;

pub(crate) enum Command {
    Share(ShareRecord, Reply),
    Block(BlockRecord, Reply),
    Status(String, BlockStatus, Reply),
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
    rx: mpsc::Receiver<Command>,
    next_seq: i64,
    insert_sql: Vec<String>,
}

impl Writer {
    pub(crate) fn new(pool: AnyPool, rx: mpsc::Receiver<Command>, next_seq: i64) -> Writer {
        let insert_sql = (0..=MAX_ROWS_PER_INSERT.trailing_zeros())
            .map(|p| insert_shares_sql(1 << p))
            .collect();
        Writer {
            pool,
            rx,
            next_seq,
            insert_sql,
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
            }
        }
        for done in closers {
            let _ = done.send(());
        }
    }

    /// Writes one batch in one transaction and answers every caller in it.
    async fn write(&mut self, work: Vec<Command>) {
        let mut shares = Vec::new();
        let mut others = Vec::new();
        let mut seen = HashSet::new();
        let mut share_replies = Vec::new();
        for cmd in work {
            match cmd {
                Command::Share(share, reply) => {
                    // A replay inside one batch is already recorded by its first copy.
                    if seen.insert(share.hash) {
                        shares.push((self.next_seq, share));
                        // Gaps are harmless (a failed batch, a duplicate); reuse is not.
                        self.next_seq += 1;
                    }
                    share_replies.push(reply);
                }
                Command::Block(block, reply) => others.push((Update::Block(block), reply)),
                Command::Status(hash, status, reply) => {
                    others.push((Update::Status(hash, status), reply))
                }
                Command::Close(_) => {}
            }
        }
        let began = std::time::Instant::now();
        let outcome = self.transaction(&shares, &others).await;
        tracing::trace!(shares = shares.len(), others = others.len(), elapsed = ?began.elapsed(), "ledger batch");
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
                let e = LedgerError::from(e);
                tracing::error!("ledger write failed: {e}");
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
        &self,
        shares: &[(i64, ShareRecord)],
        others: &[(Update, Reply)],
    ) -> Result<Vec<Result<(), LedgerError>>, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let mut rest = shares;
        while !rest.is_empty() {
            let rows = if rest.len() >= MAX_ROWS_PER_INSERT {
                MAX_ROWS_PER_INSERT
            } else {
                1 << (usize::BITS - 1 - rest.len().leading_zeros())
            };
            let (chunk, tail) = rest.split_at(rows);
            self.insert_shares(&mut tx, chunk).await?;
            rest = tail;
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

    async fn insert_shares(
        &self,
        tx: &mut Transaction<'static, Any>,
        chunk: &[(i64, ShareRecord)],
    ) -> Result<(), sqlx::Error> {
        let sql = &self.insert_sql[chunk.len().trailing_zeros() as usize];
        let mut query = sqlx::query(sql);
        for (seq, share) in chunk {
            query = query
                .bind(share.hash_hex())
                .bind(*seq)
                .bind(share.worker.clone())
                .bind(share.job_id.clone())
                .bind(share.height as i64)
                .bind(share.difficulty)
                .bind(share.share_difficulty)
                .bind(share.is_block)
                .bind(share.time_ms);
        }
        query.execute(&mut **tx).await?;
        Ok(())
    }
}

fn insert_shares_sql(rows: usize) -> String {
    let mut sql = String::from(
        "INSERT INTO shares (hash, seq, worker, job_id, height, difficulty, share_difficulty, is_block, time_ms) VALUES ",
    );
    for r in 0..rows {
        if r > 0 {
            sql.push(',');
        }
        sql.push('(');
        for c in 0..SHARE_COLUMNS {
            if c > 0 {
                sql.push(',');
            }
            sql.push_str(&format!("${}", r * SHARE_COLUMNS + c + 1));
        }
        sql.push(')');
    }
    sql.push_str(" ON CONFLICT (hash) DO NOTHING");
    sql
}

/// A block already recorded keeps its first record: status changes go through
/// `set_block_status`, so a replay can never overwrite an accepted block.
async fn insert_block(
    tx: &mut Transaction<'static, Any>,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_statements_number_every_placeholder_once() {
        let sql = insert_shares_sql(2);
        assert!(sql.contains(
            "VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9),($10,$11,$12,$13,$14,$15,$16,$17,$18) ON CONFLICT"
        ));
        let big = insert_shares_sql(MAX_ROWS_PER_INSERT);
        assert!(big.contains(&format!("${},", MAX_ROWS_PER_INSERT * SHARE_COLUMNS - 1)));
        assert!(big.contains(&format!("${})", MAX_ROWS_PER_INSERT * SHARE_COLUMNS)));
    }
}
