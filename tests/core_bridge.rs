//! Tor through an obfs4 bridge, on the private Tor network: a C-tor bridge
//! relay (`BridgeRelay 1`) whose transport is Debian's `obfs4proxy`, and
//! nightjar's embedded Arti running the same `obfs4proxy` as its client.
//!
//! - the transport alone: bootstrap names the bridge stage, an onion
//!   service answers, and the circuit starts at the bridge;
//! - `nightjar --privacy --bridge "obfs4 …"` syncs headers from Core behind
//!   an onion service, every circuit in `getpeerinfo` starts at the bridge,
//!   and a syscall trace of the daemon and its transport shows no connection
//!   to any relay's ORPort or DirPort: everything went through the bridge;
//! - a bridge line that leads nowhere is reported as the blocked reason
//!   while the daemon keeps trying, and its transport stops with it;
//! - a missing transport binary stops the start with what to install.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr
)]

mod support;

#[path = "support/daemon_log.rs"]
mod daemon_log;
#[path = "support/dead_tor_network.rs"]
mod dead_tor_network;
#[path = "support/nightjar_node.rs"]
mod nightjar_node;

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use daemon_log::{children_named, gone_within};
use futures::StreamExt;
use nightjar_corenode::{CoreBinaries, CoreConfig, CoreNode, core_required};
use nightjar_node::Nightjar;
use nightjar_privnet::bridge::Obfs4Bridge;
use nightjar_privnet::{PrivNet, PrivNetConfig};
use nightjar_tor::{BridgeLine, IsolationGroup, Target, TorNetwork, TorSettings, TorTransport};

/// Blocks Core mines: more than one `headers` reply.
const CHAIN_LEN: usize = 2_100;

/// Virtual port of the onion service in front of Core.
const CORE_ONION_PORT: u16 = 18444;

/// Virtual port of the onion service in front of the echo server.
const ECHO_ONION_PORT: u16 = 8333;

/// Bootstrap through the bridge (the transport starts, the directory comes
/// through the bridge), the rendezvous, then the sync.
const LIMIT: Duration = Duration::from_secs(300);

/// Core's P2P port, fixed before the network starts so that its onion
/// service can forward to it.
fn core_port() -> u16 {
    static PORT: OnceLock<u16> = OnceLock::new();
    *PORT.get_or_init(free_port)
}

/// The private network with one obfs4 bridge, or `None` after a loud skip
/// outside CI.
fn network(test: &str) -> Option<&'static PrivNet> {
    if !nightjar_privnet::obfs4_required(test) {
        return None;
    }
    let net = nightjar_privnet::shared(|| PrivNetConfig {
        onion_services: vec![
            (CORE_ONION_PORT, (Ipv4Addr::LOCALHOST, core_port()).into()),
            (ECHO_ONION_PORT, support::echo_server()),
        ],
        obfs4_bridges: 1,
        dir: std::env::var_os("NIGHTJAR_PRIVNET_DIR").map(Into::into),
        ..PrivNetConfig::default()
    })
    .unwrap_or_else(|e| panic!("private Tor network failed to start: {e:#}"));
    Some(net)
}

fn bridge(net: &PrivNet) -> &Obfs4Bridge {
    &net.obfs4_bridges()[0]
}

/// Whether a circuit's first hop, as Arti labels it (`[127.0.0.1:PORT via
/// obfs4 ed25519:… $fingerprint]`), is `bridge`, reached through its
/// transport.
fn starts_at(hop: &str, bridge: &Obfs4Bridge) -> bool {
    let hop = hop.to_ascii_uppercase();
    hop.contains(&format!("${}", bridge.fingerprint))
        && hop.contains(&format!("127.0.0.1:{} VIA OBFS4", bridge.obfs4_port))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_transport_reaches_an_onion_service_with_every_circuit_at_the_bridge() {
    let Some(net) = network("the_transport_reaches_an_onion_service_through_the_bridge") else {
        return;
    };
    let bridge = bridge(net);
    let line: BridgeLine = bridge.line.parse().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let settings = TorSettings::new(dir.path().join("state"), dir.path().join("cache"))
        .with_network(TorNetwork::Custom(net.arti_network_file().into()))
        .with_bridges(vec![line], Vec::new());
    let tor = TorTransport::start(settings).await.unwrap();
    let events: Vec<_> = tokio::time::timeout(
        LIMIT,
        tor.progress()
            .take_while(|p| futures::future::ready(!p.ready))
            .collect::<Vec<_>>(),
    )
    .await
    .unwrap_or_else(|_| {
        panic!(
            "no bootstrap through the bridge: {}",
            tor.bootstrap_progress()
        )
    });
    // The stage names the bridge: "through bridges: connecting to a
    // bridge; …", never Arti's "connecting to the internet".
    let summaries: BTreeSet<&str> = events.iter().map(|p| p.summary.as_str()).collect();
    assert!(
        summaries.iter().any(|s| s.starts_with("through bridges: ")),
        "{summaries:?}"
    );
    assert!(
        !summaries.iter().any(|s| s.contains("the internet")),
        "{summaries:?}"
    );

    let svc = &net.onion_services()[1];
    let target: Target = format!("{}:{}", svc.onion_address, svc.virtual_port)
        .parse()
        .unwrap();
    for n in 1..=2 {
        // The descriptor may still be on its way to some HSDirs.
        let mut stream =
            support::retry_until_ok(|| tor.connect(&target, IsolationGroup::new(n))).await;
        let reply = support::echo_round_trip(&mut stream, b"through the bridge").await;
        assert_eq!(reply, b"through the bridge");
        let circuit = stream.circuit().expect("a circuit label").clone();
        assert!(
            starts_at(&circuit.hops[0], bridge),
            "circuit {circuit} does not start at the bridge {}",
            bridge.fingerprint
        );
    }
}

#[test]
fn privacy_node_syncs_from_an_onion_peer_through_the_bridge_and_dials_no_relay() {
    let test = "privacy_node_syncs_through_the_obfs4_bridge";
    let Some(bins) = core_required(test) else {
        return;
    };
    if !nightjar_privnet::required(
        test,
        "strace",
        nightjar_privnet::check_tool("strace", "-V", "strace"),
    ) {
        return;
    }
    let Some(net) = network(test) else {
        return;
    };
    let bridge = bridge(net);
    let mut core = start_core(&bins);
    let mined = core.mine(CHAIN_LEN).unwrap();
    let onion = format!(
        "{}:{CORE_ONION_PORT}",
        net.onion_services()[0].onion_address
    );

    let trace = Trace::new();
    let mut node = trace.privacy_node(
        net,
        &["--bridge", &bridge.line, "--connect", &onion],
        "through the obfs4 bridge",
    );

    node.wait_for(LIMIT, "Core's chain through the bridge", |n| {
        n.block_count() == Some(CHAIN_LEN as u64)
    });
    assert_eq!(node.best_hash(), Some(mined[CHAIN_LEN - 1].to_string()));
    let peers = node.peers();
    assert_eq!(peers.len(), 1, "{peers:#?}");
    let peer = &peers[0];
    assert_eq!(peer["addr"], onion, "{peer:#}");
    assert_eq!(peer["transport_protocol_type"], "v2", "{peer:#}");
    let first_hop = peer["circuit"]["hops"][0].as_str().unwrap_or_default();
    assert!(
        starts_at(first_hop, bridge),
        "the peer's circuit does not start at the bridge {}: {peer:#}",
        bridge.fingerprint
    );
    let lines = node.daemon.lines().join("\n");
    assert!(lines.contains("through bridges: "), "{lines}");
    assert!(lines.contains("Tor is reached through a bridge"), "{lines}");
    assert!(
        lines.contains("bridge=obfs4 bridge #1 at [scrubbed]"),
        "{lines}"
    );

    // The transport is the daemon's child, and stops with it.
    let daemon_pid = node.daemon.pid();
    let transport = children_named(daemon_pid, "obfs4proxy");
    assert_eq!(transport.len(), 1, "one obfs4proxy child of {daemon_pid}");
    node.stop();
    // Nothing of it is left, not even a detached tracee.
    assert!(gone_within(daemon_pid, Duration::ZERO));
    assert!(
        transport_stops(transport[0]),
        "obfs4proxy {} outlived the node",
        transport[0]
    );

    // What left the processes: only the bridge's obfs4 port (from the
    // transport) and the transport's own SOCKS listener (from Arti).
    let text = trace.text();
    let ports = inet_connect_ports(&text);
    assert!(
        ports.contains(&bridge.obfs4_port),
        "the trace shows no connection to the bridge at all:\n{text}"
    );
    let mut forbidden: BTreeSet<u16> = net.relay_ports().iter().copied().collect();
    forbidden.insert(bridge.or_port);
    let around: Vec<&u16> = ports.intersection(&forbidden).collect();
    assert!(
        around.is_empty(),
        "connections around the bridge, to relay ports {around:?}:\n{text}"
    );
    core.stop().unwrap();
}

/// The control of the test above: the same trace of a node without a
/// bridge shows it dialling the relays' ports, so a trace free of them
/// means something.
#[test]
fn without_a_bridge_the_same_trace_shows_the_relays_dialled() {
    let test = "without_a_bridge_the_same_trace_shows_the_relays_dialled";
    if !nightjar_privnet::required(
        test,
        "strace",
        nightjar_privnet::check_tool("strace", "-V", "strace"),
    ) {
        return;
    }
    let Some(net) = network(test) else {
        return;
    };
    let trace = Trace::new();
    let node = trace.privacy_node(net, &[], "without a bridge");
    node.stop();
    let text = trace.text();
    let ports = inet_connect_ports(&text);
    let relays: BTreeSet<u16> = net.relay_ports().iter().copied().collect();
    assert!(
        !ports.is_disjoint(&relays),
        "a node without a bridge dialled no relay port? {ports:?}:\n{text}"
    );
}

/// A file for an strace log of `connect(2)` calls.
struct Trace {
    dir: tempfile::TempDir,
}

impl Trace {
    fn new() -> Trace {
        Trace {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self) -> std::path::PathBuf {
        self.dir.path().join("connects")
    }

    fn text(&self) -> String {
        std::fs::read_to_string(self.path()).unwrap()
    }

    /// `nightjar --privacy` on the private network with `args`, traced to
    /// this file; returns once Tor is ready (printing how long that took,
    /// as `what`).
    fn privacy_node(&self, net: &PrivNet, args: &[&str], what: &str) -> Nightjar {
        let started = Instant::now();
        let network_file = net.arti_network_file().display().to_string();
        let mut all = vec!["--tor-network", &network_file, "--privacy"];
        all.extend_from_slice(args);
        let mut node = Nightjar::spawn_under(
            &strace_connects(&self.path()),
            tempfile::tempdir().unwrap(),
            all,
        );
        assert!(
            node.daemon
                .wait_until(LIMIT, |l| l.iter().any(|l| l.contains("Tor is ready"))),
            "no bootstrap {what}:\n{}",
            node.daemon.lines().join("\n")
        );
        eprintln!(
            "figure: Tor ready {what} after {:.1} s",
            started.elapsed().as_secs_f64()
        );
        node
    }
}

/// strace in front of a command: every connect(2) of the process and of
/// every process it starts (the transport), to `file`; seccomp-bpf keeps
/// the tracing cheap (only connect stops the process).
fn strace_connects(file: &Path) -> Vec<OsString> {
    let mut args: Vec<OsString> = [
        "strace",
        "-f",
        "-qq",
        "--seccomp-bpf",
        "-e",
        "trace=connect",
        "-e",
        "signal=none",
        "-o",
    ]
    .iter()
    .map(OsString::from)
    .collect();
    args.push(file.into());
    args
}

#[test]
fn a_bridge_that_cannot_be_reached_is_the_blocked_reason_and_the_node_keeps_trying() {
    let test = "a_bridge_that_cannot_be_reached_is_the_blocked_reason";
    let Some(net) = network(test) else {
        return;
    };
    // The real bridge's identity and cert, at a port where nothing listens.
    let closed = free_port();
    let bridge = bridge(net);
    let wrong = bridge.line.replace(
        &format!("127.0.0.1:{}", bridge.obfs4_port),
        &format!("127.0.0.1:{closed}"),
    );
    assert_ne!(wrong, bridge.line);
    let mut node = Nightjar::spawn([
        "--tor-network",
        &net.arti_network_file().display().to_string(),
        "--privacy",
        "--bridge",
        &wrong,
    ]);
    // The bridge is named by its place in the list; its address is
    // scrubbed, as a peer's is (no --log-sensitive under --privacy).
    let reason = "cannot reach the bridge (obfs4 bridge #1 at [scrubbed])";
    let blocked = |lines: &[String]| {
        lines
            .iter()
            .filter(|l| l.contains("Tor bootstrap blocked") && l.contains(reason))
            .count()
    };
    assert!(
        node.daemon.wait_until(LIMIT, |lines| blocked(lines) >= 1),
        "no blocked report naming the bridge:\n{}",
        node.daemon.lines().join("\n")
    );
    let info = node.rpc(&["getnetworkinfo"]).unwrap();
    let why = info["tor"]["blocked"].as_str().unwrap_or_default();
    assert!(why.contains(reason), "{info:#}");
    let lines = node.daemon.lines().join("\n");
    assert!(
        !lines.contains(&format!("127.0.0.1:{closed}")),
        "the bridge's address was logged:\n{lines}"
    );
    assert!(why.contains("bridges.torproject.org"), "{info:#}");
    assert_eq!(info["tor"]["bootstrapped"], false, "{info:#}");

    // It keeps trying: the transport is (re)started for each attempt, and
    // the daemon is still there and answering a while later.
    let daemon_pid = node.daemon.pid();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut transports = BTreeSet::new();
    while Instant::now() < deadline && transports.is_empty() {
        transports.extend(children_named(daemon_pid, "obfs4proxy"));
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        !transports.is_empty(),
        "no obfs4proxy child of {daemon_pid}"
    );
    std::thread::sleep(Duration::from_secs(10));
    assert!(!node.daemon.exited(), "the daemon gave up");
    assert!(node.rpc(&["getnetworkinfo"]).is_some());
    let lines = node.stop();
    assert!(
        !lines.iter().any(|l| l.contains("panicked")),
        "{}",
        lines.join("\n")
    );
    for pid in transports {
        assert!(transport_stops(pid), "obfs4proxy {pid} outlived the node");
    }
}

#[test]
fn a_missing_transport_binary_stops_the_start_with_what_to_install() {
    // No network needed: the binary is looked for before anything is
    // dialled. A bridge line in the right shape, with PATH leading nowhere.
    let line = "obfs4 192.0.2.10:443 316E643333645F6D79216558614D3931657A5F5F \
                cert=YXJlIGZyZXF1ZW50bHkgZnVsbCBvZiBsaXR0bGUgbWVzc2FnZXMgeW91IGNhbiBmaW5kLg \
                iat-mode=0";
    let dir = tempfile::tempdir().unwrap();
    let network_file = dead_tor_network::write(dir.path());
    let out = Command::new(env!("CARGO_BIN_EXE_nightjar"))
        .args(["--network", "regtest", "--datadir"])
        .arg(dir.path().join("data"))
        .arg("--tor-network")
        .arg(&network_file)
        .args(["--privacy", "--bridge", line])
        .env("HOME", dir.path())
        .env("PATH", dir.path().join("empty"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("the obfs4 transport needs `obfs4proxy`, which is not on PATH"),
        "{stderr}"
    );
    assert!(
        stderr.contains("install the obfs4proxy package"),
        "{stderr}"
    );
}

fn start_core(bins: &CoreBinaries) -> CoreNode {
    CoreNode::start(
        bins,
        CoreConfig::regtest("core-behind-onion").p2p_port(core_port()),
    )
    .unwrap()
}

/// Ports of every IPv4 `connect(2)` in an strace log. Every one must go to
/// 127.0.0.1: anything else fails the test here.
fn inet_connect_ports(trace: &str) -> BTreeSet<u16> {
    let mut ports = BTreeSet::new();
    for line in trace.lines().filter(|l| l.contains("connect(")) {
        if line.contains("sa_family=AF_INET6") {
            panic!("an IPv6 connect: {line}");
        }
        if !line.contains("sa_family=AF_INET") {
            continue;
        }
        assert!(
            line.contains("inet_addr(\"127.0.0.1\")"),
            "a connect off loopback: {line}"
        );
        let port = line
            .split("htons(")
            .nth(1)
            .and_then(|rest| rest.split(')').next())
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no port in {line}"));
        ports.insert(port);
    }
    ports
}

/// Whether the transport `pid` is gone within a few seconds of the node.
/// Arti closes a transport's stdin when it stops, and
/// `TOR_PT_EXIT_ON_STDIN_CLOSE` makes the transport exit on that; when the
/// node's process ends, the kernel closes the pipe all the same.
fn transport_stops(pid: u32) -> bool {
    gone_within(pid, Duration::from_secs(10))
}

/// A port on 127.0.0.1 where nothing listens (yet).
fn free_port() -> u16 {
    nightjar_testpeer::free_port().unwrap()
}
