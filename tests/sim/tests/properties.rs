//! Properties of the connection engine, checked at every step of simulated
//! multi-hour runs over random seeds, worlds and configurations; plus a few
//! fixed scenarios that pin the simulator's own model down.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;
use std::time::Duration;

use nightjar::engine::conn_manager::{DIAL_TIMEOUT, FEELER_ADDR_WAIT, default_port};
use nightjar::engine::isolation::{GroupScope, ISOLATION_ROTATION};
use nightjar::engine::{EngineConfig, Input, Output};
use nightjar::peer::machine::HANDSHAKE_TIMEOUT;
use nightjar::peer::{
    ConnId, ConnectionKind, DisconnectReason, HandshakeViolation, PeerEvent, PeerReport,
};
use nightjar::transport::{TransportKind, V1Fallback};
use nightjar_sim::{
    Behaviour, DEFAULT_LATENCY, SIM_EPOCH_UNIX, Sim, TraceEntry, TraceEvent, World, full_node,
    gossip_entry, ipv4, onion,
};
use nightjar_tor::{IsolationGroup, Target, TargetKind};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The chain of every simulated node: it has DNS seeds (so `ResolveSeed`
/// is exercised) and a short fixed-seed list (so traces stay small).
const NETWORK: bitcoin::Network = bitcoin::Network::Signet;

/// Slack for deadlines the engine enforces on its maintenance tick.
const TICK_SLACK: Duration = Duration::from_secs(1);

const fn mins(m: u64) -> Duration {
    Duration::from_secs(m * 60)
}

// === WORLDS AND CONFIGURATIONS ===

/// A random world, described compactly so a failing case prints short.
#[derive(Debug, Clone)]
struct WorldSpec {
    seed: u64,
    size: usize,
    onion_percent: u32,
}

fn world_spec() -> impl Strategy<Value = WorldSpec> {
    (any::<u64>(), 5usize..=200, 0u32..=100).prop_map(|(seed, size, onion_percent)| WorldSpec {
        seed,
        size,
        onion_percent,
    })
}

fn random_target(rng: &mut ChaCha8Rng, onion_percent: u32) -> Target {
    let port = default_port(NETWORK);
    if rng.random_range(0..100) < onion_percent {
        onion(rng.random(), port)
    } else {
        // 11–99 as first octet: all public, no special ranges.
        let ip = Ipv4Addr::new(
            rng.random_range(11..=99),
            rng.random(),
            rng.random(),
            rng.random_range(1..=254),
        );
        ipv4(ip, port)
    }
}

fn random_latency(rng: &mut ChaCha8Rng) -> Duration {
    Duration::from_millis(rng.random_range(50..=2_000))
}

/// Some of `pool`, as gossip, seen up to two days ago.
fn random_gossip(rng: &mut ChaCha8Rng, pool: &[Target]) -> Vec<nightjar::wire::AddrV2Message> {
    if rng.random_bool(0.5) {
        return Vec::new();
    }
    let n = rng.random_range(1..=30);
    (0..n)
        .filter_map(|_| {
            let t = &pool[rng.random_range(0..pool.len())];
            let seen = SIM_EPOCH_UNIX - rng.random_range(0..2 * 24 * 3600);
            gossip_entry(t, full_node(), u32::try_from(seen).unwrap())
        })
        .collect()
}

fn random_behaviour(rng: &mut ChaCha8Rng, pool: &[Target]) -> Behaviour {
    match rng.random_range(0..100) {
        0..50 => Behaviour::Online {
            speaks_v2: rng.random_bool(0.8),
            latency: random_latency(rng),
            gossip: random_gossip(rng, pool),
            services: match rng.random_range(0..10) {
                0 => nightjar::wire::ServiceFlags::NONE,
                1 => nightjar::wire::ServiceFlags::NETWORK,
                _ => full_node(),
            },
        },
        50..65 => Behaviour::Offline,
        65..75 => Behaviour::Hang,
        75..90 => Behaviour::DropAfter(Duration::from_secs(rng.random_range(30..=1_800))),
        _ => Behaviour::Misbehave,
    }
}

fn build_world(spec: &WorldSpec) -> World {
    let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
    let targets: Vec<Target> = (0..spec.size)
        .map(|_| random_target(&mut rng, spec.onion_percent))
        .collect();
    let mut world = World::new();
    for t in &targets {
        let behaviour = random_behaviour(&mut rng, &targets);
        if rng.random_bool(0.85) {
            world.add(t.clone(), behaviour);
        } else {
            world.add_unknown(t.clone(), behaviour);
        }
    }
    world
}

/// A random configuration; manual peers are drawn from the world.
#[derive(Debug, Clone)]
struct ConfigSpec {
    target: usize,
    privacy: bool,
    v1_fallback: bool,
    addnodes: usize,
    connect: bool,
    feeler_secs: u64,
    pick_seed: u64,
}

fn config_spec() -> impl Strategy<Value = ConfigSpec> {
    (
        1usize..=10,
        any::<bool>(),
        any::<bool>(),
        prop_oneof![3 => Just(0usize), 1 => 1usize..=3],
        prop_oneof![4 => Just(false), 1 => Just(true)],
        20u64..=300,
        any::<u64>(),
    )
        .prop_map(
            |(target, privacy, v1_fallback, addnodes, connect, feeler_secs, pick_seed)| {
                ConfigSpec {
                    target,
                    privacy,
                    v1_fallback,
                    addnodes,
                    connect,
                    feeler_secs,
                    pick_seed,
                }
            },
        )
}

fn build_config(spec: &ConfigSpec, world: &World) -> EngineConfig {
    let mut rng = ChaCha8Rng::seed_from_u64(spec.pick_seed);
    let mut pick = || {
        world.peers()[rng.random_range(0..world.len())]
            .target
            .clone()
    };
    let mut config = EngineConfig::new(NETWORK);
    config.target_outbound = spec.target;
    config.privacy = spec.privacy;
    config.v1_fallback = spec.v1_fallback;
    config.feeler_interval = Duration::from_secs(spec.feeler_secs);
    config.addnodes = (0..spec.addnodes).map(|_| pick()).collect();
    if spec.connect {
        config.connect = vec![pick()];
    }
    config
}

// === THE CHECKER ===

/// One connection as the trace shows it.
#[derive(Debug, Clone)]
struct Live {
    kind: ConnectionKind,
    target: Target,
    dialled_at: Duration,
    connected_at: Option<Duration>,
    handshake_at: Option<Duration>,
    disconnect_at: Option<Duration>,
    v1: V1Fallback,
}

/// Replays a trace, entry by entry, and checks every property after each.
/// It knows only the configuration and the trace: it is an independent
/// model of what the driver sees.
struct Checker {
    config: EngineConfig,
    now: Duration,
    tor_ready: bool,
    shut_down: bool,
    live: HashMap<ConnId, Live>,
    ids: HashSet<ConnId>,
    /// Every isolation group seen, and who used it first.
    group_owner: HashMap<IsolationGroup, &'static str>,
    /// Per kind (outside privacy): the group taking new connections, and
    /// since when.
    current: HashMap<&'static str, (IsolationGroup, Duration)>,
    feeler_dials: usize,
}

type Check = Result<(), TestCaseError>;

impl Checker {
    fn new(config: &EngineConfig) -> Self {
        Checker {
            config: config.clone(),
            now: Duration::ZERO,
            tor_ready: false,
            shut_down: false,
            live: HashMap::new(),
            ids: HashSet::new(),
            group_owner: HashMap::new(),
            current: HashMap::new(),
            feeler_dials: 0,
        }
    }

    fn regular_live(&self) -> usize {
        self.live
            .values()
            .filter(|l| matches!(l.kind, ConnectionKind::Regular(_)))
            .count()
    }

    fn feelers_live(&self) -> usize {
        self.live
            .values()
            .filter(|l| l.kind == ConnectionKind::Feeler)
            .count()
    }

    fn replay(&mut self, trace: &[TraceEntry], end: Duration) -> Check {
        for entry in trace {
            self.step(entry)?;
        }
        self.deadlines(end)
    }

    fn step(&mut self, entry: &TraceEntry) -> Check {
        prop_assert!(entry.at >= self.now, "time ran backwards at {entry:?}");
        self.now = entry.at;
        self.deadlines(entry.at)?;
        match &entry.event {
            TraceEvent::Output(out) => self.output(out, entry),
            TraceEvent::Input(input) => self.input(input, entry),
        }
    }

    /// Deadlines that must have passed by `t`.
    fn deadlines(&self, t: Duration) -> Check {
        for (conn, l) in &self.live {
            if l.connected_at.is_none() {
                // Hung (or merely slow) dials: abandoned at DIAL_TIMEOUT.
                prop_assert!(
                    t <= l.dialled_at + DIAL_TIMEOUT + TICK_SLACK,
                    "{conn} to {} still dialling at {t:?}, dialled at {:?}",
                    l.target,
                    l.dialled_at
                );
            }
            if l.kind != ConnectionKind::Feeler || l.disconnect_at.is_some() {
                continue;
            }
            if let Some(h) = l.handshake_at {
                prop_assert!(
                    t <= h + FEELER_ADDR_WAIT + TICK_SLACK,
                    "feeler {conn} not disconnected at {t:?}, handshake at {h:?}"
                );
            } else if let Some(c) = l.connected_at {
                prop_assert!(
                    t <= c + HANDSHAKE_TIMEOUT + TICK_SLACK,
                    "feeler {conn} neither shook hands nor closed by {t:?}, connected at {c:?}"
                );
            }
        }
        Ok(())
    }

    fn output(&mut self, out: &Output, entry: &TraceEntry) -> Check {
        match out {
            // Nothing listens in the simulated world.
            Output::Accept(_) | Output::Refuse { .. } => {
                prop_assert!(false, "inbound decision without a listener: {entry:?}");
            }
            Output::Dial(req) => {
                prop_assert!(self.tor_ready, "dial while Tor is not ready: {entry:?}");
                prop_assert!(!self.shut_down, "dial after shutdown: {entry:?}");
                prop_assert!(self.ids.insert(req.conn), "reused id: {entry:?}");
                if self.config.privacy {
                    prop_assert_eq!(
                        req.target.kind(),
                        TargetKind::Onion,
                        "clearnet dial under privacy: {:?}",
                        entry
                    );
                    prop_assert_eq!(req.v1, V1Fallback::Forbidden, "v1 under privacy");
                } else if req.v1 == V1Fallback::Allowed {
                    prop_assert!(
                        req.kind == ConnectionKind::Manual || self.config.v1_fallback,
                        "v1 allowed for a {} dial without v1_fallback",
                        req.kind
                    );
                }
                if !self.config.connect.is_empty() {
                    // `--connect` turns automatic connections off; the
                    // user's own `addnode` peers are still kept, as in
                    // Bitcoin Core and Floresta.
                    prop_assert!(
                        req.kind == ConnectionKind::Manual
                            && (self.config.connect.contains(&req.target)
                                || self.config.addnodes.contains(&req.target)),
                        "dial besides --connect {:?} and the addnodes: {:?}",
                        self.config.connect,
                        entry
                    );
                }
                let duplicate = self.live.iter().find(|(_, l)| l.target == req.target);
                prop_assert!(
                    duplicate.is_none(),
                    "second connection to {}: {:?} while {:?} is live",
                    req.target,
                    entry,
                    duplicate
                );
                match req.kind {
                    ConnectionKind::Regular(_) => prop_assert!(
                        self.regular_live() < self.config.target_outbound,
                        "regular dial beyond the target {}: {:?}",
                        self.config.target_outbound,
                        entry
                    ),
                    ConnectionKind::Feeler => {
                        self.feeler_dials += 1;
                        prop_assert_eq!(self.feelers_live(), 0, "second feeler: {:?}", entry);
                    }
                    _ => {}
                }
                self.isolation(req.kind, req.isolation.group, req.isolation.scope)?;
                self.live.insert(
                    req.conn,
                    Live {
                        kind: req.kind,
                        target: req.target.clone(),
                        dialled_at: entry.at,
                        connected_at: None,
                        handshake_at: None,
                        disconnect_at: None,
                        v1: req.v1,
                    },
                );
            }
            Output::ResolveSeed { group, .. } => {
                prop_assert!(self.tor_ready, "DNS lookup while Tor is not ready");
                prop_assert!(!self.config.privacy, "DNS lookup under privacy");
                prop_assert!(
                    self.group_owner.insert(*group, "dns-seed").is_none(),
                    "DNS lookup on a used group: {entry:?}"
                );
            }
            Output::Disconnect { conn, .. } => {
                if let Some(l) = self.live.get_mut(conn) {
                    if l.connected_at.is_none() {
                        // An abandoned dial: gone from both sides at once.
                        self.live.remove(conn);
                    } else if l.disconnect_at.is_none() {
                        l.disconnect_at = Some(entry.at);
                    }
                }
            }
            Output::Send { .. } | Output::PersistAddresses(_) | Output::ReleaseGroup(_) => {}
            // Nothing is submitted for private broadcast here (see
            // private_broadcast.rs).
            Output::PersistBroadcasts(_) => {
                prop_assert!(
                    false,
                    "a private-broadcast save with nothing submitted: {entry:?}"
                );
            }
            // No user bans anything in the simulated world.
            Output::PersistBans(_) => {
                prop_assert!(false, "a ban list write without a ban: {entry:?}");
            }
            // The simulated peers send no headers: the chain cannot change
            // and no peer can be scored for bad ones.
            Output::PersistChain | Output::TruncateChain(_) | Output::Misbehaving { .. } => {
                prop_assert!(false, "header-sync output with no headers sent: {entry:?}");
            }
            Output::PersistFilterHeaders
            | Output::TruncateFilterHeaders(_)
            | Output::Fetched { .. } => {
                prop_assert!(false, "filter output with filters off: {entry:?}");
            }
        }
        Ok(())
    }

    /// Isolation: a group per connection under privacy and for feelers;
    /// otherwise one group per kind, rotated every ten minutes; never a
    /// group shared by two kinds.
    fn isolation(
        &mut self,
        kind: ConnectionKind,
        group: IsolationGroup,
        scope: GroupScope,
    ) -> Check {
        let label = kind.label();
        let own = self.config.privacy || kind == ConnectionKind::Feeler;
        if own {
            prop_assert_eq!(scope, GroupScope::Connection);
            prop_assert!(
                self.group_owner.insert(group, label).is_none(),
                "{} dial on a used group {}",
                label,
                group
            );
            return Ok(());
        }
        prop_assert_eq!(scope, GroupScope::Kind(label));
        match self.current.get(label).copied() {
            Some((g, since)) if self.now.saturating_sub(since) < ISOLATION_ROTATION => {
                prop_assert_eq!(
                    group,
                    g,
                    "{} dial at {:?} left its kind's group (current since {:?})",
                    label,
                    self.now,
                    since
                );
            }
            _ => {
                prop_assert!(
                    self.group_owner.insert(group, label).is_none(),
                    "rotated {} group {} was used before",
                    label,
                    group
                );
                self.current.insert(label, (group, self.now));
            }
        }
        Ok(())
    }

    fn input(&mut self, input: &Input, entry: &TraceEntry) -> Check {
        match input {
            Input::Accepted { .. } | Input::LocalOnion(_) => {
                prop_assert!(false, "an inbound stream in a world without one: {entry:?}");
            }
            Input::TorReady(ready) => self.tor_ready = *ready,
            Input::Shutdown => self.shut_down = true,
            Input::Connected {
                conn, transport, ..
            } => {
                let l = self.live.get_mut(conn);
                prop_assert!(l.is_some(), "Connected for a dead dial: {entry:?}");
                let l = l.unwrap();
                prop_assert!(l.connected_at.is_none(), "connected twice: {entry:?}");
                l.connected_at = Some(entry.at);
                if *transport == TransportKind::V1 {
                    prop_assert!(!self.config.privacy, "v1 session under privacy");
                    prop_assert_eq!(l.v1, V1Fallback::Allowed, "v1 session not allowed");
                }
            }
            Input::DialFailed { conn, .. } => {
                prop_assert!(
                    self.live.remove(conn).is_some(),
                    "late DialFailed: {entry:?}"
                );
            }
            Input::Peer(update) => match &update.report {
                PeerReport::Closed(_) => {
                    prop_assert!(
                        self.live.remove(&update.conn).is_some(),
                        "Closed for an unknown connection: {entry:?}"
                    );
                }
                PeerReport::Event(PeerEvent::HandshakeComplete(_)) => {
                    if let Some(l) = self.live.get_mut(&update.conn) {
                        l.handshake_at = Some(entry.at);
                    }
                }
                PeerReport::Event(_) => {}
            },
            Input::Tick | Input::SeedResolved { .. } => {}
        }
        Ok(())
    }
}

/// Checks on the engine's own tables after every step.
fn engine_step_check(sim: &Sim, failures: &mut Vec<String>) {
    let config = sim.config();
    let engine_regular = sim.engine().peers().regular_count();
    let driver_regular = sim.live_count(|k| matches!(k, ConnectionKind::Regular(_)));
    let feelers = sim.engine().peers().count(|k| k == ConnectionKind::Feeler);
    if engine_regular > config.target_outbound {
        failures.push(format!(
            "{:?}: engine counts {engine_regular} regular > target {}",
            sim.now(),
            config.target_outbound
        ));
    }
    // After shutdown the engine keeps the entries of the dials it
    // abandoned; it will never look at them again.
    if engine_regular != driver_regular && !sim.is_shut_down() {
        failures.push(format!(
            "{:?}: engine counts {engine_regular} regular, the driver holds {driver_regular}",
            sim.now()
        ));
    }
    if feelers > 1 {
        failures.push(format!("{:?}: {feelers} feelers", sim.now()));
    }
}

/// The standard script: Tor comes up late, goes away for five minutes,
/// every peer drops once, then shutdown. About two hours. The simulated
/// chain never moves, so the stale-tip defence opens an extra peer after
/// 30 minutes and every 10 minutes after that (each dropped: it knows no
/// better chain).
fn run_script(sim: &mut Sim, failures: &mut Vec<String>) {
    let mut observe = |s: &Sim| engine_step_check(s, failures);
    sim.set_tor_ready(false);
    sim.run_for_observed(mins(2), &mut observe);
    sim.set_tor_ready(true);
    sim.run_for_observed(mins(45), &mut observe);
    sim.set_tor_ready(false);
    sim.run_for_observed(mins(5), &mut observe);
    sim.set_tor_ready(true);
    sim.run_for_observed(mins(5), &mut observe);
    sim.run_for_observed(mins(20), &mut observe);
    sim.drop_all_peers();
    sim.run_for_observed(mins(40), &mut observe);
    sim.shutdown();
    sim.run_for_observed(mins(1), &mut observe);
}

fn proptest_config() -> ProptestConfig {
    ProptestConfig {
        cases: 32,
        max_shrink_iters: 64,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(proptest_config())]

    /// Every invariant, at every step of a two-hour run.
    #[test]
    fn invariants_hold_at_every_step(
        seed in any::<u64>(),
        world in world_spec(),
        config in config_spec(),
    ) {
        let w = build_world(&world);
        let c = build_config(&config, &w);
        let mut sim = Sim::new(seed, c.clone(), w);
        let mut failures = Vec::new();
        run_script(&mut sim, &mut failures);
        prop_assert!(failures.is_empty(), "engine tables: {:?}", failures);
        prop_assert!(sim.anomalies().is_empty(), "driver contract: {:?}", sim.anomalies());
        let mut checker = Checker::new(&c);
        checker.replay(sim.trace(), sim.now())?;
        prop_assert!(sim.now() >= mins(110));
        // After shutdown, nothing is left.
        prop_assert!(checker.live.is_empty(), "left after shutdown: {:?}", checker.live);
    }

    /// `--connect` means no automatic connections: only that peer and the
    /// user's `addnode` peers are ever dialled, all as manual peers.
    #[test]
    fn with_connect_only_user_named_peers_are_dialled(
        seed in any::<u64>(),
        world in world_spec(),
        config in config_spec(),
        addnodes in 0usize..=3,
    ) {
        let w = build_world(&world);
        let spec = ConfigSpec { connect: true, addnodes, ..config };
        let c = build_config(&spec, &w);
        let mut sim = Sim::new(seed, c.clone(), w);
        sim.set_tor_ready(true);
        sim.run_for(mins(30));
        Checker::new(&c).replay(sim.trace(), sim.now())?;
    }

    /// Same seed, configuration and world: the same trace, to the byte.
    #[test]
    fn runs_are_deterministic(
        seed in any::<u64>(),
        world in world_spec(),
        config in config_spec(),
    ) {
        let w = build_world(&world);
        let c = build_config(&config, &w);
        let run = || {
            let mut sim = Sim::new(seed, c.clone(), w.clone());
            sim.set_tor_ready(true);
            sim.run_for(mins(20));
            sim.drop_all_peers();
            sim.run_for(mins(10));
            format!("{:?}", sim.trace())
        };
        let (a, b) = (run(), run());
        prop_assert!(a == b, "traces differ (lengths {} and {})", a.len(), b.len());
    }

    /// With enough reachable peers, losing every peer at once is repaired
    /// within ten minutes.
    #[test]
    fn regular_peers_recover_after_all_drop(
        seed in any::<u64>(),
        world_seed in any::<u64>(),
        target in 1usize..=10,
        privacy in any::<bool>(),
        v1_fallback in any::<bool>(),
        junk in 0usize..=8,
    ) {
        let w = recovery_world(world_seed, 32, junk, privacy);
        let mut c = EngineConfig::new(NETWORK);
        c.target_outbound = target;
        c.privacy = privacy;
        c.v1_fallback = v1_fallback;
        let mut sim = Sim::new(seed, c.clone(), w);
        sim.set_tor_ready(true);
        let mut failures = Vec::new();
        sim.run_for_observed(mins(20), |s| engine_step_check(s, &mut failures));
        prop_assert_eq!(sim.ready_regular(), target, "target never reached before the drop");
        sim.drop_all_peers();
        prop_assert_eq!(sim.ready_regular(), 0);
        let dropped_at = sim.now();
        let mut recovered_at = None;
        sim.run_for_observed(mins(10), |s| {
            engine_step_check(s, &mut failures);
            if recovered_at.is_none() && s.ready_regular() == target {
                recovered_at = Some(s.now());
            }
        });
        prop_assert!(failures.is_empty(), "engine tables: {:?}", failures);
        prop_assert!(
            recovered_at.is_some(),
            "only {} of {} regular peers 10 minutes after the drop",
            sim.ready_regular(),
            target
        );
        let mut checker = Checker::new(&c);
        checker.replay(sim.trace(), sim.now())?;
        prop_assert!(recovered_at.unwrap() > dropped_at);
    }
}

/// `online` honest peers spread over network groups (onion only under
/// privacy, else half IPv4), all known, plus `junk` known peers that are
/// offline, hang or misbehave. "Enough online peers" means: at least 32
/// known addresses, so the book is not starved and the fixed seeds (all
/// unreachable here) do not crowd them out; and at least the target in
/// distinct groups, since regular peers must come from distinct groups.
fn recovery_world(seed: u64, online: usize, junk: usize, privacy: bool) -> World {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let port = default_port(NETWORK);
    let mut world = World::new();
    for i in 0..online {
        let target = if privacy || i % 2 == 0 {
            // The top nibble of the key's first byte is the onion netgroup.
            let mut key: [u8; 32] = rng.random();
            key[0] = (u8::try_from(i % 16).unwrap() << 4) | (key[0] & 0x0f);
            onion(key, port)
        } else {
            // A distinct /16 each.
            ipv4(
                Ipv4Addr::new(20 + u8::try_from(i).unwrap(), rng.random(), 1, 1),
                port,
            )
        };
        world.add(
            target,
            Behaviour::online(random_latency(&mut rng), Vec::new()),
        );
    }
    for _ in 0..junk {
        let target = random_target(&mut rng, if privacy { 100 } else { 50 });
        let behaviour = match rng.random_range(0..3) {
            0 => Behaviour::Offline,
            1 => Behaviour::Hang,
            _ => Behaviour::Misbehave,
        };
        world.add(target, behaviour);
    }
    world
}

// === FIXED SCENARIOS ===

/// `n` honest onion peers, in distinct groups up to 16, known at start.
fn honest_world(n: usize) -> World {
    recovery_world(7, n, 0, true)
}

#[test]
fn healthy_world_fills_the_target_and_feelers_come_on_top() {
    let mut config = EngineConfig::new(NETWORK);
    config.target_outbound = 4;
    config.feeler_interval = Duration::from_secs(30);
    let mut sim = Sim::new(1, config.clone(), honest_world(14));
    sim.set_tor_ready(true);
    let mut failures = Vec::new();
    let mut feelers_at_full = 0;
    let mut max_regular = 0;
    sim.run_for_observed(mins(30), |s| {
        engine_step_check(s, &mut failures);
        let regular = s.live_count(|k| matches!(k, ConnectionKind::Regular(_)));
        max_regular = max_regular.max(regular);
        if regular == 4 && s.live_count(|k| k == ConnectionKind::Feeler) == 1 {
            feelers_at_full += 1;
        }
    });
    assert!(failures.is_empty(), "{failures:?}");
    assert!(sim.anomalies().is_empty(), "{:?}", sim.anomalies());
    assert_eq!(sim.ready_regular(), 4);
    assert_eq!(max_regular, 4);
    assert!(feelers_at_full > 0, "no feeler ran on top of a full set");
    let mut checker = Checker::new(&config);
    checker.replay(sim.trace(), sim.now()).unwrap();
    assert!(checker.feeler_dials > 0);
    // Every regular peer came over v2 through a labelled circuit.
    let connected: Vec<_> = sim
        .trace()
        .iter()
        .filter_map(|e| match e.input() {
            Some(Input::Connected {
                transport, circuit, ..
            }) => Some((*transport, circuit.clone())),
            _ => None,
        })
        .collect();
    assert!(!connected.is_empty());
    for (transport, circuit) in connected {
        assert!(matches!(transport, TransportKind::V2 { .. }));
        assert!(circuit.unwrap().id.starts_with("Circ "));
    }
    // The address book is persisted (see `engine::book_saves`) at least a
    // minute apart; while gossip grows it by a tenth or more, within about
    // a minute of that growth, so the first save comes long before Core's
    // 15 minutes; and never more than 15 minutes apart.
    let persisted = sim.persisted_at();
    assert!(!persisted.is_empty());
    assert!(
        persisted[0] >= mins(1) && persisted[0] < mins(15),
        "{persisted:?}"
    );
    for pair in persisted.windows(2) {
        assert!(pair[1] >= pair[0] + mins(1), "{persisted:?}");
        assert!(pair[1] <= pair[0] + mins(15) + TICK_SLACK, "{persisted:?}");
    }
    assert!(
        *persisted.last().unwrap() + mins(15) + TICK_SLACK >= mins(30),
        "the regular rhythm holds to the end: {persisted:?}"
    );
    assert!(persisted.len() <= 12, "{persisted:?}");
    assert!(sim.last_persisted().is_some_and(|b| !b.is_empty()));
}

#[test]
fn a_hung_dial_is_abandoned_at_the_dial_timeout_and_retried() {
    let hang = onion([0x42; 32], default_port(NETWORK));
    let mut world = World::new();
    world.add(hang.clone(), Behaviour::Hang);
    let mut config = EngineConfig::new(NETWORK);
    config.connect = vec![hang.clone()];
    let mut sim = Sim::new(2, config.clone(), world);
    sim.set_tor_ready(true);
    sim.run_for(mins(5));
    let dials = sim.dials();
    assert!(dials.len() >= 2, "no retry: {dials:?}");
    assert!(dials.iter().all(|d| d.request.target == hang));
    assert_eq!(dials[0].request.kind, ConnectionKind::Manual);
    let abandoned = sim
        .trace()
        .iter()
        .find_map(|e| match e.output() {
            Some(Output::Disconnect { conn, .. }) if *conn == dials[0].request.conn => Some(e.at),
            _ => None,
        })
        .expect("never abandoned");
    assert!(abandoned >= dials[0].at + DIAL_TIMEOUT);
    assert!(abandoned <= dials[0].at + DIAL_TIMEOUT + TICK_SLACK);
    // Abandoned dials are never reported back.
    assert!(!sim.trace().iter().any(|e| matches!(
        e.input(),
        Some(Input::Connected { .. } | Input::DialFailed { .. })
    )));
    Checker::new(&config)
        .replay(sim.trace(), sim.now())
        .unwrap();
}

/// The transports a run's `Connected` inputs carried.
fn transports(sim: &Sim) -> Vec<TransportKind> {
    sim.trace()
        .iter()
        .filter_map(|e| match e.input() {
            Some(Input::Connected { transport, .. }) => Some(*transport),
            _ => None,
        })
        .collect()
}

fn v1_only_peer() -> (Target, World) {
    let peer = ipv4(Ipv4Addr::new(44, 1, 2, 3), default_port(NETWORK));
    let mut world = World::new();
    world.add(
        peer.clone(),
        Behaviour::Online {
            speaks_v2: false,
            latency: DEFAULT_LATENCY,
            gossip: Vec::new(),
            services: full_node(),
        },
    );
    (peer, world)
}

#[test]
fn a_v1_only_peer_is_reached_only_when_v1_is_allowed() {
    let (peer, world) = v1_only_peer();
    // A manual peer may fall back to v1; the v1 framing then carries the
    // whole handshake through the real codec.
    let mut config = EngineConfig::new(NETWORK);
    config.connect = vec![peer.clone()];
    let mut sim = Sim::new(3, config, world.clone());
    sim.set_tor_ready(true);
    sim.run_for(mins(1));
    assert_eq!(transports(&sim), [TransportKind::V1]);
    assert_eq!(sim.ready_count(|k| k == ConnectionKind::Manual), 1);

    // A regular peer may not, unless the user allows it.
    for (v1_fallback, want) in [(false, vec![]), (true, vec![TransportKind::V1])] {
        // Regtest: no seeds, so the one peer is the only address to try.
        let mut config = EngineConfig::new(bitcoin::Network::Regtest);
        config.v1_fallback = v1_fallback;
        let mut sim = Sim::new(4, config, world.clone());
        sim.set_tor_ready(true);
        sim.run_for(Duration::from_secs(50));
        let first: Vec<_> = transports(&sim).into_iter().take(1).collect();
        assert_eq!(first, want, "v1_fallback = {v1_fallback}");
        assert!(sim.dials().iter().any(|d| d.request.target == peer));
    }
}

#[test]
fn a_misbehaving_peer_is_disconnected_for_its_duplicate_version() {
    let bad = onion([0x17; 32], default_port(NETWORK));
    let mut world = World::new();
    world.add(bad.clone(), Behaviour::Misbehave);
    let mut config = EngineConfig::new(NETWORK);
    config.connect = vec![bad];
    let mut sim = Sim::new(5, config, world);
    sim.set_tor_ready(true);
    sim.run_for(mins(1));
    let reasons: Vec<_> = sim
        .trace()
        .iter()
        .filter_map(|e| match e.input() {
            Some(Input::Peer(u)) => match &u.report {
                PeerReport::Closed(r) => Some(r.clone()),
                PeerReport::Event(_) => None,
            },
            _ => None,
        })
        .collect();
    assert_eq!(
        reasons.first(),
        Some(&DisconnectReason::Handshake(
            HandshakeViolation::DuplicateVersion
        ))
    );
}

#[test]
fn gossip_travels_through_the_codec_into_the_address_book() {
    let port = default_port(NETWORK);
    let gossiper = onion([0x01; 32], port);
    let heard_of: Vec<Target> = (0..8u8)
        .map(|i| {
            let mut key = [0x33; 32];
            key[0] = (i + 2) << 4;
            onion(key, port)
        })
        .collect();
    let seen = u32::try_from(SIM_EPOCH_UNIX - 600).unwrap();
    let gossip = heard_of
        .iter()
        .map(|t| gossip_entry(t, full_node(), seen).unwrap())
        .collect();
    let mut world = World::new();
    world.add(gossiper.clone(), Behaviour::online(DEFAULT_LATENCY, gossip));
    for t in &heard_of {
        world.add_unknown(t.clone(), Behaviour::online(DEFAULT_LATENCY, Vec::new()));
    }
    let mut config = EngineConfig::new(NETWORK);
    config.privacy = true;
    config.target_outbound = 4;
    let mut sim = Sim::new(6, config, world);
    sim.set_tor_ready(true);
    sim.run_for(mins(10));
    assert!(
        sim.dials()
            .iter()
            .any(|d| heard_of.contains(&d.request.target)),
        "no gossiped peer was ever dialled"
    );
    assert_eq!(sim.ready_regular(), 4);
}

#[test]
fn tor_going_away_silences_the_engine_until_it_returns() {
    let mut config = EngineConfig::new(NETWORK);
    config.target_outbound = 8;
    config.feeler_interval = Duration::from_secs(20);
    let mut sim = Sim::new(8, config.clone(), honest_world(3));
    sim.set_tor_ready(true);
    sim.run_for(mins(3));
    sim.set_tor_ready(false);
    let off = sim.trace().len();
    sim.drop_all_peers();
    sim.run_for(mins(10));
    let quiet = &sim.trace()[off..];
    assert!(quiet.iter().any(|e| matches!(e.input(), Some(Input::Tick))));
    assert!(!quiet.iter().any(|e| matches!(
        e.output(),
        Some(Output::Dial(_) | Output::ResolveSeed { .. })
    )));
    sim.set_tor_ready(true);
    sim.run_for(Duration::from_secs(5));
    assert!(
        sim.trace()[off..]
            .iter()
            .any(|e| matches!(e.output(), Some(Output::Dial(_))))
    );
}
