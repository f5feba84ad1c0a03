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
use super::index::WalletIndex;
use super::node::RpcNode;
use super::shared::WalletShared;
use super::store;
use super::sync::WalletSync;
use crate::config::types::{ElectrumSettings, WalletSpec};
use crate::driver::NodeRpc;
use crate::electrum;

/// How long the wallet's tasks get to finish at shutdown (the index is
/// saved after each pass, so nothing is lost when they are cut short).
pub const STOP_GRACE: Duration = Duration::from_secs(10);

/// Load the index from `path`: a missing file is a first start; a
/// damaged one is reported, set aside and rebuilt (everything in it can
/// be found again from the chain).
fn load_index(path: &Path, network: bitcoin::Network) -> WalletIndex {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return WalletIndex::new(),
        Err(e) => {
            tracing::error!(file = %path.display(), "cannot read the wallet index: {e}; rebuilding it from the wallets' birthdays");
            return WalletIndex::new();
        }
    };
    match store::from_bytes(&bytes, network) {
        Ok(index) => index,
        Err(e) => {
            let moved = crate::atomic_file::move_aside(path, "corrupt")
                .map_or_else(|_| "-".to_owned(), |p| p.display().to_string());
            tracing::error!(
                file = %path.display(),
                moved_to = %moved,
                "the wallet index is damaged ({e}); it was moved aside and is rebuilt from the wallets' birthdays (no coin is lost: everything in it is on the chain)"
            );
            WalletIndex::new()
        }
    }
}

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
            let backend = Arc::new(WalletBackend::new(RpcNode::new(dispatch), shared, network));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_damaged_index_is_set_aside_and_rebuilt_never_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(store::WALLET_INDEX_FILE);
        // Missing: a first start.
        assert_eq!(
            load_index(&path, bitcoin::Network::Regtest)
                .transactions()
                .count(),
            0
        );
        assert!(!path.exists());
        // Damaged: an empty index, and the file kept beside for the user.
        std::fs::write(&path, b"nightjar-wallet-index 1 00\n{}").unwrap();
        let index = load_index(&path, bitcoin::Network::Regtest);
        assert!(index.keychains().is_empty());
        assert!(!path.exists(), "the damaged file is moved, not reused");
        let aside: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            aside,
            vec![format!("{}.corrupt-1", store::WALLET_INDEX_FILE)]
        );
    }
}
