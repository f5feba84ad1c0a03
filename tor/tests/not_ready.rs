//! Before bootstrap completes the transport refuses to dial, with a kind the
//! connection manager can wait on. The "network" here is one fallback cache
//! on a closed loopback port, so bootstrap can never finish and no byte can
//! leave 127.0.0.1.

// Test code: unwrap and panic are how a test fails.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr
)]

use std::net::{Ipv4Addr, TcpListener};
use std::time::Duration;

use futures::StreamExt;
use nightjar_tor::{
    IsolationGroup, RetryHint, Target, TorErrorKind, TorNetwork, TorSettings, TorTransport,
};

fn dead_network_file(dir: &std::path::Path) -> std::path::PathBuf {
    let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let ident = "ACDBE7991A6F0F6B6E2B7F2D1B9B0A1C2D3E4F50";
    let text = format!(
        "[tor_network.authorities]\nv3idents = [\"{ident}\"]\n\n\
         [[tor_network.fallback_caches]]\nrsa_identity = \"{ident}\"\n\
         ed_identity = \"vvpZnaYawCdGXg/Nkpy35IyJUReryiZI/bgRzhVEepo\"\n\
         orports = [\"127.0.0.1:{port}\"]\n\n[address_filter]\nallow_local_addrs = true\n"
    );
    let path = dir.join("dead-network.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test]
async fn nothing_is_dialled_before_bootstrap() {
    let dir = tempfile::tempdir().unwrap();
    let network = dead_network_file(dir.path());
    let settings = TorSettings::new(dir.path().join("state"), dir.path().join("cache"))
        .with_network(TorNetwork::Custom(network));
    let tor = TorTransport::start(settings).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;

    assert!(!tor.is_ready());
    assert!(tor.bootstrap_progress().percent < 100);
    let target: Target = "127.0.0.1:8333".parse().unwrap();
    let err = tor
        .connect(&target, IsolationGroup::new(1))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), TorErrorKind::NotReady, "{err}");
    assert_eq!(err.retry_hint(), RetryHint::AfterBootstrap);
    let err = tor
        .resolve("seed.example.test", IsolationGroup::new(1))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), TorErrorKind::NotReady, "{err}");

    // Waiting is bounded by the caller, and it does time out.
    assert!(
        tokio::time::timeout(Duration::from_millis(300), tor.wait_until_ready())
            .await
            .is_err()
    );
    // Arti's files went where we said, not to Arti's default home.
    assert!(dir.path().join("state").is_dir());
    assert!(dir.path().join("cache").is_dir());
}

#[tokio::test]
async fn a_bad_network_file_is_a_config_error_naming_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("net.toml");
    std::fs::write(&path, "[address_filter]\nallow_local_addrs = true\n").unwrap();
    let settings = TorSettings::new(dir.path().join("s"), dir.path().join("c"))
        .with_network(TorNetwork::Custom(path));
    let err = TorTransport::start(settings).await.unwrap_err();
    assert_eq!(err.kind(), TorErrorKind::Config);
    assert!(err.to_string().contains("tor_network"), "{err}");

    let missing = TorSettings::new(dir.path().join("s"), dir.path().join("c"))
        .with_network(TorNetwork::Custom(dir.path().join("absent.toml")));
    let err = TorTransport::start(missing).await.unwrap_err();
    assert_eq!(err.kind(), TorErrorKind::Config);
    assert!(err.to_string().contains("absent.toml"), "{err}");
}

/// Issue 16, item 7: a start with no reachable relay says so plainly and
/// soon, and never calls the moment before bootstrap begins a blockage
/// (Arti's "Client has been disabled").
#[tokio::test]
async fn no_reachable_relay_is_reported_plainly() {
    let dir = tempfile::tempdir().unwrap();
    let network = dead_network_file(dir.path());
    let mut settings = TorSettings::new(dir.path().join("state"), dir.path().join("cache"))
        .with_network(TorNetwork::Custom(network));
    settings.timeouts.no_relay_report = Duration::from_secs(2);
    let tor = TorTransport::start(settings).await.unwrap();
    let mut progress = tor.progress();
    let mut seen = Vec::new();
    let blocked = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(p) = progress.next().await {
            seen.push(p.to_string());
            if let Some(why) = p.blocked {
                return why;
            }
        }
        panic!("progress ended");
    })
    .await
    .unwrap_or_else(|_| panic!("no blockage reported; progress was {seen:?}"));
    assert!(
        blocked.starts_with("cannot reach any Tor relay"),
        "{blocked}"
    );
    assert!(blocked.contains("firewall"), "{blocked}");
    assert!(
        !seen.iter().any(|s| s.to_lowercase().contains("disabled")),
        "{seen:?}"
    );
    assert!(!tor.is_ready());
}
