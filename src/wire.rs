//! Bitcoin P2P wire formats: the only module that knows the `bitcoin`
//! crate's message types.
//!
//! Two framings carry the same [`NetworkMessage`]s:
//! - [`v1`]: the legacy plaintext framing (magic, command, length, checksum),
//!   decoded by the push-style [`V1Decoder`];
//! - [`v2`]: the BIP324 *message* layer, i.e. what sits inside one decrypted
//!   v2 packet (a one-byte short id or a 12-byte command, then the payload).
//!   Packet encryption and the handshake belong to the `bip324` crate and
//!   are driven elsewhere; this module never sees ciphertext.
//!
//! Both framings share [`payload`], which maps a command and its payload
//! bytes to a message through the `bitcoin` crate's consensus encoding, and
//! the per-command size caps in [`max_payload_len`].
//!
//! The module is sans-IO: it does no I/O, reads no clock, spawns nothing and
//! uses no randomness, so the engine and the simulator can run it directly.
//! It never panics on peer input and never buffers more than a validated
//! length: every error is a [`WireError`] the caller can act on.

mod command;
pub mod error;
pub mod payload;
pub mod v1;
pub mod v2;

pub use bitcoin::p2p::Magic;
pub use bitcoin::p2p::message::NetworkMessage;
// The message types the rest of the node builds and inspects, so that only
// this module names the `bitcoin` crate's p2p paths.
pub use bitcoin::p2p::ServiceFlags;
pub use bitcoin::p2p::address::{AddrV2, AddrV2Message, Address};
pub use bitcoin::p2p::message::CommandString;
pub use bitcoin::p2p::message_blockdata::{GetHeadersMessage, Inventory};
pub use bitcoin::p2p::message_network::VersionMessage;

pub use error::WireError;
pub use payload::{decode_payload, encode_payload, max_payload_len};
pub use v1::{V1_HEADER_LEN, V1Decoder, encode_v1};
pub use v2::{command_for_short_id, decode_v2_contents, encode_v2_contents, short_id};

/// Core's MAX_PROTOCOL_MESSAGE_LENGTH: no message payload above 4 000 000 bytes.
///
/// Core drops a peer that announces more, so nothing legitimate is larger;
/// it also bounds what one peer can make us buffer before we decode.
pub const MAX_PAYLOAD_LEN: usize = 4_000_000;
