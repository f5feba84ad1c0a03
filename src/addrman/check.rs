//! The consistency check (Core's `CheckAddrman`), for tests and fuzzing.

use super::entry::Placement;
use super::key::TableKind;
use super::params::BUCKET_SIZE;
use super::table::EntryId;
use super::{AddrMan, NEW, TRIED};
use crate::netaddr::NetworkId;

impl AddrMan {
    /// Checks every internal invariant (Core's `CheckAddrman`): the tables,
    /// the per-entry placements, the lookup map, the order vector and the
    /// counts all agree, and every placement is where the key puts it.
    /// O(entries + slots): meant for tests and fuzzing.
    pub fn check_consistency(&self) -> Result<(), String> {
        let mut counts = [[0usize; NetworkId::COUNT]; 2];
        let mut live = 0usize;
        for (id, e) in self.entries.iter().enumerate() {
            let Some(e) = e else { continue };
            live += 1;
            let id = id as EntryId;
            if self.by_addr.get(&e.addr) != Some(&id) {
                return Err(format!("{} missing from the lookup map", e.addr));
            }
            if self.random.get(e.random_pos as usize) != Some(&id) {
                return Err(format!("{} has a stale random position", e.addr));
            }
            let net = e.addr.network().index();
            match &e.placement {
                Placement::Tried(slot) => {
                    counts[TRIED][net] += 1;
                    let slot = usize::from(*slot);
                    if self.tried_table.get(slot) != Some(id)
                        || self.key.tried_slot(&e.addr) != slot
                    {
                        return Err(format!("{} misplaced in tried", e.addr));
                    }
                }
                Placement::New(refs) => {
                    if refs.count() == 0 {
                        return Err(format!("{} is in no table", e.addr));
                    }
                    counts[NEW][net] += 1;
                    for slot in refs.slots() {
                        let slot = usize::from(*slot);
                        let bucket = slot / BUCKET_SIZE;
                        if self.new_table.get(slot) != Some(id)
                            || self.key.slot(TableKind::New, bucket, &e.addr) != slot
                        {
                            return Err(format!("{} misplaced in new", e.addr));
                        }
                    }
                }
            }
        }
        if live != self.by_addr.len() || live != self.random.len() {
            return Err("entry, map and order sizes differ".into());
        }
        if counts != self.counts {
            return Err("per-network counts are stale".into());
        }
        for (table, name) in [(&self.new_table, "new"), (&self.tried_table, "tried")] {
            let occupied = (0..table.capacity())
                .filter(|s| table.get(*s).is_some())
                .count();
            let indexed: u32 = NetworkId::ALL.iter().map(|n| table.count(*n)).sum();
            if occupied != indexed as usize {
                return Err(format!("{name} table index is stale"));
            }
        }
        Ok(())
    }
}
