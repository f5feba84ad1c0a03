//! nightjar: a Tor-first Bitcoin P2P node.
//!
//! The daemon's layers, from the bottom:
//! - [`nightjar_tor`] (the `tor/` crate): the embedded Arti client, the only
//!   code that talks to Tor;
//! - [`wire`]: v1 framing and BIP324 v2 message encoding, the only module
//!   that knows the `bitcoin` crate's message types;
//! - [`transport`]: BIP324 v2 (and policy-bound v1) over a Tor stream;
//! - [`peer`]: one peer connection, a sans-IO machine hosted by a task;
//! - [`netaddr`]: peer addresses as BIP155 (addrv2) knows them;
//! - [`addrman`]: the address manager, which decides whom we may dial;
//! - [`atomic_file`]: crash-safe state files;
//! - [`daemon`], [`paths`], [`logging`]: the process around them.

pub mod addrman;
pub mod atomic_file;
pub mod chain;
pub mod config;
pub mod daemon;
pub mod datadir_lock;
pub mod driver;
pub mod electrum;
pub mod engine;
pub mod error_text;
pub mod logging;
pub mod netaddr;
pub mod paths;
pub mod peer;
pub mod rpc;
pub mod systemd_notify;
pub mod tor_obsolete;
pub mod transport;
pub mod tx_check;
pub mod wallet;
pub mod wire;
