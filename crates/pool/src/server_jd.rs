//! The pool's Job Declarator Server on tokio (`--sv2-jd`): one task per connection around an
//! `hashforge_sv2::Sv2JdServerSession`, judging declared jobs with [`crate::declare`] and
//! keeping the accepted ones in [`crate::declare::Declarations`] for the mining connections
//! that mine them. It takes the same authority key as the SV2 mining endpoint.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bitcoin::{consensus, Amount, TxOut};
use hashforge_sv2::{Declaration, JdServerEvent, Solution, Sv2Error, Sv2JdServerSession};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::declare::{Checked, DeclaredJob, Refusal};
use crate::server::{payout_for, submit_pushed_block};
use crate::server_sv2::{unix_now, write_queued};
use crate::Shared;

struct Conn<'a> {
    shared: &'a Shared,
    session: Sv2JdServerSession,
    /// Declarations waiting for the transactions asked for.
    waiting: HashMap<u32, Checked>,
    /// The last job accepted on this connection: what a PushSolution is for.
    last: Option<std::sync::Arc<DeclaredJob>>,
    /// When this connection asked for its tokens in the last minute.
    allocations: std::collections::VecDeque<Instant>,
}

/// Tokens one connection may ask for in a minute (SRI's JDC asks for one a template);
/// more is a flood, and the connection closes.
const MAX_ALLOCATIONS_PER_MINUTE: usize = 120;

impl Conn<'_> {
    fn allocate(&mut self, request_id: u32, user: &str) -> Result<(), String> {
        let now = Instant::now();
        while self
            .allocations
            .front()
            .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(60))
        {
            self.allocations.pop_front();
        }
        if self.allocations.len() >= MAX_ALLOCATIONS_PER_MINUTE {
            return Err(format!(
                "more than {MAX_ALLOCATIONS_PER_MINUTE} token requests in a minute"
            ));
        }
        self.allocations.push_back(now);
        let payout = payout_for(self.shared, user)?;
        let token = self.shared.declarations.allocate(user, payout.clone());
        // The pool's payout output first, at 0 sat: the client puts the block's value there.
        let outputs = consensus::serialize(&vec![TxOut {
            value: Amount::ZERO,
            script_pubkey: payout,
        }]);
        self.session
            .allocated(request_id, &token, &outputs)
            .map_err(|e| e.to_string())
    }

    fn declare(&mut self, d: Declaration) -> Result<(), Sv2Error> {
        let request_id = d.request_id;
        let Some(template) = self.shared.jobs.template() else {
            return self.refused(
                request_id,
                Refusal {
                    code: hashforge_sv2::codes::declare::STALE_CHAIN_TIP,
                    why: "the pool has no template yet".into(),
                },
            );
        };
        match self
            .shared
            .declarations
            .check(d, &template, self.shared.network)
        {
            Err(r) => self.refused(request_id, r),
            Ok(checked) => {
                let missing = checked.missing();
                if missing.is_empty() {
                    return self.finish(checked);
                }
                self.session.ask_transactions(request_id, &missing)?;
                self.waiting.insert(request_id, checked);
                Ok(())
            }
        }
    }

    fn transactions(&mut self, request_id: u32, sent: &[Vec<u8>]) -> Result<(), Sv2Error> {
        let Some(mut checked) = self.waiting.remove(&request_id) else {
            return Ok(());
        };
        match checked.provide(sent) {
            Ok(()) => self.finish(checked),
            Err(r) => self.refused(request_id, r),
        }
    }

    fn finish(&mut self, checked: Checked) -> Result<(), Sv2Error> {
        let request_id = checked.declaration.request_id;
        let token = checked.declaration.token.clone();
        let job = match checked.complete() {
            Ok(job) => job,
            Err(r) => return self.refused(request_id, r),
        };
        let (user, count) = (job.user.clone(), job.transactions.len());
        let job = std::sync::Arc::new(job);
        match self
            .shared
            .declarations
            .accept(&token, std::sync::Arc::clone(&job))
        {
            Some(new_token) => {
                tracing::info!(%user, height = job.height, transactions = count, "declared job accepted");
                self.last = Some(job);
                self.session.declared(request_id, &new_token)
            }
            None => self.refused(
                request_id,
                Refusal {
                    code: hashforge_sv2::codes::declare::INVALID_MINING_JOB_TOKEN,
                    why: "the token was used or expired meanwhile".into(),
                },
            ),
        }
    }

    fn refused(&mut self, request_id: u32, r: Refusal) -> Result<(), Sv2Error> {
        tracing::info!(code = r.code, "declared job refused: {}", r.why);
        self.session.refuse(request_id, r.code, &r.why)
    }

    /// A block the client found on its last declared job: the pool submits it too.
    async fn solution(&mut self, s: Solution) {
        let Some(job) = self.last.clone() else {
            tracing::info!("PushSolution before any declared job: ignored");
            return;
        };
        let block = match crate::declare::solution_block(&job, &s) {
            Ok(b) => b,
            Err(why) => {
                tracing::warn!(user = %job.user, "PushSolution refused: {why}");
                return;
            }
        };
        let from = format!("pushed by {}'s job declarator client", job.user);
        submit_pushed_block(self.shared, &block, job.height, &from).await;
    }
}

/// Serves one Job Declarator Client until it leaves, misbehaves, or the pool stops.
pub(crate) async fn serve(
    shared: &Shared,
    mut stream: TcpStream,
    mut shutdown: watch::Receiver<bool>,
) -> String {
    let cfg = &shared.config;
    let Some(authority) = shared.sv2_authority.as_ref() else {
        return "no SV2 key".into();
    };
    let session = match Sv2JdServerSession::new(
        authority,
        hashforge_sv2::CERT_VALIDITY,
        unix_now(),
        hashforge_sv2::random_seed(),
    ) {
        Ok(s) => s,
        Err(e) => return format!("cannot start the handshake: {e}"),
    };
    let mut conn = Conn {
        shared,
        session,
        waiting: HashMap::new(),
        last: None,
        allocations: Default::default(),
    };
    let mut buf = vec![0u8; 16 * 1024];
    let mut out = Vec::new();
    let now = Instant::now();
    let handshake_deadline = now + cfg.handshake_timeout;
    let mut last_heard = now;
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let why = 'serve: loop {
        let queued = |out: &mut Vec<u8>| conn.session.transmit_into(out);
        if write_queued(&mut stream, &mut out, queued).await.is_err() {
            break 'serve "write failed".to_string();
        }
        tokio::select! {
            read = stream.read(&mut buf) => {
                let n = match read {
                    Ok(0) => break 'serve "closed by the client".into(),
                    Ok(n) => n,
                    Err(e) => break 'serve format!("read: {e}"),
                };
                last_heard = Instant::now();
                let events = match conn.session.handle_bytes(&buf[..n]) {
                    Ok(events) => events,
                    Err(e) => {
                        let queued = |out: &mut Vec<u8>| conn.session.transmit_into(out);
                        let _ = write_queued(&mut stream, &mut out, queued).await;
                        break 'serve format!("{e}");
                    }
                };
                for event in events {
                    let result = match event {
                        JdServerEvent::SetUp { vendor, declare_tx_data, .. } => {
                            tracing::debug!(%vendor, declare_tx_data, "job declarator client set up");
                            Ok(())
                        }
                        JdServerEvent::AllocateToken { request_id, user } => {
                            if let Err(why) = conn.allocate(request_id, &user) {
                                break 'serve format!("token for `{user}` refused: {why}");
                            }
                            Ok(())
                        }
                        JdServerEvent::Declare(d) => conn.declare(d),
                        JdServerEvent::Transactions { request_id, transactions } => {
                            conn.transactions(request_id, &transactions)
                        }
                        JdServerEvent::Solution(s) => {
                            conn.solution(s).await;
                            Ok(())
                        }
                    };
                    if let Err(e) = result {
                        break 'serve e.to_string();
                    }
                }
            }
            _ = tick.tick() => {
                let now = Instant::now();
                if !conn.session.is_set_up() && now > handshake_deadline {
                    break 'serve "no Noise handshake and SetupConnection in time".into();
                }
                if now.duration_since(last_heard) > cfg.idle_timeout {
                    break 'serve "idle".into();
                }
            }
            _ = shutdown.changed() => break 'serve "pool stopping".into(),
        }
    };
    why
}
