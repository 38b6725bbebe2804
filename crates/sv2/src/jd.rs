//! The pool's side of one Job Declaration connection (the Job Declarator Server, JDS), sans
//! I/O: bytes in, events and bytes out.
//!
//! A Job Declarator Client (JDC, on the miner's side) asks for a token
//! (AllocateMiningJobToken), declares the job it wants to mine under it (DeclareMiningJob:
//! its coinbase and the wtxids of its transactions), sends the transactions the pool asks
//! for (ProvideMissingTransactions), and, once the pool accepted the job
//! (DeclareMiningJob.Success with a new token), mines it on its mining connection through
//! SetCustomMiningJob with that token. It pushes a block it found here too (PushSolution).
//!
//! The session does the protocol (the handshake, SetupConnection for the job declaration
//! protocol, each message decoded exactly, each answer matched to a request the client
//! made); the pool decides (which token, whether a declared job pays it, which
//! transactions it lacks).

use std::collections::HashMap;
use std::time::Duration;

use binary_sv2::{Seq064K, Str0255, B0255, B064K};
use common_messages_sv2::{has_declare_tx_data, Protocol, SetupConnection};
use job_declaration_sv2::*;

use crate::key::AuthorityKeypair;
use crate::setup::{self, Incoming};
use crate::wire::{Frame, Wire, MAX_SV2_FRAME};
use crate::{decode, text, Sv2Error};

/// A job a client declared, for the pool to judge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Declaration {
    pub request_id: u32,
    /// The token AllocateMiningJobToken.Success gave.
    pub token: Vec<u8>,
    /// The block header's version.
    pub version: u32,
    /// The coinbase up to its extranonce, BIP 141 fields included (not stripped).
    pub coinbase_prefix: Vec<u8>,
    /// The coinbase after its extranonce.
    pub coinbase_suffix: Vec<u8>,
    /// The block's other transactions, by wtxid (internal byte order), in block order.
    pub wtxids: Vec<[u8; 32]>,
    pub excess_data: Vec<u8>,
}

/// A block the client found on its last declared job (PushSolution).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Solution {
    /// The whole extranonce of the coinbase.
    pub extranonce: Vec<u8>,
    /// Internal byte order.
    pub prev_hash: [u8; 32],
    pub nonce: u32,
    pub ntime: u32,
    pub nbits: u32,
    pub version: u32,
}

/// What the client's bytes meant, for the pool to act on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JdServerEvent {
    SetUp {
        vendor: String,
        firmware: String,
        /// The client will send transactions it is asked for (full-template mode).
        declare_tx_data: bool,
    },
    /// Answer with [`Sv2JdServerSession::allocated`].
    AllocateToken {
        request_id: u32,
        user: String,
    },
    /// Answer with [`Sv2JdServerSession::declared`], [`Sv2JdServerSession::refuse`] or
    /// [`Sv2JdServerSession::ask_transactions`].
    Declare(Declaration),
    /// The transactions asked for, in the order asked (their count checked here).
    Transactions {
        request_id: u32,
        transactions: Vec<Vec<u8>>,
    },
    Solution(Solution),
}

/// Token requests waiting for the pool's answer, at most (more is a flood).
const MAX_PENDING: usize = 64;

fn malformed(name: &'static str, reason: impl std::fmt::Display) -> Sv2Error {
    Sv2Error::Malformed {
        name,
        reason: reason.to_string(),
    }
}

/// One Job Declaration connection's state.
#[derive(Debug)]
pub struct Sv2JdServerSession {
    wire: Wire,
    set_up: bool,
    /// Token requests not answered yet.
    allocating: Vec<u32>,
    /// Declarations not answered yet.
    declaring: Vec<u32>,
    /// Declarations whose transactions were asked for, and how many.
    asked: HashMap<u32, usize>,
}

impl Sv2JdServerSession {
    /// A connection's session; `now` is Unix seconds (the certificate starts then) and
    /// `seed` 32 random bytes for the Noise keys.
    pub fn new(
        authority: &AuthorityKeypair,
        cert_validity: Duration,
        now: u32,
        seed: [u8; 32],
    ) -> Result<Sv2JdServerSession, Sv2Error> {
        let mut wire = Wire::responder(authority, cert_validity, now, seed)?;
        // A declaration of a full block (its wtxids, or its transactions when the pool asks
        // for them) is megabytes.
        wire.set_max_frame(MAX_SV2_FRAME);
        Ok(Sv2JdServerSession {
            wire,
            set_up: false,
            allocating: Vec::new(),
            declaring: Vec::new(),
            asked: HashMap::new(),
        })
    }

    /// Appends everything there is to send.
    pub fn transmit_into(&mut self, out: &mut Vec<u8>) {
        self.wire.transmit_into(out);
    }

    pub fn is_set_up(&self) -> bool {
        self.set_up
    }

    /// Reads bytes from the client. An error means the connection must close (after
    /// sending what [`Sv2JdServerSession::transmit_into`] still has).
    pub fn handle_bytes(&mut self, bytes: &[u8]) -> Result<Vec<JdServerEvent>, Sv2Error> {
        self.wire.push(bytes);
        let frames = self.wire.frames()?;
        let mut events = Vec::new();
        for frame in frames {
            events.push(self.handle_frame(frame)?);
        }
        Ok(events)
    }

    fn handle_frame(&mut self, mut frame: Frame) -> Result<JdServerEvent, Sv2Error> {
        const ROLE: &str = "job declarator server";
        let unexpected = setup::unexpected(&frame, ROLE);
        let (msg_type, payload) =
            match setup::incoming(&mut frame, self.set_up, ROLE, "a job declaration message")? {
                Incoming::Setup(m) => return self.setup(m),
                Incoming::Message(t, payload) => (t, payload),
            };
        match msg_type {
            MESSAGE_TYPE_ALLOCATE_MINING_JOB_TOKEN => {
                let m: AllocateMiningJobToken = decode("AllocateMiningJobToken", payload)?;
                if self.allocating.len() >= MAX_PENDING {
                    return Err(malformed(
                        "AllocateMiningJobToken",
                        "too many requests unanswered",
                    ));
                }
                self.allocating.push(m.request_id);
                Ok(JdServerEvent::AllocateToken {
                    request_id: m.request_id,
                    user: text(&m.user_identifier),
                })
            }
            MESSAGE_TYPE_DECLARE_MINING_JOB => {
                let m: DeclareMiningJob = decode("DeclareMiningJob", payload)?;
                if self.declaring.len() >= MAX_PENDING {
                    return Err(malformed(
                        "DeclareMiningJob",
                        "too many requests unanswered",
                    ));
                }
                if self.declaring.contains(&m.request_id) {
                    return Err(malformed("DeclareMiningJob", "a request id still in use"));
                }
                self.declaring.push(m.request_id);
                Ok(JdServerEvent::Declare(Declaration {
                    request_id: m.request_id,
                    token: m.mining_job_token.as_bytes().to_vec(),
                    version: m.version,
                    coinbase_prefix: m.coinbase_tx_prefix.as_bytes().to_vec(),
                    coinbase_suffix: m.coinbase_tx_suffix.as_bytes().to_vec(),
                    wtxids: m
                        .wtxid_list
                        .into_inner()
                        .iter()
                        .map(|w| w.to_array())
                        .collect(),
                    excess_data: m.excess_data.as_bytes().to_vec(),
                }))
            }
            MESSAGE_TYPE_PROVIDE_MISSING_TRANSACTIONS_SUCCESS => {
                let m: ProvideMissingTransactionsSuccess =
                    decode("ProvideMissingTransactionsSuccess", payload)?;
                let Some(count) = self.asked.remove(&m.request_id) else {
                    return Err(malformed(
                        "ProvideMissingTransactionsSuccess",
                        format!("no transactions were asked for request {}", m.request_id),
                    ));
                };
                let transactions: Vec<Vec<u8>> = m
                    .transaction_list
                    .into_inner()
                    .iter()
                    .map(|t| t.as_bytes().to_vec())
                    .collect();
                if transactions.len() != count {
                    return Err(malformed(
                        "ProvideMissingTransactionsSuccess",
                        format!("{} transactions for {count} asked", transactions.len()),
                    ));
                }
                Ok(JdServerEvent::Transactions {
                    request_id: m.request_id,
                    transactions,
                })
            }
            MESSAGE_TYPE_PUSH_SOLUTION => {
                let m: PushSolution = decode("PushSolution", payload)?;
                Ok(JdServerEvent::Solution(Solution {
                    extranonce: m.extranonce.as_bytes().to_vec(),
                    prev_hash: m.prev_hash.to_array(),
                    nonce: m.nonce,
                    ntime: m.ntime,
                    nbits: m.nbits,
                    version: m.version,
                }))
            }
            _ => Err(unexpected),
        }
    }

    fn setup(&mut self, m: SetupConnection) -> Result<JdServerEvent, Sv2Error> {
        setup::answer_setup(&mut self.wire, &m, Protocol::JobDeclarationProtocol, None)?;
        self.set_up = true;
        Ok(JdServerEvent::SetUp {
            vendor: text(&m.vendor),
            firmware: text(&m.firmware),
            declare_tx_data: has_declare_tx_data(m.flags),
        })
    }

    fn answered(list: &mut Vec<u32>, request_id: u32, what: &'static str) -> Result<(), Sv2Error> {
        let Some(at) = list.iter().position(|r| *r == request_id) else {
            return Err(malformed(what, format!("no request {request_id} waits")));
        };
        list.swap_remove(at);
        Ok(())
    }

    /// Answers a token request: `token` names the job the client may declare, and
    /// `coinbase_outputs` (consensus-serialized, CompactSize-prefixed) are the outputs its
    /// coinbase must carry, the first being the pool's payout.
    pub fn allocated(
        &mut self,
        request_id: u32,
        token: &[u8],
        coinbase_outputs: &[u8],
    ) -> Result<(), Sv2Error> {
        Self::answered(&mut self.allocating, request_id, "allocated")?;
        self.wire.send(
            "AllocateMiningJobTokenSuccess",
            AllocateMiningJobTokenSuccess {
                request_id,
                mining_job_token: B0255::try_from(token).map_err(|e| malformed("token", e))?,
                coinbase_outputs: B064K::try_from(coinbase_outputs)
                    .map_err(|e| malformed("coinbase outputs", e))?,
            },
            MESSAGE_TYPE_ALLOCATE_MINING_JOB_TOKEN_SUCCESS,
            CHANNEL_BIT_ALLOCATE_MINING_JOB_TOKEN_SUCCESS,
        )
    }

    /// Accepts a declared job: `new_token` is what the client's SetCustomMiningJob names it
    /// by.
    pub fn declared(&mut self, request_id: u32, new_token: &[u8]) -> Result<(), Sv2Error> {
        Self::answered(&mut self.declaring, request_id, "declared")?;
        self.wire.send(
            "DeclareMiningJobSuccess",
            DeclareMiningJobSuccess {
                request_id,
                new_mining_job_token: B0255::try_from(new_token)
                    .map_err(|e| malformed("token", e))?,
            },
            MESSAGE_TYPE_DECLARE_MINING_JOB_SUCCESS,
            CHANNEL_BIT_DECLARE_MINING_JOB_SUCCESS,
        )
    }

    /// Refuses a declared job with one of the protocol's error codes and a reason.
    pub fn refuse(&mut self, request_id: u32, code: &str, details: &str) -> Result<(), Sv2Error> {
        Self::answered(&mut self.declaring, request_id, "refuse")?;
        self.asked.remove(&request_id);
        let details = &details.as_bytes()[..details.len().min(60_000)];
        self.wire.send(
            "DeclareMiningJobError",
            DeclareMiningJobError {
                request_id,
                error_code: Str0255::try_from(code).map_err(|e| malformed("error code", e))?,
                error_details: B064K::try_from(details)
                    .map_err(|e| malformed("error details", e))?,
            },
            MESSAGE_TYPE_DECLARE_MINING_JOB_ERROR,
            CHANNEL_BIT_DECLARE_MINING_JOB_ERROR,
        )
    }

    /// Asks for the transactions of a declaration the pool does not know (positions in its
    /// wtxid list); the answer comes as [`JdServerEvent::Transactions`].
    pub fn ask_transactions(&mut self, request_id: u32, positions: &[u16]) -> Result<(), Sv2Error> {
        if !self.declaring.contains(&request_id) {
            return Err(malformed(
                "ask_transactions",
                format!("no declaration {request_id} waits"),
            ));
        }
        self.asked.insert(request_id, positions.len());
        self.wire.send(
            "ProvideMissingTransactions",
            ProvideMissingTransactions {
                request_id,
                unknown_tx_position_list: Seq064K::new(positions.to_vec())
                    .map_err(|e| malformed("positions", format!("{e:?}")))?,
            },
            MESSAGE_TYPE_PROVIDE_MISSING_TRANSACTIONS,
            CHANNEL_BIT_PROVIDE_MISSING_TRANSACTIONS,
        )
    }
}
