//! A regtest header miner, for tests and benchmarks.
//!
//! Regtest's pow limit (nBits `0x207fffff`) is met by about every second
//! hash, so mining a header costs two double-SHA-256s on average and tens
//! of thousands of valid headers take well under a second in release. The
//! headers carry no transactions: their merkle roots are synthetic, which
//! a header chain cannot tell apart from real ones.

use bitcoin::block::{Header, Version};
use bitcoin::blockdata::constants::genesis_block;
use bitcoin::hashes::{Hash, sha256d};
use bitcoin::pow::CompactTarget;
use bitcoin::{Network, TxMerkleNode};

/// nBits of every regtest block (its pow limit; regtest never retargets).
pub const REGTEST_BITS: u32 = 0x207f_ffff;

/// Seconds between mined headers.
pub const SPACING: u32 = 600;

/// Version of mined headers: BIP9 signalling with no bits set, as Core
/// mines.
pub const VERSION: i32 = 0x2000_0000;

/// The regtest genesis header.
pub fn regtest_genesis() -> Header {
    genesis_block(Network::Regtest).header
}

/// `count` headers on top of `prev`, the first timestamped `start_time`
/// and each next one [`SPACING`] seconds later. Same inputs, same headers.
pub fn mine_regtest_chain(prev: &Header, count: usize, start_time: u32) -> Vec<Header> {
    mine_regtest_branch(prev, count, start_time, 0)
}

/// `count` headers on regtest genesis spaced [`SPACING`] apart, the last
/// one [`SPACING`] before `end_unix`: a chain whose tip is "now" when
/// `end_unix` is now, so a node that syncs it leaves initial sync.
pub fn mine_regtest_chain_until(count: usize, end_unix: u64) -> Vec<Header> {
    let span = u64::from(SPACING).saturating_mul(count as u64);
    let start = u32::try_from(end_unix.saturating_sub(span)).unwrap_or(u32::MAX);
    mine_regtest_chain(&regtest_genesis(), count, start)
}

/// [`mine_regtest_chain`] with a `tag` mixed into the merkle roots, so two
/// branches from the same parent and times differ.
pub fn mine_regtest_branch(prev: &Header, count: usize, start_time: u32, tag: u32) -> Vec<Header> {
    let times = (0..count as u32).map(|i| start_time.saturating_add(i.saturating_mul(SPACING)));
    mine_with_times(prev, times, tag)
}

/// A mainnet-shaped regtest chain on genesis: `count` headers whose tip is
/// near `end_unix`, with the timestamps proof of work and miners produce.
///
/// Intervals are exponential (blocks are found at random) with the mean
/// that fits `count` blocks between genesis and `end_unix`; each timestamp
/// is then off its schedule by up to an hour either way, as miners' clocks
/// are, so timestamps often go backwards. Each is kept above the median of
/// the 11 before it (the median-time-past rule) and never after `end_unix`
/// (so never "from the future" for a node whose clock reads `end_unix`).
/// Deterministic in `seed`.
pub fn mine_mainnet_shaped_chain(count: usize, end_unix: u64, seed: u64) -> Vec<Header> {
    use rand::{Rng, SeedableRng};
    let genesis = regtest_genesis();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let span = end_unix.saturating_sub(u64::from(genesis.time)) as f64;
    let mean = span / count.max(1) as f64;
    let end = u32::try_from(end_unix).unwrap_or(u32::MAX);
    // 1 - u is in (0, 1]: the logarithm is finite.
    let intervals: Vec<f64> = (0..count)
        .map(|_| -(1.0 - rng.random::<f64>()).ln())
        .collect();
    // Scaled so that the last block is scheduled one mean interval before
    // `end_unix`, whatever the draw's total.
    let scale = (span - mean) / intervals.iter().sum::<f64>().max(f64::MIN_POSITIVE);
    let mut recent: Vec<u32> = vec![genesis.time];
    let mut schedule = f64::from(genesis.time);
    let mut times = Vec::with_capacity(count);
    for interval in intervals {
        schedule += interval * scale;
        let jitter: i64 = rng.random_range(-3600..=3600);
        let wanted = (schedule as i64 + jitter).clamp(0, i64::from(end)) as u32;
        let mut last11: Vec<u32> = recent.iter().rev().take(11).copied().collect();
        last11.sort_unstable();
        let mtp = last11[last11.len() / 2];
        let time = wanted.max(mtp.saturating_add(1));
        recent.push(time);
        if recent.len() > 11 {
            recent.remove(0);
        }
        times.push(time);
    }
    mine_with_times(&genesis, times, 0)
}

/// Headers on top of `prev` with the given timestamps and `tag` mixed into
/// their merkle roots.
fn mine_with_times(prev: &Header, times: impl IntoIterator<Item = u32>, tag: u32) -> Vec<Header> {
    let times = times.into_iter();
    let mut out = Vec::with_capacity(times.size_hint().0);
    let mut prev_hash = prev.block_hash();
    for (i, time) in times.enumerate() {
        let mut seed = [0u8; 12];
        seed[..4].copy_from_slice(&tag.to_le_bytes());
        seed[4..].copy_from_slice(&(i as u64).to_le_bytes());
        let merkle = TxMerkleNode::from_raw_hash(sha256d::Hash::hash(&seed));
        let template = Header {
            version: Version::from_consensus(VERSION),
            prev_blockhash: prev_hash,
            merkle_root: merkle,
            time,
            bits: CompactTarget::from_consensus(REGTEST_BITS),
            nonce: 0,
        };
        // At regtest difficulty the nonce space cannot run out in practice;
        // should it, the chain simply ends early.
        let Some(header) = solve(template) else { break };
        prev_hash = header.block_hash();
        out.push(header);
    }
    out
}

/// Grinds `header.nonce` from its current value until the hash meets the
/// header's own target; `None` if the nonce space runs out. Useful to build
/// headers with chosen (e.g. wrong) bits that still carry valid work.
pub fn solve(mut header: Header) -> Option<Header> {
    let target = header.target();
    loop {
        if target.is_met_by(header.block_hash()) {
            return Some(header);
        }
        header.nonce = header.nonce.checked_add(1)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::HeaderChain;

    /// The shaped chain is valid (MTP and future-time rules included),
    /// ends at or before `end_unix`, and is out of order the way mainnet's
    /// timestamps are.
    #[test]
    fn a_mainnet_shaped_chain_is_valid_and_not_monotonic() {
        // Mainnet's pace: 600 s apart on average.
        let end = u64::from(regtest_genesis().time) + 5_000 * 600;
        let headers = mine_mainnet_shaped_chain(5_000, end, 7);
        assert_eq!(headers.len(), 5_000);
        let mut chain = HeaderChain::new(Network::Regtest);
        for batch in headers.chunks(2_000) {
            chain.accept(batch, end).unwrap_or_else(|e| panic!("{e:?}"));
        }
        assert_eq!(chain.height(), 5_000);
        let tip = headers.last().map_or(0, |h| h.time);
        // Scheduled one mean interval before the end, give or take an hour.
        let mean = (end - u64::from(regtest_genesis().time)) / 5_000;
        assert!(
            u64::from(tip) <= end && u64::from(tip) + 2 * mean > end,
            "tip at {tip}"
        );
        let backwards = headers.windows(2).filter(|w| w[1].time < w[0].time).count();
        assert!(backwards > 100, "only {backwards} timestamps go backwards");
        assert!(
            mine_mainnet_shaped_chain(5_000, end, 7) == headers,
            "not deterministic"
        );
    }
}
