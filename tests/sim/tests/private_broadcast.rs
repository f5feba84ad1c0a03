//! Private broadcast in simulated time, over random seeds, worlds and
//! configurations. Checked at every step of the trace: transactions
//! leave only on private-broadcast connections, each on a circuit group
//! never used before, v2 only, onion only under `--privacy`, never more
//! than a round's worth at once for one transaction and each in its own
//! network group, none outliving its lifetime cap. At the end: with the
//! network echoing, every transaction was seen and nothing more is sent;
//! without, nothing is seen and the book is untouched.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::Ipv4Addr;
use std::time::Duration;

use bitcoin::absolute::LockTime;
use bitcoin::hashes::Hash;
use bitcoin::transaction::Version;
use bitcoin::{Amount, OutPoint, ScriptBuf, Sequence, Transaction, TxIn, TxOut, Txid, Witness};
use nightjar::engine::conn_manager::default_port;
use nightjar::engine::isolation::GroupScope;
use nightjar::engine::private_broadcast::{
    CARRIER_LIFETIME, DEFAULT_CONNECTIONS, ROUND_RETRY_FIRST,
};
use nightjar::engine::targets::target_to_addr;
use nightjar::engine::{Command, CommandReply, EngineConfig, Input, Output};
use nightjar::peer::{ConnId, ConnectionKind, PeerReport};
use nightjar::transport::V1Fallback;
use nightjar::wire::{Inventory, NetworkMessage};
use nightjar_sim::{Behaviour, Sim, TraceEvent, World, ipv4, onion};
use nightjar_tor::{IsolationGroup, Target, TargetKind};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const NETWORK: bitcoin::Network = bitcoin::Network::Signet;

/// Slack for a close to come back from the remote (latencies of up to 2 s
/// each way) after the engine asked for it on its tick.
const CLOSE_SLACK: Duration = Duration::from_secs(10);

fn tx(n: u64) -> Transaction {
    let mut id = [0u8; 32];
    id[..8].copy_from_slice(&n.to_le_bytes());
    Transaction {
        version: Version::TWO,
        lock_time: LockTime::ZERO,
        input: vec![TxIn {
            previous_output: OutPoint::new(Txid::from_byte_array(id), 0),
            script_sig: ScriptBuf::new(),
            sequence: Sequence::MAX,
            witness: Witness::from_slice(&[vec![0x51]]),
        }],
        output: vec![TxOut {
            value: Amount::from_sat(40_000),
            script_pubkey: ScriptBuf::new_p2wsh(&bitcoin::WScriptHash::from_byte_array(id)),
        }],
    }
}

#[derive(Debug, Clone)]
struct Case {
    seed: u64,
    peers: usize,
    onion_percent: u32,
    bad_percent: u32,
    privacy: bool,
    txs: u64,
}

fn case() -> impl Strategy<Value = Case> {
    (
        any::<u64>(),
        12usize..=60,
        0u32..=100,
        0u32..=40,
        any::<bool>(),
        1u64..=3,
    )
        .prop_map(
            |(seed, peers, onion_percent, bad_percent, privacy, txs)| Case {
                seed,
                peers,
                onion_percent,
                bad_percent,
                privacy,
                txs,
            },
        )
}

/// A world with at least eight good peers on each network the case may
/// use beyond those the regular connections take, plus `bad_percent`
/// offline, hanging or dropping ones. Under `--privacy` every regular
/// connection is an onion peer, and a carrier must be a peer not
/// connected in any way, so the onion peers number eight more than the
/// regular slots.
fn world(c: &Case) -> World {
    world_with_spare_onions(c, config(c).target_outbound)
}

/// [`world`] with `spare` good onion peers beyond the first eight.
fn world_with_spare_onions(c: &Case, spare: usize) -> World {
    let mut rng = ChaCha8Rng::seed_from_u64(c.seed);
    let port = default_port(NETWORK);
    let mut world = World::new();
    let mut add = |rng: &mut ChaCha8Rng, onion_peer: bool, good: bool| {
        let target = if onion_peer {
            onion(rng.random(), port)
        } else {
            ipv4(
                Ipv4Addr::new(rng.random_range(11..=99), rng.random(), 1, 1),
                port,
            )
        };
        let behaviour = if good {
            Behaviour::online(
                Duration::from_millis(rng.random_range(50..=2_000)),
                Vec::new(),
            )
        } else {
            match rng.random_range(0..3) {
                0 => Behaviour::Offline,
                1 => Behaviour::Hang,
                _ => Behaviour::DropAfter(Duration::from_secs(rng.random_range(1..=60))),
            }
        };
        world.add(target, behaviour);
    };
    for i in 0..8 {
        add(&mut rng, true, true);
        add(&mut rng, i % 2 == 0 && !c.privacy, true);
    }
    for _ in 0..spare {
        add(&mut rng, true, true);
    }
    for _ in 0..c.peers {
        let onion_peer = rng.random_range(0..100) < c.onion_percent;
        let good = rng.random_range(0..100) >= c.bad_percent;
        add(&mut rng, onion_peer, good);
    }
    world
}

fn config(c: &Case) -> EngineConfig {
    let mut config = EngineConfig::new(NETWORK);
    config.privacy = c.privacy;
    config.dns_seeds = false;
    config.fixed_seeds = false;
    config
}

fn submit_all(sim: &mut Sim, n: u64) -> Vec<Txid> {
    (0..n)
        .map(|i| {
            let t = tx(i + 1);
            match sim.command(Command::PrivateBroadcast(t.clone())) {
                Ok(CommandReply::Broadcasting(txid)) => txid,
                other => panic!("not queued: {other:?}"),
            }
        })
        .collect()
}

/// What the trace says about one private-broadcast connection.
#[derive(Debug, Default)]
struct Carrier {
    dialled: Duration,
    txid: Option<Txid>,
    target: Option<Target>,
    connected: bool,
    gone: bool,
}

/// Replays the trace, checking the per-step rules.
fn check_trace(sim: &Sim, privacy: bool) -> Result<(), TestCaseError> {
    let mut kinds: BTreeMap<ConnId, ConnectionKind> = BTreeMap::new();
    let mut groups: HashSet<IsolationGroup> = HashSet::new();
    let mut carriers: BTreeMap<ConnId, Carrier> = BTreeMap::new();
    for entry in sim.trace() {
        let t = entry.at;
        match &entry.event {
            TraceEvent::Output(Output::Dial(d)) => {
                kinds.insert(d.conn, d.kind);
                if d.kind != ConnectionKind::PrivateBroadcast {
                    groups.insert(d.isolation.group);
                    continue;
                }
                prop_assert!(
                    groups.insert(d.isolation.group),
                    "a reused group for {}",
                    d.conn
                );
                prop_assert_eq!(d.isolation.scope, GroupScope::Connection);
                prop_assert_eq!(d.v1, V1Fallback::Forbidden);
                prop_assert!(!d.peer.our_version.relay);
                if privacy {
                    prop_assert_eq!(d.target.kind(), TargetKind::Onion);
                }
                carriers.insert(
                    d.conn,
                    Carrier {
                        dialled: t,
                        target: Some(d.target.clone()),
                        ..Carrier::default()
                    },
                );
            }
            TraceEvent::Output(Output::Send { conn, msg }) => {
                let carries = match msg {
                    NetworkMessage::Tx(tx) => Some(tx.compute_txid()),
                    NetworkMessage::Inv(items) => items.iter().find_map(|i| match i {
                        Inventory::Transaction(txid) => Some(*txid),
                        _ => None,
                    }),
                    _ => None,
                };
                if let Some(txid) = carries {
                    prop_assert_eq!(
                        kinds.get(conn).copied(),
                        Some(ConnectionKind::PrivateBroadcast),
                        "a transaction on {}",
                        conn
                    );
                    let c = carriers.get_mut(conn).unwrap();
                    c.txid = Some(txid);
                    // At most a round's worth at once, each in its own group.
                    let live: Vec<&Carrier> = carriers
                        .values()
                        .filter(|c| !c.gone && c.txid == Some(txid))
                        .collect();
                    prop_assert!(live.len() <= DEFAULT_CONNECTIONS, "{live:?}");
                    let netgroups: BTreeSet<String> = live
                        .iter()
                        .map(|c| {
                            let addr = target_to_addr(c.target.as_ref().unwrap()).unwrap();
                            format!("{:?}", addr.netgroup())
                        })
                        .collect();
                    prop_assert_eq!(netgroups.len(), live.len(), "shared group: {:?}", live);
                }
            }
            TraceEvent::Input(Input::Peer(u)) if matches!(u.report, PeerReport::Closed(_)) => {
                if let Some(c) = carriers.get_mut(&u.conn) {
                    c.gone = true;
                }
            }
            TraceEvent::Input(Input::Connected { conn, .. }) => {
                if let Some(c) = carriers.get_mut(conn) {
                    c.connected = true;
                }
            }
            // An abandoned dial is gone at once.
            TraceEvent::Output(Output::Disconnect { conn, .. }) => {
                if let Some(c) = carriers.get_mut(conn)
                    && !c.connected
                {
                    c.gone = true;
                }
            }
            TraceEvent::Input(Input::DialFailed { conn, .. }) => {
                if let Some(c) = carriers.get_mut(conn) {
                    c.gone = true;
                }
            }
            _ => {}
        }
        for (conn, c) in &carriers {
            if !c.gone {
                prop_assert!(
                    t <= c.dialled + CARRIER_LIFETIME + CLOSE_SLACK,
                    "{} alive at {:?}, dialled at {:?}",
                    conn,
                    t,
                    c.dialled
                );
            }
        }
    }
    Ok(())
}

/// A simulation of `world` under `c`'s configuration, Tor ready, after
/// two minutes for the regular connections to settle.
fn settled(c: &Case, world: World, echo: bool) -> Sim {
    let mut sim = Sim::new(c.seed, config(c), world);
    sim.set_echo(echo);
    sim.set_tor_ready(true);
    sim.run_for(Duration::from_secs(120));
    sim
}

fn run_case(c: &Case, echo: bool) -> Result<Sim, TestCaseError> {
    let mut sim = settled(c, world(c), echo);
    let txids = submit_all(&mut sim, c.txs);
    sim.run_for(Duration::from_secs(2 * 60 * 60));
    prop_assert!(sim.anomalies().is_empty(), "{:?}", sim.anomalies());
    check_trace(&sim, c.privacy)?;
    let arrived: BTreeSet<Txid> = sim.tx_arrivals().iter().map(|a| a.txid).collect();
    prop_assert_eq!(
        arrived,
        txids.iter().copied().collect::<BTreeSet<_>>(),
        "every transaction reached a peer"
    );
    prop_assert!(
        sim.tx_arrivals()
            .iter()
            .all(|a| a.kind == ConnectionKind::PrivateBroadcast)
    );
    Ok(sim)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn with_the_network_echoing_every_transaction_is_seen_and_then_left_alone(c in case()) {
        let sim = run_case(&c, true)?;
        let queue = sim.engine().private_broadcast();
        prop_assert_eq!(queue.pending().count(), 0, "all seen");
        prop_assert_eq!(queue.seen().count() as u64, c.txs);
        prop_assert!(sim.echoes() > 0);
        // Once seen, nothing more goes out: the last transaction sent is
        // before the last one was seen (plus its echo delay and slack).
        let last_seen = queue.seen().map(|s| s.seen_unix).max().unwrap();
        let last_sent = sim.tx_arrivals().last().unwrap().at;
        prop_assert!(
            nightjar_sim::SIM_EPOCH_UNIX + last_sent.as_secs() <= last_seen,
            "sent at {:?} after the last was seen", last_sent
        );
        let last_save = sim.broadcast_saves().last().unwrap();
        prop_assert!(
            !String::from_utf8_lossy(last_save).contains("hex"),
            "the queue file ends empty"
        );
    }

    #[test]
    fn without_an_echo_nothing_is_seen_and_rounds_keep_their_pause(c in case()) {
        let sim = run_case(&c, false)?;
        let queue = sim.engine().private_broadcast();
        prop_assert_eq!(queue.pending().count() as u64, c.txs, "none seen");
        prop_assert_eq!(sim.echoes(), 0);
        // Receipts per transaction: with a round of three and pauses of
        // at least five minutes between rounds, two hours hold at most
        // 24 rounds.
        for p in queue.pending() {
            let rounds = u64::try_from(p.receipts.len()).unwrap() / DEFAULT_CONNECTIONS as u64;
            prop_assert!(
                rounds <= (2 * 60 * 60) / ROUND_RETRY_FIRST.as_secs() + 1,
                "{} rounds", rounds
            );
        }
    }
}

#[test]
fn private_broadcast_connections_cannot_confirm_and_leave_the_book_alone() {
    // No regular connection at all: the only peers that hear of the
    // transaction are those it was sent to, and their announcements (if
    // any) cannot count.
    let c = Case {
        seed: 11,
        peers: 20,
        onion_percent: 50,
        bad_percent: 0,
        privacy: false,
        txs: 2,
    };
    let mut config = config(&c);
    config.target_outbound = 0;
    config.feeler_interval = Duration::from_secs(10_000_000);
    // The simulated chain never moves: no stale-tip extra peer either.
    config.stale_tip_after = Duration::from_secs(10_000_000);
    let mut sim = Sim::new(c.seed, config, world(&c));
    sim.set_echo(true);
    sim.set_tor_ready(true);
    let book = sim.engine().addrman().to_bytes();
    submit_all(&mut sim, c.txs);
    sim.run_for(Duration::from_secs(60 * 60));
    assert!(sim.anomalies().is_empty(), "{:?}", sim.anomalies());
    check_trace(&sim, false).unwrap();
    assert!(sim.tx_arrivals().len() >= 6, "{:?}", sim.tx_arrivals());
    assert_eq!(sim.echoes(), 0, "nobody that may announce is connected");
    assert_eq!(sim.engine().private_broadcast().pending().count(), 2);
    let kinds: BTreeSet<&str> = sim.dials().iter().map(|d| d.request.kind.label()).collect();
    assert_eq!(kinds, BTreeSet::from(["private-broadcast"]));
    assert!(
        sim.engine().addrman().to_bytes() == book,
        "the address book is untouched"
    );
}

#[test]
fn with_every_onion_peer_already_connected_the_transaction_waits_and_nothing_leaks() {
    // Under `--privacy` the regular connections take all eight onion
    // peers the book knows; the clearnet ones are unreachable. No carrier
    // fits: the transaction must stay queued, never go to a connected
    // peer or a clearnet one, and spend none of its attempts. (Found by
    // the property test above when its world had too few onion peers.)
    let c = Case {
        seed: 380_630_272_248_996_493,
        peers: 12,
        onion_percent: 0,
        bad_percent: 0,
        privacy: true,
        txs: 1,
    };
    let world = world_with_spare_onions(&c, 0);
    let onions: HashSet<Target> = world
        .peers()
        .iter()
        .map(|p| p.target.clone())
        .filter(|t| t.kind() == TargetKind::Onion)
        .collect();
    let mut sim = settled(&c, world, true);
    let regular: HashSet<Target> = sim
        .connections()
        .filter(|v| matches!(v.kind, ConnectionKind::Regular(_)))
        .map(|v| v.target.clone())
        .collect();
    assert_eq!(regular, onions, "every onion peer is a regular peer");
    submit_all(&mut sim, c.txs);
    sim.run_for(Duration::from_secs(2 * 60 * 60));
    assert!(sim.anomalies().is_empty(), "{:?}", sim.anomalies());
    check_trace(&sim, true).unwrap();
    assert!(sim.tx_arrivals().is_empty(), "{:?}", sim.tx_arrivals());
    let queue = sim.engine().private_broadcast();
    let pending: Vec<_> = queue.pending().collect();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].attempts, 0, "no connection was opened for it");
    assert!(pending[0].next_attempt().is_some(), "it keeps retrying");
    assert!(
        sim.dials()
            .iter()
            .all(|d| d.request.kind != ConnectionKind::PrivateBroadcast)
    );
}
