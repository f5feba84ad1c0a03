//! The methods that fetch data from peers: `scanblocks`, `getblockfilter`
//! and `getblock`, in Core's shapes. Their answers come later: the engine
//! returns a request id, the driver keeps the call open, and
//! [`fetched`] turns what arrived into Core's reply.

use bitcoin::consensus::encode::serialize_hex;
use serde_json::{Value, json};

use super::chain::{block_header, missing, parse_hash};
use super::{NodeView, Params, RpcError, codes, type_error};
use crate::engine::block_fetch::{FetchError, Fetched, RequestId, ScanRequest};
use crate::engine::{Command, CommandReply};
use crate::rpc::descriptors;

/// An answer now, or one that comes when the engine has fetched it.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// The answer.
    Now(Value),
    /// Wait for [`crate::engine::Output::Fetched`] with this id.
    Later(RequestId),
}

/// `scanblocks "action" ( [scanobjects,...] start_height stop_height
/// "filtertype" options )`.
pub(super) fn scanblocks(view: &mut NodeView<'_>, params: &Params) -> Result<Reply, RpcError> {
    let action = match params.get(0, "action") {
        Some(Value::String(s)) => s.as_str(),
        Some(_) => return Err(type_error("action", "a string")),
        None => return Err(missing("action")),
    };
    match action {
        "status" => Ok(Reply::Now(match view.engine.scan_status() {
            Some(s) => json!({"progress": s.progress, "current_height": s.current_height}),
            None => Value::Null,
        })),
        "abort" => match view.engine.command(view.now, Command::AbortScan) {
            Ok(CommandReply::Aborted(ran)) => Ok(Reply::Now(json!(ran))),
            Ok(_) => Ok(Reply::Now(json!(false))),
            Err(e) => Err(fetch_refused(&e)),
        },
        "start" => {
            let request = scan_request(view, params)?;
            match view.engine.command(view.now, Command::ScanBlocks(request)) {
                Ok(CommandReply::Pending(id)) => Ok(Reply::Later(id)),
                Ok(_) => Err(RpcError::new(codes::INTERNAL_ERROR, "unexpected reply")),
                Err(e) => Err(fetch_refused(&e)),
            }
        }
        other => Err(RpcError::new(
            codes::INVALID_PARAMETER,
            format!("Invalid action '{other}': use start, status or abort"),
        )),
    }
}

fn scan_request(view: &NodeView<'_>, params: &Params) -> Result<ScanRequest, RpcError> {
    let chain = view.engine.chain();
    let network = chain.network();
    let objects = match params.get(1, "scanobjects") {
        Some(Value::Array(a)) => a,
        Some(_) => return Err(type_error("scanobjects", "an array")),
        None => return Err(missing("scanobjects")),
    };
    let mut scripts = Vec::new();
    for object in objects {
        let (desc, range) = match object {
            Value::String(s) => (s.as_str(), None),
            Value::Object(o) => {
                let desc = o
                    .get("desc")
                    .and_then(Value::as_str)
                    .ok_or_else(|| type_error("scanobjects[].desc", "a string"))?;
                (desc, o.get("range").map(parse_range).transpose()?)
            }
            _ => {
                return Err(type_error(
                    "scanobjects",
                    "strings or objects with desc and range",
                ));
            }
        };
        let more = descriptors::scripts(desc, range, network)
            .map_err(|e| RpcError::new(codes::INVALID_ADDRESS_OR_KEY, e.to_string()))?;
        scripts.extend(more);
    }
    let height = |i, name| -> Result<Option<u32>, RpcError> {
        match params.get(i, name) {
            None => Ok(None),
            Some(v) => v
                .as_u64()
                .and_then(|h| u32::try_from(h).ok())
                .map(Some)
                .ok_or_else(|| type_error(name, "a height")),
        }
    };
    let start = height(2, "start_height")?.unwrap_or(0);
    let stop = height(3, "stop_height")?.unwrap_or(chain.height());
    if start > chain.height() || stop > chain.height() {
        return Err(RpcError::new(
            codes::INVALID_PARAMETER,
            "Invalid start_height or stop_height: above the best header",
        ));
    }
    if let Some(t) = params.get(4, "filtertype")
        && t.as_str() != Some("basic")
    {
        return Err(RpcError::new(
            codes::INVALID_ADDRESS_OR_KEY,
            "Unknown filtertype",
        ));
    }
    if params
        .get(5, "options")
        .and_then(|o| o.get("filter_false_positives"))
        .and_then(Value::as_bool)
        == Some(true)
    {
        return Err(RpcError::new(
            codes::INVALID_PARAMETER,
            "filter_false_positives is not supported: it would fetch every matching block",
        ));
    }
    Ok(ScanRequest {
        scripts,
        start,
        stop,
    })
}

/// A descriptor range: `n` (0 to n) or `[begin, end]`, as Core takes it.
fn parse_range(v: &Value) -> Result<(u32, u32), RpcError> {
    let num = |v: &Value| v.as_u64().and_then(|n| u32::try_from(n).ok());
    let bad = || type_error("range", "a number or [begin, end]");
    match v {
        Value::Array(a) if a.len() == 2 => {
            Ok((num(&a[0]).ok_or_else(bad)?, num(&a[1]).ok_or_else(bad)?))
        }
        other => Ok((0, num(other).ok_or_else(bad)?)),
    }
}

/// `getblockfilter "blockhash" ( "filtertype" )`.
pub(super) fn getblockfilter(view: &mut NodeView<'_>, params: &Params) -> Result<Reply, RpcError> {
    let hash = parse_hash(params.get(0, "blockhash"), "blockhash")?;
    if let Some(t) = params.get(1, "filtertype")
        && t.as_str() != Some("basic")
    {
        return Err(RpcError::new(
            codes::INVALID_ADDRESS_OR_KEY,
            "Unknown filtertype",
        ));
    }
    match view.engine.command(view.now, Command::GetBlockFilter(hash)) {
        Ok(CommandReply::Pending(id)) => Ok(Reply::Later(id)),
        Ok(_) => Err(RpcError::new(codes::INTERNAL_ERROR, "unexpected reply")),
        Err(e) => Err(fetch_refused(&e)),
    }
}

/// `getblock "blockhash" ( verbosity )`: 0 (hex) or 1 (JSON with txids).
pub(super) fn getblock(view: &mut NodeView<'_>, params: &Params) -> Result<Reply, RpcError> {
    let hash = parse_hash(params.get(0, "blockhash"), "blockhash")?;
    verbosity(params)?;
    match view.engine.command(view.now, Command::GetBlock(hash)) {
        Ok(CommandReply::Pending(id)) => Ok(Reply::Later(id)),
        Ok(_) => Err(RpcError::new(codes::INTERNAL_ERROR, "unexpected reply")),
        Err(e) => Err(fetch_refused(&e)),
    }
}

fn verbosity(params: &Params) -> Result<u8, RpcError> {
    match params.get(1, "verbosity") {
        None => Ok(1),
        Some(Value::Bool(b)) => Ok(u8::from(*b)),
        Some(v) => match v.as_u64() {
            Some(0) => Ok(0),
            Some(1) => Ok(1),
            Some(_) => Err(RpcError::new(
                codes::INVALID_PARAMETER,
                "verbosity 2 and 3 need the spent outputs, which a node without a UTXO set \
                 does not have: use 0 or 1",
            )),
            None => Err(type_error("verbosity", "a number")),
        },
    }
}

/// Core's reply for a finished fetch.
pub fn fetched(
    view: &NodeView<'_>,
    params: &Params,
    result: Result<Fetched, FetchError>,
) -> Result<Value, RpcError> {
    match result.map_err(|e| fetch_refused(&e.into()))? {
        Fetched::Scan {
            from,
            to,
            relevant,
            completed,
        } => Ok(json!({
            "from_height": from,
            "to_height": to,
            "relevant_blocks": relevant.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "completed": completed,
        })),
        Fetched::Filter { filter, header } => Ok(json!({
            "filter": hex(&filter),
            "header": header.to_string(),
        })),
        Fetched::Block { block, height: _ } => {
            if verbosity(params)? == 0 {
                return Ok(json!(serialize_hex(&*block)));
            }
            let hash = block.block_hash();
            let args = Params::Positional(vec![json!(hash.to_string())]);
            let mut out = block_header(view.engine.chain(), &args)?;
            if let Value::Object(o) = &mut out {
                o.insert("nTx".into(), json!(block.txdata.len()));
                o.insert(
                    "strippedsize".into(),
                    json!((block.weight().to_wu() as usize - block.total_size()) / 3),
                );
                o.insert("size".into(), json!(block.total_size()));
                o.insert("weight".into(), json!(block.weight().to_wu()));
                o.insert(
                    "tx".into(),
                    json!(
                        block
                            .txdata
                            .iter()
                            .map(|t| t.compute_txid().to_string())
                            .collect::<Vec<_>>()
                    ),
                );
            }
            Ok(out)
        }
    }
}

/// Filter sync progress for `getblockchaininfo`.
pub fn filter_info(view: &NodeView<'_>) -> Value {
    let s = view.engine.filter_status();
    json!({
        "enabled": s.enabled,
        "filter_headers": s.headers,
        "peers": s.peers,
        "cross_checked": s.cross_checked,
        "disputed_from": s.disputed_from,
    })
}

fn fetch_refused(e: &crate::engine::CommandError) -> RpcError {
    use crate::engine::CommandError;
    match e {
        CommandError::Fetch(FetchError::UnknownBlock) => {
            RpcError::new(codes::INVALID_ADDRESS_OR_KEY, "Block not found")
        }
        CommandError::Fetch(FetchError::FiltersOff) => {
            RpcError::new(codes::MISC_ERROR, e.to_string())
        }
        CommandError::Fetch(FetchError::BadRange { .. }) => {
            RpcError::new(codes::INVALID_PARAMETER, e.to_string())
        }
        other => RpcError::new(codes::MISC_ERROR, other.to_string()),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
