//! When an address may be dialled again (issue 16, D3).
//!
//! A peer that gossips a thousand addresses must not make us dial a
//! thousand IP:ports of its choosing every minute: over Tor each dial is a
//! stream, often a circuit, and from the outside a port scan on the
//! gossiper's behalf. So every address we dial rests a while afterwards:
//! a minute after a dial or a disconnect, ten minutes after a failed dial,
//! doubling with each failure in a row up to four hours. (Dials are also
//! paced, at most one automatic dial per [`super::conn_manager::DIAL_PACING`];
//! the address book's own selection chance falls with failed attempts, as
//! Core's does.)

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::netaddr::NetAddr;

/// The rest after a dial or a disconnect: the same address is not dialled
/// again within this time, whatever the address book says.
pub const REDIAL_INTERVAL: Duration = Duration::from_secs(60);

/// The rest after a failed dial (Core does not retry a failed address for
/// ten minutes either).
pub const FAILED_REDIAL_FIRST: Duration = Duration::from_secs(10 * 60);

/// The longest rest after failures in a row.
pub const FAILED_REDIAL_MAX: Duration = Duration::from_secs(4 * 60 * 60);

/// How long a run of failures is remembered once its rest is over.
pub const FAILURE_MEMORY: Duration = Duration::from_secs(24 * 60 * 60);

/// Addresses remembered at most (those whose rest ends first are
/// forgotten first): a bound on memory, whatever is gossiped.
pub const MAX_PAUSED: usize = 20_000;

#[derive(Debug, Clone, Copy)]
struct Pause {
    until: Instant,
    failures: u32,
    last_failure: Option<Instant>,
}

/// Per-address rests.
#[derive(Debug, Default)]
pub struct RedialPauses {
    entries: BTreeMap<NetAddr, Pause>,
}

impl RedialPauses {
    /// No address resting.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether `addr` must not be dialled at `now`.
    pub fn is_paused(&self, addr: &NetAddr, now: Instant) -> bool {
        self.entries.get(addr).is_some_and(|p| now < p.until)
    }

    /// `addr` was just dialled.
    pub fn dialled(&mut self, addr: NetAddr, now: Instant) {
        self.rest_at_least(addr, now + REDIAL_INTERVAL);
    }

    /// A connection to `addr` ended (after a handshake or not).
    pub fn ended(&mut self, addr: NetAddr, now: Instant) {
        self.rest_at_least(addr, now + REDIAL_INTERVAL);
    }

    /// A dial to `addr` failed: rest ten minutes, doubled for each
    /// failure in a row before it.
    pub fn failed(&mut self, addr: NetAddr, now: Instant) {
        let failures = self
            .entries
            .get(&addr)
            .map_or(0, |p| p.failures)
            .saturating_add(1);
        let rest = FAILED_REDIAL_FIRST
            .saturating_mul(1u32 << (failures - 1).min(8))
            .min(FAILED_REDIAL_MAX);
        self.make_room(&addr);
        let entry = self.entries.entry(addr).or_insert(Pause {
            until: now,
            failures: 0,
            last_failure: None,
        });
        entry.failures = failures;
        entry.last_failure = Some(now);
        entry.until = entry.until.max(now + rest);
    }

    /// `addr` completed a handshake: its run of failures is over.
    pub fn succeeded(&mut self, addr: &NetAddr) {
        if let Some(p) = self.entries.get_mut(addr) {
            p.failures = 0;
            p.last_failure = None;
        }
    }

    /// Forget rests that are over (and failure runs long past).
    pub fn sweep(&mut self, now: Instant) {
        self.entries.retain(|_, p| {
            now < p.until
                || p.last_failure
                    .is_some_and(|t| now.saturating_duration_since(t) < FAILURE_MEMORY)
        });
    }

    /// Addresses remembered.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn rest_at_least(&mut self, addr: NetAddr, until: Instant) {
        self.make_room(&addr);
        let entry = self.entries.entry(addr).or_insert(Pause {
            until,
            failures: 0,
            last_failure: None,
        });
        entry.until = entry.until.max(until);
    }

    /// At the bound, forget the address whose rest ends first (unless
    /// `addr` is already known).
    fn make_room(&mut self, addr: &NetAddr) {
        if self.entries.len() < MAX_PAUSED || self.entries.contains_key(addr) {
            return;
        }
        if let Some(first) = self
            .entries
            .iter()
            .min_by_key(|(_, p)| p.until)
            .map(|(a, _)| *a)
        {
            self.entries.remove(&first);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(i: u8) -> NetAddr {
        format!("20.{i}.0.1:8333").parse().unwrap()
    }

    #[test]
    fn failures_rest_ten_minutes_doubling_and_success_resets() {
        let t0 = Instant::now();
        let mut p = RedialPauses::new();
        let a = addr(1);
        p.dialled(a, t0);
        assert!(p.is_paused(
            &a,
            t0 + REDIAL_INTERVAL.saturating_sub(Duration::from_secs(1))
        ));
        assert!(!p.is_paused(&a, t0 + REDIAL_INTERVAL));
        p.failed(a, t0);
        assert!(p.is_paused(
            &a,
            t0 + FAILED_REDIAL_FIRST.saturating_sub(Duration::from_secs(1))
        ));
        assert!(!p.is_paused(&a, t0 + FAILED_REDIAL_FIRST));
        let t1 = t0 + FAILED_REDIAL_FIRST;
        p.failed(a, t1);
        assert!(p.is_paused(
            &a,
            t1 + (2 * FAILED_REDIAL_FIRST).saturating_sub(Duration::from_secs(1))
        ));
        for _ in 0..20 {
            p.failed(a, t1);
        }
        assert!(!p.is_paused(&a, t1 + FAILED_REDIAL_MAX), "capped");
        p.succeeded(&a);
        let t2 = t1 + FAILED_REDIAL_MAX;
        p.failed(a, t2);
        assert!(
            !p.is_paused(&a, t2 + FAILED_REDIAL_FIRST),
            "the run starts over"
        );
        // Swept once the rest is over and the failures are old.
        p.sweep(t2 + FAILURE_MEMORY + FAILED_REDIAL_FIRST);
        assert!(p.is_empty());
    }

    #[test]
    fn memory_is_bounded() {
        let t0 = Instant::now();
        let mut p = RedialPauses::new();
        for i in 0..(MAX_PAUSED + 50) {
            let a = NetAddr::from(std::net::SocketAddr::from((
                std::net::Ipv4Addr::from(0x1400_0000 + i as u32),
                8333,
            )));
            p.failed(a, t0 + Duration::from_millis(i as u64));
        }
        assert_eq!(p.len(), MAX_PAUSED);
    }
}
