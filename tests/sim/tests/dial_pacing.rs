//! Dial pacing in simulated time (issue 16, D3): one peer gossips a
//! thousand addresses nobody answers at. The node must not turn that into
//! a burst of circuits: automatic dials stay at least 500 ms apart, and an
//! address that failed is not dialled again for ten minutes (longer after
//! more failures).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use nightjar::engine::EngineConfig;
use nightjar::engine::conn_manager::DIAL_PACING;
use nightjar::engine::redial::FAILED_REDIAL_FIRST;
use nightjar::peer::ConnectionKind;
use nightjar_sim::{Behaviour, Sim, World, full_node, gossip_entry, ipv4};

const NETWORK: bitcoin::Network = bitcoin::Network::Signet;

#[test]
fn a_thousand_gossiped_addresses_are_dialled_paced_and_failures_rest() {
    let port = 38333;
    let gossip: Vec<_> = (0..1000u32)
        .map(|i| {
            let ip = Ipv4Addr::from(0x1e00_0000 + i * 257);
            let seen = u32::try_from(nightjar_sim::SIM_EPOCH_UNIX - 3600).unwrap();
            gossip_entry(&ipv4(ip, port), full_node(), seen).unwrap()
        })
        .collect();
    let mut world = World::new();
    world.add(
        ipv4(Ipv4Addr::new(11, 1, 1, 1), port),
        Behaviour::online(Duration::from_millis(200), gossip),
    );
    let mut config = EngineConfig::new(NETWORK);
    config.dns_seeds = false;
    config.fixed_seeds = false;
    let mut sim = Sim::new(7, config, world);
    sim.set_tor_ready(true);
    let span = Duration::from_secs(30 * 60);
    sim.run_for(span);
    assert!(sim.anomalies().is_empty(), "{:?}", sim.anomalies());

    let automatic: Vec<_> = sim
        .dials()
        .iter()
        .filter(|d| {
            matches!(
                d.request.kind,
                ConnectionKind::Regular(_) | ConnectionKind::Feeler | ConnectionKind::Extra
            )
        })
        .collect();
    assert!(
        automatic.len() > 20,
        "the gossip was used: {}",
        automatic.len()
    );
    for pair in automatic.windows(2) {
        let gap = pair[1].at.saturating_sub(pair[0].at);
        assert!(gap >= DIAL_PACING, "dials {gap:?} apart: {pair:?}");
    }
    // At most one dial per pacing interval over the whole run.
    let bound = span.as_millis() / DIAL_PACING.as_millis() + 1;
    assert!((automatic.len() as u128) <= bound);
    // Every gossiped address is offline: none is dialled again within ten
    // minutes of the last try.
    let mut last: BTreeMap<String, Duration> = BTreeMap::new();
    for d in &automatic {
        let target = d.request.target.to_string();
        if let Some(prev) = last.insert(target.clone(), d.at) {
            assert!(
                d.at.saturating_sub(prev) >= FAILED_REDIAL_FIRST,
                "{target} redialled after {:?}",
                d.at.saturating_sub(prev)
            );
        }
    }
}
