//! The server over real TCP (and TLS) on 127.0.0.1, with the in-memory
//! backend.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bitcoin::consensus::encode::serialize_hex;
use bitcoin::hashes::{Hash, sha256};
use serde_json::{Value, json};
use tokio::io::{
    AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader,
};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_native_tls::native_tls;

use super::*;
use crate::electrum::backend::{Change, HistoryEntry};
use crate::electrum::jsonrpc::codes;
use crate::electrum::testing::{FakeBackend, chain, sh, tx};
use crate::electrum::tls::{Fingerprint, load_or_create};

/// How long a test waits for anything the server should send promptly.
const PROMPT: Duration = Duration::from_secs(10);

struct Running {
    addr: SocketAddr,
    backend: Arc<FakeBackend>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

async fn start(limits: Limits) -> Running {
    let listener = bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = listener.local_addr().unwrap();
    let backend = Arc::new(FakeBackend::new(10));
    let (stop, stop_rx) = watch::channel(false);
    let task = tokio::spawn(serve(listener, Arc::clone(&backend), limits, stop_rx));
    Running {
        addr,
        backend,
        stop,
        task,
    }
}

/// A client over plain TCP or TLS.
struct Client {
    lines: Box<dyn AsyncBufRead + Unpin + Send>,
    write: Box<dyn AsyncWrite + Unpin + Send>,
}

impl Client {
    async fn connect(addr: SocketAddr) -> Client {
        let (read, write) = TcpStream::connect(addr).await.unwrap().into_split();
        Client {
            lines: Box::new(BufReader::new(read)),
            write: Box::new(write),
        }
    }

    /// A TLS client that accepts the server's self-signed certificate, as
    /// a wallet does on first use, and the certificate's fingerprint.
    async fn connect_tls(addr: SocketAddr) -> Result<(Client, [u8; 32]), native_tls::Error> {
        let stream = tls_handshake(addr).await?;
        let der = stream.get_ref().peer_certificate()?.unwrap().to_der()?;
        let seen = sha256::Hash::hash(&der).to_byte_array();
        let (read, write) = tokio::io::split(stream);
        let client = Client {
            lines: Box::new(BufReader::new(read)),
            write: Box::new(write),
        };
        Ok((client, seen))
    }

    /// A client on an in-memory stream, served by [`serve_client`] as a
    /// connection would be. Nothing outside the runtime moves, so tests
    /// can run it on tokio's paused clock.
    fn in_memory(limits: Limits) -> (Client, Arc<FakeBackend>, watch::Sender<bool>) {
        let (ours, theirs) = tokio::io::duplex(64 * 1024);
        let backend = Arc::new(FakeBackend::new(10));
        let (stop, stop_rx) = watch::channel(false);
        tokio::spawn(serve_client(
            theirs,
            Arc::clone(&backend),
            Arc::new(limits),
            stop_rx,
        ));
        let (read, write) = tokio::io::split(ours);
        let client = Client {
            lines: Box::new(BufReader::new(read)),
            write: Box::new(write),
        };
        (client, backend, stop)
    }

    async fn send_raw(&mut self, text: &str) {
        self.write.write_all(text.as_bytes()).await.unwrap();
    }

    async fn send(&mut self, value: Value) {
        self.send_raw(&format!("{value}\n")).await;
    }

    /// The next line, parsed; `None` at end of stream (or reset).
    async fn recv(&mut self) -> Option<Value> {
        let mut line = String::new();
        match tokio::time::timeout(PROMPT, self.lines.read_line(&mut line)).await {
            Err(_) => panic!("nothing from the server within {PROMPT:?}"),
            Ok(Ok(0)) | Ok(Err(_)) => None,
            Ok(Ok(_)) => {
                assert!(line.ends_with('\n'));
                Some(serde_json::from_str(&line).unwrap())
            }
        }
    }

    async fn call(&mut self, id: u64, method: &str, params: Value) -> Value {
        self.send(json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))
            .await;
        let reply = self.recv().await.expect("a reply");
        assert_eq!(reply["id"], json!(id), "{reply}");
        reply
    }

    async fn assert_closed(&mut self) {
        assert_eq!(self.recv().await, None, "the server should have closed");
    }
}

#[tokio::test]
async fn negotiates_and_answers_a_batch() {
    let server = start(Limits::default()).await;
    let mut c = Client::connect(server.addr).await;
    let v = c
        .call(0, "server.version", json!(["test", ["1.4", "1.4.2"]]))
        .await;
    assert_eq!(v["result"][1], "1.4");
    c.send_raw(
        r#"[{"jsonrpc":"2.0","id":1,"method":"blockchain.headers.subscribe"},{"jsonrpc":"2.0","id":2,"method":"server.ping"}]
"#,
    )
    .await;
    let batch = c.recv().await.unwrap();
    let replies = batch.as_array().unwrap();
    assert_eq!(replies.len(), 2);
    assert_eq!(replies[0]["id"], 1);
    assert_eq!(replies[0]["result"]["height"], 10);
    assert_eq!(replies[1], json!({"jsonrpc":"2.0","id":2,"result":null}));
}

#[tokio::test]
async fn a_version_without_1_4_is_refused_and_closed() {
    let server = start(Limits::default()).await;
    let mut c = Client::connect(server.addr).await;
    let r = c.call(0, "server.version", json!(["old", "1.2"])).await;
    assert_eq!(r["error"]["code"], codes::BAD_REQUEST);
    c.assert_closed().await;
}

#[tokio::test]
async fn subscriptions_are_notified_between_replies() {
    let server = start(Limits::default()).await;
    server.backend.state().history.insert(sh(1), vec![]);
    let mut c = Client::connect(server.addr).await;
    let r = c
        .call(
            1,
            "blockchain.scripthash.subscribe",
            json!([sh(1).to_string()]),
        )
        .await;
    assert_eq!(r["result"], Value::Null);
    c.call(2, "blockchain.headers.subscribe", json!([])).await;

    let txid = tx(1).compute_txid();
    server.backend.state().history.insert(
        sh(1),
        vec![HistoryEntry {
            txid,
            height: 0,
            fee: Some(150),
        }],
    );
    server
        .backend
        .changes
        .send(Change::ScriptHash(sh(1)))
        .unwrap();
    let note = c.recv().await.unwrap();
    let expected = crate::electrum::status::status(&[HistoryEntry {
        txid,
        height: 0,
        fee: None,
    }]);
    assert_eq!(
        note,
        json!({"jsonrpc":"2.0","method":"blockchain.scripthash.subscribe",
               "params":[sh(1).to_string(), expected]})
    );

    let header = chain(12)[11];
    server
        .backend
        .changes
        .send(Change::Tip { height: 11, header })
        .unwrap();
    let note = c.recv().await.unwrap();
    assert_eq!(note["method"], "blockchain.headers.subscribe");
    assert_eq!(note["params"][0]["height"], 11);
    // Still answering after the notifications.
    let r = c.call(3, "server.ping", json!([])).await;
    assert_eq!(r["result"], Value::Null);
}

#[tokio::test]
async fn malformed_json_is_answered_then_too_much_of_it_closes() {
    let limits = Limits {
        max_malformed_lines: 3,
        ..Limits::default()
    };
    let server = start(limits).await;
    let mut c = Client::connect(server.addr).await;
    c.send_raw("this is not json\n").await;
    let r = c.recv().await.unwrap();
    assert_eq!(r["error"]["code"], codes::PARSE_ERROR);
    assert_eq!(r["id"], Value::Null);
    // Blank lines are ignored, and the connection still works.
    c.send_raw("\n\r\n").await;
    let r = c.call(1, "server.ping", json!([])).await;
    assert_eq!(r["result"], Value::Null);
    for _ in 0..2 {
        c.send_raw("{oops\n").await;
        assert_eq!(c.recv().await.unwrap()["error"]["code"], codes::PARSE_ERROR);
    }
    c.assert_closed().await;
}

#[tokio::test]
async fn an_over_long_line_is_refused_and_closed() {
    let limits = Limits {
        max_line_bytes: 1000,
        ..Limits::default()
    };
    let server = start(limits).await;
    let mut c = Client::connect(server.addr).await;
    c.send_raw(&"x".repeat(5000)).await;
    let r = c.recv().await.unwrap();
    assert_eq!(r["error"]["code"], codes::INVALID_REQUEST);
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("1000 bytes")
    );
    c.assert_closed().await;
    // A line of exactly the limit is fine.
    let mut c = Client::connect(server.addr).await;
    let padded = format!("{:<1000}\n", r#"{"id":1,"method":"server.ping"}"#);
    c.send_raw(&padded).await;
    assert_eq!(c.recv().await.unwrap()["result"], Value::Null);
}

#[tokio::test]
async fn many_clients_at_once() {
    let server = start(Limits::default()).await;
    for n in 0..40u8 {
        server.backend.state().history.insert(sh(n), vec![]);
    }
    let mut tasks = Vec::new();
    for n in 0..40u8 {
        let addr = server.addr;
        tasks.push(tokio::spawn(async move {
            let mut c = Client::connect(addr).await;
            let v = c
                .call(0, "server.version", json!([format!("c{n}"), "1.4"]))
                .await;
            assert_eq!(v["result"][1], "1.4");
            let s = c
                .call(
                    1,
                    "blockchain.scripthash.subscribe",
                    json!([sh(n).to_string()]),
                )
                .await;
            assert_eq!(s["result"], Value::Null);
            c
        }));
    }
    let mut clients = Vec::new();
    for t in tasks {
        clients.push(t.await.unwrap());
    }
    // One change reaches the one client subscribed to it.
    server.backend.state().history.insert(
        sh(7),
        vec![HistoryEntry {
            txid: tx(7).compute_txid(),
            height: 3,
            fee: None,
        }],
    );
    server
        .backend
        .changes
        .send(Change::ScriptHash(sh(7)))
        .unwrap();
    let note = clients[7].recv().await.unwrap();
    assert_eq!(note["params"][0], json!(sh(7).to_string()));
    for (n, c) in clients.iter_mut().enumerate() {
        // Each one's next line is the reply to its ping, not a notification.
        let r = c.call(2, "server.ping", json!([])).await;
        assert_eq!(r["result"], Value::Null, "client {n}");
    }
}

#[tokio::test]
async fn clients_beyond_the_maximum_are_refused() {
    let limits = Limits {
        max_clients: 2,
        ..Limits::default()
    };
    let server = start(limits).await;
    let mut a = Client::connect(server.addr).await;
    let mut b = Client::connect(server.addr).await;
    a.call(1, "server.ping", json!([])).await;
    b.call(1, "server.ping", json!([])).await;
    let mut refused = Client::connect(server.addr).await;
    refused.assert_closed().await;
    // A slot frees when a client leaves. The server closes the socket and
    // releases the slot in the same poll of its task, and this runtime has
    // one thread: once `a` sees the close, the slot is free.
    a.write.shutdown().await.unwrap();
    a.assert_closed().await;
    let mut c = Client::connect(server.addr).await;
    let r = c.call(9, "server.ping", json!([])).await;
    assert_eq!(r["result"], Value::Null, "a freed slot should be reused");
}

#[tokio::test(start_paused = true)]
async fn idle_clients_are_dropped() {
    let idle = Duration::from_secs(5);
    let limits = Limits {
        idle_timeout: idle,
        ..Limits::default()
    };
    let (mut c, _backend, _stop) = Client::in_memory(limits);
    // Each request restarts the wait: a client active at half the
    // timeout is never dropped.
    for id in 0..3 {
        c.call(id, "server.ping", json!([])).await;
        tokio::time::sleep(idle / 2).await;
    }
    let last = tokio::time::Instant::now();
    c.call(3, "server.ping", json!([])).await;
    c.assert_closed().await;
    assert!(last.elapsed() >= idle, "{:?}", last.elapsed());
}

#[tokio::test]
async fn shutdown_closes_clients_and_returns() {
    let server = start(Limits::default()).await;
    let mut c = Client::connect(server.addr).await;
    c.call(1, "server.ping", json!([])).await;
    server.stop.send(true).unwrap();
    c.assert_closed().await;
    tokio::time::timeout(PROMPT, server.task)
        .await
        .expect("serve returns")
        .unwrap();
    // The port is released: it can be listened on again.
    bind(server.addr).expect("the port is released");
}

#[tokio::test]
async fn bind_names_the_address_in_use() {
    let first = bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = first.local_addr().unwrap();
    let e = bind(addr).unwrap_err();
    assert_eq!(e.addr, addr);
    let text = e.to_string();
    assert!(text.contains(&addr.to_string()), "{text}");
    assert!(text.contains("already using this port"), "{text}");
}

// ---- TLS ----

struct TlsRunning {
    addr: SocketAddr,
    fingerprint: Fingerprint,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
    _dir: tempfile::TempDir,
}

async fn start_tls(limits: Limits) -> TlsRunning {
    let dir = tempfile::tempdir().unwrap();
    let identity = load_or_create(dir.path()).unwrap();
    let listener = bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = listener.local_addr().unwrap();
    let backend = Arc::new(FakeBackend::new(10));
    let (stop, stop_rx) = watch::channel(false);
    let task = tokio::spawn(serve_tls(
        listener,
        identity.acceptor(),
        backend,
        limits,
        stop_rx,
    ));
    TlsRunning {
        addr,
        fingerprint: identity.fingerprint(),
        stop,
        task,
        _dir: dir,
    }
}

/// The client side of a handshake, trusting any certificate.
async fn tls_handshake(
    addr: SocketAddr,
) -> Result<tokio_native_tls::TlsStream<TcpStream>, native_tls::Error> {
    let connector = native_tls::TlsConnector::builder()
        .danger_accept_invalid_certs(true)
        .build()?;
    let tcp = TcpStream::connect(addr).await.unwrap();
    tokio::time::timeout(
        PROMPT,
        tokio_native_tls::TlsConnector::from(connector).connect("localhost", tcp),
    )
    .await
    .expect("the handshake ends promptly")
}

/// Waits for the server to close a raw connection; how long it took.
async fn closed_after(mut stream: TcpStream, since: std::time::Instant) -> Duration {
    let mut buf = [0u8; 64];
    loop {
        match tokio::time::timeout(PROMPT, stream.read(&mut buf)).await {
            Err(_) => panic!("the server kept a stalled handshake for {PROMPT:?}"),
            Ok(Ok(0)) | Ok(Err(_)) => return since.elapsed(),
            Ok(Ok(_)) => {}
        }
    }
}

#[tokio::test]
async fn tls_serves_the_protocol_with_the_stored_certificate() {
    let server = start_tls(Limits::default()).await;
    let (mut c, seen) = Client::connect_tls(server.addr).await.unwrap();
    assert_eq!(&seen, server.fingerprint.as_bytes());
    let v = c
        .call(0, "server.version", json!(["test", ["1.4", "1.4.2"]]))
        .await;
    assert_eq!(v["result"][1], "1.4");
    let tip = c.call(1, "blockchain.headers.subscribe", json!([])).await;
    assert_eq!(
        tip["result"],
        json!({"height": 10, "hex": serialize_hex(&chain(11)[10])})
    );
    // Garbage instead of a handshake does not hurt the server.
    let mut junk = TcpStream::connect(server.addr).await.unwrap();
    junk.write_all(b"{\"id\":1,\"method\":\"server.ping\"}\n")
        .await
        .unwrap();
    closed_after(junk, std::time::Instant::now()).await;
    let (mut d, _) = Client::connect_tls(server.addr).await.unwrap();
    assert_eq!(
        d.call(2, "server.ping", json!([])).await["result"],
        Value::Null
    );
    assert_eq!(
        c.call(3, "server.ping", json!([])).await["result"],
        Value::Null
    );

    server.stop.send(true).unwrap();
    c.assert_closed().await;
    tokio::time::timeout(PROMPT, server.task)
        .await
        .expect("serve_tls returns")
        .unwrap();
}

#[tokio::test]
async fn a_stalled_handshake_is_dropped_without_blocking_others() {
    let limits = Limits {
        tls_handshake_timeout: Duration::from_millis(400),
        ..Limits::default()
    };
    let server = start_tls(limits).await;
    let since = std::time::Instant::now();
    let stalled = TcpStream::connect(server.addr).await.unwrap();
    // Others are served while it stalls.
    for id in 0..3 {
        let (mut c, _) = Client::connect_tls(server.addr).await.unwrap();
        let v = c.call(id, "server.version", json!(["other", "1.4"])).await;
        assert_eq!(v["result"][1], "1.4");
    }
    let waited = closed_after(stalled, since).await;
    assert!(waited >= Duration::from_millis(350), "{waited:?}");
}

#[tokio::test]
async fn handshakes_hold_a_client_slot() {
    let limits = Limits {
        max_clients: 1,
        tls_handshake_timeout: Duration::from_millis(400),
        ..Limits::default()
    };
    let server = start_tls(limits).await;
    let since = std::time::Instant::now();
    let stalled = TcpStream::connect(server.addr).await.unwrap();
    // The only slot is taken by the stalled handshake.
    assert!(tls_handshake(server.addr).await.is_err());
    closed_after(stalled, since).await;
    // Freed at the timeout: the server drops the stalled socket and its
    // slot in the same poll, and this runtime has one thread.
    let (mut c, _) = Client::connect_tls(server.addr)
        .await
        .expect("the slot should be freed after the handshake timeout");
    let r = c.call(9, "server.ping", json!([])).await;
    assert_eq!(r["result"], Value::Null);
}
