//! Merkle trees of txids, and the branch Stratum sends so a miner can rebuild the root from
//! its own coinbase. Every hash here is 32 bytes in internal byte order.

use bitcoin::hashes::{sha256d, Hash, HashEngine};

/// `sha256d(left || right)`.
fn hash_pair(left: &[u8; 32], right: &[u8; 32]) -> [u8; 32] {
    let mut engine = sha256d::Hash::engine();
    engine.input(left);
    engine.input(right);
    sha256d::Hash::from_engine(engine).to_byte_array()
}

/// The root from a leaf at position 0 (the coinbase txid) and the branch beside it, the
/// Stratum way: `root = leaf; for b in branch { root = sha256d(root || b) }`.
pub fn merkle_root_from_branch(leaf: [u8; 32], branch: &[[u8; 32]]) -> [u8; 32] {
    branch.iter().fold(leaf, |root, b| hash_pair(&root, b))
}

/// The merkle branch for the coinbase, given the txids of every other transaction of the
/// block in block order: what `mining.notify` sends as `merkle_branch`. Odd levels pair
/// their last node with itself, as Bitcoin's tree does.
pub fn merkle_branch(other_txids: &[[u8; 32]]) -> Vec<[u8; 32]> {
    let mut branch = Vec::new();
    // `level` holds a tree level without its first node, which lies on the coinbase's path.
    let mut level = other_txids.to_vec();
    while let Some(&sibling) = level.first() {
        branch.push(sibling);
        level = level[1..]
            .chunks(2)
            .map(|pair| hash_pair(&pair[0], pair.get(1).unwrap_or(&pair[0])))
            .collect();
    }
    branch
}

/// The merkle root of a block's txids in block order (coinbase first); `None` when there
/// are none.
pub fn merkle_root(txids: &[[u8; 32]]) -> Option<[u8; 32]> {
    let mut level = txids.to_vec();
    while level.len() > 1 {
        level = level
            .chunks(2)
            .map(|pair| hash_pair(&pair[0], pair.get(1).unwrap_or(&pair[0])))
            .collect();
    }
    level.first().copied()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn single_transaction_root_is_its_txid() {
        let txid = [7u8; 32];
        assert_eq!(merkle_root(&[txid]), Some(txid));
        assert_eq!(merkle_root(&[]), None);
        assert!(merkle_branch(&[]).is_empty());
        assert_eq!(merkle_root_from_branch(txid, &[]), txid);
    }

    #[test]
    fn odd_levels_duplicate_their_last_node() {
        let (a, b, c) = ([1u8; 32], [2u8; 32], [3u8; 32]);
        let expect = hash_pair(&hash_pair(&a, &b), &hash_pair(&c, &c));
        assert_eq!(merkle_root(&[a, b, c]), Some(expect));
        assert_eq!(merkle_branch(&[b, c]), vec![b, hash_pair(&c, &c)]);
    }

    proptest! {
        #[test]
        fn branch_rebuilds_the_root(leaves in proptest::collection::vec(any::<[u8; 32]>(), 1..40)) {
            let branch = merkle_branch(&leaves[1..]);
            prop_assert_eq!(Some(merkle_root_from_branch(leaves[0], &branch)), merkle_root(&leaves));
        }

        #[test]
        fn root_agrees_with_rust_bitcoin(leaves in proptest::collection::vec(any::<[u8; 32]>(), 1..40)) {
            let theirs = bitcoin::merkle_tree::calculate_root(
                leaves.iter().map(|l| bitcoin::Txid::from_byte_array(*l)),
            );
            prop_assert_eq!(merkle_root(&leaves), theirs.map(|t| t.to_byte_array()));
        }
    }
}
