//! Whole-node figures on a private Tor network: time from a cold start
//! (empty data directory) to the first BIP324 v2 handshake with an onion
//! peer, and the daemon's memory once its peers are connected. Medians over
//! several runs of the real `nightjar` binary.
//!
//! ```text
//! cargo build --release --bin nightjar --example node_figures
//! unshare -rn sh -c 'ip link set lo up && $CARGO_TARGET_DIR/release/examples/node_figures 5'
//! ```
//! (the number of runs; the `nightjar` binary is taken from next to the
//! example, or from `NIGHTJAR_BIN`). Needs Debian's `tor`; touches nothing
//! beyond 127.0.0.1.

#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nightjar_privnet::figures::{median, rss_mib};
use nightjar_privnet::{PrivNet, PrivNetConfig};
use nightjar_testpeer::node::{NodeSpec, PeerFarm, onion_gossip_entry};

/// Peers each run waits for before measuring memory: the added onion peer
/// and two regular ones learned from its gossip.
const PEERS: usize = 3;

fn nightjar_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("NIGHTJAR_BIN") {
        return p.into();
    }
    // target/<profile>/examples/node_figures → target/<profile>/nightjar
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().join("nightjar")
}

fn main() {
    let runs: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(5);
    let bin = nightjar_bin();
    assert!(bin.is_file(), "no nightjar binary at {}", bin.display());
    let farm = PeerFarm::new().unwrap();
    let nodes: Vec<_> = (1..=3)
        .map(|i| {
            farm.start_node(NodeSpec::regtest(&format!("n{i}")))
                .unwrap()
        })
        .collect();
    let net = PrivNet::start(PrivNetConfig {
        onion_services: nodes.iter().map(|n| (18444, n.addr())).collect(),
        ..PrivNetConfig::default()
    })
    .expect("private network");
    let onions: Vec<String> = net
        .onion_services()
        .iter()
        .map(|s| s.onion_address.clone())
        .collect();
    let gossip: Vec<_> = onions
        .iter()
        .map(|o| onion_gossip_entry(o, 18444).unwrap())
        .collect();
    for n in &nodes {
        n.set_gossip(gossip.clone());
    }
    println!(
        "private network usable after {:.1} s; {runs} runs of {}",
        net.timings().usable.as_secs_f64(),
        bin.display()
    );

    let (mut first, mut rss, mut peak) = (Vec::new(), Vec::new(), Vec::new());
    for run in 1..=runs {
        let datadir = tempfile::tempdir().unwrap();
        let started = Instant::now();
        let mut child = Command::new(&bin)
            .args([
                "--network",
                "regtest",
                "--max-outbound",
                "2",
                "--log-sensitive",
            ])
            .arg("--rpcport")
            .arg(nightjar_testpeer::free_port().unwrap().to_string())
            .arg("--datadir")
            .arg(datadir.path())
            .arg("--tor-network")
            .arg(net.arti_network_file())
            .arg("--addnode")
            .arg(format!("{}:18444", onions[0]))
            .env("HOME", datadir.path())
            .env("RUST_LOG", "info")
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let (tx, rx) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send((Instant::now(), line)).is_err() {
                    break;
                }
            }
        });
        let mut connected = 0;
        let mut first_v2 = None;
        while connected < PEERS {
            let Ok((at, line)) = rx.recv_timeout(Duration::from_secs(180)) else {
                break;
            };
            if line.contains("peer connected") && line.contains(".onion") {
                connected += 1;
                if first_v2.is_none() && line.contains("transport=v2") {
                    first_v2 = Some(at - started);
                }
            }
        }
        // Let the connections settle (address replies, pings) first.
        std::thread::sleep(Duration::from_secs(3));
        let (now_rss, now_peak) = rss_mib(&child.id().to_string());
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let _ = child.wait();
        let Some(t) = first_v2 else {
            println!("run {run}: no v2 handshake with an onion peer within 180 s");
            continue;
        };
        println!(
            "run {run}: first onion v2 handshake {:.2} s after start; {connected} peers; RSS {now_rss:.1} MiB (peak {now_peak:.1} MiB)",
            t.as_secs_f64()
        );
        first.push(t.as_secs_f64());
        rss.push(now_rss);
        peak.push(now_peak);
    }
    if first.is_empty() {
        println!("no successful runs");
        std::process::exit(1);
    }
    println!(
        "median over {} runs: cold start → first onion v2 handshake {:.2} s; daemon RSS with {PEERS} peers {:.1} MiB (peak {:.1} MiB)",
        first.len(),
        median(&first).unwrap_or_default(),
        median(&rss).unwrap_or_default(),
        median(&peak).unwrap_or_default()
    );
    net.stop();
}
