//! A miner's Stratum V2 session reading whatever a pool sends: raw bytes into the Noise
//! handshake, or (odd first byte) frames behind a real handshake. Run with
//! `cargo +nightly fuzz run sv2_client` from `fuzz/`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    hashforge_sv2::fuzzing::client_reads(data);
});
