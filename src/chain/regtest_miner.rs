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
    let mut out = Vec::with_capacity(count);
    let mut prev_hash = prev.block_hash();
    let mut time = start_time;
    for i in 0..count {
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
        time = time.saturating_add(SPACING);
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
