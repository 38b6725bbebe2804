//! HTTP digest headers on arbitrary bytes: a server checking an `Authorization`, a client
//! answering a `WWW-Authenticate`. Run with `cargo +nightly fuzz run minerapi_digest`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    hashforge_minerapi::fuzzing::digest_header(data);
});
