//! The cgminer API on arbitrary bytes, both sides: a server reading a request, a client
//! reading a reply as stock Antminer, Whatsminer (btminer) and Avalon firmware's, and
//! Avalon's `MM ID0` string. Run with `cargo +nightly fuzz run minerapi_cgminer` from
//! `fuzz/`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    hashforge_minerapi::fuzzing::cgminer_request(data);
    hashforge_minerapi::fuzzing::cgminer_reply(data);
    hashforge_minerapi::fuzzing::avalon_mm(data);
});
