//! One bucketed table (new or tried): which entry sits in which slot, plus a
//! per-network index of the occupied slots for selection.

use super::params::BUCKET_SIZE;
use super::slot_index::SlotIndex;
use crate::netaddr::{NetworkId, NetworkSet};

/// An entry's id: its index in the manager's entry slab.
pub(crate) type EntryId = u32;

/// Marks an empty slot.
const EMPTY: EntryId = EntryId::MAX;

/// A table of `buckets × BUCKET_SIZE` slots.
#[derive(Debug, Clone)]
pub(crate) struct Table {
    slots: Vec<EntryId>,
    by_network: [SlotIndex; NetworkId::COUNT],
}

impl Table {
    /// An empty table of `buckets` buckets.
    pub(crate) fn new(buckets: usize) -> Self {
        Table {
            slots: vec![EMPTY; buckets * BUCKET_SIZE],
            by_network: std::array::from_fn(|_| SlotIndex::new(buckets)),
        }
    }

    /// Slots in the table.
    pub(crate) fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// The entry in `slot`, if any.
    pub(crate) fn get(&self, slot: usize) -> Option<EntryId> {
        self.slots.get(slot).copied().filter(|id| *id != EMPTY)
    }

    /// Puts `id` (an entry on `network`) into the empty `slot`.
    pub(crate) fn put(&mut self, slot: usize, id: EntryId, network: NetworkId) {
        if let Some(s) = self.slots.get_mut(slot) {
            debug_assert_eq!(*s, EMPTY, "slot {slot} is taken");
            *s = id;
            self.by_network[network.index()].insert(slot);
        }
    }

    /// Empties `slot`, which holds an entry on `network`; returns that entry.
    pub(crate) fn take(&mut self, slot: usize, network: NetworkId) -> Option<EntryId> {
        let s = self.slots.get_mut(slot)?;
        let id = std::mem::replace(s, EMPTY);
        if id == EMPTY {
            return None;
        }
        self.by_network[network.index()].remove(slot);
        Some(id)
    }

    /// Occupied slots on `network`.
    pub(crate) fn count(&self, network: NetworkId) -> u32 {
        self.by_network[network.index()].len()
    }

    /// Occupied slots on any of `networks`.
    pub(crate) fn count_in(&self, networks: NetworkSet) -> u32 {
        networks.iter().map(|n| self.count(n)).sum()
    }

    /// The `k`-th occupied slot among those on `networks` (networks in
    /// Core's order, slots in slot order within each).
    pub(crate) fn kth_in(&self, networks: NetworkSet, mut k: u32) -> Option<usize> {
        for n in networks.iter() {
            let c = self.count(n);
            if k < c {
                return self.by_network[n.index()].kth(k);
            }
            k -= c;
        }
        None
    }
}
