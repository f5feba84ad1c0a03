//! The RPC server's connection slots (issue 16, D1).
//!
//! A slot taken before `accept` and held for a connection's life lets any
//! local process lock everyone out by holding idle connections open. So
//! connections are always accepted, and at the limit the *oldest idle* one
//! (no request in progress) is closed to make room: an idle attacker's
//! connections give way to a client that has something to ask, and a
//! client, which sends its request at once, is busy (so safe) before any
//! later arrival could evict it. Only when every slot is busy serving a
//! request is a newcomer turned away, with 503.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

/// The table of open connections, oldest first.
#[derive(Debug)]
pub(super) struct Slots {
    max: usize,
    table: Mutex<Table>,
}

#[derive(Debug, Default)]
struct Table {
    next: u64,
    open: BTreeMap<u64, Slot>,
}

#[derive(Debug)]
struct Slot {
    busy: bool,
    evict: Arc<Notify>,
}

/// A connection's slot; dropping it frees the slot.
#[derive(Debug)]
pub(super) struct SlotGuard {
    slots: Arc<Slots>,
    id: u64,
    evict: Arc<Notify>,
}

impl Slots {
    /// At most `max` connections at once.
    pub(super) fn new(max: usize) -> Arc<Slots> {
        Arc::new(Slots {
            max: max.max(1),
            table: Mutex::new(Table::default()),
        })
    }

    fn table(&self) -> MutexGuard<'_, Table> {
        // Plain bookkeeping, never left half-updated: a poisoned lock's
        // data is still right.
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A slot for a new connection, evicting the oldest idle one at the
    /// limit; `None` when every slot is serving a request.
    pub(super) fn admit(self: &Arc<Self>) -> Option<SlotGuard> {
        let mut table = self.table();
        if table.open.len() >= self.max {
            let oldest_idle = table
                .open
                .iter()
                .find(|(_, s)| !s.busy)
                .map(|(id, _)| *id)?;
            if let Some(evicted) = table.open.remove(&oldest_idle) {
                // `notify_one` keeps the wake-up if the connection is not
                // waiting yet.
                evicted.evict.notify_one();
            }
        }
        let id = table.next;
        table.next += 1;
        let evict = Arc::new(Notify::new());
        table.open.insert(
            id,
            Slot {
                busy: false,
                evict: Arc::clone(&evict),
            },
        );
        Some(SlotGuard {
            slots: Arc::clone(self),
            id,
            evict,
        })
    }

    /// Connections open now.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.table().open.len()
    }
}

impl SlotGuard {
    /// Resolves when the connection must give up its slot.
    pub(super) async fn evicted(&self) {
        self.evict.notified().await;
    }

    /// Mark the connection busy for as long as the returned guard lives.
    pub(super) fn busy(&self) -> BusyGuard {
        self.set_busy(true);
        BusyGuard {
            slots: Arc::clone(&self.slots),
            id: self.id,
        }
    }

    fn set_busy(&self, busy: bool) {
        set_busy(&self.slots, self.id, busy);
    }
}

fn set_busy(slots: &Slots, id: u64, busy: bool) {
    if let Some(slot) = slots.table().open.get_mut(&id) {
        slot.busy = busy;
    }
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        self.slots.table().open.remove(&self.id);
    }
}

/// A request in progress on a connection; the connection is idle again
/// when it is dropped.
#[derive(Debug)]
pub(super) struct BusyGuard {
    slots: Arc<Slots>,
    id: u64,
}

impl Drop for BusyGuard {
    fn drop(&mut self) {
        set_busy(&self.slots, self.id, false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_idle_connection_gives_way_and_busy_ones_never_do() {
        let slots = Slots::new(3);
        let a = slots.admit().unwrap();
        let b = slots.admit().unwrap();
        let c = slots.admit().unwrap();
        let _busy_a = a.busy();
        // Full: b is the oldest idle one.
        let d = slots.admit().unwrap();
        assert_eq!(slots.len(), 3);
        let evicted = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async {
                tokio::time::timeout(std::time::Duration::from_secs(1), b.evicted())
                    .await
                    .is_ok()
            });
        assert!(evicted, "b was told to go");
        let _busy_c = c.busy();
        let _busy_d = d.busy();
        assert!(slots.admit().is_none(), "all busy: 503");
        drop(_busy_d);
        assert!(slots.admit().is_some(), "d idle again: it gives way");
    }
}
