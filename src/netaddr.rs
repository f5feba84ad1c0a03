//! Peer network addresses as BIP155 (`addrv2`) carries them.
//!
//! A [`NetAddr`] is a [`Host`] on one of the five networks addrv2 knows
//! ([`NetworkId`]: IPv4, IPv6, Tor v3 onion services, I2P, CJDNS) plus a port.
//! It is deliberately *not* a `SocketAddr`: onion and I2P peers have no IP
//! address, and only the dialer turns a `NetAddr` into something a transport
//! can reach.
//!
//! The module also answers the two questions the address manager asks of
//! every address: is it worth storing at all ([`Host::is_routable`]), and
//! which operator-diversity bucket does it belong to ([`NetGroup`]).

mod netgroup;
mod routable;
mod text;

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

use crate::wire::{AddrV2, AddrV2Message};
use nightjar_tor::OnionV3Address;

pub use netgroup::{GroupClass, NET_GROUP_PREFIX_LEN, NetGroup};
pub use text::ParseNetAddrError;

/// The first byte of every CJDNS address: CJDNS lives in `fc00::/8`
/// (BIP155 requires it, Core's `CJDNS_PREFIX`).
pub const CJDNS_PREFIX: u8 = 0xfc;

/// The port I2P peers use: SAM 3.1 has no ports, so BIP155 says to gossip 0
/// (Core's `I2P_SAM31_PORT`).
pub const I2P_PORT: u16 = 0;

/// The networks a peer address can live on, named as Bitcoin Core names them
/// in `-onlynet`, `getnetworkinfo` and `getaddrmaninfo`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NetworkId {
    /// IPv4 (`ipv4`).
    Ipv4,
    /// IPv6 (`ipv6`).
    Ipv6,
    /// Tor v3 onion services (`onion`).
    Onion,
    /// I2P (`i2p`).
    I2p,
    /// CJDNS (`cjdns`).
    Cjdns,
}

impl NetworkId {
    /// Every network, in Core's order.
    pub const ALL: [NetworkId; 5] = [
        NetworkId::Ipv4,
        NetworkId::Ipv6,
        NetworkId::Onion,
        NetworkId::I2p,
        NetworkId::Cjdns,
    ];

    /// How many networks there are (the length of per-network arrays).
    pub const COUNT: usize = Self::ALL.len();

    /// Core's name for the network.
    pub const fn as_str(self) -> &'static str {
        match self {
            NetworkId::Ipv4 => "ipv4",
            NetworkId::Ipv6 => "ipv6",
            NetworkId::Onion => "onion",
            NetworkId::I2p => "i2p",
            NetworkId::Cjdns => "cjdns",
        }
    }

    /// A dense index in `0..COUNT`, for per-network arrays.
    pub const fn index(self) -> usize {
        match self {
            NetworkId::Ipv4 => 0,
            NetworkId::Ipv6 => 1,
            NetworkId::Onion => 2,
            NetworkId::I2p => 3,
            NetworkId::Cjdns => 4,
        }
    }

    /// The BIP155 network id byte.
    pub const fn bip155_id(self) -> u8 {
        match self {
            NetworkId::Ipv4 => 1,
            NetworkId::Ipv6 => 2,
            NetworkId::Onion => 4,
            NetworkId::I2p => 5,
            NetworkId::Cjdns => 6,
        }
    }
}

impl fmt::Display for NetworkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A network name that is not one of Core's (`ipv4`, `ipv6`, `onion`, `i2p`, `cjdns`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown network {0:?}: use one of ipv4, ipv6, onion, i2p, cjdns")]
pub struct UnknownNetworkError(pub String);

impl FromStr for NetworkId {
    type Err = UnknownNetworkError;

    /// Parses Core's names, in any letter case. `tor` is accepted for `onion`
    /// because Core accepted it for years and old configs still say it.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "ipv4" => Ok(NetworkId::Ipv4),
            "ipv6" => Ok(NetworkId::Ipv6),
            "onion" | "tor" => Ok(NetworkId::Onion),
            "i2p" => Ok(NetworkId::I2p),
            "cjdns" => Ok(NetworkId::Cjdns),
            _ => Err(UnknownNetworkError(s.to_owned())),
        }
    }
}

/// A set of networks, e.g. the ones `-onlynet` allows.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct NetworkSet(u8);

impl NetworkSet {
    /// No network at all.
    pub const EMPTY: NetworkSet = NetworkSet(0);

    /// Every network.
    pub const fn all() -> Self {
        NetworkSet((1 << NetworkId::COUNT) - 1)
    }

    /// Exactly one network.
    pub const fn only(network: NetworkId) -> Self {
        NetworkSet(1 << network.index())
    }

    /// This set plus `network`.
    #[must_use]
    pub const fn with(self, network: NetworkId) -> Self {
        NetworkSet(self.0 | (1 << network.index()))
    }

    /// This set without `network`.
    #[must_use]
    pub const fn without(self, network: NetworkId) -> Self {
        NetworkSet(self.0 & !(1 << network.index()))
    }

    /// Adds `network` to the set.
    pub fn insert(&mut self, network: NetworkId) {
        *self = self.with(network);
    }

    /// Whether `network` is in the set.
    pub const fn contains(self, network: NetworkId) -> bool {
        self.0 & (1 << network.index()) != 0
    }

    /// Whether the set is empty.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The networks in the set, in Core's order.
    pub fn iter(self) -> impl Iterator<Item = NetworkId> {
        NetworkId::ALL
            .into_iter()
            .filter(move |n| self.contains(*n))
    }
}

impl FromIterator<NetworkId> for NetworkSet {
    fn from_iter<I: IntoIterator<Item = NetworkId>>(iter: I) -> Self {
        iter.into_iter().fold(NetworkSet::EMPTY, NetworkSet::with)
    }
}

impl fmt::Debug for NetworkSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set()
            .entries(self.iter().map(NetworkId::as_str))
            .finish()
    }
}

/// The host part of a peer address: one variant per addrv2 network.
///
/// Obsolete Tor v2 addresses and unknown BIP155 networks have no variant: we
/// cannot dial them, so we do not store them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Host {
    /// An IPv4 address.
    Ipv4(Ipv4Addr),
    /// An IPv6 address (never an IPv4-mapped one: those are [`Host::Ipv4`]).
    Ipv6(Ipv6Addr),
    /// A Tor v3 onion service, by its ed25519 identity key (BIP155 `TORV3`).
    TorV3([u8; 32]),
    /// An I2P destination, by the SHA-256 of its destination (BIP155 `I2P`).
    I2p([u8; 32]),
    /// A CJDNS address (in `fc00::/8`).
    Cjdns(Ipv6Addr),
}

impl Host {
    /// The network the host lives on.
    pub const fn network(&self) -> NetworkId {
        match self {
            Host::Ipv4(_) => NetworkId::Ipv4,
            Host::Ipv6(_) => NetworkId::Ipv6,
            Host::TorV3(_) => NetworkId::Onion,
            Host::I2p(_) => NetworkId::I2p,
            Host::Cjdns(_) => NetworkId::Cjdns,
        }
    }

    /// Whether a peer could be reached at this host from the public
    /// networks: not loopback, private, link-local, documentation, multicast
    /// or otherwise reserved. See the `routable` module for the exact list.
    pub fn is_routable(&self) -> bool {
        routable::is_routable(self)
    }

    /// The operator-diversity group of this host (see [`NetGroup`]).
    pub fn netgroup(&self) -> NetGroup {
        NetGroup::of(self)
    }

    /// The onion address, if this is an onion host.
    pub fn onion(&self) -> Option<OnionV3Address> {
        match self {
            Host::TorV3(key) => Some(OnionV3Address::from_pubkey(*key)),
            _ => None,
        }
    }

    /// The raw address bytes BIP155 carries for this host.
    pub fn bytes(&self) -> HostBytes {
        let mut out = HostBytes {
            buf: [0; 32],
            len: 0,
        };
        let src: &[u8] = match self {
            Host::Ipv4(ip) => &ip.octets(),
            Host::Ipv6(ip) | Host::Cjdns(ip) => &ip.octets(),
            Host::TorV3(key) | Host::I2p(key) => key,
        };
        out.buf[..src.len()].copy_from_slice(src);
        out.len = src.len() as u8;
        out
    }

    /// The host from an IP address; IPv4-mapped IPv6 addresses become IPv4,
    /// so the same peer never gets two identities.
    pub fn from_ip(ip: IpAddr) -> Host {
        match ip {
            IpAddr::V4(v4) => Host::Ipv4(v4),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Host::Ipv4(v4),
                None => Host::Ipv6(v6),
            },
        }
    }
}

/// The raw bytes of a [`Host`] (4, 16 or 32 of them), without allocating.
#[derive(Debug, Clone, Copy)]
pub struct HostBytes {
    buf: [u8; 32],
    len: u8,
}

impl AsRef<[u8]> for HostBytes {
    fn as_ref(&self) -> &[u8] {
        &self.buf[..usize::from(self.len)]
    }
}

/// A peer address: a host on one of the addrv2 networks, and a port.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NetAddr {
    /// Where the peer is.
    pub host: Host,
    /// The port it listens on ([`I2P_PORT`] for I2P).
    pub port: u16,
}

impl NetAddr {
    /// A peer address from its parts.
    pub const fn new(host: Host, port: u16) -> Self {
        NetAddr { host, port }
    }

    /// The network the address lives on.
    pub const fn network(&self) -> NetworkId {
        self.host.network()
    }

    /// Whether the host is publicly routable ([`Host::is_routable`]).
    pub fn is_routable(&self) -> bool {
        self.host.is_routable()
    }

    /// The operator-diversity group of the host ([`NetGroup`]).
    pub fn netgroup(&self) -> NetGroup {
        self.host.netgroup()
    }

    /// The address as addrv2 encodes it (without port; see [`AddrV2Message`]).
    pub fn to_addrv2(&self) -> AddrV2 {
        match self.host {
            Host::Ipv4(ip) => AddrV2::Ipv4(ip),
            Host::Ipv6(ip) => AddrV2::Ipv6(ip),
            Host::TorV3(key) => AddrV2::TorV3(key),
            Host::I2p(hash) => AddrV2::I2p(hash),
            Host::Cjdns(ip) => AddrV2::Cjdns(ip),
        }
    }

    /// The address from its addrv2 form and a port.
    pub fn from_addrv2(addr: &AddrV2, port: u16) -> Result<Self, AddrV2Error> {
        Host::try_from(addr).map(|host| NetAddr { host, port })
    }
}

impl fmt::Display for NetAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        text::fmt_netaddr(self, f)
    }
}

impl fmt::Debug for NetAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for NetAddr {
    type Err = ParseNetAddrError;

    /// Parses Core's `host:port` forms: `1.2.3.4:8333`, `[2001:db8::1]:8333`,
    /// `<56 chars>.onion:8333`, `<52 chars>.b32.i2p:0`, `[fc00::1]:8333`.
    ///
    /// Text cannot tell CJDNS from IPv6; like Core's seed generator we read
    /// `fc00::/8` as CJDNS (as IPv6 it is a private range, unroutable anyway).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        text::parse_netaddr(s)
    }
}

impl From<SocketAddr> for NetAddr {
    fn from(sa: SocketAddr) -> Self {
        NetAddr {
            host: Host::from_ip(sa.ip()),
            port: sa.port(),
        }
    }
}

/// Why an addrv2 address has no [`NetAddr`]: the peer sent something we can
/// neither dial nor store. Callers should drop that one address and go on
/// with the rest of the message (it is not, by itself, misbehaviour).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AddrV2Error {
    /// A Tor v2 address: the Tor network removed v2 onion services in 2021.
    #[error("tor v2 onion addresses no longer exist; dropped")]
    TorV2,
    /// A BIP155 network id we do not know.
    #[error("unknown BIP155 network id {network_id}; dropped")]
    UnknownNetwork {
        /// The network id byte the peer sent.
        network_id: u8,
    },
    /// An IPv4 or Tor v2 address wrapped in the IPv6 network id, which
    /// BIP155 forbids (there is a network id for each).
    #[error("address embedded in an IPv6 address, which BIP155 forbids; dropped")]
    EmbeddedInIpv6,
    /// A CJDNS address outside `fc00::/8`.
    #[error("CJDNS address outside fc00::/8; dropped")]
    NotCjdns,
}

/// The OnionCat prefix that carried Tor v2 addresses inside IPv6 (`fd87:d87e:eb43::/48`).
const ONIONCAT_PREFIX: [u8; 6] = [0xfd, 0x87, 0xd8, 0x7e, 0xeb, 0x43];

impl TryFrom<&AddrV2> for Host {
    type Error = AddrV2Error;

    fn try_from(addr: &AddrV2) -> Result<Self, Self::Error> {
        match addr {
            AddrV2::Ipv4(ip) => Ok(Host::Ipv4(*ip)),
            AddrV2::Ipv6(ip) => {
                if ip.to_ipv4_mapped().is_some() || ip.octets()[..6] == ONIONCAT_PREFIX {
                    Err(AddrV2Error::EmbeddedInIpv6)
                } else {
                    Ok(Host::Ipv6(*ip))
                }
            }
            AddrV2::TorV2(_) => Err(AddrV2Error::TorV2),
            AddrV2::TorV3(key) => Ok(Host::TorV3(*key)),
            AddrV2::I2p(hash) => Ok(Host::I2p(*hash)),
            AddrV2::Cjdns(ip) => {
                if ip.octets()[0] == CJDNS_PREFIX {
                    Ok(Host::Cjdns(*ip))
                } else {
                    Err(AddrV2Error::NotCjdns)
                }
            }
            AddrV2::Unknown(network_id, _) => Err(AddrV2Error::UnknownNetwork {
                network_id: *network_id,
            }),
        }
    }
}

impl TryFrom<&AddrV2Message> for NetAddr {
    type Error = AddrV2Error;

    fn try_from(msg: &AddrV2Message) -> Result<Self, Self::Error> {
        NetAddr::from_addrv2(&msg.addr, msg.port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_names_are_cores() {
        let names: Vec<_> = NetworkId::ALL.iter().map(|n| n.as_str()).collect();
        assert_eq!(names, ["ipv4", "ipv6", "onion", "i2p", "cjdns"]);
        for n in NetworkId::ALL {
            assert_eq!(n.as_str().parse::<NetworkId>().unwrap(), n);
            assert_eq!(n.as_str().to_uppercase().parse::<NetworkId>().unwrap(), n);
        }
        assert_eq!("tor".parse::<NetworkId>().unwrap(), NetworkId::Onion);
        assert!("onion3".parse::<NetworkId>().is_err());
    }

    #[test]
    fn network_indexes_are_dense() {
        for (i, n) in NetworkId::ALL.iter().enumerate() {
            assert_eq!(n.index(), i);
        }
    }

    #[test]
    fn network_set_operations() {
        let s = NetworkSet::only(NetworkId::Onion).with(NetworkId::I2p);
        assert!(s.contains(NetworkId::Onion) && s.contains(NetworkId::I2p));
        assert!(!s.contains(NetworkId::Ipv4));
        assert_eq!(s.iter().count(), 2);
        assert_eq!(
            s.without(NetworkId::I2p),
            NetworkSet::only(NetworkId::Onion)
        );
        assert_eq!(NetworkSet::all().iter().count(), 5);
        assert!(NetworkSet::EMPTY.is_empty());
        let collected: NetworkSet = [NetworkId::Ipv4, NetworkId::Ipv6].into_iter().collect();
        assert_eq!(format!("{collected:?}"), r#"{"ipv4", "ipv6"}"#);
    }

    #[test]
    fn addrv2_round_trip() {
        let cases = [
            AddrV2::Ipv4(Ipv4Addr::new(1, 2, 3, 4)),
            AddrV2::Ipv6("2001:4860::1".parse().unwrap()),
            AddrV2::TorV3([7; 32]),
            AddrV2::I2p([9; 32]),
            AddrV2::Cjdns("fc00::1".parse().unwrap()),
        ];
        for a in cases {
            let n = NetAddr::from_addrv2(&a, 8333).unwrap();
            assert_eq!(n.to_addrv2(), a);
            let msg = AddrV2Message {
                time: 1,
                services: crate::wire::ServiceFlags::NONE,
                addr: a.clone(),
                port: 8333,
            };
            assert_eq!(NetAddr::try_from(&msg).unwrap(), n);
        }
    }

    #[test]
    fn addrv2_rejections() {
        assert_eq!(
            Host::try_from(&AddrV2::TorV2([0; 10])),
            Err(AddrV2Error::TorV2)
        );
        assert_eq!(
            Host::try_from(&AddrV2::Unknown(42, vec![1, 2])),
            Err(AddrV2Error::UnknownNetwork { network_id: 42 })
        );
        assert_eq!(
            Host::try_from(&AddrV2::Ipv6("::ffff:1.2.3.4".parse().unwrap())),
            Err(AddrV2Error::EmbeddedInIpv6)
        );
        assert_eq!(
            Host::try_from(&AddrV2::Ipv6("fd87:d87e:eb43::1".parse().unwrap())),
            Err(AddrV2Error::EmbeddedInIpv6)
        );
        assert_eq!(
            Host::try_from(&AddrV2::Cjdns("fd00::1".parse().unwrap())),
            Err(AddrV2Error::NotCjdns)
        );
    }

    #[test]
    fn socket_addr_mapped_ipv4_is_ipv4() {
        let sa: SocketAddr = "[::ffff:1.2.3.4]:8333".parse().unwrap();
        assert_eq!(
            NetAddr::from(sa),
            NetAddr::new(Host::Ipv4(Ipv4Addr::new(1, 2, 3, 4)), 8333)
        );
    }

    #[test]
    fn host_bytes_lengths() {
        assert_eq!(Host::Ipv4(Ipv4Addr::LOCALHOST).bytes().as_ref().len(), 4);
        assert_eq!(Host::Ipv6(Ipv6Addr::LOCALHOST).bytes().as_ref().len(), 16);
        assert_eq!(Host::TorV3([1; 32]).bytes().as_ref(), &[1; 32]);
    }
}
