//! What the embedding application tells the onion transport: where Arti keeps
//! its files, which Tor network to join, and how long to wait for things.

use std::path::PathBuf;
use std::time::Duration;

use crate::bridge::{BridgeLine, Transport};

/// How long an onion-service connect may take before we give up.
///
/// An onion connect fetches the service descriptor (one circuit to an HSDir),
/// builds an introduction circuit and a rendezvous circuit, and waits for the
/// service to join: three circuit builds and several round trips through
/// six-hop paths. On the public network that is usually a few seconds, with a
/// tail past 30 s for busy services; 60 s keeps the tail without letting a dead
/// service hold a connection slot for long.
pub const ONION_CONNECT_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a connect through an exit may take: one (usually pre-built)
/// circuit and a BEGIN/CONNECTED round trip. LDK uses 30 s for Tor connects,
/// three times its clearnet value; we agree.
pub const EXIT_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a DNS resolve at an exit may take: a circuit plus the exit's own
/// DNS lookup, which may itself retry.
pub const RESOLVE_TIMEOUT: Duration = Duration::from_secs(30);

/// How long bootstrap may go without reaching a single relay before we say
/// so. Arti itself reports "offline" only after 60 s and six failed
/// attempts, and until then its summary reads "connecting to the internet";
/// a user looking at a silent daemon deserves a plain answer sooner. A
/// reachable relay answers within a few seconds even through a slow link.
pub const NO_RELAY_REPORT_AFTER: Duration = Duration::from_secs(20);

/// Arti's memory quota by default: the cells and stream data it may queue
/// before it starts closing the circuits that hold the most.
///
/// Arti's own default is computed from the machine's memory (40 % of it
/// from 8 GiB up, so 8 GiB on a 24 GiB desktop), sized for relays. A
/// client node needs far less: a stream's receive window is 500 cells of
/// 509 bytes, so 125 peers fill about 31 MiB. 256 MiB is C Tor's floor for
/// `MaxMemInQueues` and the low end of Arti's own range; reaching it means
/// something is flooding us, which is when reclaiming should start.
pub const DEFAULT_MEMORY_LIMIT: usize = 256 << 20;

/// Which Tor network the client joins.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum TorNetwork {
    /// The public Tor network, with Arti's built-in authorities and fallbacks.
    #[default]
    Public,
    /// A custom network described by an Arti-format TOML file (tests, offline
    /// demos): see [`crate::custom_network`] for what it may contain.
    Custom(PathBuf),
}

/// Per-operation time limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Connects to `.onion` targets.
    pub onion_connect: Duration,
    /// Connects to IP addresses and host names, through an exit.
    pub exit_connect: Duration,
    /// Name resolution at an exit.
    pub resolve: Duration,
    /// Bootstrap without any relay reached for this long is reported as
    /// blocked ([`NO_RELAY_REPORT_AFTER`]).
    pub no_relay_report: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            onion_connect: ONION_CONNECT_TIMEOUT,
            exit_connect: EXIT_CONNECT_TIMEOUT,
            resolve: RESOLVE_TIMEOUT,
            no_relay_report: NO_RELAY_REPORT_AFTER,
        }
    }
}

/// Everything needed to start the embedded Tor client.
///
/// There is deliberately no default for the directories: Arti's default home
/// (`~/.local/share/arti`) would be shared with any other Arti user on the
/// machine, and a packaged daemon must keep its state where systemd says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TorSettings {
    /// Arti's persistent state: guards, keystore (onion service keys).
    pub state_dir: PathBuf,
    /// Arti's directory cache (consensus, microdescriptors); safe to delete.
    pub cache_dir: PathBuf,
    /// Which network to join.
    pub network: TorNetwork,
    /// Time limits.
    pub timeouts: Timeouts,
    /// Arti's memory quota in bytes ([`DEFAULT_MEMORY_LIMIT`]).
    pub memory_limit: usize,
    /// Bridges: when any are given, every circuit starts at one of them and
    /// no listed relay is contacted directly.
    pub bridges: Vec<BridgeLine>,
    /// Binaries for the bridges' pluggable transports, where not the
    /// default ([`Transport::default_for`]).
    pub transports: Vec<Transport>,
}

impl TorSettings {
    /// Settings for the public network with state and cache under the given
    /// directories and default time limits.
    pub fn new(state_dir: impl Into<PathBuf>, cache_dir: impl Into<PathBuf>) -> Self {
        TorSettings {
            state_dir: state_dir.into(),
            cache_dir: cache_dir.into(),
            network: TorNetwork::Public,
            timeouts: Timeouts::default(),
            memory_limit: DEFAULT_MEMORY_LIMIT,
            bridges: Vec::new(),
            transports: Vec::new(),
        }
    }

    /// The same settings with another memory quota, in bytes.
    pub fn with_memory_limit(mut self, bytes: usize) -> Self {
        self.memory_limit = bytes;
        self
    }

    /// The same settings reaching Tor through `bridges`, with `transports`
    /// overriding the default transport binaries.
    pub fn with_bridges(mut self, bridges: Vec<BridgeLine>, transports: Vec<Transport>) -> Self {
        self.bridges = bridges;
        self.transports = transports;
        self
    }

    /// The same settings on another network.
    pub fn with_network(mut self, network: TorNetwork) -> Self {
        self.network = network;
        self
    }
}
