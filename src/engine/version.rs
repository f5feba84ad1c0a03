//! The `version` message we send: it says as little about us as the
//! protocol allows.

use std::net::SocketAddr;

use nightjar_tor::Target;

use crate::peer::ConnectionKind;
use crate::peer::machine::MIN_PROTOCOL_VERSION;
use crate::wire::{Address, ServiceFlags, VersionMessage};

/// Our `version` for a connection of `kind` to `target`.
///
/// - `addr_from` is always the unroutable `0.0.0.0:0`: we never announce a
///   local address (Core sends its own; behind Tor that would be a leak).
/// - `addr_recv` is the peer's IP when we dialled one (Core does the same; it
///   tells the peer nothing it does not know), else unroutable: an onion
///   address does not fit the legacy field.
/// - No services (we serve no blocks) and start height 0.
/// - `relay`: true on connections that may tell us a transaction of ours
///   came back (regular, manual, extra and inbound peers). Without it a
///   Core peer sets up no transaction relay for the connection at all, and
///   could never announce our transaction back. What they announce is
///   governed by `feefilter` instead (see [`super::private_broadcast`]):
///   nothing while we wait for nothing. Feelers leave at once and
///   private-broadcast connections must hear nothing: `relay = false`.
///
/// A private-broadcast connection sends instead exactly what Bitcoin
/// Core's private broadcast sends ([`private_broadcast_version`]): its
/// anonymity set is then every Core and nightjar node broadcasting
/// privately, not just nightjar users.
pub fn our_version(
    kind: ConnectionKind,
    target: &Target,
    nonce: u64,
    unix_now: u64,
    user_agent: &str,
) -> VersionMessage {
    if kind == ConnectionKind::PrivateBroadcast {
        return private_broadcast_version(nonce);
    }
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
        relay: wants_announcements(kind),
    }
}

/// The user agent Bitcoin Core's private broadcast sends (a constant, so
/// that no node's own version shows).
pub const PRIVATE_BROADCAST_USER_AGENT: &str = "/pynode:0.0.1/";

/// The `version` of a private-broadcast connection, field for field what
/// Bitcoin Core 31 sends on its own (`PushNodeVersion`), so that the
/// receiving peer cannot tell a nightjar from a Core node:
/// - no services, and none claimed for the peer: serving nothing is true
///   of us anyway;
/// - time 0: our clock's skew would be a fingerprint that links the
///   short-lived connections of one node together;
/// - both addresses the all-zero IPv6 `[::]:0` (Core's empty `CService`;
///   our usual `0.0.0.0:0` serializes differently and would single us out);
/// - Core's constant user agent, height 0, and `relay = false`;
/// - only the nonce is fresh (it must be, to catch a self-connection).
pub fn private_broadcast_version(nonce: u64) -> VersionMessage {
    let empty = SocketAddr::from(([0u16; 8], 0));
    VersionMessage {
        version: MIN_PROTOCOL_VERSION,
        services: ServiceFlags::NONE,
        timestamp: 0,
        receiver: Address::new(&empty, ServiceFlags::NONE),
        sender: Address::new(&empty, ServiceFlags::NONE),
        nonce,
        user_agent: PRIVATE_BROADCAST_USER_AGENT.to_owned(),
        start_height: 0,
        relay: false,
    }
}

/// Whether a connection of `kind` asks for transaction announcements (the
/// `version` relay flag; see [`our_version`]).
pub fn wants_announcements(kind: ConnectionKind) -> bool {
    !matches!(
        kind,
        ConnectionKind::Feeler | ConnectionKind::PrivateBroadcast
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn we_announce_no_address_of_ours() {
        let onion: Target = "pg6mmjiyjmcrsslvykfwnntlaru7p5svn6y2ymmju6nubxndf4pscryd.onion:8333"
            .parse()
            .unwrap();
        let v = our_version(
            ConnectionKind::PrivateBroadcast,
            &onion,
            7,
            1_700_000_000,
            "/nightjar:0.1.0/",
        );
        assert_eq!(v.sender.address, [0u16; 8], "Core's empty address");
        assert_eq!(v.receiver.address, [0u16; 8]);
        assert_eq!((v.sender.port, v.receiver.port), (0, 0));
        assert_eq!(v.services, ServiceFlags::NONE);
        assert!(!v.relay, "a private broadcast hears no announcements");
        assert_eq!(v.nonce, 7);
        assert_eq!(v.start_height, 0);
        assert_eq!(v.timestamp, 0, "no clock to fingerprint");
        assert_eq!(v.user_agent, PRIVATE_BROADCAST_USER_AGENT);

        let regular = our_version(
            ConnectionKind::Manual,
            &onion,
            7,
            1_700_000_000,
            "/nightjar:0.1.0/",
        );
        assert_eq!(
            regular.sender.socket_addr().unwrap(),
            "0.0.0.0:0".parse().unwrap()
        );
        assert_eq!(regular.timestamp, 1_700_000_000);
        assert_eq!(regular.user_agent, "/nightjar:0.1.0/");
    }

    #[test]
    fn only_connections_that_can_confirm_ask_for_announcements() {
        let onion: Target = "pg6mmjiyjmcrsslvykfwnntlaru7p5svn6y2ymmju6nubxndf4pscryd.onion:8333"
            .parse()
            .unwrap();
        let relay = |kind| our_version(kind, &onion, 7, 0, "/x/").relay;
        assert!(relay(ConnectionKind::Regular(ServiceFlags::NONE)));
        assert!(relay(ConnectionKind::Manual));
        assert!(relay(ConnectionKind::Extra));
        assert!(relay(ConnectionKind::Inbound));
        assert!(!relay(ConnectionKind::Feeler));
        assert!(!relay(ConnectionKind::PrivateBroadcast));
    }
}
