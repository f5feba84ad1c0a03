//! Token buckets: how much a peer may send us, and how fast.
//!
//! A token bucket holds up to `capacity` tokens and refills at `rate` per
//! second; each unit of work spends tokens. Unlike a lifetime average (which
//! lets a peer that idled for an hour burst thousands of messages), the bucket
//! bounds every burst by its capacity.

use std::time::Instant;

/// A token bucket driven by caller-supplied time.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    tokens: f64,
    capacity: f64,
    rate_per_sec: f64,
    updated: Instant,
}

impl TokenBucket {
    /// A bucket holding `initial` tokens (at most `capacity`), refilled at
    /// `rate_per_sec`.
    pub fn new(capacity: f64, rate_per_sec: f64, initial: f64, now: Instant) -> Self {
        TokenBucket {
            tokens: initial.min(capacity),
            capacity,
            rate_per_sec,
            updated: now,
        }
    }

    /// A full bucket.
    pub fn full(capacity: f64, rate_per_sec: f64, now: Instant) -> Self {
        Self::new(capacity, rate_per_sec, capacity, now)
    }

    /// Add the tokens earned since the last update. Time never runs backwards
    /// here: an earlier `now` earns nothing.
    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.updated);
        self.tokens = (self.tokens + elapsed.as_secs_f64() * self.rate_per_sec).min(self.capacity);
        if now > self.updated {
            self.updated = now;
        }
    }

    /// Spend `cost` tokens if there are that many; report whether it worked.
    pub fn try_take(&mut self, cost: f64, now: Instant) -> bool {
        self.refill(now);
        if self.tokens >= cost {
            self.tokens -= cost;
            true
        } else {
            false
        }
    }

    /// Spend up to `want` whole tokens; returns how many were granted.
    pub fn take_up_to(&mut self, want: usize, now: Instant) -> usize {
        self.refill(now);
        let granted = (self.tokens.floor().max(0.0) as usize).min(want);
        self.tokens -= granted as f64;
        granted
    }

    /// Add tokens beyond the refill (for example when we ask for addresses),
    /// still capped at capacity.
    pub fn credit(&mut self, amount: f64, now: Instant) {
        self.refill(now);
        self.tokens = (self.tokens + amount).min(self.capacity);
    }

    /// Tokens available now.
    pub fn available(&mut self, now: Instant) -> f64 {
        self.refill(now);
        self.tokens
    }
}

/// Message rate: sustained messages per second. A headers-first node with
/// no transaction relay sees a few messages per second from a busy peer
/// (inv announcements, headers, pings); 20/s is ample.
pub const MESSAGE_RATE_PER_SEC: f64 = 20.0;

/// Message burst: a `getdata`/`getheaders` answer or a reconnect backlog
/// arrives in bursts; 500 queued messages is far beyond any honest one.
pub const MESSAGE_BURST: f64 = 500.0;

/// Byte rate: sustained bytes per second. A 2000-header reply is 162 kB; a
/// Tor circuit carries at most a few MB/s; 1 MB/s sustained leaves room.
pub const BYTE_RATE_PER_SEC: f64 = 1_000_000.0;

/// Byte burst: one maximum-size message (4 MB) plus slack.
pub const BYTE_BURST: f64 = 8_000_000.0;

/// Core's `MAX_ADDR_RATE_PER_SECOND`: gossip beyond 0.1 address/s is dropped.
pub const ADDR_RATE_PER_SEC: f64 = 0.1;

/// Core's `MAX_ADDR_PROCESSING_TOKEN_BUCKET` (= `MAX_ADDR_TO_SEND`): the most
/// addresses a peer can bank.
pub const ADDR_BUCKET_CAPACITY: f64 = 1000.0;

/// Core starts every peer with one address token (for its self-announcement).
pub const ADDR_INITIAL_TOKENS: f64 = 1.0;

/// Core's `MAX_ADDR_TO_SEND`: an `addr`/`addrv2` message with more entries is
/// a protocol violation.
pub const MAX_ADDRS_PER_MESSAGE: usize = 1000;

/// Core's `MAX_INV_SZ`: the most entries an `inv`, `getdata` or `notfound`
/// may carry; more is misbehaviour (Core discourages the peer).
pub const MAX_INV_ENTRIES: usize = 50_000;

/// Dropped gossip after which a peer is an address flooder, not merely
/// eager: ten full messages beyond its budget.
pub const ADDR_FLOOD_DROPPED_LIMIT: usize = 10 * MAX_ADDRS_PER_MESSAGE;

/// Pings a peer may send in a burst. Each costs us a pong; honest peers ping
/// every couple of minutes.
pub const PING_BURST: f64 = 10.0;

/// Sustained pings per second a peer may send (one every 5 s).
pub const PING_RATE_PER_SEC: f64 = 0.2;

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn bursts_are_bounded_and_refill_with_time() {
        let t0 = Instant::now();
        let mut b = TokenBucket::full(10.0, 1.0, t0);
        for _ in 0..10 {
            assert!(b.try_take(1.0, t0));
        }
        assert!(!b.try_take(1.0, t0), "burst beyond capacity");
        assert!(b.try_take(1.0, t0 + Duration::from_secs(1)));
        // An hour of silence earns no more than the capacity.
        let later = t0 + Duration::from_secs(3600);
        assert_eq!(b.take_up_to(1000, later), 10);
    }

    #[test]
    fn credit_and_partial_grants() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(1000.0, 0.1, 1.0, t0);
        assert_eq!(b.take_up_to(5, t0), 1);
        b.credit(1000.0, t0);
        assert_eq!(b.take_up_to(1500, t0), 1000);
        assert_eq!(b.take_up_to(1, t0), 0);
        // Going back in time earns nothing and does not panic.
        let earlier = t0.checked_sub(Duration::from_secs(1)).unwrap();
        assert_eq!(b.take_up_to(1, earlier), 0);
    }
}
