//! Coinbase construction for a pool: the BIP 34 height, room for the miners' extranonce, a
//! pool tag, the payouts and the BIP 141 witness commitment, as one `bitcoin` transaction,
//! and its split into Stratum's coinb1 and coinb2.

use bitcoin::blockdata::opcodes::all::OP_RETURN;
use bitcoin::blockdata::opcodes::OP_0;
use bitcoin::hashes::Hash;
use bitcoin::script::{Builder, PushBytesBuf};
use bitcoin::{
    absolute, consensus, transaction, Amount, OutPoint, ScriptBuf, Sequence, Transaction, TxIn,
    TxOut, Witness,
};

use crate::merkle::merkle_root;

/// Bitcoin Core refuses a coinbase whose scriptSig is shorter than 2 or longer than 100
/// bytes (`bad-cb-length`).
pub const MAX_COINBASE_SCRIPT_SIG: usize = 100;

/// The BIP 141 commitment script prefix: OP_RETURN, a 36-byte push, and the header
/// `aa21a9ed`.
const WITNESS_COMMITMENT_PREFIX: [u8; 6] = [0x6a, 0x24, 0xaa, 0x21, 0xa9, 0xed];

/// Whether `script` is a BIP 141 witness commitment as Bitcoin Core looks for one: at least
/// 38 bytes, starting with OP_RETURN, a 36-byte push and `aa21a9ed`. The commitment itself
/// is bytes 6..38.
pub fn is_witness_commitment(script: &[u8]) -> bool {
    script.len() >= 38 && script[..6] == WITNESS_COMMITMENT_PREFIX
}

/// Why a coinbase cannot be built as asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CoinbaseError {
    /// Height push, extranonce and tag together exceed the consensus limit.
    #[error("coinbase scriptSig would be {len} bytes, more than the {MAX_COINBASE_SCRIPT_SIG} consensus allows; shorten the pool tag or the extranonce")]
    ScriptSigTooLong {
        /// The length it would have.
        len: usize,
    },
    /// The extranonce given is not the size the coinbase was laid out for.
    #[error("extranonce is {got} bytes, the coinbase has room for {expected}")]
    ExtranonceSize {
        /// Bytes of extranonce space (extranonce1 + extranonce2 sizes).
        expected: usize,
        /// Bytes given.
        got: usize,
    },
    /// No payout and no commitment: a transaction needs at least one output.
    #[error("coinbase has no outputs")]
    NoOutputs,
    /// The witness commitment script is not `OP_RETURN <aa21a9ed || 32-byte commitment>`.
    #[error(
        "witness commitment script {script_hex} is not OP_RETURN 0xaa21a9ed followed by 32 bytes"
    )]
    InvalidWitnessCommitment {
        /// The script, hex.
        script_hex: String,
    },
}

/// What a pool puts in its coinbase. The scriptSig is
/// `<height> [<extranonce>] [<tag>]`: the height as Bitcoin Core's `CScript() << nHeight`
/// pushes it (OP_1..OP_16 for heights 1 to 16, else a minimal little-endian number push),
/// then, if `extranonce_size > 0`, one push of that many bytes that miners fill in, then,
/// if `tag` is not empty, one push of the tag. If that comes to a single byte (a height
/// of 1 to 16 alone), an OP_0 follows to meet the consensus 2-byte minimum; Bitcoin Core's
/// own miner appends that OP_0 after every height, which this layout does not need since
/// the extranonce or tag follows.
///
/// The transaction has one input (null prevout, sequence 0xffffffff), lock time 0, the
/// `outputs` in order, then the witness commitment output (value 0) if there is one, in
/// which case the input's witness is the 32-byte zero witness reserved value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CoinbaseSpec {
    /// The height of the block being mined (BIP 34).
    pub height: u32,
    /// Bytes of extranonce space: the Stratum extranonce1 size plus extranonce2 size.
    pub extranonce_size: usize,
    /// Bytes the pool signs its blocks with (`/hashforge/`).
    pub tag: Vec<u8>,
    /// Payouts: one for solo mining, several for PPLNS or TIDES.
    pub outputs: Vec<TxOut>,
    /// `getblocktemplate`'s `default_witness_commitment` script, or
    /// [`witness_commitment_script`] of the block's wtxids; `None` for a block without one.
    pub witness_commitment: Option<ScriptBuf>,
    /// Transaction version; Bitcoin Core's miner uses 2.
    pub tx_version: transaction::Version,
}

/// A coinbase in Stratum's form: the non-witness serialisation with the extranonce cut out.
/// `coinb1 || extranonce1 || extranonce2 || coinb2` is the transaction whose double SHA-256
/// is the coinbase txid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CoinbaseSplit {
    /// Bytes before the extranonce.
    pub coinb1: Vec<u8>,
    /// Bytes after the extranonce.
    pub coinb2: Vec<u8>,
}

/// The scriptSig with a zeroed extranonce, and where the extranonce starts in it.
struct LaidOutScript {
    bytes: Vec<u8>,
    extranonce_at: usize,
}

impl CoinbaseSpec {
    /// A coinbase at `height` paying `outputs`, with no extranonce space, no tag, no
    /// witness commitment, version 2.
    pub fn new(height: u32, outputs: Vec<TxOut>) -> CoinbaseSpec {
        CoinbaseSpec {
            height,
            extranonce_size: 0,
            tag: Vec::new(),
            outputs,
            witness_commitment: None,
            tx_version: transaction::Version::TWO,
        }
    }

    fn lay_out_script(&self) -> Result<LaidOutScript, CoinbaseError> {
        // 1 byte of push opcode per part at least; refuse early rather than allocate.
        let rough = 6 + self.extranonce_size + self.tag.len();
        if rough > MAX_COINBASE_SCRIPT_SIG + 10 {
            return Err(CoinbaseError::ScriptSigTooLong { len: rough });
        }
        let too_long = |_| CoinbaseError::ScriptSigTooLong { len: rough };
        let mut builder = Builder::new().push_int(i64::from(self.height));
        if self.extranonce_size > 0 {
            let placeholder =
                PushBytesBuf::try_from(vec![0u8; self.extranonce_size]).map_err(too_long)?;
            builder = builder.push_slice(placeholder);
        }
        let extranonce_at = builder.as_script().len() - self.extranonce_size;
        if !self.tag.is_empty() {
            builder =
                builder.push_slice(PushBytesBuf::try_from(self.tag.clone()).map_err(too_long)?);
        }
        if builder.as_script().len() < 2 {
            builder = builder.push_opcode(OP_0);
        }
        let bytes = builder.into_bytes();
        if bytes.len() > MAX_COINBASE_SCRIPT_SIG {
            return Err(CoinbaseError::ScriptSigTooLong { len: bytes.len() });
        }
        Ok(LaidOutScript {
            bytes,
            extranonce_at,
        })
    }

    /// The coinbase scriptSig with this extranonce (exactly `extranonce_size` bytes).
    pub fn script_sig(&self, extranonce: &[u8]) -> Result<ScriptBuf, CoinbaseError> {
        if extranonce.len() != self.extranonce_size {
            return Err(CoinbaseError::ExtranonceSize {
                expected: self.extranonce_size,
                got: extranonce.len(),
            });
        }
        let mut laid = self.lay_out_script()?;
        laid.bytes[laid.extranonce_at..laid.extranonce_at + extranonce.len()]
            .copy_from_slice(extranonce);
        Ok(ScriptBuf::from_bytes(laid.bytes))
    }

    fn outputs(&self) -> Result<Vec<TxOut>, CoinbaseError> {
        let mut outputs = self.outputs.clone();
        if let Some(script) = &self.witness_commitment {
            let bytes = script.as_bytes();
            if !is_witness_commitment(bytes) {
                return Err(CoinbaseError::InvalidWitnessCommitment {
                    script_hex: hex::encode(bytes),
                });
            }
            outputs.push(TxOut {
                value: Amount::ZERO,
                script_pubkey: script.clone(),
            });
        }
        if outputs.is_empty() {
            return Err(CoinbaseError::NoOutputs);
        }
        Ok(outputs)
    }

    fn transaction_with_script(&self, script_sig: ScriptBuf) -> Result<Transaction, CoinbaseError> {
        let witness = match self.witness_commitment {
            Some(_) => Witness::from_slice(&[[0u8; 32]]),
            None => Witness::new(),
        };
        Ok(Transaction {
            version: self.tx_version,
            lock_time: absolute::LockTime::ZERO,
            input: vec![TxIn {
                previous_output: OutPoint::null(),
                script_sig,
                sequence: Sequence::MAX,
                witness,
            }],
            output: self.outputs()?,
        })
    }

    /// The coinbase transaction for this extranonce, witness included: the form that goes
    /// into the block. Its `compute_txid()` is the txid the header's merkle root commits to.
    pub fn transaction(&self, extranonce: &[u8]) -> Result<Transaction, CoinbaseError> {
        self.transaction_with_script(self.script_sig(extranonce)?)
    }

    /// coinb1 and coinb2 for `mining.notify`: the non-witness serialisation split around
    /// the extranonce space.
    pub fn stratum_split(&self) -> Result<CoinbaseSplit, CoinbaseError> {
        let laid = self.lay_out_script()?;
        let script_len = laid.bytes.len();
        let extranonce_at = laid.extranonce_at;
        let mut tx = self.transaction_with_script(ScriptBuf::from_bytes(laid.bytes))?;
        tx.input[0].witness = Witness::new();
        let bytes = consensus::serialize(&tx);
        // version (4) + input count (1) + prevout (36) + scriptSig length (1: at most 100)
        let script_at = 4 + 1 + 36 + compact_size_len(script_len);
        let cut = script_at + extranonce_at;
        Ok(CoinbaseSplit {
            coinb1: bytes[..cut].to_vec(),
            coinb2: bytes[cut + self.extranonce_size..].to_vec(),
        })
    }
}

fn compact_size_len(n: usize) -> usize {
    match n {
        0..=0xfc => 1,
        0xfd..=0xffff => 3,
        _ => 5,
    }
}

/// The BIP 141 witness commitment output script for a block whose non-coinbase
/// transactions have these wtxids (internal byte order, block order), with the all-zero
/// witness reserved value: `OP_RETURN <aa21a9ed || sha256d(witness root || 32 zero bytes)>`.
/// The same script `getblocktemplate` gives as `default_witness_commitment`.
pub fn witness_commitment_script(other_wtxids: &[[u8; 32]]) -> ScriptBuf {
    let mut leaves = Vec::with_capacity(other_wtxids.len() + 1);
    leaves.push([0u8; 32]); // the coinbase's wtxid counts as zero
    leaves.extend_from_slice(other_wtxids);
    let root = merkle_root(&leaves).unwrap_or([0u8; 32]);
    let commitment = bitcoin::Block::compute_witness_commitment(
        &bitcoin::WitnessMerkleNode::from_byte_array(root),
        &[0u8; 32],
    );
    let mut payload = [0u8; 36];
    payload[..4].copy_from_slice(&WITNESS_COMMITMENT_PREFIX[2..]);
    payload[4..].copy_from_slice(&commitment.to_byte_array());
    Builder::new()
        .push_opcode(OP_RETURN)
        .push_slice(payload)
        .into_script()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn op_true_payout(sats: u64) -> TxOut {
        TxOut {
            value: Amount::from_sat(sats),
            script_pubkey: ScriptBuf::from_bytes(vec![0x51]),
        }
    }

    #[test]
    fn height_push_follows_core() {
        let cases: &[(u32, &[u8])] = &[
            (1, &[0x51, 0x00]),  // OP_1, then OP_0 to reach 2 bytes
            (16, &[0x60, 0x00]), // OP_16
            (17, &[0x01, 0x11]),
            (127, &[0x01, 0x7f]),
            (128, &[0x02, 0x80, 0x00]), // sign bit needs an extra byte
            (840_000, &[0x03, 0x40, 0xd1, 0x0c]),
        ];
        for &(height, expect) in cases {
            let spec = CoinbaseSpec::new(height, vec![op_true_payout(1)]);
            assert_eq!(
                spec.script_sig(&[]).unwrap().as_bytes(),
                expect,
                "height {height}"
            );
        }
        // A tag makes the OP_0 padding unnecessary.
        let mut spec = CoinbaseSpec::new(1, vec![op_true_payout(1)]);
        spec.tag = b"/x/".to_vec();
        assert_eq!(
            spec.script_sig(&[]).unwrap().as_bytes(),
            &[0x51, 0x03, b'/', b'x', b'/']
        );
    }

    #[test]
    fn bip34_height_reads_back_with_rust_bitcoin() {
        for height in [1u32, 16, 17, 500, 65_535, 840_000, 8_388_608] {
            let mut spec = CoinbaseSpec::new(height, vec![op_true_payout(1)]);
            spec.extranonce_size = 8;
            spec.tag = b"/hashforge/".to_vec();
            let header = bitcoin::block::Header {
                version: bitcoin::block::Version::TWO,
                prev_blockhash: bitcoin::BlockHash::all_zeros(),
                merkle_root: bitcoin::TxMerkleNode::all_zeros(),
                time: 0,
                bits: bitcoin::CompactTarget::from_consensus(0x207f_ffff),
                nonce: 0,
            };
            let block = bitcoin::Block {
                header,
                txdata: vec![spec.transaction(&[7; 8]).unwrap()],
            };
            // rust-bitcoin reads only data pushes, so heights 1..16 (OP_N) are not its case.
            if height > 16 {
                assert_eq!(block.bip34_block_height(), Ok(u64::from(height)));
            }
        }
    }

    #[test]
    fn errors_are_typed() {
        let mut spec = CoinbaseSpec::new(100, vec![op_true_payout(1)]);
        spec.extranonce_size = 8;
        assert_eq!(
            spec.transaction(&[0; 4]),
            Err(CoinbaseError::ExtranonceSize {
                expected: 8,
                got: 4
            })
        );
        // 2 (height) + 9 (extranonce) + 92 (a 90-byte push needs OP_PUSHDATA1) = 103.
        spec.tag = vec![b'x'; 90];
        assert_eq!(
            spec.stratum_split(),
            Err(CoinbaseError::ScriptSigTooLong { len: 103 })
        );
        spec.tag = vec![b'x'; 74];
        assert_eq!(spec.stratum_split().map(|_| ()), Ok(()));
        spec.tag = vec![b'x'; 1 << 20];
        assert!(matches!(
            spec.stratum_split(),
            Err(CoinbaseError::ScriptSigTooLong { .. })
        ));

        let spec = CoinbaseSpec::new(100, vec![]);
        assert_eq!(spec.transaction(&[]), Err(CoinbaseError::NoOutputs));

        let mut spec = CoinbaseSpec::new(100, vec![op_true_payout(1)]);
        spec.witness_commitment = Some(ScriptBuf::from_bytes(vec![0x6a, 0x00]));
        assert!(matches!(
            spec.transaction(&[]),
            Err(CoinbaseError::InvalidWitnessCommitment { .. })
        ));
    }

    #[test]
    fn witness_commitment_of_a_coinbase_only_block() {
        // Witness root of [zero] is zero; commitment = sha256d(64 zero bytes).
        let script = witness_commitment_script(&[]);
        assert_eq!(
            hex::encode(script.as_bytes()),
            "6a24aa21a9ede2f61c3f71d1defd3fa999dfa36953755c690689799962b48bebd836974e8cf9"
        );
    }

    proptest! {
        #[test]
        fn split_reassembles_to_the_non_witness_transaction(
            height in 0u32..10_000_000,
            extranonce in proptest::collection::vec(any::<u8>(), 0..16),
            tag in proptest::collection::vec(any::<u8>(), 0..40),
            with_commitment in any::<bool>(),
            payouts in proptest::collection::vec(1u64..5_000_000_000, 1..4),
        ) {
            let mut spec = CoinbaseSpec::new(height, payouts.into_iter().map(op_true_payout).collect());
            spec.extranonce_size = extranonce.len();
            spec.tag = tag;
            if with_commitment {
                spec.witness_commitment = Some(witness_commitment_script(&[[9; 32]]));
            }
            let split = spec.stratum_split().unwrap();
            let tx = spec.transaction(&extranonce).unwrap();
            let mut stripped = tx.clone();
            stripped.input[0].witness = Witness::new();
            let legacy = consensus::serialize(&stripped);
            let joined = [split.coinb1.as_slice(), &extranonce, &split.coinb2].concat();
            prop_assert_eq!(&joined, &legacy);
            prop_assert_eq!(
                bitcoin::hashes::sha256d::Hash::hash(&joined).to_byte_array(),
                tx.compute_txid().to_byte_array()
            );
            prop_assert!(tx.is_coinbase());
            prop_assert_eq!(tx.input[0].witness.len(), usize::from(with_commitment));
        }
    }
}
