//! One peer connection: the sans-IO protocol machine and the task that hosts it.
//!
//! - [`kind`]: why a connection exists ([`ConnectionKind`]);
//! - [`machine`]: the handshake, pings, rate limits and misbehaviour of one
//!   peer, as a pure state machine ([`PeerMachine`]);
//! - [`limits`]: the token buckets and their constants;
//! - [`reason`]: why a connection ends ([`DisconnectReason`]);
//! - [`requests`]: which replies we asked for (exempt from the byte rate);
//! - [`task`]: the tokio task that hosts a machine over a transport session;
//! - [`traffic`]: the process's byte totals (`getnettotals`).

pub mod kind;
pub mod limits;
pub mod machine;
pub mod reason;
pub mod report;
pub mod requests;
pub mod task;
pub mod traffic;

pub use kind::ConnectionKind;
pub use machine::{PeerConfig, PeerEvent, PeerInfo, PeerMachine};
pub use reason::{DisconnectReason, Flood, HandshakeViolation};
pub use report::{ConnId, PeerCommand, PeerReport, PeerUpdate};
