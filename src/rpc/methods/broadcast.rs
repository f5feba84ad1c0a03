//! `sendrawtransaction`, `getprivatebroadcastinfo`, `abortprivatebroadcast`
//! and `addpeeraddress`, in Core's shapes. Every transaction goes out by
//! private broadcast (see [`crate::engine::private_broadcast`]): nightjar
//! has no mempool and no other way to send.

use bitcoin::hashes::Hash;
use bitcoin::{Amount, Denomination, Txid};
use serde_json::{Value, json};

use super::{NodeView, type_error};
use crate::engine::private_broadcast::{Pending, Receipt, Seen};
use crate::engine::{Command, CommandError, CommandReply};
use crate::netaddr::NetAddr;
use crate::rpc::{Params, RpcError, codes};
use crate::tx_check;

/// `sendrawtransaction "hexstring" ( maxfeerate maxburnamount )`.
///
/// What can be checked without a UTXO set is checked here (see
/// [`tx_check`]); fees, inputs and scripts are checked by the receiving
/// peers, which drop a transaction that fails (it then never comes back,
/// and `getprivatebroadcastinfo` keeps showing it unseen). `maxfeerate` is
/// validated but cannot be applied: the fee depends on the inputs' values.
pub(super) fn send_raw_transaction(
    view: &mut NodeView<'_>,
    params: &Params,
) -> Result<Value, RpcError> {
    let hex = match params.get(0, "hexstring") {
        Some(Value::String(s)) => s,
        Some(_) => return Err(type_error("hexstring", "a string")),
        None => {
            return Err(RpcError::new(
                codes::INVALID_PARAMS,
                "sendrawtransaction \"hexstring\" ( maxfeerate maxburnamount )",
            ));
        }
    };
    if let Some(rate) = params.get(1, "maxfeerate").filter(|v| !v.is_null()) {
        let rate = parse_amount(rate, "maxfeerate")?;
        // Core's ceiling on `maxfeerate`.
        if rate >= Amount::ONE_BTC {
            return Err(RpcError::new(
                codes::INVALID_PARAMETER,
                "Fee rates larger than or equal to 1BTC/kvB are not accepted",
            ));
        }
    }
    let max_burn = match params.get(2, "maxburnamount").filter(|v| !v.is_null()) {
        Some(v) => parse_amount(v, "maxburnamount")?,
        None => Amount::ZERO,
    };
    let tx = tx_check::decode_tx_hex(hex).map_err(|_| {
        RpcError::new(
            codes::DESERIALIZATION_ERROR,
            "TX decode failed. Make sure the tx has at least one input.",
        )
    })?;
    tx_check::check_for_broadcast(&tx, max_burn)
        .map_err(|r| RpcError::new(r.rpc_code(), r.to_string()))?;
    match view.engine.command(view.now, Command::PrivateBroadcast(tx)) {
        Ok(CommandReply::Broadcasting(txid)) => Ok(json!(txid.to_string())),
        Ok(other) => Err(RpcError::new(
            codes::INTERNAL_ERROR,
            format!("unexpected reply {other:?}"),
        )),
        Err(CommandError::NeedsTor) => Err(RpcError::new(
            codes::MISC_ERROR,
            "private broadcast needs Tor, which is turned off (--no-tor): nightjar sends \
             transactions only over fresh Tor circuits",
        )),
        Err(e) => Err(RpcError::new(codes::MISC_ERROR, e.to_string())),
    }
}

/// An amount in BTC, given as a JSON number or string (Core's
/// `AmountFromValue`).
fn parse_amount(v: &Value, name: &str) -> Result<Amount, RpcError> {
    let text = match v {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        _ => return Err(type_error(name, "an amount")),
    };
    Amount::from_str_in(&text, Denomination::Bitcoin)
        .map_err(|_| RpcError::new(codes::TYPE_ERROR, format!("Invalid amount for {name}")))
}

/// `getprivatebroadcastinfo`: Core's shape (`transactions`, each with
/// `txid`, `wtxid`, `hex`, `time_added`, `peers`), where each peer shows
/// its network instead of its address, plus nightjar's `attempts`,
/// `attempts_remaining` and `seen`. Transactions seen recently are listed
/// after the pending ones, with `seen: true` and `time_seen`.
pub(super) fn private_broadcast_info(view: &NodeView<'_>) -> Value {
    let queue = view.engine.private_broadcast();
    let pending = queue.pending().map(|p| pending_json(p, view.now.mono));
    let seen = queue.seen().map(seen_json);
    json!({ "transactions": pending.chain(seen).collect::<Vec<_>>() })
}

fn peers_json(receipts: &[Receipt]) -> Value {
    Value::Array(
        receipts
            .iter()
            .map(|r| {
                json!({
                    "network": r.network.as_str(),
                    "sent": r.sent,
                    "received": r.received,
                })
            })
            .collect(),
    )
}

fn pending_json(p: &Pending, now: std::time::Instant) -> Value {
    let next = p
        .next_attempt()
        .map(|t| t.saturating_duration_since(now).as_secs());
    json!({
        "txid": p.txid.to_string(),
        "wtxid": p.wtxid.to_string(),
        "hex": bitcoin::consensus::encode::serialize_hex(&p.tx),
        "time_added": p.added_unix,
        "peers": peers_json(&p.receipts),
        "attempts": p.attempts,
        "attempts_remaining": p.attempts_remaining(),
        "next_attempt_in": next,
        "seen": false,
    })
}

fn seen_json(s: &Seen) -> Value {
    json!({
        "txid": s.txid.to_string(),
        "wtxid": s.wtxid.to_string(),
        "time_added": s.added_unix,
        "peers": peers_json(&s.receipts),
        "attempts": s.attempts,
        "attempts_remaining": 0,
        "seen": true,
        "time_seen": s.seen_unix,
    })
}

/// `abortprivatebroadcast "id"`: the id is matched against txids and
/// wtxids, as in Core; the answer lists what was removed.
pub(super) fn abort_private_broadcast(
    view: &mut NodeView<'_>,
    params: &Params,
) -> Result<Value, RpcError> {
    let id = match params.get(0, "id") {
        Some(Value::String(s)) => s,
        _ => return Err(type_error("id", "a transaction id in hex")),
    };
    let id: Txid = id.parse().map_err(|_| {
        RpcError::new(
            codes::INVALID_PARAMETER,
            "id must be of length 64 (not hex, or the wrong length)",
        )
    })?;
    let wtxid_of = bitcoin::Wtxid::from_byte_array(id.to_byte_array());
    let matching: Vec<(Txid, Value)> = view
        .engine
        .private_broadcast()
        .pending()
        .filter(|p| p.txid == id || p.wtxid == wtxid_of)
        .map(|p| {
            (
                p.txid,
                json!({
                    "txid": p.txid.to_string(),
                    "wtxid": p.wtxid.to_string(),
                    "hex": bitcoin::consensus::encode::serialize_hex(&p.tx),
                }),
            )
        })
        .collect();
    let mut removed = Vec::new();
    for (txid, shown) in matching {
        if view
            .engine
            .command(view.now, Command::AbortPrivateBroadcast(txid))
            .is_ok()
        {
            removed.push(shown);
        }
    }
    if removed.is_empty() {
        return Err(RpcError::new(
            codes::INVALID_ADDRESS_OR_KEY,
            "Transaction not in private broadcast queue. Check getprivatebroadcastinfo.",
        ));
    }
    Ok(json!({ "removed_transactions": removed }))
}

/// `addpeeraddress "address" port ( tried )`: Core's test-only call, here
/// for users too: it puts a peer (an onion service a friend runs, say) in
/// the address book without connecting to it.
pub(super) fn add_peer_address(
    view: &mut NodeView<'_>,
    params: &Params,
) -> Result<Value, RpcError> {
    let address = match params.get(0, "address") {
        Some(Value::String(s)) => s.trim().to_owned(),
        _ => return Err(type_error("address", "a string")),
    };
    let port = match params.get(1, "port") {
        Some(v) => v
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .ok_or_else(|| type_error("port", "a port number"))?,
        None => return Err(type_error("port", "a port number")),
    };
    let tried = match params.get(2, "tried") {
        None | Some(Value::Null) => false,
        Some(v) => v
            .as_bool()
            .ok_or_else(|| type_error("tried", "a boolean"))?,
    };
    let text = if address.contains(':') && !address.starts_with('[') {
        format!("[{address}]:{port}")
    } else {
        format!("{address}:{port}")
    };
    let addr: NetAddr = text
        .parse()
        .map_err(|_| RpcError::new(codes::INVALID_IP_OR_SUBNET, "Invalid IP address"))?;
    match view
        .engine
        .command(view.now, Command::AddPeerAddress { addr, tried })
    {
        Ok(CommandReply::AddressAdded(true)) => Ok(json!({ "success": true })),
        Ok(_) => Ok(json!({
            "success": false,
            "error": if tried { "failed-adding-to-tried" } else { "failed-adding-to-new" },
        })),
        Err(e) => Err(RpcError::new(codes::MISC_ERROR, e.to_string())),
    }
}
