//! nightjar side by side with Bitcoin Core, on the same work in the same
//! run: `benches/vs-core` builds everything and runs this (see its header).
//!
//! Each run starts both programs cold (empty data directories; for Core a
//! fresh C-tor client too, since nightjar's Tor client is inside it), one
//! after the other, alternating which goes first (A B, B A, ...), after one
//! untimed warm-up of each on the fresh network, and measures from spawning
//! the process(es):
//!
//! 1. over the private Tor network, the target a Core node behind a C-tor
//!    onion service: the first BIP324 v2 peer, then `N` headers synced, and
//!    the memory at that moment (nightjar alone; `bitcoind` + `tor`);
//! 2. over loopback, Tor off: `M` headers synced from a local Core node,
//!    nightjar against a fresh Core syncing from the same node.
//!
//! Both sides are watched the same way: their RPC (`getpeerinfo`,
//! `getblockchaininfo.headers`) polled every 50 ms through their own CLI.
//! Prints each run, then medians and the ratio nightjar/Core.
//!
//! `vs_core [--runs R] [--onion-headers N] [--loopback-headers M]`
//! (defaults 3, 3 000, 50 000).

#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nightjar_corenode::{CoreBinaries, CoreConfig, CoreNode};
use nightjar_privnet::figures::{median, rss_mib};
use nightjar_privnet::{PrivNet, PrivNetConfig};
use serde_json::Value;

/// The onion service's virtual port (regtest's P2P port).
const ONION_PORT: u16 = 18444;
/// How often both sides' RPC is polled.
const POLL: Duration = Duration::from_millis(50);
/// Longest any one measurement may take before the run is abandoned.
const RUN_LIMIT: Duration = Duration::from_secs(600);

/// What one cold start reached, and when (seconds from spawn).
#[derive(Debug, Clone, Copy, Default)]
struct Run {
    first_v2: Option<f64>,
    synced: f64,
    rss_mib: f64,
}

struct Args {
    runs: usize,
    onion_headers: usize,
    loopback_headers: usize,
}

fn parse_args() -> Args {
    let mut args = Args {
        runs: 3,
        onion_headers: 3_000,
        loopback_headers: 50_000,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{flag} needs a number"));
        match flag.as_str() {
            "--runs" => args.runs = value,
            "--onion-headers" => args.onion_headers = value,
            "--loopback-headers" => args.loopback_headers = value,
            other => panic!("unknown option {other}"),
        }
    }
    args
}

/// `target/<profile>/examples/vs_core` → `target/<profile>/<name>`.
fn sibling_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let bin = exe.parent().unwrap().parent().unwrap().join(name);
    assert!(bin.is_file(), "no {name} at {}", bin.display());
    bin
}

fn free_port() -> u16 {
    nightjar_testpeer::free_port().unwrap()
}

fn secs(since: Instant) -> f64 {
    since.elapsed().as_secs_f64()
}

/// Whether a `getpeerinfo` result holds a peer that finished its version
/// handshake over BIP324.
fn has_v2_peer(peers: &Value) -> bool {
    peers.as_array().is_some_and(|ps| {
        ps.iter()
            .any(|p| p["transport_protocol_type"] == "v2" && p["version"].as_u64().unwrap_or(0) > 0)
    })
}

/// Poll `probe` until it is true; `false` if `limit` passed first.
fn poll_until(limit: Duration, mut probe: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if probe() {
            return true;
        }
        std::thread::sleep(POLL);
    }
    false
}

/// A cold `nightjar` process and its CLI.
struct Nightjar {
    child: Child,
    cli: PathBuf,
    datadir: tempfile::TempDir,
    rpc_port: u16,
}

impl Nightjar {
    fn spawn(args: &[String]) -> Nightjar {
        let datadir = tempfile::tempdir().unwrap();
        let rpc_port = free_port();
        let child = Command::new(sibling_bin("nightjar"))
            .args(["--network", "regtest", "--datadir"])
            .arg(datadir.path())
            .arg("--rpcport")
            .arg(rpc_port.to_string())
            .args(args)
            .env("HOME", datadir.path())
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(if std::env::var_os("VS_CORE_LOG").is_some() {
                Stdio::inherit()
            } else {
                Stdio::null()
            })
            .spawn()
            .unwrap();
        Nightjar {
            child,
            cli: sibling_bin("nightjar-cli"),
            datadir,
            rpc_port,
        }
    }

    fn rpc(&self, method: &str) -> Option<Value> {
        let out = Command::new(&self.cli)
            .arg(format!("-datadir={}", self.datadir.path().display()))
            .arg("-regtest")
            .arg(format!("-rpcport={}", self.rpc_port))
            .arg(method)
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| serde_json::from_slice(&out.stdout).ok())
            .flatten()
    }

    fn headers(&self) -> u64 {
        self.rpc("getblockchaininfo")
            .and_then(|v| v["headers"].as_u64())
            .unwrap_or(0)
    }

    fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

/// nightjar: spawn with `args`, then (optionally) the first v2 peer and
/// `headers` headers.
fn run_nightjar(args: &[String], want_v2: bool, headers: usize) -> Option<Run> {
    let started = Instant::now();
    let node = Nightjar::spawn(args);
    let mut run = Run::default();
    if want_v2 {
        if !poll_until(RUN_LIMIT, || {
            node.rpc("getpeerinfo").is_some_and(|p| has_v2_peer(&p))
        }) {
            node.stop();
            return None;
        }
        run.first_v2 = Some(secs(started));
    }
    let synced = poll_until(RUN_LIMIT, || node.headers() >= headers as u64);
    run.synced = secs(started);
    run.rss_mib = rss_mib(&node.child.id().to_string()).0;
    node.stop();
    synced.then_some(run)
}

/// Core: spawn (with a fresh C-tor client when `tor` is given), then
/// (optionally) the first v2 peer and `headers` headers.
fn run_core(
    bins: &CoreBinaries,
    net: Option<&PrivNet>,
    name: &str,
    connect: &str,
    want_v2: bool,
    headers: usize,
) -> Option<Run> {
    let started = Instant::now();
    let mut config = CoreConfig::regtest(name).connect(connect);
    let tor = net.map(|n| n.spawn_client(name).unwrap());
    if let Some(tor) = &tor {
        // Core's first dial should find the SOCKS port open, as it would
        // with a system tor started before it; C tor then holds the request
        // until it has bootstrapped.
        let socks = tor.socks_addr();
        assert!(
            poll_until(Duration::from_secs(30), || reachable(socks)),
            "{name}: tor's SOCKS port {socks} never opened"
        );
        config = config.onion_proxy(socks);
    }
    let mut core = CoreNode::start(bins, config).unwrap();
    let mut run = Run::default();
    if want_v2 {
        if !poll_until(RUN_LIMIT, || {
            core.rpc(&["getpeerinfo"]).is_ok_and(|p| has_v2_peer(&p))
        }) {
            let _ = core.stop();
            return None;
        }
        run.first_v2 = Some(secs(started));
    }
    let synced = poll_until(RUN_LIMIT, || {
        core.header_count().unwrap_or(0) >= headers as u64
    });
    run.synced = secs(started);
    run.rss_mib = rss_mib(&core.pid().to_string()).0
        + tor
            .as_ref()
            .map_or(0.0, |t| rss_mib(&t.pid().to_string()).0);
    let _ = core.stop();
    synced.then_some(run)
}

fn reachable(addr: SocketAddr) -> bool {
    TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
}

/// Medians of one figure for both sides, and their ratio.
fn row(what: &str, unit: &str, ours: &[f64], theirs: &[f64]) {
    let (a, b) = (
        median(ours).unwrap_or(f64::NAN),
        median(theirs).unwrap_or(f64::NAN),
    );
    println!(
        "| {what:<44} | {a:>9.2} {unit:<3} | {b:>9.2} {unit:<3} | {:>5.2} |",
        a / b
    );
}

fn main() {
    let args = parse_args();
    let bins = CoreBinaries::find().unwrap_or_else(|e| panic!("{e:#}"));
    println!(
        "{}; {} runs, alternating which side goes first",
        bins.version().unwrap(),
        args.runs
    );

    // The two source nodes every cold start syncs from.
    let onion_port = free_port();
    let onion_source = CoreNode::start(
        &bins,
        CoreConfig::regtest("source-onion").p2p_port(onion_port),
    )
    .unwrap();
    onion_source.mine(args.onion_headers).unwrap();
    let loop_source = CoreNode::start(&bins, CoreConfig::regtest("source-loopback")).unwrap();
    let mined = Instant::now();
    loop_source.mine_dated_back(args.loopback_headers).unwrap();
    println!(
        "mined {} + {} regtest blocks ({:.1} s for the larger chain)",
        args.onion_headers,
        args.loopback_headers,
        secs(mined)
    );
    let net = PrivNet::start(PrivNetConfig {
        onion_services: vec![(ONION_PORT, (Ipv4Addr::LOCALHOST, onion_port).into())],
        ..PrivNetConfig::default()
    })
    .expect("private Tor network");
    println!(
        "private Tor network usable after {:.1} s",
        net.timings().usable.as_secs_f64()
    );
    let onion = format!("{}:{ONION_PORT}", net.onion_services()[0].onion_address);
    let tor_args = vec![
        "--privacy".to_owned(),
        "--tor-network".to_owned(),
        net.arti_network_file().display().to_string(),
        "--connect".to_owned(),
        onion.clone(),
    ];
    let loop_args = vec![
        "--no-tor".to_owned(),
        "--no-dnsseed".to_owned(),
        "--connect".to_owned(),
        loop_source.p2p_addr().to_string(),
    ];

    // The first client on a fresh network finds some directory caches and
    // onion-service directories still catching up; one untimed onion run of
    // each side keeps that from landing on whoever goes first.
    let warm_nj = run_nightjar(&tor_args, true, args.onion_headers);
    let warm_core = run_core(
        &bins,
        Some(&net),
        "corewarm",
        &onion,
        true,
        args.onion_headers,
    );
    println!("warm-up (not counted): nightjar {warm_nj:?}, Core {warm_core:?}");

    let (mut nj_tor, mut core_tor, mut nj_loop, mut core_loop) = (vec![], vec![], vec![], vec![]);
    for run in 1..=args.runs {
        let core_onion_run = || {
            run_core(
                &bins,
                Some(&net),
                &format!("coretor{run}"),
                &onion,
                true,
                args.onion_headers,
            )
        };
        let core_loop_run = || {
            run_core(
                &bins,
                None,
                &format!("coreloop{run}"),
                &loop_source.p2p_addr().to_string(),
                false,
                args.loopback_headers,
            )
        };
        // A B, then B A in the next run: neither side always goes first.
        let (a, b, c, d) = if run % 2 == 1 {
            let a = run_nightjar(&tor_args, true, args.onion_headers);
            let b = core_onion_run();
            let c = run_nightjar(&loop_args, false, args.loopback_headers);
            (a, b, c, core_loop_run())
        } else {
            let b = core_onion_run();
            let a = run_nightjar(&tor_args, true, args.onion_headers);
            let d = core_loop_run();
            (
                a,
                b,
                run_nightjar(&loop_args, false, args.loopback_headers),
                d,
            )
        };
        println!("run {run}: onion nightjar    {a:?}");
        println!("run {run}: onion Core        {b:?}");
        println!("run {run}: loopback nightjar {c:?}");
        println!("run {run}: loopback Core     {d:?}");
        nj_tor.extend(a);
        core_tor.extend(b);
        nj_loop.extend(c);
        core_loop.extend(d);
    }

    let pick = |runs: &[Run], f: fn(&Run) -> Option<f64>| -> Vec<f64> {
        runs.iter().filter_map(f).collect()
    };
    println!();
    println!(
        "medians over {} runs (nightjar's ratio to Core: below 1 is faster or smaller)",
        args.runs
    );
    println!(
        "| {:<44} | {:>13} | {:>13} | {:>5} |",
        "figure", "nightjar", "Core", "ratio"
    );
    println!("|{:-<46}|{:-<15}|{:-<15}|{:-<7}|", "", "", "", "");
    row(
        "onion: spawn → first v2 peer",
        "s",
        &pick(&nj_tor, |r| r.first_v2),
        &pick(&core_tor, |r| r.first_v2),
    );
    row(
        &format!("onion: spawn → {} headers", args.onion_headers),
        "s",
        &pick(&nj_tor, |r| Some(r.synced)),
        &pick(&core_tor, |r| Some(r.synced)),
    );
    row(
        "onion: RSS then (Core: bitcoind + tor)",
        "MiB",
        &pick(&nj_tor, |r| Some(r.rss_mib)),
        &pick(&core_tor, |r| Some(r.rss_mib)),
    );
    row(
        &format!("loopback: spawn → {} headers", args.loopback_headers),
        "s",
        &pick(&nj_loop, |r| Some(r.synced)),
        &pick(&core_loop, |r| Some(r.synced)),
    );
    row(
        "loopback: RSS then",
        "MiB",
        &pick(&nj_loop, |r| Some(r.rss_mib)),
        &pick(&core_loop, |r| Some(r.rss_mib)),
    );
    let complete = [&nj_tor, &core_tor, &nj_loop, &core_loop]
        .iter()
        .all(|r| r.len() == args.runs);
    net.stop();
    if !complete {
        println!("some runs did not finish within {RUN_LIMIT:?} (see above)");
        std::process::exit(1);
    }
}
