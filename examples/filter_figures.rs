//! Compact block filters over the private Tor network: what spreading the
//! filter downloads over several filter peers (each on its own circuit
//! under `--privacy`) buys, for the real `nightjar` binary against real
//! Bitcoin Core nodes behind onion services.
//!
//! ```text
//! cargo build --release --bin nightjar --example filter_figures
//! unshare -rn bash -c 'ip link set lo up; $CARGO_TARGET_DIR/release/examples/filter_figures --blocks 5000 --runs 3 --window 400'
//! ```
//! (the defaults; the `nightjar` binary is taken from next to the example,
//! or from `NIGHTJAR_BIN`; Core as the tests find it,
//! `BITCOIND`/`BITCOIN_CLI` or `tests/core/build`). Needs Debian's `tor`;
//! touches nothing beyond 127.0.0.1.
//!
//! Set-up: three regtest Cores with `-blockfilterindex=1
//! -peerblockfilters=1`, each behind its own onion service of a private
//! Tor network (3 authorities, 5 exits). Core A mines the chain (all but
//! the last two blocks dated back a second apart, the last two paying a
//! watched address); B and C sync it from A over loopback; every filter
//! index must be complete before anything is timed.
//!
//! Each run is a cold `nightjar --privacy --block-filters` (empty data
//! directory, its own Arti bootstrap) with
//!
//! - (a) `--connect` Core A only: one filter peer;
//! - (b) `--connect` A, B and C: three filter peers;
//!
//! alternating which goes first (a b, b a, ...), after one untimed warm-up
//! of (b) on the fresh network. Measured, polling `getblockchaininfo`
//! every 20 ms:
//!
//! - filter header sync: from the first `filters.filter_headers > 0` to
//!   `filter_headers` = blocks + 1, and from the best header reaching the
//!   tip to the same (time from spawn to the first one too);
//! - once all the run's filter peers are connected, `scanblocks start
//!   ["addr(...)#checksum"] <tip - window + 1> <tip>`: a short scan, the
//!   last `--window` filters (a wallet catching up);
//! - then `scanblocks start ["addr(...)#checksum"]` over the whole chain
//!   (every filter fetched and checked); both must find the two paying
//!   blocks;
//! - the daemon's RSS sampled every 20 ms during the whole-chain scan (the
//!   peak), its `VmHWM`, and its RSS 2 s after the scan;
//! - peers the daemon dropped for exceeding a rate limit (its log).
//!
//! Prints each run, then medians and the speed of (b) relative to (a).
//! `FILTER_FIGURES_LOG=1` prints each run's daemon log
//! (`FILTER_FIGURES_RUST_LOG` is the daemon's `RUST_LOG`).
//!
//! # Rate limits and the RPC request limit
//!
//! A scan's `cfilter`s are one message per block. Before they were exempt
//! from the per-peer message rate limit (`nightjar::peer::limits`: 20 a
//! second, bursts of 500), one peer serving a scan was dropped after about
//! 500 filters and, as a `--connect` peer, redialled after the manual-peer
//! backoff (5 s, 10 s, 20 s, ...): at 3 000 blocks a one-peer scan took
//! 160 s instead of 2 s. The runs count such disconnects, which should now
//! be 0. Likewise a scan cut off by the RPC server's request limit (HTTP
//! 408, before `nightjar::rpc::UNTIMED_METHODS`) is still timed, from the
//! daemon's log ("scan finished"), and the run says so.

#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bitcoin::{Address, Network, ScriptBuf};
use nightjar::rpc::client::RpcClient;
use nightjar::rpc::cookie::read_cookie;
use nightjar_corenode::{CoreBinaries, CoreConfig, CoreNode};
use nightjar_privnet::figures::{median, rss_mib};
use nightjar_privnet::{PrivNet, PrivNetConfig};
use serde_json::{Value, json};

/// The onion services' virtual port (regtest's P2P port).
const ONION_PORT: u16 = 18444;
/// How often the daemon's RPC is polled.
const POLL: Duration = Duration::from_millis(20);
/// How often the daemon's RSS is read during a scan.
const RSS_SAMPLE: Duration = Duration::from_millis(20);
/// Longest any one phase of a run (bootstrap and sync, peers, the scan)
/// may take before the run is given up: long, since a peer dropped for
/// its message rate comes back only after the manual-peer backoff.
const PHASE_LIMIT: Duration = Duration::from_secs(1800);
/// Longest the Cores may take to sync and index.
const CORE_LIMIT: Duration = Duration::from_secs(900);
/// Time left after the scan before the RSS "after" is read.
const SETTLE: Duration = Duration::from_secs(2);

struct Args {
    blocks: usize,
    runs: usize,
    window: usize,
}

fn parse_args() -> Args {
    let mut args = Args {
        blocks: 5_000,
        runs: 3,
        window: 400,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{flag} needs a number"));
        match flag.as_str() {
            "--blocks" => args.blocks = value,
            "--runs" => args.runs = value,
            "--window" => args.window = value,
            other => panic!("unknown option {other} (--blocks N, --runs R, --window W)"),
        }
    }
    assert!(args.blocks >= 3, "--blocks must be at least 3");
    assert!(
        args.window == 0 || (2..=args.blocks).contains(&args.window),
        "--window must be 0 (none) or 2 to --blocks (it must hold the last two blocks)"
    );
    args.runs = args.runs.max(1);
    args
}

/// `target/<profile>/examples/filter_figures` → `target/<profile>/nightjar`.
fn nightjar_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("NIGHTJAR_BIN") {
        return p.into();
    }
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().join("nightjar")
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// `n` distinct free ports on 127.0.0.1 (held until all are chosen).
fn free_ports(n: usize) -> Vec<u16> {
    let held: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap())
        .collect();
    held.iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect()
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

/// A running daemon: the process, its data directory, RPC, and its log
/// lines with the time each arrived (from spawn).
struct Daemon {
    child: Child,
    started: Instant,
    datadir: tempfile::TempDir,
    rpc_port: u16,
    log: Arc<Mutex<Vec<(Duration, String)>>>,
    runtime: tokio::runtime::Runtime,
}

impl Daemon {
    fn spawn(bin: &Path, args: &[String]) -> Daemon {
        let datadir = tempfile::tempdir().unwrap();
        let rpc_port = nightjar_testpeer::free_port().unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let started = Instant::now();
        let mut child = Command::new(bin)
            .args(["--network", "regtest", "--datadir"])
            .arg(datadir.path())
            .arg("--rpcport")
            .arg(rpc_port.to_string())
            .args(args)
            // No user configuration: only the options above count.
            .env("HOME", datadir.path())
            .env_remove("XDG_CONFIG_HOME")
            .env_remove("XDG_DATA_HOME")
            .env_remove("XDG_CACHE_HOME")
            .env_remove("STATE_DIRECTORY")
            .env_remove("CACHE_DIRECTORY")
            .env_remove("CONFIGURATION_DIRECTORY")
            .env_remove("RUST_LOG")
            .envs(std::env::var_os("FILTER_FIGURES_RUST_LOG").map(|v| ("RUST_LOG", v)))
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

    /// One RPC call; `None` while the server is not up or the call fails.
    /// `limit`: how long the call may take (a scan takes long).
    fn call(&self, method: &str, params: Value, limit: Duration) -> Result<Value, String> {
        let cookie = self.datadir.path().join("regtest").join(".cookie");
        let (user, password) = read_cookie(&cookie).map_err(|e| e.to_string())?;
        let client = RpcClient::new(format!("127.0.0.1:{}", self.rpc_port), &user, &password)
            .with_timeout(Some(limit));
        self.runtime
            .block_on(client.call(method, params))
            .map_err(|e| e.to_string())
    }

    fn rpc(&self, method: &str) -> Option<Value> {
        self.call(method, json!([]), Duration::from_secs(10)).ok()
    }

    fn filters(&self) -> Option<Value> {
        self.rpc("getblockchaininfo").map(|i| i["filters"].clone())
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

    /// Poll `probe` until it returns `Some`; the value and when (from
    /// spawn). Fails the run with the log if the daemon exits or
    /// [`PHASE_LIMIT`] passes.
    fn poll<T>(
        &mut self,
        what: &str,
        mut probe: impl FnMut(&Daemon) -> Option<T>,
    ) -> (T, Duration) {
        let deadline = Instant::now() + PHASE_LIMIT;
        loop {
            if let Some(v) = probe(self) {
                return (v, self.started.elapsed());
            }
            assert!(
                !self.exited(),
                "nightjar exited while waiting for {what}:\n{}",
                self.log_text()
            );
            assert!(
                Instant::now() < deadline,
                "no {what} within {PHASE_LIMIT:?}:\n{}",
                self.log_text()
            );
            std::thread::sleep(POLL);
        }
    }

    /// The first log line containing `what` that arrived after `after`
    /// (from spawn), and when.
    fn logged_after(&self, after: Duration, what: &str) -> Option<(Duration, String)> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .find(|(at, line)| *at >= after && line.contains(what))
            .cloned()
    }

    /// Peers it dropped for exceeding a rate limit (`peer disconnected
    /// ... reason=rate limit exceeded`), so far.
    fn flood_disconnects(&self) -> usize {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, l)| l.contains("peer disconnected") && l.contains("rate limit exceeded"))
            .count()
    }

    fn pid(&self) -> String {
        self.child.id().to_string()
    }

    /// SIGTERM (by PID) and wait for the exit; SIGKILL after 30 s.
    fn stop(mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.pid()]).status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.exited() {
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                println!("filter_figures: nightjar did not stop within 30 s; killed");
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// What one cold run measured (seconds, MiB).
#[derive(Debug, Clone, Copy)]
struct Run {
    /// Spawn → first filter header.
    first_filter_header: f64,
    /// First filter header → all of them.
    filter_headers: f64,
    /// Best header at the tip → all filter headers.
    from_headers: f64,
    /// Peers disconnected for exceeding a rate limit before the scan.
    floods_in_sync: usize,
    /// ... and during the whole-chain scan.
    floods_in_scan: usize,
    /// The scan of the last `--window` filters.
    window: Option<WindowScan>,
    /// Filter peers when the filter header chain was complete.
    peers_at_sync: u64,
    /// Filter peers when the scan started.
    peers_at_scan: u64,
    /// `scanblocks start` over the whole chain.
    scan: f64,
    /// Whether `scanblocks` answered (not cut off by the RPC server's
    /// request time limit).
    answered: bool,
    /// Filters fetched and checked per second in it.
    scan_rate: f64,
    /// Highest RSS sampled during the scan.
    scan_rss_peak: f64,
    /// `VmHWM` after the scan (the whole run's peak).
    hwm: f64,
    /// RSS [`SETTLE`] after the scan.
    rss_after: f64,
}

/// The scan of the last `--window` filters (a wallet catching up).
#[derive(Debug, Clone, Copy)]
struct WindowScan {
    /// Seconds it took.
    secs: f64,
    /// Filters per second.
    rate: f64,
    /// Peers disconnected for exceeding a rate limit during it.
    floods: usize,
}

/// Everything the runs share.
struct Setup {
    bin: PathBuf,
    tor_network: PathBuf,
    onions: Vec<String>,
    blocks: u64,
    descriptor: String,
    paid: BTreeSet<String>,
    window: u64,
}

/// `scanblocks start` from `start` to the tip, with the daemon's RSS
/// sampled meanwhile: (seconds, whether the call answered, peak RSS).
fn scan(daemon: &mut Daemon, setup: &Setup, start: u64) -> (f64, bool, f64) {
    let scanning = Arc::new(AtomicBool::new(true));
    let pid = daemon.pid();
    let sampler = {
        let scanning = Arc::clone(&scanning);
        std::thread::spawn(move || {
            let mut peak = 0.0f64;
            while scanning.load(Ordering::Relaxed) {
                peak = peak.max(rss_mib(&pid).0);
                std::thread::sleep(RSS_SAMPLE);
            }
            peak.max(rss_mib(&pid).0)
        })
    };
    let scan_started = Instant::now();
    let since_spawn = daemon.started.elapsed();
    let result = daemon.call(
        "scanblocks",
        json!(["start", [setup.descriptor], start, setup.blocks]),
        PHASE_LIMIT,
    );
    let answered = result.is_ok();
    let took = match &result {
        Ok(_) => scan_started.elapsed(),
        // A daemon whose RPC server ends the call at its request limit
        // (408) goes on scanning: the scan's end is then taken from the
        // log.
        Err(e) => {
            assert!(
                e.contains("408"),
                "scanblocks failed: {e}\n{}",
                daemon.log_text()
            );
            let ((at, _), _) = daemon.poll("the scan's end in the log", |d| {
                d.logged_after(since_spawn, "scan finished")
            });
            at.saturating_sub(since_spawn)
        }
    };
    scanning.store(false, Ordering::Relaxed);
    let peak = sampler.join().unwrap();
    if let Ok(result) = &result {
        assert_eq!(result["completed"], true, "{result:#}");
        assert_eq!(result["from_height"], start, "{result:#}");
        assert_eq!(result["to_height"], setup.blocks, "{result:#}");
        let relevant: BTreeSet<String> = result["relevant_blocks"]
            .as_array()
            .unwrap_or_else(|| panic!("no relevant_blocks in {result:#}"))
            .iter()
            .map(|h| h.as_str().unwrap().to_owned())
            .collect();
        assert!(
            setup.paid.is_subset(&relevant),
            "the paying blocks {:?} are not all in {relevant:?}",
            setup.paid
        );
    } else {
        // Only the log's count is left to check.
        let (line, _) = daemon.poll("the scan's end in the log", |d| {
            d.logged_after(since_spawn, "scan finished").map(|(_, l)| l)
        });
        let matched: usize = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("matched="))
            .and_then(|m| m.parse().ok())
            .unwrap_or(0);
        assert!(
            matched >= setup.paid.len(),
            "the scan matched {matched} blocks, fewer than the {} paying ones: {line}",
            setup.paid.len()
        );
    }
    (secs(took), answered, peak)
}

/// One cold run of `nightjar --privacy --block-filters` connecting to the
/// first `peers` onion services.
fn run(setup: &Setup, peers: usize) -> Run {
    let mut args = vec![
        "--tor-network".to_owned(),
        setup.tor_network.display().to_string(),
        "--privacy".to_owned(),
        "--block-filters".to_owned(),
    ];
    for onion in &setup.onions[..peers] {
        args.push("--connect".to_owned());
        args.push(onion.clone());
    }
    let mut daemon = Daemon::spawn(&setup.bin, &args);
    let want = setup.blocks + 1;
    // One loop notes when the best header reached the tip, when the first
    // filter header came, and when the last one did.
    let (mut headers_at, mut first_at) = (None, None);
    let (peers_at_sync, full) = daemon.poll("the whole filter header chain", |d| {
        let info = d.rpc("getblockchaininfo")?;
        let at = d.started.elapsed();
        if headers_at.is_none() && info["headers"].as_u64() == Some(setup.blocks) {
            headers_at = Some(at);
        }
        let filters = &info["filters"];
        let count = filters["filter_headers"].as_u64().unwrap_or(0);
        if first_at.is_none() && count > 0 {
            first_at = Some(at);
        }
        (count == want).then(|| filters["peers"].as_u64().unwrap_or(0))
    });
    let first = first_at.unwrap_or(full);
    let headers_at = headers_at.unwrap_or(full);
    let floods_in_sync = daemon.flood_disconnects();
    let (peers_at_scan, _) = daemon.poll("every filter peer connected", |d| {
        let n = d.filters()?["peers"].as_u64()?;
        (n >= peers as u64).then_some(n)
    });

    // A short scan first, then the whole chain.
    let window = (setup.window > 0).then(|| {
        let start = (setup.blocks + 1).saturating_sub(setup.window);
        let floods = daemon.flood_disconnects();
        let (seconds, answered, _) = scan(&mut daemon, setup, start);
        assert!(answered, "the window scan outlived the RPC request limit");
        WindowScan {
            secs: seconds,
            rate: (setup.blocks + 1 - start) as f64 / seconds,
            floods: daemon.flood_disconnects() - floods,
        }
    });
    let floods_before_scan = daemon.flood_disconnects();
    let (whole, answered, scan_rss_peak) = scan(&mut daemon, setup, 0);
    let hwm = rss_mib(&daemon.pid()).1;
    let floods = daemon.flood_disconnects();
    std::thread::sleep(SETTLE);
    let rss_after = rss_mib(&daemon.pid()).0;
    if std::env::var_os("FILTER_FIGURES_LOG").is_some() {
        println!("the run's log:\n{}", daemon.log_text());
    }
    daemon.stop();
    Run {
        first_filter_header: secs(first),
        filter_headers: secs(full.saturating_sub(first)),
        from_headers: secs(full.saturating_sub(headers_at)),
        floods_in_sync,
        floods_in_scan: floods - floods_before_scan,
        window,
        peers_at_sync,
        peers_at_scan,
        scan: whole,
        answered,
        scan_rate: (setup.blocks + 1) as f64 / whole,
        scan_rss_peak,
        hwm,
        rss_after,
    }
}

fn print_run(label: &str, r: &Run) {
    let window = r.window.map_or(String::new(), |w| {
        format!(
            "window scan {:.2} s ({:.0} filters/s, {} rate-limit disconnects); ",
            w.secs, w.rate, w.floods
        )
    });
    println!(
        "  {label}: first filter header {:.2} s after spawn; filter headers {:.2} s ({:.2} s from the tip header; {} filter peers); {window}whole scan {:.2} s ({:.0} filters/s, {} peers); RSS in scan peak {:.1} MiB, VmHWM {:.1} MiB, after {:.1} MiB; rate-limit disconnects {} in sync, {} in scan{}",
        r.first_filter_header,
        r.filter_headers,
        r.from_headers,
        r.peers_at_sync,
        r.scan,
        r.scan_rate,
        r.peers_at_scan,
        r.scan_rss_peak,
        r.hwm,
        r.rss_after,
        r.floods_in_sync,
        r.floods_in_scan,
        if r.answered {
            ""
        } else {
            "; scanblocks got HTTP 408 (RPC request limit), scan end taken from the log"
        }
    );
}

/// One figure's medians for (a) and (b), and their ratio.
fn row(what: &str, unit: &str, a: &[Run], b: &[Run], figure: fn(&Run) -> f64, ratio: &str) {
    let m = |runs: &[Run]| median(&runs.iter().map(figure).collect::<Vec<_>>()).unwrap_or(f64::NAN);
    let (ma, mb) = (m(a), m(b));
    let r = match ratio {
        // A time: (b) is faster by (a)/(b).
        "time" => format!("{:.2}× faster", ma / mb),
        // A rate: by (b)/(a).
        "rate" => format!("{:.2}× faster", mb / ma),
        "size" => format!("{:.2}×", mb / ma),
        _ => String::new(),
    };
    println!("| {what:<40} | {ma:>9.2} {unit:<4} | {mb:>9.2} {unit:<4} | {r:>13} |");
}

/// A scan's two rows: its time and its filters per second.
fn scan_rows(what: &str, a: &[Run], b: &[Run], secs: fn(&Run) -> f64, rate: fn(&Run) -> f64) {
    row(what, "s", a, b, secs, "time");
    row("  filters per second", "/s", a, b, rate, "rate");
}

fn main() {
    let args = parse_args();
    let bin = nightjar_bin();
    assert!(bin.is_file(), "no nightjar binary at {}", bin.display());
    let bins = CoreBinaries::find().unwrap_or_else(|e| panic!("{e:#}"));
    nightjar_privnet::check_tor_installed().unwrap_or_else(|e| panic!("{e:#}"));
    let blocks = args.blocks as u64;
    println!(
        "filter_figures: {}; {blocks} blocks; {} runs per configuration of {}",
        bins.version().unwrap(),
        args.runs,
        bin.display()
    );
    let started = Instant::now();

    // The Cores first (their ports must be theirs before the network picks
    // its own), then the network starts while A mines.
    let ports = free_ports(3);
    let mut a = CoreNode::start(&bins, filter_core("filters-a", ports[0])).unwrap();
    let a_addr = a.p2p_addr().to_string();
    let mut others: Vec<CoreNode> = ["filters-b", "filters-c"]
        .iter()
        .zip(&ports[1..])
        .map(|(name, port)| {
            CoreNode::start(&bins, filter_core(name, *port).connect(&a_addr)).unwrap()
        })
        .collect();
    let watched = watched_address();
    let (net, paid) = std::thread::scope(|s| {
        let net = s.spawn(|| {
            PrivNet::start(PrivNetConfig {
                onion_services: ports
                    .iter()
                    .map(|p| (ONION_PORT, (Ipv4Addr::LOCALHOST, *p).into()))
                    .collect(),
                dir: std::env::var_os("NIGHTJAR_PRIVNET_DIR").map(Into::into),
                ..PrivNetConfig::default()
            })
        });
        let mining = Instant::now();
        a.mine_dated_back(args.blocks - 2).unwrap();
        let paid = a.mine_to(2, &watched).unwrap();
        println!(
            "filter_figures: Core A mined {blocks} blocks in {:.1} s",
            secs(mining.elapsed())
        );
        (net.join().unwrap().expect("private Tor network"), paid)
    });
    println!(
        "filter_figures: private Tor network usable {:.1} s after launch",
        secs(net.timings().usable)
    );
    let tip = a.best_block_hash().unwrap();
    for c in &mut others {
        c.wait_for(CORE_LIMIT, "the chain from Core A", |c| {
            Ok(c.best_block_hash()? == tip)
        })
        .unwrap();
    }
    for c in std::iter::once(&mut a).chain(others.iter_mut()) {
        c.wait_for(CORE_LIMIT, "the filter index", |c| {
            let info = c.rpc(&["getindexinfo", "basic block filter index"])?;
            Ok(info["basic block filter index"]["synced"] == true
                && info["basic block filter index"]["best_block_height"] == blocks)
        })
        .unwrap();
    }
    let descriptor = a
        .rpc(&["getdescriptorinfo", &format!("addr({watched})")])
        .unwrap()["descriptor"]
        .as_str()
        .unwrap()
        .to_owned();
    println!(
        "filter_figures: Cores synced and indexed {:.1} s after start; scanning for {descriptor}",
        secs(started.elapsed())
    );
    let setup = Setup {
        bin,
        tor_network: net.arti_network_file().to_path_buf(),
        onions: net
            .onion_services()
            .iter()
            .map(|s| format!("{}:{ONION_PORT}", s.onion_address))
            .collect(),
        blocks,
        descriptor,
        paid: paid.iter().map(ToString::to_string).collect(),
        window: args.window as u64,
    };

    // The first client on a fresh network finds directory caches and
    // onion-service directories still catching up: one untimed run.
    let warm = run(&setup, 3);
    print_run("warm-up (b), not counted", &warm);

    let (mut one, mut three) = (Vec::new(), Vec::new());
    for i in 1..=args.runs {
        let order: [usize; 2] = if i % 2 == 1 { [1, 3] } else { [3, 1] };
        for peers in order {
            let r = run(&setup, peers);
            let label = if peers == 1 {
                format!("run {i} (a) 1 peer ")
            } else {
                format!("run {i} (b) 3 peers")
            };
            print_run(&label, &r);
            if peers == 1 { &mut one } else { &mut three }.push(r);
        }
    }

    println!();
    println!(
        "filter_figures: medians over {} runs, {blocks} blocks ({} filters), private Tor network on 127.0.0.1; total {:.0} s",
        args.runs,
        blocks + 1,
        secs(started.elapsed())
    );
    println!(
        "| {:<40} | {:>14} | {:>14} | {:>13} |",
        "figure", "(a) 1 peer", "(b) 3 peers", "(b) vs (a)"
    );
    println!("|{:-<42}|{:-<16}|{:-<16}|{:-<15}|", "", "", "", "");
    row(
        "spawn → first filter header",
        "s",
        &one,
        &three,
        |r| r.first_filter_header,
        "",
    );
    row(
        "first → all filter headers",
        "s",
        &one,
        &three,
        |r| r.filter_headers,
        "time",
    );
    row(
        "tip header → all filter headers",
        "s",
        &one,
        &three,
        |r| r.from_headers,
        "time",
    );
    if args.window > 0 {
        scan_rows(
            &format!("scanblocks, last {} blocks", args.window),
            &one,
            &three,
            |r| r.window.map_or(f64::NAN, |w| w.secs),
            |r| r.window.map_or(f64::NAN, |w| w.rate),
        );
    }
    scan_rows(
        "scanblocks, whole chain",
        &one,
        &three,
        |r| r.scan,
        |r| r.scan_rate,
    );
    row(
        "RSS during scan, peak sampled",
        "MiB",
        &one,
        &three,
        |r| r.scan_rss_peak,
        "size",
    );
    row("VmHWM after scan", "MiB", &one, &three, |r| r.hwm, "size");
    row(
        "rate-limit disconnects in the scan",
        "",
        &one,
        &three,
        |r| r.floods_in_scan as f64,
        "",
    );
    row(
        "RSS 2 s after scan",
        "MiB",
        &one,
        &three,
        |r| r.rss_after,
        "size",
    );
    for mut c in others.into_iter().chain(std::iter::once(a)) {
        let _ = c.stop();
    }
    net.stop();
}
