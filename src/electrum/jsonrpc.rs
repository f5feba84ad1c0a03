//! JSON-RPC 2.0 envelopes as the Electrum protocol uses them: one JSON
//! value per line, a request object or a batch (array) of them; replies
//! always say `"jsonrpc":"2.0"`; a request without `id` is a notification
//! and gets no reply. Clients that leave `jsonrpc` out (1.0 style) are
//! served the same way rather than refused.

use serde_json::{Value, json};

use super::backend::BackendError;
pub(crate) use crate::rpc::{Params, RpcError};

/// Error codes: JSON-RPC's own (the RPC server's, [`crate::rpc::codes`]),
/// and ElectrumX's two application codes (which Electrum clients expect for
/// refused requests).
pub(crate) mod codes {
    pub(crate) use crate::rpc::codes::{
        INTERNAL_ERROR, INVALID_PARAMS, INVALID_REQUEST, METHOD_NOT_FOUND, PARSE_ERROR,
    };
    /// The request is understood but cannot be served (ElectrumX's
    /// `BAD_REQUEST`).
    pub(crate) const BAD_REQUEST: i64 = 1;
    /// The node behind the server failed (ElectrumX's `DAEMON_ERROR`).
    pub(crate) const DAEMON_ERROR: i64 = 2;
}

/// A parameter problem; the message names the parameter.
pub(crate) fn invalid_params(message: impl Into<String>) -> RpcError {
    RpcError::new(codes::INVALID_PARAMS, message)
}

/// A request that cannot be served as asked (ElectrumX's code, so these
/// are free functions here rather than methods of the RPC server's type).
pub(crate) fn bad_request(message: impl Into<String>) -> RpcError {
    RpcError::new(codes::BAD_REQUEST, message)
}

/// The JSON-RPC error object.
fn error_json(e: &RpcError) -> Value {
    json!({"code": e.code, "message": e.message})
}

/// Lets `?` turn a backend failure into an Electrum error reply. Only the
/// Electrum server meets a [`BackendError`], so the ElectrumX codes chosen
/// here never reach the RPC server's clients.
impl From<BackendError> for RpcError {
    fn from(e: BackendError) -> Self {
        // What the client did wrong (or asked for what does not exist) is
        // a bad request; the node not coping is a daemon error, which
        // clients treat as "try again later" or "try another server".
        let code = match e {
            BackendError::NotWatched(_) | BackendError::NotFound(_) | BackendError::Rejected(_) => {
                codes::BAD_REQUEST
            }
            BackendError::Unavailable(_) | BackendError::Other(_) => codes::DAEMON_ERROR,
        };
        RpcError::new(code, e.to_string())
    }
}

/// A line's content: one value, or a batch.
#[derive(Debug)]
pub(crate) enum Incoming {
    /// A single value (expected to be a request object).
    Single(Value),
    /// A batch (a non-empty array of values).
    Batch(Vec<Value>),
}

/// Parses one line.
pub(crate) fn parse_line(line: &[u8]) -> Result<Incoming, RpcError> {
    let value: Value = serde_json::from_slice(line)
        .map_err(|e| RpcError::new(codes::PARSE_ERROR, format!("not valid JSON: {e}")))?;
    match value {
        Value::Array(items) if items.is_empty() => Err(RpcError::new(
            codes::INVALID_REQUEST,
            "an empty batch is not a request",
        )),
        Value::Array(items) => Ok(Incoming::Batch(items)),
        other => Ok(Incoming::Single(other)),
    }
}

/// A well-formed request object.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Call {
    /// The id to answer with; `None` for a notification (no reply).
    pub(crate) id: Option<Value>,
    /// The method name.
    pub(crate) method: String,
    /// Its parameters.
    pub(crate) params: Params,
}

/// Reads a request object. On failure, the id to answer with (`null` when
/// none could be read) and the error.
pub(crate) fn parse_call(value: Value) -> Result<Call, (Value, RpcError)> {
    let Value::Object(mut object) = value else {
        return Err((
            Value::Null,
            RpcError::new(codes::INVALID_REQUEST, "a request is a JSON object"),
        ));
    };
    let id = object.remove("id");
    let reply_id = id.clone().unwrap_or(Value::Null);
    if let Some(bad) = &id
        && !(bad.is_null() || bad.is_number() || bad.is_string())
    {
        return Err((
            Value::Null,
            RpcError::new(codes::INVALID_REQUEST, "id must be a number or a string"),
        ));
    }
    let method = match object.remove("method") {
        Some(Value::String(m)) => m,
        _ => {
            return Err((
                reply_id,
                RpcError::new(codes::INVALID_REQUEST, "method must be a string"),
            ));
        }
    };
    let params = match object.remove("params") {
        None | Some(Value::Null) => Params::Positional(Vec::new()),
        Some(Value::Array(values)) => Params::Positional(values),
        Some(Value::Object(map)) => Params::Named(map),
        Some(_) => {
            return Err((
                reply_id,
                RpcError::new(
                    codes::INVALID_REQUEST,
                    "params must be an array or an object",
                ),
            ));
        }
    };
    Ok(Call { id, method, params })
}

/// A reply to the request with `id`.
pub(crate) fn reply(id: Value, outcome: Result<Value, RpcError>) -> Value {
    match outcome {
        Ok(result) => json!({"jsonrpc": "2.0", "id": id, "result": result}),
        Err(e) => json!({"jsonrpc": "2.0", "id": id, "error": error_json(&e)}),
    }
}

/// A server notification (a subscription's news).
pub(crate) fn notification(method: &str, params: Value) -> Value {
    json!({"jsonrpc": "2.0", "method": method, "params": params})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_requests_batches_and_refuses_the_rest() {
        assert!(matches!(
            parse_line(br#"{"id":1,"method":"server.ping"}"#),
            Ok(Incoming::Single(_))
        ));
        assert!(matches!(
            parse_line(br#"[{"id":1,"method":"server.ping"}]"#),
            Ok(Incoming::Batch(v)) if v.len() == 1
        ));
        assert_eq!(parse_line(b"{nope").unwrap_err().code, codes::PARSE_ERROR);
        assert_eq!(parse_line(b"[]").unwrap_err().code, codes::INVALID_REQUEST);
    }

    #[test]
    fn a_call_keeps_its_id_and_params() {
        let call = parse_call(json!({"jsonrpc":"2.0","id":"x","method":"m","params":[1]})).unwrap();
        assert_eq!(call.id, Some(json!("x")));
        assert_eq!(call.method, "m");
        assert_eq!(call.params, Params::Positional(vec![json!(1)]));

        let notif = parse_call(json!({"method":"m"})).unwrap();
        assert_eq!(notif.id, None);
        assert_eq!(notif.params, Params::Positional(vec![]));
    }

    #[test]
    fn malformed_calls_are_invalid_requests_answered_with_what_id_there_is() {
        let (id, e) = parse_call(json!(5)).unwrap_err();
        assert_eq!((id, e.code), (Value::Null, codes::INVALID_REQUEST));
        let (id, e) = parse_call(json!({"id": 7, "method": 3})).unwrap_err();
        assert_eq!((id, e.code), (json!(7), codes::INVALID_REQUEST));
        let (id, e) = parse_call(json!({"id": 7, "method": "m", "params": 3})).unwrap_err();
        assert_eq!((id, e.code), (json!(7), codes::INVALID_REQUEST));
        let (_, e) = parse_call(json!({"id": [1], "method": "m"})).unwrap_err();
        assert_eq!(e.code, codes::INVALID_REQUEST);
    }

    #[test]
    fn backend_errors_get_electrumx_codes() {
        let sh = crate::wallet::scripthash::ScriptHash::from_byte_array([0; 32]);
        let e = RpcError::from(BackendError::NotWatched(sh));
        assert_eq!(e.code, codes::BAD_REQUEST);
        assert!(e.message.contains("[wallet]"), "{}", e.message);
        assert_eq!(
            RpcError::from(BackendError::Unavailable("syncing".into())).code,
            codes::DAEMON_ERROR
        );
        assert_eq!(
            RpcError::from(BackendError::Rejected("dust".into())).code,
            codes::BAD_REQUEST
        );
    }

    #[test]
    fn replies_and_notifications_have_the_2_0_shape() {
        assert_eq!(
            reply(json!(1), Ok(json!(null))),
            json!({"jsonrpc":"2.0","id":1,"result":null})
        );
        assert_eq!(
            reply(json!(1), Err(bad_request("no"))),
            json!({"jsonrpc":"2.0","id":1,"error":{"code":1,"message":"no"}})
        );
        assert_eq!(
            notification("a.b", json!([1])),
            json!({"jsonrpc":"2.0","method":"a.b","params":[1]})
        );
    }
}
