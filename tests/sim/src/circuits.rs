//! A model of how Arti shares circuits between streams, for the `circuit`
//! label of `Connected`.
//!
//! Arti puts a new stream on an existing circuit only if the circuit was
//! built for a compatible use and the stream's isolation matches. Here:
//!
//! - streams in different isolation groups never share a circuit;
//! - within a group, every exit stream (IPv4/IPv6/host targets) may share
//!   one exit circuit, while every onion service gets its own rendezvous
//!   circuit, shared only by streams to that same service;
//! - a circuit takes new streams for [`CIRCUIT_DIRTINESS`] after its first
//!   one (Tor's `MaxCircuitDirtiness`), then a new one is built;
//! - when the engine releases a group, its circuits are closed.
//!
//! Labels read `Circ {group}.{n}`: the group's number, then a counter of
//! circuits built for that group.

use std::collections::BTreeMap;
use std::time::Duration;

use nightjar_tor::{CircuitLabel, IsolationGroup, OnionV3Address, Target};

/// How long a circuit takes new streams after its first one.
pub const CIRCUIT_DIRTINESS: Duration = Duration::from_secs(10 * 60);

/// Which circuits a stream to a target can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum CircuitClass {
    /// Any exit circuit.
    Exit,
    /// The rendezvous circuit of this onion service.
    Onion(OnionV3Address),
}

impl CircuitClass {
    /// The class of streams to `target`.
    pub fn of(target: &Target) -> Self {
        match target {
            Target::Onion { address, .. } => CircuitClass::Onion(*address),
            Target::Ip(_) | Target::Host { .. } => CircuitClass::Exit,
        }
    }
}

/// The open circuits.
#[derive(Debug, Default)]
pub struct Circuits {
    /// (group, class) → (circuit number, when its first stream opened).
    open: BTreeMap<(IsolationGroup, CircuitClass), (u64, Duration)>,
    /// Circuits built so far, per group.
    built: BTreeMap<IsolationGroup, u64>,
}

impl Circuits {
    /// No circuits.
    pub fn new() -> Self {
        Circuits::default()
    }

    /// The circuit a stream to `target` in `group` opened at `now` rides.
    pub fn stream(
        &mut self,
        group: IsolationGroup,
        target: &Target,
        now: Duration,
    ) -> CircuitLabel {
        let key = (group, CircuitClass::of(target));
        let reusable = self
            .open
            .get(&key)
            .filter(|(_, first)| now.saturating_sub(*first) < CIRCUIT_DIRTINESS)
            .map(|(n, _)| *n);
        let n = match reusable {
            Some(n) => n,
            None => {
                let counter = self.built.entry(group).or_insert(0);
                *counter += 1;
                self.open.insert(key, (*counter, now));
                *counter
            }
        };
        CircuitLabel {
            id: format!("Circ {}.{n}", group.id()),
            hops: Vec::new(),
        }
    }

    /// The engine released `group`: its circuits close.
    pub fn release(&mut self, group: IsolationGroup) {
        self.open.retain(|(g, _), _| *g != group);
    }

    /// Open circuits (including ones too dirty for new streams).
    pub fn open_count(&self) -> usize {
        self.open.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::world::{ipv4, onion};
    use std::net::Ipv4Addr;

    #[test]
    fn sharing_follows_group_class_and_dirtiness() {
        let mut c = Circuits::new();
        let g1 = IsolationGroup::new(1);
        let g2 = IsolationGroup::new(2);
        let ip_a = ipv4(Ipv4Addr::new(1, 1, 1, 1), 8333);
        let ip_b = ipv4(Ipv4Addr::new(2, 2, 2, 2), 8333);
        let on_a = onion([1; 32], 8333);
        let on_b = onion([2; 32], 8333);
        let t = Duration::from_secs;
        let first = c.stream(g1, &ip_a, t(0)).id;
        assert_eq!(first, "Circ 1.1");
        assert_eq!(c.stream(g1, &ip_b, t(5)).id, first, "exit circuit shared");
        assert_eq!(c.stream(g2, &ip_b, t(5)).id, "Circ 2.1", "groups isolate");
        let oa = c.stream(g1, &on_a, t(6)).id;
        assert_ne!(oa, first);
        assert_ne!(c.stream(g1, &on_b, t(6)).id, oa, "one circuit per service");
        assert_eq!(c.stream(g1, &on_a, t(7)).id, oa);
        assert_ne!(c.stream(g1, &ip_a, t(600)).id, first, "too dirty");
        c.release(g1);
        c.release(g2);
        assert_eq!(c.open_count(), 0);
        assert_eq!(c.stream(g1, &ip_a, t(700)).id, "Circ 1.5");
    }
}
