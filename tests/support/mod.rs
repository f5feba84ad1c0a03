//! Helpers shared by the integration tests that run on the private Tor network.

#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::sync::OnceLock;
use std::time::Duration;

use nightjar_privnet::{PrivNet, PrivNetConfig};
use nightjar_tor::{TorNetwork, TorSettings, TorTransport};
use tempfile::TempDir;

/// The virtual port of the C-tor onion service in front of the echo server.
pub const ONION_ECHO_PORT: u16 = 8333;

/// Longest a fresh client may take to bootstrap: right after the network
/// becomes usable, directory caches may still lack the consensus (≈ 5–12 s).
pub const BOOTSTRAP_LIMIT: Duration = Duration::from_secs(120);

/// The echo server of this test process (started on first use).
pub fn echo_server() -> SocketAddr {
    static ADDR: OnceLock<SocketAddr> = OnceLock::new();
    *ADDR.get_or_init(|| nightjar_privnet::echo::spawn_echo_server().unwrap())
}

/// The virtual port of the C-tor onion service in front of the Bitcoin
/// test-peer listener (regtest's P2P port).
pub const ONION_PEER_PORT: u16 = 18444;

/// A listener on 127.0.0.1 where a test peer waits behind an onion service.
/// Bound once per test process; tests take a tokio handle to it.
fn peer_listener() -> &'static TcpListener {
    static LISTENER: OnceLock<TcpListener> = OnceLock::new();
    LISTENER.get_or_init(|| TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap())
}

/// `<56 chars>.onion` of the onion service in front of the test-peer
/// listener.
pub fn peer_onion(net: &PrivNet) -> String {
    net.onion_services()
        .iter()
        .find(|s| s.virtual_port == ONION_PEER_PORT)
        .unwrap()
        .onion_address
        .clone()
}

/// The test-peer listener itself (a clone of the shared socket), for a
/// scripted node to serve on.
pub fn test_peer_std_listener() -> TcpListener {
    peer_listener().try_clone().unwrap()
}

/// The test-peer listener, for tokio.
pub fn test_peer_listener() -> tokio::net::TcpListener {
    let std = peer_listener().try_clone().unwrap();
    std.set_nonblocking(true).unwrap();
    tokio::net::TcpListener::from_std(std).unwrap()
}

/// The shared private network of this test binary, or `None` (after a loud
/// message) when `tor` is missing outside CI.
pub fn network(test: &str) -> Option<&'static PrivNet> {
    if !nightjar_privnet::tor_required(test) {
        return None;
    }
    let net = nightjar_privnet::shared(|| PrivNetConfig {
        onion_services: vec![
            (ONION_ECHO_PORT, echo_server()),
            (ONION_PEER_PORT, peer_listener().local_addr().unwrap()),
        ],
        // Keep the network's files (logs!) where the developer asked.
        dir: std::env::var_os("NIGHTJAR_PRIVNET_DIR").map(Into::into),
        ..PrivNetConfig::default()
    })
    .unwrap_or_else(|e| panic!("private Tor network failed to start: {e:#}"));
    Some(net)
}

/// A fresh Arti client on the private network, with its own state directory.
pub async fn client(net: &PrivNet) -> (TorTransport, TempDir) {
    client_on(net.arti_network_file()).await
}

/// A fresh Arti client on the network described by `network_file`.
pub async fn client_on(network_file: &std::path::Path) -> (TorTransport, TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let settings = TorSettings::new(dir.path().join("state"), dir.path().join("cache"))
        .with_network(TorNetwork::Custom(network_file.to_path_buf()));
    let tor = TorTransport::start(settings).await.unwrap();
    tokio::time::timeout(BOOTSTRAP_LIMIT, tor.wait_until_ready())
        .await
        .unwrap_or_else(|_| {
            panic!(
                "no bootstrap within {BOOTSTRAP_LIMIT:?}: {}",
                tor.bootstrap_progress()
            )
        })
        .unwrap();
    (tor, dir)
}

/// Write `msg`, flush, and read the same number of bytes back.
pub async fn echo_round_trip<S>(stream: &mut S, msg: &[u8]) -> Vec<u8>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream.write_all(msg).await.unwrap();
    stream.flush().await.unwrap();
    let mut back = vec![0u8; msg.len()];
    tokio::time::timeout(Duration::from_secs(60), stream.read_exact(&mut back))
        .await
        .expect("echo did not come back within 60 s")
        .unwrap();
    back
}

/// Retry `attempt` for up to 90 s: onion descriptors need time to propagate.
pub async fn retry_until_ok<T, E: std::fmt::Display, F, Fut>(mut attempt: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    loop {
        match attempt().await {
            Ok(v) => return v,
            Err(e) if tokio::time::Instant::now() < deadline => {
                eprintln!("retrying: {e}");
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            Err(e) => panic!("still failing after 90 s: {e}"),
        }
    }
}
