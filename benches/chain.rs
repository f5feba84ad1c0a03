//! Header chain benchmark: validating a pre-mined regtest chain of 50 000
//! headers from genesis (proof of work, difficulty, median time past,
//! version, checkpoints, index and chain selection), in batches of 2 000 as
//! `headers` messages bring them. Mining happens once, outside the timing.
//!
//! `block_hash_50k` times the one SHA-256d each header needs, the floor
//! under validation: what `accept` spends beyond it is ours to shrink.
//!
//! Run with `cargo bench -p nightjar --bench chain`.

// A benchmark that cannot set itself up should stop loudly.
#![allow(clippy::expect_used)]

use std::hint::black_box;

use bitcoin::Network;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use nightjar::chain::HeaderChain;
use nightjar::chain::regtest_miner::{SPACING, mine_regtest_chain, regtest_genesis};

const HEADERS: usize = 50_000;

fn validate(c: &mut Criterion) {
    let genesis = regtest_genesis();
    let headers = mine_regtest_chain(&genesis, HEADERS, genesis.time + SPACING);
    let now = u64::from(headers.last().expect("mined").time);
    let mut group = c.benchmark_group("chain");
    group.sample_size(10);
    group.throughput(Throughput::Elements(HEADERS as u64));
    group.bench_function("accept_50k_regtest_headers", |b| {
        b.iter(|| {
            let mut chain = HeaderChain::new(Network::Regtest);
            for batch in headers.chunks(2000) {
                chain.accept(black_box(batch), now).expect("valid");
            }
            black_box(chain.tip())
        })
    });
    group.bench_function("block_hash_50k", |b| {
        b.iter(|| {
            for header in black_box(&headers) {
                black_box(header.block_hash());
            }
        })
    });
    group.finish();
}

criterion_group!(benches, validate);
criterion_main!(benches);
