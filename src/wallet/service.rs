//! The wallet's running parts, started and stopped with the daemon: the
//! sync task that keeps the index in step with the chain, and the
//! Electrum server that serves it. Both reach the node through its RPC
//! dispatcher, in-process.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::backend::WalletBackend;
use super::node::RpcNode;
use super::sync::{WalletShared, WalletSync, load_index};
use crate::config::types::{ElectrumSettings, WalletSpec};
use crate::driver::NodeRpc;
use crate::electrum;

/// How long the wallet's tasks get to finish at shutdown (the index is
/// saved after each pass, so nothing is lost when they are cut short).
pub const STOP_GRACE: Duration = Duration::from_secs(10);

/// The sync task and the Electrum server, running.
#[derive(Debug)]
pub struct WalletService {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl WalletService {
    /// Load the index from `path` (before the RPC server starts, so that
    /// `getindexinfo` can report it from the first call).
    pub fn load(path: &Path, network: bitcoin::Network, wallets: usize) -> Arc<WalletShared> {
        let index = load_index(path, network);
        tracing::info!(
            wallets,
            transactions = index.transactions().count(),
            file = %path.display(),
            "wallet index loaded"
        );
        WalletShared::new(index)
    }

    /// Start the sync of `shared` (from [`Self::load`], saved at `path`)
    /// for `wallets` and, when
    /// `electrum` is set, the Electrum server (and its TLS listener when
    /// `tls_bind` is set, with the certificate kept next to the index).
    /// Fails when a server address cannot be bound or the TLS certificate
    /// cannot be loaded or made (the error names the setting).
    pub async fn start(
        shared: Arc<WalletShared>,
        path: &Path,
        network: bitcoin::Network,
        wallets: Vec<WalletSpec>,
        electrum: Option<ElectrumSettings>,
        dispatch: NodeRpc,
    ) -> Result<WalletService> {
        let listener = match electrum {
            Some(e) => Some(electrum::bind(e.bind).context("starting the Electrum server")?),
            None => None,
        };
        let tls = match electrum.and_then(|e| e.tls_bind) {
            Some(addr) => {
                let context =
                    || format!("starting the Electrum TLS server (electrum_tls_bind = {addr})");
                let tls_listener = electrum::bind(addr).with_context(context)?;
                // The certificate lives in the chain directory, beside the
                // index, so each chain's server keeps its own.
                let dir = match path.parent() {
                    Some(dir) if !dir.as_os_str().is_empty() => dir,
                    _ => Path::new("."),
                };
                let identity = electrum::tls::load_or_create(dir).with_context(context)?;
                Some((tls_listener, identity.acceptor()))
            }
            None => None,
        };
        let (stop, stopped) = watch::channel(false);
        let sync = WalletSync::new(
            RpcNode::new(dispatch.clone()),
            shared.clone(),
            path.to_path_buf(),
            wallets,
        );
        let mut tasks = vec![tokio::spawn(sync.run(stopped.clone()))];
        if let Some(listener) = listener {
            let backend = WalletBackend::start(RpcNode::new(dispatch), shared, network);
            if let Some((tls_listener, acceptor)) = tls {
                tasks.push(tokio::spawn(electrum::serve_tls(
                    tls_listener,
                    acceptor,
                    Arc::clone(&backend),
                    electrum::Limits::default(),
                    stopped.clone(),
                )));
            }
            tasks.push(tokio::spawn(electrum::serve(
                listener,
                backend,
                electrum::Limits::default(),
                stopped,
            )));
        }
        Ok(WalletService { stop, tasks })
    }

    /// Stop both tasks, waiting at most [`STOP_GRACE`].
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            if tokio::time::timeout(STOP_GRACE, task).await.is_err() {
                tracing::warn!("a wallet task did not stop in time");
            }
        }
    }
}
