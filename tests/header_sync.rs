//! Headers-first sync by a real `nightjar` process from in-repo v2 test
//! peers over loopback (Tor explicitly off, regtest): 50 000 headers, a
//! restart that resumes from the file, a reorg announced by the peer, and a
//! peer serving invalid headers, which is scored and dropped.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr
)]

#[path = "support/daemon_log.rs"]
mod daemon_log;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bitcoin::block::Header;
use bitcoin::pow::CompactTarget;
use daemon_log::Daemon;
use nightjar::chain::regtest_miner::{mine_regtest_branch, mine_regtest_chain_until};
use nightjar_testpeer::node::{NodeSpec, PeerFarm, ScriptedNode};
use serde_json::Value;

/// Headers the sync test serves: the minimum.
const CHAIN_LEN: usize = 50_000;

/// Long enough for a debug build to validate 50 000 headers on a loaded
/// two-core machine (it takes a few seconds).
const SYNC_LIMIT: Duration = Duration::from_secs(180);

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// `n` regtest headers ending about now (so the synced node is out of
/// initial sync and takes announcements).
fn recent_chain(n: usize) -> Vec<Header> {
    mine_regtest_chain_until(n, unix_now())
}

/// The daemon on regtest without Tor, connected only to `peer`.
fn start_daemon(datadir: &Path, rpc_port: u16, peer: &ScriptedNode) -> Daemon {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_nightjar"));
    cmd.args([
        "--network",
        "regtest",
        "--no-tor",
        "--no-dnsseed",
        "--datadir",
    ])
    .arg(datadir)
    .arg("--connect")
    .arg(peer.addr().to_string())
    .arg("--rpcport")
    .arg(rpc_port.to_string())
    .arg("--log-sensitive")
    .env("HOME", datadir)
    .env("RUST_LOG", "info");
    Daemon::spawn(cmd).unwrap()
}

/// One RPC call through `nightjar-cli`; the JSON result.
fn rpc(datadir: &Path, port: u16, args: &[&str]) -> Option<Value> {
    let out = Command::new(env!("CARGO_BIN_EXE_nightjar-cli"))
        .arg(format!("-datadir={}", datadir.display()))
        .arg("-regtest")
        .arg(format!("-rpcport={port}"))
        .arg("-rpcwait")
        .args(args)
        .output()
        .unwrap();
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).unwrap();
    Some(serde_json::from_str(text.trim()).unwrap_or(Value::String(text.trim().to_owned())))
}

fn block_count(datadir: &Path, port: u16) -> Option<u64> {
    rpc(datadir, port, &["getblockcount"]).and_then(|v| v.as_u64())
}

/// Poll `getblockcount` until it is `want`; the daemon's log on failure.
fn wait_for_height(daemon: &mut Daemon, datadir: &Path, port: u16, want: u64) {
    let deadline = std::time::Instant::now() + SYNC_LIMIT;
    let mut last = None;
    while std::time::Instant::now() < deadline {
        last = block_count(datadir, port);
        if last == Some(want) {
            return;
        }
        daemon.pump(Duration::from_millis(200));
        assert!(
            !daemon.exited(),
            "daemon exited:\n{}",
            daemon.lines().join("\n")
        );
    }
    panic!(
        "height {last:?}, not {want}, after {SYNC_LIMIT:?}; the daemon said:\n{}",
        daemon.lines().join("\n")
    );
}

fn best_hash(datadir: &Path, port: u16) -> String {
    rpc(datadir, port, &["getbestblockhash"])
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap()
}

fn stop(mut daemon: Daemon) -> Vec<String> {
    let status = daemon.terminate(Duration::from_secs(30)).unwrap();
    assert!(
        status.is_some_and(|s| s.success()),
        "no clean exit ({status:?}):\n{}",
        daemon.lines().join("\n")
    );
    daemon.lines().to_vec()
}

#[test]
fn daemon_syncs_50k_headers_over_v2_resumes_after_restart_and_follows_a_reorg() {
    let chain = recent_chain(CHAIN_LEN);
    assert_eq!(chain.len(), CHAIN_LEN);
    let farm = PeerFarm::new().unwrap();
    let peer = farm
        .start_node(NodeSpec::regtest("sync-peer").with_headers(chain.clone()))
        .unwrap();
    let datadir = tempfile::tempdir().unwrap();
    let port = nightjar_testpeer::free_port().unwrap();

    // 1. A fresh node syncs everything from the peer, over BIP324.
    let mut daemon = start_daemon(datadir.path(), port, &peer);
    wait_for_height(&mut daemon, datadir.path(), port, CHAIN_LEN as u64);
    assert_eq!(
        best_hash(datadir.path(), port),
        chain[CHAIN_LEN - 1].block_hash().to_string()
    );
    let stats = peer.stats();
    assert_eq!(stats.v2_sessions, 1, "{stats:?}");
    assert_eq!(stats.headers_sent, CHAIN_LEN);
    // 25 full replies, each asking for more, and the empty one that ends it.
    assert_eq!(stats.getheaders_received, CHAIN_LEN / 2000 + 1);
    assert_eq!(stats.sendheaders_received, 1);
    let lines = stop(daemon);
    assert!(
        lines
            .iter()
            .any(|l| l.contains("syncing headers from this peer")),
        "{lines:#?}"
    );
    let file = datadir.path().join("regtest").join("headers.dat");
    let size = std::fs::metadata(&file).unwrap().len();
    assert_eq!(size, 20 + 84 * CHAIN_LEN as u64, "file header + records");

    // 2. A restart resumes from the file: the height is there before any
    // header arrives, and the peer is asked only for what follows the tip.
    let before = peer.stats();
    let mut daemon = start_daemon(datadir.path(), port, &peer);
    assert_eq!(block_count(datadir.path(), port), Some(CHAIN_LEN as u64));
    assert!(
        daemon.wait_until(SYNC_LIMIT, |lines| lines
            .iter()
            .any(|l| l.contains("header chain loaded") && l.contains("height=50000"))),
        "{:#?}",
        daemon.lines()
    );
    let again = peer
        .wait_for(SYNC_LIMIT, |s| {
            let s = s.since(&before);
            s.getheaders_received >= 1 && s.sendheaders_received == 1
        })
        .unwrap()
        .since(&before);
    let asked = again.connections[0].last_getheaders.clone().unwrap();
    assert_eq!(asked.locator_hashes[0], chain[CHAIN_LEN - 1].block_hash());
    assert_eq!(again.headers_sent, 0);

    // 3. The peer's chain reorganises onto a branch with more work: it
    // announces the branch and the node follows it.
    let fork = CHAIN_LEN - 10;
    let branch = mine_regtest_branch(&chain[fork - 1], 12, chain[fork - 1].time + 1, 7);
    let mut reorged = chain[..fork].to_vec();
    reorged.extend(&branch);
    peer.set_headers(reorged.clone());
    wait_for_height(&mut daemon, datadir.path(), port, (fork + 12) as u64);
    assert_eq!(
        best_hash(datadir.path(), port),
        branch[11].block_hash().to_string()
    );
    let tips = rpc(datadir.path(), port, &["getchaintips"]).unwrap();
    let tips = tips.as_array().unwrap();
    assert_eq!(tips.len(), 2, "{tips:?}");
    assert!(
        tips.iter()
            .any(|t| t["status"] == "active" && t["branchlen"] == 0)
    );
    assert!(tips.iter().any(|t| t["status"] == "valid-headers"
        && t["branchlen"] == 10
        && t["hash"] == chain[CHAIN_LEN - 1].block_hash().to_string()));
    let lines = stop(daemon);
    assert!(
        lines.iter().any(|l| l.contains("header chain reorganised")),
        "{lines:#?}"
    );
}

#[test]
fn a_peer_serving_invalid_headers_is_scored_and_dropped_and_nothing_is_kept() {
    let mut chain = recent_chain(100);
    // Header 50 claims mainnet's difficulty without the work: its hash
    // misses its own target.
    chain[49].bits = CompactTarget::from_consensus(0x1d00_ffff);
    let farm = PeerFarm::new().unwrap();
    let peer = farm
        .start_node(NodeSpec::regtest("liar").with_headers(chain))
        .unwrap();
    let datadir = tempfile::tempdir().unwrap();
    let port = nightjar_testpeer::free_port().unwrap();
    let mut daemon = start_daemon(datadir.path(), port, &peer);
    let dropped = daemon.wait_until(SYNC_LIMIT, |lines| {
        lines
            .iter()
            .any(|l| l.contains("peer disconnected") && l.contains("misbehaviour score 100"))
    });
    assert!(dropped, "{:#?}", daemon.lines());
    assert!(
        daemon
            .lines()
            .iter()
            .any(|l| l.contains("invalid header from peer") && l.contains("invalid proof of work")),
        "{:#?}",
        daemon.lines()
    );
    let stats = peer
        .wait_for(Duration::from_secs(30), |s| {
            s.connections.first().is_some_and(|c| c.closed)
        })
        .unwrap();
    assert_eq!(stats.headers_sent, 100);
    // All or nothing: the 49 good headers before the bad one are not kept.
    assert_eq!(block_count(datadir.path(), port), Some(0));
    stop(daemon);
}
