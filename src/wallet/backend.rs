//! The Electrum server's view of the node: the wallet index for history,
//! coins and proofs, the node (through its RPC) for headers, blocks and
//! private broadcast.
//!
//! The tip served is the one the index covers, not the node's: a client
//! told of a block finds that block's transactions already in its
//! history.

use std::sync::Arc;

use bitcoin::block::Header;
use bitcoin::{BlockHash, Transaction, TxMerkleNode, Txid};
use tokio::sync::broadcast;

use super::node::{Node, NodeError};
use super::scripthash::ScriptHash;
use super::shared::WalletShared;
use crate::chain::merkle;
use crate::electrum::backend::{
    Backend, BackendError, Balance, Change, HistoryEntry, MerkleProof, Utxo,
};

/// [`Backend`] over the wallet index and the node.
#[derive(Debug)]
pub struct WalletBackend<N> {
    node: N,
    shared: Arc<WalletShared>,
    genesis: BlockHash,
}

impl<N: Node> WalletBackend<N> {
    /// A backend for `network`'s chain.
    pub fn new(node: N, shared: Arc<WalletShared>, network: bitcoin::Network) -> Self {
        WalletBackend {
            node,
            shared,
            genesis: bitcoin::constants::genesis_block(network).block_hash(),
        }
    }

    fn covered_tip(&self) -> Result<(u32, Header), BackendError> {
        self.shared.tip().ok_or_else(|| {
            BackendError::Unavailable(
                "the wallet index is still catching up with the chain (see the log)".to_owned(),
            )
        })
    }
}

fn node_error(e: NodeError) -> BackendError {
    BackendError::Unavailable(e.to_string())
}

impl<N: Node> Backend for WalletBackend<N> {
    fn genesis_hash(&self) -> BlockHash {
        self.genesis
    }

    async fn tip(&self) -> Result<(u32, Header), BackendError> {
        self.covered_tip()
    }

    async fn headers(&self, start: u32, count: u32) -> Result<Vec<Header>, BackendError> {
        let (tip, _) = self.covered_tip()?;
        let mut out = Vec::new();
        let end = start.saturating_add(count).min(tip.saturating_add(1));
        for height in start..end {
            let Some(header) = self.node.header_at(height).await.map_err(node_error)? else {
                break;
            };
            out.push(header);
        }
        Ok(out)
    }

    async fn history(&self, sh: ScriptHash) -> Result<Vec<HistoryEntry>, BackendError> {
        let items = self
            .shared
            .read()
            .history(&sh)
            .ok_or(BackendError::NotWatched(sh))?;
        Ok(items
            .into_iter()
            .map(|i| HistoryEntry {
                txid: i.txid,
                height: i.height,
                fee: i.fee.map(|f| f.to_sat()),
            })
            .collect())
    }

    async fn utxos(&self, sh: ScriptHash) -> Result<Vec<Utxo>, BackendError> {
        let coins = self
            .shared
            .read()
            .coins(&sh)
            .ok_or(BackendError::NotWatched(sh))?;
        Ok(coins
            .into_iter()
            .map(|c| Utxo {
                txid: c.outpoint.txid,
                vout: c.outpoint.vout,
                value: c.value,
                height: c.height,
            })
            .collect())
    }

    async fn balance(&self, sh: ScriptHash) -> Result<Balance, BackendError> {
        let (confirmed, unconfirmed) = self
            .shared
            .read()
            .balance(&sh)
            .ok_or(BackendError::NotWatched(sh))?;
        Ok(Balance {
            confirmed: confirmed.to_sat(),
            unconfirmed: unconfirmed.to_sat(),
        })
    }

    async fn transaction(&self, txid: Txid) -> Result<Transaction, BackendError> {
        self.shared.read()
            .transaction(&txid)
            .map(|w| w.tx.clone())
            .ok_or_else(|| {
                BackendError::NotFound(format!(
                    "transaction {txid} is not in the user's wallets (nightjar keeps no index of other transactions)"
                ))
            })
    }

    async fn merkle(&self, txid: Txid, height: u32) -> Result<MerkleProof, BackendError> {
        let index = self.shared.read();
        let c = index
            .transaction(&txid)
            .and_then(|w| w.confirmed.as_ref())
            .filter(|c| c.height == height)
            .ok_or_else(|| {
                BackendError::NotFound(format!(
                    "transaction {txid} is not a wallet transaction confirmed at height {height}"
                ))
            })?;
        Ok(MerkleProof {
            block_height: c.height,
            pos: c.pos,
            branch: c.branch.clone(),
        })
    }

    async fn id_from_pos(
        &self,
        height: u32,
        pos: u32,
    ) -> Result<(Txid, Vec<TxMerkleNode>), BackendError> {
        let hash = self
            .node
            .hash_at(height)
            .await
            .map_err(node_error)?
            .ok_or_else(|| BackendError::NotFound(format!("no block at height {height}")))?;
        let block = self.node.block(hash).await.map_err(node_error)?;
        let txids: Vec<Txid> = block.txdata.iter().map(|t| t.compute_txid()).collect();
        let pos = usize::try_from(pos).unwrap_or(usize::MAX);
        let branch = merkle::branch(&txids, pos).ok_or_else(|| {
            BackendError::NotFound(format!(
                "the block at height {height} has {} transactions",
                txids.len()
            ))
        })?;
        Ok((txids[pos], branch))
    }

    async fn broadcast(&self, tx: Transaction) -> Result<Txid, BackendError> {
        let txid = self.node.broadcast(&tx).await.map_err(|e| match e {
            NodeError::Call { message, .. } => BackendError::Rejected(message),
            other => BackendError::Other(other.to_string()),
        })?;
        let changes = self.shared.write().add_unconfirmed(&tx);
        if let Some(c) = changes {
            self.shared.announce(&c);
        }
        Ok(txid)
    }

    fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.shared.subscribe()
    }
}
