//! Why a peer connection ends, and what that says about the peer.

use std::fmt;

use crate::wire::WireError;

/// A misbehaviour score at or above this disconnects the peer (Core's old
/// `DISCOURAGEMENT_THRESHOLD`).
pub const MISBEHAVIOR_LIMIT: u32 = 100;

/// A breach of the version handshake's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HandshakeViolation {
    /// Any message other than `version` arrived first.
    MessageBeforeVersion,
    /// `verack` arrived before the peer's `version`.
    VerackBeforeVersion,
    /// A second `version`.
    DuplicateVersion,
    /// A second `verack`.
    DuplicateVerack,
    /// `wtxidrelay` or `sendaddrv2` after `verack` (BIP339/BIP155 forbid it).
    FeatureNegotiationAfterVerack,
    /// A non-handshake message between `version` and `verack`.
    MessageBeforeVerack,
}

/// How fast a peer tried to make us work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Flood {
    /// More messages than the message bucket allows.
    Messages,
    /// More bytes than the byte bucket allows.
    Bytes,
    /// More pings than the ping bucket allows.
    Pings,
    /// Far more gossip than the address budget; see `ADDR_FLOOD_DROPPED_LIMIT`.
    Addresses,
}

/// Why a connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DisconnectReason {
    /// The version handshake did not finish in time.
    HandshakeTimeout,
    /// A ping went unanswered past its deadline.
    PongTimeout,
    /// The peer broke the handshake order.
    Handshake(HandshakeViolation),
    /// The peer speaks a protocol version older than we support.
    ObsoleteVersion(u32),
    /// The peer lacks services this connection kind requires.
    MissingServices,
    /// We connected to ourselves (their nonce is ours).
    SelfConnection,
    /// Undecodable or invalid bytes on the wire.
    Wire(WireError),
    /// An `addr`/`addrv2` message with more than 1000 entries.
    OversizedAddr(usize),
    /// The peer exceeded a rate limit.
    Flood(Flood),
    /// Accumulated misbehaviour reached [`MISBEHAVIOR_LIMIT`].
    Misbehaving(u32),
    /// The peer closed the connection cleanly.
    PeerClosed,
    /// The connection ended in the middle of a message.
    TruncatedFrame,
    /// A read or write failed (reset, circuit closed).
    Io(String),
    /// The peer stopped reading: our writes could not drain in time.
    WriterStalled,
    /// The encrypted (v2) stream failed to decrypt: tampering or a bug.
    Decryption,
    /// We ended it: the engine asked, or we are shutting down.
    Local(String),
}

impl DisconnectReason {
    /// Whether the same address may well work if tried again soon: timeouts
    /// and I/O failures are circumstances, protocol violations are character.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            DisconnectReason::HandshakeTimeout
                | DisconnectReason::PongTimeout
                | DisconnectReason::PeerClosed
                | DisconnectReason::TruncatedFrame
                | DisconnectReason::Io(_)
                | DisconnectReason::Local(_)
        )
    }

    /// How much this counts against the peer (0–100; 100 means "do not
    /// come back"). Over Tor, bytes cannot be corrupted in transit (every
    /// cell is authenticated), so malformed input is the sender's doing.
    pub fn weight(&self) -> u32 {
        match self {
            DisconnectReason::Wire(_) => 100,
            DisconnectReason::Decryption => 100,
            DisconnectReason::OversizedAddr(_) => 100,
            DisconnectReason::Flood(_) => 100,
            DisconnectReason::Misbehaving(score) => (*score).min(100),
            DisconnectReason::Handshake(_) => 50,
            DisconnectReason::WriterStalled => 10,
            DisconnectReason::HandshakeTimeout
            | DisconnectReason::PongTimeout
            | DisconnectReason::ObsoleteVersion(_)
            | DisconnectReason::MissingServices
            | DisconnectReason::SelfConnection
            | DisconnectReason::PeerClosed
            | DisconnectReason::TruncatedFrame
            | DisconnectReason::Io(_)
            | DisconnectReason::Local(_) => 0,
        }
    }
}

impl fmt::Display for DisconnectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DisconnectReason::HandshakeTimeout => write!(f, "handshake timed out"),
            DisconnectReason::PongTimeout => write!(f, "ping not answered in time"),
            DisconnectReason::Handshake(v) => write!(f, "handshake violation: {v:?}"),
            DisconnectReason::ObsoleteVersion(v) => write!(f, "obsolete protocol version {v}"),
            DisconnectReason::MissingServices => write!(f, "peer lacks required services"),
            DisconnectReason::SelfConnection => write!(f, "connected to ourselves"),
            DisconnectReason::Wire(e) => write!(f, "invalid message: {e}"),
            DisconnectReason::OversizedAddr(n) => write!(f, "addr message with {n} entries"),
            DisconnectReason::Flood(what) => write!(f, "rate limit exceeded: {what:?}"),
            DisconnectReason::Misbehaving(score) => write!(f, "misbehaviour score {score}"),
            DisconnectReason::PeerClosed => write!(f, "peer closed the connection"),
            DisconnectReason::TruncatedFrame => write!(f, "connection closed mid-message"),
            DisconnectReason::Io(e) => write!(f, "I/O error: {e}"),
            DisconnectReason::WriterStalled => write!(f, "peer stopped reading"),
            DisconnectReason::Decryption => write!(f, "v2 decryption failed"),
            DisconnectReason::Local(why) => write!(f, "closed locally: {why}"),
        }
    }
}
