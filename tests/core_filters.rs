//! Compact block filters (BIP157/158) from real Bitcoin Core nodes behind
//! onion services on the private Tor network:
//!
//! - two Cores with `-blockfilterindex=1 -peerblockfilters=1` (the second
//!   syncs from the first over loopback), each behind its own onion
//!   service;
//! - nightjar `--privacy --block-filters` dials both over Tor, settles the
//!   filter header chain from both (checkpoints compared, the tail
//!   cross-checked), and its filter headers and filters equal Core's own
//!   `getblockfilter` at heights below, on and above a checkpoint;
//! - `scanblocks` for an `addr()` descriptor returns exactly the blocks
//!   Core's own `scanblocks` returns, which include every block mined to
//!   that address;
//! - `getblock` returns Core's block byte for byte;
//! - a reorg on Core (the tip invalidated, a longer branch mined) is
//!   followed: the filter header at the new tip is Core's.

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

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, TcpListener};
use std::sync::OnceLock;
use std::time::Duration;

use bitcoin::{Address, BlockHash, Network, ScriptBuf};
use nightjar_corenode::{CoreBinaries, CoreConfig, CoreNode, core_required};
use nightjar_node::Nightjar;
use nightjar_privnet::{PrivNet, PrivNetConfig};
use serde_json::Value;

/// The onion services' virtual port (regtest's P2P port).
const ONION_PORT: u16 = 18444;

/// Bootstrap, two rendezvous, header and filter header sync.
const LIMIT: Duration = Duration::from_secs(300);

/// Blocks before the first payment to the watched address: past the first
/// checkpoint (height 1000), so checkpoints are compared and used.
const LEAD: usize = 1_050;

/// Core's P2P ports, fixed before the network starts.
fn core_ports() -> &'static [u16; 2] {
    static PORTS: OnceLock<[u16; 2]> = OnceLock::new();
    PORTS.get_or_init(|| {
        let held: Vec<TcpListener> = (0..2)
            .map(|_| TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap())
            .collect();
        let port = |i: usize| held[i].local_addr().unwrap().port();
        [port(0), port(1)]
    })
}

fn setup(test: &str) -> Option<(CoreBinaries, &'static PrivNet)> {
    let bins = core_required(test)?;
    if !nightjar_privnet::tor_required(test) {
        return None;
    }
    let net = nightjar_privnet::shared(|| PrivNetConfig {
        onion_services: core_ports()
            .iter()
            .map(|p| (ONION_PORT, (Ipv4Addr::LOCALHOST, *p).into()))
            .collect(),
        dir: std::env::var_os("NIGHTJAR_PRIVNET_DIR").map(Into::into),
        ..PrivNetConfig::default()
    })
    .unwrap_or_else(|e| panic!("private Tor network failed to start: {e:#}"));
    Some((bins, net))
}

fn filter_core(name: &str, port: u16) -> CoreConfig {
    CoreConfig::regtest(name)
        .p2p_port(port)
        .conf("blockfilterindex=1")
        .conf("peerblockfilters=1")
}

/// A regtest address nobody else pays: P2WSH of `OP_2`.
fn watched_address() -> Address {
    Address::p2wsh(&ScriptBuf::from_bytes(vec![0x52]), Network::Regtest)
}

/// Another one, for the reorg's new branch.
fn other_address() -> Address {
    Address::p2wsh(&ScriptBuf::from_bytes(vec![0x53]), Network::Regtest)
}

/// `addr(...)#checksum`, the checksum from Core's `getdescriptorinfo`.
fn descriptor(core: &CoreNode, address: &Address) -> String {
    let info = core
        .rpc(&["getdescriptorinfo", &format!("addr({address})")])
        .unwrap();
    info["descriptor"].as_str().unwrap().to_owned()
}

fn hash_at(core: &CoreNode, height: usize) -> String {
    core.cli(&["getblockhash", &height.to_string()]).unwrap()
}

fn filter_headers(node: &Nightjar) -> u64 {
    node.rpc(&["getblockchaininfo"])
        .and_then(|i| i["filters"]["filter_headers"].as_u64())
        .unwrap_or(0)
}

fn relevant(scan: &Value) -> BTreeSet<String> {
    scan["relevant_blocks"]
        .as_array()
        .unwrap_or_else(|| panic!("no relevant_blocks in {scan:#}"))
        .iter()
        .map(|h| h.as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn filters_from_cores_onion_services_match_cores_own_index() {
    let Some((bins, net)) = setup("filters_from_cores_onion_services") else {
        return;
    };
    let [port_a, port_b] = *core_ports();
    let mut core = CoreNode::start(&bins, filter_core("core-filters-a", port_a)).unwrap();
    let watched = watched_address();
    core.mine(LEAD).unwrap();
    let mut paid: Vec<BlockHash> = Vec::new();
    for _ in 0..3 {
        paid.extend(core.mine_to(1, &watched).unwrap());
        core.mine(40).unwrap();
    }
    let tip_height = core.header_count().unwrap() as usize;
    let mut second = CoreNode::start(
        &bins,
        filter_core("core-filters-b", port_b).connect(&format!("127.0.0.1:{port_a}")),
    )
    .unwrap();
    let tip = core.best_block_hash().unwrap();
    second
        .wait_for(LIMIT, "the second Core to sync", |c| {
            Ok(c.best_block_hash()? == tip)
        })
        .unwrap();
    // Both indexes must be complete before they are compared with ours.
    for c in [&mut core, &mut second] {
        c.wait_for(LIMIT, "the filter index", |c| {
            let info = c.rpc(&["getindexinfo", "basic block filter index"])?;
            Ok(info["basic block filter index"]["synced"] == true)
        })
        .unwrap();
    }

    let onions: Vec<String> = (0..2)
        .map(|i| format!("{}:{ONION_PORT}", net.onion_services()[i].onion_address))
        .collect();
    let mut node = Nightjar::spawn([
        "--tor-network",
        &net.arti_network_file().display().to_string(),
        "--privacy",
        "--block-filters",
        "--connect",
        &onions[0],
        "--connect",
        &onions[1],
    ]);
    node.wait_for(LIMIT, "filter headers for Core's whole chain", |n| {
        filter_headers(n) == tip_height as u64 + 1
    });
    let info = node.rpc(&["getblockchaininfo"]).unwrap();
    assert_eq!(info["filters"]["peers"], 2, "{info:#}");
    assert_eq!(info["filters"]["cross_checked"], true, "{info:#}");
    assert_eq!(info["filters"]["disputed_from"], Value::Null, "{info:#}");

    // Filter headers and filters equal Core's at heights around the
    // first checkpoint, on it, and at the tip.
    for height in [0, 1, 999, 1000, 1001, LEAD + 1, tip_height] {
        let hash = hash_at(&core, height);
        let theirs = core.rpc(&["getblockfilter", &hash]).unwrap();
        let ours = node
            .call(&["getblockfilter", &hash])
            .unwrap_or_else(|e| panic!("height {height}: {e}"));
        assert_eq!(ours["header"], theirs["header"], "height {height}");
        assert_eq!(ours["filter"], theirs["filter"], "height {height}");
    }

    // scanblocks: the same blocks as Core's own, which include every
    // block paying the watched address.
    let desc = format!("[\"{}\"]", descriptor(&core, &watched));
    let theirs = core.rpc(&["scanblocks", "start", &desc]).unwrap();
    let ours = node.call(&["scanblocks", "start", &desc]).unwrap();
    assert_eq!(ours["completed"], true, "{ours:#}");
    assert_eq!(ours["from_height"], 0, "{ours:#}");
    assert_eq!(ours["to_height"], tip_height, "{ours:#}");
    assert_eq!(relevant(&ours), relevant(&theirs));
    for h in &paid {
        assert!(relevant(&ours).contains(&h.to_string()), "{h} missing");
    }
    // A sub-range, as Core takes it.
    let start = (LEAD + 2).to_string();
    let theirs = core.rpc(&["scanblocks", "start", &desc, &start]).unwrap();
    let ours = node.call(&["scanblocks", "start", &desc, &start]).unwrap();
    assert_eq!(relevant(&ours), relevant(&theirs));
    assert_eq!(relevant(&ours).len(), 2, "{ours:#}");

    // getblock: Core's block, byte for byte, and its transactions.
    let block = paid[1].to_string();
    let ours = node.call(&["getblock", &block, "0"]).unwrap();
    let theirs = core.cli(&["getblock", &block, "0"]).unwrap();
    assert_eq!(ours, Value::String(theirs));
    let ours = node.call(&["getblock", &block, "1"]).unwrap();
    let theirs = core.rpc(&["getblock", &block, "1"]).unwrap();
    for field in [
        "hash",
        "height",
        "merkleroot",
        "tx",
        "size",
        "weight",
        "nTx",
    ] {
        assert_eq!(ours[field], theirs[field], "{field}");
    }

    // A reorg on Core: the last two blocks replaced by three others.
    let replaced = hash_at(&core, tip_height - 1);
    for c in [&core, &second] {
        c.cli(&["invalidateblock", &replaced]).unwrap();
    }
    core.mine_to(3, &other_address()).unwrap();
    let new_tip = core.best_block_hash().unwrap();
    second
        .wait_for(LIMIT, "the second Core to follow", |c| {
            Ok(c.best_block_hash()? == new_tip)
        })
        .unwrap();
    let new_height = tip_height + 1;
    node.wait_for(LIMIT, "filter headers for the new branch", |n| {
        n.best_hash() == Some(new_tip.to_string()) && filter_headers(n) == new_height as u64 + 1
    });
    for height in [tip_height - 1, new_height] {
        let hash = hash_at(&core, height);
        let theirs = core.rpc(&["getblockfilter", &hash]).unwrap();
        let ours = node.rpc(&["getblockfilter", &hash]).unwrap();
        assert_eq!(ours["header"], theirs["header"], "height {height}");
    }
    // The filter header file follows the reorg too: after a restart the
    // node holds the same chain without asking again.
    let (_, dir) = node.stop_keeping_data();
    let mut node = Nightjar::spawn_in(
        dir,
        [
            "--tor-network",
            &net.arti_network_file().display().to_string(),
            "--privacy",
            "--block-filters",
            "--connect",
            &onions[0],
        ],
    );
    node.wait_for(LIMIT, "the filter headers reloaded", |n| {
        filter_headers(n) == new_height as u64 + 1
    });
    node.stop();
    second.stop().unwrap();
    core.stop().unwrap();
}
