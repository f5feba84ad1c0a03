//! Bitcoin Core as the reference peer of nightjar's tests and benches.
//!
//! `tests/core/build` builds `bitcoind` and `bitcoin-cli` from the Core
//! source tree that the crates.io package `libbitcoinkernel-sys` vendors;
//! [`CoreBinaries::find`] locates them (or the ones `BITCOIND` and
//! `BITCOIN_CLI` name). [`CoreNode::start`] runs a regtest `bitcoind` on
//! 127.0.0.1 with its own data directory and free ports, configured so that
//! it can reach nothing beyond this machine: no DNS seeds, no fixed seeds, no
//! automatic outbound connections, no address discovery, no port mapping, no
//! Tor control. It can sit behind an onion service of the private Tor
//! network (give it the service's backend port) and dial onion addresses
//! through the network's SOCKS port.
//!
//! Tests that need Core call [`core_required`], which follows the rule for
//! `tor`: a loud skip on a developer's machine, a failure in CI.

mod binaries;
mod node;

pub use binaries::{BITCOIN_CLI_ENV, BITCOIND_ENV, CoreBinaries, core_required};
pub use node::{CoreConfig, CoreNode, anyone_can_spend_address};
