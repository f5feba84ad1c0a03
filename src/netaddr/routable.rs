//! Which hosts are worth storing and dialing.
//!
//! Mirrors Core's `CNetAddr::IsRoutable` (and `IsValid`): an address that
//! cannot belong to a public peer is never stored, because storing it only
//! wastes table space an attacker would love us to waste. Where Core lets a
//! range through that no peer can live in (multicast, the reserved `240/4`,
//! IPv4-compatible IPv6, an unroutable IPv4 embedded in IPv6), we are
//! stricter: refusing those costs nothing.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::{CJDNS_PREFIX, Host};

/// Whether `host` could be a public peer. Onion and I2P names are always
/// routable (their networks have no private ranges); CJDNS needs its prefix.
pub(super) fn is_routable(host: &Host) -> bool {
    match host {
        Host::Ipv4(ip) => ipv4_routable(*ip),
        Host::Ipv6(ip) => ipv6_routable(ip),
        Host::TorV3(_) | Host::I2p(_) => true,
        Host::Cjdns(ip) => ip.octets()[0] == CJDNS_PREFIX,
    }
}

/// An IPv4 prefix: network bytes and length in bits.
type V4Net = ([u8; 4], u8);

/// IPv4 ranges no public peer lives in.
const IPV4_UNROUTABLE: &[V4Net] = &[
    ([0, 0, 0, 0], 8), // "this network"; 0.0.0.0 is INADDR_ANY (Core: IsLocal/IsValid)
    ([127, 0, 0, 0], 8), // loopback (Core: IsLocal)
    ([10, 0, 0, 0], 8), // RFC1918 private
    ([172, 16, 0, 0], 12), // RFC1918 private
    ([192, 168, 0, 0], 16), // RFC1918 private
    ([198, 18, 0, 0], 15), // RFC2544 benchmarking
    ([169, 254, 0, 0], 16), // RFC3927 link-local
    ([100, 64, 0, 0], 10), // RFC6598 carrier-grade NAT
    ([192, 0, 2, 0], 24), // RFC5737 TEST-NET-1
    ([198, 51, 100, 0], 24), // RFC5737 TEST-NET-2
    ([203, 0, 113, 0], 24), // RFC5737 TEST-NET-3
    ([224, 0, 0, 0], 4), // multicast (stricter than Core)
    ([240, 0, 0, 0], 4), // reserved, incl. 255.255.255.255 (Core: IsValid)
];

/// Whether `ip` is a public unicast IPv4 address.
pub(super) fn ipv4_routable(ip: Ipv4Addr) -> bool {
    let bits = u32::from(ip);
    !IPV4_UNROUTABLE.iter().any(|(net, len)| {
        let mask = u32::MAX << (32 - u32::from(*len));
        bits & mask == u32::from_be_bytes(*net)
    })
}

/// An IPv6 prefix: the leading bytes and length in bits.
type V6Net = (&'static [u8], u8);

/// IPv6 ranges no public peer lives in (embedded-IPv4 ranges are checked
/// separately, by the IPv4 they carry).
const IPV6_UNROUTABLE: &[V6Net] = &[
    (&[0; 12], 96), // ::/96: unspecified, loopback, IPv4-compatible (deprecated)
    (&[0x20, 0x01, 0x0d, 0xb8], 32), // RFC3849 documentation (Core: IsValid)
    (&[0xfc], 7),   // RFC4193 unique local (CJDNS has its own network id)
    (&[0xfe, 0x80], 10), // RFC4862 link-local (Core checks fe80::/64)
    (&[0x20, 0x01, 0x00, 0x10], 28), // RFC4843 ORCHID
    (&[0x20, 0x01, 0x00, 0x20], 28), // RFC7343 ORCHIDv2
    (&[0xff], 8),   // multicast (stricter than Core)
];

/// Whether `octets` starts with the `len`-bit prefix `net`.
pub(super) fn has_prefix(octets: &[u8; 16], net: &[u8], len: u8) -> bool {
    let full = usize::from(len / 8);
    let rest = len % 8;
    if octets[..full] != net[..full] {
        return false;
    }
    if rest == 0 {
        return true;
    }
    let mask = 0xffu8 << (8 - rest);
    octets[full] & mask == net[full] & mask
}

/// Whether `ip` is a public unicast IPv6 address.
fn ipv6_routable(ip: &Ipv6Addr) -> bool {
    let octets = ip.octets();
    if IPV6_UNROUTABLE
        .iter()
        .any(|(net, len)| has_prefix(&octets, net, *len))
    {
        return false;
    }
    match super::netgroup::embedded_ipv4(ip) {
        Some(v4) => ipv4_routable(v4),
        None => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routable(s: &str) -> bool {
        let host = match s.parse::<std::net::IpAddr>().unwrap() {
            std::net::IpAddr::V4(v4) => Host::Ipv4(v4),
            std::net::IpAddr::V6(v6) => Host::Ipv6(v6),
        };
        is_routable(&host)
    }

    #[test]
    fn ipv4_ranges() {
        for ok in [
            "1.2.3.4",
            "8.8.8.8",
            "172.32.0.1",
            "100.128.0.1",
            "223.255.255.255",
        ] {
            assert!(routable(ok), "{ok}");
        }
        for bad in [
            "0.0.0.0",
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "198.18.0.1",
            "198.19.255.255",
            "169.254.1.1",
            "100.64.0.1",
            "100.127.255.255",
            "192.0.2.1",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "255.255.255.255",
        ] {
            assert!(!routable(bad), "{bad}");
        }
    }

    #[test]
    fn ipv6_ranges() {
        for ok in [
            "2001:4860::1",
            "2a01::1",
            "2002:0102:0304::1",
            "2001:470::1",
        ] {
            assert!(routable(ok), "{ok}");
        }
        for bad in [
            "::",
            "::1",
            "::1.2.3.4",
            "2001:db8::1",
            "fc00::1",
            "fd12::1",
            "fe80::1",
            "febf::1",
            "2001:10::1",
            "2001:20::1",
            "ff02::1",
            "2002:0a00:0001::1", // 6to4 of 10.0.0.1
            "64:ff9b::7f00:1",   // NAT64 of 127.0.0.1
        ] {
            assert!(!routable(bad), "{bad}");
        }
    }

    #[test]
    fn overlay_networks() {
        assert!(is_routable(&Host::TorV3([0; 32])));
        assert!(is_routable(&Host::I2p([0; 32])));
        assert!(is_routable(&Host::Cjdns("fc01::1".parse().unwrap())));
        assert!(!is_routable(&Host::Cjdns("fd01::1".parse().unwrap())));
    }

    #[test]
    fn prefix_matching() {
        let o = "2001:0db8::".parse::<Ipv6Addr>().unwrap().octets();
        assert!(has_prefix(&o, &[0x20, 0x01, 0x0d, 0xb8], 32));
        assert!(has_prefix(&o, &[0x20, 0x01, 0x0d], 20));
        assert!(!has_prefix(&o, &[0x20, 0x01, 0x00, 0x10], 28));
    }
}
