//! `mining.notify` fields, header assembly, compact bits, difficulty and coinbase layout
//! on arbitrary bytes. Run with `cargo +nightly fuzz run core_job_parts` from `fuzz/`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    hashforge_core::fuzzing::fuzz_job_parts_and_compact(data);
});
