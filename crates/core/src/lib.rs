//! Mining arithmetic and byte layouts, exactly: 256-bit targets, compact bits (nBits),
//! pool difficulty, hash rates, the 80-byte block header, its assembly from Stratum job
//! parts (with BIP 310 version rolling), coinbase construction for a pool, and block
//! assembly.
//!
//! This crate does no I/O: no sockets, no files, no clocks. Everything here is a pure
//! function of its inputs, so every other crate can trust it and every parser here can be
//! fuzzed. It knows nothing of JSON: the Stratum crate parses `mining.notify` and hands
//! the hex strings to [`JobParts::from_notify_hex`].
//!
//! Byte orders, once: hashes (block hashes, txids, merkle nodes) are 32 bytes in *internal*
//! order, the order SHA-256d outputs and headers store, and are displayed byte-reversed.
//! Stratum sends `prevhash` with each 4-byte word reversed ([`StratumPrevHash`]) and the
//! `u32` fields as 8 big-endian hex digits ([`parse_u32_be_hex`]); headers store `u32`s
//! little-endian.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod block;
mod coinbase;
mod compact;
mod difficulty;
pub mod fuzzing;
mod hashrate;
mod header;
mod hexutil;
mod job;
mod merkle;
pub mod target;
mod temperature;
mod u256;
mod version_rolling;

pub use block::{assemble_block, BlockError};
pub use coinbase::{
    is_witness_commitment, witness_commitment_script, CoinbaseError, CoinbaseSpec, CoinbaseSplit,
    MAX_COINBASE_SCRIPT_SIG,
};
pub use compact::{CompactError, CompactTarget};
pub use difficulty::{Difficulty, DifficultyError, DifficultySum, ShortDifficulty};
pub use hashrate::HashRate;
pub use header::Header;
pub use hexutil::HexError;
pub use job::{
    parse_hash_hex, parse_hex_bytes, parse_prevhash_hex, parse_u32_be_hex, JobParts, NotifyField,
    NotifyFieldError, StratumPrevHash,
};
pub use merkle::{merkle_branch, merkle_root, merkle_root_from_branch};
pub use target::Target;
pub use temperature::Celsius;
pub use version_rolling::{rolled_version, VersionBitsOutsideMask, VersionMask};
