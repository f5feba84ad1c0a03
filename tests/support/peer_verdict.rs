//! What a daemon test reads off a finished connection and the process:
//! the weight of the reason the daemon logged, and its resident memory.
//! Shared by the hostile-peer suites (`#[path]`-included).

#![allow(dead_code, unreachable_pub)]

use nightjar::peer::DisconnectReason;
use nightjar::peer::reason::{Flood, HandshakeViolation};
use nightjar::wire::WireError;

/// The weight the daemon gives the reason it logged, found by turning the
/// logged text back into the daemon's own [`DisconnectReason`].
pub fn score_of(reason: &str) -> Option<u32> {
    let r = if reason.starts_with("handshake timed out") {
        DisconnectReason::HandshakeTimeout
    } else if reason.starts_with("ping not answered") {
        DisconnectReason::PongTimeout
    } else if reason.starts_with("handshake violation") {
        DisconnectReason::Handshake(HandshakeViolation::MessageBeforeVersion)
    } else if reason.starts_with("obsolete protocol version") {
        DisconnectReason::ObsoleteVersion(0)
    } else if reason.starts_with("invalid message") {
        DisconnectReason::Wire(WireError::BadCommand)
    } else if reason.starts_with("addr message with") {
        DisconnectReason::OversizedAddr(0)
    } else if reason.starts_with("rate limit exceeded") {
        DisconnectReason::Flood(Flood::Messages)
    } else if let Some(n) = reason.strip_prefix("misbehaviour score ") {
        DisconnectReason::Misbehaving(n.trim().parse().ok()?)
    } else if reason.starts_with("peer closed the connection") {
        DisconnectReason::PeerClosed
    } else if reason.starts_with("connection closed mid-message") {
        DisconnectReason::TruncatedFrame
    } else if reason.starts_with("I/O error") {
        DisconnectReason::Io(String::new())
    } else if reason.starts_with("peer stopped reading") {
        DisconnectReason::WriterStalled
    } else if reason.starts_with("v2 decryption failed") {
        DisconnectReason::Decryption
    } else if reason.starts_with("peer lacks required services") {
        DisconnectReason::MissingServices
    } else if reason.starts_with("closed locally") {
        DisconnectReason::Local(String::new())
    } else {
        return None;
    };
    Some(r.weight())
}

/// Resident memory of process `pid`, KiB.
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}
