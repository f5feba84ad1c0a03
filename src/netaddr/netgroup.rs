//! Network groups: which addresses are likely run by the same operator.
//!
//! The address manager never lets one group, or one *source* group (the group
//! of the peer that told us about an address), take more than a small share
//! of its tables; the outbound connection logic never dials two peers in the
//! same group. Both only help if a group costs an attacker something.
//!
//! # The groups
//!
//! | network | group | why |
//! |---|---|---|
//! | IPv4 | the `/16` | Core's rule: a `/16` is a real allocation an attacker must rent |
//! | IPv6 | the `/32` (`/36` in he.net's `2001:470::/32`) | Core's rule: a `/32` is a typical ISP allocation; he.net hands out tunnels from one `/32` |
//! | IPv6 embedding IPv4 (6to4, Teredo, NAT64, SIIT) | the embedded IPv4's `/16` | otherwise one IPv4 `/16` would count as extra IPv6 groups |
//! | onion (Tor v3) | network + first 4 bits of the key (16 groups) | Core's rule; see below |
//! | I2P | network + first 4 bits of the hash (16 groups) | Core's rule; see below |
//! | CJDNS | network + the 4 bits after the constant `fc` byte (16 groups) | Core's rule (`fc` + 4 bits = 12 bits); see below |
//! | anything unroutable | one shared group | nothing there is worth diversity |
//! | anonymous inbound onion peers (as gossip *sources* only) | one shared group | they have no address; see below |
//! | internal sources (fixed seeds, DNS seeds, manual) | one group per source | Core's `NET_INTERNAL` |
//!
//! # Onion, I2P and CJDNS
//!
//! Onion and I2P names (and CJDNS addresses) are hashes of keys anyone can
//! mint for free, and grinding a key into a chosen 4-bit group takes 16 tries.
//! So for these networks an address-derived group is **not** a security
//! boundary, and no choice of bits would make it one. We keep Core's 4-bit
//! grouping because it is still useful for what it does do:
//!
//! - the class byte keeps each overlay network in groups of its own, apart
//!   from IP groups, so overlay addresses never count as IP diversity;
//! - 16 groups spread honest overlay peers over 16 × 8 = 128 tried buckets,
//!   and keep a handful of outbound connections in different groups;
//! - in the new table, an address lands in the one bucket picked by its
//!   (group, source group) pair, so a single source can place overlay
//!   addresses of one network in at most 16 buckets (1 024 slots) however
//!   many names it mints — a much tighter cap than the 64 buckets the same
//!   source could reach with IPv4 addresses spread over many `/16`s.
//!
//! What protects an onion-heavy node against flooding is therefore the
//! source side, not the address side: every source group owns at most 64 of
//! the 1 024 new buckets (and 16 per overlay network); all anonymous inbound
//! onion peers *share one* source group, so any number of inbound Sybils
//! together reach at most 64 buckets; a peer becomes an outbound source only
//! after we chose to dial it; and the tried table takes only addresses we
//! reached ourselves, with test-before-evict protecting the entries it holds.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use super::routable::has_prefix;
use super::{CJDNS_PREFIX, Host};

/// Length of a group's prefix bytes: the longest group is he.net's `/36`
/// (four bytes and a nibble).
pub const NET_GROUP_PREFIX_LEN: usize = 5;

/// Bits of an onion key or I2P hash that form its group (Core's choice).
const OVERLAY_GROUP_BITS: u8 = 4;

/// The kind of a [`NetGroup`]. The numbering follows Core's `Network` enum
/// where Core has the class, so groups hash the same way Core's would.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum GroupClass {
    /// Local, private or otherwise unroutable addresses (Core's `NET_UNROUTABLE`).
    Unroutable = 0,
    /// An IPv4 `/16` (also IPv4 embedded in IPv6).
    Ipv4 = 1,
    /// An IPv6 `/32` or he.net `/36`.
    Ipv6 = 2,
    /// A 4-bit slice of the onion key space.
    Onion = 3,
    /// A 4-bit slice of the I2P hash space.
    I2p = 4,
    /// A 4-bit slice of the CJDNS space.
    Cjdns = 5,
    /// An internal source such as the fixed seeds (Core's `NET_INTERNAL`).
    Internal = 6,
    /// Every inbound onion peer: they have no address to group by.
    InboundOnion = 7,
}

impl GroupClass {
    /// Decodes the class byte of a persisted group.
    pub fn from_u8(b: u8) -> Option<Self> {
        Some(match b {
            0 => GroupClass::Unroutable,
            1 => GroupClass::Ipv4,
            2 => GroupClass::Ipv6,
            3 => GroupClass::Onion,
            4 => GroupClass::I2p,
            5 => GroupClass::Cjdns,
            6 => GroupClass::Internal,
            7 => GroupClass::InboundOnion,
            _ => return None,
        })
    }
}

/// An operator-diversity group (see the module docs for the rules).
///
/// A small `Copy` value: the class and up to five prefix bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NetGroup {
    class: GroupClass,
    prefix: [u8; NET_GROUP_PREFIX_LEN],
}

impl NetGroup {
    /// The group of `host`.
    pub fn of(host: &Host) -> NetGroup {
        if !host.is_routable() {
            return NetGroup::bare(GroupClass::Unroutable);
        }
        match host {
            Host::Ipv4(ip) => NetGroup::ipv4(*ip),
            Host::Ipv6(ip) => match embedded_ipv4(ip) {
                Some(v4) => NetGroup::ipv4(v4),
                None => NetGroup::ipv6(ip),
            },
            Host::TorV3(key) => NetGroup::overlay(GroupClass::Onion, key[0]),
            Host::I2p(hash) => NetGroup::overlay(GroupClass::I2p, hash[0]),
            // The first byte is always `fc`; the random bits start after it.
            Host::Cjdns(ip) => {
                let o = ip.octets();
                let mut g = NetGroup::bare(GroupClass::Cjdns);
                g.prefix[0] = CJDNS_PREFIX;
                g.prefix[1] = keep_high_bits(o[1], OVERLAY_GROUP_BITS);
                g
            }
        }
    }

    /// The one group every anonymous inbound onion peer shares when it acts
    /// as a gossip source.
    pub const fn inbound_onion() -> NetGroup {
        NetGroup::bare(GroupClass::InboundOnion)
    }

    /// The group of an internal source, by its 4-byte tag.
    pub const fn internal(tag: [u8; 4]) -> NetGroup {
        NetGroup {
            class: GroupClass::Internal,
            prefix: [tag[0], tag[1], tag[2], tag[3], 0],
        }
    }

    /// The group's class.
    pub const fn class(&self) -> GroupClass {
        self.class
    }

    /// The group as bytes: class, then prefix. Fixed length, so it hashes
    /// and persists without ambiguity.
    pub fn to_bytes(&self) -> [u8; 1 + NET_GROUP_PREFIX_LEN] {
        let mut out = [0u8; 1 + NET_GROUP_PREFIX_LEN];
        out[0] = self.class as u8;
        out[1..].copy_from_slice(&self.prefix);
        out
    }

    /// The group from [`NetGroup::to_bytes`] output; `None` for an unknown class.
    pub fn from_bytes(bytes: [u8; 1 + NET_GROUP_PREFIX_LEN]) -> Option<NetGroup> {
        let class = GroupClass::from_u8(bytes[0])?;
        let mut prefix = [0u8; NET_GROUP_PREFIX_LEN];
        prefix.copy_from_slice(&bytes[1..]);
        Some(NetGroup { class, prefix })
    }

    const fn bare(class: GroupClass) -> NetGroup {
        NetGroup {
            class,
            prefix: [0; NET_GROUP_PREFIX_LEN],
        }
    }

    fn ipv4(ip: Ipv4Addr) -> NetGroup {
        let o = ip.octets();
        let mut g = NetGroup::bare(GroupClass::Ipv4);
        g.prefix[..2].copy_from_slice(&o[..2]);
        g
    }

    fn ipv6(ip: &Ipv6Addr) -> NetGroup {
        let o = ip.octets();
        let mut g = NetGroup::bare(GroupClass::Ipv6);
        g.prefix[..4].copy_from_slice(&o[..4]);
        if has_prefix(&o, &HE_NET_PREFIX, 32) {
            g.prefix[4] = keep_high_bits(o[4], 4);
        }
        g
    }

    fn overlay(class: GroupClass, first: u8) -> NetGroup {
        let mut g = NetGroup::bare(class);
        g.prefix[0] = keep_high_bits(first, OVERLAY_GROUP_BITS);
        g
    }
}

/// Keeps the top `bits` of `b` and sets the rest, as Core does for a
/// partial byte (so a partial byte never equals a full one).
fn keep_high_bits(b: u8, bits: u8) -> u8 {
    b | (0xffu8 >> bits)
}

/// Hurricane Electric's tunnel broker range, grouped by `/36` instead of `/32`.
const HE_NET_PREFIX: [u8; 4] = [0x20, 0x01, 0x04, 0x70];

/// The IPv4 address an IPv6 address carries, for the transition mechanisms
/// Core recognises (`CNetAddr::HasLinkedIPv4`).
pub(super) fn embedded_ipv4(ip: &Ipv6Addr) -> Option<Ipv4Addr> {
    let o = ip.octets();
    let tail = Ipv4Addr::new(o[12], o[13], o[14], o[15]);
    // IPv4-mapped (::ffff:0:0/96) and SIIT (RFC6145, ::ffff:0:0:0/96).
    if has_prefix(&o, &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff], 96)
        || has_prefix(&o, &[0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0], 96)
    {
        return Some(tail);
    }
    // NAT64 (RFC6052, 64:ff9b::/96).
    if has_prefix(&o, &[0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0], 96) {
        return Some(tail);
    }
    // 6to4 (RFC3964, 2002::/16): the IPv4 follows the prefix.
    if has_prefix(&o, &[0x20, 0x02], 16) {
        return Some(Ipv4Addr::new(o[2], o[3], o[4], o[5]));
    }
    // Teredo (RFC4380, 2001::/32): the client IPv4 is the last 32 bits, inverted.
    if has_prefix(&o, &[0x20, 0x01, 0, 0], 32) {
        return Some(Ipv4Addr::from(!u32::from(tail)));
    }
    None
}

impl fmt::Display for NetGroup {
    /// A short human form for logs and RPC: `ipv4:1.2`, `ipv6:2001:db8`,
    /// `onion:a`, `internal:0a0b0c0d`, `inbound-onion`, `unroutable`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = &self.prefix;
        match self.class {
            GroupClass::Unroutable => f.write_str("unroutable"),
            GroupClass::InboundOnion => f.write_str("inbound-onion"),
            GroupClass::Ipv4 => write!(f, "ipv4:{}.{}", p[0], p[1]),
            GroupClass::Ipv6 => {
                write!(
                    f,
                    "ipv6:{:x}:{:x}",
                    u16::from_be_bytes([p[0], p[1]]),
                    u16::from_be_bytes([p[2], p[3]])
                )?;
                if p[4] != 0 {
                    write!(f, ":{:x}", p[4] >> 4)?;
                }
                Ok(())
            }
            GroupClass::Onion => write!(f, "onion:{:x}", p[0] >> 4),
            GroupClass::I2p => write!(f, "i2p:{:x}", p[0] >> 4),
            GroupClass::Cjdns => write!(f, "cjdns:{:x}", p[1] >> 4),
            GroupClass::Internal => write!(
                f,
                "internal:{:02x}{:02x}{:02x}{:02x}",
                p[0], p[1], p[2], p[3]
            ),
        }
    }
}

impl fmt::Debug for NetGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(s: &str) -> NetGroup {
        match s.parse::<std::net::IpAddr>().unwrap() {
            std::net::IpAddr::V4(v4) => NetGroup::of(&Host::Ipv4(v4)),
            std::net::IpAddr::V6(v6) => NetGroup::of(&Host::Ipv6(v6)),
        }
    }

    #[test]
    fn ipv4_is_slash_16() {
        assert_eq!(group("1.2.3.4"), group("1.2.200.9"));
        assert_ne!(group("1.2.3.4"), group("1.3.3.4"));
        assert_eq!(group("1.2.3.4").to_string(), "ipv4:1.2");
    }

    #[test]
    fn ipv6_is_slash_32_and_he_net_slash_36() {
        assert_eq!(group("2a01:1:2:3::1"), group("2a01:1:ffff::9"));
        assert_ne!(group("2a01:1::1"), group("2a01:2::1"));
        assert_ne!(group("2001:470:1000::1"), group("2001:470:2000::1"));
        assert_eq!(group("2001:470:1000::1"), group("2001:470:1fff::1"));
        assert_eq!(group("2a01:1::1").to_string(), "ipv6:2a01:1");
    }

    #[test]
    fn embedded_ipv4_joins_the_ipv4_group() {
        let v4 = group("1.2.3.4");
        assert_eq!(group("2002:0102:0304::1"), v4, "6to4");
        assert_eq!(group("64:ff9b::0102:0304"), v4, "NAT64");
        assert_eq!(group("::ffff:0:0102:0304"), v4, "SIIT");
        // Teredo inverts the client address: !1.2.3.4 = fe.fd.fc.fb.
        assert_eq!(group("2001:0:1:2:3:4:fefd:fcfb"), v4, "Teredo");
    }

    #[test]
    fn unroutable_share_one_group() {
        assert_eq!(group("10.0.0.1"), group("127.0.0.1"));
        assert_eq!(group("fe80::1"), group("192.168.0.1"));
        assert_eq!(group("10.0.0.1").class(), GroupClass::Unroutable);
    }

    #[test]
    fn overlays_use_four_bits() {
        let a = NetGroup::of(&Host::TorV3([0xa0; 32]));
        let b = NetGroup::of(&Host::TorV3([0xaf; 32]));
        let c = NetGroup::of(&Host::TorV3([0xb0; 32]));
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.to_string(), "onion:a");
        // Same bits on another overlay network: another group.
        assert_ne!(a, NetGroup::of(&Host::I2p([0xa0; 32])));
        let mut keys = std::collections::BTreeSet::new();
        for first in 0..=255u8 {
            keys.insert(NetGroup::of(&Host::TorV3([first; 32])));
        }
        assert_eq!(keys.len(), 16);
    }

    #[test]
    fn cjdns_skips_the_constant_byte() {
        let a = NetGroup::of(&Host::Cjdns("fc10::1".parse().unwrap()));
        let b = NetGroup::of(&Host::Cjdns("fc1f:ffff::1".parse().unwrap()));
        let c = NetGroup::of(&Host::Cjdns("fc20::1".parse().unwrap()));
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.to_string(), "cjdns:1");
    }

    #[test]
    fn bytes_round_trip() {
        for g in [
            group("1.2.3.4"),
            group("2001:470:1000::1"),
            NetGroup::inbound_onion(),
            NetGroup::internal([1, 2, 3, 4]),
            NetGroup::of(&Host::I2p([0x51; 32])),
        ] {
            assert_eq!(NetGroup::from_bytes(g.to_bytes()), Some(g));
        }
        assert_eq!(NetGroup::from_bytes([99, 0, 0, 0, 0, 0]), None);
    }
}
