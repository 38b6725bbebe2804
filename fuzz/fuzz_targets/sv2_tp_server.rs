//! A pool's Template Provider session reading whatever a client sends: raw bytes into the
//! Noise handshake, or (odd first byte) frames behind a real handshake. Run with
//! `cargo +nightly fuzz run sv2_tp_server` from `fuzz/`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    hashforge_sv2::fuzzing::tp_server_reads(data);
});
