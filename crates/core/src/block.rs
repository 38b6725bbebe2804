//! Assembling a full block from a solved header, the coinbase and the template's
//! transactions.

use bitcoin::hashes::Hash;
use bitcoin::{Block, Transaction, TxMerkleNode};

use crate::header::Header;

/// Why transactions and a header do not make a valid block.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlockError {
    /// The first transaction is not a coinbase.
    #[error("the first transaction is not a coinbase")]
    NotCoinbase,
    /// The header commits to other transactions than these.
    #[error("header merkle root {header} differs from the transactions' {computed}")]
    MerkleRootMismatch {
        /// The header's root (display order when shown).
        header: TxMerkleNode,
        /// The root of the transactions (display order when shown).
        computed: TxMerkleNode,
    },
    /// The coinbase's witness commitment does not match the transactions' witnesses.
    #[error("the coinbase's witness commitment does not match the transactions")]
    WitnessCommitmentMismatch,
}

/// The block `header` + `coinbase` + `transactions` (in template order), checked so that
/// the merkle root and the witness commitment agree with the transactions. Serialise it
/// with `bitcoin::consensus::serialize` for `submitblock` (the witness serialisation).
pub fn assemble_block(
    header: &Header,
    coinbase: Transaction,
    transactions: Vec<Transaction>,
) -> Result<Block, BlockError> {
    if !coinbase.is_coinbase() {
        return Err(BlockError::NotCoinbase);
    }
    let mut txdata = Vec::with_capacity(transactions.len() + 1);
    txdata.push(coinbase);
    txdata.extend(transactions);
    let block = Block {
        header: (*header).into(),
        txdata,
    };
    let computed = block
        .compute_merkle_root()
        .unwrap_or_else(TxMerkleNode::all_zeros);
    if computed != block.header.merkle_root {
        return Err(BlockError::MerkleRootMismatch {
            header: block.header.merkle_root,
            computed,
        });
    }
    if !block.check_witness_commitment() {
        return Err(BlockError::WitnessCommitmentMismatch);
    }
    Ok(block)
}
