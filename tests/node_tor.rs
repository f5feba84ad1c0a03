//! The `nightjar` node end to end on the private Tor network: a real daemon
//! process dials scripted Bitcoin peers behind C-tor onion services (and
//! one clearnet peer on 127.0.0.1 reached through a Tor exit), learns more
//! onion peers from their gossip, keeps them over BIP324 v2, separates its
//! connection kinds onto different circuits, saves its address book on
//! SIGTERM and comes back from it; with `--privacy` every connection gets
//! its own circuit and the clearnet peer is never dialled.
//!
//! What the daemon did is read from both ends: its log lines
//! (`support/daemon_log.rs`) and the scripted peers' own records.

// Test code: unwrap and panic are how a test fails.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr
)]

#[path = "support/daemon_log.rs"]
mod daemon_log;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use daemon_log::{Daemon, FeelerDone, PeerLine, address_book_loaded, peer_lines};
use nightjar_privnet::{PrivNet, PrivNetConfig};
use nightjar_testpeer::node::{NodeSpec, NodeStats, PeerFarm, ScriptedNode, onion_gossip_entry};

/// The onion services' virtual port (regtest's P2P port).
const ONION_PORT: u16 = 18444;

/// Bootstrap (up to two minutes right after the network is usable), onion
/// connects of 5–20 s each on a loaded machine, and feelers on a 5 s mean.
const CONNECT_LIMIT: Duration = Duration::from_secs(240);

/// How long the daemon may take to save its state and exit after SIGTERM.
const STOP_LIMIT: Duration = Duration::from_secs(30);

/// The regular outbound target and mean feeler interval both tests use:
/// small, so that one run shows gossip-learned regular peers and a feeler
/// to the one gossiped node left over.
const NODE_ARGS: [&str; 4] = ["--max-outbound", "2", "--feeler-interval", "5"];

/// The scripted onion peers and the network hosting them, shared by the
/// tests of this binary (the network's onion services point at the peers).
struct Fixture {
    farm: PeerFarm,
    /// node1..node4, in onion-service order.
    nodes: Vec<ScriptedNode>,
    /// `<56 chars>.onion` of each node.
    onions: Vec<String>,
    net: &'static PrivNet,
}

impl Fixture {
    /// `onion:port` of node `i` (0-based), as the daemon logs it.
    fn onion_addr(&self, i: usize) -> String {
        format!("{}:{ONION_PORT}", self.onions[i])
    }

    /// A clearnet peer on 127.0.0.1, behind no onion service, gossiping
    /// every onion node: only a Tor exit can take the daemon there.
    fn exit_only_node(&self, name: &str) -> ScriptedNode {
        let node = self.farm.start_node(NodeSpec::regtest(name)).unwrap();
        node.set_gossip(self.gossip_of(&[0, 1, 2, 3]));
        node
    }

    fn gossip_of(&self, which: &[usize]) -> Vec<nightjar::wire::AddrV2Message> {
        which
            .iter()
            .map(|&i| onion_gossip_entry(&self.onions[i], ONION_PORT).unwrap())
            .collect()
    }

    fn stats(&self) -> Vec<NodeStats> {
        self.nodes.iter().map(ScriptedNode::stats).collect()
    }
}

/// The fixture, or `None` (after a loud message) when `tor` is missing
/// outside CI.
fn fixture(test: &str) -> Option<&'static Fixture> {
    if !nightjar_privnet::tor_required(test) {
        return None;
    }
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    Some(FIXTURE.get_or_init(|| {
        let farm = PeerFarm::new().unwrap();
        let nodes: Vec<ScriptedNode> = (1..=4)
            .map(|i| {
                farm.start_node(NodeSpec::regtest(&format!("node{i}")))
                    .unwrap()
            })
            .collect();
        let net = nightjar_privnet::shared(|| PrivNetConfig {
            onion_services: nodes.iter().map(|n| (ONION_PORT, n.addr())).collect(),
            // A subdirectory: other test binaries may run their own
            // network under the same NIGHTJAR_PRIVNET_DIR at the same time.
            dir: std::env::var_os("NIGHTJAR_PRIVNET_DIR").map(|d| Path::new(&d).join("node_tor")),
            ..PrivNetConfig::default()
        })
        .unwrap_or_else(|e| panic!("private Tor network failed to start: {e:#}"));
        let onions: Vec<String> = net
            .onion_services()
            .iter()
            .map(|s| s.onion_address.clone())
            .collect();
        assert_eq!(onions.len(), 4);
        let fx = Fixture {
            farm,
            nodes,
            onions,
            net,
        };
        // node1 knows the other three; the others know all four.
        fx.nodes[0].set_gossip(fx.gossip_of(&[1, 2, 3]));
        for node in &fx.nodes[1..] {
            node.set_gossip(fx.gossip_of(&[0, 1, 2, 3]));
        }
        fx
    }))
}

/// The tests share the scripted peers and count their connections: one
/// daemon at a time keeps those counts meaningful.
fn one_at_a_time() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

/// Start `nightjar` on the private network with `args`.
fn start_daemon(fx: &Fixture, datadir: &Path, home: &Path, args: &[&str]) -> Daemon {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_nightjar"));
    cmd.args(["--network", "regtest", "--datadir"])
        .arg(datadir)
        .arg("--tor-network")
        .arg(fx.net.arti_network_file())
        .arg("--rpcport")
        .arg(nightjar_testpeer::free_port().unwrap().to_string())
        .args(args)
        // The tests read peer addresses from the log; `--privacy` keeps
        // them redacted (and refuses this flag).
        .args((!args.contains(&"--privacy")).then_some("--log-sensitive"))
        // A throwaway HOME: nothing may be written outside the datadir.
        .env("HOME", home)
        .env("RUST_LOG", "info");
    Daemon::spawn(cmd).unwrap()
}

/// The daemon's log (its end) and the peers' records, for failure messages.
fn report(daemon: &Daemon, nodes: &[(&str, &ScriptedNode)]) -> String {
    let lines = daemon.lines();
    let tail = &lines[lines.len().saturating_sub(200)..];
    let mut out = format!("--- daemon log (last {} lines) ---\n", tail.len());
    for line in tail {
        out.push_str(line);
        out.push('\n');
    }
    out.push_str("--- scripted peers ---\n");
    for (name, node) in nodes {
        out.push_str(&format!("{name} at {}: {:?}\n", node.addr(), node.stats()));
    }
    out
}

/// Stop the daemon with SIGTERM and require a clean exit within STOP_LIMIT.
/// Shows (with `--nocapture`) what the run did, to judge a pass by eye too.
fn stop(daemon: &mut Daemon, nodes: &[(&str, &ScriptedNode)]) {
    for line in daemon.lines() {
        let interesting = [
            "peer connected",
            "peer disconnected",
            "feeler done",
            "address book",
            "ignored",
        ];
        if interesting.iter().any(|w| line.contains(w)) {
            eprintln!("  {line}");
        }
    }
    for (name, node) in nodes {
        let s = node.stats();
        eprintln!(
            "  {name}: accepted {} v2 {} v1 {} handshakes {} getaddr {} open {}",
            s.accepted, s.v2_sessions, s.v1_sessions, s.handshakes, s.getaddr_received, s.open
        );
    }
    let status = daemon.terminate(STOP_LIMIT).unwrap();
    match status {
        Some(s) if s.success() => {}
        Some(s) => panic!(
            "daemon exited with {s} after SIGTERM\n{}",
            report(daemon, nodes)
        ),
        None => panic!(
            "daemon still running {STOP_LIMIT:?} after SIGTERM\n{}",
            report(daemon, nodes)
        ),
    }
}

/// Distinct addresses of `kind` connections that are in `allowed`.
fn addrs_of_kind<'a>(peers: &'a [PeerLine], kind: &str, allowed: &[String]) -> BTreeSet<&'a str> {
    peers
        .iter()
        .filter(|p| p.kind == kind && allowed.contains(&p.addr))
        .map(|p| p.addr.as_str())
        .collect()
}

#[test]
fn node_keeps_onion_peers_over_v2_and_restarts_from_its_address_book() {
    let Some(fx) = fixture("node_keeps_onion_peers_over_v2_and_restarts_from_its_address_book")
    else {
        return;
    };
    let _serial = one_at_a_time();
    let exit_node = fx.exit_only_node("exit-a");
    let exit_addr = exit_node.addr().to_string();
    let onion1 = fx.onion_addr(0);
    // What node1 gossips: the only way to learn about nodes 2-4.
    let gossiped: Vec<String> = (1..4).map(|i| fx.onion_addr(i)).collect();
    let all_onions: Vec<String> = (0..4).map(|i| fx.onion_addr(i)).collect();
    let mut watched: Vec<(&str, &ScriptedNode)> = vec![
        ("node1", &fx.nodes[0]),
        ("node2", &fx.nodes[1]),
        ("node3", &fx.nodes[2]),
        ("node4", &fx.nodes[3]),
    ];
    watched.push(("exit-a", &exit_node));
    let before = fx.stats();

    let datadir = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let mut args = vec![
        "--addnode",
        onion1.as_str(),
        "--addnode",
        exit_addr.as_str(),
    ];
    args.extend(NODE_ARGS);
    let mut daemon = start_daemon(fx, datadir.path(), home.path(), &args);

    let all_there = daemon.wait_until(CONNECT_LIMIT, |lines| {
        let peers = peer_lines(lines);
        let manual_onion = peers
            .iter()
            .any(|p| p.kind == "manual" && p.addr == onion1 && p.transport == "v2");
        let manual_exit = peers
            .iter()
            .any(|p| p.kind == "manual" && p.addr == exit_addr);
        let regular = addrs_of_kind(&peers, "regular", &gossiped);
        let feeler = lines.iter().any(|l| FeelerDone::parse(l).is_some());
        manual_onion && manual_exit && regular.len() >= 2 && feeler
    });
    assert!(
        all_there,
        "within {CONNECT_LIMIT:?} the daemon should connect to node1 (manual, v2), the \
         exit-only peer (manual), two gossip-learned regular onion peers, and finish a \
         feeler\n{}",
        report(&daemon, &watched)
    );

    let peers = peer_lines(daemon.lines());
    for p in &peers {
        assert_eq!(p.transport, "v2", "a v1 connection: {p:?}");
        if p.kind == "regular" {
            assert!(
                gossiped.contains(&p.addr),
                "regular peers must come from node1's gossip: {p:?}"
            );
        }
    }
    for a in &peers {
        for b in &peers {
            if a.kind != b.kind
                && let (Some(ca), Some(cb)) = (a.circuit_id(), b.circuit_id())
            {
                assert_ne!(ca, cb, "{a:?} and {b:?} share a circuit across kinds");
            }
        }
    }
    for line in daemon.lines() {
        if let Some(feeler) = FeelerDone::parse(line) {
            assert!(
                all_onions.contains(&feeler.addr),
                "feelers test gossip-learned onion peers: {line}"
            );
        }
    }

    let after: Vec<NodeStats> = fx
        .stats()
        .iter()
        .zip(&before)
        .map(|(now, then)| now.since(then))
        .collect();
    let exit_stats = exit_node.stats();
    for (i, s) in after.iter().chain([&exit_stats]).enumerate() {
        assert_eq!(
            s.v1_sessions, 0,
            "scripted peer #{i} saw v1 sessions: {s:?}"
        );
    }
    assert!(after[0].handshakes >= 1, "node1: {:?}", after[0]);
    assert!(
        exit_stats.accepted >= 1 && exit_stats.v2_sessions >= 1,
        "the exit-only peer was never reached: {exit_stats:?}"
    );
    // Every connection the daemon reports was a v2 session at some peer.
    let v2_seen: usize =
        after.iter().map(|s| s.v2_sessions).sum::<usize>() + exit_stats.v2_sessions;
    assert!(
        v2_seen >= peers.len(),
        "{} connections logged but only {v2_seen} v2 sessions seen by the peers",
        peers.len()
    );

    stop(&mut daemon, &watched);
    let peers_dat = datadir.path().join("regtest").join("peers.dat");
    assert!(
        peers_dat.is_file(),
        "no address book at {} after SIGTERM",
        peers_dat.display()
    );
    drop(daemon);

    // Back from the address book alone: no --addnode this time.
    let mut daemon = start_daemon(fx, datadir.path(), home.path(), &NODE_ARGS);
    let back = daemon.wait_until(CONNECT_LIMIT, |lines| {
        let loaded = lines
            .iter()
            .filter_map(|l| address_book_loaded(l))
            .any(|n| n >= 3);
        let peers = peer_lines(lines);
        loaded && addrs_of_kind(&peers, "regular", &all_onions).len() >= 2
    });
    assert!(
        back,
        "after a restart the daemon should load >= 3 addresses from peers.dat and make \
         two regular onion connections from them\n{}",
        report(&daemon, &watched)
    );
    for p in peer_lines(daemon.lines()) {
        assert_eq!(p.transport, "v2", "a v1 connection after restart: {p:?}");
        assert_ne!(p.kind, "manual", "no --addnode was given: {p:?}");
    }
    stop(&mut daemon, &watched);
    let home_entries: Vec<_> = std::fs::read_dir(home.path()).unwrap().collect();
    assert!(
        home_entries.is_empty(),
        "daemon wrote to $HOME: {home_entries:?}"
    );
}

#[test]
fn privacy_gives_every_connection_its_own_circuit_and_never_dials_clearnet() {
    let Some(fx) =
        fixture("privacy_gives_every_connection_its_own_circuit_and_never_dials_clearnet")
    else {
        return;
    };
    let _serial = one_at_a_time();
    let exit_node = fx.exit_only_node("exit-b");
    let exit_addr = exit_node.addr().to_string();
    let onion1 = fx.onion_addr(0);
    let watched: Vec<(&str, &ScriptedNode)> = vec![
        ("node1", &fx.nodes[0]),
        ("node2", &fx.nodes[1]),
        ("node3", &fx.nodes[2]),
        ("node4", &fx.nodes[3]),
        ("exit-b", &exit_node),
    ];

    // A clearnet peer contradicts --privacy: the daemon refuses to start,
    // naming the option, before anything (Tor included) starts.
    let datadir = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let mut refused = start_daemon(
        fx,
        datadir.path(),
        home.path(),
        &[
            "--privacy",
            "--addnode",
            onion1.as_str(),
            "--addnode",
            exit_addr.as_str(),
        ],
    );
    let status = (0..300)
        .find_map(|_| {
            refused.pump(Duration::from_millis(100));
            refused.exit_status()
        })
        .expect("--privacy with a clearnet --addnode must not start");
    assert!(!status.success(), "exit status {status}");
    // Collect what it said on its way out.
    for _ in 0..10 {
        refused.pump(Duration::from_millis(50));
    }
    assert!(
        refused.lines().iter().any(|l| l.contains("addnode")),
        "the refusal names the option: {:?}",
        refused.lines()
    );

    let mut args = vec!["--privacy", "--addnode", onion1.as_str()];
    args.extend(NODE_ARGS);
    let mut daemon = start_daemon(fx, datadir.path(), home.path(), &args);
    let enough = daemon.wait_until(CONNECT_LIMIT, |lines| peer_lines(lines).len() >= 3);
    assert!(
        enough,
        "within {CONNECT_LIMIT:?} the daemon should make three connections\n{}",
        report(&daemon, &watched)
    );
    // Peer addresses are redacted in the log under --privacy.
    for line in daemon.lines() {
        assert!(
            !line.contains(".onion"),
            "an onion address in a --privacy log line: {line}"
        );
    }

    let peers = peer_lines(daemon.lines());
    let mut isolations = BTreeSet::new();
    let mut circuits = BTreeSet::new();
    for p in &peers {
        assert_eq!(p.transport, "v2", "a v1 connection: {p:?}");
        assert_ne!(
            p.addr, exit_addr,
            "--privacy dialled a clearnet peer: {p:?}"
        );
        let isolation = p
            .isolation
            .clone()
            .unwrap_or_else(|| panic!("no isolation label: {p:?}"));
        assert!(
            isolations.insert(isolation),
            "two connections share an isolation group: {p:?}\n{}",
            report(&daemon, &watched)
        );
        let circuit = p
            .circuit_id()
            .unwrap_or_else(|| panic!("a connection without a Tor circuit: {p:?}"))
            .to_string();
        assert!(
            circuits.insert(circuit),
            "two connections share a circuit: {p:?}\n{}",
            report(&daemon, &watched)
        );
    }

    stop(&mut daemon, &watched);
    let exit_stats = exit_node.stats();
    assert_eq!(
        exit_stats.accepted, 0,
        "--privacy reached the clearnet peer: {exit_stats:?}"
    );
}
