//! The JSON-RPC request parser: `rpc::server::jsonrpc::handle` on an HTTP
//! body, with a dispatcher that echoes the call back.
//!
//! Checked: no panic; a reply with a body is one line of valid JSON (an
//! object, or an array for a batch) ending in a newline; 204 comes without
//! a body and every other status with one.

#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use nightjar::rpc::server::jsonrpc::handle;
use nightjar::rpc::{Dispatch, Params, RpcError, codes};
use serde_json::{Value, json};

/// Answers `fail` with an error and everything else with its own
/// parameters, so both reply shapes are built.
struct Echo;

impl Dispatch for Echo {
    async fn call(&self, method: String, params: Params) -> Result<Value, RpcError> {
        if method == "fail" {
            return Err(RpcError::new(codes::METHOD_NOT_FOUND, "Method not found"));
        }
        Ok(match params {
            Params::Positional(values) => Value::Array(values),
            Params::Named(map) => json!({ "method": method, "named": map }),
        })
    }
}

fuzz_target!(|data: &[u8]| {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    let runtime = RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap_or_else(|e| panic!("no runtime: {e}"))
    });
    let dispatch = Arc::new(Echo);
    let reply = runtime.block_on(handle(data, &dispatch));
    match (reply.status, &reply.body) {
        (204, None) => {}
        (204, Some(_)) => panic!("204 with a body"),
        (status, None) => panic!("status {status} without a body"),
        (_, Some(body)) => {
            let Some(text) = body.strip_suffix('\n') else {
                panic!("reply does not end in a newline");
            };
            assert!(!text.contains('\n'), "reply spans lines");
            match serde_json::from_str::<Value>(text) {
                Ok(Value::Object(_) | Value::Array(_)) => {}
                Ok(other) => panic!("reply is neither object nor array: {other}"),
                Err(e) => panic!("reply is not JSON: {e}"),
            }
        }
    }
});
