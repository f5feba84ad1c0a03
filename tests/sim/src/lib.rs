//! A seeded discrete-event simulator for nightjar's sans-IO engine.
//!
//! [`Sim`] does in memory what the tokio driver does for real: it feeds the
//! [`Engine`](nightjar::engine::Engine) inputs, carries out its outputs, and
//! wakes it at its `poll_timeout`, against a [`World`] of scripted remote
//! peers. Everything is drawn from one seed, so a run is a pure function of
//! (seed, configuration, world, script of calls), and its [`trace`](Sim::trace)
//! is the same every time.
//!
//! # Time
//!
//! A simulated clock ([`SimClock`]): one real `Instant` captured at start
//! plus a simulated offset; unix time is [`SIM_EPOCH_UNIX`] plus the offset.
//! The simulator never sleeps. It jumps from one due thing to the next: the
//! earliest event in a queue ordered by (time, scheduling order), or the
//! engine's `poll_timeout` (about every second), whichever comes first;
//! events win ties. Two hours of engine time take a fraction of a second.
//!
//! # Dials
//!
//! For `Output::Dial`, the remote peer at the target decides ([`Behaviour`];
//! targets the world does not list — fixed seeds, stale gossip — are
//! offline):
//!
//! - `Online` (and `DropAfter`, `Misbehave`, which are online peers with a
//!   twist): after [`CONNECT_LEGS`] one-way latencies (Tor stream, then the
//!   BIP324 key exchange), `Input::Connected` with a v2 transport if the
//!   peer speaks v2. A v1-only peer is reached only if the dial allows
//!   `V1Fallback::Allowed`, after twice as long (the refused v2 attempt,
//!   then a fresh stream) and with a v1 transport; otherwise the dial fails,
//!   the peer at fault.
//! - `Offline`: `Input::DialFailed` after [`OFFLINE_FAIL_AFTER`], peer at
//!   fault.
//! - `Hang`: nothing, ever; the engine has to give up.
//! - While the simulated Tor client is not ready, every dial fails at once
//!   (not the peer's fault) — the engine should not be dialling then.
//!
//! `Output::Disconnect` for a dial still in flight abandons it: its outcome
//! is never reported. `Output::ResolveSeed` is answered after [`DNS_DELAY`]
//! with the world's IPv4 peers on the chain's default port (or what
//! [`World::set_dns_answers`] fixed), empty if Tor went down meanwhile.
//! `Output::PersistAddresses` is recorded; `Output::ReleaseGroup` closes the
//! group's circuits.
//!
//! # Circuits
//!
//! `Connected` carries a circuit label from a model of Arti's circuit reuse
//! ([`Circuits`]): streams share a circuit only within one isolation group
//! and one target class (all exit streams share one exit circuit; each
//! onion service has its own rendezvous circuit), for at most ten minutes
//! after the circuit's first stream; labels read `Circ {group}.{n}`. With
//! `Reach::Direct` there is no circuit.
//!
//! # Connections
//!
//! A connected dial becomes a [`Link`]: our side is a real
//! [`PeerMachine`](nightjar::peer::PeerMachine) built from the dial's
//! `PeerConfig`, as the peer task would host it; the remote side is a second
//! `PeerMachine` of kind `Inbound` with its own `version` (protocol 70016,
//! the behaviour's services, a seeded nonce). Every message between them
//! goes through nightjar's wire codec — v1 frames through `encode_v1` and a
//! `V1Decoder`, v2 packet contents through `encode_v2_contents` and
//! `decode_v2_contents` (the encryption around them is the `bip324` crate's
//! and changes nothing a machine sees) — and arrives one latency later. Our
//! machine's events reach the engine as `PeerReport::Event`s, then exactly
//! one `PeerReport::Closed`. The remote answers our `getaddr` once with its
//! gossip as `addrv2` and every `getheaders` with an empty `headers` (it
//! knows no block beyond genesis); a `Misbehave` remote sends a second `version` after
//! the handshake; a `DropAfter` remote closes its end, which our machine
//! sees a latency later as `PeerClosed`. Both machines' timers (handshake,
//! ping, pong) run on the simulated clock.
//!
//! # What tests see
//!
//! The [`trace`](Sim::trace) holds every input given to the engine and
//! every output it produced, with simulated times, in order; tests replay
//! it to check invariants at every step. [`Sim::run_for_observed`] also
//! calls back after every step with the whole simulator (the engine's own
//! tables included). [`Sim::anomalies`] lists breaches of the driver
//! contract the simulator noticed.

mod circuits;
mod clock;
mod link;
mod queue;
mod sim;
mod trace;
mod world;

pub use circuits::{CIRCUIT_DIRTINESS, CircuitClass, Circuits};
pub use clock::{SIM_EPOCH_UNIX, SimClock};
pub use link::{
    Flush, Link, LinkSetup, REMOTE_START_HEIGHT, REMOTE_USER_AGENT, RemoteIdentity, RemoteScript,
    Side, V2_PACKET_OVERHEAD,
};
pub use queue::EventQueue;
pub use sim::{ConnView, ECHO_DELAY, ECHO_FEE_RATE, MAX_STEPS_PER_INSTANT, Sim, TxArrival};
pub use trace::{DialRecord, TraceEntry, TraceEvent};
pub use world::{
    Behaviour, CONNECT_LEGS, DEFAULT_LATENCY, DNS_DELAY, DNS_MAX_ANSWERS, OFFLINE_FAIL_AFTER,
    Profile, RemotePeer, World, full_node, gossip_entry, ipv4, onion,
};
