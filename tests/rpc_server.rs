#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The RPC server over real loopback sockets, with a real cookie file:
//! Core's reply shapes (compared byte for byte), batches, notifications,
//! authentication, HTTP limits, shutdown; and the client against it.

use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use data_encoding::BASE64;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use nightjar::rpc::client::{ClientError, RpcClient};
use nightjar::rpc::cookie::read_cookie;
use nightjar::rpc::server::{RpcServer, RpcStartError, serve};
use nightjar::rpc::{DEFAULT_MAX_BODY, DEFAULT_REQUEST_TIMEOUT, RpcSettings, codes};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[path = "support/rpc_double.rs"]
mod rpc_double;

use rpc_double::TestDispatch;

/// A server on 127.0.0.1 with its cookie in `<tmp>/regtest/.cookie`.
struct Fixture {
    server: RpcServer,
    dispatch: Arc<TestDispatch>,
    dir: TempDir,
}

impl Fixture {
    async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    async fn start_with(tweak: impl FnOnce(&mut RpcSettings)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut settings = RpcSettings {
            binds: vec![SocketAddr::from((Ipv4Addr::LOCALHOST, 0))],
            cookie_file: dir.path().join("regtest").join(".cookie"),
            max_body: DEFAULT_MAX_BODY,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
        };
        tweak(&mut settings);
        let dispatch = Arc::new(TestDispatch::default());
        let server = serve(settings, Arc::clone(&dispatch)).await.unwrap();
        Fixture {
            server,
            dispatch,
            dir,
        }
    }

    fn addr(&self) -> SocketAddr {
        self.server.local_addrs()[0]
    }

    fn auth(&self) -> String {
        let (user, password) = read_cookie(self.server.cookie_file()).unwrap();
        format!(
            "Basic {}",
            BASE64.encode(format!("{user}:{password}").as_bytes())
        )
    }

    async fn post(&self, body: &str) -> HttpReply {
        post(self.addr(), Some(&self.auth()), "/", body).await
    }
}

/// What came back over the wire.
#[derive(Debug)]
struct HttpReply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl HttpReply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap()
    }
}

/// Sends raw bytes and reads until the server closes the connection.
async fn raw(addr: SocketAddr, request: &[u8]) -> HttpReply {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut bytes = Vec::new();
    stream.read_to_end(&mut bytes).await.unwrap();
    parse_reply(&bytes)
}

fn parse_reply(bytes: &[u8]) -> HttpReply {
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").expect("a complete HTTP reply");
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let status = status_line.split(' ').nth(1).unwrap().parse().unwrap();
    let headers = lines
        .map(|l| {
            let (n, v) = l.split_once(':').unwrap();
            (n.trim().to_owned(), v.trim().to_owned())
        })
        .collect();
    HttpReply {
        status,
        headers,
        body: body.to_owned(),
    }
}

/// A POST with `Connection: close`.
async fn post(addr: SocketAddr, auth: Option<&str>, path: &str, body: &str) -> HttpReply {
    let auth = auth.map_or(String::new(), |a| format!("Authorization: {a}\r\n"));
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    raw(addr, request.as_bytes()).await
}

#[tokio::test]
async fn legacy_replies_match_core_byte_for_byte() {
    let f = Fixture::start().await;
    let cases = [
        (
            r#"{"version":"1.1","method":"echo","params":[1,"a"],"id":1}"#,
            200,
            "{\"result\":[1,\"a\"],\"error\":null,\"id\":1}\n",
        ),
        (
            r#"{"method":"err","id":"x"}"#,
            500,
            "{\"result\":null,\"error\":{\"code\":-8,\"message\":\"bad param\"},\"id\":\"x\"}\n",
        ),
        (
            r#"{"method":"nosuch","params":[],"id":2}"#,
            404,
            "{\"result\":null,\"error\":{\"code\":-32601,\"message\":\"Method not found\"},\"id\":2}\n",
        ),
        // No id in the request: none in the reply (Core 28+).
        (
            r#"{"method":"echo"}"#,
            200,
            "{\"result\":[],\"error\":null}\n",
        ),
        (
            r#"{"jsonrpc":"1.0","method":"string","id":null}"#,
            200,
            "{\"result\":\"hello world\",\"error\":null,\"id\":null}\n",
        ),
        (
            r#"{"method":"null","id":7}"#,
            200,
            "{\"result\":null,\"error\":null,\"id\":7}\n",
        ),
        (
            r#"{"id":3}"#,
            400,
            "{\"result\":null,\"error\":{\"code\":-32600,\"message\":\"Missing method\"},\"id\":3}\n",
        ),
        (
            r#"{"method":"echo","params":"x","id":4}"#,
            400,
            "{\"result\":null,\"error\":{\"code\":-32600,\"message\":\"Params must be an array or object\"},\"id\":4}\n",
        ),
    ];
    for (request, status, reply) in cases {
        let r = f.post(request).await;
        assert_eq!(
            (r.status, r.body.as_str()),
            (status, reply),
            "request {request}"
        );
        assert_eq!(r.header("content-type"), Some("application/json"));
    }
}

#[tokio::test]
async fn json_rpc_2_replies_are_strict_and_http_200() {
    let f = Fixture::start().await;
    let cases = [
        (
            r#"{"jsonrpc":"2.0","method":"echo","params":{"a":1},"id":"q"}"#,
            200,
            "{\"jsonrpc\":\"2.0\",\"result\":{\"a\":1},\"id\":\"q\"}\n",
        ),
        (
            r#"{"jsonrpc":"2.0","method":"err","id":5}"#,
            200,
            "{\"jsonrpc\":\"2.0\",\"error\":{\"code\":-8,\"message\":\"bad param\"},\"id\":5}\n",
        ),
        (
            r#"{"jsonrpc":"2.0","method":"nosuch","id":null}"#,
            200,
            "{\"jsonrpc\":\"2.0\",\"error\":{\"code\":-32601,\"message\":\"Method not found\"},\"id\":null}\n",
        ),
        // A malformed request is still an HTTP error, as in Core.
        (
            r#"{"jsonrpc":"2.0","params":[],"id":6}"#,
            400,
            "{\"jsonrpc\":\"2.0\",\"error\":{\"code\":-32600,\"message\":\"Missing method\"},\"id\":6}\n",
        ),
        (
            r#"{"jsonrpc":"3.0","method":"echo"}"#,
            400,
            "{\"result\":null,\"error\":{\"code\":-32600,\"message\":\"JSON-RPC version not supported\"}}\n",
        ),
        (
            r#"{"jsonrpc":2,"method":"echo","id":1}"#,
            400,
            "{\"result\":null,\"error\":{\"code\":-32600,\"message\":\"jsonrpc field must be a string\"},\"id\":1}\n",
        ),
    ];
    for (request, status, reply) in cases {
        let r = f.post(request).await;
        assert_eq!(
            (r.status, r.body.as_str()),
            (status, reply),
            "request {request}"
        );
    }
    // Named parameters reach the method as such.
    let r = f
        .post(r#"{"jsonrpc":"2.0","method":"echo","params":{"b":[1],"a":"x"},"id":1}"#)
        .await;
    assert_eq!(r.json()["result"], json!({"a": "x", "b": [1]}));
}

#[tokio::test]
async fn notifications_run_but_get_no_reply() {
    let f = Fixture::start().await;
    let r = f.post(r#"{"jsonrpc":"2.0","method":"count"}"#).await;
    assert_eq!(r.status, 204);
    assert_eq!(r.body, "");
    assert_eq!(r.header("content-type"), None);
    // Even a failing notification stays silent.
    let r = f
        .post(r#"{"jsonrpc":"2.0","method":"err","params":[]}"#)
        .await;
    assert_eq!((r.status, r.body.as_str()), (204, ""));
    assert_eq!(f.dispatch.counted.load(Ordering::SeqCst), 1);
    // A legacy request without id is not a notification.
    let r = f.post(r#"{"method":"count"}"#).await;
    assert_eq!(r.body, "{\"result\":2,\"error\":null}\n");
}

#[tokio::test]
async fn unparsable_bodies_are_parse_errors() {
    let f = Fixture::start().await;
    let parse_error =
        "{\"result\":null,\"error\":{\"code\":-32700,\"message\":\"Parse error\"},\"id\":null}\n";
    for body in ["this is bad", "", "{\"method\":", "{} {}"] {
        let r = f.post(body).await;
        assert_eq!(
            (r.status, r.body.as_str()),
            (500, parse_error),
            "body {body:?}"
        );
    }
    let r = f.post("5").await;
    assert_eq!(r.status, 500);
    assert_eq!(
        r.body,
        "{\"result\":null,\"error\":{\"code\":-32700,\"message\":\"Top-level object parse error\"},\"id\":null}\n"
    );
}

#[tokio::test]
async fn batches_answer_each_element_by_its_own_rules() {
    let f = Fixture::start().await;
    let batch = r#"[
        {"jsonrpc":"2.0","method":"string","id":1},
        {"method":"err","id":2},
        {"jsonrpc":"2.0","method":"count"},
        17,
        {"jsonrpc":"2.0","method":"nosuch","id":3},
        {"jsonrpc":"2.0","id":4},
        {"jsonrpc":"2.0"},
        {"method":"count","id":5}
    ]"#;
    let r = f.post(batch).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(
        r.body,
        concat!(
            "[",
            r#"{"jsonrpc":"2.0","result":"hello world","id":1},"#,
            r#"{"result":null,"error":{"code":-8,"message":"bad param"},"id":2},"#,
            r#"{"result":null,"error":{"code":-32600,"message":"Invalid Request object"},"id":null},"#,
            r#"{"jsonrpc":"2.0","error":{"code":-32601,"message":"Method not found"},"id":3},"#,
            r#"{"jsonrpc":"2.0","error":{"code":-32600,"message":"Missing method"},"id":4},"#,
            // The notification ran first: the calls run in order.
            r#"{"result":2,"error":null,"id":5}"#,
            "]\n"
        )
    );

    let r = f
        .post(r#"[{"jsonrpc":"2.0","method":"count"},{"jsonrpc":"2.0","method":"err"}]"#)
        .await;
    assert_eq!((r.status, r.body.as_str()), (204, ""));
    assert_eq!(f.dispatch.counted.load(Ordering::SeqCst), 3);

    // Core answers an empty batch with an empty array (see jsonrpc.rs).
    let r = f.post("[]").await;
    assert_eq!((r.status, r.body.as_str()), (200, "[]\n"));
}

#[tokio::test]
async fn wrong_or_missing_credentials_get_401() {
    let f = Fixture::start().await;
    let body = r#"{"method":"string","id":1}"#;

    let r = post(f.addr(), None, "/", body).await;
    assert_eq!(r.status, 401);
    assert_eq!(
        r.header("www-authenticate"),
        Some("Basic realm=\"jsonrpc\"")
    );
    assert_eq!(r.body, "");

    let (user, password) = read_cookie(f.server.cookie_file()).unwrap();
    let mut wrong = password.clone();
    wrong.replace_range(0..1, if password.starts_with('a') { "b" } else { "a" });
    for credentials in [
        format!(
            "Basic {}",
            BASE64.encode(format!("{user}:{wrong}").as_bytes())
        ),
        format!(
            "Basic {}",
            BASE64.encode(format!("admin:{password}").as_bytes())
        ),
        format!("Bearer {password}"),
        "Basic not-base64!".to_owned(),
    ] {
        let started = Instant::now();
        let r = post(f.addr(), Some(&credentials), "/", body).await;
        assert_eq!(r.status, 401, "{credentials}");
        assert_eq!(
            r.header("www-authenticate"),
            Some("Basic realm=\"jsonrpc\"")
        );
        assert!(
            started.elapsed() >= Duration::from_millis(240),
            "a wrong guess must be slowed down"
        );
    }

    let r = post(f.addr(), Some(&f.auth()), "/", body).await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn only_post_is_served_on_any_path() {
    let f = Fixture::start().await;
    for auth in [Some(f.auth()), None] {
        let auth = auth.map_or(String::new(), |a| format!("Authorization: {a}\r\n"));
        let request = format!("GET / HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n");
        let r = raw(f.addr(), request.as_bytes()).await;
        assert_eq!(r.status, 405);
        assert_eq!(r.body, "JSONRPC server handles only POST requests");
    }
    let r = post(
        f.addr(),
        Some(&f.auth()),
        "/wallet/somewallet",
        r#"{"method":"string","id":1}"#,
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["result"], "hello world");
}

#[tokio::test]
async fn bodies_over_the_limit_get_413() {
    let f = Fixture::start_with(|s| s.max_body = 1024).await;
    let small = r#"{"jsonrpc":"2.0","method":"string","id":1}"#;

    // Exactly at the limit: served.
    let at_limit = format!("{small}{}", " ".repeat(1024 - small.len()));
    assert_eq!(f.post(&at_limit).await.status, 200);
    let over = format!("{at_limit} ");
    let r = f.post(&over).await;
    assert_eq!(r.status, 413);
    assert_eq!(r.header("connection"), Some("close"));

    // A declared length is refused before any of the body is sent.
    let started = Instant::now();
    let request = format!(
        "POST / HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\nContent-Length: 100000000\r\n\r\n",
        f.auth()
    );
    let r = raw(f.addr(), request.as_bytes()).await;
    assert_eq!(r.status, 413);
    assert!(started.elapsed() < Duration::from_secs(5));

    // A chunked body is cut off once it grows too large.
    let chunk = " ".repeat(2000);
    let request = format!(
        "POST / HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{chunk}\r\n0\r\n\r\n",
        f.auth(),
        chunk.len()
    );
    let r = raw(f.addr(), request.as_bytes()).await;
    assert_eq!(r.status, 413);
}

#[tokio::test]
async fn slow_requests_are_cut_off() {
    let limit = Duration::from_millis(500);
    let f = Fixture::start_with(|s| s.request_timeout = limit).await;

    // A body that never completes: 408 and the connection is closed.
    let started = Instant::now();
    let mut stream = TcpStream::connect(f.addr()).await.unwrap();
    let head = format!(
        "POST / HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\nContent-Length: 100\r\n\r\n{{\"method\"",
        f.auth()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut bytes = Vec::new();
    stream.read_to_end(&mut bytes).await.unwrap();
    let elapsed = started.elapsed();
    let r = parse_reply(&bytes);
    assert_eq!(r.status, 408);
    assert!(elapsed >= Duration::from_millis(450), "{elapsed:?}");
    assert!(elapsed < limit * 6, "{elapsed:?}");

    // Headers that never complete: the connection is closed.
    let started = Instant::now();
    let mut stream = TcpStream::connect(f.addr()).await.unwrap();
    stream
        .write_all(b"POST / HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut bytes = Vec::new();
    let _ = stream.read_to_end(&mut bytes).await;
    assert!(started.elapsed() < limit * 6, "{:?}", started.elapsed());

    // A call that runs too long: 408.
    let r = f
        .post(r#"{"jsonrpc":"2.0","method":"sleep","params":[3000],"id":1}"#)
        .await;
    assert_eq!(r.status, 408);
}

/// Reads one reply from a keep-alive connection (by its Content-Length).
async fn read_one_reply(stream: &mut TcpStream) -> HttpReply {
    let mut bytes = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&bytes[..end]).to_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse().unwrap());
            if bytes.len() >= end + 4 + length {
                return parse_reply(&bytes[..end + 4 + length]);
            }
        }
        let n = stream.read(&mut buf).await.unwrap();
        assert!(n > 0, "connection closed before a full reply");
        bytes.extend_from_slice(&buf[..n]);
    }
}

#[tokio::test]
async fn the_time_limit_counts_from_the_first_byte() {
    let limit = Duration::from_millis(1000);
    let f = Fixture::start_with(|s| s.request_timeout = limit).await;

    // Slow headers, then a body that never completes: the 408 comes a limit
    // after the first byte, not a limit after the headers were complete.
    let started = Instant::now();
    let mut stream = TcpStream::connect(f.addr()).await.unwrap();
    stream
        .write_all(b"POST / HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    let rest = format!(
        "Authorization: {}\r\nContent-Length: 100\r\n\r\n{{",
        f.auth()
    );
    stream.write_all(rest.as_bytes()).await.unwrap();
    let mut bytes = Vec::new();
    stream.read_to_end(&mut bytes).await.unwrap();
    let elapsed = started.elapsed();
    assert_eq!(parse_reply(&bytes).status, 408);
    assert!(elapsed >= Duration::from_millis(950), "{elapsed:?}");
    assert!(elapsed < Duration::from_millis(1450), "{elapsed:?}");

    // On a keep-alive connection, the clock of the next request starts at
    // its own first byte, not at a late read of the previous body.
    let mut stream = TcpStream::connect(f.addr()).await.unwrap();
    let body = r#"{"jsonrpc":"2.0","method":"string","id":1}"#;
    let head = format!(
        "POST / HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\nContent-Length: {}\r\n\r\n",
        f.auth(),
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    stream.write_all(body.as_bytes()).await.unwrap();
    assert_eq!(read_one_reply(&mut stream).await.status, 200);
    tokio::time::sleep(Duration::from_millis(600)).await;
    let body = r#"{"jsonrpc":"2.0","method":"sleep","params":[700],"id":2}"#;
    let request = format!(
        "POST / HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\nContent-Length: {}\r\n\r\n{body}",
        f.auth(),
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let r = read_one_reply(&mut stream).await;
    assert_eq!(
        (r.status, r.json()["result"].clone()),
        (200, json!("slept"))
    );
}

#[tokio::test]
async fn keep_alive_connections_serve_several_requests() {
    let f = Fixture::start_with(|s| s.request_timeout = Duration::from_secs(2)).await;
    let stream = TcpStream::connect(f.addr()).await.unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(connection);
    for round in 0..3 {
        if round > 0 {
            // Idle between requests, but less than the limit.
            tokio::time::sleep(Duration::from_millis(700)).await;
        }
        sender.ready().await.unwrap();
        let request = hyper::Request::builder()
            .method("POST")
            .uri("/")
            .header("host", "x")
            .header("authorization", f.auth())
            .body(Full::new(Bytes::from_static(
                br#"{"jsonrpc":"2.0","method":"count","id":1}"#,
            )))
            .unwrap();
        let response = sender.send_request(request).await.unwrap();
        assert_eq!(response.status(), 200);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let reply: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(reply["result"], json!(round + 1));
    }
}

#[tokio::test]
async fn the_cookie_is_private_and_removed_at_shutdown() {
    let f = Fixture::start().await;
    let path: PathBuf = f.dir.path().join("regtest").join(".cookie");
    assert_eq!(f.server.cookie_file(), path);
    let meta = std::fs::metadata(&path).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let contents = std::fs::read_to_string(&path).unwrap();
    assert_eq!(contents.len(), 75);
    let hex = contents.strip_prefix("__cookie__:").unwrap();
    assert_eq!(hex.len(), 64);
    assert!(
        hex.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    );

    let addr = f.addr();
    f.server.shutdown().await;
    assert!(!path.exists(), "the cookie must be removed at shutdown");
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "nothing listens after shutdown"
    );
}

#[tokio::test]
async fn shutdown_lets_requests_in_flight_finish() {
    let f = Fixture::start().await;
    let addr = f.addr();
    let auth = f.auth();
    let in_flight = tokio::spawn(async move {
        post(
            addr,
            Some(&auth),
            "/",
            r#"{"jsonrpc":"2.0","method":"sleep","params":[400],"id":1}"#,
        )
        .await
    });
    tokio::time::sleep(Duration::from_millis(150)).await;
    f.server.shutdown().await;
    let r = in_flight.await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["result"], "slept");
}

#[tokio::test]
async fn a_second_server_on_a_taken_port_fails_clearly() {
    let f = Fixture::start().await;
    let before = std::fs::read_to_string(f.server.cookie_file()).unwrap();
    let settings = RpcSettings {
        binds: vec![f.addr()],
        cookie_file: f.server.cookie_file().to_path_buf(),
        max_body: DEFAULT_MAX_BODY,
        request_timeout: DEFAULT_REQUEST_TIMEOUT,
    };
    let err = serve(settings, Arc::new(TestDispatch::default()))
        .await
        .unwrap_err();
    assert!(matches!(err, RpcStartError::Bind { addr, .. } if addr == f.addr()));
    let message = err.to_string();
    assert!(message.contains(&f.addr().to_string()), "{message}");
    assert!(message.contains("already in use"), "{message}");
    // The running server's cookie was not touched, and it still answers.
    assert_eq!(
        std::fs::read_to_string(f.server.cookie_file()).unwrap(),
        before
    );
    assert_eq!(f.post(r#"{"method":"string","id":1}"#).await.status, 200);
}

#[tokio::test]
async fn listens_on_every_bind_address() {
    let probe = std::net::TcpListener::bind("[::1]:0");
    if probe.is_err() {
        eprintln!("skipping: no IPv6 loopback here");
        return;
    }
    drop(probe);
    let f = Fixture::start_with(|s| {
        s.binds = vec!["127.0.0.1:0".parse().unwrap(), "[::1]:0".parse().unwrap()];
    })
    .await;
    let addrs = f.server.local_addrs().to_vec();
    assert_eq!(addrs.len(), 2);
    assert!(addrs[0].is_ipv4() && addrs[1].is_ipv6());
    for addr in addrs {
        assert_ne!(addr.port(), 0);
        let r = post(addr, Some(&f.auth()), "/", r#"{"method":"string","id":1}"#).await;
        assert_eq!(r.status, 200, "{addr}");
    }
    assert!(matches!(
        serve(
            RpcSettings {
                binds: vec![],
                cookie_file: f.dir.path().join("other"),
                max_body: DEFAULT_MAX_BODY,
                request_timeout: DEFAULT_REQUEST_TIMEOUT,
            },
            Arc::new(TestDispatch::default()),
        )
        .await,
        Err(RpcStartError::NoBindAddress)
    ));
}

#[tokio::test]
async fn a_panicking_method_is_an_internal_error() {
    let f = Fixture::start().await;
    let r = f.post(r#"{"jsonrpc":"2.0","method":"panic","id":1}"#).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["error"]["code"], json!(codes::INTERNAL_ERROR));
    assert_eq!(f.post(r#"{"method":"string","id":1}"#).await.status, 200);
}

#[tokio::test]
async fn the_client_tells_failures_apart() {
    let f = Fixture::start().await;
    let (user, password) = read_cookie(f.server.cookie_file()).unwrap();
    let client = RpcClient::new(f.addr(), &user, &password);
    assert_eq!(
        client.call("string", json!([])).await.unwrap(),
        json!("hello world")
    );
    assert_eq!(
        client.call("echo", json!([1, "a"])).await.unwrap(),
        json!([1, "a"])
    );
    assert_eq!(
        client.call("echo", json!({"k": true})).await.unwrap(),
        json!({"k": true})
    );
    assert_eq!(client.call("null", Value::Null).await.unwrap(), Value::Null);
    match client.call("err", json!([])).await {
        Err(ClientError::Rpc(e)) => {
            assert_eq!(
                (e.code, e.message.as_str()),
                (codes::INVALID_PARAMETER, "bad param")
            );
        }
        other => panic!("{other:?}"),
    }
    match client.call("nosuch", json!([])).await {
        Err(ClientError::Rpc(e)) => assert_eq!(e.code, codes::METHOD_NOT_FOUND),
        other => panic!("{other:?}"),
    }

    let wrong = RpcClient::new(f.addr().to_string(), &user, "wrong");
    assert!(matches!(
        wrong.call("string", json!([])).await,
        Err(ClientError::Unauthorized)
    ));

    let slow =
        RpcClient::new(f.addr(), &user, &password).with_timeout(Some(Duration::from_millis(100)));
    assert!(matches!(
        slow.call("sleep", json!([1000])).await,
        Err(ClientError::Timeout(_))
    ));

    let addr = f.addr();
    f.server.shutdown().await;
    match client.call("string", json!([])).await {
        Err(ClientError::Connect { addr: a, source }) => {
            assert_eq!(a, addr.to_string());
            assert_eq!(source.kind(), std::io::ErrorKind::ConnectionRefused);
        }
        other => panic!("{other:?}"),
    }
}

/// Issue 16, D1: idle connections cannot lock clients out. Far more idle
/// connections than the server keeps are held open, without credentials;
/// a real call still gets through at once, and the oldest idle ones were
/// closed to make room.
#[tokio::test]
async fn idle_connections_cannot_lock_clients_out() {
    let fx = Fixture::start().await;
    let mut idle = Vec::new();
    for _ in 0..300 {
        idle.push(TcpStream::connect(fx.addr()).await.unwrap());
    }
    let started = Instant::now();
    let reply = tokio::time::timeout(
        Duration::from_secs(10),
        fx.post(r#"{"method":"string","params":[],"id":1}"#),
    )
    .await
    .expect("a call gets through");
    assert_eq!(reply.status, 200, "{reply:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    // The very first idle connection was closed by the server.
    let mut buf = [0u8; 1];
    let read = tokio::time::timeout(Duration::from_secs(5), idle[0].read(&mut buf))
        .await
        .expect("the oldest idle connection is closed, not left hanging");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
}

/// Issue 16, item 5: a connection that never sends a byte is closed long
/// before the request timeout, even when no one else needs its slot; one
/// that speaks after a short pause is served as usual.
#[tokio::test]
async fn silent_connections_are_closed_early() {
    let fx = Fixture::start_with(|s| s.request_timeout = Duration::from_secs(120)).await;
    let mut silent = TcpStream::connect(fx.addr()).await.unwrap();
    let mut buf = [0u8; 1];
    let read = tokio::time::timeout(Duration::from_secs(60), silent.read(&mut buf))
        .await
        .expect("a silent connection is closed well before the 120 s request timeout");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");

    let mut slow = TcpStream::connect(fx.addr()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let body = r#"{"method":"string","params":[],"id":1}"#;
    let request = format!(
        "POST / HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        fx.auth(),
        body.len()
    );
    slow.write_all(request.as_bytes()).await.unwrap();
    let reply = read_one_reply(&mut slow).await;
    assert_eq!(reply.status, 200, "{reply:?}");
}

/// Issue 16, item 5: a batch over the limit is refused whole, before any
/// call runs; a batch at the limit is answered in full.
#[tokio::test]
async fn batches_over_the_limit_are_refused_whole() {
    let f = Fixture::start().await;
    let call = r#"{"jsonrpc":"2.0","method":"count","id":1}"#;
    let too_many = format!("[{}]", vec![call; 1001].join(","));
    let r = f.post(&too_many).await;
    assert_eq!(r.status, 400, "{}", r.body);
    let error = &r.json()["error"];
    assert_eq!(error["code"], codes::INVALID_REQUEST);
    let message = error["message"].as_str().unwrap();
    assert!(
        message.contains("1001") && message.contains("1000"),
        "{message}"
    );
    assert_eq!(f.dispatch.counted.load(Ordering::SeqCst), 0, "no call ran");

    let at_limit = format!("[{}]", vec![call; 1000].join(","));
    let r = f.post(&at_limit).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json().as_array().map(Vec::len), Some(1000));
    assert_eq!(f.dispatch.counted.load(Ordering::SeqCst), 1000);
}
