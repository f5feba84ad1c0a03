#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The real `nightjar-cli` binary against an in-process RPC server with a
//! cookie in a temporary `-datadir` (`<datadir>/regtest/.cookie`), checked
//! for `bitcoin-cli`'s output and exit statuses.

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nightjar::rpc::cookie::read_cookie;
use nightjar::rpc::server::{RpcServer, serve};
use nightjar::rpc::{DEFAULT_MAX_BODY, DEFAULT_REQUEST_TIMEOUT, RpcSettings};
use tempfile::TempDir;

#[path = "support/rpc_double.rs"]
mod rpc_double;

use rpc_double::TestDispatch;

/// A "daemon": the RPC server with its cookie where nightjar keeps it.
struct Daemon {
    server: RpcServer,
    datadir: TempDir,
}

impl Daemon {
    async fn start() -> Self {
        let datadir = tempfile::tempdir().unwrap();
        let server = start_server(datadir.path(), 0).await;
        Daemon { server, datadir }
    }

    fn port(&self) -> u16 {
        self.server.local_addrs()[0].port()
    }

    /// The options that point nightjar-cli at this daemon, then `extra`.
    fn args(&self, extra: &[&str]) -> Vec<String> {
        let mut args = vec![
            "-regtest".to_owned(),
            format!("-datadir={}", self.datadir.path().display()),
            format!("-rpcport={}", self.port()),
        ];
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        args
    }
}

async fn start_server(datadir: &Path, port: u16) -> RpcServer {
    let settings = RpcSettings {
        binds: vec![SocketAddr::from((Ipv4Addr::LOCALHOST, port))],
        cookie_file: datadir.join("regtest").join(".cookie"),
        max_body: DEFAULT_MAX_BODY,
        request_timeout: DEFAULT_REQUEST_TIMEOUT,
    };
    serve(settings, Arc::new(TestDispatch::warming_up(2)))
        .await
        .unwrap()
}

/// Runs nightjar-cli (off the runtime, which keeps serving meanwhile).
async fn cli(args: Vec<String>) -> Output {
    cli_with_stdin(args, None).await
}

async fn cli_with_stdin(args: Vec<String>, stdin: Option<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        let mut child = Command::new(env!("CARGO_BIN_EXE_nightjar-cli"))
            .args(&args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        if let Some(input) = stdin {
            child
                .stdin
                .take()
                .unwrap()
                .write_all(input.as_bytes())
                .unwrap();
        }
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

/// A port nothing listens on (bound, then released).
fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn positional_params_are_json_or_strings_and_output_is_pretty() {
    let d = Daemon::start().await;
    let o = cli(d.args(&["echo", "1", "abc", r#"{"a":[1,2]}"#, "true", r#""7""#])).await;
    assert_eq!(stderr(&o), "");
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(
        stdout(&o),
        "[\n  1,\n  \"abc\",\n  {\n    \"a\": [\n      1,\n      2\n    ]\n  },\n  true,\n  \"7\"\n]\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn named_params_become_an_object() {
    let d = Daemon::start().await;
    let o = cli(d.args(&["-named", "echo", "a=text", "b=2"])).await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), "{\n  \"a\": \"text\",\n  \"b\": 2\n}\n");

    let o = cli(d.args(&["-named", "echo", "a"])).await;
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).starts_with("error: No '=' in named argument 'a'"),
        "{}",
        stderr(&o)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strings_print_raw_and_null_prints_nothing() {
    let d = Daemon::start().await;
    let o = cli(d.args(&["string"])).await;
    assert_eq!(
        (stdout(&o).as_str(), o.status.code()),
        ("hello world\n", Some(0))
    );
    let o = cli(d.args(&["null"])).await;
    assert_eq!(
        (stdout(&o).as_str(), stderr(&o).as_str(), o.status.code()),
        ("", "", Some(0))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rpc_errors_look_like_bitcoin_clis() {
    let d = Daemon::start().await;
    let o = cli(d.args(&["err"])).await;
    assert_eq!(stdout(&o), "");
    assert_eq!(stderr(&o), "error code: -8\nerror message:\nbad param\n");
    assert_eq!(o.status.code(), Some(8));

    let o = cli(d.args(&["nosuchmethod"])).await;
    assert_eq!(
        stderr(&o),
        "error code: -32601\nerror message:\nMethod not found\n"
    );
    // |−32601| truncated to 8 bits, as bitcoin-cli's exit status.
    assert_eq!(o.status.code(), Some(89));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemon_down_says_so() {
    let datadir = tempfile::tempdir().unwrap();
    let port = free_port();
    let o = cli(vec![
        "-regtest".to_owned(),
        format!("-datadir={}", datadir.path().display()),
        format!("-rpcport={port}"),
        "getblockcount".to_owned(),
    ])
    .await;
    let err = stderr(&o);
    assert!(
        err.starts_with(&format!(
            "error: Could not connect to the server 127.0.0.1:{port}"
        )),
        "{err}"
    );
    assert!(
        err.contains("Make sure the nightjar daemon is running"),
        "{err}"
    );
    assert!(err.contains("-chain=regtest"), "{err}");
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(stdout(&o), "");

    // The same with a password instead of the cookie.
    let o = cli(vec![
        "-rpcuser=u".to_owned(),
        "-rpcpassword=p".to_owned(),
        format!("-rpcport={port}"),
        "getblockcount".to_owned(),
    ])
    .await;
    assert!(stderr(&o).starts_with("error: Could not connect to the server"));
    assert_eq!(o.status.code(), Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_or_unreadable_cookie_is_named() {
    let d = Daemon::start().await;
    let elsewhere = tempfile::tempdir().unwrap();

    // Daemon up, but the cookie is looked for in the wrong place.
    let missing = elsewhere.path().join("nope").join(".cookie");
    let o = cli(d.args(&[&format!("-rpccookiefile={}", missing.display()), "string"])).await;
    let err = stderr(&o);
    assert!(
        err.starts_with("error: Could not locate RPC credentials"),
        "{err}"
    );
    assert!(err.contains(&missing.display().to_string()), "{err}");
    assert_eq!(o.status.code(), Some(1));

    // A cookie path that cannot be read.
    let unreadable = elsewhere.path().join("dir.cookie");
    std::fs::create_dir(&unreadable).unwrap();
    let o = cli(d.args(&[
        &format!("-rpccookiefile={}", unreadable.display()),
        "string",
    ]))
    .await;
    let err = stderr(&o);
    assert!(
        err.starts_with(&format!(
            "error: Could not read the RPC cookie file {}",
            unreadable.display()
        )),
        "{err}"
    );
    assert_eq!(o.status.code(), Some(1));

    // No permission (meaningful only when not running as root).
    let locked = elsewhere.path().join("locked.cookie");
    std::fs::copy(d.server.cookie_file(), &locked).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).unwrap();
    if std::fs::read(&locked).is_err() {
        let o = cli(d.args(&[&format!("-rpccookiefile={}", locked.display()), "string"])).await;
        let err = stderr(&o);
        assert!(err.contains(&locked.display().to_string()), "{err}");
        assert!(err.contains("permission denied"), "{err}");
        assert_eq!(o.status.code(), Some(1));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_credentials_are_an_auth_error() {
    let d = Daemon::start().await;
    let o = cli(d.args(&["-rpcuser=alice", "-rpcpassword=wrong", "string"])).await;
    assert_eq!(
        stderr(&o),
        "error: Authorization failed: Incorrect rpcuser or rpcpassword\n"
    );
    assert_eq!(o.status.code(), Some(1));

    // A stale cookie (from an earlier run) is explained as such.
    let stale = d.datadir.path().join("stale.cookie");
    std::fs::write(&stale, format!("__cookie__:{}", "0".repeat(64))).unwrap();
    let o = cli(d.args(&[&format!("-rpccookiefile={}", stale.display()), "string"])).await;
    let err = stderr(&o);
    assert!(err.starts_with("error: Authorization failed"), "{err}");
    assert!(err.contains(&stale.display().to_string()), "{err}");
    assert_eq!(o.status.code(), Some(1));

    // The right user and password work instead of the cookie file...
    let (user, password) = read_cookie(d.server.cookie_file()).unwrap();
    let o = cli(d.args(&[
        &format!("-rpcuser={user}"),
        &format!("-rpcpassword={password}"),
        "string",
    ]))
    .await;
    assert_eq!(stdout(&o), "hello world\n", "{}", stderr(&o));
    // ...and so does a password on standard input.
    let o = cli_with_stdin(
        d.args(&[&format!("-rpcuser={user}"), "-stdinrpcpass", "string"]),
        Some(format!("{password}\n")),
    )
    .await;
    assert_eq!(stdout(&o), "hello world\n", "{}", stderr(&o));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdin_supplies_more_params() {
    let d = Daemon::start().await;
    let o = cli_with_stdin(
        d.args(&["-stdin", "echo", "x"]),
        Some("1\nfoo bar\n".to_owned()),
    )
    .await;
    assert_eq!(
        stdout(&o),
        "[\n  \"x\",\n  1,\n  \"foo bar\"\n]\n",
        "{}",
        stderr(&o)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rpcwait_waits_for_the_daemon() {
    let datadir = tempfile::tempdir().unwrap();
    let port = free_port();
    let args = vec![
        "-regtest".to_owned(),
        format!("-datadir={}", datadir.path().display()),
        format!("-rpcport={port}"),
        "-rpcwait".to_owned(),
        "string".to_owned(),
    ];
    let waiting = tokio::spawn(cli(args));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let server = start_server(datadir.path(), port).await;
    let o = waiting.await.unwrap();
    assert_eq!(stdout(&o), "hello world\n", "{}", stderr(&o));
    assert_eq!(o.status.code(), Some(0));
    server.shutdown().await;

    // With nothing coming, -rpcwaittimeout ends the wait.
    let started = Instant::now();
    let o = cli(vec![
        format!("-rpcport={}", free_port()),
        "-rpcuser=u".to_owned(),
        "-rpcpassword=p".to_owned(),
        "-rpcwait".to_owned(),
        "-rpcwaittimeout=1".to_owned(),
        "string".to_owned(),
    ])
    .await;
    assert!(
        stderr(&o)
            .starts_with("error: timeout on transient error: Could not connect to the server"),
        "{}",
        stderr(&o)
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warmup_is_an_error_unless_waiting() {
    let d = Daemon::start().await;
    let o = cli(d.args(&["warmingup"])).await;
    assert_eq!(
        stderr(&o),
        "error code: -28\nerror message:\nLoading block index...\n"
    );
    assert_eq!(o.status.code(), Some(28));
    // One warm-up answer left: -rpcwait waits it out.
    let o = cli(d.args(&["-rpcwait", "warmingup"])).await;
    assert_eq!(stdout(&o), "ready\n", "{}", stderr(&o));
    assert_eq!(o.status.code(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn options_are_checked_like_bitcoin_clis() {
    let o = cli(vec!["-version".to_owned()]).await;
    assert!(stdout(&o).starts_with("nightjar RPC client version v"));
    assert_eq!(o.status.code(), Some(0));

    let o = cli(vec!["-help".to_owned()]).await;
    assert!(stdout(&o).contains("-rpccookiefile=<loc>"));
    assert_eq!(o.status.code(), Some(0));

    let o = cli(vec![]).await;
    assert!(stderr(&o).contains("Error: too few parameters"));
    assert_eq!(o.status.code(), Some(1));

    let o = cli(vec!["-bogus".to_owned(), "x".to_owned()]).await;
    assert_eq!(
        stderr(&o),
        "Error parsing command line arguments: Invalid parameter -bogus\n"
    );
    assert_eq!(o.status.code(), Some(1));

    let o = cli(vec![
        "-regtest".to_owned(),
        "-chain=signet".to_owned(),
        "x".to_owned(),
    ])
    .await;
    assert!(stderr(&o).starts_with("Error: Invalid combination of -regtest, -signet"));
    assert_eq!(o.status.code(), Some(1));

    let o = cli(vec![
        "-datadir=/nonexistent/nightjar".to_owned(),
        "x".to_owned(),
    ])
    .await;
    assert_eq!(
        stderr(&o),
        "Error: Specified data directory \"/nonexistent/nightjar\" does not exist.\n"
    );
    assert_eq!(o.status.code(), Some(1));

    let o = cli(vec!["-regtest".to_owned()]).await;
    assert_eq!(
        stderr(&o),
        "error: too few parameters (need at least command)\n"
    );
    assert_eq!(o.status.code(), Some(1));
}

/// Reads one HTTP request (head and body) from `stream`; returns the head.
fn read_request(stream: &mut std::net::TcpStream) -> String {
    use std::io::Read;
    let mut bytes = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&bytes[..end]).to_string();
            let length: usize = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse().unwrap())
                })
                .unwrap_or(0);
            while bytes.len() < end + 4 + length {
                let n = stream.read(&mut buf).unwrap();
                assert!(n > 0, "request cut short");
                bytes.extend_from_slice(&buf[..n]);
            }
            return head;
        }
        let n = stream.read(&mut buf).unwrap();
        assert!(n > 0, "request cut short");
        bytes.extend_from_slice(&buf[..n]);
    }
}

/// A daemon restarting after a crash replaces the cookie it left behind;
/// a call that read the old cookie a moment too early and got 401 tries
/// once more with the new one instead of failing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cookie_replaced_during_the_call_is_read_again() {
    use std::io::Write;
    let datadir = tempfile::tempdir().unwrap();
    let cookie = datadir.path().join("regtest").join(".cookie");
    std::fs::create_dir_all(cookie.parent().unwrap()).unwrap();
    let old = format!("__cookie__:{}", "0".repeat(64));
    let new = format!("__cookie__:{}", "1".repeat(64));
    std::fs::write(&cookie, &old).unwrap();
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    let expected = format!("Basic {}", data_encoding::BASE64.encode(new.as_bytes()));
    let server = {
        let (cookie, new) = (cookie.clone(), new.clone());
        std::thread::spawn(move || {
            let mut heads = Vec::new();
            for _ in 0..2 {
                let (mut stream, _) = listener.accept().unwrap();
                let head = read_request(&mut stream);
                let authorized = head.contains(&expected);
                if !authorized {
                    // The restarted daemon's new cookie lands meanwhile.
                    std::fs::write(&cookie, &new).unwrap();
                }
                let reply = if authorized {
                    let body = "{\"result\":\"hello\",\"error\":null,\"id\":1}\n";
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    )
                } else {
                    "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"jsonrpc\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_owned()
                };
                stream.write_all(reply.as_bytes()).unwrap();
                heads.push(authorized);
                if authorized {
                    break;
                }
            }
            heads
        })
    };
    let o = cli(vec![
        "-regtest".to_owned(),
        format!("-datadir={}", datadir.path().display()),
        format!("-rpcport={port}"),
        "string".to_owned(),
    ])
    .await;
    assert_eq!(stdout(&o), "hello\n", "{}", stderr(&o));
    assert_eq!(server.join().unwrap(), vec![false, true]);
}
