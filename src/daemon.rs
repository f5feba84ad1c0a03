//! The daemon's life: start the embedded Tor client, load the address book,
//! run the node until SIGINT or SIGTERM, then disconnect, save and stop Arti
//! within a bounded time.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use bitcoin::Network;
use nightjar_tor::{TorNetwork, TorSettings, TorTransport};
use tokio::signal::unix::{SignalKind, signal};

use crate::driver::{self, DriverOptions, NodeRpc, addr_file};
use crate::engine::{Engine, EngineConfig, Reach};
use crate::paths::DataPaths;
use crate::rpc;
use crate::rpc::RpcSettings;
use crate::wire::Magic;

/// How long shutdown may take before we stop waiting for Arti's tasks.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Everything the daemon needs to start.
#[derive(Debug, Clone)]
pub struct DaemonOptions {
    /// Which Bitcoin chain.
    pub network: Network,
    /// Where files go.
    pub paths: DataPaths,
    /// A custom Tor network file (tests, offline demos); the public Tor
    /// network when `None`.
    pub tor_network: Option<PathBuf>,
    /// The connection policy (peers, privacy, limits).
    pub engine: EngineConfig,
    /// The RPC server.
    pub rpc: RpcSettings,
}

/// Run until a termination signal arrives.
pub async fn run(options: DaemonOptions) -> Result<()> {
    let DaemonOptions {
        network,
        paths,
        tor_network,
        engine,
        rpc,
    } = options;
    std::fs::create_dir_all(&paths.chain_dir)
        .with_context(|| format!("creating data directory {}", paths.chain_dir.display()))?;
    // Signal handlers first: a SIGTERM during bootstrap must still stop us
    // cleanly.
    let mut sigterm = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut sigint = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    tracing::info!(
        chain = %network,
        datadir = %paths.chain_dir.display(),
        privacy = engine.privacy,
        "nightjar starting"
    );

    let tor = match engine.reach {
        Reach::Tor => Some(start_tor(&paths, tor_network).await?),
        Reach::Direct => {
            tracing::warn!("Tor is turned off: peers are dialled directly and see your IP address");
            None
        }
    };
    // RPC answers from the start (getnetworkinfo shows the bootstrap);
    // calls wait for the engine task, which starts right below.
    let (dispatch, rpc_calls) = NodeRpc::new();
    let rpc_server = match rpc::server::serve(rpc, Arc::new(dispatch)).await {
        Ok(server) => server,
        Err(e) => {
            drop(tor);
            return Err(e).context("starting the RPC server");
        }
    };
    let addrman_file = addr_file::addrman_path(&paths.chain_dir);
    let addrman = addr_file::load(&addrman_file, network);
    let seed: [u8; 32] = rand::random();
    let node = Engine::new(engine, addrman, seed);
    let options = DriverOptions {
        magic: Magic::from(network),
        addrman_file,
        network: match &tor {
            Some(t) => driver::Network::Tor(t.clone()),
            None => driver::Network::Direct,
        },
    };
    let stop = async {
        tokio::select! {
            _ = sigterm.recv() => tracing::info!("SIGTERM received"),
            _ = sigint.recv() => tracing::info!("SIGINT received"),
        }
    };
    driver::run(node, options, rpc_calls, stop).await;
    // Removes the cookie: a client must not find a stale one.
    rpc_server.shutdown().await;
    // Dropping the last handle stops the Tor client's tasks.
    drop(tor);
    tracing::info!("stopped");
    Ok(())
}

async fn start_tor(paths: &DataPaths, tor_network: Option<PathBuf>) -> Result<TorTransport> {
    let tor_net = match tor_network {
        Some(file) => {
            tracing::info!(file = %file.display(), "using a custom Tor network");
            TorNetwork::Custom(file)
        }
        None => TorNetwork::Public,
    };
    let settings = TorSettings::new(&paths.tor_state, &paths.tor_cache).with_network(tor_net);
    TorTransport::start(settings)
        .await
        .context("starting the embedded Tor client")
}
