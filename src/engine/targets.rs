//! Between the address book's [`NetAddr`] and the Tor client's [`Target`].

use std::net::SocketAddr;

use nightjar_tor::{OnionV3Address, Target};

use crate::netaddr::{Host, NetAddr};

/// The address-book form of a dial target; `None` for host names, which the
/// exit resolves and we never see as addresses.
pub fn target_to_addr(target: &Target) -> Option<NetAddr> {
    match target {
        Target::Ip(sa) => Some(NetAddr::from(*sa)),
        Target::Onion { address, port } => {
            Some(NetAddr::new(Host::TorV3(*address.pubkey()), *port))
        }
        Target::Host { .. } => None,
    }
}

/// What to dial for an address-book entry; `None` for networks we have no
/// transport for (I2P, CJDNS).
pub fn addr_to_target(addr: &NetAddr) -> Option<Target> {
    match addr.host {
        Host::Ipv4(ip) => Some(Target::Ip(SocketAddr::from((ip, addr.port)))),
        Host::Ipv6(ip) => Some(Target::Ip(SocketAddr::from((ip, addr.port)))),
        Host::TorV3(key) => Some(Target::Onion {
            address: OnionV3Address::from_pubkey(key),
            port: addr.port,
        }),
        Host::I2p(_) | Host::Cjdns(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_and_addresses_round_trip() {
        for text in [
            "1.2.3.4:8333",
            "[2001:db8::1]:8333",
            "pg6mmjiyjmcrsslvykfwnntlaru7p5svn6y2ymmju6nubxndf4pscryd.onion:8333",
        ] {
            let target: Target = text.parse().unwrap();
            let addr = target_to_addr(&target).unwrap();
            assert_eq!(addr_to_target(&addr), Some(target));
        }
        let host: Target = "seed.example.org:8333".parse().unwrap();
        assert_eq!(target_to_addr(&host), None);
    }
}
