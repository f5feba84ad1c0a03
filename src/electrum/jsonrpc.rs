//! JSON-RPC 2.0 envelopes as the Electrum protocol uses them: one JSON
//! value per line, a request object or a batch (array) of them; replies
//! always say `"jsonrpc":"2.0"`; a request without `id` is a notification
//! and gets no reply. Clients that leave `jsonrpc` out (1.0 style) are
//! served the same way rather than refused.

use serde_json::{Map, Value, json};

use super::backend::BackendError;

/// Error codes: JSON-RPC's own, and ElectrumX's two application codes
/// (which Electrum clients expect for refused requests).
pub(crate) mod codes {
    /// The line is not JSON.
    pub(crate) const PARSE_ERROR: i64 = -32700;
    /// JSON, but not a request object.
    pub(crate) const INVALID_REQUEST: i64 = -32600;
    /// No such method.
    pub(crate) const METHOD_NOT_FOUND: i64 = -32601;
    /// A parameter is missing or of the wrong kind.
    pub(crate) const INVALID_PARAMS: i64 = -32602;
    /// The request is understood but cannot be served (ElectrumX's
    /// `BAD_REQUEST`).
    pub(crate) const BAD_REQUEST: i64 = 1;
    /// The node behind the server failed (ElectrumX's `DAEMON_ERROR`).
    pub(crate) const DAEMON_ERROR: i64 = 2;
}

/// An error reply's `code` and `message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RpcError {
    /// One of [`codes`].
    pub(crate) code: i64,
    /// For the user: Electrum shows it as is.
    pub(crate) message: String,
}

impl RpcError {
    /// An error with this code and message.
    pub(crate) fn new(code: i64, message: impl Into<String>) -> Self {
        RpcError {
            code,
            message: message.into(),
        }
    }

    /// A parameter problem; the message names the parameter.
    pub(crate) fn invalid_params(message: impl Into<String>) -> Self {
        Self::new(codes::INVALID_PARAMS, message)
    }

    /// A request that cannot be served as asked.
    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(codes::BAD_REQUEST, message)
    }

    /// The JSON-RPC error object.
    fn to_json(&self) -> Value {
        json!({"code": self.code, "message": self.message})
    }
}

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

/// A call's parameters, by position or by name.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Params {
    /// `"params": [...]` (or no `params` at all).
    Positional(Vec<Value>),
    /// `"params": {...}`, names as the protocol documents them.
    Named(Map<String, Value>),
}

impl Params {
    /// The parameter at `index`, or named `name`; `None` when absent or
    /// `null` (both mean "use the default").
    pub(crate) fn get(&self, index: usize, name: &str) -> Option<&Value> {
        let value = match self {
            Params::Positional(values) => values.get(index),
            Params::Named(map) => map.get(name),
        };
        value.filter(|v| !v.is_null())
    }

    /// Refuses parameters beyond `names` (the method's whole signature).
    pub(crate) fn check_known(&self, method: &str, names: &[&str]) -> Result<(), RpcError> {
        match self {
            Params::Positional(values) if values.len() > names.len() => {
                Err(RpcError::invalid_params(format!(
                    "{method} takes at most {} parameter{} ({}), got {}",
                    names.len(),
                    if names.len() == 1 { "" } else { "s" },
                    names.join(", "),
                    values.len()
                )))
            }
            Params::Named(map) => match map.keys().find(|k| !names.contains(&k.as_str())) {
                Some(unknown) => Err(RpcError::invalid_params(format!(
                    "{method} has no parameter named {unknown:?}"
                ))),
                None => Ok(()),
            },
            Params::Positional(_) => Ok(()),
        }
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
        Err(e) => json!({"jsonrpc": "2.0", "id": id, "error": e.to_json()}),
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
    fn named_and_positional_params_and_their_limits() {
        let named = Params::Named(json!({"height": 5}).as_object().unwrap().clone());
        assert_eq!(named.get(0, "height"), Some(&json!(5)));
        assert_eq!(named.get(1, "cp_height"), None);
        assert!(named.check_known("m", &["height", "cp_height"]).is_ok());
        let e = named.check_known("m", &["cp_height"]).unwrap_err();
        assert!(e.message.contains("\"height\""), "{}", e.message);

        let positional = Params::Positional(vec![json!(1), Value::Null]);
        assert_eq!(positional.get(1, "x"), None, "null means default");
        let e = positional.check_known("server.ping", &[]).unwrap_err();
        assert_eq!(e.code, codes::INVALID_PARAMS);
        assert!(
            e.message.contains("server.ping takes at most 0"),
            "{}",
            e.message
        );
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
            reply(json!(1), Err(RpcError::bad_request("no"))),
            json!({"jsonrpc":"2.0","id":1,"error":{"code":1,"message":"no"}})
        );
        assert_eq!(
            notification("a.b", json!([1])),
            json!({"jsonrpc":"2.0","method":"a.b","params":[1]})
        );
    }
}
