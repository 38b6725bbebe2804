//! The Stratum V1 server on tokio: one task per connection around a `ServerSession`.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bitcoin::{Address, Block, ScriptBuf};
use hashforge_stratum::{
    FrameError, Id, LineBuffer, RejectReason, ServerConfig, ServerEvent, ServerSession,
    ShareCandidate,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::jobs::PoolJob;
use crate::ledger::{BlockRecord, BlockStatus, LedgerError, Pending, ShareRecord};
use crate::stats::Protocol;
use crate::template::SourceError;
use crate::vardiff::Vardiff;
use crate::Shared;

/// Accepts connections speaking `protocol` until `shutdown` flips.
pub(crate) async fn accept_loop(
    shared: Arc<Shared>,
    listener: TcpListener,
    protocol: Protocol,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    if shared.stats.connections() >= shared.config.max_connections as u64 {
                        tracing::warn!(%peer, "connection limit reached; refusing");
                        continue;
                    }
                    let _ = stream.set_nodelay(true);
                    let shared = Arc::clone(&shared);
                    let shutdown = shutdown.clone();
                    tokio::spawn(async move {
                        shared.stats.connected(protocol);
                        let why = match protocol {
                            Protocol::V1 => serve(&shared, stream, shutdown).await,
                            Protocol::Sv2 => {
                                crate::server_sv2::serve(&shared, stream, shutdown).await
                            }
                            Protocol::Sv2Jd => {
                                crate::server_jd::serve(&shared, stream, shutdown).await
                            }
                            Protocol::Sv2Tp => {
                                crate::server_tp::serve(&shared, stream, shutdown).await
                            }
                        };
                        shared.stats.disconnected(protocol);
                        tracing::debug!(%peer, ?protocol, "disconnected: {why}");
                    });
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = shutdown.changed() => return,
        }
    }
}

struct Conn<'a> {
    shared: &'a Shared,
    session: ServerSession,
    vardiff: Vardiff,
    payout: Option<ScriptBuf>,
    sent: VecDeque<Arc<PoolJob>>,
}

/// How a share's verdict reaches its miner: each protocol's connection answers its own way
/// (and counts accepted work in its own vardiff); everything else about a share is the
/// [`ShareBook`]'s, the same for both.
pub(crate) trait Answer {
    /// What names a share in its answer (V1: the request id; V2: channel and sequence).
    type Key;
    /// The ledger committed the share: answer `true`. `work` is the job's difficulty when
    /// the share met it (what hash rates and vardiff count), `credited` what it earned.
    fn accepted(&mut self, key: Self::Key, credited: f64, work: Option<f64>);
    /// The pool refused the share (stale against its own new block, or unrecorded).
    fn refused(&mut self, key: Self::Key, reason: &RejectReason);
}

/// Most shares one connection may have waiting for the ledger before it stops reading.
const MAX_IN_FLIGHT: usize = 64;

/// A share whose ledger commit the miner's answer waits for.
pub(crate) struct InFlight<K> {
    key: K,
    worker: String,
    /// The job's difficulty when the share meets it: what hash rates and vardiff count. A
    /// block below the share target (regtest) is recorded but is no such work.
    work: Option<f64>,
    credited: f64,
    share_difficulty: f64,
    commit: Pending,
}

/// One connection's shares on their way to the ledger, whichever protocol carried them:
/// the same block submission, the same ledger record and the same answer only after the
/// commit.
pub(crate) struct ShareBook<K> {
    /// Shares queued in the ledger, oldest first (the writer commits in queue order).
    in_flight: VecDeque<InFlight<K>>,
}

impl Conn<'_> {
    /// Sends the current job (if any and if the miner may have one).
    fn send_job(&mut self) {
        let Some(payout) = self.payout.clone() else {
            return;
        };
        match self.shared.jobs.job_for(&payout) {
            Ok(Some(job)) => self.push_job(job),
            Ok(None) => {}
            Err(e) => tracing::error!("cannot build a job: {e}"),
        }
    }

    fn push_job(&mut self, job: Arc<PoolJob>) {
        if self.session.notify(Arc::clone(&job.server_job)) {
            self.sent.clear();
        }
        if self.sent.len() >= 16 {
            self.sent.pop_front();
        }
        self.sent.push_back(job);
    }

    /// A new difficulty, and the current work again under a new id so it applies now.
    fn apply_difficulty(&mut self, d: f64) {
        self.session.set_difficulty(d);
        if let Some(last) = self.sent.back() {
            let again = Arc::new(last.renamed(self.shared.jobs.next_job_id()));
            self.push_job(again);
        }
    }

    fn authorize(&mut self, user: &str) -> Result<(), String> {
        self.payout = Some(payout_for(self.shared, user)?);
        Ok(())
    }
}

impl Answer for Conn<'_> {
    type Key = Id;

    fn accepted(&mut self, id: Id, _credited: f64, work: Option<f64>) {
        self.session.accept(id);
        if work.is_some() {
            if let Some(d) = self.vardiff.on_share(Instant::now()) {
                self.apply_difficulty(d);
            }
        }
    }

    fn refused(&mut self, id: Id, reason: &RejectReason) {
        self.session.reject(id, reason);
    }
}

/// The payout script of a miner authorizing as `user`: the pool's, or in solo mode the
/// address the username starts with.
pub(crate) fn payout_for(shared: &Shared, user: &str) -> Result<ScriptBuf, String> {
    if !shared.config.solo {
        return Ok(shared.payout.clone());
    }
    let address = user.split('.').next().unwrap_or_default();
    Ok(Address::from_str(address)
        .map_err(|e| format!("`{address}` is not a bitcoin address ({e}); solo mining pays the address in the username"))?
        .require_network(shared.network)
        .map_err(|_| format!("`{address}` is not an address on {}", shared.network))?
        .script_pubkey())
}

impl<K> ShareBook<K> {
    pub(crate) fn new() -> ShareBook<K> {
        ShareBook {
            in_flight: VecDeque::new(),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.in_flight.is_empty()
    }

    /// The oldest share's commit, for a connection's `select!`.
    pub(crate) async fn next_commit(&mut self) -> Result<(), LedgerError> {
        match self.in_flight.front_mut() {
            Some(share) => (&mut share.commit).await,
            None => std::future::pending().await,
        }
    }

    /// Takes an accepted candidate to the ledger; `job` is the pool's job it was found on.
    /// A plain share is queued and the connection goes on reading; its `true` goes out
    /// when the commit lands ([`ShareBook::committed`]). A block is submitted first, before
    /// anything else happens to it, and its share is then recorded in line, because its
    /// PPLNS payout walks back from that share.
    pub(crate) async fn share<A: Answer<Key = K>>(
        &mut self,
        shared: &Shared,
        answer: &mut A,
        key: K,
        c: ShareCandidate,
        job: Option<Arc<PoolJob>>,
    ) {
        let height = job.as_ref().map(|j| u64::from(j.template.height));
        if c.is_block() && height.is_some_and(|h| h <= shared.found_height.load(Ordering::Acquire))
        {
            // This pool found the block at this height a moment ago and the miner had not
            // read the new job yet: the share's parent is no longer the tip. A pool calls
            // such work stale (and submitting it would only make a refused sibling block).
            let reason = RejectReason::UnknownJob;
            answer.refused(key, &reason);
            shared.rejected(Some(&c.worker), reason.name());
            return;
        }
        let payout = match &job {
            Some(job) if c.is_block() => submit_block(shared, &c, job).await,
            _ => None,
        };
        let record = ShareRecord {
            worker: c.worker.clone(),
            job_id: c.job.job_id.clone(),
            height: height.unwrap_or(0),
            difficulty: c.credited_difficulty(),
            share_difficulty: c.check.difficulty.as_f64(),
            hash: c.check.hash,
            is_block: c.is_block(),
            time_ms: crate::now_ms(),
        };
        // A miner that submits faster than the ledger commits waits here, not in memory.
        while self.in_flight.len() >= MAX_IN_FLIGHT {
            self.settle_oldest(shared, answer).await;
        }
        let commit = match shared.ledger.queue_share(record).await {
            Ok(commit) => commit,
            Err(e) => {
                refuse_unrecorded(shared, answer, key, &c.worker, &e);
                return;
            }
        };
        let work = c.meets_job_difficulty().then_some(c.job_difficulty);
        self.in_flight.push_back(InFlight {
            key,
            credited: c.credited_difficulty(),
            worker: c.worker,
            work,
            share_difficulty: c.check.difficulty.as_f64(),
            commit,
        });
        if let Some((hash, reward, window)) = payout {
            // PPLNS walks back from the block's own share, so it waits for that commit.
            self.settle_all(shared, answer).await;
            if let Err(e) = shared
                .ledger
                .pplns(&hash, reward, window, shared.config.pool_fee)
                .await
            {
                tracing::error!(%hash, "PPLNS payout computation failed: {e}");
            }
        }
    }

    /// Answers the oldest share in flight once its commit is known.
    async fn settle_oldest<A: Answer<Key = K>>(&mut self, shared: &Shared, answer: &mut A) {
        if let Some(share) = self.in_flight.front_mut() {
            let result = (&mut share.commit).await;
            self.committed(shared, answer, result);
        }
    }

    pub(crate) async fn settle_all<A: Answer<Key = K>>(&mut self, shared: &Shared, answer: &mut A) {
        while !self.in_flight.is_empty() {
            self.settle_oldest(shared, answer).await;
        }
    }

    /// The ledger answered for the oldest share in flight: `true` only now that it is
    /// durable; a ledger failure refuses it so the miner is not told it was paid.
    pub(crate) fn committed<A: Answer<Key = K>>(
        &mut self,
        shared: &Shared,
        answer: &mut A,
        result: Result<(), LedgerError>,
    ) {
        let Some(share) = self.in_flight.pop_front() else {
            return;
        };
        match result {
            Ok(()) => {
                shared
                    .stats
                    .accepted(&share.worker, share.work, share.share_difficulty);
                answer.accepted(share.key, share.credited, share.work);
            }
            Err(e) => refuse_unrecorded(shared, answer, share.key, &share.worker, &e),
        }
    }
}

fn refuse_unrecorded<A: Answer>(
    shared: &Shared,
    answer: &mut A,
    key: A::Key,
    worker: &str,
    e: &LedgerError,
) {
    tracing::error!("ledger: {e}; refusing the share so the miner is not told it was paid");
    let reason = RejectReason::PoolError("ledger unavailable".into());
    answer.refused(key, &reason);
    shared.rejected(Some(worker), reason.name());
}

/// Submits the block a share makes; returns what PPLNS needs when the pool (not solo)
/// found an accepted block.
async fn submit_block(
    shared: &Shared,
    c: &ShareCandidate,
    job: &PoolJob,
) -> Option<(String, u64, f64)> {
    let block = match job.block(c) {
        Ok(b) => b,
        Err(e) => {
            tracing::error!("a share met the network target but the block cannot be built: {e}");
            return None;
        }
    };
    let hash = block.block_hash().to_string();
    let result = match shared.source.submit_block(&block).await {
        // The node has it already, valid: it came first another way from this pool (a job
        // declarator client pushes its block to the JDS and its Template Provider as well
        // as sending the share). It is this pool's block all the same.
        Err(SourceError::Rejected(reason)) if reason == "duplicate" => {
            tracing::debug!(%hash, "block already submitted through another path");
            Ok(())
        }
        other => other,
    };
    let status = match &result {
        Ok(()) => {
            tracing::info!(%hash, height = job.template.height, worker = %c.worker, "BLOCK FOUND and accepted by {}", shared.source.describe());
            // Every miner moves to the new tip now; the ledger record can follow.
            shared
                .found_height
                .fetch_max(u64::from(job.template.height), Ordering::AcqRel);
            shared.kick.notify_one();
            BlockStatus::Accepted
        }
        // Another block on the same parent won the race (regtest, where half of all
        // hashes are blocks, sees this all the time): stale, not a fault.
        Err(SourceError::Rejected(reason)) if reason == "prev-blk-not-found" => {
            tracing::info!(%hash, height = job.template.height, "stale block: the tip moved first");
            BlockStatus::Rejected(reason.clone())
        }
        Err(e) => {
            tracing::warn!(%hash, height = job.template.height, worker = %c.worker, "block refused: {e}");
            BlockStatus::Rejected(e.to_string())
        }
    };
    shared.stats.block(&c.worker, result.is_ok());
    let record = BlockRecord {
        hash: hash.clone(),
        height: u64::from(job.template.height),
        worker: c.worker.clone(),
        reward_sats: job.template.coinbase_value,
        time_ms: crate::now_ms(),
        status,
    };
    if let Err(e) = shared.ledger.record_block(record).await {
        tracing::error!(%hash, "could not record the block in the ledger: {e}");
    }
    if result.is_err() {
        return None;
    }
    let network = job
        .template
        .network_difficulty()
        .map_or(1.0, |d| d.as_f64());
    let window = shared.config.pplns_window * network;
    (!shared.config.solo).then_some((hash, job.template.coinbase_value, window))
}

/// Submits a block a client sent some other way than as a share (a Job Declarator Client's
/// PushSolution, a Template Provider client's SubmitSolution). The ledger records only
/// blocks that came as shares (the client sends those too), so this only submits and tells.
pub(crate) async fn submit_pushed_block(shared: &Shared, block: &Block, height: u32, from: &str) {
    let hash = block.block_hash();
    match shared.source.submit_block(block).await {
        Ok(()) => {
            tracing::info!(%hash, height, "BLOCK FOUND ({from}) and accepted by {}", shared.source.describe());
            shared.kick.notify_one();
        }
        // Its share got there first, or another block won the height.
        Err(e) => tracing::info!(%hash, height, "block from {from} not taken: {e}"),
    }
}

/// Serves one miner until it leaves, misbehaves, or the pool stops; returns why it ended.
async fn serve(
    shared: &Shared,
    mut stream: TcpStream,
    mut shutdown: watch::Receiver<bool>,
) -> String {
    let cfg = &shared.config;
    let now = Instant::now();
    let vardiff = Vardiff::new(cfg.vardiff, cfg.start_difficulty, now);
    let mut session_config = ServerConfig::new(shared.next_extranonce1().to_vec());
    session_config.extranonce2_size = cfg.extranonce2_size;
    session_config.start_difficulty = vardiff.difficulty();
    let mut conn = Conn {
        shared,
        session: ServerSession::new(session_config),
        vardiff,
        payout: None,
        sent: VecDeque::new(),
    };
    let mut book = ShareBook::new();
    let mut jobs = shared.generation.subscribe();
    let mut pacer = shared.job_pacer();
    let mut framing = LineBuffer::default();
    let mut buf = [0u8; 2048];
    // Reused for every write, so a new job costs this connection no allocation.
    let mut out = Vec::new();
    let handshake_deadline = now + cfg.handshake_timeout;
    let mut last_heard = now;
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let why = 'serve: loop {
        out.clear();
        conn.session.transmit_into(&mut out);
        if !out.is_empty() && stream.write_all(&out).await.is_err() {
            break 'serve "write failed".into();
        }
        if conn.session.reject_streak() > cfg.max_reject_streak {
            break 'serve format!("{} invalid shares in a row", conn.session.reject_streak());
        }
        tokio::select! {
            read = stream.read(&mut buf) => {
                let n = match read {
                    Ok(0) => break 'serve "closed by the miner".into(),
                    Ok(n) => n,
                    Err(e) => break 'serve format!("read: {e}"),
                };
                last_heard = Instant::now();
                framing.push(&buf[..n]);
                while let Some(line) = framing.next_line() {
                    let line = match line {
                        Ok(l) => l,
                        Err(FrameError::TooLong { max }) => break 'serve format!("line longer than {max} bytes"),
                        Err(e @ FrameError::NotUtf8 { .. }) => {
                            tracing::debug!("{e}");
                            continue;
                        }
                    };
                    match conn.session.handle_line(&line) {
                        Some(ServerEvent::AuthorizeRequest { id, user, .. }) => {
                            let first = !conn.session.is_authorized();
                            match conn.authorize(&user) {
                                Ok(()) => {
                                    conn.session.authorize(id, &user, true);
                                    shared.stats.authorized(&user, Protocol::V1);
                                    if first {
                                        pacer.saw(jobs.borrow_and_update().tips);
                                        conn.send_job();
                                    }
                                }
                                Err(why) => {
                                    tracing::info!(%user, "authorization refused: {why}");
                                    conn.session.authorize(id, &user, false);
                                }
                            }
                        }
                        Some(ServerEvent::Share(c)) => {
                            let job = conn
                                .sent
                                .iter()
                                .find(|j| j.server_job.job_id == c.job.job_id)
                                .cloned();
                            let id = c.id.clone();
                            book.share(shared, &mut conn, id, *c, job).await;
                        }
                        Some(ServerEvent::Rejected { worker, reason, .. }) => {
                            shared.rejected(worker.as_deref(), reason.name());
                        }
                        Some(ServerEvent::SuggestDifficulty(d)) => {
                            if let Some(d) = conn.vardiff.suggest(d, Instant::now()) {
                                conn.apply_difficulty(d);
                            }
                        }
                        Some(ServerEvent::Configured { minimum_difficulty: Some(d), .. }) => {
                            if let Some(d) = conn.vardiff.suggest(d, Instant::now()) {
                                conn.apply_difficulty(d);
                            }
                        }
                        Some(ServerEvent::BadLine(bad)) => tracing::debug!("bad line: {bad}"),
                        _ => {}
                    }
                }
            }
            result = book.next_commit(), if !book.is_empty() => {
                book.committed(shared, &mut conn, result);
            }
            changed = jobs.changed(), if conn.session.is_authorized() => {
                if changed.is_err() {
                    break 'serve "pool stopping".into();
                }
                let tips = jobs.borrow_and_update().tips;
                if pacer.changed(tips, tokio::time::Instant::now()) {
                    conn.send_job();
                }
            }
            () = pacer.wait(), if pacer.due().is_some() => conn.send_job(),
            _ = tick.tick() => {
                let now = Instant::now();
                if !conn.session.is_authorized() && now > handshake_deadline {
                    break 'serve "no subscribe and authorize in time".into();
                }
                if now.duration_since(last_heard) > cfg.idle_timeout {
                    break 'serve "idle".into();
                }
                if conn.session.is_authorized() {
                    if let Some(d) = conn.vardiff.tick(now) {
                        conn.apply_difficulty(d);
                    }
                }
            }
            _ = shutdown.changed() => break 'serve "pool stopping".into(),
        }
    };
    // Shares already queued are committed whatever happens to the socket; wait for them so
    // the pool's counts include them.
    book.settle_all(shared, &mut conn).await;
    why
}

/// The address the Stratum listener is bound to, for logs.
pub(crate) fn describe_listener(addr: SocketAddr) -> String {
    format!("stratum+tcp://{addr}")
}
