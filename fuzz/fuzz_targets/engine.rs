//! The `Engine` with one peer, driven like the simulator drives it: the
//! engine's dials succeed at once, a real `PeerMachine` runs the peer's
//! connection, and the fuzzer plays the remote side.
//!
//! Input: a mode byte, then steps in the format of `nightjar_fuzz::steps`.
//! Mode bit 0 picks how the peer is known: `--connect` (a manual peer) or a
//! single address in the book (a regular outbound peer, which can be
//! discouraged). Machine events reach the engine as `PeerReport`s, the
//! engine's `Send`/`Disconnect`/`Misbehaving` reach the machine; what the
//! machine sends to the remote is dropped.
//!
//! Checked: no panic; the engine and the machine settle after each step
//! (no endless ping-pong of outputs); every address book the engine asks to
//! persist restores; the book passes its consistency check at the end.

#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use nightjar::addrman::{
    ADDRMAN_KEY_LEN, AddrMan, AddrManKey, AddrRecord, AddrSource, InternalSource,
};
use nightjar::engine::{DialFailure, Engine, EngineConfig, Input, Now, Output};
use nightjar::netaddr::NetAddr;
use nightjar::peer::{ConnId, DisconnectReason, PeerEvent, PeerMachine, PeerReport, PeerUpdate};
use nightjar::transport::TransportKind;
use nightjar::wire::{ServiceFlags, decode_v2_contents};
use nightjar_fuzz::steps::{self, Step};
use nightjar_fuzz::{PEER_TARGET, UNIX_START, v2_wire_len};
use nightjar_tor::Target;
use rand::SeedableRng;
use rand::rngs::StdRng;

/// Rounds of engine outputs and machine events one step may cause before
/// the pair counts as livelocked.
const MAX_ROUNDS: usize = 10_000;

/// The engine, its one live connection and the clock.
struct World {
    engine: Engine,
    peer: Option<(ConnId, PeerMachine)>,
    start: Instant,
    now: Instant,
}

impl World {
    fn t(&self) -> Now {
        Now {
            mono: self.now,
            unix: UNIX_START + self.now.duration_since(self.start).as_secs(),
        }
    }

    fn input(&mut self, input: Input) {
        let t = self.t();
        self.engine.handle(t, input);
    }

    /// Passes outputs and events back and forth until both are quiet.
    fn settle(&mut self) {
        for _ in 0..MAX_ROUNDS {
            let mut busy = false;
            while let Some(output) = self.engine.poll_output() {
                busy = true;
                self.output(output);
            }
            if let Some((conn, machine)) = &mut self.peer {
                let conn = *conn;
                while machine.poll_transmit().is_some() {}
                let mut reports = Vec::new();
                let mut gone = false;
                while let Some(event) = machine.poll_event() {
                    reports.push(match event {
                        PeerEvent::Disconnect(reason) => {
                            gone = true;
                            PeerReport::Closed(reason)
                        }
                        other => PeerReport::Event(other),
                    });
                }
                if gone {
                    self.peer = None;
                }
                for report in reports {
                    busy = true;
                    self.input(Input::Peer(PeerUpdate { conn, report }));
                }
            }
            if !busy {
                return;
            }
        }
        panic!("engine and peer did not settle in {MAX_ROUNDS} rounds");
    }

    fn output(&mut self, output: Output) {
        match output {
            Output::Dial(request) => {
                if self.peer.is_some() {
                    // One peer only: a second dial finds nobody home.
                    self.input(Input::DialFailed {
                        conn: request.conn,
                        failure: DialFailure {
                            reason: "no second peer".into(),
                            peer_at_fault: false,
                        },
                    });
                    return;
                }
                let machine = PeerMachine::new(request.peer, self.now);
                self.peer = Some((request.conn, machine));
                self.input(Input::Connected {
                    conn: request.conn,
                    transport: TransportKind::V2 {
                        session_id: [7; 32],
                    },
                    circuit: None,
                });
            }
            Output::Send { conn, msg } => {
                if let Some((id, machine)) = &mut self.peer
                    && *id == conn
                {
                    machine.send(self.now, msg);
                }
            }
            Output::Disconnect { conn, reason } => {
                if let Some((id, machine)) = &mut self.peer
                    && *id == conn
                {
                    machine.close(DisconnectReason::Local(reason));
                }
            }
            Output::Misbehaving { conn, points, what } => {
                if let Some((id, machine)) = &mut self.peer
                    && *id == conn
                {
                    machine.misbehave(points, what);
                }
            }
            Output::ResolveSeed { host, .. } => self.input(Input::SeedResolved {
                seed: host,
                addrs: Vec::new(),
            }),
            Output::PersistAddresses(bytes) => {
                if let Err(e) = AddrMan::from_bytes(&bytes, bitcoin::Network::Regtest) {
                    panic!("the engine persisted a book that does not restore: {e}");
                }
            }
            Output::Refuse { .. } => panic!("refused a stream nobody opened"),
            Output::Accept(_) => panic!("accepted a stream nobody opened"),
            Output::Fetched { .. } => panic!("answered an RPC call nobody made"),
            Output::PersistBans(_)
            | Output::PersistBroadcasts(_)
            | Output::ReleaseGroup(_)
            | Output::PersistChain
            | Output::TruncateChain(_)
            | Output::PersistFilterHeaders
            | Output::TruncateFilterHeaders(_) => {}
        }
    }

    /// Moves the clock to `to` and lets both sides act on it.
    fn advance_to(&mut self, to: Instant) {
        self.now = self.now.max(to);
        let now = self.now;
        if let Some((_, machine)) = &mut self.peer {
            machine.handle_timeout(now);
        }
        self.input(Input::Tick);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let Ok(target) = PEER_TARGET.parse::<Target>() else {
        panic!("bad peer target");
    };
    let mut config = EngineConfig::new(bitcoin::Network::Regtest);
    config.dns_seeds = false;
    config.fixed_seeds = false;
    config.target_outbound = 1;
    let key = AddrManKey::from_bytes([5; ADDRMAN_KEY_LEN]);
    let mut book = AddrMan::new(bitcoin::Network::Regtest, key);
    if mode % 2 == 0 {
        config.connect = vec![target];
    } else {
        let Ok(addr) = PEER_TARGET.parse::<NetAddr>() else {
            panic!("bad peer address");
        };
        let record = AddrRecord {
            addr,
            services: ServiceFlags::NETWORK | ServiceFlags::WITNESS,
            last_seen: UNIX_START,
        };
        let source = AddrSource::Internal(InternalSource::named("fuzz"));
        book.add(
            &[record],
            &source,
            UNIX_START,
            &mut StdRng::seed_from_u64(1),
        );
    }
    let start = Instant::now();
    let mut world = World {
        engine: Engine::new(config, book, [3; 32]),
        peer: None,
        start,
        now: start,
    };
    world.input(Input::TorReady(true));
    world.settle();
    for step in steps::parse(rest) {
        match step {
            Step::Message(contents) => {
                if let Ok(msg) = decode_v2_contents(&contents)
                    && let Some((_, machine)) = &mut world.peer
                {
                    machine.handle_message(world.now, msg, v2_wire_len(contents.len()));
                }
            }
            Step::Advance(by) => world.advance_to(world.now + by),
            Step::Deadline => {
                let engine = world.engine.poll_timeout();
                let peer = world.peer.as_ref().and_then(|(_, m)| m.poll_timeout());
                if let Some(deadline) = [engine, peer].into_iter().flatten().min() {
                    world.advance_to(deadline);
                }
            }
            Step::Close => {
                if let Some((_, machine)) = &mut world.peer {
                    machine.close(DisconnectReason::PeerClosed);
                }
            }
            Step::Misbehave(points) => {
                if let Some((_, machine)) = &mut world.peer {
                    machine.misbehave(u32::from(points), "fuzz");
                }
            }
        }
        world.settle();
        if world.now.duration_since(start) > Duration::from_secs(30 * 24 * 3600) {
            break;
        }
    }
    if let Err(e) = world.engine.addrman().check_consistency() {
        panic!("address book inconsistent: {e}");
    }
});
