//! What the manager knows about one address, and how it judges it.

use crate::wire::ServiceFlags;

use super::params::{
    FAILED_ATTEMPT_FACTOR, FUTURE_SLACK, HORIZON, MAX_FAILURES, MAX_PENALISED_ATTEMPTS, MIN_FAIL,
    NEW_BUCKETS_PER_ADDRESS, RECENT_TRY, RECENT_TRY_FACTOR, RETRIES, TERRIBLE_GRACE,
};
use crate::netaddr::{NetAddr, NetGroup};

/// Where an entry sits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Placement {
    /// In the new table, in 1 to [`NEW_BUCKETS_PER_ADDRESS`] slots.
    New(NewRefs),
    /// In one slot of the tried table.
    Tried(u16),
}

/// The new-table slots one entry occupies (Core's `nRefCount` and the
/// positions it counts, kept so removal needs no search).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct NewRefs {
    slots: [u16; NEW_BUCKETS_PER_ADDRESS],
    len: u8,
}

impl NewRefs {
    /// The occupied slots.
    pub(crate) fn slots(&self) -> &[u16] {
        &self.slots[..usize::from(self.len)]
    }

    /// How many slots (Core's `nRefCount`).
    pub(crate) fn count(&self) -> usize {
        usize::from(self.len)
    }

    /// Adds a slot; false if already at [`NEW_BUCKETS_PER_ADDRESS`].
    pub(crate) fn push(&mut self, slot: u16) -> bool {
        match self.slots.get_mut(usize::from(self.len)) {
            Some(s) => {
                *s = slot;
                self.len += 1;
                true
            }
            None => false,
        }
    }

    /// Removes a slot, if present.
    pub(crate) fn remove(&mut self, slot: u16) {
        if let Some(i) = self.slots().iter().position(|s| *s == slot) {
            let last = usize::from(self.len) - 1;
            self.slots.swap(i, last);
            self.len -= 1;
        }
    }
}

/// One known address (Core's `AddrInfo`). Times are unix seconds; 0 = never.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    /// The address.
    pub(crate) addr: NetAddr,
    /// Services last announced for it.
    pub(crate) services: ServiceFlags,
    /// The group of the source we first heard it from; decides its new
    /// bucket again if it is ever evicted from the tried table.
    pub(crate) source: NetGroup,
    /// When the network last saw it (Core's `nTime`).
    pub(crate) last_seen: u64,
    /// Our last connection attempt (Core's `m_last_try`).
    pub(crate) last_try: u64,
    /// Our last *counted* failed attempt (Core's `m_last_count_attempt`).
    pub(crate) last_count_attempt: u64,
    /// Our last successful handshake (Core's `m_last_success`).
    pub(crate) last_success: u64,
    /// Failed attempts since the last success (Core's `nAttempts`).
    pub(crate) attempts: u32,
    /// Which table, and which slots.
    pub(crate) placement: Placement,
    /// Position in the manager's `random` vector.
    pub(crate) random_pos: u32,
}

impl Entry {
    /// A never-tried entry for the new table, heard of from `source`, last
    /// seen by the network at `last_seen`.
    pub(crate) fn fresh(
        addr: NetAddr,
        services: ServiceFlags,
        source: NetGroup,
        last_seen: u64,
    ) -> Self {
        Entry {
            addr,
            services,
            source,
            last_seen,
            last_try: 0,
            last_count_attempt: 0,
            last_success: 0,
            attempts: 0,
            placement: Placement::New(NewRefs::default()),
            random_pos: 0,
        }
    }

    /// Whether it is in the tried table.
    pub(crate) fn is_tried(&self) -> bool {
        matches!(self.placement, Placement::Tried(_))
    }

    /// New-table references (0 when tried).
    pub(crate) fn ref_count(&self) -> usize {
        match &self.placement {
            Placement::New(refs) => refs.count(),
            Placement::Tried(_) => 0,
        }
    }

    /// Whether the entry is so unpromising that others may overwrite it and
    /// gossip should not spread it (Core's `IsTerrible`).
    pub(crate) fn is_terrible(&self, now: u64) -> bool {
        if self.last_try != 0 && now.saturating_sub(self.last_try) <= TERRIBLE_GRACE {
            return false;
        }
        if self.last_seen > now.saturating_add(FUTURE_SLACK) {
            return true;
        }
        if now.saturating_sub(self.last_seen) > HORIZON {
            return true;
        }
        if self.last_success == 0 && self.attempts >= RETRIES {
            return true;
        }
        now.saturating_sub(self.last_success) > MIN_FAIL && self.attempts >= MAX_FAILURES
    }

    /// The relative chance selection accepts this entry (Core's `GetChance`).
    pub(crate) fn chance(&self, now: u64) -> f64 {
        let mut chance = 1.0;
        if self.last_try != 0 && now.saturating_sub(self.last_try) < RECENT_TRY {
            chance *= RECENT_TRY_FACTOR;
        }
        let penalised = self.attempts.min(MAX_PENALISED_ATTEMPTS);
        chance * FAILED_ATTEMPT_FACTOR.powi(penalised as i32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netaddr::Host;

    const DAY: u64 = 24 * 60 * 60;
    const NOW: u64 = 1_700_000_000;

    fn entry() -> Entry {
        let addr = NetAddr::new(Host::TorV3([1; 32]), 8333);
        Entry::fresh(addr, ServiceFlags::NETWORK, addr.netgroup(), NOW - DAY)
    }

    #[test]
    fn terrible_rules() {
        assert!(!entry().is_terrible(NOW));
        let old = Entry {
            last_seen: NOW - 31 * DAY,
            ..entry()
        };
        assert!(old.is_terrible(NOW));
        let future = Entry {
            last_seen: NOW + 11 * 60,
            ..entry()
        };
        assert!(future.is_terrible(NOW));
        let never = Entry {
            attempts: 3,
            ..entry()
        };
        assert!(never.is_terrible(NOW));
        let failing = Entry {
            attempts: 10,
            last_success: NOW - 8 * DAY,
            ..entry()
        };
        assert!(failing.is_terrible(NOW));
        let recovering = Entry {
            attempts: 9,
            last_success: NOW - 8 * DAY,
            ..entry()
        };
        assert!(!recovering.is_terrible(NOW));
        // Just tried: never terrible, whatever else is wrong.
        let just_tried = Entry {
            last_try: NOW - 30,
            ..old
        };
        assert!(!just_tried.is_terrible(NOW));
    }

    #[test]
    fn chance_rules() {
        assert_eq!(entry().chance(NOW), 1.0);
        let recent = Entry {
            last_try: NOW - 60,
            ..entry()
        };
        assert!((recent.chance(NOW) - 0.01).abs() < 1e-12);
        let failed = Entry {
            attempts: 2,
            ..entry()
        };
        assert!((failed.chance(NOW) - 0.66 * 0.66).abs() < 1e-12);
        let many = Entry {
            attempts: 100,
            ..entry()
        };
        assert!((many.chance(NOW) - 0.66f64.powi(8)).abs() < 1e-12);
    }

    #[test]
    fn new_refs_push_and_remove() {
        let mut r = NewRefs::default();
        for s in 0..8 {
            assert!(r.push(s));
        }
        assert!(!r.push(9));
        r.remove(3);
        assert_eq!(r.count(), 7);
        assert!(!r.slots().contains(&3));
        r.remove(42);
        assert_eq!(r.count(), 7);
    }
}
