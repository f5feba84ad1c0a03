//! A minimal Electrum protocol client for tests: newline-delimited
//! JSON-RPC 2.0 over a plain TCP connection, with notifications kept
//! aside for the test to read.

// `#[path]`-included by several test crates: `pub` is how they reach it.
#![allow(
    unreachable_pub,
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use serde_json::{Value, json};

/// One connection to an Electrum server.
pub struct ElectrumClient {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    next_id: u64,
    /// Notifications received while waiting for replies.
    pub notifications: VecDeque<Value>,
}

impl ElectrumClient {
    /// Connect to `addr`.
    pub fn connect(addr: SocketAddr) -> std::io::Result<Self> {
        let stream = TcpStream::connect(addr)?;
        stream.set_read_timeout(Some(Duration::from_secs(120)))?;
        Ok(ElectrumClient {
            reader: BufReader::new(stream.try_clone()?),
            writer: stream,
            next_id: 0,
            notifications: VecDeque::new(),
        })
    }

    /// Call `method`: its result, or the error object.
    pub fn call(&mut self, method: &str, params: Value) -> Result<Value, Value> {
        self.next_id += 1;
        let id = self.next_id;
        let line = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        writeln!(self.writer, "{line}").unwrap();
        loop {
            let msg = self.read();
            if msg.get("id") == Some(&json!(id)) {
                return match msg.get("error") {
                    Some(e) if !e.is_null() => Err(e.clone()),
                    _ => Ok(msg["result"].clone()),
                };
            }
            self.notifications.push_back(msg);
        }
    }

    /// The next message from the server.
    pub fn read(&mut self) -> Value {
        let mut line = String::new();
        let n = self.reader.read_line(&mut line).unwrap();
        assert!(n > 0, "the server closed the connection");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}"))
    }
}
