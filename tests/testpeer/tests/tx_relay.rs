//! The scripted node's transaction relay, from real diallers over
//! loopback: an offered transaction is fetched and kept; it is announced
//! to the other connections that asked for relay and whose `feefilter`
//! lets it through (by wtxid or by txid, as each negotiated), to nobody
//! when relaying is off, and on demand with `announce_tx`; a private
//! broadcast's exchange (Core's: no feature negotiation, `inv` by txid,
//! `tx`, `ping`) completes against it.
//!
//! "Not announced" is shown by a `ping` round trip after another
//! connection heard the announcement: a connection handles what it is
//! told to announce before the dialler's next message, so an `inv` would
//! come before the `pong`.

// Test code: unwrap and panic are how a test fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use bitcoin::absolute::LockTime;
use bitcoin::hashes::Hash;
use bitcoin::transaction::Version;
use bitcoin::{
    Amount, BlockHash, OutPoint, ScriptBuf, Sequence, Transaction, TxIn, TxOut, Txid, Witness,
};
use nightjar::engine::private_broadcast::{FEE_FILTER_CLOSED, FEE_FILTER_OPEN};
use nightjar::wire::{Inventory, NetworkMessage, VersionMessage};
use nightjar_testpeer::node::{ASSUMED_FEE_RATE, NodeSpec, PeerFarm, ScriptedNode};
use nightjar_testpeer::{REGTEST, Speak, TestPeer, version_message};
use tokio::net::TcpStream;

/// Long enough for a loaded machine; the node answers in microseconds.
const LIMIT: Duration = Duration::from_secs(10);

/// Core's MAX_MONEY in sat: as a `feefilter`, "announce nothing".
const MAX_MONEY: i64 = 21_000_000 * 100_000_000;

// Checked at compile time: nightjar's closed filter is Core's MAX_MONEY,
// and the node's assumed fee rate passes nightjar's open filter and
// Core's default (1000 sat/kvB) but not the closed one, which the tests
// below rely on.
const _: () = assert!(
    FEE_FILTER_CLOSED == MAX_MONEY
        && FEE_FILTER_CLOSED > ASSUMED_FEE_RATE
        && FEE_FILTER_OPEN <= ASSUMED_FEE_RATE
        && 1_000 <= ASSUMED_FEE_RATE
);

/// A segwit transaction (its txid and wtxid differ), distinct per `n`.
fn tx(n: u8) -> Transaction {
    Transaction {
        version: Version::TWO,
        lock_time: LockTime::ZERO,
        input: vec![TxIn {
            previous_output: OutPoint::new(Txid::from_byte_array([n; 32]), 0),
            script_sig: ScriptBuf::new(),
            sequence: Sequence::MAX,
            witness: Witness::from_slice(&[vec![0x51]]),
        }],
        output: vec![TxOut {
            value: Amount::from_sat(1_000),
            script_pubkey: ScriptBuf::new_op_return([n; 4]),
        }],
    }
}

/// How a test dialler shakes hands.
#[derive(Clone, Copy)]
struct Dialler {
    /// The relay flag of its `version`.
    relay: bool,
    /// Whether it sends `wtxidrelay` (and `sendaddrv2`) before `verack`,
    /// as a regular nightjar connection does; a private broadcast sends
    /// neither.
    wtxid_relay: bool,
    /// The `feefilter` it sends once handshaken, if any.
    fee_filter: Option<i64>,
}

/// A regular connection: relay asked for, wtxidrelay, no filter.
const REGULAR: Dialler = Dialler {
    relay: true,
    wtxid_relay: true,
    fee_filter: None,
};

/// A private broadcast as Core (and nightjar) makes it.
const PRIVATE_BROADCAST: Dialler = Dialler {
    relay: false,
    wtxid_relay: false,
    fee_filter: None,
};

fn version(relay: bool) -> VersionMessage {
    VersionMessage {
        relay,
        ..version_message(9, 0, "/dialler/")
    }
}

/// Dial `node` and complete the handshake as `how` says; returns once the
/// node has recorded everything the dialler sent (its `feefilter`
/// included), so the test can rely on it.
async fn dial(node: &ScriptedNode, how: Dialler) -> TestPeer<TcpStream> {
    let before = node.stats().accepted;
    let stream = TcpStream::connect(node.addr()).await.unwrap();
    let mut peer = TestPeer::connect(stream, REGTEST, Speak::V2).await.unwrap();
    if how.wtxid_relay {
        let theirs = peer.start_handshake_full(version(how.relay)).await.unwrap();
        // The node's side: a relaying Core-like node negotiating both.
        assert!(theirs.version.relay, "the node asks for relay");
        assert!(theirs.wtxid_relay && theirs.addrv2);
    } else {
        // `start_handshake` always negotiates: spell out the bare one.
        peer.send(NetworkMessage::Version(version(how.relay)))
            .await
            .unwrap();
        peer.recv_until(|m| matches!(m, NetworkMessage::Version(_)))
            .await
            .unwrap();
        peer.send(NetworkMessage::Verack).await.unwrap();
        peer.recv_until(|m| matches!(m, NetworkMessage::Verack))
            .await
            .unwrap();
    }
    if let Some(rate) = how.fee_filter {
        peer.send(NetworkMessage::FeeFilter(rate)).await.unwrap();
    }
    node.wait_for(LIMIT, |s| {
        s.connections.get(before).is_some_and(|c| {
            c.handshake_done && c.fee_filter == how.fee_filter && c.wtxid_relay == how.wtxid_relay
        })
    })
    .unwrap();
    peer
}

/// Offer `t` with `offer` and deliver it when asked; returns the
/// `getdata` the node sent.
async fn deliver(
    peer: &mut TestPeer<TcpStream>,
    offer: Inventory,
    t: &Transaction,
) -> Vec<Inventory> {
    peer.send(NetworkMessage::Inv(vec![offer])).await.unwrap();
    let NetworkMessage::GetData(asked) = peer
        .recv_until(|m| matches!(m, NetworkMessage::GetData(_)))
        .await
        .unwrap()
    else {
        unreachable!()
    };
    peer.send(NetworkMessage::Tx(t.clone())).await.unwrap();
    asked
}

/// The next `inv` the dialler hears.
async fn next_inv(peer: &mut TestPeer<TcpStream>) -> Vec<Inventory> {
    match peer
        .recv_until(|m| matches!(m, NetworkMessage::Inv(_)))
        .await
        .unwrap()
    {
        NetworkMessage::Inv(items) => items,
        _ => unreachable!(),
    }
}

/// Assert that nothing was announced to the dialler: a `ping` gets its
/// `pong` with no `inv` first.
async fn hears_nothing(peer: &mut TestPeer<TcpStream>, nonce: u64) {
    peer.send(NetworkMessage::Ping(nonce)).await.unwrap();
    let next = peer
        .recv_until(|m| matches!(m, NetworkMessage::Pong(_) | NetworkMessage::Inv(_)))
        .await
        .unwrap();
    assert_eq!(next, NetworkMessage::Pong(nonce));
}

#[test]
fn an_offered_transaction_is_fetched_kept_and_recorded() {
    let farm = PeerFarm::new().unwrap();
    let node = farm.start_node(NodeSpec::regtest("fetch")).unwrap();
    let (a, b) = (tx(1), tx(2));
    farm.handle().block_on(async {
        let mut sender = dial(&node, REGULAR).await;
        // By wtxid: asked for by wtxid.
        let asked = deliver(&mut sender, Inventory::WTx(a.compute_wtxid()), &a).await;
        assert_eq!(asked, vec![Inventory::WTx(a.compute_wtxid())]);
        // By txid: asked for by txid with witness, as Core does.
        let asked = deliver(&mut sender, Inventory::Transaction(b.compute_txid()), &b).await;
        assert_eq!(asked, vec![Inventory::WitnessTransaction(b.compute_txid())]);
        node.wait_for(LIMIT, |s| s.txs_received() == 2).unwrap();
        // Offered again, in either form: not asked for.
        sender
            .send(NetworkMessage::Inv(vec![
                Inventory::WTx(a.compute_wtxid()),
                Inventory::Transaction(b.compute_txid()),
            ]))
            .await
            .unwrap();
        sender.send(NetworkMessage::Ping(1)).await.unwrap();
        let next = sender
            .recv_until(|m| matches!(m, NetworkMessage::Pong(_) | NetworkMessage::GetData(_)))
            .await
            .unwrap();
        assert_eq!(next, NetworkMessage::Pong(1));
    });
    let stats = node.stats();
    let c = &stats.connections[0];
    assert_eq!(c.txs_received, vec![a.compute_txid(), b.compute_txid()]);
    assert_eq!(
        c.wtxids_received,
        vec![a.compute_wtxid(), b.compute_wtxid()]
    );
    assert_eq!(c.invs_received, 3);
    assert_eq!(c.relay, Some(true));
    assert!(c.wtxid_relay);
    assert_eq!(stats.txs_received(), 2);
    assert_eq!(stats.txs_announced(), 0, "nobody else to tell");
    assert_eq!(node.mempool(), vec![a, b]);
}

#[test]
fn a_relayed_transaction_reaches_feefilter_zero_but_not_max_money() {
    let farm = PeerFarm::new().unwrap();
    let node = farm.start_node(NodeSpec::regtest("relay")).unwrap();
    let (t, u) = (tx(3), tx(4));
    farm.handle().block_on(async {
        let mut sender = dial(&node, REGULAR).await;
        let open = Dialler {
            fee_filter: Some(0),
            ..REGULAR
        };
        let mut open = dial(&node, open).await;
        let closed = Dialler {
            fee_filter: Some(MAX_MONEY),
            ..REGULAR
        };
        let mut closed = dial(&node, closed).await;
        let nightjar_open = Dialler {
            fee_filter: Some(FEE_FILTER_OPEN),
            ..REGULAR
        };
        let mut nightjar_open = dial(&node, nightjar_open).await;

        deliver(&mut sender, Inventory::WTx(t.compute_wtxid()), &t).await;
        assert_eq!(
            next_inv(&mut open).await,
            vec![Inventory::WTx(t.compute_wtxid())]
        );
        assert_eq!(
            next_inv(&mut nightjar_open).await,
            vec![Inventory::WTx(t.compute_wtxid())]
        );
        hears_nothing(&mut closed, 2).await;
        // Never back to where it came from.
        hears_nothing(&mut sender, 3).await;

        // The announcement is served, by wtxid or txid.
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

        // Closing the filter later silences that connection too, and
        // announce_tx honours it (the sender, which never had `u`, hears
        // it this time).
        open.send(NetworkMessage::FeeFilter(MAX_MONEY))
            .await
            .unwrap();
        node.wait_for(LIMIT, |s| s.connections[1].fee_filter == Some(MAX_MONEY))
            .unwrap();
        node.announce_tx(u.clone());
        assert_eq!(
            next_inv(&mut nightjar_open).await,
            vec![Inventory::WTx(u.compute_wtxid())]
        );
        hears_nothing(&mut open, 4).await;
    });
    let stats = node.stats();
    assert_eq!(stats.connections[0].txs_received, vec![t.compute_txid()]);
    assert_eq!(stats.connections[0].txs_announced, vec![u.compute_txid()]);
    assert_eq!(stats.connections[1].txs_announced, vec![t.compute_txid()]);
    assert_eq!(
        stats.connections[1].wtxids_announced,
        vec![t.compute_wtxid()]
    );
    assert!(stats.connections[2].txs_announced.is_empty());
    assert_eq!(stats.connections[2].fee_filter, Some(MAX_MONEY));
    assert_eq!(stats.connections[3].txs_announced.len(), 2);
    assert_eq!(stats.txs_received(), 1);
    assert_eq!(stats.txs_announced(), 4);
}

#[test]
fn a_dialler_that_asked_for_no_relay_hears_nothing() {
    let farm = PeerFarm::new().unwrap();
    let node = farm.start_node(NodeSpec::regtest("norelay")).unwrap();
    let t = tx(5);
    farm.handle().block_on(async {
        let mut sender = dial(&node, REGULAR).await;
        let mut listener = dial(&node, REGULAR).await;
        let deaf = Dialler {
            relay: false,
            ..REGULAR
        };
        let mut deaf = dial(&node, deaf).await;
        deliver(&mut sender, Inventory::WTx(t.compute_wtxid()), &t).await;
        assert_eq!(
            next_inv(&mut listener).await,
            vec![Inventory::WTx(t.compute_wtxid())]
        );
        hears_nothing(&mut deaf, 6).await;
        // Nor does a faked echo reach it.
        node.announce_tx(tx(6));
        next_inv(&mut listener).await;
        hears_nothing(&mut deaf, 7).await;
    });
    let stats = node.stats();
    assert_eq!(stats.connections[2].relay, Some(false));
    assert!(stats.connections[2].txs_announced.is_empty());
    assert_eq!(stats.connections[1].txs_announced.len(), 2);
}

#[test]
fn with_relay_txs_off_the_node_keeps_but_never_announces_until_told() {
    let farm = PeerFarm::new().unwrap();
    let spec = NodeSpec::regtest("quiet").relaying_txs(false);
    assert!(!spec.relay_txs);
    assert!(NodeSpec::regtest("default").relay_txs, "on by default");
    let node = farm.start_node(spec).unwrap();
    let t = tx(7);
    farm.handle().block_on(async {
        let mut sender = dial(&node, PRIVATE_BROADCAST).await;
        let mut listener = dial(&node, REGULAR).await;
        deliver(&mut sender, Inventory::Transaction(t.compute_txid()), &t).await;
        node.wait_for(LIMIT, |s| s.txs_received() == 1).unwrap();
        hears_nothing(&mut listener, 8).await;
        assert_eq!(node.mempool(), vec![t.clone()], "fetched and kept");

        // The faked echo: announced although relaying is off and the
        // node already has it, once.
        node.announce_tx(t.clone());
        assert_eq!(
            next_inv(&mut listener).await,
            vec![Inventory::WTx(t.compute_wtxid())]
        );
        node.announce_tx(t.clone());
        hears_nothing(&mut listener, 9).await;
    });
    let stats = node.stats();
    assert_eq!(stats.txs_announced(), 1);
    assert_eq!(
        stats.connections[1].wtxids_announced,
        vec![t.compute_wtxid()]
    );
    assert_eq!(node.mempool(), vec![t]);
}

#[test]
fn a_private_broadcast_completes_and_announcements_follow_each_diallers_negotiation() {
    let farm = PeerFarm::new().unwrap();
    let node = farm.start_node(NodeSpec::regtest("pb")).unwrap();
    let t = tx(8);
    farm.handle().block_on(async {
        let wtxid_listener = Dialler {
            fee_filter: Some(FEE_FILTER_OPEN),
            ..REGULAR
        };
        let mut wtxid_listener = dial(&node, wtxid_listener).await;
        let txid_listener = Dialler {
            relay: true,
            wtxid_relay: false,
            fee_filter: None,
        };
        let mut txid_listener = dial(&node, txid_listener).await;

        // Core's private broadcast: inv by txid, getdata, tx, ping, pong.
        let mut pb = dial(&node, PRIVATE_BROADCAST).await;
        let asked = deliver(&mut pb, Inventory::Transaction(t.compute_txid()), &t).await;
        assert_eq!(asked, vec![Inventory::WitnessTransaction(t.compute_txid())]);
        pb.send(NetworkMessage::Ping(42)).await.unwrap();
        let receipt = pb
            .recv_until(|m| matches!(m, NetworkMessage::Pong(_) | NetworkMessage::Inv(_)))
            .await
            .unwrap();
        assert_eq!(receipt, NetworkMessage::Pong(42));
        drop(pb);

        assert_eq!(
            next_inv(&mut wtxid_listener).await,
            vec![Inventory::WTx(t.compute_wtxid())]
        );
        assert_eq!(
            next_inv(&mut txid_listener).await,
            vec![Inventory::Transaction(t.compute_txid())]
        );
    });
    let stats = node.wait_for(LIMIT, |s| s.connections[2].closed).unwrap();
    let pb = &stats.connections[2];
    assert_eq!(pb.relay, Some(false));
    assert!(!pb.wtxid_relay);
    assert_eq!(pb.txs_received, vec![t.compute_txid()]);
    assert_eq!(pb.wtxids_received, vec![t.compute_wtxid()]);
    assert!(pb.txs_announced.is_empty());
    assert!(!stats.connections[1].wtxid_relay);
    assert_eq!(stats.connections[1].txs_announced, vec![t.compute_txid()]);
}

#[test]
fn getdata_serves_kept_transactions_and_notfound_for_the_rest() {
    let farm = PeerFarm::new().unwrap();
    let node = farm.start_node(NodeSpec::regtest("serve")).unwrap();
    let t = tx(9);
    let unknown = tx(10);
    node.announce_tx(t.clone());
    farm.handle().block_on(async {
        let mut peer = dial(&node, REGULAR).await;
        let block = Inventory::Block(BlockHash::all_zeros());
        peer.send(NetworkMessage::GetData(vec![
            Inventory::WTx(t.compute_wtxid()),
            Inventory::WTx(unknown.compute_wtxid()),
            Inventory::Transaction(t.compute_txid()),
            Inventory::WitnessTransaction(t.compute_txid()),
            block,
        ]))
        .await
        .unwrap();
        let mut stripped = t.clone();
        stripped.input[0].witness = Witness::new();
        for want in [t.clone(), stripped, t.clone()] {
            let got = peer
                .recv_until(|m| matches!(m, NetworkMessage::Tx(_) | NetworkMessage::NotFound(_)))
                .await
                .unwrap();
            assert_eq!(got, NetworkMessage::Tx(want));
        }
        let got = peer.recv().await.unwrap();
        assert_eq!(
            got,
            NetworkMessage::NotFound(vec![Inventory::WTx(unknown.compute_wtxid()), block])
        );
    });
}

#[test]
fn with_fetching_off_an_offer_is_not_asked_for() {
    let farm = PeerFarm::new().unwrap();
    let node = farm
        .start_node(NodeSpec::regtest("deaf").fetching_txs(false))
        .unwrap();
    let t = tx(11);
    farm.handle().block_on(async {
        let mut pb = dial(&node, PRIVATE_BROADCAST).await;
        pb.send(NetworkMessage::Inv(vec![Inventory::Transaction(
            t.compute_txid(),
        )]))
        .await
        .unwrap();
        pb.send(NetworkMessage::Ping(11)).await.unwrap();
        let next = pb
            .recv_until(|m| matches!(m, NetworkMessage::Pong(_) | NetworkMessage::GetData(_)))
            .await
            .unwrap();
        assert_eq!(next, NetworkMessage::Pong(11));
    });
    let stats = node.stats();
    assert_eq!(stats.connections[0].invs_received, 1);
    assert!(node.mempool().is_empty());
}
