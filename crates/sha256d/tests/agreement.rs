//! Every backend against a brute-force reference built on the `sha2` crate, and against real
//! mainnet blocks at their real targets.

use hashforge_core::Target;
use hashforge_sha256d::{sha256d_header, Backend, Hit, Scanner, Work};
use proptest::prelude::*;
use sha2::{Digest, Sha256};

fn reference_hash(header: &[u8; 80]) -> [u8; 32] {
    Sha256::digest(Sha256::digest(header)).into()
}

fn target_with_top(top: u32) -> Target {
    let mut t = [0xffu8; 32];
    t[28..32].copy_from_slice(&top.to_le_bytes());
    Target::from_le_bytes(t)
}

/// Every (version, nonce) of `work` that meets its target, found the slow way.
fn reference_hits(work: &Work) -> Vec<Hit> {
    let mut hits = Vec::new();
    for k in 0..work.version_count() {
        let version = work.rolled_version(work.version_start() + k as u32);
        for j in 0..work.nonce_count() {
            let nonce = work.nonce_start().wrapping_add(j as u32);
            let hash = reference_hash(&work.header_with(version, nonce));
            if work.target().is_met_by(&hash) {
                hits.push(Hit {
                    version,
                    nonce,
                    hash,
                });
            }
        }
    }
    hits.sort();
    hits
}

fn sorted(mut v: Vec<Hit>) -> Vec<Hit> {
    v.sort();
    v
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn header_hash_agrees_with_sha2(bytes in prop::collection::vec(any::<u8>(), 80)) {
        let header: [u8; 80] = bytes.try_into().unwrap();
        prop_assert_eq!(sha256d_header(&header), reference_hash(&header));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn every_backend_finds_exactly_the_reference_hits(
        bytes in prop::collection::vec(any::<u8>(), 80),
        roll in any::<bool>(),
        version_start in 0u32..1000,
        version_count in 1u64..40,
        nonce_start in any::<u32>(),
        nonce_count in 1u64..200,
        top in prop::sample::select(vec![u32::MAX, 0x7fff_ff00, 0x1000_0000, 0x0100_0000, 0x0000_ffff]),
    ) {
        let header: [u8; 80] = bytes.try_into().unwrap();
        let nonce_count = nonce_count.min((1u64 << 32) - u64::from(nonce_start));
        let mut work = Work::new(header, target_with_top(top)).with_nonces(nonce_start, nonce_count).unwrap();
        if roll {
            work = work.with_versions(0x1fffe000, version_start, version_count).unwrap();
        }
        let expected = reference_hits(&work);
        for backend in Backend::available() {
            let got = sorted(Scanner::new(backend).unwrap().scan(&work));
            prop_assert_eq!(&got, &expected, "backend {}", backend);
        }
    }
}

#[test]
fn the_nonce_range_may_end_at_the_last_nonce() {
    let work = Work::new([3; 80], Target::MAX)
        .with_nonces(u32::MAX - 20, 21)
        .unwrap();
    for backend in Backend::available() {
        let hits = Scanner::new(backend).unwrap().scan(&work);
        assert_eq!(hits.len(), 21, "backend {backend}");
        assert!(hits.iter().any(|h| h.nonce == u32::MAX));
    }
}

struct Fixture {
    height: u64,
    header: [u8; 80],
    hash_display: String,
}

fn mainnet_headers() -> Vec<Fixture> {
    // The manifest directory at run time (cargo sets it), not at build time: a test binary
    // reused from a build in another checkout must read this checkout's fixtures.
    let path = format!(
        "{}/../../fixtures/mainnet-headers.json",
        std::env::var("CARGO_MANIFEST_DIR").expect("cargo test sets CARGO_MANIFEST_DIR")
    );
    let text =
        std::fs::read_to_string(path).expect("fixtures/mainnet-headers.json is in the repository");
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    json["headers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            let hex = h["header_hex"].as_str().unwrap();
            let bytes: Vec<u8> = (0..80)
                .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
                .collect();
            Fixture {
                height: h["height"].as_u64().unwrap(),
                header: bytes.try_into().unwrap(),
                hash_display: h["hash"].as_str().unwrap().to_string(),
            }
        })
        .collect()
}

/// The target of compact bits (these fixtures' bits are all well-formed).
fn target_of_bits(bits: u32) -> Target {
    let exponent = (bits >> 24) as usize;
    let mantissa = bits & 0x00ff_ffff;
    let mut t = [0u8; 32];
    for i in 0..3 {
        let byte = (mantissa >> (8 * i)) as u8;
        if exponent >= 3 - i && exponent - 3 + i < 32 {
            t[exponent - 3 + i] = byte;
        }
    }
    Target::from_le_bytes(t)
}

#[test]
fn mainnet_blocks_are_found_at_their_own_targets_by_every_backend() {
    for f in mainnet_headers() {
        let mut hash = sha256d_header(&f.header);
        hash.reverse();
        let shown: String = hash.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(shown, f.hash_display, "block {}", f.height);

        let bits = u32::from_le_bytes(f.header[72..76].try_into().unwrap());
        let nonce = u32::from_le_bytes(f.header[76..80].try_into().unwrap());
        let version = u32::from_le_bytes(f.header[0..4].try_into().unwrap());
        let start = nonce.saturating_sub(3000).min(u32::MAX - 6000);
        let work = Work::new(f.header, target_of_bits(bits))
            .with_nonces(start, 6000)
            .unwrap();
        for backend in Backend::available() {
            let hits = Scanner::new(backend).unwrap().scan(&work);
            assert_eq!(hits.len(), 1, "block {} backend {backend}", f.height);
            assert_eq!(
                (hits[0].version, hits[0].nonce),
                (version, nonce),
                "block {} backend {backend}",
                f.height
            );
        }
    }
}

#[test]
fn block_840000_is_found_among_rolled_versions() {
    let f = mainnet_headers()
        .into_iter()
        .find(|f| f.height == 840000)
        .unwrap();
    let version = u32::from_le_bytes(f.header[0..4].try_into().unwrap());
    assert_eq!(version, 0x2a5fe000);
    let mask = 0x1fffe000;
    let index = (version & mask) >> 13;
    let bits = u32::from_le_bytes(f.header[72..76].try_into().unwrap());
    let nonce = u32::from_le_bytes(f.header[76..80].try_into().unwrap());
    // Clear the rolled bits in the template, as a pool's job would have them.
    let mut template = f.header;
    template[0..4].copy_from_slice(&(version & !mask).to_le_bytes());
    let work = Work::new(template, target_of_bits(bits))
        .with_versions(mask, index - 20, 37)
        .unwrap()
        .with_nonces(nonce - 50, 100)
        .unwrap();
    for backend in Backend::available() {
        let hits = Scanner::new(backend).unwrap().scan(&work);
        assert_eq!(hits.len(), 1, "backend {backend}");
        assert_eq!(
            (hits[0].version, hits[0].nonce),
            (version, nonce),
            "backend {backend}"
        );
    }
}
