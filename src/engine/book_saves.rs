//! When to write the address book out (issue 16, D6).
//!
//! Core writes `peers.dat` every 15 minutes, so a crash loses up to 15
//! minutes of learning. That matters most at the start: a new node learns
//! its first thousand addresses in its first minute, and losing them sends
//! it back to the seeds (over Tor, but still a lookup an observer of the
//! seeds could count). So a book that has *grown* noticeably since its last
//! save is saved within a minute; otherwise the 15-minute rhythm holds.
//! Growth by a tenth can happen only a bounded number of times (the book
//! has a fixed capacity), so the quick saves cannot become a steady stream
//! of writes; churn that does not grow the book waits for the next
//! 15-minute save.

use std::time::{Duration, Instant};

/// The regular save interval (Core's `DUMP_PEERS_INTERVAL`).
pub const REGULAR: Duration = Duration::from_secs(15 * 60);

/// The shortest gap between two saves, also for a growing book.
pub const SOONEST: Duration = Duration::from_secs(60);

/// The growth since the last save that brings the next save forward: a
/// tenth of the book, and never fewer than this many addresses.
const MIN_GROWTH: usize = 10;

/// The save schedule.
#[derive(Debug, Default)]
pub struct BookSaves {
    /// When the last save was asked for (or the engine started).
    last: Option<Instant>,
    /// The book's size at the last save.
    saved_len: usize,
}

impl BookSaves {
    /// Starts the clock at the first input, with the book as loaded.
    pub fn start(&mut self, now: Instant, len: usize) {
        if self.last.is_none() {
            self.last = Some(now);
            self.saved_len = len;
        }
    }

    /// Whether to save now, with the book at `len` addresses; if so, the
    /// save is counted as done.
    pub fn due(&mut self, now: Instant, len: usize) -> bool {
        let Some(last) = self.last else {
            self.start(now, len);
            return false;
        };
        let since = now.saturating_duration_since(last);
        if since >= REGULAR || (self.grew(len) && since >= SOONEST) {
            self.last = Some(now);
            self.saved_len = len;
            return true;
        }
        false
    }

    /// When [`due`](Self::due) may next say yes, for the engine's timer:
    /// a minute after the last save if the book has grown, else the
    /// regular interval.
    pub fn next(&self, len: usize) -> Option<Instant> {
        let last = self.last?;
        Some(last + if self.grew(len) { SOONEST } else { REGULAR })
    }

    /// Whether a book of `len` addresses has grown enough since the last
    /// save to bring the next one forward.
    fn grew(&self, len: usize) -> bool {
        len.saturating_sub(self.saved_len) >= MIN_GROWTH.max(self.saved_len / 10)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_growing_book_is_saved_within_a_minute_and_not_sooner() {
        let t0 = Instant::now();
        let mut saves = BookSaves::default();
        saves.start(t0, 0);
        assert!(!saves.due(t0 + Duration::from_secs(30), 1000), "too soon");
        assert_eq!(saves.next(1000), Some(t0 + SOONEST));
        assert!(saves.due(t0 + SOONEST, 1000));
        // Small growth waits for the regular save.
        assert!(!saves.due(t0 + SOONEST * 3, 1050));
        assert_eq!(saves.next(1050), Some(t0 + SOONEST + REGULAR));
        assert!(saves.due(t0 + SOONEST + REGULAR, 1050));
    }

    #[test]
    fn an_unchanged_book_keeps_cores_rhythm() {
        let t0 = Instant::now();
        let mut saves = BookSaves::default();
        saves.start(t0, 500);
        assert!(!saves.due(t0 + Duration::from_secs(15 * 60 - 1), 500));
        assert!(saves.due(t0 + REGULAR, 500));
        assert!(!saves.due(t0 + REGULAR + SOONEST, 500));
    }

    #[test]
    fn quick_saves_are_bounded_by_the_books_growth() {
        // Growing by 1000 addresses a minute up to a full book (81 920)
        // takes few quick saves, since each needs a tenth more.
        let t0 = Instant::now();
        let mut saves = BookSaves::default();
        saves.start(t0, 0);
        let mut quick = 0;
        for minute in 1..=82u32 {
            let len = (minute as usize * 1000).min(81_920);
            if saves.due(t0 + SOONEST * minute, len) {
                quick += 1;
            }
        }
        assert!(quick < 40, "{quick} saves in 82 minutes");
        assert!(quick >= 10, "{quick}: growth brought saves forward");
    }
}
