//! The engine's table of connections: one entry from the moment we decide to
//! dial until the connection is gone.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use nightjar_tor::{CircuitLabel, Target};

use super::isolation::Isolation;
use crate::netaddr::{NetAddr, NetGroup};
use crate::peer::{ConnId, ConnectionKind, PeerInfo};
use crate::transport::{TransportKind, V1Fallback};

/// Where a connection is in its life.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerState {
    /// Dialling (Tor stream plus transport handshake); given up at `deadline`.
    Dialing {
        /// When the engine stops waiting.
        deadline: Instant,
    },
    /// The transport is up; the version handshake is running.
    Handshaking,
    /// The version handshake completed.
    Ready(PeerInfo),
}

/// One connection.
#[derive(Debug, Clone)]
pub struct PeerEntry {
    /// Its id.
    pub conn: ConnId,
    /// Why it exists.
    pub kind: ConnectionKind,
    /// What was dialled.
    pub target: Target,
    /// The address-book form of the target, when it has one (host names
    /// do not).
    pub addr: Option<NetAddr>,
    /// The circuits it may share (outbound connections; an inbound one
    /// arrived on no circuit of ours).
    pub isolation: Option<Isolation>,
    /// Whether v1 was allowed for it.
    pub v1: V1Fallback,
    /// Our `version` nonce (to catch connections to ourselves).
    pub nonce: u64,
    /// When we decided to dial (monotonic).
    pub opened: Instant,
    /// When we decided to dial (unix seconds, for `conntime`).
    pub opened_unix: u64,
    /// The life stage.
    pub state: PeerState,
    /// v1 or v2 (with the session id), once the transport is up.
    pub transport: Option<TransportKind>,
    /// The Tor circuit carrying it, when known.
    pub circuit: Option<CircuitLabel>,
    /// The latest ping round trip.
    pub last_rtt: Option<Duration>,
    /// The best ping round trip.
    pub min_rtt: Option<Duration>,
    /// For feelers: when to give up waiting for the address reply.
    pub feeler_deadline: Option<Instant>,
    /// Whether we have already answered its `getaddr` (once per connection,
    /// as Core does, so a peer cannot scrape the table).
    pub answered_getaddr: bool,
    /// When it last sent headers that moved our best chain (eviction
    /// protects such peers).
    pub last_useful_headers: Option<Instant>,
    /// Chosen for eviction: its disconnect is on the way, so it no longer
    /// holds an inbound slot.
    pub evicted: bool,
}

impl PeerEntry {
    /// A connection we just decided to open (or to take on), whose
    /// transport must be up by `deadline`.
    #[allow(clippy::too_many_arguments)]
    pub fn opening(
        conn: ConnId,
        kind: ConnectionKind,
        target: Target,
        addr: Option<NetAddr>,
        isolation: Option<Isolation>,
        v1: V1Fallback,
        nonce: u64,
        (opened, opened_unix): (Instant, u64),
        deadline: Instant,
    ) -> Self {
        PeerEntry {
            conn,
            kind,
            target,
            addr,
            isolation,
            v1,
            nonce,
            opened,
            opened_unix,
            state: PeerState::Dialing { deadline },
            transport: None,
            circuit: None,
            last_rtt: None,
            min_rtt: None,
            feeler_deadline: None,
            answered_getaddr: false,
            last_useful_headers: None,
            evicted: false,
        }
    }

    /// Whether the version handshake completed.
    pub fn is_ready(&self) -> bool {
        matches!(self.state, PeerState::Ready(_))
    }

    /// What it said in its `version`, once the handshake completed.
    pub fn info(&self) -> Option<&PeerInfo> {
        match &self.state {
            PeerState::Ready(info) => Some(info),
            _ => None,
        }
    }
}

/// All connections, by id. A `BTreeMap` rather than a hash map: iteration
/// order is part of the engine's output, and must not depend on a random
/// hasher seed.
#[derive(Debug, Default)]
pub struct PeerTable {
    entries: BTreeMap<ConnId, PeerEntry>,
}

impl PeerTable {
    /// An empty table.
    pub fn new() -> Self {
        PeerTable::default()
    }

    /// Adds a connection.
    pub fn insert(&mut self, entry: PeerEntry) {
        self.entries.insert(entry.conn, entry);
    }

    /// Removes a connection.
    pub fn remove(&mut self, conn: ConnId) -> Option<PeerEntry> {
        self.entries.remove(&conn)
    }

    /// One connection.
    pub fn get(&self, conn: ConnId) -> Option<&PeerEntry> {
        self.entries.get(&conn)
    }

    /// One connection, to update.
    pub fn get_mut(&mut self, conn: ConnId) -> Option<&mut PeerEntry> {
        self.entries.get_mut(&conn)
    }

    /// Every connection, in id order.
    pub fn iter(&self) -> impl Iterator<Item = &PeerEntry> {
        self.entries.values()
    }

    /// How many connections (in any state).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Connections past the transport handshake: what RPC calls peers
    /// (a dial in progress is not a peer yet).
    pub fn connected(&self) -> impl Iterator<Item = &PeerEntry> {
        self.iter().filter(|e| e.transport.is_some())
    }

    /// Connections of a kind matching `pred`, dialling or open.
    pub fn count(&self, pred: impl Fn(ConnectionKind) -> bool) -> usize {
        self.iter().filter(|e| pred(e.kind)).count()
    }

    /// Regular outbound connections, dialling or open: what the outbound
    /// target counts.
    pub fn regular_count(&self) -> usize {
        self.count(|k| matches!(k, ConnectionKind::Regular(_)))
    }

    /// Outbound connections that serve (or, still dialling, were chosen to
    /// serve) compact filters.
    pub fn filter_peer_count(&self) -> usize {
        let filters = crate::wire::ServiceFlags::COMPACT_FILTERS;
        self.iter()
            .filter(|e| {
                matches!(e.kind, ConnectionKind::Regular(s) if s.has(filters))
                    || (e.kind.syncs_from() && e.info().is_some_and(|i| i.services.has(filters)))
            })
            .count()
    }

    /// Regular connections still dialling.
    pub fn regular_dialing(&self) -> usize {
        self.iter()
            .filter(|e| {
                matches!(e.kind, ConnectionKind::Regular(_))
                    && matches!(e.state, PeerState::Dialing { .. })
            })
            .count()
    }

    /// Whether some connection already goes to `target` (or to the same
    /// address): we never open two.
    pub fn has_target(&self, target: &Target, addr: Option<&NetAddr>) -> bool {
        self.iter()
            .any(|e| &e.target == target || (addr.is_some() && e.addr.as_ref() == addr))
    }

    /// Netgroups of our regular and extra outbound peers: a new one should
    /// come from elsewhere (eclipse resistance).
    pub fn outbound_netgroups(&self) -> Vec<NetGroup> {
        self.iter()
            .filter(|e| matches!(e.kind, ConnectionKind::Regular(_) | ConnectionKind::Extra))
            .filter_map(|e| e.addr.map(|a| a.netgroup()))
            .collect()
    }

    /// Whether another connection than `except` carries `nonce` as ours.
    pub fn is_our_nonce(&self, nonce: u64, except: ConnId) -> bool {
        self.iter().any(|e| e.conn != except && e.nonce == nonce)
    }

    /// Whether any connection uses the isolation group.
    pub fn uses_group(&self, group: nightjar_tor::IsolationGroup) -> bool {
        self.iter()
            .any(|e| e.isolation.is_some_and(|i| i.group == group))
    }
}
