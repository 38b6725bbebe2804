//! A real cpuminer <-> ckpool session on regtest (`fixtures/stratum/`): rebuilding
//! the header of block 111 from the job, the subscription's extranonce1 and the winning
//! submit, and checking every share the pool accepted.

use std::collections::HashMap;

use bitcoin::hashes::Hash;
use hashforge_core::{
    merkle_branch, parse_hex_bytes, parse_u32_be_hex, Difficulty, Header, JobParts,
};
use serde_json::Value;

/// The fixtures' directory, from the manifest directory at run time (see
/// crates/sha256d/tests/agreement.rs).
fn dir() -> String {
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo test sets CARGO_MANIFEST_DIR");
    format!("{dir}/../../fixtures/stratum/")
}

struct Session {
    extranonce1: Vec<u8>,
    extranonce2_size: usize,
    difficulty: Difficulty,
    jobs: HashMap<String, JobParts>,
    /// (line number from 1, params) of every mining.submit.
    submits: Vec<(usize, Vec<String>)>,
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

fn session() -> Session {
    let text = std::fs::read_to_string(format!("{}cpuminer-ckpool-regtest.jsonl", dir())).unwrap();
    let mut s = Session {
        extranonce1: vec![],
        extranonce2_size: 0,
        difficulty: Difficulty::ONE,
        jobs: HashMap::new(),
        submits: vec![],
    };
    for (i, record) in text.lines().enumerate() {
        let record: Value = serde_json::from_str(record).unwrap();
        let msg: Value = serde_json::from_str(record["line"].as_str().unwrap()).unwrap();
        let params = &msg["params"];
        match (record["dir"].as_str().unwrap(), msg["method"].as_str()) {
            ("s2c", Some("mining.notify")) => {
                let p = params.as_array().unwrap();
                let branch = strings(&p[4]);
                let job = JobParts::from_notify_hex(
                    p[1].as_str().unwrap(),
                    p[2].as_str().unwrap(),
                    p[3].as_str().unwrap(),
                    &branch,
                    p[5].as_str().unwrap(),
                    p[6].as_str().unwrap(),
                    p[7].as_str().unwrap(),
                )
                .unwrap();
                s.jobs.insert(p[0].as_str().unwrap().to_string(), job);
            }
            ("s2c", Some("mining.set_difficulty")) => {
                s.difficulty = Difficulty::new(params[0].as_f64().unwrap()).unwrap();
            }
            ("c2s", Some("mining.submit")) => s.submits.push((i + 1, strings(params))),
            ("s2c", None) if msg["id"] == 1 => {
                // The mining.subscribe reply: [subscriptions, extranonce1, extranonce2_size].
                let result = msg["result"].as_array().unwrap();
                s.extranonce1 = parse_hex_bytes(result[1].as_str().unwrap()).unwrap();
                s.extranonce2_size = result[2].as_u64().unwrap() as usize;
            }
            _ => {}
        }
    }
    s
}

fn share_header(s: &Session, submit: &[String]) -> Header {
    // [worker, job_id, extranonce2, ntime, nonce]; no version rolling in this session.
    let job = &s.jobs[&submit[1]];
    let extranonce2 = parse_hex_bytes(&submit[2]).unwrap();
    assert_eq!(extranonce2.len(), s.extranonce2_size);
    let ntime = parse_u32_be_hex(&submit[3]).unwrap();
    let nonce = parse_u32_be_hex(&submit[4]).unwrap();
    job.header(&s.extranonce1, &extranonce2, ntime, nonce, job.version)
}

fn block_111() -> Value {
    let text = std::fs::read_to_string(format!("{}cpuminer-ckpool-regtest.json", dir())).unwrap();
    let json: Value = serde_json::from_str(&text).unwrap();
    json["block_111"].clone()
}

#[test]
fn submit_at_line_21_rebuilds_block_111_header_exactly() {
    let s = session();
    assert_eq!(hex::encode(&s.extranonce1), "ea46046b");
    let (_, submit) = s.submits.iter().find(|(line, _)| *line == 21).unwrap();
    assert_eq!(submit[4], "ef74d001");
    let header = share_header(&s, submit);
    let block = block_111();
    assert_eq!(header.to_hex(), block["header_hex"].as_str().unwrap());
    assert_eq!(
        header.block_hash().to_string(),
        block["hash"].as_str().unwrap()
    );
    assert!(header.meets_own_bits());
}

#[test]
fn every_accepted_share_meets_the_pool_difficulty() {
    let s = session();
    assert_eq!(s.difficulty.as_f64(), 0.001);
    assert_eq!(s.submits.len(), 42);
    let target = s.difficulty.to_target();
    for (line, submit) in &s.submits {
        let header = share_header(&s, submit);
        assert!(target.is_met_by(&header.hash_bytes()), "line {line}");
        assert!(header.share_difficulty() >= s.difficulty, "line {line}");
    }
}

#[test]
fn job_parts_agree_with_block_111_as_bitcoin_core_accepted_it() {
    let s = session();
    let block_hex = block_111()["block_hex"].as_str().unwrap().to_string();
    let block: bitcoin::Block =
        bitcoin::consensus::deserialize(&hex::decode(block_hex).unwrap()).unwrap();
    let job = &s.jobs["6b0446e900000000"];

    // The coinbase Stratum carries is the block's coinbase without its witness.
    let mut coinbase = block.txdata[0].clone();
    coinbase.input[0].witness = bitcoin::Witness::new();
    assert_eq!(
        job.coinbase(&s.extranonce1, &[0; 8]),
        bitcoin::consensus::serialize(&coinbase)
    );
    assert_eq!(block.bip34_block_height(), Ok(111));

    // The branch the pool sent is the one computed from the block's other txids.
    let others: Vec<[u8; 32]> = block.txdata[1..]
        .iter()
        .map(|t| t.compute_txid().to_byte_array())
        .collect();
    assert_eq!(merkle_branch(&others), job.merkle_branch);
    assert_eq!(
        job.merkle_root(&s.extranonce1, &[0; 8]),
        block.compute_merkle_root().unwrap().to_byte_array()
    );
}
