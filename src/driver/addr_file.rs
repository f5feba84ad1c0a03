//! The address book on disk: loaded once at start, saved atomically by the
//! engine's schedule and at shutdown.

use std::path::{Path, PathBuf};

use crate::addrman::{AddrMan, Recovery, load_or_recover};
use crate::atomic_file::write_atomically;

/// The file's name in the chain directory (Core's name for its own).
pub const ADDRMAN_FILE: &str = "peers.dat";

/// Where the address book lives for a chain directory.
pub fn addrman_path(chain_dir: &Path) -> PathBuf {
    chain_dir.join(ADDRMAN_FILE)
}

/// Load the book, or start an empty one (a corrupt file is set aside and
/// reported by `load_or_recover`).
pub fn load(path: &Path, network: bitcoin::Network) -> AddrMan {
    let startup = load_or_recover(path, network, &mut rand::rng());
    match &startup.recovery {
        None => tracing::info!(
            addresses = startup.addrman.len(),
            file = %path.display(),
            "address book loaded"
        ),
        Some(Recovery::Missing) => {
            tracing::info!(file = %path.display(), "no address book yet: starting empty");
        }
        // load_or_recover already warned, naming the problem.
        Some(_) => {}
    }
    startup.addrman
}

/// Save `bytes` (a serialized book) on a blocking thread.
pub async fn save(path: PathBuf, bytes: Vec<u8>) {
    let shown = path.display().to_string();
    match tokio::task::spawn_blocking(move || write_atomically(&path, &bytes)).await {
        Ok(Ok(())) => tracing::debug!(file = %shown, "address book saved"),
        Ok(Err(e)) => tracing::warn!(file = %shown, "could not save the address book: {e}"),
        Err(e) => tracing::warn!(file = %shown, "address book save task failed: {e}"),
    }
}
