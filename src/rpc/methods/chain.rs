//! The chain reports: `getblockchaininfo`, `getblockcount`,
//! `getbestblockhash`, `getblockhash`, `getblockheader`, `getchaintips`,
//! with Bitcoin Core's field names, value formats and error codes.
//!
//! nightjar is a headers-only node: every "block" these methods count is a
//! header that passed full header validation (see [`crate::chain`]), and no
//! block body has been downloaded or checked. Where Core's answer depends on
//! block data (`nTx`, `size_on_disk`) we give what Core gives for a block
//! whose data it does not have: zero.

use bitcoin::BlockHash;
use bitcoin::consensus::encode::serialize_hex;
use bitcoin::pow::{CompactTarget, Target};
use serde_json::{Map, Value, json};

use super::{Params, RpcError, codes, type_error};
use crate::chain::HeaderChain;
use crate::engine::HeaderSync;

/// The warning `getblockchaininfo` always carries.
pub const HEADERS_ONLY_WARNING: &str = "nightjar validates headers only; blocks are not downloaded";

/// `getblockcount`: the height of the best header chain.
pub fn block_count(chain: &HeaderChain) -> Value {
    json!(chain.height())
}

/// `getbestblockhash`: the hash of the best header.
pub fn best_block_hash(chain: &HeaderChain) -> Value {
    json!(chain.tip().1.to_string())
}

/// `getblockhash height`.
pub fn block_hash(chain: &HeaderChain, params: &Params) -> Result<Value, RpcError> {
    let height = match params.get(0, "height") {
        None => return Err(missing("height")),
        // An integer too big for i64 is a height out of range, not a type
        // error (issue 16, D6); a fraction is a type error.
        Some(v) if v.is_i64() || v.is_u64() => v.as_i64().unwrap_or(i64::MAX),
        Some(_) => return Err(type_error("height", "a number")),
    };
    u32::try_from(height)
        .ok()
        .and_then(|h| chain.hash_at(h))
        .map(|hash| json!(hash.to_string()))
        .ok_or_else(|| RpcError::new(codes::INVALID_PARAMETER, "Block height out of range"))
}

/// `getblockheader "blockhash" ( verbose )`.
pub fn block_header(chain: &HeaderChain, params: &Params) -> Result<Value, RpcError> {
    let hash = parse_hash(params.get(0, "blockhash"), "blockhash")?;
    let verbose = match params.get(1, "verbose") {
        None => true,
        Some(v) => v
            .as_bool()
            .ok_or_else(|| type_error("verbose", "a boolean"))?,
    };
    let Some((height, header, work)) = chain.get(&hash) else {
        return Err(RpcError::new(
            codes::INVALID_ADDRESS_OR_KEY,
            "Block not found",
        ));
    };
    if !verbose {
        return Ok(json!(serialize_hex(&header)));
    }
    let in_best = chain.is_in_best_chain(&hash);
    let tip_height = chain.height();
    let confirmations = if in_best {
        i64::from(tip_height) - i64::from(height) + 1
    } else {
        -1
    };
    let mut out = Map::new();
    out.insert("hash".into(), json!(hash.to_string()));
    out.insert("confirmations".into(), json!(confirmations));
    out.insert("height".into(), json!(height));
    out.insert("version".into(), json!(header.version.to_consensus()));
    out.insert(
        "versionHex".into(),
        json!(format!("{:08x}", header.version.to_consensus())),
    );
    out.insert("merkleroot".into(), json!(header.merkle_root.to_string()));
    out.insert("time".into(), json!(header.time));
    out.insert(
        "mediantime".into(),
        json!(chain.median_time_past(&hash).unwrap_or(header.time)),
    );
    out.insert("nonce".into(), json!(header.nonce));
    out.insert("bits".into(), json!(bits_hex(header.bits)));
    out.insert("target".into(), json!(target_hex(header.bits)));
    out.insert("difficulty".into(), json!(difficulty(header.bits)));
    out.insert("chainwork".into(), json!(format!("{work:x}")));
    // Core's nTx is 0 for a block whose data it has not received; we never
    // receive block data.
    out.insert("nTx".into(), json!(0));
    if height > 0 {
        out.insert(
            "previousblockhash".into(),
            json!(header.prev_blockhash.to_string()),
        );
    }
    if in_best
        && height < tip_height
        && let Some(next) = chain.hash_at(height + 1)
    {
        out.insert("nextblockhash".into(), json!(next.to_string()));
    }
    Ok(Value::Object(out))
}

/// `getchaintips`: every leaf of the header tree.
pub fn chain_tips(chain: &HeaderChain) -> Value {
    Value::Array(
        chain
            .tips()
            .iter()
            .map(|t| {
                json!({
                    "height": t.height,
                    "hash": t.hash.to_string(),
                    "branchlen": t.branch_len,
                    "status": t.status.as_str(),
                })
            })
            .collect(),
    )
}

/// `getblockchaininfo`, at `now_unix`.
///
/// nightjar is a headers-only node: `blocks` and `headers` are both the
/// best header's height and `bestblockhash` its hash. Every block counted
/// has had its header fully validated, nothing more; `headersonly: true`
/// and a warning say so, so a script that reads `blocks` as "validated
/// blocks" can tell.
pub fn blockchain_info(chain: &HeaderChain, now_unix: u64) -> Value {
    let (height, hash) = chain.tip();
    let tip = chain.tip_header();
    let mediantime = chain.median_time_past(&hash).unwrap_or(tip.time);
    let synced = is_synced(chain, now_unix);
    let mut out = Map::new();
    out.insert("chain".into(), json!(chain.network().to_core_arg()));
    out.insert("blocks".into(), json!(height));
    out.insert("headers".into(), json!(height));
    out.insert("bestblockhash".into(), json!(hash.to_string()));
    out.insert("bits".into(), json!(bits_hex(tip.bits)));
    out.insert("target".into(), json!(target_hex(tip.bits)));
    out.insert("difficulty".into(), json!(difficulty(tip.bits)));
    out.insert("time".into(), json!(tip.time));
    out.insert("mediantime".into(), json!(mediantime));
    out.insert(
        "verificationprogress".into(),
        json!(verification_progress(chain, now_unix, synced)),
    );
    out.insert("initialblockdownload".into(), json!(!synced));
    out.insert("chainwork".into(), json!(format!("{:x}", chain.tip_work())));
    // We store headers only (about 80 bytes each); Core's field counts
    // block and undo files, of which we have none.
    out.insert("size_on_disk".into(), json!(0));
    out.insert("pruned".into(), json!(false));
    out.insert("headersonly".into(), json!(true));
    out.insert("warnings".into(), json!([HEADERS_ONLY_WARNING]));
    Value::Object(out)
}

/// Out of initial sync: the same test header sync uses.
fn is_synced(chain: &HeaderChain, now_unix: u64) -> bool {
    !HeaderSync::in_initial_sync(chain, now_unix)
}

/// A rough estimate in [0, 1]: 1 once synced, otherwise how far the tip's
/// time is between genesis and now (Core estimates from transaction counts,
/// which a headers-only node does not have).
fn verification_progress(chain: &HeaderChain, now_unix: u64, synced: bool) -> f64 {
    if synced {
        return 1.0;
    }
    let genesis = chain.header_at(0).map_or(0, |h| u64::from(h.time));
    let tip = u64::from(chain.tip_header().time);
    if now_unix <= genesis {
        // A clock before genesis: nothing sensible to say.
        return 0.0;
    }
    let done = tip.saturating_sub(genesis) as f64;
    let total = (now_unix - genesis) as f64;
    (done / total).clamp(0.0, 1.0)
}

/// nBits as Core prints them: eight hex digits.
fn bits_hex(bits: CompactTarget) -> String {
    format!("{:08x}", bits.to_consensus())
}

/// The target nBits encode, as 64 hex digits.
fn target_hex(bits: CompactTarget) -> String {
    format!("{:x}", Target::from_compact(bits))
}

/// Core's `GetDifficulty`: the difficulty-1 target (nBits `0x1d00ffff`)
/// divided by this one, on every network (regtest's minimum is about
/// 4.66e-10). rust-bitcoin computes exactly that.
pub fn difficulty(bits: CompactTarget) -> f64 {
    Target::from_compact(bits).difficulty_float()
}

/// Core's `ParseHashV`: a 64-digit hex string, in display order.
pub(super) fn parse_hash(v: Option<&Value>, name: &str) -> Result<BlockHash, RpcError> {
    let text = match v {
        Some(Value::String(s)) => s,
        Some(_) => return Err(type_error(name, "a string")),
        None => return Err(missing(name)),
    };
    let len = text.len();
    if len != 64 {
        return Err(RpcError::new(
            codes::INVALID_PARAMETER,
            format!("{name} must be of length 64 (not {len}, for '{text}')"),
        ));
    }
    let not_hex = || {
        RpcError::new(
            codes::INVALID_PARAMETER,
            format!("{name} must be hexadecimal string (not '{text}')"),
        )
    };
    if !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(not_hex());
    }
    text.to_ascii_lowercase()
        .parse::<BlockHash>()
        .map_err(|_| not_hex())
}

pub(super) fn missing(name: &str) -> RpcError {
    RpcError::new(
        codes::INVALID_PARAMS,
        format!("missing required parameter {name}"),
    )
}
