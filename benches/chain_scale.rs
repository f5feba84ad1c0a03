//! The header chain at mainnet scale (issue 17): a mainnet-shaped regtest
//! chain of 1 000 000 headers (`mine_mainnet_shaped_chain`: exponential
//! intervals, timestamps off schedule by up to an hour, the MTP rule), and
//! what nightjar spends on it. Prints medians over `RUNS` runs:
//!
//! - loading `headers.dat` (what every start does), each load in a fresh
//!   process so that its RSS is that of a node that just started;
//! - RSS above the process's baseline after the load, and after syncing
//!   the chain into a new file as header sync does, per header, with the
//!   chain's own accounting of where it goes;
//! - serving `getheaders`: locating a fork point and reading 2 000 headers
//!   back from the file;
//! - building a block locator;
//! - validating every header (in batches of 2 000, as `headers` messages
//!   bring them) against the SHA-256d rate, the floor under validation.
//!
//! The chain file is mined once and cached (`NIGHTJAR_BENCH_CACHE`, default
//! `~/.cache/nightjar-bench`). Run with
//! `cargo bench -p nightjar --bench chain_scale` (`HEADERS=200000` for a
//! smaller chain, `RUNS=5`). Under a profiler, `<bench binary>
//! --validate-only <cached file>` runs only the validation.

// A benchmark that cannot set itself up should stop loudly; its figures
// are its output.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::print_stdout)]

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use bitcoin::Network;
use bitcoin::block::Header;
use bitcoin::consensus::encode;
use nightjar::chain::HeaderChain;
use nightjar::chain::regtest_miner::mine_mainnet_shaped_chain;
use nightjar::chain::store::{FILE_HEADER_LEN, RECORD_LEN};

use nightjar_privnet::figures::{
    SHAPED_CHAIN_END_UNIX as END_UNIX, SHAPED_CHAIN_SEED as SEED, rss_mib, shaped_chain_file,
};

/// Headers per `headers` message.
const BATCH: usize = 2_000;

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn median(values: Vec<f64>) -> f64 {
    nightjar_privnet::figures::median(&values).expect("at least one run")
}

/// This process's resident set, in KiB.
fn rss_kib() -> f64 {
    rss_mib("self").0 * 1024.0
}

/// The cached chain file for `count` headers, mined and written first if
/// it is not there yet.
fn chain_file(count: usize) -> PathBuf {
    let file = shaped_chain_file(count);
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir).expect("cache directory");
    }
    if file.exists() {
        return file;
    }
    let started = Instant::now();
    let headers = mine_mainnet_shaped_chain(count, END_UNIX, SEED);
    println!(
        "mined {} headers in {:.1} s (cached as {})",
        headers.len(),
        started.elapsed().as_secs_f64(),
        file.display()
    );
    let partial = file.with_extension("partial");
    let _ = std::fs::remove_file(&partial);
    let mut loaded = HeaderChain::load_or_new(&partial, Network::Regtest).expect("new file");
    for batch in headers.chunks(BATCH) {
        loaded.chain.accept(batch, END_UNIX).expect("valid chain");
        loaded.store.append(&mut loaded.chain).expect("append");
    }
    drop(loaded);
    std::fs::rename(&partial, &file).expect("rename");
    file
}

/// In a child process: load `file` once and print "seconds rss_before
/// rss_after headers".
fn load_once(file: &Path) {
    let before = rss_kib();
    let started = Instant::now();
    let loaded = HeaderChain::load_or_new(file, Network::Regtest).expect("load");
    let seconds = started.elapsed().as_secs_f64();
    let after = rss_kib();
    assert!(loaded.report.recovery.is_none() && loaded.report.truncated.is_none());
    println!("{seconds} {before} {after} {}", loaded.chain.len());
}

/// In a child process: sync the chain in `file` into a new file next to
/// it, as header sync does (validate a `headers` message's worth, append
/// it, durably), and print "seconds rss_before rss_after headers".
fn sync_once(file: &Path) {
    let bytes = std::fs::read(file).expect("chain file");
    let headers: Vec<Header> = bytes[FILE_HEADER_LEN..]
        .chunks_exact(RECORD_LEN)
        .map(|r| encode::deserialize(&r[..80]).expect("record"))
        .collect();
    drop(bytes);
    let target = file.with_extension("sync");
    let _ = std::fs::remove_file(&target);
    // The headers to sync are this bench's input, not the node's memory.
    let before = rss_kib();
    let started = Instant::now();
    let mut loaded = HeaderChain::load_or_new(&target, Network::Regtest).expect("new file");
    for batch in headers.chunks(BATCH) {
        loaded.chain.accept(batch, END_UNIX).expect("valid chain");
        loaded.store.append(&mut loaded.chain).expect("append");
    }
    let seconds = started.elapsed().as_secs_f64();
    let after = rss_kib();
    println!("{seconds} {before} {after} {}", loaded.chain.len());
    drop(loaded);
    let _ = std::fs::remove_file(&target);
}

/// Runs `mode` on `file` in fresh processes: (median seconds, median KiB
/// above baseline, headers).
fn measure_children(mode: &str, file: &Path, runs: usize) -> (f64, f64, usize) {
    let exe = std::env::current_exe().expect("current exe");
    let mut seconds = Vec::new();
    let mut kib = Vec::new();
    let mut len = 0;
    for _ in 0..runs {
        let out = Command::new(&exe)
            .arg(mode)
            .arg(file)
            .output()
            .expect("child");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).expect("utf-8");
        let fields: Vec<f64> = text
            .split_whitespace()
            .map(|f| f.parse().unwrap())
            .collect();
        seconds.push(fields[0]);
        kib.push(fields[2] - fields[1]);
        len = fields[3] as usize;
    }
    (median(seconds), median(kib), len)
}

/// Headers served per second: a fork point found from a one-hash locator,
/// then up to 2 000 headers read from it, as `on_getheaders` does.
fn serving_rate(chain: &HeaderChain) -> f64 {
    let height = chain.height();
    let forks: Vec<u32> = (0..200u32).map(|i| (i * 4_999) % height.max(1)).collect();
    let started = Instant::now();
    let mut served = 0usize;
    for fork in &forks {
        let hash = chain.hash_at(*fork).expect("in chain");
        let (start, _, _) = chain.get(&hash).expect("indexed");
        served += black_box(chain.headers_from(start + 1, BATCH)).len();
    }
    served as f64 / started.elapsed().as_secs_f64()
}

/// Locators built per second.
fn locator_rate(chain: &HeaderChain) -> f64 {
    let rounds = 20_000;
    let started = Instant::now();
    for _ in 0..rounds {
        black_box(chain.locator());
    }
    f64::from(rounds) / started.elapsed().as_secs_f64()
}

/// (validated headers per second, SHA-256d per second) over `headers`.
fn validation_rates(headers: &[Header]) -> (f64, f64) {
    let started = Instant::now();
    let mut chain = HeaderChain::new(Network::Regtest);
    for batch in headers.chunks(BATCH) {
        chain.accept(black_box(batch), END_UNIX).expect("valid");
    }
    let validate = started.elapsed();
    drop(chain);
    let started = Instant::now();
    for header in headers {
        black_box(header.block_hash());
    }
    let hash = started.elapsed();
    let per_second = |d: Duration| headers.len() as f64 / d.as_secs_f64();
    (per_second(validate), per_second(hash))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--load-once") {
        load_once(Path::new(&args[i + 1]));
        return;
    }
    if let Some(i) = args.iter().position(|a| a == "--sync-once") {
        sync_once(Path::new(&args[i + 1]));
        return;
    }
    if let Some(i) = args.iter().position(|a| a == "--validate-only") {
        // For a profiler: only the validation figure, from the cached file.
        let chain = HeaderChain::load_or_new(Path::new(&args[i + 1]), Network::Regtest)
            .expect("load")
            .chain;
        let headers: Vec<Header> = chain.headers_in_order(1).collect();
        drop(chain);
        let (validate, hash) = validation_rates(&headers);
        println!("{validate:.0} {hash:.0}");
        return;
    }
    // `cargo bench` passes `--bench`; a filter argument is ignored.
    let count = env_number("HEADERS", 1_000_000);
    let runs = env_number("RUNS", 5).max(1);
    let file = chain_file(count);
    let bytes = std::fs::metadata(&file).expect("chain file").len();

    let (load_s, load_kib, len) = measure_children("--load-once", &file, runs);
    println!(
        "chain_scale: {len} entries, headers.dat {:.1} MB",
        bytes as f64 / 1e6
    );
    println!("  load (fresh process)        median {load_s:.3} s over {runs} runs");
    println!(
        "  RSS above baseline, loaded  median {:.1} MiB, {:.0} bytes per header",
        load_kib / 1024.0,
        load_kib * 1024.0 / len as f64
    );
    let (sync_s, sync_kib, _) = measure_children("--sync-once", &file, runs.min(3));
    println!(
        "  RSS above baseline, synced  median {:.1} MiB, {:.0} bytes per header ({sync_s:.1} s to validate and append)",
        sync_kib / 1024.0,
        sync_kib * 1024.0 / len as f64
    );

    let chain = HeaderChain::load_or_new(&file, Network::Regtest)
        .expect("load")
        .chain;
    let memory = chain.memory();
    let per = |bytes: usize| bytes as f64 / memory.entries as f64;
    println!(
        "  chain's own accounting      columns {:.1} B, index {:.1} B, best chain {:.1} B per header; {} side entries, {} headers in memory",
        per(memory.columns),
        per(memory.index),
        per(memory.best_chain),
        memory.side_entries,
        memory.headers_in_memory
    );
    let serving: Vec<f64> = (0..runs).map(|_| serving_rate(&chain)).collect();
    println!(
        "  getheaders serving          median {:.0} headers/s",
        median(serving)
    );
    let locators: Vec<f64> = (0..runs).map(|_| locator_rate(&chain)).collect();
    println!(
        "  locator building            median {:.0} locators/s",
        median(locators)
    );

    let headers: Vec<Header> = chain.headers_in_order(1).collect();
    drop(chain);
    let rates: Vec<(f64, f64)> = (0..runs).map(|_| validation_rates(&headers)).collect();
    let validate = median(rates.iter().map(|r| r.0).collect());
    let hash = median(rates.iter().map(|r| r.1).collect());
    let ratio = median(rates.iter().map(|r| r.0 / r.1).collect());
    println!(
        "  validation                  median {:.2} M headers/s; SHA-256d {:.2} M/s; ratio {:.0} %",
        validate / 1e6,
        hash / 1e6,
        ratio * 100.0
    );
}
