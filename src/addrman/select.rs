//! Choosing whom to dial, and what to tell peers who ask.

use std::collections::BTreeSet;

use crate::wire::ServiceFlags;
use rand::Rng;

use super::entry::Entry;
use super::params::{CHANCE_GROWTH, GETADDR_MAX, GETADDR_MAX_PCT, SELECT_MAX_PROBES};
use super::table::Table;
use super::{AddrMan, AddrRecord};
use crate::netaddr::{NetAddr, NetGroup, NetworkId, NetworkSet};

/// What a connection needs from the address it dials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Want {
    /// Networks we may dial (`-onlynet`; under `--privacy`, only onion).
    pub networks: NetworkSet,
    /// Onion preference in percent (0–100): the chance that a pick first
    /// looks only at onion addresses when the wanted networks include
    /// onion. 0 picks uniformly over all wanted networks; 100 takes an
    /// onion address whenever one qualifies. Values above 100 act as 100.
    pub onion_bias_percent: u8,
    /// Groups we are already connected to: never two outbound peers per group.
    pub exclude_netgroups: BTreeSet<NetGroup>,
    /// Services the connection kind needs (none for feelers).
    pub required_services: ServiceFlags,
}

impl Want {
    /// Any address on `networks`, without preference, exclusions or
    /// required services.
    pub fn new(networks: NetworkSet) -> Self {
        Want {
            networks,
            onion_bias_percent: 0,
            exclude_netgroups: BTreeSet::new(),
            required_services: ServiceFlags::NONE,
        }
    }

    /// Sets the onion preference (see [`Want::onion_bias_percent`]).
    #[must_use]
    pub fn prefer_onion(mut self, percent: u8) -> Self {
        self.onion_bias_percent = percent.min(100);
        self
    }

    /// Sets the services the peer must offer.
    #[must_use]
    pub fn require(mut self, services: ServiceFlags) -> Self {
        self.required_services = services;
        self
    }

    /// Sets the groups to avoid.
    #[must_use]
    pub fn exclude(mut self, groups: impl IntoIterator<Item = NetGroup>) -> Self {
        self.exclude_netgroups = groups.into_iter().collect();
        self
    }

    /// Whether `e` passes the filters (not the chance draw).
    fn admits(&self, e: &Entry) -> bool {
        e.services.has(self.required_services)
            && !self.exclude_netgroups.contains(&e.addr.netgroup())
    }
}

/// An address chosen for a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Selected {
    /// The address to dial.
    pub addr: NetAddr,
    /// The services it announced.
    pub services: ServiceFlags,
    /// Whether it came from the tried table.
    pub tried: bool,
    /// Our last attempt, if any (unix seconds).
    pub last_try: Option<u64>,
}

impl Selected {
    pub(crate) fn from_entry(e: &Entry) -> Self {
        Selected {
            addr: e.addr,
            services: e.services,
            tried: e.is_tried(),
            last_try: (e.last_try != 0).then_some(e.last_try),
        }
    }
}

impl AddrMan {
    /// Picks an address to dial (Core's `Select`).
    ///
    /// Each pick takes the tried or the new table with equal odds (when both
    /// hold wanted addresses), then a uniformly random occupied slot on the
    /// wanted networks — after the onion preference, see [`Want`] — and
    /// accepts it with the entry's chance (lower after failures and right
    /// after an attempt), a chance that grows with every rejection. Entries
    /// failing the filters, and our own hosts, are skipped.
    ///
    /// Returns `None` when nothing on the wanted networks is known, or when
    /// [`super::params::SELECT_MAX_PROBES`] picks found nothing acceptable:
    /// then few (or no) candidates pass the filters, and the caller should
    /// relax them, add fixed seeds, or wait.
    pub fn select<R: Rng + ?Sized>(&self, want: &Want, now: u64, rng: &mut R) -> Option<Selected> {
        self.select_in(want, false, now, rng)
    }

    /// Picks an address for a feeler connection: from the new table only,
    /// to test addresses nobody has confirmed (Core's `Select(new_only)`).
    /// Call [`AddrMan::select_tried_collision`] first: testing a collision
    /// takes priority.
    pub fn select_feeler<R: Rng + ?Sized>(
        &self,
        want: &Want,
        now: u64,
        rng: &mut R,
    ) -> Option<Selected> {
        self.select_in(want, true, now, rng)
    }

    fn select_in<R: Rng + ?Sized>(
        &self,
        want: &Want,
        new_only: bool,
        now: u64,
        rng: &mut R,
    ) -> Option<Selected> {
        let tried_n = if new_only {
            0
        } else {
            self.tried_table.count_in(want.networks)
        };
        let new_n = self.new_table.count_in(want.networks);
        if tried_n == 0 && new_n == 0 {
            return None;
        }
        let onion_bias = if want.networks.contains(NetworkId::Onion) {
            u32::from(want.onion_bias_percent.min(100))
        } else {
            0
        };
        let mut chance_factor = 1.0f64;
        for _ in 0..SELECT_MAX_PROBES {
            let table = if tried_n > 0 && (new_n == 0 || rng.random_bool(0.5)) {
                &self.tried_table
            } else {
                &self.new_table
            };
            let Some(e) = self.pick(table, want.networks, onion_bias, rng) else {
                continue;
            };
            if want.admits(e)
                && !self.own.contains(&e.addr.host)
                && rng.random::<f64>() < chance_factor * e.chance(now)
            {
                return Some(Selected::from_entry(e));
            }
            chance_factor *= CHANCE_GROWTH;
        }
        None
    }

    /// A uniformly random occupied slot of `table` on `networks` (only on
    /// onion, with probability `onion_bias` percent, if it has any).
    fn pick<R: Rng + ?Sized>(
        &self,
        table: &Table,
        networks: NetworkSet,
        onion_bias: u32,
        rng: &mut R,
    ) -> Option<&Entry> {
        let mut nets = networks;
        if onion_bias > 0 && table.count(NetworkId::Onion) > 0 && rng.random_ratio(onion_bias, 100)
        {
            nets = NetworkSet::only(NetworkId::Onion);
        }
        let total = table.count_in(nets);
        if total == 0 {
            return None;
        }
        let slot = table.kth_in(nets, rng.random_range(0..total))?;
        table.get(slot).and_then(|id| self.entry(id))
    }

    /// Addresses to answer a `getaddr` with (Core's `GetAddr`): a uniform
    /// sample of at most `max`, at most [`GETADDR_MAX`], and at most
    /// [`GETADDR_MAX_PCT`] % of everything we know, so that no peer maps our
    /// whole table. Terrible entries and networks outside `networks` are
    /// skipped. Cache the answer per requesting network for a while (Core:
    /// about a day) so repeated requests reveal nothing new.
    pub fn gossip_sample<R: Rng + ?Sized>(
        &mut self,
        max: usize,
        networks: NetworkSet,
        now: u64,
        rng: &mut R,
    ) -> Vec<AddrRecord> {
        let n = self.random.len();
        let limit = max.min(GETADDR_MAX).min(n * GETADDR_MAX_PCT / 100);
        self.sample_up_to(limit, networks, now, rng)
    }

    /// Up to `max` addresses (all when `max` is 0), uniformly sampled, for
    /// the user (`getnodeaddresses`): the share limit of
    /// [`AddrMan::gossip_sample`] does not apply, since the user may see
    /// their own table. Terrible entries are still skipped.
    pub fn sample<R: Rng + ?Sized>(
        &mut self,
        max: usize,
        networks: NetworkSet,
        now: u64,
        rng: &mut R,
    ) -> Vec<AddrRecord> {
        let limit = if max == 0 { self.random.len() } else { max };
        self.sample_up_to(limit, networks, now, rng)
    }

    fn sample_up_to<R: Rng + ?Sized>(
        &mut self,
        limit: usize,
        networks: NetworkSet,
        now: u64,
        rng: &mut R,
    ) -> Vec<AddrRecord> {
        let n = self.random.len();
        let mut out = Vec::with_capacity(limit.min(n));
        // A partial Fisher–Yates shuffle of `random`: the first i positions
        // are the ones examined so far.
        for i in 0..n {
            if out.len() >= limit {
                break;
            }
            let j = rng.random_range(i..n);
            self.swap_random(i, j);
            let Some(e) = self.random.get(i).and_then(|id| self.entry(*id)) else {
                continue;
            };
            if networks.contains(e.addr.network())
                && !e.is_terrible(now)
                && !self.own.contains(&e.addr.host)
            {
                out.push(AddrRecord {
                    addr: e.addr,
                    services: e.services,
                    last_seen: e.last_seen,
                });
            }
        }
        out
    }

    /// Swaps two positions of the `random` order.
    fn swap_random(&mut self, i: usize, j: usize) {
        if i == j {
            return;
        }
        self.random.swap(i, j);
        for pos in [i, j] {
            if let Some(id) = self.random.get(pos).copied()
                && let Some(e) = self.entry_mut(id)
            {
                e.random_pos = pos as u32;
            }
        }
    }
}
