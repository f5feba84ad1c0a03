//! One line in, at most one line out: the JSON-RPC envelope around
//! [`Session::call`], batches included. Kept apart from the socket code so
//! it can be tested without one.

use serde_json::Value;

use super::backend::Backend;
use super::jsonrpc::{Incoming, RpcError, codes, parse_call, parse_line, reply};
use super::methods::Session;

/// What a line led to.
#[derive(Debug, PartialEq)]
pub(crate) struct Handled {
    /// The reply line (without its newline); `None` when the line held
    /// only notifications.
    pub(crate) reply: Option<String>,
    /// The line was not JSON (the server closes after too many such).
    pub(crate) malformed: bool,
}

/// Answers one line: a request or a batch of at most `max_batch`.
pub(crate) async fn handle_line<B: Backend>(
    session: &mut Session,
    backend: &B,
    line: &[u8],
    max_batch: usize,
) -> Handled {
    let reply = match parse_line(line) {
        Err(e) => {
            return Handled {
                malformed: e.code == codes::PARSE_ERROR,
                reply: Some(to_line(&reply(Value::Null, Err(e)))),
            };
        }
        Ok(Incoming::Single(value)) => one(session, backend, value).await,
        Ok(Incoming::Batch(values)) if values.len() > max_batch => Some(reply(
            Value::Null,
            Err(RpcError::new(
                codes::INVALID_REQUEST,
                format!(
                    "a batch of {} requests is too large: at most {max_batch}",
                    values.len()
                ),
            )),
        )),
        Ok(Incoming::Batch(values)) => {
            let mut replies = Vec::with_capacity(values.len());
            for value in values {
                replies.extend(one(session, backend, value).await);
            }
            // A batch of notifications only is answered with nothing.
            (!replies.is_empty()).then_some(Value::Array(replies))
        }
    };
    Handled {
        reply: reply.as_ref().map(to_line),
        malformed: false,
    }
}

/// The reply to one request object; `None` for a notification.
async fn one<B: Backend>(session: &mut Session, backend: &B, value: Value) -> Option<Value> {
    let call = match parse_call(value) {
        Ok(call) => call,
        Err((id, e)) => return Some(reply(id, Err(e))),
    };
    let outcome = session.call(backend, &call.method, &call.params).await;
    Some(reply(call.id?, outcome))
}

/// A value as one line of JSON. Serializing a `Value` cannot fail (its
/// keys are strings); should it ever, the client gets an internal error
/// rather than nothing.
pub(crate) fn to_line(value: &Value) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| {
        format!(
            r#"{{"jsonrpc":"2.0","id":null,"error":{{"code":{},"message":"internal error"}}}}"#,
            codes::INTERNAL_ERROR
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::electrum::testing::FakeBackend;
    use serde_json::json;

    async fn run(line: &str, max_batch: usize) -> (Option<Value>, bool) {
        let b = FakeBackend::new(3);
        let mut s = Session::new(10);
        let h = handle_line(&mut s, &b, line.as_bytes(), max_batch).await;
        let reply = h.reply.map(|r| {
            assert!(!r.contains('\n'), "one line: {r}");
            serde_json::from_str(&r).unwrap()
        });
        (reply, h.malformed)
    }

    #[tokio::test]
    async fn a_single_request() {
        let (r, bad) = run(r#"{"jsonrpc":"2.0","id":4,"method":"server.ping"}"#, 10).await;
        assert_eq!(r, Some(json!({"jsonrpc":"2.0","id":4,"result":null})));
        assert!(!bad);
    }

    #[tokio::test]
    async fn a_batch_is_answered_in_order_without_its_notifications() {
        let line = r#"[{"id":1,"method":"server.ping"},
                       {"method":"server.ping"},
                       {"id":"b","method":"nope"},
                       7,
                       {"id":3,"method":"blockchain.estimatefee","params":[2]}]"#
            .replace('\n', "");
        let (r, _) = run(&line, 10).await;
        let r = r.unwrap();
        let replies = r.as_array().unwrap();
        assert_eq!(replies.len(), 4);
        assert_eq!(replies[0], json!({"jsonrpc":"2.0","id":1,"result":null}));
        assert_eq!(replies[1]["id"], "b");
        assert_eq!(replies[1]["error"]["code"], codes::METHOD_NOT_FOUND);
        assert_eq!(replies[2]["id"], Value::Null);
        assert_eq!(replies[2]["error"]["code"], codes::INVALID_REQUEST);
        assert_eq!(replies[3], json!({"jsonrpc":"2.0","id":3,"result":-1}));
    }

    #[tokio::test]
    async fn notifications_only_get_no_reply() {
        assert_eq!(run(r#"{"method":"server.ping"}"#, 10).await, (None, false));
        assert_eq!(
            run(r#"[{"method":"server.ping"}]"#, 10).await,
            (None, false)
        );
    }

    #[tokio::test]
    async fn malformed_lines_and_oversized_batches() {
        let (r, bad) = run("{\"id\":1,", 10).await;
        assert!(bad);
        assert_eq!(r.unwrap()["error"]["code"], codes::PARSE_ERROR);
        let (r, bad) = run("[]", 10).await;
        assert!(!bad);
        assert_eq!(r.unwrap()["error"]["code"], codes::INVALID_REQUEST);
        let (r, _) = run(
            r#"[{"id":1,"method":"server.ping"},{"id":2,"method":"server.ping"}]"#,
            1,
        )
        .await;
        let r = r.unwrap();
        assert_eq!(r["error"]["code"], codes::INVALID_REQUEST);
        assert!(
            r["error"]["message"]
                .as_str()
                .unwrap()
                .contains("at most 1")
        );
    }
}
