//! Inbound peers over TCP: a real `nightjar --listen` process (Tor off,
//! regtest) that synced a chain from a scripted node, and test peers that
//! connect to it over BIP324 v2 and over v1, speaking the real wire format;
//! a flood held to its share; and `setban`, which survives a restart.

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

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bitcoin::BlockHash;
use bitcoin::hashes::Hash;
use nightjar::chain::regtest_miner::mine_regtest_chain_until;
use nightjar::transport::TransportKind;
use nightjar::wire::{GetHeadersMessage, NetworkMessage};
use nightjar_node::Nightjar;
use nightjar_testpeer::node::{NodeSpec, PeerFarm};
use nightjar_testpeer::{REGTEST, Speak, TestPeer, version_message};
use serde_json::Value;
use tokio::net::TcpStream;

const CHAIN_LEN: usize = 2_500;
const LIMIT: Duration = Duration::from_secs(120);

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A listening nightjar that holds `CHAIN_LEN` headers, connected to the
/// scripted node it synced them from.
struct Listening {
    node: Nightjar,
    listen: SocketAddr,
    chain: Vec<bitcoin::block::Header>,
    _source: nightjar_testpeer::node::ScriptedNode,
    _farm: PeerFarm,
}

fn synced_listener() -> Listening {
    let chain = mine_regtest_chain_until(CHAIN_LEN, unix_now());
    let farm = PeerFarm::new().unwrap();
    let source = farm
        .start_node(NodeSpec::regtest("source").with_headers(chain.clone()))
        .unwrap();
    let port = nightjar_testpeer::free_port().unwrap();
    let listen: SocketAddr = ([127, 0, 0, 1], port).into();
    let mut node = Nightjar::spawn([
        "--no-tor".to_owned(),
        "--no-dnsseed".to_owned(),
        "--log-sensitive".to_owned(),
        "--connect".to_owned(),
        source.addr().to_string(),
        "--listen".to_owned(),
        "--bind".to_owned(),
        listen.to_string(),
    ]);
    node.wait_for(LIMIT, "the chain", |n| {
        n.block_count() == Some(CHAIN_LEN as u64)
    });
    Listening {
        node,
        listen,
        chain,
        _source: source,
        _farm: farm,
    }
}

/// Connect, handshake as the initiator; what nightjar said in its version,
/// and the session.
async fn connect(
    listen: SocketAddr,
    speak: Speak,
) -> (
    TestPeer<TcpStream>,
    nightjar::wire::VersionMessage,
    SocketAddr,
) {
    let stream = TcpStream::connect(listen).await.unwrap();
    let ours = stream.local_addr().unwrap();
    let mut peer = TestPeer::connect(stream, REGTEST, speak).await.unwrap();
    let theirs = peer
        .start_handshake(version_message(7, 0, "/inbound-test:0.1/"))
        .await
        .unwrap();
    (peer, theirs, ours)
}

#[test]
fn peers_connect_over_v2_and_v1_and_are_served_headers_and_addresses() {
    let Listening {
        mut node,
        listen,
        chain,
        _source,
        _farm,
    } = synced_listener();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let tip = chain[CHAIN_LEN - 1];

    let (v2_session, v1_agent) = rt.block_on(async {
        // 1. BIP324 v2: nightjar answers as the responder.
        let (mut v2, version, local) = connect(listen, Speak::V2).await;
        let TransportKind::V2 { session_id } = v2.kind() else {
            panic!("not v2: {:?}", v2.kind());
        };
        // Its version: our address as it saw it, none of its own, no
        // services; relay on, so that a transaction we broadcast privately
        // can be announced back (what is announced is up to `feefilter`).
        assert_eq!(version.receiver.socket_addr().unwrap(), local);
        assert_eq!(
            version.sender.socket_addr().unwrap(),
            "0.0.0.0:0".parse().unwrap()
        );
        assert_eq!(version.services, nightjar::wire::ServiceFlags::NONE);
        assert!(version.relay);
        assert!(version.user_agent.starts_with("/nightjar:"));
        // It announces its tip at once, as headers.
        let announced = v2
            .recv_until(|m| matches!(m, NetworkMessage::Headers(_)))
            .await
            .unwrap();
        assert_eq!(announced, NetworkMessage::Headers(vec![tip]));
        // It serves its chain from a locator, 2000 at a time.
        let genesis = bitcoin::blockdata::constants::genesis_block(bitcoin::Network::Regtest);
        v2.send(NetworkMessage::GetHeaders(GetHeadersMessage::new(
            vec![genesis.block_hash()],
            BlockHash::all_zeros(),
        )))
        .await
        .unwrap();
        let NetworkMessage::Headers(batch) = v2
            .recv_until(|m| matches!(m, NetworkMessage::Headers(_)))
            .await
            .unwrap()
        else {
            unreachable!()
        };
        assert_eq!(batch.len(), 2000);
        assert_eq!(batch[..], chain[..2000]);
        // And answers getaddr once (an empty book: an empty answer).
        v2.send(NetworkMessage::GetAddr).await.unwrap();
        let reply = v2
            .recv_until(|m| matches!(m, NetworkMessage::AddrV2(_) | NetworkMessage::Addr(_)))
            .await
            .unwrap();
        assert!(matches!(reply, NetworkMessage::AddrV2(_)), "{reply:?}");

        // 2. v1, detected from its first bytes; allowed without --privacy.
        let (v1, version, _) = connect(listen, Speak::V1).await;
        assert_eq!(v1.kind(), TransportKind::V1);
        assert!(version.relay);
        // Both stay connected while the node is asked about them.
        ((v2, session_id), (v1, version.user_agent))
    });
    let ((_v2, session_id), (_v1, _agent)) = (v2_session, v1_agent);

    // Our verack may still be on its way when the test peer is done.
    node.wait_for(LIMIT, "both inbound handshakes", |n| {
        n.peers()
            .iter()
            .filter(|p| p["inbound"] == true && p["version"] == 70016)
            .count()
            == 2
    });
    let peers = node.peers();
    let inbound: Vec<&Value> = peers.iter().filter(|p| p["inbound"] == true).collect();
    assert_eq!(inbound.len(), 2, "{peers:#?}");
    for p in &inbound {
        assert_eq!(p["connection_type"], "inbound", "{p:#}");
        assert_eq!(p["subver"], "/inbound-test:0.1/", "{p:#}");
        assert_eq!(p["isolation"], Value::Null, "{p:#}");
    }
    let hex: String = session_id.iter().map(|b| format!("{b:02x}")).collect();
    assert!(
        inbound
            .iter()
            .any(|p| p["transport_protocol_type"] == "v2" && p["session_id"] == hex),
        "{inbound:#?}"
    );
    assert!(
        inbound.iter().any(|p| p["transport_protocol_type"] == "v1"),
        "{inbound:#?}"
    );
    // The bytes moved so far: at least the 2 500 headers synced in and the
    // 2 000 served out (81 bytes each on the wire).
    let totals = node.rpc(&["getnettotals"]).unwrap();
    assert!(
        totals["totalbytesrecv"].as_u64().unwrap() > 2_500 * 81,
        "{totals:#}"
    );
    assert!(
        totals["totalbytessent"].as_u64().unwrap() > 2_000 * 81,
        "{totals:#}"
    );
    let info = node.rpc(&["getnetworkinfo"]).unwrap();
    assert_eq!(info["connections_in"], 2, "{info:#}");
    assert_eq!(info["connections_out"], 1, "{info:#}");
    node.stop();
}

/// Open file descriptors and resident memory (KiB) of process `pid`.
fn fds_and_rss(pid: u32) -> (usize, u64) {
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count());
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    (fds, rss)
}

#[test]
fn a_flood_from_one_netgroup_is_held_to_its_share_and_the_node_keeps_serving() {
    const FLOOD: usize = 1_000;
    // The source and the farm must outlive the test: bind them by name.
    let Listening {
        node,
        listen,
        _source,
        _farm,
        ..
    } = synced_listener();
    let (fds_before, rss_before) = fds_and_rss(node.daemon.pid());

    let rt = tokio::runtime::Runtime::new().unwrap();
    // A thousand streams from loopback (one network group), opened and
    // held without a byte sent.
    let mut held = rt.block_on(async {
        let mut held = Vec::new();
        for _ in 0..FLOOD {
            held.push(TcpStream::connect(listen).await.unwrap());
        }
        held
    });
    // Eight are taken on (and dropped when their handshake times out); the
    // rest are closed at once, unanswered.
    let closed = rt.block_on(async {
        use tokio::io::AsyncReadExt;
        let mut closed = 0;
        for s in held.iter_mut() {
            let mut buf = [0u8; 1];
            if let Ok(Ok(0)) = tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf)).await
            {
                closed += 1;
            }
        }
        closed
    });
    let (fds_during, rss_during) = fds_and_rss(node.daemon.pid());
    eprintln!(
        "flood of {FLOOD}: {closed} refused; daemon fds {fds_before} -> {fds_during}, RSS {rss_before} -> {rss_during} KiB"
    );
    assert!(closed >= FLOOD - 8, "only {closed} of {FLOOD} were refused");
    // The daemon holds the eight it took on, not the thousand.
    assert!(
        fds_during <= fds_before + 8 + 2,
        "fds {fds_before} -> {fds_during}"
    );
    // Meanwhile RPC answers and the outbound peer stays.
    assert_eq!(node.block_count(), Some(CHAIN_LEN as u64));
    let peers = node.peers();
    assert!(
        peers.iter().any(|p| p["inbound"] == false),
        "the outbound peer is gone: {peers:#?}"
    );
    drop(held);
    node.stop();
}

/// Whether a stream opened to `listen` is closed unanswered.
async fn refused_at_once(listen: SocketAddr) -> bool {
    use tokio::io::AsyncReadExt;
    let mut s = TcpStream::connect(listen).await.unwrap();
    let mut buf = [0u8; 1];
    matches!(
        tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await,
        Ok(Ok(0) | Err(_))
    )
}

#[test]
fn setban_refuses_the_subnet_and_survives_a_restart_until_cleared() {
    let port = nightjar_testpeer::free_port().unwrap();
    let listen: SocketAddr = ([127, 0, 0, 1], port).into();
    let args = || {
        [
            "--no-tor".to_owned(),
            "--no-dnsseed".to_owned(),
            "--listen".to_owned(),
            "--bind".to_owned(),
            listen.to_string(),
        ]
    };
    let mut node = Nightjar::spawn(args());
    node.wait_for(LIMIT, "RPC", |n| n.block_count().is_some());
    let rt = tokio::runtime::Runtime::new().unwrap();
    assert!(
        !rt.block_on(refused_at_once(listen)),
        "refused before any ban"
    );
    // Like bitcoin-cli, nightjar-cli prints nothing for a null result.
    let done = Some(Value::String(String::new()));
    assert_eq!(node.rpc(&["setban", "127.0.0.0/8", "add", "3600"]), done);
    // Banning it twice is Core's error -23.
    assert_eq!(node.rpc(&["setban", "127.0.0.0/8", "add"]), None);
    assert!(rt.block_on(refused_at_once(listen)));
    let listed = node.rpc(&["listbanned"]).unwrap();
    assert_eq!(listed[0]["address"], "127.0.0.0/8", "{listed:#}");
    assert_eq!(listed[0]["ban_duration"], 3600, "{listed:#}");

    // The ban is in banlist.json, and a restart keeps it.
    let (_, datadir) = node.stop_keeping_data();
    let file = datadir.path().join("regtest").join("banlist.json");
    assert!(
        std::fs::read_to_string(&file)
            .unwrap()
            .contains("127.0.0.0/8")
    );
    let mut node = Nightjar::spawn_in(datadir, args());
    node.wait_for(LIMIT, "RPC", |n| n.block_count().is_some());
    assert!(rt.block_on(refused_at_once(listen)));
    let listed = node.rpc(&["listbanned"]).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed:#}");

    // clearbanned lets everyone in again: a v2 peer completes its handshake.
    assert_eq!(node.rpc(&["clearbanned"]), done);
    assert_eq!(node.rpc(&["listbanned"]), Some(Value::Array(vec![])));
    let (peer, _, _) = rt.block_on(connect(listen, Speak::V2));
    assert!(matches!(peer.kind(), TransportKind::V2 { .. }));
    node.stop();
}
