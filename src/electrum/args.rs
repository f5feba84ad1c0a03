//! Typed parameters: each reader names the parameter in its error, so a
//! client author sees which argument was wrong.

use bitcoin::Txid;
use serde_json::Value;

use super::jsonrpc::{Params, RpcError};
use crate::wallet::scripthash::ScriptHash;

impl Params {
    /// A required parameter.
    fn required(&self, index: usize, name: &str) -> Result<&Value, RpcError> {
        self.get(index, name)
            .ok_or_else(|| RpcError::invalid_params(format!("missing parameter {name}")))
    }

    /// A non-negative integer that fits in 32 bits, or `None` when absent.
    pub(crate) fn opt_u32(&self, index: usize, name: &str) -> Result<Option<u32>, RpcError> {
        self.get(index, name).map(|v| as_u32(v, name)).transpose()
    }

    /// A required non-negative integer that fits in 32 bits.
    pub(crate) fn u32(&self, index: usize, name: &str) -> Result<u32, RpcError> {
        as_u32(self.required(index, name)?, name)
    }

    /// A boolean, `default` when absent.
    pub(crate) fn bool_or(
        &self,
        index: usize,
        name: &str,
        default: bool,
    ) -> Result<bool, RpcError> {
        match self.get(index, name) {
            None => Ok(default),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(RpcError::invalid_params(format!(
                "{name} must be true or false"
            ))),
        }
    }

    /// A string, or `None` when absent.
    pub(crate) fn opt_str(&self, index: usize, name: &str) -> Result<Option<&str>, RpcError> {
        match self.get(index, name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(RpcError::invalid_params(format!("{name} must be a string"))),
        }
    }

    /// A required string.
    pub(crate) fn str(&self, index: usize, name: &str) -> Result<&str, RpcError> {
        self.opt_str(index, name)?
            .ok_or_else(|| RpcError::invalid_params(format!("missing parameter {name}")))
    }

    /// A script hash in the protocol's form (64 hex digits, reversed).
    pub(crate) fn scripthash(&self, index: usize, name: &str) -> Result<ScriptHash, RpcError> {
        self.str(index, name)?
            .parse()
            .map_err(|e| RpcError::invalid_params(format!("{name}: {e}")))
    }

    /// A transaction hash (64 hex digits, as displayed).
    pub(crate) fn txid(&self, index: usize, name: &str) -> Result<Txid, RpcError> {
        self.str(index, name)?.parse().map_err(|_| {
            RpcError::invalid_params(format!("{name} must be a transaction hash: 64 hex digits"))
        })
    }
}

/// `value` as a height, count or position.
fn as_u32(value: &Value, name: &str) -> Result<u32, RpcError> {
    value
        .as_u64()
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| {
            RpcError::invalid_params(format!("{name} must be a non-negative integer below 2^32"))
        })
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
}
