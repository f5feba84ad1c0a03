//! Per-network rules of the header chain that the `bitcoin` crate's
//! [`Params`] does not carry: BIP94, the buried soft-fork heights as Bitcoin
//! Core has them today, checkpoints and the minimum chain work.

use bitcoin::blockdata::constants::genesis_block;
use bitcoin::params::Params;
use bitcoin::pow::{CompactTarget, Work};
use bitcoin::{BlockHash, Network};

/// A block every valid chain must contain at `height`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checkpoint {
    /// Height of the block.
    pub height: u32,
    /// Its hash.
    pub hash: BlockHash,
}

/// Mainnet checkpoints, as Bitcoin Core shipped them (`chainparams.cpp`,
/// 0.9 – 0.29 era). Core has since dropped checkpoints in favour of the
/// minimum chain work and headers presync; we keep them because they are
/// cheap and make a low-difficulty fork of the early chain impossible to
/// store, not just impossible to select.
const MAINNET_CHECKPOINTS: &[(u32, &str)] = &[
    (
        11_111,
        "0000000069e244f73d78e8fd29ba2fd2ed618bd6fa2ee92559f542fdb26e7c1d",
    ),
    (
        33_333,
        "000000002dd5588a74784eaa7ab0507a18ad16a236e7b1ce69f00d7ddfb5d0a6",
    ),
    (
        74_000,
        "0000000000573993a3c9e41ce34471c079dcf5f52a0e824a81e7f953b8661a20",
    ),
    (
        105_000,
        "00000000000291ce28027faea320c8d2b054b2e0fe44a773f3eefb151d6bdc97",
    ),
    (
        134_444,
        "00000000000005b12ffd4cd315cd34ffd4a594f430ac814c91184a0d42d2b0fe",
    ),
    (
        168_000,
        "000000000000099e61ea72015e79632f216fe6cb33d7899acb35b75c8303b763",
    ),
    (
        193_000,
        "000000000000059f452a5f7340de6682a977387c17010ff6e6c3bd83ca8b1317",
    ),
    (
        210_000,
        "000000000000048b95347e83192f69cf0366076336c639f9b7228e9ba171342e",
    ),
    (
        216_116,
        "00000000000001b4f4b433e81ee46494af945cf96014816a4e2370f11b23df4e",
    ),
    (
        225_430,
        "00000000000001c108384350f74090433e7fcf79a606b8e797f065b130575932",
    ),
    (
        250_000,
        "000000000000003887df1f29024b06fc2200b55f8af8f35453d7be294df2d214",
    ),
    (
        279_000,
        "0000000000000001ae8c72a0b0c301f67e3afca10e819efa9041e458e9bd7e40",
    ),
    (
        295_000,
        "00000000000000004d9b4ef50f0f9d686fd69db2e03af35a100370c64632a983",
    ),
];

/// Number of mainnet checkpoints (for tests: every entry must parse).
pub const MAINNET_CHECKPOINT_COUNT: usize = MAINNET_CHECKPOINTS.len();

/// The minimum chain work Bitcoin Core 30 ships (`nMinimumChainWork`), as
/// the low 128 bits (every value is far below 2^128).
///
/// mainnet: chainwork of block 912 683; testnet3: block 4 550 000;
/// testnet4: block 91 000; signet: block 267 665 (Core's figures).
fn minimum_chain_work_low128(network: Network) -> u128 {
    match network {
        Network::Bitcoin => 0xdee8_e2a3_09ad_8a98_2043_3c68,
        Network::Testnet => 0x16dd_270d_d94f_ac1d_7632,
        Network::Testnet4 => 0x034a_4690_fe59_2dc4_9c7c,
        Network::Signet => 0x067d_328e_681a,
        _ => 0,
    }
}

/// `x` as a 256-bit big-endian [`Work`].
fn work_from_u128(x: u128) -> Work {
    let mut bytes = [0u8; 32];
    bytes[16..].copy_from_slice(&x.to_be_bytes());
    Work::from_be_bytes(bytes)
}

/// Everything [`HeaderChain`](super::HeaderChain) needs to validate headers
/// of one network.
#[derive(Debug, Clone)]
pub struct ChainParams {
    /// The network.
    pub network: Network,
    /// The `bitcoin` crate's consensus parameters: pow limit, spacing,
    /// timespan, `allow_min_difficulty_blocks`, `no_pow_retargeting`.
    pub consensus: Params,
    /// BIP94 (testnet4): retarget from the first block of the period and
    /// forbid timewarp at period boundaries.
    pub enforce_bip94: bool,
    /// First height at which a header must have version ≥ 2.
    pub bip34_height: u32,
    /// First height at which a header must have version ≥ 3.
    pub bip66_height: u32,
    /// First height at which a header must have version ≥ 4.
    pub bip65_height: u32,
    /// Blocks the chain must contain, sorted by height.
    pub checkpoints: Vec<Checkpoint>,
    /// Anti-DoS floor: a chain with less total work is not to be trusted as
    /// the network's chain (see [`HeaderChain::has_minimum_chain_work`](super::HeaderChain::has_minimum_chain_work)).
    pub minimum_chain_work: Work,
    /// The pow limit as nBits, the "minimum difficulty" value.
    pub pow_limit_bits: CompactTarget,
}

impl ChainParams {
    /// The parameters Bitcoin Core uses for `network`.
    pub fn new(network: Network) -> ChainParams {
        let consensus = Params::new(network);
        // The crate still has regtest's historic BIP65/66 heights; Core has
        // activated all three from height 1 on regtest since v23.
        let (bip34, bip66, bip65) = match network {
            Network::Regtest => (1, 1, 1),
            _ => (
                consensus.bip34_height,
                consensus.bip66_height,
                consensus.bip65_height,
            ),
        };
        let checkpoints = match network {
            Network::Bitcoin => MAINNET_CHECKPOINTS
                .iter()
                .filter_map(|(height, hex)| {
                    hex.parse::<BlockHash>().ok().map(|hash| Checkpoint {
                        height: *height,
                        hash,
                    })
                })
                .collect(),
            _ => Vec::new(),
        };
        let pow_limit_bits = consensus.max_attainable_target.to_compact_lossy();
        ChainParams {
            network,
            enforce_bip94: network == Network::Testnet4,
            bip34_height: bip34,
            bip66_height: bip66,
            bip65_height: bip65,
            checkpoints,
            minimum_chain_work: work_from_u128(minimum_chain_work_low128(network)),
            pow_limit_bits,
            consensus,
        }
    }

    /// Replaces the checkpoints (e.g. to test checkpoint handling on
    /// regtest). They are sorted by height here.
    pub fn with_checkpoints(mut self, mut checkpoints: Vec<Checkpoint>) -> ChainParams {
        checkpoints.sort_by_key(|c| c.height);
        self.checkpoints = checkpoints;
        self
    }

    /// Replaces the minimum chain work.
    pub fn with_minimum_chain_work(mut self, work: Work) -> ChainParams {
        self.minimum_chain_work = work;
        self
    }

    /// Blocks per difficulty period (2016 on every public network).
    pub fn interval(&self) -> u32 {
        u32::try_from(self.consensus.difficulty_adjustment_interval()).unwrap_or(u32::MAX)
    }

    /// An upper bound on the height an honest chain can have reached at
    /// `now_unix`: the blocks one per target spacing since genesis would
    /// give, plus 25%, plus one difficulty period (2016 blocks), saturating
    /// at `u32::MAX`. Before the genesis time it is one period.
    ///
    /// Honest chains average close to their target spacing, because the
    /// difficulty follows the hash rate. They run somewhat ahead of it,
    /// since the difficulty lags a growing hash rate by up to a period:
    /// mainnet has been a few percent ahead of the 10-minute schedule for
    /// years (its own history), and a young test network mined by a few
    /// large miners can be a period or so ahead. 25% slack covers the
    /// first many times over and the extra period covers the second. A
    /// peer claiming a chain higher than this is not showing us the honest
    /// chain, whatever work it claims, so sync need not spend memory on it.
    pub fn plausible_height(&self, now_unix: u64) -> u32 {
        let genesis = genesis_block(&self.consensus).header.time;
        let elapsed = now_unix.saturating_sub(u64::from(genesis));
        let spacing = self.consensus.pow_target_spacing.max(1);
        let on_schedule = elapsed / spacing;
        let bound = on_schedule.saturating_mul(5) / 4;
        let bound = bound.saturating_add(u64::from(self.interval()));
        u32::try_from(bound).unwrap_or(u32::MAX)
    }

    /// The checkpoint at `height`, if any.
    pub fn checkpoint_at(&self, height: u32) -> Option<&Checkpoint> {
        self.checkpoints
            .binary_search_by_key(&height, |c| c.height)
            .ok()
            .and_then(|i| self.checkpoints.get(i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-11-01T00:00:00Z.
    const NOV_2026: u64 = 1_793_491_200;

    #[test]
    fn plausible_height_bounds_mainnet_with_room() {
        let p = ChainParams::new(Network::Bitcoin);
        let bound = p.plausible_height(NOV_2026);
        // Above the real chain (a few percent ahead of schedule, about
        // 930 000 then by the brief's estimate) yet far below what a
        // fabricated chain would claim.
        assert!(bound > 930_000, "{bound}");
        assert!(bound < 1_300_000, "{bound}");
        // (1 793 491 200 − 1 231 006 505) / 600 = 937 474 on schedule.
        assert_eq!(bound, 937_474 * 5 / 4 + 2016);
    }

    #[test]
    fn plausible_height_saturates() {
        let p = ChainParams::new(Network::Bitcoin);
        // Before genesis: just the slack period.
        assert_eq!(p.plausible_height(0), 2016);
        assert_eq!(p.plausible_height(u64::MAX), u32::MAX);
        // Later is never lower.
        assert!(p.plausible_height(NOV_2026 + 600) >= p.plausible_height(NOV_2026));
    }
}
