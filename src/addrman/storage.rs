//! The entry slab and its table bookkeeping: creating and deleting entries,
//! and keeping slots, references, counts and the order vector in step.
//! Nothing here decides anything; the policy lives in the callers.

use super::entry::{Entry, NewRefs, Placement};
use super::table::EntryId;
use super::{AddrMan, NEW, TRIED};
use crate::netaddr::NetAddr;

impl AddrMan {
    pub(super) fn entry(&self, id: EntryId) -> Option<&Entry> {
        self.entries.get(id as usize).and_then(Option::as_ref)
    }

    pub(super) fn entry_mut(&mut self, id: EntryId) -> Option<&mut Entry> {
        self.entries.get_mut(id as usize).and_then(Option::as_mut)
    }

    pub(super) fn lookup(&self, addr: &NetAddr) -> Option<(EntryId, &Entry)> {
        let id = *self.by_addr.get(addr)?;
        self.entry(id).map(|e| (id, e))
    }

    pub(super) fn lookup_mut(&mut self, addr: &NetAddr) -> Option<&mut Entry> {
        let id = *self.by_addr.get(addr)?;
        self.entry_mut(id)
    }

    /// Stores a new entry (in no table yet) and returns its id.
    pub(super) fn create(&mut self, mut entry: Entry) -> EntryId {
        entry.random_pos = self.random.len() as u32;
        let addr = entry.addr;
        let id = match self.free.pop() {
            Some(id) => {
                if let Some(slot) = self.entries.get_mut(id as usize) {
                    *slot = Some(entry);
                }
                id
            }
            None => {
                self.entries.push(Some(entry));
                (self.entries.len() - 1) as EntryId
            }
        };
        self.random.push(id);
        self.by_addr.insert(addr, id);
        id
    }

    /// Removes an entry that is in no table any more.
    pub(super) fn delete(&mut self, id: EntryId) {
        let Some(entry) = self.entries.get_mut(id as usize).and_then(Option::take) else {
            return;
        };
        debug_assert_eq!(entry.ref_count(), 0);
        debug_assert!(!entry.is_tried());
        self.by_addr.remove(&entry.addr);
        let pos = entry.random_pos as usize;
        if pos >= self.random.len() {
            debug_assert!(false, "stale random position");
            return;
        }
        self.random.swap_remove(pos);
        if let Some(&moved) = self.random.get(pos)
            && let Some(e) = self.entry_mut(moved)
        {
            e.random_pos = pos as u32;
        }
        self.free.push(id);
    }

    /// Takes an entry out of whichever table holds it (it stays in the slab).
    pub(super) fn remove_from_tables(&mut self, id: EntryId) {
        let Some(e) = self.entry_mut(id) else {
            return;
        };
        let net = e.addr.network();
        match std::mem::replace(&mut e.placement, Placement::New(NewRefs::default())) {
            Placement::New(refs) => {
                if refs.count() > 0 {
                    self.counts[NEW][net.index()] -= 1;
                }
                for slot in refs.slots() {
                    self.new_table.take(usize::from(*slot), net);
                }
            }
            Placement::Tried(slot) => {
                self.counts[TRIED][net.index()] -= 1;
                self.tried_table.take(usize::from(slot), net);
            }
        }
    }

    /// Puts entry `id` into the empty new-table `slot`.
    pub(super) fn put_new(&mut self, id: EntryId, slot: usize) {
        let Some(e) = self.entry_mut(id) else {
            return;
        };
        let net = e.addr.network();
        let Placement::New(refs) = &mut e.placement else {
            return;
        };
        // Slot indexes fit u16: the new table has 65 536 slots.
        if !refs.push(slot as u16) {
            return;
        }
        if refs.count() == 1 {
            self.counts[NEW][net.index()] += 1;
        }
        self.new_table.put(slot, id, net);
    }

    /// Empties a new-table slot; the entry there loses a reference and is
    /// deleted when it has none left (Core's `ClearNew`).
    pub(super) fn clear_new_slot(&mut self, slot: usize) {
        let Some(id) = self.new_table.get(slot) else {
            return;
        };
        let Some(e) = self.entry_mut(id) else {
            return;
        };
        let net = e.addr.network();
        let orphaned = match &mut e.placement {
            Placement::New(refs) => {
                refs.remove(slot as u16);
                refs.count() == 0
            }
            Placement::Tried(_) => false,
        };
        self.new_table.take(slot, net);
        if orphaned {
            self.counts[NEW][net.index()] -= 1;
            self.delete(id);
        }
    }
}
