//! A miner's client session reading whatever a pool sends. Run with
//! `cargo +nightly fuzz run stratum_client` from `fuzz/`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    hashforge_stratum::fuzzing::client_reads(data);
});
