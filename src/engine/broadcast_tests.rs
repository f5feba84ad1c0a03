//! Private broadcast in simulated time: connections per round, their
//! isolation, the exchange, confirmation, retries, caps, and what it must
//! never touch (regular connections, the address book).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use bitcoin::absolute::LockTime;
use bitcoin::hashes::Hash;
use bitcoin::transaction::Version;
use bitcoin::{Amount, OutPoint, ScriptBuf, Sequence, Transaction, TxIn, TxOut, Witness};

use super::private_broadcast::{
    CARRIER_LIFETIME, FEE_FILTER_CLOSED, FEE_FILTER_OPEN, MAX_ATTEMPTS, Pending, ROUND_RETRY_FIRST,
};
use super::tests::Harness;
use super::*;
use crate::engine::isolation::GroupScope;
use crate::netaddr::NetAddr;
use crate::peer::{ConnectionKind, PeerEvent, PeerInfo, PeerReport};
use crate::transport::{TransportKind, V1Fallback};
use crate::wire::{Inventory, ServiceFlags};

fn tx(n: u8) -> Transaction {
    Transaction {
        version: Version::TWO,
        lock_time: LockTime::ZERO,
        input: vec![TxIn {
            previous_output: OutPoint::new(bitcoin::Txid::from_byte_array([n; 32]), 0),
            script_sig: ScriptBuf::new(),
            sequence: Sequence::MAX,
            witness: Witness::from_slice(&[vec![0x51]]),
        }],
        output: vec![TxOut {
            value: Amount::from_sat(50_000),
            script_pubkey: ScriptBuf::new_p2wsh(&bitcoin::WScriptHash::from_byte_array([n; 32])),
        }],
    }
}

/// A node with private broadcast only: no regular slots, no feelers, no
/// seeds, so every dial is the queue's.
fn quiet() -> EngineConfig {
    let mut config = EngineConfig::new(bitcoin::Network::Regtest);
    config.target_outbound = 0;
    config.feeler_interval = Duration::from_secs(1_000_000);
    config.dns_seeds = false;
    config.fixed_seeds = false;
    config
}

/// `n` IPv4 peers, each in a /16 of its own.
fn spread(n: u8) -> Vec<NetAddr> {
    (0..n)
        .map(|i| format!("{}.{}.0.1:18444", 20 + i, i).parse().unwrap())
        .collect()
}

fn ready(h: Harness, addrs: &[NetAddr]) -> Harness {
    ready_with(h, addrs).0
}

/// [`ready`], with the outputs of Tor becoming ready (the first dials).
fn ready_with(mut h: Harness, addrs: &[NetAddr]) -> (Harness, Vec<Output>) {
    h.learn(addrs);
    let out = h.input(Input::TorReady(true));
    (h, out)
}

fn submit(h: &mut Harness, tx: Transaction) -> Vec<Output> {
    let t = h.t();
    let reply = h.engine.command(t, Command::PrivateBroadcast(tx.clone()));
    assert_eq!(reply, Ok(CommandReply::Broadcasting(tx.compute_txid())));
    std::iter::from_fn(|| h.engine.poll_output()).collect()
}

/// Advance until `want` dials were made (at most `limit`), returning them
/// and every output on the way.
fn dials_within(h: &mut Harness, limit: Duration, want: usize) -> (Vec<DialRequest>, Vec<Output>) {
    let mut all = Vec::new();
    let mut waited = Duration::ZERO;
    while waited < limit && super::tests::dials(&all).len() < want {
        all.extend(h.advance(Duration::from_secs(1)));
        waited += Duration::from_secs(1);
    }
    (super::tests::dials(&all), all)
}

fn relaying(nonce: u64) -> PeerInfo {
    PeerInfo {
        version: 70016,
        services: ServiceFlags::NETWORK | ServiceFlags::WITNESS,
        user_agent: "/Satoshi:31.0.0/".into(),
        start_height: 0,
        nonce,
        relay: true,
        wtxid_relay: true,
        addrv2: true,
    }
}

fn connect(h: &mut Harness, conn: ConnId, info: PeerInfo) -> Vec<Output> {
    let mut out = h.input(Input::Connected {
        conn,
        transport: TransportKind::V2 {
            session_id: [2; 32],
        },
        circuit: None,
    });
    out.extend(h.input(Input::Peer(PeerUpdate {
        conn,
        report: PeerReport::Event(PeerEvent::HandshakeComplete(info)),
    })));
    out
}

fn message(h: &mut Harness, conn: ConnId, msg: NetworkMessage) -> Vec<Output> {
    h.input(Input::Peer(PeerUpdate {
        conn,
        report: PeerReport::Event(PeerEvent::Message(msg)),
    }))
}

fn sent_to(out: &[Output], conn: ConnId) -> Vec<NetworkMessage> {
    out.iter()
        .filter_map(|o| match o {
            Output::Send { conn: c, msg } if *c == conn => Some(msg.clone()),
            _ => None,
        })
        .collect()
}

/// Carry one private-broadcast connection through the whole exchange;
/// returns every output on the way.
fn deliver(h: &mut Harness, conn: ConnId, t: &Transaction) -> Vec<Output> {
    let mut all = Vec::new();
    let out = connect(h, conn, relaying(conn.0 + 500));
    all.extend(out.iter().cloned());
    assert_eq!(
        sent_to(&out, conn),
        vec![NetworkMessage::Inv(vec![Inventory::Transaction(
            t.compute_txid()
        )])],
        "inv by txid right after the handshake, nothing else (no getaddr)"
    );
    let out = message(
        h,
        conn,
        NetworkMessage::GetData(vec![Inventory::WitnessTransaction(t.compute_txid())]),
    );
    all.extend(out.iter().cloned());
    let sent = sent_to(&out, conn);
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert_eq!(sent[0], NetworkMessage::Tx(t.clone()));
    let NetworkMessage::Ping(nonce) = sent[1] else {
        panic!("a ping after the tx: {sent:?}");
    };
    let out = message(h, conn, NetworkMessage::Pong(nonce));
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::Disconnect { conn: c, .. } if *c == conn)),
        "closed once the receipt is in"
    );
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::PersistBroadcasts(_))),
        "the receipt is saved"
    );
    all.extend(out);
    all
}

fn close(h: &mut Harness, conn: ConnId) -> Vec<Output> {
    h.input(Input::Peer(PeerUpdate {
        conn,
        report: PeerReport::Closed(crate::peer::DisconnectReason::Local(
            "private broadcast done".into(),
        )),
    }))
}

#[test]
fn a_round_is_three_connections_on_fresh_circuits_in_distinct_groups_leaving_the_book_alone() {
    let mut h = ready(Harness::new(quiet()), &spread(12));
    let book = h.engine.addrman().to_bytes();
    let t = tx(1);
    let out = submit(&mut h, t.clone());
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::PersistBroadcasts(_))),
        "queued means saved"
    );
    let (dials, _) = dials_within(&mut h, Duration::from_secs(300), 3);
    assert_eq!(dials.len(), 3, "{dials:?}");
    let groups: BTreeSet<_> = dials.iter().map(|d| d.isolation.group).collect();
    assert_eq!(groups.len(), 3, "a circuit each");
    for d in &dials {
        assert_eq!(d.kind, ConnectionKind::PrivateBroadcast);
        assert_eq!(d.isolation.scope, GroupScope::Connection);
        assert_eq!(d.v1, V1Fallback::Forbidden);
        assert!(!d.peer.our_version.relay);
        assert_eq!(d.peer.our_version.timestamp, 0);
    }
    let netgroups: BTreeSet<_> = dials
        .iter()
        .map(|d| {
            format!(
                "{:?}",
                targets::target_to_addr(&d.target).unwrap().netgroup()
            )
        })
        .collect();
    assert_eq!(netgroups.len(), 3, "distinct network groups");

    for d in &dials {
        deliver(&mut h, d.conn, &t);
        close(&mut h, d.conn);
    }
    // A round is over: nothing more until the pause ends.
    let (more, _) = dials_within(
        &mut h,
        ROUND_RETRY_FIRST.saturating_sub(Duration::from_secs(5)),
        1,
    );
    assert!(more.is_empty(), "{more:?}");
    let p = h.engine.private_broadcast().pending().next().unwrap();
    assert_eq!((p.attempts, p.receipts.len()), (3, 3));
    assert_eq!(h.engine.addrman().to_bytes(), book, "the book is untouched");

    // Not seen: the next round, to peers that did not have it yet.
    let (next, _) = dials_within(&mut h, Duration::from_secs(120), 3);
    assert_eq!(next.len(), 3);
    let first: BTreeSet<_> = dials.iter().map(|d| d.target.to_string()).collect();
    assert!(next.iter().all(|d| !first.contains(&d.target.to_string())));
    let all_groups: BTreeSet<_> = dials
        .iter()
        .chain(&next)
        .map(|d| d.isolation.group)
        .collect();
    assert_eq!(all_groups.len(), 6, "groups are never reused");
}

#[test]
fn seen_only_when_another_connection_announces_it_and_then_the_tap_closes() {
    let mut config = quiet();
    config.addnodes = vec!["30.1.0.1:18444".parse().unwrap()];
    let (mut h, out) = ready_with(Harness::new(config), &spread(6));
    // The added peer is a regular-style connection that may announce.
    let manual = super::tests::dials(&out)
        .into_iter()
        .find(|d| d.kind == ConnectionKind::Manual)
        .unwrap()
        .conn;
    let out = connect(&mut h, manual, relaying(77));
    assert_eq!(
        sent_to(&out, manual)
            .into_iter()
            .filter(|m| matches!(m, NetworkMessage::FeeFilter(_)))
            .collect::<Vec<_>>(),
        vec![NetworkMessage::FeeFilter(FEE_FILTER_CLOSED)],
        "nothing pending: no announcements wanted"
    );

    let t = tx(2);
    let out = submit(&mut h, t.clone());
    assert_eq!(
        sent_to(&out, manual),
        vec![NetworkMessage::FeeFilter(FEE_FILTER_OPEN)],
        "pending: the tap opens"
    );
    let (dials, _) = dials_within(&mut h, Duration::from_secs(300), 1);
    let carrier = dials[0].conn;
    deliver(&mut h, carrier, &t);

    // The carrier echoing it proves nothing.
    message(
        &mut h,
        carrier,
        NetworkMessage::Inv(vec![Inventory::WTx(t.compute_wtxid())]),
    );
    assert_eq!(h.engine.private_broadcast().pending().count(), 1);

    // Another connection announcing someone else's transaction: nothing,
    // and nothing is fetched.
    let out = message(
        &mut h,
        manual,
        NetworkMessage::Inv(vec![Inventory::WTx(tx(9).compute_wtxid())]),
    );
    assert!(sent_to(&out, manual).is_empty(), "no getdata: {out:?}");
    assert_eq!(h.engine.private_broadcast().pending().count(), 1);

    let out = message(
        &mut h,
        manual,
        NetworkMessage::Inv(vec![Inventory::WTx(t.compute_wtxid())]),
    );
    assert_eq!(h.engine.private_broadcast().pending().count(), 0);
    let seen: Vec<_> = h.engine.private_broadcast().seen().collect();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].txid, t.compute_txid());
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::PersistBroadcasts(b) if !String::from_utf8_lossy(b).contains(&t.compute_txid().to_string()))),
        "the file forgets it"
    );
    assert_eq!(
        sent_to(&out, manual),
        vec![NetworkMessage::FeeFilter(FEE_FILTER_CLOSED)],
        "nothing pending: the tap closes"
    );
}

#[test]
fn no_regular_connection_ever_carries_the_transaction() {
    let mut config = quiet();
    config.target_outbound = 2;
    let (mut h, mut out) = ready_with(Harness::new(config), &spread(16));
    // Automatic dials are paced: the second follows a round later.
    out.extend(h.advance(Duration::from_secs(2)));
    let mut kinds: BTreeMap<ConnId, ConnectionKind> = BTreeMap::new();
    let mut everything = Vec::new();
    for d in super::tests::dials(&out) {
        kinds.insert(d.conn, d.kind);
        everything.extend(connect(&mut h, d.conn, relaying(d.conn.0)));
    }
    let t = tx(3);
    everything.extend(submit(&mut h, t.clone()));
    let (dials, out) = dials_within(&mut h, Duration::from_secs(300), 3);
    everything.extend(out);
    for d in &dials {
        kinds.insert(d.conn, d.kind);
        if d.kind == ConnectionKind::PrivateBroadcast {
            everything.extend(deliver(&mut h, d.conn, &t));
        }
    }
    let carriers: Vec<ConnId> = everything
        .iter()
        .filter_map(|o| match o {
            Output::Send {
                conn,
                msg: NetworkMessage::Tx(_) | NetworkMessage::Inv(_),
            } => Some(*conn),
            _ => None,
        })
        .collect();
    assert!(!carriers.is_empty());
    for conn in carriers {
        assert_eq!(kinds[&conn], ConnectionKind::PrivateBroadcast, "{conn}");
    }
    assert!(
        kinds
            .values()
            .filter(|k| matches!(k, ConnectionKind::Regular(_)))
            .count()
            >= 2
    );
}

#[test]
fn failures_back_off_and_the_attempt_cap_ends_the_broadcast() {
    let mut h = ready(Harness::new(quiet()), &spread(12));
    let t = tx(4);
    submit(&mut h, t.clone());
    let mut gaps = Vec::new();
    let mut last = None;
    for _ in 0..5 {
        let (dials, _) = dials_within(&mut h, Duration::from_secs(1_000), 1);
        let d = &dials[0];
        if let Some(prev) = last {
            gaps.push(h.now.saturating_sub(prev));
        }
        last = Some(h.now);
        h.input(Input::DialFailed {
            conn: d.conn,
            failure: DialFailure {
                reason: "refused".into(),
                peer_at_fault: true,
            },
        });
    }
    // 10 s, 20 s, 40 s, 80 s of pause, each plus a random opening gap
    // (at most 30 s).
    assert!(
        gaps[3] >= Duration::from_secs(80) && gaps[0] <= Duration::from_secs(41),
        "each failure waits longer: {gaps:?}"
    );
    assert_eq!(
        h.engine
            .private_broadcast()
            .pending()
            .next()
            .unwrap()
            .attempts,
        5
    );

    // Near the cap (as resumed from disk): the last attempts fail and the
    // transaction is dropped.
    let mut h = ready(Harness::new(quiet()), &spread(12));
    let t = tx(5);
    let h_engine = std::mem::replace(
        &mut h.engine,
        Engine::new(
            quiet(),
            crate::addrman::AddrMan::new(
                bitcoin::Network::Regtest,
                crate::addrman::AddrManKey::generate(&mut rand::rngs::StdRng::seed_from_u64(1)),
            ),
            [1; 32],
        ),
    );
    h.engine = h_engine.with_private_broadcasts(vec![Pending::new(
        t.clone(),
        1,
        MAX_ATTEMPTS - 1,
        Vec::new(),
    )]);
    let (dials, _) = dials_within(&mut h, Duration::from_secs(300), 1);
    assert_eq!(dials.len(), 1);
    h.input(Input::DialFailed {
        conn: dials[0].conn,
        failure: DialFailure {
            reason: "refused".into(),
            peer_at_fault: true,
        },
    });
    assert_eq!(h.engine.private_broadcast().pending().count(), 0);
    let (more, _) = dials_within(&mut h, Duration::from_secs(1_000), 1);
    assert!(more.is_empty());
}

#[test]
fn a_silent_peer_is_left_at_the_lifetime_cap_and_a_non_relaying_one_at_once() {
    let mut h = ready(Harness::new(quiet()), &spread(12));
    let t = tx(6);
    submit(&mut h, t.clone());
    let (dials, _) = dials_within(&mut h, Duration::from_secs(300), 2);
    let (silent, picky) = (dials[0].conn, dials[1].conn);
    connect(&mut h, silent, relaying(1));
    let out = connect(
        &mut h,
        picky,
        PeerInfo {
            relay: false,
            ..relaying(2)
        },
    );
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::Disconnect { conn, .. } if *conn == picky))
    );
    assert!(
        sent_to(&out, picky).is_empty(),
        "no inv to a non-relaying peer"
    );
    let out = h.advance(CARRIER_LIFETIME);
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::Disconnect { conn, .. } if *conn == silent)),
        "closed at the cap"
    );
}

#[test]
fn a_young_book_sends_over_fewer_connections_rather_than_wait() {
    let mut h = ready(Harness::new(quiet()), &spread(1));
    let t = tx(7);
    submit(&mut h, t.clone());
    let (dials, _) = dials_within(&mut h, Duration::from_secs(60), 3);
    assert_eq!(dials.len(), 1, "one peer known: one connection");
    deliver(&mut h, dials[0].conn, &t);
    close(&mut h, dials[0].conn);
    let p = h.engine.private_broadcast().pending().next().unwrap();
    assert_eq!(p.receipts.len(), 1);
    // The round ends with one receipt; the next one comes after the pause,
    // to the same single peer.
    let (again, _) = dials_within(&mut h, ROUND_RETRY_FIRST + Duration::from_secs(120), 1);
    assert_eq!(again.len(), 1);
}

#[test]
fn an_empty_book_queues_and_waits() {
    let mut h = ready(Harness::new(quiet()), &[]);
    submit(&mut h, tx(8));
    let (dials, _) = dials_within(&mut h, Duration::from_secs(600), 1);
    assert!(dials.is_empty());
    assert_eq!(h.engine.private_broadcast().pending().count(), 1);
    // A peer becomes known: the broadcast goes out.
    h.learn(&spread(1));
    let (dials, _) = dials_within(&mut h, Duration::from_secs(900), 1);
    assert_eq!(dials.len(), 1);
}

#[test]
fn without_tor_there_is_no_private_broadcast() {
    let mut config = quiet();
    config.reach = Reach::Direct;
    let mut h = Harness::new(config);
    let t = h.t();
    assert_eq!(
        h.engine.command(t, Command::PrivateBroadcast(tx(1))),
        Err(CommandError::NeedsTor)
    );
}

#[test]
fn two_transactions_interleave_at_random_gaps() {
    let mut h = ready(Harness::new(quiet()), &spread(16));
    let (a, b) = (tx(10), tx(11));
    submit(&mut h, a.clone());
    submit(&mut h, b.clone());
    let (dials, _) = dials_within(&mut h, Duration::from_secs(600), 6);
    assert_eq!(dials.len(), 6);
    // Each connection opened in a slot of its own.
    let mut at = Vec::new();
    let mut h2 = ready(Harness::new(quiet()), &spread(16));
    submit(&mut h2, a);
    submit(&mut h2, b);
    for _ in 0..600 {
        let out = h2.advance(Duration::from_secs(1));
        if !super::tests::dials(&out).is_empty() {
            assert_eq!(super::tests::dials(&out).len(), 1, "one per slot");
            at.push(h2.now);
        }
        if at.len() == 6 {
            break;
        }
    }
    assert_eq!(at.len(), 6);
    let gaps: BTreeSet<_> = at.windows(2).map(|w| w[1].saturating_sub(w[0])).collect();
    assert!(gaps.len() > 1, "gaps vary: {gaps:?}");
}

#[test]
fn abort_closes_its_connections_and_forgets_it() {
    let mut h = ready(Harness::new(quiet()), &spread(12));
    let t = tx(12);
    submit(&mut h, t.clone());
    let (dials, _) = dials_within(&mut h, Duration::from_secs(300), 1);
    let now = h.t();
    assert_eq!(
        h.engine
            .command(now, Command::AbortPrivateBroadcast(t.compute_txid())),
        Ok(CommandReply::Done)
    );
    let out: Vec<Output> = std::iter::from_fn(|| h.engine.poll_output()).collect();
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::PersistBroadcasts(_))),
        "the file forgets it"
    );
    // Its connection was still dialling: it is closed at its handshake,
    // without a word about the transaction.
    let out = connect(&mut h, dials[0].conn, relaying(3));
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::Disconnect { conn, .. } if *conn == dials[0].conn))
    );
    assert!(sent_to(&out, dials[0].conn).is_empty());
    assert_eq!(
        h.engine
            .command(now, Command::AbortPrivateBroadcast(t.compute_txid())),
        Err(CommandError::NotQueued)
    );
}

use rand::SeedableRng;
