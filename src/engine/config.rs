//! What the engine is told at start, and the policy it derives from that.

use std::time::Duration;

use nightjar_tor::{Target, TargetKind};

use crate::netaddr::{NetworkId, NetworkSet};
use crate::wire::ServiceFlags;

/// Regular outbound peers we keep (Core's `MAX_OUTBOUND_FULL_RELAY_CONNECTIONS`).
pub const DEFAULT_TARGET_OUTBOUND: usize = 8;

/// Mean time between feeler connections (Core's `FEELER_INTERVAL`). The
/// actual gaps are drawn from an exponential distribution with this mean, so
/// an observer cannot predict them.
pub const DEFAULT_FEELER_INTERVAL: Duration = Duration::from_secs(120);

/// Core's stale-tip age: three block intervals without a new best header.
pub const DEFAULT_STALE_TIP_AFTER: Duration = Duration::from_secs(30 * 60);

/// Services a regular outbound peer must offer: a full node with witness
/// data (Core's desirable service flags).
pub fn regular_services() -> ServiceFlags {
    ServiceFlags::NETWORK | ServiceFlags::WITNESS
}

/// How a connection's Tor circuits are shared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IsolationScope {
    /// One isolation group per connection kind, rotated periodically;
    /// feelers and private broadcasts always get their own.
    PerKind,
    /// Every connection gets its own circuits (`--privacy`).
    PerConnection,
}

/// How the node reaches peers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// Through the embedded Tor client (the default).
    Tor,
    /// Direct TCP, without Tor: only when the user explicitly turns Tor off
    /// (a regtest node on localhost, say). Onion peers are unreachable then.
    Direct,
}

/// The engine's configuration.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Which chain.
    pub network: bitcoin::Network,
    /// Regular outbound connections to keep.
    pub target_outbound: usize,
    /// `connect`: dial these peers (as manual peers) and make no automatic
    /// connections at all: no regular peers, feelers, extras or seeds. The
    /// user's `addnode` peers are still kept, as Bitcoin Core does.
    pub connect: Vec<Target>,
    /// `--addnode`: peers to keep connected (manual: never banned, not
    /// counted toward the outbound target).
    pub addnodes: Vec<Target>,
    /// `--privacy`: onion-only, v2-only, a circuit per connection, no DNS.
    pub privacy: bool,
    /// The user allows falling back to v1 for any peer (never under `--privacy`).
    pub v1_fallback: bool,
    /// Tor or direct TCP.
    pub reach: Reach,
    /// Ask DNS seeds (through Tor) when addresses run low.
    pub dns_seeds: bool,
    /// Mean feeler interval.
    pub feeler_interval: Duration,
    /// `onlynet`: networks automatic outbound connections may use (further
    /// narrowed by `--privacy` and by what the transport can reach).
    pub onlynet: NetworkSet,
    /// `fixedseeds`: add the compiled-in seeds when addresses run low.
    pub fixed_seeds: bool,
    /// A Tor circuit per connection even without `--privacy`.
    pub isolate_every_connection: bool,
    /// Our user agent (BIP14).
    pub user_agent: String,
    /// How long the best header may stay unchanged before we suspect we
    /// are partitioned and try an `Extra` peer (Core: 30 minutes).
    pub stale_tip_after: Duration,
    /// Inbound connections accepted at once; 0 when nothing listens.
    pub max_inbound: usize,
    /// Connections per private-broadcast round.
    pub private_broadcast_connections: usize,
    /// Keep the BIP157 filter header chain and serve scans, filters and
    /// blocks (`[node] block_filters`).
    pub block_filters: bool,
    /// Decoy blocks fetched with every block the user asks for.
    pub decoy_blocks: u32,
}

impl EngineConfig {
    /// Defaults for `network`: Tor, 8 outbound peers, DNS seeds allowed.
    pub fn new(network: bitcoin::Network) -> Self {
        EngineConfig {
            network,
            target_outbound: DEFAULT_TARGET_OUTBOUND,
            connect: Vec::new(),
            addnodes: Vec::new(),
            privacy: false,
            v1_fallback: false,
            reach: Reach::Tor,
            dns_seeds: true,
            feeler_interval: DEFAULT_FEELER_INTERVAL,
            onlynet: NetworkSet::all(),
            fixed_seeds: true,
            isolate_every_connection: false,
            user_agent: format!("/nightjar:{}/", env!("CARGO_PKG_VERSION")),
            stale_tip_after: DEFAULT_STALE_TIP_AFTER,
            max_inbound: 0,
            private_broadcast_connections: super::private_broadcast::DEFAULT_CONNECTIONS,
            block_filters: false,
            decoy_blocks: 1,
        }
    }

    /// Whether a peer that connects to us may speak v1. Yes, as in Core,
    /// unless `--privacy` makes every session v2: an inbound peer chose the
    /// transport, and refusing v1 would only turn away old nodes that
    /// learn nothing from us either way.
    pub fn inbound_v1_allowed(&self) -> bool {
        !self.privacy
    }

    /// The networks outbound connections may use. Under `--privacy` only
    /// onion; through Tor also IPv4 and IPv6 (via exits); direct TCP cannot
    /// reach onion services. I2P and CJDNS need their own transports.
    pub fn reachable_networks(&self) -> NetworkSet {
        let ip = NetworkSet::only(NetworkId::Ipv4).with(NetworkId::Ipv6);
        let reach = match self.reach {
            Reach::Tor => ip.with(NetworkId::Onion),
            Reach::Direct => ip,
        };
        let wanted = if self.privacy {
            NetworkSet::only(NetworkId::Onion)
        } else {
            self.onlynet
        };
        reach.iter().filter(|n| wanted.contains(*n)).collect()
    }

    /// Whether a user-given target may be dialled at all, and if not why.
    pub fn refuses(&self, target: &Target) -> Option<&'static str> {
        match (target.kind(), self.reach) {
            (TargetKind::Exit, _) if self.privacy => Some("--privacy dials onion peers only"),
            (TargetKind::Onion, Reach::Direct) => Some("onion peers need Tor, which is turned off"),
            _ => None,
        }
    }

    /// The isolation scope: per connection under `--privacy`.
    pub fn isolation_scope(&self) -> IsolationScope {
        if self.privacy || self.isolate_every_connection {
            IsolationScope::PerConnection
        } else {
            IsolationScope::PerKind
        }
    }

    /// Whether DNS seeds may be asked: never under `--privacy` (a DNS seed
    /// learns that someone runs a node and only hands out clearnet peers),
    /// never without clearnet reach.
    pub fn may_use_dns_seeds(&self) -> bool {
        self.dns_seeds
            && !self.privacy
            && self.connect.is_empty()
            && self.reachable_networks().contains(NetworkId::Ipv4)
    }
}
