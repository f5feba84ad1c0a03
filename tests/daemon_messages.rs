//! What a user reads (issue 16, D6): the default log and RPC errors of a
//! real `nightjar` process say what went wrong, once, in plain words.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/daemon_log.rs"]
mod daemon_log;
#[path = "support/dead_tor_network.rs"]
mod dead_tor_network;
#[path = "support/nightjar_node.rs"]
mod nightjar_node;

use std::io::Read;
use std::net::TcpListener;
use std::process::Command;
use std::time::Duration;

use nightjar_node::Nightjar;

const LIMIT: Duration = Duration::from_secs(60);

/// A manual peer that hangs up in the middle of the handshake is reported
/// in the default (info) log, with its address: "why does my addnode
/// peer never connect?" needs no debug logging to answer.
#[test]
fn a_manual_peer_failing_its_handshake_is_in_the_default_log() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    // Takes each connection, reads what the node sends first, hangs up.
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut buf = [0u8; 64];
            let _ = stream.read(&mut buf);
        }
    });
    let mut node = Nightjar::spawn([
        "--no-tor".to_owned(),
        "--no-dnsseed".to_owned(),
        "--log-sensitive".to_owned(),
        "--addnode".to_owned(),
        addr.to_string(),
    ]);
    let needle = addr.to_string();
    let seen = node.daemon.wait_until(LIMIT, |lines| {
        lines
            .iter()
            .any(|l| l.contains("peer disconnected") && l.contains(&needle) && l.contains("INFO"))
    });
    assert!(
        seen,
        "no info line for the manual peer:\n{}",
        node.daemon.lines().join("\n")
    );
    node.stop();
}

/// RPC errors name the real problem: a port out of range is a bad port,
/// not a missing one, in every address form.
#[test]
fn addnode_names_a_bad_port_as_such() {
    let mut node = Nightjar::spawn(["--no-tor".to_owned(), "--no-dnsseed".to_owned()]);
    node.wait_for(LIMIT, "RPC", |n| n.block_count().is_some());
    for target in ["[::1]:99999", "127.0.0.1:99999", "example.test:99999"] {
        let out = Command::new(env!("CARGO_BIN_EXE_nightjar-cli"))
            .arg(format!("-datadir={}", node.dir().display()))
            .arg("-regtest")
            .arg(format!("-rpcport={}", node.rpc_port))
            .args(["addnode", target, "add"])
            .output()
            .unwrap();
        assert!(!out.status.success(), "{target} was accepted");
        let error = String::from_utf8_lossy(&out.stderr);
        assert!(
            error.contains("invalid port \"99999\"") && !error.contains("missing port"),
            "{target}: {error}"
        );
    }
    node.stop();
}

/// Issue 16, item 7: started where no Tor relay answers (here a network
/// whose only directory cache is a closed loopback port), the daemon warns
/// once, plainly, with what to try, and shows the same in
/// `getnetworkinfo`. The moment before bootstrap begins is not a warning.
#[test]
fn no_reachable_tor_relay_is_reported_plainly() {
    let net = tempfile::tempdir().unwrap();
    let network_file = dead_tor_network::write(net.path());
    let mut node = Nightjar::spawn([
        "--no-dnsseed".to_owned(),
        "--tor-network".to_owned(),
        network_file.display().to_string(),
    ]);
    // NO_RELAY_REPORT_AFTER (20 s) and some slack for a loaded machine.
    let seen = node.daemon.wait_until(LIMIT, |lines| {
        lines
            .iter()
            .any(|l| l.contains("WARN") && l.contains("cannot reach any Tor relay"))
    });
    let lines = node.daemon.lines().join("\n");
    assert!(seen, "no plain warning:\n{lines}");
    assert!(
        lines.contains("firewall") && lines.contains("none answered in 20 s"),
        "{lines}"
    );
    assert!(!lines.contains("disabled"), "{lines}");
    let info = node.rpc(&["getnetworkinfo"]).unwrap();
    let blocked = info["tor"]["blocked"].as_str().unwrap_or_default();
    assert!(blocked.starts_with("cannot reach any Tor relay"), "{info}");
    node.stop();
}
