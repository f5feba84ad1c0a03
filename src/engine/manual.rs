//! Peers the user named (`--connect`, `--addnode`): kept connected, retried
//! with backoff, never banned.

use std::time::{Duration, Instant};

use nightjar_tor::Target;

use super::targets::target_to_addr;
use crate::netaddr::NetAddr;
use crate::peer::ConnId;

/// First retry delay after a manual peer fails or drops.
pub const MANUAL_RETRY_MIN: Duration = Duration::from_secs(5);

/// Longest retry delay. Core retries added nodes every 60 s without
/// backoff; over Tor a dead onion costs a rendezvous attempt each time, so
/// we back off, but not so far that a returning peer waits long.
pub const MANUAL_RETRY_MAX: Duration = Duration::from_secs(300);

/// One user-named peer.
#[derive(Debug, Clone)]
pub struct ManualPeer {
    /// What to dial.
    pub target: Target,
    /// Its address-book form, when it has one.
    pub addr: Option<NetAddr>,
    /// The live connection, if any.
    pub conn: Option<ConnId>,
    /// Not before this time (none: at once).
    pub next_attempt: Option<Instant>,
    /// Consecutive failures (for the backoff).
    pub failures: u32,
}

/// The user-named peers.
#[derive(Debug, Default)]
pub struct ManualPeers {
    peers: Vec<ManualPeer>,
}

impl ManualPeers {
    /// The peers to keep connected.
    pub fn new(targets: impl IntoIterator<Item = Target>) -> Self {
        let mut peers: Vec<ManualPeer> = Vec::new();
        for target in targets {
            if peers.iter().any(|p| p.target == target) {
                continue;
            }
            peers.push(ManualPeer {
                addr: target_to_addr(&target),
                target,
                conn: None,
                next_attempt: None,
                failures: 0,
            });
        }
        ManualPeers { peers }
    }

    /// All of them.
    pub fn iter(&self) -> impl Iterator<Item = &ManualPeer> {
        self.peers.iter()
    }

    /// Indexes of peers without a connection whose retry time has come.
    pub fn due(&self, now: Instant) -> Vec<usize> {
        self.peers
            .iter()
            .enumerate()
            .filter(|(_, p)| p.conn.is_none() && p.next_attempt.is_none_or(|t| t <= now))
            .map(|(i, _)| i)
            .collect()
    }

    /// The peer at `index`.
    pub fn get(&self, index: usize) -> Option<&ManualPeer> {
        self.peers.get(index)
    }

    /// Records that `conn` now serves the peer at `index`.
    pub fn dialled(&mut self, index: usize, conn: ConnId) {
        if let Some(p) = self.peers.get_mut(index) {
            p.conn = Some(conn);
        }
    }

    /// The handshake with `conn` succeeded: the backoff starts over.
    pub fn succeeded(&mut self, conn: ConnId) {
        if let Some(p) = self.peers.iter_mut().find(|p| p.conn == Some(conn)) {
            p.failures = 0;
        }
    }

    /// `conn` ended (or never connected): schedule the next attempt.
    pub fn ended(&mut self, conn: ConnId, now: Instant) {
        if let Some(p) = self.peers.iter_mut().find(|p| p.conn == Some(conn)) {
            p.conn = None;
            let shift = p.failures.min(10);
            let delay = MANUAL_RETRY_MIN
                .saturating_mul(1 << shift)
                .min(MANUAL_RETRY_MAX);
            p.failures = p.failures.saturating_add(1);
            p.next_attempt = Some(now + delay);
        }
    }

    /// The earliest pending retry.
    pub fn next_retry(&self) -> Option<Instant> {
        self.peers
            .iter()
            .filter(|p| p.conn.is_none())
            .filter_map(|p| p.next_attempt)
            .min()
    }

    /// Whether `conn` belongs to a manual peer.
    pub fn owns(&self, conn: ConnId) -> bool {
        self.peers.iter().any(|p| p.conn == Some(conn))
    }
}
