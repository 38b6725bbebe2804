//! BM13xx chips: the serial protocol, a chain driver, a hash-board emulator and the board
//! test of a factory or repair bench.
//!
//! This crate owns every byte that crosses a chain's UART and nothing above it: it knows
//! headers, targets and nonces, never pools, Stratum or shares' owners.
//!
//! - [`frame`], [`crc`], [`registers`], [`chip`]: the protocol, sans I/O. Every frame in
//!   both directions, CRC5/CRC16, register codecs (PLL, ticket mask, version mask, baud
//!   divider), decoders that resynchronise after garbage and count what they dropped.
//! - [`driver`]: the chain driver, sans I/O ([`ChainDriver`]); [`shell`]: its tokio shell
//!   ([`Chain`]) over any [`Link`] — a `tokio::io::DuplexStream`, a serial port or a
//!   pseudo-terminal ([`shell::open_serial`], 115200 8N1, then the fast baud).
//! - [`emulator`]: boards of chips that speak the same bytes, hash for real on a shared
//!   pool of worker threads, heat up, and fail on request ([`Fault`]).
//! - [`board_test`]: the repair bench's test and its [`BoardReport`].
//!
//! # A chain as a miner's device
//!
//! The miner plugs a chain in like this (all of it on one task; nothing here blocks):
//!
//! 1. `Chain::new(link, ChainConfig { family, expected_chips, frequency_mhz,
//!    ticket_difficulty, version_mask, .. })`; for an emulated chain also
//!    `emulator_ticket_shift: Some(k)` (difficulty 2^-k; emulator only).
//! 2. `chain.enumerate(&BringUp::REAL)` -> [`Enumeration`] (found / expected, the first
//!    missing position); `chain.bring_up(..)` addresses, configures, switches baud, ramps.
//! 3. `chain.send_job(&header)` -> job id (rotated the family's way; the chips roll the
//!    version bits under the mask and the nonce). Send a new header before the chips
//!    exhaust the old one (firmwares: ~500 ms / chips rounded up to a power of two).
//! 4. `chain.next_event(deadline)` -> [`ChainEvent::Nonce`]`(`[`FoundNonce`]`)` carrying
//!    chip position, address, core, small core, job id, full rolled version, nonce and
//!    hash — already checked against the ticket, so the miner only compares the hash with
//!    the pool's target; [`ChainEvent::HardwareError`] for a wrong nonce.
//! 5. `chain.request_health()` reads error counts (and, on emulated chains, temperatures) into
//!    [`ChipStats`] (`chain.driver().chips()`: nonces, hardware errors, duplicates,
//!    difficulty-1 shares and [`ChipStats::hashrate`]); `chain.driver().link_stats()`
//!    and `anomalies()` count CRC errors, garbage, unknown jobs and chips.
//!
//! Emulated machines for `mine --device emulated:s21pro`: [`emulator::EmulatedMachine::spawn`]
//! with a [`MachineProfile`], the faults, and a [`emulator::HashPool`] handle gives one
//! duplex link per board, to be wrapped in a [`Chain`] each.
#![forbid(unsafe_code)]

pub mod board_test;
pub mod chip;
pub mod crc;
pub mod driver;
pub mod emulator;
pub mod fault;
pub mod frame;
pub mod fuzzing;
pub mod power;
pub mod profile;
pub mod registers;
pub mod shell;

pub use board_test::{BoardReport, BoardTestConfig, ChipReport, Suspect, Verdict};
pub use chip::{ChipFamily, NonceOrigin};
pub use driver::{
    Anomalies, ChainConfig, ChainDriver, ChainEvent, ChipStats, Enumeration, FoundNonce,
};
pub use fault::{Fault, FaultSpecError};
pub use frame::{
    Command, CommandDecoder, Dest, FullJob, LinkStats, MidstateJob, Reply, ReplyDecoder,
};
pub use power::{OperatingPoint, PowerModel};
pub use profile::{EmulatedSpec, MachineProfile};
pub use shell::{BringUp, Chain, ChainError, Link};
