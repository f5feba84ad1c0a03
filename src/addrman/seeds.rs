//! Fixed seeds: public peer lists compiled into the binary, the last resort
//! when the tables are empty or starved.
//!
//! The lists are Bitcoin Core's `contrib/seeds/nodes_*.txt` (one `host:port`
//! per line, `#` comments), copied into `data/seeds/` so a packaged build
//! carries them. They are parsed on first use; a line that does not parse
//! is skipped (a unit test proves every shipped line parses).

use std::sync::OnceLock;

use crate::wire::ServiceFlags;
use rand::Rng;

use super::params::{SEED_AGE_MAX, SEED_AGE_MIN, STARVED_BELOW};
use super::{AddrMan, AddrRecord, AddrSource, InternalSource};
use crate::netaddr::{NetAddr, NetworkId, NetworkSet};

/// Mainnet seed list.
const MAIN: &str = include_str!("../../data/seeds/nodes_main.txt");
/// Testnet3 seed list.
const TESTNET3: &str = include_str!("../../data/seeds/nodes_test.txt");
/// Testnet4 seed list.
const TESTNET4: &str = include_str!("../../data/seeds/nodes_testnet4.txt");
/// Signet seed list.
const SIGNET: &str = include_str!("../../data/seeds/nodes_signet.txt");

/// The order seeds are tried in: onion first (end-to-end inside Tor, no
/// exit relay involved), then the other overlays, then IP (reached through
/// Tor exits).
const NETWORK_PREFERENCE: [NetworkId; NetworkId::COUNT] = [
    NetworkId::Onion,
    NetworkId::I2p,
    NetworkId::Cjdns,
    NetworkId::Ipv6,
    NetworkId::Ipv4,
];

/// Services fixed seeds are assumed to offer (Core: `GetDesirableServiceFlags`),
/// corrected by their `version` message once we connect.
fn seed_services() -> ServiceFlags {
    ServiceFlags::NETWORK | ServiceFlags::WITNESS
}

/// The fixed seeds of `network` on the networks in `allowed`, onion first.
/// Regtest has none.
pub fn fixed_seeds(network: bitcoin::Network, allowed: NetworkSet) -> Vec<NetAddr> {
    let all = parsed(network);
    NETWORK_PREFERENCE
        .iter()
        .filter(|n| allowed.contains(**n))
        .flat_map(|n| all.iter().filter(move |a| a.network() == *n))
        .copied()
        .collect()
}

/// Every seed of `network`, parsed once.
fn parsed(network: bitcoin::Network) -> &'static [NetAddr] {
    static MAIN_SEEDS: OnceLock<Vec<NetAddr>> = OnceLock::new();
    static TESTNET3_SEEDS: OnceLock<Vec<NetAddr>> = OnceLock::new();
    static TESTNET4_SEEDS: OnceLock<Vec<NetAddr>> = OnceLock::new();
    static SIGNET_SEEDS: OnceLock<Vec<NetAddr>> = OnceLock::new();
    let (cell, text) = match network {
        bitcoin::Network::Bitcoin => (&MAIN_SEEDS, MAIN),
        bitcoin::Network::Testnet => (&TESTNET3_SEEDS, TESTNET3),
        bitcoin::Network::Testnet4 => (&TESTNET4_SEEDS, TESTNET4),
        bitcoin::Network::Signet => (&SIGNET_SEEDS, SIGNET),
        bitcoin::Network::Regtest => return &[],
    };
    cell.get_or_init(|| parse_list(text).0)
}

/// The addresses in a seed list, and how many non-comment lines were skipped.
fn parse_list(text: &str) -> (Vec<NetAddr>, usize) {
    let mut skipped = 0;
    let addrs = text
        .lines()
        .map(|line| line.split('#').next().unwrap_or("").trim())
        .filter(|line| !line.is_empty())
        .filter_map(|line| match line.parse::<NetAddr>() {
            Ok(a) => Some(a),
            Err(e) => {
                skipped += 1;
                tracing::debug!(error = %e, "skipping a bad fixed-seed line");
                None
            }
        })
        .collect();
    (addrs, skipped)
}

impl AddrMan {
    /// Whether so few addresses are known on `allowed` networks (fewer than
    /// [`STARVED_BELOW`]) that fixed seeds should be added.
    pub fn is_starved(&self, allowed: NetworkSet) -> bool {
        let info = self.info();
        let known: usize = allowed.iter().map(|n| info.network(n).total()).sum();
        known < STARVED_BELOW
    }

    /// Adds this chain's fixed seeds on `allowed` networks, onion first,
    /// each with a random "last seen" one to two weeks ago so that any live
    /// gossip looks fresher. Returns how many were added.
    pub fn add_fixed_seeds<R: Rng + ?Sized>(
        &mut self,
        allowed: NetworkSet,
        now: u64,
        rng: &mut R,
    ) -> usize {
        let records: Vec<AddrRecord> = fixed_seeds(self.network, allowed)
            .into_iter()
            .map(|addr| AddrRecord {
                addr,
                services: seed_services(),
                last_seen: now.saturating_sub(rng.random_range(SEED_AGE_MIN..=SEED_AGE_MAX)),
            })
            .collect();
        self.add(
            &records,
            &AddrSource::Internal(InternalSource::FIXED_SEEDS),
            now,
            rng,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shipped_line_parses() {
        for (name, text) in [
            ("main", MAIN),
            ("test", TESTNET3),
            ("testnet4", TESTNET4),
            ("signet", SIGNET),
        ] {
            let (addrs, skipped) = parse_list(text);
            assert_eq!(skipped, 0, "{name} has lines that do not parse");
            assert!(!addrs.is_empty(), "{name} is empty");
            assert!(
                addrs.iter().all(NetAddr::is_routable),
                "{name} has unroutable seeds"
            );
        }
    }

    #[test]
    fn mainnet_has_every_network_and_onion_comes_first() {
        let seeds = fixed_seeds(bitcoin::Network::Bitcoin, NetworkSet::all());
        for n in NetworkId::ALL {
            assert!(seeds.iter().any(|a| a.network() == n), "no {n} seeds");
        }
        assert_eq!(seeds[0].network(), NetworkId::Onion);
        let onion_only = fixed_seeds(
            bitcoin::Network::Bitcoin,
            NetworkSet::only(NetworkId::Onion),
        );
        assert!(onion_only.len() >= 100);
        assert!(onion_only.iter().all(|a| a.network() == NetworkId::Onion));
    }

    #[test]
    fn regtest_has_none() {
        assert!(fixed_seeds(bitcoin::Network::Regtest, NetworkSet::all()).is_empty());
    }

    #[test]
    fn bad_lines_are_skipped() {
        let (addrs, skipped) =
            parse_list("# comment\n1.2.3.4:8333 # AS1\nnot an address\n\n[::1:8333\n");
        assert_eq!(addrs.len(), 1);
        assert_eq!(skipped, 2);
    }
}
