//! Merkle trees as Bitcoin builds them (double SHA-256 of each pair, the
//! last node of an odd level paired with itself): branches proving a
//! transaction is in a block, which an Electrum client checks against the
//! header it holds, and the header checkpoint proofs of
//! `blockchain.block.header(s)`, whose leaves are header hashes.

use bitcoin::hashes::{Hash, HashEngine, sha256d};
use bitcoin::{TxMerkleNode, Txid};

/// The branch of the leaf at `index` (the hashes it is paired with,
/// deepest first) and the root. `None` when `index` is not a leaf.
pub fn branch_and_root(
    mut level: Vec<sha256d::Hash>,
    mut index: usize,
) -> Option<(Vec<sha256d::Hash>, sha256d::Hash)> {
    if index >= level.len() {
        return None;
    }
    let mut branch = Vec::new();
    while level.len() > 1 {
        if level.len() % 2 == 1 {
            let last = *level.last()?;
            level.push(last);
        }
        branch.push(*level.get(index ^ 1)?);
        level = level
            .chunks_exact(2)
            .map(|pair| pair_hash(&pair[0], &pair[1]))
            .collect();
        index /= 2;
    }
    Some((branch, *level.first()?))
}

/// The parent of two nodes.
fn pair_hash(left: &sha256d::Hash, right: &sha256d::Hash) -> sha256d::Hash {
    let mut engine = sha256d::Hash::engine();
    engine.input(left.as_byte_array());
    engine.input(right.as_byte_array());
    sha256d::Hash::from_engine(engine)
}

/// The branch proving the transaction at `pos` among `txids` (a block's,
/// in order). Empty for a block of one transaction; `None` when `pos` is
/// outside the block.
pub fn branch(txids: &[Txid], pos: usize) -> Option<Vec<TxMerkleNode>> {
    let leaves = txids.iter().map(|t| t.to_raw_hash()).collect();
    let (branch, _) = branch_and_root(leaves, pos)?;
    Some(
        branch
            .into_iter()
            .map(TxMerkleNode::from_raw_hash)
            .collect(),
    )
}

/// The root that `branch` proves for `txid` at `pos`.
pub fn root_from_branch(txid: Txid, pos: usize, branch: &[TxMerkleNode]) -> TxMerkleNode {
    let mut node = txid.to_raw_hash();
    let mut index = pos;
    for sibling in branch {
        let sibling = sibling.to_raw_hash();
        node = if index.is_multiple_of(2) {
            pair_hash(&node, &sibling)
        } else {
            pair_hash(&sibling, &node)
        };
        index /= 2;
    }
    TxMerkleNode::from_raw_hash(node)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::BlockHash;

    fn leaf(n: u8) -> sha256d::Hash {
        sha256d::Hash::hash(&[n])
    }

    /// SHA-256d of two nodes' bytes side by side, written out separately
    /// from `pair_hash`.
    fn parent(l: sha256d::Hash, r: sha256d::Hash) -> sha256d::Hash {
        let mut bytes = l.to_byte_array().to_vec();
        bytes.extend_from_slice(&r.to_byte_array());
        sha256d::Hash::hash(&bytes)
    }

    #[test]
    fn a_single_leaf_is_its_own_root() {
        assert_eq!(branch_and_root(vec![leaf(0)], 0), Some((vec![], leaf(0))));
        assert_eq!(branch_and_root(vec![leaf(0)], 1), None);
        assert_eq!(branch_and_root(vec![], 0), None);
    }

    #[test]
    fn three_leaves_by_hand() {
        // Tree over a, b, c: the odd c is paired with itself.
        //        root
        //      /      \
        //   ab          cc
        //  /  \        /  \
        // a    b      c    c
        let (a, b, c) = (leaf(0), leaf(1), leaf(2));
        let ab = parent(a, b);
        let cc = parent(c, c);
        let root = parent(ab, cc);
        let leaves = vec![a, b, c];
        assert_eq!(
            branch_and_root(leaves.clone(), 0),
            Some((vec![b, cc], root))
        );
        assert_eq!(
            branch_and_root(leaves.clone(), 1),
            Some((vec![a, cc], root))
        );
        assert_eq!(branch_and_root(leaves, 2), Some((vec![c, ab], root)));
    }

    #[test]
    fn matches_the_protocol_docs_checkpoint_example() {
        // Main chain blocks 0 to 8 (shared by every Bitcoin fork); the
        // protocol docs' `blockchain.block.header(5, 8)` example.
        let hashes = [
            "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f",
            "00000000839a8e6886ab5951d76f411475428afc90947ee320161bbf18eb6048",
            "000000006a625f06636b8bb6ac7b960a8d03705d1ace08b1a19da3fdcc99ddbd",
            "0000000082b5015589a3fdf2d4baff403e6f0be035a5d9742c1cae6295464449",
            "000000004ebadb55ee9096c9a2f8880e09da59c0d68b1c228da88e48844a1485",
            "000000009b7262315dbf071787ad3656097b892abffd1f95a1a022f896f533fc",
            "000000003031a0e73735690c5a1ff2a4be82553b2a12b776fbd3a215dc8f778d",
            "0000000071966c2b1d065fd446b1e485b2c9d9594acd2007ccbd5441cfc89444",
            "00000000408c48f847aa786c2268fc3e6ec2af68e8468a34a28c61b7f1de0dc6",
        ];
        let leaves = hashes
            .iter()
            .map(|h| h.parse::<BlockHash>().unwrap().to_raw_hash())
            .collect();
        let (branch, root) = branch_and_root(leaves, 5).unwrap();
        let branch: Vec<String> = branch.iter().map(ToString::to_string).collect();
        assert_eq!(
            branch,
            [
                "000000004ebadb55ee9096c9a2f8880e09da59c0d68b1c228da88e48844a1485",
                "96cbbc84783888e4cc971ae8acf86dd3c1a419370336bb3c634c97695a8c5ac9",
                "965ac94082cebbcffe458075651e9cc33ce703ab0115c72d9e8b1a9906b2b636",
                "89e5daa6950b895190716dd26054432b564ccdc2868188ba1da76de8e1dc7591",
            ]
        );
        assert_eq!(
            root.to_string(),
            "e347b1c43fd9b5415bf0d92708db8284b78daf4d0e24f9c3405f45feb85e25db"
        );
    }

    use bitcoin::merkle_tree;

    fn txids(n: u8) -> Vec<Txid> {
        (0..n)
            .map(|i| Txid::from_byte_array(sha256d::Hash::hash(&[i]).to_byte_array()))
            .collect()
    }

    #[test]
    fn every_branch_proves_the_bitcoin_crates_root() {
        for n in 1..=9u8 {
            let ids = txids(n);
            let root = merkle_tree::calculate_root(ids.iter().copied())
                .map(|h| TxMerkleNode::from_byte_array(h.to_byte_array()))
                .expect("non-empty");
            for (pos, txid) in ids.iter().enumerate() {
                let b = branch(&ids, pos).expect("in the block");
                assert_eq!(root_from_branch(*txid, pos, &b), root, "n={n} pos={pos}");
            }
        }
    }

    #[test]
    fn a_wrong_position_or_txid_proves_another_root() {
        let ids = txids(5);
        let b = branch(&ids, 2).expect("in the block");
        let right = root_from_branch(ids[2], 2, &b);
        assert_ne!(root_from_branch(ids[2], 3, &b), right);
        assert_ne!(root_from_branch(ids[1], 2, &b), right);
        assert_eq!(branch(&ids, 5), None);
        assert_eq!(branch(&ids[..1], 0), Some(Vec::new()));
    }
}
