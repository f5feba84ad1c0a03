//! The address manager: whom we may dial, and whom we tell about others.
//!
//! It decides whom we trust with our connections, so its job is to stay
//! diverse when someone floods it. The design is Bitcoin Core's
//! (`addrman.cpp`), made network-aware and deterministic:
//!
//! - **Two keyed tables.** The *new* table (1 024 buckets × 64 slots) holds
//!   addresses we heard about; the *tried* table (256 × 64) holds addresses
//!   we completed a handshake with. An address's bucket and slot come from a
//!   keyed hash ([`AddrManKey`]) of its [`NetGroup`](crate::netaddr::NetGroup) and of the group of the
//!   source that told us, so one source group reaches at most 64 new
//!   buckets, one address group at most 8 tried buckets, and nobody can
//!   predict which slots to aim at. See [`crate::netaddr::NetGroup`] for the
//!   onion, I2P and CJDNS groups and what protects those networks.
//! - **Eviction with care.** A newcomer takes an occupied new slot only from
//!   a "terrible" entry or one also held elsewhere; promotion into an
//!   occupied tried slot waits until the incumbent has been tested
//!   (test-before-evict, [`AddrMan::resolve_collisions`]).
//! - **Selection** ([`AddrMan::select`]) is uniform over occupied slots of the
//!   wanted networks, weighted by each entry's recent failures, with an
//!   optional onion preference and filters for services and netgroups
//!   already in use. Its cost does not depend on the table size.
//! - **Persistence** is a versioned, checksummed file ([`AddrMan::to_bytes`],
//!   [`AddrMan::load_file`], [`load_or_recover`]).
//!
//! # Sans-IO
//!
//! Nothing here reads a clock or owns randomness: every call that needs the
//! time takes `now` (unix seconds, as addr gossip carries them) and every
//! call that needs chance takes the caller's RNG. With the same key, inputs
//! and RNG seed, a manager — also one restored from disk — makes the same
//! choices. Only the persistence helpers touch the file system.

mod addr_map;
mod check;
mod entry;
mod info;
mod key;
pub mod params;
mod persist;
mod promotion;
mod seeds;
mod select;
mod slot_index;
mod source;
mod storage;
mod table;

use std::collections::BTreeSet;

use crate::wire::AddrV2Message;
use crate::wire::ServiceFlags;
use rand::Rng;

use crate::netaddr::{AddrV2Error, Host, I2P_PORT, NetAddr, NetworkId, NetworkSet};
use addr_map::AddrMap;
use entry::Entry;
use params::{
    BAD_TIMESTAMP_AGE, CONNECTED_UPDATE_INTERVAL, FUTURE_SLACK, MIN_SANE_TIMESTAMP,
    NEW_BUCKET_COUNT, NEW_BUCKETS_PER_ADDRESS, OFFLINE_UPDATE_INTERVAL, ONLINE_UPDATE_INTERVAL,
    ONLINE_WINDOW, TRIED_BUCKET_COUNT,
};
use table::{EntryId, Table};

pub use info::{AddrManInfo, TableCounts};
pub use key::{ADDRMAN_KEY_LEN, AddrManKey};
pub use persist::{
    CorruptReason, DecodeError, FILE_MAGIC, FORMAT_VERSION, LoadError, MAX_FILE_LEN, Recovery,
    Startup, load_or_recover,
};
pub use seeds::fixed_seeds;
pub use select::{Selected, Want};
pub use source::{AddrSource, InternalSource};

/// An address as gossip carries it: where, what it offers, when last seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddrRecord {
    /// The address.
    pub addr: NetAddr,
    /// The services it announced.
    pub services: ServiceFlags,
    /// When the network last saw it, in unix seconds (addrv2's `time`).
    pub last_seen: u64,
}

impl AddrRecord {
    /// The record from an addrv2 entry; fails for addresses we cannot store.
    pub fn from_addrv2(msg: &AddrV2Message) -> Result<Self, AddrV2Error> {
        Ok(AddrRecord {
            addr: NetAddr::try_from(msg)?,
            services: msg.services,
            last_seen: u64::from(msg.time),
        })
    }

    /// The record as an addrv2 entry (times past 2106 are clamped).
    pub fn to_addrv2(&self) -> AddrV2Message {
        AddrV2Message {
            time: u32::try_from(self.last_seen).unwrap_or(u32::MAX),
            services: self.services,
            addr: self.addr.to_addrv2(),
            port: self.addr.port,
        }
    }
}

/// What [`AddrMan::good`] did with a peer we completed a handshake with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GoodOutcome {
    /// Moved to the tried table.
    Promoted,
    /// It was already in the tried table; its success was recorded.
    AlreadyTried,
    /// We do not know the address (e.g. a manual peer); nothing to do.
    Unknown,
    /// Its tried slot holds `existing`. The newcomer waits (test-before-evict):
    /// open a feeler to [`AddrMan::select_tried_collision`]'s pick, then
    /// call [`AddrMan::resolve_collisions`]. At most
    /// [`params::TRIED_COLLISION_SET_SIZE`] newcomers wait at once; others
    /// stay in the new table until they connect again.
    Collision {
        /// The tried entry that would be evicted.
        existing: NetAddr,
    },
}

/// The address manager. See the module docs.
pub struct AddrMan {
    /// The chain whose peers these are (fixed seeds and the state file depend on it).
    network: bitcoin::Network,
    /// The bucketing secret.
    key: AddrManKey,
    /// Entry slab; `None` marks a free id.
    entries: Vec<Option<Entry>>,
    /// Free ids in `entries`, reused before the slab grows.
    free: Vec<EntryId>,
    /// Address → id, for lookups only (never iterated).
    by_addr: AddrMap,
    /// Every id, in an order only insertions, removals and `gossip_sample`
    /// change; persisted in this order so a restored manager samples alike.
    random: Vec<EntryId>,
    /// The new table.
    new_table: Table,
    /// The tried table.
    tried_table: Table,
    /// Entries per table and network: `[new, tried][network]`.
    counts: [[usize; NetworkId::COUNT]; 2],
    /// When `good` was last called (Core's `m_last_good`): failures are only
    /// counted once per address between two successes anywhere, so a node
    /// that lost its network does not condemn every address it tries.
    last_good: u64,
    /// Newcomers waiting for test-before-evict, by address (ids get reused).
    tried_collisions: Vec<NetAddr>,
    /// Our own hosts (e.g. our onion service): never stored, never selected.
    own: BTreeSet<Host>,
}

impl std::fmt::Debug for AddrMan {
    /// Sizes only: the tables are far too big (and too private) for a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AddrMan")
            .field("network", &self.network)
            .field("new", &self.len_new())
            .field("tried", &self.len_tried())
            .field("tried_collisions", &self.tried_collisions.len())
            .finish_non_exhaustive()
    }
}

/// Index of the new table in `counts`.
const NEW: usize = 0;
/// Index of the tried table in `counts`.
const TRIED: usize = 1;

/// Core starts `m_last_good` at 1 so that the first failure of every
/// address counts.
const INITIAL_LAST_GOOD: u64 = 1;

impl AddrMan {
    /// An empty manager for `network`'s peers, bucketing under `key`.
    pub fn new(network: bitcoin::Network, key: AddrManKey) -> Self {
        let by_addr = AddrMap::with_hasher(key.map_hasher());
        AddrMan {
            network,
            key,
            entries: Vec::new(),
            free: Vec::new(),
            by_addr,
            random: Vec::new(),
            new_table: Table::new(NEW_BUCKET_COUNT),
            tried_table: Table::new(TRIED_BUCKET_COUNT),
            counts: [[0; NetworkId::COUNT]; 2],
            last_good: INITIAL_LAST_GOOD,
            tried_collisions: Vec::new(),
            own: BTreeSet::new(),
        }
    }

    /// The chain this manager serves.
    pub fn network(&self) -> bitcoin::Network {
        self.network
    }

    /// Known addresses.
    pub fn len(&self) -> usize {
        self.random.len()
    }

    /// Whether no address is known.
    pub fn is_empty(&self) -> bool {
        self.random.is_empty()
    }

    /// Addresses in the new table.
    pub fn len_new(&self) -> usize {
        self.counts[NEW].iter().sum()
    }

    /// Addresses in the tried table.
    pub fn len_tried(&self) -> usize {
        self.counts[TRIED].iter().sum()
    }

    /// Counts per network and table (for `getaddrmaninfo`).
    pub fn info(&self) -> AddrManInfo {
        AddrManInfo::from_counts(self.counts[NEW], self.counts[TRIED])
    }

    /// Occupied table slots on `networks`. An entry heard from several
    /// source groups holds up to [`params::NEW_BUCKETS_PER_ADDRESS`] new
    /// slots, and selection is uniform over slots, so this (not the entry
    /// count) is each network's weight in [`AddrMan::select`]; it also shows
    /// how close the tables are to full.
    pub fn slots_used(&self, networks: NetworkSet) -> TableCounts {
        TableCounts {
            new: self.new_table.count_in(networks) as usize,
            tried: self.tried_table.count_in(networks) as usize,
        }
    }

    /// Whether `addr` is known.
    pub fn contains(&self, addr: &NetAddr) -> bool {
        self.by_addr.contains_key(addr)
    }

    /// Whether `addr` is in the tried table.
    pub fn is_tried(&self, addr: &NetAddr) -> bool {
        self.lookup(addr).is_some_and(|(_, e)| e.is_tried())
    }

    // === GOSSIP IN ===

    /// Adds addresses heard from `source`; returns how many were new to the
    /// new table (an address already known may gain another reference from a
    /// new source group; that counts too).
    ///
    /// Skipped without error: unroutable addresses, ports we cannot dial
    /// (0 outside I2P, anything but 0 on I2P), our own hosts. Nonsense
    /// timestamps are replaced by "5 days ago".
    pub fn add<R: Rng + ?Sized>(
        &mut self,
        records: &[AddrRecord],
        source: &AddrSource,
        now: u64,
        rng: &mut R,
    ) -> usize {
        let source_group = source.group();
        records
            .iter()
            .filter(|rec| self.add_one(rec, source, source_group, now, rng))
            .count()
    }

    /// Core's `AddSingle`.
    fn add_one<R: Rng + ?Sized>(
        &mut self,
        rec: &AddrRecord,
        source: &AddrSource,
        source_group: crate::netaddr::NetGroup,
        now: u64,
        rng: &mut R,
    ) -> bool {
        let addr = rec.addr;
        if !addr.is_routable() || !dialable_port(&addr) || self.own.contains(&addr.host) {
            return false;
        }
        let penalty = source.time_penalty(&addr);
        let announced = sane_timestamp(rec.last_seen, now);
        let id = match self.by_addr.get(&addr).copied() {
            Some(id) => {
                let Some(e) = self.entry_mut(id) else {
                    return false;
                };
                let online = now.saturating_sub(announced) < ONLINE_WINDOW;
                let interval = if online {
                    ONLINE_UPDATE_INTERVAL
                } else {
                    OFFLINE_UPDATE_INTERVAL
                };
                if e.last_seen < announced.saturating_sub(interval + penalty) {
                    e.last_seen = announced.saturating_sub(penalty);
                }
                e.services |= rec.services;
                if announced <= e.last_seen || e.is_tried() {
                    return false;
                }
                let refs = e.ref_count();
                if refs >= NEW_BUCKETS_PER_ADDRESS {
                    return false;
                }
                // Each extra reference is twice as hard to get as the last.
                if refs > 0 && rng.random_range(0..(1u32 << refs)) != 0 {
                    return false;
                }
                id
            }
            None => self.create(Entry::fresh(
                addr,
                rec.services,
                source_group,
                announced.saturating_sub(penalty),
            )),
        };
        let slot = self.key.new_slot(&addr, &source_group);
        let my_refs = self.entry(id).map_or(0, Entry::ref_count);
        if let Some(existing) = self.new_table.get(slot) {
            if existing == id {
                return false;
            }
            let replace = self
                .entry(existing)
                .is_some_and(|ex| ex.is_terrible(now) || (ex.ref_count() > 1 && my_refs == 0));
            if !replace {
                if my_refs == 0 {
                    self.delete(id);
                }
                return false;
            }
            self.clear_new_slot(slot);
        }
        self.put_new(id, slot);
        true
    }

    // === CONNECTION OUTCOMES ===

    /// Records a connection attempt to `addr` (Core's `Attempt`). Count it as
    /// a failure (`count_failure`) only when the node seems to be online,
    /// e.g. it has other outbound peers; otherwise a network outage would
    /// condemn every address we try.
    pub fn attempt(&mut self, addr: &NetAddr, count_failure: bool, now: u64) {
        let last_good = self.last_good;
        if let Some(e) = self.lookup_mut(addr) {
            e.last_try = now;
            if count_failure && e.last_count_attempt < last_good {
                e.last_count_attempt = now;
                e.attempts = e.attempts.saturating_add(1);
            }
        }
    }

    /// Records a completed handshake with an outbound peer at `addr` and
    /// moves it to the tried table (Core's `Good`, with test-before-evict).
    pub fn good(&mut self, addr: &NetAddr, now: u64) -> GoodOutcome {
        self.last_good = now;
        match self.by_addr.get(addr).copied() {
            Some(id) => self.good_id(id, now, true),
            None => GoodOutcome::Unknown,
        }
    }

    /// Records that we were connected to `addr` until `now`, e.g. when an
    /// outbound peer disconnects (Core's `Connected`). Refreshes its
    /// timestamp at most every [`params::CONNECTED_UPDATE_INTERVAL`].
    pub fn connected(&mut self, addr: &NetAddr, now: u64) {
        if let Some(e) = self.lookup_mut(addr)
            && now.saturating_sub(e.last_seen) > CONNECTED_UPDATE_INTERVAL
        {
            e.last_seen = now;
        }
    }

    /// Records the services a peer announced in its `version` message.
    pub fn set_services(&mut self, addr: &NetAddr, services: ServiceFlags) {
        if let Some(e) = self.lookup_mut(addr) {
            e.services = services;
        }
    }

    /// Forgets `addr` entirely (e.g. it turned out to be ourselves).
    /// Returns whether it was known.
    pub fn forget(&mut self, addr: &NetAddr) -> bool {
        let Some(id) = self.by_addr.get(addr).copied() else {
            return false;
        };
        self.remove_from_tables(id);
        self.delete(id);
        true
    }

    /// Declares our own hosts (our onion service, our public IPs). They are
    /// forgotten now, and never stored or selected later, on any port.
    pub fn set_own_addresses<I: IntoIterator<Item = Host>>(&mut self, hosts: I) {
        self.own = hosts.into_iter().collect();
        let mine: Vec<NetAddr> = self
            .random
            .iter()
            .filter_map(|id| self.entry(*id))
            .map(|e| e.addr)
            .filter(|a| self.own.contains(&a.host))
            .collect();
        for addr in mine {
            self.forget(&addr);
        }
    }

    /// Whether `host` is one of ours.
    pub fn is_own(&self, host: &Host) -> bool {
        self.own.contains(host)
    }
}

/// Whether we could dial `addr`'s port: I2P only knows port 0, and port 0
/// means nothing anywhere else.
fn dialable_port(addr: &NetAddr) -> bool {
    match addr.host {
        Host::I2p(_) => addr.port == I2P_PORT,
        _ => addr.port != 0,
    }
}

/// A gossiped timestamp, or "5 days ago" if it is from before 1973 or more
/// than 10 minutes in the future (Core's net_processing rule).
fn sane_timestamp(t: u64, now: u64) -> u64 {
    if t < MIN_SANE_TIMESTAMP || t > now.saturating_add(FUTURE_SLACK) {
        now.saturating_sub(BAD_TIMESTAMP_AGE)
    } else {
        t
    }
}

#[cfg(test)]
mod tests;
