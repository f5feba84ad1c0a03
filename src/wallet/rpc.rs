//! The wallet index's progress in the node's RPC: Core's `getindexinfo`,
//! with a `"wallet index"` entry (synced, and the height every keychain
//! has been scanned to). Every other call goes on to the node.

use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::shared::WalletShared;
use crate::rpc::{Dispatch, Params, RpcError, codes};

/// The entry's name in `getindexinfo`, beside Core's `txindex` and
/// `basic block filter index`.
pub const INDEX_NAME: &str = "wallet index";

/// [`Dispatch`] that answers `getindexinfo` from the wallet index and
/// passes everything else to `inner`.
#[derive(Debug, Clone)]
pub struct WalletRpc<D> {
    inner: D,
    wallet: Option<Arc<WalletShared>>,
}

impl<D: Dispatch> WalletRpc<D> {
    /// Calls go to `inner`; `wallet` is `None` when no wallet is indexed.
    pub fn new(inner: D, wallet: Option<Arc<WalletShared>>) -> Self {
        WalletRpc { inner, wallet }
    }
}

/// `getindexinfo ( "index_name" )`: the indexes by name, only the named
/// one when given (an unknown name gives `{}`, as in Core).
pub fn index_info(wallet: Option<&WalletShared>, params: &Params) -> Result<Value, RpcError> {
    let wanted = match params.get(0, "index_name") {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => {
            return Err(RpcError::new(
                codes::INVALID_PARAMETER,
                "index_name must be a string",
            ));
        }
    };
    let mut out = Map::new();
    if let Some(w) = wallet
        && wanted.as_deref().is_none_or(|n| n == INDEX_NAME)
    {
        let p = w.progress();
        out.insert(
            INDEX_NAME.to_owned(),
            json!({
                "synced": p.synced,
                "best_block_height": p.scanned_to,
                "target_height": p.target,
            }),
        );
    }
    Ok(Value::Object(out))
}

impl<D: Dispatch> Dispatch for WalletRpc<D> {
    async fn call(&self, method: String, params: Params) -> Result<Value, RpcError> {
        if method == "getindexinfo" {
            return index_info(self.wallet.as_deref(), &params);
        }
        self.inner.call(method, params).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wallet::index::WalletIndex;
    use crate::wallet::shared::SyncProgress;

    #[test]
    fn reports_the_scan_and_filters_by_name() {
        let shared = WalletShared::new(WalletIndex::new());
        shared.set_progress(SyncProgress {
            scanned_to: Some(90),
            target: 120,
            synced: false,
        });
        let all = index_info(Some(&shared), &Params::Positional(vec![])).unwrap();
        assert_eq!(
            all,
            json!({"wallet index": {"synced": false, "best_block_height": 90, "target_height": 120}})
        );
        let named = index_info(
            Some(&shared),
            &Params::Positional(vec![json!("wallet index")]),
        );
        assert_eq!(named.unwrap(), all);
        let other = index_info(Some(&shared), &Params::Positional(vec![json!("txindex")]));
        assert_eq!(other.unwrap(), json!({}));
        assert_eq!(
            index_info(None, &Params::Positional(vec![])).unwrap(),
            json!({})
        );
        assert!(index_info(None, &Params::Positional(vec![json!(3)])).is_err());
    }
}
