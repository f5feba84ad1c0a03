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
//! A node keeps a small mempool and relays transactions as a Core node
//! does, so that a dialler's private broadcast has somewhere to land and
//! its regular connections can hear the transaction come back:
//! - an `inv` of transactions it lacks is answered with one `getdata` for
//!   them: `MSG_WTX` items by wtxid, `MSG_TX` items by txid with witness
//!   (`MSG_WITNESS_TX`, as Core asks a witness peer), unless
//!   [`NodeSpec::fetch_txs`] is off;
//! - a `tx` is kept, recorded on its connection, and — if it is new and
//!   [`NodeSpec::relay_txs`] is on — announced with an `inv` to every
//!   *other* connection that completed the handshake, asked for relay in
//!   its `version`, has not sent or announced the transaction itself, and
//!   whose last `feefilter` is at most [`ASSUMED_FEE_RATE`]: by wtxid to a
//!   dialler that sent `wtxidrelay`, by txid to one that did not;
//! - `getdata` for kept transactions is answered with them (without
//!   witness for `MSG_TX`), and the items it does not have with one
//!   `notfound`;
//! - [`ScriptedNode::announce_tx`] keeps a transaction and announces it the
//!   same way whatever [`NodeSpec::relay_txs`] says: the rest of the
//!   network relaying it, i.e. a faked echo.
//!
//! A connection acts on what it is told to announce before it reads the
//! dialler's next message. So once a test has seen one connection hear a
//! transaction, a `ping` round trip on another connection proves that it
//! was not announced there.
//!
//! Nodes run on a tokio runtime: either the one a [`PeerFarm`] owns (for
//! synchronous tests and examples) or any runtime through
//! [`ScriptedNode::start`].

use std::collections::{HashMap, HashSet};
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
/// compute the real one): 10 sat/vB. Above Core's default minimum relay
/// fee (1000 sat/kvB), so a dialler opening its filter to 0 or to Core's
/// default hears every transaction, and far below Core's MAX_MONEY filter
/// (2.1e15 sat/kvB, "announce nothing"), so closing it silences them all.
pub const ASSUMED_FEE_RATE: i64 = 10_000;

/// Transaction announcements a connection may fall behind by before it
/// skips some (tests relay a handful).
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
    /// Whether it answers an `inv` of transactions with `getdata` (on by
    /// default); off, a private broadcast to it never completes.
    pub fetch_txs: bool,
    /// Whether it announces the transactions it gets to its other
    /// connections (on by default); off, it still fetches and keeps them,
    /// so a test can show that without an echo nothing is seen.
    /// [`ScriptedNode::announce_tx`] announces regardless.
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
    /// The relay flag of the dialler's `version` (`false`: it wants no
    /// transaction announcements, as a private broadcast or a blocks-only
    /// connection); `None` until its `version` is read.
    pub relay: Option<bool>,
    /// Whether the dialler sent `wtxidrelay` (BIP339) in the handshake:
    /// transactions are then announced to it by wtxid, else by txid.
    pub wtxid_relay: bool,
    /// The last `feefilter` the dialler sent (sat/kvB); `None` while it
    /// has sent none, which filters nothing.
    pub fee_filter: Option<i64>,
    /// `inv` messages received (of anything).
    pub invs_received: usize,
    /// Transactions received (`tx`), by txid, in order of arrival
    /// (repeats included).
    pub txs_received: Vec<Txid>,
    /// The same transactions by wtxid: entry `i` is `txs_received[i]`'s.
    pub wtxids_received: Vec<Wtxid>,
    /// Transactions announced to the dialler, by txid, in order (whether
    /// the `inv` named the txid or the wtxid: see
    /// [`wtxid_relay`](Self::wtxid_relay)).
    pub txs_announced: Vec<Txid>,
    /// The same transactions by wtxid: entry `i` is `txs_announced[i]`'s.
    pub wtxids_announced: Vec<Wtxid>,
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

    /// Transactions received (`tx` messages), over all connections.
    /// (A method, not a field like the other counts: a bigger snapshot
    /// would make [`ScriptedNode::wait_for`]'s `Err` unwieldy.)
    pub fn txs_received(&self) -> usize {
        self.connections.iter().map(|c| c.txs_received.len()).sum()
    }

    /// Transactions announced (`inv` items), over all connections.
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
    /// Transactions kept.
    mempool: Mutex<Mempool>,
    /// Transactions to announce; every connection subscribes before its
    /// handshake and decides for itself whether its dialler hears them.
    tx_news: broadcast::Sender<Arc<TxNews>>,
}

impl Shared {
    /// Statistics keep counting after a panicking test thread poisoned a
    /// lock: the data is plain records, never left half-updated.
    fn records(&self) -> MutexGuard<'_, Vec<ConnectionRecord>> {
        self.records.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn mempool(&self) -> MutexGuard<'_, Mempool> {
        self.mempool.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Tell every connection but `from` (the one `tx` came in on, if any)
    /// to consider announcing `tx`. No subscriber is not an error.
    fn announce_tx(&self, from: Option<usize>, tx: &Transaction) {
        let news = TxNews {
            from,
            txid: tx.compute_txid(),
            wtxid: tx.compute_wtxid(),
        };
        let _ = self.tx_news.send(Arc::new(news));
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
            wtxid_relay: false,
            fee_filter: None,
            invs_received: 0,
            txs_received: Vec::new(),
            wtxids_received: Vec::new(),
            txs_announced: Vec::new(),
            wtxids_announced: Vec::new(),
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
            mempool: Mutex::new(Mempool::default()),
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

    /// Keep `tx` and announce it to every open connection that would hear
    /// it (see the module documentation), as if it had come from elsewhere
    /// in the network: a faked echo. It is announced even when
    /// [`NodeSpec::relay_txs`] is off or the node already has it (say,
    /// from the dialler's own private broadcast), but never twice to one
    /// connection nor to one that sent or announced it. Connections opened
    /// later do not hear it.
    pub fn announce_tx(&self, tx: Transaction) {
        // Under the mempool lock, as for a relayed transaction: a
        // connection told of it finds it when its dialler asks.
        let mut pool = self.shared.mempool();
        self.shared.announce_tx(None, &tx);
        pool.insert(tx);
    }

    /// The transactions kept, in the order they first arrived.
    pub fn mempool(&self) -> Vec<Transaction> {
        self.shared.mempool().txs.clone()
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

    // Subscribed before our `verack` goes out: a dialler that has finished
    // its handshake can count on hearing every transaction relayed from
    // then on (those arriving meanwhile wait in the channel).
    let mut tx_news = shared.tx_news.subscribe();
    let height = i32::try_from(shared.chain().height()).unwrap_or(i32::MAX);
    let ours = version_message(version_nonce(index), height, &user_agent(&spec.name));
    let theirs = match peer.answer_handshake_full(ours).await {
        Ok(h) => h,
        Err(e) => return format!("handshake: {e}"),
    };
    let mut conn = TxRelay {
        index,
        wants_relay: theirs.version.relay,
        wtxid_relay: theirs.wtxid_relay,
        fee_filter: None,
        known: Known::default(),
    };
    shared.update(index, |r| {
        r.handshake_done = true;
        r.user_agent = Some(theirs.version.user_agent);
        r.relay = Some(theirs.version.relay);
        r.wtxid_relay = theirs.wtxid_relay;
    });

    // Subscribed once `sendheaders` arrives: only announcements made
    // after that reach the connection.
    let mut announcements: Option<broadcast::Receiver<Arc<Vec<Header>>>> = None;
    loop {
        // Every branch is cancel-safe: the reader only loses a read that
        // has not completed, and a broadcast receiver keeps its place.
        // Biased, announcements first: whatever the node was told to
        // announce before the dialler's next message arrived goes out
        // before the answer to it (see the module documentation).
        let event = tokio::select! {
            biased;
            news = next_announcement(&mut announcements) => Event::Announce(news),
            news = next_tx(&mut tx_news) => Event::Tx(news),
            msg = peer.recv_within(IDLE_LIMIT) => Event::Message(msg),
        };
        let replies = match event {
            Event::Message(Err(e)) => return e.to_string(),
            Event::Message(Ok(msg)) => match msg {
                NetworkMessage::Ping(nonce) => vec![NetworkMessage::Pong(nonce)],
                NetworkMessage::GetAddr => {
                    shared.update(index, |r| r.getaddr_count += 1);
                    vec![NetworkMessage::AddrV2(shared.gossip().clone())]
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
                        Some(headers) => vec![NetworkMessage::Headers(headers)],
                        None => continue,
                    }
                }
                NetworkMessage::FeeFilter(rate) => {
                    conn.fee_filter = Some(rate);
                    shared.update(index, |r| r.fee_filter = Some(rate));
                    continue;
                }
                NetworkMessage::Inv(items) => conn.on_inv(shared, &items),
                NetworkMessage::Tx(tx) => {
                    conn.on_tx(shared, tx);
                    continue;
                }
                NetworkMessage::GetData(items) => conn.on_getdata(shared, items),
                _ => continue,
            },
            Event::Tx(news) => conn.on_tx_news(shared, &news),
            Event::Announce(news) => {
                shared.update(index, |r| {
                    r.headers_sent += news.len();
                    r.headers_announced += news.len();
                });
                vec![NetworkMessage::Headers(news.to_vec())]
            }
        };
        for reply in replies {
            if let Err(e) = peer.send(reply).await {
                return format!("send: {e}");
            }
        }
    }
}

/// What woke a connection up.
enum Event {
    /// A message from the dialler, or why there is none.
    Message(Result<NetworkMessage, nightjar::peer::DisconnectReason>),
    /// Headers to announce.
    Announce(Arc<Vec<Header>>),
    /// A transaction to consider announcing.
    Tx(Arc<TxNews>),
}

/// A transaction the node may announce, as its connections are told.
#[derive(Debug)]
struct TxNews {
    /// The connection it came in on (`None` for
    /// [`ScriptedNode::announce_tx`]), which never hears it back.
    from: Option<usize>,
    txid: Txid,
    wtxid: Wtxid,
}

/// The transactions a node keeps, in order of arrival, found by txid or
/// wtxid.
#[derive(Debug, Default)]
struct Mempool {
    txs: Vec<Transaction>,
    by_wtxid: HashMap<Wtxid, usize>,
    by_txid: HashMap<Txid, usize>,
}

impl Mempool {
    /// Keep `tx`; whether it was new.
    fn insert(&mut self, tx: Transaction) -> bool {
        let wtxid = tx.compute_wtxid();
        if self.by_wtxid.contains_key(&wtxid) {
            return false;
        }
        let at = self.txs.len();
        self.by_wtxid.insert(wtxid, at);
        // A txid shared by two witness variants finds the first.
        self.by_txid.entry(tx.compute_txid()).or_insert(at);
        self.txs.push(tx);
        true
    }

    /// Whether the node has what `item` names (`false` for non-transaction
    /// items).
    fn has(&self, item: &Inventory) -> bool {
        self.get(item).is_some()
    }

    /// The transaction `item` names, as it is served: `MSG_TX` asks for the
    /// serialization without witness (what a pre-segwit peer can parse),
    /// `MSG_WTX` and `MSG_WITNESS_TX` for the full one.
    fn get(&self, item: &Inventory) -> Option<Transaction> {
        let at = match item {
            Inventory::WTx(w) => self.by_wtxid.get(w),
            Inventory::Transaction(t) | Inventory::WitnessTransaction(t) => self.by_txid.get(t),
            _ => None,
        };
        let mut tx = self.txs.get(*at?)?.clone();
        if matches!(item, Inventory::Transaction(_)) {
            for input in &mut tx.input {
                input.witness.clear();
            }
        }
        Some(tx)
    }
}

/// Transactions a dialler is known to have (it announced or sent them, or
/// was sent or told of them), which it is never told of again: Core keeps
/// the same per-peer filter.
#[derive(Debug, Default)]
struct Known {
    txids: HashSet<Txid>,
    wtxids: HashSet<Wtxid>,
}

impl Known {
    /// Note the transaction `item` names (non-transaction items are
    /// ignored).
    fn note_item(&mut self, item: &Inventory) {
        match item {
            Inventory::WTx(w) => {
                self.wtxids.insert(*w);
            }
            Inventory::Transaction(t) | Inventory::WitnessTransaction(t) => {
                self.txids.insert(*t);
            }
            _ => {}
        }
    }

    fn note(&mut self, txid: Txid, wtxid: Wtxid) {
        self.txids.insert(txid);
        self.wtxids.insert(wtxid);
    }

    fn has(&self, txid: &Txid, wtxid: &Wtxid) -> bool {
        self.txids.contains(txid) || self.wtxids.contains(wtxid)
    }
}

/// One connection's side of transaction relay, once its handshake is done.
#[derive(Debug)]
struct TxRelay {
    /// The connection's record.
    index: usize,
    /// The relay flag of the dialler's `version`.
    wants_relay: bool,
    /// Whether the dialler sent `wtxidrelay`.
    wtxid_relay: bool,
    /// The dialler's last `feefilter` (sat/kvB).
    fee_filter: Option<i64>,
    known: Known,
}

impl TxRelay {
    /// An `inv`: ask, in one `getdata`, for the transactions offered that
    /// the node lacks. By wtxid for `MSG_WTX`; for `MSG_TX` by txid with
    /// witness, as Core asks a witness peer (a private broadcast offers by
    /// txid and must then serve the full transaction).
    fn on_inv(&mut self, shared: &Shared, items: &[Inventory]) -> Vec<NetworkMessage> {
        shared.update(self.index, |r| r.invs_received += 1);
        items.iter().for_each(|i| self.known.note_item(i));
        if !shared.spec.fetch_txs {
            return Vec::new();
        }
        let pool = shared.mempool();
        let mut wanted = Vec::new();
        for item in items {
            let ask = match item {
                Inventory::WTx(w) => Inventory::WTx(*w),
                Inventory::Transaction(t) => Inventory::WitnessTransaction(*t),
                // Blocks are not fetched; `MSG_WITNESS_TX` is no
                // announcement.
                _ => continue,
            };
            if !pool.has(item) && !wanted.contains(&ask) {
                wanted.push(ask);
            }
        }
        if wanted.is_empty() {
            Vec::new()
        } else {
            vec![NetworkMessage::GetData(wanted)]
        }
    }

    /// A `tx`: record it, keep it, and have the other connections announce
    /// it if it is new and the node relays.
    fn on_tx(&mut self, shared: &Shared, tx: Transaction) {
        let (txid, wtxid) = (tx.compute_txid(), tx.compute_wtxid());
        self.known.note(txid, wtxid);
        // Recorded before it is relayed, so a test that sees the
        // announcement elsewhere also sees where it came from.
        shared.update(self.index, |r| {
            r.txs_received.push(txid);
            r.wtxids_received.push(wtxid);
        });
        if shared.spec.relay_txs {
            // Announced under the mempool lock, so that a connection told
            // of it is sure to find it when its dialler asks.
            let mut pool = shared.mempool();
            if pool.insert(tx.clone()) {
                shared.announce_tx(Some(self.index), &tx);
            }
        } else {
            shared.mempool().insert(tx);
        }
    }

    /// A `getdata`: each kept transaction asked for, then one `notfound`
    /// with every item not served (blocks included: the node has none).
    fn on_getdata(&mut self, shared: &Shared, items: Vec<Inventory>) -> Vec<NetworkMessage> {
        let pool = shared.mempool();
        let mut replies = Vec::new();
        let mut missing = Vec::new();
        for item in items {
            match pool.get(&item) {
                Some(tx) => {
                    self.known.note(tx.compute_txid(), tx.compute_wtxid());
                    replies.push(NetworkMessage::Tx(tx));
                }
                None => missing.push(item),
            }
        }
        if !missing.is_empty() {
            replies.push(NetworkMessage::NotFound(missing));
        }
        replies
    }

    /// A transaction to announce: an `inv` if this dialler is to hear it
    /// (another connection's, relay asked for, not filtered out by
    /// `feefilter`, not already known to it).
    fn on_tx_news(&mut self, shared: &Shared, news: &TxNews) -> Vec<NetworkMessage> {
        let filtered = self.fee_filter.is_some_and(|f| f > ASSUMED_FEE_RATE);
        if news.from == Some(self.index)
            || !self.wants_relay
            || filtered
            || self.known.has(&news.txid, &news.wtxid)
        {
            return Vec::new();
        }
        self.known.note(news.txid, news.wtxid);
        shared.update(self.index, |r| {
            r.txs_announced.push(news.txid);
            r.wtxids_announced.push(news.wtxid);
        });
        let item = if self.wtxid_relay {
            Inventory::WTx(news.wtxid)
        } else {
            Inventory::Transaction(news.txid)
        };
        vec![NetworkMessage::Inv(vec![item])]
    }
}

/// The next transaction to announce (skipping any the connection fell too
/// far behind on); never resolves once the node is being dropped.
async fn next_tx(rx: &mut broadcast::Receiver<Arc<TxNews>>) -> Arc<TxNews> {
    loop {
        match rx.recv().await {
            Ok(news) => return news,
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
