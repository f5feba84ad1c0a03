//! Turning a byte stream into a message transport: BIP324 v2 first, v1
//! only where policy allows, and never a retry that leaves the dialer (and
//! so the Tor circuit isolation) of the first attempt.
//!
//! - [`dialer`]: opening streams (through Tor, or direct TCP when Tor is off);
//! - [`handshake`]: the v2 handshake, responder-side v1 detection, fallback;
//! - [`session`]: reading and writing whole messages once established;
//! - [`v2_packets`]: BIP324 packet framing over the `bip324` crate's ciphers.

pub mod dialer;
pub mod handshake;
pub mod session;
pub mod v2_packets;

pub use dialer::{DialError, Dialer, DirectTcpDialer, PeerStream, TorDialer};
pub use handshake::{HandshakeError, V1Fallback, accept_inbound, connect_outbound, initiate_v2};
pub use session::{MessageReader, MessageWriter, Session, TransportKind};
