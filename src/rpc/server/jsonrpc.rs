//! JSON-RPC envelopes: reading request objects and writing replies the way
//! Bitcoin Core 28+ does (`src/httprpc.cpp`, `src/rpc/request.cpp`).
//!
//! - A request without `jsonrpc` (or with `"1.0"`) gets a *legacy* reply,
//!   `{"result":…,"error":…,"id":…}` with both `result` and `error` present,
//!   and a failed single call is an HTTP error (500; 404 for an unknown
//!   method; 400 for an invalid request).
//! - `"jsonrpc":"2.0"` gets a strict 2.0 reply (`result` *or* `error`), HTTP
//!   200 even when the call failed, and nothing at all (204) for a
//!   notification (a request without `id`).
//! - A JSON array is a batch: every element is answered by its own rules,
//!   notifications are left out, and the HTTP status is 200 (204 when only
//!   notifications were sent).
//!
//! Details copied from Core on purpose: the `id` key is left out of a reply
//! to a request that had none; an unparsable body or a top-level value
//! that is neither object nor array is `PARSE_ERROR` with HTTP 500 and
//! `"id":null`; an empty batch is answered with `[]` (Core keeps this for
//! old clients, although JSON-RPC 2.0 calls it an invalid request); every
//! reply ends with a newline. Keys are written in Core's order (`jsonrpc`,
//! `result`, `error`, `id`) for anyone comparing output by eye.
//!
//! One addition: `"jsonrpc":"1.1"` is taken as legacy too (Core rejects
//! it). No known client sends it, but python-bitcoinlib's
//! `"version":"1.1"` shows that "1.1" is what such clients think they
//! speak, and answering is friendlier than refusing.

use std::sync::Arc;

use serde_json::Value;

use crate::rpc::{Dispatch, Params, RpcError, codes};

/// HTTP statuses used for JSON-RPC replies.
const OK: u16 = 200;
/// Reply to a notification (nothing to say).
const NO_CONTENT: u16 = 204;
/// `INVALID_REQUEST` of a legacy single call.
const BAD_REQUEST: u16 = 400;
/// `METHOD_NOT_FOUND` of a legacy single call.
const NOT_FOUND: u16 = 404;
/// Any other error of a legacy single call.
const INTERNAL_SERVER_ERROR: u16 = 500;

/// Most calls in one batch. Core sets no limit, but its calls run in
/// order on one thread, so a batch of a hundred thousand cheap calls (a
/// 1 MiB body holds that many) would keep a request slot for minutes and
/// build a reply far larger than the request. No real client batches more
/// than a few hundred calls; a larger batch is refused whole, before any
/// call runs, so nothing is left half-done.
pub const MAX_BATCH: usize = 1000;

/// What to send back for one HTTP request body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The HTTP status.
    pub status: u16,
    /// The JSON text (with its trailing newline), or `None` for 204.
    pub body: Option<String>,
}

/// Which reply format a request asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Version {
    /// JSON-RPC 1.0/1.1 as Core has always spoken it.
    Legacy,
    /// Strict JSON-RPC 2.0.
    V2,
}

/// A well-formed request object.
#[derive(Debug)]
struct Request {
    /// The `id`, or `None` when the key is absent (`null` is an id).
    id: Option<Value>,
    /// The reply format.
    version: Version,
    /// The method name.
    method: String,
    /// The parameters.
    params: Params,
}

impl Request {
    /// A 2.0 request without `id` expects no reply (legacy requests always
    /// get one, as in Core).
    fn is_notification(&self) -> bool {
        self.version == Version::V2 && self.id.is_none()
    }
}

/// A request object that could not be used, with as much of its envelope
/// as was read before the problem (Core reads `id`, then `jsonrpc`, then
/// `method` and `params`, and an error carries whatever it had by then).
#[derive(Debug)]
struct Invalid {
    /// The `id` if it was read; `Some(Null)` when the element was not even
    /// an object.
    id: Option<Value>,
    /// The version if it was read, legacy otherwise.
    version: Version,
    /// What is wrong.
    error: RpcError,
}

impl Invalid {
    /// Whether Core would suppress the error reply in a batch: a 2.0
    /// element without `id` is a notification even when it is malformed.
    fn is_notification(&self) -> bool {
        self.version == Version::V2 && self.id.is_none()
    }
}

/// Reads one request object.
fn parse_request(value: Value) -> Result<Request, Invalid> {
    let Value::Object(mut object) = value else {
        return Err(Invalid {
            id: Some(Value::Null),
            version: Version::Legacy,
            error: RpcError::new(codes::INVALID_REQUEST, "Invalid Request object"),
        });
    };
    let id = object.remove("id");
    let invalid = |version, message: &str| Invalid {
        id: id.clone(),
        version,
        error: RpcError::new(codes::INVALID_REQUEST, message),
    };
    let version = match object.get("jsonrpc") {
        None | Some(Value::Null) => Version::Legacy,
        Some(Value::String(v)) if v == "2.0" => Version::V2,
        Some(Value::String(v)) if v == "1.0" || v == "1.1" => Version::Legacy,
        Some(Value::String(_)) => {
            return Err(invalid(Version::Legacy, "JSON-RPC version not supported"));
        }
        Some(_) => return Err(invalid(Version::Legacy, "jsonrpc field must be a string")),
    };
    let method = match object.remove("method") {
        None | Some(Value::Null) => return Err(invalid(version, "Missing method")),
        Some(Value::String(method)) => method,
        Some(_) => return Err(invalid(version, "Method must be a string")),
    };
    let params = match object.remove("params") {
        None | Some(Value::Null) => Params::Positional(Vec::new()),
        Some(Value::Array(values)) => Params::Positional(values),
        Some(Value::Object(map)) => Params::Named(map),
        Some(_) => return Err(invalid(version, "Params must be an array or object")),
    };
    Ok(Request {
        id,
        version,
        method,
        params,
    })
}

/// The reply object for one call, serialised in Core's key order.
fn reply_object(version: Version, outcome: &Result<Value, RpcError>, id: Option<&Value>) -> String {
    let mut out = String::from("{");
    if version == Version::V2 {
        out.push_str(r#""jsonrpc":"2.0","#);
    }
    match (version, outcome) {
        (Version::Legacy, Ok(result)) => {
            out.push_str(r#""result":"#);
            out.push_str(&result.to_string());
            out.push_str(r#","error":null"#);
        }
        (Version::Legacy, Err(error)) => {
            out.push_str(r#""result":null,"error":"#);
            out.push_str(&error_object(error));
        }
        (Version::V2, Ok(result)) => {
            out.push_str(r#""result":"#);
            out.push_str(&result.to_string());
        }
        (Version::V2, Err(error)) => {
            out.push_str(r#""error":"#);
            out.push_str(&error_object(error));
        }
    }
    if let Some(id) = id {
        out.push_str(r#","id":"#);
        out.push_str(&id.to_string());
    }
    out.push('}');
    out
}

/// `{"code":C,"message":M}`.
fn error_object(error: &RpcError) -> String {
    // Written by hand for the key order; serde_json escapes the message.
    format!(
        r#"{{"code":{},"message":{}}}"#,
        error.code,
        Value::String(error.message.clone())
    )
}

/// The HTTP status of a failed legacy single call (Core's `JSONErrorReply`).
fn legacy_error_status(code: i64) -> u16 {
    match code {
        codes::INVALID_REQUEST => BAD_REQUEST,
        codes::METHOD_NOT_FOUND => NOT_FOUND,
        _ => INTERNAL_SERVER_ERROR,
    }
}

/// A reply with a JSON body and a trailing newline.
fn json_reply(status: u16, mut body: String) -> Reply {
    body.push('\n');
    Reply {
        status,
        body: Some(body),
    }
}

/// An error that is not about any one call (unparsable body): legacy shape,
/// `"id":null`, status by code.
fn envelope_error(error: RpcError) -> Reply {
    let status = legacy_error_status(error.code);
    json_reply(
        status,
        reply_object(Version::Legacy, &Err(error), Some(&Value::Null)),
    )
}

/// Whether the body calls any of `methods` (alone or in a batch). A body
/// that is not JSON calls nothing.
pub fn calls_any(body: &[u8], methods: &[&str]) -> bool {
    let named = |v: &Value| {
        v.get("method")
            .and_then(Value::as_str)
            .is_some_and(|m| methods.contains(&m))
    };
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Array(calls)) => calls.iter().any(named),
        Ok(call) => named(&call),
        Err(_) => false,
    }
}

/// Answers one HTTP request body.
///
/// Public (with [`Reply`]) so that the fuzz targets can feed it bodies
/// directly; the server is its only other caller.
pub async fn handle<D: Dispatch>(body: &[u8], dispatch: &Arc<D>) -> Reply {
    let Ok(value) = serde_json::from_slice::<Value>(body) else {
        return envelope_error(RpcError::new(codes::PARSE_ERROR, "Parse error"));
    };
    match value {
        Value::Object(_) => single(value, dispatch).await,
        Value::Array(items) if items.len() > MAX_BATCH => envelope_error(RpcError::new(
            codes::INVALID_REQUEST,
            format!(
                "a batch of {} calls is over the limit of {MAX_BATCH}; send it in smaller batches",
                items.len()
            ),
        )),
        Value::Array(items) => batch(items, dispatch).await,
        _ => envelope_error(RpcError::new(
            codes::PARSE_ERROR,
            "Top-level object parse error",
        )),
    }
}

/// A single request object.
async fn single<D: Dispatch>(value: Value, dispatch: &Arc<D>) -> Reply {
    let request = match parse_request(value) {
        Ok(request) => request,
        Err(invalid) => {
            // Core answers a malformed single request with an HTTP error in
            // whichever shape it had recognised, even a 2.0 one.
            let status = legacy_error_status(invalid.error.code);
            let body = reply_object(invalid.version, &Err(invalid.error), invalid.id.as_ref());
            return json_reply(status, body);
        }
    };
    let outcome = call(dispatch, request.method.clone(), request.params.clone()).await;
    if request.is_notification() {
        return Reply {
            status: NO_CONTENT,
            body: None,
        };
    }
    let status = match (&request.version, &outcome) {
        (Version::Legacy, Err(error)) => legacy_error_status(error.code),
        _ => OK,
    };
    json_reply(
        status,
        reply_object(request.version, &outcome, request.id.as_ref()),
    )
}

/// A batch: the elements run one after another, in order, as in Core (so a
/// batch that changes state and then reads it sees its own changes).
async fn batch<D: Dispatch>(items: Vec<Value>, dispatch: &Arc<D>) -> Reply {
    let was_empty = items.is_empty();
    let mut replies = Vec::with_capacity(items.len());
    for item in items {
        match parse_request(item) {
            Ok(request) => {
                let outcome = call(dispatch, request.method.clone(), request.params.clone()).await;
                if !request.is_notification() {
                    replies.push(reply_object(request.version, &outcome, request.id.as_ref()));
                }
            }
            Err(invalid) => {
                if !invalid.is_notification() {
                    replies.push(reply_object(
                        invalid.version,
                        &Err(invalid.error),
                        invalid.id.as_ref(),
                    ));
                }
            }
        }
    }
    if replies.is_empty() && !was_empty {
        return Reply {
            status: NO_CONTENT,
            body: None,
        };
    }
    json_reply(OK, format!("[{}]", replies.join(",")))
}

/// Runs one call on its own task, so a panicking method becomes an
/// `INTERNAL_ERROR` reply instead of a dropped connection, and a call that
/// has started always finishes (like Core, which never abandons a call
/// half-way) even if its client goes away or its request times out.
async fn call<D: Dispatch>(
    dispatch: &Arc<D>,
    method: String,
    params: Params,
) -> Result<Value, RpcError> {
    tracing::debug!(method = ?method, "RPC call");
    let target = Arc::clone(dispatch);
    let name = method.clone();
    let task = tokio::spawn(async move { target.call(method, params).await });
    match task.await {
        Ok(outcome) => outcome,
        Err(e) => {
            tracing::error!(method = ?name, error = %e, "RPC method failed unexpectedly");
            Err(RpcError::new(codes::INTERNAL_ERROR, "Internal error"))
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use serde_json::json;

    use super::*;

    #[test]
    fn legacy_and_v2_replies_have_cores_shape_and_key_order() {
        let id = json!(7);
        assert_eq!(
            reply_object(Version::Legacy, &Ok(json!({"a": 1})), Some(&id)),
            r#"{"result":{"a":1},"error":null,"id":7}"#
        );
        assert_eq!(
            reply_object(Version::Legacy, &Err(RpcError::new(-8, "bad \"x\"")), None),
            r#"{"result":null,"error":{"code":-8,"message":"bad \"x\""}}"#
        );
        assert_eq!(
            reply_object(Version::V2, &Ok(json!("s")), Some(&json!(null))),
            r#"{"jsonrpc":"2.0","result":"s","id":null}"#
        );
        assert_eq!(
            reply_object(
                Version::V2,
                &Err(RpcError::new(-32601, "Method not found")),
                Some(&json!("i"))
            ),
            r#"{"jsonrpc":"2.0","error":{"code":-32601,"message":"Method not found"},"id":"i"}"#
        );
    }

    #[test]
    fn envelope_is_read_in_cores_order() {
        // The id is known when the version is rejected...
        let bad = parse_request(json!({"jsonrpc": "3.0", "id": 4, "method": "m"})).unwrap_err();
        assert_eq!(bad.id, Some(json!(4)));
        assert_eq!(bad.version, Version::Legacy);
        assert_eq!(bad.error.message, "JSON-RPC version not supported");
        // ...and the version when the method is missing.
        let bad = parse_request(json!({"jsonrpc": "2.0", "params": []})).unwrap_err();
        assert_eq!((bad.id, bad.version), (None, Version::V2));
        assert_eq!(bad.error.code, codes::INVALID_REQUEST);
        let bad = parse_request(json!({"jsonrpc": 2, "method": "m"})).unwrap_err();
        assert_eq!(bad.error.message, "jsonrpc field must be a string");
        let bad = parse_request(json!({"method": "m", "params": "x"})).unwrap_err();
        assert_eq!(bad.error.message, "Params must be an array or object");
        let bad = parse_request(json!({"method": 5})).unwrap_err();
        assert_eq!(bad.error.message, "Method must be a string");
        let bad = parse_request(json!(17)).unwrap_err();
        assert_eq!(bad.id, Some(Value::Null));

        let ok = parse_request(json!({"jsonrpc": null, "method": "m", "id": null})).unwrap();
        assert_eq!(ok.version, Version::Legacy);
        assert_eq!(ok.id, Some(Value::Null));
        assert_eq!(ok.params, Params::Positional(vec![]));
        let ok =
            parse_request(json!({"jsonrpc": "1.1", "method": "m", "params": {"k": 1}})).unwrap();
        assert_eq!(ok.version, Version::Legacy);
        assert!(matches!(ok.params, Params::Named(_)));
        assert!(!ok.is_notification(), "legacy requests always get a reply");
    }

    #[test]
    fn legacy_error_statuses_follow_core() {
        assert_eq!(legacy_error_status(codes::INVALID_REQUEST), 400);
        assert_eq!(legacy_error_status(codes::METHOD_NOT_FOUND), 404);
        assert_eq!(legacy_error_status(codes::PARSE_ERROR), 500);
        assert_eq!(legacy_error_status(codes::INVALID_PARAMETER), 500);
    }
}
