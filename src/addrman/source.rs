//! Who told us about an address: the source side of new-table bucketing.

use bitcoin::hashes::{Hash, sha256};

use super::params::GOSSIP_TIME_PENALTY;
use crate::netaddr::{NetAddr, NetGroup};

/// Where a batch of addresses came from. Its group ([`AddrSource::group`])
/// decides which 64 of the 1 024 new buckets the batch may use, so one
/// source can never fill the new table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddrSource {
    /// A peer whose address we know: every outbound peer, and inbound peers
    /// on IP, I2P or CJDNS.
    Peer(NetAddr),
    /// A peer that connected to our onion service. Tor hides its address,
    /// so all such peers share one source group: however many inbound
    /// Sybils an attacker opens, together they reach 64 new buckets.
    InboundOnion,
    /// Something inside the node: fixed seeds, a DNS seed, the user.
    Internal(InternalSource),
}

impl AddrSource {
    /// The source group used for bucketing.
    pub fn group(&self) -> NetGroup {
        match self {
            AddrSource::Peer(addr) => addr.netgroup(),
            AddrSource::InboundOnion => NetGroup::inbound_onion(),
            AddrSource::Internal(src) => NetGroup::internal(src.0),
        }
    }

    /// How much older than announced we store `addr`'s timestamp: gossip
    /// is aged by [`GOSSIP_TIME_PENALTY`], except a peer's announcement of
    /// itself and what the node itself adds.
    pub(crate) fn time_penalty(&self, addr: &NetAddr) -> u64 {
        match self {
            AddrSource::Peer(peer) if peer == addr => 0,
            AddrSource::Peer(_) | AddrSource::InboundOnion => GOSSIP_TIME_PENALTY,
            AddrSource::Internal(_) => 0,
        }
    }
}

/// An internal source, by a 4-byte tag (Core's `NET_INTERNAL` names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InternalSource([u8; 4]);

impl InternalSource {
    /// The compiled-in fixed seeds.
    pub const FIXED_SEEDS: InternalSource = InternalSource(*b"seed");

    /// Addresses the user gave (`addnode`, `addpeeraddress`).
    pub const MANUAL: InternalSource = InternalSource(*b"user");

    /// A named source, such as a DNS seed's host name: each name gets its
    /// own group, so one misbehaving seed cannot fill the table.
    pub fn named(name: &str) -> InternalSource {
        let digest = sha256::Hash::hash(name.as_bytes()).to_byte_array();
        InternalSource([digest[0], digest[1], digest[2], digest[3]])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netaddr::{GroupClass, Host};

    #[test]
    fn groups_and_penalties() {
        let peer = NetAddr::new(Host::TorV3([3; 32]), 8333);
        let other = NetAddr::new(Host::TorV3([4; 32]), 8333);
        let src = AddrSource::Peer(peer);
        assert_eq!(src.group(), peer.netgroup());
        assert_eq!(src.time_penalty(&peer), 0);
        assert_eq!(src.time_penalty(&other), GOSSIP_TIME_PENALTY);
        assert_eq!(
            AddrSource::InboundOnion.time_penalty(&peer),
            GOSSIP_TIME_PENALTY
        );
        assert_eq!(
            AddrSource::InboundOnion.group().class(),
            GroupClass::InboundOnion
        );
        let seeds = AddrSource::Internal(InternalSource::FIXED_SEEDS);
        assert_eq!(seeds.time_penalty(&peer), 0);
        assert_eq!(seeds.group().class(), GroupClass::Internal);
        assert_ne!(
            InternalSource::named("seed.a.example"),
            InternalSource::named("seed.b.example")
        );
    }
}
