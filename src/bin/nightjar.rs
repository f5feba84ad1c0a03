//! `nightjar`: the Tor-first Bitcoin node daemon.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, ValueEnum};
use nightjar::daemon::{self, DaemonOptions};
use nightjar::paths::DataPaths;

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
