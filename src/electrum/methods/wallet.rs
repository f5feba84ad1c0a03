//! Script hash queries: history, coins, balance, unconfirmed entries.

use serde_json::{Value, json};

use crate::electrum::args::Args;
use crate::electrum::backend::{Backend, HistoryEntry};
use crate::electrum::jsonrpc::{Params, RpcError};
use crate::electrum::status::canonical_order;
use crate::wallet::scripthash::ScriptHash;

/// The script hash of a method taking only `scripthash`.
pub(crate) fn only_scripthash(method: &str, params: &Params) -> Result<ScriptHash, RpcError> {
    params.check_known(method, &["scripthash"])?;
    params.scripthash(0, "scripthash")
}

/// The history in the order replies and the status share.
pub(crate) async fn history<B: Backend>(
    backend: &B,
    sh: ScriptHash,
) -> Result<Vec<HistoryEntry>, RpcError> {
    Ok(canonical_order(backend.history(sh).await?))
}

/// One history entry as the protocol writes it: `fee` only for
/// unconfirmed entries (and only when known).
fn entry_json(e: &HistoryEntry) -> Value {
    match e.fee {
        Some(fee) if e.height <= 0 => {
            json!({"tx_hash": e.txid.to_string(), "height": e.height, "fee": fee})
        }
        _ => json!({"tx_hash": e.txid.to_string(), "height": e.height}),
    }
}

/// `blockchain.scripthash.get_history(scripthash)`.
pub(crate) async fn get_history<B: Backend>(
    backend: &B,
    params: &Params,
) -> Result<Value, RpcError> {
    let sh = only_scripthash("blockchain.scripthash.get_history", params)?;
    let entries = history(backend, sh).await?;
    Ok(Value::Array(entries.iter().map(entry_json).collect()))
}

/// `blockchain.scripthash.get_mempool(scripthash)`: the unconfirmed part
/// of the history (nightjar has no mempool: these are our own broadcasts).
pub(crate) async fn get_mempool<B: Backend>(
    backend: &B,
    params: &Params,
) -> Result<Value, RpcError> {
    let sh = only_scripthash("blockchain.scripthash.get_mempool", params)?;
    let entries = history(backend, sh).await?;
    Ok(Value::Array(
        entries
            .iter()
            .filter(|e| e.height <= 0)
            .map(entry_json)
            .collect(),
    ))
}

/// `blockchain.scripthash.listunspent(scripthash)`.
pub(crate) async fn listunspent<B: Backend>(
    backend: &B,
    params: &Params,
) -> Result<Value, RpcError> {
    let sh = only_scripthash("blockchain.scripthash.listunspent", params)?;
    let utxos = backend.utxos(sh).await?;
    Ok(Value::Array(
        utxos
            .iter()
            .map(|u| {
                json!({
                    "tx_hash": u.txid.to_string(),
                    "tx_pos": u.vout,
                    "value": u.value.to_sat(),
                    // The protocol has 0 for every unconfirmed output.
                    "height": u.height.max(0),
                })
            })
            .collect(),
    ))
}

/// `blockchain.scripthash.get_balance(scripthash)`, in satoshis: the
/// confirmed balance and the unconfirmed change to it.
pub(crate) async fn get_balance<B: Backend>(
    backend: &B,
    params: &Params,
) -> Result<Value, RpcError> {
    let sh = only_scripthash("blockchain.scripthash.get_balance", params)?;
    let b = backend.balance(sh).await?;
    Ok(json!({"confirmed": b.confirmed, "unconfirmed": b.unconfirmed}))
}
