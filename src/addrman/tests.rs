//! Unit tests of the address manager's bookkeeping (tables, promotion,
//! eviction, selection filters). Persistence, restore determinism and the
//! eclipse simulation live in `tests/addrman_*.rs`.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use proptest::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

use super::*;
use crate::netaddr::NetworkSet;

const NOW: u64 = 1_700_000_000;
const HOUR: u64 = 60 * 60;

fn rng() -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(7)
}

fn man() -> AddrMan {
    AddrMan::new(
        bitcoin::Network::Bitcoin,
        AddrManKey::from_bytes([42; ADDRMAN_KEY_LEN]),
    )
}

fn v4(a: u8, b: u8, c: u8, d: u8) -> NetAddr {
    NetAddr::new(Host::Ipv4(Ipv4Addr::new(a, b, c, d)), 8333)
}

/// A routable IPv4 address; `i` picks the /16 (from 20.0/16 up) and host.
fn v4n(i: u32) -> NetAddr {
    let [_, b, c, d] = i.to_be_bytes();
    v4(20 + (i >> 24) as u8, b, c, d.max(1))
}

fn onion(i: u32) -> NetAddr {
    let mut key = [0u8; 32];
    key[..4].copy_from_slice(&i.to_le_bytes());
    key[4..8].copy_from_slice(&i.wrapping_mul(2_654_435_761).to_be_bytes());
    NetAddr::new(Host::TorV3(key), 8333)
}

fn rec(addr: NetAddr) -> AddrRecord {
    AddrRecord {
        addr,
        services: ServiceFlags::NETWORK | ServiceFlags::WITNESS,
        last_seen: NOW - HOUR,
    }
}

fn peer(addr: NetAddr) -> AddrSource {
    AddrSource::Peer(addr)
}

fn add(m: &mut AddrMan, addrs: &[NetAddr], src: &AddrSource) -> usize {
    let recs: Vec<_> = addrs.iter().copied().map(rec).collect();
    m.add(&recs, src, NOW, &mut rng())
}

fn new_buckets_used(m: &AddrMan) -> BTreeSet<usize> {
    (0..m.new_table.capacity())
        .filter(|s| m.new_table.get(*s).is_some())
        .map(|s| s / params::BUCKET_SIZE)
        .collect()
}

#[test]
fn add_stores_routable_addresses_once() {
    let mut m = man();
    let src = peer(v4(9, 9, 9, 9));
    assert_eq!(add(&mut m, &[v4(1, 2, 3, 4), onion(1)], &src), 2);
    assert_eq!(m.len(), 2);
    assert_eq!(m.len_new(), 2);
    assert_eq!(m.info().network(NetworkId::Onion).new, 1);
    // The same again from the same source adds nothing.
    assert_eq!(add(&mut m, &[v4(1, 2, 3, 4)], &src), 0);
    assert_eq!(m.len(), 2);
    m.check_consistency().unwrap();
}

#[test]
fn add_skips_what_cannot_be_dialed() {
    let mut m = man();
    let src = peer(v4(9, 9, 9, 9));
    let i2p = |port| NetAddr::new(Host::I2p([5; 32]), port);
    let skipped = [
        v4(10, 0, 0, 1),
        v4(127, 0, 0, 1),
        NetAddr::new(Host::Ipv4(Ipv4Addr::new(1, 2, 3, 4)), 0),
        i2p(8333),
        NetAddr::new(Host::Cjdns("fd00::1".parse().unwrap()), 8333),
    ];
    assert_eq!(add(&mut m, &skipped, &src), 0);
    assert_eq!(add(&mut m, &[i2p(0)], &src), 1);
    assert!(m.contains(&i2p(0)));
}

#[test]
fn gossip_is_aged_but_self_announcements_are_not() {
    let mut m = man();
    let a = v4(1, 2, 3, 4);
    let b = v4(5, 6, 7, 8);
    add(&mut m, &[a], &peer(v4(9, 9, 9, 9)));
    add(&mut m, &[b], &peer(b));
    assert_eq!(
        m.lookup(&a).unwrap().1.last_seen,
        NOW - HOUR - params::GOSSIP_TIME_PENALTY
    );
    assert_eq!(m.lookup(&b).unwrap().1.last_seen, NOW - HOUR);
}

#[test]
fn nonsense_timestamps_become_five_days_ago() {
    let mut m = man();
    let src = AddrSource::Internal(InternalSource::MANUAL);
    for (i, t) in [0, 5, NOW + 3600].into_iter().enumerate() {
        let r = AddrRecord {
            last_seen: t,
            ..rec(v4(1, 2, 3, i as u8 + 1))
        };
        m.add(&[r], &src, NOW, &mut rng());
        assert_eq!(
            m.lookup(&r.addr).unwrap().1.last_seen,
            NOW - params::BAD_TIMESTAMP_AGE
        );
    }
}

#[test]
fn one_source_reaches_at_most_64_new_buckets() {
    let mut m = man();
    let addrs: Vec<_> = (0..20_000).map(|i| v4n(i * 65_537)).collect();
    add(&mut m, &addrs, &peer(v4(9, 9, 9, 9)));
    let used = new_buckets_used(&m);
    assert!(used.len() <= 64, "{}", used.len());
    assert!(m.len() <= 64 * 64);
    m.check_consistency().unwrap();
}

#[test]
fn one_source_reaches_at_most_16_buckets_with_onion_addresses() {
    let mut m = man();
    let addrs: Vec<_> = (0..20_000).map(onion).collect();
    add(&mut m, &addrs, &peer(onion(999_999)));
    let used = new_buckets_used(&m);
    assert!(used.len() <= 16, "{}", used.len());
    assert!(m.len() <= 16 * 64);
}

#[test]
fn inbound_onion_sources_share_one_group() {
    let mut m = man();
    // Many "different" inbound Sybils: all one source group.
    for chunk in (0..20_000).collect::<Vec<u32>>().chunks(1000) {
        let addrs: Vec<_> = chunk.iter().map(|i| v4n(i * 65_537)).collect();
        add(&mut m, &addrs, &AddrSource::InboundOnion);
    }
    assert!(new_buckets_used(&m).len() <= 64);
}

#[test]
fn references_grow_with_distinct_source_groups_only() {
    let mut m = man();
    let a = v4(1, 2, 3, 4);
    let mut r = rng();
    for i in 0..200u32 {
        let mut fresher = rec(a);
        fresher.last_seen = NOW - 100 + u64::from(i % 100);
        m.add(&[fresher], &peer(v4n(i * 65_536 + 7)), NOW, &mut r);
    }
    let refs = m.lookup(&a).unwrap().1.ref_count();
    assert!(
        (2..=params::NEW_BUCKETS_PER_ADDRESS).contains(&refs),
        "{refs}"
    );
    m.check_consistency().unwrap();
}

#[test]
fn good_promotes_to_tried() {
    let mut m = man();
    let a = v4(1, 2, 3, 4);
    add(&mut m, &[a], &peer(v4(9, 9, 9, 9)));
    assert_eq!(m.good(&a, NOW), GoodOutcome::Promoted);
    assert!(m.is_tried(&a));
    assert_eq!((m.len_new(), m.len_tried()), (0, 1));
    assert_eq!(m.good(&a, NOW + 1), GoodOutcome::AlreadyTried);
    assert_eq!(m.good(&v4(7, 7, 7, 7), NOW), GoodOutcome::Unknown);
    // Promotion does not refresh the public timestamp.
    assert_eq!(
        m.lookup(&a).unwrap().1.last_seen,
        NOW - HOUR - params::GOSSIP_TIME_PENALTY
    );
    m.check_consistency().unwrap();
}

/// Two addresses that want the same tried slot.
fn colliding_pair(m: &mut AddrMan) -> (NetAddr, NetAddr) {
    let base = v4(1, 2, 3, 4);
    let slot = m.key.tried_slot(&base);
    let other = (0..=u16::MAX)
        .map(|i| v4(1, 2, (i >> 8) as u8, (i & 0xff) as u8))
        .find(|a| *a != base && m.key.tried_slot(a) == slot)
        .unwrap();
    add(m, &[base], &peer(v4(9, 9, 9, 9)));
    add(m, &[other], &peer(v4(8, 8, 8, 8)));
    assert_eq!(m.good(&base, NOW), GoodOutcome::Promoted);
    (base, other)
}

#[test]
fn collision_waits_for_a_test() {
    let mut m = man();
    let (old, newcomer) = colliding_pair(&mut m);
    assert_eq!(
        m.good(&newcomer, NOW + 10),
        GoodOutcome::Collision { existing: old }
    );
    assert!(m.is_tried(&old) && !m.is_tried(&newcomer));
    assert_eq!(m.select_tried_collision(&mut rng()).unwrap().addr, old);
    // The incumbent connected recently: it stays, the collision is dropped.
    m.resolve_collisions(NOW + 20);
    assert!(m.is_tried(&old) && !m.is_tried(&newcomer));
    assert!(m.select_tried_collision(&mut rng()).is_none());
    m.check_consistency().unwrap();
}

#[test]
fn collision_newcomer_wins_when_the_test_fails() {
    let mut m = man();
    let (old, newcomer) = colliding_pair(&mut m);
    let later = NOW + params::REPLACEMENT + HOUR;
    assert!(matches!(
        m.good(&newcomer, later),
        GoodOutcome::Collision { .. }
    ));
    // The feeler to the incumbent fails...
    m.attempt(&old, true, later + 5);
    // ...but it gets its grace period first.
    m.resolve_collisions(later + 30);
    assert!(m.is_tried(&old));
    m.resolve_collisions(later + 5 + params::COLLISION_TEST_GRACE + 1);
    assert!(m.is_tried(&newcomer) && !m.is_tried(&old));
    // The evicted incumbent went back to the new table, not away.
    assert!(m.contains(&old));
    m.check_consistency().unwrap();
}

#[test]
fn collision_newcomer_wins_when_nobody_tests() {
    let mut m = man();
    let (old, newcomer) = colliding_pair(&mut m);
    let later = NOW + params::REPLACEMENT + HOUR;
    assert!(matches!(
        m.good(&newcomer, later),
        GoodOutcome::Collision { .. }
    ));
    m.resolve_collisions(later + 60);
    assert!(!m.is_tried(&newcomer));
    m.resolve_collisions(later + params::TEST_WINDOW + 1);
    assert!(m.is_tried(&newcomer) && !m.is_tried(&old));
    m.check_consistency().unwrap();
}

#[test]
fn collision_set_is_bounded() {
    let mut m = man();
    let a = v4(1, 2, 3, 4);
    add(&mut m, &[a], &peer(v4(9, 9, 9, 9)));
    m.good(&a, NOW);
    // Promote many addresses of one /16: they share 8 tried buckets, so
    // collisions pile up quickly.
    let addrs: Vec<_> = (0..4000u32)
        .map(|i| v4(1, 2, (i >> 8) as u8, (i & 0xff) as u8 | 1))
        .collect();
    for chunk in addrs.chunks(50).enumerate() {
        add(&mut m, chunk.1, &peer(v4n(chunk.0 as u32 * 65_536)));
    }
    for x in &addrs {
        m.good(x, NOW);
    }
    assert!(m.tried_collisions.len() <= params::TRIED_COLLISION_SET_SIZE);
    assert!(m.len_tried() <= 8 * 64);
    m.check_consistency().unwrap();
}

#[test]
fn terrible_entries_are_overwritten() {
    let mut m = man();
    let src = peer(v4(9, 9, 9, 9));
    let old = AddrRecord {
        last_seen: NOW - 40 * 24 * HOUR,
        ..rec(v4(1, 2, 3, 4))
    };
    m.add(&[old], &src, NOW, &mut rng());
    let slot = m.key.new_slot(&old.addr, &src.group());
    // Find a fresh address of the same group that wants the same slot.
    let rival = (0..=u16::MAX)
        .map(|i| v4(1, 2, (i >> 8) as u8, (i & 0xff) as u8))
        .find(|a| *a != old.addr && m.key.new_slot(a, &src.group()) == slot)
        .unwrap();
    assert_eq!(add(&mut m, &[rival], &src), 1);
    assert!(!m.contains(&old.addr));
    assert!(m.contains(&rival));
    // A healthy incumbent is not overwritten.
    let third = (0..=u16::MAX)
        .map(|i| v4(1, 2, (i >> 8) as u8, (i & 0xff) as u8))
        .find(|a| *a != rival && *a != old.addr && m.key.new_slot(a, &src.group()) == slot)
        .unwrap();
    assert_eq!(add(&mut m, &[third], &src), 0);
    assert!(!m.contains(&third));
    m.check_consistency().unwrap();
}

#[test]
fn failures_count_once_between_successes() {
    let mut m = man();
    let a = v4(1, 2, 3, 4);
    add(&mut m, &[a], &peer(v4(9, 9, 9, 9)));
    m.attempt(&a, true, NOW);
    m.attempt(&a, true, NOW + 100);
    assert_eq!(m.lookup(&a).unwrap().1.attempts, 1);
    // Another peer connects: the network works, so the next failure counts.
    let b = v4(5, 6, 7, 8);
    add(&mut m, &[b], &peer(v4(9, 9, 9, 9)));
    m.good(&b, NOW + 200);
    m.attempt(&a, true, NOW + 300);
    assert_eq!(m.lookup(&a).unwrap().1.attempts, 2);
    m.attempt(&a, false, NOW + 400);
    let e = m.lookup(&a).unwrap().1;
    assert_eq!((e.attempts, e.last_try), (2, NOW + 400));
    // Three failures without any success: terrible.
    m.good(&b, NOW + 500);
    m.attempt(&a, true, NOW + 600);
    assert!(m.lookup(&a).unwrap().1.is_terrible(NOW + 1000));
}

#[test]
fn connected_refreshes_the_timestamp_coarsely() {
    let mut m = man();
    let a = v4(1, 2, 3, 4);
    add(&mut m, &[a], &peer(a));
    m.connected(&a, NOW);
    assert_eq!(m.lookup(&a).unwrap().1.last_seen, NOW - HOUR + HOUR);
    m.connected(&a, NOW + 60);
    assert_eq!(m.lookup(&a).unwrap().1.last_seen, NOW);
}

#[test]
fn select_respects_networks_services_and_groups() {
    let mut m = man();
    let mut addrs: Vec<_> = (0..200).map(|i| v4n(i * 65_536)).collect();
    addrs.extend((0..200).map(onion));
    for (i, chunk) in addrs.chunks(20).enumerate() {
        add(&mut m, chunk, &peer(v4n(1_000_000 + i as u32 * 65_536)));
    }
    let mut r = rng();
    let onion_only = Want::new(NetworkSet::only(NetworkId::Onion));
    for _ in 0..200 {
        assert_eq!(
            m.select(&onion_only, NOW, &mut r).unwrap().addr.network(),
            NetworkId::Onion
        );
    }
    let none = Want::new(NetworkSet::only(NetworkId::I2p));
    assert!(m.select(&none, NOW, &mut r).is_none());
    let impossible = Want::new(NetworkSet::all()).require(ServiceFlags::COMPACT_FILTERS);
    assert!(m.select(&impossible, NOW, &mut r).is_none());
    let excluded: BTreeSet<_> = addrs[..100].iter().map(NetAddr::netgroup).collect();
    let want = Want::new(NetworkSet::only(NetworkId::Ipv4)).exclude(excluded.iter().copied());
    for _ in 0..200 {
        let s = m.select(&want, NOW, &mut r).unwrap();
        assert!(!excluded.contains(&s.addr.netgroup()));
    }
}

#[test]
fn onion_preference_shifts_the_mix() {
    let mut m = man();
    let mut addrs: Vec<_> = (0..900).map(|i| v4n(i * 65_536)).collect();
    addrs.extend((0..100).map(onion));
    for (i, chunk) in addrs.chunks(10).enumerate() {
        add(&mut m, chunk, &peer(v4n(5_000_000 + i as u32 * 65_536)));
    }
    let share = |bias| {
        let want = Want::new(NetworkSet::all()).prefer_onion(bias);
        let mut r = rng();
        let onions = (0..2000)
            .filter(|_| m.select(&want, NOW, &mut r).unwrap().addr.network() == NetworkId::Onion)
            .count();
        onions as f64 / 2000.0
    };
    let (none, half, full) = (share(0), share(50), share(100));
    assert!(none < 0.2, "{none}");
    assert!((0.45..0.65).contains(&half), "{half}");
    assert_eq!(full, 1.0);
}

#[test]
fn own_addresses_are_never_stored_or_selected() {
    let mut m = man();
    let me = onion(77);
    add(&mut m, &[me, onion(1)], &peer(v4(9, 9, 9, 9)));
    assert!(m.contains(&me));
    m.set_own_addresses([me.host]);
    assert!(!m.contains(&me));
    assert_eq!(
        add(
            &mut m,
            &[NetAddr::new(me.host, 9999)],
            &peer(v4(9, 9, 9, 9))
        ),
        0
    );
    let want = Want::new(NetworkSet::all());
    let mut r = rng();
    for _ in 0..100 {
        assert_ne!(m.select(&want, NOW, &mut r).unwrap().addr.host, me.host);
    }
    assert!(m.is_own(&me.host));
    m.check_consistency().unwrap();
}

#[test]
fn feelers_come_from_the_new_table() {
    let mut m = man();
    let a = v4(1, 2, 3, 4);
    let b = v4(5, 6, 7, 8);
    add(&mut m, &[a, b], &peer(v4(9, 9, 9, 9)));
    m.good(&a, NOW);
    let want = Want::new(NetworkSet::all());
    let mut r = rng();
    for _ in 0..50 {
        assert_eq!(m.select_feeler(&want, NOW, &mut r).unwrap().addr, b);
    }
    let mut seen = BTreeSet::new();
    for _ in 0..100 {
        seen.insert(m.select(&want, NOW, &mut r).unwrap().addr);
    }
    assert_eq!(seen.len(), 2);
}

#[test]
fn recently_tried_addresses_are_picked_less() {
    let mut m = man();
    let a = v4(1, 2, 3, 4);
    let b = v4(5, 6, 7, 8);
    add(&mut m, &[a, b], &peer(v4(9, 9, 9, 9)));
    m.attempt(&a, false, NOW);
    let want = Want::new(NetworkSet::all());
    let mut r = rng();
    let picks_a = (0..1000)
        .filter(|_| m.select(&want, NOW + 1, &mut r).unwrap().addr == a)
        .count();
    assert!(picks_a < 100, "{picks_a}");
}

#[test]
fn gossip_sample_limits() {
    let mut m = man();
    let addrs: Vec<_> = (0..10_000).map(|i| v4n(i * 65_537)).collect();
    for (i, chunk) in addrs.chunks(100).enumerate() {
        add(&mut m, chunk, &peer(v4n(3_000_000 + i as u32 * 65_536)));
    }
    let n = m.len();
    let mut r = rng();
    let sample = m.gossip_sample(usize::MAX, NetworkSet::all(), NOW, &mut r);
    assert_eq!(sample.len(), (n * 23 / 100).min(1000));
    let distinct: BTreeSet<_> = sample.iter().map(|r| r.addr).collect();
    assert_eq!(distinct.len(), sample.len());
    assert_eq!(
        m.gossip_sample(10, NetworkSet::all(), NOW, &mut r).len(),
        10
    );
    assert!(
        m.gossip_sample(10, NetworkSet::only(NetworkId::Onion), NOW, &mut r)
            .is_empty()
    );
    m.check_consistency().unwrap();
}

#[test]
fn gossip_sample_skips_terrible_entries() {
    let mut m = man();
    let src = peer(v4(9, 9, 9, 9));
    let stale: Vec<_> = (0..100)
        .map(|i| AddrRecord {
            last_seen: NOW - 20 * 24 * HOUR,
            ..rec(v4n(i * 65_537))
        })
        .collect();
    m.add(&stale, &src, NOW, &mut rng());
    let later = NOW + 15 * 24 * HOUR;
    assert!(
        m.gossip_sample(1000, NetworkSet::all(), later, &mut rng())
            .is_empty()
    );
}

#[test]
fn forget_removes_everywhere() {
    let mut m = man();
    let a = v4(1, 2, 3, 4);
    add(&mut m, &[a, v4(5, 6, 7, 8)], &peer(v4(9, 9, 9, 9)));
    m.good(&a, NOW);
    assert!(m.forget(&a));
    assert!(!m.forget(&a));
    assert_eq!((m.len(), m.len_tried()), (1, 0));
    m.check_consistency().unwrap();
}

#[test]
fn fixed_seeds_fill_a_starved_manager() {
    let mut m = man();
    let onion_only = NetworkSet::only(NetworkId::Onion);
    assert!(m.is_starved(onion_only));
    let added = m.add_fixed_seeds(onion_only, NOW, &mut rng());
    assert!(added > 100, "{added}");
    assert!(!m.is_starved(onion_only));
    assert!(m.is_starved(NetworkSet::only(NetworkId::Ipv4)));
    assert_eq!(m.info().network(NetworkId::Onion).new, m.len());
    let some = m.gossip_sample(1, onion_only, NOW, &mut rng())[0].addr;
    let e = m.lookup(&some).unwrap().1;
    assert!(
        (NOW - e.last_seen) >= params::SEED_AGE_MIN && (NOW - e.last_seen) <= params::SEED_AGE_MAX
    );
    m.check_consistency().unwrap();
}

#[test]
fn addrv2_records_round_trip() {
    let r = rec(onion(3));
    let msg = r.to_addrv2();
    assert_eq!(AddrRecord::from_addrv2(&msg).unwrap(), r);
    let far = AddrRecord {
        last_seen: u64::MAX,
        ..r
    };
    assert_eq!(far.to_addrv2().time, u32::MAX);
}

/// One step of a random workload.
#[derive(Debug, Clone)]
enum Op {
    Add {
        first: u32,
        n: u32,
        source: u32,
        age: u64,
    },
    Good(u32),
    Attempt(u32, bool),
    Connected(u32),
    Resolve,
    Forget(u32),
    Select,
    Gossip,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u32..3000, 1u32..200, 0u32..40, 0u64..(40 * 24 * HOUR))
            .prop_map(|(first, n, source, age)| Op::Add { first, n, source, age }),
        2 => (0u32..3000).prop_map(Op::Good),
        1 => (0u32..3000, any::<bool>()).prop_map(|(a, c)| Op::Attempt(a, c)),
        1 => (0u32..3000).prop_map(Op::Connected),
        1 => Just(Op::Resolve),
        1 => (0u32..3000).prop_map(Op::Forget),
        1 => Just(Op::Select),
        1 => Just(Op::Gossip),
    ]
}

/// Addresses of a workload: a few /16s and onions, so buckets collide often.
fn work_addr(i: u32) -> NetAddr {
    if i.is_multiple_of(3) {
        onion(i)
    } else {
        v4(
            30 + (i % 7) as u8,
            (i % 5) as u8,
            (i >> 8) as u8,
            (i & 0xff) as u8 | 1,
        )
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn invariants_hold_under_random_workloads(ops in proptest::collection::vec(op(), 1..60), seed in any::<u64>()) {
        let mut m = man();
        let mut r = ChaCha20Rng::seed_from_u64(seed);
        let mut now = NOW;
        for op in ops {
            now += 97;
            match op {
                Op::Add { first, n, source, age } => {
                    let recs: Vec<_> = (first..first + n)
                        .map(|i| AddrRecord { last_seen: now.saturating_sub(age), ..rec(work_addr(i)) })
                        .collect();
                    let src = match source {
                        0 => AddrSource::InboundOnion,
                        1 => AddrSource::Internal(InternalSource::FIXED_SEEDS),
                        s => peer(work_addr(s * 31)),
                    };
                    m.add(&recs, &src, now, &mut r);
                }
                Op::Good(i) => { m.good(&work_addr(i), now); }
                Op::Attempt(i, c) => m.attempt(&work_addr(i), c, now),
                Op::Connected(i) => m.connected(&work_addr(i), now),
                Op::Resolve => m.resolve_collisions(now),
                Op::Forget(i) => { m.forget(&work_addr(i)); }
                Op::Select => {
                    if let Some(s) = m.select(&Want::new(NetworkSet::all()), now, &mut r) {
                        prop_assert!(m.contains(&s.addr));
                    }
                }
                Op::Gossip => {
                    let n = m.len();
                    let g = m.gossip_sample(1000, NetworkSet::all(), now, &mut r);
                    prop_assert!(g.len() <= n * 23 / 100);
                }
            }
            if let Err(e) = m.check_consistency() {
                return Err(TestCaseError::fail(e));
            }
        }
    }
}
