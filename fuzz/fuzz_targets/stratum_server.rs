//! A pool's server session reading whatever a miner sends. Run with
//! `cargo +nightly fuzz run stratum_server` from `fuzz/`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    hashforge_stratum::fuzzing::server_reads(data);
});
