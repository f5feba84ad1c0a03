//! An in-memory [`Backend`] for the tests: a made-up header chain and
//! whatever histories, coins and transactions a test puts in.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use bitcoin::block::{Header, Version};
use bitcoin::hashes::Hash;
use bitcoin::{
    Amount, BlockHash, CompactTarget, Transaction, TxMerkleNode, Txid, absolute, transaction,
};
use tokio::sync::broadcast;

use super::backend::{Backend, BackendError, Balance, Change, HistoryEntry, MerkleProof, Utxo};
use crate::wallet::scripthash::ScriptHash;

/// What the fake node knows.
#[derive(Default)]
pub(crate) struct State {
    pub(crate) headers: Vec<Header>,
    pub(crate) history: HashMap<ScriptHash, Vec<HistoryEntry>>,
    pub(crate) utxos: HashMap<ScriptHash, Vec<Utxo>>,
    pub(crate) txs: HashMap<Txid, Transaction>,
    pub(crate) proofs: HashMap<(Txid, u32), MerkleProof>,
    pub(crate) blocks: HashMap<u32, Vec<(Txid, Vec<TxMerkleNode>)>>,
    pub(crate) broadcast: Vec<Transaction>,
    pub(crate) reject_broadcast: Option<String>,
    pub(crate) unavailable: bool,
}

/// The fake node.
pub(crate) struct FakeBackend {
    pub(crate) state: Mutex<State>,
    pub(crate) changes: broadcast::Sender<Change>,
}

/// A chain of `n` headers, each on the previous one (no proof of work:
/// the server never checks it).
pub(crate) fn chain(n: u32) -> Vec<Header> {
    let mut out: Vec<Header> = Vec::new();
    for i in 0..n {
        let prev = out
            .last()
            .map_or(BlockHash::all_zeros(), Header::block_hash);
        out.push(Header {
            version: Version::TWO,
            prev_blockhash: prev,
            merkle_root: TxMerkleNode::from_byte_array([i as u8; 32]),
            time: 1_600_000_000 + i,
            bits: CompactTarget::from_consensus(0x207f_ffff),
            nonce: i,
        });
    }
    out
}

/// A transaction unique to `n`.
pub(crate) fn tx(n: u32) -> Transaction {
    Transaction {
        version: transaction::Version::TWO,
        lock_time: absolute::LockTime::from_consensus(n),
        input: vec![],
        output: vec![bitcoin::TxOut {
            value: Amount::from_sat(1000 + u64::from(n)),
            script_pubkey: bitcoin::ScriptBuf::new(),
        }],
    }
}

/// A script hash unique to `n`.
pub(crate) fn sh(n: u8) -> ScriptHash {
    ScriptHash::from_byte_array([n; 32])
}

impl FakeBackend {
    /// A node with a chain of `height + 1` headers.
    pub(crate) fn new(height: u32) -> Self {
        let (changes, _) = broadcast::channel(16);
        FakeBackend {
            state: Mutex::new(State {
                headers: chain(height + 1),
                ..State::default()
            }),
            changes,
        }
    }

    /// The state, for a test to change.
    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap()
    }

    /// Fails when the test made the node unavailable.
    fn ready(&self) -> Result<MutexGuard<'_, State>, BackendError> {
        let state = self.state();
        if state.unavailable {
            return Err(BackendError::Unavailable("syncing headers".into()));
        }
        Ok(state)
    }
}

impl Backend for FakeBackend {
    fn genesis_hash(&self) -> BlockHash {
        self.state().headers[0].block_hash()
    }

    async fn tip(&self) -> Result<(u32, Header), BackendError> {
        let state = self.ready()?;
        let tip = *state.headers.last().unwrap();
        Ok((state.headers.len() as u32 - 1, tip))
    }

    async fn headers(&self, start: u32, count: u32) -> Result<Vec<Header>, BackendError> {
        let state = self.ready()?;
        Ok(state
            .headers
            .iter()
            .skip(start as usize)
            .take(count as usize)
            .copied()
            .collect())
    }

    async fn history(&self, sh: ScriptHash) -> Result<Vec<HistoryEntry>, BackendError> {
        self.ready()?
            .history
            .get(&sh)
            .cloned()
            .ok_or(BackendError::NotWatched(sh))
    }

    async fn utxos(&self, sh: ScriptHash) -> Result<Vec<Utxo>, BackendError> {
        self.ready()?
            .utxos
            .get(&sh)
            .cloned()
            .ok_or(BackendError::NotWatched(sh))
    }

    async fn balance(&self, sh: ScriptHash) -> Result<Balance, BackendError> {
        // The test double's coins carry no spends: each one counts where
        // its height says.
        let mut b = Balance::default();
        for u in self.utxos(sh).await? {
            if u.height > 0 {
                b.confirmed += u.value.to_sat();
            } else {
                b.unconfirmed += i64::try_from(u.value.to_sat()).unwrap_or(i64::MAX);
            }
        }
        Ok(b)
    }

    async fn transaction(&self, txid: Txid) -> Result<Transaction, BackendError> {
        self.ready()?
            .txs
            .get(&txid)
            .cloned()
            .ok_or_else(|| BackendError::NotFound(format!("no wallet transaction {txid}")))
    }

    async fn merkle(&self, txid: Txid, height: u32) -> Result<MerkleProof, BackendError> {
        self.ready()?
            .proofs
            .get(&(txid, height))
            .cloned()
            .ok_or_else(|| BackendError::NotFound(format!("{txid} is not in block {height}")))
    }

    async fn id_from_pos(
        &self,
        height: u32,
        pos: u32,
    ) -> Result<(Txid, Vec<TxMerkleNode>), BackendError> {
        self.ready()?
            .blocks
            .get(&height)
            .and_then(|txs| txs.get(pos as usize))
            .cloned()
            .ok_or_else(|| {
                BackendError::NotFound(format!("no transaction {pos} in block {height}"))
            })
    }

    async fn broadcast(&self, tx: Transaction) -> Result<Txid, BackendError> {
        let mut state = self.ready()?;
        if let Some(why) = &state.reject_broadcast {
            return Err(BackendError::Rejected(why.clone()));
        }
        let txid = tx.compute_txid();
        state.broadcast.push(tx);
        Ok(txid)
    }

    fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.changes.subscribe()
    }
}
