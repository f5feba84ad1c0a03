//! Data fetched for the user: filters scanned for their scripts
//! (`scanblocks`), one block's filter (`getblockfilter`) and whole blocks
//! (`getblock`). Everything fetched is checked against what the node has
//! already validated before it is used: a filter against the filter header
//! chain, a block against its header's merkle root and its coinbase's
//! witness commitment.
//!
//! # Privacy of fetching
//!
//! - A scan fetches *every* filter of its range, spread over all filter
//!   peers in batches, so no peer learns which blocks matched; matching
//!   happens here.
//! - Asking for a block says "this block interests me". Each block goes to
//!   a peer picked at random among the idle ones, and every block the user
//!   asks for brings [`EngineConfig::decoy_blocks`] other blocks of the
//!   last [`DECOY_WINDOW`] heights, fetched from other peers and
//!   discarded. A peer that serves one block cannot tell the real one from
//!   a decoy; the peers would have to pool what they served (and even
//!   then face `1 + decoy_blocks` candidates per request).
//! - Each peer is on its own circuit (per connection under `--privacy`),
//!   so a relay sees only encrypted cells of one peer's traffic.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use bitcoin::bip158::{BlockFilter, FilterHash, FilterHeader};
use bitcoin::hashes::Hash;
use bitcoin::p2p::message_filter::{CFilter, GetCFilters};
use bitcoin::{Block, BlockHash, ScriptBuf};
use rand::Rng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use super::config::EngineConfig;
use super::fetch_slots::{FetchSlots, Purpose};
use super::filter_sync::{BASIC_FILTER, FILTER_RESPONSE_TIMEOUT, WRONG_FILTER_DATA_POINTS};
use super::io::{Now, Output};
use super::peers::PeerTable;
use crate::chain::HeaderChain;
use crate::chain::block_check::{self, BlockProblem};
use crate::chain::filter_headers::FilterHeaderChain;
use crate::peer::ConnId;
use crate::wire::{Inventory, NetworkMessage};

/// Filters per `getcfilters` of a scan. BIP157 allows 1000; 100 keeps a
/// batch at about a megabyte on mainnet, so several peers share a scan
/// evenly and a lost peer costs little to redo.
pub const SCAN_BATCH: u32 = 100;

/// How far back decoy blocks are drawn from: blocks a wallet of any age
/// might plausibly want.
pub const DECOY_WINDOW: u32 = 10_000;

/// How often a running scan logs its progress.
pub const SCAN_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// How long a block may take: 4 MB over a slow circuit.
pub const BLOCK_RESPONSE_TIMEOUT: Duration = Duration::from_secs(180);

/// How long `getblock` and `getblockfilter` wait for a peer to serve
/// them before answering with an error: their RPC calls are not timed by
/// the server, so the node must give up itself.
pub const FETCH_GIVE_UP: Duration = Duration::from_secs(10 * 60);

/// Bytes of verified blocks kept for repeated requests: a few full
/// mainnet blocks. The oldest go first.
pub const BLOCK_CACHE_BYTES: usize = 32 << 20;

/// Points for a block that does not match its header.
pub const WRONG_BLOCK_POINTS: u32 = 100;

/// Identifies a request whose answer comes later ([`Output::Fetched`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestId(pub u64);

/// A scan the user asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanRequest {
    /// The scripts to look for.
    pub scripts: Vec<ScriptBuf>,
    /// First height.
    pub start: u32,
    /// Last height (at most the tip).
    pub stop: u32,
}

/// What a fetch brought.
#[derive(Debug, Clone, PartialEq)]
pub enum Fetched {
    /// A finished (or aborted) scan.
    Scan {
        /// First height scanned.
        from: u32,
        /// Last height scanned.
        to: u32,
        /// Blocks whose filter matched, by height.
        relevant: Vec<BlockHash>,
        /// `false` when aborted.
        completed: bool,
    },
    /// A block's filter, checked against the filter header chain.
    Filter {
        /// The filter's bytes.
        filter: Vec<u8>,
        /// Its filter header.
        header: FilterHeader,
    },
    /// A block, checked against its header.
    Block {
        /// The block.
        block: Box<Block>,
        /// Its height in the best chain.
        height: u32,
    },
}

/// Why a fetch cannot be answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    /// The block is not in our best chain.
    #[error("block not found in the best chain")]
    UnknownBlock,
    /// Filters are off.
    #[error(
        "block filters are off: start nightjar with --block-filters (or [node] block_filters = true)"
    )]
    FiltersOff,
    /// A scan already runs.
    #[error("a scan is already in progress; use scanblocks status or abort")]
    ScanRunning,
    /// The range is empty or beyond the tip.
    #[error("invalid scan range: start height {start} is above stop height {stop}")]
    BadRange {
        /// First height asked.
        start: u32,
        /// Last height asked.
        stop: u32,
    },
    /// The node is stopping.
    #[error("nightjar is stopping")]
    ShuttingDown,
    /// No peer served it in time.
    #[error(
        "no peer served it within 10 minutes: getblock needs a connected full node, \
         getblockfilter a peer that serves filters (see getpeerinfo)"
    )]
    GaveUp,
}

/// The progress of the running scan (`scanblocks status`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanStatus {
    /// Percent done.
    pub progress: u32,
    /// The lowest height not yet scanned.
    pub current_height: u32,
}

/// A batch of filters asked of one peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Batch {
    /// Next height expected.
    next: u32,
    /// Last height.
    stop: u32,
}

#[derive(Debug, Clone)]
struct Scan {
    id: RequestId,
    request: ScanRequest,
    /// The lowest height never asked.
    next_ask: u32,
    /// Ranges to ask again (their peer left or timed out).
    retry: Vec<(u32, u32)>,
    /// Heights checked and matched (or not).
    done: u32,
    matched: BTreeSet<u32>,
    last_log: Option<Instant>,
}

/// What a peer's outstanding request is for.
#[derive(Debug, Clone)]
enum Asked {
    /// Filters for the scan.
    ScanBatch(Batch),
    /// One filter for `getblockfilter`.
    Filter { id: RequestId, height: u32 },
    /// A block, for the user (`Some`) or a decoy (`None`).
    Block {
        id: Option<RequestId>,
        hash: BlockHash,
    },
    /// Filters of an aborted scan still arriving: the peer stays busy
    /// until they are in, so they cannot be taken for a later request's.
    Draining(Batch),
}

/// A request waiting for an idle peer.
#[derive(Debug, Clone)]
enum Waiting {
    Filter {
        id: RequestId,
        height: u32,
    },
    Block {
        id: Option<RequestId>,
        hash: BlockHash,
    },
}

/// The borrows a fetch works with.
#[derive(Debug)]
pub struct FetchCtx<'a> {
    /// The configuration.
    pub config: &'a EngineConfig,
    /// The best header chain.
    pub chain: &'a HeaderChain,
    /// The filter header chain (read only: fetched filters are checked
    /// against it).
    pub filters: &'a FilterHeaderChain,
    /// The connections.
    pub peers: &'a PeerTable,
    /// Which peers are busy.
    pub slots: &'a mut FetchSlots,
    /// Randomness for spreading and decoys.
    pub rng: &'a mut StdRng,
    /// Where outputs go.
    pub out: &'a mut VecDeque<Output>,
}

/// Scans and fetches in progress.
#[derive(Debug, Default)]
pub struct BlockFetch {
    scan: Option<Scan>,
    asked: BTreeMap<ConnId, Asked>,
    waiting: VecDeque<Waiting>,
    next_id: u64,
    /// Verified blocks, oldest first, with their sizes.
    cache: VecDeque<(BlockHash, usize, Block)>,
    /// When each one-off request (`getblock`, `getblockfilter`) is given
    /// up on; taken out when it is answered.
    give_up: BTreeMap<RequestId, Instant>,
}

impl BlockFetch {
    /// Nothing in progress.
    pub fn new() -> Self {
        BlockFetch::default()
    }

    fn new_id(&mut self) -> RequestId {
        self.next_id += 1;
        RequestId(self.next_id)
    }

    /// The running scan's progress.
    pub fn scan_status(&self) -> Option<ScanStatus> {
        let s = self.scan.as_ref()?;
        let total = s.request.stop - s.request.start + 1;
        Some(ScanStatus {
            progress: s.done.saturating_mul(100) / total.max(1),
            current_height: s.request.start + s.done,
        })
    }

    /// Start a scan; its answer comes as [`Output::Fetched`].
    pub fn start_scan(
        &mut self,
        cx: &mut FetchCtx<'_>,
        now: Now,
        request: ScanRequest,
    ) -> Result<RequestId, FetchError> {
        if !cx.config.block_filters {
            return Err(FetchError::FiltersOff);
        }
        if self.scan.is_some() {
            return Err(FetchError::ScanRunning);
        }
        if request.start > request.stop {
            return Err(FetchError::BadRange {
                start: request.start,
                stop: request.stop,
            });
        }
        let id = self.new_id();
        tracing::info!(
            start = request.start,
            stop = request.stop,
            scripts = request.scripts.len(),
            "scan started"
        );
        self.scan = Some(Scan {
            id,
            next_ask: request.start,
            request,
            retry: Vec::new(),
            done: 0,
            matched: BTreeSet::new(),
            last_log: Some(now.mono),
        });
        self.tick(cx, now);
        Ok(id)
    }

    /// Stop the running scan; it answers with what it found so far. Whether
    /// one ran.
    pub fn abort_scan(&mut self, cx: &mut FetchCtx<'_>) -> bool {
        let Some(scan) = self.scan.take() else {
            return false;
        };
        tracing::info!(done = scan.done, "scan aborted");
        self.finish(cx, scan, false);
        true
    }

    /// Fetch the filter of `hash` (`getblockfilter`).
    pub fn fetch_filter(
        &mut self,
        cx: &mut FetchCtx<'_>,
        now: Now,
        hash: BlockHash,
    ) -> Result<RequestId, FetchError> {
        if !cx.config.block_filters {
            return Err(FetchError::FiltersOff);
        }
        let height = best_chain_height(cx.chain, &hash)?;
        let id = self.new_id();
        self.give_up.insert(id, now.mono + FETCH_GIVE_UP);
        self.waiting.push_back(Waiting::Filter { id, height });
        self.tick(cx, now);
        Ok(id)
    }

    /// Fetch the block `hash` (`getblock`), with decoys.
    pub fn fetch_block(
        &mut self,
        cx: &mut FetchCtx<'_>,
        now: Now,
        hash: BlockHash,
    ) -> Result<RequestId, FetchError> {
        let height = best_chain_height(cx.chain, &hash)?;
        let id = self.new_id();
        if let Some((_, _, block)) = self.cache.iter().find(|(h, _, _)| *h == hash) {
            // Already here: no peer needs to learn of the request again.
            cx.out.push_back(Output::Fetched {
                id,
                result: Ok(Fetched::Block {
                    block: Box::new(block.clone()),
                    height,
                }),
            });
            return Ok(id);
        }
        self.give_up.insert(id, now.mono + FETCH_GIVE_UP);
        let mut requests = vec![Waiting::Block { id: Some(id), hash }];
        let tip = cx.chain.height();
        let low = tip.saturating_sub(DECOY_WINDOW);
        for _ in 0..cx.config.decoy_blocks {
            let h = cx.rng.random_range(low..=tip);
            if h != height
                && let Some(decoy) = cx.chain.hash_at(h)
            {
                requests.push(Waiting::Block {
                    id: None,
                    hash: decoy,
                });
            }
        }
        // The real block is not always first in line.
        requests.shuffle(cx.rng);
        self.waiting.extend(requests);
        self.tick(cx, now);
        Ok(id)
    }

    /// A connection ended (and is gone from the peer table): its request
    /// is asked again elsewhere.
    pub fn peer_closed(&mut self, cx: &mut FetchCtx<'_>, now: Now, conn: ConnId) {
        self.requeue(conn);
        self.tick(cx, now);
    }

    /// A request timed out: asked again (of whichever peer is idle; a
    /// late answer that arrives meanwhile is recognised by its block and
    /// dropped).
    pub fn timed_out(&mut self, conn: ConnId) {
        self.requeue(conn);
    }

    fn requeue(&mut self, conn: ConnId) {
        match self.asked.remove(&conn) {
            Some(Asked::ScanBatch(b)) => {
                if let Some(s) = &mut self.scan {
                    s.retry.push((b.next, b.stop));
                }
            }
            Some(Asked::Filter { id, height }) => {
                self.waiting.push_front(Waiting::Filter { id, height });
            }
            Some(Asked::Block { id, hash }) => {
                self.waiting.push_front(Waiting::Block { id, hash });
            }
            Some(Asked::Draining(_)) | None => {}
        }
    }

    /// Answer `id` (once: a request given up on is not answered again).
    fn answer(
        &mut self,
        out: &mut VecDeque<Output>,
        id: RequestId,
        result: Result<Fetched, FetchError>,
    ) {
        if self.give_up.remove(&id).is_some() {
            out.push_back(Output::Fetched { id, result });
        }
    }

    /// Give up on one-off requests no peer served in time.
    fn give_up_late(&mut self, out: &mut VecDeque<Output>, now: Now) {
        let late: Vec<RequestId> = self
            .give_up
            .iter()
            .filter(|(_, t)| now.mono >= **t)
            .map(|(id, _)| *id)
            .collect();
        for id in late {
            tracing::info!(
                id = id.0,
                "no peer served a requested block or filter in time"
            );
            self.waiting.retain(|w| match w {
                Waiting::Filter { id: i, .. } | Waiting::Block { id: Some(i), .. } => *i != id,
                Waiting::Block { id: None, .. } => true,
            });
            self.answer(out, id, Err(FetchError::GaveUp));
        }
    }

    /// The earliest give-up time.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.give_up.values().min().copied()
    }

    /// Hand out work to idle peers.
    pub fn tick(&mut self, cx: &mut FetchCtx<'_>, now: Now) {
        self.give_up_late(cx.out, now);
        let mut filter_peers = self.idle(cx, true);
        filter_peers.shuffle(cx.rng);
        // One-off requests first: a user waits on each.
        let mut waiting = std::mem::take(&mut self.waiting);
        let mut block_peers = self.idle(cx, false);
        block_peers.shuffle(cx.rng);
        while let Some(w) = waiting.pop_front() {
            match w {
                Waiting::Filter { id, height } => {
                    if cx.filters.len() <= height as usize {
                        // Its filter header is not synced yet.
                        self.waiting.push_back(Waiting::Filter { id, height });
                        continue;
                    }
                    let Some(conn) = pop_first(&mut filter_peers, &mut block_peers) else {
                        self.waiting.push_back(Waiting::Filter { id, height });
                        continue;
                    };
                    if let Some(hash) = cx.chain.hash_at(height) {
                        send_getcfilters(cx, now, conn, height, hash);
                        self.asked.insert(conn, Asked::Filter { id, height });
                    }
                }
                Waiting::Block { id, hash } => {
                    let Some(conn) = pop_first(&mut block_peers, &mut filter_peers) else {
                        self.waiting.push_back(Waiting::Block { id, hash });
                        continue;
                    };
                    cx.slots
                        .take(conn, Purpose::Block, now.mono + BLOCK_RESPONSE_TIMEOUT);
                    cx.out.push_back(Output::Send {
                        conn,
                        msg: NetworkMessage::GetData(vec![Inventory::WitnessBlock(hash)]),
                    });
                    self.asked.insert(conn, Asked::Block { id, hash });
                }
            }
        }
        self.scan_tick(cx, now, filter_peers);
    }

    fn scan_tick(&mut self, cx: &mut FetchCtx<'_>, now: Now, idle: Vec<ConnId>) {
        let Some(scan) = &mut self.scan else { return };
        if scan
            .last_log
            .is_none_or(|t| now.mono.saturating_duration_since(t) >= SCAN_LOG_INTERVAL)
        {
            scan.last_log = Some(now.mono);
            let total = scan.request.stop - scan.request.start + 1;
            tracing::info!(
                done = scan.done,
                total,
                percent = scan.done.saturating_mul(100) / total.max(1),
                matched = scan.matched.len(),
                "scan progress"
            );
        }
        for conn in idle {
            let range = match scan.retry.pop() {
                Some(r) => r,
                None if scan.next_ask <= scan.request.stop => {
                    let start = scan.next_ask;
                    let stop = start.saturating_add(SCAN_BATCH - 1).min(scan.request.stop);
                    (start, stop)
                }
                None => break,
            };
            // Filters can be checked only up to the filter headers held.
            if cx.filters.len() <= range.1 as usize {
                scan.retry.push(range);
                break;
            }
            if range.0 == scan.next_ask {
                scan.next_ask = range.1.saturating_add(1);
            }
            let Some(stop_hash) = cx.chain.hash_at(range.1) else {
                scan.retry.push(range);
                break;
            };
            send_getcfilters(cx, now, conn, range.0, stop_hash);
            self.asked.insert(
                conn,
                Asked::ScanBatch(Batch {
                    next: range.0,
                    stop: range.1,
                }),
            );
        }
    }

    /// Idle outbound peers we sync from: those serving filters
    /// (`filters`), or the other full nodes (blocks go to them first,
    /// leaving the filter peers to scans).
    fn idle(&self, cx: &FetchCtx<'_>, filters: bool) -> Vec<ConnId> {
        use crate::wire::ServiceFlags;
        cx.peers
            .connected()
            .filter(|e| e.kind.syncs_from())
            .filter(|e| !cx.slots.is_busy(e.conn) && !self.asked.contains_key(&e.conn))
            .filter(|e| {
                e.info().is_some_and(|i| {
                    let serves = i.services.has(ServiceFlags::COMPACT_FILTERS);
                    if filters {
                        serves
                    } else {
                        !serves && i.services.has(ServiceFlags::NETWORK)
                    }
                })
            })
            .map(|e| e.conn)
            .collect()
    }

    /// A `cfilter` arrived.
    pub fn on_cfilter(&mut self, cx: &mut FetchCtx<'_>, now: Now, conn: ConnId, msg: &CFilter) {
        let (height, id) = match self.asked.get_mut(&conn) {
            Some(Asked::ScanBatch(b)) => (b.next, None),
            Some(Asked::Filter { id, height }) => (*height, Some(*id)),
            Some(Asked::Draining(b)) => {
                b.next += 1;
                if b.next > b.stop {
                    self.asked.remove(&conn);
                    cx.slots.release(conn);
                    self.tick(cx, now);
                }
                return;
            }
            _ => return,
        };
        if cx.chain.hash_at(height) != Some(msg.block_hash) {
            // Not the filter expected next: a late answer to a request
            // that timed out and was asked again (the same filters, in
            // order, may still follow), or one for a block a reorg
            // replaced. Dropped, not scored: an honest peer sends these.
            return;
        }
        let Some(header) = check_filter(cx, height, msg) else {
            cx.out.push_back(Output::Misbehaving {
                conn,
                points: WRONG_FILTER_DATA_POINTS,
                what: "a filter that does not match the filter header chain",
            });
            self.requeue(conn);
            cx.slots.release(conn);
            self.tick(cx, now);
            return;
        };
        match id {
            Some(id) => {
                self.asked.remove(&conn);
                cx.slots.release(conn);
                let result = Ok(Fetched::Filter {
                    filter: msg.filter.clone(),
                    header,
                });
                self.answer(cx.out, id, result);
            }
            None => self.scanned(cx, conn, height, msg),
        }
        self.tick(cx, now);
    }

    /// One checked filter of the scan: match it, and finish the batch and
    /// the scan when due.
    fn scanned(&mut self, cx: &mut FetchCtx<'_>, conn: ConnId, height: u32, msg: &CFilter) {
        let Some(scan) = &mut self.scan else { return };
        let filter = BlockFilter::new(&msg.filter);
        let scripts = scan.request.scripts.iter().map(|s| s.as_bytes());
        // A filter that cannot be decoded still hashed to its header: the
        // serving peers all agreed on it, so it is the block's filter;
        // treat it as a match rather than miss a payment.
        if filter.match_any(&msg.block_hash, scripts).unwrap_or(true) {
            scan.matched.insert(height);
        }
        scan.done += 1;
        if let Some(Asked::ScanBatch(b)) = self.asked.get_mut(&conn) {
            b.next += 1;
            if b.next > b.stop {
                self.asked.remove(&conn);
                cx.slots.release(conn);
            }
        }
        let total = scan.request.stop - scan.request.start + 1;
        if scan.done >= total
            && let Some(scan) = self.scan.take()
        {
            tracing::info!(
                scanned = total,
                matched = scan.matched.len(),
                "scan finished"
            );
            self.finish(cx, scan, true);
        }
    }

    fn finish(&mut self, cx: &mut FetchCtx<'_>, scan: Scan, completed: bool) {
        let relevant = scan
            .matched
            .iter()
            .filter_map(|h| cx.chain.hash_at(*h))
            .collect();
        // Batches still out (an abort) are left to arrive and be dropped.
        for asked in self.asked.values_mut() {
            if let Asked::ScanBatch(b) = asked {
                *asked = Asked::Draining(*b);
            }
        }
        cx.out.push_back(Output::Fetched {
            id: scan.id,
            result: Ok(Fetched::Scan {
                from: scan.request.start,
                to: scan.request.stop,
                relevant,
                completed,
            }),
        });
    }

    /// A `block` arrived.
    pub fn on_block(&mut self, cx: &mut FetchCtx<'_>, now: Now, conn: ConnId, block: &Block) {
        let Some(Asked::Block { id, hash }) = self.asked.get(&conn).cloned() else {
            return;
        };
        self.asked.remove(&conn);
        cx.slots.release(conn);
        match block_check::check(block, &hash) {
            Ok(()) => {
                if id.is_some() {
                    self.remember(hash, block);
                }
                if let Some(id) = id
                    && let Some((height, _, _)) = cx.chain.get(&hash)
                {
                    let result = Ok(Fetched::Block {
                        block: Box::new(block.clone()),
                        height,
                    });
                    self.answer(cx.out, id, result);
                }
            }
            Err(problem) => {
                tracing::info!(%conn, %hash, %problem, "peer sent a block that does not match its header");
                cx.out.push_back(Output::Misbehaving {
                    conn,
                    points: WRONG_BLOCK_POINTS,
                    what: problem_text(&problem),
                });
                self.waiting.push_front(Waiting::Block { id, hash });
            }
        }
        self.tick(cx, now);
    }

    /// Keep a verified block, within [`BLOCK_CACHE_BYTES`].
    fn remember(&mut self, hash: BlockHash, block: &Block) {
        let size = block.total_size();
        if size > BLOCK_CACHE_BYTES || self.cache.iter().any(|(h, _, _)| *h == hash) {
            return;
        }
        let mut held: usize = self.cache.iter().map(|(_, s, _)| s).sum();
        while held + size > BLOCK_CACHE_BYTES {
            match self.cache.pop_front() {
                Some((_, s, _)) => held -= s,
                None => break,
            }
        }
        self.cache.push_back((hash, size, block.clone()));
    }

    /// A `notfound` for our block: ask someone else.
    pub fn on_notfound(&mut self, cx: &mut FetchCtx<'_>, now: Now, conn: ConnId) {
        if matches!(self.asked.get(&conn), Some(Asked::Block { .. })) {
            self.requeue(conn);
            cx.slots.release(conn);
            self.tick(cx, now);
        }
    }

    /// Answer every pending request with an error (shutdown).
    pub fn fail_all(&mut self, out: &mut VecDeque<Output>) {
        let mut ids: Vec<RequestId> = self.scan.take().map(|s| s.id).into_iter().collect();
        for a in std::mem::take(&mut self.asked).into_values() {
            match a {
                Asked::Filter { id, .. } | Asked::Block { id: Some(id), .. } => ids.push(id),
                _ => {}
            }
        }
        for w in std::mem::take(&mut self.waiting) {
            match w {
                Waiting::Filter { id, .. } | Waiting::Block { id: Some(id), .. } => ids.push(id),
                Waiting::Block { id: None, .. } => {}
            }
        }
        ids.extend(std::mem::take(&mut self.give_up).into_keys());
        ids.sort();
        ids.dedup();
        for id in ids {
            out.push_back(Output::Fetched {
                id,
                result: Err(FetchError::ShuttingDown),
            });
        }
    }
}

fn pop_first(first: &mut Vec<ConnId>, second: &mut Vec<ConnId>) -> Option<ConnId> {
    first.pop().or_else(|| second.pop())
}

fn send_getcfilters(cx: &mut FetchCtx<'_>, now: Now, conn: ConnId, start: u32, stop: BlockHash) {
    cx.slots
        .take(conn, Purpose::Filters, now.mono + FILTER_RESPONSE_TIMEOUT);
    cx.out.push_back(Output::Send {
        conn,
        msg: NetworkMessage::GetCFilters(GetCFilters {
            filter_type: BASIC_FILTER,
            start_height: start,
            stop_hash: stop,
        }),
    });
}

/// The filter header `msg` gives at `height`, if it is the filter our
/// filter header chain commits to for our block at that height.
fn check_filter(cx: &FetchCtx<'_>, height: u32, msg: &CFilter) -> Option<FilterHeader> {
    if msg.filter_type != BASIC_FILTER || cx.chain.hash_at(height) != Some(msg.block_hash) {
        return None;
    }
    let previous = match height.checked_sub(1) {
        None => FilterHeader::from_byte_array([0; 32]),
        Some(h) => cx.filters.header_at(h)?,
    };
    let hash = FilterHash::hash(&msg.filter);
    let header = hash.filter_header(&previous);
    (cx.filters.header_at(height)? == header).then_some(header)
}

fn best_chain_height(chain: &HeaderChain, hash: &BlockHash) -> Result<u32, FetchError> {
    match chain.get(hash) {
        Some((h, _, _)) if chain.hash_at(h) == Some(*hash) => Ok(h),
        _ => Err(FetchError::UnknownBlock),
    }
}

fn problem_text(problem: &BlockProblem) -> &'static str {
    match problem {
        BlockProblem::WrongHash => "a block other than the one asked for",
        BlockProblem::BadMerkleRoot | BlockProblem::Mutated => {
            "a block whose transactions do not match its merkle root"
        }
        BlockProblem::BadWitnessCommitment => "a block whose witnesses do not match its commitment",
    }
}
