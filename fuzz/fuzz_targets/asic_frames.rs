//! BM13xx frames in both directions, the chain driver and the emulated board on
//! arbitrary bytes. Run with `cargo +nightly fuzz run asic_frames` from `fuzz/`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    hashforge_asic::fuzzing::fuzz_frames(data);
});
