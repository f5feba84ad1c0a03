//! What the sync task and the Electrum server share: the wallet index,
//! the tip it covers, the sync's progress, and the channel its changes
//! are announced on. Locks are never held across an await; a panic while
//! one was held leaves an index consistent at every await point, so a
//! poisoned lock is used as is.

use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use bitcoin::BlockHash;
use bitcoin::block::Header;
use tokio::sync::broadcast;

use super::index::{Changes, WalletIndex};
use crate::electrum::backend::Change;

/// Changes buffered for a subscriber that lags; one that falls further
/// behind re-checks everything it subscribed to (see
/// [`crate::electrum::Backend::subscribe`]).
pub const EVENT_BUFFER: usize = 1024;

/// Where the sync stands, for logs and RPC.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncProgress {
    /// Height the slowest keychain has been scanned to, if any.
    pub scanned_to: Option<u32>,
    /// The height being caught up to.
    pub target: u32,
    /// Whether every keychain is scanned to the node's filter tip.
    pub synced: bool,
}

/// The index and its subscribers.
#[derive(Debug)]
pub struct WalletShared {
    index: RwLock<WalletIndex>,
    events: broadcast::Sender<Change>,
    progress: RwLock<SyncProgress>,
    tip: RwLock<Option<(u32, Header)>>,
}

impl WalletShared {
    /// Shared state around `index`.
    pub fn new(index: WalletIndex) -> Arc<Self> {
        let (events, _) = broadcast::channel(EVENT_BUFFER);
        Arc::new(WalletShared {
            index: RwLock::new(index),
            events,
            progress: RwLock::new(SyncProgress::default()),
            tip: RwLock::new(None),
        })
    }

    /// The index, to read.
    pub fn read(&self) -> RwLockReadGuard<'_, WalletIndex> {
        self.index.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// The index, to change.
    pub fn write(&self) -> RwLockWriteGuard<'_, WalletIndex> {
        self.index.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// The sync's progress.
    pub fn progress(&self) -> SyncProgress {
        *self.progress.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Record the sync's progress.
    pub fn set_progress(&self, progress: SyncProgress) {
        *self
            .progress
            .write()
            .unwrap_or_else(PoisonError::into_inner) = progress;
    }

    /// The tip the index covers: its height and header.
    pub fn tip(&self) -> Option<(u32, Header)> {
        *self.tip.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// The hash of [`Self::tip`].
    pub fn tip_hash(&self) -> Option<BlockHash> {
        self.tip().map(|(_, h)| h.block_hash())
    }

    /// The index now covers the chain up to `header` at `height`: record
    /// it and tell subscribers.
    pub fn announce_tip(&self, height: u32, header: Header) {
        *self.tip.write().unwrap_or_else(PoisonError::into_inner) = Some((height, header));
        // No subscriber is no error.
        let _ = self.events.send(Change::Tip { height, header });
    }

    /// Tell subscribers of the scripts `changes` touched.
    pub fn announce(&self, changes: &Changes) {
        for script in &changes.touched {
            let _ = self.events.send(Change::ScriptHash(*script));
        }
    }

    /// A receiver of every later change.
    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.events.subscribe()
    }
}
