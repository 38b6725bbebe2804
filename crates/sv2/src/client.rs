//! The miner's side of an SV2 connection, sans I/O: one extended channel, whose jobs become
//! the V1 crate's [`Job`]s (an extended job is V1's work exactly: coinbase halves around an
//! extranonce prefix and the miner's own extranonce, a merkle path, a version that may roll)
//! and whose answers become the V1 crate's [`ClientEvent`]s, so the miner's feed, devices
//! and bookkeeping run unchanged.
//!
//! The pool is authenticated: the handshake fails with [`Sv2Error::WrongKey`] unless its
//! certificate is signed by the authority key the miner was configured with.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use binary_sv2::{Str0255, U256};
use common_messages_sv2::{
    Protocol, Reconnect, SetupConnection, SetupConnectionError, SetupConnectionSuccess,
    MESSAGE_TYPE_RECONNECT, MESSAGE_TYPE_SETUP_CONNECTION, MESSAGE_TYPE_SETUP_CONNECTION_ERROR,
    MESSAGE_TYPE_SETUP_CONNECTION_SUCCESS,
};
use hashforge_core::{CompactTarget, Difficulty, JobParts, StratumPrevHash, Target, VersionMask};
use hashforge_stratum::{ClientEvent, ErrorCode, Job, Share, StratumError, SubmitError, SubmitId};
use mining_sv2::*;

use crate::key::AuthorityPublicKey;
use crate::wire::{Frame, Wire};
use crate::{decode, text, Sv2Error, PROTOCOL_VERSION};

/// How the miner introduces itself.
#[derive(Clone, Debug)]
pub struct Sv2ClientConfig {
    pub user: String,
    /// The pool's authority key: the handshake fails unless the pool proves it holds it.
    pub authority: AuthorityPublicKey,
    /// The miner's hash rate, H/s, as it tells the pool (0: not said, what the protocol asks
    /// of a proxy with no devices yet).
    pub nominal_hash_rate: f32,
    /// The fewest extranonce bytes the miner wants to roll.
    pub min_extranonce_size: u16,
    /// Whether to ask for version rolling (REQUIRES_VERSION_ROLLING).
    pub version_rolling: bool,
    /// Where the miner thinks it connects (SetupConnection's endpoint).
    pub endpoint_host: String,
    pub endpoint_port: u16,
    pub vendor: String,
    pub firmware: String,
    /// A share unanswered this long is reported as timed out.
    pub submit_timeout: Duration,
}

impl Sv2ClientConfig {
    pub fn new(user: impl Into<String>, authority: AuthorityPublicKey) -> Sv2ClientConfig {
        Sv2ClientConfig {
            user: user.into(),
            authority,
            nominal_hash_rate: 0.0,
            min_extranonce_size: 4,
            version_rolling: true,
            endpoint_host: String::new(),
            endpoint_port: 0,
            vendor: "hashforge".into(),
            firmware: concat!("hashforge/", env!("CARGO_PKG_VERSION")).to_string(),
            submit_timeout: Duration::from_secs(30),
        }
    }
}

#[derive(Clone, Debug)]
struct Channel {
    id: u32,
    /// The group the pool put it in: a message to the group is a message to it (SRI's JDC
    /// sends its jobs and tips to the group).
    group: u32,
    prefix: Vec<u8>,
    extranonce_size: usize,
    difficulty: Difficulty,
}

/// An extended job as received, before (or after) a SetNewPrevHash gives it a tip.
#[derive(Clone, Debug)]
struct ExtendedJob {
    id: u32,
    version: u32,
    version_rolling_allowed: bool,
    merkle_path: Vec<[u8; 32]>,
    coinb1: Vec<u8>,
    coinb2: Vec<u8>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Tip {
    prev_hash: [u8; 32],
    nbits: u32,
    min_ntime: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Phase {
    Handshake,
    SettingUp,
    Opening,
    Open,
}

/// Future jobs kept for a SetNewPrevHash, at most.
const MAX_FUTURE_JOBS: usize = 16;
/// Shares awaiting an answer, at most, before the oldest count as timed out.
const MAX_PENDING: usize = 4096;

/// One SV2 pool connection's state.
#[derive(Debug)]
pub struct Sv2ClientSession {
    config: Sv2ClientConfig,
    wire: Wire,
    phase: Phase,
    channel: Option<Channel>,
    future: HashMap<u32, ExtendedJob>,
    tip: Option<Tip>,
    /// The last active job, re-issued at a new difficulty after SetTarget.
    current: Option<(ExtendedJob, Tip)>,
    next_sequence: u32,
    pending: BTreeMap<u32, (Share, Instant)>,
}

fn protocol_error(reason: impl Into<String>) -> ClientEvent {
    ClientEvent::ProtocolError(reason.into())
}

fn malformed(name: &'static str, reason: impl std::fmt::Display) -> Sv2Error {
    Sv2Error::Malformed {
        name,
        reason: reason.to_string(),
    }
}

impl Sv2ClientSession {
    /// Starts the handshake (its first message waits in [`Sv2ClientSession::transmit_into`]);
    /// `now` is Unix seconds, `seed` 32 random bytes for the ephemeral key.
    pub fn new(
        config: Sv2ClientConfig,
        now: u32,
        seed: [u8; 32],
    ) -> Result<Sv2ClientSession, Sv2Error> {
        let wire = Wire::initiator(config.authority, now, seed)?;
        Ok(Sv2ClientSession {
            config,
            wire,
            phase: Phase::Handshake,
            channel: None,
            future: HashMap::new(),
            tip: None,
            current: None,
            next_sequence: 0,
            pending: BTreeMap::new(),
        })
    }

    pub fn transmit_into(&mut self, out: &mut Vec<u8>) {
        self.wire.transmit_into(out);
    }

    /// Whether the channel is open (shares may go).
    pub fn is_open(&self) -> bool {
        self.phase == Phase::Open
    }

    /// Reads bytes from the pool; `now` (Unix seconds) checks the pool's certificate. An
    /// error means the connection must close.
    pub fn handle_bytes(&mut self, bytes: &[u8], now: u32) -> Result<Vec<ClientEvent>, Sv2Error> {
        self.wire.set_now(now);
        self.wire.push(bytes);
        let frames = self.wire.frames()?;
        if self.phase == Phase::Handshake && self.wire.is_established() {
            self.send_setup()?;
        }
        let mut events = Vec::new();
        for frame in frames {
            self.handle_frame(frame, &mut events)?;
        }
        Ok(events)
    }

    fn send_setup(&mut self) -> Result<(), Sv2Error> {
        let c = &self.config;
        // REQUIRES_VERSION_ROLLING is bit 2.
        let flags = if c.version_rolling { 0b100 } else { 0 };
        let setup = SetupConnection {
            protocol: Protocol::MiningProtocol,
            min_version: PROTOCOL_VERSION,
            max_version: PROTOCOL_VERSION,
            flags,
            endpoint_host: Str0255::try_from(c.endpoint_host.as_str())
                .map_err(|e| malformed("endpoint host", e))?,
            endpoint_port: c.endpoint_port,
            vendor: Str0255::try_from(c.vendor.as_str()).map_err(|e| malformed("vendor", e))?,
            hardware_version: Str0255::try_from("")
                .map_err(|e| malformed("hardware version", e))?,
            firmware: Str0255::try_from(c.firmware.as_str())
                .map_err(|e| malformed("firmware", e))?,
            device_id: Str0255::try_from("").map_err(|e| malformed("device id", e))?,
        };
        self.wire.send(
            "SetupConnection",
            setup,
            MESSAGE_TYPE_SETUP_CONNECTION,
            false,
        )?;
        self.phase = Phase::SettingUp;
        Ok(())
    }

    fn check_channel(&self, id: u32) -> Result<(), Sv2Error> {
        match &self.channel {
            Some(c) if c.id == id || c.group == id => Ok(()),
            _ => Err(Sv2Error::UnknownChannel(id)),
        }
    }

    fn handle_frame(
        &mut self,
        mut frame: Frame,
        events: &mut Vec<ClientEvent>,
    ) -> Result<(), Sv2Error> {
        let unexpected = Sv2Error::UnexpectedMessage {
            msg_type: frame.msg_type,
            extension: frame.extension,
            role: "miner",
        };
        if frame.extension != 0 {
            return Err(unexpected);
        }
        let payload = &mut frame.payload[..];
        match (frame.msg_type, &self.phase) {
            (MESSAGE_TYPE_SETUP_CONNECTION_SUCCESS, Phase::SettingUp) => {
                let m: SetupConnectionSuccess = decode("SetupConnectionSuccess", payload)?;
                if m.used_version != PROTOCOL_VERSION {
                    return Err(Sv2Error::SetupRefused(format!(
                        "the pool chose version {}",
                        m.used_version
                    )));
                }
                self.open_channel()?;
            }
            (MESSAGE_TYPE_SETUP_CONNECTION_ERROR, Phase::SettingUp) => {
                let m: SetupConnectionError = decode("SetupConnectionError", payload)?;
                return Err(Sv2Error::SetupRefused(text(&m.error_code)));
            }
            (MESSAGE_TYPE_OPEN_EXTENDED_MINING_CHANNEL_SUCCESS, Phase::Opening) => {
                let m: OpenExtendedMiningChannelSuccess =
                    decode("OpenExtendedMiningChannelSuccess", payload)?;
                let size = usize::from(m.extranonce_size);
                if size < usize::from(self.config.min_extranonce_size) || size > 32 {
                    return Err(malformed(
                        "OpenExtendedMiningChannelSuccess",
                        format!("an extranonce of {size} bytes"),
                    ));
                }
                let difficulty = target_difficulty(m.target.as_array())?;
                self.channel = Some(Channel {
                    id: m.channel_id,
                    group: m.group_channel_id,
                    prefix: m.extranonce_prefix.as_bytes().to_vec(),
                    extranonce_size: size,
                    difficulty,
                });
                self.phase = Phase::Open;
                events.push(ClientEvent::Configured {
                    version_mask: self.config.version_rolling.then_some(VersionMask::BIP320.0),
                });
                events.push(ClientEvent::Subscribed {
                    extranonce1: m.extranonce_prefix.as_bytes().to_vec(),
                    extranonce2_size: size,
                });
                events.push(ClientEvent::Authorized {
                    ok: true,
                    error: None,
                });
                events.push(ClientEvent::DifficultyChanged(difficulty));
            }
            (MESSAGE_TYPE_OPEN_MINING_CHANNEL_ERROR, Phase::Opening) => {
                let m: OpenMiningChannelError = decode("OpenMiningChannelError", payload)?;
                events.push(ClientEvent::Authorized {
                    ok: false,
                    error: Some(StratumError::new(
                        ErrorCode::Unauthorized,
                        text(&m.error_code),
                    )),
                });
            }
            (MESSAGE_TYPE_NEW_EXTENDED_MINING_JOB, Phase::Open) => {
                let m: NewExtendedMiningJob = decode("NewExtendedMiningJob", payload)?;
                self.check_channel(m.channel_id)?;
                let job = ExtendedJob {
                    id: m.job_id,
                    version: m.version,
                    version_rolling_allowed: m.version_rolling_allowed,
                    merkle_path: m
                        .merkle_path
                        .into_inner()
                        .iter()
                        .map(|h| *h.as_array())
                        .collect(),
                    coinb1: m.coinbase_tx_prefix.as_bytes().to_vec(),
                    coinb2: m.coinbase_tx_suffix.as_bytes().to_vec(),
                };
                match m.min_ntime.into_inner() {
                    None => {
                        if self.future.len() >= MAX_FUTURE_JOBS {
                            events.push(protocol_error("too many future jobs"));
                            return Ok(());
                        }
                        self.future.insert(job.id, job);
                    }
                    Some(min_ntime) => match self.tip {
                        Some(tip) => {
                            let tip = Tip { min_ntime, ..tip };
                            events.push(self.job_event(job, tip, false)?);
                        }
                        None => events.push(protocol_error("an active job before any prev hash")),
                    },
                }
            }
            (MESSAGE_TYPE_MINING_SET_NEW_PREV_HASH, Phase::Open) => {
                let m: mining_sv2::SetNewPrevHash = decode("SetNewPrevHash", payload)?;
                self.check_channel(m.channel_id)?;
                let tip = Tip {
                    prev_hash: m.prev_hash.to_array(),
                    nbits: m.nbits,
                    min_ntime: m.min_ntime,
                };
                self.tip = Some(tip);
                match self.future.remove(&m.job_id) {
                    Some(job) => {
                        self.future.clear();
                        events.push(self.job_event(job, tip, true)?);
                    }
                    None => events.push(protocol_error(format!(
                        "SetNewPrevHash for job {} that was never sent",
                        m.job_id
                    ))),
                }
            }
            (MESSAGE_TYPE_SET_TARGET, Phase::Open) => {
                let m: SetTarget = decode("SetTarget", payload)?;
                self.check_channel(m.channel_id)?;
                let difficulty = target_difficulty(m.maximum_target.as_array())?;
                if let Some(c) = &mut self.channel {
                    c.difficulty = difficulty;
                }
                events.push(ClientEvent::DifficultyChanged(difficulty));
                // SV2's target applies to the work in hand at once.
                if let Some((job, tip)) = self.current.clone() {
                    events.push(self.job_event(job, tip, false)?);
                }
            }
            (MESSAGE_TYPE_SET_EXTRANONCE_PREFIX, Phase::Open) => {
                let m: SetExtranoncePrefix = decode("SetExtranoncePrefix", payload)?;
                self.check_channel(m.channel_id)?;
                let prefix = m.extranonce_prefix.as_bytes().to_vec();
                if let Some(c) = &mut self.channel {
                    c.prefix = prefix.clone();
                    events.push(ClientEvent::ExtranonceChanged {
                        extranonce1: prefix,
                        extranonce2_size: c.extranonce_size,
                    });
                }
            }
            (MESSAGE_TYPE_SUBMIT_SHARES_SUCCESS, Phase::Open) => {
                let m: SubmitSharesSuccess = decode("SubmitSharesSuccess", payload)?;
                self.check_channel(m.channel_id)?;
                // One success may answer every share up to its sequence number.
                let later = self
                    .pending
                    .split_off(&m.last_sequence_number.wrapping_add(1));
                let answered = std::mem::replace(&mut self.pending, later);
                for (seq, (share, _)) in answered {
                    events.push(ClientEvent::ShareAccepted {
                        id: SubmitId(i64::from(seq)),
                        share,
                    });
                }
            }
            (MESSAGE_TYPE_SUBMIT_SHARES_ERROR, Phase::Open) => {
                let m: SubmitSharesError = decode("SubmitSharesError", payload)?;
                self.check_channel(m.channel_id)?;
                if let Some((share, _)) = self.pending.remove(&m.sequence_number) {
                    let code = text(&m.error_code);
                    events.push(ClientEvent::ShareRejected {
                        id: SubmitId(i64::from(m.sequence_number)),
                        share,
                        error: StratumError::new(error_code(&code), code),
                    });
                }
            }
            (MESSAGE_TYPE_CLOSE_CHANNEL, Phase::Open) => {
                let m: CloseChannel = decode("CloseChannel", payload)?;
                self.check_channel(m.channel_id)?;
                return Err(Sv2Error::ChannelClosed(text(&m.reason_code)));
            }
            (MESSAGE_TYPE_RECONNECT, _) => {
                let m: Reconnect = decode("Reconnect", payload)?;
                events.push(ClientEvent::Reconnect {
                    host: Some(text(&m.new_host)).filter(|h| !h.is_empty()),
                    port: Some(m.new_port).filter(|p| *p != 0),
                    wait_seconds: None,
                });
            }
            _ => return Err(unexpected),
        }
        Ok(())
    }

    fn open_channel(&mut self) -> Result<(), Sv2Error> {
        let user = Str0255::try_from(self.config.user.as_str())
            .map_err(|e| malformed("user identity", e))?;
        let max_target = [0xff; 32];
        self.wire.send(
            "OpenExtendedMiningChannel",
            OpenExtendedMiningChannel {
                request_id: 1,
                user_identity: user,
                nominal_hash_rate: self.config.nominal_hash_rate,
                max_target: U256::from(&max_target),
                min_extranonce_size: self.config.min_extranonce_size,
            },
            MESSAGE_TYPE_OPEN_EXTENDED_MINING_CHANNEL,
            CHANNEL_BIT_OPEN_EXTENDED_MINING_CHANNEL,
        )?;
        self.phase = Phase::Opening;
        Ok(())
    }

    fn job_event(
        &mut self,
        job: ExtendedJob,
        tip: Tip,
        clean: bool,
    ) -> Result<ClientEvent, Sv2Error> {
        let Some(channel) = &self.channel else {
            return Err(Sv2Error::UnknownChannel(0));
        };
        let version_mask = if job.version_rolling_allowed && self.config.version_rolling {
            VersionMask::BIP320.0
        } else {
            0
        };
        let v1 = Job {
            job_id: job.id.to_string(),
            parts: JobParts {
                prevhash: StratumPrevHash::from_internal(&tip.prev_hash),
                coinb1: job.coinb1.clone(),
                coinb2: job.coinb2.clone(),
                merkle_branch: job.merkle_path.clone(),
                version: job.version,
                nbits: CompactTarget(tip.nbits),
                ntime: tip.min_ntime,
            },
            clean_jobs: clean,
            difficulty: channel.difficulty,
            extranonce1: channel.prefix.clone(),
            extranonce2_size: channel.extranonce_size,
            version_mask,
        };
        self.current = Some((job, tip));
        Ok(ClientEvent::Job(Arc::new(v1)))
    }

    /// Sends a share on the channel; its verdict comes back under the returned id.
    pub fn submit(&mut self, share: Share, now: Instant) -> Result<SubmitId, SubmitError> {
        let Some(channel) = &self.channel else {
            return Err(SubmitError::NotReady);
        };
        if share.extranonce2.len() != channel.extranonce_size {
            return Err(SubmitError::Extranonce2Size {
                got: share.extranonce2.len(),
                want: channel.extranonce_size,
            });
        }
        let Ok(job_id) = share.job_id.parse::<u32>() else {
            return Err(SubmitError::UnknownJob(share.job_id));
        };
        let sequence_number = self.next_sequence;
        let extranonce = binary_sv2::B032::try_from(&share.extranonce2[..])
            .map_err(|_| SubmitError::NotReady)?;
        let sent = self.wire.send(
            "SubmitSharesExtended",
            SubmitSharesExtended {
                channel_id: channel.id,
                sequence_number,
                job_id,
                nonce: share.nonce,
                ntime: share.ntime,
                version: share.version,
                extranonce,
            },
            MESSAGE_TYPE_SUBMIT_SHARES_EXTENDED,
            CHANNEL_BIT_SUBMIT_SHARES_EXTENDED,
        );
        if sent.is_err() {
            return Err(SubmitError::NotReady);
        }
        self.next_sequence = self.next_sequence.wrapping_add(1);
        if self.pending.len() >= MAX_PENDING {
            self.pending.pop_first();
        }
        self.pending
            .insert(sequence_number, (share, now + self.config.submit_timeout));
        Ok(SubmitId(i64::from(sequence_number)))
    }

    /// Shares whose answer is overdue.
    pub fn handle_timeout(&mut self, now: Instant) -> Vec<ClientEvent> {
        let mut events = Vec::new();
        self.pending.retain(|seq, (share, deadline)| {
            if *deadline <= now {
                events.push(ClientEvent::ShareTimedOut {
                    id: SubmitId(i64::from(*seq)),
                    share: share.clone(),
                });
                false
            } else {
                true
            }
        });
        events
    }

    /// When [`Sv2ClientSession::handle_timeout`] next has something to report.
    pub fn next_timeout(&self) -> Option<Instant> {
        self.pending.values().map(|(_, d)| *d).min()
    }
}

/// The difficulty of a target from the pool (zero: no difficulty a miner can meet).
fn target_difficulty(le: &[u8; 32]) -> Result<Difficulty, Sv2Error> {
    let target = Target::from_le_bytes(*le);
    if target == Target::default() {
        return Err(malformed("target", "zero"));
    }
    Ok(target.difficulty())
}

/// A V1 error code for an SV2 one, so the miner's books read the same.
fn error_code(code: &str) -> ErrorCode {
    match code {
        ERROR_CODE_SUBMIT_SHARES_STALE_SHARE | ERROR_CODE_SUBMIT_SHARES_INVALID_JOB_ID => {
            ErrorCode::JobNotFound
        }
        ERROR_CODE_SUBMIT_SHARES_DUPLICATE_SHARE => ErrorCode::Duplicate,
        ERROR_CODE_SUBMIT_SHARES_DIFFICULTY_TOO_LOW => ErrorCode::LowDifficulty,
        _ => ErrorCode::Other,
    }
}
