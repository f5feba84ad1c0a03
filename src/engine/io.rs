//! The engine's vocabulary with the world: the time it is given, the
//! [`Input`]s it handles and the [`Output`]s it asks for.
//!
//! A module of its own so that the engine's parts (connection manager,
//! header sync, ...) name these types without reaching into their parent.

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use nightjar_tor::{CircuitLabel, IsolationGroup, Target};

use super::isolation::Isolation;
use crate::peer::{ConnId, ConnectionKind, PeerConfig, PeerUpdate};
use crate::transport::{TransportKind, V1Fallback};
use crate::wire::NetworkMessage;

/// The time, as the driver's clock read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    /// Monotonic time, for deadlines.
    pub mono: Instant,
    /// Wall-clock time in unix seconds, for the address book and `version`.
    pub unix: u64,
}

/// Why a dial did not produce a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DialFailure {
    /// What went wrong, for logs.
    pub reason: String,
    /// Whether the peer is to blame (unreachable, refused, bad handshake),
    /// as opposed to us or the Tor network: only then does the failure
    /// count against the address.
    pub peer_at_fault: bool,
}

/// Something that happened, for the engine to act on.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// Nothing new: time passed (the driver calls this at [`Engine::poll_timeout`]).
    Tick,
    /// The Tor client became ready (or stopped being ready).
    TorReady(bool),
    /// A dial succeeded: the transport is up and a peer task runs it.
    Connected {
        /// Which dial.
        conn: ConnId,
        /// v1 or v2.
        transport: TransportKind,
        /// The circuit carrying it, when known.
        circuit: Option<CircuitLabel>,
    },
    /// Someone opened a stream to one of our listeners (no handshake yet).
    /// The engine accepts it as a connection of its own, or refuses it.
    Accepted {
        /// The driver's handle on the stream until the engine decides.
        link: u64,
        /// Where it came from.
        from: InboundFrom,
    },
    /// Our onion service runs at this address (or no longer runs): it is
    /// announced to outbound peers.
    LocalOnion(Option<Target>),
    /// A dial (or an accepted stream's handshake) failed.
    DialFailed {
        /// Which dial.
        conn: ConnId,
        /// Why.
        failure: DialFailure,
    },
    /// A peer task reported.
    Peer(PeerUpdate),
    /// A DNS seed answered (through Tor); empty when it failed.
    SeedResolved {
        /// The seed's name.
        seed: String,
        /// The addresses it gave.
        addrs: Vec<IpAddr>,
    },
    /// Stop: disconnect everyone, persist, dial nothing more.
    Shutdown,
}

/// A dial the engine wants made.
#[derive(Debug, Clone)]
pub struct DialRequest {
    /// The connection's id, used in every later input and output.
    pub conn: ConnId,
    /// Whom to dial.
    pub target: Target,
    /// Why.
    pub kind: ConnectionKind,
    /// Which circuits it may share.
    pub isolation: Isolation,
    /// Whether v1 is allowed if the v2 handshake fails.
    pub v1: V1Fallback,
    /// The peer machine's configuration (our `version` and more).
    pub peer: PeerConfig,
}

/// Where an inbound stream came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InboundFrom {
    /// Our TCP listener, from this address.
    Tcp(SocketAddr),
    /// Our onion service, whose address and virtual port this is. The peer
    /// is anonymous: there is no address of theirs to judge or to ban.
    Onion(Target),
}

/// An accepted stream the engine takes on.
#[derive(Debug, Clone)]
pub struct AcceptRequest {
    /// The driver's handle, from [`Input::Accepted`].
    pub link: u64,
    /// The connection's id from now on; the transport handshake's result
    /// comes back as [`Input::Connected`] or [`Input::DialFailed`], as for
    /// a dial.
    pub conn: ConnId,
    /// Whether the peer may speak v1.
    pub allow_v1: bool,
    /// The peer machine's configuration (it answers their `version`).
    pub peer: PeerConfig,
}

/// Something the engine wants done.
#[derive(Debug, Clone)]
pub enum Output {
    /// Dial a peer (through Tor unless Tor is explicitly off).
    Dial(DialRequest),
    /// Take on an accepted stream: run the responder handshake.
    Accept(AcceptRequest),
    /// Close an accepted stream unanswered.
    Refuse {
        /// The driver's handle, from [`Input::Accepted`].
        link: u64,
        /// Why, for logs.
        reason: &'static str,
    },
    /// Send a message to a connected peer.
    Send {
        /// To whom.
        conn: ConnId,
        /// What.
        msg: NetworkMessage,
    },
    /// Close a connection (or abandon its dial).
    Disconnect {
        /// Which.
        conn: ConnId,
        /// Why, for logs.
        reason: String,
    },
    /// Resolve a DNS seed through a Tor exit, then report
    /// [`Input::SeedResolved`].
    ResolveSeed {
        /// The seed's name.
        host: String,
        /// The isolation group for the lookup.
        group: IsolationGroup,
    },
    /// Write this serialized address book to disk (atomically).
    PersistAddresses(Vec<u8>),
    /// Write this serialized ban list to disk (atomically).
    PersistBans(Vec<u8>),
    /// Write this serialized private-broadcast queue to disk, atomically
    /// and before answering the RPC call that changed it: a transaction
    /// the user was told is queued must survive a crash.
    PersistBroadcasts(Vec<u8>),
    /// No connection uses this group any more: its circuits may close.
    ReleaseGroup(IsolationGroup),
    /// The header chain grew: append its new headers to the chain file.
    PersistChain,
    /// The header chain was rolled back to this many headers (provisional
    /// low-work headers dropped): cut the chain file to match.
    TruncateChain(usize),
    /// The filter header chain grew: append its new records to its file.
    PersistFilterHeaders,
    /// The filter header chain was cut back to this many heights (a reorg):
    /// cut its file to match.
    TruncateFilterHeaders(usize),
    /// A scan or fetch the user asked for finished.
    Fetched {
        /// Which request ([`crate::engine::Command`] answered it with
        /// [`crate::engine::CommandReply::Pending`]).
        id: super::block_fetch::RequestId,
        /// What it brought.
        result: Result<super::block_fetch::Fetched, super::block_fetch::FetchError>,
    },
    /// Add misbehaviour points to a peer (its machine disconnects it at 100,
    /// and the address is then discouraged).
    Misbehaving {
        /// Which peer.
        conn: ConnId,
        /// Points to add.
        points: u32,
        /// What it did, for logs.
        what: &'static str,
    },
}
