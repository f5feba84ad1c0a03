//! Offline demo: a `nightjar` node on a private Tor network, with scripted
//! Bitcoin peers behind onion services, all on this machine.
//!
//! It starts the private network (Debian's `tor`, see `nightjar-privnet`)
//! with three onion peers and one clearnet peer on 127.0.0.1 that only a
//! Tor exit reaches, then runs the daemon against it with `--addnode` for
//! the first onion peer and for the clearnet one. The daemon learns the
//! other onion peers from gossip. Its log is echoed, and every 10 s a table
//! shows its open connections and what each scripted peer saw.
//!
//! Run it through `bash scripts/offline-demo [--duration SECS]`, which
//! builds everything and runs it in a network namespace with loopback only.
//! Directly: `cargo run --example offline_demo -- --nightjar
//! target/debug/nightjar [--duration SECS]`. It exits non-zero if the
//! daemon made no v2 connection.

#![allow(clippy::print_stdout, clippy::print_stderr)]

#[path = "../tests/support/daemon_log.rs"]
mod daemon_log;

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use daemon_log::{Daemon, PeerLine, open_peers, peer_lines};
use nightjar_privnet::{PrivNet, PrivNetConfig};
use nightjar_testpeer::node::{NodeSpec, PeerFarm, ScriptedNode, onion_gossip_entry};

/// The onion services' virtual port (regtest's P2P port).
const ONION_PORT: u16 = 18444;

/// How often the status table is printed.
const TABLE_EVERY: Duration = Duration::from_secs(10);

/// How long the daemon gets to save its address book and exit.
const STOP_LIMIT: Duration = Duration::from_secs(30);

/// What the command line asked for.
struct Args {
    nightjar: PathBuf,
    /// `None`: until Ctrl-C.
    duration: Option<Duration>,
}

fn usage() -> &'static str {
    "usage: offline_demo [--nightjar PATH] [--duration SECS]\n\
     PATH defaults to the `nightjar` binary next to this example's target directory;\n\
     without --duration the demo runs until Ctrl-C."
}

fn parse_args() -> Result<Args> {
    let mut nightjar = None;
    let mut duration = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--nightjar" => nightjar = Some(PathBuf::from(args.next().context(usage())?)),
            "--duration" => {
                let secs: u64 = args
                    .next()
                    .context(usage())?
                    .parse()
                    .context("--duration takes whole seconds")?;
                duration = Some(Duration::from_secs(secs));
            }
            "-h" | "--help" => {
                println!("{}", usage());
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?}\n{}", usage()),
        }
    }
    let nightjar = match nightjar {
        Some(p) => p,
        // target/<profile>/examples/offline_demo -> target/<profile>/nightjar
        None => std::env::current_exe()?
            .parent()
            .and_then(|examples| examples.parent())
            .map(|profile| profile.join("nightjar"))
            .context("cannot locate the nightjar binary: pass --nightjar PATH")?,
    };
    if !nightjar.is_file() {
        bail!(
            "{} does not exist: build it (`cargo build --bin nightjar`) or pass --nightjar PATH",
            nightjar.display()
        );
    }
    Ok(Args { nightjar, duration })
}

fn main() -> ExitCode {
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("offline demo: the daemon made no v2 connection");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("offline demo: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Run the demo; `Ok(true)` if the daemon made a v2 connection.
fn run() -> Result<bool> {
    let args = parse_args()?;
    nightjar_privnet::check_tor_installed()?;

    let farm = PeerFarm::new().context("starting the scripted peers' runtime")?;
    let onion_nodes: Vec<ScriptedNode> = (1..=3)
        .map(|i| farm.start_node(NodeSpec::regtest(&format!("onion{i}"))))
        .collect::<std::io::Result<_>>()?;
    let exit_node = farm.start_node(NodeSpec::regtest("exit1"))?;

    println!("starting the private Tor network (usually 20-40 s)...");
    let net = PrivNet::start(PrivNetConfig {
        onion_services: onion_nodes.iter().map(|n| (ONION_PORT, n.addr())).collect(),
        dir: std::env::var_os("NIGHTJAR_PRIVNET_DIR").map(Into::into),
        ..PrivNetConfig::default()
    })
    .context("starting the private Tor network")?;
    println!(
        "private Tor network usable after {:.1} s; files in {}",
        net.timings().usable.as_secs_f64(),
        net.dir().display()
    );

    let onions: Vec<String> = net
        .onion_services()
        .iter()
        .map(|s| s.onion_address.clone())
        .collect();
    let gossip = |which: &[usize]| -> Result<Vec<_>> {
        which
            .iter()
            .map(|&i| Ok(onion_gossip_entry(&onions[i], ONION_PORT)?))
            .collect()
    };
    // onion1 tells of the other two; everyone else of all three.
    onion_nodes[0].set_gossip(gossip(&[1, 2])?);
    for node in &onion_nodes[1..] {
        node.set_gossip(gossip(&[0, 1, 2])?);
    }
    exit_node.set_gossip(gossip(&[0, 1, 2])?);

    let mut peers: Vec<(String, &ScriptedNode)> = onion_nodes
        .iter()
        .zip(&onions)
        .map(|(node, onion)| (short_addr(&format!("{onion}:{ONION_PORT}")), node))
        .collect();
    peers.push((exit_node.addr().to_string(), &exit_node));
    for (addr, node) in &peers {
        println!(
            "scripted peer {:<7} {addr} (listening on {})",
            node.name(),
            node.addr()
        );
    }

    let interrupted = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&interrupted);
    farm.handle().spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            flag.store(true, Ordering::SeqCst);
        }
    });

    let datadir = tempfile::tempdir()?;
    let home = tempfile::tempdir()?;
    let onion1 = format!("{}:{ONION_PORT}", onions[0]);
    let exit_addr = exit_node.addr().to_string();
    let mut cmd = Command::new(&args.nightjar);
    cmd.args(["--network", "regtest", "--datadir"])
        .arg(datadir.path())
        .arg("--tor-network")
        .arg(net.arti_network_file())
        .args([
            "--addnode",
            onion1.as_str(),
            "--addnode",
            exit_addr.as_str(),
        ])
        .args(["--max-outbound", "2", "--feeler-interval", "15"])
        // The demo shows which peer is which: addresses in the log.
        .arg("--log-sensitive")
        .arg("--rpcport")
        .arg(nightjar_testpeer::free_port()?.to_string())
        // A throwaway HOME: nothing is written outside the temporary datadir.
        .env("HOME", home.path())
        .env("RUST_LOG", nightjar::logging::DEFAULT_FILTER);
    println!(
        "starting {} --addnode {onion1} --addnode {exit_addr} --max-outbound 2 --feeler-interval 15",
        args.nightjar.display()
    );
    let mut daemon = Daemon::spawn(cmd).context("starting nightjar")?;

    let started = Instant::now();
    let mut next_table = started + TABLE_EVERY;
    let mut saw_v2 = false;
    let mut echo = Echo::default();
    loop {
        for line in daemon.pump(Duration::from_millis(250)) {
            echo.line(&line);
            saw_v2 |= PeerLine::parse(&line).is_some_and(|p| p.transport == "v2");
        }
        if Instant::now() >= next_table {
            print_table(started, daemon.lines(), &peers);
            next_table += TABLE_EVERY;
        }
        if interrupted.load(Ordering::SeqCst) {
            println!("interrupted: stopping");
            break;
        }
        if args.duration.is_some_and(|d| started.elapsed() >= d) {
            break;
        }
        if daemon.exited() {
            println!(
                "nightjar exited on its own ({})",
                daemon
                    .exit_status()
                    .map_or_else(|| "unknown status".to_string(), |s| s.to_string())
            );
            break;
        }
    }

    match daemon.terminate(STOP_LIMIT)? {
        Some(status) => println!("nightjar stopped: {status}"),
        None => println!("nightjar did not stop within {STOP_LIMIT:?} of SIGTERM; killing it"),
    }
    for line in daemon.pump(Duration::ZERO) {
        echo.line(&line);
    }
    // The peers see the streams close once Tor tears the circuits down,
    // a moment after the daemon is gone.
    let settle = Instant::now() + Duration::from_secs(5);
    while Instant::now() < settle && peers.iter().any(|(_, n)| n.stats().open > 0) {
        std::thread::sleep(Duration::from_millis(100));
    }
    println!("\nat the end (the daemon's connections as it last logged them):");
    print_table(started, daemon.lines(), &peers);
    let connections = peer_lines(daemon.lines());
    println!(
        "{} connections in {:.0} s, {} over v2",
        connections.len(),
        started.elapsed().as_secs_f64(),
        connections.iter().filter(|p| p.transport == "v2").count()
    );
    drop(daemon);
    net.stop();
    Ok(saw_v2)
}

/// Echoes the daemon's log, each distinct message once more every tenfold
/// repeat: some messages (Arti's path-selection warnings on a tiny private
/// network) come every second and would bury the rest.
#[derive(Default)]
struct Echo {
    seen: HashMap<String, u64>,
}

impl Echo {
    fn line(&mut self, line: &str) {
        // The message without its timestamp (the first word).
        let message = line.split_once(' ').map_or(line, |(_, rest)| rest).trim();
        let count = self.seen.entry(message.to_string()).or_insert(0);
        *count += 1;
        if *count == 1 {
            println!("nightjar | {line}");
        } else if is_power_of_ten(*count) {
            let head: String = message.chars().take(70).collect();
            println!("nightjar | (seen {count} times so far: {head}...)");
        }
    }
}

/// Whether a count is 10, 100, 1000... (when a repeat is worth a mention).
fn is_power_of_ten(count: u64) -> bool {
    let mut n = count;
    while n >= 10 && n.is_multiple_of(10) {
        n /= 10;
    }
    n == 1 && count >= 10
}

/// `lrvnydxc….onion:18444` for onion addresses; others as they are.
fn short_addr(addr: &str) -> String {
    match addr.rsplit_once(':') {
        Some((host, port)) if host.ends_with(".onion") && host.len() > 16 => {
            format!("{}….onion:{port}", host.get(..8).unwrap_or(host))
        }
        _ => addr.to_string(),
    }
}

/// The daemon's open connections and each scripted peer's counts.
fn print_table(started: Instant, lines: &[String], peers: &[(String, &ScriptedNode)]) {
    // Session ids the scripted peers derived: a connection whose logged id
    // is among them provably ends at one of our peers (no one in between).
    let peer_sessions: BTreeSet<String> = peers
        .iter()
        .flat_map(|(_, node)| node.stats().connections)
        .filter_map(|c| c.transport.map(|t| t.session_id_hex()))
        .filter(|hex| !hex.is_empty())
        .collect();
    let open = open_peers(lines);
    println!(
        "\n=== after {:.0} s: {} open connection(s) ===",
        started.elapsed().as_secs_f64(),
        open.len()
    );
    println!(
        "  {:<8} {:<8} {:<26} {:<9} {:<11} {:<12} session id",
        "conn", "kind", "peer", "transport", "circuit", "isolation"
    );
    for p in &open {
        let matched = p
            .session_id
            .as_ref()
            .is_some_and(|id| peer_sessions.contains(id));
        println!(
            "  {:<8} {:<8} {:<26} {:<9} {:<11} {:<12} {}",
            p.conn,
            p.kind,
            short_addr(&p.addr),
            p.transport,
            p.circuit.as_deref().unwrap_or("-"),
            p.isolation.as_deref().unwrap_or("-"),
            if matched {
                "same at the peer"
            } else {
                "not seen at a peer"
            }
        );
    }
    println!(
        "  {:<7} {:<26} {:>8} {:>3} {:>3} {:>10} {:>7} {:>4}",
        "peer", "address", "accepted", "v2", "v1", "handshakes", "getaddr", "open"
    );
    for (addr, node) in peers {
        let s = node.stats();
        println!(
            "  {:<7} {:<26} {:>8} {:>3} {:>3} {:>10} {:>7} {:>4}",
            node.name(),
            addr,
            s.accepted,
            s.v2_sessions,
            s.v1_sessions,
            s.handshakes,
            s.getaddr_received,
            s.open
        );
    }
    println!();
}
