//! The simulator: the engine, the world, and the event loop between them.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::time::Duration;

use nightjar::addrman::{AddrMan, AddrManKey, AddrRecord, AddrSource, InternalSource};
use nightjar::engine::conn_manager::default_port;
use nightjar::engine::targets::target_to_addr;
use nightjar::engine::{
    AcceptRequest, DialFailure, DialRequest, Engine, EngineConfig, InboundFrom, Input, Output,
    Reach,
};
use nightjar::peer::{
    ConnId, ConnectionKind, DisconnectReason, PeerConfig, PeerReport, PeerUpdate,
};
use nightjar::transport::{TransportKind, V1Fallback};
use nightjar::wire::{Inventory, NetworkMessage};
use nightjar_tor::{IsolationGroup, Target};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::circuits::Circuits;
use crate::clock::SimClock;
use crate::link::{Link, LinkSetup, RemoteIdentity, RemoteScript, Side};
use crate::queue::EventQueue;
use crate::trace::{DialRecord, TraceEntry, TraceEvent};
use crate::world::{
    Behaviour, CONNECT_LEGS, DEFAULT_LATENCY, DNS_DELAY, OFFLINE_FAIL_AFTER, World, full_node,
};

/// Steps at one instant after which the simulator decides something loops
/// without letting time pass, records an anomaly and stops the run.
pub const MAX_STEPS_PER_INSTANT: u32 = 100_000;

/// The source the starting address book was "loaded" from.
const BOOTSTRAP_SOURCE: &str = "sim: saved address book";

/// How a dial ends.
#[derive(Debug, Clone)]
enum DialOutcome {
    Connected(TransportKind),
    Failed(DialFailure),
}

/// Something scheduled.
#[derive(Debug)]
enum Event {
    /// A dial completes.
    DialDone { conn: ConnId, outcome: DialOutcome },
    /// Frames arrive at one end of a link.
    Deliver {
        conn: ConnId,
        to: Side,
        frames: Vec<Vec<u8>>,
    },
    /// A machine deadline may have come.
    Wake { conn: ConnId },
    /// A `DropAfter` peer closes its end.
    Drop { conn: ConnId },
    /// The remote's close reaches our machine.
    PeerGone { conn: ConnId },
    /// A DNS seed answers.
    SeedAnswer { host: String },
    /// A remote opens a stream to our listener.
    InboundArrives { remote: SocketAddr },
    /// A transaction that reached the network comes back: every other
    /// remote that would announce it does.
    Echo {
        from: ConnId,
        txid: bitcoin::Txid,
        wtxid: bitcoin::Wtxid,
    },
}

/// How long a transaction takes to spread through the simulated network
/// before other peers announce it back.
pub const ECHO_DELAY: Duration = Duration::from_secs(5);

/// The fee rate (sat/kvB) simulated transactions pay, for `feefilter`.
pub const ECHO_FEE_RATE: i64 = 10_000;

/// A transaction arriving at a remote peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxArrival {
    /// When (simulated time).
    pub at: Duration,
    /// Over which connection.
    pub conn: ConnId,
    /// That connection's kind.
    pub kind: ConnectionKind,
    /// The transaction.
    pub txid: bitcoin::Txid,
}

/// Where a simulated connection stands.
#[derive(Debug)]
enum ConnState {
    Dialing,
    Open {
        link: Box<Link>,
        connected_at: Duration,
    },
}

/// What a connection is, whichever side opened it.
#[derive(Debug, Clone)]
struct ConnSpec {
    kind: ConnectionKind,
    target: Target,
    /// The isolation group (outbound connections through Tor).
    group: Option<IsolationGroup>,
    peer: PeerConfig,
}

impl From<&DialRequest> for ConnSpec {
    fn from(r: &DialRequest) -> Self {
        ConnSpec {
            kind: r.kind,
            target: r.target.clone(),
            group: Some(r.isolation.group),
            peer: r.peer.clone(),
        }
    }
}

/// A connection the driver holds: from the `Dial` (or `Accept`) output
/// until it is reported gone (or abandoned).
#[derive(Debug)]
struct SimConn {
    spec: ConnSpec,
    dialled_at: Duration,
    state: ConnState,
}

/// A connection as tests see it.
#[derive(Debug, Clone)]
pub struct ConnView {
    /// Its id.
    pub conn: ConnId,
    /// Its kind.
    pub kind: ConnectionKind,
    /// Where it goes.
    pub target: Target,
    /// When it was dialled.
    pub dialled_at: Duration,
    /// When the transport came up (`None` while dialling).
    pub connected_at: Option<Duration>,
    /// Whether our machine completed the version handshake.
    pub ready: bool,
}

/// The simulator. See the crate docs for the model.
#[derive(Debug)]
pub struct Sim {
    clock: SimClock,
    engine: Engine,
    world: World,
    rng: ChaCha8Rng,
    queue: EventQueue<Event>,
    conns: BTreeMap<ConnId, SimConn>,
    circuits: Circuits,
    tor_ready: bool,
    inputs: VecDeque<Input>,
    dirty: BTreeSet<ConnId>,
    trace: Vec<TraceEntry>,
    dials: Vec<DialRecord>,
    anomalies: Vec<String>,
    persisted: Vec<Duration>,
    last_persisted: Option<Vec<u8>>,
    stalled: bool,
    shut_down: bool,
    /// Inbound streams waiting for the engine's decision, by link id.
    pending_inbound: BTreeMap<u64, SocketAddr>,
    next_link: u64,
    refused_inbound: usize,
    tx_arrivals: Vec<TxArrival>,
    echo: bool,
    echoes: usize,
    broadcast_saves: Vec<Vec<u8>>,
}

impl Sim {
    /// A simulation of an engine with `config` in `world`, everything drawn
    /// from `seed`: the address book's key, the engine's seed, and every
    /// nonce and session id. The address book starts with the world's
    /// `known` peers. Tor is not ready, and nothing runs, until the first
    /// input (usually [`Sim::set_tor_ready`]).
    pub fn new(seed: u64, config: EngineConfig, world: World) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut addrman = AddrMan::new(config.network, AddrManKey::generate(&mut rng));
        let unix = crate::clock::SIM_EPOCH_UNIX;
        let records: Vec<AddrRecord> = world
            .peers()
            .iter()
            .filter(|p| p.known)
            .filter_map(|p| {
                let addr = target_to_addr(&p.target)?;
                let services = p.behaviour.profile().map_or(full_node(), |pr| pr.services);
                // Seen within the last three days, as a saved book would say.
                let age = rng.random_range(3600..3 * 24 * 3600);
                Some(AddrRecord {
                    addr,
                    services,
                    last_seen: unix.saturating_sub(age),
                })
            })
            .collect();
        let source = AddrSource::Internal(InternalSource::named(BOOTSTRAP_SOURCE));
        addrman.add(&records, &source, unix, &mut rng);
        let engine_seed: [u8; 32] = rng.random();
        Sim {
            clock: SimClock::new(),
            engine: Engine::new(config, addrman, engine_seed),
            world,
            rng,
            queue: EventQueue::new(),
            conns: BTreeMap::new(),
            circuits: Circuits::new(),
            tor_ready: false,
            inputs: VecDeque::new(),
            dirty: BTreeSet::new(),
            trace: Vec::new(),
            dials: Vec::new(),
            anomalies: Vec::new(),
            persisted: Vec::new(),
            last_persisted: None,
            stalled: false,
            shut_down: false,
            pending_inbound: BTreeMap::new(),
            next_link: 0,
            refused_inbound: 0,
            tx_arrivals: Vec::new(),
            echo: true,
            echoes: 0,
            broadcast_saves: Vec::new(),
        }
    }

    // === DRIVING ===

    /// Runs `duration` of simulated time.
    pub fn run_for(&mut self, duration: Duration) {
        self.run_for_observed(duration, |_| {});
    }

    /// Runs `duration` of simulated time, calling `observe` after every step
    /// (one event or engine tick, with everything it caused).
    pub fn run_for_observed(&mut self, duration: Duration, mut observe: impl FnMut(&Sim)) {
        let end = self.clock.offset() + duration;
        self.settle();
        observe(self);
        let mut last = self.clock.offset();
        let mut steps_here = 0u32;
        while !self.stalled {
            let tick_at = self.engine.poll_timeout().map(|t| self.clock.offset_of(t));
            let event_at = self.queue.next_time();
            let Some(next) = [tick_at, event_at].into_iter().flatten().min() else {
                break;
            };
            if next > end {
                break;
            }
            self.clock.advance_to(next);
            if self.clock.offset() == last {
                steps_here += 1;
                if steps_here > MAX_STEPS_PER_INSTANT {
                    self.anomaly(format!("no progress at {:?}", self.clock.offset()));
                    self.stalled = true;
                }
            } else {
                last = self.clock.offset();
                steps_here = 0;
            }
            if event_at.is_some_and(|t| t <= next) {
                if let Some((_, event)) = self.queue.pop_due(self.clock.offset()) {
                    self.handle_event(event);
                }
            } else {
                self.inputs.push_back(Input::Tick);
            }
            self.settle();
            observe(self);
        }
        self.clock.advance_to(end);
    }

    /// Tells the engine (and the simulated Tor client) that Tor is, or is
    /// no longer, ready.
    pub fn set_tor_ready(&mut self, ready: bool) {
        self.tor_ready = ready;
        self.inputs.push_back(Input::TorReady(ready));
        self.settle();
    }

    /// Every remote peer closes its connection now (dials in flight go on).
    pub fn drop_all_peers(&mut self) {
        for (conn, c) in &mut self.conns {
            if let ConnState::Open { link, .. } = &mut c.state {
                link.close_local(DisconnectReason::PeerClosed);
                self.dirty.insert(*conn);
            }
        }
        self.settle();
    }

    /// Tells the engine to shut down.
    pub fn shutdown(&mut self) {
        self.shut_down = true;
        self.inputs.push_back(Input::Shutdown);
        self.settle();
    }

    // === LOOKING ===

    /// Simulated time since the start.
    pub fn now(&self) -> Duration {
        self.clock.offset()
    }

    /// Whether [`Sim::shutdown`] was called.
    pub fn is_shut_down(&self) -> bool {
        self.shut_down
    }

    /// The engine under test.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The engine's configuration.
    pub fn config(&self) -> &EngineConfig {
        self.engine.config()
    }

    /// The world.
    pub fn world(&self) -> &World {
        &self.world
    }

    /// Every input and output so far.
    pub fn trace(&self) -> &[TraceEntry] {
        &self.trace
    }

    /// Every dial the engine asked for.
    pub fn dials(&self) -> &[DialRecord] {
        &self.dials
    }

    /// Breaches of the driver contract seen so far (a `Send` to a
    /// connection that is not open, a reused connection id...): the real
    /// driver would have to cope with these, so each is worth a look.
    pub fn anomalies(&self) -> &[String] {
        &self.anomalies
    }

    /// When the engine asked to persist the address book.
    pub fn persisted_at(&self) -> &[Duration] {
        &self.persisted
    }

    /// The last address book the engine asked to persist.
    pub fn last_persisted(&self) -> Option<&[u8]> {
        self.last_persisted.as_deref()
    }

    /// The simulated Tor client's circuits.
    pub fn circuits(&self) -> &Circuits {
        &self.circuits
    }

    /// Connections the driver holds (dialling or open), in id order.
    pub fn connections(&self) -> impl Iterator<Item = ConnView> + '_ {
        self.conns.iter().map(|(conn, c)| {
            let (connected_at, ready) = match &c.state {
                ConnState::Dialing => (None, false),
                ConnState::Open { link, connected_at } => {
                    (Some(*connected_at), link.local().is_ready())
                }
            };
            ConnView {
                conn: *conn,
                kind: c.spec.kind,
                target: c.spec.target.clone(),
                dialled_at: c.dialled_at,
                connected_at,
                ready,
            }
        })
    }

    /// Connections the driver holds, grouped by kind (`regular`,
    /// `feeler`, ... as the engine labels them).
    pub fn connections_by_kind(&self) -> BTreeMap<&'static str, Vec<ConnView>> {
        let mut by_kind: BTreeMap<&'static str, Vec<ConnView>> = BTreeMap::new();
        for c in self.connections() {
            by_kind.entry(c.kind.label()).or_default().push(c);
        }
        by_kind
    }

    /// Connections (dialling or open) whose kind matches `pred`.
    pub fn live_count(&self, pred: impl Fn(ConnectionKind) -> bool) -> usize {
        self.conns.values().filter(|c| pred(c.spec.kind)).count()
    }

    /// Connections with a completed handshake whose kind matches `pred`.
    pub fn ready_count(&self, pred: impl Fn(ConnectionKind) -> bool) -> usize {
        self.connections()
            .filter(|c| c.ready && pred(c.kind))
            .count()
    }

    /// Regular outbound connections with a completed handshake.
    pub fn ready_regular(&self) -> usize {
        self.ready_count(|k| matches!(k, ConnectionKind::Regular(_)))
    }

    // === THE LOOP ===

    fn record(&mut self, event: TraceEvent) {
        self.trace.push(TraceEntry {
            at: self.clock.offset(),
            event,
        });
    }

    fn anomaly(&mut self, what: String) {
        self.anomalies
            .push(format!("{:?}: {what}", self.clock.offset()));
    }

    /// Feeds queued inputs and pumps touched links until nothing is left.
    fn settle(&mut self) {
        loop {
            if let Some(input) = self.inputs.pop_front() {
                self.feed(input);
            } else if let Some(conn) = self.dirty.pop_first() {
                self.pump(conn);
            } else {
                return;
            }
        }
    }

    fn feed(&mut self, input: Input) {
        self.record(TraceEvent::Input(input.clone()));
        let now = self.clock.now();
        self.engine.handle(now, input);
        while let Some(output) = self.engine.poll_output() {
            self.record(TraceEvent::Output(output.clone()));
            self.apply(output);
        }
    }

    fn apply(&mut self, output: Output) {
        let now = self.clock.offset();
        match output {
            Output::Dial(request) => self.dial(request),
            Output::Accept(req) => self.accept(req),
            Output::Refuse { link, .. } => {
                if self.pending_inbound.remove(&link).is_some() {
                    self.refused_inbound += 1;
                } else {
                    self.anomaly(format!("Refuse for unknown link {link}"));
                }
            }
            Output::Send { conn, msg } => match self.conns.get_mut(&conn) {
                Some(SimConn {
                    state: ConnState::Open { link, .. },
                    ..
                }) => {
                    link.send(self.clock.instant(), msg);
                    self.dirty.insert(conn);
                }
                _ => self.anomaly(format!("Send to {conn}, which is not open")),
            },
            Output::Disconnect { conn, reason } => match self.conns.get_mut(&conn) {
                Some(SimConn {
                    state: ConnState::Open { link, .. },
                    ..
                }) => {
                    link.close_local(DisconnectReason::Local(reason));
                    self.dirty.insert(conn);
                }
                Some(SimConn {
                    state: ConnState::Dialing,
                    ..
                }) => {
                    // Abandoned: the dial's outcome is never reported.
                    self.conns.remove(&conn);
                }
                None => self.anomaly(format!("Disconnect for unknown {conn}")),
            },
            Output::ResolveSeed { host, .. } => {
                self.queue.push(now + DNS_DELAY, Event::SeedAnswer { host });
            }
            Output::PersistAddresses(bytes) => {
                self.persisted.push(now);
                self.last_persisted = Some(bytes);
            }
            Output::ReleaseGroup(group) => self.circuits.release(group),
            Output::PersistBroadcasts(bytes) => self.broadcast_saves.push(bytes),
            // Nobody bans anything in the simulated world.
            Output::PersistBans(_) => self.anomaly("a ban list write without a ban".to_owned()),
            // The simulated peers serve no headers: the chain never grows.
            Output::PersistChain | Output::TruncateChain(_) => {}
            // The simulated network serves no filters and the simulation
            // asks for no scans: any of these is a bug.
            Output::PersistFilterHeaders
            | Output::TruncateFilterHeaders(_)
            | Output::Fetched { .. } => {
                self.anomaly("filter output without filters".to_owned());
            }
            Output::Misbehaving { conn, points, what } => {
                if let Some(SimConn {
                    state: ConnState::Open { link, .. },
                    ..
                }) = self.conns.get_mut(&conn)
                {
                    link.misbehave(points, what);
                    self.dirty.insert(conn);
                }
            }
        }
    }

    /// Decides how a dial ends, and when.
    fn dial(&mut self, request: DialRequest) {
        let now = self.clock.offset();
        let conn = request.conn;
        self.dials.push(DialRecord {
            at: now,
            request: request.clone(),
        });
        if self.conns.contains_key(&conn) {
            self.anomaly(format!("Dial reuses live {conn}"));
            return;
        }
        let behaviour = self
            .world
            .get(&request.target)
            .map_or(&Behaviour::Offline, |p| &p.behaviour);
        let failed = |reason: &str, peer_at_fault| {
            DialOutcome::Failed(DialFailure {
                reason: reason.to_owned(),
                peer_at_fault,
            })
        };
        let scheduled = if self.engine.config().reach == Reach::Tor && !self.tor_ready {
            Some((now, failed("Tor is not ready", false)))
        } else {
            match behaviour.profile() {
                None if *behaviour == Behaviour::Hang => None,
                None => Some((now + OFFLINE_FAIL_AFTER, failed("unreachable", true))),
                Some(p) => {
                    let legs = p.latency * CONNECT_LEGS;
                    if p.speaks_v2 {
                        let session_id: [u8; 32] = self.rng.random();
                        Some((
                            now + legs,
                            DialOutcome::Connected(TransportKind::V2 { session_id }),
                        ))
                    } else if request.v1 == V1Fallback::Allowed {
                        // The v2 attempt is refused, then a fresh stream
                        // carries v1.
                        Some((now + legs * 2, DialOutcome::Connected(TransportKind::V1)))
                    } else {
                        Some((now + legs, failed("peer rejected v2; v1 forbidden", true)))
                    }
                }
            }
        };
        if let Some((at, outcome)) = scheduled {
            self.queue.push(at, Event::DialDone { conn, outcome });
        }
        self.conns.insert(
            conn,
            SimConn {
                spec: ConnSpec::from(&request),
                dialled_at: now,
                state: ConnState::Dialing,
            },
        );
    }

    /// The engine took on an inbound stream: its transport comes up after
    /// a round trip (v2 if the remote speaks it, else v1 if allowed).
    fn accept(&mut self, req: AcceptRequest) {
        let now = self.clock.offset();
        let Some(remote) = self.pending_inbound.remove(&req.link) else {
            self.anomaly(format!("Accept for unknown link {}", req.link));
            return;
        };
        let target = Target::Ip(remote);
        let profile = self.world.get(&target).and_then(|p| p.behaviour.profile());
        let (latency, speaks_v2) =
            profile.map_or((DEFAULT_LATENCY, true), |p| (p.latency, p.speaks_v2));
        let outcome = if speaks_v2 {
            DialOutcome::Connected(TransportKind::V2 {
                session_id: self.rng.random(),
            })
        } else if req.allow_v1 {
            DialOutcome::Connected(TransportKind::V1)
        } else {
            DialOutcome::Failed(DialFailure {
                reason: "peer speaks v1 and v1 is not allowed".into(),
                peer_at_fault: true,
            })
        };
        self.queue.push(
            now + latency * 2,
            Event::DialDone {
                conn: req.conn,
                outcome,
            },
        );
        self.conns.insert(
            req.conn,
            SimConn {
                spec: ConnSpec {
                    kind: ConnectionKind::Inbound,
                    target,
                    group: None,
                    peer: req.peer,
                },
                dialled_at: now,
                state: ConnState::Dialing,
            },
        );
    }

    /// A remote at `remote` will open a stream to our listener at `at`
    /// (simulated time from the start). Its behaviour is the world's entry
    /// for `remote` if there is one, else a well-behaved v2 peer.
    pub fn schedule_inbound(&mut self, at: Duration, remote: SocketAddr) {
        self.queue.push(at, Event::InboundArrives { remote });
    }

    /// Inbound streams the engine refused so far.
    pub fn refused_inbound(&self) -> usize {
        self.refused_inbound
    }

    /// Whether transactions that reach a remote come back, [`ECHO_DELAY`]
    /// later, as `inv`s from every other remote that would announce them
    /// (on by default; off models a network that drops them).
    pub fn set_echo(&mut self, echo: bool) {
        self.echo = echo;
    }

    /// Every transaction that reached a remote, in order.
    pub fn tx_arrivals(&self) -> &[TxArrival] {
        &self.tx_arrivals
    }

    /// Announcements of our transactions that remotes sent us.
    pub fn echoes(&self) -> usize {
        self.echoes
    }

    /// Every private-broadcast queue the engine asked to save, in order.
    pub fn broadcast_saves(&self) -> &[Vec<u8>] {
        &self.broadcast_saves
    }

    /// Hand the engine a command now (as an RPC call would) and return
    /// its answer.
    pub fn command(
        &mut self,
        command: nightjar::engine::Command,
    ) -> Result<nightjar::engine::CommandReply, nightjar::engine::CommandError> {
        self.settle();
        let reply = self.engine.command(self.clock.now(), command);
        while let Some(output) = self.engine.poll_output() {
            self.record(TraceEvent::Output(output.clone()));
            self.apply(output);
        }
        self.settle();
        reply
    }

    /// The remotes announce this transaction to every connection that
    /// would hear it.
    fn echo(&mut self, from: ConnId, txid: bitcoin::Txid, wtxid: bitcoin::Wtxid) {
        let now = self.clock.instant();
        let mut touched = Vec::new();
        for (conn, c) in &mut self.conns {
            if *conn == from {
                continue;
            }
            if let ConnState::Open { link, .. } = &mut c.state
                && link.remote_would_announce(ECHO_FEE_RATE)
            {
                let item = if link.local().info().is_some_and(|i| i.wtxid_relay) {
                    Inventory::WTx(wtxid)
                } else {
                    Inventory::Transaction(txid)
                };
                link.remote_send(now, NetworkMessage::Inv(vec![item]));
                touched.push(*conn);
            }
        }
        self.echoes += touched.len();
        self.dirty.extend(touched);
    }

    fn handle_event(&mut self, event: Event) {
        match event {
            Event::DialDone { conn, outcome } => self.dial_done(conn, outcome),
            Event::Echo { from, txid, wtxid } => self.echo(from, txid, wtxid),
            Event::Deliver { conn, to, frames } => {
                let now = self.clock.instant();
                if let Some(link) = self.link_mut(conn) {
                    link.deliver(to, now, &frames);
                    self.dirty.insert(conn);
                }
            }
            Event::Wake { conn } => {
                let (now, at) = (self.clock.instant(), self.clock.offset());
                if let Some(link) = self.link_mut(conn)
                    && link.next_wake == Some(at)
                {
                    link.next_wake = None;
                    link.handle_timeouts(now);
                    self.dirty.insert(conn);
                }
            }
            Event::Drop { conn } => {
                if let Some(link) = self.link_mut(conn) {
                    link.close_remote();
                    self.dirty.insert(conn);
                }
            }
            Event::PeerGone { conn } => {
                if let Some(link) = self.link_mut(conn) {
                    link.close_local(DisconnectReason::PeerClosed);
                    self.dirty.insert(conn);
                }
            }
            Event::InboundArrives { remote } => {
                let link = self.next_link;
                self.next_link += 1;
                self.pending_inbound.insert(link, remote);
                let from = InboundFrom::Tcp(remote);
                self.inputs.push_back(Input::Accepted { link, from });
            }
            Event::SeedAnswer { host } => {
                let port = default_port(self.engine.config().network);
                let addrs = if self.tor_ready {
                    self.world.dns_answer(port)
                } else {
                    Vec::new()
                };
                self.inputs
                    .push_back(Input::SeedResolved { seed: host, addrs });
            }
        }
    }

    fn link_mut(&mut self, conn: ConnId) -> Option<&mut Link> {
        match self.conns.get_mut(&conn) {
            Some(SimConn {
                state: ConnState::Open { link, .. },
                ..
            }) => Some(link),
            _ => None,
        }
    }

    fn dial_done(&mut self, conn: ConnId, outcome: DialOutcome) {
        let Some(c) = self.conns.get(&conn) else {
            // Abandoned by the engine before it completed.
            return;
        };
        if !matches!(c.state, ConnState::Dialing) {
            return;
        }
        let transport = match outcome {
            DialOutcome::Failed(failure) => {
                self.conns.remove(&conn);
                self.inputs.push_back(Input::DialFailed { conn, failure });
                return;
            }
            DialOutcome::Connected(transport) => transport,
        };
        let spec = c.spec.clone();
        let inbound = spec.kind == ConnectionKind::Inbound;
        let profile = self
            .world
            .get(&spec.target)
            .and_then(|p| p.behaviour.profile());
        // An inbound remote the world does not list is a plain, honest node.
        let (latency, drop_after, script, services) = match profile {
            Some(p) => (
                p.latency,
                p.drop_after,
                RemoteScript {
                    gossip: p.gossip.to_vec(),
                    misbehave: p.misbehave,
                },
                p.services,
            ),
            None if inbound => (
                DEFAULT_LATENCY,
                None,
                RemoteScript {
                    gossip: Vec::new(),
                    misbehave: false,
                },
                full_node(),
            ),
            None => {
                self.anomaly(format!("{conn} connected to a peer that accepts nothing"));
                return;
            }
        };
        let remote = RemoteIdentity {
            nonce: self.rng.random_range(1..=u64::MAX),
            ping_seed: self.rng.random(),
            services,
        };
        let circuit = match spec.group {
            Some(group) if self.engine.config().reach == Reach::Tor => Some(self.circuits.stream(
                group,
                &spec.target,
                self.clock.offset(),
            )),
            _ => None,
        };
        let now = self.clock.now();
        let link = Link::new(
            LinkSetup {
                local: spec.peer.clone(),
                remote,
                transport,
                magic: self.engine.config().network.magic(),
                latency,
                script,
                unix_now: now.unix,
                remote_initiates: inbound,
            },
            now.mono,
        );
        if let Some(c) = self.conns.get_mut(&conn) {
            c.state = ConnState::Open {
                link: Box::new(link),
                connected_at: self.clock.offset(),
            };
        }
        if let Some(after) = drop_after {
            self.queue
                .push(self.clock.offset() + after, Event::Drop { conn });
        }
        self.inputs.push_back(Input::Connected {
            conn,
            transport,
            circuit,
        });
        self.dirty.insert(conn);
    }

    /// Moves whatever a link's machines produced: frames onto the wire,
    /// events to the engine, and the close, if any.
    fn pump(&mut self, conn: ConnId) {
        let (now, at) = (self.clock.instant(), self.clock.offset());
        let Some(link) = self.link_mut(conn) else {
            return;
        };
        let flush = link.flush(now);
        let latency = link.latency();
        let wake = link.poll_timeout().map(|t| t.max(now));
        if flush.closed.is_none()
            && let Some(w) = wake
        {
            let w = w.saturating_duration_since(now) + at;
            if link.next_wake != Some(w) {
                link.next_wake = Some(w);
                self.queue.push(w, Event::Wake { conn });
            }
        }
        for (to, frames) in [
            (Side::Remote, flush.to_remote),
            (Side::Local, flush.to_local),
        ] {
            if !frames.is_empty() {
                self.queue
                    .push(at + latency, Event::Deliver { conn, to, frames });
            }
        }
        if flush.remote_closed {
            self.queue.push(at + latency, Event::PeerGone { conn });
        }
        let kind = self.conns.get(&conn).map(|c| c.spec.kind);
        for tx in flush.txs {
            let (txid, wtxid) = (tx.compute_txid(), tx.compute_wtxid());
            if let Some(kind) = kind {
                self.tx_arrivals.push(TxArrival {
                    at,
                    conn,
                    kind,
                    txid,
                });
            }
            if self.echo {
                self.queue.push(
                    at + ECHO_DELAY,
                    Event::Echo {
                        from: conn,
                        txid,
                        wtxid,
                    },
                );
            }
        }
        for event in flush.events {
            self.inputs.push_back(Input::Peer(PeerUpdate {
                conn,
                report: PeerReport::Event(event),
            }));
        }
        if let Some(reason) = flush.closed {
            self.conns.remove(&conn);
            self.inputs.push_back(Input::Peer(PeerUpdate {
                conn,
                report: PeerReport::Closed(reason),
            }));
        }
    }
}
