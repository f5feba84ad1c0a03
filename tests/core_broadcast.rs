//! Private broadcast against Bitcoin Core over the private Tor network.
//!
//! One regtest `bitcoind` sits behind two C-tor onion services. A
//! `--privacy` nightjar keeps its regular connection to the first; the
//! second is only in its address book (`addpeeraddress`), so it is a peer
//! the node holds no connection to: where a private broadcast may go. A
//! transaction spending one of Core's coinbase outputs, submitted with
//! `nightjar-cli sendrawtransaction`, must reach Core's mempool over a
//! separate, short-lived connection whose `version` is Core's own private
//! broadcast's, and come back over the regular one as "seen".

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

use std::net::{Ipv4Addr, TcpListener};
use std::path::Path;
use std::time::{Duration, Instant};

use bitcoin::absolute::LockTime;
use bitcoin::transaction::Version;
use bitcoin::{Amount, OutPoint, ScriptBuf, Sequence, Transaction, TxIn, TxOut, Txid, Witness};
use nightjar_corenode::{CoreConfig, CoreNode, anyone_can_spend_address, core_required};
use nightjar_node::Nightjar;
use nightjar_privnet::PrivNetConfig;
use serde_json::Value;

/// The onion services' virtual port (regtest's P2P port).
const ONION_PORT: u16 = 18444;

/// Bootstrap, rendezvous, a sync, then the broadcast and its echo.
const LIMIT: Duration = Duration::from_secs(300);

/// Blocks to mine: the first coinbase matures after 100 more.
const BLOCKS: usize = 101;

/// The fee the test transaction pays (about 90 sat/vB).
const FEE: Amount = Amount::from_sat(10_000);

/// A transaction spending the coinbase of block 1, which paid the
/// anyone-can-spend P2WSH(`OP_TRUE`) address, back to that address.
fn spend_first_coinbase(core: &CoreNode) -> Transaction {
    let hash = core.cli(&["getblockhash", "1"]).unwrap();
    let block = core.rpc(&["getblock", hash.trim(), "2"]).unwrap();
    let coinbase = &block["tx"][0];
    let txid: Txid = coinbase["txid"].as_str().unwrap().parse().unwrap();
    let value = Amount::from_btc(coinbase["vout"][0]["value"].as_f64().unwrap()).unwrap();
    let payee = anyone_can_spend_address().script_pubkey();
    assert_eq!(
        coinbase["vout"][0]["scriptPubKey"]["hex"].as_str().unwrap(),
        payee.to_hex_string()
    );
    Transaction {
        version: Version::TWO,
        lock_time: LockTime::ZERO,
        input: vec![TxIn {
            previous_output: OutPoint::new(txid, 0),
            script_sig: ScriptBuf::new(),
            sequence: Sequence::MAX,
            // The witness script itself: OP_TRUE.
            witness: Witness::from_slice(&[vec![0x51]]),
        }],
        output: vec![TxOut {
            value: value - FEE,
            script_pubkey: payee,
        }],
    }
}

/// The id Core gave the peer whose `version` carried `user_agent`, from
/// its debug log (`-debug=net`).
fn core_peer_ids_with_agent(log: &str, user_agent: &str) -> Vec<u64> {
    let prefix = format!("receive version message: {user_agent}:");
    log.lines()
        .filter(|l| l.contains(&prefix))
        .filter_map(|l| {
            let at = l.find("peer=")? + "peer=".len();
            l[at..]
                .split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse()
                .ok()
        })
        .collect()
}

#[test]
fn a_privacy_node_broadcasts_privately_into_cores_mempool_and_sees_it_come_back() {
    let test = "a_privacy_node_broadcasts_privately_into_cores_mempool";
    let Some(bins) = core_required(test) else {
        return;
    };
    if !nightjar_privnet::tor_required(test) {
        return;
    }
    let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let net = nightjar_privnet::shared(|| PrivNetConfig {
        // Two onion services in front of the same Core.
        onion_services: vec![
            (ONION_PORT, (Ipv4Addr::LOCALHOST, port).into()),
            (ONION_PORT, (Ipv4Addr::LOCALHOST, port).into()),
        ],
        dir: std::env::var_os("NIGHTJAR_PRIVNET_DIR").map(|d| Path::new(&d).join("core_broadcast")),
        ..PrivNetConfig::default()
    })
    .unwrap_or_else(|e| panic!("private Tor network failed to start: {e:#}"));
    let core = CoreNode::start(&bins, CoreConfig::regtest("core-mempool").p2p_port(port)).unwrap();
    core.mine_to(BLOCKS, &anyone_can_spend_address()).unwrap();
    let tx = spend_first_coinbase(&core);
    let txid = tx.compute_txid().to_string();
    let regular = format!("{}:{ONION_PORT}", net.onion_services()[0].onion_address);
    let other = net.onion_services()[1].onion_address.clone();

    let mut node = Nightjar::spawn([
        "--tor-network",
        &net.arti_network_file().display().to_string(),
        "--privacy",
        "--connect",
        &regular,
    ]);
    node.wait_for(LIMIT, "Core's chain over the regular connection", |n| {
        n.block_count() == Some(BLOCKS as u64)
    });
    let added = node
        .rpc(&["addpeeraddress", &other, &ONION_PORT.to_string()])
        .unwrap();
    assert_eq!(added["success"], true, "{added}");

    let hex = bitcoin::consensus::encode::serialize_hex(&tx);
    let submitted = Instant::now();
    let answer = node.rpc(&["sendrawtransaction", &hex]).unwrap();
    assert_eq!(answer, Value::String(txid.clone()));

    // Core's mempool has it...
    let mut core = core;
    core.wait_for(LIMIT, "the transaction in Core's mempool", |c| {
        Ok(c.rpc(&["getrawmempool"])?
            .as_array()
            .is_some_and(|m| m.iter().any(|t| t.as_str() == Some(txid.as_str()))))
    })
    .unwrap();
    let in_mempool = submitted.elapsed();
    // ...and nightjar saw it come back over its regular connection.
    node.wait_for(LIMIT, "the transaction seen", |n| {
        n.rpc(&["getprivatebroadcastinfo"]).is_some_and(|i| {
            i["transactions"]
                .as_array()
                .is_some_and(|t| t.iter().any(|t| t["txid"] == txid && t["seen"] == true))
        })
    });
    eprintln!(
        "figure: sendrawtransaction to Core's mempool {:.1} s, to seen {:.1} s (private Tor network, one onion hop each way)",
        in_mempool.as_secs_f64(),
        submitted.elapsed().as_secs_f64()
    );
    let info = node.rpc(&["getprivatebroadcastinfo"]).unwrap();
    let entry = info["transactions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["txid"] == txid)
        .unwrap()
        .clone();
    let receipts = entry["peers"].as_array().unwrap();
    assert!(!receipts.is_empty(), "{info:#}");
    assert!(
        receipts
            .iter()
            .all(|r| r["network"] == "onion" && r["received"].is_u64()),
        "{info:#}"
    );
    assert!(entry.get("hex").is_none() || entry["seen"] == true);

    // Core's side: the transaction came from a connection that sent Core's
    // own private-broadcast `version`, not from nightjar's regular one,
    // and that connection is gone.
    let log = core.debug_log();
    let broadcasters = core_peer_ids_with_agent(&log, "/pynode:0.0.1/");
    let regular_ids = core_peer_ids_with_agent(&log, "/nightjar:0.1.0/");
    assert!(
        !broadcasters.is_empty(),
        "no private-broadcast version in Core's log"
    );
    assert_eq!(
        regular_ids.len(),
        1,
        "one regular connection: {regular_ids:?}"
    );
    let tx_from: Vec<u64> = log
        .lines()
        .filter(|l| l.contains("received: tx ("))
        .filter_map(|l| l.rsplit("peer=").next()?.trim().parse().ok())
        .collect();
    assert!(!tx_from.is_empty(), "Core logged no tx message");
    for peer in &tx_from {
        assert!(
            broadcasters.contains(peer),
            "tx from peer={peer}, not a private-broadcast connection {broadcasters:?}"
        );
        assert_ne!(Some(peer), regular_ids.first());
    }
    let connected: Vec<u64> = core
        .peers()
        .unwrap()
        .iter()
        .filter_map(|p| p["id"].as_u64())
        .collect();
    assert!(
        tx_from.iter().all(|p| !connected.contains(p)),
        "short-lived: {tx_from:?} still in {connected:?}"
    );
    assert!(
        connected.contains(&regular_ids[0]),
        "the regular connection stays"
    );
    // The version Core received carried nothing of ours.
    let version_line = log
        .lines()
        .find(|l| l.contains("receive version message: /pynode:0.0.1/:"))
        .unwrap();
    assert!(version_line.contains("blocks=0"), "{version_line}");
    assert!(version_line.contains("txrelay=0"), "{version_line}");
    node.stop();
}
