//! Where a chain was cut back, for a store that wrote it before the cut.

/// Where a chain was cut back by `HeaderChain::truncate`, so a store that
/// last wrote it before the cut knows which of its records are stale.
///
/// Each truncation gets a sequence number; `marks` keeps, for the latest
/// ones, `(sequence, length)` with lengths increasing, which is all that is
/// needed to answer "the shortest length since sequence `s`" (an older cut
/// to a longer length is hidden by a newer, shorter one). It is bounded by
/// merging its two oldest marks, which can only understate the answer: a
/// store then rewrites more than needed, never less.
#[derive(Debug, Clone, Default)]
pub(crate) struct TruncationLog {
    seq: u64,
    marks: Vec<(u64, usize)>,
}

/// Marks a [`TruncationLog`] keeps at most.
const MAX_TRUNCATION_MARKS: usize = 16;

impl TruncationLog {
    /// Notes a cut to `len` entries.
    pub(crate) fn record(&mut self, len: usize) {
        self.seq += 1;
        while self.marks.last().is_some_and(|&(_, l)| l >= len) {
            self.marks.pop();
        }
        self.marks.push((self.seq, len));
        if self.marks.len() > MAX_TRUNCATION_MARKS {
            let (_, oldest_len) = self.marks.remove(0);
            if let Some(next) = self.marks.first_mut() {
                next.1 = oldest_len;
            }
        }
    }

    /// Sequence number of the latest cut (0 if none).
    pub(crate) fn seq(&self) -> u64 {
        self.seq
    }

    /// A length up to which entries are unchanged since sequence `seen`
    /// (`usize::MAX` when nothing was cut since).
    pub(crate) fn unchanged_since(&self, seen: u64) -> usize {
        self.marks
            .iter()
            .find(|(seq, _)| *seq > seen)
            .map_or(usize::MAX, |&(_, len)| len)
    }
}
