//! Settings with their origin, and a layer of settings from one source.
//!
//! Every key is an `Option` in a [`Layer`]: `None` means "this source did
//! not mention the key". That is what lets the `--privacy` preset tell a
//! value the user chose (which may contradict it) from a default (which it
//! may replace), even where Bitcoin Core's key names hide the difference.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

use nightjar_tor::{BridgeLine, Target};

use crate::logging::DebugCategory;
use crate::netaddr::NetworkId;

use super::types::{BindSpec, Chain, Isolation, RpcBind, WalletEntry};

/// Where a setting's value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// nightjar's built-in default.
    Default,
    /// The `--privacy` preset filled it in.
    Privacy,
    /// The config file.
    File,
    /// The command line, with the flag that set it.
    CommandLine(&'static str),
}

impl Source {
    /// How `print-config` names the source.
    pub fn describe(self) -> String {
        match self {
            Source::Default => "default".to_owned(),
            Source::Privacy => "privacy preset".to_owned(),
            Source::File => "file".to_owned(),
            Source::CommandLine(flag) => format!("command line ({flag})"),
        }
    }

    /// Whether the user chose the value (file or command line).
    pub fn is_explicit(self) -> bool {
        matches!(self, Source::File | Source::CommandLine(_))
    }
}

impl fmt::Display for Source {
    /// How error messages name the source: `config file` or the flag.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => f.write_str("default"),
            Source::Privacy => f.write_str("privacy preset"),
            Source::File => f.write_str("config file"),
            Source::CommandLine(flag) => f.write_str(flag),
        }
    }
}

/// A value and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sourced<T> {
    /// The value.
    pub value: T,
    /// Its origin.
    pub source: Source,
}

impl<T> Sourced<T> {
    /// `value` from `source`.
    pub fn new(value: T, source: Source) -> Self {
        Sourced { value, source }
    }
}

/// Calls `$m!` with the name of every [`Layer`] field, so the per-field
/// plumbing (merging) cannot forget one.
macro_rules! for_each_layer_field {
    ($m:ident, $($arg:tt)*) => {
        $m!(
            $($arg)*;
            chain, datadir, onlynet, connect, addnode, listen, listenonion, bind, maxconnections,
            v2transport, dnsseed, fixedseeds, rpcbind, rpcport, rpccookiefile, privacy,
            v1fallback, maxoutbound, feeler_interval_secs, block_filters, decoy_blocks,
            electrum, electrum_bind, electrum_tls_bind, tor_network_file, tor_enabled,
            tor_isolation, tor_memory_limit_mib, tor_bridges, tor_transport_binary, log_debug,
            log_sensitive, wallets
        )
    };
}

/// The settings one source gives; `None` where it says nothing.
///
/// Field names are the config file's keys (`tor_*` and `log_*` are the
/// `[tor]` and `[log]` tables).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Layer {
    /// `chain`.
    pub chain: Option<Sourced<Chain>>,
    /// `datadir`.
    pub datadir: Option<Sourced<PathBuf>>,
    /// `onlynet`.
    pub onlynet: Option<Sourced<Vec<NetworkId>>>,
    /// `connect`.
    pub connect: Option<Sourced<Vec<Target>>>,
    /// `addnode`.
    pub addnode: Option<Sourced<Vec<Target>>>,
    /// `listen`.
    pub listen: Option<Sourced<bool>>,
    /// `listenonion`.
    pub listenonion: Option<Sourced<bool>>,
    /// `bind`.
    pub bind: Option<Sourced<Vec<BindSpec>>>,
    /// `maxconnections`.
    pub maxconnections: Option<Sourced<u32>>,
    /// `v2transport`.
    pub v2transport: Option<Sourced<bool>>,
    /// `dnsseed`.
    pub dnsseed: Option<Sourced<bool>>,
    /// `fixedseeds`.
    pub fixedseeds: Option<Sourced<bool>>,
    /// `rpcbind`.
    pub rpcbind: Option<Sourced<Vec<RpcBind>>>,
    /// `rpcport`.
    pub rpcport: Option<Sourced<u16>>,
    /// `rpccookiefile`.
    pub rpccookiefile: Option<Sourced<PathBuf>>,
    /// `privacy`.
    pub privacy: Option<Sourced<bool>>,
    /// `v1fallback`.
    pub v1fallback: Option<Sourced<bool>>,
    /// `maxoutbound`.
    pub maxoutbound: Option<Sourced<u16>>,
    /// `feeler_interval_secs`.
    pub feeler_interval_secs: Option<Sourced<u64>>,
    /// `block_filters`.
    pub block_filters: Option<Sourced<bool>>,
    /// `decoy_blocks`.
    pub decoy_blocks: Option<Sourced<u32>>,
    /// `electrum`.
    pub electrum: Option<Sourced<bool>>,
    /// `electrum_bind`.
    pub electrum_bind: Option<Sourced<SocketAddr>>,
    /// `electrum_tls_bind`.
    pub electrum_tls_bind: Option<Sourced<SocketAddr>>,
    /// `[tor] network_file`.
    pub tor_network_file: Option<Sourced<PathBuf>>,
    /// `[tor] enabled`.
    pub tor_enabled: Option<Sourced<bool>>,
    /// `[tor] isolation`.
    pub tor_isolation: Option<Sourced<Isolation>>,
    /// `[tor] memory_limit_mib`.
    pub tor_memory_limit_mib: Option<Sourced<u64>>,
    /// `[tor] bridges`.
    pub tor_bridges: Option<Sourced<Vec<BridgeLine>>>,
    /// `[tor] transport_binary`, by transport name.
    pub tor_transport_binary: Option<Sourced<BTreeMap<String, PathBuf>>>,
    /// `[log] debug`.
    pub log_debug: Option<Sourced<Vec<DebugCategory>>>,
    /// `[log] sensitive`.
    pub log_sensitive: Option<Sourced<bool>>,
    /// The `[wallet.NAME]` tables (only the file has them), by name.
    pub wallets: Option<Sourced<Vec<WalletEntry>>>,
}

macro_rules! merge_fields {
    ($low:ident, $high:ident; $($field:ident),*) => {
        Layer { $($field: $high.$field.or($low.$field)),* }
    };
}

impl Layer {
    /// This layer with `higher` on top: per key, `higher`'s value when it
    /// has one. Lists are replaced, not appended (as a command-line
    /// `-addnode` replaces the file's in Bitcoin Core).
    #[must_use]
    pub fn overlaid_with(self, higher: Layer) -> Layer {
        let low = self;
        for_each_layer_field!(merge_fields, low, higher)
    }

    /// The `--privacy` preset: the values it fills in where the user set
    /// nothing. Everything else keeps its ordinary default.
    pub fn privacy_preset() -> Layer {
        let p = Source::Privacy;
        Layer {
            onlynet: Some(Sourced::new(vec![NetworkId::Onion], p)),
            listen: Some(Sourced::new(false, p)),
            // An onion listener reveals no address, but it links the node's
            // uptime to its onion name: under the preset, only when asked.
            listenonion: Some(Sourced::new(false, p)),
            bind: Some(Sourced::new(Vec::new(), p)),
            v2transport: Some(Sourced::new(true, p)),
            dnsseed: Some(Sourced::new(false, p)),
            fixedseeds: Some(Sourced::new(true, p)),
            rpcbind: Some(Sourced::new(vec![RpcBind::LOOPBACK], p)),
            v1fallback: Some(Sourced::new(false, p)),
            tor_enabled: Some(Sourced::new(true, p)),
            tor_isolation: Some(Sourced::new(Isolation::PerConnection, p)),
            log_sensitive: Some(Sourced::new(false, p)),
            ..Layer::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_higher_layer_wins_per_key_and_gaps_fall_through() {
        let low = Layer {
            dnsseed: Some(Sourced::new(false, Source::File)),
            maxoutbound: Some(Sourced::new(4, Source::File)),
            ..Layer::default()
        };
        let high = Layer {
            maxoutbound: Some(Sourced::new(2, Source::CommandLine("--max-outbound"))),
            ..Layer::default()
        };
        let m = low.overlaid_with(high);
        assert_eq!(
            m.maxoutbound,
            Some(Sourced::new(2, Source::CommandLine("--max-outbound")))
        );
        assert_eq!(m.dnsseed, Some(Sourced::new(false, Source::File)));
        assert_eq!(m.listen, None);
    }
}
