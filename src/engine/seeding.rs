//! Where addresses come from when the address book runs dry: DNS seeds
//! (asked through Tor exits, never the system resolver), then the
//! compiled-in fixed seeds (onion first).

use std::time::{Duration, Instant};

/// How long DNS seeds get to produce addresses before the fixed seeds are
/// added too (Core waits a minute as well).
pub const DNS_SEED_GRACE: Duration = Duration::from_secs(60);

/// How often DNS seeds may be asked again while the book stays starved.
pub const DNS_SEED_RETRY: Duration = Duration::from_secs(10 * 60);

/// How often fixed seeds may be re-added while the book stays starved
/// (their entries age out of the book when they keep failing).
pub const FIXED_SEED_RETRY: Duration = Duration::from_secs(30 * 60);

/// The DNS seeds of a chain, as Bitcoin Core lists them (public facts; the
/// names are resolved by Tor exit relays).
pub fn dns_seeds(network: bitcoin::Network) -> &'static [&'static str] {
    match network {
        bitcoin::Network::Bitcoin => &[
            "seed.bitcoin.sipa.be",
            "dnsseed.bluematt.me",
            "seed.bitcoin.jonasschnelli.ch",
            "seed.btc.petertodd.net",
            "seed.bitcoin.sprovoost.nl",
            "dnsseed.emzy.de",
            "seed.bitcoin.wiz.biz",
            "seed.mainnet.achownodes.xyz",
        ],
        bitcoin::Network::Testnet4 => &[
            "seed.testnet4.bitcoin.sprovoost.nl",
            "seed.testnet4.wiz.biz",
        ],
        bitcoin::Network::Signet => &[
            "seed.signet.bitcoin.sprovoost.nl",
            "seed.signet.achownodes.xyz",
        ],
        _ => &[],
    }
}

/// What to do about a starved address book.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeedAction {
    /// Nothing now.
    Wait,
    /// Ask the DNS seeds.
    AskDns,
    /// Add the fixed seeds.
    AddFixed,
}

/// When seeds were last used.
#[derive(Debug, Default)]
pub struct Seeding {
    dns_asked: Option<Instant>,
    fixed_added: Option<Instant>,
}

impl Seeding {
    /// Nothing asked yet.
    pub fn new() -> Self {
        Seeding::default()
    }

    /// The next step for a starved book at `now`; `dns_allowed` says
    /// whether DNS seeds may be asked at all.
    pub fn next(&mut self, now: Instant, dns_allowed: bool) -> SeedAction {
        let since = |t: Option<Instant>| t.map(|t| now.saturating_duration_since(t));
        if dns_allowed && since(self.dns_asked).is_none_or(|d| d >= DNS_SEED_RETRY) {
            self.dns_asked = Some(now);
            return SeedAction::AskDns;
        }
        let dns_had_its_chance =
            !dns_allowed || since(self.dns_asked).is_some_and(|d| d >= DNS_SEED_GRACE);
        if dns_had_its_chance && since(self.fixed_added).is_none_or(|d| d >= FIXED_SEED_RETRY) {
            self.fixed_added = Some(now);
            return SeedAction::AddFixed;
        }
        SeedAction::Wait
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_first_then_fixed_after_the_grace_period() {
        let t0 = Instant::now();
        let mut s = Seeding::new();
        assert_eq!(s.next(t0, true), SeedAction::AskDns);
        assert_eq!(s.next(t0 + Duration::from_secs(1), true), SeedAction::Wait);
        assert_eq!(s.next(t0 + DNS_SEED_GRACE, true), SeedAction::AddFixed);
        assert_eq!(s.next(t0 + DNS_SEED_GRACE, true), SeedAction::Wait);
        assert_eq!(s.next(t0 + DNS_SEED_RETRY, true), SeedAction::AskDns);
    }

    #[test]
    fn without_dns_fixed_seeds_come_at_once() {
        let t0 = Instant::now();
        let mut s = Seeding::new();
        assert_eq!(s.next(t0, false), SeedAction::AddFixed);
        assert_eq!(s.next(t0 + Duration::from_secs(5), false), SeedAction::Wait);
    }

    #[test]
    fn regtest_has_no_dns_seeds() {
        assert!(dns_seeds(bitcoin::Network::Regtest).is_empty());
        assert!(!dns_seeds(bitcoin::Network::Bitcoin).is_empty());
    }
}
