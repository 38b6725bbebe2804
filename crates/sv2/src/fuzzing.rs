//! Entry points for the `fuzz/` targets (and the tests that feed them random bytes).
//!
//! Raw bytes alone would never get past the Noise handshake, so each target has two modes
//! chosen by the first byte: even, the bytes go to the session as they are (the handshake
//! and the framing take them); odd, the other side is played by a real peer with a fixed
//! key, the handshake completes, and the rest is read as frames (`type`, `channel bit`,
//! `length: u16 LE`, payload) that the peer encrypts and sends: every message parser and
//! every state of the session, behind the encryption. The harness answers as the pool and
//! the miner do (channels opened, a job sent, shares accepted), so the deep states are
//! reached.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hashforge_core::{CompactTarget, JobParts, StratumPrevHash};
use hashforge_stratum::{ClientEvent, ServerJob, Share};

use crate::wire::Wire;
use crate::{
    AuthorityKeypair, JdServerEvent, Sv2ClientConfig, Sv2ClientSession, Sv2JdServerSession,
    Sv2ServerConfig, Sv2ServerEvent, Sv2ServerSession, Sv2TpServerSession, TemplateOffer,
    TpServerEvent,
};

const NOW: u32 = 1_750_000_000;

fn authority() -> AuthorityKeypair {
    AuthorityKeypair::from_entropy([7; 32]).expect("a fixed valid secret key")
}

/// A job like the pool's: a coinbase split around a 12-byte extranonce, regtest bits.
pub fn sample_job(id: &str, clean: bool) -> Arc<ServerJob> {
    let parts = JobParts {
        prevhash: StratumPrevHash::from_internal(&[0x11; 32]),
        coinb1: vec![
            1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ],
        coinb2: vec![
            0xff, 0xff, 0xff, 0xff, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0x51, 0, 0, 0, 0,
        ],
        merkle_branch: vec![[0x22; 32]],
        version: 0x2000_0000,
        nbits: CompactTarget(0x207f_ffff),
        ntime: NOW,
    };
    Arc::new(ServerJob::new(id, parts, clean))
}

/// Frames from the fuzz input: (type, channel bit, payload).
fn frames(mut data: &[u8]) -> Vec<(u8, bool, &[u8])> {
    let mut out = Vec::new();
    while data.len() >= 4 {
        let (msg_type, channel) = (data[0], data[1] & 1 == 1);
        let len = usize::from(u16::from_le_bytes([data[2], data[3]]));
        let end = (4 + len).min(data.len());
        out.push((msg_type, channel, &data[4..end]));
        data = &data[end..];
    }
    out
}

/// Plays the pool's part for the harness.
fn serve(session: &mut Sv2ServerSession, events: Vec<Sv2ServerEvent>) {
    for event in events {
        match event {
            Sv2ServerEvent::OpenChannel(r) => {
                if let Ok(channel) = session.open_channel(r.request_id, vec![0, 0, 0, 1], 1e-9) {
                    let _ = session.notify(channel, sample_job("1", true));
                    let _ = session.set_difficulty(channel, 2e-9);
                }
            }
            Sv2ServerEvent::Share { key, candidate } => {
                let _ = session.accept(key, candidate.credited_difficulty());
            }
            Sv2ServerEvent::CustomJob(r) => {
                let _ =
                    session.accept_custom_job(r.channel_id, r.request_id, sample_job("c", false));
            }
            _ => {}
        }
    }
}

/// A server's session as the harness drives it: bytes in (answered as the pool would), bytes
/// out.
trait ServerSide {
    fn take(&mut self, bytes: &[u8]) -> Result<(), crate::Sv2Error>;
    fn give(&mut self, out: &mut Vec<u8>);
}

impl ServerSide for Sv2ServerSession {
    fn take(&mut self, bytes: &[u8]) -> Result<(), crate::Sv2Error> {
        let events = self.handle_bytes(bytes)?;
        serve(self, events);
        Ok(())
    }

    fn give(&mut self, out: &mut Vec<u8>) {
        self.transmit_into(out);
    }
}

impl ServerSide for Sv2JdServerSession {
    fn take(&mut self, bytes: &[u8]) -> Result<(), crate::Sv2Error> {
        for event in self.handle_bytes(bytes)? {
            // As the pool answers: a token; a declaration with transactions asks for them
            // all, one without is accepted; the transactions sent make it accepted.
            let _ = match event {
                JdServerEvent::AllocateToken { request_id, .. } => {
                    self.allocated(request_id, &[1; 16], &[1, 0, 0, 0, 0, 0, 0, 0, 0, 0])
                }
                JdServerEvent::Declare(d) if d.wtxids.is_empty() => {
                    self.declared(d.request_id, &[2; 16])
                }
                JdServerEvent::Declare(d) => {
                    let all: Vec<u16> = (0..d.wtxids.len() as u16).collect();
                    self.ask_transactions(d.request_id, &all)
                }
                JdServerEvent::Transactions { request_id, .. } => {
                    self.refuse(request_id, "invalid-job", "fuzzed")
                }
                _ => Ok(()),
            };
        }
        Ok(())
    }

    fn give(&mut self, out: &mut Vec<u8>) {
        self.transmit_into(out);
    }
}

impl ServerSide for Sv2TpServerSession {
    fn take(&mut self, bytes: &[u8]) -> Result<(), crate::Sv2Error> {
        for event in self.handle_bytes(bytes)? {
            // As the pool answers: a template on setup, the data of template 1 only.
            let _ = match event {
                TpServerEvent::SetUp { .. } => {
                    let offer = TemplateOffer {
                        template_id: 1,
                        future_template: true,
                        version: 0x2000_0000,
                        coinbase_tx_version: 2,
                        coinbase_prefix: vec![1, 1],
                        coinbase_tx_input_sequence: u32::MAX,
                        coinbase_tx_value_remaining: 5_000_000_000,
                        coinbase_tx_outputs: Vec::new(),
                        coinbase_tx_outputs_count: 0,
                        coinbase_tx_locktime: 0,
                        merkle_path: vec![[0x22; 32]],
                    };
                    self.new_template(&offer).and_then(|()| {
                        self.set_new_prev_hash(1, [0x11; 32], NOW, 0x207f_ffff, [0xff; 32])
                    })
                }
                TpServerEvent::RequestTransactionData { template_id: 1 } => {
                    self.transaction_data(1, &[], &[vec![1, 2, 3]])
                }
                TpServerEvent::RequestTransactionData { template_id } => {
                    self.transaction_data_error(template_id, template_id < 1)
                }
                _ => Ok(()),
            };
        }
        Ok(())
    }

    fn give(&mut self, out: &mut Vec<u8>) {
        self.transmit_into(out);
    }
}

/// Feeds a server session the fuzz input: raw (even first byte), or as frames a real client
/// sends behind a real handshake (odd).
fn server_side_reads(session: &mut impl ServerSide, authority: &AuthorityKeypair, data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut out = Vec::new();
    if mode % 2 == 0 {
        let _ = session.take(rest);
        session.give(&mut out);
        return;
    }
    let Ok(mut client) = Wire::initiator(authority.public(), NOW, [2; 32]) else {
        return;
    };
    client.transmit_into(&mut out);
    if session.take(&out).is_err() {
        return;
    }
    out.clear();
    session.give(&mut out);
    client.push(&out);
    if client.frames().is_err() {
        return;
    }
    for (msg_type, channel, payload) in frames(rest) {
        if client.send_raw(msg_type, channel, payload).is_err() {
            return;
        }
        out.clear();
        client.transmit_into(&mut out);
        if session.take(&out).is_err() {
            return;
        }
        out.clear();
        session.give(&mut out);
    }
}

/// A pool's session reading whatever a miner sends: never a panic; an error closes.
pub fn server_reads(data: &[u8]) {
    let authority = authority();
    let config = Sv2ServerConfig {
        work_selection: data.first().is_some_and(|mode| mode & 2 != 0),
        ..Sv2ServerConfig::default()
    };
    if let Ok(mut session) = Sv2ServerSession::new(config, &authority, NOW, [1; 32]) {
        server_side_reads(&mut session, &authority, data);
    }
}

/// A pool's Template Provider session reading whatever a client sends.
pub fn tp_server_reads(data: &[u8]) {
    let authority = authority();
    let validity = Duration::from_secs(3600);
    if let Ok(mut session) = Sv2TpServerSession::new(&authority, validity, NOW, [8; 32]) {
        server_side_reads(&mut session, &authority, data);
    }
}

/// A pool's Job Declarator Server session reading whatever a client sends.
pub fn jd_server_reads(data: &[u8]) {
    let authority = authority();
    let validity = Duration::from_secs(3600);
    if let Ok(mut session) = Sv2JdServerSession::new(&authority, validity, NOW, [5; 32]) {
        server_side_reads(&mut session, &authority, data);
    }
}

/// A miner's session reading whatever a pool sends.
pub fn client_reads(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let authority = authority();
    let config = Sv2ClientConfig::new("w", authority.public());
    let Ok(mut session) = Sv2ClientSession::new(config, NOW, [3; 32]) else {
        return;
    };
    let mut out = Vec::new();
    session.transmit_into(&mut out);
    let now = Instant::now();
    if mode % 2 == 0 {
        let _ = session.handle_bytes(rest, NOW);
        session.handle_timeout(now + Duration::from_secs(3600));
        return;
    }
    let Ok(mut pool) = Wire::responder(&authority, Duration::from_secs(3600), NOW, [4; 32]) else {
        return;
    };
    pool.push(&out);
    if pool.frames().is_err() {
        return;
    }
    out.clear();
    pool.transmit_into(&mut out);
    for (msg_type, channel, payload) in frames(rest) {
        if pool.send_raw(msg_type, channel, payload).is_err() {
            return;
        }
        pool.transmit_into(&mut out);
        let events = match session.handle_bytes(&out, NOW) {
            Ok(events) => events,
            Err(_) => return,
        };
        out.clear();
        for event in events {
            if let ClientEvent::Job(job) = event {
                let share = Share {
                    job_id: job.job_id.clone(),
                    extranonce2: vec![0; job.extranonce2_size],
                    ntime: job.parts.ntime,
                    nonce: 1,
                    version: job.parts.version,
                };
                let _ = session.submit(share, now);
            }
        }
        session.transmit_into(&mut Vec::new());
    }
    session.handle_timeout(now + Duration::from_secs(3600));
}

/// The deterministic pool the `record_peer` example plays and `tests/recorded.rs` replays:
/// a fixed authority key, seed, job and channel settings, and one reaction per event.
pub mod recording {
    use super::*;
    use crate::ShareKey;

    /// The seed of the recorded session's Noise keys.
    pub const SEED: [u8; 32] = [0x5e; 32];
    /// Every channel's extranonce prefix (4 bytes; the peer rolls the configured 8 more).
    pub const PREFIX: [u8; 4] = [0xde, 0xad, 0xbe, 0xef];
    /// Every channel's difficulty: a CPU finds shares at once.
    pub const DIFFICULTY: f64 = 1.0 / 65536.0;

    /// The recorded pool's job: ckpool's first `mining.notify` of the session in
    /// `fixtures/stratum/cpuminer-ckpool-regtest.jsonl` (a real regtest coinbase, split
    /// around a 12-byte extranonce as this pool's is, and a real merkle branch), since SRI's
    /// roles parse the coinbase as a transaction.
    pub fn job() -> Arc<ServerJob> {
        let parts = JobParts::from_notify_hex(
            "60dec4e60eeeab67fe336b2d525794cd9e9d6657650db599fc1f32ac09ec662c",
            "01000000010000000000000000000000000000000000000000000000000000000000000000ffffffff33016f0004e946046b04eaa7a60d0c",
            "0a636b706f6f6c2d6c68720d2f636b706f6f6c2d746573742fffffffff02b0100a2a010000001976a914243f1394f44554f4ce3fd68649c19adc483ce92488ac0000000000000000266a24aa21a9ed617daa8168171c0faa52846b85963697d84e678be24197d95c39eeca1c74720800000000",
            &[
                "906bd432d55a809fb3b1a7e8602d204370f8379365d750780dcfc357207a48e1",
                "75ffa07a4625b8a86de3978d794d6a3c119f954b1b392a2810ab9a5358140411",
                "a1d96409e86b898d650f0eebc675a9a76ecfe13845153dfb8faed361031d2074",
                "41f6ea1f0e43fe27e8520084acc94ae609cd50678bacee0f791219bebb452e54",
            ],
            "20000000",
            "207fffff",
            "6b0446e9",
        )
        .expect("ckpool's notify parses");
        Arc::new(ServerJob::new("1", parts, true))
    }

    /// The recording's authority key pair (a test key: its secret is in the source).
    pub fn authority() -> AuthorityKeypair {
        AuthorityKeypair::from_entropy([0x42; 32]).expect("a fixed valid secret key")
    }

    pub fn server_config() -> Sv2ServerConfig {
        Sv2ServerConfig::default()
    }

    /// What the recorded pool does on each event: every channel opened with [`PREFIX`] and
    /// [`DIFFICULTY`] and sent [`job`]; every share that passed the checks accepted.
    /// Returns the accepted share's key, if it was one.
    pub fn react(session: &mut Sv2ServerSession, event: Sv2ServerEvent) -> Option<ShareKey> {
        match event {
            Sv2ServerEvent::OpenChannel(r) => {
                let channel = session
                    .open_channel(r.request_id, PREFIX.to_vec(), DIFFICULTY)
                    .ok()?;
                session.notify(channel, job()).ok()?;
                None
            }
            Sv2ServerEvent::Share { key, candidate } => {
                session.accept(key, candidate.credited_difficulty()).ok()?;
                Some(key)
            }
            _ => None,
        }
    }
}
