//! The server side of a Stratum V1 connection, sans I/O: lines in, events and lines out.
//!
//! The pool owns the socket, assigns each connection a unique extranonce1, decides who may
//! authorize, and records shares; the session does all the Stratum: the handshake, the
//! version-rolling negotiation, job and difficulty bookkeeping (a share is judged at the
//! difficulty its job was sent under), every check of a submitted share, and the replies
//! with the standard error codes. An accepted share is not answered until the pool calls
//! [`ServerSession::accept`], so that it can make the share durable first.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

use hashforge_core::{rolled_version, Difficulty, JobParts, VersionMask};
use serde_json::{json, Value};

use crate::check::{check_share, ShareCheck};
use crate::message::{
    parse_client_line, BadMessage, Configure, ConfigureResult, ErrorCode, FromClient, Id,
    MessageError, Notify, Request, Response, ServerCall, StratumError, Submit, SubscribeResult,
};

/// How a connection is set up.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Unique per connection; the caller guarantees it.
    pub extranonce1: Vec<u8>,
    pub extranonce2_size: usize,
    /// The bits the pool lets miners roll (BIP 320: 0x1fffe000). The negotiated mask is this
    /// AND the miner's.
    pub version_mask: u32,
    /// Difficulty of the first jobs.
    pub start_difficulty: f64,
    /// How far past its job's ntime a share's ntime may be ([`MAX_NTIME_AHEAD`]).
    pub max_ntime_ahead: u32,
    /// Jobs remembered for late shares (older ones are stale).
    pub max_jobs: usize,
}

/// How far past its job's ntime a share's ntime may be: ckpool's window, and cgminer's
/// limit for rolling ntime (it stops after 7000 s, short of the 2 hours past which Bitcoin
/// Core refuses a block). The miner's feed rolls no further.
pub const MAX_NTIME_AHEAD: u32 = 7000;

impl ServerConfig {
    pub fn new(extranonce1: Vec<u8>) -> ServerConfig {
        ServerConfig {
            extranonce1,
            extranonce2_size: 8,
            version_mask: VersionMask::BIP320.0,
            start_difficulty: 1.0,
            max_ntime_ahead: MAX_NTIME_AHEAD,
            max_jobs: 16,
        }
    }
}

/// A job as the pool built it, shared by every connection it goes to; its notify line is
/// rendered once.
#[derive(Debug)]
pub struct ServerJob {
    pub job_id: String,
    pub parts: JobParts,
    pub clean_jobs: bool,
    line: String,
}

impl ServerJob {
    pub fn new(job_id: impl Into<String>, parts: JobParts, clean_jobs: bool) -> ServerJob {
        let notify = Notify {
            job_id: job_id.into(),
            parts,
            clean_jobs,
        };
        let line = ServerCall::Notify(notify.clone()).to_line(&Id::Null);
        ServerJob {
            job_id: notify.job_id,
            parts: notify.parts,
            clean_jobs,
            line,
        }
    }

    /// The `mining.notify` line (without newline).
    pub fn notify_line(&self) -> &str {
        &self.line
    }
}

/// Why a share was refused.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum RejectReason {
    UnknownJob,
    Duplicate,
    LowDifficulty,
    UnauthorizedWorker,
    NotSubscribed,
    Malformed(String),
    BadNtime,
    VersionBitsOutsideMask,
    BadExtranonce2Size,
    /// The pool could not take the share (its ledger is unavailable): the miner keeps it
    /// and is not paid for a share nobody recorded.
    PoolError(String),
}

impl RejectReason {
    pub fn code(&self) -> ErrorCode {
        match self {
            RejectReason::UnknownJob => ErrorCode::JobNotFound,
            RejectReason::Duplicate => ErrorCode::Duplicate,
            RejectReason::LowDifficulty => ErrorCode::LowDifficulty,
            RejectReason::UnauthorizedWorker => ErrorCode::Unauthorized,
            RejectReason::NotSubscribed => ErrorCode::NotSubscribed,
            _ => ErrorCode::Other,
        }
    }

    pub fn message(&self) -> String {
        match self {
            RejectReason::UnknownJob => "Job not found (stale)".into(),
            RejectReason::Duplicate => "Duplicate share".into(),
            RejectReason::LowDifficulty => "Low difficulty share".into(),
            RejectReason::UnauthorizedWorker => "Unauthorized worker".into(),
            RejectReason::NotSubscribed => "Not subscribed".into(),
            RejectReason::Malformed(why) => format!("Invalid params: {why}"),
            RejectReason::BadNtime => "Ntime out of range".into(),
            RejectReason::VersionBitsOutsideMask => {
                "Version bits outside the negotiated mask".into()
            }
            RejectReason::BadExtranonce2Size => "Invalid extranonce2 size".into(),
            RejectReason::PoolError(why) => format!("Pool error, share not recorded: {why}"),
        }
    }

    /// A short name for statistics.
    pub fn name(&self) -> &'static str {
        match self {
            RejectReason::UnknownJob => "stale",
            RejectReason::Duplicate => "duplicate",
            RejectReason::LowDifficulty => "low-difficulty",
            RejectReason::UnauthorizedWorker => "unauthorized",
            RejectReason::NotSubscribed => "not-subscribed",
            RejectReason::Malformed(_) => "malformed",
            RejectReason::BadNtime => "bad-ntime",
            RejectReason::VersionBitsOutsideMask => "bad-version-bits",
            RejectReason::BadExtranonce2Size => "bad-extranonce2",
            RejectReason::PoolError(_) => "pool-error",
        }
    }
}

/// A share that passed every check; the pool records it and then calls
/// [`ServerSession::accept`] with `id`.
#[derive(Clone, Debug)]
pub struct ShareCandidate {
    pub id: Id,
    pub worker: String,
    pub job: Arc<ServerJob>,
    pub submit: Submit,
    pub extranonce1: Vec<u8>,
    /// The difficulty the job was sent under: what the share is credited with.
    pub job_difficulty: f64,
    pub check: ShareCheck,
}

impl ShareCandidate {
    /// Whether the share is a block: submit it before anything else.
    pub fn is_block(&self) -> bool {
        self.check.meets_network_target
    }

    /// Whether the share is work at its job's difficulty: it meets the share target. A block
    /// below the share target (on a chain whose network target is easier, as regtest's is)
    /// is not: hash rates and vardiff must not count it at the job's difficulty.
    pub fn meets_job_difficulty(&self) -> bool {
        self.check.meets_share_target
    }

    /// The difficulty the share is credited with: the job's when it meets the share target;
    /// otherwise (a block below the share target) the network difficulty it was found
    /// against, which is what such a hash stands for on average and never more than the
    /// job's.
    pub fn credited_difficulty(&self) -> f64 {
        if self.meets_job_difficulty() {
            return self.job_difficulty;
        }
        self.check
            .header
            .bits
            .to_target()
            .map_or(self.job_difficulty, |t| {
                t.difficulty().as_f64().min(self.job_difficulty)
            })
    }

    /// The coinbase transaction (non-witness form) of this share.
    pub fn coinbase(&self) -> Vec<u8> {
        self.job
            .parts
            .coinbase(&self.extranonce1, &self.submit.extranonce2)
    }
}

/// What a client line meant, for the pool to act on. Requests that need no decision were
/// answered already.
#[derive(Clone, Debug)]
pub enum ServerEvent {
    Configured {
        version_mask: Option<u32>,
        minimum_difficulty: Option<f64>,
    },
    Subscribed {
        agent: Option<String>,
    },
    /// Answer with [`ServerSession::authorize`].
    AuthorizeRequest {
        id: Id,
        user: String,
        password: String,
    },
    SuggestDifficulty(f64),
    Share(Box<ShareCandidate>),
    /// A share refused (already answered).
    Rejected {
        worker: Option<String>,
        job_id: Option<String>,
        reason: RejectReason,
    },
    /// A line that is no message (answered with error 20 when it had an id).
    BadLine(BadMessage),
}

#[derive(Debug)]
struct SentJob {
    job: Arc<ServerJob>,
    difficulty: f64,
}

/// One connection's Stratum state.
#[derive(Debug)]
pub struct ServerSession {
    config: ServerConfig,
    subscribed: bool,
    extranonce_subscribed: bool,
    authorized: Vec<String>,
    version_mask: Option<u32>,
    difficulty: f64,
    /// Whether the client was told `difficulty` (it assumes 1 until told).
    difficulty_sent: bool,
    jobs: VecDeque<SentJob>,
    seen: HashSet<[u8; 32]>,
    outbox: VecDeque<Outgoing>,
    reject_streak: u32,
}

/// A line waiting to be sent: most are this session's own, but a job's notify line is
/// rendered once and shared by every connection that sends it.
#[derive(Debug)]
enum Outgoing {
    Own(String),
    Job(Arc<ServerJob>),
}

impl Outgoing {
    fn as_str(&self) -> &str {
        match self {
            Outgoing::Own(line) => line,
            Outgoing::Job(job) => job.notify_line(),
        }
    }
}

impl ServerSession {
    pub fn new(config: ServerConfig) -> ServerSession {
        ServerSession {
            difficulty: config.start_difficulty,
            difficulty_sent: false,
            config,
            subscribed: false,
            extranonce_subscribed: false,
            authorized: Vec::new(),
            version_mask: None,
            jobs: VecDeque::new(),
            seen: HashSet::new(),
            outbox: VecDeque::new(),
            reject_streak: 0,
        }
    }

    /// The next line to send (without newline).
    pub fn poll_transmit(&mut self) -> Option<String> {
        self.outbox.pop_front().map(|line| match line {
            Outgoing::Own(line) => line,
            Outgoing::Job(job) => job.notify_line().to_string(),
        })
    }

    /// Appends everything there is to send to `out`, newline-terminated, as it goes on the
    /// wire: the same lines as [`ServerSession::poll_transmit`], without allocating a
    /// `String` for each (a job's shared notify line is copied straight from the job).
    pub fn transmit_into(&mut self, out: &mut Vec<u8>) {
        for line in self.outbox.drain(..) {
            out.extend_from_slice(line.as_str().as_bytes());
            out.push(b'\n');
        }
    }

    pub fn is_subscribed(&self) -> bool {
        self.subscribed
    }
    pub fn is_authorized(&self) -> bool {
        !self.authorized.is_empty()
    }
    /// The workers authorized on this connection.
    pub fn workers(&self) -> &[String] {
        &self.authorized
    }
    /// The negotiated version-rolling mask, if any.
    pub fn version_mask(&self) -> Option<u32> {
        self.version_mask
    }
    /// The difficulty the next job goes out under.
    pub fn difficulty(&self) -> f64 {
        self.difficulty
    }
    pub fn extranonce1(&self) -> &[u8] {
        &self.config.extranonce1
    }
    /// Shares refused in a row (stale ones aside); the pool drops a connection whose streak
    /// grows too long.
    pub fn reject_streak(&self) -> u32 {
        self.reject_streak
    }

    fn reply(&mut self, r: Response) {
        self.outbox.push_back(Outgoing::Own(r.to_line()));
    }

    fn reply_error(&mut self, id: Id, code: ErrorCode, message: String) {
        self.reply(Response::err(id, StratumError::new(code, message)));
    }

    /// Reads one line from the client.
    pub fn handle_line(&mut self, line: &str) -> Option<ServerEvent> {
        match parse_client_line(line) {
            Ok(FromClient::Request { id, request }) => self.handle_request(id, request),
            Ok(FromClient::Response(_)) => None,
            Err(bad) => {
                if let Some(id) = bad.id.clone() {
                    // A submit with malformed params is a rejected share, not just a bad line.
                    self.reply_error(id, ErrorCode::Other, bad.error.to_string());
                }
                if let MessageError::InvalidParams { method, reason } = &bad.error {
                    if method == "mining.submit" {
                        self.reject_streak += 1;
                        return Some(ServerEvent::Rejected {
                            worker: None,
                            job_id: None,
                            reason: RejectReason::Malformed(reason.clone()),
                        });
                    }
                }
                Some(ServerEvent::BadLine(bad))
            }
        }
    }

    fn handle_request(&mut self, id: Id, request: Request) -> Option<ServerEvent> {
        match request {
            Request::Configure(c) => Some(self.configure(id, &c)),
            Request::Subscribe { agent, .. } => {
                self.subscribed = true;
                let result = SubscribeResult {
                    subscriptions: vec![
                        (
                            "mining.set_difficulty".into(),
                            hex::encode(&self.config.extranonce1),
                        ),
                        (
                            "mining.notify".into(),
                            hex::encode(&self.config.extranonce1),
                        ),
                    ],
                    extranonce1: self.config.extranonce1.clone(),
                    extranonce2_size: self.config.extranonce2_size,
                };
                self.reply(Response::ok(id, result.to_value()));
                Some(ServerEvent::Subscribed { agent })
            }
            Request::Authorize { user, password } => {
                if !self.subscribed {
                    self.reply_error(id, ErrorCode::NotSubscribed, "Not subscribed".into());
                    return None;
                }
                Some(ServerEvent::AuthorizeRequest { id, user, password })
            }
            Request::Submit(submit) => Some(self.submit(id, submit)),
            Request::SuggestDifficulty(d) => {
                self.reply(Response::ok(id, json!(true)));
                Some(ServerEvent::SuggestDifficulty(d))
            }
            Request::ExtranonceSubscribe => {
                self.extranonce_subscribed = true;
                self.reply(Response::ok(id, json!(true)));
                None
            }
        }
    }

    fn configure(&mut self, id: Id, c: &Configure) -> ServerEvent {
        let mut result = ConfigureResult::default();
        if c.wants("version-rolling") {
            // BIP 310: a miner without a mask accepts whatever the pool allows; a
            // min-bit-count the pool cannot meet is not a reason to refuse.
            let mask = c.version_rolling_mask.unwrap_or(u32::MAX) & self.config.version_mask;
            self.version_mask = Some(mask);
            result.version_rolling = Some(mask);
        }
        let minimum = c
            .minimum_difficulty
            .filter(|_| c.wants("minimum-difficulty"));
        result.minimum_difficulty = minimum.is_some();
        self.reply(Response::ok(id, result.to_value(c)));
        ServerEvent::Configured {
            version_mask: self.version_mask,
            minimum_difficulty: minimum,
        }
    }

    /// Answers an [`ServerEvent::AuthorizeRequest`].
    pub fn authorize(&mut self, id: Id, user: &str, ok: bool) {
        if ok {
            if !self.authorized.iter().any(|u| u == user) {
                self.authorized.push(user.to_string());
            }
            self.reply(Response::ok(id, json!(true)));
        } else {
            self.reply_error(id, ErrorCode::Unauthorized, "Unauthorized worker".into());
        }
    }

    /// Sends a new difficulty; it applies to the jobs sent after it.
    pub fn set_difficulty(&mut self, difficulty: f64) {
        self.difficulty = difficulty;
        self.difficulty_sent = true;
        self.outbox.push_back(Outgoing::Own(
            ServerCall::SetDifficulty(difficulty).to_line(&Id::Null),
        ));
    }

    /// Sends a job (preceded by the difficulty, the first time). A clean job makes every
    /// earlier job stale.
    ///
    /// A job on another tip than the last one sent (prevhash or nbits) goes out clean even if
    /// the pool built it as a refresh: a connection that missed the new tip's generation (the
    /// pool refreshed before it looked) must still drop its old work at once. Returns whether
    /// it went out clean.
    pub fn notify(&mut self, job: Arc<ServerJob>) -> bool {
        if !self.difficulty_sent {
            self.set_difficulty(self.difficulty);
        }
        let tip = |j: &ServerJob| (j.parts.prevhash, j.parts.nbits);
        let moved = self
            .jobs
            .back()
            .is_some_and(|last| tip(&last.job) != tip(&job));
        let job = if moved && !job.clean_jobs {
            Arc::new(ServerJob::new(job.job_id.clone(), job.parts.clone(), true))
        } else {
            job
        };
        let clean = job.clean_jobs;
        if clean {
            self.jobs.clear();
            self.seen.clear();
        }
        while self.jobs.len() >= self.config.max_jobs.max(1) {
            self.jobs.pop_front();
        }
        self.outbox.push_back(Outgoing::Job(Arc::clone(&job)));
        self.jobs.push_back(SentJob {
            job,
            difficulty: self.difficulty,
        });
        clean
    }

    /// Sends `client.reconnect`.
    pub fn reconnect(
        &mut self,
        host: Option<String>,
        port: Option<u16>,
        wait_seconds: Option<u64>,
    ) {
        self.outbox.push_back(Outgoing::Own(
            ServerCall::Reconnect {
                host,
                port,
                wait_seconds,
            }
            .to_line(&Id::Null),
        ));
    }

    /// Sends `client.show_message`.
    pub fn show_message(&mut self, text: &str) {
        self.outbox.push_back(Outgoing::Own(
            ServerCall::ShowMessage(text.to_string()).to_line(&Id::Null),
        ));
    }

    /// Sends `mining.set_extranonce` if the miner subscribed to it; returns whether it did.
    /// The new values apply to the next job.
    pub fn set_extranonce(&mut self, extranonce1: Vec<u8>, extranonce2_size: usize) -> bool {
        if !self.extranonce_subscribed {
            return false;
        }
        self.config.extranonce1 = extranonce1.clone();
        self.config.extranonce2_size = extranonce2_size;
        self.outbox.push_back(Outgoing::Own(
            ServerCall::SetExtranonce {
                extranonce1,
                extranonce2_size,
            }
            .to_line(&Id::Null),
        ));
        true
    }

    /// Answers a share the pool has recorded.
    pub fn accept(&mut self, id: Id) {
        self.reply(Response::ok(id, Value::Bool(true)));
    }

    /// Refuses a share for a reason the pool found (the session's own checks answer
    /// themselves).
    pub fn reject(&mut self, id: Id, reason: &RejectReason) {
        self.reply_error(id, reason.code(), reason.message());
    }

    fn refuse(
        &mut self,
        id: Id,
        worker: Option<String>,
        job_id: Option<String>,
        reason: RejectReason,
    ) -> ServerEvent {
        // A stale share is a race with a new block, not misbehaviour.
        if reason != RejectReason::UnknownJob {
            self.reject_streak += 1;
        }
        self.reject(id, &reason);
        ServerEvent::Rejected {
            worker,
            job_id,
            reason,
        }
    }

    fn submit(&mut self, id: Id, s: Submit) -> ServerEvent {
        let worker = Some(s.worker.clone());
        let job_id = Some(s.job_id.clone());
        if !self.subscribed {
            return self.refuse(id, worker, job_id, RejectReason::NotSubscribed);
        }
        if !self.authorized.contains(&s.worker) {
            return self.refuse(id, worker, job_id, RejectReason::UnauthorizedWorker);
        }
        let Some(sent) = self.jobs.iter().find(|j| j.job.job_id == s.job_id) else {
            return self.refuse(id, worker, job_id, RejectReason::UnknownJob);
        };
        let (job, job_difficulty) = (Arc::clone(&sent.job), sent.difficulty);
        if s.extranonce2.len() != self.config.extranonce2_size {
            return self.refuse(id, worker, job_id, RejectReason::BadExtranonce2Size);
        }
        let mask = VersionMask(self.version_mask.unwrap_or(0));
        let version = match rolled_version(
            job.parts.version,
            s.version_bits.unwrap_or(job.parts.version & mask.0),
            mask,
        ) {
            Ok(v) => v,
            Err(_) => return self.refuse(id, worker, job_id, RejectReason::VersionBitsOutsideMask),
        };
        if s.ntime < job.parts.ntime || s.ntime - job.parts.ntime > self.config.max_ntime_ahead {
            return self.refuse(id, worker, job_id, RejectReason::BadNtime);
        }
        let share_target = Difficulty::new(job_difficulty)
            .map(Difficulty::to_target)
            .unwrap_or_default();
        let check = check_share(
            &job.parts,
            &self.config.extranonce1,
            &s.extranonce2,
            s.ntime,
            s.nonce,
            version,
            share_target,
        );
        if self.seen.contains(&check.hash) {
            return self.refuse(id, worker, job_id, RejectReason::Duplicate);
        }
        if !check.meets_share_target && !check.meets_network_target {
            return self.refuse(id, worker, job_id, RejectReason::LowDifficulty);
        }
        self.seen.insert(check.hash);
        self.reject_streak = 0;
        ServerEvent::Share(Box::new(ShareCandidate {
            id,
            worker: s.worker.clone(),
            job,
            submit: s,
            extranonce1: self.config.extranonce1.clone(),
            job_difficulty,
            check,
        }))
    }
}
