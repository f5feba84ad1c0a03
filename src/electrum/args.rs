//! Typed parameters: each reader names the parameter in its error, so a
//! client author sees which argument was wrong.
//!
//! A trait on the RPC server's [`Params`] rather than methods of it: these
//! readers answer with JSON-RPC's `INVALID_PARAMS`, where the RPC server's
//! methods use Bitcoin Core's codes, so they stay the Electrum server's.

use bitcoin::Txid;
use serde_json::Value;

use super::jsonrpc::{Params, RpcError, invalid_params};
use crate::wallet::scripthash::ScriptHash;

/// The Electrum server's readers of a call's parameters.
pub(crate) trait Args {
    /// Refuses parameters beyond `names` (the method's whole signature).
    fn check_known(&self, method: &str, names: &[&str]) -> Result<(), RpcError>;

    /// A non-negative integer that fits in 32 bits, or `None` when absent.
    fn opt_u32(&self, index: usize, name: &str) -> Result<Option<u32>, RpcError>;

    /// A required non-negative integer that fits in 32 bits.
    fn u32(&self, index: usize, name: &str) -> Result<u32, RpcError>;

    /// A boolean, `default` when absent.
    fn bool_or(&self, index: usize, name: &str, default: bool) -> Result<bool, RpcError>;

    /// A string, or `None` when absent.
    fn opt_str(&self, index: usize, name: &str) -> Result<Option<&str>, RpcError>;

    /// A required string.
    fn str(&self, index: usize, name: &str) -> Result<&str, RpcError>;

    /// A script hash in the protocol's form (64 hex digits, reversed).
    fn scripthash(&self, index: usize, name: &str) -> Result<ScriptHash, RpcError>;

    /// A transaction hash (64 hex digits, as displayed).
    fn txid(&self, index: usize, name: &str) -> Result<Txid, RpcError>;
}

impl Args for Params {
    fn check_known(&self, method: &str, names: &[&str]) -> Result<(), RpcError> {
        match self {
            Params::Positional(values) if values.len() > names.len() => {
                Err(invalid_params(format!(
                    "{method} takes at most {} parameter{} ({}), got {}",
                    names.len(),
                    if names.len() == 1 { "" } else { "s" },
                    names.join(", "),
                    values.len()
                )))
            }
            Params::Named(map) => match map.keys().find(|k| !names.contains(&k.as_str())) {
                Some(unknown) => Err(invalid_params(format!(
                    "{method} has no parameter named {unknown:?}"
                ))),
                None => Ok(()),
            },
            Params::Positional(_) => Ok(()),
        }
    }

    fn opt_u32(&self, index: usize, name: &str) -> Result<Option<u32>, RpcError> {
        self.get(index, name).map(|v| as_u32(v, name)).transpose()
    }

    fn u32(&self, index: usize, name: &str) -> Result<u32, RpcError> {
        as_u32(required(self, index, name)?, name)
    }

    fn bool_or(&self, index: usize, name: &str, default: bool) -> Result<bool, RpcError> {
        match self.get(index, name) {
            None => Ok(default),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(invalid_params(format!("{name} must be true or false"))),
        }
    }

    fn opt_str(&self, index: usize, name: &str) -> Result<Option<&str>, RpcError> {
        match self.get(index, name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(invalid_params(format!("{name} must be a string"))),
        }
    }

    fn str(&self, index: usize, name: &str) -> Result<&str, RpcError> {
        self.opt_str(index, name)?
            .ok_or_else(|| invalid_params(format!("missing parameter {name}")))
    }

    fn scripthash(&self, index: usize, name: &str) -> Result<ScriptHash, RpcError> {
        self.str(index, name)?
            .parse()
            .map_err(|e| invalid_params(format!("{name}: {e}")))
    }

    fn txid(&self, index: usize, name: &str) -> Result<Txid, RpcError> {
        self.str(index, name)?.parse().map_err(|_| {
            invalid_params(format!("{name} must be a transaction hash: 64 hex digits"))
        })
    }
}

/// A required parameter.
fn required<'a>(params: &'a Params, index: usize, name: &str) -> Result<&'a Value, RpcError> {
    params
        .get(index, name)
        .ok_or_else(|| invalid_params(format!("missing parameter {name}")))
}

/// `value` as a height, count or position.
fn as_u32(value: &Value, name: &str) -> Result<u32, RpcError> {
    value
        .as_u64()
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| invalid_params(format!("{name} must be a non-negative integer below 2^32")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::electrum::jsonrpc::codes;
    use serde_json::json;

    fn positional(v: Value) -> Params {
        Params::Positional(v.as_array().unwrap().clone())
    }

    #[test]
    fn integers_must_be_non_negative_and_fit() {
        let p = positional(json!([5, -1, 4294967296u64, "5", 1.5]));
        assert_eq!(p.u32(0, "height"), Ok(5));
        for i in 1..5 {
            let e = p.u32(i, "height").unwrap_err();
            assert_eq!(e.code, codes::INVALID_PARAMS);
            assert!(e.message.starts_with("height "), "{}", e.message);
        }
        assert_eq!(p.opt_u32(9, "cp_height"), Ok(None));
        assert_eq!(
            p.u32(9, "count").unwrap_err().message,
            "missing parameter count"
        );
    }

    #[test]
    fn booleans_strings_and_hashes() {
        let p = positional(json!([true, 1, "ab", "zz"]));
        assert_eq!(p.bool_or(0, "verbose", false), Ok(true));
        assert_eq!(p.bool_or(5, "verbose", false), Ok(false));
        assert!(p.bool_or(1, "verbose", false).is_err());
        assert_eq!(p.str(2, "raw_tx"), Ok("ab"));
        assert!(p.str(1, "raw_tx").unwrap_err().message.contains("raw_tx"));
        let e = p.scripthash(3, "scripthash").unwrap_err();
        assert!(e.message.starts_with("scripthash: "), "{}", e.message);
        let e = p.txid(3, "tx_hash").unwrap_err();
        assert!(e.message.starts_with("tx_hash "), "{}", e.message);
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
}
