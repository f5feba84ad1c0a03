//! The scripted node seen from a dialler over loopback: handshake, gossip
//! on `getaddr`, ping/pong, exact statistics, and v1 refused where the
//! node does not allow it.

// Test code: unwrap and panic are how a test fails.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr
)]

use std::time::Duration;

use nightjar::netaddr::NetAddr;
use nightjar::transport::TransportKind;
use nightjar::wire::{NetworkMessage, ServiceFlags};
use nightjar_testpeer::node::{NodeSpec, PeerFarm, gossip_entry, onion_gossip_entry};
use nightjar_testpeer::{REGTEST, Speak, TestPeer, version_message};
use tokio::net::TcpStream;

/// Long enough for a loaded machine; the node answers in microseconds.
const LIMIT: Duration = Duration::from_secs(10);

/// A well-formed v3 onion address (the one nightjar's own address tests use).
const ONION: &str = "pg6mmjiyjmcrsslvykfwnntlaru7p5svn6y2ymmju6nubxndf4pscryd.onion";

#[test]
fn v2_dialler_gets_handshake_gossip_and_pong_and_is_counted_exactly() {
    let farm = PeerFarm::new().unwrap();
    let node = farm.start_node(NodeSpec::regtest("alpha")).unwrap();
    let gossip = vec![
        onion_gossip_entry(ONION, 18444).unwrap(),
        gossip_entry(&"203.0.113.7:18444".parse::<NetAddr>().unwrap()),
    ];
    node.set_gossip(gossip.clone());
    assert_eq!(gossip[0].port, 18444);
    assert_eq!(
        gossip[0].services,
        ServiceFlags::NETWORK | ServiceFlags::WITNESS
    );
    assert_eq!(
        NetAddr::try_from(&gossip[0]).unwrap().to_string(),
        format!("{ONION}:18444"),
        "the entry is the onion address it was made from"
    );

    let addr = node.addr();
    let session_id = farm.handle().block_on(async move {
        let stream = TcpStream::connect(addr).await.unwrap();
        let mut peer = TestPeer::connect(stream, REGTEST, Speak::V2).await.unwrap();
        let theirs = peer
            .start_handshake(version_message(7, 0, "/dialler:1/"))
            .await
            .unwrap();
        assert_eq!(theirs.user_agent, "/nightjar-testpeer:alpha/");
        assert_eq!(theirs.version, 70016);
        assert_eq!(
            theirs.services,
            ServiceFlags::NETWORK | ServiceFlags::WITNESS
        );

        peer.send(NetworkMessage::GetAddr).await.unwrap();
        let reply = peer
            .recv_until(|m| matches!(m, NetworkMessage::AddrV2(_)))
            .await
            .unwrap();
        let NetworkMessage::AddrV2(entries) = reply else {
            unreachable!()
        };
        assert_eq!(entries, gossip, "the reply is the gossip list, as set");

        peer.send(NetworkMessage::Ping(0xfeed)).await.unwrap();
        let pong = peer
            .recv_until(|m| matches!(m, NetworkMessage::Pong(_)))
            .await
            .unwrap();
        assert_eq!(pong, NetworkMessage::Pong(0xfeed));
        match peer.kind() {
            TransportKind::V2 { session_id } => session_id,
            TransportKind::V1 => panic!("asked for v2"),
        }
        // The peer is dropped here: the node sees the connection close.
    });

    let stats = node
        .wait_for(LIMIT, |s| s.open == 0)
        .unwrap_or_else(|s| panic!("connection never recorded as closed: {s:?}"));
    assert_eq!(stats.accepted, 1);
    assert_eq!(stats.v2_sessions, 1);
    assert_eq!(stats.v1_sessions, 0);
    assert_eq!(stats.transport_failures, 0);
    assert_eq!(stats.handshakes, 1);
    assert_eq!(stats.getaddr_received, 1);
    let record = &stats.connections[0];
    assert_eq!(record.transport, Some(TransportKind::V2 { session_id }));
    assert!(record.handshake_done && record.getaddr_seen() && record.closed);
    assert_eq!(record.user_agent.as_deref(), Some("/dialler:1/"));
    assert!(record.remote.ip().is_loopback());
}

#[test]
fn v1_dialler_is_refused_by_a_v2_only_node() {
    let farm = PeerFarm::new().unwrap();
    let node = farm
        .start_node(NodeSpec {
            allow_v1: false,
            ..NodeSpec::regtest("v2only")
        })
        .unwrap();
    let addr = node.addr();
    farm.handle().block_on(async move {
        let stream = TcpStream::connect(addr).await.unwrap();
        let mut peer = TestPeer::connect(stream, REGTEST, Speak::V1).await.unwrap();
        let refused = peer
            .start_handshake(version_message(8, 0, "/v1-dialler/"))
            .await;
        assert!(refused.is_err(), "a v2-only node answered v1: {refused:?}");
    });

    let stats = node
        .wait_for(LIMIT, |s| s.accepted == 1 && s.open == 0)
        .unwrap_or_else(|s| panic!("refusal never recorded: {s:?}"));
    assert_eq!(stats.transport_failures, 1);
    assert_eq!(stats.v1_sessions + stats.v2_sessions, 0);
    assert_eq!(stats.handshakes, 0);
    assert_eq!(stats.getaddr_received, 0);
    let reason = stats.connections[0].close_reason.clone().unwrap();
    assert!(reason.contains("v1"), "{reason}");
}

#[tokio::test(flavor = "multi_thread")]
async fn nodes_run_on_a_callers_runtime_and_count_connections_separately() {
    let node = nightjar_testpeer::node::ScriptedNode::start(
        &tokio::runtime::Handle::current(),
        NodeSpec::regtest("beta"),
    )
    .unwrap();
    for i in 0..3u64 {
        let stream = TcpStream::connect(node.addr()).await.unwrap();
        let mut peer = TestPeer::connect(stream, REGTEST, Speak::V2).await.unwrap();
        peer.start_handshake(version_message(i, 0, &format!("/d:{i}/")))
            .await
            .unwrap();
        if i == 1 {
            peer.send(NetworkMessage::GetAddr).await.unwrap();
            let reply = peer
                .recv_until(|m| matches!(m, NetworkMessage::AddrV2(_)))
                .await
                .unwrap();
            assert_eq!(reply, NetworkMessage::AddrV2(Vec::new()));
        }
    }
    let first = node.stats();
    let deadline = tokio::time::Instant::now() + LIMIT;
    let stats = loop {
        let s = node.stats();
        if s.open == 0 {
            break s;
        }
        assert!(tokio::time::Instant::now() < deadline, "still open: {s:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(
        (stats.accepted, stats.v2_sessions, stats.handshakes),
        (3, 3, 3)
    );
    assert_eq!(stats.getaddr_received, 1);
    let agents: Vec<_> = stats
        .connections
        .iter()
        .map(|c| c.user_agent.clone().unwrap())
        .collect();
    assert_eq!(agents, ["/d:0/", "/d:1/", "/d:2/"]);
    assert!(stats.connections[1].getaddr_seen());
    assert_eq!(stats.since(&first).accepted, 0);
    let mut none = first.clone();
    none.connections.clear();
    assert_eq!(stats.since(&none).accepted, 3);
}
