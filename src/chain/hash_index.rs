//! The index from block hash to chain entry, at 4 bytes a slot.
//!
//! A map keyed by the full 32-byte hash costs about 50 bytes per header
//! once the table's spare capacity is counted: at a million headers, more
//! than everything else the chain keeps. Here the table holds only entry
//! ids; the key of entry `id` is the first 8 bytes of its block hash, kept
//! by the caller in a column of its own (which the chain needs anyway to
//! remove entries without reading them back). A lookup compares that
//! 8-byte key, then lets the caller confirm the full hash: an attacker can
//! choose a `prev_blockhash` whose first 8 bytes are any block's, so a
//! truncated match alone proves nothing.
//!
//! The table slot is picked by folding the key with a per-table random
//! key: headers on cheap networks (regtest, signet spam, low-difficulty
//! testnet forks) can be ground until their hashes share low bits, which
//! would pile them into one probe sequence if the raw bytes picked the
//! slot; a folded multiply by a secret odd key spreads every input bit over
//! the output, so such grinding needs the key.

use std::hash::{BuildHasher, RandomState};

use bitcoin::BlockHash;
use bitcoin::hashes::Hash;
use hashbrown::HashTable;

/// The 8-byte key of a block hash: its first 8 bytes in internal order,
/// which are as uniform as any hash output (the difficulty's zeros are at
/// the other end).
pub(crate) fn key_of(hash: &BlockHash) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&hash.as_byte_array()[..8]);
    u64::from_le_bytes(word)
}

/// Entry ids, findable by the 8-byte key of their block hash.
#[derive(Debug, Clone)]
pub(crate) struct HashIndex {
    table: HashTable<u32>,
    k0: u64,
    k1: u64,
}

impl Default for HashIndex {
    fn default() -> HashIndex {
        // std's per-process random SipHash keys, so no other randomness
        // source is needed.
        let random = RandomState::new();
        HashIndex {
            table: HashTable::new(),
            k0: random.hash_one(0x6e6a_6b30_u64),
            k1: random.hash_one(0x6e6a_6b31_u64) | 1,
        }
    }
}

impl HashIndex {
    fn slot_hash(&self, key: u64) -> u64 {
        fold(self.k0 ^ key, self.k1)
    }

    /// Makes room for `more` ids without growing on the way.
    pub(crate) fn reserve(&mut self, more: usize, keys: &[u64]) {
        let (k0, k1) = (self.k0, self.k1);
        self.table
            .reserve(more, |&id| fold(k0 ^ keys[id as usize], k1));
    }

    /// Adds `id`, whose key is `keys[id]`. `keys` holds every indexed
    /// id's key (the table rehashes from it when it grows).
    pub(crate) fn insert(&mut self, id: u32, keys: &[u64]) {
        let (k0, k1) = (self.k0, self.k1);
        let hash = self.slot_hash(keys[id as usize]);
        self.table
            .insert_unique(hash, id, |&id| fold(k0 ^ keys[id as usize], k1));
    }

    /// The first id with key `key` for which `confirm` holds (it checks
    /// the full hash; ids of equal keys are offered in turn).
    pub(crate) fn find(
        &self,
        key: u64,
        keys: &[u64],
        mut confirm: impl FnMut(u32) -> bool,
    ) -> Option<u32> {
        self.table
            .find(self.slot_hash(key), |&id| {
                keys.get(id as usize) == Some(&key) && confirm(id)
            })
            .copied()
    }

    /// Removes `id`, whose key is `key`.
    pub(crate) fn remove(&mut self, id: u32, key: u64) {
        if let Ok(entry) = self.table.find_entry(self.slot_hash(key), |&x| x == id) {
            entry.remove();
        }
    }

    /// Keeps only the ids for which `keep` holds.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(u32) -> bool) {
        self.table.retain(|id| keep(*id));
    }

    /// Ids held.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.table.len()
    }

    /// Bytes the table has allocated (slots and control bytes), for the
    /// memory figures.
    pub(crate) fn allocated_bytes(&self) -> usize {
        let buckets = if self.table.capacity() == 0 {
            0
        } else {
            (self.table.capacity() * 8 / 7).next_power_of_two()
        };
        buckets * (std::mem::size_of::<u32>() + 1)
    }
}

/// The folded 64×64→128-bit multiply (as in foldhash/ahash): every input
/// bit reaches the high and the low output bits.
fn fold(x: u64, k: u64) -> u64 {
    let full = u128::from(x) * u128::from(k);
    (full as u64) ^ ((full >> 64) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_keys_are_told_apart_by_the_confirmation() {
        let mut index = HashIndex::default();
        // Two ids with one key: what a forged `prev_blockhash` sharing a
        // real block's first 8 bytes looks like.
        let keys = vec![7u64, 7, 9];
        for id in 0..3 {
            index.insert(id, &keys);
        }
        assert_eq!(index.find(7, &keys, |id| id == 1), Some(1));
        assert_eq!(index.find(7, &keys, |id| id == 0), Some(0));
        assert_eq!(index.find(7, &keys, |_| false), None);
        assert_eq!(index.find(9, &keys, |_| true), Some(2));
        index.remove(0, 7);
        assert_eq!(index.find(7, &keys, |_| true), Some(1));
        index.retain(|id| id != 1);
        assert_eq!(index.find(7, &keys, |_| true), None);
        assert_eq!(index.len(), 1);
    }

    #[test]
    fn keys_alike_in_their_low_bits_spread_over_slots() {
        let index = HashIndex::default();
        let mut seen = std::collections::HashSet::new();
        for i in 0u64..1000 {
            seen.insert(index.slot_hash(i << 32) & 0xffff);
        }
        assert!(seen.len() > 900, "{}", seen.len());
    }
}
