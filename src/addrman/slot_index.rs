//! An index of the occupied slots of one table on one network, for uniform
//! random picks in O(log buckets).
//!
//! Core selects by drawing random (bucket, slot) pairs until it hits an
//! occupied slot on a wanted network. That is uniform over the occupied
//! slots, but its cost grows as the wanted networks get rarer (a hundred
//! draws to find one onion address among 1 % onion entries). We draw from
//! the same distribution directly: a bitmap per bucket (64 slots = one
//! `u64`) and a Fenwick tree of per-bucket counts find the k-th occupied
//! slot in about ten steps.
//!
//! The index depends only on *which* slots are occupied, never on the order
//! they were filled in, so a manager restored from disk picks exactly as the
//! original did.

use super::params::BUCKET_SIZE;

/// Occupied slots of one (table, network) pair.
#[derive(Debug, Clone)]
pub(crate) struct SlotIndex {
    /// Bit `p` of `bits[b]` is set when slot `b * 64 + p` is occupied.
    bits: Vec<u64>,
    /// Fenwick tree (1-based) over the per-bucket occupied counts.
    tree: Vec<u32>,
    /// Occupied slots in total.
    total: u32,
}

// One bucket is exactly one bitmap word.
const _: () = assert!(BUCKET_SIZE == 64);

impl SlotIndex {
    /// An empty index for a table of `buckets` buckets (a power of two).
    pub(crate) fn new(buckets: usize) -> Self {
        debug_assert!(buckets.is_power_of_two());
        SlotIndex {
            bits: vec![0; buckets],
            tree: vec![0; buckets + 1],
            total: 0,
        }
    }

    /// Occupied slots.
    pub(crate) fn len(&self) -> u32 {
        self.total
    }

    /// Marks `slot` occupied. Returns false if it already was.
    pub(crate) fn insert(&mut self, slot: usize) -> bool {
        let (bucket, bit) = split(slot);
        let Some(word) = self.bits.get_mut(bucket) else {
            return false;
        };
        if *word & bit != 0 {
            return false;
        }
        *word |= bit;
        self.add(bucket, true);
        true
    }

    /// Marks `slot` empty. Returns false if it already was.
    pub(crate) fn remove(&mut self, slot: usize) -> bool {
        let (bucket, bit) = split(slot);
        let Some(word) = self.bits.get_mut(bucket) else {
            return false;
        };
        if *word & bit == 0 {
            return false;
        }
        *word &= !bit;
        self.add(bucket, false);
        true
    }

    /// The `k`-th occupied slot (0-based, in slot order), if `k < len()`.
    pub(crate) fn kth(&self, k: u32) -> Option<usize> {
        if k >= self.total {
            return None;
        }
        // Fenwick descent: find the bucket holding the k-th occupied slot.
        let buckets = self.bits.len();
        let mut pos = 0usize;
        let mut rest = k;
        let mut step = buckets;
        while step > 0 {
            let next = pos + step;
            if next <= buckets && self.tree[next] <= rest {
                pos = next;
                rest -= self.tree[next];
            }
            step >>= 1;
        }
        // `pos` buckets come before it; `rest` occupied slots precede it in its bucket.
        let word = *self.bits.get(pos)?;
        Some(pos * BUCKET_SIZE + select_bit(word, rest)?)
    }

    /// Adds (or removes) one occupied slot to `bucket`'s count.
    fn add(&mut self, bucket: usize, inc: bool) {
        let mut i = bucket + 1;
        while i < self.tree.len() {
            if inc {
                self.tree[i] += 1;
            } else {
                self.tree[i] -= 1;
            }
            i += i & i.wrapping_neg();
        }
        if inc {
            self.total += 1;
        } else {
            self.total -= 1;
        }
    }
}

/// A slot's bucket and its bit within the bucket's word.
fn split(slot: usize) -> (usize, u64) {
    (slot / BUCKET_SIZE, 1u64 << (slot % BUCKET_SIZE))
}

/// The position of the `k`-th set bit of `word` (0-based), by halving.
fn select_bit(word: u64, k: u32) -> Option<usize> {
    if k >= word.count_ones() {
        return None;
    }
    let mut word = word;
    let mut k = k;
    let mut pos = 0usize;
    for shift in [32u32, 16, 8, 4, 2, 1] {
        let low = (word & ((1u64 << shift) - 1)).count_ones();
        if k >= low {
            k -= low;
            word >>= shift;
            pos += shift as usize;
        }
    }
    Some(pos)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn select_bit_matches_naive() {
        let words = [
            1u64,
            0x8000_0000_0000_0000,
            u64::MAX,
            0xdead_beef_0000_f00d,
            0x10,
        ];
        for w in words {
            let naive: Vec<usize> = (0..64).filter(|i| w >> i & 1 == 1).collect();
            for (k, want) in naive.iter().enumerate() {
                assert_eq!(select_bit(w, k as u32), Some(*want));
            }
            assert_eq!(select_bit(w, naive.len() as u32), None);
        }
    }

    proptest! {
        #[test]
        fn kth_matches_a_sorted_set(ops in proptest::collection::vec((any::<bool>(), 0usize..(16 * 64)), 0..400)) {
            let mut idx = SlotIndex::new(16);
            let mut set = std::collections::BTreeSet::new();
            for (insert, slot) in ops {
                if insert {
                    prop_assert_eq!(idx.insert(slot), set.insert(slot));
                } else {
                    prop_assert_eq!(idx.remove(slot), set.remove(&slot));
                }
            }
            prop_assert_eq!(idx.len() as usize, set.len());
            for (k, slot) in set.iter().enumerate() {
                prop_assert_eq!(idx.kth(k as u32), Some(*slot));
            }
            prop_assert_eq!(idx.kth(set.len() as u32), None);
        }
    }

    #[test]
    fn out_of_range_slots_are_ignored() {
        let mut idx = SlotIndex::new(4);
        assert!(!idx.insert(4 * 64));
        assert!(!idx.remove(4 * 64));
        assert_eq!(idx.len(), 0);
    }
}
