//! The client side of a Stratum V1 connection, sans I/O: the miner feeds it lines and the
//! time, and takes out lines to send and events.
//!
//! Handshake: `mining.configure` (when version rolling is wanted) and `mining.subscribe` go
//! out at once; `mining.authorize` (and `mining.suggest_difficulty`, if configured) once the
//! subscription is answered. Jobs carry the difficulty, extranonce and version mask in force
//! when they arrived: `mining.set_difficulty` and `mining.set_extranonce` apply from the
//! next job on.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hashforge_core::{Difficulty, Header, JobParts};
use serde_json::{json, Value};

use crate::message::{
    parse_server_line, BadMessage, Configure, ConfigureResult, FromServer, Id, Request, Response,
    ServerCall, StratumError, Submit, SubscribeResult,
};

/// How the client introduces itself.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// `agent/version` sent with `mining.subscribe`.
    pub agent: String,
    pub user: String,
    pub password: String,
    /// The version bits the miner can roll (`None`: do not ask for version rolling).
    pub version_rolling_mask: Option<u32>,
    /// Sent as `mining.suggest_difficulty` after subscribing.
    pub suggest_difficulty: Option<f64>,
    /// A share unanswered this long is reported as timed out.
    pub submit_timeout: Duration,
}

impl ClientConfig {
    pub fn new(user: impl Into<String>, password: impl Into<String>) -> ClientConfig {
        ClientConfig {
            agent: concat!("hashforge/", env!("CARGO_PKG_VERSION")).to_string(),
            user: user.into(),
            password: password.into(),
            version_rolling_mask: Some(hashforge_core::VersionMask::BIP320.0),
            suggest_difficulty: None,
            submit_timeout: Duration::from_secs(30),
        }
    }
}

/// Work as the pool sent it, with everything needed to build headers from it.
#[derive(Clone, Debug, PartialEq)]
pub struct Job {
    pub job_id: String,
    pub parts: JobParts,
    pub clean_jobs: bool,
    /// The share difficulty this job was sent under.
    pub difficulty: Difficulty,
    pub extranonce1: Vec<u8>,
    pub extranonce2_size: usize,
    /// The negotiated version-rolling mask (0: no rolling).
    pub version_mask: u32,
}

impl Job {
    /// The header for a share on this job (`version` is the full rolled nVersion).
    pub fn header(&self, extranonce2: &[u8], ntime: u32, nonce: u32, version: u32) -> Header {
        self.parts
            .header(&self.extranonce1, extranonce2, ntime, nonce, version)
    }
}

/// A share to submit, as the miner found it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Share {
    pub job_id: String,
    pub extranonce2: Vec<u8>,
    pub ntime: u32,
    pub nonce: u32,
    /// The header's full nVersion; the submit carries `version & mask` when rolling was
    /// negotiated.
    pub version: u32,
}

/// Something the miner should know about.
#[derive(Clone, Debug, PartialEq)]
pub enum ClientEvent {
    /// `mining.configure` answered: the negotiated version mask, if rolling was granted.
    Configured {
        version_mask: Option<u32>,
    },
    Subscribed {
        extranonce1: Vec<u8>,
        extranonce2_size: usize,
    },
    Authorized {
        ok: bool,
        error: Option<StratumError>,
    },
    /// A new job; when `clean_jobs` is set, abandon every older one at once.
    Job(Arc<Job>),
    /// Applies to jobs after the next notify.
    DifficultyChanged(Difficulty),
    ExtranonceChanged {
        extranonce1: Vec<u8>,
        extranonce2_size: usize,
    },
    VersionMaskChanged(u32),
    Reconnect {
        host: Option<String>,
        port: Option<u16>,
        wait_seconds: Option<u64>,
    },
    Message(String),
    /// The verdicts on a share, keyed by the id [`ClientSession::submit`] returned.
    ShareAccepted {
        id: SubmitId,
        share: Share,
    },
    ShareRejected {
        id: SubmitId,
        share: Share,
        error: StratumError,
    },
    ShareTimedOut {
        id: SubmitId,
        share: Share,
    },
    /// The server sent a line that is no message, or a reply nobody asked for.
    ProtocolError(String),
}

/// A submitted share's identity within its session: the JSON-RPC id it went out under,
/// unique for the session's life, so two identical shares (a miner's bug, or a pool's
/// replay test) still get a verdict each.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SubmitId(pub i64);

/// Why a share cannot be sent.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    #[error("not subscribed and authorized yet")]
    NotReady,
    #[error("extranonce2 is {got} bytes, the pool asked for {want}")]
    Extranonce2Size { got: usize, want: usize },
    /// A job id this session never handed out (an SV2 job id is a number).
    #[error("job `{0}` is not one this connection received")]
    UnknownJob(String),
}

#[derive(Clone, Debug)]
enum Pending {
    Configure,
    Subscribe,
    Authorize,
    SuggestDifficulty,
    Submit { share: Share, deadline: Instant },
}

/// One connection's Stratum state, client side.
#[derive(Debug)]
pub struct ClientSession {
    config: ClientConfig,
    next_id: i64,
    pending: Vec<(i64, Pending)>,
    outbox: VecDeque<String>,
    subscription: Option<SubscribeResult>,
    authorized: bool,
    version_mask: u32,
    next_difficulty: Difficulty,
    next_extranonce: Option<(Vec<u8>, usize)>,
    job: Option<Arc<Job>>,
}

impl ClientSession {
    /// A session whose first lines (configure, subscribe) are ready to send.
    pub fn new(config: ClientConfig) -> ClientSession {
        let mut s = ClientSession {
            config,
            next_id: 1,
            pending: Vec::new(),
            outbox: VecDeque::new(),
            subscription: None,
            authorized: false,
            version_mask: 0,
            next_difficulty: Difficulty::ONE,
            next_extranonce: None,
            job: None,
        };
        if let Some(mask) = s.config.version_rolling_mask {
            let c = Configure {
                extensions: vec!["version-rolling".into()],
                version_rolling_mask: Some(mask),
                version_rolling_min_bit_count: Some(2),
                minimum_difficulty: None,
            };
            s.send(Request::Configure(c), Pending::Configure);
        }
        let agent = Some(s.config.agent.clone());
        s.send(
            Request::Subscribe {
                agent,
                session: None,
            },
            Pending::Subscribe,
        );
        s
    }

    fn send(&mut self, request: Request, pending: Pending) -> i64 {
        let id = self.next_id;
        self.next_id += 1;
        self.outbox.push_back(request.to_line(&Id::Num(id)));
        self.pending.push((id, pending));
        id
    }

    /// The next line to send (without newline).
    pub fn poll_transmit(&mut self) -> Option<String> {
        self.outbox.pop_front()
    }

    pub fn is_ready(&self) -> bool {
        self.subscription.is_some() && self.authorized
    }
    /// The newest job.
    pub fn job(&self) -> Option<&Arc<Job>> {
        self.job.as_ref()
    }
    /// The difficulty the next job will carry.
    pub fn next_difficulty(&self) -> Difficulty {
        self.next_difficulty
    }
    /// The negotiated version mask (0: none).
    pub fn version_mask(&self) -> u32 {
        self.version_mask
    }
    /// Shares sent and not yet answered.
    pub fn shares_in_flight(&self) -> usize {
        self.pending
            .iter()
            .filter(|(_, p)| matches!(p, Pending::Submit { .. }))
            .count()
    }

    /// Queues a share for the pool; its verdict will carry the id returned.
    pub fn submit(&mut self, share: Share, now: Instant) -> Result<SubmitId, SubmitError> {
        let Some(sub) = &self.subscription else {
            return Err(SubmitError::NotReady);
        };
        if !self.authorized {
            return Err(SubmitError::NotReady);
        }
        let want = self
            .job
            .as_ref()
            .filter(|j| j.job_id == share.job_id)
            .map_or(sub.extranonce2_size, |j| j.extranonce2_size);
        if share.extranonce2.len() != want {
            return Err(SubmitError::Extranonce2Size {
                got: share.extranonce2.len(),
                want,
            });
        }
        let submit = Submit {
            worker: self.config.user.clone(),
            job_id: share.job_id.clone(),
            extranonce2: share.extranonce2.clone(),
            ntime: share.ntime,
            nonce: share.nonce,
            version_bits: (self.version_mask != 0).then_some(share.version & self.version_mask),
        };
        let deadline = now + self.config.submit_timeout;
        let id = self.send(Request::Submit(submit), Pending::Submit { share, deadline });
        Ok(SubmitId(id))
    }

    /// Shares whose answer is overdue at `now`.
    pub fn handle_timeout(&mut self, now: Instant) -> Vec<ClientEvent> {
        let mut events = Vec::new();
        self.pending.retain(|(id, p)| match p {
            Pending::Submit { share, deadline } if *deadline <= now => {
                events.push(ClientEvent::ShareTimedOut {
                    id: SubmitId(*id),
                    share: share.clone(),
                });
                false
            }
            _ => true,
        });
        events
    }

    /// When [`ClientSession::handle_timeout`] next has something to report.
    pub fn next_timeout(&self) -> Option<Instant> {
        self.pending
            .iter()
            .filter_map(|(_, p)| match p {
                Pending::Submit { deadline, .. } => Some(*deadline),
                _ => None,
            })
            .min()
    }

    /// Reads one line from the server.
    pub fn handle_line(&mut self, line: &str) -> Vec<ClientEvent> {
        match parse_server_line(line) {
            Ok(msg) => self.handle_message(msg),
            Err(BadMessage { error, .. }) => vec![ClientEvent::ProtocolError(error.to_string())],
        }
    }

    /// Takes a message already parsed (a caller that wants the typed parse error of a bad
    /// line parses it itself with `message::parse_server_line`, once).
    pub fn handle_message(&mut self, msg: FromServer) -> Vec<ClientEvent> {
        match msg {
            FromServer::Call { id, call } => self.handle_call(id, call),
            FromServer::Response(r) => self.handle_response(r),
        }
    }

    fn handle_call(&mut self, id: Id, call: ServerCall) -> Vec<ClientEvent> {
        match call {
            ServerCall::Notify(n) => {
                let Some(sub) = &self.subscription else {
                    return vec![ClientEvent::ProtocolError(
                        "mining.notify before the subscription was answered".into(),
                    )];
                };
                if let Some((en1, size)) = self.next_extranonce.take() {
                    self.subscription = Some(SubscribeResult {
                        extranonce1: en1,
                        extranonce2_size: size,
                        ..sub.clone()
                    });
                }
                let sub = self.subscription.as_ref().expect("set above");
                let job = Arc::new(Job {
                    job_id: n.job_id,
                    parts: n.parts,
                    clean_jobs: n.clean_jobs,
                    difficulty: self.next_difficulty,
                    extranonce1: sub.extranonce1.clone(),
                    extranonce2_size: sub.extranonce2_size,
                    version_mask: self.version_mask,
                });
                self.job = Some(Arc::clone(&job));
                vec![ClientEvent::Job(job)]
            }
            ServerCall::SetDifficulty(d) => match Difficulty::new(d) {
                Ok(d) => {
                    self.next_difficulty = d;
                    vec![ClientEvent::DifficultyChanged(d)]
                }
                // Parse at the edge: zero, negative or not a number is no difficulty.
                Err(e) => vec![ClientEvent::ProtocolError(format!(
                    "mining.set_difficulty: {e}"
                ))],
            },
            ServerCall::SetExtranonce {
                extranonce1,
                extranonce2_size,
            } => {
                self.next_extranonce = Some((extranonce1.clone(), extranonce2_size));
                vec![ClientEvent::ExtranonceChanged {
                    extranonce1,
                    extranonce2_size,
                }]
            }
            ServerCall::SetVersionMask(mask) => {
                // The pool may only narrow what the miner offered.
                self.version_mask = mask & self.config.version_rolling_mask.unwrap_or(0);
                vec![ClientEvent::VersionMaskChanged(self.version_mask)]
            }
            ServerCall::Reconnect {
                host,
                port,
                wait_seconds,
            } => {
                vec![ClientEvent::Reconnect {
                    host,
                    port,
                    wait_seconds,
                }]
            }
            ServerCall::ShowMessage(m) => vec![ClientEvent::Message(m)],
            ServerCall::Ping => {
                self.outbox
                    .push_back(Response::ok(id, json!("pong")).to_line());
                Vec::new()
            }
            ServerCall::GetVersion => {
                self.outbox
                    .push_back(Response::ok(id, json!(self.config.agent)).to_line());
                Vec::new()
            }
        }
    }

    fn handle_response(&mut self, r: Response) -> Vec<ClientEvent> {
        let Id::Num(id) = r.id else {
            return vec![ClientEvent::ProtocolError(format!(
                "reply with an id we never sent: {:?}",
                r.id
            ))];
        };
        let Some(pos) = self.pending.iter().position(|(i, _)| *i == id) else {
            return vec![ClientEvent::ProtocolError(format!(
                "reply to unknown request {id}"
            ))];
        };
        let (_, pending) = self.pending.remove(pos);
        let accepted = r.error.is_none() && r.result == Value::Bool(true);
        match pending {
            Pending::Configure => match ConfigureResult::parse(&r.result) {
                Ok(c) => {
                    let offered = self.config.version_rolling_mask.unwrap_or(0);
                    self.version_mask = c.version_rolling.map_or(0, |m| m & offered);
                    vec![ClientEvent::Configured {
                        version_mask: c.version_rolling.map(|m| m & offered),
                    }]
                }
                // A pool without BIP 310 answers with an error: mine without rolling.
                Err(_) => vec![ClientEvent::Configured { version_mask: None }],
            },
            Pending::Subscribe => match SubscribeResult::parse(&r.result) {
                Ok(sub) => {
                    let event = ClientEvent::Subscribed {
                        extranonce1: sub.extranonce1.clone(),
                        extranonce2_size: sub.extranonce2_size,
                    };
                    self.subscription = Some(sub);
                    let (user, password) = (self.config.user.clone(), self.config.password.clone());
                    self.send(Request::Authorize { user, password }, Pending::Authorize);
                    if let Some(d) = self.config.suggest_difficulty {
                        self.send(Request::SuggestDifficulty(d), Pending::SuggestDifficulty);
                    }
                    vec![event]
                }
                Err(e) => vec![ClientEvent::ProtocolError(match r.error {
                    Some(err) => format!("subscription refused: {} ({})", err.message, err.code),
                    None => e.to_string(),
                })],
            },
            Pending::Authorize => {
                self.authorized = accepted;
                vec![ClientEvent::Authorized {
                    ok: accepted,
                    error: r.error,
                }]
            }
            Pending::SuggestDifficulty => Vec::new(),
            Pending::Submit { share, .. } => {
                let id = SubmitId(id);
                if accepted {
                    vec![ClientEvent::ShareAccepted { id, share }]
                } else {
                    let error = r.error.unwrap_or_else(|| StratumError {
                        code: 20,
                        message: "rejected".into(),
                    });
                    vec![ClientEvent::ShareRejected { id, share, error }]
                }
            }
        }
    }
}
