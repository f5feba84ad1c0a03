//! Bytes on the wire, for `getnettotals`: every peer task adds what it
//! writes and reads (whole messages as framed, v1 or v2), whatever the
//! transport or direction of the connection.
//!
//! One process-wide pair of counters, as Core's connection manager keeps:
//! the totals belong to the process, not to any one engine or task.

use std::sync::atomic::{AtomicU64, Ordering};

static SENT: AtomicU64 = AtomicU64::new(0);
static RECEIVED: AtomicU64 = AtomicU64::new(0);

/// Count `bytes` written to a peer.
pub fn record_sent(bytes: usize) {
    SENT.fetch_add(bytes as u64, Ordering::Relaxed);
}

/// Count `bytes` read from a peer.
pub fn record_received(bytes: usize) {
    RECEIVED.fetch_add(bytes as u64, Ordering::Relaxed);
}

/// (received, sent) since the process started.
pub fn totals() -> (u64, u64) {
    (
        RECEIVED.load(Ordering::Relaxed),
        SENT.load(Ordering::Relaxed),
    )
}
