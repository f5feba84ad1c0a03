//! Header sync over the private Tor network: a `nightjar --privacy` process
//! syncs 50 000 regtest headers from an in-repo v2 test peer behind a C-tor
//! onion service, every byte through its embedded Arti client.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr
)]

mod support;

#[path = "support/daemon_log.rs"]
mod daemon_log;

use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use daemon_log::Daemon;
use nightjar::chain::regtest_miner::mine_regtest_chain_until;
use nightjar_testpeer::node::{NodeSpec, PeerFarm, ScriptedNode};

const CHAIN_LEN: usize = 50_000;

/// Bootstrap (up to two minutes right after the network is usable), the
/// onion rendezvous, then 4 MB of headers through a loopback Tor circuit.
const SYNC_LIMIT: Duration = Duration::from_secs(300);

#[test]
fn privacy_daemon_syncs_50k_headers_from_an_onion_peer() {
    let Some(net) = support::network("privacy_daemon_syncs_50k_headers_from_an_onion_peer") else {
        return;
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let chain = mine_regtest_chain_until(CHAIN_LEN, now);
    let farm = PeerFarm::new().unwrap();
    let peer = ScriptedNode::start_on(
        &farm.handle(),
        support::test_peer_std_listener(),
        NodeSpec::regtest("onion-sync").with_headers(chain.clone()),
    )
    .unwrap();
    let onion = support::peer_onion(net);

    let datadir = tempfile::tempdir().unwrap();
    let port = nightjar_testpeer::free_port().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_nightjar"));
    cmd.args(["--network", "regtest", "--privacy", "--datadir"])
        .arg(datadir.path())
        .arg("--tor-network")
        .arg(net.arti_network_file())
        .arg("--connect")
        .arg(format!("{onion}:{}", support::ONION_PEER_PORT))
        .arg("--rpcport")
        .arg(port.to_string())
        .env("HOME", datadir.path())
        .env("RUST_LOG", "info");
    let mut daemon = Daemon::spawn(cmd).unwrap();

    let started = Instant::now();
    let mut height = None;
    while started.elapsed() < SYNC_LIMIT {
        let out = Command::new(env!("CARGO_BIN_EXE_nightjar-cli"))
            .arg(format!("-datadir={}", datadir.path().display()))
            .args([
                "-regtest",
                &format!("-rpcport={port}"),
                "-rpcwait",
                "getblockcount",
            ])
            .output()
            .unwrap();
        height = String::from_utf8(out.stdout)
            .unwrap()
            .trim()
            .parse::<u64>()
            .ok();
        if height == Some(CHAIN_LEN as u64) {
            break;
        }
        daemon.pump(Duration::from_millis(500));
        assert!(
            !daemon.exited(),
            "daemon exited:\n{}",
            daemon.lines().join("\n")
        );
    }
    let stats = peer.stats();
    let status = daemon.terminate(Duration::from_secs(30)).unwrap();
    assert_eq!(
        height,
        Some(CHAIN_LEN as u64),
        "not synced within {SYNC_LIMIT:?}; peer saw {stats:?}; the daemon said:\n{}",
        daemon.lines().join("\n")
    );
    eprintln!(
        "synced {CHAIN_LEN} headers over Tor in {:?} (from daemon start)",
        started.elapsed()
    );
    assert!(status.is_some_and(|s| s.success()));
    // Over BIP324 v2, through the onion service (C tor's loopback socket is
    // the only remote the peer ever saw).
    assert_eq!(stats.v2_sessions, stats.accepted, "{stats:?}");
    assert_eq!(stats.headers_sent, CHAIN_LEN);
    let lines = daemon.lines();
    let connected = lines
        .iter()
        .find(|l| l.contains("peer connected"))
        .unwrap_or_else(|| panic!("{lines:#?}"));
    assert!(connected.contains("transport=v2"), "{connected}");
    assert!(!connected.contains("circuit=\"-\""), "{connected}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("syncing headers from this peer"))
    );
}
