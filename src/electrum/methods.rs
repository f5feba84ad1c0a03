//! The protocol's methods, answered for one client session: which
//! version it negotiated and what it subscribed to, plus the dispatch from
//! method names to [`chain`], [`wallet`] and [`transaction`]. No sockets
//! here: [`super::server`] feeds it calls and changes.

mod chain;
mod transaction;
mod wallet;

#[cfg(test)]
mod tests;

use std::collections::HashMap;

use bitcoin::BlockHash;
use bitcoin::block::Header;
use serde_json::{Value, json};

use super::args::Args;
use super::backend::{Backend, Change};
use super::jsonrpc::{Params, RpcError, bad_request, codes, invalid_params, notification};
use super::status::status;
use crate::wallet::scripthash::ScriptHash;

/// The only protocol version spoken.
pub(crate) const PROTOCOL_VERSION: &str = "1.4";

/// The server's name in `server.version` and `server.features`.
pub(crate) fn server_software() -> String {
    format!("nightjar {}", env!("CARGO_PKG_VERSION"))
}

/// Method name of header notifications.
const HEADERS_SUBSCRIBE: &str = "blockchain.headers.subscribe";
/// Method name of script hash notifications.
const SCRIPTHASH_SUBSCRIBE: &str = "blockchain.scripthash.subscribe";

/// One client's state.
#[derive(Debug)]
pub(crate) struct Session {
    /// `server.version` was answered (only the first is accepted).
    version_done: bool,
    /// The connection must close once the current reply is written.
    close: bool,
    /// Subscribed to headers: the hash of the last tip sent, so a repeated
    /// [`Change::Tip`] is not sent twice.
    headers: Option<BlockHash>,
    /// Subscribed script hashes and the status last sent for each.
    scripthashes: HashMap<ScriptHash, Option<String>>,
    /// Most script hashes one session may subscribe to.
    max_subscriptions: usize,
}

impl Session {
    /// A new session allowing `max_subscriptions` script hashes.
    pub(crate) fn new(max_subscriptions: usize) -> Self {
        Session {
            version_done: false,
            close: false,
            headers: None,
            scripthashes: HashMap::new(),
            max_subscriptions,
        }
    }

    /// Whether the connection must close after the reply just produced
    /// (a failed version negotiation).
    pub(crate) fn wants_close(&self) -> bool {
        self.close
    }

    /// Answers one call.
    pub(crate) async fn call<B: Backend>(
        &mut self,
        backend: &B,
        method: &str,
        params: &Params,
    ) -> Result<Value, RpcError> {
        match method {
            "server.version" => self.version(params),
            "server.banner" => no_params(method, params, json!(banner())),
            "server.donation_address" => no_params(method, params, json!("")),
            "server.ping" => no_params(method, params, Value::Null),
            // Peer discovery would tell strangers about this server; real
            // clients still call it, so the answer is "no peers".
            "server.peers.subscribe" => no_params(method, params, json!([])),
            "server.features" => no_params(method, params, features(backend)),
            "blockchain.headers.subscribe" => {
                params.check_known(method, &[])?;
                let (height, header) = backend.tip().await?;
                self.headers = Some(header.block_hash());
                Ok(chain::tip_json(height, &header))
            }
            "blockchain.block.header" => chain::header(backend, params).await,
            "blockchain.block.headers" => chain::headers(backend, params).await,
            "blockchain.scripthash.get_history" => wallet::get_history(backend, params).await,
            "blockchain.scripthash.get_balance" => wallet::get_balance(backend, params).await,
            "blockchain.scripthash.get_mempool" => wallet::get_mempool(backend, params).await,
            "blockchain.scripthash.listunspent" => wallet::listunspent(backend, params).await,
            "blockchain.scripthash.subscribe" => self.subscribe(backend, params).await,
            "blockchain.scripthash.unsubscribe" => {
                let sh = wallet::only_scripthash(method, params)?;
                Ok(json!(self.scripthashes.remove(&sh).is_some()))
            }
            "blockchain.transaction.get" => transaction::get(backend, params).await,
            "blockchain.transaction.get_merkle" => transaction::get_merkle(backend, params).await,
            "blockchain.transaction.id_from_pos" => transaction::id_from_pos(backend, params).await,
            "blockchain.transaction.broadcast" => transaction::broadcast(backend, params).await,
            "blockchain.estimatefee" => {
                params.check_known(method, &["number"])?;
                params.u32(0, "number")?;
                // Without a mempool there is nothing to estimate from; -1
                // is the protocol's "no estimate", and wallets then ask
                // the user or use their own fallback.
                Ok(json!(-1))
            }
            // Core's default minimum relay fee, in BTC per kilobyte.
            "blockchain.relayfee" => no_params(method, params, json!(0.00001)),
            "mempool.get_fee_histogram" => no_params(method, params, json!([])),
            _ => Err(RpcError::new(
                codes::METHOD_NOT_FOUND,
                format!("unknown method {method:?}"),
            )),
        }
    }

    /// `server.version(client_name="", protocol_version="1.4")`.
    fn version(&mut self, params: &Params) -> Result<Value, RpcError> {
        if self.version_done {
            return Err(bad_request("server.version already sent"));
        }
        // Later protocol versions may add parameters: extra ones are
        // ignored, as the protocol asks.
        let _client_name = params.opt_str(0, "client_name")?;
        let (min, max) = match params.get(1, "protocol_version") {
            None => (PROTOCOL_VERSION.to_owned(), PROTOCOL_VERSION.to_owned()),
            Some(Value::String(v)) => (v.clone(), v.clone()),
            Some(Value::Array(pair)) => match pair.as_slice() {
                [Value::String(min), Value::String(max)] => (min.clone(), max.clone()),
                _ => return Err(bad_protocol_version()),
            },
            Some(_) => return Err(bad_protocol_version()),
        };
        let (Some(min_n), Some(max_n), Some(ours)) = (
            version_number(&min),
            version_number(&max),
            version_number(PROTOCOL_VERSION),
        ) else {
            return Err(bad_protocol_version());
        };
        self.version_done = true;
        if !(min_n <= ours && ours <= max_n) {
            // No version in common: the protocol says to close.
            self.close = true;
            return Err(bad_request(format!(
                "unsupported protocol version: the client speaks {min} to {max}, \
                 nightjar speaks {PROTOCOL_VERSION} only"
            )));
        }
        Ok(json!([server_software(), PROTOCOL_VERSION]))
    }

    /// `blockchain.scripthash.subscribe(scripthash)`.
    async fn subscribe<B: Backend>(
        &mut self,
        backend: &B,
        params: &Params,
    ) -> Result<Value, RpcError> {
        let sh = wallet::only_scripthash(SCRIPTHASH_SUBSCRIBE, params)?;
        if !self.scripthashes.contains_key(&sh) && self.scripthashes.len() >= self.max_subscriptions
        {
            return Err(bad_request(format!(
                "subscription limit reached: at most {} script hashes per connection",
                self.max_subscriptions
            )));
        }
        let current = status(&wallet::history(backend, sh).await?);
        self.scripthashes.insert(sh, current.clone());
        Ok(json!(current))
    }

    /// The notification a change calls for, if any: a new tip for a
    /// headers subscriber, a new status for a subscribed script hash.
    pub(crate) async fn on_change<B: Backend>(
        &mut self,
        backend: &B,
        change: Change,
    ) -> Option<Value> {
        match change {
            Change::Tip { height, header } => self.tip_changed(height, &header),
            Change::ScriptHash(sh) => self.recheck(backend, sh).await,
        }
    }

    /// Changes were missed (the client's task fell behind): re-checks
    /// every subscription.
    pub(crate) async fn on_missed_changes<B: Backend>(&mut self, backend: &B) -> Vec<Value> {
        let mut out = Vec::new();
        if self.headers.is_some() {
            match backend.tip().await {
                Ok((height, header)) => out.extend(self.tip_changed(height, &header)),
                Err(e) => tracing::debug!(error = %e, "Electrum: tip unavailable for a re-check"),
            }
        }
        let subscribed: Vec<ScriptHash> = self.scripthashes.keys().copied().collect();
        for sh in subscribed {
            out.extend(self.recheck(backend, sh).await);
        }
        out
    }

    /// A header notification if subscribed and the tip is new to the client.
    fn tip_changed(&mut self, height: u32, header: &Header) -> Option<Value> {
        let last = self.headers.as_mut()?;
        let hash = header.block_hash();
        if *last == hash {
            return None;
        }
        *last = hash;
        Some(notification(
            HEADERS_SUBSCRIBE,
            json!([chain::tip_json(height, header)]),
        ))
    }

    /// A status notification if `sh` is subscribed and its status moved.
    async fn recheck<B: Backend>(&mut self, backend: &B, sh: ScriptHash) -> Option<Value> {
        if !self.scripthashes.contains_key(&sh) {
            return None;
        }
        let now = match wallet::history(backend, sh).await {
            Ok(history) => status(&history),
            Err(e) => {
                // Left as it was: the next change re-checks it.
                tracing::debug!(error = %e.message, "Electrum: could not re-check a subscription");
                return None;
            }
        };
        let last = self.scripthashes.get_mut(&sh)?;
        if *last == now {
            return None;
        }
        *last = now.clone();
        Some(notification(
            SCRIPTHASH_SUBSCRIBE,
            json!([sh.to_string(), now]),
        ))
    }
}

/// `result` for a method without parameters.
fn no_params(method: &str, params: &Params, result: Value) -> Result<Value, RpcError> {
    params.check_known(method, &[])?;
    Ok(result)
}

/// What `server.banner` says.
fn banner() -> String {
    format!(
        "{}: your own node over Tor, serving your own wallets only",
        server_software()
    )
}

/// `server.features`.
fn features<B: Backend>(backend: &B) -> Value {
    json!({
        "genesis_hash": backend.genesis_hash().to_string(),
        // Advertising hosts would invite peer discovery; this server is
        // for its owner.
        "hosts": {},
        "protocol_min": PROTOCOL_VERSION,
        "protocol_max": PROTOCOL_VERSION,
        "pruning": null,
        "server_version": server_software(),
        "hash_function": "sha256",
    })
}

/// A version string's numbers ("1.4.2" is [1, 4, 2]); `None` unless it is
/// dotted numbers.
fn version_number(v: &str) -> Option<Vec<u32>> {
    v.split('.').map(|part| part.parse().ok()).collect()
}

/// The error for a malformed `protocol_version`.
fn bad_protocol_version() -> RpcError {
    invalid_params(
        "protocol_version must be a version string such as \"1.4\" or a [min, max] pair of them",
    )
}
