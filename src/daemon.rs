//! The daemon's life: start the embedded Tor client, report its bootstrap,
//! and stop cleanly on SIGINT or SIGTERM.
//!
//! Peer connections, the address manager and RPC join here as the node grows;
//! today the daemon proves the foundation: Tor starts in-process, with its
//! state where we say, on the network we say.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use bitcoin::Network;
use futures::StreamExt;
use nightjar_tor::{TorNetwork, TorSettings, TorTransport};
use tokio::signal::unix::{SignalKind, signal};

use crate::paths::DataPaths;

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
}

/// Run until a termination signal arrives.
pub async fn run(options: DaemonOptions) -> Result<()> {
    let DaemonOptions {
        network,
        paths,
        tor_network,
    } = options;
    std::fs::create_dir_all(&paths.chain_dir)
        .with_context(|| format!("creating data directory {}", paths.chain_dir.display()))?;
    let tor_net = match tor_network {
        Some(file) => {
            tracing::info!(file = %file.display(), "using a custom Tor network");
            TorNetwork::Custom(file)
        }
        None => TorNetwork::Public,
    };
    tracing::info!(chain = %network, datadir = %paths.chain_dir.display(), "nightjar starting");
    let settings = TorSettings::new(&paths.tor_state, &paths.tor_cache).with_network(tor_net);
    let tor = TorTransport::start(settings)
        .await
        .context("starting the embedded Tor client")?;

    let mut sigterm = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut sigint = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let progress = report_bootstrap(tor.clone());
    tokio::pin!(progress);
    let mut bootstrapped = false;
    loop {
        tokio::select! {
            _ = sigterm.recv() => break,
            _ = sigint.recv() => break,
            () = &mut progress, if !bootstrapped => bootstrapped = true,
        }
    }
    tracing::info!("shutting down");
    drop(tor);
    Ok(())
}

/// Log bootstrap progress for the user until Tor is ready. Each distinct
/// percentage or blockage is logged once.
async fn report_bootstrap(tor: TorTransport) {
    let mut events = tor.progress();
    let mut last: Option<(u8, Option<String>)> = None;
    while let Some(p) = events.next().await {
        let key = (p.percent, p.blocked.clone());
        if last.as_ref() != Some(&key) {
            match &p.blocked {
                Some(why) => tracing::warn!(percent = p.percent, "Tor bootstrap blocked: {why}"),
                None => tracing::info!("Tor bootstrap {}%: {}", p.percent, p.summary),
            }
            last = Some(key);
        }
        if p.ready {
            tracing::info!("Tor is ready");
            return;
        }
    }
}
