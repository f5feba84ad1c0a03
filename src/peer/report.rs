//! The messages between the engine and a peer connection: pure data, shared
//! by the tokio peer task and the simulator.

use crate::peer::machine::PeerEvent;
use crate::peer::reason::DisconnectReason;
use crate::wire::NetworkMessage;

/// nightjar's id for one connection (never an address: inbound onion peers
/// have none).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

impl std::fmt::Display for ConnId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "conn-{}", self.0)
    }
}

/// What the engine may ask of a peer task.
#[derive(Debug, Clone, PartialEq)]
pub enum PeerCommand {
    /// Send this message.
    Send(NetworkMessage),
    /// Count misbehaviour the engine found (invalid headers, say).
    Misbehaving {
        /// Points to add.
        points: u32,
        /// What happened.
        what: &'static str,
    },
    /// Close the connection.
    Disconnect(String),
}

/// What a peer task tells the engine.
#[derive(Debug, Clone, PartialEq)]
pub enum PeerReport {
    /// Something the machine reported (never `PeerEvent::Disconnect`; that
    /// becomes `Closed`).
    Event(PeerEvent),
    /// The connection is gone; sent exactly once, last.
    Closed(DisconnectReason),
}

/// A report tagged with its connection.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerUpdate {
    /// Which connection.
    pub conn: ConnId,
    /// What happened.
    pub report: PeerReport,
}
