//! Listening, scripted Bitcoin peers that a real `nightjar` process can dial.
//!
//! A [`ScriptedNode`] binds `127.0.0.1:0` and plays a minimal, well-behaved
//! full node on every connection it accepts: it accepts the transport (v2,
//! or v1 where its [`NodeSpec`] allows it), answers the version handshake,
//! answers `ping` with `pong` and `getaddr` with one `addrv2` holding its
//! current gossip list, and ignores everything else until the dialler
//! closes. It records what happened on each connection, exactly, so that
//! end-to-end tests can check what the daemon did from the far side.
//!
//! Nodes run on a tokio runtime: either the one a [`PeerFarm`] owns (for
//! synchronous tests and examples) or any runtime through
//! [`ScriptedNode::start`].

use std::hash::{BuildHasher, RandomState};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nightjar::netaddr::{NetAddr, ParseNetAddrError};
use nightjar::transport::TransportKind;
use nightjar::wire::{AddrV2Message, Magic, NetworkMessage, ServiceFlags};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::{Handle, Runtime};
use tokio::task::{AbortHandle, JoinSet};

use crate::{REGTEST, TestPeer, version_message};

/// How long a connection may stay silent before the node gives up on it.
/// Well above Core's 20-minute inactivity limit, so a dialler that pings on
/// Core's 2-minute schedule is never cut off by the test peer.
pub const IDLE_LIMIT: Duration = Duration::from_secs(30 * 60);

/// How often [`ScriptedNode::wait_for`] re-reads the statistics.
const WAIT_POLL: Duration = Duration::from_millis(50);

/// What a scripted node is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSpec {
    /// A short name, used in the user agent (`/nightjar-testpeer:<name>/`)
    /// so logs and `getpeerinfo` tell the nodes apart.
    pub name: String,
    /// The network magic it speaks.
    pub magic: Magic,
    /// Whether it accepts v1 connections (v2 is always accepted).
    pub allow_v1: bool,
}

impl NodeSpec {
    /// A regtest node called `name` that accepts v1 as well as v2: a v1
    /// session is then visible in [`NodeStats::v1_sessions`] instead of
    /// failing at the transport.
    pub fn regtest(name: &str) -> Self {
        NodeSpec {
            name: name.to_string(),
            magic: REGTEST,
            allow_v1: true,
        }
    }
}

/// One accepted connection, as the scripted node saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionRecord {
    /// Where the connection came from (for onion services: the C-tor
    /// client's loopback socket, not the dialler).
    pub remote: SocketAddr,
    /// The transport, once established; `None` if the transport handshake
    /// failed or is still running.
    pub transport: Option<TransportKind>,
    /// Whether the version handshake completed.
    pub handshake_done: bool,
    /// The user agent the dialler sent in its `version`.
    pub user_agent: Option<String>,
    /// How many `getaddr` messages arrived.
    pub getaddr_count: usize,
    /// Whether the connection has ended.
    pub closed: bool,
    /// Why it ended, as text (a transport or protocol error, or the
    /// dialler's close), once it has.
    pub close_reason: Option<String>,
}

impl ConnectionRecord {
    /// Whether at least one `getaddr` arrived.
    pub fn getaddr_seen(&self) -> bool {
        self.getaddr_count > 0
    }

    /// Whether the session is BIP324 v2.
    pub fn is_v2(&self) -> bool {
        matches!(self.transport, Some(TransportKind::V2 { .. }))
    }

    /// Whether the session is legacy v1.
    pub fn is_v1(&self) -> bool {
        matches!(self.transport, Some(TransportKind::V1))
    }
}

/// A snapshot of what a scripted node has seen. Every count is derived
/// from [`NodeStats::connections`], so the counts always agree with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeStats {
    /// TCP connections accepted.
    pub accepted: usize,
    /// Connections that established a v2 session.
    pub v2_sessions: usize,
    /// Connections that established a v1 session.
    pub v1_sessions: usize,
    /// Connections whose transport handshake failed (including v1 refused
    /// by a node that does not allow it).
    pub transport_failures: usize,
    /// Connections that completed the version handshake.
    pub handshakes: usize,
    /// `getaddr` messages received, over all connections.
    pub getaddr_received: usize,
    /// Connections still open.
    pub open: usize,
    /// Every accepted connection, in order of acceptance.
    pub connections: Vec<ConnectionRecord>,
}

impl NodeStats {
    fn from_records(connections: Vec<ConnectionRecord>) -> Self {
        let count = |f: fn(&ConnectionRecord) -> bool| connections.iter().filter(|c| f(c)).count();
        NodeStats {
            accepted: connections.len(),
            v2_sessions: count(ConnectionRecord::is_v2),
            v1_sessions: count(ConnectionRecord::is_v1),
            transport_failures: count(|c| c.closed && c.transport.is_none()),
            handshakes: count(|c| c.handshake_done),
            getaddr_received: connections.iter().map(|c| c.getaddr_count).sum(),
            open: count(|c| !c.closed),
            connections,
        }
    }

    /// The statistics of the connections accepted after `earlier` was
    /// taken, so that a test sharing a node with others can count only
    /// its own connections.
    pub fn since(&self, earlier: &NodeStats) -> NodeStats {
        let skip = earlier.connections.len().min(self.connections.len());
        NodeStats::from_records(self.connections[skip..].to_vec())
    }
}

/// What the node's tasks share with its handle.
#[derive(Debug)]
struct Shared {
    spec: NodeSpec,
    gossip: Mutex<Vec<AddrV2Message>>,
    records: Mutex<Vec<ConnectionRecord>>,
}

impl Shared {
    /// Statistics keep counting after a panicking test thread poisoned a
    /// lock: the data is plain records, never left half-updated.
    fn records(&self) -> MutexGuard<'_, Vec<ConnectionRecord>> {
        self.records.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn gossip(&self) -> MutexGuard<'_, Vec<AddrV2Message>> {
        self.gossip.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Add a record for a new connection; returns its index.
    fn open_record(&self, remote: SocketAddr) -> usize {
        let mut records = self.records();
        records.push(ConnectionRecord {
            remote,
            transport: None,
            handshake_done: false,
            user_agent: None,
            getaddr_count: 0,
            closed: false,
            close_reason: None,
        });
        records.len() - 1
    }

    fn update(&self, index: usize, f: impl FnOnce(&mut ConnectionRecord)) {
        if let Some(record) = self.records().get_mut(index) {
            f(record);
        }
    }
}

/// A listening scripted peer. Dropping the handle stops the listener and
/// every connection it serves.
#[derive(Debug)]
pub struct ScriptedNode {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept_task: AbortHandle,
}

impl ScriptedNode {
    /// Bind `127.0.0.1:0` and serve connections on `runtime`.
    pub fn start(runtime: &Handle, spec: NodeSpec) -> std::io::Result<ScriptedNode> {
        // Bind synchronously so the address is known (and connectable)
        // before this returns: tests hand it to the Tor network at once.
        let std_listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        std_listener.set_nonblocking(true)?;
        let addr = std_listener.local_addr()?;
        let listener = {
            // Registering with the reactor needs the runtime's context.
            let _entered = runtime.enter();
            TcpListener::from_std(std_listener)?
        };
        let shared = Arc::new(Shared {
            spec,
            gossip: Mutex::new(Vec::new()),
            records: Mutex::new(Vec::new()),
        });
        let accept_task = runtime
            .spawn(accept_loop(listener, Arc::clone(&shared)))
            .abort_handle();
        Ok(ScriptedNode {
            addr,
            shared,
            accept_task,
        })
    }

    /// Where the node listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The node's name.
    pub fn name(&self) -> &str {
        &self.shared.spec.name
    }

    /// The user agent it sends: `/nightjar-testpeer:<name>/`.
    pub fn user_agent(&self) -> String {
        user_agent(&self.shared.spec.name)
    }

    /// Replace the list sent in answer to `getaddr`; connections already
    /// open use the new list from their next `getaddr` on.
    pub fn set_gossip(&self, gossip: Vec<AddrV2Message>) {
        *self.shared.gossip() = gossip;
    }

    /// The current gossip list.
    pub fn gossip(&self) -> Vec<AddrV2Message> {
        self.shared.gossip().clone()
    }

    /// A snapshot of what the node has seen so far.
    pub fn stats(&self) -> NodeStats {
        NodeStats::from_records(self.shared.records().clone())
    }

    /// Poll [`stats`](Self::stats) (from a thread outside the node's
    /// runtime) until `done` holds; `Err` with the last snapshot if it
    /// does not within `limit`.
    pub fn wait_for(
        &self,
        limit: Duration,
        mut done: impl FnMut(&NodeStats) -> bool,
    ) -> Result<NodeStats, NodeStats> {
        let deadline = Instant::now() + limit;
        loop {
            let stats = self.stats();
            if done(&stats) {
                return Ok(stats);
            }
            if Instant::now() >= deadline {
                return Err(stats);
            }
            std::thread::sleep(WAIT_POLL);
        }
    }
}

impl Drop for ScriptedNode {
    fn drop(&mut self) {
        // The connection tasks live in the accept task's JoinSet, so this
        // ends them too.
        self.accept_task.abort();
    }
}

/// The user agent of the node called `name`.
fn user_agent(name: &str) -> String {
    format!("/nightjar-testpeer:{name}/")
}

/// A version nonce: it only has to differ from the dialler's (which checks
/// it to detect connecting to itself), and std's per-process random hash
/// keys give that without another dependency.
fn version_nonce(index: usize) -> u64 {
    RandomState::new().hash_one(index)
}

/// Accept connections until aborted; each is served by its own task.
async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, remote)) => {
                    let index = shared.open_record(remote);
                    connections.spawn(serve(stream, Arc::clone(&shared), index));
                }
                // Running out of file descriptors and the like is
                // transient: back off instead of spinning.
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            },
            // Reap finished connections so the set does not grow forever.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// Serve one connection and record its end.
async fn serve(stream: TcpStream, shared: Arc<Shared>, index: usize) {
    let reason = run_connection(stream, &shared, index).await;
    shared.update(index, |r| {
        r.closed = true;
        r.close_reason = Some(reason);
    });
}

/// The script of one connection; returns why it ended.
async fn run_connection(stream: TcpStream, shared: &Shared, index: usize) -> String {
    let spec = &shared.spec;
    let mut peer = match TestPeer::accept(stream, spec.magic, spec.allow_v1).await {
        Ok(peer) => peer,
        Err(e) => return format!("transport: {e}"),
    };
    let kind = peer.kind();
    shared.update(index, |r| r.transport = Some(kind));

    let ours = version_message(version_nonce(index), 0, &user_agent(&spec.name));
    let theirs = match peer.answer_handshake(ours).await {
        Ok(v) => v,
        Err(e) => return format!("handshake: {e}"),
    };
    shared.update(index, |r| {
        r.handshake_done = true;
        r.user_agent = Some(theirs.user_agent);
    });

    loop {
        let msg = match peer.recv_within(IDLE_LIMIT).await {
            Ok(msg) => msg,
            Err(e) => return e.to_string(),
        };
        let reply = match msg {
            NetworkMessage::Ping(nonce) => NetworkMessage::Pong(nonce),
            NetworkMessage::GetAddr => {
                shared.update(index, |r| r.getaddr_count += 1);
                NetworkMessage::AddrV2(shared.gossip().clone())
            }
            _ => continue,
        };
        if let Err(e) = peer.send(reply).await {
            return format!("send: {e}");
        }
    }
}

/// A runtime hosting scripted nodes, for code that is not async itself.
/// Dropping it stops every node it runs.
#[derive(Debug)]
pub struct PeerFarm {
    handle: Handle,
    /// `Some` until dropped (shutting down takes the runtime by value).
    runtime: Option<Runtime>,
}

impl PeerFarm {
    /// Start a multi-thread runtime for the nodes.
    pub fn new() -> std::io::Result<PeerFarm> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("scripted-node")
            .enable_all()
            .build()?;
        Ok(PeerFarm {
            handle: runtime.handle().clone(),
            runtime: Some(runtime),
        })
    }

    /// The runtime's handle (to run a test's own async code next to the
    /// nodes, e.g. with `block_on` from a plain thread).
    pub fn handle(&self) -> Handle {
        self.handle.clone()
    }

    /// Start a node on this farm's runtime.
    pub fn start_node(&self, spec: NodeSpec) -> std::io::Result<ScriptedNode> {
        ScriptedNode::start(&self.handle, spec)
    }
}

impl Drop for PeerFarm {
    fn drop(&mut self) {
        // Not `Runtime::drop`, which blocks and panics when the farm is
        // dropped inside another runtime (e.g. at the end of a tokio test).
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// A gossip entry for the onion service `onion` (`<56 chars>.onion`) on
/// `port`: a full node with witness support, seen now.
pub fn onion_gossip_entry(onion: &str, port: u16) -> Result<AddrV2Message, ParseNetAddrError> {
    let addr: NetAddr = format!("{onion}:{port}").parse()?;
    Ok(gossip_entry(&addr))
}

/// A gossip entry for `addr`: a full node with witness support, seen now.
pub fn gossip_entry(addr: &NetAddr) -> AddrV2Message {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    AddrV2Message {
        // addrv2 times are 32-bit; saturate rather than wrap after 2106.
        time: u32::try_from(now).unwrap_or(u32::MAX),
        services: ServiceFlags::NETWORK | ServiceFlags::WITNESS,
        addr: addr.to_addrv2(),
        port: addr.port,
    }
}
