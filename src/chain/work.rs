//! Cumulative chain work in a form cheap to add and compare.

use bitcoin::pow::Work;

/// Cumulative work as two native 128-bit halves: [`Work`] keeps a private
/// 256-bit integer whose only checked addition goes through byte arrays,
/// and summing and comparing work is done for every header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub(crate) struct ChainWork {
    // Field order matters: the derived `Ord` compares `hi` first.
    hi: u128,
    lo: u128,
}

impl ChainWork {
    pub(crate) fn from_work(work: Work) -> ChainWork {
        let bytes = work.to_be_bytes();
        let mut hi = [0u8; 16];
        let mut lo = [0u8; 16];
        hi.copy_from_slice(&bytes[..16]);
        lo.copy_from_slice(&bytes[16..]);
        ChainWork {
            hi: u128::from_be_bytes(hi),
            lo: u128::from_be_bytes(lo),
        }
    }

    pub(crate) fn to_work(self) -> Work {
        let mut bytes = [0u8; 32];
        bytes[..16].copy_from_slice(&self.hi.to_be_bytes());
        bytes[16..].copy_from_slice(&self.lo.to_be_bytes());
        Work::from_be_bytes(bytes)
    }

    /// `self + other`, or `None` past 2^256.
    pub(crate) fn checked_add(self, other: ChainWork) -> Option<ChainWork> {
        let (lo, carry) = self.lo.overflowing_add(other.lo);
        let hi = self
            .hi
            .checked_add(other.hi)?
            .checked_add(u128::from(carry))?;
        Some(ChainWork { hi, lo })
    }

    /// `self + other`, saturating: for sums of work already accepted into
    /// the chain, which [`ChainWork::checked_add`] bounded on the way in.
    pub(crate) fn saturating_add(self, other: ChainWork) -> ChainWork {
        self.checked_add(other).unwrap_or(ChainWork {
            hi: u128::MAX,
            lo: u128::MAX,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_carries() {
        let one = ChainWork::from_work(Work::from_be_bytes({
            let mut b = [0u8; 32];
            b[31] = 1;
            b
        }));
        let low_max = ChainWork {
            hi: 0,
            lo: u128::MAX,
        };
        let sum = low_max.checked_add(one).unwrap();
        assert_eq!(sum, ChainWork { hi: 1, lo: 0 });
        assert_eq!(ChainWork::from_work(sum.to_work()), sum);
        let max = ChainWork {
            hi: u128::MAX,
            lo: u128::MAX,
        };
        assert_eq!(max.checked_add(one), None);
        assert_eq!(max.saturating_add(one), max);
    }
}
