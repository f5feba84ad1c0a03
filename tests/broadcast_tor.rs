//! Private broadcast end to end on the private Tor network: a `--privacy`
//! nightjar, scripted peers behind C-tor onion services, the transaction
//! submitted with python-bitcoinlib or `nightjar-cli`.
//!
//! - receipts: three peers the node holds no connection to each get the
//!   transaction over a connection of its own that sends Core's private
//!   broadcast `version`, then closes; the regular peer never carries it;
//! - confirmation by echo: the regular peer announcing it makes it seen,
//!   and the `feefilter` tap opens while it is pending and closes after;
//! - visibility and abort: a peer that never asks for the transaction
//!   keeps its connection open, shown in `getpeerinfo` as
//!   `private-broadcast` with its circuit, until `abortprivatebroadcast`;
//! - `kill -9` right after `sendrawtransaction` answered loses nothing: the
//!   restarted node resumes the broadcast on fresh connections.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr
)]

mod support;

#[path = "support/daemon_log.rs"]
mod daemon_log;
#[path = "support/nightjar_node.rs"]
mod nightjar_node;
#[path = "support/sample_tx.rs"]
mod sample_tx;

use std::path::Path;
use std::process::Command;
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use bitcoin::{Transaction, Txid};
use nightjar::engine::private_broadcast::{FEE_FILTER_CLOSED, FEE_FILTER_OPEN};
use nightjar::engine::version::PRIVATE_BROADCAST_USER_AGENT;
use nightjar_node::Nightjar;
use nightjar_privnet::{PrivNet, PrivNetConfig};
use nightjar_testpeer::node::{ConnectionRecord, NodeSpec, PeerFarm, ScriptedNode};
use sample_tx::tx;
use serde_json::Value;

const ONION_PORT: u16 = 18444;

/// Bootstrap, rendezvous, and the broadcast's random gaps.
const LIMIT: Duration = Duration::from_secs(300);

/// Debian's Python, where `python3-bitcoinlib` lives.
const PYTHON: &str = "/usr/bin/python3";

/// node0 is the regular peer; node1..node3 receive broadcasts; node4 never
/// asks for what it is offered.
struct Fixture {
    _farm: PeerFarm,
    nodes: Vec<ScriptedNode>,
    onions: Vec<String>,
    net: &'static PrivNet,
}

fn fixture(test: &str) -> Option<&'static Fixture> {
    if !nightjar_privnet::tor_required(test) {
        return None;
    }
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    Some(FIXTURE.get_or_init(|| {
        let farm = PeerFarm::new().unwrap();
        let nodes: Vec<ScriptedNode> = (0..5)
            .map(|i| {
                let spec = NodeSpec::regtest(&format!("node{i}")).fetching_txs(i != 4);
                farm.start_node(spec).unwrap()
            })
            .collect();
        let net = nightjar_privnet::shared(|| PrivNetConfig {
            onion_services: nodes.iter().map(|n| (ONION_PORT, n.addr())).collect(),
            dir: std::env::var_os("NIGHTJAR_PRIVNET_DIR")
                .map(|d| Path::new(&d).join("broadcast_tor")),
            ..PrivNetConfig::default()
        })
        .unwrap_or_else(|e| panic!("private Tor network failed to start: {e:#}"));
        let onions = net
            .onion_services()
            .iter()
            .map(|s| s.onion_address.clone())
            .collect();
        Fixture {
            _farm: farm,
            nodes,
            onions,
            net,
        }
    }))
}

/// The tests share the scripted peers and read their records.
fn one_at_a_time() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

fn args(fx: &Fixture, more: &[&str]) -> Vec<String> {
    let mut all = vec![
        "--tor-network".to_owned(),
        fx.net.arti_network_file().display().to_string(),
        "--privacy".to_owned(),
    ];
    all.extend(more.iter().map(|a| (*a).to_owned()));
    all
}

/// node0, the regular peer, as `--connect` takes it.
fn regular(fx: &Fixture) -> String {
    format!("{}:{ONION_PORT}", fx.onions[0])
}

fn add_peer(node: &Nightjar, onion: &str) {
    let added = node
        .rpc(&["addpeeraddress", onion, &ONION_PORT.to_string()])
        .unwrap();
    assert_eq!(added["success"], true, "{added}");
}

/// The node's entry for `txid` in `getprivatebroadcastinfo`.
fn entry(node: &Nightjar, txid: &str) -> Option<Value> {
    node.rpc(&["getprivatebroadcastinfo"])?["transactions"]
        .as_array()?
        .iter()
        .find(|t| t["txid"] == txid)
        .cloned()
}

/// The connections of `node` that carried `txid`.
fn carriers(node: &ScriptedNode, txid: Txid) -> Vec<ConnectionRecord> {
    node.stats()
        .connections
        .into_iter()
        .filter(|c| c.txs_received.contains(&txid))
        .collect()
}

/// `sendrawtransaction` through python-bitcoinlib, configured as a Core
/// user would configure it.
fn send_with_python(node: &Nightjar, t: &Transaction) -> String {
    let conf = node.dir().join("bitcoin.conf");
    std::fs::write(
        &conf,
        format!(
            "datadir={}\nrpcport={}\n",
            node.dir().display(),
            node.rpc_port
        ),
    )
    .unwrap();
    let script = r#"
import sys
import bitcoin, bitcoin.rpc
from bitcoin.core import CTransaction, x, b2lx
bitcoin.SelectParams("regtest")
proxy = bitcoin.rpc.Proxy(btc_conf_file=sys.argv[1])
print(b2lx(proxy.sendrawtransaction(CTransaction.deserialize(x(sys.argv[2])))))
"#;
    let out = Command::new(PYTHON)
        .args(["-c", script])
        .arg(&conf)
        .arg(bitcoin::consensus::encode::serialize_hex(t))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "python-bitcoinlib: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[test]
fn three_receipts_over_fresh_connections_then_seen_when_the_regular_peer_echoes_it() {
    let Some(fx) = fixture("three_receipts_then_seen") else {
        return;
    };
    let _serial = one_at_a_time();
    let mut node = Nightjar::spawn(args(fx, &["--connect", &regular(fx)]));
    node.wait_for(LIMIT, "the regular peer", |n| {
        n.peers()
            .iter()
            .any(|p| p["connection_type"] == "manual" && p["version"] != 0)
    });
    for onion in &fx.onions[1..=3] {
        add_peer(&node, onion);
    }
    let t = tx(1);
    let txid = t.compute_txid();
    assert_eq!(send_with_python(&node, &t), txid.to_string());

    // Each receiver gets it over a connection of its own, with Core's
    // private-broadcast version, which then closes.
    for (i, receiver) in fx.nodes[1..=3].iter().enumerate() {
        receiver
            .wait_for(LIMIT, |_| {
                carriers(receiver, txid).first().is_some_and(|c| c.closed)
            })
            .unwrap_or_else(|s| panic!("node{} never got it: {s:#?}", i + 1));
        let c = &carriers(receiver, txid)[0];
        assert_eq!(c.user_agent.as_deref(), Some(PRIVATE_BROADCAST_USER_AGENT));
        assert_eq!(c.relay, Some(false));
        assert_eq!(c.getaddr_count, 0, "no getaddr on a broadcast");
        assert!(c.is_v2());
    }
    let info = entry(&node, &txid.to_string()).unwrap();
    assert_eq!(info["seen"], false, "{info:#}");
    let peers = info["peers"].as_array().unwrap();
    assert_eq!(peers.len(), 3, "{info:#}");
    assert!(
        peers
            .iter()
            .all(|p| p["network"] == "onion" && p["received"].is_u64())
    );

    // The regular connection never carried it, and was asked to announce.
    let regular_conn = fx.nodes[0]
        .stats()
        .connections
        .into_iter()
        .rfind(|c| !c.closed && c.handshake_done)
        .unwrap();
    assert!(regular_conn.txs_received.is_empty());
    assert_eq!(regular_conn.fee_filter, Some(FEE_FILTER_OPEN));

    // The network relays it to the regular peer, which announces it.
    fx.nodes[0].announce_tx(t.clone());
    node.wait_for(LIMIT, "the transaction seen", |n| {
        entry(n, &txid.to_string()).is_some_and(|e| e["seen"] == true)
    });
    fx.nodes[0]
        .wait_for(LIMIT, |s| {
            s.connections
                .iter()
                .any(|c| !c.closed && c.fee_filter == Some(FEE_FILTER_CLOSED))
        })
        .expect("the tap closes once nothing is pending");
    let queue = std::fs::read_to_string(node.dir().join("regtest/privatebroadcast.json"))
        .unwrap_or_default();
    assert!(!queue.contains(&txid.to_string()), "{queue}");

    // No log line puts the txid next to a peer address.
    let log = node.stop();
    let txid = txid.to_string();
    for line in log.iter().filter(|l| l.contains(&txid)) {
        assert!(!line.contains(".onion"), "{line}");
    }
}

#[test]
fn a_waiting_broadcast_shows_in_getpeerinfo_with_its_circuit_until_aborted() {
    let Some(fx) = fixture("a_waiting_broadcast_shows_in_getpeerinfo") else {
        return;
    };
    let _serial = one_at_a_time();
    // `--connect`: no automatic connection may take the one peer the
    // broadcast could use (it goes only to peers we are not connected to).
    let mut node = Nightjar::spawn(args(fx, &["--connect", &regular(fx)]));
    node.wait_for(LIMIT, "Tor", |n| {
        n.rpc(&["getnetworkinfo"])
            .is_some_and(|i| i["tor"]["bootstrapped"] == true)
    });
    add_peer(&node, &fx.onions[4]);
    let t = tx(2);
    let txid = t.compute_txid().to_string();
    let hex = bitcoin::consensus::encode::serialize_hex(&t);
    assert_eq!(
        node.rpc(&["sendrawtransaction", &hex]).unwrap(),
        Value::String(txid.clone())
    );
    node.wait_for(LIMIT, "a private-broadcast connection", |n| {
        n.peers()
            .iter()
            .any(|p| p["connection_type"] == "private-broadcast" && p["version"] != 0)
    });
    let peers = node.peers();
    let pb = peers
        .iter()
        .find(|p| p["connection_type"] == "private-broadcast")
        .unwrap();
    assert!(pb["circuit"]["id"].is_string(), "{pb:#}");
    assert!(
        pb["isolation"].as_str().unwrap().starts_with("conn/"),
        "{pb:#}"
    );
    assert_eq!(pb["network"], "onion");
    assert_eq!(pb["transport_protocol_type"], "v2");

    let removed = node.rpc(&["abortprivatebroadcast", &txid]).unwrap();
    assert_eq!(removed["removed_transactions"][0]["txid"], txid);
    node.wait_for(LIMIT, "the connection closed", |n| {
        n.peers()
            .iter()
            .all(|p| p["connection_type"] != "private-broadcast")
    });
    assert!(entry(&node, &txid).is_none());
    assert!(fx.nodes[4].mempool().is_empty(), "never asked for it");
    node.stop();
}

#[test]
fn kill_dash_nine_after_the_answer_loses_nothing_and_a_restart_resumes() {
    let Some(fx) = fixture("kill_dash_nine_loses_nothing") else {
        return;
    };
    let _serial = one_at_a_time();
    // No peer known yet: the transaction can only wait in the queue.
    let node = Nightjar::spawn(args(fx, &["--connect", &regular(fx)]));
    let t = tx(3);
    let txid = t.compute_txid();
    let hex = bitcoin::consensus::encode::serialize_hex(&t);
    assert_eq!(
        node.rpc(&["sendrawtransaction", &hex]).unwrap(),
        Value::String(txid.to_string())
    );
    let pid = node.daemon.pid().to_string();
    assert!(
        Command::new("kill")
            .args(["-9", &pid])
            .status()
            .unwrap()
            .success()
    );
    let Nightjar {
        mut daemon,
        datadir,
        ..
    } = node;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !daemon.exited() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(daemon.exited(), "killed");
    let queue = std::fs::read_to_string(datadir.path().join("regtest/privatebroadcast.json"))
        .expect("the queue file was written before the answer");
    assert!(queue.contains(&txid.to_string()), "{queue}");

    let mut node = Nightjar::spawn_in(datadir, args(fx, &["--connect", &regular(fx)]));
    node.wait_for(LIMIT, "the resumed broadcast", |n| {
        entry(n, &txid.to_string()).is_some_and(|e| e["seen"] == false)
    });
    assert!(
        node.daemon
            .lines()
            .iter()
            .any(|l| l.contains("resuming private broadcasts")),
        "the restart says so"
    );
    add_peer(&node, &fx.onions[1]);
    let receiver = &fx.nodes[1];
    receiver
        .wait_for(LIMIT, |_| !carriers(receiver, txid).is_empty())
        .unwrap_or_else(|s| panic!("node1 never got it: {s:#?}"));
    node.wait_for(LIMIT, "the receipt", |n| {
        entry(n, &txid.to_string())
            .is_some_and(|e| e["peers"].as_array().is_some_and(|p| !p.is_empty()))
    });
    node.stop();
}
