//! Keeps the wallet index in step with the node's best chain.
//!
//! Each pass: follow a reorg back to the last block the index and the
//! chain agree on; scan the filters of every height not yet scanned for
//! each keychain (from its birthday on the first run, or for a wallet
//! added since); fetch each matching block, verified, and apply it; when
//! a used script moves the gap limit, scan the new scripts over the
//! keychain's whole range too; save; then tell the Electrum clients. The
//! node does the fetching over Tor (`scanblocks`, `getblock` with decoys);
//! this task only decides what to ask.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bitcoin::{BlockHash, ScriptBuf, Txid};
use tokio::sync::watch;

use super::index::Changes;
use super::node::{Node, NodeError};
use super::shared::{SyncProgress, WalletShared};
use super::store;
use crate::config::types::{Birthday, WalletSpec};

/// How often the node is asked whether its chain moved.
pub const POLL: Duration = Duration::from_secs(2);

/// How long to wait after a failed pass (a node still starting, no peer
/// serving filters yet).
pub const RETRY: Duration = Duration::from_secs(5);

/// Slack before a birthday date: block times may run up to two hours
/// ahead of the clock and wander below the median of earlier ones, so
/// scanning starts a day early.
pub const DATE_SLACK_SECS: u64 = 24 * 60 * 60;

/// The sync task.
#[derive(Debug)]
pub struct WalletSync<N> {
    node: N,
    shared: Arc<WalletShared>,
    path: PathBuf,
    wallets: Vec<WalletSpec>,
    tracked: bool,
}

impl<N: Node> WalletSync<N> {
    /// A sync of `wallets` into `shared`, saved at `path`.
    pub fn new(
        node: N,
        shared: Arc<WalletShared>,
        path: PathBuf,
        wallets: Vec<WalletSpec>,
    ) -> Self {
        WalletSync {
            node,
            shared,
            path,
            wallets,
            tracked: false,
        }
    }

    /// The node it asks (tests drive it between passes).
    #[cfg(test)]
    pub(super) fn node_for_tests(&self) -> &N {
        &self.node
    }

    /// Run passes until `shutdown` turns true.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        loop {
            let wait = match self.pass().await {
                Ok(()) => POLL,
                Err(e) => {
                    tracing::warn!("wallet sync: {e}; trying again in {} s", RETRY.as_secs());
                    RETRY
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.changed() => {}
            }
            if *shutdown.borrow() {
                return;
            }
        }
    }

    /// One pass: reorg, scan, apply, save, announce.
    pub async fn pass(&mut self) -> Result<(), NodeError> {
        let status = self.node.status().await?;
        if status.initial_sync {
            return Ok(());
        }
        if !self.tracked {
            self.track_wallets(status.height).await?;
            self.tracked = true;
        }
        self.follow_reorg().await?;
        let Some(stop) = status
            .filter_headers
            .checked_sub(1)
            .map(|f| f.min(status.height))
        else {
            return Ok(());
        };
        let Some(stop_header) = self.node.header_at(stop).await? else {
            return Ok(());
        };
        let stop_hash = stop_header.block_hash();
        let groups = self.due(stop);
        for (from, keychains) in groups {
            self.scan_and_apply(&keychains, from, stop).await?;
            let mut index = self.shared.write();
            index.mark_scanned(&keychains, stop, stop_hash);
            drop(index);
            self.save();
        }
        self.sync_broadcasts().await?;
        self.report(stop);
        if self.shared.tip_hash() != Some(stop_hash) {
            self.shared.announce_tip(stop, stop_header);
        }
        Ok(())
    }

    /// Follow every configured keychain, from its wallet's birthday.
    async fn track_wallets(&mut self, tip: u32) -> Result<(), NodeError> {
        let wallets = self.wallets.clone();
        for w in &wallets {
            let start = self.birthday_height(w.birthday, tip).await?;
            tracing::info!(wallet = %w.name, birthday = start, "wallet followed");
            let mut index = self.shared.write();
            for k in &w.keychains {
                index.track(k.clone(), &w.name, w.gap_limit, start);
            }
        }
        Ok(())
    }

    /// The first height to scan for `birthday`: a height as given; a date
    /// as the first block of the best chain at most [`DATE_SLACK_SECS`]
    /// before it (binary search over block times, which rise on the
    /// whole).
    async fn birthday_height(&self, birthday: Birthday, tip: u32) -> Result<u32, NodeError> {
        let unix = match birthday {
            Birthday::Height(h) => return Ok(h),
            Birthday::Date { unix } => unix.saturating_sub(DATE_SLACK_SECS),
        };
        let (mut low, mut high) = (0u32, tip.saturating_add(1));
        while low < high {
            let mid = low + (high - low) / 2;
            let Some(header) = self.node.header_at(mid).await? else {
                high = mid;
                continue;
            };
            if u64::from(header.time) < unix {
                low = mid + 1;
            } else {
                high = mid;
            }
        }
        Ok(low)
    }

    /// Undo what a reorg replaced: back to the highest remembered block
    /// still in the best chain.
    async fn follow_reorg(&mut self) -> Result<(), NodeError> {
        let anchors: Vec<(u32, BlockHash)> = self.shared.read().anchors().collect();
        let Some(&(top, _)) = anchors.first() else {
            return Ok(());
        };
        let mut fork = None;
        for (height, hash) in &anchors {
            if self.node.hash_at(*height).await? == Some(*hash) {
                fork = Some(*height);
                break;
            }
        }
        if fork == Some(top) {
            return Ok(());
        }
        // No anchor left in the chain: everything since the first
        // birthday goes.
        let fork_height = fork.unwrap_or_else(|| {
            let first = self
                .shared
                .read()
                .keychains()
                .iter()
                .map(|k| k.birthday)
                .min();
            first.unwrap_or(0).saturating_sub(1)
        });
        tracing::info!(
            fork = fork_height,
            was = top,
            "wallet index follows a reorg"
        );
        let changes = self.shared.write().undo_above(fork_height);
        self.save();
        self.shared.announce(&changes);
        Ok(())
    }

    /// Keychains due a scan below `stop`, grouped by their next height.
    fn due(&self, stop: u32) -> BTreeMap<u32, Vec<usize>> {
        let mut groups: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
        for (at, t) in self.shared.read().keychains().iter().enumerate() {
            if t.next_height <= stop {
                groups.entry(t.next_height).or_default().push(at);
            }
        }
        groups
    }

    /// Scan `from..=stop` for the scripts of `keychains`, apply every
    /// matching block in height order, and scan again for scripts the
    /// gap limit brought in, over their keychain's whole range.
    async fn scan_and_apply(
        &mut self,
        keychains: &[usize],
        from: u32,
        stop: u32,
    ) -> Result<(), NodeError> {
        let (mut scripts, mut derived) = {
            let index = self.shared.read();
            let scripts: Vec<ScriptBuf> = keychains
                .iter()
                .flat_map(|k| index.scripts_of(*k))
                .collect();
            let derived: BTreeMap<usize, u32> = index
                .keychains()
                .iter()
                .enumerate()
                .map(|(at, t)| (at, t.derived))
                .collect();
            (scripts, derived)
        };
        let mut from = from;
        while !scripts.is_empty() {
            tracing::info!(from, stop, scripts = scripts.len(), "wallet scan");
            let hashes = self.node.scan(&scripts, from, stop).await?;
            let mut blocks = Vec::with_capacity(hashes.len());
            for hash in hashes {
                let height = self.node.height_of(hash).await?;
                blocks.push((height, hash));
            }
            blocks.sort();
            let mut more: BTreeSet<usize> = BTreeSet::new();
            for (height, hash) in blocks {
                let block = self.node.block(hash).await?;
                if block.block_hash() != hash {
                    return Err(NodeError::Shape {
                        method: "getblock",
                        why: format!("asked for {hash}, got {}", block.block_hash()),
                    });
                }
                let changes = self.shared.write().apply_block(height, &block);
                more.extend(changes.derived_more.iter().copied());
                self.shared.announce(&changes);
            }
            // The scripts new since the last scan, over their keychains'
            // whole range (an address handed out past the gap may have
            // been paid before the one that moved the gap).
            let index = self.shared.read();
            scripts = Vec::new();
            from = stop;
            for at in more {
                let Some(t) = index.keychains().get(at) else {
                    continue;
                };
                let before = derived.get(&at).copied().unwrap_or(0);
                let all = index.scripts_of(at);
                scripts.extend(
                    all.into_iter()
                        .skip(usize::try_from(before).unwrap_or(usize::MAX)),
                );
                derived.insert(at, t.derived);
                from = from.min(t.birthday);
            }
        }
        Ok(())
    }

    /// The user's broadcasts as the node knows them: those still queued
    /// show as unconfirmed (again, after a restart or a reorg), those the
    /// node no longer broadcasts (aborted, given up) are dropped, and
    /// those the index found in a block leave the queue (a transaction
    /// mined before any peer announced it back would otherwise be sent
    /// round after round).
    async fn sync_broadcasts(&mut self) -> Result<(), NodeError> {
        let mut broadcasts = self.node.broadcasts().await?;
        let mined: Vec<Txid> = {
            let index = self.shared.read();
            broadcasts
                .iter()
                .filter(|(txid, tx)| {
                    tx.is_some()
                        && index
                            .transaction(txid)
                            .is_some_and(|w| w.confirmed.is_some())
                })
                .map(|(txid, _)| *txid)
                .collect()
        };
        for txid in &mined {
            tracing::debug!(%txid, "a wallet transaction was mined: its private broadcast stops");
            self.node.stop_broadcast(*txid).await?;
        }
        broadcasts.retain(|(txid, _)| !mined.contains(txid));
        let live: BTreeSet<Txid> = broadcasts.iter().map(|(t, _)| *t).collect();
        let mut changes = Changes::default();
        {
            let mut index = self.shared.write();
            for tx in broadcasts.iter().filter_map(|(_, tx)| tx.as_ref()) {
                changes.merge(index.add_unconfirmed(tx).unwrap_or_default());
            }
            let dropped: Vec<Txid> = index
                .transactions()
                .filter(|t| t.confirmed.is_none())
                .map(|t| t.tx.compute_txid())
                .filter(|t| !live.contains(t))
                .collect();
            for txid in dropped {
                changes.merge(index.remove_unconfirmed(txid));
            }
        }
        if !changes.touched.is_empty() {
            self.save();
            self.shared.announce(&changes);
        }
        Ok(())
    }

    fn report(&self, target: u32) {
        let index = self.shared.read();
        let scanned_to = index
            .keychains()
            .iter()
            .map(|t| t.next_height.saturating_sub(1))
            .min();
        let synced = index.keychains().iter().all(|t| t.next_height > target);
        drop(index);
        let before = self.shared.progress();
        self.shared.set_progress(SyncProgress {
            scanned_to,
            target,
            synced,
        });
        if synced && !before.synced {
            tracing::info!(height = target, "wallet index synced");
        }
    }

    /// Save the index now (atomically). Failure is logged: the index can
    /// be rebuilt, and the node keeps serving from memory.
    fn save(&self) {
        let bytes = store::to_bytes(&self.shared.read());
        if let Err(e) = crate::atomic_file::write_atomically(&self.path, &bytes) {
            tracing::error!(file = %self.path.display(), "could not save the wallet index: {e}");
        }
    }
}
