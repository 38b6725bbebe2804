//! What operators hand the asset register: assets.csv, events.csv, a tariff schedule, a
//! dated price CSV. Run with `cargo +nightly fuzz run fleet_files` from `fuzz/`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    hashforge_fleet::fuzzing::asset_files(data);
});
