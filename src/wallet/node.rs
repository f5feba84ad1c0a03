//! What the wallet asks of the node, and how: through the node's own RPC
//! methods (`scanblocks`, `getblock`, `getblockheader`,
//! `sendrawtransaction`…), called in-process through [`Dispatch`]. The
//! wallet is thus a client of the node like any other, and sees only what
//! the node has verified: filters checked against the filter header chain,
//! blocks against their headers.

use std::future::Future;
use std::time::Duration;

use bitcoin::block::Header;
use bitcoin::consensus::encode;
use bitcoin::{Block, BlockHash, ScriptBuf, Transaction, Txid};
use serde_json::{Value, json};

use crate::rpc::{Dispatch, Params, RpcError};

/// How long to wait before asking again when another scan holds the
/// node's single scan slot (a user's `scanblocks`).
pub const SCAN_BUSY_RETRY: Duration = Duration::from_secs(2);

/// Why the node could not answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NodeError {
    /// The node refused or failed the call.
    #[error("{method}: {message}")]
    Call {
        /// The RPC method.
        method: &'static str,
        /// The node's message.
        message: String,
    },
    /// The answer was not in the expected shape (a bug, not the network).
    #[error("{method}: unexpected answer: {why}")]
    Shape {
        /// The RPC method.
        method: &'static str,
        /// What was wrong.
        why: String,
    },
}

/// The node's sync state, as far as the wallet cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeStatus {
    /// The best header chain's height.
    pub height: u32,
    /// Its tip.
    pub tip: BlockHash,
    /// Filter headers held: filters can be checked below this height.
    pub filter_headers: u32,
    /// Whether the node is still catching up on headers.
    pub initial_sync: bool,
}

/// The node's services the wallet uses.
pub trait Node: Send + Sync + 'static {
    /// The sync state.
    fn status(&self) -> impl Future<Output = Result<NodeStatus, NodeError>> + Send;
    /// The best chain's block hash at `height`, if the chain reaches it.
    fn hash_at(
        &self,
        height: u32,
    ) -> impl Future<Output = Result<Option<BlockHash>, NodeError>> + Send;
    /// The best chain's header at `height`, if the chain reaches it.
    fn header_at(
        &self,
        height: u32,
    ) -> impl Future<Output = Result<Option<Header>, NodeError>> + Send;
    /// The height of a block of the best chain.
    fn height_of(&self, hash: BlockHash) -> impl Future<Output = Result<u32, NodeError>> + Send;
    /// The blocks in `start..=stop` whose filter matches one of `scripts`.
    fn scan(
        &self,
        scripts: &[ScriptBuf],
        start: u32,
        stop: u32,
    ) -> impl Future<Output = Result<Vec<BlockHash>, NodeError>> + Send;
    /// A block, verified against its header.
    fn block(&self, hash: BlockHash) -> impl Future<Output = Result<Block, NodeError>> + Send;
    /// Hand `tx` to private broadcast.
    fn broadcast(&self, tx: &Transaction) -> impl Future<Output = Result<Txid, NodeError>> + Send;
    /// Transactions still in the private broadcast queue (with their
    /// bytes) or seen on the network since (bytes no longer kept): still
    /// unconfirmed as far as the wallet knows.
    fn broadcasts(
        &self,
    ) -> impl Future<Output = Result<Vec<(Txid, Option<Transaction>)>, NodeError>> + Send;
    /// Take `txid` out of the private broadcast queue (it was confirmed:
    /// sending it again helps nobody and shows it to more peers).
    fn stop_broadcast(&self, txid: Txid) -> impl Future<Output = Result<(), NodeError>> + Send;
}

/// [`Node`] over the node's RPC dispatcher.
#[derive(Debug, Clone)]
pub struct RpcNode<D> {
    rpc: D,
}

impl<D: Dispatch> RpcNode<D> {
    /// Calls go to `rpc`.
    pub fn new(rpc: D) -> Self {
        RpcNode { rpc }
    }

    async fn call(&self, method: &'static str, params: Value) -> Result<Value, NodeError> {
        let params = match params {
            Value::Array(a) => Params::Positional(a),
            other => Params::Positional(vec![other]),
        };
        self.rpc
            .call(method.to_owned(), params)
            .await
            .map_err(|e: RpcError| NodeError::Call {
                method,
                message: e.message,
            })
    }
}

fn shape(method: &'static str, why: impl Into<String>) -> NodeError {
    NodeError::Shape {
        method,
        why: why.into(),
    }
}

fn field<'a>(method: &'static str, v: &'a Value, name: &str) -> Result<&'a Value, NodeError> {
    v.get(name)
        .ok_or_else(|| shape(method, format!("no {name}")))
}

fn as_u32(method: &'static str, v: &Value, name: &str) -> Result<u32, NodeError> {
    field(method, v, name)?
        .as_u64()
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| shape(method, format!("{name} is not a height")))
}

fn as_hash<T: std::str::FromStr>(method: &'static str, v: &Value) -> Result<T, NodeError> {
    v.as_str()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| shape(method, format!("{v} is not a hash")))
}

fn decode_hex<T: encode::Decodable>(method: &'static str, v: &Value) -> Result<T, NodeError> {
    let hex = v.as_str().ok_or_else(|| shape(method, "not hex"))?;
    encode::deserialize_hex(hex).map_err(|e| shape(method, e.to_string()))
}

impl<D: Dispatch> Node for RpcNode<D> {
    async fn status(&self) -> Result<NodeStatus, NodeError> {
        const M: &str = "getblockchaininfo";
        let v = self.call(M, json!([])).await?;
        let filters = field(M, &v, "filters")?;
        Ok(NodeStatus {
            height: as_u32(M, &v, "blocks")?,
            tip: as_hash(M, field(M, &v, "bestblockhash")?)?,
            filter_headers: as_u32(M, filters, "filter_headers")?,
            initial_sync: field(M, &v, "initialblockdownload")?
                .as_bool()
                .unwrap_or(true),
        })
    }

    async fn hash_at(&self, height: u32) -> Result<Option<BlockHash>, NodeError> {
        const M: &str = "getblockhash";
        match self.call(M, json!([height])).await {
            Ok(v) => as_hash(M, &v).map(Some),
            // Core's "Block height out of range".
            Err(NodeError::Call { message, .. }) if message.contains("out of range") => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn header_at(&self, height: u32) -> Result<Option<Header>, NodeError> {
        const M: &str = "getblockheader";
        let Some(hash) = self.hash_at(height).await? else {
            return Ok(None);
        };
        let raw = self.call(M, json!([hash.to_string(), false])).await?;
        decode_hex(M, &raw).map(Some)
    }

    async fn height_of(&self, hash: BlockHash) -> Result<u32, NodeError> {
        const M: &str = "getblockheader";
        let verbose = self.call(M, json!([hash.to_string(), true])).await?;
        as_u32(M, &verbose, "height")
    }

    async fn scan(
        &self,
        scripts: &[ScriptBuf],
        start: u32,
        stop: u32,
    ) -> Result<Vec<BlockHash>, NodeError> {
        const M: &str = "scanblocks";
        let descriptors: Vec<String> = scripts
            .iter()
            .map(|s| format!("raw({})", s.to_hex_string()))
            .collect();
        loop {
            match self
                .call(M, json!(["start", descriptors, start, stop]))
                .await
            {
                Ok(v) => {
                    if field(M, &v, "completed")?.as_bool() != Some(true) {
                        return Err(NodeError::Call {
                            method: M,
                            message: "the scan was aborted".to_owned(),
                        });
                    }
                    return field(M, &v, "relevant_blocks")?
                        .as_array()
                        .ok_or_else(|| shape(M, "relevant_blocks is not a list"))?
                        .iter()
                        .map(|h| as_hash(M, h))
                        .collect();
                }
                // The node runs one scan at a time; a user's may hold it.
                Err(NodeError::Call { message, .. }) if message.contains("already in progress") => {
                    tokio::time::sleep(SCAN_BUSY_RETRY).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn block(&self, hash: BlockHash) -> Result<Block, NodeError> {
        const M: &str = "getblock";
        let v = self.call(M, json!([hash.to_string(), 0])).await?;
        decode_hex(M, &v)
    }

    async fn broadcast(&self, tx: &Transaction) -> Result<Txid, NodeError> {
        const M: &str = "sendrawtransaction";
        let v = self.call(M, json!([encode::serialize_hex(tx)])).await?;
        as_hash(M, &v)
    }

    async fn stop_broadcast(&self, txid: Txid) -> Result<(), NodeError> {
        const M: &str = "abortprivatebroadcast";
        match self.call(M, json!([txid.to_string()])).await {
            // Gone meanwhile (seen, or aborted by the user): as wanted.
            Err(NodeError::Call { message, .. })
                if message.contains("not in private broadcast queue") =>
            {
                Ok(())
            }
            other => other.map(|_| ()),
        }
    }

    async fn broadcasts(&self) -> Result<Vec<(Txid, Option<Transaction>)>, NodeError> {
        const M: &str = "getprivatebroadcastinfo";
        let v = self.call(M, json!([])).await?;
        field(M, &v, "transactions")?
            .as_array()
            .ok_or_else(|| shape(M, "transactions is not a list"))?
            .iter()
            .map(|t| {
                let txid = as_hash(M, field(M, t, "txid")?)?;
                let tx = match t.get("hex") {
                    Some(hex) => Some(decode_hex(M, hex)?),
                    None => None,
                };
                Ok((txid, tx))
            })
            .collect()
    }
}
