//! Headers: the tip, single headers and chunks, with the checkpoint proofs
//! of protocol 1.4 (a merkle branch to the root over the hashes of headers
//! 0 to `cp_height`).

use bitcoin::block::Header;
use bitcoin::consensus::encode::serialize_hex;
use bitcoin::hashes::sha256d;
use serde_json::{Value, json};

use crate::chain::merkle::branch_and_root;
use crate::electrum::args::Args;
use crate::electrum::backend::Backend;
use crate::electrum::jsonrpc::{Params, RpcError, bad_request, codes};

/// Most headers one `blockchain.block.headers` returns (a retarget
/// period, as the protocol recommends).
pub(crate) const MAX_HEADERS: u32 = 2016;

/// The `{height, hex}` form of `blockchain.headers.subscribe`.
pub(crate) fn tip_json(height: u32, header: &Header) -> Value {
    json!({"height": height, "hex": serialize_hex(header)})
}

/// `blockchain.block.header(height, cp_height=0)`.
pub(crate) async fn header<B: Backend>(backend: &B, params: &Params) -> Result<Value, RpcError> {
    params.check_known("blockchain.block.header", &["height", "cp_height"])?;
    let height = params.u32(0, "height")?;
    let cp_height = params.opt_u32(1, "cp_height")?.unwrap_or(0);
    let header = backend
        .headers(height, 1)
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| bad_request(format!("no block at height {height} yet")))?;
    let hex = serialize_hex(&header);
    if cp_height == 0 {
        return Ok(json!(hex));
    }
    let (branch, root) = checkpoint_proof(backend, height, cp_height).await?;
    Ok(json!({"branch": branch, "header": hex, "root": root}))
}

/// `blockchain.block.headers(start_height, count, cp_height=0)`.
pub(crate) async fn headers<B: Backend>(backend: &B, params: &Params) -> Result<Value, RpcError> {
    params.check_known(
        "blockchain.block.headers",
        &["start_height", "count", "cp_height"],
    )?;
    let start = params.u32(0, "start_height")?;
    let count = params.u32(1, "count")?.min(MAX_HEADERS);
    let cp_height = params.opt_u32(2, "cp_height")?.unwrap_or(0);
    let headers = if count == 0 {
        Vec::new()
    } else {
        backend.headers(start, count).await?
    };
    // The backend may not return more than asked, but a reply must never
    // claim more headers than it carries.
    let headers = &headers[..headers.len().min(count as usize)];
    let hex: String = headers.iter().map(serialize_hex).collect();
    let mut result = json!({"count": headers.len(), "hex": hex, "max": MAX_HEADERS});
    let returned = u32::try_from(headers.len()).unwrap_or(u32::MAX);
    if cp_height > 0 && returned > 0 {
        // The proof is for the last header: the others link to it.
        let last = start.saturating_add(returned - 1);
        let (branch, root) = checkpoint_proof(backend, last, cp_height).await?;
        if let Value::Object(map) = &mut result {
            map.insert("branch".into(), json!(branch));
            map.insert("root".into(), json!(root));
        }
    }
    Ok(result)
}

/// The branch of header `height` and the root of the tree over headers
/// 0 to `cp_height`, hex as the protocol writes hashes.
async fn checkpoint_proof<B: Backend>(
    backend: &B,
    height: u32,
    cp_height: u32,
) -> Result<(Vec<String>, String), RpcError> {
    let (tip, _) = backend.tip().await?;
    if height > cp_height || cp_height > tip {
        return Err(bad_request(format!(
            "a checkpoint proof needs header height {height} <= cp_height {cp_height} <= chain height {tip}"
        )));
    }
    // Every header up to the checkpoint, read in chunks so no single
    // backend call is large. Clients use checkpoints rarely (Electrum
    // itself does not), so nothing is cached.
    let mut leaves: Vec<sha256d::Hash> = Vec::with_capacity(cp_height as usize + 1);
    let mut next = 0u32;
    while next <= cp_height {
        let want = (cp_height - next + 1).min(MAX_HEADERS);
        let chunk = backend.headers(next, want).await?;
        if chunk.len() != want as usize {
            return Err(RpcError::new(
                codes::DAEMON_ERROR,
                "the chain changed while the checkpoint proof was computed; try again",
            ));
        }
        leaves.extend(chunk.iter().map(|h| h.block_hash().to_raw_hash()));
        next += want;
    }
    let (branch, root) = branch_and_root(leaves, height as usize)
        .ok_or_else(|| RpcError::new(codes::DAEMON_ERROR, "checkpoint proof out of range"))?;
    // sha256d hashes display reversed, as the protocol writes nodes.
    Ok((
        branch.iter().map(ToString::to_string).collect(),
        root.to_string(),
    ))
}
