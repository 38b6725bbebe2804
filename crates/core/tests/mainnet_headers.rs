//! Real mainnet headers (`fixtures/mainnet-headers.json`): decoding, hashing, proof of
//! work, and the Stratum rendering of block 840000's fields.

use hashforge_core::{
    parse_prevhash_hex, parse_u32_be_hex, rolled_version, CompactTarget, Difficulty, Header,
    JobParts, StratumPrevHash, VersionMask,
};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// The fixture, from the manifest directory at run time (see
/// crates/sha256d/tests/agreement.rs).
fn fixture() -> String {
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo test sets CARGO_MANIFEST_DIR");
    format!("{dir}/../../fixtures/mainnet-headers.json")
}

fn headers() -> Vec<Value> {
    let text = std::fs::read_to_string(fixture()).expect("fixture present beside the repository");
    let json: Value = serde_json::from_str(&text).unwrap();
    json["headers"].as_array().unwrap().clone()
}

fn header_at(height: u64) -> Value {
    headers()
        .into_iter()
        .find(|h| h["height"] == height)
        .expect("height in fixture")
}

fn display_to_internal(display_hex: &str) -> [u8; 32] {
    let mut bytes: [u8; 32] = hex::decode(display_hex).unwrap().try_into().unwrap();
    bytes.reverse();
    bytes
}

#[test]
fn every_header_hashes_to_its_recorded_hash_and_meets_its_bits() {
    let all = headers();
    assert_eq!(all.len(), 3);
    for h in all {
        let header_hex = h["header_hex"].as_str().unwrap();
        let header = Header::from_hex(header_hex).unwrap();
        let hash = h["hash"].as_str().unwrap();
        assert_eq!(
            header.block_hash().to_string(),
            hash,
            "height {}",
            h["height"]
        );
        // Independent reference: SHA-256 twice with the `sha2` crate, byte-reversed.
        let mut reference: [u8; 32] =
            Sha256::digest(Sha256::digest(hex::decode(header_hex).unwrap())).into();
        assert_eq!(header.hash_bytes(), reference);
        reference.reverse();
        assert_eq!(hex::encode(reference), hash);

        assert!(header.meets_own_bits(), "height {}", h["height"]);
        let network = header.target().unwrap().difficulty();
        assert!(header.share_difficulty() >= network);
        assert_eq!(header.to_hex(), header_hex);
    }
}

#[test]
fn fields_decode_to_the_recorded_values() {
    for h in headers() {
        let header = Header::from_hex(h["header_hex"].as_str().unwrap()).unwrap();
        assert_eq!(u64::from(header.version), h["version"].as_u64().unwrap());
        assert_eq!(
            header.prev_blockhash_hex(),
            h["prev_hash"].as_str().unwrap()
        );
        assert_eq!(header.merkle_root_hex(), h["merkle_root"].as_str().unwrap());
        assert_eq!(u64::from(header.time), h["time"].as_u64().unwrap());
        assert_eq!(header.bits.to_string(), h["bits"].as_str().unwrap());
        assert_eq!(u64::from(header.nonce), h["nonce"].as_u64().unwrap());
        assert_eq!(
            header.prev_blockhash,
            display_to_internal(h["prev_hash"].as_str().unwrap())
        );
    }
}

#[test]
fn block_840000_is_version_rolled_under_bip320() {
    let header = Header::from_hex(header_at(840_000)["header_hex"].as_str().unwrap()).unwrap();
    assert_eq!(header.version, 0x2a5f_e000);
    // Base version 0x20000000 (BIP 9 top bits) with bits 13..28 rolled.
    assert_eq!(header.version & !VersionMask::BIP320.0, 0x2000_0000);
    assert_eq!(
        rolled_version(
            0x2000_0000,
            header.version & VersionMask::BIP320.0,
            VersionMask::BIP320
        ),
        Ok(header.version)
    );
    // Known network difficulty at the halving block.
    let d = header.target().unwrap().difficulty().as_f64();
    assert!((d - 86_388_558_925_171.02).abs() < 0.01, "{d}");
}

#[test]
fn block_840000_through_stratum_fields_gives_its_header_exactly() {
    let fixture = header_at(840_000);
    let header_hex = fixture["header_hex"].as_str().unwrap();
    let original = Header::from_hex(header_hex).unwrap();

    // What a pool would send: prevhash as the display hash with its eight 4-byte words in
    // reverse order, and the u32 fields as 8 big-endian hex digits.
    let display = fixture["prev_hash"].as_str().unwrap();
    let words: Vec<&str> = (0..8).map(|i| &display[i * 8..i * 8 + 8]).collect();
    let prevhash_wire: String = words.iter().rev().copied().collect();
    assert_eq!(
        StratumPrevHash::from_internal(&original.prev_blockhash).to_hex(),
        prevhash_wire
    );
    let version_wire = "20000000";
    let version_bits_wire = "0a5fe000";
    let nbits_wire = fixture["bits"].as_str().unwrap();
    let ntime_wire = format!("{:08x}", fixture["time"].as_u64().unwrap());
    let nonce_wire = format!("{:08x}", fixture["nonce"].as_u64().unwrap());
    assert_eq!(
        (nbits_wire, ntime_wire.as_str(), nonce_wire.as_str()),
        ("17034219", "662307b7", "ea63987d")
    );

    // Read back the way a miner or pool does.
    let job = JobParts::from_notify_hex(
        &prevhash_wire,
        "",
        "",
        &[] as &[&str],
        version_wire,
        nbits_wire,
        &ntime_wire,
    )
    .unwrap();
    assert_eq!(job.prevhash, parse_prevhash_hex(&prevhash_wire).unwrap());
    assert_eq!(job.nbits, CompactTarget(0x1703_4219));
    let version = rolled_version(
        job.version,
        parse_u32_be_hex(version_bits_wire).unwrap(),
        VersionMask::BIP320,
    )
    .unwrap();
    let merkle_root = display_to_internal(fixture["merkle_root"].as_str().unwrap());
    let rebuilt = job.header_with_merkle_root(
        merkle_root,
        parse_u32_be_hex(&ntime_wire).unwrap(),
        parse_u32_be_hex(&nonce_wire).unwrap(),
        version,
    );
    assert_eq!(hex::encode(rebuilt.to_bytes()), header_hex);
    assert_eq!(
        rebuilt.block_hash().to_string(),
        fixture["hash"].as_str().unwrap()
    );
    assert!(rebuilt.meets_own_bits());
    assert!(Difficulty::of_hash(&rebuilt.hash_bytes()) >= rebuilt.target().unwrap().difficulty());
}
