//! The watch-only wallet index: the user's own descriptors, the scripts
//! they derive, and what the chain holds for them (history, coins,
//! balances), found through compact block filters and verified blocks.
//! It knows nothing of sockets or Tor: it is fed blocks and answers
//! queries, and the Electrum server ([`crate::electrum`]) serves it.

pub mod backend;
pub mod index;
pub mod keychain;
pub mod node;
pub mod rpc;
pub mod scripthash;
pub mod service;
pub mod shared;
pub mod store;
pub mod sync;

#[cfg(test)]
mod index_tests;
#[cfg(test)]
mod sync_tests;
