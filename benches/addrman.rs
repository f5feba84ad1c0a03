//! Address manager benchmarks: adding 100 000 addresses, selecting from a
//! manager fed 100 000 addresses, and persisting/loading it.
//!
//! The tables hold at most 81 920 entries (65 536 new + 16 384 tried slots,
//! as in Core), and hash collisions keep a real manager below that, so
//! "at 100 000" means "after 100 000 addresses were offered"; the actual
//! entry count is printed once.
//!
//! Run with `cargo bench -p nightjar --bench addrman`.

// A benchmark that cannot set itself up should stop loudly.
#![allow(clippy::expect_used, clippy::print_stderr)]

use std::hint::black_box;
use std::net::{Ipv4Addr, Ipv6Addr};

use bitcoin::p2p::ServiceFlags;
use criterion::{Criterion, criterion_group, criterion_main};
use nightjar::addrman::{ADDRMAN_KEY_LEN, AddrMan, AddrManKey, AddrRecord, AddrSource, Want};
use nightjar::netaddr::{Host, NetAddr, NetworkId, NetworkSet};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;

const NOW: u64 = 1_700_000_000;
const ADDRESSES: usize = 100_000;
const SOURCES: usize = 1_000;
/// Share of the offered addresses we "connected to" (promoted to tried).
const PROMOTED: usize = 25_000;

/// 100 000 distinct addresses (80 % IPv4, 15 % onion, 5 % IPv6), in batches
/// of 100 from 1 000 sources in distinct /16s.
fn workload() -> Vec<(AddrSource, Vec<AddrRecord>)> {
    let mut rng = ChaCha20Rng::seed_from_u64(2024);
    let services = ServiceFlags::NETWORK | ServiceFlags::WITNESS;
    let addrs: Vec<NetAddr> = (0..ADDRESSES)
        .map(|i| match i % 20 {
            0..=15 => {
                let ip = Ipv4Addr::new(
                    rng.random_range(11..100),
                    rng.random(),
                    rng.random(),
                    rng.random_range(1..255),
                );
                NetAddr::new(Host::Ipv4(ip), 8333)
            }
            16..=18 => NetAddr::new(Host::TorV3(rng.random()), 8333),
            _ => {
                let ip = Ipv6Addr::new(
                    0x2a00 | rng.random_range(0..0xff),
                    rng.random(),
                    rng.random(),
                    0,
                    0,
                    0,
                    0,
                    1,
                );
                NetAddr::new(Host::Ipv6(ip), 8333)
            }
        })
        .collect();
    addrs
        .chunks(ADDRESSES / SOURCES)
        .enumerate()
        .map(|(i, chunk)| {
            let src = NetAddr::new(
                Host::Ipv4(Ipv4Addr::new(150 + (i / 256) as u8, (i % 256) as u8, 1, 1)),
                8333,
            );
            let recs = chunk
                .iter()
                .map(|a| AddrRecord {
                    addr: *a,
                    services,
                    last_seen: NOW - rng.random_range(0..86_400),
                })
                .collect();
            (AddrSource::Peer(src), recs)
        })
        .collect()
}

fn fill(work: &[(AddrSource, Vec<AddrRecord>)]) -> AddrMan {
    let mut man = AddrMan::new(
        bitcoin::Network::Bitcoin,
        AddrManKey::from_bytes([9; ADDRMAN_KEY_LEN]),
    );
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    for (src, recs) in work {
        man.add(recs, src, NOW, &mut rng);
    }
    man
}

fn full_manager(work: &[(AddrSource, Vec<AddrRecord>)]) -> AddrMan {
    let mut man = fill(work);
    for rec in work
        .iter()
        .flat_map(|(_, r)| r)
        .step_by(ADDRESSES / PROMOTED)
    {
        man.good(&rec.addr, NOW + 60);
    }
    man
}

fn benches(c: &mut Criterion) {
    let work = workload();
    let man = full_manager(&work);
    eprintln!(
        "manager after {ADDRESSES} offered addresses: {} entries ({} new, {} tried)",
        man.len(),
        man.len_new(),
        man.len_tried()
    );

    let mut g = c.benchmark_group("addrman");
    g.sample_size(10);
    g.bench_function("add_100k", |b| b.iter(|| black_box(fill(&work).len())));
    g.finish();

    let later = NOW + 3600;
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    let any = Want::new(NetworkSet::all());
    c.bench_function("select_100k/any", |b| {
        b.iter(|| black_box(man.select(&any, later, &mut rng)))
    });
    let onion = Want::new(NetworkSet::only(NetworkId::Onion));
    c.bench_function("select_100k/onion_only", |b| {
        b.iter(|| black_box(man.select(&onion, later, &mut rng)))
    });
    // What an outbound slot asks for: services, eight groups in use, onion first.
    let connected: Vec<_> = work
        .iter()
        .take(8)
        .map(|(_, r)| r[0].addr.netgroup())
        .collect();
    let outbound = Want::new(NetworkSet::all())
        .prefer_onion(50)
        .require(ServiceFlags::NETWORK | ServiceFlags::WITNESS)
        .exclude(connected);
    c.bench_function("select_100k/outbound", |b| {
        b.iter(|| black_box(man.select(&outbound, later, &mut rng)))
    });
    c.bench_function("select_feeler_100k", |b| {
        b.iter(|| black_box(man.select_feeler(&any, later, &mut rng)))
    });

    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("addrman.dat");
    let bytes = man.to_bytes();
    eprintln!("state file: {} bytes", bytes.len());
    let mut g = c.benchmark_group("addrman_persist");
    g.sample_size(10);
    g.bench_function("encode_100k", |b| {
        b.iter(|| black_box(man.to_bytes().len()))
    });
    g.bench_function("save_100k", |b| {
        b.iter(|| man.save_file(&path).expect("save"))
    });
    g.bench_function("decode_100k", |b| {
        b.iter(|| {
            black_box(
                AddrMan::from_bytes(&bytes, bitcoin::Network::Bitcoin)
                    .expect("decode")
                    .len(),
            )
        })
    });
    man.save_file(&path).expect("save");
    g.bench_function("load_100k", |b| {
        b.iter(|| {
            black_box(
                AddrMan::load_file(&path, bitcoin::Network::Bitcoin)
                    .expect("load")
                    .len(),
            )
        })
    });
    g.finish();
}

criterion_group!(addrman, benches);
criterion_main!(addrman);
