//! What the fleet console reads from outside: a miner's HTTP reply, an operator's address
//! ranges. Run with `cargo +nightly fuzz run fleet_inputs` from `fuzz/`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    hashforge_fleet::fuzzing::http_reply(data);
    hashforge_fleet::fuzzing::ranges(data);
});
