//! The Electrum protocol server (protocol 1.4, as ElectrumX documents it):
//! newline-delimited JSON-RPC 2.0 over TCP, for wallets such as Electrum
//! and Sparrow pointed at the user's own node.
//!
//! It serves only the user's wallets (see [`backend::Backend`]): the
//! answers come from the wallet index, the verified header chain and
//! private broadcast, never from an index of every script.
//!
//! - [`backend`]: what the server needs from the node (a trait, plain types);
//! - [`server`]: sockets, framing, limits, one task per client;
//! - [`tls`]: the TLS listener's self-signed certificate and its key;
//! - `request`: one line in, one reply out (batches included);
//! - `jsonrpc`, `args`: envelopes, ElectrumX's error codes, typed
//!   parameters (the error and parameter types are [`crate::rpc`]'s);
//! - `methods`: the protocol's methods and a session's subscriptions;
//! - `status`: the script hash status (checkpoint proofs are
//!   [`crate::chain::merkle`]'s).
//!
//! Start it with [`bind`] and [`serve`] (plain TCP), or [`bind`],
//! [`tls::load_or_create`] and [`serve_tls`] (TLS); the node implements
//! [`Backend`].

mod args;
pub mod backend;
mod jsonrpc;
mod methods;
mod request;
pub mod server;
mod status;
#[cfg(test)]
mod testing;
pub mod tls;

pub use backend::{Backend, BackendError, Balance, Change, HistoryEntry, MerkleProof, Utxo};
pub use server::{BindError, Limits, bind, serve, serve_tls};
pub use tls::{Fingerprint, TlsAcceptor, TlsError, TlsIdentity};
