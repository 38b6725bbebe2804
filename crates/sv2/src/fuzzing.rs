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
    AuthorityKeypair, Sv2ClientConfig, Sv2ClientSession, Sv2ServerConfig, Sv2ServerEvent,
    Sv2ServerSession,
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
            _ => {}
        }
    }
}

/// A pool's session reading whatever a miner sends: never a panic; an error closes.
pub fn server_reads(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let authority = authority();
    let Ok(mut session) =
        Sv2ServerSession::new(Sv2ServerConfig::default(), &authority, NOW, [1; 32])
    else {
        return;
    };
    let mut out = Vec::new();
    if mode % 2 == 0 {
        if let Ok(events) = session.handle_bytes(rest) {
            serve(&mut session, events);
        }
        session.transmit_into(&mut out);
        return;
    }
    // A real miner: handshake, then the fuzzer's frames.
    let Ok(mut miner) = Wire::initiator(authority.public(), NOW, [2; 32]) else {
        return;
    };
    miner.transmit_into(&mut out);
    if session.handle_bytes(&out).is_err() {
        return;
    }
    out.clear();
    session.transmit_into(&mut out);
    miner.push(&out);
    if miner.frames().is_err() {
        return;
    }
    for (msg_type, channel, payload) in frames(rest) {
        if miner.send_raw(msg_type, channel, payload).is_err() {
            return;
        }
        out.clear();
        miner.transmit_into(&mut out);
        match session.handle_bytes(&out) {
            Ok(events) => serve(&mut session, events),
            Err(_) => return,
        }
        out.clear();
        session.transmit_into(&mut out);
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
