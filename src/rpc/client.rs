//! A minimal JSON-RPC client for nightjar's (or Bitcoin Core's) RPC server:
//! HTTP/1.1 with Basic auth, one connection per call, JSON-RPC 2.0 requests
//! as `bitcoin-cli` 28+ sends them.
//!
//! Its errors keep apart the cases a user must act on differently: nothing
//! is listening ([`ClientError::Connect`]), the credentials are wrong
//! ([`ClientError::Unauthorized`]), the method failed ([`ClientError::Rpc`]),
//! and the server said something that is not a JSON-RPC reply.

use std::fmt;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use data_encoding::BASE64;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::header::{AUTHORIZATION, CONNECTION, CONTENT_TYPE, HOST, HeaderValue};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use zeroize::Zeroizing;

use super::RpcError;

/// Largest reply read (a generous bound: replies are JSON about the node,
/// not block data, and a confused server must not exhaust memory).
const MAX_REPLY: usize = 64 * 1024 * 1024;

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing accepted the connection: the daemon is not running, or is
    /// listening elsewhere.
    #[error("could not connect to {addr}: {source}")]
    Connect {
        /// The address tried (`host:port`).
        addr: String,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// The server refused the credentials (HTTP 401).
    #[error("the server refused the credentials (HTTP 401)")]
    Unauthorized,
    /// The method ran and failed, or the server rejected the request; the
    /// code and message are the server's.
    #[error("{0}")]
    Rpc(RpcError),
    /// The server answered with an HTTP error and no JSON-RPC reply (for
    /// example 405, 413 or 503).
    #[error("the server returned HTTP error {status}{}", fmt_body(.body))]
    Http {
        /// The HTTP status.
        status: u16,
        /// The body, if any (trimmed).
        body: String,
    },
    /// The connection failed after it was made (reset, closed early).
    #[error("the connection to the server failed: {0}")]
    Transport(String),
    /// No reply within the time limit.
    #[error("no reply from the server within {0:?}")]
    Timeout(Duration),
    /// The reply was not a JSON-RPC reply.
    #[error("malformed reply from the server: {0}")]
    Malformed(String),
}

/// `: <body>` when there is a body.
fn fmt_body(body: &str) -> String {
    if body.is_empty() {
        String::new()
    } else {
        format!(": {body}")
    }
}

/// A JSON-RPC client for one server and one set of credentials.
pub struct RpcClient {
    /// `host:port`, also sent as the `Host` header.
    addr: String,
    /// `Basic <base64(user:password)>`.
    authorization: Zeroizing<String>,
    /// Time limit per call (`None`: wait forever).
    timeout: Option<Duration>,
    /// The next request id (ids only need to tell replies apart).
    next_id: AtomicU64,
}

impl fmt::Debug for RpcClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RpcClient")
            .field("addr", &self.addr)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl RpcClient {
    /// A client for the server at `addr` (a `SocketAddr`, or a `host:port`
    /// string: names are resolved at each call), authenticating as `user`
    /// with `password`. There is no time limit until
    /// [`RpcClient::with_timeout`] sets one.
    pub fn new(addr: impl fmt::Display, user: &str, password: &str) -> Self {
        let credentials = Zeroizing::new(format!("{user}:{password}"));
        let authorization =
            Zeroizing::new(format!("Basic {}", BASE64.encode(credentials.as_bytes())));
        RpcClient {
            addr: addr.to_string(),
            authorization,
            timeout: None,
            next_id: AtomicU64::new(1),
        }
    }

    /// Sets the time limit of each call, connection included (`None`: none).
    pub fn with_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.timeout = timeout;
        self
    }

    /// The server's address, as given.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Calls `method` with `params` (an array, an object for named
    /// parameters, or `null` for none) and returns its result.
    pub async fn call(&self, method: &str, params: Value) -> Result<Value, ClientError> {
        match self.timeout {
            Some(limit) => tokio::time::timeout(limit, self.call_once(method, params))
                .await
                .map_err(|_| ClientError::Timeout(limit))?,
            None => self.call_once(method, params).await,
        }
    }

    /// One request on a fresh connection.
    async fn call_once(&self, method: &str, params: Value) -> Result<Value, ClientError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let body = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        let request = self.request(body.to_string())?;

        let stream =
            TcpStream::connect(&self.addr)
                .await
                .map_err(|source| ClientError::Connect {
                    addr: self.addr.clone(),
                    source,
                })?;
        let _ = stream.set_nodelay(true);
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| ClientError::Transport(e.to_string()))?;
        // The connection must be driven while the request is in flight; it
        // ends by itself once the reply is read (we sent `Connection: close`).
        let driver = tokio::spawn(connection);
        let outcome = exchange(&mut sender, request, id).await;
        driver.abort();
        outcome
    }

    /// The HTTP request for a JSON body.
    fn request(&self, body: String) -> Result<Request<Full<Bytes>>, ClientError> {
        let mut request = Request::new(Full::new(Bytes::from(body)));
        *request.method_mut() = Method::POST;
        let headers = request.headers_mut();
        let host = HeaderValue::from_str(&self.addr).map_err(|_| {
            ClientError::Transport(format!("invalid server address {:?}", self.addr))
        })?;
        headers.insert(HOST, host);
        let mut authorization = HeaderValue::from_str(&self.authorization).map_err(|_| {
            ClientError::Transport("the credentials contain invalid characters".to_owned())
        })?;
        authorization.set_sensitive(true);
        headers.insert(AUTHORIZATION, authorization);
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(CONNECTION, HeaderValue::from_static("close"));
        Ok(request)
    }
}

/// Sends the request and interprets the reply.
async fn exchange(
    sender: &mut hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    request: Request<Full<Bytes>>,
    id: u64,
) -> Result<Value, ClientError> {
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| ClientError::Transport(e.to_string()))?;
    let status = response.status();
    if status == StatusCode::UNAUTHORIZED {
        return Err(ClientError::Unauthorized);
    }
    let body = http_body_util::Limited::new(response.into_body(), MAX_REPLY)
        .collect()
        .await
        .map_err(|e| ClientError::Transport(e.to_string()))?
        .to_bytes();
    interpret(status, &body, id)
}

/// Reads a reply body: a JSON-RPC error wins whatever the HTTP status
/// (legacy servers send errors with 404/500, 2.0 servers with 200); other
/// HTTP errors are reported with their status.
fn interpret(status: StatusCode, body: &[u8], id: u64) -> Result<Value, ClientError> {
    let http_error = || ClientError::Http {
        status: status.as_u16(),
        body: String::from_utf8_lossy(body)
            .trim()
            .chars()
            .take(500)
            .collect(),
    };
    if body.is_empty() {
        return Err(if status.is_success() {
            ClientError::Malformed("no response from server".to_owned())
        } else {
            http_error()
        });
    }
    let Ok(Value::Object(mut reply)) = serde_json::from_slice::<Value>(body) else {
        return Err(if status.is_success() {
            ClientError::Malformed("couldn't parse reply from server".to_owned())
        } else {
            http_error()
        });
    };
    match reply.remove("error") {
        None | Some(Value::Null) => {}
        Some(error) => return Err(rpc_error(error)),
    }
    if !status.is_success() {
        return Err(http_error());
    }
    if let Some(reply_id) = reply.get("id")
        && reply_id != &Value::from(id)
    {
        return Err(ClientError::Malformed(format!(
            "reply id {reply_id} does not match request id {id}"
        )));
    }
    reply.remove("result").ok_or_else(|| {
        ClientError::Malformed("expected reply to have result, error and id properties".to_owned())
    })
}

/// The `error` member as an [`RpcError`]; an error that is not Core's
/// `{code, message}` object is kept as JSON text with code 0.
fn rpc_error(error: Value) -> ClientError {
    let code = error.get("code").and_then(Value::as_i64);
    let message = error.get("message").and_then(Value::as_str);
    match (code, message) {
        (Some(code), Some(message)) => ClientError::Rpc(RpcError::new(code, message)),
        (Some(code), None) => ClientError::Rpc(RpcError::new(code, String::new())),
        _ => ClientError::Malformed(format!("error member without a code: {error}")),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn replies_are_read_by_their_content_not_just_status() {
        let ok = interpret(StatusCode::OK, br#"{"jsonrpc":"2.0","result":5,"id":3}"#, 3).unwrap();
        assert_eq!(ok, json!(5));
        let legacy =
            interpret(StatusCode::OK, br#"{"result":null,"error":null,"id":3}"#, 3).unwrap();
        assert_eq!(legacy, Value::Null);

        let not_found = interpret(
            StatusCode::NOT_FOUND,
            br#"{"result":null,"error":{"code":-32601,"message":"Method not found"},"id":3}"#,
            3,
        );
        match not_found {
            Err(ClientError::Rpc(e)) => {
                assert_eq!((e.code, e.message.as_str()), (-32601, "Method not found"))
            }
            other => panic!("{other:?}"),
        }
        let v2_error = interpret(
            StatusCode::OK,
            br#"{"jsonrpc":"2.0","error":{"code":-8,"message":"x"},"id":3}"#,
            3,
        );
        assert!(matches!(
            v2_error,
            Err(ClientError::Rpc(RpcError { code: -8, .. }))
        ));

        assert!(matches!(
            interpret(StatusCode::PAYLOAD_TOO_LARGE, b"request body too large", 3),
            Err(ClientError::Http { status: 413, .. })
        ));
        assert!(matches!(
            interpret(StatusCode::OK, b"", 3),
            Err(ClientError::Malformed(_))
        ));
        assert!(matches!(
            interpret(StatusCode::OK, b"[1]", 3),
            Err(ClientError::Malformed(_))
        ));
        assert!(matches!(
            interpret(StatusCode::OK, br#"{"jsonrpc":"2.0","id":3}"#, 3),
            Err(ClientError::Malformed(_))
        ));
        assert!(matches!(
            interpret(StatusCode::OK, br#"{"jsonrpc":"2.0","result":1,"id":4}"#, 3),
            Err(ClientError::Malformed(_))
        ));
    }

    #[test]
    fn debug_hides_the_credentials() {
        let client = RpcClient::new("127.0.0.1:1", "user", "hunter2");
        let shown = format!("{client:?}");
        assert!(!shown.contains("hunter2") && !shown.contains(&BASE64.encode(b"user:hunter2")));
    }
}
