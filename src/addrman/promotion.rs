//! Promotion to the tried table, and test-before-evict: a newcomer whose
//! tried slot is taken waits until the incumbent has been tested.

use rand::Rng;

use super::entry::Placement;
use super::params::{COLLISION_TEST_GRACE, REPLACEMENT, TEST_WINDOW, TRIED_COLLISION_SET_SIZE};
use super::table::EntryId;
use super::{AddrMan, GoodOutcome, Selected, TRIED};
use crate::netaddr::NetAddr;

impl AddrMan {
    /// Settles waiting tried-table collisions (Core's `ResolveCollisions`):
    /// the incumbent stays if it connected within
    /// [`REPLACEMENT`]; the newcomer wins if the incumbent's test
    /// failed (tried over [`COLLISION_TEST_GRACE`] ago without
    /// success), or if nobody tested it within [`TEST_WINDOW`].
    /// Call it before each feeler.
    pub fn resolve_collisions(&mut self, now: u64) {
        let pending = std::mem::take(&mut self.tried_collisions);
        for addr in pending {
            if !self.resolve_one(&addr, now) {
                self.tried_collisions.push(addr);
            }
        }
    }

    /// Whether the collision of `addr` is settled (and can be dropped).
    fn resolve_one(&mut self, addr: &NetAddr, now: u64) -> bool {
        let Some(id_new) = self.by_addr.get(addr).copied() else {
            return true;
        };
        let Some(newcomer) = self.entry(id_new) else {
            return true;
        };
        if newcomer.is_tried() {
            return true;
        }
        let newcomer_success = newcomer.last_success;
        let slot = self.key.tried_slot(addr);
        let Some(incumbent) = self.tried_table.get(slot).and_then(|id| self.entry(id)) else {
            // The slot emptied meanwhile: no collision any more.
            self.good_id(id_new, now, false);
            return true;
        };
        let since_success = now.saturating_sub(incumbent.last_success);
        let since_try = now.saturating_sub(incumbent.last_try);
        if incumbent.last_success != 0 && since_success < REPLACEMENT {
            true
        } else if incumbent.last_try != 0 && since_try < REPLACEMENT {
            if since_try > COLLISION_TEST_GRACE {
                self.good_id(id_new, now, false);
                true
            } else {
                false
            }
        } else if now.saturating_sub(newcomer_success) > TEST_WINDOW {
            self.good_id(id_new, now, false);
            true
        } else {
            false
        }
    }

    /// The tried entry a waiting newcomer would evict, to be tested with a
    /// feeler connection (Core's `SelectTriedCollision`).
    pub fn select_tried_collision<R: Rng + ?Sized>(&mut self, rng: &mut R) -> Option<Selected> {
        while !self.tried_collisions.is_empty() {
            let i = rng.random_range(0..self.tried_collisions.len());
            let addr = self.tried_collisions[i];
            if self.by_addr.contains_key(&addr) {
                let slot = self.key.tried_slot(&addr);
                return self
                    .tried_table
                    .get(slot)
                    .and_then(|id| self.entry(id))
                    .map(Selected::from_entry);
            }
            self.tried_collisions.swap_remove(i);
        }
        None
    }

    /// Core's `Good_`: records the success and promotes, unless
    /// `test_before_evict` finds the tried slot taken.
    pub(super) fn good_id(
        &mut self,
        id: EntryId,
        now: u64,
        test_before_evict: bool,
    ) -> GoodOutcome {
        let Some(e) = self.entry_mut(id) else {
            return GoodOutcome::Unknown;
        };
        e.last_success = now;
        e.last_try = now;
        e.attempts = 0;
        // `last_seen` stays: updating it would tell gossip whom we connect to.
        if e.is_tried() {
            return GoodOutcome::AlreadyTried;
        }
        let addr = e.addr;
        let slot = self.key.tried_slot(&addr);
        if test_before_evict
            && let Some(existing) = self.tried_table.get(slot).and_then(|o| self.entry(o))
        {
            let existing = existing.addr;
            if self.tried_collisions.len() < TRIED_COLLISION_SET_SIZE
                && !self.tried_collisions.contains(&addr)
            {
                self.tried_collisions.push(addr);
            }
            return GoodOutcome::Collision { existing };
        }
        self.make_tried(id, slot);
        GoodOutcome::Promoted
    }

    /// Moves entry `id` from the new table into tried `slot`; an incumbent
    /// goes back to the new table (Core's `MakeTried`).
    pub(super) fn make_tried(&mut self, id: EntryId, slot: usize) {
        self.remove_from_tables(id);
        if let Some(old_id) = self.tried_table.get(slot) {
            self.remove_from_tables(old_id);
            if let Some(old) = self.entry(old_id) {
                let back = self.key.new_slot(&old.addr, &old.source);
                self.clear_new_slot(back);
                self.put_new(old_id, back);
            }
        }
        let Some(e) = self.entry_mut(id) else {
            return;
        };
        let net = e.addr.network();
        // Slot indexes fit u16: the tried table has 16 384 slots.
        e.placement = Placement::Tried(slot as u16);
        self.counts[TRIED][net.index()] += 1;
        self.tried_table.put(slot, id, net);
    }
}
