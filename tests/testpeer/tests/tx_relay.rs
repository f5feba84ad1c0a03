//! The scripted node's transaction relay, from real diallers over
//! loopback: an offered transaction is fetched, kept, and announced to the
//! other connections that asked for relay and whose `feefilter` lets it
//! through, and to nobody when relaying is off.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use bitcoin::absolute::LockTime;
use bitcoin::hashes::Hash;
use bitcoin::transaction::Version;
use bitcoin::{Amount, OutPoint, ScriptBuf, Sequence, Transaction, TxIn, TxOut, Txid, Witness};
use nightjar::wire::{Inventory, NetworkMessage, VersionMessage};
use nightjar_testpeer::node::{NodeSpec, PeerFarm, ScriptedNode};
use nightjar_testpeer::{REGTEST, Speak, TestPeer, version_message};
use tokio::net::TcpStream;

const LIMIT: Duration = Duration::from_secs(10);

fn tx() -> Transaction {
    Transaction {
        version: Version::TWO,
        lock_time: LockTime::ZERO,
        input: vec![TxIn {
            previous_output: OutPoint::new(Txid::from_byte_array([4; 32]), 0),
            script_sig: ScriptBuf::new(),
            sequence: Sequence::MAX,
            witness: Witness::from_slice(&[vec![0x51]]),
        }],
        output: vec![TxOut {
            value: Amount::from_sat(1_000),
            script_pubkey: ScriptBuf::new_op_return([1u8; 4]),
        }],
    }
}

fn version(relay: bool) -> VersionMessage {
    VersionMessage {
        relay,
        ..version_message(9, 0, "/dialler/")
    }
}

/// A handshaken dialler; sends `feefilter` if given.
async fn dialler(node: &ScriptedNode, relay: bool, filter: Option<i64>) -> TestPeer<TcpStream> {
    let stream = TcpStream::connect(node.addr()).await.unwrap();
    let mut peer = TestPeer::connect(stream, REGTEST, Speak::V2).await.unwrap();
    peer.start_handshake(version(relay)).await.unwrap();
    if let Some(rate) = filter {
        peer.send(NetworkMessage::FeeFilter(rate)).await.unwrap();
    }
    peer
}

#[test]
fn an_offered_transaction_is_fetched_and_relayed_where_the_filter_allows() {
    let farm = PeerFarm::new().unwrap();
    let node = farm.start_node(NodeSpec::regtest("relay")).unwrap();
    let t = tx();
    farm.handle().block_on(async {
        let mut open = dialler(&node, true, Some(0)).await;
        let mut closed = dialler(&node, true, Some(2_100_000_000_000_000)).await;
        let mut deaf = dialler(&node, false, None).await;
        let mut sender = dialler(&node, false, None).await;
        // Make sure the filters have been read before the transaction.
        node.wait_for(LIMIT, |s| {
            s.connections
                .iter()
                .filter(|c| c.fee_filter.is_some())
                .count()
                == 2
        })
        .unwrap();
        sender
            .send(NetworkMessage::Inv(vec![Inventory::Transaction(
                t.compute_txid(),
            )]))
            .await
            .unwrap();
        let asked = sender
            .recv_until(|m| matches!(m, NetworkMessage::GetData(_)))
            .await
            .unwrap();
        assert_eq!(
            asked,
            NetworkMessage::GetData(vec![Inventory::WitnessTransaction(t.compute_txid())])
        );
        sender.send(NetworkMessage::Tx(t.clone())).await.unwrap();
        let heard = open
            .recv_until(|m| matches!(m, NetworkMessage::Inv(_)))
            .await
            .unwrap();
        assert_eq!(
            heard,
            NetworkMessage::Inv(vec![Inventory::WTx(t.compute_wtxid())])
        );
        // It serves the transaction it kept.
        open.send(NetworkMessage::GetData(vec![Inventory::WTx(
            t.compute_wtxid(),
        )]))
        .await
        .unwrap();
        let got = open
            .recv_until(|m| matches!(m, NetworkMessage::Tx(_)))
            .await
            .unwrap();
        assert_eq!(got, NetworkMessage::Tx(t.clone()));
        // The closed filter and the no-relay dialler hear nothing: a ping
        // round trip shows their queues hold no inv.
        for peer in [&mut closed, &mut deaf] {
            peer.send(NetworkMessage::Ping(5)).await.unwrap();
            let next = peer
                .recv_until(|m| matches!(m, NetworkMessage::Pong(_) | NetworkMessage::Inv(_)))
                .await
                .unwrap();
            assert_eq!(next, NetworkMessage::Pong(5));
        }
    });
    let stats = node.stats();
    assert_eq!(stats.txs_received(), 1);
    assert_eq!(stats.txs_announced(), 1);
    assert_eq!(stats.connections[3].txs_received, vec![t.compute_txid()]);
    assert_eq!(stats.connections[0].txs_announced, vec![t.compute_txid()]);
    assert_eq!(stats.connections[2].relay, Some(false));
    assert_eq!(node.mempool(), vec![t]);
}

#[test]
fn with_relaying_off_nothing_is_announced() {
    let farm = PeerFarm::new().unwrap();
    let node = farm
        .start_node(NodeSpec::regtest("quiet").relaying_txs(false))
        .unwrap();
    let t = tx();
    farm.handle().block_on(async {
        let mut listener = dialler(&node, true, None).await;
        let mut sender = dialler(&node, false, None).await;
        sender
            .send(NetworkMessage::Inv(vec![Inventory::WTx(t.compute_wtxid())]))
            .await
            .unwrap();
        sender
            .recv_until(|m| matches!(m, NetworkMessage::GetData(_)))
            .await
            .unwrap();
        sender.send(NetworkMessage::Tx(t.clone())).await.unwrap();
        node.wait_for(LIMIT, |s| s.txs_received() == 1).unwrap();
        listener.send(NetworkMessage::Ping(6)).await.unwrap();
        let next = listener
            .recv_until(|m| matches!(m, NetworkMessage::Pong(_) | NetworkMessage::Inv(_)))
            .await
            .unwrap();
        assert_eq!(next, NetworkMessage::Pong(6));
    });
    assert_eq!(node.stats().txs_announced(), 0);
}
