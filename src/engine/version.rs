//! The `version` message we send: it says as little about us as the
//! protocol allows.

use std::net::SocketAddr;

use nightjar_tor::Target;

use crate::peer::machine::MIN_PROTOCOL_VERSION;
use crate::wire::{Address, ServiceFlags, VersionMessage};

/// Our `version` for a connection to `target`.
///
/// - `addr_from` is always the unroutable `0.0.0.0:0`: we never announce a
///   local address (Core sends its own; behind Tor that would be a leak).
/// - `addr_recv` is the peer's IP when we dialled one (Core does the same; it
///   tells the peer nothing it does not know), else unroutable: an onion
///   address does not fit the legacy field.
/// - No services (we serve no blocks), start height 0, and `relay = false`:
///   we want no transaction announcements.
pub fn our_version(target: &Target, nonce: u64, unix_now: u64, user_agent: &str) -> VersionMessage {
    let unroutable = SocketAddr::from(([0, 0, 0, 0], 0));
    let receiver = match target {
        Target::Ip(sa) => *sa,
        Target::Onion { .. } | Target::Host { .. } => unroutable,
    };
    VersionMessage {
        version: MIN_PROTOCOL_VERSION,
        services: ServiceFlags::NONE,
        timestamp: i64::try_from(unix_now).unwrap_or(i64::MAX),
        receiver: Address::new(&receiver, ServiceFlags::NONE),
        sender: Address::new(&unroutable, ServiceFlags::NONE),
        nonce,
        user_agent: user_agent.to_owned(),
        start_height: 0,
        relay: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn we_announce_no_address_of_ours() {
        let onion: Target = "pg6mmjiyjmcrsslvykfwnntlaru7p5svn6y2ymmju6nubxndf4pscryd.onion:8333"
            .parse()
            .unwrap();
        let v = our_version(&onion, 7, 1_700_000_000, "/nightjar:0.1.0/");
        assert_eq!(
            v.sender.socket_addr().unwrap(),
            "0.0.0.0:0".parse().unwrap()
        );
        assert_eq!(
            v.receiver.socket_addr().unwrap(),
            "0.0.0.0:0".parse().unwrap()
        );
        assert_eq!(v.services, ServiceFlags::NONE);
        assert!(!v.relay);
        assert_eq!(v.nonce, 7);
    }
}
