//! Eclipse simulation: an attacker whose addresses sit in a few netgroups
//! floods gossip from a few sources. We measure the share of `select()`
//! picks that land on attacker addresses, for the keyed tables and for a
//! flat random map (what an address book without buckets, like Floresta's,
//! amounts to), and assert the keyed share stays under a bound derived from
//! the bucket limits.
//!
//! # The bound
//!
//! In the new table an address lands in the one bucket its (address group,
//! source group) pair hashes to, and a source group reaches at most 64
//! buckets. So an attacker with `S` source groups and addresses in `G`
//! groups holds at most `A = S × min(G, 64) × 64` new slots, however much
//! it sends. It can evict honest entries only inside those slots, so if
//! honest entries held `H` new slots before the flood (`slots_used`; an
//! entry heard from several source groups holds several), at least `H − A`
//! honest slots remain. Selection takes the tried table half the
//! time (the attacker has no tried entries: it never passed a handshake we
//! initiated) and otherwise a uniform occupied new slot, so
//!
//! ```text
//! share ≤ ½ × A / max(H, A)
//! ```
//!
//! plus three standard errors of sampling noise.

// Helpers here are test code too: clippy.toml's test allowances (unwrap,
// expect, panic, printing) only reach `#[test]` functions, not their helpers.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr
)]

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use bitcoin::p2p::ServiceFlags;
use nightjar::addrman::{
    ADDRMAN_KEY_LEN, AddrMan, AddrManKey, AddrRecord, AddrSource, GoodOutcome, Want,
};
use nightjar::netaddr::{Host, NetAddr, NetworkId, NetworkSet};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;

const T0: u64 = 1_700_000_000;
const HOUR: u64 = 3600;
const SELECTIONS: usize = 20_000;
/// New buckets per source group, and slots per bucket (Core's sizes).
const BUCKETS_PER_SOURCE: usize = 64;
const BUCKET_SIZE: usize = 64;

fn services() -> ServiceFlags {
    ServiceFlags::NETWORK | ServiceFlags::WITNESS
}

fn ipv4(rng: &mut impl Rng, first: u8, second: u8) -> NetAddr {
    let ip = Ipv4Addr::new(first, second, rng.random(), rng.random_range(1..255));
    NetAddr::new(Host::Ipv4(ip), 8333)
}

/// An onion address whose first key byte is `first` (an attacker grinds
/// keys into whichever of the 16 onion groups it likes).
fn onion(rng: &mut impl Rng, first: u8) -> NetAddr {
    let mut key: [u8; 32] = rng.random();
    key[0] = first;
    NetAddr::new(Host::TorV3(key), 8333)
}

/// One scenario's inputs.
struct Scenario {
    name: &'static str,
    /// Honest addresses.
    honest: Vec<NetAddr>,
    /// Honest gossip sources.
    honest_sources: Vec<AddrSource>,
    /// Honest addresses we connected to (promoted to tried).
    honest_tried: usize,
    /// Attacker addresses.
    attacker: Vec<NetAddr>,
    /// Attacker gossip sources (each floods *all* attacker addresses).
    attacker_sources: Vec<AddrSource>,
    /// Distinct address groups among the attacker addresses.
    attacker_groups: usize,
    /// What the node dials.
    want: Want,
}

/// The outcome of one scenario.
struct Outcome {
    ours: f64,
    flat: f64,
    bound: f64,
    honest_new: usize,
    honest_slots: usize,
    attacker_slots_max: usize,
}

fn run(s: &Scenario) -> Outcome {
    let mut rng = ChaCha20Rng::seed_from_u64(0x0ec1_195e);
    let key = AddrManKey::from_bytes([0x5a; ADDRMAN_KEY_LEN]);
    let mut man = AddrMan::new(bitcoin::Network::Bitcoin, key);

    // Honest gossip: every honest source tells a random third of the
    // honest addresses, a few hours old.
    let mut now = T0;
    for src in &s.honest_sources {
        let mut told = s.honest.clone();
        told.shuffle(&mut rng);
        told.truncate(s.honest.len() / 3);
        let recs: Vec<_> = told
            .iter()
            .map(|a| AddrRecord {
                addr: *a,
                services: services(),
                last_seen: now - 3 * HOUR,
            })
            .collect();
        man.add(&recs, src, now, &mut rng);
        now += 60;
    }
    // We connected to some of them.
    let mut promoted = 0;
    for a in &s.honest {
        if promoted == s.honest_tried {
            break;
        }
        if man.contains(a) {
            man.attempt(a, false, now);
            if man.good(a, now) == GoodOutcome::Promoted {
                promoted += 1;
            }
        }
    }
    man.check_consistency().unwrap();
    let honest_new = man.len_new();
    let honest_slots = man.slots_used(NetworkSet::all()).new;

    // The flood: every attacker source sends every attacker address, fresh,
    // in three rounds an hour apart (fresher timestamps each time, to win
    // every "newer information" test).
    for round in 0..3u64 {
        now += HOUR;
        for src in &s.attacker_sources {
            let recs: Vec<_> = s
                .attacker
                .iter()
                .map(|a| AddrRecord {
                    addr: *a,
                    services: services(),
                    last_seen: now - round,
                })
                .collect();
            for chunk in recs.chunks(1000) {
                man.add(chunk, src, now, &mut rng);
            }
        }
    }
    man.check_consistency().unwrap();

    // Selections a day later (no attempts: every entry equally likely).
    now += 24 * HOUR;
    let attacker: BTreeSet<NetAddr> = s.attacker.iter().copied().collect();
    let mut sel_rng = ChaCha20Rng::seed_from_u64(99);
    let hits = (0..SELECTIONS)
        .filter(|_| {
            let pick = man.select(&s.want, now, &mut sel_rng).unwrap();
            attacker.contains(&pick.addr)
        })
        .count();
    let ours = hits as f64 / SELECTIONS as f64;

    // The flat map: every distinct address ever heard, picked uniformly.
    let mut flat: Vec<NetAddr> = s.honest.iter().chain(&s.attacker).copied().collect();
    flat.sort();
    flat.dedup();
    let flat_hits = (0..SELECTIONS)
        .filter(|_| attacker.contains(&flat[sel_rng.random_range(0..flat.len())]))
        .count();
    let flat_share = flat_hits as f64 / SELECTIONS as f64;

    // The bound (module docs).
    let sources: BTreeSet<_> = s.attacker_sources.iter().map(AddrSource::group).collect();
    let a_max = sources.len() * s.attacker_groups.min(BUCKETS_PER_SOURCE) * BUCKET_SIZE;
    let p_new = if man.len_tried() > 0 { 0.5 } else { 1.0 };
    let b = p_new * a_max as f64 / honest_slots.max(a_max) as f64;
    let bound = b + 3.0 * (b * (1.0 - b) / SELECTIONS as f64).sqrt();

    Outcome {
        ours,
        flat: flat_share,
        bound,
        honest_new,
        honest_slots,
        attacker_slots_max: a_max,
    }
}

fn report(s: &Scenario, o: &Outcome) {
    eprintln!(
        "[{}] honest {} addrs / {} sources ({} tried; {} in new, holding {} slots, before the flood); \
         attacker {} addrs in {} groups / {} sources (≤ {} new slots)\n  \
         attacker share of selections: keyed tables {:.2}% (bound {:.2}%), flat map {:.2}%; \
         P(all 8 outbound are attacker): keyed {:.1e}, flat {:.1e}",
        s.name,
        s.honest.len(),
        s.honest_sources.len(),
        s.honest_tried,
        o.honest_new,
        o.honest_slots,
        s.attacker.len(),
        s.attacker_groups,
        s.attacker_sources.len(),
        o.attacker_slots_max,
        o.ours * 100.0,
        o.bound * 100.0,
        o.flat * 100.0,
        o.ours.powi(8),
        o.flat.powi(8),
    );
}

#[test]
fn ipv4_flood_from_few_netgroups() {
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    // Honest: 8 000 addresses over (nearly) as many /16s, from 64 sources.
    let honest: Vec<_> = (0..8000)
        .map(|_| {
            let (a, b) = (rng.random_range(11..100), rng.random());
            ipv4(&mut rng, a, b)
        })
        .collect();
    let honest_sources = (0..64)
        .map(|i| AddrSource::Peer(ipv4(&mut rng, 150 + (i / 8) as u8, (i % 8) as u8 * 30)))
        .collect();
    // Attacker: 10× as many addresses, all in 4 /16s, from 4 peers in 4
    // other /16s plus any number of inbound onion connections.
    let groups = [(200u8, 1u8), (200, 2), (201, 1), (202, 7)];
    let attacker: Vec<_> = (0..80_000)
        .map(|i| {
            let (a, b) = groups[i % groups.len()];
            ipv4(&mut rng, a, b)
        })
        .collect();
    let attacker_sources = vec![
        AddrSource::Peer(ipv4(&mut rng, 210, 1)),
        AddrSource::Peer(ipv4(&mut rng, 210, 2)),
        AddrSource::Peer(ipv4(&mut rng, 211, 1)),
        AddrSource::Peer(ipv4(&mut rng, 212, 1)),
        AddrSource::InboundOnion,
    ];
    let s = Scenario {
        name: "ipv4",
        honest,
        honest_sources,
        honest_tried: 400,
        attacker,
        attacker_sources,
        attacker_groups: groups.len(),
        want: Want::new(NetworkSet::all()),
    };
    let o = run(&s);
    report(&s, &o);
    assert!(
        o.ours <= o.bound,
        "keyed share {} over bound {}",
        o.ours,
        o.bound
    );
    assert!(o.flat > 0.85, "the flat map should be overrun: {}", o.flat);
    assert!(o.ours < o.flat / 5.0);
}

#[test]
fn onion_flood_with_minted_names() {
    let mut rng = ChaCha20Rng::seed_from_u64(2);
    // An onion-only node. Honest: 3 000 onion services, gossiped by 12
    // outbound onion peers and inbound onion peers.
    let honest: Vec<_> = (0..3000)
        .map(|_| {
            let first = rng.random();
            onion(&mut rng, first)
        })
        .collect();
    let mut honest_sources: Vec<_> = (0..12)
        .map(|i| AddrSource::Peer(onion(&mut rng, (i * 21) as u8)))
        .collect();
    honest_sources.push(AddrSource::InboundOnion);
    // Attacker: 30 000 minted names covering all 16 onion groups, flooded
    // by 4 onion peers we dialed (in 4 groups) and by inbound connections.
    let attacker: Vec<_> = (0..30_000)
        .map(|i| onion(&mut rng, (i % 256) as u8))
        .collect();
    let attacker_sources = vec![
        AddrSource::Peer(onion(&mut rng, 0x05)),
        AddrSource::Peer(onion(&mut rng, 0x45)),
        AddrSource::Peer(onion(&mut rng, 0x85)),
        AddrSource::Peer(onion(&mut rng, 0xc5)),
        AddrSource::InboundOnion,
    ];
    let s = Scenario {
        name: "onion-only",
        honest,
        honest_sources,
        honest_tried: 300,
        attacker,
        attacker_sources,
        attacker_groups: 16,
        want: Want::new(NetworkSet::only(NetworkId::Onion)),
    };
    let o = run(&s);
    report(&s, &o);
    assert!(
        o.ours <= o.bound,
        "keyed share {} over bound {}",
        o.ours,
        o.bound
    );
    assert!(o.flat > 0.85, "the flat map should be overrun: {}", o.flat);
    assert!(o.ours < o.flat / 2.0);
}
