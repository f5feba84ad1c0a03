//! The private-broadcast queue on disk (`privatebroadcast.json`): the
//! transactions accepted by `sendrawtransaction` and not yet seen on the
//! network. Loaded once at start; written atomically, on the engine task,
//! before the call that changed it is answered, so that a transaction the
//! user was told is queued survives `kill -9` at any moment.

use std::path::{Path, PathBuf};

use crate::atomic_file::{move_aside, write_atomically};
use crate::engine::broadcast_store;
use crate::engine::private_broadcast::Pending;

/// The file's name in the chain directory.
pub const BROADCAST_FILE: &str = "privatebroadcast.json";

/// Where the queue lives for a chain directory.
pub fn broadcast_path(chain_dir: &Path) -> PathBuf {
    chain_dir.join(BROADCAST_FILE)
}

/// Load the pending transactions. A missing file is an empty queue. A
/// damaged one is reported and moved aside, never overwritten: it holds
/// the user's transactions, which they can still broadcast by hand.
pub fn load(path: &Path) -> Vec<Pending> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => {
            tracing::error!(file = %path.display(), "cannot read the private broadcast queue: {e}; starting with none");
            return Vec::new();
        }
    };
    match broadcast_store::from_bytes(&bytes) {
        Ok(pending) => {
            if !pending.is_empty() {
                tracing::info!(
                    transactions = pending.len(),
                    file = %path.display(),
                    "resuming private broadcasts"
                );
            }
            pending
        }
        Err(e) => {
            let moved = move_aside(path, "corrupt")
                .map_or_else(|_| "-".to_owned(), |p| p.display().to_string());
            tracing::error!(
                file = %path.display(),
                moved_to = %moved,
                "the private broadcast queue is damaged ({e}); it was moved aside (its transactions can be sent again with sendrawtransaction) and the node starts with an empty queue"
            );
            Vec::new()
        }
    }
}

/// Write the queue now (atomically, with fsync). Synchronous on purpose:
/// the answer to `sendrawtransaction` waits for it.
pub fn save(path: &Path, bytes: &[u8]) {
    match write_atomically(path, bytes) {
        Ok(()) => tracing::debug!(file = %path.display(), "private broadcast queue saved"),
        Err(e) => {
            tracing::error!(file = %path.display(), "could not save the private broadcast queue: {e}")
        }
    }
}
