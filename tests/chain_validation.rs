#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Header validation, retargeting and chain selection of
//! `nightjar::chain::HeaderChain`.

use std::time::Instant;

use bitcoin::block::{Header, Version};
use bitcoin::hashes::Hash;
use bitcoin::pow::CompactTarget;
use bitcoin::{BlockHash, Network, TxMerkleNode};
use nightjar::chain::params::MAINNET_CHECKPOINT_COUNT;
use nightjar::chain::regtest_miner::{
    REGTEST_BITS, SPACING, mine_regtest_branch, mine_regtest_chain, regtest_genesis, solve,
};
use nightjar::chain::{
    BitsAndTime, ChainParams, Checkpoint, HeaderChain, HeaderError, TipStatus,
    calculate_next_work_required,
};

fn bits(x: u32) -> CompactTarget {
    CompactTarget::from_consensus(x)
}

fn bt(b: u32, time: u32) -> BitsAndTime {
    BitsAndTime {
        bits: bits(b),
        time,
    }
}

/// A solved header on `prev` with the given fields.
fn header_on(prev: &Header, b: u32, time: u32, version: i32) -> Header {
    solve(Header {
        version: Version::from_consensus(version),
        prev_blockhash: prev.block_hash(),
        merkle_root: TxMerkleNode::all_zeros(),
        time,
        bits: bits(b),
        nonce: 0,
    })
    .unwrap()
}

fn start() -> u32 {
    regtest_genesis().time + SPACING
}

fn last_time(headers: &[Header]) -> u64 {
    u64::from(headers.last().unwrap().time)
}

// --- retarget arithmetic against real chain values ---

/// Bitcoin Core's `pow_tests.cpp` vectors: real mainnet blocks.
#[test]
fn mainnet_retargets_match_the_real_chain() {
    let p = ChainParams::new(Network::Bitcoin);
    // Height 32256, the first retarget that changed anything: blocks 30240
    // and 32255.
    assert_eq!(
        calculate_next_work_required(&p, bt(0x1d00ffff, 1261130161), bt(0x1d00ffff, 1262152739)),
        bits(0x1d00d86a)
    );
    // Height 2016: slower than two weeks, capped at the pow limit.
    assert_eq!(
        calculate_next_work_required(&p, bt(0x1d00ffff, 1231006505), bt(0x1d00ffff, 1233061996)),
        bits(0x1d00ffff)
    );
    // Height 68544 (blocks 66528 and 68543): faster than half a week, so
    // the 4x clamp applies: 0x05a3f4 / 4 = 0x0168fd.
    assert_eq!(
        calculate_next_work_required(&p, bt(0x1c05a3f4, 1279008237), bt(0x1c05a3f4, 1279297671)),
        bits(0x1c0168fd)
    );
    // Core's upper-clamp vector (last block 46367 real, first time mocked):
    // at most 4x easier.
    assert_eq!(
        calculate_next_work_required(&p, bt(0x1c387f6f, 1263163443), bt(0x1c387f6f, 1269211443)),
        bits(0x1d00e1fd)
    );
}

/// Signet's first two retargets (values from the `bitcoin` crate's tests).
#[test]
fn signet_retargets_match_the_real_chain() {
    let p = ChainParams::new(Network::Signet);
    assert_eq!(
        calculate_next_work_required(&p, bt(503543726, 1598918400), bt(503543726, 1599332177)),
        bits(503394215)
    );
    assert_eq!(
        calculate_next_work_required(&p, bt(503394215, 1599332844), bt(503394215, 1600591200)),
        bits(503397348)
    );
}

/// testnet4's first retarget, at height 2016. Public facts: the genesis
/// block (height 0, the period's first) has bits 0x1d00ffff and time
/// 1714777860; blocks 1–2015 were mined at minimum difficulty within days,
/// and block 2016 has difficulty 4, bits 0x1c3fffc0 (Bitcoin Core's
/// `mining_testnet.py` checks exactly this on the real blocks). Any span
/// under 3.5 days hits the 4× clamp, so the exact time of block 2015 does
/// not matter; two spans bracket it.
#[test]
fn testnet4_first_retarget_matches_the_real_chain() {
    let p = ChainParams::new(Network::Testnet4);
    let genesis = bt(0x1d00ffff, 1714777860);
    for span in [86_400, 302_400] {
        let last = bt(0x1d00ffff, 1714777860 + span);
        assert_eq!(
            calculate_next_work_required(&p, genesis, last),
            bits(0x1c3fffc0),
            "span {span}"
        );
    }
    // The genesis header the chain starts from is the real one.
    let chain = HeaderChain::new(Network::Testnet4);
    assert_eq!(chain.tip_header().time, 1714777860);
    assert_eq!(chain.tip_header().bits, bits(0x1d00ffff));
}

/// BIP94: testnet4 scales the period's first bits, testnet3 its last (a
/// min-difficulty block there would reset the difficulty).
#[test]
fn bip94_retargets_from_the_first_block_of_the_period() {
    let first = bt(0x1c00ffff, 1_700_000_000);
    let last = bt(0x1d00ffff, 1_700_000_000 + 1_209_600);
    let t4 = calculate_next_work_required(&ChainParams::new(Network::Testnet4), first, last);
    let t3 = calculate_next_work_required(&ChainParams::new(Network::Testnet), first, last);
    assert_eq!(t4, bits(0x1c00ffff));
    assert_eq!(t3, bits(0x1d00ffff));
}

#[test]
fn regtest_never_retargets() {
    let p = ChainParams::new(Network::Regtest);
    assert_eq!(
        calculate_next_work_required(&p, bt(REGTEST_BITS, 0), bt(REGTEST_BITS, 1)),
        bits(REGTEST_BITS)
    );
}

#[test]
fn mainnet_params_are_complete() {
    let p = ChainParams::new(Network::Bitcoin);
    assert_eq!(p.checkpoints.len(), MAINNET_CHECKPOINT_COUNT);
    let cp = p.checkpoint_at(11_111).unwrap();
    assert_eq!(
        cp.hash.to_string(),
        "0000000069e244f73d78e8fd29ba2fd2ed618bd6fa2ee92559f542fdb26e7c1d"
    );
    assert!(p.checkpoint_at(11_112).is_none());
    assert_eq!(p.pow_limit_bits, bits(0x1d00ffff));
    let chain = HeaderChain::new(Network::Bitcoin);
    assert!(!chain.has_minimum_chain_work());
    assert_eq!(
        chain.tip().1.to_string(),
        "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f"
    );
    assert!(HeaderChain::new(Network::Regtest).has_minimum_chain_work());
}

// --- retargeting enforced by the chain ---

/// Regtest rules with retargeting switched on (a 2016-block period).
fn retargeting_regtest() -> ChainParams {
    let mut p = ChainParams::new(Network::Regtest);
    p.consensus.no_pow_retargeting = false;
    p.consensus.allow_min_difficulty_blocks = false;
    p
}

/// Mines `n` headers with `b` bits, `spacing` apart.
fn mine_bits(prev: &Header, n: usize, b: u32, time: u32, spacing: u32) -> Vec<Header> {
    let mut out: Vec<Header> = Vec::with_capacity(n);
    let mut prev = *prev;
    for i in 0..n {
        let h = header_on(&prev, b, time + spacing * i as u32, 0x2000_0000);
        out.push(h);
        prev = h;
    }
    out
}

#[test]
fn the_chain_retargets_from_the_right_blocks() {
    // At regtest's pow limit (~2^255) the retarget product overflows 256
    // bits, in Core as here, which is why regtest never retargets: the
    // value below is meaningless. What this checks is the wiring: the
    // chain asks for a retarget exactly at height 2016, from blocks 0 and
    // 2015 (Core's off-by-one), not 1 and 2015. The arithmetic itself is
    // checked against the real chain above.
    let mut chain = HeaderChain::with_params(retargeting_regtest());
    let g = regtest_genesis();
    let headers = mine_bits(&g, 2015, REGTEST_BITS, g.time + 600, 600);
    let now = last_time(&headers) + 600;
    chain.accept(&headers, now).unwrap();
    let last = *headers.last().unwrap();
    let core = calculate_next_work_required(
        chain.params(),
        bt(REGTEST_BITS, g.time),
        bt(REGTEST_BITS, last.time),
    );
    let off_by_one_fixed = calculate_next_work_required(
        chain.params(),
        bt(REGTEST_BITS, headers[0].time),
        bt(REGTEST_BITS, last.time),
    );
    assert_ne!(core, off_by_one_fixed);
    let unchanged = header_on(&last, REGTEST_BITS, last.time + 600, 0x2000_0000);
    assert_eq!(
        chain.accept(&[unchanged], now),
        Err(HeaderError::BadBits {
            hash: unchanged.block_hash(),
            expected: core,
            got: bits(REGTEST_BITS)
        })
    );
}

/// Testnet's 20-minute rule and its walk back over min-difficulty blocks.
/// Regtest's pow limit is ~2^255, so to keep mining cheap the test swaps
/// roles: the "minimum difficulty" nBits is set to a harder 0x2000ffff and
/// genesis's 0x207fffff plays the real difficulty. The rule does not care
/// which of the two is easier.
#[test]
fn min_difficulty_exception_and_walk_back() {
    let mut p = ChainParams::new(Network::Regtest);
    p.consensus.allow_min_difficulty_blocks = true;
    let min = 0x2000_ffff;
    p.pow_limit_bits = bits(min);
    let mut chain = HeaderChain::with_params(p);
    let g = regtest_genesis();
    let now = 2_000_000_000;
    let expect = |prev: &Header, time: u32, want: u32, other: u32, chain: &mut HeaderChain| {
        let bad = header_on(prev, other, time, 0x2000_0000);
        assert!(
            matches!(chain.accept(&[bad], now), Err(HeaderError::BadBits { expected, .. }) if expected == bits(want)),
            "at {time} expected {want:#x}"
        );
        let good = header_on(prev, want, time, 0x2000_0000);
        chain.accept(&[good], now).unwrap();
        good
    };
    // More than 20 minutes after the parent: the minimum is required.
    let h1 = expect(&g, g.time + 1201, min, REGTEST_BITS, &mut chain);
    // On time: the difficulty of the last block before the min-difficulty run.
    let h2 = expect(&h1, h1.time + 60, REGTEST_BITS, min, &mut chain);
    // Exactly 20 minutes is not "more than".
    let h3 = expect(&h2, h2.time + 1200, REGTEST_BITS, min, &mut chain);
    let h4 = expect(&h3, h3.time + 1201, min, REGTEST_BITS, &mut chain);
    let h5 = expect(&h4, h4.time + 1201, min, REGTEST_BITS, &mut chain);
    // Walks back over two min-difficulty blocks to h3.
    expect(&h5, h5.time + 60, REGTEST_BITS, min, &mut chain);
    assert_eq!(chain.height(), 6);
}

#[test]
fn bip94_forbids_timewarp_at_period_start() {
    // Core's regtest with `-test=bip94`: no retargeting, BIP94 on.
    let mut p = ChainParams::new(Network::Regtest);
    p.enforce_bip94 = true;
    let mut chain = HeaderChain::with_params(p);
    let g = regtest_genesis();
    let p1 = mine_bits(&g, 2015, REGTEST_BITS, g.time + 600, 600);
    let now = 2_000_000_000;
    chain.accept(&p1, now).unwrap();
    let last = *p1.last().unwrap();
    let required = bits(REGTEST_BITS);
    // 601 s before the parent is still after the median time past (which
    // lags the parent by 3000 s) but breaks BIP94.
    let warped = header_on(&last, required.to_consensus(), last.time - 601, 0x2000_0000);
    assert_eq!(
        chain.accept(&[warped], now),
        Err(HeaderError::TimeWarp {
            hash: warped.block_hash(),
            time: last.time - 601,
            parent_time: last.time
        })
    );
    let ok = header_on(&last, required.to_consensus(), last.time - 600, 0x2000_0000);
    chain.accept(&[ok], now).unwrap();
    // Without BIP94 the warped header is fine.
    let mut plain = HeaderChain::new(Network::Regtest);
    plain.accept(&p1, now).unwrap();
    plain.accept(&[warped], now).unwrap();
}

// --- a long regtest chain ---

#[test]
fn accepts_fifty_thousand_regtest_headers() {
    let t = Instant::now();
    let headers = mine_regtest_chain(&regtest_genesis(), 50_000, start());
    let mined = t.elapsed();
    assert_eq!(headers.len(), 50_000);
    let now = last_time(&headers);
    let mut chain = HeaderChain::new(Network::Regtest);
    let t = Instant::now();
    for batch in headers.chunks(2000) {
        let out = chain.accept(batch, now).unwrap();
        assert_eq!(out.new_headers, batch.len());
        assert!(out.tip_changed);
        assert!(out.reorg.is_none());
    }
    let validated = t.elapsed();
    eprintln!("mined 50000 in {mined:?}, validated in {validated:?}");
    assert_eq!(chain.height(), 50_000);
    assert_eq!(chain.tip().1, headers[49_999].block_hash());
    assert_eq!(chain.header_at(25_000), Some(headers[24_999]));
    assert_eq!(chain.hash_at(25_000), Some(headers[24_999].block_hash()));
    assert_eq!(chain.header_at(50_001), None);
    let (height, header, work) = chain.get(&headers[99].block_hash()).unwrap();
    assert_eq!((height, header), (100, headers[99]));
    let per_block = regtest_genesis().work();
    let mut expected = per_block;
    for _ in 0..100 {
        expected = expected + per_block;
    }
    assert_eq!(work, expected);
    // Re-sending known headers is harmless and changes nothing.
    let again = chain.accept(&headers[..2000], now).unwrap();
    assert_eq!((again.new_headers, again.tip_changed), (0, false));
    // The MTP of block 100 is block 95's time (11 equally spaced).
    assert_eq!(
        chain.median_time_past(&headers[99].block_hash()),
        Some(headers[94].time)
    );
}

#[test]
fn locator_follows_cores_steps() {
    let headers = mine_regtest_chain(&regtest_genesis(), 3000, start());
    let mut chain = HeaderChain::new(Network::Regtest);
    chain.accept(&headers, last_time(&headers)).unwrap();
    let loc = chain.locator();
    let height_of = |h: &BlockHash| chain.get(h).unwrap().0;
    let heights: Vec<u32> = loc.iter().map(height_of).collect();
    // Core pushes 11 hashes before the step starts doubling, so the first
    // 12 are consecutive.
    let mut want: Vec<u32> = (2989..=3000).rev().collect();
    let mut h = 2989i64;
    let mut step = 2;
    loop {
        h -= step;
        if h <= 0 {
            want.push(0);
            break;
        }
        want.push(h as u32);
        step *= 2;
    }
    assert_eq!(heights, want);
    assert_eq!(loc.first(), Some(&chain.tip().1));
    assert_eq!(loc.last(), Some(&regtest_genesis().block_hash()));
    // A fresh chain's locator is just genesis.
    assert_eq!(
        HeaderChain::new(Network::Regtest).locator(),
        vec![regtest_genesis().block_hash()]
    );
}

// --- each rule rejects with its own error ---

fn chain_of(n: usize) -> (HeaderChain, Vec<Header>) {
    let headers = mine_regtest_chain(&regtest_genesis(), n, start());
    let mut chain = HeaderChain::new(Network::Regtest);
    chain.accept(&headers, last_time(&headers)).unwrap();
    (chain, headers)
}

#[test]
fn orphans_are_rejected_but_not_invalid() {
    let (mut chain, headers) = chain_of(5);
    let stranger = mine_regtest_branch(&headers[4], 2, headers[4].time + 600, 9);
    let err = chain.accept(&stranger[1..], 2_000_000_000).unwrap_err();
    assert_eq!(
        err,
        HeaderError::Orphan {
            hash: stranger[1].block_hash(),
            prev: stranger[0].block_hash()
        }
    );
    assert!(!err.is_invalid());
}

/// The header index keys on the first 8 bytes of a block hash (to fit a
/// million headers in a desktop's memory), but a `prev_blockhash` is the
/// sender's free choice: one that shares a real block's first 8 bytes and
/// differs after them must not connect to that block.
#[test]
fn a_parent_hash_alike_in_its_first_eight_bytes_is_still_an_orphan() {
    let (mut chain, headers) = chain_of(5);
    let real = headers[4].block_hash();
    let mut forged = *real.as_byte_array();
    forged[31] ^= 1;
    let mut h = mine_regtest_chain(&headers[4], 1, headers[4].time + 600)[0];
    h.prev_blockhash = BlockHash::from_byte_array(forged);
    let h = solve(h).unwrap();
    let err = chain.accept(&[h], 2_000_000_000).unwrap_err();
    assert_eq!(
        err,
        HeaderError::Orphan {
            hash: h.block_hash(),
            prev: h.prev_blockhash
        }
    );
    // And a known hash's look-alike is not known.
    assert!(!chain.contains(&BlockHash::from_byte_array(forged)));
    assert!(chain.contains(&real));
    assert_eq!(chain.len(), 6);
}

#[test]
fn bad_proof_of_work_is_rejected() {
    let (mut chain, headers) = chain_of(5);
    let mut h = mine_regtest_chain(&headers[4], 1, headers[4].time + 600)[0];
    let target = h.target();
    while target.is_met_by(h.block_hash()) {
        h.nonce += 1;
    }
    let err = chain.accept(&[h], 2_000_000_000).unwrap_err();
    assert_eq!(
        err,
        HeaderError::BadProofOfWork {
            hash: h.block_hash()
        }
    );
    assert!(err.is_invalid());
    // A target above the pow limit is no proof of work either.
    let mut above = h;
    above.bits = bits(0x2100ffff);
    let above = solve(above).unwrap();
    assert!(matches!(
        chain.accept(&[above], 2_000_000_000),
        Err(HeaderError::BadProofOfWork { .. })
    ));
    // Nor is an overflowing or zero one.
    for b in [0x2300_ffff, 0x2000_0000, 0x2080_0001] {
        let mut h = h;
        h.bits = bits(b);
        assert!(
            matches!(
                chain.accept(&[h], 2_000_000_000),
                Err(HeaderError::BadProofOfWork { .. })
            ),
            "{b:#x}"
        );
    }
    assert_eq!(chain.height(), 5);
}

#[test]
fn wrong_difficulty_is_rejected_even_with_valid_work() {
    let (mut chain, headers) = chain_of(5);
    // Harder than required, and solved: real work, wrong bits.
    let h = header_on(&headers[4], 0x1f7f_ffff, headers[4].time + 600, 0x2000_0000);
    assert_eq!(
        chain.accept(&[h], 2_000_000_000),
        Err(HeaderError::BadBits {
            hash: h.block_hash(),
            expected: bits(REGTEST_BITS),
            got: bits(0x1f7f_ffff)
        })
    );
}

#[test]
fn time_at_or_before_median_time_past_is_rejected() {
    let (mut chain, headers) = chain_of(20);
    let tip = headers[19];
    let mtp = chain.median_time_past(&tip.block_hash()).unwrap();
    assert_eq!(mtp, headers[14].time);
    let at_mtp = header_on(&tip, REGTEST_BITS, mtp, 0x2000_0000);
    assert_eq!(
        chain.accept(&[at_mtp], 2_000_000_000),
        Err(HeaderError::TimeTooOld {
            hash: at_mtp.block_hash(),
            time: mtp,
            median_time_past: mtp
        })
    );
    // One second later is fine, even though it is before the parent.
    let after = header_on(&tip, REGTEST_BITS, mtp + 1, 0x2000_0000);
    assert!(chain.accept(&[after], 2_000_000_000).unwrap().tip_changed);
}

#[test]
fn time_more_than_two_hours_ahead_is_rejected() {
    let (mut chain, headers) = chain_of(5);
    let tip = headers[4];
    let now = u64::from(tip.time);
    let late = header_on(&tip, REGTEST_BITS, tip.time + 7201, 0x2000_0000);
    assert_eq!(
        chain.accept(&[late], now),
        Err(HeaderError::TimeTooNew {
            hash: late.block_hash(),
            time: tip.time + 7201,
            now
        })
    );
    let edge = header_on(&tip, REGTEST_BITS, tip.time + 7200, 0x2000_0000);
    chain.accept(&[edge], now).unwrap();
}

#[test]
fn obsolete_versions_are_rejected() {
    let (mut chain, headers) = chain_of(5);
    let tip = headers[4];
    for v in [1, 2, 3, -1] {
        let h = header_on(&tip, REGTEST_BITS, tip.time + 600, v);
        assert_eq!(
            chain.accept(&[h], 2_000_000_000),
            Err(HeaderError::BadVersion {
                hash: h.block_hash(),
                height: 6,
                version: v
            })
        );
    }
    chain
        .accept(
            &[header_on(&tip, REGTEST_BITS, tip.time + 600, 4)],
            2_000_000_000,
        )
        .unwrap();
}

#[test]
fn checkpoints_pin_the_chain() {
    let g = regtest_genesis();
    let a = mine_regtest_branch(&g, 10, start(), 1);
    let b = mine_regtest_branch(&g, 10, start(), 2);
    let params = ChainParams::new(Network::Regtest).with_checkpoints(vec![Checkpoint {
        height: 5,
        hash: a[4].block_hash(),
    }]);
    let mut chain = HeaderChain::with_params(params);
    let now = last_time(&a);
    // Branch b is fine up to height 4 but its block 5 is not the checkpoint.
    assert_eq!(
        chain.accept(&b, now),
        Err(HeaderError::CheckpointConflict {
            height: 5,
            expected: a[4].block_hash(),
            got: b[4].block_hash()
        })
    );
    assert_eq!(chain.len(), 1, "the failed batch left nothing behind");
    chain.accept(&a, now).unwrap();
    // Once the checkpoint is held, forks below it are refused outright.
    let err = chain.accept(&b[..2], now).unwrap_err();
    assert_eq!(
        err,
        HeaderError::ForkBeforeCheckpoint {
            hash: b[0].block_hash(),
            height: 1,
            checkpoint_height: 5
        }
    );
    assert!(err.is_invalid());
    // Forks above it are fine.
    let c = mine_regtest_branch(&a[6], 1, a[6].time + 600, 3);
    chain.accept(&c, now).unwrap();
}

#[test]
fn a_bad_header_rejects_the_whole_batch() {
    let (mut chain, headers) = chain_of(5);
    let mut more = mine_regtest_chain(&headers[4], 5, headers[4].time + 600);
    let len = chain.len();
    let tip = chain.tip();
    more[4].bits = bits(0x1f7f_ffff);
    assert!(chain.accept(&more, 2_000_000_000).is_err());
    assert_eq!((chain.len(), chain.tip()), (len, tip));
    assert!(!chain.contains(&more[0].block_hash()));
    // The good prefix is accepted when sent on its own.
    assert_eq!(
        chain.accept(&more[..4], 2_000_000_000).unwrap().new_headers,
        4
    );
}

// --- chain selection ---

#[test]
fn reorgs_to_more_work_and_keeps_the_first_on_a_tie() {
    let g = regtest_genesis();
    let now = 2_000_000_000;
    let mut chain = HeaderChain::new(Network::Regtest);
    let a = mine_regtest_branch(&g, 10, start(), 1);
    chain.accept(&a, now).unwrap();

    // Branch b forks after block 5 and ends at 11: more work.
    let b = mine_regtest_branch(&a[4], 6, a[4].time + 1, 2);
    let out = chain.accept(&b, now).unwrap();
    assert!(out.tip_changed);
    assert_eq!(out.new_headers, 6);
    let reorg = out.reorg.unwrap();
    assert_eq!(reorg.fork_height, 5);
    assert_eq!(reorg.fork_hash, a[4].block_hash());
    assert_eq!((reorg.disconnected, reorg.connected), (5, 6));
    assert_eq!(chain.tip(), (11, b[5].block_hash()));
    assert_eq!(chain.header_at(6), Some(b[0]));
    assert!(chain.is_in_best_chain(&b[0].block_hash()));
    assert!(!chain.is_in_best_chain(&a[5].block_hash()));
    assert!(chain.contains(&a[9].block_hash()));

    let tips = chain.tips();
    assert_eq!(tips.len(), 2);
    assert_eq!(tips[0].hash, b[5].block_hash());
    assert_eq!(
        (tips[0].height, tips[0].branch_len, tips[0].status),
        (11, 0, TipStatus::Active)
    );
    assert_eq!(tips[1].hash, a[9].block_hash());
    assert_eq!((tips[1].height, tips[1].branch_len), (10, 5));
    assert_eq!(tips[1].status.as_str(), "valid-headers");

    // Branch c: same work as b. b was first, b stays.
    let c = mine_regtest_branch(&a[4], 6, a[4].time + 1, 3);
    let out = chain.accept(&c, now).unwrap();
    assert_eq!(
        (out.new_headers, out.tip_changed, out.reorg),
        (6, false, None)
    );
    assert_eq!(chain.tip().1, b[5].block_hash());
    assert_eq!(chain.tips().len(), 3);

    // Branch a grows past both: back to a, forking at 5 again.
    let a2 = mine_regtest_branch(&a[9], 2, a[9].time + 600, 1);
    let out = chain.accept(&a2, now).unwrap();
    let reorg = out.reorg.unwrap();
    assert_eq!(
        (reorg.fork_height, reorg.disconnected, reorg.connected),
        (5, 6, 7)
    );
    assert_eq!(chain.tip(), (12, a2[1].block_hash()));
    assert_eq!(chain.hash_at(7), Some(a[6].block_hash()));

    // Extending the tip is no reorg.
    let a3 = mine_regtest_branch(&a2[1], 1, a2[1].time + 600, 1);
    let out = chain.accept(&a3, now).unwrap();
    assert!(out.tip_changed && out.reorg.is_none());
}

#[test]
fn equal_work_within_one_batch_keeps_the_first() {
    let g = regtest_genesis();
    let a = mine_regtest_branch(&g, 3, start(), 1);
    let b = mine_regtest_branch(&g, 3, start(), 2);
    let mut batch = a.clone();
    batch.extend_from_slice(&b);
    let mut chain = HeaderChain::new(Network::Regtest);
    chain.accept(&batch, 2_000_000_000).unwrap();
    assert_eq!(chain.tip().1, a[2].block_hash());
}

// --- truncation (rolling back provisional headers) ---

/// Everything observable about a chain's state, for comparing two.
fn snapshot(chain: &HeaderChain) -> (usize, (u32, BlockHash), Vec<Header>, Vec<Option<BlockHash>>) {
    let tips = chain.tips();
    let mut best: Vec<Option<BlockHash>> =
        (0..=chain.height() + 1).map(|h| chain.hash_at(h)).collect();
    best.extend(tips.iter().map(|t| Some(t.hash)));
    (
        chain.len(),
        chain.tip(),
        chain.headers_in_order(0).collect(),
        best,
    )
}

#[test]
fn truncating_past_a_reorg_restores_the_earlier_tip() {
    let g = regtest_genesis();
    let now = 2_000_000_000;
    let mut chain = HeaderChain::new(Network::Regtest);
    let a = mine_regtest_branch(&g, 10, start(), 1);
    chain.accept(&a, now).unwrap();
    let before = snapshot(&chain);
    let locator = chain.locator();
    // Branch b forks after block 5 and takes over.
    let b = mine_regtest_branch(&a[4], 6, a[4].time + 1, 2);
    assert!(chain.accept(&b, now).unwrap().reorg.is_some());
    assert_eq!(chain.tip(), (11, b[5].block_hash()));

    let out = chain.truncate(11);
    assert_eq!(out.removed, 6);
    assert!(out.tip_changed);
    assert_eq!(out.tip, (10, a[9].block_hash()));
    assert_eq!(snapshot(&chain), before);
    assert_eq!(chain.locator(), locator);
    assert!(!chain.contains(&b[0].block_hash()));
    assert!(chain.is_in_best_chain(&a[5].block_hash()));
    assert_eq!(chain.tips().len(), 1);
    assert_eq!(chain.median_time_past(&a[9].block_hash()), Some(a[4].time));
    // The chain goes on as if b had never come.
    let more = mine_regtest_branch(&a[9], 2, a[9].time + 600, 1);
    let out = chain.accept(&more, now).unwrap();
    assert!(out.tip_changed && out.reorg.is_none());
    assert_eq!(chain.height(), 12);
}

#[test]
fn truncating_a_side_branch_keeps_the_tip() {
    let g = regtest_genesis();
    let now = 2_000_000_000;
    let mut chain = HeaderChain::new(Network::Regtest);
    let a = mine_regtest_branch(&g, 10, start(), 1);
    chain.accept(&a, now).unwrap();
    let side = mine_regtest_branch(&a[2], 3, a[2].time + 1, 2);
    chain.accept(&side, now).unwrap();
    let tip = chain.tip();
    let out = chain.truncate(11);
    assert_eq!((out.removed, out.tip_changed, out.tip), (3, false, tip));
    assert_eq!(chain.tips().len(), 1);
    assert!(!chain.contains(&side[0].block_hash()));
}

#[test]
fn truncation_keeps_the_first_of_equal_tips() {
    let g = regtest_genesis();
    let now = 2_000_000_000;
    let a = mine_regtest_branch(&g, 3, start(), 1);
    let b = mine_regtest_branch(&g, 3, start(), 2);
    let mut chain = HeaderChain::new(Network::Regtest);
    chain.accept(&a, now).unwrap();
    chain.accept(&b, now).unwrap();
    assert_eq!(chain.tip().1, a[2].block_hash());
    let b4 = mine_regtest_branch(&b[2], 1, b[2].time + 600, 2);
    chain.accept(&b4, now).unwrap();
    assert_eq!(chain.tip().1, b4[0].block_hash());
    // Back to a and b at equal work: a came first, a wins again.
    let out = chain.truncate(7);
    assert_eq!(out.tip, (3, a[2].block_hash()));
    assert!(chain.is_in_best_chain(&a[0].block_hash()));
    assert!(!chain.is_in_best_chain(&b[0].block_hash()));
    assert_eq!(chain.tips().len(), 2);
}

#[test]
fn truncate_then_reaccept_gives_the_same_state() {
    let g = regtest_genesis();
    let now = 2_000_000_000;
    let a = mine_regtest_chain(&g, 3000, start());
    let b = mine_regtest_branch(&a[1999], 1100, a[1999].time + 1, 2);
    let mut chain = HeaderChain::new(Network::Regtest);
    chain.accept(&a[..2500], now).unwrap();
    let half = chain.len();
    chain.accept(&a[2500..], now).unwrap();
    let reorg = chain.accept(&b, now).unwrap();
    assert!(reorg.reorg.is_some());
    let full = snapshot(&chain);

    // Past the reorg, at a batch boundary, mid-batch, then everything:
    // accepting the same headers in the same order again rebuilds the same
    // entries, index and best chain.
    for len in [half, 2300, 1] {
        let mut c = chain.clone();
        c.truncate(len);
        assert_eq!(c.len(), len);
        for batch in [&a[len - 1..], &b[..]] {
            for chunk in batch.chunks(700) {
                c.accept(chunk, now).unwrap();
            }
        }
        assert_eq!(snapshot(&c), full, "truncated to {len}");
    }
    // And the exact outcome of re-accepting the reorg is the same.
    let mut c = chain.clone();
    c.truncate(3001);
    assert_eq!(c.accept(&b, now).unwrap(), reorg);
    assert_eq!(snapshot(&c), full);
}

#[test]
fn truncating_to_zero_or_one_keeps_genesis() {
    let (mut chain, headers) = chain_of(20);
    assert_eq!(chain.truncate(chain.len() + 5).removed, 0);
    assert_eq!(chain.truncate(chain.len()).removed, 0);
    let genesis = regtest_genesis().block_hash();
    for len in [0, 1] {
        let out = chain.truncate(len);
        assert_eq!(out.tip, (0, genesis));
        assert_eq!(chain.len(), 1);
        assert_eq!(chain.locator(), vec![genesis]);
        assert!(chain.contains(&genesis));
        assert!(!chain.contains(&headers[0].block_hash()));
    }
    // Nothing left to drop the second time.
    assert_eq!(chain.truncate(0).removed, 0);
    chain.accept(&headers, last_time(&headers)).unwrap();
    assert_eq!(chain.tip(), (20, headers[19].block_hash()));
}

#[test]
fn plausible_height_bounds_mainnet() {
    let p = ChainParams::new(Network::Bitcoin);
    // 2026-11-01.
    let bound = p.plausible_height(1_793_491_200);
    assert!((930_001..1_300_000).contains(&bound), "{bound}");
    let regtest = ChainParams::new(Network::Regtest);
    assert_eq!(regtest.plausible_height(0), 2016);
}
