//! The driver: the tokio side that runs the sans-IO [`Engine`].
//!
//! One engine task owns the engine. It sleeps until something happens — a
//! dial finishes, a peer task reports, Tor's readiness changes, a DNS seed
//! answers, the engine's own deadline passes, or shutdown is asked — feeds
//! that to the engine with the time, and carries out what the engine asks:
//! dial tasks, commands to peer tasks, address-book writes, circuit
//! releases. This module holds the node's only clock reads.

pub mod addr_file;
pub mod ban_file;
pub mod broadcast_file;
pub mod dial;
pub mod listen;
pub mod rpc_bridge;
pub mod tor_watch;

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::mpsc;
use tokio::task::{AbortHandle, JoinSet};

use crate::chain::ChainStore;
use crate::engine::block_fetch::RequestId;
use crate::engine::{DialFailure, Engine, InboundFrom, Input, Now, Output};
use crate::peer::task::{PeerHandle, sleep_until_opt};
use crate::peer::{ConnId, PeerCommand, PeerConfig, PeerMachine, PeerReport, PeerUpdate};
use crate::rpc::methods::{self, NodeView, OnionServiceStatus, TorStatus};
use crate::wire::Magic;
pub use dial::Network;
pub use rpc_bridge::{NodeRpc, RpcCall};

/// Driver events that may wait for the engine task.
pub const EVENT_QUEUE: usize = 64;

/// Peer reports that may wait for the engine task (the peer tasks wait when
/// it is full: backpressure).
pub const PEER_QUEUE: usize = 256;

/// How long to wait before launching our onion service again after it
/// failed or stopped.
pub const ONION_RELAUNCH_DELAY: Duration = Duration::from_secs(60);

/// How long shutdown waits for peers to close before dropping them.
pub const PEER_CLOSE_GRACE: Duration = Duration::from_secs(3);

/// How long a DNS seed lookup may take (the Tor client has its own, shorter,
/// limit; this one guards the task).
pub const SEED_LOOKUP_LIMIT: Duration = Duration::from_secs(60);

/// What the tasks around the engine tell it.
#[derive(Debug)]
pub enum DriverEvent {
    /// Tor's bootstrap state changed.
    Tor(TorStatus),
    /// A dial finished with a running transport.
    Dialed(dial::Dialed),
    /// A dial failed.
    DialFailed {
        /// Which.
        conn: ConnId,
        /// Why.
        failure: DialFailure,
    },
    /// A stream arrived at our onion service.
    AcceptedOnion {
        /// The stream, not yet read (boxed: a Tor stream is large).
        stream: Box<nightjar_tor::TorStream>,
    },
    /// Our onion service's state changed.
    OnionState(nightjar_tor::OnionServiceState),
    /// Time to try launching our onion service again.
    LaunchOnion,
    /// A stream arrived at one of our listeners.
    Accepted {
        /// The stream, not yet read.
        stream: tokio::net::TcpStream,
        /// Where it came from.
        remote: std::net::SocketAddr,
    },
    /// A DNS seed answered (empty on failure).
    Seed {
        /// The seed.
        host: String,
        /// Its addresses.
        addrs: Vec<IpAddr>,
    },
}

/// The driver's settings.
pub struct DriverOptions {
    /// The chain's message start bytes.
    pub magic: Magic,
    /// Where the address book is saved.
    pub addrman_file: PathBuf,
    /// Where the user's bans are saved.
    pub banlist_file: PathBuf,
    /// Where the private-broadcast queue is saved.
    pub broadcast_file: PathBuf,
    /// Tor or direct TCP.
    pub network: Network,
    /// The header chain file, kept in step with the engine's chain (`None`:
    /// headers live in memory only).
    pub chain_store: Option<ChainStore>,
    /// The filter header chain file (`None`: filter headers live in memory
    /// only).
    pub filter_store: Option<crate::chain::filter_store::FilterStore>,
    /// Bound TCP listeners for inbound peers (none: we do not listen).
    pub listeners: Vec<tokio::net::TcpListener>,
    /// Run our own onion service (`listenonion`) on this virtual port;
    /// `None` when not asked for. It is launched once Tor is ready.
    pub onion_service: Option<u16>,
}

/// An accepted stream waiting for the engine's decision.
enum InboundStream {
    Tcp(tokio::net::TcpStream),
    Onion(Box<nightjar_tor::TorStream>),
}

/// The clock: the one place time is read.
fn now() -> Now {
    let unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    Now {
        mono: tokio::time::Instant::now().into_std(),
        unix,
    }
}

/// The engine task's state.
struct Driver {
    engine: Engine,
    options: DriverOptions,
    events_tx: mpsc::Sender<DriverEvent>,
    peer_tx: mpsc::Sender<PeerUpdate>,
    /// Dials (and inbound handshakes) in progress, with the peer
    /// configuration to start them with.
    dials: HashMap<ConnId, (AbortHandle, PeerConfig)>,
    /// Accepted streams waiting for the engine's decision, by link id.
    pending_inbound: HashMap<u64, InboundStream>,
    /// Our onion service's address and virtual port, once launched.
    onion_target: Option<nightjar_tor::Target>,
    next_link: u64,
    peers: HashMap<ConnId, PeerHandle>,
    tasks: JoinSet<()>,
    saves: JoinSet<()>,
    tor: TorStatus,
    started_unix: u64,
    /// Set by the `stop` RPC.
    stop_requested: bool,
    /// Calls whose answer the engine is fetching, with their parameters.
    waiting_calls: HashMap<RequestId, RpcCall>,
}

/// Run the node until `shutdown` completes or the `stop` RPC arrives on
/// `rpc_calls`, then disconnect every peer, save the address book and
/// return.
pub async fn run(
    engine: Engine,
    options: DriverOptions,
    mut rpc_calls: mpsc::Receiver<RpcCall>,
    shutdown: impl Future<Output = ()>,
) {
    let (events_tx, mut events_rx) = mpsc::channel(EVENT_QUEUE);
    let (peer_tx, mut peer_rx) = mpsc::channel(PEER_QUEUE);
    let mut d = Driver {
        engine,
        options,
        events_tx,
        peer_tx,
        dials: HashMap::new(),
        pending_inbound: HashMap::new(),
        onion_target: None,
        next_link: 0,
        peers: HashMap::new(),
        tasks: JoinSet::new(),
        saves: JoinSet::new(),
        tor: TorStatus::default(),
        started_unix: now().unix,
        stop_requested: false,
        waiting_calls: HashMap::new(),
    };
    match &d.options.network {
        Network::Tor(tor) => {
            d.tor.enabled = true;
            d.tor.summary = "starting".into();
            d.tasks
                .spawn(tor_watch::watch(tor.clone(), d.events_tx.clone()));
            d.engine.handle(now(), Input::Tick);
        }
        Network::Direct => {
            crate::systemd_notify::ready("Tor is turned off; connecting to peers directly");
            d.tor.summary = "Tor is turned off".into();
            d.engine.handle(now(), Input::TorReady(true));
        }
    }
    for listener in std::mem::take(&mut d.options.listeners) {
        d.tasks
            .spawn(listen::accept_loop(listener, d.events_tx.clone()));
    }
    if d.options.onion_service.is_some() {
        d.tor.onion_service = Some(OnionServiceStatus {
            address: None,
            state: "waiting for Tor".into(),
        });
    }
    tokio::pin!(shutdown);
    loop {
        d.carry_out();
        let deadline = d.engine.poll_timeout().map(tokio::time::Instant::from_std);
        tokio::select! {
            () = &mut shutdown => break,
            Some(event) = events_rx.recv() => d.on_event(event),
            Some(update) = peer_rx.recv() => d.on_peer(update),
            Some(call) = rpc_calls.recv() => d.on_rpc(call),
            () = sleep_until_opt(deadline) => d.engine.handle(now(), Input::Tick),
        }
        if d.stop_requested {
            tracing::info!("stop requested over RPC");
            break;
        }
    }
    tracing::info!("shutting down: disconnecting peers and saving the address book");
    crate::systemd_notify::stopping();
    d.engine.handle(now(), Input::Shutdown);
    d.carry_out();
    for (abort, _) in d.dials.values() {
        abort.abort();
    }
    let grace = tokio::time::sleep(PEER_CLOSE_GRACE);
    tokio::pin!(grace);
    while !d.peers.is_empty() {
        tokio::select! {
            () = &mut grace => break,
            Some(update) = peer_rx.recv() => {
                if matches!(update.report, PeerReport::Closed(_)) {
                    d.peers.remove(&update.conn);
                }
            }
        }
    }
    for peer in d.peers.values() {
        peer.abort();
    }
    d.tasks.abort_all();
    // The final save must land: wait for it.
    while d.saves.join_next().await.is_some() {}
}

impl Driver {
    fn on_event(&mut self, event: DriverEvent) {
        match event {
            DriverEvent::Tor(status) => {
                let changed = status.ready != self.tor.ready;
                let onion = self.tor.onion_service.take();
                self.tor = status;
                self.tor.onion_service = onion;
                if self.tor.ready {
                    self.launch_onion_service();
                }
                if changed {
                    self.engine.handle(now(), Input::TorReady(self.tor.ready));
                }
            }
            DriverEvent::Dialed(dialed) => {
                // A dial the engine abandoned is dropped (and so closed).
                let Some((_, config)) = self.dials.remove(&dialed.conn) else {
                    return;
                };
                let t = now();
                self.engine.handle(
                    t,
                    Input::Connected {
                        conn: dialed.conn,
                        transport: dialed.transport,
                        circuit: dialed.circuit,
                    },
                );
                let machine = PeerMachine::new(config, t.mono);
                let handle = (dialed.start)(dialed.conn, machine, self.peer_tx.clone());
                self.peers.insert(dialed.conn, handle);
            }
            DriverEvent::DialFailed { conn, failure } => {
                if self.dials.remove(&conn).is_some() {
                    self.engine
                        .handle(now(), Input::DialFailed { conn, failure });
                }
            }
            DriverEvent::Accepted { stream, remote } => {
                let link = self.next_link;
                self.next_link += 1;
                self.pending_inbound
                    .insert(link, InboundStream::Tcp(stream));
                let from = InboundFrom::Tcp(remote);
                self.engine.handle(now(), Input::Accepted { link, from });
            }
            DriverEvent::AcceptedOnion { stream } => {
                let Some(service) = self.onion_target.clone() else {
                    return;
                };
                let link = self.next_link;
                self.next_link += 1;
                self.pending_inbound
                    .insert(link, InboundStream::Onion(stream));
                let from = InboundFrom::Onion(service);
                self.engine.handle(now(), Input::Accepted { link, from });
            }
            DriverEvent::OnionState(state) => self.onion_state(state),
            DriverEvent::LaunchOnion => self.launch_onion_service(),
            DriverEvent::Seed { host, addrs } => self
                .engine
                .handle(now(), Input::SeedResolved { seed: host, addrs }),
        }
    }

    /// Launch our onion service if it is wanted, Tor is ready and it does
    /// not run yet. A failure is logged and shown, and tried again later;
    /// the node keeps its outbound connections meanwhile.
    fn launch_onion_service(&mut self) {
        let (Some(port), Network::Tor(tor)) = (self.options.onion_service, &self.options.network)
        else {
            return;
        };
        if self.onion_target.is_some() || !self.tor.ready {
            return;
        }
        match listen::launch_onion_service(tor, port) {
            Ok((service, target)) => {
                self.tor.onion_service = Some(OnionServiceStatus {
                    address: Some(target.to_string()),
                    state: "starting".into(),
                });
                self.onion_target = Some(target.clone());
                self.tasks
                    .spawn(listen::onion_accept_loop(service, self.events_tx.clone()));
                // Announced from launch, as Core announces its onion
                // service as soon as Tor has created it: publication
                // follows within moments, and peers retry.
                self.engine.handle(now(), Input::LocalOnion(Some(target)));
            }
            Err(why) => {
                self.tor.onion_service = Some(OnionServiceStatus {
                    address: None,
                    state: format!("failed: {why}"),
                });
                self.relaunch_onion_later();
            }
        }
    }

    /// Try the onion service again after [`ONION_RELAUNCH_DELAY`].
    fn relaunch_onion_later(&mut self) {
        let events = self.events_tx.clone();
        self.tasks.spawn(async move {
            tokio::time::sleep(ONION_RELAUNCH_DELAY).await;
            let _ = events.send(DriverEvent::LaunchOnion).await;
        });
    }

    /// Our onion service changed state: log it and show it; once it has
    /// stopped, stop announcing it and launch it again later.
    fn onion_state(&mut self, state: nightjar_tor::OnionServiceState) {
        use nightjar_tor::OnionServiceState as S;
        let name = match state {
            S::Starting => "starting",
            S::Running => "running",
            S::Degraded => "degraded",
            S::Unreachable => "unreachable",
            S::Stopped => "stopped",
            _ => "unknown",
        };
        if let Some(status) = self.tor.onion_service.as_mut() {
            status.state = name.into();
        }
        match state {
            S::Running => tracing::info!("onion service published: inbound peers can reach us"),
            S::Unreachable => tracing::warn!(
                "onion service unreachable for now (Arti keeps trying to publish it); outbound connections are unaffected"
            ),
            S::Stopped => {
                tracing::warn!("onion service stopped; launching it again in a minute");
                self.onion_target = None;
                self.engine.handle(now(), Input::LocalOnion(None));
                self.relaunch_onion_later();
            }
            _ => tracing::debug!(state = name, "onion service state"),
        }
    }

    fn on_rpc(&mut self, call: RpcCall) {
        let mut view = NodeView {
            engine: &mut self.engine,
            now: now(),
            started_unix: self.started_unix,
            tor: &self.tor,
        };
        let result = match methods::answer_or_defer(&mut view, &call.method, &call.params) {
            Ok(methods::Reply::Later(id)) => {
                // Answered when the engine reports the fetch done.
                self.waiting_calls.insert(id, call);
                self.carry_out();
                return;
            }
            Ok(methods::Reply::Now(value)) => Ok(value),
            Err(e) => Err(e),
        };
        if call.method == "stop" && result.is_ok() {
            self.stop_requested = true;
        }
        // What the call changed is carried out before it is answered: a
        // queued transaction is on disk by the time its txid is returned.
        self.carry_out();
        let _ = call.reply.send(result);
    }

    fn on_peer(&mut self, update: PeerUpdate) {
        if matches!(update.report, PeerReport::Closed(_)) {
            self.peers.remove(&update.conn);
        }
        self.engine.handle(now(), Input::Peer(update));
    }

    /// Do what the engine asked.
    fn carry_out(&mut self) {
        while let Some(output) = self.engine.poll_output() {
            match output {
                Output::Dial(req) => {
                    let conn = req.conn;
                    let config = req.peer.clone();
                    let task = self.tasks.spawn(dial::dial(
                        self.options.network.clone(),
                        self.options.magic,
                        req,
                        self.events_tx.clone(),
                    ));
                    self.dials.insert(conn, (task, config));
                }
                Output::Accept(req) => {
                    // The engine answers an `Accepted` in the same turn, so
                    // the stream is still here.
                    if let Some(stream) = self.pending_inbound.remove(&req.link) {
                        let (conn, config) = (req.conn, req.peer.clone());
                        let (magic, events) = (self.options.magic, self.events_tx.clone());
                        let task = match stream {
                            InboundStream::Tcp(s) => {
                                self.tasks.spawn(listen::handshake(s, magic, req, events))
                            }
                            InboundStream::Onion(s) => {
                                self.tasks.spawn(listen::handshake(*s, magic, req, events))
                            }
                        };
                        self.dials.insert(conn, (task, config));
                    }
                }
                Output::Refuse { link, .. } => {
                    // Dropping the stream closes it, unanswered.
                    self.pending_inbound.remove(&link);
                }
                Output::Send { conn, msg } => {
                    if let Some(peer) = self.peers.get(&conn)
                        && !peer.try_command(PeerCommand::Send(msg))
                    {
                        tracing::debug!(%conn, "peer command queue full: message dropped");
                    }
                }
                Output::Disconnect { conn, reason } => {
                    if let Some((abort, _)) = self.dials.remove(&conn) {
                        abort.abort();
                    } else if let Some(peer) = self.peers.get(&conn)
                        && !peer.try_command(PeerCommand::Disconnect(reason))
                    {
                        peer.abort();
                    }
                }
                Output::ResolveSeed { host, group } => {
                    let events = self.events_tx.clone();
                    let network = self.options.network.clone();
                    self.tasks.spawn(async move {
                        let addrs = resolve_seed(network, &host, group).await;
                        let _ = events.send(DriverEvent::Seed { host, addrs }).await;
                    });
                }
                Output::PersistAddresses(bytes) => {
                    let path = self.options.addrman_file.clone();
                    self.saves.spawn(addr_file::save(path, bytes));
                }
                Output::PersistBans(bytes) => {
                    let path = self.options.banlist_file.clone();
                    self.saves.spawn(ban_file::save(path, bytes));
                }
                Output::PersistBroadcasts(bytes) => {
                    broadcast_file::save(&self.options.broadcast_file, &bytes);
                }
                Output::ReleaseGroup(group) => {
                    if let Network::Tor(tor) = &self.options.network {
                        tor.release_group(group);
                    }
                }
                Output::PersistChain => {
                    // Synchronous: 2000 records and one fdatasync take
                    // milliseconds, and the next batch must not overtake it.
                    if let Some(store) = self.options.chain_store.as_mut()
                        && let Err(e) = store.append(self.engine.chain_for_store())
                    {
                        tracing::error!(
                            "could not save headers to {}: {e}",
                            store.path().display()
                        );
                    }
                }
                Output::TruncateChain(len) => {
                    if let Some(store) = self.options.chain_store.as_mut()
                        && let Err(e) = store.truncate(len)
                    {
                        tracing::error!(
                            "could not roll back the header file {}: {e}",
                            store.path().display()
                        );
                    }
                }
                Output::PersistFilterHeaders => {
                    if let Some(store) = self.options.filter_store.as_mut()
                        && let Err(e) = store.append(self.engine.filter_headers_for_store())
                    {
                        tracing::error!(
                            "could not save filter headers to {}: {e}",
                            store.path().display()
                        );
                    }
                }
                Output::TruncateFilterHeaders(len) => {
                    if let Some(store) = self.options.filter_store.as_mut()
                        && let Err(e) = store.truncate(len)
                    {
                        tracing::error!(
                            "could not roll back the filter header file {}: {e}",
                            store.path().display()
                        );
                    }
                }
                Output::Fetched { id, result } => {
                    if let Some(call) = self.waiting_calls.remove(&id) {
                        let view = NodeView {
                            engine: &mut self.engine,
                            now: now(),
                            started_unix: self.started_unix,
                            tor: &self.tor,
                        };
                        let answer = methods::fetched(&view, &call.params, result);
                        let _ = call.reply.send(answer);
                    }
                }
                Output::Misbehaving { conn, points, what } => {
                    if let Some(peer) = self.peers.get(&conn)
                        && !peer.try_command(PeerCommand::Misbehaving { points, what })
                    {
                        // A peer too busy to take the score is closed.
                        peer.abort();
                    }
                }
            }
        }
        // Reap finished tasks so the sets stay small.
        while self.tasks.try_join_next().is_some() {}
        while self.saves.try_join_next().is_some() {}
    }
}

/// Resolve a DNS seed through a Tor exit (the system resolver only when Tor
/// is explicitly off); an empty list on failure.
async fn resolve_seed(
    network: Network,
    host: &str,
    group: nightjar_tor::IsolationGroup,
) -> Vec<IpAddr> {
    let lookup = async {
        match network {
            Network::Tor(tor) => tor.resolve(host, group).await.map_err(|e| e.to_string()),
            Network::Direct => tokio::net::lookup_host((host, 0))
                .await
                .map(|addrs| addrs.map(|a| a.ip()).collect())
                .map_err(|e| e.to_string()),
        }
    };
    match tokio::time::timeout(SEED_LOOKUP_LIMIT, lookup).await {
        Ok(Ok(addrs)) => addrs,
        Ok(Err(e)) => {
            tracing::debug!(seed = host, "DNS seed lookup failed: {e}");
            Vec::new()
        }
        Err(_) => {
            tracing::debug!(seed = host, "DNS seed lookup timed out");
            Vec::new()
        }
    }
}
