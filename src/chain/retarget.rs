//! Difficulty retargeting at a period boundary (Core's
//! `CalculateNextWorkRequired`), on top of the `bitcoin` crate's
//! [`CompactTarget::from_next_work_required`], which does the 256-bit
//! arithmetic, the 4× clamp and the pow-limit cap.

use bitcoin::pow::CompactTarget;

use super::params::ChainParams;

/// The bits and time of one header, all retargeting looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BitsAndTime {
    /// The header's nBits.
    pub bits: CompactTarget,
    /// The header's timestamp.
    pub time: u32,
}

/// The nBits required of the first block of a new period.
///
/// `first` is the first block of the period that just ended (height
/// `h − 2016` for a new block at `h`), `last` its last block (the new
/// block's parent). Core measures the period from `first` to `last`, which
/// spans 2015 intervals, not 2016: the famous off-by-one, kept because it is
/// consensus.
///
/// The old target is `last`'s, except under BIP94 (testnet4), where it is
/// `first`'s: the first block of a period may never use the
/// min-difficulty exception, so it carries the period's real difficulty.
pub fn calculate_next_work_required(
    params: &ChainParams,
    first: BitsAndTime,
    last: BitsAndTime,
) -> CompactTarget {
    if params.consensus.no_pow_retargeting {
        return last.bits;
    }
    let old = if params.enforce_bip94 {
        first.bits
    } else {
        last.bits
    };
    // Core computes the timespan in signed 64 bits; a negative span (last
    // block timestamped before the first) clamps to the minimum like any
    // short one, and the crate clamps from below, so zero stands in for it.
    let span = i64::from(last.time) - i64::from(first.time);
    let span = u64::try_from(span).unwrap_or(0);
    CompactTarget::from_next_work_required(old, span, &params.consensus)
}
