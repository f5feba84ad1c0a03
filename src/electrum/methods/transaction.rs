//! Transactions: raw transactions, merkle proofs, broadcast.

use bitcoin::consensus::encode::{deserialize, serialize_hex};
use bitcoin::hex::FromHex;
use bitcoin::{Transaction, TxMerkleNode};
use serde_json::{Value, json};

use crate::electrum::args::Args;
use crate::electrum::backend::Backend;
use crate::electrum::jsonrpc::{Params, RpcError, bad_request, invalid_params};

/// `blockchain.transaction.get(tx_hash, verbose=false)`.
pub(crate) async fn get<B: Backend>(backend: &B, params: &Params) -> Result<Value, RpcError> {
    params.check_known("blockchain.transaction.get", &["tx_hash", "verbose"])?;
    let txid = params.txid(0, "tx_hash")?;
    if params.bool_or(1, "verbose", false)? {
        return Err(bad_request(
            "verbose transactions need a full node's index; nightjar serves raw transactions only",
        ));
    }
    let tx = backend.transaction(txid).await?;
    Ok(json!(serialize_hex(&tx)))
}

/// `blockchain.transaction.get_merkle(tx_hash, height)`.
pub(crate) async fn get_merkle<B: Backend>(
    backend: &B,
    params: &Params,
) -> Result<Value, RpcError> {
    params.check_known("blockchain.transaction.get_merkle", &["tx_hash", "height"])?;
    let txid = params.txid(0, "tx_hash")?;
    let height = params.u32(1, "height")?;
    let proof = backend.merkle(txid, height).await?;
    Ok(
        json!({"block_height": proof.block_height, "merkle": branch_json(&proof.branch), "pos": proof.pos}),
    )
}

/// `blockchain.transaction.id_from_pos(height, tx_pos, merkle=false)`.
pub(crate) async fn id_from_pos<B: Backend>(
    backend: &B,
    params: &Params,
) -> Result<Value, RpcError> {
    params.check_known(
        "blockchain.transaction.id_from_pos",
        &["height", "tx_pos", "merkle"],
    )?;
    let height = params.u32(0, "height")?;
    let pos = params.u32(1, "tx_pos")?;
    let with_merkle = params.bool_or(2, "merkle", false)?;
    let (txid, branch) = backend.id_from_pos(height, pos).await?;
    if !with_merkle {
        return Ok(json!(txid.to_string()));
    }
    Ok(json!({"tx_hash": txid.to_string(), "merkle": branch_json(&branch)}))
}

/// `blockchain.transaction.broadcast(raw_tx)`.
pub(crate) async fn broadcast<B: Backend>(backend: &B, params: &Params) -> Result<Value, RpcError> {
    params.check_known("blockchain.transaction.broadcast", &["raw_tx"])?;
    let raw = params.str(0, "raw_tx")?;
    let bytes = Vec::<u8>::from_hex(raw)
        .map_err(|_| invalid_params("raw_tx must be a transaction in hex"))?;
    let tx: Transaction = deserialize(&bytes)
        .map_err(|e| invalid_params(format!("raw_tx is not a valid transaction: {e}")))?;
    let txid = backend.broadcast(tx).await?;
    Ok(json!(txid.to_string()))
}

/// A merkle branch as the protocol writes it: hex like txids (bytes
/// reversed).
fn branch_json(branch: &[TxMerkleNode]) -> Vec<String> {
    branch.iter().map(ToString::to_string).collect()
}
