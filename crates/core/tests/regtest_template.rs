//! A real `getblocktemplate` reply and the block Bitcoin Core accepted from it
//! (`fixtures/bitcoind/regtest-gbt-112.json`): building the coinbase, header and
//! block from the template must reproduce the accepted bytes exactly.

use bitcoin::hashes::Hash;
use bitcoin::{consensus, Amount, ScriptBuf, Transaction, TxOut};
use hashforge_core::{
    assemble_block, merkle_branch, merkle_root, witness_commitment_script, BlockError,
    CoinbaseSpec, CompactTarget, Header, JobParts, StratumPrevHash, Target,
};
use serde_json::Value;

/// The fixture, from the manifest directory at run time (see
/// crates/sha256d/tests/agreement.rs).
fn fixture_path() -> String {
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo test sets CARGO_MANIFEST_DIR");
    format!("{dir}/../../fixtures/bitcoind/regtest-gbt-112.json")
}

fn fixture() -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixture_path()).unwrap()).unwrap()
}

fn display_to_internal(display_hex: &str) -> [u8; 32] {
    let mut bytes: [u8; 32] = hex::decode(display_hex).unwrap().try_into().unwrap();
    bytes.reverse();
    bytes
}

fn template_transactions(gbt: &Value) -> Vec<Transaction> {
    gbt["transactions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            consensus::deserialize(&hex::decode(t["data"].as_str().unwrap()).unwrap()).unwrap()
        })
        .collect()
}

/// The coinbase the fixture's "about" describes: BIP 34 height, the tag, one OP_TRUE
/// output for the whole coinbasevalue, the default witness commitment.
fn coinbase_spec(gbt: &Value) -> CoinbaseSpec {
    let mut spec = CoinbaseSpec::new(
        gbt["height"].as_u64().unwrap() as u32,
        vec![TxOut {
            value: Amount::from_sat(gbt["coinbasevalue"].as_u64().unwrap()),
            script_pubkey: ScriptBuf::from_bytes(vec![0x51]),
        }],
    );
    spec.tag = b"/hashforge-fixture/".to_vec();
    spec.witness_commitment = Some(ScriptBuf::from_bytes(
        hex::decode(gbt["default_witness_commitment"].as_str().unwrap()).unwrap(),
    ));
    spec
}

fn header(gbt: &Value, merkle_root: [u8; 32], nonce: u32) -> Header {
    Header {
        version: gbt["version"].as_u64().unwrap() as u32,
        prev_blockhash: display_to_internal(gbt["previousblockhash"].as_str().unwrap()),
        merkle_root,
        time: gbt["curtime"].as_u64().unwrap() as u32,
        bits: CompactTarget(u32::from_str_radix(gbt["bits"].as_str().unwrap(), 16).unwrap()),
        nonce,
    }
}

#[test]
fn coinbase_matches_byte_for_byte() {
    let f = fixture();
    let (gbt, block) = (&f["getblocktemplate"], &f["block"]);
    let coinbase = coinbase_spec(gbt).transaction(&[]).unwrap();
    assert_eq!(
        hex::encode(consensus::serialize(&coinbase)),
        block["coinbase_hex"].as_str().unwrap()
    );
    assert_eq!(
        coinbase.compute_txid().to_string(),
        block["coinbase_txid"].as_str().unwrap()
    );
    // The fixture's push form: 0x01 0x70 (height 112 as a one-byte push), then the tag
    // pushed with its length; no OP_0 after the height.
    assert_eq!(
        &coinbase.input[0].script_sig.as_bytes()[..3],
        &[0x01, 0x70, 0x13]
    );
}

#[test]
fn header_and_block_match_byte_for_byte() {
    let f = fixture();
    let (gbt, expected) = (&f["getblocktemplate"], &f["block"]);
    let coinbase = coinbase_spec(gbt).transaction(&[]).unwrap();
    let txs = template_transactions(gbt);

    let mut txids = vec![coinbase.compute_txid().to_byte_array()];
    txids.extend(txs.iter().map(|t| t.compute_txid().to_byte_array()));
    for (tx, t) in txs.iter().zip(gbt["transactions"].as_array().unwrap()) {
        assert_eq!(tx.compute_txid().to_string(), t["txid"].as_str().unwrap());
    }
    let root = merkle_root(&txids).unwrap();
    assert_eq!(
        hex::encode(display_to_internal(
            expected["merkle_root"].as_str().unwrap()
        )),
        hex::encode(root)
    );

    // Regtest's easy target: nonce 0 already meets it (the fixture's header has nonce 0).
    let header = header(gbt, root, 0);
    assert!(header.meets_own_bits());
    assert_eq!(header.to_hex(), expected["header_hex"].as_str().unwrap());
    assert_eq!(
        header.block_hash().to_string(),
        expected["hash"].as_str().unwrap()
    );

    let block = assemble_block(&header, coinbase, txs).unwrap();
    assert_eq!(
        hex::encode(consensus::serialize(&block)),
        expected["block_hex"].as_str().unwrap()
    );
    assert_eq!(block.bip34_block_height(), Ok(112));
}

#[test]
fn template_target_and_witness_commitment_agree_with_our_computation() {
    let f = fixture();
    let gbt = &f["getblocktemplate"];
    let bits = CompactTarget(u32::from_str_radix(gbt["bits"].as_str().unwrap(), 16).unwrap());
    let target = Target::from_be_hex(gbt["target"].as_str().unwrap()).unwrap();
    assert_eq!(bits.to_target(), Ok(target));
    assert_eq!(target.to_compact_lossy(), bits);

    // `hash` is each transaction's wtxid in display order.
    let wtxids: Vec<[u8; 32]> = gbt["transactions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| display_to_internal(t["hash"].as_str().unwrap()))
        .collect();
    for (tx, w) in template_transactions(gbt).iter().zip(&wtxids) {
        assert_eq!(tx.compute_wtxid().to_byte_array(), *w);
    }
    assert_eq!(
        hex::encode(witness_commitment_script(&wtxids).as_bytes()),
        gbt["default_witness_commitment"].as_str().unwrap()
    );
}

#[test]
fn stratum_job_from_the_template_gives_the_same_header() {
    let f = fixture();
    let (gbt, expected) = (&f["getblocktemplate"], &f["block"]);
    let spec = coinbase_spec(gbt);
    let split = spec.stratum_split().unwrap();
    let others: Vec<[u8; 32]> = template_transactions(gbt)
        .iter()
        .map(|t| t.compute_txid().to_byte_array())
        .collect();
    let prev = display_to_internal(gbt["previousblockhash"].as_str().unwrap());
    let job = JobParts {
        prevhash: StratumPrevHash::from_internal(&prev),
        coinb1: split.coinb1,
        coinb2: split.coinb2,
        merkle_branch: merkle_branch(&others),
        version: gbt["version"].as_u64().unwrap() as u32,
        nbits: CompactTarget(0x207f_ffff),
        ntime: gbt["curtime"].as_u64().unwrap() as u32,
    };
    // This coinbase has no extranonce space: both extranonces are empty.
    let header = job.header(&[], &[], job.ntime, 0, job.version);
    assert_eq!(header.to_hex(), expected["header_hex"].as_str().unwrap());

    // With extranonce space, each extranonce gives its own coinbase and root, and the
    // block assembled from it is consistent.
    let mut spec = spec;
    spec.extranonce_size = 12;
    let split = spec.stratum_split().unwrap();
    let job = JobParts {
        coinb1: split.coinb1,
        coinb2: split.coinb2,
        ..job
    };
    let (en1, en2) = ([0xea, 0x46, 0x04, 0x6b], [0, 0, 0, 0, 0, 0, 0, 7]);
    let header = job.header(&en1, &en2, job.ntime, 0, job.version);
    let coinbase = spec.transaction(&[en1.as_slice(), &en2].concat()).unwrap();
    assert!(assemble_block(&header, coinbase, template_transactions(gbt)).is_ok());
}

#[test]
fn assemble_block_refuses_inconsistent_parts() {
    let f = fixture();
    let gbt = &f["getblocktemplate"];
    let coinbase = coinbase_spec(gbt).transaction(&[]).unwrap();
    let txs = template_transactions(gbt);

    let wrong_root = header(gbt, [0; 32], 0);
    assert!(matches!(
        assemble_block(&wrong_root, coinbase.clone(), txs.clone()),
        Err(BlockError::MerkleRootMismatch { .. })
    ));

    assert_eq!(
        assemble_block(&wrong_root, txs[0].clone(), txs.clone()),
        Err(BlockError::NotCoinbase)
    );

    // A coinbase committing to other witnesses than the block's.
    let mut spec = coinbase_spec(gbt);
    spec.witness_commitment = Some(witness_commitment_script(&[]));
    let bad = spec.transaction(&[]).unwrap();
    let mut txids = vec![bad.compute_txid().to_byte_array()];
    txids.extend(txs.iter().map(|t| t.compute_txid().to_byte_array()));
    let h = header(gbt, merkle_root(&txids).unwrap(), 0);
    assert_eq!(
        assemble_block(&h, bad, txs),
        Err(BlockError::WitnessCommitmentMismatch)
    );
}
