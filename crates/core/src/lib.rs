//! Mining arithmetic and byte layouts, exactly: 256-bit targets, compact bits (nBits),
//! pool difficulty, hash rates, the 80-byte block header, its assembly from Stratum job
//! parts (with BIP 310 version rolling), and coinbase construction for a pool.
//!
//! This crate does no I/O: no sockets, no files, no clocks. Everything here is a pure
//! function of its inputs, so every other crate can trust it and every parser here can be
//! fuzzed.
#![forbid(unsafe_code)]

pub mod target;

pub use target::Target;
