//! A cheap hasher for maps keyed by block hash.
//!
//! The index of a header chain is probed three times per accepted header
//! (duplicate check, parent lookup, insertion). With std's SipHash-1-3 over
//! 32 bytes those probes cost about as much as the rest of validation short
//! of the SHA-256d itself. A block hash is already the output of a
//! cryptographic hash, so its first 8 bytes are as uniform as any hasher
//! could make them: the hasher here only folds them with a per-map random
//! key. The key matters because headers on cheap networks (regtest, signet
//! spam, low-difficulty testnet forks) can be ground until their hashes
//! share low bits, which would pile them into one bucket chain if the raw
//! bytes picked the bucket; a folded multiply by a secret odd key spreads
//! every bit of the input over the output, so such grinding needs the key.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher, RandomState};

/// A map keyed by block hash (or any 32-byte hash) with [`HashKeyState`].
pub(crate) type HashKeyMap<K, V> = HashMap<K, V, HashKeyState>;

/// Builds [`HashKeyHasher`]s sharing one random key.
#[derive(Debug, Clone)]
pub(crate) struct HashKeyState {
    k0: u64,
    k1: u64,
}

impl HashKeyState {
    /// A state with a fresh random key, taken from std's own per-process
    /// random SipHash keys (no extra randomness source needed).
    pub(crate) fn new() -> HashKeyState {
        let random = RandomState::new();
        let k0 = random.hash_one(0x6e6a_6b30_u64);
        let k1 = random.hash_one(0x6e6a_6b31_u64) | 1;
        HashKeyState { k0, k1 }
    }
}

impl Default for HashKeyState {
    fn default() -> HashKeyState {
        HashKeyState::new()
    }
}

impl BuildHasher for HashKeyState {
    type Hasher = HashKeyHasher;

    fn build_hasher(&self) -> HashKeyHasher {
        HashKeyHasher {
            k1: self.k1,
            state: self.k0,
        }
    }
}

/// Hashes a cryptographic hash by folding its first 8 bytes with the key.
#[derive(Debug, Clone)]
pub(crate) struct HashKeyHasher {
    k1: u64,
    state: u64,
}

impl Hasher for HashKeyHasher {
    fn write(&mut self, bytes: &[u8]) {
        // A `[u8; 32]` key arrives here in one call (after its length);
        // only its first 8 bytes are used, the rest being no more random.
        // Any other input is still hashed deterministically, one 8-byte
        // word at most per call, which is all `Hash` requires.
        let mut word = [0u8; 8];
        let n = bytes.len().min(8);
        word[..n].copy_from_slice(&bytes[..n]);
        self.state = fold(self.state ^ u64::from_le_bytes(word), self.k1);
    }

    fn write_usize(&mut self, _len: usize) {
        // The slice length prefix of a fixed-size key: constant, so it
        // carries nothing worth the multiply.
    }

    fn finish(&self) -> u64 {
        self.state
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
    fn equal_keys_hash_equal_and_low_bits_spread() {
        let state = HashKeyState::new();
        let a = [7u8; 32];
        assert_eq!(state.hash_one(a), state.hash_one(a));
        // Keys alike in their low 32 bits still land in different buckets.
        let mut seen = std::collections::HashSet::new();
        for i in 0u64..1000 {
            let mut key = [0u8; 32];
            key[..8].copy_from_slice(&(i << 32).to_le_bytes());
            seen.insert(state.hash_one(key) & 0xffff);
        }
        assert!(seen.len() > 900, "{}", seen.len());
    }
}
