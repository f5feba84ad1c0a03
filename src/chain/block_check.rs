//! A block fetched from a peer, checked against the header we validated:
//! the header's hash, the merkle root over its transactions, and the
//! witness commitment over their witnesses. Anything else (scripts,
//! amounts, the UTXO set) needs a full node; what this proves is that the
//! transactions are the ones the proof of work committed to.

use std::collections::HashSet;

use bitcoin::{Block, BlockHash};

/// What is wrong with a block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BlockProblem {
    /// Its header is not the one asked for.
    #[error("not the block asked for")]
    WrongHash,
    /// Its transactions do not hash to the header's merkle root.
    #[error("transactions do not match the merkle root")]
    BadMerkleRoot,
    /// A transaction repeats: the merkle root still matches (CVE-2012-2459)
    /// but the list is not the block.
    #[error("a transaction is repeated (a mutated block)")]
    Mutated,
    /// The witnesses do not match the coinbase's commitment, or witnesses
    /// were stripped from a block that commits to them.
    #[error("witnesses do not match the witness commitment")]
    BadWitnessCommitment,
}

/// First bytes of a witness commitment output (BIP141): OP_RETURN, a
/// 36-byte push, and the commitment header 0xaa21a9ed.
const COMMITMENT_PREFIX: [u8; 6] = [0x6a, 0x24, 0xaa, 0x21, 0xa9, 0xed];

/// The shortest output that is a commitment (Core's
/// `MINIMUM_WITNESS_COMMITMENT`): the prefix and the 32-byte hash.
const MIN_COMMITMENT_LEN: usize = 38;

/// Check `block` against the header whose hash is `expected`.
pub fn check(block: &Block, expected: &BlockHash) -> Result<(), BlockProblem> {
    if block.block_hash() != *expected {
        return Err(BlockProblem::WrongHash);
    }
    if !block.check_merkle_root() {
        return Err(BlockProblem::BadMerkleRoot);
    }
    let mut seen = HashSet::with_capacity(block.txdata.len());
    if !block.txdata.iter().all(|tx| seen.insert(tx.compute_txid())) {
        return Err(BlockProblem::Mutated);
    }
    // The crate's check accepts a block without witnesses even when its
    // coinbase commits to some: a peer that strips them (answering a
    // plain `block` request) would pass. A commitment must be matched.
    let commits = block.txdata.first().is_some_and(|cb| {
        cb.output
            .iter()
            .map(|o| o.script_pubkey.as_bytes())
            .any(|s| s.len() >= MIN_COMMITMENT_LEN && s.starts_with(&COMMITMENT_PREFIX))
    });
    let has_witness = block
        .txdata
        .iter()
        .any(|tx| tx.input.iter().any(|i| !i.witness.is_empty()));
    if (commits && !has_witness) || !block.check_witness_commitment() {
        return Err(BlockProblem::BadWitnessCommitment);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::Network;
    use bitcoin::hashes::Hash;

    #[test]
    fn genesis_passes_and_tampering_is_caught() {
        let genesis = bitcoin::constants::genesis_block(Network::Regtest);
        let hash = genesis.block_hash();
        assert_eq!(check(&genesis, &hash), Ok(()));
        assert_eq!(
            check(&genesis, &BlockHash::all_zeros()),
            Err(BlockProblem::WrongHash)
        );
        let mut other = genesis.clone();
        other.txdata[0].lock_time = bitcoin::absolute::LockTime::from_consensus(1);
        assert_eq!(check(&other, &hash), Err(BlockProblem::BadMerkleRoot));
    }

    #[test]
    fn a_repeated_last_transaction_is_a_mutated_block() {
        // Three transactions, then the same list with the last one
        // repeated: both hash to one merkle root (CVE-2012-2459).
        let mut block = bitcoin::constants::genesis_block(Network::Regtest);
        for n in 1..3 {
            let mut tx = block.txdata[0].clone();
            tx.lock_time = bitcoin::absolute::LockTime::from_consensus(n);
            block.txdata.push(tx);
        }
        block.header.merkle_root = block.compute_merkle_root().unwrap();
        let hash = block.block_hash();
        assert_eq!(check(&block, &hash), Ok(()));
        let mut mutated = block.clone();
        mutated.txdata.push(block.txdata[2].clone());
        assert_eq!(mutated.compute_merkle_root(), block.compute_merkle_root());
        assert_eq!(check(&mutated, &hash), Err(BlockProblem::Mutated));
    }
}
