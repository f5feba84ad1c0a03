//! Simulated time: a fixed base plus an offset that only the simulator moves.

use std::time::{Duration, Instant};

use nightjar::engine::Now;

/// The unix time at which every simulation starts (2025-06-15 14:40 UTC).
/// Fixed, so `version` timestamps and address-book times are the same in
/// every run.
pub const SIM_EPOCH_UNIX: u64 = 1_750_000_000;

/// The simulated clock.
///
/// The engine and the peer machines take `Instant`s, which cannot be made
/// from nothing; so one real `Instant` is captured when the clock is made
/// and every simulated instant is that base plus the simulated offset. Only
/// differences between instants ever matter to the code under test, so the
/// real value of the base does not leak into its behaviour; the trace
/// records offsets, never instants, so it is the same in every run.
#[derive(Debug, Clone, Copy)]
pub struct SimClock {
    base: Instant,
    offset: Duration,
}

impl SimClock {
    /// A clock at offset zero.
    pub fn new() -> Self {
        SimClock {
            base: Instant::now(),
            offset: Duration::ZERO,
        }
    }

    /// Time since the start of the simulation.
    pub fn offset(&self) -> Duration {
        self.offset
    }

    /// The monotonic instant of the current time.
    pub fn instant(&self) -> Instant {
        self.base + self.offset
    }

    /// The current time as the engine takes it.
    pub fn now(&self) -> Now {
        Now {
            mono: self.instant(),
            unix: SIM_EPOCH_UNIX + self.offset.as_secs(),
        }
    }

    /// The offset of `instant` (zero for instants before the start).
    pub fn offset_of(&self, instant: Instant) -> Duration {
        instant.saturating_duration_since(self.base)
    }

    /// Moves the clock to `offset`; time never runs backwards, so an earlier
    /// offset leaves it where it is.
    pub fn advance_to(&mut self, offset: Duration) {
        self.offset = self.offset.max(offset);
    }
}

impl Default for SimClock {
    fn default() -> Self {
        SimClock::new()
    }
}
