//! The `nightjar` daemon as a real process on the private Tor network: it
//! bootstraps its embedded Arti client, keeps Arti's files in its data
//! directory, and stops cleanly on SIGTERM.

// Test code: unwrap and panic are how a test fails.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr
)]

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Start `nightjar` on the private network (regtest, its own RPC port,
/// `HOME` = `home`) with `extra` arguments; its stderr lines arrive on the
/// returned channel.
fn spawn_daemon(
    net: &nightjar_privnet::PrivNet,
    datadir: &std::path::Path,
    home: &std::path::Path,
    extra: &[String],
) -> (std::process::Child, mpsc::Receiver<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_nightjar"))
        .args(["--network", "regtest", "--datadir"])
        .arg(datadir)
        .arg("--tor-network")
        .arg(net.arti_network_file())
        .arg("--rpcport")
        .arg(nightjar_testpeer::free_port().unwrap().to_string())
        .args(extra)
        .env("HOME", home)
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

#[test]
fn daemon_bootstraps_tor_and_stops_on_sigterm() {
    let Some(net) = support::network("daemon_bootstraps_tor_and_stops_on_sigterm") else {
        return;
    };
    let datadir = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    // A throwaway HOME proves nothing is written outside the datadir.
    let (mut child, rx) = spawn_daemon(net, datadir.path(), home.path(), &[]);
    let mut seen = Vec::new();
    let ready = loop {
        match rx.recv_timeout(support::BOOTSTRAP_LIMIT) {
            Ok(line) => {
                let done = line.contains("Tor is ready");
                seen.push(line);
                if done {
                    break true;
                }
            }
            Err(_) => break false,
        }
    };
    if !ready {
        let _ = child.kill();
        panic!(
            "daemon never reported Tor ready; it said:\n{}",
            seen.join("\n")
        );
    }
    assert!(
        seen.iter()
            .any(|l| l.contains("Tor bootstrap") && l.contains('%')),
        "no progress lines: {seen:?}"
    );

    let state = datadir.path().join("regtest").join("tor").join("state");
    assert!(state.is_dir(), "Arti state must live under the datadir");
    let home_entries: Vec<_> = std::fs::read_dir(home.path()).unwrap().collect();
    assert!(
        home_entries.is_empty(),
        "daemon wrote to $HOME: {home_entries:?}"
    );

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let exit = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "daemon did not stop within 15 s of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(exit.success(), "daemon exit status {exit}");
}

/// The smallest whole-node run: `--connect` to a test peer behind a C-tor
/// onion service; the daemon dials it through its embedded Arti client,
/// speaks BIP324 v2, completes the version handshake and logs the peer's
/// kind, transport and circuit.
#[test]
fn daemon_connects_to_an_onion_peer_over_v2() {
    let Some(net) = support::network("daemon_connects_to_an_onion_peer_over_v2") else {
        return;
    };
    let onion = support::peer_onion(net);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (shook_tx, shook_rx) = tokio::sync::oneshot::channel();
    let peer = rt.spawn(async move {
        let listener = support::test_peer_listener();
        let (stream, _) = listener.accept().await.unwrap();
        let mut peer =
            nightjar_testpeer::TestPeer::accept(stream, nightjar_testpeer::REGTEST, false)
                .await
                .unwrap();
        let theirs = peer
            .answer_handshake(nightjar_testpeer::version_message(5, 0, "/onion-peer/"))
            .await
            .unwrap();
        shook_tx.send((theirs, peer.kind())).unwrap();
        // Stay connected until the daemon leaves.
        peer.closed().await
    });

    let datadir = tempfile::tempdir().unwrap();
    let extra = [
        "--connect".to_owned(),
        format!("{onion}:{}", support::ONION_PEER_PORT),
        // The test reads the peer's address from the log.
        "--log-sensitive".to_owned(),
    ];
    let (mut child, rx) = spawn_daemon(net, datadir.path(), datadir.path(), &extra);
    let mut seen = Vec::new();
    let connected = loop {
        match rx.recv_timeout(Duration::from_secs(180)) {
            Ok(line) => {
                let hit = line.contains("peer connected");
                seen.push(line.clone());
                if hit {
                    break Some(line);
                }
            }
            Err(_) => break None,
        }
    };
    // Both ends saw the handshake complete before we stop the daemon (its
    // last bytes may still be in Tor when it exits).
    let handshake =
        rt.block_on(async { tokio::time::timeout(Duration::from_secs(60), shook_rx).await });
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let exit = child.wait().unwrap();
    let Some(line) = connected else {
        panic!("no peer connected; the daemon said:\n{}", seen.join("\n"));
    };
    assert!(line.contains("kind=manual"), "{line}");
    assert!(line.contains("transport=v2"), "{line}");
    assert!(line.contains(&onion), "{line}");
    assert!(
        !line.contains("circuit=\"-\""),
        "an onion connection has a circuit: {line}"
    );
    assert!(exit.success(), "exit status {exit}");
    let (theirs, kind) = handshake.unwrap().unwrap();
    assert!(matches!(
        kind,
        nightjar::transport::TransportKind::V2 { .. }
    ));
    peer.abort();
    assert_eq!(
        theirs.sender.socket_addr().unwrap(),
        "0.0.0.0:0".parse().unwrap()
    );
    assert!(datadir.path().join("regtest").join("peers.dat").is_file());
}
