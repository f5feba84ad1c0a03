//! Arti's "this version is obsolete" shutdown, seen from the embedding
//! application.
//!
//! When a new consensus lists as *required* a client protocol this Arti
//! does not implement, arti-client 0.47 logs an error, waits five seconds
//! and calls `std::process::exit(1)` (its README; upstream issue 1932). It
//! offers no event or callback first. The one sign an application gets is
//! that error event, emitted through `tracing` from Arti's protocol-status
//! module. This module names it, so that nightjar's logging can watch for
//! it and shut down in order, with its own exit status, inside those five
//! seconds. At start, with such a consensus already cached, Arti returns an
//! error instead ([`TorErrorKind::SoftwareObsolete`](crate::TorErrorKind)).
//!
//! Checked against arti-client 0.47.0 (`src/protostatus.rs` and the
//! `on_fatal` closure in `src/client.rs`); re-check on every Arti upgrade.

use std::time::Duration;

/// The `tracing` target of Arti's protocol-status check.
pub const NOTICE_TARGET: &str = "arti_client::protostatus";

/// How long after its notice Arti ends the process.
pub const ARTI_EXIT_DELAY: Duration = Duration::from_secs(5);

/// Whether an event with this target and level is Arti announcing that it
/// is about to end the process: only its ERROR is (a missing *recommended*
/// protocol is logged at INFO and changes nothing).
pub fn is_obsolete_notice(target: &str, level: tracing::Level) -> bool {
    level == tracing::Level::ERROR && target == NOTICE_TARGET
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_error_from_the_protocol_check_counts() {
        assert!(is_obsolete_notice(NOTICE_TARGET, tracing::Level::ERROR));
        assert!(!is_obsolete_notice(NOTICE_TARGET, tracing::Level::INFO));
        assert!(!is_obsolete_notice(
            "arti_client::client",
            tracing::Level::ERROR
        ));
    }
}
