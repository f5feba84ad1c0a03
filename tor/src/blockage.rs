//! Why bootstrap is stuck, in words a user can act on.
//!
//! Arti's own text ("We seem to be offline (…)", "Client has been disabled
//! (…)") is written for Arti's developers and, for a client that starts
//! bootstrap by hand, begins with a warning about a state that is not a
//! problem. This module decides what is worth reporting and says what to
//! try; Arti's words stay in parentheses for a bug report.

use std::time::Duration;

use arti_client::status::BlockageKind;

/// What to try when no relay can be reached at all.
const REACH_HINT: &str = "check that this machine is online and that no firewall blocks \
     outgoing connections; where Tor itself is blocked, bridges are needed \
     (nightjar does not support them yet); nightjar keeps trying";

/// Our report of one of Arti's blockages, or `None` when it is not a
/// problem to report: `Disabled` only means "bootstrap not started yet",
/// which is true for a moment at every start.
pub(crate) fn describe(kind: &BlockageKind, arti: &str) -> Option<String> {
    let text = match kind {
        BlockageKind::Disabled => return None,
        BlockageKind::Offline => {
            format!("cannot reach any Tor relay: no connection to one has succeeded; {REACH_HINT}")
        }
        BlockageKind::CantReachTor => {
            format!("cannot reach the Tor network; {REACH_HINT}")
        }
        BlockageKind::Filtering => "connections to Tor relays are cut off during the Tor \
             handshake: this network seems to filter Tor, which bridges get around \
             (nightjar does not support them yet); nightjar keeps trying"
            .to_owned(),
        BlockageKind::ClockSkewed => "the system clock seems to be wrong, so relays' \
             certificates and the Tor directory look invalid: set the clock (enable NTP); \
             nightjar retries by itself"
            .to_owned(),
        BlockageKind::CantBootstrap => {
            "relays answer but the Tor directory cannot be downloaded; nightjar keeps trying"
                .to_owned()
        }
        // A kind added by a later Arti: its own words are all we have.
        _ => "Tor bootstrap is stuck; nightjar keeps trying".to_owned(),
    };
    Some(format!("{text} (Arti: {kind}: {arti})"))
}

/// Our report when bootstrap has made no progress at all for `waited`: no
/// relay answered (see `settings::NO_RELAY_REPORT_AFTER`).
pub(crate) fn no_relay_answered(waited: Duration) -> String {
    format!(
        "cannot reach any Tor relay: none answered in {} s; {REACH_HINT}",
        waited.as_secs()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_started_yet_is_not_a_blockage() {
        assert_eq!(
            describe(
                &BlockageKind::Disabled,
                "Client is waiting to be told to bootstrap"
            ),
            None
        );
    }

    #[test]
    fn unreachable_relays_are_said_plainly_with_what_to_try() {
        for kind in [BlockageKind::Offline, BlockageKind::CantReachTor] {
            let text = describe(&kind, "no TCP").unwrap();
            assert!(text.starts_with("cannot reach"), "{text}");
            assert!(
                text.contains("firewall") && text.contains("bridges"),
                "{text}"
            );
            assert!(text.ends_with("no TCP)"), "Arti's words are kept: {text}");
        }
        let text = no_relay_answered(Duration::from_secs(20));
        assert!(text.contains("none answered in 20 s"), "{text}");
        assert!(text.contains("online"), "{text}");
    }

    #[test]
    fn every_other_kind_says_what_is_wrong() {
        let filtered = describe(&BlockageKind::Filtering, "x").unwrap();
        assert!(filtered.contains("filter Tor"), "{filtered}");
        let clock = describe(&BlockageKind::ClockSkewed, "x").unwrap();
        assert!(clock.contains("clock"), "{clock}");
        let dir = describe(&BlockageKind::CantBootstrap, "x").unwrap();
        assert!(dir.contains("directory"), "{dir}");
    }
}
