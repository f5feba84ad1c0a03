//! The driver on real loopback sockets, with Tor explicitly off: it dials
//! the `--connect` peer over BIP324, completes the handshake, asks for
//! addresses, and on shutdown disconnects and saves what it learned.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use nightjar::addrman::AddrMan;
use nightjar::driver::{self, DriverOptions, Network, addr_file};
use nightjar::engine::{Engine, EngineConfig, Reach};
use nightjar::netaddr::NetAddr;
use nightjar::rpc::{Dispatch, Params};
use nightjar::transport::TransportKind;
use nightjar::wire::{AddrV2Message, NetworkMessage, ServiceFlags};
use nightjar_testpeer::{REGTEST, TestPeer, version_message};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

fn gossip() -> Vec<AddrV2Message> {
    ["20.1.1.1:18444", "21.2.2.2:18444"]
        .iter()
        .map(|s| {
            let a: NetAddr = s.parse().unwrap();
            AddrV2Message {
                time: 1_700_000_000,
                services: ServiceFlags::NETWORK | ServiceFlags::WITNESS,
                addr: a.to_addrv2(),
                port: a.port,
            }
        })
        .collect()
}

#[tokio::test]
async fn driver_connects_over_v2_learns_addresses_and_saves_them_at_shutdown() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (done_tx, done_rx) = oneshot::channel();
    let peer = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let mut peer = TestPeer::accept(stream, REGTEST, false).await.unwrap();
        let transport = peer.kind();
        let theirs = peer
            .answer_handshake(version_message(42, 0, "/peer/"))
            .await
            .unwrap();
        peer.recv_until(|m| matches!(m, NetworkMessage::GetAddr))
            .await
            .unwrap();
        peer.send(NetworkMessage::AddrV2(gossip())).await.unwrap();
        done_tx.send(()).unwrap();
        let reason = peer.closed().await;
        (transport, theirs, reason)
    });

    let dir = tempfile::tempdir().unwrap();
    let file = addr_file::addrman_path(dir.path());
    let mut config = EngineConfig::new(bitcoin::Network::Regtest);
    config.reach = Reach::Direct;
    config.connect = vec![format!("127.0.0.1:{port}").parse().unwrap()];
    let addrman = addr_file::load(&file, bitcoin::Network::Regtest);
    let engine = Engine::new(config, addrman, [3; 32]);
    let options = DriverOptions {
        magic: REGTEST,
        addrman_file: file.clone(),
        banlist_file: file.with_file_name("banlist.json"),
        broadcast_file: file.with_file_name("privatebroadcast.json"),
        network: Network::Direct,
        chain_store: None,
        filter_store: None,
        listeners: Vec::new(),
        onion_service: None,
    };
    let (rpc, rpc_calls) = driver::NodeRpc::new();
    let stop = async {
        done_rx.await.unwrap();
        // Stop once the engine holds the gossiped addresses: asked through
        // the engine task itself, so no guess at how long that takes.
        loop {
            let info = rpc
                .call("getaddrmaninfo".into(), Params::Positional(vec![]))
                .await
                .unwrap();
            if info["all_networks"]["total"] == 2 {
                break;
            }
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(
        Duration::from_secs(30),
        driver::run(engine, options, rpc_calls, stop),
    )
    .await
    .expect("the driver stops within its grace period");

    let (transport, theirs, _reason) = peer.await.unwrap();
    assert!(
        matches!(transport, TransportKind::V2 { .. }),
        "{transport:?}"
    );
    assert_eq!(
        theirs.sender.socket_addr().unwrap(),
        "0.0.0.0:0".parse().unwrap()
    );
    assert!(theirs.user_agent.starts_with("/nightjar:"));
    let saved = AddrMan::load_file(&file, bitcoin::Network::Regtest).unwrap();
    for a in gossip() {
        let addr = NetAddr::try_from(&a).unwrap();
        assert!(saved.contains(&addr), "{addr} saved");
    }
}
