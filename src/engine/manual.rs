//! Peers the user named (`--connect`, `--addnode`): kept connected, retried
//! with backoff, never banned.

use std::time::{Duration, Instant};

use nightjar_tor::Target;

use super::targets::target_to_addr;
use crate::netaddr::NetAddr;
use crate::peer::ConnId;

/// First retry delay after a manual peer fails or drops.
pub const MANUAL_RETRY_MIN: Duration = Duration::from_secs(5);

/// A connection that lasted this long resets the backoff; one that ends
/// sooner (a peer that accepts and then drops us) keeps it growing.
pub const MANUAL_STABLE_AFTER: Duration = Duration::from_secs(60);

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
    /// When the current connection completed its handshake.
    pub ready_since: Option<Instant>,
}

/// The user-named peers.
#[derive(Debug, Default)]
pub struct ManualPeers {
    peers: Vec<ManualPeer>,
}

impl ManualPeers {
    /// The peers to keep connected.
    pub fn new(targets: impl IntoIterator<Item = Target>) -> Self {
        let mut manual = ManualPeers::default();
        for target in targets {
            // A target named twice is kept once.
            manual.add(target);
        }
        manual
    }

    /// Adds a peer to keep connected; `false` if it is already there.
    pub fn add(&mut self, target: Target) -> bool {
        if self.peers.iter().any(|p| p.target == target) {
            return false;
        }
        self.peers.push(ManualPeer {
            addr: target_to_addr(&target),
            target,
            conn: None,
            next_attempt: None,
            failures: 0,
            ready_since: None,
        });
        true
    }

    /// Stops keeping `target` connected (a live connection stays, as in
    /// Core); `false` if it was not added.
    pub fn remove(&mut self, target: &Target) -> bool {
        let before = self.peers.len();
        self.peers.retain(|p| &p.target != target);
        self.peers.len() != before
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

    /// The handshake with `conn` succeeded at `now`.
    pub fn succeeded(&mut self, conn: ConnId, now: Instant) {
        if let Some(p) = self.peers.iter_mut().find(|p| p.conn == Some(conn)) {
            p.ready_since = Some(now);
        }
    }

    /// `conn` ended (or never connected): schedule the next attempt. The
    /// backoff starts over only after a connection that lasted.
    pub fn ended(&mut self, conn: ConnId, now: Instant) {
        if let Some(p) = self.peers.iter_mut().find(|p| p.conn == Some(conn)) {
            p.conn = None;
            if p.ready_since
                .take()
                .is_some_and(|t| now.saturating_duration_since(t) >= MANUAL_STABLE_AFTER)
            {
                p.failures = 0;
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn peer() -> ManualPeers {
        ManualPeers::new(["127.0.0.1:18444".parse::<Target>().unwrap()])
    }

    #[test]
    fn a_peer_that_drops_us_at_once_is_retried_ever_more_slowly() {
        let t0 = Instant::now();
        let mut m = peer();
        let mut now = t0;
        let mut delays = Vec::new();
        for n in 0..8 {
            assert_eq!(m.due(now), vec![0]);
            m.dialled(0, ConnId(n));
            m.succeeded(ConnId(n), now);
            m.ended(ConnId(n), now + Duration::from_secs(1));
            let next = m.next_retry().unwrap();
            delays.push(next.saturating_duration_since(now));
            now = next;
        }
        assert!(delays.windows(2).all(|w| w[1] >= w[0]), "{delays:?}");
        assert!(delays.last().unwrap() >= &MANUAL_RETRY_MAX);
    }

    #[test]
    fn a_connection_that_lasted_resets_the_backoff() {
        let t0 = Instant::now();
        let mut m = peer();
        for n in 0..4 {
            m.dialled(0, ConnId(n));
            m.ended(ConnId(n), t0);
        }
        m.dialled(0, ConnId(9));
        m.succeeded(ConnId(9), t0);
        let later = t0 + MANUAL_STABLE_AFTER;
        m.ended(ConnId(9), later);
        assert_eq!(m.next_retry(), Some(later + MANUAL_RETRY_MIN));
    }
}
