//! One pool connection: the `stratum` crate's [`ClientSession`] over a tokio `TcpStream`,
//! reconnecting for as long as the pool is configured.
//!
//! Nothing from the pool is trusted: a line too long, garbage, a difficulty that is no
//! number or absurd, a job without an id, a connection cut mid-line, are logged, counted
//! (as [`PoolEventKind::BadInput`]) and answered by recycling the connection.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hashforge_core::Difficulty;
use hashforge_stratum::message::{parse_server_line, MessageError};
use hashforge_stratum::{
    ClientConfig, ClientEvent, ClientSession, FrameError, Job, LineBuffer, Share, SubmitError,
    SubmitId,
};
use hashforge_sv2::{Sv2ClientConfig, Sv2ClientSession};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};

use crate::config::{FailoverConfig, PoolConfig};
use crate::stats::ShareOutcome;

/// A share difficulty above this is no pool's (the network's is about 1.5e14 in 2025).
const MAX_DIFFICULTY: f64 = 1e15;
/// Garbage lines tolerated on one connection before it is recycled.
const MAX_STRIKES: u32 = 5;

pub(crate) enum PoolCommand {
    /// Send `share` if the connection is still at `epoch`; `id` names it in the events that
    /// say what became of it.
    Submit { share: Share, epoch: u64, id: u64 },
}

#[derive(Debug)]
pub(crate) struct PoolEvent {
    pub pool: u64,
    pub kind: PoolEventKind,
}

#[derive(Debug)]
pub(crate) enum PoolEventKind {
    Connected,
    Ready,
    Job {
        job: Arc<Job>,
        epoch: u64,
        received: Instant,
    },
    Difficulty(Difficulty),
    /// What became of the share the miner submitted as `id`: `Sent`, then one verdict; or
    /// `Stale` alone when it was never sent. A connection that ends reports its shares
    /// still in flight as `Lost` before its `Down`.
    Share {
        id: u64,
        outcome: ShareOutcome,
    },
    BadInput(String),
    Down(String),
}

pub(crate) struct PoolTask {
    pub id: u64,
    pub config: PoolConfig,
    pub failover: FailoverConfig,
    /// The devices' expected rates together (`DeviceInfo::expected_rate`; an SV2 channel
    /// tells its pool).
    pub expected: hashforge_core::HashRate,
    pub events: mpsc::Sender<PoolEvent>,
    pub commands: mpsc::Receiver<PoolCommand>,
    pub shutdown: watch::Receiver<bool>,
}

impl PoolTask {
    async fn share(&self, id: u64, outcome: ShareOutcome) {
        self.emit(PoolEventKind::Share { id, outcome }).await;
    }

    async fn emit(&self, kind: PoolEventKind) {
        let _ = self
            .events
            .send(PoolEvent {
                pool: self.id,
                kind,
            })
            .await;
    }

    pub async fn run(mut self) {
        let max_retry =
            FailoverConfig::secs(self.failover.max_retry_secs).max(Duration::from_millis(50));
        let mut backoff = Duration::from_millis(100).min(max_retry);
        let mut epoch = 0u64;
        loop {
            if *self.shutdown.borrow() {
                return;
            }
            let addr = (self.config.url.host.clone(), self.config.url.port);
            let connect_timeout = FailoverConfig::secs(self.failover.connect_timeout_secs);
            let reason = match tokio::time::timeout(connect_timeout, TcpStream::connect(addr)).await
            {
                Ok(Ok(stream)) => {
                    let _ = stream.set_nodelay(true);
                    self.emit(PoolEventKind::Connected).await;
                    let mut in_flight = InFlight::new();
                    let (reason, was_ready) = match self.config.url.sv2 {
                        Some(key) => {
                            self.connection_sv2(stream, key, &mut epoch, &mut in_flight)
                                .await
                        }
                        None => self.connection(stream, &mut epoch, &mut in_flight).await,
                    };
                    if was_ready {
                        backoff = Duration::from_millis(100).min(max_retry);
                    }
                    // What the connection still had in flight gets no answer now: the
                    // manager settles it when it reads `Down`, below.
                    reason
                }
                Ok(Err(e)) => format!("cannot connect: {e}"),
                Err(_) => format!("cannot connect: no answer within {connect_timeout:?}"),
            };
            if *self.shutdown.borrow() {
                return;
            }
            tracing::warn!(pool = %self.config.url, "{reason}; retrying in {backoff:?}");
            self.emit(PoolEventKind::Down(reason)).await;
            // Shares queued for the dead connection: the manager settles them as stale on
            // `Down` (it settles every share its pool task held, as when it aborts one).
            while self.commands.try_recv().is_ok() {}
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = self.shutdown.changed() => return,
            }
            backoff = (backoff * 2).min(max_retry);
        }
    }

    /// Runs one connection until it ends; returns why, and whether it got ready.
    async fn connection(
        &mut self,
        stream: TcpStream,
        epoch: &mut u64,
        in_flight: &mut InFlight,
    ) -> (String, bool) {
        let (mut rd, mut wr) = stream.into_split();
        let mut config = ClientConfig::new(self.config.user.clone(), self.config.password.clone());
        config.submit_timeout = Duration::from_secs(30);
        let mut session = ClientSession::new(config);
        let mut lines = LineBuffer::default();
        let mut buf = vec![0u8; 8192];
        let mut strikes = 0u32;
        let mut ready = false;
        // A new connection never sends shares for an old one's jobs.
        *epoch += 1;
        let stall = FailoverConfig::secs(self.failover.stall_secs).max(Duration::from_millis(100));
        let mut last_heard = Instant::now();
        loop {
            while let Some(line) = session.poll_transmit() {
                let mut bytes = line.into_bytes();
                bytes.push(b'\n');
                if let Err(e) = wr.write_all(&bytes).await {
                    return (format!("write failed: {e}"), ready);
                }
            }
            let deadline = session
                .next_timeout()
                .map_or(last_heard + stall, |t| t.min(last_heard + stall));
            tokio::select! {
                read = rd.read(&mut buf) => {
                    let n = match read {
                        Ok(0) if lines.pending() > 0 => {
                            self.emit(PoolEventKind::BadInput("connection closed in the middle of a line".into())).await;
                            return ("the pool closed the connection mid-line".into(), ready);
                        }
                        Ok(0) => return ("the pool closed the connection".into(), ready),
                        Ok(n) => n,
                        Err(e) => return (format!("read failed: {e}"), ready),
                    };
                    last_heard = Instant::now();
                    lines.push(&buf[..n]);
                    while let Some(line) = lines.next_line() {
                        let line = match line {
                            Ok(l) => l,
                            Err(FrameError::TooLong { max }) => {
                                self.emit(PoolEventKind::BadInput(format!("line longer than {max} bytes"))).await;
                                return (format!("the pool sent a line longer than {max} bytes"), ready);
                            }
                            Err(e) => {
                                strikes += 1;
                                self.emit(PoolEventKind::BadInput(e.to_string())).await;
                                continue;
                            }
                        };
                        let received = Instant::now();
                        let msg = match parse_server_line(&line) {
                            Ok(msg) => msg,
                            Err(bad) => {
                            match bad.error {
                                // Pools add methods of their own: note them and go on.
                                MessageError::UnknownMethod(m) => {
                                    self.emit(PoolEventKind::BadInput(format!("unknown method `{m}`"))).await;
                                }
                                // Work or a difficulty that cannot be used: a broken pool.
                                MessageError::InvalidParams { method, reason } => {
                                    self.emit(PoolEventKind::BadInput(format!("{method}: {reason}"))).await;
                                    return (format!("the pool sent a bad {method} ({reason})"), ready);
                                }
                                e => {
                                    strikes += 1;
                                    self.emit(PoolEventKind::BadInput(e.to_string())).await;
                                }
                            }
                            continue;
                            }
                        };
                        for event in session.handle_message(msg) {
                            match self.on_event(event, epoch, received, in_flight, &mut ready).await {
                                Ok(()) => {}
                                Err(Strike::One) => strikes += 1,
                                Err(Strike::Out(why)) => return (why, ready),
                            }
                        }
                    }
                    if strikes >= MAX_STRIKES {
                        return (format!("{strikes} bad lines from the pool"), ready);
                    }
                }
                cmd = self.commands.recv() => {
                    let send = |share| session.submit(share, Instant::now());
                    if let Err(why) = self.on_command(cmd, *epoch, in_flight, send).await {
                        return (why, ready);
                    }
                }
                _ = tokio::time::sleep_until(deadline.into()) => {
                    if last_heard.elapsed() >= stall {
                        return (format!("nothing from the pool for {stall:?}"), ready);
                    }
                    for event in session.handle_timeout(Instant::now()) {
                        let _ = self.on_event(event, epoch, Instant::now(), in_flight, &mut ready).await;
                    }
                }
                _ = self.shutdown.changed() => return ("shutting down".into(), ready),
            }
        }
    }

    /// Runs one Stratum V2 connection until it ends: the `sv2` crate's client session,
    /// whose events are V1's, so everything after the bytes is the same as
    /// [`PoolTask::connection`]'s. A pool that cannot prove it holds `authority` gets
    /// nothing: the handshake fails before any work or share is exchanged.
    async fn connection_sv2(
        &mut self,
        stream: TcpStream,
        authority: hashforge_sv2::AuthorityPublicKey,
        epoch: &mut u64,
        in_flight: &mut InFlight,
    ) -> (String, bool) {
        let (mut rd, mut wr) = stream.into_split();
        let mut config = Sv2ClientConfig::new(self.config.user.clone(), authority);
        config.submit_timeout = Duration::from_secs(30);
        config.endpoint_host = self.config.url.host.clone();
        config.nominal_hash_rate = self.expected.as_hs() as f32;
        config.endpoint_port = self.config.url.port;
        let mut session =
            match Sv2ClientSession::new(config, unix_now(), hashforge_sv2::random_seed()) {
                Ok(s) => s,
                Err(e) => return (format!("cannot start the SV2 handshake: {e}"), false),
            };
        let mut buf = vec![0u8; 8192];
        let mut out = Vec::new();
        let mut strikes = 0u32;
        let mut ready = false;
        // A new connection never sends shares for an old one's jobs.
        *epoch += 1;
        let stall = FailoverConfig::secs(self.failover.stall_secs).max(Duration::from_millis(100));
        let mut last_heard = Instant::now();
        loop {
            out.clear();
            session.transmit_into(&mut out);
            if !out.is_empty() {
                if let Err(e) = wr.write_all(&out).await {
                    return (format!("write failed: {e}"), ready);
                }
            }
            let deadline = session
                .next_timeout()
                .map_or(last_heard + stall, |t| t.min(last_heard + stall));
            tokio::select! {
                read = rd.read(&mut buf) => {
                    let n = match read {
                        Ok(0) => return ("the pool closed the connection".into(), ready),
                        Ok(n) => n,
                        Err(e) => return (format!("read failed: {e}"), ready),
                    };
                    last_heard = Instant::now();
                    let received = Instant::now();
                    let events = match session.handle_bytes(&buf[..n], unix_now()) {
                        Ok(events) => events,
                        Err(e) => {
                            self.emit(PoolEventKind::BadInput(e.to_string())).await;
                            return (format!("stratum v2: {e}"), ready);
                        }
                    };
                    for event in events {
                        match self.on_event(event, epoch, received, in_flight, &mut ready).await {
                            Ok(()) => {}
                            Err(Strike::One) => strikes += 1,
                            Err(Strike::Out(why)) => return (why, ready),
                        }
                    }
                    if strikes >= MAX_STRIKES {
                        return (format!("{strikes} bad messages from the pool"), ready);
                    }
                }
                cmd = self.commands.recv() => {
                    let send = |share| session.submit(share, Instant::now());
                    if let Err(why) = self.on_command(cmd, *epoch, in_flight, send).await {
                        return (why, ready);
                    }
                }
                _ = tokio::time::sleep_until(deadline.into()) => {
                    if last_heard.elapsed() >= stall {
                        return (format!("nothing from the pool for {stall:?}"), ready);
                    }
                    for event in session.handle_timeout(Instant::now()) {
                        let _ = self.on_event(event, epoch, Instant::now(), in_flight, &mut ready).await;
                    }
                }
                _ = self.shutdown.changed() => return ("shutting down".into(), ready),
            }
        }
    }

    /// A share the manager asks this connection to send: stale when it was found for an
    /// earlier connection (`epoch`), else handed to the session (`send`) and kept in flight;
    /// `Err` when the pool was removed.
    async fn on_command(
        &self,
        cmd: Option<PoolCommand>,
        epoch: u64,
        in_flight: &mut InFlight,
        send: impl FnOnce(Share) -> Result<SubmitId, SubmitError>,
    ) -> Result<(), String> {
        let Some(PoolCommand::Submit {
            share,
            epoch: share_epoch,
            id,
        }) = cmd
        else {
            return Err("pool removed".into());
        };
        if share_epoch != epoch {
            self.share(id, ShareOutcome::Stale).await;
            return Ok(());
        }
        match send(share) {
            Ok(submit) => {
                in_flight.insert(submit, id);
                self.share(id, ShareOutcome::Sent).await;
            }
            Err(e) => {
                tracing::debug!(pool = %self.config.url, "share not sent: {e}");
                self.share(id, ShareOutcome::Stale).await;
            }
        }
        Ok(())
    }

    async fn on_event(
        &self,
        event: ClientEvent,
        epoch: &mut u64,
        received: Instant,
        in_flight: &mut InFlight,
        ready: &mut bool,
    ) -> Result<(), Strike> {
        match event {
            ClientEvent::Configured { version_mask } => {
                tracing::debug!(pool = %self.config.url, "version rolling: {version_mask:08x?}");
            }
            ClientEvent::Subscribed {
                extranonce2_size, ..
            } => {
                if extranonce2_size == 0 || extranonce2_size > 32 {
                    self.emit(PoolEventKind::BadInput(format!(
                        "extranonce2 size {extranonce2_size}"
                    )))
                    .await;
                    return Err(Strike::Out(format!(
                        "the pool asked for an extranonce2 of {extranonce2_size} bytes"
                    )));
                }
            }
            ClientEvent::Authorized { ok: true, .. } => {
                *ready = true;
                tracing::info!(pool = %self.config.url, user = %self.config.user, "authorized");
                self.emit(PoolEventKind::Ready).await;
            }
            ClientEvent::Authorized { ok: false, error } => {
                let why = error.map_or_else(|| "refused".to_string(), |e| e.message);
                return Err(Strike::Out(format!(
                    "the pool refused user `{}`: {why}",
                    self.config.user
                )));
            }
            ClientEvent::Job(job) => {
                if job.job_id.is_empty() || job.job_id.len() > 128 {
                    self.emit(PoolEventKind::BadInput(
                        "a job with an empty or huge id".into(),
                    ))
                    .await;
                    return Err(Strike::One);
                }
                if !sane_difficulty(job.difficulty) {
                    self.emit(PoolEventKind::BadInput(format!(
                        "job difficulty {}",
                        job.difficulty
                    )))
                    .await;
                    return Err(Strike::Out(format!(
                        "the pool set an absurd difficulty ({})",
                        job.difficulty
                    )));
                }
                if job.clean_jobs {
                    *epoch += 1;
                }
                self.emit(PoolEventKind::Job {
                    job,
                    epoch: *epoch,
                    received,
                })
                .await;
            }
            ClientEvent::DifficultyChanged(d) => {
                if !sane_difficulty(d) {
                    self.emit(PoolEventKind::BadInput(format!("difficulty {d}")))
                        .await;
                    return Err(Strike::Out(format!(
                        "the pool set an absurd difficulty ({d})"
                    )));
                }
                self.emit(PoolEventKind::Difficulty(d)).await;
            }
            ClientEvent::ExtranonceChanged { .. } | ClientEvent::VersionMaskChanged(_) => {}
            ClientEvent::Reconnect { .. } => {
                // Following a pool's redirect elsewhere is a way to steal hashrate; reconnect
                // to the configured address instead.
                return Err(Strike::Out("the pool asked for a reconnect".into()));
            }
            ClientEvent::Message(m) => tracing::info!(pool = %self.config.url, "pool says: {m}"),
            ClientEvent::ShareAccepted { id: submit, .. } => {
                if let Some(id) = in_flight.remove(&submit) {
                    self.share(id, ShareOutcome::Accepted).await;
                }
            }
            ClientEvent::ShareRejected {
                id: submit, error, ..
            } => {
                if let Some(id) = in_flight.remove(&submit) {
                    tracing::info!(pool = %self.config.url, "share rejected: {}", error.message);
                    let reason = error.message;
                    self.share(id, ShareOutcome::Rejected { reason }).await;
                }
            }
            ClientEvent::ShareTimedOut { id: submit, .. } => {
                if let Some(id) = in_flight.remove(&submit) {
                    tracing::warn!(pool = %self.config.url, "no answer to a share within the submit timeout");
                    self.share(id, ShareOutcome::Lost).await;
                }
            }
            ClientEvent::ProtocolError(e) => {
                tracing::warn!(pool = %self.config.url, "bad input from the pool: {e}");
                self.emit(PoolEventKind::BadInput(e)).await;
                return Err(Strike::One);
            }
        }
        Ok(())
    }
}

/// The manager's ids of the shares a connection sent and has no verdict for, by the id
/// the session gave each submit.
type InFlight = HashMap<SubmitId, u64>;

enum Strike {
    One,
    Out(String),
}

/// Unix seconds, for checking the validity of an SV2 pool's certificate.
fn unix_now() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as u32)
}

/// A difficulty (positive and finite already) that no pool would set for a miner.
fn sane_difficulty(d: Difficulty) -> bool {
    d.as_f64() <= MAX_DIFFICULTY
}
