//! Whole-node figures at mainnet scale (issue 17), for the real `nightjar`
//! binary on regtest with Tor off: how long a start with 1 000 000 headers
//! in `headers.dat` takes until RPC answers with the full height, and the
//! daemon's memory after that start and once 8 peers serving the same chain
//! are connected.
//!
//! ```text
//! cargo build --release --bin nightjar --example scale_figures
//! $CARGO_TARGET_DIR/release/examples/scale_figures 5
//! ```
//! (the number of start-up runs, 5 by default; the `nightjar` binary is
//! taken from next to the example, or from `NIGHTJAR_BIN`). The chain file
//! is the one `benches/chain_scale.rs` mines and caches
//! (`NIGHTJAR_BENCH_CACHE`, default `~/.cache/nightjar-bench`); if it is
//! missing, create it first with
//! `HEADERS=1000000 RUNS=1 cargo bench -p nightjar --bench chain_scale`.
//!
//! Each run copies the file into a fresh data directory as
//! `regtest/headers.dat`, spawns `nightjar --no-tor` (no DNS seeds, no
//! fixed seeds, no automatic outbound connections, RPC on a free loopback
//! port) and polls `getblockcount` every 10 ms; the figure is the time from
//! spawn to the first answer of 1 000 000. The daemon's log lines are
//! timed too, so that a slow start shows which step took the time. The last
//! run goes on: 8 scripted peers on 127.0.0.1 serving the same chain are
//! added with `addnode`, and once `getpeerinfo` shows all 8 past the
//! handshake (and a few seconds more) the daemon's `VmRSS` and `VmHWM` are
//! read from `/proc` (`SCALE_FIGURES_LOG=1` prints that run's log, timed
//! from spawn). Touches nothing beyond 127.0.0.1 and never starts Tor.

#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bitcoin::Network;
use bitcoin::block::Header;
use nightjar::chain::HeaderChain;
use nightjar::rpc::client::RpcClient;
use nightjar::rpc::cookie::read_cookie;
use nightjar_privnet::figures::{median, rss_mib, shaped_chain_file};
use nightjar_testpeer::node::{NodeSpec, PeerFarm, ScriptedNode};
use serde_json::{Value, json};

/// Headers in the chain file, after genesis.
const HEADERS: u64 = 1_000_000;
/// Scripted peers in the memory run.
const PEERS: usize = 8;
/// How often `getblockcount` is tried during start-up.
const POLL: Duration = Duration::from_millis(10);
/// How long a start may take before the run is given up.
const START_LIMIT: Duration = Duration::from_secs(120);
/// How long the peers may take to connect.
const PEER_LIMIT: Duration = Duration::from_secs(60);
/// Time left for the connections to settle (address and header requests,
/// pings) before memory is read.
const SETTLE: Duration = Duration::from_secs(5);
/// Log lines whose times are shown per run: the steps of a start.
const STEPS: &[&str] = &[
    "configuration loaded",
    "nightjar starting",
    "header chain loaded",
    "Tor is turned off",
];

fn nightjar_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("NIGHTJAR_BIN") {
        return p.into();
    }
    // target/<profile>/examples/scale_figures → target/<profile>/nightjar
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().join("nightjar")
}

/// The chain's headers after genesis, read through nightjar's own loader
/// from a copy (loading may repair or set aside what it reads, and the
/// cached file must stay as it is).
fn load_headers(file: &Path) -> Vec<Header> {
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("headers.dat");
    std::fs::copy(file, &copy).unwrap();
    let loaded = HeaderChain::load_or_new(&copy, Network::Regtest).expect("load the chain file");
    assert_eq!(
        u64::from(loaded.chain.height()),
        HEADERS,
        "{} does not hold {HEADERS} headers",
        file.display()
    );
    loaded.chain.headers_in_order(1).collect()
}

/// A running daemon: the process, its data directory, and its log lines
/// with the time each arrived (from spawn).
struct Daemon {
    child: Child,
    started: Instant,
    datadir: tempfile::TempDir,
    rpc_port: u16,
    log: Arc<Mutex<Vec<(Duration, String)>>>,
    runtime: tokio::runtime::Runtime,
}

impl Daemon {
    /// A fresh data directory holding `file` as `regtest/headers.dat`, and
    /// `nightjar` started on it.
    fn start(bin: &Path, file: &Path) -> Daemon {
        let datadir = tempfile::tempdir().unwrap();
        let chain_dir = datadir.path().join("regtest");
        std::fs::create_dir_all(&chain_dir).unwrap();
        std::fs::copy(file, chain_dir.join("headers.dat")).unwrap();
        let rpc_port = nightjar_testpeer::free_port().unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let started = Instant::now();
        let mut child = Command::new(bin)
            .args([
                "--network",
                "regtest",
                "--no-tor",
                "--no-dnsseed",
                "--no-fixedseeds",
                "--max-outbound",
                "0",
                "--rpcbind",
                "127.0.0.1",
                "--log-sensitive",
            ])
            .arg("--rpcport")
            .arg(rpc_port.to_string())
            .arg("--datadir")
            .arg(datadir.path())
            // No user configuration: only the options above count.
            .env("HOME", datadir.path())
            .env_remove("XDG_CONFIG_HOME")
            .env_remove("XDG_DATA_HOME")
            .env_remove("XDG_CACHE_HOME")
            .env_remove("STATE_DIRECTORY")
            .env_remove("CACHE_DIRECTORY")
            .env_remove("CONFIGURATION_DIRECTORY")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push((started.elapsed(), line));
            }
        });
        Daemon {
            child,
            started,
            datadir,
            rpc_port,
            log,
            runtime,
        }
    }

    /// One RPC call, `None` while the server is not up (no cookie yet,
    /// nothing listening) or the call fails.
    fn rpc(&self, method: &str, params: Value) -> Option<Value> {
        let cookie = self.datadir.path().join("regtest").join(".cookie");
        let (user, password) = read_cookie(&cookie).ok()?;
        let client = RpcClient::new(format!("127.0.0.1:{}", self.rpc_port), &user, &password)
            .with_timeout(Some(Duration::from_secs(10)));
        self.runtime.block_on(client.call(method, params)).ok()
    }

    fn exited(&mut self) -> bool {
        self.child.try_wait().unwrap().is_some()
    }

    fn log_text(&self) -> String {
        self.log
            .lock()
            .unwrap()
            .iter()
            .map(|(at, line)| format!("{:8.3} s  {line}", at.as_secs_f64()))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// When the first log line containing `what` arrived.
    fn logged_at(&self, what: &str) -> Option<Duration> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .find(|(_, line)| line.contains(what))
            .map(|(at, _)| *at)
    }

    /// Poll `getblockcount` until it answers `HEADERS`; the time from
    /// spawn to that answer.
    fn wait_for_full_height(&mut self) -> Duration {
        loop {
            if self
                .rpc("getblockcount", json!([]))
                .and_then(|v| v.as_u64())
                == Some(HEADERS)
            {
                return self.started.elapsed();
            }
            assert!(
                !self.exited(),
                "nightjar exited during start-up:\n{}",
                self.log_text()
            );
            assert!(
                self.started.elapsed() < START_LIMIT,
                "no getblockcount of {HEADERS} within {START_LIMIT:?}:\n{}",
                self.log_text()
            );
            std::thread::sleep(POLL);
        }
    }

    /// Peers in `getpeerinfo` that finished the version handshake.
    fn handshaken_peers(&self) -> usize {
        match self.rpc("getpeerinfo", json!([])) {
            Some(Value::Array(peers)) => peers
                .iter()
                .filter(|p| p["version"].as_u64().is_some_and(|v| v > 0))
                .count(),
            _ => 0,
        }
    }

    fn rss_mib(&self) -> (f64, f64) {
        rss_mib(&self.child.id().to_string())
    }

    /// SIGTERM (by PID) and wait for the exit.
    fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.exited() {
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                println!("scale_figures: nightjar did not stop within 30 s; killed");
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// The steps of the start as the log shows them, `step at X s`.
fn steps_line(daemon: &Daemon) -> String {
    STEPS
        .iter()
        .filter_map(|step| {
            daemon
                .logged_at(step)
                .map(|at| format!("{step} {:.3} s", at.as_secs_f64()))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Add every peer over RPC (`addnode add`, as a user keeps a peer) and
/// wait until all are past the handshake. The engine dials added peers at
/// its next maintenance round, which on an idle node is up to
/// `nightjar::engine::IDLE_INTERVAL` (30 s) later: that wait is in the
/// time this returns.
fn connect_peers(daemon: &mut Daemon, peers: &[ScriptedNode]) -> Duration {
    let asked = Instant::now();
    for peer in peers {
        let added = daemon.rpc("addnode", json!([peer.addr().to_string(), "add"]));
        assert!(
            added.is_some(),
            "addnode {} failed:\n{}",
            peer.addr(),
            daemon.log_text()
        );
    }
    loop {
        if daemon.handshaken_peers() >= peers.len() {
            return asked.elapsed();
        }
        assert!(
            !daemon.exited(),
            "nightjar exited while its peers connected:\n{}",
            daemon.log_text()
        );
        assert!(
            asked.elapsed() < PEER_LIMIT,
            "only {} of {} peers within {PEER_LIMIT:?}:\n{}",
            daemon.handshaken_peers(),
            peers.len(),
            daemon.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn main() {
    let runs: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(5)
        .max(1);
    let bin = nightjar_bin();
    assert!(bin.is_file(), "no nightjar binary at {}", bin.display());
    let file = shaped_chain_file(HEADERS as usize);
    assert!(
        file.is_file(),
        "no chain file at {}; create it with `HEADERS=1000000 RUNS=1 cargo bench -p nightjar --bench chain_scale`",
        file.display()
    );
    let bytes = std::fs::metadata(&file).unwrap().len();
    println!(
        "scale_figures: {} ({:.1} MB), {runs} runs of {}",
        file.display(),
        bytes as f64 / 1e6,
        bin.display()
    );

    // The peers first, so that building their chains (about 200 MB each
    // in this process) is over before anything is timed.
    let loading = Instant::now();
    let headers = load_headers(&file);
    let farm = PeerFarm::new().unwrap();
    let peers: Vec<ScriptedNode> = (1..=PEERS)
        .map(|i| {
            farm.start_node(NodeSpec::regtest(&format!("p{i}")).with_headers(headers.clone()))
                .unwrap()
        })
        .collect();
    drop(headers);
    println!(
        "scale_figures: {PEERS} scripted peers serving {HEADERS} headers ready after {:.1} s",
        loading.elapsed().as_secs_f64()
    );

    let mut times = Vec::new();
    for run in 1..=runs {
        let mut daemon = Daemon::start(&bin, &file);
        let took = daemon.wait_for_full_height();
        times.push(took.as_secs_f64());
        let (rss, peak) = daemon.rss_mib();
        println!(
            "run {run}: first getblockcount = {HEADERS} after {:.3} s (log: {}); RSS {rss:.1} MiB (peak {peak:.1} MiB)",
            took.as_secs_f64(),
            steps_line(&daemon)
        );
        if run < runs {
            daemon.stop();
            continue;
        }

        // The memory run.
        std::thread::sleep(Duration::from_secs(2));
        let (rss, peak) = daemon.rss_mib();
        println!(
            "scale_figures: RSS after start-up, before peers {rss:.1} MiB (peak {peak:.1} MiB)"
        );
        let connecting = connect_peers(&mut daemon, &peers);
        println!(
            "scale_figures: {PEERS} peers past the handshake {:.2} s after addnode",
            connecting.as_secs_f64()
        );
        std::thread::sleep(SETTLE);
        let (rss, peak) = daemon.rss_mib();
        let connected = daemon.handshaken_peers();
        let height = daemon.rpc("getblockcount", json!([]));
        if std::env::var_os("SCALE_FIGURES_LOG").is_some() {
            println!("the memory run's log:\n{}", daemon.log_text());
        }
        daemon.stop();
        println!(
            "scale_figures: start to first RPC answer median {:.3} s over {} runs",
            median(&times).unwrap_or_default(),
            times.len()
        );
        println!(
            "scale_figures: RSS with {connected} peers {rss:.1} MiB (peak {peak:.1} MiB), {} s after they connected; height then {}",
            SETTLE.as_secs(),
            height.unwrap_or(Value::Null)
        );
    }
}
