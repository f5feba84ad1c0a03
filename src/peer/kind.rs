//! Connection kinds: why a connection exists, which decides what we demand
//! of the peer and how its circuits are isolated.
//!
//! The kinds follow Bitcoin Core's `ConnectionType`, as Floresta adopted them;
//! nightjar adds nothing new, but every kind here goes through Tor.

use std::fmt;

use crate::wire::ServiceFlags;

/// Why we hold a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConnectionKind {
    /// A long-lived outbound peer that counts toward the outbound target; it
    /// must offer these services.
    Regular(ServiceFlags),
    /// A peer the user asked for (`addnode`/`connect`): kept, never banned,
    /// and the only outbound kind that may fall back to v1 by default.
    Manual,
    /// A short test of an address from the new table: handshake, then leave.
    Feeler,
    /// An extra outbound peer opened when our tip looks stale, to check we are
    /// not partitioned.
    Extra,
    /// A connection that carries one of our own transactions, then closes.
    PrivateBroadcast,
    /// A peer that connected to us (through our onion service).
    Inbound,
}

impl ConnectionKind {
    /// Whether we initiated the connection.
    pub fn is_outbound(self) -> bool {
        !matches!(self, ConnectionKind::Inbound)
    }

    /// Whether we sync from such a peer (headers, filters, blocks): our
    /// long-lived outbound connections. Feelers leave at once, inbound
    /// peers are anyone, and a private broadcast carries one transaction
    /// and must not be linked to anything else we do.
    pub fn syncs_from(self) -> bool {
        matches!(
            self,
            ConnectionKind::Regular(_) | ConnectionKind::Manual | ConnectionKind::Extra
        )
    }

    /// Services the peer must advertise for the connection to be kept.
    ///
    /// Feelers, manual, inbound and broadcast peers need nothing: a feeler
    /// only tests reachability, the user vouches for manual peers, inbound
    /// peers chose us, and any full node accepts a transaction.
    pub fn required_services(self) -> ServiceFlags {
        match self {
            ConnectionKind::Regular(services) => services,
            // Extra peers are there to tell us about the best chain.
            ConnectionKind::Extra => ServiceFlags::NETWORK | ServiceFlags::WITNESS,
            ConnectionKind::Manual
            | ConnectionKind::Feeler
            | ConnectionKind::PrivateBroadcast
            | ConnectionKind::Inbound => ServiceFlags::NONE,
        }
    }

    /// Whether the connection's fate feeds the address book (attempts,
    /// successes, learned services, gossip). A private broadcast leaves no
    /// trace there: what the book remembers shapes whom we dial next, and a
    /// regular connection must not be steered by, or betray, the peers that
    /// carried our transactions (Core 31.1 made the same change).
    pub fn uses_address_book(self) -> bool {
        !matches!(self, ConnectionKind::PrivateBroadcast)
    }

    /// Whether we ask the peer for addresses once connected: every outbound
    /// kind but private broadcasts, whose only business is one transaction.
    pub fn asks_for_addresses(self) -> bool {
        self.is_outbound() && self.uses_address_book()
    }

    /// The name Bitcoin Core's `getpeerinfo` uses for `connection_type`.
    pub fn core_name(self) -> &'static str {
        match self {
            ConnectionKind::Regular(_) => "outbound-full-relay",
            ConnectionKind::Manual => "manual",
            ConnectionKind::Feeler => "feeler",
            ConnectionKind::Extra => "outbound-full-relay",
            ConnectionKind::PrivateBroadcast => "private-broadcast",
            ConnectionKind::Inbound => "inbound",
        }
    }
}

impl ConnectionKind {
    /// nightjar's short name for the kind, in logs, isolation labels and
    /// `getpeerinfo`'s `nightjar_kind`. (Core's `connection_type` names
    /// `Regular` and `Extra` alike; we tell them apart.)
    pub fn label(self) -> &'static str {
        match self {
            ConnectionKind::Regular(_) => "regular",
            ConnectionKind::Manual => "manual",
            ConnectionKind::Feeler => "feeler",
            ConnectionKind::Extra => "extra",
            ConnectionKind::PrivateBroadcast => "private-broadcast",
            ConnectionKind::Inbound => "inbound",
        }
    }
}

impl fmt::Display for ConnectionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}
