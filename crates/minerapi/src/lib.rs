//! The contracts fleet tools speak with miners, both sides and without I/O, the way the
//! `stratum` crate is for pools: one neutral [`MinerStatus`], and per contract the requests,
//! the replies rendered from a status, and a reading of replies back into one.
//!
//! - [`cgminer`]: the cgminer API's envelope (TCP 4028): requests, replies, `+` joins,
//!   what a client makes of real firmware's bytes; [`bmminer`]: stock Antminer's sections;
//!   [`btminer`]: Whatsminer's (with btminer's own `get_*` commands); [`avalon`]: Canaan
//!   Avalon's (`MM ID0` strings).
//! - [`antminer_web`]: the stock Antminer web CGI, behind [`digest`] authentication.
//! - [`axeos`]: ESP-Miner's (Bitaxe) REST API.
//!
//! The miner's listener, the simulated fleet and the tests all answer through the same
//! functions ([`bmminer::read_command`], [`btminer::respond`], [`avalon::read_command`],
//! [`antminer_web::render`]), so what a fleet tool reads
//! from a hashforge miner and from a simulated Antminer is shaped by one piece of code.

// serde_json's json! macro nests deeper than the default for ESP-Miner's 50-key reply.
#![recursion_limit = "256"]

pub mod antminer_web;
pub mod avalon;
pub mod axeos;
pub mod bmminer;
pub mod btminer;
pub mod cgminer;
pub mod digest;
pub mod fuzzing;
pub mod status;

pub use status::{
    ChainState, ChainStatus, ChipHealth, Identity, Make, MinerStatus, PoolState, PoolStatus, Rates,
    Shares,
};
