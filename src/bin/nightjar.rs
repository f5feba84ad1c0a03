//! `nightjar`: the Tor-first Bitcoin node daemon.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::builder::TypedValueParser;
use clap::{Parser, ValueEnum};
use nightjar::daemon::{self, DaemonOptions};
use nightjar::engine::{EngineConfig, Reach};
use nightjar::paths::DataPaths;
use nightjar_tor::Target;

/// The Bitcoin chains nightjar runs on.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum Chain {
    /// Bitcoin mainnet.
    Main,
    /// Testnet4 (BIP94).
    Testnet4,
    /// The default signet.
    Signet,
    /// Local regression-test chain.
    Regtest,
}

impl From<Chain> for bitcoin::Network {
    fn from(c: Chain) -> Self {
        match c {
            Chain::Main => bitcoin::Network::Bitcoin,
            Chain::Testnet4 => bitcoin::Network::Testnet4,
            Chain::Signet => bitcoin::Network::Signet,
            Chain::Regtest => bitcoin::Network::Regtest,
        }
    }
}

/// A Tor-first Bitcoin P2P node with an embedded Tor client.
#[derive(Debug, Parser)]
#[command(name = "nightjar", version, about)]
struct Args {
    /// Which chain to follow.
    #[arg(long, value_enum, default_value = "main")]
    network: Chain,
    /// Data directory (default: the XDG data directory, ~/.local/share/nightjar).
    #[arg(long, value_name = "DIR")]
    datadir: Option<PathBuf>,
    /// Join a custom Tor network described by an Arti-format TOML file instead
    /// of the public Tor network (for tests and offline demos).
    #[arg(long, value_name = "FILE")]
    tor_network: Option<PathBuf>,
    /// Connect only to this peer (host:port, [v6]:port or <56 chars>.onion:port).
    #[arg(long, value_name = "HOST:PORT")]
    connect: Option<Target>,
    /// Keep a connection to this peer (repeatable; same forms as --connect).
    #[arg(long, value_name = "HOST:PORT")]
    addnode: Vec<Target>,
    /// Privacy mode: onion peers only, BIP324 v2 only, a Tor circuit per
    /// connection, no DNS seeds.
    #[arg(long)]
    privacy: bool,
    /// Allow falling back to unencrypted v1 when a peer does not speak v2
    /// (added peers may always fall back; never under --privacy).
    #[arg(long, conflicts_with = "privacy")]
    v1_fallback: bool,
    /// Do not use Tor: dial peers directly, revealing your IP address to them
    /// (for a local regtest network). Onion peers are unreachable then.
    #[arg(long, conflicts_with_all = ["privacy", "tor_network"])]
    no_tor: bool,
    /// Do not ask DNS seeds for peer addresses.
    #[arg(long)]
    no_dnsseed: bool,
    /// Regular outbound connections to keep.
    #[arg(long, value_name = "N", default_value_t = nightjar::engine::config::DEFAULT_TARGET_OUTBOUND,
          value_parser = clap::value_parser!(u16).range(0..=64).map(usize::from))]
    max_outbound: usize,
    /// Mean seconds between feeler connections (which test addresses).
    #[arg(long, value_name = "SECS", default_value_t = nightjar::engine::config::DEFAULT_FEELER_INTERVAL.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..))]
    feeler_interval: u64,
}

impl Args {
    fn engine_config(&self, network: bitcoin::Network) -> EngineConfig {
        let mut c = EngineConfig::new(network);
        c.target_outbound = self.max_outbound;
        c.connect = self.connect.iter().cloned().collect();
        c.addnodes = self.addnode.clone();
        c.privacy = self.privacy;
        c.v1_fallback = self.v1_fallback;
        c.reach = if self.no_tor {
            Reach::Direct
        } else {
            Reach::Tor
        };
        c.dns_seeds = !self.no_dnsseed;
        c.feeler_interval = Duration::from_secs(self.feeler_interval);
        c
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    nightjar::logging::init();
    let network = bitcoin::Network::from(args.network);
    let paths = match &args.datadir {
        Some(dir) => DataPaths::under(dir, network),
        None => match DataPaths::platform_default(network) {
            Some(p) => p,
            None => {
                tracing::error!("no home directory to keep data in: pass --datadir DIR");
                return ExitCode::FAILURE;
            }
        },
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let options = DaemonOptions {
        network,
        engine: args.engine_config(network),
        rpc: nightjar::rpc::RpcSettings {
            binds: vec![std::net::SocketAddr::from((
                [127, 0, 0, 1],
                nightjar::rpc::default_rpc_port(network),
            ))],
            cookie_file: paths.chain_dir.join(".cookie"),
            max_body: nightjar::rpc::DEFAULT_MAX_BODY,
            request_timeout: nightjar::rpc::DEFAULT_REQUEST_TIMEOUT,
        },
        paths,
        tor_network: args.tor_network,
    };
    let result = runtime.block_on(daemon::run(options));
    runtime.shutdown_timeout(daemon::SHUTDOWN_GRACE);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}
