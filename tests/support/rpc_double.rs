//! A stand-in for the node's RPC methods, shared by the server and the
//! `nightjar-cli` tests: each method exercises one reply shape.

// Shared test code: each binary uses part of it.
#![allow(dead_code, unreachable_pub, clippy::panic)]

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use nightjar::rpc::{Dispatch, Params, RpcError, codes};
use serde_json::{Value, json};

/// Answers `echo`, `string`, `null`, `err`, `count`, `sleep`, `panic` and
/// `warmingup`; anything else is "Method not found".
#[derive(Default)]
pub struct TestDispatch {
    /// How many times `count` ran.
    pub counted: AtomicU64,
    /// How many more calls of `warmingup` answer "still warming up".
    pub warmup_left: AtomicU32,
}

impl TestDispatch {
    /// A double whose `warmingup` fails `calls` times before answering.
    pub fn warming_up(calls: u32) -> Self {
        TestDispatch {
            warmup_left: AtomicU32::new(calls),
            ..TestDispatch::default()
        }
    }
}

impl Dispatch for TestDispatch {
    async fn call(&self, method: String, params: Params) -> Result<Value, RpcError> {
        match method.as_str() {
            "echo" => Ok(match params {
                Params::Positional(values) => Value::Array(values),
                Params::Named(map) => Value::Object(map),
            }),
            "string" => Ok(json!("hello world")),
            "null" => Ok(Value::Null),
            "err" => Err(RpcError::new(codes::INVALID_PARAMETER, "bad param")),
            "count" => Ok(json!(self.counted.fetch_add(1, Ordering::SeqCst) + 1)),
            "sleep" => {
                let ms = params.get(0, "ms").and_then(Value::as_u64).unwrap_or(200);
                tokio::time::sleep(Duration::from_millis(ms)).await;
                Ok(json!("slept"))
            }
            "panic" => panic!("test method panics"),
            "warmingup" => {
                let left = self.warmup_left.load(Ordering::SeqCst);
                if left > 0 {
                    self.warmup_left.store(left - 1, Ordering::SeqCst);
                    Err(RpcError::new(codes::IN_WARMUP, "Loading block index..."))
                } else {
                    Ok(json!("ready"))
                }
            }
            _ => Err(RpcError::new(codes::METHOD_NOT_FOUND, "Method not found")),
        }
    }
}
