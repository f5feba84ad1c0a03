//! From layers to effective settings: defaults < (privacy preset) < file <
//! command line, per key; then the `--privacy` contradiction check and the
//! validation of values no parser can judge alone.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bitcoin::ScriptBuf;
use nightjar_tor::{BridgeLine, Target, TargetKind, Transport};

use super::ConfigError;
use super::file::DEFAULT_GAP_LIMIT;
use super::layer::{Layer, Source, Sourced};
use super::types::{
    BindSpec, Birthday, Chain, DEFAULT_ELECTRUM_PORT, ElectrumSettings, Isolation, RpcBind,
    WalletEntry, WalletSpec,
};
use crate::engine::config::{DEFAULT_FEELER_INTERVAL, DEFAULT_TARGET_OUTBOUND};
use crate::engine::{EngineConfig, Reach};
use crate::logging::{DebugCategory, LogSettings};
use crate::netaddr::{NetworkId, NetworkSet};
use crate::paths::DataPaths;
use crate::rpc::RpcSettings;
use crate::wallet::keychain::{Keychain, KeychainError};

/// Added (`addnode`) peers Core reserves connections for.
const MAX_ADDED_PEERS: u32 = 8;

/// Bitcoin Core's default `maxconnections`.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 125;

/// The most regular outbound connections nightjar keeps (each one is a Tor
/// circuit; more would load the Tor network for little gain).
pub const MAX_OUTBOUND_LIMIT: u16 = 64;

/// The default RPC cookie file name, relative to the chain directory.
pub const DEFAULT_COOKIE_FILE: &str = ".cookie";

/// `[tor] memory_limit_mib` by default: Arti's memory quota, the queued
/// cells and stream data it may hold before it starts closing the circuits
/// that hold the most (see `nightjar_tor::DEFAULT_MEMORY_LIMIT`).
pub const DEFAULT_TOR_MEMORY_LIMIT_MIB: u64 = (nightjar_tor::DEFAULT_MEMORY_LIMIT >> 20) as u64;

/// The smallest `[tor] memory_limit_mib` accepted: below this Arti would
/// reclaim (close circuits) under an ordinary load of a few dozen peers.
pub const MIN_TOR_MEMORY_LIMIT_MIB: u64 = 16;

/// The largest `[tor] memory_limit_mib` accepted (1 TiB): a bound, not a
/// recommendation, so that no value overflows or turns into Arti's "no
/// quota" sentinel.
pub const MAX_TOR_MEMORY_LIMIT_MIB: u64 = 1 << 20;

/// `decoy_blocks` by default: one decoy block fetched (and discarded) for
/// every block a compact filter matched.
pub const DEFAULT_DECOY_BLOCKS: u32 = 1;

/// The most `decoy_blocks` accepted: each decoy is a whole block downloaded
/// and thrown away, so more would cost bandwidth for little extra cover.
pub const MAX_DECOY_BLOCKS: u32 = 10;

/// Every effective setting, each with its source. Field names are the
/// config file's keys (`tor_*`, `log_*`: the `[tor]` and `[log]` tables).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// `chain`.
    pub chain: Sourced<Chain>,
    /// `datadir` as given (`None`: nightjar chooses, see `crate::paths`).
    pub datadir: Sourced<Option<PathBuf>>,
    /// `onlynet`.
    pub onlynet: Sourced<Vec<NetworkId>>,
    /// `connect`.
    pub connect: Sourced<Vec<Target>>,
    /// `addnode`.
    pub addnode: Sourced<Vec<Target>>,
    /// `listen`.
    pub listen: Sourced<bool>,
    /// `listenonion`.
    pub listenonion: Sourced<bool>,
    /// `bind`.
    pub bind: Sourced<Vec<BindSpec>>,
    /// `maxconnections`.
    pub maxconnections: Sourced<u32>,
    /// `v2transport`.
    pub v2transport: Sourced<bool>,
    /// `dnsseed`.
    pub dnsseed: Sourced<bool>,
    /// `fixedseeds`.
    pub fixedseeds: Sourced<bool>,
    /// `rpcbind`.
    pub rpcbind: Sourced<Vec<RpcBind>>,
    /// `rpcport`.
    pub rpcport: Sourced<u16>,
    /// `rpccookiefile` as given (relative: under the chain directory).
    pub rpccookiefile: Sourced<PathBuf>,
    /// `privacy`.
    pub privacy: Sourced<bool>,
    /// `v1fallback`.
    pub v1fallback: Sourced<bool>,
    /// `maxoutbound`.
    pub maxoutbound: Sourced<u16>,
    /// `feeler_interval_secs`.
    pub feeler_interval_secs: Sourced<u64>,
    /// `block_filters`: keep the BIP157 basic filter header chain from
    /// filter-serving peers and offer the filter RPCs.
    pub block_filters: Sourced<bool>,
    /// `decoy_blocks`: blocks fetched and discarded for every block a
    /// filter matched.
    pub decoy_blocks: Sourced<u32>,
    /// `electrum`: serve the wallets to Electrum clients.
    pub electrum: Sourced<bool>,
    /// `electrum_bind`.
    pub electrum_bind: Sourced<SocketAddr>,
    /// `electrum_tls_bind` (`None`: no TLS listener).
    pub electrum_tls_bind: Sourced<Option<SocketAddr>>,
    /// `[tor] network_file` (`None`: the public Tor network).
    pub tor_network_file: Sourced<Option<PathBuf>>,
    /// `[tor] enabled`.
    pub tor_enabled: Sourced<bool>,
    /// `[tor] isolation`.
    pub tor_isolation: Sourced<Isolation>,
    /// `[tor] memory_limit_mib`: Arti's memory quota, in MiB.
    pub tor_memory_limit_mib: Sourced<u64>,
    /// `[tor] bridges`: when any are given, every circuit starts at one.
    pub tor_bridges: Sourced<Vec<BridgeLine>>,
    /// `[tor] transport_binary`: binaries for the bridges' transports,
    /// where not the default (`obfs4proxy` on PATH for obfs4).
    pub tor_transport_binary: Sourced<BTreeMap<String, PathBuf>>,
    /// `[log] debug`.
    pub log_debug: Sourced<Vec<DebugCategory>>,
    /// `[log] sensitive`.
    pub log_sensitive: Sourced<bool>,
    /// The `[wallet.NAME]` tables as written, in name order; see
    /// [`wallets`] for them read.
    pub wallets: Sourced<Vec<WalletEntry>>,
}

/// The explicit value if any, else the preset's, else the default.
fn pick<T>(explicit: Option<Sourced<T>>, preset: Option<Sourced<T>>, default: T) -> Sourced<T> {
    explicit
        .or(preset)
        .unwrap_or_else(|| Sourced::new(default, Source::Default))
}

/// Like [`pick`] for keys whose default is "not set".
fn pick_opt<T>(explicit: Option<Sourced<T>>) -> Sourced<Option<T>> {
    match explicit {
        Some(s) => Sourced::new(Some(s.value), s.source),
        None => Sourced::new(None, Source::Default),
    }
}

impl Settings {
    /// Merge the explicit settings (file under command line) with the
    /// preset (when `privacy` is on) and the defaults.
    pub fn merge(explicit: Layer) -> Settings {
        let privacy = pick(explicit.privacy, None, false);
        let p = if privacy.value {
            Layer::privacy_preset()
        } else {
            Layer::default()
        };
        let chain = pick(explicit.chain, None, Chain::Main);
        let network = bitcoin::Network::from(chain.value);
        let electrum = pick(explicit.electrum, p.electrum, false);
        Settings {
            datadir: pick_opt(explicit.datadir),
            onlynet: pick(explicit.onlynet, p.onlynet, NetworkId::ALL.to_vec()),
            connect: pick(explicit.connect, p.connect, Vec::new()),
            addnode: pick(explicit.addnode, p.addnode, Vec::new()),
            listen: pick(explicit.listen, p.listen, false),
            // Core's default: an onion listener whenever onion is reachable.
            listenonion: pick(
                explicit.listenonion,
                p.listenonion,
                explicit.tor_enabled.as_ref().is_none_or(|t| t.value),
            ),
            bind: pick(explicit.bind, p.bind, Vec::new()),
            maxconnections: pick(
                explicit.maxconnections,
                p.maxconnections,
                DEFAULT_MAX_CONNECTIONS,
            ),
            v2transport: pick(explicit.v2transport, p.v2transport, true),
            dnsseed: pick(explicit.dnsseed, p.dnsseed, true),
            fixedseeds: pick(explicit.fixedseeds, p.fixedseeds, true),
            rpcbind: pick(explicit.rpcbind, p.rpcbind, vec![RpcBind::LOOPBACK]),
            rpcport: pick(
                explicit.rpcport,
                p.rpcport,
                crate::rpc::default_rpc_port(network),
            ),
            rpccookiefile: pick(
                explicit.rpccookiefile,
                p.rpccookiefile,
                DEFAULT_COOKIE_FILE.into(),
            ),
            v1fallback: pick(explicit.v1fallback, p.v1fallback, false),
            maxoutbound: pick(
                explicit.maxoutbound,
                p.maxoutbound,
                u16::try_from(DEFAULT_TARGET_OUTBOUND).unwrap_or(8),
            ),
            feeler_interval_secs: pick(
                explicit.feeler_interval_secs,
                p.feeler_interval_secs,
                DEFAULT_FEELER_INTERVAL.as_secs(),
            ),
            // Wallets are indexed with compact block filters: a
            // `[wallet.NAME]` table or `electrum = true` turns them on unless
            // the user says otherwise (which `validate` then refuses).
            block_filters: pick(
                explicit.block_filters,
                p.block_filters,
                electrum.value
                    || explicit
                        .wallets
                        .as_ref()
                        .is_some_and(|w| !w.value.is_empty()),
            ),
            decoy_blocks: pick(explicit.decoy_blocks, p.decoy_blocks, DEFAULT_DECOY_BLOCKS),
            tor_network_file: pick_opt(explicit.tor_network_file),
            tor_enabled: pick(explicit.tor_enabled, p.tor_enabled, true),
            tor_isolation: pick(explicit.tor_isolation, p.tor_isolation, Isolation::PerKind),
            tor_memory_limit_mib: pick(
                explicit.tor_memory_limit_mib,
                p.tor_memory_limit_mib,
                DEFAULT_TOR_MEMORY_LIMIT_MIB,
            ),
            tor_bridges: pick(explicit.tor_bridges, p.tor_bridges, Vec::new()),
            tor_transport_binary: pick(
                explicit.tor_transport_binary,
                p.tor_transport_binary,
                BTreeMap::new(),
            ),
            log_debug: pick(explicit.log_debug, p.log_debug, Vec::new()),
            log_sensitive: pick(explicit.log_sensitive, p.log_sensitive, false),
            electrum_bind: pick(
                explicit.electrum_bind,
                p.electrum_bind,
                SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, DEFAULT_ELECTRUM_PORT)),
            ),
            electrum_tls_bind: pick_opt(explicit.electrum_tls_bind),
            wallets: pick(explicit.wallets, None, Vec::new()),
            electrum,
            chain,
            privacy,
        }
    }

    /// The Bitcoin network of `chain`.
    pub fn network(&self) -> bitcoin::Network {
        self.chain.value.into()
    }

    /// The engine's configuration.
    pub fn engine_config(&self) -> EngineConfig {
        let mut c = EngineConfig::new(self.network());
        let outbound = u32::from(self.maxoutbound.value).min(self.maxconnections.value);
        c.target_outbound = usize::try_from(outbound).unwrap_or(DEFAULT_TARGET_OUTBOUND);
        c.connect = self.connect.value.clone();
        c.addnodes = self.addnode.value.clone();
        c.privacy = self.privacy.value;
        c.v1_fallback = self.v1fallback.value;
        c.reach = if self.tor_enabled.value {
            Reach::Tor
        } else {
            Reach::Direct
        };
        c.dns_seeds = self.dnsseed.value;
        c.fixed_seeds = self.fixedseeds.value;
        c.feeler_interval = Duration::from_secs(self.feeler_interval_secs.value);
        c.onlynet = self.onlynet.value.iter().copied().collect::<NetworkSet>();
        c.isolate_every_connection = self.tor_isolation.value == Isolation::PerConnection;
        // Slots for inbound peers from the TCP listener and the onion
        // service alike.
        let listening = self.listen.value || (self.listenonion.value && self.tor_enabled.value);
        c.max_inbound = if listening { self.max_inbound() } else { 0 };
        c.block_filters = self.block_filters.value;
        c.decoy_blocks = self.decoy_blocks.value;
        c
    }

    /// Inbound slots: `maxconnections` less what outbound connections may
    /// take (the regular target, up to 8 added peers, a feeler and a
    /// stale-tip extra), as Core reckons it.
    pub fn max_inbound(&self) -> usize {
        let outbound = u32::from(self.maxoutbound.value).min(self.maxconnections.value);
        let reserved = outbound + MAX_ADDED_PEERS + 2;
        usize::try_from(self.maxconnections.value.saturating_sub(reserved)).unwrap_or(0)
    }

    /// Where to listen for peers: each `bind`, or (as Core) every IPv4 and
    /// IPv6 interface on the chain's port; nothing without `listen`.
    pub fn listen_addrs(&self) -> Vec<SocketAddr> {
        if !self.listen.value {
            return Vec::new();
        }
        let port = crate::engine::conn_manager::default_port(self.network());
        if self.bind.value.is_empty() {
            return vec![
                SocketAddr::from((std::net::Ipv4Addr::UNSPECIFIED, port)),
                SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, port)),
            ];
        }
        self.bind
            .value
            .iter()
            .map(|b| SocketAddr::new(b.ip, b.port.unwrap_or(port)))
            .collect()
    }

    /// The RPC server's settings, for the chain directory of `paths`.
    pub fn rpc_settings(&self, paths: &DataPaths) -> RpcSettings {
        RpcSettings {
            binds: self
                .rpcbind
                .value
                .iter()
                .map(|b| b.socket_addr(self.rpcport.value))
                .collect::<Vec<SocketAddr>>(),
            cookie_file: self.cookie_path(&paths.chain_dir),
            max_body: crate::rpc::DEFAULT_MAX_BODY,
            request_timeout: crate::rpc::DEFAULT_REQUEST_TIMEOUT,
        }
    }

    /// Where the Electrum server listens; `None` when `electrum` is off.
    pub fn electrum_settings(&self) -> Option<ElectrumSettings> {
        self.electrum.value.then_some(ElectrumSettings {
            bind: self.electrum_bind.value,
            tls_bind: self.electrum_tls_bind.value,
        })
    }

    /// Whether block filters are on only because the wallets (or
    /// `electrum = true`) asked for them (for `print-config`, which says
    /// so).
    pub fn block_filters_implied(&self) -> bool {
        (self.electrum.value || !self.wallets.value.is_empty())
            && self.block_filters.value
            && !self.block_filters.source.is_explicit()
    }

    /// The `[tor] transport_binary` entries, as the Tor client takes them.
    pub fn tor_transports(&self) -> Vec<Transport> {
        self.tor_transport_binary
            .value
            .iter()
            .map(|(protocol, binary)| Transport {
                protocol: protocol.clone(),
                binary: binary.clone(),
            })
            .collect()
    }

    /// Arti's memory quota in bytes (`[tor] memory_limit_mib`, which
    /// validation keeps within 1 TiB; a 32-bit machine gets its half of the
    /// address space at most).
    pub fn tor_memory_limit_bytes(&self) -> usize {
        let bytes = self.tor_memory_limit_mib.value.saturating_mul(1 << 20);
        usize::try_from(bytes).unwrap_or(usize::MAX / 2)
    }

    /// The cookie file: absolute as given, or under the chain directory.
    pub fn cookie_path(&self, chain_dir: &Path) -> PathBuf {
        chain_dir.join(&self.rpccookiefile.value)
    }

    /// The log settings.
    pub fn log_settings(&self) -> LogSettings {
        LogSettings {
            debug: self.log_debug.value.clone(),
            sensitive: self.log_sensitive.value,
        }
    }
}

/// Names a setting for a message: `key = value` from the file or a
/// default, the flag (and its value) from the command line.
fn shown(key: &str, value: &str, source: Source, flag_takes_value: bool) -> String {
    match source {
        Source::CommandLine(flag) if flag_takes_value => format!("{flag} {value}"),
        Source::CommandLine(flag) => flag.to_owned(),
        _ => format!("{key} = {value}"),
    }
}

/// The config file, for an error about a setting that came from it.
fn file_of(file: Option<&Path>, source: Source) -> Option<PathBuf> {
    (source == Source::File)
        .then(|| file.map(Path::to_path_buf))
        .flatten()
}

/// A bad-value error for a setting.
fn invalid(
    file: Option<&Path>,
    key: &str,
    value: &str,
    source: Source,
    flag_takes_value: bool,
    problem: &str,
) -> ConfigError {
    ConfigError::Invalid {
        file: file_of(file, source),
        setting: shown(key, value, source, flag_takes_value),
        problem: problem.to_owned(),
    }
}

/// TOML spelling of a list of displayable values: `["a", "b"]`.
pub(crate) fn toml_list<T: std::fmt::Display>(items: &[T]) -> String {
    let values: Vec<toml::Value> = items
        .iter()
        .map(|i| toml::Value::String(i.to_string()))
        .collect();
    toml::Value::Array(values).to_string()
}

/// TOML spelling of a string.
pub(crate) fn toml_str(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

/// Join with " and ", for lists inside one item of a comma-separated list.
fn and_list<T: std::fmt::Display>(items: &[T]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(" and ")
}

/// The peers in `targets` that are not onion services.
fn clearnet(targets: &[Target]) -> Vec<&Target> {
    targets
        .iter()
        .filter(|t| t.kind() != TargetKind::Onion)
        .collect()
}

/// Every explicitly set option that contradicts the privacy preset, as
/// `what (source)`.
pub fn privacy_contradictions(explicit: &Layer) -> Vec<String> {
    let mut out = Vec::new();
    let mut add = |what: String, source: Source| out.push(format!("{what} ({source})"));
    if let Some(s) = &explicit.onlynet {
        let other: Vec<NetworkId> = s
            .value
            .iter()
            .copied()
            .filter(|n| *n != NetworkId::Onion)
            .collect();
        if !other.is_empty() {
            add(format!("onlynet includes {}", and_list(&other)), s.source);
        }
    }
    for (key, layer) in [
        ("connect", &explicit.connect),
        ("addnode", &explicit.addnode),
    ] {
        if let Some(s) = layer {
            let bad = clearnet(&s.value);
            if !bad.is_empty() {
                let what = if bad.len() == 1 {
                    "is not an onion peer"
                } else {
                    "are not onion peers"
                };
                add(format!("{key} {} {what}", and_list(&bad)), s.source);
            }
        }
    }
    if let Some(s) = explicit.listen.as_ref().filter(|s| s.value) {
        add("listen = true".to_owned(), s.source);
    }
    if let Some(s) = explicit.bind.as_ref().filter(|s| !s.value.is_empty()) {
        add(format!("bind = {}", toml_list(&s.value)), s.source);
    }
    if let Some(s) = explicit.v2transport.as_ref().filter(|s| !s.value) {
        add("v2transport = false".to_owned(), s.source);
    }
    if let Some(s) = explicit.v1fallback.as_ref().filter(|s| s.value) {
        add("v1fallback = true".to_owned(), s.source);
    }
    if let Some(s) = explicit.dnsseed.as_ref().filter(|s| s.value) {
        add("dnsseed = true".to_owned(), s.source);
    }
    if let Some(s) = &explicit.rpcbind {
        let open: Vec<&RpcBind> = s.value.iter().filter(|b| !b.ip.is_loopback()).collect();
        if !open.is_empty() {
            add(
                format!("rpcbind includes {}, not loopback", and_list(&open)),
                s.source,
            );
        }
    }
    // Like rpcbind: a wallet server reachable from other machines tells
    // whoever reaches it which addresses are yours.
    for (key, layer) in [
        ("electrum_bind", &explicit.electrum_bind),
        ("electrum_tls_bind", &explicit.electrum_tls_bind),
    ] {
        if let Some(s) = layer.as_ref().filter(|s| !s.value.ip().is_loopback()) {
            add(format!("{key} {} is not loopback", s.value), s.source);
        }
    }
    if let Some(s) = explicit.tor_enabled.as_ref().filter(|s| !s.value) {
        add("tor.enabled = false".to_owned(), s.source);
    }
    if let Some(s) = explicit
        .tor_isolation
        .as_ref()
        .filter(|s| s.value == Isolation::PerKind)
    {
        add("tor.isolation = \"per-kind\"".to_owned(), s.source);
    }
    if let Some(s) = explicit.log_sensitive.as_ref().filter(|s| s.value) {
        add("log.sensitive = true".to_owned(), s.source);
    }
    out
}

/// Check values no parser can judge alone: ranges, combinations, and the
/// options this version accepts by name but cannot honour. Returns the
/// warnings for settings that work but deserve a word.
pub fn validate(s: &Settings, file: Option<&Path>) -> Result<Vec<String>, ConfigError> {
    let mut warnings = Vec::new();
    if s.listenonion.value && !s.tor_enabled.value {
        return Err(invalid(
            file,
            "listenonion",
            "true",
            s.listenonion.source,
            false,
            "an onion service needs Tor, which is turned off; remove it or turn Tor on",
        ));
    }
    if !s.bind.value.is_empty() && !s.listen.value {
        return Err(invalid(
            file,
            "bind",
            &toml_list(&s.bind.value),
            s.bind.source,
            true,
            "bind only applies to listening; add listen = true (--listen), or remove it",
        ));
    }
    if s.bind.value.iter().any(|b| b.onion) {
        return Err(invalid(
            file,
            "bind",
            &toml_list(&s.bind.value),
            s.bind.source,
            true,
            "onion inbound (=onion) comes through nightjar's own onion service, which is not available in this version; bind a plain address",
        ));
    }
    if !s.v2transport.value {
        return Err(invalid(
            file,
            "v2transport",
            "false",
            s.v2transport.source,
            false,
            "nightjar always tries BIP324 v2 first; to let peers without v2 connect over unencrypted v1, set v1fallback = true (--v1-fallback) instead",
        ));
    }
    if s.onlynet.value.is_empty() {
        return Err(invalid(
            file,
            "onlynet",
            "[]",
            s.onlynet.source,
            true,
            "name at least one network (ipv4, ipv6, onion, i2p, cjdns), or remove the key to allow them all",
        ));
    }
    if s.rpcbind.value.is_empty() {
        return Err(invalid(
            file,
            "rpcbind",
            "[]",
            s.rpcbind.source,
            true,
            "name at least one address, or remove the key for 127.0.0.1",
        ));
    }
    if s.maxoutbound.value > MAX_OUTBOUND_LIMIT {
        return Err(invalid(
            file,
            "maxoutbound",
            &s.maxoutbound.value.to_string(),
            s.maxoutbound.source,
            true,
            &format!(
                "at most {MAX_OUTBOUND_LIMIT} outbound connections; use a number from 0 to {MAX_OUTBOUND_LIMIT}"
            ),
        ));
    }
    let mib = s.tor_memory_limit_mib.value;
    if !(MIN_TOR_MEMORY_LIMIT_MIB..=MAX_TOR_MEMORY_LIMIT_MIB).contains(&mib) {
        return Err(invalid(
            file,
            "tor.memory_limit_mib",
            &s.tor_memory_limit_mib.value.to_string(),
            s.tor_memory_limit_mib.source,
            true,
            &format!(
                "use a number of MiB from {MIN_TOR_MEMORY_LIMIT_MIB} to {MAX_TOR_MEMORY_LIMIT_MIB} \
                 (with less, Arti would close circuits under an ordinary load); \
                 the default is {DEFAULT_TOR_MEMORY_LIMIT_MIB}"
            ),
        ));
    }
    if s.decoy_blocks.value > MAX_DECOY_BLOCKS {
        return Err(invalid(
            file,
            "decoy_blocks",
            &s.decoy_blocks.value.to_string(),
            s.decoy_blocks.source,
            true,
            &format!(
                "use a number from 0 to {MAX_DECOY_BLOCKS} (each decoy is a whole block \
                 downloaded and discarded); the default is {DEFAULT_DECOY_BLOCKS}"
            ),
        ));
    }
    if s.feeler_interval_secs.value == 0 {
        return Err(invalid(
            file,
            "feeler_interval_secs",
            "0",
            s.feeler_interval_secs.source,
            true,
            "the interval must be at least 1 second",
        ));
    }
    if s.rpcport.value == 0 {
        return Err(invalid(
            file,
            "rpcport",
            "0",
            s.rpcport.source,
            true,
            "use a port number from 1 to 65535",
        ));
    }
    if s.rpccookiefile.value.as_os_str().is_empty() {
        return Err(invalid(
            file,
            "rpccookiefile",
            "\"\"",
            s.rpccookiefile.source,
            true,
            "name a file, e.g. \".cookie\"",
        ));
    }
    if let Some(dir) = &s.datadir.value
        && dir.as_os_str().is_empty()
    {
        return Err(invalid(
            file,
            "datadir",
            "\"\"",
            s.datadir.source,
            true,
            "name a directory, or remove the key for the default",
        ));
    }
    if let Some(net_file) = &s.tor_network_file.value {
        let value = toml_str(&net_file.to_string_lossy());
        if !s.tor_enabled.value {
            return Err(invalid(
                file,
                "tor.network_file",
                &value,
                s.tor_network_file.source,
                true,
                &format!(
                    "a custom Tor network needs Tor, which tor.enabled = false ({}) turns off; remove one of them",
                    s.tor_enabled.source
                ),
            ));
        }
        if !net_file.is_file() {
            return Err(invalid(
                file,
                "tor.network_file",
                &value,
                s.tor_network_file.source,
                true,
                "no such file; give the path of an Arti-format Tor network file (see config/tor-network.example.toml)",
            ));
        }
    }
    if !s.tor_enabled.value {
        if !s.tor_bridges.value.is_empty() {
            return Err(invalid(
                file,
                "tor.bridges",
                &toml_list(&s.tor_bridges.value),
                s.tor_bridges.source,
                true,
                &format!(
                    "bridges are a way into Tor, which tor.enabled = false ({}) turns off; remove one of them",
                    s.tor_enabled.source
                ),
            ));
        }
        for (key, peers) in [("connect", &s.connect), ("addnode", &s.addnode)] {
            if let Some(onion) = peers.value.iter().find(|t| t.kind() == TargetKind::Onion) {
                return Err(invalid(
                    file,
                    key,
                    &onion.to_string(),
                    peers.source,
                    true,
                    &format!(
                        "onion peers need Tor, which tor.enabled = false ({}) turns off",
                        s.tor_enabled.source
                    ),
                ));
            }
        }
    }
    validate_electrum(s, file, &mut warnings)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    warnings.extend(birthday_warnings(s, now));
    let unreachable: Vec<NetworkId> = s
        .onlynet
        .value
        .iter()
        .copied()
        .filter(|n| matches!(n, NetworkId::I2p | NetworkId::Cjdns))
        .collect();
    // Listing every network (as the shipped nightjar.toml does) is the
    // default spelled out, not a wish for i2p or cjdns.
    let all_listed = NetworkId::ALL.iter().all(|n| s.onlynet.value.contains(n));
    if !unreachable.is_empty() && s.onlynet.source.is_explicit() && !all_listed {
        warnings.push(format!(
            "onlynet: nightjar cannot reach {} yet; automatic connections will not use it",
            and_list(&unreachable)
        ));
    }
    if s.engine_config().reachable_networks().is_empty()
        && s.connect.value.is_empty()
        && s.addnode.value.is_empty()
    {
        warnings.push(
            "no network in onlynet is reachable (onion needs Tor; i2p and cjdns are not supported yet): nightjar will make no connections"
                .to_owned(),
        );
    }
    let open: Vec<&RpcBind> = s
        .rpcbind
        .value
        .iter()
        .filter(|b| !b.ip.is_loopback())
        .collect();
    if !open.is_empty() {
        warnings.push(format!(
            "rpcbind {}: the RPC server accepts connections from other machines there (cookie authentication, no encryption)",
            and_list(&open)
        ));
    }
    // A missing transport stops the start; check-config says so first.
    // (Bridges without Tor were refused above.)
    if let Err(why) =
        nightjar_tor::bridge::locate_transports(&s.tor_bridges.value, &s.tor_transports())
    {
        warnings.push(format!(
            "tor.bridges: {why}; the node will not start without it"
        ));
    }
    Ok(warnings)
}

/// The Electrum server's keys against each other and the rest.
fn validate_electrum(
    s: &Settings,
    file: Option<&Path>,
    warnings: &mut Vec<String>,
) -> Result<(), ConfigError> {
    if !s.electrum.value {
        // The wallets are indexed with block filters, Electrum or not.
        if !s.wallets.value.is_empty() && !s.block_filters.value {
            return Err(invalid(
                file,
                "block_filters",
                "false",
                s.block_filters.source,
                false,
                "the [wallet] tables are indexed with block filters; \
                 remove block_filters = false, or the [wallet] tables",
            ));
        }
        return Ok(());
    }
    let electrum = shown("electrum", "true", s.electrum.source, false);
    if s.wallets.value.is_empty() {
        return Err(invalid(
            file,
            "electrum",
            "true",
            s.electrum.source,
            false,
            "electrum = true serves your wallets: add a [wallet.NAME] table \
             (descriptors and birthday) to the config file, or turn electrum off",
        ));
    }
    if !s.block_filters.value {
        return Err(invalid(
            file,
            "block_filters",
            "false",
            s.block_filters.source,
            false,
            &format!(
                "{electrum} ({}) finds the wallets' transactions with block filters; \
                 remove block_filters = false, or turn electrum off",
                s.electrum.source
            ),
        ));
    }
    let bind = s.electrum_bind.value;
    if s.electrum_tls_bind.value == Some(bind) {
        return Err(invalid(
            file,
            "electrum_tls_bind",
            &toml_str(&bind.to_string()),
            s.electrum_tls_bind.source,
            true,
            "the TLS listener needs an address of its own, not electrum_bind's; \
             the convention is port 50002",
        ));
    }
    let rpc: Vec<SocketAddr> = s
        .rpcbind
        .value
        .iter()
        .map(|b| b.socket_addr(s.rpcport.value))
        .collect();
    let listen = s.listen_addrs();
    for (key, addr, source) in [
        ("electrum_bind", Some(bind), s.electrum_bind.source),
        (
            "electrum_tls_bind",
            s.electrum_tls_bind.value,
            s.electrum_tls_bind.source,
        ),
    ] {
        let Some(addr) = addr else { continue };
        let taken = if rpc.contains(&addr) {
            Some("the RPC server's (rpcbind, rpcport)")
        } else if listen.contains(&addr) {
            Some("the P2P listener's (bind)")
        } else {
            None
        };
        if let Some(whose) = taken {
            return Err(invalid(
                file,
                key,
                &toml_str(&addr.to_string()),
                source,
                true,
                &format!("that address is {whose}; give the Electrum server another port"),
            ));
        }
        if !addr.ip().is_loopback() {
            warnings.push(format!(
                "{key} {addr}: the Electrum server accepts connections from other machines there, \
                 without authentication; whoever reaches it can ask for your wallets' addresses and balances"
            ));
        }
    }
    Ok(())
}

/// The wallets read: every `descriptors` entry parsed for the chain, and no
/// keychain watched twice (the same scripts in two wallets would be
/// reported to both, and the index keeps one owner per script).
///
/// An error names the wallet, the entry (from 0) and why.
pub fn wallets(s: &Settings, file: Option<&Path>) -> Result<Vec<WalletSpec>, ConfigError> {
    let network = s.network();
    let fail = |setting: String, problem: String| ConfigError::Invalid {
        file: file_of(file, s.wallets.source),
        setting,
        problem,
    };
    // Two keychains are the same stream when their first scripts are
    // equal, whether or not they were written with origins, checksums, as
    // a bare key or as a descriptor.
    let mut owners: Vec<(ScriptBuf, String)> = Vec::new();
    let mut out = Vec::with_capacity(s.wallets.value.len());
    for w in &s.wallets.value {
        let mut keychains: Vec<Keychain> = Vec::new();
        for (i, text) in w.descriptors.iter().enumerate() {
            let entry = format!("wallet.{}.descriptors[{i}]", w.name);
            let chains = Keychain::parse(text, network)
                .map_err(|e| fail(entry.clone(), format!("{e}{}", chain_hint(&e, s))))?;
            for chain in chains {
                let first = chain
                    .script_at(0)
                    .map_err(|e| fail(entry.clone(), e.to_string()))?;
                if let Some((_, other)) = owners.iter().find(|(script, _)| *script == first) {
                    let problem = if other == &entry {
                        "it gives the same keychain twice".to_owned()
                    } else {
                        format!(
                            "{other} already watches the keychain {chain}; a keychain belongs to one wallet only: list it once"
                        )
                    };
                    return Err(fail(entry, problem));
                }
                owners.push((first, entry.clone()));
                keychains.push(chain);
            }
        }
        out.push(WalletSpec {
            name: w.name.clone(),
            keychains,
            birthday: w.birthday,
            gap_limit: w.gap_limit.unwrap_or(DEFAULT_GAP_LIMIT),
        });
    }
    Ok(out)
}

/// Where the chain came from, for a network mismatch: the fix may be
/// there rather than in the wallet.
fn chain_hint(e: &KeychainError, s: &Settings) -> String {
    match e {
        KeychainError::WrongNetwork { .. } => {
            format!(" (chain: {})", s.chain.source.describe())
        }
        _ => String::new(),
    }
}

/// A warning for a date birthday in the future: almost surely a typo, and
/// one that would hide every transaction made before that day.
pub fn birthday_warnings(s: &Settings, now_unix: u64) -> Vec<String> {
    s.wallets
        .value
        .iter()
        .filter_map(|w| match w.birthday {
            Birthday::Date { unix } if unix > now_unix => Some(format!(
                "wallet.{}.birthday = {}: that day has not come yet; transactions made before it will not be found",
                w.name, w.birthday
            )),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_cores_where_core_has_them() {
        let s = Settings::merge(Layer::default());
        assert_eq!(s.maxconnections.value, 125);
        assert_eq!(s.rpcport.value, 8332);
        assert_eq!(s.rpccookiefile.value, Path::new(".cookie"));
        assert_eq!(s.onlynet.value, NetworkId::ALL.to_vec());
        assert!(s.dnsseed.value && s.fixedseeds.value && s.v2transport.value);
        assert_eq!(s.maxoutbound.value, 8);
        assert_eq!(s.block_filters, Sourced::new(false, Source::Default));
        assert_eq!(s.decoy_blocks, Sourced::new(1, Source::Default));
        assert_eq!(validate(&s, None).unwrap(), Vec::<String>::new());
    }

    fn with_wallet(layer: Layer) -> Settings {
        Settings::merge(Layer {
            wallets: Some(Sourced::new(
                vec![WalletEntry {
                    name: "w".into(),
                    descriptors: vec!["zpub…".into()],
                    birthday: Birthday::Height(1),
                    gap_limit: None,
                }],
                Source::File,
            )),
            ..layer
        })
    }

    #[test]
    fn electrum_is_off_and_implies_block_filters_when_on() {
        let s = Settings::merge(Layer::default());
        assert_eq!(s.electrum, Sourced::new(false, Source::Default));
        assert_eq!(s.electrum_bind.value, "127.0.0.1:50001".parse().unwrap());
        assert_eq!(s.electrum_tls_bind.value, None);
        assert_eq!(s.electrum_settings(), None);

        // Wallets alone turn filters on too, and refuse them off.
        let s = with_wallet(Layer::default());
        assert!(s.block_filters_implied() && s.engine_config().block_filters);
        let off = with_wallet(Layer {
            block_filters: Some(Sourced::new(false, Source::File)),
            ..Layer::default()
        });
        let e = validate(&off, None).unwrap_err().to_string();
        assert!(
            e.contains("block_filters") && e.contains("[wallet] tables"),
            "{e}"
        );

        let on = Some(Sourced::new(true, Source::File));
        let s = with_wallet(Layer {
            electrum: on.clone(),
            ..Layer::default()
        });
        assert_eq!(s.block_filters, Sourced::new(true, Source::Default));
        assert!(s.block_filters_implied() && s.engine_config().block_filters);
        assert_eq!(validate(&s, None).unwrap(), Vec::<String>::new());
        assert_eq!(
            s.electrum_settings(),
            Some(ElectrumSettings {
                bind: "127.0.0.1:50001".parse().unwrap(),
                tls_bind: None
            })
        );

        let off = Sourced::new(false, Source::CommandLine("--no-block-filters"));
        let s = with_wallet(Layer {
            electrum: on.clone(),
            block_filters: Some(off),
            ..Layer::default()
        });
        let e = validate(&s, None).unwrap_err().to_string();
        assert!(
            e.starts_with("config error: --no-block-filters: electrum = true (config file) finds"),
            "{e}"
        );
        let s = with_wallet(Layer {
            electrum: on,
            electrum_tls_bind: Some(Sourced::new(
                "127.0.0.1:50001".parse().unwrap(),
                Source::File,
            )),
            ..Layer::default()
        });
        let e = validate(&s, None).unwrap_err().to_string();
        assert!(e.contains("an address of its own"), "{e}");
    }

    #[test]
    fn a_birthday_in_the_future_is_a_warning() {
        let mut s = with_wallet(Layer::default());
        s.wallets.value[0].birthday = "2030-01-01".parse().unwrap();
        let before = 1_800_000_000; // 2027
        let w = birthday_warnings(&s, before);
        assert_eq!(
            w,
            [
                "wallet.w.birthday = 2030-01-01: that day has not come yet; transactions made before it will not be found"
            ]
        );
        assert!(birthday_warnings(&s, 1_900_000_000).is_empty());
    }

    #[test]
    fn the_rpc_port_follows_the_chain() {
        let s = Settings::merge(Layer {
            chain: Some(Sourced::new(Chain::Regtest, Source::File)),
            ..Layer::default()
        });
        assert_eq!(s.rpcport, Sourced::new(18443, Source::Default));
    }

    #[test]
    fn outbound_is_capped_by_maxconnections() {
        let s = Settings::merge(Layer {
            maxconnections: Some(Sourced::new(3, Source::File)),
            ..Layer::default()
        });
        assert_eq!(s.engine_config().target_outbound, 3);
    }

    #[test]
    fn a_relative_cookie_lives_in_the_chain_directory() {
        let s = Settings::merge(Layer {
            chain: Some(Sourced::new(Chain::Signet, Source::File)),
            ..Layer::default()
        });
        let paths = DataPaths::under(Path::new("/d"), bitcoin::Network::Signet);
        let rpc = s.rpc_settings(&paths);
        assert_eq!(rpc.cookie_file, Path::new("/d/signet/.cookie"));
        assert_eq!(rpc.binds, vec!["127.0.0.1:38332".parse().unwrap()]);
        let abs = Settings::merge(Layer {
            rpccookiefile: Some(Sourced::new("/run/nj/cookie".into(), Source::File)),
            ..Layer::default()
        });
        assert_eq!(
            abs.rpc_settings(&paths).cookie_file,
            Path::new("/run/nj/cookie")
        );
    }
}
