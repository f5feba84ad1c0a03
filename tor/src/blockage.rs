//! Why bootstrap is stuck, in words a user can act on, and which stage it
//! is at when bridges carry it.
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
     outgoing connections; where Tor itself is blocked, configure bridges \
     ([tor] bridges or --bridge); nightjar keeps trying";

/// What to try when no bridge can be reached.
const BRIDGE_HINT: &str = "check that this machine is online, that the bridge lines are \
     current (bridges change address: get fresh ones from https://bridges.torproject.org \
     or by mail to bridges@torproject.org) and that the transport binary runs; nightjar \
     keeps trying";

/// The bridges bootstrap goes through, as reports name them (e.g.
/// `obfs4 bridge #1 at [scrubbed]`, see `BridgeLine::report_name`); empty
/// without bridges.
#[derive(Debug, Clone, Default)]
pub(crate) struct Bridges(pub(crate) Vec<String>);

impl Bridges {
    /// `cannot reach the bridge (obfs4 bridge #1 at [scrubbed])`.
    fn unreachable(&self) -> String {
        let what = if self.0.len() == 1 {
            "the bridge"
        } else {
            "any of the bridges"
        };
        format!("cannot reach {what} ({})", self.0.join(", "))
    }

    /// Arti's stage summary, said of bridges when there are any: its
    /// "connecting to the internet" is then "connecting to a bridge", and
    /// the whole stage is marked as going through the bridges.
    pub(crate) fn stage(&self, arti: &str) -> String {
        if self.0.is_empty() {
            return arti.to_owned();
        }
        let text = arti
            .replace("connecting to the internet", "connecting to a bridge")
            .replace(
                "unable to connect to the internet",
                "unable to reach a bridge",
            )
            .replace("with Tor relays", "with a bridge");
        format!("through bridges: {text}")
    }
}

/// Our report of one of Arti's blockages, or `None` when it is not a
/// problem to report: `Disabled` only means "bootstrap not started yet",
/// which is true for a moment at every start.
pub(crate) fn describe(kind: &BlockageKind, arti: &str, bridges: &Bridges) -> Option<String> {
    let bridged = !bridges.0.is_empty();
    let text = match kind {
        BlockageKind::Disabled => return None,
        BlockageKind::Offline | BlockageKind::CantReachTor if bridged => {
            format!("{}; {BRIDGE_HINT}", bridges.unreachable())
        }
        BlockageKind::Offline => {
            format!("cannot reach any Tor relay: no connection to one has succeeded; {REACH_HINT}")
        }
        BlockageKind::CantReachTor => {
            format!("cannot reach the Tor network; {REACH_HINT}")
        }
        BlockageKind::Filtering if bridged => "connections to the bridges are cut off during \
             the handshake: try bridges with another transport (obfs4 hides the Tor handshake); \
             nightjar keeps trying"
            .to_owned(),
        BlockageKind::Filtering => "connections to Tor relays are cut off during the Tor \
             handshake: this network seems to filter Tor, which bridges get around ([tor] \
             bridges or --bridge); nightjar keeps trying"
            .to_owned(),
        BlockageKind::ClockSkewed => "the system clock seems to be wrong, so relays' \
             certificates and the Tor directory look invalid: set the clock (enable NTP); \
             nightjar retries by itself"
            .to_owned(),
        BlockageKind::CantBootstrap if bridged => "the bridges answer but the Tor directory \
             cannot be downloaded through them; nightjar keeps trying"
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
/// relay (or bridge) answered (see `settings::NO_RELAY_REPORT_AFTER`).
pub(crate) fn no_relay_answered(waited: Duration, bridges: &Bridges) -> String {
    let secs = waited.as_secs();
    if bridges.0.is_empty() {
        format!("cannot reach any Tor relay: none answered in {secs} s; {REACH_HINT}")
    } else {
        format!(
            "{}: no answer in {secs} s; {BRIDGE_HINT}",
            bridges.unreachable()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_started_yet_is_not_a_blockage() {
        assert_eq!(
            describe(
                &BlockageKind::Disabled,
                "Client is waiting to be told to bootstrap",
                &Bridges::default()
            ),
            None
        );
    }

    #[test]
    fn unreachable_relays_are_said_plainly_with_what_to_try() {
        for kind in [BlockageKind::Offline, BlockageKind::CantReachTor] {
            let text = describe(&kind, "no TCP", &Bridges::default()).unwrap();
            assert!(text.starts_with("cannot reach"), "{text}");
            assert!(
                text.contains("firewall") && text.contains("bridges"),
                "{text}"
            );
            assert!(text.ends_with("no TCP)"), "Arti's words are kept: {text}");
        }
        let text = no_relay_answered(Duration::from_secs(20), &Bridges::default());
        assert!(text.contains("none answered in 20 s"), "{text}");
        assert!(text.contains("online"), "{text}");
    }

    #[test]
    fn every_other_kind_says_what_is_wrong() {
        let filtered = describe(&BlockageKind::Filtering, "x", &Bridges::default()).unwrap();
        assert!(filtered.contains("filter Tor"), "{filtered}");
        let clock = describe(&BlockageKind::ClockSkewed, "x", &Bridges::default()).unwrap();
        assert!(clock.contains("clock"), "{clock}");
        let dir = describe(&BlockageKind::CantBootstrap, "x", &Bridges::default()).unwrap();
        assert!(dir.contains("directory"), "{dir}");
    }

    #[test]
    fn with_bridges_the_reports_name_them() {
        let one = Bridges(vec!["obfs4 bridge 127.0.0.1:9".to_owned()]);
        let text = no_relay_answered(Duration::from_secs(20), &one);
        assert!(
            text.starts_with(
                "cannot reach the bridge (obfs4 bridge 127.0.0.1:9): no answer in 20 s"
            ),
            "{text}"
        );
        assert!(text.contains("bridges.torproject.org"), "{text}");
        let two = Bridges(vec![
            "bridge 192.0.2.1:443".into(),
            "bridge 192.0.2.2:443".into(),
        ]);
        let text = describe(&BlockageKind::Offline, "no TCP", &two).unwrap();
        assert!(
            text.starts_with(
                "cannot reach any of the bridges (bridge 192.0.2.1:443, bridge 192.0.2.2:443)"
            ),
            "{text}"
        );
        assert_eq!(
            one.stage("connecting to the internet; directory is fetching a consensus"),
            "through bridges: connecting to a bridge; directory is fetching a consensus"
        );
        assert_eq!(
            Bridges::default().stage("handshaking with Tor relays"),
            "handshaking with Tor relays"
        );
        assert_eq!(
            one.stage("handshaking with Tor relays"),
            "through bridges: handshaking with a bridge"
        );
    }
}
