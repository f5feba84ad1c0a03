//! Which inbound peer gives up its slot when every slot is taken: Bitcoin
//! Core's `SelectNodeToEvict`, minus what does not apply to a node that
//! relays no transactions.
//!
//! An attacker who can open many connections should not be able to push
//! out the peers that are hard to fake, so candidates are protected in
//! rounds, each by a property that costs an attacker something different:
//!
//! 1. distinct network groups (an attacker holds few of them): 4 peers,
//!    picked by a keyed order the attacker cannot predict;
//! 2. the lowest minimum ping (being close costs real infrastructure): 8;
//! 3. the most recent useful headers (an honest peer told us of blocks
//!    first): 4;
//! 4. the longest connected, half of those left, with up to half of that
//!    share reserved for peers on networks that are slow by nature (onion),
//!    so a clearnet flood of fast, fresh peers cannot push onion peers out.
//!
//! From what remains, the network group with the most connections loses
//! its youngest member. Nothing is evicted if everyone is protected.

use std::cmp::Reverse;
use std::time::{Duration, Instant};

use crate::netaddr::NetGroup;
use crate::peer::ConnId;

/// Protected by distinct network group.
pub const PROTECT_BY_NETGROUP: usize = 4;
/// Protected by lowest minimum ping.
pub const PROTECT_BY_PING: usize = 8;
/// Protected by most recent useful headers.
pub const PROTECT_BY_HEADERS: usize = 4;

/// What eviction knows about one inbound peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    /// The connection.
    pub conn: ConnId,
    /// Its network group.
    pub netgroup: NetGroup,
    /// Its best ping, if measured.
    pub min_rtt: Option<Duration>,
    /// When it connected.
    pub connected: Instant,
    /// When it last sent headers that extended our best chain.
    pub last_useful_headers: Option<Instant>,
    /// Whether it came through our onion service.
    pub onion: bool,
}

/// The peer to evict from `candidates`, or `None` if all are protected.
/// `key` orders network groups for round 1; draw it from the engine's RNG
/// so it is unpredictable but reproducible.
pub fn select_victim(candidates: &[Candidate], key: u64) -> Option<ConnId> {
    let mut left: Vec<Candidate> = candidates.to_vec();

    // 1. Distinct network groups, in a keyed order.
    left.sort_by_key(|c| (keyed(c.netgroup, key), c.conn));
    let mut seen: Vec<NetGroup> = Vec::new();
    let mut protected = 0;
    left.retain(|c| {
        if protected < PROTECT_BY_NETGROUP && !seen.contains(&c.netgroup) {
            seen.push(c.netgroup);
            protected += 1;
            return false;
        }
        true
    });

    // 2. Lowest minimum ping (unmeasured counts as slowest).
    protect_first(&mut left, PROTECT_BY_PING, |c| {
        (c.min_rtt.unwrap_or(Duration::MAX), c.conn)
    });

    // 3. Most recent useful headers (never counts as oldest).
    protect_first(&mut left, PROTECT_BY_HEADERS, |c| {
        (Reverse(c.last_useful_headers), c.conn)
    });

    // 4. Half of the rest by uptime, up to half of that share for onion
    // peers first.
    let share = left.len() / 2;
    let onion_share = share / 2;
    let mut onion: Vec<Candidate> = left.iter().filter(|c| c.onion).copied().collect();
    onion.sort_by_key(|c| (c.connected, c.conn));
    let onion_protected: Vec<ConnId> = onion.iter().take(onion_share).map(|c| c.conn).collect();
    left.retain(|c| !onion_protected.contains(&c.conn));
    protect_first(&mut left, share - onion_protected.len(), |c| {
        (c.connected, c.conn)
    });

    // The most crowded network group loses its youngest member; among
    // equally crowded groups, the one whose youngest is youngest.
    let mut groups: Vec<(NetGroup, usize, Instant)> = Vec::new();
    for c in &left {
        match groups.iter_mut().find(|(g, _, _)| *g == c.netgroup) {
            Some((_, n, youngest)) => {
                *n += 1;
                *youngest = (*youngest).max(c.connected);
            }
            None => groups.push((c.netgroup, 1, c.connected)),
        }
    }
    let (group, _, _) = groups
        .into_iter()
        .max_by_key(|(g, n, youngest)| (*n, *youngest, Reverse(*g)))?;
    left.iter()
        .filter(|c| c.netgroup == group)
        .max_by_key(|c| (c.connected, c.conn))
        .map(|c| c.conn)
}

/// Remove from `left` the `n` candidates that sort first by `key`.
fn protect_first<K: Ord>(left: &mut Vec<Candidate>, n: usize, key: impl Fn(&Candidate) -> K) {
    left.sort_by_key(|c| key(c));
    let n = n.min(left.len());
    left.drain(..n);
}

/// A keyed, well-mixed order of network groups.
fn keyed(group: NetGroup, key: u64) -> u64 {
    let bytes = group.to_bytes();
    let mut h = key ^ 0x9E37_79B9_7F4A_7C15;
    for b in bytes {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01B3);
        h ^= h >> 29;
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netaddr::NetAddr;

    fn group(a: u8, b: u8) -> NetGroup {
        let addr: NetAddr = std::net::SocketAddr::from(([a, b, 1, 1], 8333)).into();
        addr.netgroup()
    }

    fn candidates(n: u64, t0: Instant) -> Vec<Candidate> {
        (0..n)
            .map(|i| Candidate {
                conn: ConnId(i),
                netgroup: group(81, 1),
                min_rtt: None,
                connected: t0 + Duration::from_secs(i),
                last_useful_headers: None,
                onion: false,
            })
            .collect()
    }

    #[test]
    fn a_flood_from_one_group_loses_its_youngest_and_diverse_peers_stay() {
        let t0 = Instant::now();
        // 30 from one /16 (connected in order), 4 honest peers elsewhere.
        let mut c = candidates(30, t0);
        for (i, b) in [(100, 2), (101, 3), (102, 4), (103, 5)] {
            c.push(Candidate {
                conn: ConnId(i),
                netgroup: group(90, b),
                connected: t0 + Duration::from_secs(i),
                ..c[0]
            });
        }
        let victim = select_victim(&c, 7).unwrap();
        assert_eq!(victim, ConnId(29), "the flood's youngest goes");
        for key in 0..50 {
            let v = select_victim(&c, key).unwrap();
            assert!(v.0 < 100, "an honest peer in its own group was evicted");
        }
    }

    #[test]
    fn fast_and_useful_peers_are_protected() {
        let t0 = Instant::now();
        let mut c = candidates(40, t0);
        // The youngest has the best ping; the second youngest brought headers.
        c[39].min_rtt = Some(Duration::from_millis(1));
        c[38].last_useful_headers = Some(t0 + Duration::from_secs(100));
        let v = select_victim(&c, 1).unwrap();
        assert_ne!(v, ConnId(39));
        assert_ne!(v, ConnId(38));
        assert_eq!(v, ConnId(37));
    }

    #[test]
    fn onion_peers_keep_a_share_against_a_clearnet_flood() {
        let t0 = Instant::now();
        // Four onion peers connected last (youngest), then 40 fresh clearnet
        // ones from many groups would otherwise win on uptime and diversity.
        let mut c: Vec<Candidate> = (0..40)
            .map(|i| Candidate {
                conn: ConnId(i),
                netgroup: group(81, (i % 5) as u8),
                min_rtt: Some(Duration::from_millis(5)),
                connected: t0 + Duration::from_secs(i),
                last_useful_headers: None,
                onion: false,
            })
            .collect();
        for i in 0..4 {
            c.push(Candidate {
                conn: ConnId(100 + i),
                netgroup: group(10, 0),
                min_rtt: Some(Duration::from_secs(2)),
                connected: t0 + Duration::from_secs(1000 + i),
                last_useful_headers: None,
                onion: true,
            });
        }
        for key in 0..20 {
            let v = select_victim(&c, key).unwrap();
            assert!(v.0 < 100, "an onion peer was evicted (key {key})");
        }
    }

    #[test]
    fn nobody_is_evicted_when_all_are_protected() {
        let t0 = Instant::now();
        let c: Vec<Candidate> = (0..4)
            .map(|i| Candidate {
                conn: ConnId(i),
                netgroup: group(81, i as u8),
                min_rtt: None,
                connected: t0,
                last_useful_headers: None,
                onion: false,
            })
            .collect();
        assert_eq!(select_victim(&c, 3), None);
        assert_eq!(select_victim(&[], 3), None);
    }
}
