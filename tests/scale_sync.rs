//! Header sync at scale by a real `nightjar` process (regtest, Tor off):
//! a 200 000-header, mainnet-shaped chain (random intervals, timestamps
//! that go backwards, see `mine_mainnet_shaped_chain`) served by an
//! in-process scripted peer over loopback TCP.
//!
//! It proves that the daemon
//! - syncs the whole chain to the served tip (`getbestblockhash`,
//!   `getblockcount`);
//! - keeps exactly one record per header in `headers.dat`, nothing more;
//! - answers `getblockhash` and `getblockheader` (verbose and hex) at low,
//!   middle and high heights with exactly the served headers. The chain
//!   keeps full headers on disk only, so these answers are headers read
//!   back from the file, and `mediantime`, `previousblockhash` and
//!   `nextblockhash` need their neighbours read back too;
//! - after a clean stop, restarts on the same data directory with the peer
//!   gone and reloads the same chain from the file, with the same answers.
//!
//! The daemon's resident memory after the sync and after the restart, and
//! the time from the restart to the first RPC answer, are printed
//! (`--nocapture`); they are figures, not asserts, as are the mining and
//! sync times.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr
)]

#[path = "support/daemon_log.rs"]
mod daemon_log;
#[path = "support/nightjar_node.rs"]
mod nightjar_node;

use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use bitcoin::block::Header;
use bitcoin::consensus::encode::serialize_hex;
use nightjar::chain::regtest_miner::{mine_mainnet_shaped_chain, regtest_genesis};
use nightjar::chain::store::{FILE_HEADER_LEN, RECORD_LEN};
use nightjar_node::Nightjar;
use nightjar_testpeer::node::{NodeSpec, PeerFarm};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::Value;
use tempfile::TempDir;

/// Headers after genesis the scripted peer serves.
const CHAIN_LEN: usize = 200_000;

/// The chain's end: 2025-01-01T00:00:00Z. Fixed, so the chain is the same
/// on every run; being in the past, the node stays in initial sync, which
/// is what a node syncing this many headers is in.
const END_UNIX: u64 = 1_735_689_600;

/// The miner's seed (any fixed value).
const SEED: u64 = 0x5ca1e;

/// Generous: only to keep a broken daemon from hanging the test.
const SYNC_LIMIT: Duration = Duration::from_secs(600);

/// Generous: for the restart to load the file and answer RPC.
const START_LIMIT: Duration = Duration::from_secs(120);

/// Heights checked by `getblockhash` and `getblockheader`, besides a few
/// seeded random ones: genesis, the edges of the first and second
/// `headers` batches, the middle and the tip.
const FIXED_HEIGHTS: [usize; 10] = [
    0, 1, 2, 1_999, 2_000, 2_001, 99_999, 100_000, 199_999, 200_000,
];

/// The daemon's options: Tor off, connected only to `peer`.
fn args(peer: SocketAddr) -> Vec<String> {
    [
        "--no-tor",
        "--no-dnsseed",
        "--log-sensitive",
        "--connect",
        &peer.to_string(),
    ]
    .map(str::to_owned)
    .to_vec()
}

/// `VmRSS` of process `pid` as `/proc` shows it (e.g. "123456 kB").
fn vm_rss(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:").map(|v| v.trim().to_owned()))
        })
        .unwrap_or_else(|| "unknown".to_owned())
}

/// What one start of the daemon showed.
struct Started {
    node: Nightjar,
    /// Spawn to the RPC port accepting connections and the cookie written
    /// (the server starts once the chain is loaded).
    port_open: Duration,
    /// Spawn to the first `getblockcount` answer.
    answered: Duration,
    /// That answer.
    height: u64,
}

/// Start on `datadir` (stopped cleanly before, if at all: no `.cookie`
/// left) and wait for the first `getblockcount` answer. The RPC port and
/// the cookie are polled first: `nightjar-cli -rpcwait` retries only once
/// a second, which would dominate the figure. (The port accepts
/// connections a moment before the cookie is written; a call made in
/// between fails for want of credentials and `-rpcwait` retries it a second
/// later.)
fn start(datadir: TempDir, args: &[String]) -> Started {
    let begun = Instant::now();
    let cookie = datadir.path().join("regtest").join(".cookie");
    let mut node = Nightjar::spawn_in(datadir, args.iter().cloned());
    let rpc: SocketAddr = ([127, 0, 0, 1], node.rpc_port).into();
    let deadline = begun + START_LIMIT;
    while TcpStream::connect_timeout(&rpc, Duration::from_millis(200)).is_err() || !cookie.exists()
    {
        node.daemon.pump(Duration::from_millis(5));
        assert!(
            !node.daemon.exited() && Instant::now() < deadline,
            "no RPC server within {START_LIMIT:?}:\n{}",
            node.daemon.lines().join("\n")
        );
    }
    let port_open = begun.elapsed();
    let height = loop {
        if let Some(h) = node.block_count() {
            break h;
        }
        assert!(
            !node.daemon.exited() && Instant::now() < deadline,
            "no getblockcount answer within {START_LIMIT:?}:\n{}",
            node.daemon.lines().join("\n")
        );
        node.daemon.pump(Duration::from_millis(20));
    };
    Started {
        node,
        port_open,
        answered: begun.elapsed(),
        height,
    }
}

/// `chain[h]` is the header at height `h` (genesis first).
fn with_genesis(headers: Vec<Header>) -> Vec<Header> {
    let mut chain = Vec::with_capacity(headers.len() + 1);
    chain.push(regtest_genesis());
    chain.extend(headers);
    chain
}

/// Core's median time past of the header at `height`: the median of its
/// time and the times of the up to 10 headers before it.
fn median_time_past(chain: &[Header], height: usize) -> u32 {
    let mut times: Vec<u32> = chain[height.saturating_sub(10)..=height]
        .iter()
        .map(|h| h.time)
        .collect();
    times.sort_unstable();
    times[times.len() / 2]
}

/// `getblockhash` and `getblockheader` (verbose and hex) at each of
/// `heights` answer exactly what the peer served.
fn check_headers(node: &Nightjar, chain: &[Header], heights: &[usize], when: &str) {
    let tip = chain.len() - 1;
    for &h in heights {
        let header = &chain[h];
        let hash = header.block_hash().to_string();
        let got = node.rpc(&["getblockhash", &h.to_string()]);
        assert_eq!(
            got,
            Some(Value::String(hash.clone())),
            "{when}: getblockhash {h}"
        );

        let hex = node.rpc(&["getblockheader", &hash, "false"]);
        assert_eq!(
            hex,
            Some(Value::String(serialize_hex(header))),
            "{when}: getblockheader {hash} false (height {h})"
        );

        let v = node
            .rpc(&["getblockheader", &hash])
            .unwrap_or_else(|| panic!("{when}: getblockheader {hash} (height {h}) failed"));
        let context = format!("{when}: getblockheader at height {h}: {v}");
        assert_eq!(v["hash"], hash, "{context}");
        assert_eq!(v["height"], h, "{context}");
        assert_eq!(v["confirmations"], tip - h + 1, "{context}");
        assert_eq!(v["version"], header.version.to_consensus(), "{context}");
        assert_eq!(v["merkleroot"], header.merkle_root.to_string(), "{context}");
        assert_eq!(v["time"], header.time, "{context}");
        assert_eq!(v["mediantime"], median_time_past(chain, h), "{context}");
        assert_eq!(v["nonce"], header.nonce, "{context}");
        assert_eq!(
            v["bits"],
            format!("{:08x}", header.bits.to_consensus()),
            "{context}"
        );
        // Every regtest header (nBits 0x207fffff) adds 2 to the work.
        assert_eq!(v["chainwork"], format!("{:064x}", 2 * (h + 1)), "{context}");
        if h == 0 {
            assert!(v.get("previousblockhash").is_none(), "{context}");
        } else {
            assert_eq!(
                v["previousblockhash"],
                chain[h - 1].block_hash().to_string(),
                "{context}"
            );
        }
        if h == tip {
            assert!(v.get("nextblockhash").is_none(), "{context}");
        } else {
            assert_eq!(
                v["nextblockhash"],
                chain[h + 1].block_hash().to_string(),
                "{context}"
            );
        }
    }
    // One past the tip is out of range.
    assert_eq!(
        node.rpc(&["getblockhash", &(tip + 1).to_string()]),
        None,
        "{when}: getblockhash past the tip"
    );
}

#[test]
fn daemon_syncs_200k_mainnet_shaped_headers_serves_them_from_the_file_and_reloads_them() {
    let mined = Instant::now();
    let headers = mine_mainnet_shaped_chain(CHAIN_LEN, END_UNIX, SEED);
    let mining = mined.elapsed();
    assert_eq!(headers.len(), CHAIN_LEN, "the miner ended early");
    eprintln!("mined {CHAIN_LEN} mainnet-shaped headers in {mining:?}");
    let backwards = headers.windows(2).filter(|w| w[1].time < w[0].time).count();
    eprintln!("  {backwards} of them are timestamped before their parent");

    let chain = with_genesis(headers.clone());
    let tip_hash = chain[CHAIN_LEN].block_hash().to_string();
    let mut rng = ChaCha8Rng::seed_from_u64(SEED);
    let mut heights = FIXED_HEIGHTS.to_vec();
    heights.extend((0..6).map(|_| rng.random_range(0..=CHAIN_LEN)));

    let farm = PeerFarm::new().unwrap();
    let peer = farm
        .start_node(NodeSpec::regtest("scale-source").with_headers(headers))
        .unwrap();
    let args = args(peer.addr());

    // 1. A fresh node syncs the whole chain from the peer.
    let synced = Instant::now();
    let mut node = start(tempfile::tempdir().unwrap(), &args).node;
    node.wait_for(SYNC_LIMIT, "the full 200 000-header chain", |n| {
        n.best_hash().as_deref() == Some(tip_hash.as_str())
    });
    let sync_time = synced.elapsed();
    assert_eq!(node.block_count(), Some(CHAIN_LEN as u64));
    assert_eq!(peer.stats().headers_sent, CHAIN_LEN, "{:?}", peer.stats());
    let rss_synced = vm_rss(node.daemon.pid());
    eprintln!("synced {CHAIN_LEN} headers in {sync_time:?} (start included)");
    eprintln!("  VmRSS after sync: {rss_synced}");

    // 2. Headers at low, middle and high heights, read back from the file.
    check_headers(&node, &chain, &heights, "after sync");

    // 3. A clean stop; the file holds one record per header.
    let (_, datadir) = node.stop_keeping_data();
    let file = datadir.path().join("regtest").join("headers.dat");
    let size = std::fs::metadata(&file).unwrap().len();
    assert_eq!(
        size,
        (FILE_HEADER_LEN + CHAIN_LEN * RECORD_LEN) as u64,
        "headers.dat: the file header and one record per header"
    );

    // 4. The peer goes; a restart on the same directory reloads the chain
    // from the file alone (the `--connect` address now refuses).
    drop(peer);
    drop(farm);
    let restarted = start(datadir, &args);
    let mut node = restarted.node;
    assert_eq!(
        restarted.height, CHAIN_LEN as u64,
        "getblockcount after the restart"
    );
    assert_eq!(
        node.best_hash().as_deref(),
        Some(tip_hash.as_str()),
        "getbestblockhash after the restart"
    );
    node.daemon.pump(Duration::from_millis(20));
    let rss_restarted = vm_rss(node.daemon.pid());
    eprintln!(
        "restart to first getblockcount answer: {:?} (RPC port and cookie ready after {:?})",
        restarted.answered, restarted.port_open
    );
    eprintln!("  VmRSS after restart: {rss_restarted}");
    // The height came from the file, every record of it, and nothing was
    // cut off or set aside.
    let lines = node.daemon.lines().to_vec();
    let loaded = lines
        .iter()
        .find_map(|l| daemon_log::fields_after(l, "header chain loaded"))
        .unwrap_or_else(|| panic!("no `header chain loaded` line:\n{}", lines.join("\n")));
    eprintln!("  header chain loaded: {loaded:?}");
    let expected = CHAIN_LEN.to_string();
    assert_eq!(loaded.get("height"), Some(&expected), "{loaded:?}");
    assert_eq!(loaded.get("records"), Some(&expected), "{loaded:?}");
    assert_eq!(loaded.get("hash"), Some(&tip_hash), "{loaded:?}");
    assert!(
        !lines
            .iter()
            .any(|l| l.contains("torn write") || l.contains("set aside") || l.contains("corrupt")),
        "the restart did not load the file cleanly:\n{}",
        lines.join("\n")
    );
    check_headers(&node, &chain, &heights, "after the restart");
    assert_eq!(node.block_count(), Some(CHAIN_LEN as u64));
    node.stop();
}
