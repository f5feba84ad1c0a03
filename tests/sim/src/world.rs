//! The scripted world: remote peers and how each one behaves.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use nightjar::engine::targets::target_to_addr;
use nightjar::wire::{AddrV2Message, ServiceFlags};
use nightjar_tor::{OnionV3Address, Target};

/// Latency of peers whose behaviour does not name one (`DropAfter`,
/// `Misbehave`): a typical one-way delay over a Tor circuit.
pub const DEFAULT_LATENCY: Duration = Duration::from_millis(400);

/// How long a dial to an offline (or unknown) peer takes to fail: the exit
/// or the rendezvous point reports the failure after a few round trips.
pub const OFFLINE_FAIL_AFTER: Duration = Duration::from_secs(5);

/// How long a DNS seed lookup through an exit takes.
pub const DNS_DELAY: Duration = Duration::from_secs(2);

/// Round trips (in one-way latencies) from dial to an established v2
/// transport: the Tor stream opens (one round trip), then the BIP324 key
/// exchange (another). Circuit building is folded in, since Arti builds
/// circuits ahead of need.
pub const CONNECT_LEGS: u32 = 4;

/// The most addresses any DNS seed answers with.
pub const DNS_MAX_ANSWERS: usize = 40;

/// How a remote peer behaves when dialled.
#[derive(Debug, Clone, PartialEq)]
pub enum Behaviour {
    /// Accepts the connection and behaves: completes the handshake, answers
    /// pings and answers `getaddr` once with `gossip` (as `addrv2`).
    Online {
        /// Whether it speaks BIP324 v2; if not, only a dial allowed to fall
        /// back to v1 reaches it.
        speaks_v2: bool,
        /// One-way delay of every message, either way.
        latency: Duration,
        /// The addresses it answers `getaddr` with (at most 1000).
        gossip: Vec<AddrV2Message>,
        /// The services its `version` announces.
        services: ServiceFlags,
    },
    /// Unreachable: the dial fails after [`OFFLINE_FAIL_AFTER`], and the
    /// failure is the peer's fault.
    Offline,
    /// The dial never completes, nor fails: the engine must give up on it.
    Hang,
    /// Online (v2, full node, [`DEFAULT_LATENCY`], no gossip) until this
    /// long after the transport came up, then closes the connection.
    DropAfter(Duration),
    /// Online (v2, full node, [`DEFAULT_LATENCY`]), but once the handshake
    /// is done it sends a second `version`, which the peer machine punishes
    /// with a disconnect.
    Misbehave,
}

impl Behaviour {
    /// An honest full node speaking v2, with this gossip.
    pub fn online(latency: Duration, gossip: Vec<AddrV2Message>) -> Self {
        Behaviour::Online {
            speaks_v2: true,
            latency,
            gossip,
            services: full_node(),
        }
    }

    /// Whether a dial to a peer with this behaviour may get a transport.
    pub fn accepts(&self) -> bool {
        !matches!(self, Behaviour::Offline | Behaviour::Hang)
    }

    /// The profile of a peer that accepts connections; `None` if it does not.
    pub fn profile(&self) -> Option<Profile<'_>> {
        let default = |drop_after, misbehave| Profile {
            speaks_v2: true,
            latency: DEFAULT_LATENCY,
            gossip: &[],
            services: full_node(),
            drop_after,
            misbehave,
        };
        match self {
            Behaviour::Online {
                speaks_v2,
                latency,
                gossip,
                services,
            } => Some(Profile {
                speaks_v2: *speaks_v2,
                latency: *latency,
                gossip,
                services: *services,
                drop_after: None,
                misbehave: false,
            }),
            Behaviour::Offline | Behaviour::Hang => None,
            Behaviour::DropAfter(after) => Some(default(Some(*after), false)),
            Behaviour::Misbehave => Some(default(None, true)),
        }
    }
}

/// What a connection to an accepting peer looks like, whichever behaviour
/// produced it.
#[derive(Debug, Clone, Copy)]
pub struct Profile<'a> {
    /// Whether it speaks v2.
    pub speaks_v2: bool,
    /// One-way latency.
    pub latency: Duration,
    /// The `getaddr` answer.
    pub gossip: &'a [AddrV2Message],
    /// Announced services.
    pub services: ServiceFlags,
    /// Closes the connection this long after it opened.
    pub drop_after: Option<Duration>,
    /// Sends a duplicate `version` after the handshake.
    pub misbehave: bool,
}

/// The services of an ordinary full node: `NETWORK | WITNESS`.
pub fn full_node() -> ServiceFlags {
    ServiceFlags::NETWORK | ServiceFlags::WITNESS
}

/// One scripted remote peer.
#[derive(Debug, Clone, PartialEq)]
pub struct RemotePeer {
    /// Where it lives.
    pub target: Target,
    /// How it behaves.
    pub behaviour: Behaviour,
    /// Whether the node's address book knows it at start (as if loaded from
    /// a saved address book); others are reachable only through gossip, DNS
    /// seeds or the user's `connect`/`addnode`.
    pub known: bool,
}

/// The remote peers, by target.
///
/// Targets the world does not list behave as [`Behaviour::Offline`]: that
/// is where the fixed seeds and stale gossip go.
#[derive(Debug, Clone, Default)]
pub struct World {
    peers: Vec<RemotePeer>,
    index: HashMap<Target, usize>,
    dns_answers: Option<Vec<IpAddr>>,
}

impl World {
    /// A world with nobody in it.
    pub fn new() -> Self {
        World::default()
    }

    /// Adds (or replaces) a peer the address book knows at start.
    pub fn add(&mut self, target: Target, behaviour: Behaviour) -> &mut Self {
        self.insert(RemotePeer {
            target,
            behaviour,
            known: true,
        })
    }

    /// Adds (or replaces) a peer the address book does not know at start.
    pub fn add_unknown(&mut self, target: Target, behaviour: Behaviour) -> &mut Self {
        self.insert(RemotePeer {
            target,
            behaviour,
            known: false,
        })
    }

    /// Adds (or replaces) a peer.
    pub fn insert(&mut self, peer: RemotePeer) -> &mut Self {
        match self.index.get(&peer.target) {
            Some(&i) => {
                if let Some(slot) = self.peers.get_mut(i) {
                    *slot = peer;
                }
            }
            None => {
                self.index.insert(peer.target.clone(), self.peers.len());
                self.peers.push(peer);
            }
        }
        self
    }

    /// Fixes what every DNS seed answers. Without this, a seed answers with
    /// the world's IPv4 peers on the chain's default port (at most
    /// [`DNS_MAX_ANSWERS`]), as a seed crawling the world would.
    pub fn set_dns_answers(&mut self, answers: Vec<IpAddr>) -> &mut Self {
        self.dns_answers = Some(answers);
        self
    }

    /// The peers, in the order they were added.
    pub fn peers(&self) -> &[RemotePeer] {
        &self.peers
    }

    /// How many peers.
    pub fn len(&self) -> usize {
        self.peers.len()
    }

    /// Whether the world is empty.
    pub fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }

    /// The index of the peer at `target`.
    pub fn index_of(&self, target: &Target) -> Option<usize> {
        self.index.get(target).copied()
    }

    /// The peer at `target`.
    pub fn get(&self, target: &Target) -> Option<&RemotePeer> {
        self.index_of(target).and_then(|i| self.peers.get(i))
    }

    /// The peer with this index.
    pub fn peer(&self, index: usize) -> Option<&RemotePeer> {
        self.peers.get(index)
    }

    /// What a DNS seed answers, for a chain whose default port is `port`.
    pub fn dns_answer(&self, port: u16) -> Vec<IpAddr> {
        if let Some(answers) = &self.dns_answers {
            return answers.clone();
        }
        self.peers
            .iter()
            .filter_map(|p| match p.target {
                Target::Ip(SocketAddr::V4(sa)) if sa.port() == port => Some(IpAddr::V4(*sa.ip())),
                _ => None,
            })
            .take(DNS_MAX_ANSWERS)
            .collect()
    }
}

/// An onion target from a 32-byte key.
pub fn onion(key: [u8; 32], port: u16) -> Target {
    Target::Onion {
        address: OnionV3Address::from_pubkey(key),
        port,
    }
}

/// An IPv4 target.
pub fn ipv4(ip: Ipv4Addr, port: u16) -> Target {
    Target::Ip(SocketAddr::from((ip, port)))
}

/// The `addrv2` gossip entry announcing `target` (none for host names,
/// which gossip cannot carry).
pub fn gossip_entry(target: &Target, services: ServiceFlags, time: u32) -> Option<AddrV2Message> {
    let addr = target_to_addr(target)?;
    Some(AddrV2Message {
        time,
        services,
        addr: addr.to_addrv2(),
        port: addr.port,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_targets_are_absent_and_dns_answers_ipv4_on_the_port() {
        let mut w = World::new();
        let a = ipv4(Ipv4Addr::new(1, 2, 3, 4), 8333);
        let b = ipv4(Ipv4Addr::new(1, 2, 3, 5), 18333);
        let o = onion([7; 32], 8333);
        w.add(a.clone(), Behaviour::Offline)
            .add_unknown(b, Behaviour::Hang)
            .add(o.clone(), Behaviour::Misbehave);
        assert_eq!(w.len(), 3);
        assert_eq!(
            w.dns_answer(8333),
            vec![IpAddr::V4(Ipv4Addr::new(1, 2, 3, 4))]
        );
        assert!(w.get(&ipv4(Ipv4Addr::new(9, 9, 9, 9), 8333)).is_none());
        w.add(a.clone(), Behaviour::Hang);
        assert_eq!(w.len(), 3);
        assert_eq!(w.get(&a).map(|p| &p.behaviour), Some(&Behaviour::Hang));
        assert!(
            w.get(&o)
                .is_some_and(|p| p.behaviour.profile().is_some_and(|p| p.misbehave))
        );
        assert!(gossip_entry(&o, full_node(), 1).is_some());
    }
}
