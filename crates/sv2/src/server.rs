//! The pool's side of one SV2 connection, sans I/O: bytes in, events and bytes out.
//!
//! The pool decides who may open a channel (and with which extranonce prefix and
//! difficulty), which job each channel mines, and records shares; the session does the
//! protocol: the Noise handshake, SetupConnection, channel bookkeeping, jobs as
//! NewMiningJob (standard channels: a merkle root per channel) or NewExtendedMiningJob with
//! SetNewPrevHash when the tip moves, SetTarget, and every check of a submitted share, with
//! the same `check_share` and the same rule as V1: a share is judged at the difficulty its
//! job was sent under. An accepted share is answered only when the pool calls
//! [`Sv2ServerSession::accept`].

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use binary_sv2::{Seq0255, Str0255, Sv2Option, B032, B064K, U256};
use common_messages_sv2::{has_work_selection, Protocol, SetupConnection};
use hashforge_core::{Difficulty, Target, VersionMask};
use hashforge_stratum::message::Submit;
use hashforge_stratum::{check_share, Id, RejectReason, ServerJob, ShareCandidate};
use mining_sv2::*;

use crate::key::AuthorityKeypair;
use crate::setup::{self, Incoming};
use crate::wire::{Frame, Wire};
use crate::{decode, text, Sv2Error};

/// How the pool runs its SV2 connections.
#[derive(Clone, Debug)]
pub struct Sv2ServerConfig {
    /// The miner's part of the extranonce on an extended channel (the pool's extranonce2
    /// size): the prefix the pool gives each channel and this make up the coinbase's
    /// extranonce space.
    pub extranonce_size: usize,
    /// The version bits miners may roll (BIP 320).
    pub version_mask: u32,
    /// How far past its job's ntime a share's ntime may be.
    pub max_ntime_ahead: u32,
    /// Jobs remembered per channel for late shares.
    pub max_jobs: usize,
    /// How long the certificate of a connection's static key is valid.
    pub cert_validity: Duration,
    /// Whether miners may choose their own work (SetCustomMiningJob with a token from the
    /// pool's Job Declarator Server); a connection asking for it is refused otherwise.
    pub work_selection: bool,
}

impl Default for Sv2ServerConfig {
    fn default() -> Self {
        Sv2ServerConfig {
            extranonce_size: 8,
            version_mask: VersionMask::BIP320.0,
            max_ntime_ahead: hashforge_stratum::MAX_NTIME_AHEAD,
            max_jobs: 16,
            cert_validity: crate::CERT_VALIDITY,
            work_selection: false,
        }
    }
}

/// What kind of channel a miner asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChannelKind {
    /// Header-only mining: the pool picks the whole extranonce; jobs carry a merkle root.
    Standard,
    /// The miner rolls `extranonce_size` bytes of the extranonce itself.
    Extended { min_extranonce_size: u16 },
}

/// A request to open a channel, for the pool to answer with
/// [`Sv2ServerSession::open_channel`] or [`Sv2ServerSession::refuse_channel`].
#[derive(Clone, Debug, PartialEq)]
pub struct OpenRequest {
    pub request_id: u32,
    pub user: String,
    pub kind: ChannelKind,
    /// Hashes per second, as the miner claims.
    pub nominal_hash_rate: f32,
    /// The easiest target the miner's devices take (a floor on the difficulty).
    pub max_target: Target,
}

/// A job the miner chose (SetCustomMiningJob), for the pool to check against what its Job
/// Declarator Server accepted and answer with [`Sv2ServerSession::accept_custom_job`] or
/// [`Sv2ServerSession::refuse_custom_job`]. Hashes and the previous block hash are in
/// internal byte order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CustomJobRequest {
    pub channel_id: u32,
    pub request_id: u32,
    pub token: Vec<u8>,
    pub version: u32,
    pub prev_hash: [u8; 32],
    pub min_ntime: u32,
    pub nbits: u32,
    pub coinbase_tx_version: u32,
    /// The coinbase scriptSig's bytes before the extranonce.
    pub coinbase_prefix: Vec<u8>,
    pub coinbase_tx_input_n_sequence: u32,
    /// The coinbase's outputs, consensus-serialized with their count.
    pub coinbase_tx_outputs: Vec<u8>,
    pub coinbase_tx_locktime: u32,
    pub merkle_path: Vec<[u8; 32]>,
    /// The channel's extranonce prefix (the pool's part) ...
    pub extranonce_prefix: Vec<u8>,
    /// ... and the bytes the miner rolls after it.
    pub extranonce_size: usize,
}

/// Names a share for its answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ShareKey {
    pub channel_id: u32,
    pub sequence_number: u32,
}

/// What the miner's bytes meant, for the pool to act on.
#[derive(Clone, Debug)]
pub enum Sv2ServerEvent {
    SetUp {
        vendor: String,
        firmware: String,
        device_id: String,
    },
    OpenChannel(OpenRequest),
    /// A share that passed every check: record it, then [`Sv2ServerSession::accept`].
    /// Its `id` is meaningless (V1's); `key` names it here.
    Share {
        key: ShareKey,
        candidate: Box<ShareCandidate>,
    },
    /// A share refused (already answered).
    Rejected {
        channel_id: u32,
        worker: String,
        reason: RejectReason,
    },
    /// A job the miner chose: check it, then accept or refuse it.
    CustomJob(Box<CustomJobRequest>),
    UpdateChannel {
        channel_id: u32,
        nominal_hash_rate: f32,
        max_target: Target,
    },
    ChannelClosed {
        channel_id: u32,
    },
}

#[derive(Debug)]
struct SentJob {
    id: u32,
    job: Arc<ServerJob>,
    difficulty: f64,
}

#[derive(Debug)]
struct Channel {
    user: String,
    kind: ChannelKind,
    /// The extranonce the pool gave it: all of it on a standard channel, its prefix on an
    /// extended one.
    prefix: Vec<u8>,
    /// What the miner rolls: 0 on a standard channel.
    extranonce_size: usize,
    difficulty: f64,
    /// The easiest target the miner's devices take: what it is sent never exceeds it.
    max_target: Target,
    jobs: VecDeque<SentJob>,
    seen: HashSet<[u8; 32]>,
    /// The previous block hash (internal order) and nBits the miner was last given.
    tip: Option<([u8; 32], u32)>,
}

/// The SV2 error code for a refused share.
pub fn share_error_code(reason: &RejectReason) -> &'static str {
    match reason {
        RejectReason::UnknownJob => ERROR_CODE_SUBMIT_SHARES_STALE_SHARE,
        RejectReason::Duplicate => ERROR_CODE_SUBMIT_SHARES_DUPLICATE_SHARE,
        RejectReason::LowDifficulty => ERROR_CODE_SUBMIT_SHARES_DIFFICULTY_TOO_LOW,
        RejectReason::BadExtranonce2Size => ERROR_CODE_SUBMIT_SHARES_BAD_EXTRANONCE_SIZE,
        RejectReason::VersionBitsOutsideMask => {
            ERROR_CODE_SUBMIT_SHARES_INVALID_NON_ROLLABLE_VERSION_BIT
        }
        RejectReason::BadNtime | RejectReason::Malformed(_) => {
            ERROR_CODE_SUBMIT_SHARES_INVALID_SHARE
        }
        other => other.name(),
    }
}

/// One SV2 connection's state.
#[derive(Debug)]
pub struct Sv2ServerSession {
    config: Sv2ServerConfig,
    wire: Wire,
    set_up: bool,
    /// The miner chooses its work (negotiated in SetupConnection).
    work_selection: bool,
    channels: HashMap<u32, Channel>,
    requests: HashMap<u32, OpenRequest>,
    next_channel: u32,
    next_job: u32,
    reject_streak: u32,
}

/// Extranonce bytes a work-selecting extended channel may roll, at most (beside the pool's
/// 4-byte prefix, within SV2's 32).
const MAX_CUSTOM_EXTRANONCE: usize = 28;

/// Requests waiting for the pool's answer, at most (more is a flood).
const MAX_OPEN_REQUESTS: usize = 64;
/// Channels on one connection, at most (a proxy opens one per device).
pub const MAX_CHANNELS: usize = 1024;

fn malformed(name: &'static str, reason: impl std::fmt::Display) -> Sv2Error {
    Sv2Error::Malformed {
        name,
        reason: reason.to_string(),
    }
}

impl Sv2ServerSession {
    /// A connection's session; `now` is Unix seconds (the certificate starts then) and
    /// `seed` 32 random bytes for the Noise keys.
    pub fn new(
        config: Sv2ServerConfig,
        authority: &AuthorityKeypair,
        now: u32,
        seed: [u8; 32],
    ) -> Result<Sv2ServerSession, Sv2Error> {
        let wire = Wire::responder(authority, config.cert_validity, now, seed)?;
        Ok(Sv2ServerSession {
            config,
            wire,
            set_up: false,
            work_selection: false,
            channels: HashMap::new(),
            requests: HashMap::new(),
            next_channel: 1,
            next_job: 1,
            reject_streak: 0,
        })
    }

    /// Appends everything there is to send.
    pub fn transmit_into(&mut self, out: &mut Vec<u8>) {
        self.wire.transmit_into(out);
    }

    pub fn is_set_up(&self) -> bool {
        self.set_up
    }

    /// The most extranonce bytes an extended channel may roll: what the pool's coinbases
    /// leave, or for a miner that chooses its work, what fits beside a 4-byte prefix in
    /// SV2's 32.
    fn max_extranonce_size(&self) -> usize {
        if self.work_selection {
            MAX_CUSTOM_EXTRANONCE
        } else {
            self.config.extranonce_size
        }
    }

    /// Whether the miner chooses its own work: the pool sends it no jobs of its own.
    pub fn work_selection(&self) -> bool {
        self.work_selection
    }

    /// The open channels' ids.
    pub fn channel_ids(&self) -> Vec<u32> {
        let mut ids: Vec<u32> = self.channels.keys().copied().collect();
        ids.sort_unstable();
        ids
    }

    /// The user a channel was opened for.
    pub fn user(&self, channel_id: u32) -> Option<&str> {
        self.channels.get(&channel_id).map(|c| c.user.as_str())
    }

    /// The difficulty of the next job on a channel.
    pub fn difficulty(&self, channel_id: u32) -> Option<f64> {
        self.channels.get(&channel_id).map(|c| c.difficulty)
    }

    /// Shares refused in a row (stale ones aside).
    pub fn reject_streak(&self) -> u32 {
        self.reject_streak
    }

    /// Reads bytes from the miner. An error means the connection must close (after
    /// sending what [`Sv2ServerSession::transmit_into`] still has, an error reply perhaps).
    pub fn handle_bytes(&mut self, bytes: &[u8]) -> Result<Vec<Sv2ServerEvent>, Sv2Error> {
        self.wire.push(bytes);
        let frames = self.wire.frames()?;
        let mut events = Vec::new();
        for frame in frames {
            if let Some(e) = self.handle_frame(frame)? {
                events.push(e);
            }
        }
        Ok(events)
    }

    fn handle_frame(&mut self, mut frame: Frame) -> Result<Option<Sv2ServerEvent>, Sv2Error> {
        let unexpected = setup::unexpected(&frame, "pool");
        let (msg_type, payload) =
            match setup::incoming(&mut frame, self.set_up, "pool", "a mining message")? {
                Incoming::Setup(m) => return self.setup(m).map(Some),
                Incoming::Message(t, payload) => (t, payload),
            };
        match msg_type {
            MESSAGE_TYPE_OPEN_STANDARD_MINING_CHANNEL => {
                let m: OpenStandardMiningChannel = decode("OpenStandardMiningChannel", payload)?;
                let request = OpenRequest {
                    request_id: m.request_id,
                    user: text(&m.user_identity),
                    kind: ChannelKind::Standard,
                    nominal_hash_rate: m.nominal_hash_rate,
                    max_target: Target::from_le_bytes(m.max_target.to_array()),
                };
                self.request(request)
            }
            MESSAGE_TYPE_OPEN_EXTENDED_MINING_CHANNEL => {
                let m: OpenExtendedMiningChannel = decode("OpenExtendedMiningChannel", payload)?;
                let request = OpenRequest {
                    request_id: m.request_id,
                    user: text(&m.user_identity),
                    kind: ChannelKind::Extended {
                        min_extranonce_size: m.min_extranonce_size,
                    },
                    nominal_hash_rate: m.nominal_hash_rate,
                    max_target: Target::from_le_bytes(m.max_target.to_array()),
                };
                if usize::from(m.min_extranonce_size) > self.max_extranonce_size() {
                    self.send_open_error(
                        m.request_id,
                        ERROR_CODE_OPEN_MINING_CHANNEL_MIN_EXTRANONCE_SIZE_TOO_LARGE,
                    )?;
                    return Ok(None);
                }
                self.request(request)
            }
            MESSAGE_TYPE_SUBMIT_SHARES_STANDARD => {
                let m: SubmitSharesStandard = decode("SubmitSharesStandard", payload)?;
                self.submit(
                    m.channel_id,
                    m.sequence_number,
                    m.job_id,
                    None,
                    m.ntime,
                    m.nonce,
                    m.version,
                )
                .map(Some)
            }
            MESSAGE_TYPE_SUBMIT_SHARES_EXTENDED => {
                let m: SubmitSharesExtended = decode("SubmitSharesExtended", payload)?;
                let extranonce = m.extranonce.as_bytes().to_vec();
                self.submit(
                    m.channel_id,
                    m.sequence_number,
                    m.job_id,
                    Some(extranonce),
                    m.ntime,
                    m.nonce,
                    m.version,
                )
                .map(Some)
            }
            MESSAGE_TYPE_SET_CUSTOM_MINING_JOB => {
                let m: SetCustomMiningJob = decode("SetCustomMiningJob", payload)?;
                self.custom_job(m)
            }
            MESSAGE_TYPE_UPDATE_CHANNEL => {
                let m: UpdateChannel = decode("UpdateChannel", payload)?;
                let max_target = Target::from_le_bytes(m.maximum_target.to_array());
                let Some(ch) = self.channels.get_mut(&m.channel_id) else {
                    return Err(Sv2Error::UnknownChannel(m.channel_id));
                };
                ch.max_target = max_target;
                Ok(Some(Sv2ServerEvent::UpdateChannel {
                    channel_id: m.channel_id,
                    nominal_hash_rate: m.nominal_hash_rate,
                    max_target,
                }))
            }
            MESSAGE_TYPE_CLOSE_CHANNEL => {
                let m: CloseChannel = decode("CloseChannel", payload)?;
                if self.channels.remove(&m.channel_id).is_none() {
                    return Err(Sv2Error::UnknownChannel(m.channel_id));
                }
                Ok(Some(Sv2ServerEvent::ChannelClosed {
                    channel_id: m.channel_id,
                }))
            }
            _ => Err(unexpected),
        }
    }

    fn setup(&mut self, m: SetupConnection) -> Result<Sv2ServerEvent, Sv2Error> {
        // Custom jobs need the pool's Job Declarator Server.
        let refusal = (has_work_selection(m.flags) && !self.config.work_selection).then_some((
            0b10,
            common_messages_sv2::ERROR_CODE_SETUP_CONNECTION_UNSUPPORTED_FEATURE_FLAGS,
        ));
        setup::answer_setup(&mut self.wire, &m, Protocol::MiningProtocol, refusal)?;
        self.set_up = true;
        self.work_selection = has_work_selection(m.flags);
        Ok(Sv2ServerEvent::SetUp {
            vendor: text(&m.vendor),
            firmware: text(&m.firmware),
            device_id: text(&m.device_id),
        })
    }

    fn request(&mut self, request: OpenRequest) -> Result<Option<Sv2ServerEvent>, Sv2Error> {
        if self.requests.len() >= MAX_OPEN_REQUESTS || self.channels.len() >= MAX_CHANNELS {
            self.send_open_error(
                request.request_id,
                ERROR_CODE_OPEN_MINING_CHANNEL_CHANNEL_CAPACITY_EXHAUSTED,
            )?;
            return Ok(None);
        }
        self.requests.insert(request.request_id, request.clone());
        Ok(Some(Sv2ServerEvent::OpenChannel(request)))
    }

    fn send_open_error(&mut self, request_id: u32, code: &'static str) -> Result<(), Sv2Error> {
        let reply = OpenMiningChannelError {
            request_id,
            error_code: Str0255::try_from(code).map_err(|e| malformed("error code", e))?,
        };
        self.wire.send(
            "OpenMiningChannelError",
            reply,
            MESSAGE_TYPE_OPEN_MINING_CHANNEL_ERROR,
            CHANNEL_BIT_OPEN_MINING_CHANNEL_ERROR,
        )
    }

    /// Refuses an [`OpenRequest`] with an SV2 error code (`unknown-user`, ...).
    pub fn refuse_channel(&mut self, request_id: u32, code: &'static str) -> Result<(), Sv2Error> {
        self.requests.remove(&request_id);
        self.send_open_error(request_id, code)
    }

    /// Opens the channel an [`OpenRequest`] asked for, with the extranonce the pool gives it
    /// (unique in the pool: the whole extranonce of a standard channel, the prefix of an
    /// extended one) and its first difficulty. Returns the channel's id.
    ///
    /// The target sent is never easier than the miner's `max_target` (SV2: a server must
    /// take it or refuse the channel): when the difficulty is below it the miner is told
    /// its own `max_target` and its shares are still judged at `difficulty`.
    pub fn open_channel(
        &mut self,
        request_id: u32,
        extranonce: Vec<u8>,
        difficulty: f64,
    ) -> Result<u32, Sv2Error> {
        let Some(request) = self.requests.remove(&request_id) else {
            return Err(malformed("open_channel", "no such request"));
        };
        let channel_id = self.next_channel;
        self.next_channel = self.next_channel.wrapping_add(1).max(1);
        let target = target_of(difficulty).min(request.max_target).to_le_bytes();
        let target = U256::from(&target);
        let prefix = B032::try_from(&extranonce[..]).map_err(|e| malformed("prefix", e))?;
        let extranonce_size = match request.kind {
            ChannelKind::Standard => {
                self.wire.send(
                    "OpenStandardMiningChannelSuccess",
                    OpenStandardMiningChannelSuccess {
                        request_id,
                        channel_id,
                        target,
                        extranonce_prefix: prefix,
                        group_channel_id: 0,
                    },
                    MESSAGE_TYPE_OPEN_STANDARD_MINING_CHANNEL_SUCCESS,
                    CHANNEL_BIT_OPEN_STANDARD_MINING_CHANNEL_SUCCESS,
                )?;
                0
            }
            ChannelKind::Extended { .. } => {
                // A miner that chooses its work builds its own coinbase, so it may have
                // the room it asks for (a Job Declarator Client shares it among its own
                // miners); the pool's own jobs have the room its coinbases leave.
                let size = match request.kind {
                    ChannelKind::Extended {
                        min_extranonce_size,
                    } if self.work_selection => self
                        .config
                        .extranonce_size
                        .max(usize::from(min_extranonce_size)),
                    _ => self.config.extranonce_size,
                };
                self.wire.send(
                    "OpenExtendedMiningChannelSuccess",
                    OpenExtendedMiningChannelSuccess {
                        request_id,
                        channel_id,
                        target,
                        extranonce_size: size as u16,
                        extranonce_prefix: prefix,
                        group_channel_id: 0,
                    },
                    MESSAGE_TYPE_OPEN_EXTENDED_MINING_CHANNEL_SUCCESS,
                    CHANNEL_BIT_OPEN_EXTENDED_MINING_CHANNEL_SUCCESS,
                )?;
                size
            }
        };
        self.channels.insert(
            channel_id,
            Channel {
                user: request.user,
                kind: request.kind,
                prefix: extranonce,
                extranonce_size,
                difficulty,
                max_target: request.max_target,
                jobs: VecDeque::new(),
                seen: HashSet::new(),
                tip: None,
            },
        );
        Ok(channel_id)
    }

    /// Sends a job on a channel. A new previous block hash (or nBits) goes out as a future
    /// job and the SetNewPrevHash that activates it, which makes every older job stale.
    pub fn notify(&mut self, channel_id: u32, job: Arc<ServerJob>) -> Result<(), Sv2Error> {
        let id = self.next_job;
        self.next_job = self.next_job.wrapping_add(1);
        let max_jobs = self.config.max_jobs.max(1);
        let mask = self.config.version_mask;
        let Some(ch) = self.channels.get_mut(&channel_id) else {
            return Err(Sv2Error::UnknownChannel(channel_id));
        };
        let parts = &job.parts;
        let tip = (parts.prevhash.to_internal(), parts.nbits.0);
        let new_tip = job.clean_jobs || ch.tip != Some(tip);
        if new_tip {
            ch.jobs.clear();
            ch.seen.clear();
        }
        while ch.jobs.len() >= max_jobs {
            ch.jobs.pop_front();
        }
        let min_ntime = Sv2Option::new((!new_tip).then_some(parts.ntime));
        let (prefix, kind) = (ch.prefix.clone(), ch.kind);
        ch.jobs.push_back(SentJob {
            id,
            job: Arc::clone(&job),
            difficulty: ch.difficulty,
        });
        ch.tip = Some(tip);
        match kind {
            ChannelKind::Standard => {
                let root = parts.merkle_root(&prefix, &[]);
                self.wire.send(
                    "NewMiningJob",
                    NewMiningJob {
                        channel_id,
                        job_id: id,
                        min_ntime,
                        version: parts.version,
                        merkle_root: U256::from(&root),
                    },
                    MESSAGE_TYPE_NEW_MINING_JOB,
                    CHANNEL_BIT_NEW_MINING_JOB,
                )?;
            }
            ChannelKind::Extended { .. } => {
                let path: Vec<U256> = parts.merkle_branch.iter().map(U256::from).collect();
                self.wire.send(
                    "NewExtendedMiningJob",
                    NewExtendedMiningJob {
                        channel_id,
                        job_id: id,
                        min_ntime,
                        version: parts.version,
                        version_rolling_allowed: mask != 0,
                        merkle_path: Seq0255::new(path).map_err(|e| malformed("merkle path", e))?,
                        coinbase_tx_prefix: B064K::try_from(&parts.coinb1[..])
                            .map_err(|e| malformed("coinbase prefix", e))?,
                        coinbase_tx_suffix: B064K::try_from(&parts.coinb2[..])
                            .map_err(|e| malformed("coinbase suffix", e))?,
                    },
                    MESSAGE_TYPE_NEW_EXTENDED_MINING_JOB,
                    CHANNEL_BIT_NEW_EXTENDED_MINING_JOB,
                )?;
            }
        }
        if new_tip {
            self.wire.send(
                "SetNewPrevHash",
                SetNewPrevHash {
                    channel_id,
                    job_id: id,
                    prev_hash: U256::from(&tip.0),
                    min_ntime: parts.ntime,
                    nbits: tip.1,
                },
                MESSAGE_TYPE_MINING_SET_NEW_PREV_HASH,
                CHANNEL_BIT_MINING_SET_NEW_PREV_HASH,
            )?;
        }
        Ok(())
    }

    fn custom_job(&mut self, m: SetCustomMiningJob) -> Result<Option<Sv2ServerEvent>, Sv2Error> {
        let (channel_id, request_id) = (m.channel_id, m.request_id);
        if !self.work_selection {
            self.refuse_custom_job(
                channel_id,
                request_id,
                ERROR_CODE_SET_CUSTOM_MINING_JOB_JD_NOT_SUPPORTED,
            )?;
            return Ok(None);
        }
        let channel = self
            .channels
            .get(&channel_id)
            .filter(|c| matches!(c.kind, ChannelKind::Extended { .. }));
        let Some(ch) = channel else {
            self.refuse_custom_job(
                channel_id,
                request_id,
                ERROR_CODE_SET_CUSTOM_MINING_JOB_INVALID_CHANNEL_ID,
            )?;
            return Ok(None);
        };
        Ok(Some(Sv2ServerEvent::CustomJob(Box::new(
            CustomJobRequest {
                channel_id,
                request_id,
                token: m.token.as_bytes().to_vec(),
                version: m.version,
                prev_hash: m.prev_hash.to_array(),
                min_ntime: m.min_ntime,
                nbits: m.nbits,
                coinbase_tx_version: m.coinbase_tx_version,
                coinbase_prefix: m.coinbase_prefix.as_bytes().to_vec(),
                coinbase_tx_input_n_sequence: m.coinbase_tx_input_n_sequence,
                coinbase_tx_outputs: m.coinbase_tx_outputs.as_bytes().to_vec(),
                coinbase_tx_locktime: m.coinbase_tx_locktime,
                merkle_path: m
                    .merkle_path
                    .into_inner()
                    .iter()
                    .map(|h| h.to_array())
                    .collect(),
                extranonce_prefix: ch.prefix.clone(),
                extranonce_size: ch.extranonce_size,
            },
        ))))
    }

    /// Accepts a job the miner chose, as the pool built it from the request (its coinbase
    /// split around the channel's extranonce, as any job's); returns the job id its shares
    /// name. A new previous block hash makes the channel's older jobs stale.
    pub fn accept_custom_job(
        &mut self,
        channel_id: u32,
        request_id: u32,
        job: Arc<ServerJob>,
    ) -> Result<u32, Sv2Error> {
        let id = self.next_job;
        let max_jobs = self.config.max_jobs.max(1);
        let Some(ch) = self.channels.get_mut(&channel_id) else {
            return Err(Sv2Error::UnknownChannel(channel_id));
        };
        self.next_job = self.next_job.wrapping_add(1);
        let tip = (job.parts.prevhash.to_internal(), job.parts.nbits.0);
        if ch.tip != Some(tip) {
            ch.jobs.clear();
            ch.seen.clear();
        }
        while ch.jobs.len() >= max_jobs {
            ch.jobs.pop_front();
        }
        ch.jobs.push_back(SentJob {
            id,
            job,
            difficulty: ch.difficulty,
        });
        ch.tip = Some(tip);
        self.wire.send(
            "SetCustomMiningJobSuccess",
            SetCustomMiningJobSuccess {
                channel_id,
                request_id,
                job_id: id,
            },
            MESSAGE_TYPE_SET_CUSTOM_MINING_JOB_SUCCESS,
            CHANNEL_BIT_SET_CUSTOM_MINING_JOB_SUCCESS,
        )?;
        Ok(id)
    }

    /// Refuses a job the miner chose, with one of SetCustomMiningJob.Error's codes.
    pub fn refuse_custom_job(
        &mut self,
        channel_id: u32,
        request_id: u32,
        code: &str,
    ) -> Result<(), Sv2Error> {
        self.wire.send(
            "SetCustomMiningJobError",
            SetCustomMiningJobError {
                channel_id,
                request_id,
                error_code: Str0255::try_from(code).map_err(|e| malformed("error code", e))?,
            },
            MESSAGE_TYPE_SET_CUSTOM_MINING_JOB_ERROR,
            CHANNEL_BIT_SET_CUSTOM_MINING_JOB_ERROR,
        )
    }

    /// A new difficulty on a channel (SetTarget), and its last job again under a new id so
    /// that it applies at once: as in V1, a share is judged at the difficulty its job was
    /// sent under. The jobs of a miner that chooses its own work cannot be sent again: the
    /// new target applies to them at once, as SetTarget says.
    pub fn set_difficulty(&mut self, channel_id: u32, difficulty: f64) -> Result<(), Sv2Error> {
        let Some(ch) = self.channels.get_mut(&channel_id) else {
            return Err(Sv2Error::UnknownChannel(channel_id));
        };
        ch.difficulty = difficulty;
        if self.work_selection {
            for job in &mut ch.jobs {
                job.difficulty = difficulty;
            }
        }
        let last = ch.jobs.back().map(|j| Arc::clone(&j.job));
        let target = target_of(difficulty).min(ch.max_target).to_le_bytes();
        self.wire.send(
            "SetTarget",
            SetTarget {
                channel_id,
                maximum_target: U256::from(&target),
            },
            MESSAGE_TYPE_SET_TARGET,
            CHANNEL_BIT_SET_TARGET,
        )?;
        if let Some(job) = last.filter(|_| !self.work_selection) {
            // The same work, not clean: the tip has not moved.
            let again = Arc::new(ServerJob::new(job.job_id.clone(), job.parts.clone(), false));
            self.notify(channel_id, again)?;
        }
        Ok(())
    }

    /// Answers a share the pool has recorded; `credited` is the difficulty it counted.
    pub fn accept(&mut self, key: ShareKey, credited: f64) -> Result<(), Sv2Error> {
        if !self.channels.contains_key(&key.channel_id) {
            // Closed by the miner meanwhile: nobody to tell.
            return Ok(());
        }
        self.wire.send(
            "SubmitSharesSuccess",
            SubmitSharesSuccess {
                channel_id: key.channel_id,
                last_sequence_number: key.sequence_number,
                new_submits_accepted_count: 1,
                new_shares_sum: credited.round().max(0.0) as u64,
            },
            MESSAGE_TYPE_SUBMIT_SHARES_SUCCESS,
            CHANNEL_BIT_SUBMIT_SHARES_SUCCESS,
        )
    }

    /// Refuses a share for a reason the pool found (the session's own checks answer
    /// themselves).
    pub fn reject(&mut self, key: ShareKey, reason: &RejectReason) -> Result<(), Sv2Error> {
        if !self.channels.contains_key(&key.channel_id) {
            return Ok(());
        }
        self.wire.send(
            "SubmitSharesError",
            SubmitSharesError {
                channel_id: key.channel_id,
                sequence_number: key.sequence_number,
                error_code: Str0255::try_from(share_error_code(reason))
                    .map_err(|e| malformed("error code", e))?,
            },
            MESSAGE_TYPE_SUBMIT_SHARES_ERROR,
            CHANNEL_BIT_SUBMIT_SHARES_ERROR,
        )
    }

    fn refuse(
        &mut self,
        key: ShareKey,
        worker: String,
        reason: RejectReason,
    ) -> Result<Sv2ServerEvent, Sv2Error> {
        // A stale share is a race with a new block, not misbehaviour.
        if reason != RejectReason::UnknownJob {
            self.reject_streak += 1;
        }
        self.reject(key, &reason)?;
        Ok(Sv2ServerEvent::Rejected {
            channel_id: key.channel_id,
            worker,
            reason,
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn submit(
        &mut self,
        channel_id: u32,
        sequence_number: u32,
        job_id: u32,
        extranonce: Option<Vec<u8>>,
        ntime: u32,
        nonce: u32,
        version: u32,
    ) -> Result<Sv2ServerEvent, Sv2Error> {
        let key = ShareKey {
            channel_id,
            sequence_number,
        };
        let max_ntime_ahead = self.config.max_ntime_ahead;
        let mask = self.config.version_mask;
        let Some(ch) = self.channels.get(&channel_id) else {
            return Err(Sv2Error::UnknownChannel(channel_id));
        };
        let worker = ch.user.clone();
        let extended = matches!(ch.kind, ChannelKind::Extended { .. });
        if extranonce.is_some() != extended {
            return Err(malformed(
                "share",
                "a standard share on an extended channel or the reverse",
            ));
        }
        let Some(sent) = ch.jobs.iter().find(|j| j.id == job_id) else {
            return self.refuse(key, worker, RejectReason::UnknownJob);
        };
        let (job, job_difficulty) = (Arc::clone(&sent.job), sent.difficulty);
        let extranonce2 = extranonce.unwrap_or_default();
        if extranonce2.len() != ch.extranonce_size {
            return self.refuse(key, worker, RejectReason::BadExtranonce2Size);
        }
        if (version ^ job.parts.version) & !mask != 0 {
            return self.refuse(key, worker, RejectReason::VersionBitsOutsideMask);
        }
        if ntime < job.parts.ntime || ntime - job.parts.ntime > max_ntime_ahead {
            return self.refuse(key, worker, RejectReason::BadNtime);
        }
        let prefix = ch.prefix.clone();
        let check = check_share(
            &job.parts,
            &prefix,
            &extranonce2,
            ntime,
            nonce,
            version,
            target_of(job_difficulty),
        );
        if ch.seen.contains(&check.hash) {
            return self.refuse(key, worker, RejectReason::Duplicate);
        }
        if !check.meets_share_target && !check.meets_network_target {
            return self.refuse(key, worker, RejectReason::LowDifficulty);
        }
        if let Some(ch) = self.channels.get_mut(&channel_id) {
            ch.seen.insert(check.hash);
        }
        self.reject_streak = 0;
        let submit = Submit {
            worker: worker.clone(),
            job_id: job.job_id.clone(),
            extranonce2,
            ntime,
            nonce,
            version_bits: Some(version & mask),
        };
        Ok(Sv2ServerEvent::Share {
            key,
            candidate: Box::new(ShareCandidate {
                id: Id::Null,
                worker,
                job,
                submit,
                extranonce1: prefix,
                job_difficulty,
                check,
            }),
        })
    }
}

/// The share target of a difficulty (a difficulty that is no positive number: the
/// easiest target, as V1 does).
fn target_of(difficulty: f64) -> Target {
    Difficulty::new(difficulty)
        .map(Difficulty::to_target)
        .unwrap_or_default()
}
