//! Inbound peers in simulated time: a listening engine with its outbound
//! peers full, then honest inbound peers from many network groups, a flood
//! from one group, and more honest peers once every slot is taken. Checked
//! at every step: the inbound slots and the per-group share are never
//! exceeded and no outbound connection is touched; at the end, every
//! honest peer has a place, paid for by evictions from the flood's group.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use nightjar::engine::inbound::MAX_INBOUND_PER_NETGROUP;
use nightjar::engine::{EngineConfig, Output};
use nightjar::netaddr::NetAddr;
use nightjar::peer::ConnectionKind;
use nightjar_sim::{Behaviour, Sim, TraceEvent, World, ipv4};
use nightjar_tor::Target;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const NETWORK: bitcoin::Network = bitcoin::Network::Signet;
const MAX_INBOUND: usize = 20;
const HONEST: u8 = 12;
/// Honest peers that arrive after the flood, when every slot is taken.
const LATE: u8 = 4;
const FLOOD: u16 = 300;

fn outbound_world() -> World {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let mut world = World::new();
    for i in 0..12u8 {
        world.add(
            ipv4(Ipv4Addr::new(30 + i, rng.random(), 1, 1), 38333),
            Behaviour::online(Duration::from_millis(300), Vec::new()),
        );
    }
    world
}

/// Inbound peers in the engine's table that still hold a slot, by group.
fn inbound_by_group(sim: &Sim) -> BTreeMap<String, usize> {
    let mut groups = BTreeMap::new();
    for e in sim.engine().peers().iter() {
        if e.kind != ConnectionKind::Inbound || e.evicted {
            continue;
        }
        let Target::Ip(sa) = e.target else {
            panic!("an inbound peer without an address: {e:?}");
        };
        *groups
            .entry(format!("{:?}", NetAddr::from(sa).netgroup()))
            .or_default() += 1;
    }
    groups
}

#[test]
fn a_flood_from_one_group_is_held_to_its_share_and_pays_for_latecomers() {
    let mut config = EngineConfig::new(NETWORK);
    config.target_outbound = 4;
    config.max_inbound = MAX_INBOUND;
    let mut sim = Sim::new(5, config, outbound_world());
    sim.set_tor_ready(true);
    sim.run_for(Duration::from_secs(60));
    assert_eq!(sim.ready_regular(), 4, "outbound peers first");

    // Honest peers, one per /16, arrive over the next minute; then a flood
    // from 81.2.0.0/16, one stream every 200 ms for a minute.
    let start = sim.now();
    let honest: Vec<SocketAddr> = (0..HONEST + LATE)
        .map(|i| SocketAddr::from(([100 + i, 7, 0, 1], 40_000)))
        .collect();
    for (i, remote) in honest.iter().enumerate() {
        // The late ones come once the flood (90 s to 150 s) has filled
        // every slot.
        let h = usize::from(HONEST);
        let at = if i < h { 5 * i } else { 160 + 10 * (i - h) } as u64;
        sim.schedule_inbound(start + Duration::from_secs(at), *remote);
    }
    let flood_start = start + Duration::from_secs(90);
    for i in 0..FLOOD {
        let remote = SocketAddr::from(([81, 2, (i / 250) as u8, (i % 250) as u8], 50_000 + i));
        sim.schedule_inbound(
            flood_start + Duration::from_millis(200 * u64::from(i)),
            remote,
        );
    }

    let mut failures = Vec::new();
    let mut most_inbound = 0;
    sim.run_for_observed(Duration::from_secs(240), |s| {
        let groups = inbound_by_group(s);
        let total: usize = groups.values().sum();
        most_inbound = most_inbound.max(total);
        if total > MAX_INBOUND {
            failures.push(format!("{total} inbound slots held at {:?}", s.now()));
        }
        if let Some((g, n)) = groups.iter().find(|(_, n)| **n > MAX_INBOUND_PER_NETGROUP) {
            failures.push(format!("{n} from group {g} at {:?}", s.now()));
        }
        if s.ready_regular() < 4 {
            failures.push(format!("an outbound peer was lost at {:?}", s.now()));
        }
    });
    assert!(failures.is_empty(), "{failures:#?}");
    assert!(sim.anomalies().is_empty(), "{:?}", sim.anomalies());
    assert_eq!(most_inbound, MAX_INBOUND, "the slots filled");

    // Nothing but inbound peers was ever evicted.
    let evicted_outbound = sim.trace().iter().any(|e| match &e.event {
        TraceEvent::Output(Output::Disconnect { conn, reason }) if reason.contains("evicted") => {
            sim.dials().iter().any(|d| d.request.conn == *conn)
        }
        _ => false,
    });
    assert!(!evicted_outbound, "an outbound peer was evicted");
    // The flood was held to its share: most of it refused at the door.
    assert!(
        sim.refused_inbound() >= usize::from(FLOOD) - MAX_INBOUND_PER_NETGROUP - 8,
        "only {} refused",
        sim.refused_inbound()
    );
    // Each latecomer found the house full and made room by one eviction.
    let evictions = sim
        .trace()
        .iter()
        .filter(|e| {
            matches!(&e.event, TraceEvent::Output(Output::Disconnect { reason, .. })
                if reason.contains("evicted"))
        })
        .count();
    assert_eq!(evictions, usize::from(LATE));
    // The flood paid for some of them. (Core's rule picks, among the
    // unprotected, the most crowded group and, on a tie, the one with the
    // youngest member: a latecomer alone in its group may be the youngest,
    // so latecomers can also displace each other.)
    let flood_left = inbound_by_group(&sim).values().copied().max().unwrap();
    assert!(
        flood_left < MAX_INBOUND_PER_NETGROUP,
        "the flood kept all {flood_left}"
    );
    // The honest peers from before the flood all kept their places.
    let holding = |remotes: &[SocketAddr]| {
        sim.engine()
            .peers()
            .iter()
            .filter(|e| e.kind == ConnectionKind::Inbound && !e.evicted)
            .filter(|e| matches!(e.target, Target::Ip(sa) if remotes.contains(&sa)))
            .count()
    };
    let (early, late) = honest.split_at(usize::from(HONEST));
    assert_eq!(holding(early), usize::from(HONEST));
    assert!(holding(late) >= 1);
}
