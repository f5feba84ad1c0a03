//! The JSON-RPC interface, the way Bitcoin Core speaks it, so `bitcoin-cli`,
//! python-bitcoinlib and dashboards work unchanged.
//!
//! - [`server`]: HTTP/1.1 on loopback by default, basic auth against a cookie
//!   file ([`cookie`]), JSON-RPC 1.0-style replies unless the request says
//!   `"jsonrpc": "2.0"`, batches, body-size and time limits.
//! - [`methods`]: what each method answers, from the node's state.
//! - [`client`]: the HTTP client side, for `nightjar-cli`.
//!
//! The server knows nothing of the node: it hands each call to a
//! [`Dispatch`] implementation.

pub mod client;
pub mod cookie;
pub mod descriptors;
pub mod methods;
pub mod server;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Map, Value};

/// Largest request body accepted (Core has no fixed limit; a batch of a few
/// thousand calls fits easily, a memory-exhaustion attempt does not).
pub const DEFAULT_MAX_BODY: usize = 1024 * 1024;

/// How long one HTTP request may take from its first byte to the reply
/// being written (slow clients cannot hold a connection open forever).
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Methods whose answer is fetched from peers, over Tor: a scan of the
/// whole chain takes minutes. [`DEFAULT_REQUEST_TIMEOUT`] bounds reading
/// their request, not their answer (the node gives up on them itself).
pub const UNTIMED_METHODS: &[&str] = &["scanblocks", "getblock", "getblockfilter"];

/// Core's RPC error codes (`src/rpc/protocol.h`), the ones we use.
pub mod codes {
    /// Invalid JSON was received.
    pub const PARSE_ERROR: i64 = -32700;
    /// The JSON is not a valid request object.
    pub const INVALID_REQUEST: i64 = -32600;
    /// No such method.
    pub const METHOD_NOT_FOUND: i64 = -32601;
    /// Invalid method parameters.
    pub const INVALID_PARAMS: i64 = -32602;
    /// Internal error.
    pub const INTERNAL_ERROR: i64 = -32603;
    /// Unspecified error (`RPC_MISC_ERROR`).
    pub const MISC_ERROR: i64 = -1;
    /// Unexpected type passed as parameter (`RPC_TYPE_ERROR`).
    pub const TYPE_ERROR: i64 = -3;
    /// `RPC_INVALID_ADDRESS_OR_KEY`, which Core also uses for an unknown
    /// block.
    pub const INVALID_ADDRESS_OR_KEY: i64 = -5;
    /// Invalid, missing or duplicate parameter (`RPC_INVALID_PARAMETER`).
    pub const INVALID_PARAMETER: i64 = -8;
    /// Node is already added (`RPC_CLIENT_NODE_ALREADY_ADDED`).
    pub const NODE_ALREADY_ADDED: i64 = -23;
    /// Node has not been added before (`RPC_CLIENT_NODE_NOT_ADDED`).
    pub const NODE_NOT_ADDED: i64 = -24;
    /// Node to disconnect not found in connected nodes (`RPC_CLIENT_NODE_NOT_CONNECTED`).
    pub const NODE_NOT_CONNECTED: i64 = -29;
    /// Invalid IP/subnet (`RPC_CLIENT_INVALID_IP_OR_SUBNET`).
    pub const INVALID_IP_OR_SUBNET: i64 = -30;
    /// Still starting up (`RPC_IN_WARMUP`).
    pub const IN_WARMUP: i64 = -28;
    /// A transaction that cannot be decoded (`RPC_DESERIALIZATION_ERROR`).
    pub const DESERIALIZATION_ERROR: i64 = -22;
    /// A transaction refused for what the user asked (`RPC_TRANSACTION_ERROR`,
    /// alias `RPC_VERIFY_ERROR`), e.g. `maxburnamount` exceeded.
    pub const VERIFY_ERROR: i64 = -25;
    /// A transaction refused by the network rules or policy
    /// (`RPC_TRANSACTION_REJECTED`, alias `RPC_VERIFY_REJECTED`).
    pub const VERIFY_REJECTED: i64 = -26;
}

/// A JSON-RPC error: Core's code and a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} (code {code})")]
pub struct RpcError {
    /// The code (see [`codes`]).
    pub code: i64,
    /// What went wrong, for the user.
    pub message: String,
}

impl RpcError {
    /// An error with this code and message.
    pub fn new(code: i64, message: impl Into<String>) -> Self {
        RpcError {
            code,
            message: message.into(),
        }
    }
}

/// A call's parameters, as the client sent them.
#[derive(Debug, Clone, PartialEq)]
pub enum Params {
    /// `"params": [..]` (or none).
    Positional(Vec<Value>),
    /// `"params": {..}` (bitcoin-cli `-named`).
    Named(Map<String, Value>),
}

impl Params {
    /// The parameter at `index` (positional) or called `name` (named);
    /// `None` when absent or JSON `null`.
    pub fn get(&self, index: usize, name: &str) -> Option<&Value> {
        let v = match self {
            Params::Positional(v) => v.get(index),
            Params::Named(m) => m.get(name),
        };
        v.filter(|v| !v.is_null())
    }

    /// How many parameters were given.
    pub fn len(&self) -> usize {
        match self {
            Params::Positional(v) => v.len(),
            Params::Named(m) => m.len(),
        }
    }

    /// Whether none were given.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What answers calls: the node (see [`methods`]), or a test double.
pub trait Dispatch: Send + Sync + 'static {
    /// Run `method` with `params`.
    fn call(
        &self,
        method: String,
        params: Params,
    ) -> impl Future<Output = Result<Value, RpcError>> + Send;
}

/// Where and how the server listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpcSettings {
    /// Addresses to listen on (`rpcbind` with `rpcport`); loopback by default.
    pub binds: Vec<SocketAddr>,
    /// The cookie file (`rpccookiefile`): created at start with mode 0600,
    /// removed at clean exit.
    pub cookie_file: PathBuf,
    /// Largest request body.
    pub max_body: usize,
    /// Time limit per request.
    pub request_timeout: Duration,
}

/// Core's default RPC port for a chain (clients assume these).
pub fn default_rpc_port(network: bitcoin::Network) -> u16 {
    match network {
        bitcoin::Network::Bitcoin => 8332,
        bitcoin::Network::Testnet => 18332,
        bitcoin::Network::Testnet4 => 48332,
        bitcoin::Network::Signet => 38332,
        _ => 18443,
    }
}
