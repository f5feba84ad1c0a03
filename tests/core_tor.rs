//! Interop with Bitcoin Core over the private Tor network: a real regtest
//! `bitcoind` behind a C-tor onion service, and nightjar's embedded Arti
//! client dialling it.
//!
//! - `--privacy`: headers synced from Core's onion service over BIP324, one
//!   session id on both sides, nothing about us in Core's view of our
//!   version message;
//! - the harness itself: Core, given the network's SOCKS port, dials an
//!   onion service (as it will dial nightjar's own);
//! - v1: an `--addnode` peer that speaks only v1 (`-v2transport=0`) is
//!   reached over v1 on the same isolation group's circuits, and the same
//!   peer under `--privacy` is never sent a v1 byte.

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

use std::net::{Ipv4Addr, TcpListener};
use std::sync::OnceLock;
use std::time::Duration;

use daemon_log::{PeerLine, fields_after, peer_lines};
use nightjar_corenode::{CoreBinaries, CoreConfig, CoreNode, core_required};
use nightjar_node::Nightjar;
use nightjar_privnet::{PrivNet, PrivNetConfig};
use serde_json::Value;

/// Blocks Core mines for the sync test: more than one `headers` reply.
const CHAIN_LEN: usize = 2_100;

/// The onion services' virtual port: regtest's P2P port, as Core would
/// announce it.
const ONION_PORT: u16 = 18444;

/// Arti's bootstrap right after the network is usable (up to two minutes on
/// a loaded machine), the rendezvous, then the sync through a circuit.
const LIMIT: Duration = Duration::from_secs(300);

/// Core's P2P ports, fixed before the network starts so that its onion
/// services can forward to them: [0] a v2 Core, [1] a v1-only Core, [2] a
/// Core that another Core dials.
fn core_ports() -> &'static [u16; 3] {
    static PORTS: OnceLock<[u16; 3]> = OnceLock::new();
    PORTS.get_or_init(|| {
        // The listeners are held until every port is chosen.
        let held: Vec<TcpListener> = (0..3)
            .map(|_| TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap())
            .collect();
        let port = |i: usize| held[i].local_addr().unwrap().port();
        [port(0), port(1), port(2)]
    })
}

/// Core and the private network, or `None` after a loud skip outside CI.
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

/// `<onion>:18444` of the service in front of Core's port `i`.
fn core_onion(net: &PrivNet, i: usize) -> String {
    format!("{}:{ONION_PORT}", net.onion_services()[i].onion_address)
}

fn nightjar_on(net: &PrivNet, args: &[&str]) -> Nightjar {
    let mut all = vec![
        "--tor-network".to_owned(),
        net.arti_network_file().display().to_string(),
    ];
    all.extend(args.iter().map(|a| (*a).to_owned()));
    Nightjar::spawn(all)
}

#[test]
fn privacy_node_syncs_from_cores_onion_service_with_one_session_id() {
    let Some((bins, net)) = setup("privacy_node_syncs_from_cores_onion_service") else {
        return;
    };
    let mut core = CoreNode::start(
        &bins,
        CoreConfig::regtest("core-onion").p2p_port(core_ports()[0]),
    )
    .unwrap();
    let mined = core.mine(CHAIN_LEN).unwrap();
    let onion = core_onion(net, 0);
    let mut node = nightjar_on(net, &["--privacy", "--connect", &onion]);

    node.wait_for(LIMIT, "Core's chain over Tor", |n| {
        n.block_count() == Some(CHAIN_LEN as u64)
    });
    let tip = core.best_block_hash().unwrap();
    assert_eq!(tip, mined[CHAIN_LEN - 1]);
    assert_eq!(node.best_hash(), Some(tip.to_string()));

    let ours = node.peers();
    assert_eq!(ours.len(), 1, "{ours:#?}");
    let ours = &ours[0];
    assert_eq!(ours["addr"], onion, "{ours:#}");
    assert_eq!(ours["network"], "onion", "{ours:#}");
    assert_eq!(ours["transport_protocol_type"], "v2", "{ours:#}");
    assert!(ours["circuit"]["id"].is_string(), "{ours:#}");

    // Core sees an inbound v2 peer (arriving from its onion service's
    // loopback forwarding) with the very same BIP324 session id.
    let agent = format!("/nightjar:{}/", env!("CARGO_PKG_VERSION"));
    let mut theirs = None;
    core.wait_for(LIMIT, "nightjar as a peer", |c| {
        theirs = c.peers()?.into_iter().find(|p| p["subver"] == agent);
        Ok(theirs.is_some())
    })
    .unwrap();
    let theirs = theirs.unwrap();
    assert_eq!(theirs["inbound"], true, "{theirs:#}");
    assert_eq!(theirs["transport_protocol_type"], "v2", "{theirs:#}");
    assert_eq!(ours["session_id"], theirs["session_id"], "{theirs:#}");
    // Our version said nothing about where we are: over Tor even the
    // address we dialled is an onion name, which the legacy field cannot
    // carry, so Core has no `addrlocal` for us at all.
    assert!(theirs.get("addrlocal").is_none(), "{theirs:#}");
    assert_eq!(theirs["services"], "0000000000000000", "{theirs:#}");
    // Relay asked for (so a private broadcast can be confirmed), but no
    // announcement wanted while nothing is pending: `feefilter` is shut.
    assert_eq!(theirs["relaytxes"], true, "{theirs:#}");

    node.stop();
    core.stop().unwrap();
}

/// Lines of Core's debug log that record a `version` message received from
/// nightjar.
fn versions_from_us(core: &CoreNode) -> usize {
    core.debug_log()
        .lines()
        .filter(|l| l.contains("receive version message") && l.contains("/nightjar:"))
        .count()
}

/// Lines of Core's (v1-only) debug log that record a connection opening
/// with bytes that are not a v1 message header: a BIP324 key exchange.
fn v2_attempts_seen(core: &CoreNode) -> usize {
    core.debug_log()
        .lines()
        .filter(|l| l.contains("Wrong MessageStart"))
        .count()
}

#[test]
fn added_v1_peer_is_reached_over_v1_on_its_own_circuits_but_never_under_privacy() {
    let Some((bins, net)) = setup("added_v1_peer_fallback_and_privacy") else {
        return;
    };
    let core = CoreNode::start(
        &bins,
        CoreConfig::regtest("core-v1")
            .p2p_port(core_ports()[1])
            .v2transport(false),
    )
    .unwrap();
    core.mine(10).unwrap();
    let onion = core_onion(net, 1);

    // 1. Without --privacy, an added peer may fall back to v1: v2 first,
    // then v1 over a fresh stream from the same dialer, so on the same
    // isolation group's circuits.
    let mut node = nightjar_on(
        net,
        &[
            "--addnode",
            &onion,
            "--no-dnsseed",
            "--debug",
            "net",
            "--log-sensitive",
        ],
    );
    node.wait_for(LIMIT, "a v1 session with Core", |n| {
        n.block_count() == Some(10)
    });
    // The log line was written before the sync began; the reader thread
    // may not have handed it over yet.
    node.daemon
        .wait_until(LIMIT, |lines| !peer_lines(lines).is_empty());
    let connected: Vec<PeerLine> = peer_lines(node.daemon.lines());
    assert_eq!(connected.len(), 1, "{connected:#?}");
    let peer = &connected[0];
    assert_eq!(
        (peer.kind.as_str(), peer.transport.as_str()),
        ("manual", "v1"),
        "{peer:?}"
    );
    assert!(peer.circuit_id().is_some(), "{peer:?}");
    let dialled = node
        .daemon
        .lines()
        .iter()
        .filter_map(|l| fields_after(l, "dialling"))
        .find(|f| f.get("conn") == Some(&peer.conn))
        .unwrap_or_else(|| panic!("no dialling line for {}", peer.conn));
    let isolation = peer.isolation.as_deref().unwrap_or_default();
    assert!(isolation.starts_with("manual/"), "{peer:?}");
    assert_eq!(
        dialled.get("isolation").map(String::as_str),
        Some(isolation)
    );
    assert!(
        node.daemon
            .lines()
            .iter()
            .any(|l| l.contains("peer rejected v2; retrying with v1")),
        "{:#?}",
        node.daemon.lines()
    );
    let ours = node.peers();
    assert_eq!(ours[0]["transport_protocol_type"], "v1", "{ours:#?}");
    assert_eq!(ours[0]["session_id"], "", "{ours:#?}");
    // Core agrees: a v1 inbound peer with our user agent, whose first
    // connection attempt was not a v1 header (it was our v2 key exchange).
    let peers = core.peers().unwrap();
    assert!(
        peers.iter().any(|p| p["transport_protocol_type"] == "v1"
            && p["subver"]
                .as_str()
                .is_some_and(|s| s.starts_with("/nightjar:"))),
        "{peers:#?}"
    );
    assert!(v2_attempts_seen(&core) >= 1, "{}", core.log_tail(40));
    node.stop();

    // 2. Under --privacy the same added peer is tried over v2 only: Core
    // sees key exchanges it cannot read, and never a v1 `version`.
    let versions_before = versions_from_us(&core);
    let attempts_before = v2_attempts_seen(&core);
    let mut node = nightjar_on(net, &["--privacy", "--addnode", &onion]);
    node.wait_for(LIMIT, "two failed v2 attempts", |n| {
        n.daemon
            .lines()
            .iter()
            .filter(|l| l.contains("could not reach added peer"))
            .count()
            >= 2
    });
    // Every attempt ended in the key exchange (the reason is logged
    // unquoted, so it is matched in the line).
    let failures: Vec<&String> = node
        .daemon
        .lines()
        .iter()
        .filter(|l| l.contains("could not reach added peer"))
        .collect();
    assert!(
        failures
            .iter()
            .all(|l| l.contains("peer closed the connection during the v2 key exchange")),
        "{failures:#?}"
    );
    assert!(peer_lines(node.daemon.lines()).is_empty());
    assert_eq!(node.peers(), Vec::<Value>::new());
    assert!(
        v2_attempts_seen(&core) >= attempts_before + 2,
        "{}",
        core.log_tail(40)
    );
    assert_eq!(
        versions_from_us(&core),
        versions_before,
        "{}",
        core.log_tail(40)
    );
    node.stop();
}

#[test]
fn core_given_the_socks_port_dials_an_onion_service() {
    let Some((bins, net)) = setup("core_given_the_socks_port_dials_an_onion_service") else {
        return;
    };
    let listener = CoreNode::start(
        &bins,
        CoreConfig::regtest("core-listener").p2p_port(core_ports()[2]),
    )
    .unwrap();
    let mined = listener.mine(50).unwrap();
    let onion = core_onion(net, 2);
    let mut dialer = CoreNode::start(
        &bins,
        CoreConfig::regtest("core-dialer")
            .onion_proxy(net.socks_addr())
            .connect(&onion),
    )
    .unwrap();
    dialer
        .wait_for(LIMIT, "the listener's chain over Tor", |c| {
            Ok(c.best_block_hash()? == mined[49])
        })
        .unwrap();
    let peers = dialer.peers().unwrap();
    assert_eq!(peers.len(), 1, "{peers:#?}");
    let p = &peers[0];
    assert_eq!(p["addr"], onion, "{p:#}");
    assert_eq!(p["network"], "onion", "{p:#}");
    assert_eq!(p["connection_type"], "manual", "{p:#}");
    assert_eq!(p["transport_protocol_type"], "v2", "{p:#}");
}

/// nightjar's own onion service, from `getnetworkinfo`: (`onion:port`,
/// state).
fn onion_service(node: &Nightjar) -> Option<(String, String)> {
    let info = node.rpc(&["getnetworkinfo"])?;
    let o = &info["tor"]["onion_service"];
    Some((
        o["address"].as_str()?.to_owned(),
        o["state"].as_str()?.to_owned(),
    ))
}

#[test]
fn core_dials_nightjars_own_onion_service_and_learns_the_chain_from_it() {
    let Some((bins, net)) = setup("core_dials_nightjars_own_onion_service") else {
        return;
    };
    // The chain comes from a Core node reached through an exit; the onion
    // service is on by default when Tor is on.
    let source = CoreNode::start(&bins, CoreConfig::regtest("core-chain")).unwrap();
    let mined = source.mine(CHAIN_LEN).unwrap();
    let mut node = nightjar_on(
        net,
        &[
            "--connect",
            &source.p2p_addr().to_string(),
            "--no-dnsseed",
            "--log-sensitive",
        ],
    );
    // The service's state is shown as Arti reports it; on this small
    // network it may say "unreachable" while its descriptor is still
    // reaching the directories, so only its address is waited for.
    node.wait_for(LIMIT, "the chain and the onion service", |n| {
        n.block_count() == Some(CHAIN_LEN as u64) && onion_service(n).is_some()
    });
    let (ours, _) = onion_service(&node).unwrap();
    let info = node.rpc(&["getnetworkinfo"]).unwrap();
    let local = info["localaddresses"].get(0).unwrap_or_else(|| {
        panic!(
            "no local address: {info:#}\n{}",
            node.daemon.lines().join("\n")
        )
    });
    assert_eq!(
        format!("{}:{}", local["address"].as_str().unwrap(), local["port"]),
        ours
    );
    assert!(ours.ends_with(".onion:18444"), "{ours}");
    // Announced to the outbound peer, in an addrv2 (Core drops it: a node
    // that claims no services is not worth storing for it).
    let agent = format!("/nightjar:{}/", env!("CARGO_PKG_VERSION"));
    let mut source = source;
    source
        .wait_for(LIMIT, "our self-announcement", |c| {
            Ok(c.peers()?.iter().any(|p| {
                p["subver"] == agent && p["bytesrecv_per_msg"]["addrv2"].as_u64().unwrap_or(0) > 0
            }))
        })
        .unwrap();

    // A fresh Core whose only peer is nightjar's onion service, dialled
    // through C tor's SOCKS port.
    let mut fresh = CoreNode::start(
        &bins,
        CoreConfig::regtest("core-dials-onion")
            .onion_proxy(net.socks_addr())
            .connect(&ours),
    )
    .unwrap();
    fresh
        .wait_for(LIMIT, "nightjar's headers over its onion service", |c| {
            Ok(c.header_count()? == CHAIN_LEN as u64)
        })
        .unwrap();
    let tip = fresh
        .rpc(&["getblockheader", &mined[CHAIN_LEN - 1].to_string()])
        .unwrap();
    assert_eq!(tip["height"], CHAIN_LEN, "{tip:#}");
    let theirs = fresh.peers().unwrap();
    assert_eq!(theirs.len(), 1, "{theirs:#?}");
    assert_eq!(theirs[0]["network"], "onion", "{:#}", theirs[0]);
    assert_eq!(
        theirs[0]["transport_protocol_type"], "v2",
        "{:#}",
        theirs[0]
    );
    let peers = node.peers();
    let inbound = peers
        .iter()
        .find(|p| p["inbound"] == true)
        .unwrap_or_else(|| panic!("no inbound peer: {peers:#?}"));
    assert_eq!(inbound["network"], "onion", "{inbound:#}");
    assert_eq!(
        inbound["session_id"], theirs[0]["session_id"],
        "{inbound:#}"
    );
    fresh.stop().unwrap();

    // A second Arti client reaches it too, as a test peer speaking BIP324:
    // nightjar answers the handshake and announces its tip.
    let target: nightjar_tor::Target = ours.parse().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let announced = rt.block_on(async {
        let (visitor, _dir) = support::client(net).await;
        let stream = visitor
            .connect(&target, nightjar_tor::IsolationGroup::new(1))
            .await
            .unwrap();
        let mut peer = nightjar_testpeer::TestPeer::connect(
            stream,
            nightjar_testpeer::REGTEST,
            nightjar_testpeer::Speak::V2,
        )
        .await
        .unwrap();
        let version = peer
            .start_handshake(nightjar_testpeer::version_message(9, 0, "/arti-visitor/"))
            .await
            .unwrap();
        // An anonymous peer: our version names no address at all.
        assert_eq!(
            version.receiver.socket_addr().unwrap(),
            "0.0.0.0:0".parse().unwrap()
        );
        peer.recv_until(|m| matches!(m, nightjar::wire::NetworkMessage::Headers(_)))
            .await
            .unwrap()
    });
    assert_eq!(
        announced,
        nightjar::wire::NetworkMessage::Headers(vec![source_tip_header(
            &source,
            &mined[CHAIN_LEN - 1]
        )])
    );

    // The key lives under the state directory: the same address after a
    // restart.
    let (_, datadir) = node.stop_keeping_data();
    let mut all = vec![
        "--tor-network".to_owned(),
        net.arti_network_file().display().to_string(),
    ];
    all.extend(["--no-dnsseed".to_owned()]);
    let mut again = Nightjar::spawn_in(datadir, all);
    again.wait_for(LIMIT, "the onion service again", |n| {
        onion_service(n).is_some()
    });
    assert_eq!(onion_service(&again).unwrap().0, ours);
    again.stop();
}

/// The header of block `hash`, from Core, decoded.
fn source_tip_header(core: &CoreNode, hash: &bitcoin::BlockHash) -> bitcoin::block::Header {
    let hex = core
        .cli(&["getblockheader", &hash.to_string(), "false"])
        .unwrap();
    bitcoin::consensus::encode::deserialize_hex(&hex).unwrap()
}
