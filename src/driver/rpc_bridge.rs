//! Carries RPC calls from the HTTP server into the engine task, where they
//! are answered against the engine's state, and the replies back.

use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use crate::rpc::{Dispatch, Params, RpcError, codes};

/// Calls that may wait for the engine task.
pub const RPC_QUEUE: usize = 32;

/// One call on its way to the engine task.
#[derive(Debug)]
pub struct RpcCall {
    /// The method.
    pub method: String,
    /// Its parameters.
    pub params: Params,
    /// Where the answer goes.
    pub reply: oneshot::Sender<Result<Value, RpcError>>,
}

/// The server's [`Dispatch`]: forwards every call to the engine task.
#[derive(Debug, Clone)]
pub struct NodeRpc {
    calls: mpsc::Sender<RpcCall>,
}

impl NodeRpc {
    /// A bridge and the receiving end for [`crate::driver::run`].
    pub fn new() -> (NodeRpc, mpsc::Receiver<RpcCall>) {
        let (calls, rx) = mpsc::channel(RPC_QUEUE);
        (NodeRpc { calls }, rx)
    }
}

impl Dispatch for NodeRpc {
    async fn call(&self, method: String, params: Params) -> Result<Value, RpcError> {
        let (reply, answer) = oneshot::channel();
        let gone = || {
            RpcError::new(
                codes::IN_WARMUP,
                "nightjar is starting or stopping; try again",
            )
        };
        self.calls
            .send(RpcCall {
                method,
                params,
                reply,
            })
            .await
            .map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }
}
