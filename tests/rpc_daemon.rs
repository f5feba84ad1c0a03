//! The RPC interface of a running `nightjar`, through real clients: Debian's
//! python-bitcoinlib (`python3-bitcoinlib`, which reads the cookie the way it
//! reads Bitcoin Core's) and `nightjar-cli`. The daemon runs with Tor
//! explicitly off (`--no-tor`, regtest) and one in-repo peer on loopback,
//! so `getpeerinfo` has a real v2 peer to show.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr
)]

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use nightjar_testpeer::node::{NodeSpec, PeerFarm};
use serde_json::Value;

/// Debian's Python, which `python3-bitcoinlib` installs into (a `python3`
/// earlier on PATH, e.g. from pyenv, would not see it).
const PYTHON: &str = "/usr/bin/python3";

/// Whether python-bitcoinlib is importable; in CI (`CI=true`) its absence
/// is a failure, elsewhere a loud skip.
fn bitcoinlib_available(test: &str) -> bool {
    let ok = Command::new(PYTHON)
        .args(["-c", "import bitcoin.rpc"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let in_ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
    match (ok, in_ci) {
        (true, _) => true,
        (false, true) => panic!("{test} needs python3-bitcoinlib and CI must run it"),
        (false, false) => {
            eprintln!(
                "\n*** SKIPPING {test}: python3-bitcoinlib is missing \
                 (apt-get install python3-bitcoinlib) ***\n"
            );
            false
        }
    }
}

struct Daemon {
    child: Child,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    done()
}

fn cli(datadir: &Path, port: u16, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nightjar-cli"))
        .arg(format!("-datadir={}", datadir.display()))
        .arg("-regtest")
        .arg(format!("-rpcport={port}"))
        .args(args)
        .output()
        .unwrap()
}

const PYTHON_CLIENT: &str = r#"
import json, sys
import bitcoin, bitcoin.rpc
bitcoin.SelectParams("regtest")
proxy = bitcoin.rpc.Proxy(btc_conf_file=sys.argv[1])
print(json.dumps({
    "networkinfo": proxy.call("getnetworkinfo"),
    "peerinfo": proxy.call("getpeerinfo"),
    "blockchaininfo": proxy.call("getblockchaininfo"),
    "genesis": proxy.call("getblockhash", 0),
    "header": proxy.call("getblockheader", proxy.call("getbestblockhash")),
}, default=str))
"#;

#[test]
fn python_bitcoinlib_and_nightjar_cli_talk_to_a_running_daemon() {
    if !bitcoinlib_available("python_bitcoinlib_and_nightjar_cli_talk_to_a_running_daemon") {
        return;
    }
    let farm = PeerFarm::new().unwrap();
    let peer = farm.start_node(NodeSpec::regtest("rpc-peer")).unwrap();
    let datadir = tempfile::tempdir().unwrap();
    let port = nightjar_testpeer::free_port().unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_nightjar"))
        .args([
            "--network",
            "regtest",
            "--no-tor",
            "--no-dnsseed",
            "--datadir",
        ])
        .arg(datadir.path())
        .arg("--connect")
        .arg(peer.addr().to_string())
        .arg("--rpcport")
        .arg(port.to_string())
        .env("HOME", datadir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut daemon = Daemon { child };
    let cookie = datadir.path().join("regtest").join(".cookie");
    assert!(
        wait_until(Duration::from_secs(30), || cookie.is_file()),
        "no cookie at {}",
        cookie.display()
    );
    peer.wait_for(Duration::from_secs(30), |s| s.handshakes >= 1)
        .expect("the daemon completes a handshake with its --connect peer");

    // python-bitcoinlib, configured the way a Bitcoin Core user would.
    let conf = datadir.path().join("bitcoin.conf");
    std::fs::write(
        &conf,
        format!("datadir={}\nrpcport={port}\n", datadir.path().display()),
    )
    .unwrap();
    let out = Command::new(PYTHON)
        .args(["-c", PYTHON_CLIENT])
        .arg(&conf)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "python-bitcoinlib failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reply: Value = serde_json::from_slice(&out.stdout).unwrap();
    let net = &reply["networkinfo"];
    assert!(
        net["subversion"]
            .as_str()
            .unwrap()
            .starts_with("/nightjar:")
    );
    assert_eq!(net["connections"], 1);
    let peers = reply["peerinfo"].as_array().unwrap();
    assert_eq!(peers.len(), 1, "{peers:?}");
    let p = &peers[0];
    assert_eq!(p["addr"], peer.addr().to_string());
    assert_eq!(p["connection_type"], "manual");
    assert_eq!(p["transport_protocol_type"], "v2");
    assert_eq!(p["subver"], peer.user_agent());
    // The chain methods, as python-bitcoinlib calls them (no headers
    // served: the node is at regtest's genesis).
    let chain = &reply["blockchaininfo"];
    assert_eq!(chain["chain"], "regtest");
    assert_eq!(chain["blocks"], 0);
    assert_eq!(chain["headers"], 0);
    assert_eq!(chain["bestblockhash"], reply["genesis"]);
    assert_eq!(
        reply["genesis"],
        "0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206"
    );
    assert_eq!(reply["header"]["height"], 0);
    assert_eq!(reply["header"]["confirmations"], 1);
    // Both ends of a v2 connection see the same session id.
    let theirs = peer.stats().connections[0].transport.unwrap();
    assert_eq!(p["session_id"], theirs.session_id_hex());

    // nightjar-cli against the same daemon.
    let count = cli(datadir.path(), port, &["getconnectioncount"]);
    assert!(count.status.success(), "{count:?}");
    assert_eq!(String::from_utf8_lossy(&count.stdout).trim(), "1");
    let info = cli(datadir.path(), port, &["getpeerinfo"]);
    let info: Value = serde_json::from_slice(&info.stdout).unwrap();
    assert_eq!(info[0]["session_id"], p["session_id"]);
    let count = cli(datadir.path(), port, &["getblockcount"]);
    assert_eq!(String::from_utf8_lossy(&count.stdout).trim(), "0");
    let bad = cli(datadir.path(), port, &["getmempoolinfo"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("Method not found"));

    // `stop` ends the daemon cleanly and takes the cookie away.
    let stop = cli(datadir.path(), port, &["stop"]);
    assert_eq!(
        String::from_utf8_lossy(&stop.stdout).trim(),
        "nightjar stopping"
    );
    let mut status = None;
    assert!(wait_until(Duration::from_secs(20), || {
        status = daemon.child.try_wait().unwrap();
        status.is_some()
    }));
    assert!(status.unwrap().success(), "exit status {status:?}");
    assert!(!cookie.exists(), "the cookie is removed at a clean exit");
    assert!(
        datadir.path().join("regtest").join("peers.dat").is_file(),
        "the address book is saved at stop"
    );
}
