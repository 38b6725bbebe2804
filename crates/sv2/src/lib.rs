//! Stratum V2's mining protocol for the pool and the miner, sans I/O, on the Stratum
//! Reference Implementation's crates: `noise_sv2` for the Noise NX handshake, `codec_sv2` and
//! `framing_sv2` for the encrypted frames, `binary_sv2`, `common_messages_sv2` and
//! `mining_sv2` for the messages. Nothing of the wire format is written here.
//!
//! What is ours is the two sessions: [`Sv2ServerSession`] (the pool's side of one
//! connection: setup, standard and extended channels, jobs, targets, every check of a share)
//! and [`Sv2ClientSession`] (the miner's: one extended channel). Like the V1 sessions in
//! `hashforge_stratum` they take bytes (and the time) in and hand bytes and events out; the
//! pool and the miner run them under their own tokio tasks.
//!
//! The sessions speak the V1 crate's types where the meaning is the same, so that a share
//! counts the same whichever protocol carried it: the pool hands the server session the same
//! `ServerJob`s it sends V1 miners and gets back the same `ShareCandidate`s (checked by the
//! same `check_share`), and the client session hands the miner the same `Job`s and
//! `ClientEvent`s and takes the same `Share`s.
//!
//! It must not know about sockets, clocks, the ledger or the template source.
#![forbid(unsafe_code)]

mod client;
pub mod fuzzing;
mod initiator;
mod jd;
mod key;
mod server;
mod setup;
#[cfg(test)]
mod tests;
mod tp;
mod wire;

pub use client::{Sv2ClientConfig, Sv2ClientSession};
pub use initiator::Sv2Initiator;
pub use jd::{Declaration, JdServerEvent, Solution, Sv2JdServerSession};
pub use key::{AuthorityKeypair, AuthorityPublicKey, KeyError};
pub use server::{
    ChannelKind, CustomJobRequest, OpenRequest, ShareKey, Sv2ServerConfig, Sv2ServerEvent,
    Sv2ServerSession,
};
pub use tp::{SubmittedSolution, Sv2TpServerSession, TemplateOffer, TpServerEvent};
pub use wire::MAX_FRAME;

/// SRI's message crates, for code that builds or reads messages itself on an
/// [`Sv2Initiator`] (a Job Declarator Client, or a test that plays one).
pub mod sri {
    pub use binary_sv2;
    pub use common_messages_sv2;
    pub use job_declaration_sv2;
    pub use mining_sv2;
    pub use template_distribution_sv2;
}

/// SV2's error codes a pool refuses a channel, a custom job or a declared job with.
pub mod codes {
    pub use mining_sv2::{
        ERROR_CODE_OPEN_MINING_CHANNEL_INVALID_USER_IDENTITY as INVALID_USER_IDENTITY,
        ERROR_CODE_OPEN_MINING_CHANNEL_UNKNOWN_USER as UNKNOWN_USER,
    };

    /// SetCustomMiningJob.Error's codes.
    pub mod custom_job {
        pub use mining_sv2::{
            ERROR_CODE_SET_CUSTOM_MINING_JOB_INVALID_COINBASE_PREFIX as INVALID_COINBASE_PREFIX,
            ERROR_CODE_SET_CUSTOM_MINING_JOB_INVALID_COINBASE_TX_INPUT_N_SEQUENCE as INVALID_COINBASE_TX_INPUT_N_SEQUENCE,
            ERROR_CODE_SET_CUSTOM_MINING_JOB_INVALID_COINBASE_TX_LOCKTIME as INVALID_COINBASE_TX_LOCKTIME,
            ERROR_CODE_SET_CUSTOM_MINING_JOB_INVALID_COINBASE_TX_OUTPUTS as INVALID_COINBASE_TX_OUTPUTS,
            ERROR_CODE_SET_CUSTOM_MINING_JOB_INVALID_COINBASE_TX_VERSION as INVALID_COINBASE_TX_VERSION,
            ERROR_CODE_SET_CUSTOM_MINING_JOB_INVALID_MERKLE_PATH as INVALID_MERKLE_PATH,
            ERROR_CODE_SET_CUSTOM_MINING_JOB_INVALID_MINING_JOB_TOKEN as INVALID_MINING_JOB_TOKEN,
            ERROR_CODE_SET_CUSTOM_MINING_JOB_INVALID_MIN_NTIME as INVALID_MIN_NTIME,
            ERROR_CODE_SET_CUSTOM_MINING_JOB_INVALID_NBITS as INVALID_NBITS,
            ERROR_CODE_SET_CUSTOM_MINING_JOB_INVALID_VERSION as INVALID_VERSION,
            ERROR_CODE_SET_CUSTOM_MINING_JOB_STALE_CHAIN_TIP as STALE_CHAIN_TIP,
        };
    }

    /// DeclareMiningJob.Error's codes.
    pub mod declare {
        pub use job_declaration_sv2::{
            ERROR_CODE_DECLARE_MINING_JOB_INVALID_COINBASE_TX as INVALID_COINBASE_TX,
            ERROR_CODE_DECLARE_MINING_JOB_INVALID_COINBASE_TX_INPUT as INVALID_COINBASE_TX_INPUT,
            ERROR_CODE_DECLARE_MINING_JOB_INVALID_JOB as INVALID_JOB,
            ERROR_CODE_DECLARE_MINING_JOB_INVALID_MINING_JOB_TOKEN as INVALID_MINING_JOB_TOKEN,
            ERROR_CODE_DECLARE_MINING_JOB_MISSING_TXS as MISSING_TXS,
            ERROR_CODE_DECLARE_MINING_JOB_STALE_CHAIN_TIP as STALE_CHAIN_TIP,
        };
    }
}

/// Why a connection must close. Every one is the peer's fault (or a key that does not
/// match): the session is dead after it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Sv2Error {
    #[error("Noise handshake failed: {0}")]
    Handshake(String),
    #[error("the pool's certificate is not signed by the configured authority key (or is outside its validity)")]
    WrongKey,
    #[error("a frame does not decrypt: {0}")]
    Decrypt(String),
    #[error("a frame longer than {max} bytes")]
    FrameTooLong { max: usize },
    #[error("message type 0x{msg_type:02x} (extension {extension}) is not one the {role} takes")]
    UnexpectedMessage {
        msg_type: u8,
        extension: u16,
        role: &'static str,
    },
    #[error("a malformed {name}: {reason}")]
    Malformed { name: &'static str, reason: String },
    #[error("channel {0} does not exist")]
    UnknownChannel(u32),
    #[error("{0} before SetupConnection")]
    NotSetUp(&'static str),
    #[error("SetupConnection refused: {0}")]
    SetupRefused(String),
    #[error("the pool closed the channel: {0}")]
    ChannelClosed(String),
    #[error("the connection already failed")]
    Closed,
    #[error("cannot encode {0}: {1}")]
    Encode(&'static str, String),
}

/// 32 random bytes from the operating system's randomness (through `rand`'s thread RNG):
/// the seed a session's Noise keys come from. The sessions take it as an argument, so tests
/// and fuzzing can fix it.
pub fn random_seed() -> [u8; 32] {
    rand08::random()
}

/// How long the certificate of a server's static key is valid, from the connection's
/// start: the pool's sessions of every protocol use this.
pub const CERT_VALIDITY: std::time::Duration = std::time::Duration::from_secs(3600);

/// The protocol version both sessions speak.
pub const PROTOCOL_VERSION: u16 = 2;

/// Decodes one message of type `T` from a frame's whole payload: bytes left over are a
/// length that lies about the message.
pub fn decode<'a, T>(name: &'static str, payload: &'a mut [u8]) -> Result<T, Sv2Error>
where
    T: binary_sv2::Deserialize<'a> + binary_sv2::GetSize,
{
    let len = payload.len();
    let message: T = binary_sv2::from_bytes(payload).map_err(|e| Sv2Error::Malformed {
        name,
        reason: e.to_string(),
    })?;
    if message.get_size() != len {
        return Err(Sv2Error::Malformed {
            name,
            reason: format!("{} bytes in a frame of {len}", message.get_size()),
        });
    }
    Ok(message)
}

fn text(s: &binary_sv2::Str0255<'_>) -> String {
    String::from_utf8_lossy(s.as_bytes()).into_owned()
}
