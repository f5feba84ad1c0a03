//! What the Electrum server asks of the rest of the node: the chain's
//! headers, the wallet index's history and coins, and broadcast. Plain
//! types only; the JSON shapes live in the server's `methods` module.
//!
//! nightjar keeps no index of the world: only scripts derived from the
//! user's own descriptors are known, so a query for any other script hash
//! is [`BackendError::NotWatched`], never an empty answer that a wallet
//! would take as "no coins".

use std::future::Future;

use bitcoin::block::Header;
use bitcoin::{Amount, BlockHash, Transaction, TxMerkleNode, Txid};
use tokio::sync::broadcast;

use crate::wallet::scripthash::ScriptHash;

/// One transaction touching a script hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryEntry {
    /// The transaction.
    pub txid: Txid,
    /// Height of its block; 0 when unconfirmed with every input confirmed,
    /// -1 when unconfirmed and spending an unconfirmed parent (the
    /// protocol's convention, part of the status hash).
    pub height: i32,
    /// Fee in satoshis, for unconfirmed entries (`get_mempool` shows it;
    /// ignored for confirmed ones). `None` when unknown.
    pub fee: Option<u64>,
}

/// One unspent output paying a script hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Utxo {
    /// The transaction that created it.
    pub txid: Txid,
    /// Its index among that transaction's outputs.
    pub vout: u32,
    /// Its value.
    pub value: Amount,
    /// Height of the creating transaction's block; 0 (or -1) when
    /// unconfirmed. Confirmed outputs count as the confirmed balance,
    /// unconfirmed ones as the unconfirmed balance.
    pub height: i32,
}

/// A script hash's balance in the protocol's terms (ElectrumX's): the
/// confirmed outputs not spent by a confirmed transaction, and the
/// unconfirmed change to that (new unconfirmed outputs, less confirmed
/// ones an unconfirmed transaction spends), which may be negative.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Balance {
    /// Confirmed, in satoshis.
    pub confirmed: u64,
    /// The unconfirmed change, in satoshis.
    pub unconfirmed: i64,
}

/// Where a confirmed transaction sits in its block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MerkleProof {
    /// Height of the block.
    pub block_height: u32,
    /// Index of the transaction in the block.
    pub pos: u32,
    /// Hashes paired with the transaction's on the way up to the block's
    /// merkle root, deepest first.
    pub branch: Vec<TxMerkleNode>,
}

/// Something that may change what a client sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The best chain has a new tip (also after a reorganisation).
    Tip {
        /// Its height.
        height: u32,
        /// Its header.
        header: Header,
    },
    /// The history of this script hash changed (a new transaction, a
    /// confirmation, a reorganisation).
    ScriptHash(ScriptHash),
}

/// Why the backend could not answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackendError {
    /// The script is not derived from any configured wallet.
    #[error(
        "script hash {0} is not in any wallet nightjar indexes: add its descriptor to [wallet] \
         in the configuration, or if it is there, raise its gap_limit to at least your wallet \
         application's (nightjar keeps no index of other people's scripts)"
    )]
    NotWatched(ScriptHash),
    /// No such transaction, block or position (the text says which).
    #[error("{0}")]
    NotFound(String),
    /// The node cannot answer yet (starting, syncing headers or filters).
    #[error("not available yet: {0}")]
    Unavailable(String),
    /// A broadcast was refused (the text says why).
    #[error("transaction rejected: {0}")]
    Rejected(String),
    /// Anything else.
    #[error("{0}")]
    Other(String),
}

/// The node as the Electrum server sees it. Implementations must be cheap
/// to call concurrently: every client connection calls it from its own
/// task.
pub trait Backend: Send + Sync + 'static {
    /// Hash of the genesis block of the chain served (for
    /// `server.features`, so a client notices a wrong network).
    fn genesis_hash(&self) -> BlockHash;

    /// The best chain's tip: its height and header.
    fn tip(&self) -> impl Future<Output = Result<(u32, Header), BackendError>> + Send;

    /// Up to `count` consecutive headers of the best chain from height
    /// `start`: fewer when the tip comes first, none when `start` is above
    /// the tip.
    fn headers(
        &self,
        start: u32,
        count: u32,
    ) -> impl Future<Output = Result<Vec<Header>, BackendError>> + Send;

    /// The history of a watched script hash: confirmed entries in chain
    /// order (height, then position in the block), then unconfirmed ones.
    /// [`BackendError::NotWatched`] for scripts outside the user's wallets.
    fn history(
        &self,
        sh: ScriptHash,
    ) -> impl Future<Output = Result<Vec<HistoryEntry>, BackendError>> + Send;

    /// The unspent outputs paying a watched script hash, confirmed ones in
    /// chain order first, then unconfirmed ones; outputs spent by an
    /// unconfirmed transaction are left out.
    fn utxos(&self, sh: ScriptHash)
    -> impl Future<Output = Result<Vec<Utxo>, BackendError>> + Send;

    /// The balance of a watched script hash.
    fn balance(&self, sh: ScriptHash)
    -> impl Future<Output = Result<Balance, BackendError>> + Send;

    /// A wallet transaction (from a verified block or our own broadcast).
    fn transaction(
        &self,
        txid: Txid,
    ) -> impl Future<Output = Result<Transaction, BackendError>> + Send;

    /// The merkle branch of a confirmed wallet transaction in the block at
    /// `height`.
    fn merkle(
        &self,
        txid: Txid,
        height: u32,
    ) -> impl Future<Output = Result<MerkleProof, BackendError>> + Send;

    /// The txid at index `pos` of the block at `height` and its merkle
    /// branch (deepest first). May fetch the block over Tor, so slow.
    fn id_from_pos(
        &self,
        height: u32,
        pos: u32,
    ) -> impl Future<Output = Result<(Txid, Vec<TxMerkleNode>), BackendError>> + Send;

    /// Hands a transaction to private broadcast; its txid once accepted.
    fn broadcast(&self, tx: Transaction)
    -> impl Future<Output = Result<Txid, BackendError>> + Send;

    /// A receiver of every later [`Change`]. A receiver that lags behind
    /// is told so ([`broadcast::error::RecvError::Lagged`]) and the server
    /// then re-checks everything its client subscribed to.
    fn subscribe(&self) -> broadcast::Receiver<Change>;
}
