//! Listening, scripted Bitcoin peers that a real `nightjar` process can dial.
//!
//! A [`ScriptedNode`] binds `127.0.0.1:0` and plays a minimal, well-behaved
//! full node on every connection it accepts: it accepts the transport (v2,
//! or v1 where its [`NodeSpec`] allows it), answers the version handshake,
//! answers `ping` with `pong` and `getaddr` with one `addrv2` holding its
//! current gossip list, serves a header chain (below), and ignores
//! everything else until the dialler closes. It records what happened on
//! each connection, exactly, so that end-to-end tests can check what the
//! daemon did from the far side.
//!
//! # Serving headers
//!
//! Each node serves its own header chain: the network's genesis followed by
//! the headers of [`NodeSpec::headers`], replaced at any time with
//! [`ScriptedNode::set_headers`]. The chain is taken as given and never
//! validated, so a test can serve an invalid chain (bad proof of work,
//! wrong bits, a broken parent link) simply by building one. Links are by
//! *position*: header `i`'s parent is header `i - 1` (header 0's is
//! genesis), whatever its `prev_blockhash` says, and each header is known
//! by its own `block_hash`.
//!
//! - `version` carries the chain's height (its header count) as
//!   `start_height`, read when the connection's handshake starts.
//! - `getheaders` is answered as Core answers it: the first locator hash on
//!   the served chain is the fork point (genesis if none is), and the reply
//!   is a `headers` with the up to [`MAX_HEADERS_RESULTS`] headers after
//!   it, ending early at `hash_stop` (included) when that is on the way;
//!   it is empty when nothing follows. An empty locator asks for the
//!   `hash_stop` header alone, and gets no reply if that is unknown; a
//!   locator of more than [`MAX_LOCATOR_SIZE`] hashes closes the
//!   connection, as Core disconnects such a peer.
//! - Announcing (BIP130): [`ScriptedNode::set_headers`] sends every
//!   handshaken connection that has sent `sendheaders` one `headers` with
//!   the new chain's headers from the first position where it differs from
//!   the old one (the old tip's successors when it extends the old chain,
//!   the new branch from the fork point on a reorg), at most
//!   [`MAX_HEADERS_RESULTS`] of them; the dialler fetches any rest with
//!   `getheaders`. Nothing is announced when the new chain adds nothing
//!   (same chain, or a truncation), nor by
//!   [`ScriptedNode::set_headers_quietly`], which leaves the dialler to
//!   poll.
//!
//! # Transactions
//!
//! A node keeps a small mempool and relays, as a Core node does:
//! - an `inv` of transactions it lacks is answered with one `getdata` (by
//!   wtxid, or by txid with witness), unless [`NodeSpec::fetch_txs`] is off;
//! - a `tx` is kept, recorded on its connection, and announced (`inv` by
//!   wtxid) to every *other* handshaken connection whose dialler asked for
//!   relay in its `version` and whose `feefilter` is at most
//!   [`ASSUMED_FEE_RATE`], unless [`NodeSpec::relay_txs`] is off;
//! - `getdata` for a kept transaction is answered with it, anything else
//!   with `notfound`;
//! - [`ScriptedNode::announce_tx`] puts a transaction in the mempool and
//!   announces it the same way (the rest of the network relaying it).
//!
//! Nodes run on a tokio runtime: either the one a [`PeerFarm`] owns (for
//! synchronous tests and examples) or any runtime through
//! [`ScriptedNode::start`].

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bitcoin::block::Header;
use bitcoin::blockdata::constants::genesis_block;
use bitcoin::{BlockHash, Network, Transaction, Txid, Wtxid};
use nightjar::netaddr::{NetAddr, ParseNetAddrError};
use nightjar::transport::TransportKind;
use nightjar::wire::{
    AddrV2Message, GetHeadersMessage, Inventory, Magic, NetworkMessage, ServiceFlags,
};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::{Handle, Runtime};
use tokio::sync::broadcast;
use tokio::task::{AbortHandle, JoinSet};

use crate::{REGTEST, TestPeer, version_message};

/// How long a connection may stay silent before the node gives up on it.
/// Well above Core's 20-minute inactivity limit, so a dialler that pings on
/// Core's 2-minute schedule is never cut off by the test peer.
pub const IDLE_LIMIT: Duration = Duration::from_secs(30 * 60);

/// How often [`ScriptedNode::wait_for`] re-reads the statistics.
const WAIT_POLL: Duration = Duration::from_millis(50);

/// The fee rate (sat/kvB) a node assumes every transaction pays when it
/// compares it with a connection's `feefilter` (it has no UTXO set to
/// compute the real one): 10 sat/vB.
pub const ASSUMED_FEE_RATE: i64 = 10_000;

/// Transaction announcements a connection may fall behind by.
const TX_BACKLOG: usize = 256;

/// Core's MAX_HEADERS_RESULTS: the most headers one `headers` message
/// carries, in answer to `getheaders` or as an announcement.
pub const MAX_HEADERS_RESULTS: usize = 2000;

/// Core's MAX_LOCATOR_SZ: a `getheaders` with a longer locator closes the
/// connection.
pub const MAX_LOCATOR_SIZE: usize = 101;

/// Announcements a connection may fall behind by before it skips some
/// (each [`ScriptedNode::set_headers`] that changes the tip makes one).
const ANNOUNCE_BACKLOG: usize = 256;

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
    /// The header chain it serves from the start: the headers after the
    /// network's genesis, in order, taken as given (see the module
    /// documentation). Empty by default; [`ScriptedNode::set_headers`]
    /// replaces it later.
    pub headers: Vec<Header>,
    /// Whether it asks for transactions it is offered (on by default).
    pub fetch_txs: bool,
    /// Whether it announces the transactions it gets to its other
    /// connections (on by default).
    pub relay_txs: bool,
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
            headers: Vec::new(),
            fetch_txs: true,
            relay_txs: true,
        }
    }

    /// This spec, asking (or not) for offered transactions.
    pub fn fetching_txs(self, fetch_txs: bool) -> Self {
        NodeSpec { fetch_txs, ..self }
    }

    /// This spec, relaying (or not) the transactions it gets.
    pub fn relaying_txs(self, relay_txs: bool) -> Self {
        NodeSpec { relay_txs, ..self }
    }

    /// This spec serving `headers` (see [`NodeSpec::headers`]).
    pub fn with_headers(self, headers: Vec<Header>) -> Self {
        NodeSpec { headers, ..self }
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
    /// How many `getheaders` messages arrived.
    pub getheaders_count: usize,
    /// The last `getheaders` that arrived (its locator and stop hash).
    pub last_getheaders: Option<GetHeadersMessage>,
    /// How many headers the node sent, in answers and announcements.
    pub headers_sent: usize,
    /// How many of [`headers_sent`](Self::headers_sent) were announced
    /// unasked (after `sendheaders`, when the chain changed).
    pub headers_announced: usize,
    /// Whether a `sendheaders` arrived.
    pub sendheaders: bool,
    /// Whether the connection has ended.
    pub closed: bool,
    /// Why it ended, as text (a transport or protocol error, or the
    /// dialler's close), once it has.
    pub close_reason: Option<String>,
    /// The relay flag of the dialler's `version`.
    pub relay: Option<bool>,
    /// The last `feefilter` the dialler sent (sat/kvB).
    pub fee_filter: Option<i64>,
    /// `inv` messages received.
    pub invs_received: usize,
    /// Transactions received (`tx`), in order.
    pub txs_received: Vec<Txid>,
    /// Transactions announced to the dialler, in order.
    pub txs_announced: Vec<Txid>,
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
    /// `getheaders` messages received, over all connections.
    pub getheaders_received: usize,
    /// Headers sent (answers and announcements), over all connections.
    pub headers_sent: usize,
    /// Headers announced unasked, over all connections.
    pub headers_announced: usize,
    /// Connections that sent `sendheaders`.
    pub sendheaders_received: usize,
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
            getheaders_received: connections.iter().map(|c| c.getheaders_count).sum(),
            headers_sent: connections.iter().map(|c| c.headers_sent).sum(),
            headers_announced: connections.iter().map(|c| c.headers_announced).sum(),
            sendheaders_received: count(|c| c.sendheaders),
            open: count(|c| !c.closed),
            connections,
        }
    }

    /// Transactions received, over all connections.
    pub fn txs_received(&self) -> usize {
        self.connections.iter().map(|c| c.txs_received.len()).sum()
    }

    /// Transaction announcements sent, over all connections.
    pub fn txs_announced(&self) -> usize {
        self.connections.iter().map(|c| c.txs_announced.len()).sum()
    }

    /// The statistics of the connections accepted after `earlier` was
    /// taken, so that a test sharing a node with others can count only
    /// its own connections.
    pub fn since(&self, earlier: &NodeStats) -> NodeStats {
        let skip = earlier.connections.len().min(self.connections.len());
        NodeStats::from_records(self.connections[skip..].to_vec())
    }
}

/// The header chain a node serves, indexed.
#[derive(Debug, Clone)]
struct ServedChain {
    /// The network's genesis: height 0.
    genesis: Header,
    /// The headers after genesis: `headers[i]` is at height `i + 1`.
    headers: Vec<Header>,
    /// `hashes[i]` is `headers[i].block_hash()`.
    hashes: Vec<BlockHash>,
    /// Height by hash, genesis included; the lowest height where a hash
    /// occurs more than once.
    heights: HashMap<BlockHash, usize>,
}

impl ServedChain {
    fn new(genesis: Header, headers: Vec<Header>) -> Self {
        let hashes: Vec<BlockHash> = headers.iter().map(Header::block_hash).collect();
        let mut heights = HashMap::with_capacity(hashes.len() + 1);
        heights.insert(genesis.block_hash(), 0);
        for (i, hash) in hashes.iter().enumerate() {
            heights.entry(*hash).or_insert(i + 1);
        }
        ServedChain {
            genesis,
            headers,
            hashes,
            heights,
        }
    }

    /// The tip's height: the number of headers after genesis.
    fn height(&self) -> usize {
        self.headers.len()
    }

    /// The tip's hash (genesis's while nothing follows it).
    fn tip_hash(&self) -> BlockHash {
        self.hashes
            .last()
            .copied()
            .unwrap_or_else(|| self.genesis.block_hash())
    }

    /// The header at `height`.
    fn at(&self, height: usize) -> Option<Header> {
        match height.checked_sub(1) {
            None => Some(self.genesis),
            Some(i) => self.headers.get(i).copied(),
        }
    }

    /// Core's answer to `getheaders`, or `None` where Core sends nothing.
    fn answer(&self, req: &GetHeadersMessage) -> Option<Vec<Header>> {
        if req.locator_hashes.is_empty() {
            // Only the stop hash's own header, if we have it.
            let height = *self.heights.get(&req.stop_hash)?;
            return self.at(height).map(|h| vec![h]);
        }
        let fork = req
            .locator_hashes
            .iter()
            .find_map(|hash| self.heights.get(hash).copied())
            .unwrap_or(0);
        let mut out = Vec::new();
        // By position: the header at height `fork + 1` is `headers[fork]`.
        for (header, hash) in self.headers.iter().zip(&self.hashes).skip(fork) {
            out.push(*header);
            if out.len() >= MAX_HEADERS_RESULTS || *hash == req.stop_hash {
                break;
            }
        }
        Some(out)
    }

    /// What to announce on replacing `self` with `new`: `new`'s headers
    /// from the first position where the two differ, at most
    /// [`MAX_HEADERS_RESULTS`] of them.
    fn announcement(&self, new: &ServedChain) -> Vec<Header> {
        let same = self
            .hashes
            .iter()
            .zip(&new.hashes)
            .take_while(|(a, b)| a == b)
            .count();
        new.headers
            .iter()
            .skip(same)
            .take(MAX_HEADERS_RESULTS)
            .copied()
            .collect()
    }
}

/// The genesis header of the network `magic` belongs to (regtest's for a
/// magic no network uses).
fn genesis_for(magic: Magic) -> Header {
    genesis_block(Network::from_magic(magic).unwrap_or(Network::Regtest)).header
}

/// What the node's tasks share with its handle.
#[derive(Debug)]
struct Shared {
    spec: NodeSpec,
    gossip: Mutex<Vec<AddrV2Message>>,
    chain: Mutex<Arc<ServedChain>>,
    /// Header announcements for connections that sent `sendheaders`.
    announce: broadcast::Sender<Arc<Vec<Header>>>,
    records: Mutex<Vec<ConnectionRecord>>,
    /// Transactions kept, by wtxid.
    mempool: Mutex<HashMap<Wtxid, Transaction>>,
    /// Transactions to announce, with the connection they came from (none
    /// for [`ScriptedNode::announce_tx`]).
    tx_news: broadcast::Sender<Arc<(Option<usize>, Transaction)>>,
}

impl Shared {
    /// Statistics keep counting after a panicking test thread poisoned a
    /// lock: the data is plain records, never left half-updated.
    fn records(&self) -> MutexGuard<'_, Vec<ConnectionRecord>> {
        self.records.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn mempool(&self) -> MutexGuard<'_, HashMap<Wtxid, Transaction>> {
        self.mempool.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Keep `tx` and announce it to every connection but `from`; whether
    /// it was new.
    fn accept_tx(&self, from: Option<usize>, tx: Transaction) -> bool {
        let fresh = self
            .mempool()
            .insert(tx.compute_wtxid(), tx.clone())
            .is_none();
        if fresh && self.spec.relay_txs {
            let _ = self.tx_news.send(Arc::new((from, tx)));
        }
        fresh
    }

    fn gossip(&self) -> MutexGuard<'_, Vec<AddrV2Message>> {
        self.gossip.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The chain served right now (a snapshot: replacing it later does not
    /// change what the caller holds).
    fn chain(&self) -> Arc<ServedChain> {
        Arc::clone(&self.chain.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Serve `headers` from now on; announce what changed if `announce`.
    fn set_chain(&self, headers: Vec<Header>, announce: bool) {
        let new = Arc::new(ServedChain::new(genesis_for(self.spec.magic), headers));
        let mut chain = self.chain.lock().unwrap_or_else(|p| p.into_inner());
        let news = chain.announcement(&new);
        *chain = new;
        // Sent under the lock, so announcements go out in the order the
        // chains were set. No subscriber (nobody sent `sendheaders`) is
        // not an error.
        if announce && !news.is_empty() {
            let _ = self.announce.send(Arc::new(news));
        }
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
            getheaders_count: 0,
            last_getheaders: None,
            headers_sent: 0,
            headers_announced: 0,
            sendheaders: false,
            closed: false,
            close_reason: None,
            relay: None,
            fee_filter: None,
            invs_received: 0,
            txs_received: Vec::new(),
            txs_announced: Vec::new(),
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
        ScriptedNode::start_on(runtime, std_listener, spec)
    }

    /// Serve connections accepted on `std_listener` (bound by the caller,
    /// e.g. the listener an onion service of the private Tor network
    /// forwards to) on `runtime`.
    pub fn start_on(
        runtime: &Handle,
        std_listener: std::net::TcpListener,
        mut spec: NodeSpec,
    ) -> std::io::Result<ScriptedNode> {
        std_listener.set_nonblocking(true)?;
        let addr = std_listener.local_addr()?;
        let listener = {
            // Registering with the reactor needs the runtime's context.
            let _entered = runtime.enter();
            TcpListener::from_std(std_listener)?
        };
        // The spec keeps its other fields; the chain lives (and changes)
        // in `Shared::chain`.
        let headers = std::mem::take(&mut spec.headers);
        let chain = ServedChain::new(genesis_for(spec.magic), headers);
        let (announce, _) = broadcast::channel(ANNOUNCE_BACKLOG);
        let (tx_news, _) = broadcast::channel(TX_BACKLOG);
        let shared = Arc::new(Shared {
            spec,
            gossip: Mutex::new(Vec::new()),
            chain: Mutex::new(Arc::new(chain)),
            announce,
            records: Mutex::new(Vec::new()),
            mempool: Mutex::new(HashMap::new()),
            tx_news,
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

    /// Serve `headers` (the chain after the network's genesis, taken as
    /// given: see the module documentation) from now on, and announce the
    /// new part to every connection that has sent `sendheaders`: the new
    /// chain's headers from the first position where it differs from the
    /// old one, at most [`MAX_HEADERS_RESULTS`], in one `headers`; nothing
    /// if it adds no header. Open connections answer their next
    /// `getheaders` from the new chain; new connections also announce its
    /// height in `version`.
    ///
    /// A connection whose `sendheaders` the node has not read yet gets no
    /// announcement: wait for [`ConnectionRecord::sendheaders`] first.
    pub fn set_headers(&self, headers: Vec<Header>) {
        self.shared.set_chain(headers, true);
    }

    /// [`set_headers`](Self::set_headers) without announcing anything:
    /// diallers see the new chain only when they ask with `getheaders`.
    pub fn set_headers_quietly(&self, headers: Vec<Header>) {
        self.shared.set_chain(headers, false);
    }

    /// The headers served now (after genesis).
    pub fn headers(&self) -> Vec<Header> {
        self.shared.chain().headers.clone()
    }

    /// The served chain's height: how many headers follow genesis.
    pub fn height(&self) -> usize {
        self.shared.chain().height()
    }

    /// The served tip's hash (genesis's when no header follows it).
    pub fn tip_hash(&self) -> BlockHash {
        self.shared.chain().tip_hash()
    }

    /// The genesis header the served chain starts from.
    pub fn genesis(&self) -> Header {
        self.shared.chain().genesis
    }

    /// Keep `tx` and announce it to every connection that would hear it,
    /// as if it had arrived from elsewhere in the network.
    pub fn announce_tx(&self, tx: Transaction) {
        self.shared.accept_tx(None, tx);
    }

    /// The transactions kept.
    pub fn mempool(&self) -> Vec<Transaction> {
        self.shared.mempool().values().cloned().collect()
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
                    // As a Core node does: small messages go out at once.
                    let _ = stream.set_nodelay(true);
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

    let height = i32::try_from(shared.chain().height()).unwrap_or(i32::MAX);
    let ours = version_message(version_nonce(index), height, &user_agent(&spec.name));
    let theirs = match peer.answer_handshake(ours).await {
        Ok(v) => v,
        Err(e) => return format!("handshake: {e}"),
    };
    let wants_relay = theirs.relay;
    shared.update(index, |r| {
        r.handshake_done = true;
        r.user_agent = Some(theirs.user_agent);
        r.relay = Some(theirs.relay);
    });
    // Subscribed at once: a transaction that arrives from now on reaches
    // this connection if its dialler asked for relay.
    let mut tx_news = shared.tx_news.subscribe();
    let mut fee_filter: Option<i64> = None;

    // Subscribed once `sendheaders` arrives: only announcements made
    // after that reach the connection.
    let mut announcements: Option<broadcast::Receiver<Arc<Vec<Header>>>> = None;
    loop {
        // Both branches are cancel-safe: the reader only loses a read that
        // has not completed, and a broadcast receiver keeps its place.
        let event = tokio::select! {
            msg = peer.recv_within(IDLE_LIMIT) => Event::Message(msg),
            news = next_announcement(&mut announcements) => Event::Announce(news),
            tx = next_tx(&mut tx_news) => Event::Tx(tx),
        };
        let reply = match event {
            Event::Message(Err(e)) => return e.to_string(),
            Event::Message(Ok(msg)) => match msg {
                NetworkMessage::Ping(nonce) => NetworkMessage::Pong(nonce),
                NetworkMessage::GetAddr => {
                    shared.update(index, |r| r.getaddr_count += 1);
                    NetworkMessage::AddrV2(shared.gossip().clone())
                }
                NetworkMessage::SendHeaders => {
                    // Subscribe before recording, so that a test that saw
                    // the record is sure to get its next announcement.
                    if announcements.is_none() {
                        announcements = Some(shared.announce.subscribe());
                    }
                    shared.update(index, |r| r.sendheaders = true);
                    continue;
                }
                NetworkMessage::GetHeaders(req) => {
                    let locator_len = req.locator_hashes.len();
                    let answer = if locator_len > MAX_LOCATOR_SIZE {
                        None
                    } else {
                        shared.chain().answer(&req)
                    };
                    let sent = answer.as_ref().map_or(0, Vec::len);
                    // Recorded before sending, so the counts are in place
                    // by the time the dialler reads the answer.
                    shared.update(index, |r| {
                        r.getheaders_count += 1;
                        r.last_getheaders = Some(req);
                        r.headers_sent += sent;
                    });
                    if locator_len > MAX_LOCATOR_SIZE {
                        return format!(
                            "getheaders locator of {locator_len} hashes exceeds {MAX_LOCATOR_SIZE}"
                        );
                    }
                    match answer {
                        Some(headers) => NetworkMessage::Headers(headers),
                        None => continue,
                    }
                }
                NetworkMessage::FeeFilter(rate) => {
                    fee_filter = Some(rate);
                    shared.update(index, |r| r.fee_filter = Some(rate));
                    continue;
                }
                NetworkMessage::Inv(items) => {
                    shared.update(index, |r| r.invs_received += 1);
                    let have = |w: &Wtxid| shared.mempool().contains_key(w);
                    let wanted: Vec<Inventory> = items
                        .iter()
                        .filter_map(|i| match i {
                            Inventory::WTx(w) if !have(w) => Some(Inventory::WTx(*w)),
                            Inventory::Transaction(t)
                                if !shared.mempool().values().any(|tx| tx.compute_txid() == *t) =>
                            {
                                Some(Inventory::WitnessTransaction(*t))
                            }
                            _ => None,
                        })
                        .collect();
                    if wanted.is_empty() || !spec.fetch_txs {
                        continue;
                    }
                    NetworkMessage::GetData(wanted)
                }
                NetworkMessage::Tx(tx) => {
                    let txid = tx.compute_txid();
                    // Recorded before it is relayed, so a test that sees
                    // the announcement elsewhere also sees where it came from.
                    shared.update(index, |r| r.txs_received.push(txid));
                    shared.accept_tx(Some(index), tx);
                    continue;
                }
                NetworkMessage::GetData(items) => {
                    let pool = shared.mempool();
                    let found = items.iter().find_map(|i| match i {
                        Inventory::WTx(w) => pool.get(w).cloned(),
                        Inventory::Transaction(t) | Inventory::WitnessTransaction(t) => {
                            pool.values().find(|tx| tx.compute_txid() == *t).cloned()
                        }
                        _ => None,
                    });
                    drop(pool);
                    match found {
                        Some(tx) => NetworkMessage::Tx(tx),
                        None => NetworkMessage::NotFound(items),
                    }
                }
                _ => continue,
            },
            Event::Tx(news) => {
                let (from, tx) = &*news;
                let allowed = fee_filter.is_none_or(|f| f <= ASSUMED_FEE_RATE);
                if *from == Some(index) || !wants_relay || !allowed {
                    continue;
                }
                shared.update(index, |r| r.txs_announced.push(tx.compute_txid()));
                NetworkMessage::Inv(vec![Inventory::WTx(tx.compute_wtxid())])
            }
            Event::Announce(news) => {
                shared.update(index, |r| {
                    r.headers_sent += news.len();
                    r.headers_announced += news.len();
                });
                NetworkMessage::Headers(news.to_vec())
            }
        };
        if let Err(e) = peer.send(reply).await {
            return format!("send: {e}");
        }
    }
}

/// What woke a connection up.
enum Event {
    /// A message from the dialler, or why there is none.
    Message(Result<NetworkMessage, nightjar::peer::DisconnectReason>),
    /// Headers to announce.
    Announce(Arc<Vec<Header>>),
    /// A transaction to announce, and the connection it came from.
    Tx(Arc<(Option<usize>, Transaction)>),
}

/// The next transaction to announce (skipping any the connection fell too
/// far behind on); never resolves once the node is being dropped.
async fn next_tx(
    rx: &mut broadcast::Receiver<Arc<(Option<usize>, Transaction)>>,
) -> Arc<(Option<usize>, Transaction)> {
    loop {
        match rx.recv().await {
            Ok(tx) => return tx,
            Err(broadcast::error::RecvError::Lagged(_)) => continue,
            Err(broadcast::error::RecvError::Closed) => return std::future::pending().await,
        }
    }
}

/// The next announcement for a connection subscribed to them; never
/// resolves for one that is not (or for a node being dropped).
async fn next_announcement(
    announcements: &mut Option<broadcast::Receiver<Arc<Vec<Header>>>>,
) -> Arc<Vec<Header>> {
    let Some(rx) = announcements else {
        return std::future::pending().await;
    };
    loop {
        match rx.recv().await {
            Ok(news) => return news,
            // Fell behind: the skipped announcements are gone, and the
            // dialler catches up with `getheaders` from the next one.
            Err(broadcast::error::RecvError::Lagged(_)) => continue,
            Err(broadcast::error::RecvError::Closed) => {
                return std::future::pending().await;
            }
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
