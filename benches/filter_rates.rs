//! The hardware limits under compact block filters (BIP157/158): what
//! one core of this machine can do for each step a filter scan or a block
//! fetch takes, against which the network figures
//! (`examples/filter_figures.rs`) are read. Prints medians over `RUNS`
//! runs, as rates:
//!
//! - filter header chaining (`FilterHash::filter_header`, SHA-256d of 64
//!   bytes): the ceiling for building the filter header chain, and the
//!   time a mainnet-size chain of `FILTER_HEADERS` headers takes at it;
//! - filter hashing (`FilterHash::hash`, SHA-256d of the filter) in MB/s;
//! - matching (`BlockFilter::match_any`: SipHash of the queries, then
//!   Golomb-Rice decoding of the filter until the queries are passed) with
//!   1 script, and with 1000 (a wallet's gap-limit lookahead), for scripts
//!   the filters do not hold, as nearly all are in a scan: one script's
//!   miss decodes the filter up to where the script hashes to, on average
//!   half of it; 1000 scripts' decode nearly all of it;
//! - the engine's own per-filter cost in a scan, the sequence of
//!   `block_fetch.rs` (`check_filter`, then `scanned`): hash the filter,
//!   chain it onto the previous filter header, compare with the header
//!   held, copy it into a `BlockFilter`, `match_any`;
//! - `nightjar::chain::block_check::check` (block hash, merkle root, no
//!   repeated transaction, witness commitment) on a ~1.5 MB block.
//!
//! The filters are real BIP158 basic filters (`new_script_filter`) of
//! synthetic blocks shaped like full mainnet blocks: 3 000 transactions of
//! two inputs (P2WPKH and 2-of-3 P2WSH witnesses, spending scripts drawn
//! from a pool of 1 500 per block, as address reuse leaves it) and two
//! outputs (P2WPKH and P2TR), about 1.5 MB and 7 500 filter elements, so
//! about 20 kB per filter: the size of mainnet's basic filters for full
//! blocks. Each block is different (seeded), so the filters' bytes and
//! SipHash keys differ.
//!
//! "% of ceiling" compares a step with the bare hashing it cannot avoid:
//! for a filter, hashing it and chaining its header (the check alone); for
//! a block, its merkle root and witness root computed once.
//!
//! `cargo bench -p nightjar --bench filter_rates` (`RUNS=5`,
//! `FILTER_HEADERS=900000`, `FILTERS=32` distinct filters). About 30 s.
//! Pure computation on one thread: touches no network.

// A benchmark that cannot set itself up should stop loudly; its figures
// are its output.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::print_stdout)]

use std::collections::HashMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use bitcoin::bip158::{self, BlockFilter, FilterHash, FilterHeader};
use bitcoin::block::{Header, Version};
use bitcoin::hashes::Hash;
use bitcoin::{
    Amount, Block, BlockHash, CompactTarget, OutPoint, ScriptBuf, Sequence, Transaction, TxIn,
    TxMerkleNode, TxOut, Txid, Witness, absolute, transaction,
};
use nightjar::chain::block_check;
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Transactions per synthetic block, the coinbase included.
const TXS: usize = 3_000;
/// Distinct scripts the block's inputs spend.
const SPENT_POOL: usize = 1_500;
/// A wallet's lookahead: 1 000 scripts (e.g. gap limit over its chains).
const WALLET_SCRIPTS: usize = 1_000;
/// Each timed run lasts at least this long.
const RUN_TIME: Duration = Duration::from_millis(300);

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn median(values: &[f64]) -> f64 {
    nightjar_privnet::figures::median(values).expect("at least one run")
}

fn random_bytes<const N: usize>(rng: &mut ChaCha8Rng) -> [u8; N] {
    let mut b = [0u8; N];
    rng.fill_bytes(&mut b);
    b
}

fn p2wpkh(rng: &mut ChaCha8Rng) -> ScriptBuf {
    let mut s = vec![0x00, 0x14];
    s.extend(random_bytes::<20>(rng));
    ScriptBuf::from_bytes(s)
}

fn p2wsh(rng: &mut ChaCha8Rng) -> ScriptBuf {
    let mut s = vec![0x00, 0x20];
    s.extend(random_bytes::<32>(rng));
    ScriptBuf::from_bytes(s)
}

fn p2tr(rng: &mut ChaCha8Rng) -> ScriptBuf {
    let mut s = vec![0x51, 0x20];
    s.extend(random_bytes::<32>(rng));
    ScriptBuf::from_bytes(s)
}

/// A DER-sized signature (72 bytes) with its sighash byte.
fn signature(rng: &mut ChaCha8Rng) -> Vec<u8> {
    random_bytes::<72>(rng).to_vec()
}

fn input(rng: &mut ChaCha8Rng, witness: &[Vec<u8>]) -> TxIn {
    TxIn {
        previous_output: OutPoint {
            txid: Txid::from_byte_array(random_bytes(rng)),
            vout: rng.random_range(0..4),
        },
        script_sig: ScriptBuf::new(),
        sequence: Sequence::ENABLE_RBF_NO_LOCKTIME,
        witness: Witness::from_slice(witness),
    }
}

fn output(rng: &mut ChaCha8Rng, script_pubkey: ScriptBuf) -> TxOut {
    let value = Amount::from_sat(rng.random_range(1_000..100_000_000));
    TxOut {
        value,
        script_pubkey,
    }
}

/// A block shaped like a full mainnet block (see the header) with a valid
/// merkle root and witness commitment, and the scripts its inputs spend.
fn realistic_block(seed: u64) -> (Block, HashMap<OutPoint, ScriptBuf>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let pool: Vec<ScriptBuf> = (0..SPENT_POOL)
        .map(|i| {
            if i % 2 == 0 {
                p2wpkh(&mut rng)
            } else {
                p2wsh(&mut rng)
            }
        })
        .collect();
    let mut spent = HashMap::new();
    let mut txdata = Vec::with_capacity(TXS);
    let reserved = [0u8; 32];
    let mut coinbase_sig = vec![0x03];
    coinbase_sig.extend(random_bytes::<16>(&mut rng));
    txdata.push(Transaction {
        version: transaction::Version::TWO,
        lock_time: absolute::LockTime::ZERO,
        input: vec![TxIn {
            previous_output: OutPoint::null(),
            script_sig: ScriptBuf::from_bytes(coinbase_sig),
            sequence: Sequence::MAX,
            witness: Witness::from_slice(&[reserved]),
        }],
        output: {
            let script = p2wpkh(&mut rng);
            vec![output(&mut rng, script)]
        },
    });
    for _ in 1..TXS {
        // A 2-of-3 multisig witness script: OP_2, three 33-byte keys,
        // OP_3, OP_CHECKMULTISIG.
        let mut multisig = vec![0x52];
        for _ in 0..3 {
            multisig.push(0x21);
            multisig.extend(random_bytes::<33>(&mut rng));
        }
        multisig.extend([0x53, 0xae]);
        let witness = [signature(&mut rng), random_bytes::<33>(&mut rng).to_vec()];
        let single = input(&mut rng, &witness);
        let witness = [
            Vec::new(),
            signature(&mut rng),
            signature(&mut rng),
            multisig,
        ];
        let multi = input(&mut rng, &witness);
        spent.insert(
            single.previous_output,
            pool[2 * rng.random_range(0..SPENT_POOL / 2)].clone(),
        );
        spent.insert(
            multi.previous_output,
            pool[2 * rng.random_range(0..SPENT_POOL / 2) + 1].clone(),
        );
        let (to_wpkh, to_tr) = (p2wpkh(&mut rng), p2tr(&mut rng));
        let outputs = vec![output(&mut rng, to_wpkh), output(&mut rng, to_tr)];
        txdata.push(Transaction {
            version: transaction::Version::TWO,
            lock_time: absolute::LockTime::ZERO,
            input: vec![single, multi],
            output: outputs,
        });
    }
    let mut block = Block {
        header: Header {
            version: Version::from_consensus(0x2000_0000),
            prev_blockhash: BlockHash::from_byte_array(random_bytes(&mut rng)),
            merkle_root: TxMerkleNode::all_zeros(),
            time: 1_760_000_000,
            bits: CompactTarget::from_consensus(0x207f_ffff),
            nonce: 0,
        },
        txdata,
    };
    // The coinbase's wtxid counts as zeros: its commitment output can be
    // added after the witness root is known.
    let witness_root = block.witness_root().expect("transactions");
    let commitment = Block::compute_witness_commitment(&witness_root, &reserved);
    let mut script = vec![0x6a, 0x24, 0xaa, 0x21, 0xa9, 0xed];
    script.extend(commitment.to_byte_array());
    block.txdata[0].output.push(TxOut {
        value: Amount::ZERO,
        script_pubkey: ScriptBuf::from_bytes(script),
    });
    block.header.merkle_root = block.compute_merkle_root().expect("transactions");
    (block, spent)
}

/// The BIP158 basic filter of `block`.
fn basic_filter(block: &Block, spent: &HashMap<OutPoint, ScriptBuf>) -> BlockFilter {
    BlockFilter::new_script_filter(block, |o| {
        spent.get(o).cloned().ok_or(bip158::Error::UtxoMissing(*o))
    })
    .expect("every input's script is known")
}

/// Elements in a filter: its leading CompactSize.
fn filter_elements(filter: &BlockFilter) -> u64 {
    let c = &filter.content;
    match c[0] {
        0xfd => u64::from(u16::from_le_bytes([c[1], c[2]])),
        0xfe => u64::from(u32::from_le_bytes([c[1], c[2], c[3], c[4]])),
        n => u64::from(n),
    }
}

/// A filter as the scan sees it: the block's hash, the filter's bytes,
/// the filter header below it and the one held for it.
struct Chained {
    block: BlockHash,
    filter: BlockFilter,
    previous: FilterHeader,
    header: FilterHeader,
}

/// Repeats `round` (which does `per_round` units of work) until
/// [`RUN_TIME`] has passed; units per second. Each of `runs` runs times
/// itself; the median rate.
fn rate(runs: usize, per_round: f64, mut round: impl FnMut()) -> f64 {
    // One untimed round: caches and branch predictors as in a long scan.
    round();
    let rates: Vec<f64> = (0..runs)
        .map(|_| {
            let started = Instant::now();
            let mut rounds = 0u64;
            while started.elapsed() < RUN_TIME {
                round();
                rounds += 1;
            }
            rounds as f64 * per_round / started.elapsed().as_secs_f64()
        })
        .collect();
    median(&rates)
}

/// What `block_fetch.rs` does for one filter of a scan (`check_filter`,
/// then `scanned`), with the same crate calls: whether it checked out and
/// matched.
fn engine_scan_step(c: &Chained, scripts: &[ScriptBuf]) -> (bool, bool) {
    let hash = FilterHash::hash(&c.filter.content);
    let header = hash.filter_header(&c.previous);
    if header != c.header {
        return (false, false);
    }
    let filter = BlockFilter::new(&c.filter.content);
    let matched = filter
        .match_any(&c.block, scripts.iter().map(|s| s.as_bytes()))
        .unwrap_or(true);
    (true, matched)
}

/// `value` with a k/M prefix for counts (`unit` a count per second), or
/// plain for `MB/s`.
fn si(value: f64, unit: &str) -> String {
    if unit.starts_with("MB") {
        format!("{value:.0} {unit}")
    } else if value >= 1e6 {
        format!("{:.2} M{unit}", value / 1e6)
    } else if value >= 1e3 {
        format!("{:.1} k{unit}", value / 1e3)
    } else {
        format!("{value:.1} {unit}")
    }
}

/// One line of the table; `ceiling` is what the last column compares with.
fn row(what: &str, value: f64, unit: &str, ceiling: Option<f64>) {
    let share = ceiling.map_or(String::from("-"), |c| format!("{:.0} %", 100.0 * value / c));
    line(what, &si(value, unit), &share);
}

fn line(what: &str, value: &str, share: &str) {
    println!("| {what:<58} | {value:>20} | {share:>9} |");
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument is ignored.
    let runs = env_number("RUNS", 5).max(1);
    let chain_len = env_number("FILTER_HEADERS", 900_000).max(1);
    let count = env_number("FILTERS", 32).max(2);
    let started = Instant::now();

    // The blocks and their filters. The first block is kept for the
    // block check.
    let mut check_block = None;
    let mut filters = Vec::with_capacity(count);
    let mut block_bytes = 0;
    for seed in 0..count as u64 {
        let (block, spent) = realistic_block(seed);
        let filter = basic_filter(&block, &spent);
        filters.push((block.block_hash(), filter));
        if check_block.is_none() {
            block_bytes = bitcoin::consensus::encode::serialize(&block).len();
            check_block = Some(block);
        }
    }
    let block = check_block.expect("a block");
    let block_hash = block.block_hash();
    assert_eq!(block_check::check(&block, &block_hash), Ok(()));
    let filter_bytes: usize = filters.iter().map(|(_, f)| f.content.len()).sum();
    let elements: u64 = filters.iter().map(|(_, f)| filter_elements(f)).sum();
    let mean_bytes = filter_bytes as f64 / count as f64;
    let mean_elements = elements as f64 / count as f64;

    // The filters chained as a filter header chain would hold them.
    let mut previous = FilterHeader::from_byte_array([0; 32]);
    let chained: Vec<Chained> = filters
        .into_iter()
        .map(|(block, filter)| {
            let header = filter.filter_header(&previous);
            let c = Chained {
                block,
                filter,
                previous,
                header,
            };
            previous = header;
            c
        })
        .collect();

    // Queries that miss, as nearly all do in a scan: fresh random scripts.
    let mut rng = ChaCha8Rng::seed_from_u64(u64::MAX);
    let one = vec![p2wpkh(&mut rng)];
    let wallet: Vec<ScriptBuf> = (0..WALLET_SCRIPTS).map(|_| p2wpkh(&mut rng)).collect();
    let misses = |scripts: &[ScriptBuf]| {
        chained
            .iter()
            .filter(|c| {
                c.filter
                    .match_any(&c.block, scripts.iter().map(|s| s.as_bytes()))
                    .unwrap()
            })
            .count()
    };
    println!(
        "filter_rates: {count} synthetic full blocks ({:.2} MB, {} txs for the block check); basic filters {:.1} kB and {:.0} elements on average; false positives {} of {count} (1 script), {} of {count} ({WALLET_SCRIPTS} scripts); set up in {:.1} s; medians over {runs} runs",
        block_bytes as f64 / 1e6,
        block.txdata.len(),
        mean_bytes / 1e3,
        mean_elements,
        misses(&one),
        misses(&wallet),
        started.elapsed().as_secs_f64()
    );

    // 1. Filter header chaining, the whole chain at once.
    let hashes: Vec<FilterHash> = chained
        .iter()
        .map(|c| FilterHash::hash(&c.filter.content))
        .collect();
    let chain_times: Vec<f64> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            let mut header = FilterHeader::from_byte_array([0; 32]);
            for i in 0..chain_len {
                header = black_box(&hashes[i % hashes.len()]).filter_header(&header);
            }
            black_box(header);
            t.elapsed().as_secs_f64()
        })
        .collect();
    let chain_seconds = median(&chain_times);
    let chaining = chain_len as f64 / chain_seconds;

    // 2. Filter hashing.
    let n = chained.len() as f64;
    let hashing = rate(runs, n, || {
        for c in &chained {
            black_box(FilterHash::hash(black_box(&c.filter.content)));
        }
    });
    // The check alone: hash and chain, as the engine does for every filter.
    let check_only = rate(runs, n, || {
        for c in &chained {
            let h = FilterHash::hash(&c.filter.content).filter_header(&c.previous);
            assert!(black_box(h) == c.header);
        }
    });

    // 3. SipHash + Golomb-Rice decoding.
    let match_rate = |scripts: &[ScriptBuf]| {
        rate(runs, n, || {
            for c in &chained {
                black_box(
                    c.filter
                        .match_any(&c.block, scripts.iter().map(|s| s.as_bytes()))
                        .unwrap(),
                );
            }
        })
    };
    let match_one = match_rate(&one);
    let match_wallet = match_rate(&wallet);

    // 4. The engine's per-filter sequence.
    let engine_rate = |scripts: &[ScriptBuf]| {
        rate(runs, n, || {
            for c in &chained {
                let (ok, matched) = engine_scan_step(c, scripts);
                assert!(ok);
                black_box(matched);
            }
        })
    };
    let engine_one = engine_rate(&one);
    let engine_wallet = engine_rate(&wallet);

    // 5. Block checks, against their hashing floor.
    let checks = rate(runs, 1.0, || {
        block_check::check(black_box(&block), &block_hash).unwrap();
    });
    let roots = rate(runs, 1.0, || {
        black_box(block.compute_merkle_root());
        black_box(block.witness_root());
    });

    println!();
    line("figure (one core)", "rate", "% ceiling");
    println!("|{:-<60}|{:-<22}|{:-<11}|", "", "", "");
    row(
        "filter header chaining (SHA-256d of 64 bytes)",
        chaining,
        "headers/s",
        None,
    );
    line(
        &format!("  → {chain_len} headers (a mainnet-size chain)"),
        &format!("{chain_seconds:.3} s"),
        "-",
    );
    row(
        &format!(
            "filter hashing (SHA-256d, {:.1} kB filters)",
            mean_bytes / 1e3
        ),
        hashing * mean_bytes / 1e6,
        "MB/s",
        None,
    );
    row("  the same in filters", hashing, "filters/s", None);
    row(
        "hashing ceiling: hash + chain + compare (the check alone)",
        check_only,
        "filters/s",
        Some(check_only),
    );
    row(
        "match_any, 1 script",
        match_one,
        "filters/s",
        Some(check_only),
    );
    row(
        "  elements of the filters (a miss decodes about half)",
        match_one * mean_elements,
        "elements/s",
        None,
    );
    row(
        &format!("match_any, {WALLET_SCRIPTS} scripts"),
        match_wallet,
        "filters/s",
        Some(check_only),
    );
    row(
        "  elements of the filters (decoded nearly all)",
        match_wallet * mean_elements,
        "elements/s",
        None,
    );
    row(
        "  query scripts hashed (SipHash)",
        match_wallet * WALLET_SCRIPTS as f64,
        "scripts/s",
        None,
    );
    row(
        "engine scan step (block_fetch.rs): check + match, 1 script",
        engine_one,
        "filters/s",
        Some(check_only),
    );
    line(
        &format!("  → {chain_len} such filters, 1 script"),
        &format!("{:.1} s", chain_len as f64 / engine_one),
        "-",
    );
    row(
        &format!("engine scan step: check + match, {WALLET_SCRIPTS} scripts"),
        engine_wallet,
        "filters/s",
        Some(check_only),
    );
    line(
        &format!("  → {chain_len} such filters, {WALLET_SCRIPTS} scripts"),
        &format!("{:.1} s", chain_len as f64 / engine_wallet),
        "-",
    );
    row(
        "hashing floor of a block: merkle root + witness root",
        roots,
        "blocks/s",
        Some(roots),
    );
    row(
        &format!(
            "block_check::check ({:.2} MB, {} txs)",
            block_bytes as f64 / 1e6,
            block.txdata.len()
        ),
        checks,
        "blocks/s",
        Some(roots),
    );
    row(
        "  the same in bytes",
        checks * block_bytes as f64 / 1e6,
        "MB/s",
        None,
    );
    println!();
    println!(
        "filter_rates: done in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
