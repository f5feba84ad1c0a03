//! End-to-end header sync: a node (the real engine and driver, Tor off)
//! syncs 50 000 regtest headers from an in-repo test peer over a loopback
//! BIP324 v2 connection, saving them to its chain file. One iteration is
//! one whole sync: dial, v2 handshake, version handshake, 26 `getheaders`
//! round trips, validation and fsynced appends; criterion reports it as
//! headers per second.
//!
//! Run with `cargo bench -p nightjar --bench header_sync`.

// A benchmark that cannot set itself up should stop loudly.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use nightjar::addrman::AddrMan;
use nightjar::chain::HeaderChain;
use nightjar::chain::regtest_miner::mine_regtest_chain_until;
use nightjar::driver::{self, DriverOptions, Network};
use nightjar::engine::{Engine, EngineConfig, Reach};
use nightjar::rpc::{Dispatch, Params};
use nightjar_testpeer::REGTEST;
use nightjar_testpeer::node::{NodeSpec, PeerFarm};

const HEADERS: usize = 50_000;

fn sync(c: &mut Criterion) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let chain = mine_regtest_chain_until(HEADERS, now);
    let farm = PeerFarm::new().expect("peer farm");
    let peer = farm
        .start_node(NodeSpec::regtest("bench").with_headers(chain))
        .expect("test peer");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");

    let mut group = c.benchmark_group("header_sync");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    group.throughput(Throughput::Elements(HEADERS as u64));
    group.bench_function("sync_50k_headers_loopback_v2", |b| {
        b.iter(|| {
            let dir = tempfile::tempdir().expect("tempdir");
            let loaded = HeaderChain::load_or_new(
                &dir.path().join("headers.dat"),
                bitcoin::Network::Regtest,
            )
            .expect("chain file");
            let mut config = EngineConfig::new(bitcoin::Network::Regtest);
            config.reach = Reach::Direct;
            config.dns_seeds = false;
            config.connect = vec![peer.addr().to_string().parse().expect("target")];
            let addrman = AddrMan::new(
                bitcoin::Network::Regtest,
                nightjar::addrman::AddrManKey::generate(&mut rand::rng()),
            );
            let engine = Engine::new(config, addrman, [5; 32]).with_chain(loaded.chain);
            let options = DriverOptions {
                magic: REGTEST,
                addrman_file: dir.path().join("peers.dat"),
                banlist_file: dir.path().join("banlist.json"),
                broadcast_file: dir.path().join("privatebroadcast.json"),
                network: Network::Direct,
                chain_store: Some(loaded.store),
                filter_store: None,
                listeners: Vec::new(),
                onion_service: None,
            };
            let (rpc, calls) = driver::NodeRpc::new();
            let done = async {
                loop {
                    let height = rpc
                        .call("getblockcount".into(), Params::Positional(vec![]))
                        .await
                        .expect("getblockcount");
                    if height == HEADERS as u64 {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            };
            runtime.block_on(driver::run(engine, options, calls, done));
        })
    });
    group.finish();
}

criterion_group!(benches, sync);
criterion_main!(benches);
