//! The Stratum V2 server on tokio: one task per connection around an
//! `hashforge_sv2::Sv2ServerSession`, beside the V1 server and sharing everything behind it:
//! the job factory (a channel mines the same `PoolJob` a V1 miner with the same payout
//! does), vardiff (one per channel), the extranonce counter, and the share path
//! ([`ShareBook`]: the same block submission, ledger record and answer after the commit).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bitcoin::ScriptBuf;
use hashforge_stratum::RejectReason;
use hashforge_sv2::{
    ChannelKind, CustomJobRequest, OpenRequest, ShareKey, Sv2Error, Sv2ServerConfig,
    Sv2ServerEvent, Sv2ServerSession,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::declare::Refusal;
use crate::jobs::{JobCoinbase, PoolJob};
use crate::server::{payout_for, Answer, ShareBook};
use crate::stats::Protocol;
use crate::vardiff::{power_of_two, Vardiff};
use crate::Shared;

/// What the pool keeps for one open channel.
struct Channel {
    payout: ScriptBuf,
    vardiff: Vardiff,
    /// The pool's jobs sent on it, for the block a share makes.
    sent: VecDeque<Arc<PoolJob>>,
}

struct Conn<'a> {
    shared: &'a Shared,
    session: Sv2ServerSession,
    channels: HashMap<u32, Channel>,
    /// A session call that failed: the connection closes with it.
    failed: Option<Sv2Error>,
}

impl Conn<'_> {
    fn check(&mut self, result: Result<(), Sv2Error>) {
        if let Err(e) = result {
            self.failed.get_or_insert(e);
        }
    }

    fn open(&mut self, r: OpenRequest) {
        let payout = match payout_for(self.shared, &r.user) {
            Ok(p) => p,
            Err(why) => {
                tracing::info!(user = %r.user, "sv2 channel refused: {why}");
                let refused = self
                    .session
                    .refuse_channel(r.request_id, hashforge_sv2::codes::INVALID_USER_IDENTITY);
                self.check(refused);
                return;
            }
        };
        let cfg = &self.shared.config;
        let now = Instant::now();
        // SV2's way: a channel that says its hash rate starts at the difficulty that gives
        // vardiff's share rate at that rate (a power of two, within the pool's bounds);
        // vardiff corrects a wrong claim as it corrects a wrong start.
        let start = Some(f64::from(r.nominal_hash_rate))
            .filter(|h| h.is_finite() && *h > 0.0)
            .map_or(cfg.start_difficulty, |h| {
                power_of_two(h * 60.0 / cfg.vardiff.shares_per_minute.max(1e-9) / 4_294_967_296.0)
            });
        let mut vardiff = Vardiff::new(cfg.vardiff, start, now);
        // The miner's devices take no easier target than its max_target: a floor.
        let floor = r.max_target.difficulty().as_f64();
        if floor > vardiff.difficulty() {
            vardiff.suggest(floor, now);
        }
        let prefix = self.shared.next_extranonce1().to_vec();
        let extranonce = match r.kind {
            // The whole extranonce: the connection's unique four bytes, then zeros.
            ChannelKind::Standard => {
                let mut e = prefix;
                e.resize(4 + cfg.extranonce2_size, 0);
                e
            }
            ChannelKind::Extended { .. } => prefix,
        };
        match self
            .session
            .open_channel(r.request_id, extranonce, vardiff.difficulty())
        {
            Ok(id) => {
                self.shared.stats.authorized(&r.user, Protocol::Sv2);
                self.channels.insert(
                    id,
                    Channel {
                        payout,
                        vardiff,
                        sent: VecDeque::new(),
                    },
                );
                self.send_job(id);
            }
            Err(e) => self.check(Err(e)),
        }
    }

    /// Sends a channel the current job for its payout (if there is one). A miner that
    /// chooses its own work gets none.
    fn send_job(&mut self, channel_id: u32) {
        if self.session.work_selection() {
            return;
        }
        let Some(ch) = self.channels.get_mut(&channel_id) else {
            return;
        };
        let job = match self.shared.jobs.job_for(&ch.payout) {
            Ok(Some(job)) => job,
            Ok(None) => return,
            Err(e) => {
                tracing::error!("cannot build a job: {e}");
                return;
            }
        };
        keep_sent(&mut ch.sent, &job);
        let sent = self.session.notify(channel_id, Arc::clone(&job.server_job));
        self.check(sent);
    }

    /// Sends every channel the current job.
    fn send_jobs(&mut self) {
        let ids: Vec<u32> = self.channels.keys().copied().collect();
        for id in ids {
            self.send_job(id);
        }
    }

    /// A job the miner chose: accepted if it is the one the pool's Job Declarator Server
    /// accepted under its token, pays this channel's payout, and is on the tip.
    fn custom_job(&mut self, r: CustomJobRequest) {
        let (channel_id, request_id) = (r.channel_id, r.request_id);
        let checked = self.check_custom_job(&r);
        let Some(ch) = self.channels.get_mut(&channel_id) else {
            return;
        };
        let result = match checked {
            Ok(job) => {
                keep_sent(&mut ch.sent, &job);
                self.session
                    .accept_custom_job(channel_id, request_id, Arc::clone(&job.server_job))
                    .map(|_| ())
            }
            Err(r) => {
                tracing::info!(code = r.code, "custom job refused: {}", r.why);
                self.session
                    .refuse_custom_job(channel_id, request_id, r.code)
            }
        };
        self.check(result);
    }

    /// Whether a job is a miner's own on a tip that is no longer the pool's.
    fn is_stale_custom(&self, job: &PoolJob) -> bool {
        matches!(job.coinbase, JobCoinbase::Declared { .. })
            && self
                .shared
                .jobs
                .template()
                .is_some_and(|t| t.prev_hash != job.template.prev_hash)
    }

    fn check_custom_job(&self, r: &CustomJobRequest) -> Result<Arc<PoolJob>, Refusal> {
        use hashforge_sv2::codes::custom_job as code;
        let declared = self.shared.declarations.job(&r.token);
        let Some(ch) = self.channels.get(&r.channel_id) else {
            return Err(Refusal {
                code: code::INVALID_MINING_JOB_TOKEN,
                why: "no such channel".into(),
            });
        };
        let Some(declared) = declared.filter(|d| d.payout == ch.payout) else {
            return Err(Refusal {
                code: code::INVALID_MINING_JOB_TOKEN,
                why: "no job this pool accepted for this channel's payout has that token".into(),
            });
        };
        let Some(template) = self.shared.jobs.template() else {
            return Err(Refusal {
                code: code::STALE_CHAIN_TIP,
                why: "the pool has no template yet".into(),
            });
        };
        let job_id = self.shared.jobs.next_job_id();
        let clean = ch
            .sent
            .back()
            .is_none_or(|j| j.template.prev_hash != template.prev_hash);
        crate::declare::custom_job(r, &declared, &template, job_id, clean, unix_now()).map(Arc::new)
    }

    fn apply_difficulty(&mut self, channel_id: u32, d: f64) {
        let result = self.session.set_difficulty(channel_id, d);
        self.check(result);
    }
}

impl Answer for Conn<'_> {
    type Key = ShareKey;

    fn accepted(&mut self, key: ShareKey, credited: f64, work: Option<f64>) {
        let result = self.session.accept(key, credited);
        self.check(result);
        if work.is_none() {
            return;
        }
        let change = self
            .channels
            .get_mut(&key.channel_id)
            .and_then(|ch| ch.vardiff.on_share(Instant::now()));
        if let Some(d) = change {
            self.apply_difficulty(key.channel_id, d);
        }
    }

    fn refused(&mut self, key: ShareKey, reason: &RejectReason) {
        let result = self.session.reject(key, reason);
        self.check(result);
    }
}

/// Keeps a job sent on a channel, for the block a share makes (16 at most; a clean job
/// makes the older ones stale).
fn keep_sent(sent: &mut VecDeque<Arc<PoolJob>>, job: &Arc<PoolJob>) {
    if job.server_job.clean_jobs {
        sent.clear();
    }
    if sent.len() >= 16 {
        sent.pop_front();
    }
    sent.push_back(Arc::clone(job));
}

/// Writes what a session queued (`queue` appends it to `out`); nothing queued, no write.
pub(crate) async fn write_queued(
    stream: &mut TcpStream,
    out: &mut Vec<u8>,
    queue: impl FnOnce(&mut Vec<u8>),
) -> std::io::Result<()> {
    out.clear();
    queue(out);
    if out.is_empty() {
        return Ok(());
    }
    stream.write_all(out).await
}

/// Unix seconds, for the certificate a connection's handshake signs.
pub(crate) fn unix_now() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as u32)
}

/// Serves one SV2 miner (or proxy) until it leaves, misbehaves, or the pool stops.
pub(crate) async fn serve(
    shared: &Shared,
    mut stream: TcpStream,
    mut shutdown: watch::Receiver<bool>,
) -> String {
    let cfg = &shared.config;
    let Some(authority) = shared.sv2_authority.as_ref() else {
        return "no SV2 key".into();
    };
    let session_config = Sv2ServerConfig {
        extranonce_size: cfg.extranonce2_size,
        work_selection: cfg.sv2_jd.is_some(),
        ..Sv2ServerConfig::default()
    };
    let session = match Sv2ServerSession::new(
        session_config,
        authority,
        unix_now(),
        hashforge_sv2::random_seed(),
    ) {
        Ok(s) => s,
        Err(e) => return format!("cannot start the handshake: {e}"),
    };
    let mut conn = Conn {
        shared,
        session,
        channels: HashMap::new(),
        failed: None,
    };
    let mut book: ShareBook<ShareKey> = ShareBook::new();
    let mut jobs = shared.generation.subscribe();
    let mut pacer = shared.job_pacer();
    let mut buf = vec![0u8; 8192];
    let mut out = Vec::new();
    let now = Instant::now();
    let handshake_deadline = now + cfg.handshake_timeout;
    let mut last_heard = now;
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let why = 'serve: loop {
        let queued = |out: &mut Vec<u8>| conn.session.transmit_into(out);
        if write_queued(&mut stream, &mut out, queued).await.is_err() {
            break 'serve "write failed".into();
        }
        if let Some(e) = conn.failed.take() {
            break 'serve format!("{e}");
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
                let events = match conn.session.handle_bytes(&buf[..n]) {
                    Ok(events) => events,
                    Err(e) => {
                        // Whatever the session still has to say (a SetupConnection.Error) goes
                        // out before the close.
                        let queued = |out: &mut Vec<u8>| conn.session.transmit_into(out);
                        let _ = write_queued(&mut stream, &mut out, queued).await;
                        break 'serve format!("{e}");
                    }
                };
                for event in events {
                    match event {
                        Sv2ServerEvent::SetUp { vendor, firmware, .. } => {
                            tracing::debug!(%vendor, %firmware, "sv2 connection set up");
                        }
                        Sv2ServerEvent::OpenChannel(r) => {
                            pacer.saw(jobs.borrow_and_update().tips);
                            conn.open(r);
                        }
                        Sv2ServerEvent::Share { key, candidate } => {
                            let job = conn.channels.get(&key.channel_id).and_then(|ch| {
                                ch.sent
                                    .iter()
                                    .find(|j| j.server_job.job_id == candidate.job.job_id)
                                    .cloned()
                            });
                            if job.as_ref().is_some_and(|j| conn.is_stale_custom(j)) {
                                // The pool's own jobs go stale when it sends the next clean
                                // one; a miner's own job, when the pool's tip moves.
                                let reason = RejectReason::UnknownJob;
                                conn.refused(key, &reason);
                                shared.rejected(Some(&candidate.worker), reason.name());
                                continue;
                            }
                            book.share(shared, &mut conn, key, *candidate, job).await;
                        }
                        Sv2ServerEvent::CustomJob(r) => conn.custom_job(*r),
                        Sv2ServerEvent::Rejected { worker, reason, .. } => {
                            shared.rejected(Some(&worker), reason.name());
                        }
                        Sv2ServerEvent::UpdateChannel { channel_id, max_target, .. } => {
                            let floor = max_target.difficulty().as_f64();
                            let change = conn.channels.get_mut(&channel_id).and_then(|ch| {
                                (floor > ch.vardiff.difficulty())
                                    .then(|| ch.vardiff.suggest(floor, Instant::now()))
                                    .flatten()
                            });
                            if let Some(d) = change {
                                conn.apply_difficulty(channel_id, d);
                            }
                        }
                        Sv2ServerEvent::ChannelClosed { channel_id } => {
                            conn.channels.remove(&channel_id);
                        }
                    }
                }
            }
            result = book.next_commit(), if !book.is_empty() => {
                book.committed(shared, &mut conn, result);
            }
            changed = jobs.changed(), if !conn.channels.is_empty() => {
                if changed.is_err() {
                    break 'serve "pool stopping".into();
                }
                let tips = jobs.borrow_and_update().tips;
                if pacer.changed(tips, tokio::time::Instant::now()) {
                    conn.send_jobs();
                }
            }
            () = pacer.wait(), if pacer.due().is_some() => conn.send_jobs(),
            _ = tick.tick() => {
                let now = Instant::now();
                // The handshake and SetupConnection must come in time; channels need not:
                // a proxy (SRI's translator) sets up at start and opens a channel only when
                // a miner connects to it. Idleness still ends the connection.
                if !conn.session.is_set_up() && now > handshake_deadline {
                    break 'serve "no Noise handshake and SetupConnection in time".into();
                }
                if now.duration_since(last_heard) > cfg.idle_timeout {
                    break 'serve "idle".into();
                }
                let changes: Vec<(u32, f64)> = conn
                    .channels
                    .iter_mut()
                    .filter_map(|(id, ch)| ch.vardiff.tick(now).map(|d| (*id, d)))
                    .collect();
                for (id, d) in changes {
                    conn.apply_difficulty(id, d);
                }
            }
            _ = shutdown.changed() => break 'serve "pool stopping".into(),
        }
    };
    // Shares already queued are committed whatever happens to the socket.
    book.settle_all(shared, &mut conn).await;
    why
}
