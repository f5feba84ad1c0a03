//! What the chain holds for the user's scripts: the wallet transactions,
//! where each was confirmed (with its merkle branch, so no block is
//! fetched twice), the coins they created and spent, and how far each
//! keychain has been scanned. Fed verified blocks and the user's own
//! broadcasts; answers the Electrum server's queries. Pure data: the sync
//! task ([`super::sync`]) decides what to feed it.
//!
//! Applying a block is idempotent (a transaction is keyed by its txid), so
//! a range scanned again for newly derived scripts may bring blocks
//! already applied.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use bitcoin::{
    Amount, Block, BlockHash, OutPoint, ScriptBuf, SignedAmount, Transaction, TxMerkleNode, Txid,
};

use super::keychain::Keychain;
use super::scripthash::ScriptHash;
use crate::chain::merkle;

/// Heights whose block hash is remembered after a scan pass, to find where
/// a reorg forked without rescanning from the birthday.
pub const RECENT_TIPS: usize = 200;

/// Where a transaction was confirmed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confirmation {
    /// Its block's height (the block's hash is among the index's anchors).
    pub height: u32,
    /// Its position in the block.
    pub pos: u32,
    /// The merkle branch from it to the block's merkle root.
    pub branch: Vec<TxMerkleNode>,
}

/// A transaction that touches the wallet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalletTx {
    /// The transaction.
    pub tx: Transaction,
    /// Where it was confirmed; `None` for the user's own broadcast not yet
    /// seen in a block.
    pub confirmed: Option<Confirmation>,
}

/// One keychain the index follows.
#[derive(Debug, Clone)]
pub struct Tracked {
    /// Its scripts.
    pub keychain: Keychain,
    /// The wallet it belongs to (its `[wallet.NAME]`).
    pub wallet: String,
    /// Unused scripts kept watched past the last used one.
    pub gap_limit: u32,
    /// Scripts derived so far (indexes `0..derived`).
    pub derived: u32,
    /// The highest index seen paid.
    pub last_used: Option<u32>,
    /// The first height that can hold its scripts (its wallet's birthday).
    pub birthday: u32,
    /// The next height to scan for it: its birthday until a scan passes.
    pub next_height: u32,
}

/// One entry of a script's history, in the Electrum protocol's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryItem {
    /// The transaction.
    pub txid: Txid,
    /// Its height; 0 unconfirmed, -1 unconfirmed with an unconfirmed parent.
    pub height: i32,
    /// Its fee, when every input it spends is known (unconfirmed only).
    pub fee: Option<Amount>,
}

/// An unspent output paying a watched script.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Coin {
    /// The output.
    pub outpoint: OutPoint,
    /// Its value.
    pub value: Amount,
    /// As in [`HistoryItem::height`].
    pub height: i32,
}

/// What applying a block or a broadcast changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// Scripts whose history changed.
    pub touched: BTreeSet<ScriptHash>,
    /// Keychains that derived new scripts (a used index moved the gap):
    /// these must be scanned again from their birthday for the new ones.
    pub derived_more: BTreeSet<usize>,
}

impl Changes {
    /// Fold `other` into these.
    pub fn merge(&mut self, other: Changes) {
        self.touched.extend(other.touched);
        self.derived_more.extend(other.derived_more);
    }
}

/// An output the wallet owns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Owned {
    script: ScriptHash,
    value: Amount,
}

/// The index.
#[derive(Debug, Clone, Default)]
pub struct WalletIndex {
    keychains: Vec<Tracked>,
    /// Every derived script: its keychain and index.
    scripts: HashMap<ScriptBuf, (usize, u32)>,
    by_hash: HashMap<ScriptHash, ScriptBuf>,
    txs: BTreeMap<Txid, WalletTx>,
    /// Outputs paying watched scripts.
    owned: BTreeMap<OutPoint, Owned>,
    /// Which wallet transaction spends each owned output.
    spent_by: BTreeMap<OutPoint, Txid>,
    /// The wallet transactions touching each script.
    touching: HashMap<ScriptHash, BTreeSet<Txid>>,
    /// Block hashes at heights scanned to (and of blocks applied), to
    /// detect reorgs.
    recent: BTreeMap<u32, BlockHash>,
}

impl WalletIndex {
    /// An empty index.
    pub fn new() -> Self {
        WalletIndex::default()
    }

    /// Follow `keychain` of `wallet`, scanning from `start_height` unless
    /// the index already follows it (from an earlier run): then its gap
    /// limit is updated, and an earlier birthday rescans from there.
    /// Returns its position.
    pub fn track(
        &mut self,
        keychain: Keychain,
        wallet: &str,
        gap_limit: u32,
        start_height: u32,
    ) -> usize {
        let id = keychain.descriptor();
        let at = match self
            .keychains
            .iter()
            .position(|t| t.keychain.descriptor() == id)
        {
            Some(at) => {
                let t = &mut self.keychains[at];
                t.gap_limit = gap_limit;
                t.wallet = wallet.to_owned();
                // A birthday moved earlier: the heights before the old one
                // were never scanned for it.
                if start_height < t.birthday {
                    t.birthday = start_height;
                    t.next_height = start_height;
                }
                at
            }
            None => {
                return self.add_keychain(Tracked {
                    keychain,
                    wallet: wallet.to_owned(),
                    gap_limit,
                    derived: 0,
                    last_used: None,
                    birthday: start_height,
                    next_height: start_height,
                });
            }
        };
        self.derive_gap(at);
        at
    }

    /// Follow `tracked` (new, or as saved), its scripts derived; its
    /// position.
    fn add_keychain(&mut self, tracked: Tracked) -> usize {
        self.keychains.push(tracked);
        let at = self.keychains.len() - 1;
        self.derive_gap(at);
        at
    }

    /// Derive scripts of keychain `at` up to its gap limit past the last
    /// used one. Whether any were added. A keychain is checked when it is
    /// parsed, so derivation fails only at BIP32's last index: there the
    /// keychain simply has no more scripts.
    fn derive_gap(&mut self, at: usize) -> bool {
        let t = &self.keychains[at];
        let want = if t.keychain.is_ranged() {
            t.last_used
                .map_or(0, |u| u.saturating_add(1))
                .saturating_add(t.gap_limit.max(1))
        } else {
            1
        };
        let mut added = false;
        for index in t.derived..want {
            let script = match self.keychains[at].keychain.script_at(index) {
                Ok(script) => script,
                Err(e) => {
                    tracing::warn!(wallet = %self.keychains[at].wallet, index, "no more scripts: {e}");
                    break;
                }
            };
            self.by_hash.insert(ScriptHash::of(&script), script.clone());
            self.scripts.insert(script, (at, index));
            self.keychains[at].derived = index + 1;
            added = true;
        }
        added
    }

    /// The keychains followed.
    pub fn keychains(&self) -> &[Tracked] {
        &self.keychains
    }

    /// The scripts derived for keychain `at`, in index order.
    pub fn scripts_of(&self, at: usize) -> Vec<ScriptBuf> {
        let mut scripts: Vec<(u32, &ScriptBuf)> = self
            .scripts
            .iter()
            .filter(|(_, (k, _))| *k == at)
            .map(|(s, (_, i))| (*i, s))
            .collect();
        scripts.sort();
        scripts.into_iter().map(|(_, s)| s.clone()).collect()
    }

    /// Whether `script` is one the wallets watch.
    pub fn is_watched(&self, script: &ScriptHash) -> bool {
        self.by_hash.contains_key(script)
    }

    /// Every script hash watched (for notifications after a reload).
    pub fn watched(&self) -> impl Iterator<Item = &ScriptHash> {
        self.by_hash.keys()
    }

    /// Record that keychains `which` have been scanned through `height`,
    /// whose block is `hash`.
    pub fn mark_scanned(&mut self, which: &[usize], height: u32, hash: BlockHash) {
        for &at in which {
            if let Some(t) = self.keychains.get_mut(at) {
                t.next_height = t.next_height.max(height.saturating_add(1));
            }
        }
        self.recent.insert(height, hash);
        self.trim_recent();
    }

    fn trim_recent(&mut self) {
        let confirmed: BTreeSet<u32> = self
            .txs
            .values()
            .filter_map(|t| t.confirmed.as_ref().map(|c| c.height))
            .collect();
        // Heights of wallet blocks stay: they anchor the fork search.
        let mut plain: Vec<u32> = self
            .recent
            .keys()
            .copied()
            .filter(|h| !confirmed.contains(h))
            .collect();
        while plain.len() > RECENT_TIPS {
            let oldest = plain.remove(0);
            self.recent.remove(&oldest);
        }
    }

    /// The block hashes the index relies on, highest first: the sync
    /// compares them with the best chain to find a reorg's fork.
    pub fn anchors(&self) -> impl Iterator<Item = (u32, BlockHash)> + '_ {
        self.recent.iter().rev().map(|(h, b)| (*h, *b))
    }

    /// Apply the verified block at `height`: record every transaction
    /// paying a watched script or spending a wallet coin.
    pub fn apply_block(&mut self, height: u32, block: &Block) -> Changes {
        let hash = block.block_hash();
        let mut changes = Changes::default();
        let mut txids: Option<Vec<Txid>> = None;
        for (pos, tx) in block.txdata.iter().enumerate() {
            if !self.touches(tx) {
                continue;
            }
            let ids = txids
                .get_or_insert_with(|| block.txdata.iter().map(|t| t.compute_txid()).collect());
            let branch = merkle::branch(ids, pos).unwrap_or_default();
            let confirmed = Confirmation {
                height,
                pos: u32::try_from(pos).unwrap_or(u32::MAX),
                branch,
            };
            changes.merge(self.record(tx, Some(confirmed)));
        }
        if !changes.touched.is_empty() {
            self.recent.insert(height, hash);
        }
        changes
    }

    /// The user broadcast `tx`: it shows as unconfirmed until a block
    /// confirms it. `None` when it touches none of the wallets' scripts.
    pub fn add_unconfirmed(&mut self, tx: &Transaction) -> Option<Changes> {
        if !self.touches(tx) {
            return None;
        }
        if self.txs.contains_key(&tx.compute_txid()) {
            return Some(Changes::default());
        }
        Some(self.record(tx, None))
    }

    /// Forget an unconfirmed transaction (its broadcast was given up).
    pub fn remove_unconfirmed(&mut self, txid: Txid) -> Changes {
        match self.txs.get(&txid) {
            Some(t) if t.confirmed.is_none() => self.forget(txid),
            _ => Changes::default(),
        }
    }

    /// Undo everything above `height` (a reorg forked there): their
    /// transactions are forgotten (the user's own broadcasts come back as
    /// unconfirmed when the sync finds them still in the private broadcast
    /// queue), and every keychain is scanned again from `height + 1`.
    pub fn undo_above(&mut self, height: u32) -> Changes {
        let mut changes = Changes::default();
        let gone: Vec<Txid> = self
            .txs
            .iter()
            .filter(|(_, t)| t.confirmed.as_ref().is_some_and(|c| c.height > height))
            .map(|(id, _)| *id)
            .collect();
        // Forgetting a transaction forgets its spenders too, so the order
        // does not matter.
        for txid in gone {
            changes.merge(self.forget(txid));
        }
        self.recent.retain(|h, _| *h <= height);
        for t in &mut self.keychains {
            t.next_height = t.next_height.min(height.saturating_add(1));
        }
        changes
    }

    fn touches(&self, tx: &Transaction) -> bool {
        tx.output
            .iter()
            .any(|o| self.scripts.contains_key(&o.script_pubkey))
            || tx
                .input
                .iter()
                .any(|i| self.owned.contains_key(&i.previous_output))
    }

    fn record(&mut self, tx: &Transaction, confirmed: Option<Confirmation>) -> Changes {
        let txid = tx.compute_txid();
        let mut changes = Changes::default();
        for (vout, out) in tx.output.iter().enumerate() {
            let Some(&(at, index)) = self.scripts.get(&out.script_pubkey) else {
                continue;
            };
            let script = ScriptHash::of(&out.script_pubkey);
            let outpoint = OutPoint::new(txid, u32::try_from(vout).unwrap_or(u32::MAX));
            self.owned.insert(
                outpoint,
                Owned {
                    script,
                    value: out.value,
                },
            );
            self.touching.entry(script).or_default().insert(txid);
            changes.touched.insert(script);
            let t = &mut self.keychains[at];
            if t.last_used.is_none_or(|u| index > u) {
                t.last_used = Some(index);
                if self.derive_gap(at) {
                    changes.derived_more.insert(at);
                }
            }
        }
        for input in &tx.input {
            let Some(owned) = self.owned.get(&input.previous_output).copied() else {
                continue;
            };
            // A confirmed spend replaces an unconfirmed one (ours, double
            // spent or replaced).
            if let Some(other) = self.spent_by.get(&input.previous_output).copied()
                && other != txid
                && self.txs.get(&other).is_some_and(|t| t.confirmed.is_none())
            {
                changes.merge(self.forget(other));
            }
            self.spent_by.insert(input.previous_output, txid);
            self.touching.entry(owned.script).or_default().insert(txid);
            changes.touched.insert(owned.script);
        }
        self.txs.insert(
            txid,
            WalletTx {
                tx: tx.clone(),
                confirmed,
            },
        );
        changes
    }

    /// Remove `txid` and what depends on it (its outputs, and unconfirmed
    /// spenders of them).
    fn forget(&mut self, txid: Txid) -> Changes {
        let mut changes = Changes::default();
        let Some(wtx) = self.txs.remove(&txid) else {
            return changes;
        };
        for vout in 0..wtx.tx.output.len() {
            let outpoint = OutPoint::new(txid, u32::try_from(vout).unwrap_or(u32::MAX));
            if let Some(owned) = self.owned.remove(&outpoint) {
                changes.touched.insert(owned.script);
                self.untouch(owned.script, txid);
            }
            if let Some(spender) = self.spent_by.remove(&outpoint) {
                changes.merge(self.forget(spender));
            }
        }
        for input in &wtx.tx.input {
            if self.spent_by.get(&input.previous_output) == Some(&txid) {
                self.spent_by.remove(&input.previous_output);
            }
            if let Some(owned) = self.owned.get(&input.previous_output).copied() {
                changes.touched.insert(owned.script);
                self.untouch(owned.script, txid);
            }
        }
        changes
    }

    fn untouch(&mut self, script: ScriptHash, txid: Txid) {
        if let Some(set) = self.touching.get_mut(&script) {
            set.remove(&txid);
            if set.is_empty() {
                self.touching.remove(&script);
            }
        }
    }

    /// A wallet transaction.
    pub fn transaction(&self, txid: &Txid) -> Option<&WalletTx> {
        self.txs.get(txid)
    }

    /// Every wallet transaction.
    pub fn transactions(&self) -> impl Iterator<Item = &WalletTx> {
        self.txs.values()
    }

    /// The history of `script`, in the protocol's order: confirmed by
    /// height and position, then unconfirmed. `None` when the
    /// script is not watched.
    pub fn history(&self, script: &ScriptHash) -> Option<Vec<HistoryItem>> {
        if !self.is_watched(script) {
            return None;
        }
        let mut items: Vec<((u8, u32, u32, Txid), HistoryItem)> = self
            .touching
            .get(script)
            .into_iter()
            .flatten()
            .filter_map(|txid| self.txs.get(txid).map(|wtx| (*txid, wtx)))
            .map(|(txid, wtx)| {
                let height = self.protocol_height(wtx);
                // Confirmed by height and position; then unconfirmed, those
                // with confirmed inputs first, each by txid, so that the
                // status hash is the same on every call.
                let key = match &wtx.confirmed {
                    Some(c) => (0, c.height, c.pos, txid),
                    None => (if height == 0 { 1 } else { 2 }, 0, 0, txid),
                };
                let fee = match wtx.confirmed {
                    Some(_) => None,
                    None => self.fee(&wtx.tx),
                };
                (key, HistoryItem { txid, height, fee })
            })
            .collect();
        items.sort_by_key(|(key, _)| *key);
        Some(items.into_iter().map(|(_, item)| item).collect())
    }

    fn has_unconfirmed_parent(&self, tx: &Transaction) -> bool {
        tx.input.iter().any(|i| {
            self.txs
                .get(&i.previous_output.txid)
                .is_some_and(|p| p.confirmed.is_none())
        })
    }

    /// The fee of `tx` when every output it spends is a wallet
    /// transaction's.
    fn fee(&self, tx: &Transaction) -> Option<Amount> {
        let mut spent = Amount::ZERO;
        for input in &tx.input {
            let parent = self.txs.get(&input.previous_output.txid)?;
            let out = parent
                .tx
                .output
                .get(usize::try_from(input.previous_output.vout).ok()?)?;
            spent = spent.checked_add(out.value)?;
        }
        let paid = tx
            .output
            .iter()
            .try_fold(Amount::ZERO, |sum, o| sum.checked_add(o.value))?;
        spent.checked_sub(paid)
    }

    /// Every output paying `script`, with its value and the wallet
    /// transaction that made it.
    fn outputs_paying<'a>(
        &'a self,
        script: &'a ScriptHash,
    ) -> impl Iterator<Item = (OutPoint, Amount, &'a WalletTx)> + 'a {
        self.touching
            .get(script)
            .into_iter()
            .flatten()
            .filter_map(|txid| self.txs.get(txid).map(|wtx| (*txid, wtx)))
            .flat_map(move |(txid, wtx)| {
                (0..wtx.tx.output.len()).filter_map(move |vout| {
                    let outpoint = OutPoint::new(txid, u32::try_from(vout).ok()?);
                    let owned = self.owned.get(&outpoint).filter(|o| o.script == *script)?;
                    Some((outpoint, owned.value, wtx))
                })
            })
    }

    /// A wallet transaction's height in the protocol's terms: its block's,
    /// or 0 unconfirmed, or -1 unconfirmed with an unconfirmed parent.
    fn protocol_height(&self, wtx: &WalletTx) -> i32 {
        match &wtx.confirmed {
            Some(c) => i32::try_from(c.height).unwrap_or(i32::MAX),
            None if self.has_unconfirmed_parent(&wtx.tx) => -1,
            None => 0,
        }
    }

    /// The unspent outputs paying `script` (outputs spent by an
    /// unconfirmed wallet transaction excluded). `None` when not watched.
    pub fn coins(&self, script: &ScriptHash) -> Option<Vec<Coin>> {
        if !self.is_watched(script) {
            return None;
        }
        let mut coins: Vec<Coin> = self
            .outputs_paying(script)
            .filter(|(outpoint, _, _)| !self.spent_by.contains_key(outpoint))
            .map(|(outpoint, value, wtx)| Coin {
                outpoint,
                value,
                height: self.protocol_height(wtx),
            })
            .collect();
        coins.sort_by_key(|c| (c.height <= 0, c.height, c.outpoint));
        Some(coins)
    }

    /// The balance of `script` as the Electrum protocol counts it: the
    /// confirmed outputs not spent in a block, and the unconfirmed change
    /// (new unconfirmed outputs, less confirmed ones an unconfirmed
    /// transaction spends). `None` when not watched.
    pub fn balance(&self, script: &ScriptHash) -> Option<(Amount, SignedAmount)> {
        if !self.is_watched(script) {
            return None;
        }
        let mut confirmed = Amount::ZERO;
        let mut unconfirmed = SignedAmount::ZERO;
        for (outpoint, value, wtx) in self.outputs_paying(script) {
            let spent_in_block = self
                .spent_by
                .get(&outpoint)
                .and_then(|s| self.txs.get(s))
                .map(|s| s.confirmed.is_some());
            let signed = value.to_signed().unwrap_or(SignedAmount::MAX);
            match (wtx.confirmed.is_some(), spent_in_block) {
                // Spent in a block: gone.
                (true, Some(true)) => {}
                (true, None) => confirmed += value,
                (true, Some(false)) => {
                    confirmed += value;
                    unconfirmed -= signed;
                }
                (false, None) => unconfirmed += signed,
                // Created and spent unconfirmed: nets to nothing.
                (false, Some(_)) => {}
            }
        }
        Some((confirmed, unconfirmed))
    }

    /// Restore a transaction from a saved index (see [`super::store`]).
    pub(super) fn restore_tx(&mut self, tx: Transaction, confirmed: Option<Confirmation>) {
        self.record(&tx, confirmed);
    }

    /// Restore a keychain's progress from a saved index.
    pub(super) fn restore_keychain(&mut self, tracked: Tracked) {
        self.add_keychain(tracked);
    }

    /// Restore a remembered block hash.
    pub(super) fn restore_anchor(&mut self, height: u32, hash: BlockHash) {
        self.recent.insert(height, hash);
    }
}
