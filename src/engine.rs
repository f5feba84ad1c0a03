//! The node's brain, without I/O: whom to dial, over which circuits, with
//! which transport; what to do with each peer event; when to persist.
//!
//! The engine is a sans-IO state machine (the shape of quinn-proto and
//! nakamoto): the driver feeds it [`Input`]s with the current time, collects
//! [`Output`]s with [`Engine::poll_output`] and wakes it at
//! [`Engine::poll_timeout`]. It reads no clock, touches no socket and draws
//! randomness only from the seeded RNG it was built with, so the same
//! configuration, seed and inputs always give the same outputs; the
//! simulator relies on that.
//!
//! It is composed of parts with one job each, borrowed separately: the
//! address manager ([`AddrMan`]), the table of connections
//! ([`peers::PeerTable`]), the isolation policy ([`isolation`]) and the
//! connection manager ([`conn_manager`]), which holds the policy state
//! (manual peers, seeding, feeler timer, backoff).

/// Header sync's borrows of an engine's other parts. Macros, not `&mut
/// self` methods: the part being called stays borrowable next to them,
/// which a method borrowing all of `self` would forbid.
macro_rules! sync_ctx {
    ($engine:ident) => {
        $crate::engine::header_sync::SyncCtx {
            config: &$engine.config,
            chain: &mut $engine.chain,
            peers: &$engine.peers,
            out: &mut $engine.outputs,
        }
    };
}

/// Private broadcast's borrows (see [`private_broadcast::BroadcastCtx`]).
macro_rules! broadcast_ctx {
    ($engine:ident) => {
        $crate::engine::private_broadcast::BroadcastCtx {
            peers: &$engine.peers,
            rng: &mut $engine.rng,
            out: &mut $engine.outputs,
        }
    };
}

/// Filter header sync's borrows (see [`filter_sync::FilterCtx`]).
macro_rules! filter_ctx {
    ($engine:ident) => {
        $crate::engine::filter_sync::FilterCtx {
            config: &$engine.config,
            chain: &$engine.chain,
            filters: &mut $engine.filter_headers,
            peers: &$engine.peers,
            slots: &mut $engine.slots,
            out: &mut $engine.outputs,
        }
    };
}

/// Fetching's borrows (see [`block_fetch::FetchCtx`]).
macro_rules! fetch_ctx {
    ($engine:ident) => {
        $crate::engine::block_fetch::FetchCtx {
            config: &$engine.config,
            chain: &$engine.chain,
            filters: &$engine.filter_headers,
            peers: &$engine.peers,
            slots: &mut $engine.slots,
            rng: &mut $engine.rng,
            out: &mut $engine.outputs,
        }
    };
}

/// The connection manager's borrows (see [`conn_manager::Ctx`]).
macro_rules! ctx {
    ($engine:ident) => {
        $crate::engine::conn_manager::Ctx {
            config: &$engine.config,
            addrman: &mut $engine.addrman,
            peers: &mut $engine.peers,
            isolation: &mut $engine.isolation,
            rng: &mut $engine.rng,
            out: &mut $engine.outputs,
        }
    };
}

pub mod banlist;
pub mod block_fetch;
pub mod book_saves;
pub mod broadcast_store;
pub mod commands;
pub mod config;
pub mod conn_manager;
pub mod eviction;
pub mod fetch_slots;
pub mod filter_dispute;
pub mod filter_sync;
pub mod header_sync;
pub mod inbound;
pub mod io;
pub mod isolation;
pub mod manual;
pub mod peers;
pub mod private_broadcast;
pub mod redial;
pub mod seeding;
pub mod targets;
pub mod version;

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::addrman::AddrMan;
use crate::chain::HeaderChain;
use crate::chain::filter_headers::FilterHeaderChain;
use crate::peer::{ConnId, PeerEvent, PeerReport, PeerUpdate};
use crate::wire::NetworkMessage;

pub use commands::{Command, CommandReply};
pub use config::{EngineConfig, IsolationScope, Reach};
pub use conn_manager::{CommandError, ConnManager};
pub use header_sync::{HeaderSync, SyncCtx};
pub use io::{AcceptRequest, DialFailure, DialRequest, InboundFrom, Input, Now, Output};
pub use isolation::Isolation;
pub use peers::{PeerEntry, PeerState, PeerTable};
pub use private_broadcast::PrivateBroadcast;

/// The shortest sleep between two maintenance rounds: while the engine
/// still wants something (an unfilled slot), it looks again this often
/// (Core's connection thread wakes every 500 ms; a second is plenty over
/// Tor). Timers are never served more often than this, so a timer that is
/// already due cannot spin the driver.
pub const MAINTENANCE_INTERVAL: Duration = Duration::from_secs(1);

/// The longest sleep when no timer is due: state that is only looked at
/// in passing (redial pauses ending, discouragement expiring, the seeding
/// schedule) is looked at again at least this often.
pub const IDLE_INTERVAL: Duration = Duration::from_secs(30);

/// How often an unchanged address book is written out (Core's
/// `DUMP_PEERS_INTERVAL`); a growing one is saved sooner (see
/// [`book_saves`]).
pub const ADDRMAN_PERSIST_INTERVAL: Duration = book_saves::REGULAR;

/// The sans-IO node.
#[derive(Debug)]
pub struct Engine {
    config: EngineConfig,
    addrman: AddrMan,
    chain: HeaderChain,
    peers: PeerTable,
    isolation: isolation::IsolationPolicy,
    conns: ConnManager,
    sync: HeaderSync,
    broadcast: PrivateBroadcast,
    filter_headers: FilterHeaderChain,
    filter_sync: filter_sync::FilterSync,
    fetch: block_fetch::BlockFetch,
    slots: fetch_slots::FetchSlots,
    rng: StdRng,
    outputs: VecDeque<Output>,
    tor_ready: bool,
    shutting_down: bool,
    last_now: Option<Instant>,
    book_saves: book_saves::BookSaves,
}

impl Engine {
    /// An engine with this configuration, address book and RNG seed.
    pub fn new(config: EngineConfig, addrman: AddrMan, seed: [u8; 32]) -> Self {
        let chain = HeaderChain::new(config.network);
        Engine {
            isolation: isolation::IsolationPolicy::new(config.isolation_scope()),
            conns: ConnManager::new(&config),
            sync: HeaderSync::new(&chain),
            broadcast: PrivateBroadcast::new(config.private_broadcast_connections),
            filter_headers: FilterHeaderChain::new(),
            filter_sync: filter_sync::FilterSync::new(),
            fetch: block_fetch::BlockFetch::new(),
            slots: fetch_slots::FetchSlots::new(),
            chain,
            config,
            addrman,
            peers: PeerTable::new(),
            rng: StdRng::from_seed(seed),
            outputs: VecDeque::new(),
            tor_ready: false,
            shutting_down: false,
            last_now: None,
            book_saves: book_saves::BookSaves::default(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// The address book.
    pub fn addrman(&self) -> &AddrMan {
        &self.addrman
    }

    /// Start from this header chain (loaded from disk) instead of genesis.
    /// Its network must be the configuration's.
    pub fn with_chain(mut self, chain: HeaderChain) -> Self {
        debug_assert_eq!(chain.network(), self.config.network);
        self.sync = HeaderSync::new(&chain);
        self.chain = chain;
        self
    }

    /// The validated header chain.
    pub fn chain(&self) -> &HeaderChain {
        &self.chain
    }

    /// The header chain, for its store: [`crate::chain::ChainStore::append`]
    /// hands the written headers' memory back to it. Validation goes
    /// through the engine's own handlers, never through this.
    pub fn chain_for_store(&mut self) -> &mut HeaderChain {
        &mut self.chain
    }

    /// Start from this filter header chain (loaded from disk; it must
    /// follow [`Engine::chain`]'s best chain).
    pub fn with_filter_headers(mut self, filters: FilterHeaderChain) -> Self {
        self.filter_headers = filters;
        self
    }

    /// The filter header chain.
    pub fn filter_headers(&self) -> &FilterHeaderChain {
        &self.filter_headers
    }

    /// The filter header chain, for its store (which marks records written).
    pub fn filter_headers_for_store(&mut self) -> &mut FilterHeaderChain {
        &mut self.filter_headers
    }

    /// Where filter header sync stands.
    pub fn filter_status(&self) -> filter_sync::FilterSyncStatus {
        self.filter_sync.status(&self.config, &self.filter_headers)
    }

    /// The running scan's progress (`scanblocks status`).
    pub fn scan_status(&self) -> Option<block_fetch::ScanStatus> {
        self.fetch.scan_status()
    }

    /// The header sync state.
    pub fn sync(&self) -> &HeaderSync {
        &self.sync
    }

    /// The connections.
    pub fn peers(&self) -> &PeerTable {
        &self.peers
    }

    /// Whether Tor is ready (always, once told so, when Tor is off).
    pub fn tor_ready(&self) -> bool {
        self.tor_ready
    }

    /// Process one input at `now`.
    pub fn handle(&mut self, now: Now, input: Input) {
        self.last_now = Some(now.mono);
        self.book_saves.start(now.mono, self.addrman.len());
        let mut cx = ctx!(self);
        match input {
            Input::Tick => {}
            Input::TorReady(ready) => {
                if ready != self.tor_ready {
                    tracing::debug!(ready, "engine: Tor readiness changed");
                }
                self.tor_ready = ready;
                self.conns.tor_ready_changed(&mut cx, now, ready);
            }
            Input::Connected {
                conn,
                transport,
                circuit,
            } => self.conns.connected(&mut cx, conn, transport, circuit),
            Input::Accepted { link, .. } if self.shutting_down => {
                cx.out.push_back(Output::Refuse {
                    link,
                    reason: "shutting down",
                });
            }
            Input::Accepted { link, from } => {
                self.conns.accept(&mut cx, now, link, from);
            }
            Input::LocalOnion(service) => self.conns.set_local_onion(&mut cx, now, service),
            Input::DialFailed { conn, failure } => {
                self.conns.dial_failed(&mut cx, now, conn, &failure);
                self.broadcast.connection_ended(now, conn);
            }
            Input::Peer(update) => self.peer_report(now, update),
            Input::SeedResolved { seed, addrs } => {
                self.conns.seed_resolved(&mut cx, now, &seed, &addrs);
            }
            Input::Shutdown => self.shut_down(),
        }
        if self.shutting_down {
            return;
        }
        self.broadcast.expire(&mut broadcast_ctx!(self), now);
        let mut cx = ctx!(self);
        self.conns.expire(&mut cx, now);
        if self.book_saves.due(now.mono, cx.addrman.len()) {
            cx.out
                .push_back(Output::PersistAddresses(cx.addrman.to_bytes()));
        }
        let wants_extra = self.sync.tick(&mut sync_ctx!(self), now);
        self.filters_tick(now);
        // Quiet while Tor is not ready: nothing can be dialled, and a dial
        // attempted now would fail and be counted against a good address.
        if self.tor_ready {
            let mut cx = ctx!(self);
            self.conns.maybe_open_connections(&mut cx, now);
            self.open_private_broadcasts(now);
            // The stale-tip extra only once the regular slots are full:
            // until then, regular dials bring new peers anyway.
            if wants_extra && self.peers.regular_count() >= self.config.target_outbound {
                self.open_extra(now);
            }
        }
    }

    /// Filter work: expire late requests, follow the header chain, hand
    /// out what is missing.
    fn filters_tick(&mut self, now: Now) {
        for (conn, purpose) in self.slots.expired(now.mono) {
            match purpose {
                fetch_slots::Purpose::FilterHeaders | fetch_slots::Purpose::Evidence => {
                    self.filter_sync.timed_out(conn, &mut self.slots);
                }
                fetch_slots::Purpose::Filters | fetch_slots::Purpose::Block => {
                    self.fetch.timed_out(conn);
                }
            }
        }
        self.filter_sync.tick(&mut filter_ctx!(self), now);
        self.fetch.tick(&mut fetch_ctx!(self), now);
    }

    /// Filter and block replies.
    fn filter_message(&mut self, now: Now, conn: ConnId, msg: &NetworkMessage) {
        if self.slots.purpose(conn) == Some(fetch_slots::Purpose::Evidence) {
            self.filter_sync
                .on_evidence(&mut filter_ctx!(self), now, conn, msg);
            return;
        }
        match msg {
            NetworkMessage::CFCheckpt(m) => {
                self.filter_sync
                    .on_cfcheckpt(&mut filter_ctx!(self), now, conn, m);
            }
            NetworkMessage::CFHeaders(m) => {
                self.filter_sync
                    .on_cfheaders(&mut filter_ctx!(self), now, conn, m);
            }
            NetworkMessage::CFilter(m) => {
                self.fetch.on_cfilter(&mut fetch_ctx!(self), now, conn, m)
            }
            NetworkMessage::Block(b) => self.fetch.on_block(&mut fetch_ctx!(self), now, conn, b),
            NetworkMessage::NotFound(_) => self.fetch.on_notfound(&mut fetch_ctx!(self), now, conn),
            _ => {}
        }
    }

    /// A peer report: the connection manager's view first (handshake,
    /// gossip, endings), then header sync's.
    fn peer_report(&mut self, now: Now, update: PeerUpdate) {
        let conn = update.conn;
        match &update.report {
            PeerReport::Event(PeerEvent::Message(msg)) => {
                let mut sx = sync_ctx!(self);
                match msg {
                    NetworkMessage::Headers(headers) => {
                        let tip = sx.chain.tip_header().block_hash();
                        self.sync.on_headers(&mut sx, now, conn, headers);
                        // Eviction protects peers that bring us news.
                        if self.chain.tip_header().block_hash() != tip
                            && let Some(e) = self.peers.get_mut(conn)
                        {
                            e.last_useful_headers = Some(now.mono);
                        }
                    }
                    NetworkMessage::GetHeaders(req) => {
                        self.sync.on_getheaders(&mut sx, now, conn, req);
                    }
                    NetworkMessage::Inv(items) => self.sync.on_inv(&mut sx, now, conn, items),
                    NetworkMessage::SendHeaders => self.sync.on_sendheaders(conn),
                    _ => {}
                }
                self.filter_message(now, conn, msg);
            }
            PeerReport::Closed(_) => {
                self.sync.peer_closed(now, conn);
                self.slots.release(conn);
                self.filter_sync.peer_closed(conn, &mut self.slots);
            }
            PeerReport::Event(_) => {}
        }
        if let PeerReport::Event(PeerEvent::Message(msg)) = &update.report {
            self.broadcast
                .on_message(&mut broadcast_ctx!(self), now, conn, msg);
        }
        let closed = matches!(update.report, PeerReport::Closed(_));
        let start_height = match &update.report {
            PeerReport::Event(PeerEvent::HandshakeComplete(info)) => Some(info.start_height),
            _ => None,
        };
        self.conns.peer_report(&mut ctx!(self), now, update);
        if closed {
            self.broadcast.connection_ended(now, conn);
            // Only now is the peer gone from the table: its work goes to
            // the others, not back to it.
            self.fetch.peer_closed(&mut fetch_ctx!(self), now, conn);
        }
        if let Some(start_height) = start_height
            && let Some(entry) = self.peers.get(conn)
            && let PeerState::Ready(info) = &entry.state
        {
            let (kind, info) = (entry.kind, info.clone());
            self.sync
                .peer_ready(&mut sync_ctx!(self), now, conn, kind, start_height);
            let mut bx = broadcast_ctx!(self);
            self.broadcast.peer_ready(&mut bx, conn, kind);
            self.broadcast.handshake_complete(&mut bx, conn, &info);
            self.filter_sync
                .peer_ready(&mut filter_ctx!(self), now, conn);
            self.fetch.tick(&mut fetch_ctx!(self), now);
        }
    }

    /// Open the private-broadcast connections that are due, one per
    /// opening slot (see [`private_broadcast`]).
    fn open_private_broadcasts(&mut self, now: Now) {
        while let Some(opening) = self.broadcast.next_opening(&mut self.rng, now) {
            let mut cx = ctx!(self);
            // Peers that had it before only when no other is left: a
            // small book still gets its retries.
            let picked = self
                .conns
                .private_broadcast_target(&mut cx, now, &opening.avoid_groups, &opening.avoid)
                .or_else(|| {
                    self.conns
                        .private_broadcast_target(&mut cx, now, &opening.avoid_groups, &[])
                });
            match picked {
                Some((target, addr)) => {
                    let conn = self
                        .conns
                        .open_private_broadcast(&mut cx, now, target, addr);
                    self.broadcast.opened(now, &opening, conn, addr);
                }
                None => self.broadcast.no_peer(now, &opening),
            }
        }
    }

    /// The private-broadcast queue.
    pub fn private_broadcast(&self) -> &PrivateBroadcast {
        &self.broadcast
    }

    /// Resume these private broadcasts (loaded from disk).
    pub fn with_private_broadcasts(mut self, pending: Vec<private_broadcast::Pending>) -> Self {
        self.broadcast.resume(pending);
        self
    }

    /// Open the stale-tip `Extra` connection.
    fn open_extra(&mut self, now: Now) {
        match self.conns.open_extra(&mut ctx!(self), now) {
            Some(conn) => {
                let idle = self.sync.tip_idle(now);
                tracing::warn!(%conn, idle_secs = idle.as_secs(), height = self.chain.height(), "potential stale tip: trying an extra outbound peer");
                self.sync.extra_opened(now, conn);
            }
            None => self.sync.extra_deferred(now),
        }
    }

    fn shut_down(&mut self) {
        if self.shutting_down {
            return;
        }
        self.shutting_down = true;
        self.fetch.fail_all(&mut self.outputs);
        let cx = ctx!(self);
        for e in cx.peers.iter() {
            cx.out.push_back(Output::Disconnect {
                conn: e.conn,
                reason: "shutting down".into(),
            });
        }
        cx.out
            .push_back(Output::PersistAddresses(cx.addrman.to_bytes()));
        // Abandoned dials report nothing more: forget them now.
        let dialing: Vec<ConnId> = cx
            .peers
            .iter()
            .filter(|e| matches!(e.state, PeerState::Dialing { .. }))
            .map(|e| e.conn)
            .collect();
        for conn in dialing {
            cx.peers.remove(conn);
        }
    }

    /// The next thing to do, if any.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// When to call [`Engine::handle`] with [`Input::Tick`] next: the
    /// earliest timer of any part (dial and feeler deadlines, manual
    /// retries, `getheaders` deadlines, the stale-tip check, the address
    /// book's save), but no sooner than [`MAINTENANCE_INTERVAL`] and no
    /// later than [`IDLE_INTERVAL`] after the last input. `None` before the
    /// first input and after shutdown.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.shutting_down {
            return None;
        }
        let last = self.last_now?;
        let earliest = last + MAINTENANCE_INTERVAL;
        let latest = last + IDLE_INTERVAL;
        let due = self
            .conns
            .next_deadline(&self.config, &self.peers, last, self.tor_ready)
            .into_iter()
            .chain(self.sync.next_deadline(&self.config))
            .chain(self.broadcast.next_deadline(last))
            .chain(self.slots.next_deadline())
            .chain(self.fetch.next_deadline())
            .chain(self.book_saves.next(self.addrman.len()))
            .min()
            .unwrap_or(latest);
        Some(due.clamp(earliest, latest))
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod sync_tests;

#[cfg(test)]
mod broadcast_tests;

#[cfg(test)]
mod filter_tests;
