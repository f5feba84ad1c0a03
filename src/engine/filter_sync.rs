//! The basic filter header chain (BIP157), kept in step with the best
//! header chain, from peers that serve filters.
//!
//! # How the chain is settled
//!
//! 1. Every peer we sync from that advertises `NODE_COMPACT_FILTERS` is
//!    asked for its checkpoints (`getcfcheckpt` up to our best header): the
//!    filter header at every 1000th height. Asked again as the best header
//!    passes new checkpoint heights.
//! 2. Checkpoints are compared between peers. Where two disagree, nothing
//!    at or above that height is taken: both are asked for the interval
//!    that ends there, and their answers are compared as a tail's are (4).
//!    A peer whose interval does not hash up to its own checkpoint has
//!    contradicted itself and is scored 100. A newcomer whose checkpoints
//!    contradict filter headers already held is not asked for filter data.
//! 3. The intervals between agreed checkpoints are downloaded with
//!    `getcfheaders`, each from one peer, several peers in parallel (each on
//!    its own circuit). An interval is verified end to end: it must start
//!    from the agreed checkpoint below it and hash up to the agreed
//!    checkpoint at its top, or its peer is scored 100.
//! 4. Above the last checkpoint (the tail, and every new block later) there
//!    is nothing to verify against, so the tail is asked of two peers and
//!    taken only when both give the same hashes; with a single filter peer
//!    its word is taken, and the chain reports `cross_checked: false`. Two
//!    different answers are settled with evidence ([`super::filter_dispute`]):
//!    the first block they differ on is fetched with both peers' filters,
//!    and a filter that does not fit the block convicts its peer.
//! 5. After a reorg the filter headers above the fork are dropped (memory
//!    and file) and downloaded again for the new branch.
//!
//! Each peer has at most one request outstanding; an unanswered request
//! times out after [`FILTER_RESPONSE_TIMEOUT`] and the peer is dropped from
//! filter duty for this connection.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use bitcoin::BlockHash;
use bitcoin::bip158::{FilterHash, FilterHeader};
use bitcoin::hashes::Hash;
use bitcoin::p2p::message_filter::{CFCheckpt, CFHeaders, GetCFCheckpt, GetCFHeaders, GetCFilters};

use super::config::EngineConfig;
use super::fetch_slots::{FetchSlots, Purpose};
use super::filter_dispute::{Dispute, Verdict};
use super::io::{Now, Output};
use super::peers::PeerTable;
use crate::chain::HeaderChain;
use crate::chain::filter_headers::FilterHeaderChain;
use crate::peer::ConnId;
use crate::wire::NetworkMessage;

/// The basic filter type (BIP158), the only one defined.
pub const BASIC_FILTER: u8 = 0;

/// Heights between checkpoints (BIP157).
pub const CFCHECKPT_INTERVAL: u32 = 1000;

/// Most filter hashes one `cfheaders` may carry (BIP157).
pub const MAX_CFHEADERS: u32 = 2000;

/// How long a peer may take to answer a filter request: an interval of
/// headers is 32 kB, a batch of filters a few MB on mainnet, seconds even
/// over a slow onion circuit; two minutes also covers a circuit rebuild.
pub const FILTER_RESPONSE_TIMEOUT: Duration = Duration::from_secs(120);

/// Points for serving filter data that contradicts what other peers
/// agreed on, or the peer's own earlier answers: enough to disconnect.
pub const WRONG_FILTER_DATA_POINTS: u32 = 100;

/// Peers wanted for the tail's cross-check.
pub const TAIL_WITNESSES: usize = 2;

/// Where filter header sync stands, for `getblockchaininfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterSyncStatus {
    /// Whether the node keeps the filter header chain at all.
    pub enabled: bool,
    /// Filter headers held (the next one is for this height).
    pub headers: u32,
    /// Connected peers that serve filters.
    pub peers: usize,
    /// Whether the tail was confirmed by two peers (or is covered by
    /// agreed checkpoints).
    pub cross_checked: bool,
    /// The lowest checkpoint height on which peers disagree, if any.
    pub disputed_from: Option<u32>,
}

/// A peer's checkpoints, as it answered them.
#[derive(Debug, Clone)]
struct Checkpoints {
    /// The block they were asked up to: once it leaves the best chain,
    /// checkpoints above the fork describe another branch.
    stop: BlockHash,
    /// The filter header at `(i + 1) * 1000` for each `i`.
    headers: Vec<FilterHeader>,
}

/// A filter-serving peer.
#[derive(Debug, Clone, Default)]
struct FilterPeer {
    /// Its checkpoints, once answered.
    checkpoints: Option<Checkpoints>,
    /// Whether a `getcfcheckpt` is in flight. Asked again whenever the
    /// best header passes a checkpoint height the last answer lacked.
    asked_checkpoints: bool,
    /// It failed a request (timed out or answered what was not asked):
    /// no more filter requests on this connection.
    benched: bool,
}

/// An interval being downloaded.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Interval {
    /// First height.
    start: u32,
    /// Last height.
    stop: u32,
    /// The block at `stop` when asked (a reorg may change it).
    stop_hash: BlockHash,
}

/// An interval's filter hashes, verified, waiting for the ones below.
#[derive(Debug, Clone)]
struct Verified {
    interval: Interval,
    hashes: Vec<FilterHash>,
    /// Confirmed by an agreed checkpoint or a second peer, not just the
    /// word of the one that served it.
    cross_checked: bool,
}

/// One answer to a tail request, waiting for a second witness.
#[derive(Debug, Clone)]
struct TailAnswer {
    from: ConnId,
    interval: Interval,
    previous: FilterHeader,
    hashes: Vec<FilterHash>,
}

/// The borrows filter header sync works with.
#[derive(Debug)]
pub struct FilterCtx<'a> {
    /// The configuration.
    pub config: &'a EngineConfig,
    /// The best header chain (read only: filter headers follow it).
    pub chain: &'a HeaderChain,
    /// The filter header chain.
    pub filters: &'a mut FilterHeaderChain,
    /// The connections (kinds and advertised services).
    pub peers: &'a PeerTable,
    /// Which peers have a filter request outstanding.
    pub slots: &'a mut FetchSlots,
    /// Where outputs go.
    pub out: &'a mut VecDeque<Output>,
}

/// Filter header sync state.
#[derive(Debug, Default)]
pub struct FilterSync {
    peers: BTreeMap<ConnId, FilterPeer>,
    /// Intervals asked, by peer.
    asked: BTreeMap<ConnId, Interval>,
    /// Verified intervals waiting for the ones below them, by start.
    ready: BTreeMap<u32, Verified>,
    /// A first answer for the tail, waiting for its witness.
    tail: Option<TailAnswer>,
    /// Whether the headers above the last agreed checkpoint were confirmed
    /// by a second peer.
    tail_checked: bool,
    disputed_from: Option<u32>,
    /// The start of a tail two peers answered differently: nothing from
    /// there on is taken until one of them leaves or a reorg moves it.
    tail_dispute: Option<(u32, [ConnId; 2])>,
    /// The evidence being gathered to settle the tail dispute.
    dispute: Option<Dispute>,
}

impl FilterSync {
    /// Nothing synced, no peers.
    pub fn new() -> Self {
        FilterSync::default()
    }

    /// Where sync stands.
    pub fn status(&self, config: &EngineConfig, filters: &FilterHeaderChain) -> FilterSyncStatus {
        FilterSyncStatus {
            enabled: config.block_filters,
            headers: u32::try_from(filters.len()).unwrap_or(u32::MAX),
            peers: self.peers.values().filter(|p| !p.benched).count(),
            cross_checked: self.tail_checked
                && self.disputed_from.is_none()
                && self.tail_dispute.is_none(),
            disputed_from: self.disputed_from.or(self.tail_dispute.map(|(h, _)| h)),
        }
    }

    /// A peer completed its handshake: if it serves filters and is one of
    /// ours, it joins.
    pub fn peer_ready(&mut self, cx: &mut FilterCtx<'_>, now: Now, conn: ConnId) {
        if !cx.config.block_filters || !serves_filters(cx.peers, conn) {
            return;
        }
        self.peers.insert(conn, FilterPeer::default());
        self.tick(cx, now);
    }

    /// A connection ended: its request goes back in the queue.
    pub fn peer_closed(&mut self, conn: ConnId, slots: &mut FetchSlots) {
        self.peers.remove(&conn);
        self.asked.remove(&conn);
        if self.tail.as_ref().is_some_and(|t| t.from == conn) {
            self.tail = None;
        }
        self.party_gone(conn, slots);
    }

    /// A peer left or stopped answering: a dispute it was part of ends
    /// (the other side is heard alone), and evidence it was to bring is
    /// asked of someone else.
    fn party_gone(&mut self, conn: ConnId, slots: &mut FetchSlots) {
        if self
            .tail_dispute
            .is_some_and(|(_, pair)| pair.contains(&conn))
        {
            self.tail_dispute = None;
        }
        if let Some(d) = self.dispute.take_if(|d| d.involves(conn)) {
            // The other side's evidence is moot now; a late answer is
            // recognised as such wherever it lands.
            for other in d.parties().chain(d.block_from()) {
                if slots.purpose(other) == Some(Purpose::Evidence) {
                    slots.release(other);
                }
            }
        }
        if let Some(d) = &mut self.dispute
            && d.block_from() == Some(conn)
        {
            d.block_lost();
        }
    }

    /// A request of ours timed out: the peer is benched.
    pub fn timed_out(&mut self, conn: ConnId, slots: &mut FetchSlots) {
        if let Some(p) = self.peers.get_mut(&conn) {
            tracing::info!(%conn, "filter request timed out; not asking this peer again");
            p.benched = true;
        }
        self.asked.remove(&conn);
        self.party_gone(conn, slots);
    }

    /// Time passed or something changed: follow reorgs, ask for what is
    /// missing.
    pub fn tick(&mut self, cx: &mut FilterCtx<'_>, now: Now) {
        if !cx.config.block_filters {
            return;
        }
        self.follow_reorg(cx);
        self.drop_stale_checkpoints(cx.chain);
        if self
            .tail
            .as_ref()
            .is_some_and(|t| cx.chain.hash_at(t.interval.stop) != Some(t.interval.stop_hash))
        {
            self.tail = None;
        }
        // Headers first: filter headers follow the best header chain, and
        // checkpoints asked for a chain still syncing would soon be stale.
        if super::HeaderSync::in_initial_sync(cx.chain, now.unix) {
            return;
        }
        self.ask_checkpoints(cx, now);
        self.ask_intervals(cx, now);
        self.ask_evidence(cx, now);
    }

    /// Drop filter headers whose blocks left the best chain.
    fn follow_reorg(&mut self, cx: &mut FilterCtx<'_>) {
        let Some((height, block, _)) = cx.filters.tip() else {
            return;
        };
        if cx.chain.hash_at(height) == Some(block) {
            return;
        }
        let fork = fork_height(cx.chain, block, height);
        let keep = fork.min(cx.chain.height()).saturating_add(1);
        tracing::info!(
            from = height,
            keep,
            "reorg: filter headers above the fork dropped"
        );
        let keep = keep as usize;
        if cx.filters.truncate(keep, cx.chain.hash_at(fork)) {
            cx.out.push_back(Output::TruncateFilterHeaders(keep));
        }
        self.ready.clear();
        self.tail = None;
        self.tail_checked = false;
        self.disputed_from = None;
        self.tail_dispute = None;
        // Asked again for the new branch (a request in flight is left to
        // be answered: its reply frees the peer and is dropped as stale).
        for p in self.peers.values_mut() {
            p.checkpoints = None;
        }
    }

    /// Cut checkpoints asked for a branch that is no longer the best back
    /// to the fork: those above it describe the old branch, and are asked
    /// again for the new one.
    fn drop_stale_checkpoints(&mut self, chain: &HeaderChain) {
        for p in self.peers.values_mut() {
            let Some(c) = &mut p.checkpoints else {
                continue;
            };
            if chain.is_in_best_chain(&c.stop) {
                continue;
            }
            let stop_height = chain.get(&c.stop).map_or(0, |(h, _, _)| h);
            let fork = fork_height(chain, c.stop, stop_height);
            c.headers.truncate((fork / CFCHECKPT_INTERVAL) as usize);
            match chain.hash_at(fork) {
                Some(stop) => c.stop = stop,
                None => p.checkpoints = None,
            }
        }
    }

    fn ask_checkpoints(&mut self, cx: &mut FilterCtx<'_>, now: Now) {
        let (height, tip) = cx.chain.tip();
        let due = (height / CFCHECKPT_INTERVAL) as usize;
        for (conn, p) in self.peers.iter_mut() {
            let known = p.checkpoints.as_ref().map(|c| c.headers.len());
            if p.asked_checkpoints
                || p.benched
                || cx.slots.is_busy(*conn)
                || known.is_some_and(|k| k >= due)
            {
                continue;
            }
            p.asked_checkpoints = true;
            cx.slots.take(
                *conn,
                Purpose::FilterHeaders,
                now.mono + FILTER_RESPONSE_TIMEOUT,
            );
            cx.out.push_back(Output::Send {
                conn: *conn,
                msg: NetworkMessage::GetCFCheckpt(GetCFCheckpt {
                    filter_type: BASIC_FILTER,
                    stop_hash: tip,
                }),
            });
        }
    }

    /// The checkpoints every peer that answered agrees on, in order, up to
    /// the first disagreement.
    fn agreed_checkpoints(&mut self) -> Vec<FilterHeader> {
        let answered: Vec<&Checkpoints> = self
            .peers
            .values()
            .filter(|p| !p.benched)
            .filter_map(|p| p.checkpoints.as_ref())
            .collect();
        let longest = answered.iter().map(|c| c.headers.len()).max().unwrap_or(0);
        let mut agreed = Vec::new();
        for i in 0..longest {
            let mut values = answered.iter().filter_map(|c| c.headers.get(i));
            let Some(first) = values.next() else { break };
            if values.any(|v| v != first) {
                let height = checkpoint_height(i);
                if self.disputed_from != Some(height) {
                    tracing::warn!(
                        height,
                        "filter peers disagree on the filter header checkpoint: nothing from \
                         this height on is taken until the dispute is settled"
                    );
                }
                self.disputed_from = Some(height);
                return agreed;
            }
            agreed.push(*first);
        }
        self.disputed_from = None;
        agreed
    }

    /// Hand out intervals to idle peers.
    fn ask_intervals(&mut self, cx: &mut FilterCtx<'_>, now: Now) {
        // Wait for every connected filter peer's checkpoints: one that
        // disagrees must be heard before anything is built on the others.
        if self
            .peers
            .values()
            .any(|p| !p.benched && p.checkpoints.is_none())
        {
            return;
        }
        let witnesses = self.peers.values().filter(|p| !p.benched).count();
        if witnesses < TAIL_WITNESSES
            && let Some(t) = self.tail.take()
        {
            // Its witness left: the one answer is all there is.
            let verified = Verified {
                interval: t.interval,
                hashes: t.hashes,
                cross_checked: false,
            };
            self.ready.insert(verified.interval.start, verified);
            self.store_ready(cx);
        }
        let agreed = self.agreed_checkpoints();
        // Heights below `end` may be asked for.
        let mut end = match self.disputed_from {
            // Nothing in the interval that ends at a disputed checkpoint.
            Some(h) => interval_start(h),
            None => cx.chain.height().saturating_add(1),
        };
        if let Some((start, _)) = self.tail_dispute {
            end = end.min(start);
        }
        if let Some(h) = self.disputed_from
            && cx.filters.len() == interval_start(h) as usize
            && self.tail.is_none()
            && self.tail_dispute.is_none()
        {
            self.ask_disputed_interval(cx, now, h);
        }
        let mut next = self.next_unasked(cx.filters);
        let idle: Vec<ConnId> = self
            .peers
            .iter()
            .filter(|(c, p)| !p.benched && !cx.slots.is_busy(**c))
            .map(|(c, _)| *c)
            .collect();
        for conn in idle {
            if next >= end {
                // The tail may want a second witness from this peer.
                self.ask_tail_witness(cx, now, conn, end);
                continue;
            }
            let stop = interval_stop(next).min(end - 1);
            // An interval that does not start at our tip needs the agreed
            // checkpoint below it to start from.
            if next as usize != cx.filters.len() && agreed_below(&agreed, next).is_none() {
                break;
            }
            let Some(stop_hash) = cx.chain.hash_at(stop) else {
                break;
            };
            let interval = Interval {
                start: next,
                stop,
                stop_hash,
            };
            self.send_interval(cx, now, conn, interval);
            next = stop.saturating_add(1);
        }
    }

    /// Ask two peers that disagree on the checkpoint at `h` for the
    /// interval that ends there: their answers are compared as a tail's
    /// are, and a difference is settled with evidence.
    fn ask_disputed_interval(&mut self, cx: &mut FilterCtx<'_>, now: Now, h: u32) {
        let Some(index) = checkpoint_index(h) else {
            return;
        };
        let Some(stop_hash) = cx.chain.hash_at(h) else {
            return;
        };
        let interval = Interval {
            start: interval_start(h),
            stop: h,
            stop_hash,
        };
        if self.asked.values().any(|i| *i == interval) {
            return;
        }
        let claims: Vec<(ConnId, FilterHeader)> = self
            .peers
            .iter()
            .filter(|(_, p)| !p.benched)
            .filter_map(|(c, p)| Some((*c, *p.checkpoints.as_ref()?.headers.get(index)?)))
            .collect();
        let Some((a, claim)) = claims.first().copied() else {
            return;
        };
        let Some((b, _)) = claims.iter().find(|(_, other)| *other != claim).copied() else {
            return;
        };
        if cx.slots.is_busy(a) || cx.slots.is_busy(b) {
            return;
        }
        tracing::info!(%a, %b, height = h, "asking both sides of a checkpoint dispute for its interval");
        self.send_interval(cx, now, a, interval.clone());
        self.send_interval(cx, now, b, interval);
    }

    /// A second peer for the tail a first one already answered.
    fn ask_tail_witness(&mut self, cx: &mut FilterCtx<'_>, now: Now, conn: ConnId, end: u32) {
        let Some(tail) = &self.tail else { return };
        if tail.from == conn || tail.interval.stop >= end {
            return;
        }
        if self.asked.values().any(|i| *i == tail.interval) {
            return;
        }
        let interval = tail.interval.clone();
        self.send_interval(cx, now, conn, interval);
    }

    fn send_interval(&mut self, cx: &mut FilterCtx<'_>, now: Now, conn: ConnId, i: Interval) {
        cx.slots.take(
            conn,
            Purpose::FilterHeaders,
            now.mono + FILTER_RESPONSE_TIMEOUT,
        );
        cx.out.push_back(Output::Send {
            conn,
            msg: NetworkMessage::GetCFHeaders(GetCFHeaders {
                filter_type: BASIC_FILTER,
                start_height: i.start,
                stop_hash: i.stop_hash,
            }),
        });
        self.asked.insert(conn, i);
    }

    /// The lowest height neither held, nor asked, nor waiting.
    fn next_unasked(&self, filters: &FilterHeaderChain) -> u32 {
        let mut next = u32::try_from(filters.len()).unwrap_or(u32::MAX);
        loop {
            let covered = self
                .asked
                .values()
                .chain(self.ready.values().map(|v| &v.interval))
                .chain(self.tail.iter().map(|t| &t.interval))
                .find(|i| i.start == next);
            match covered {
                Some(i) => next = i.stop.saturating_add(1),
                None => return next,
            }
        }
    }

    /// A `cfcheckpt` arrived.
    pub fn on_cfcheckpt(
        &mut self,
        cx: &mut FilterCtx<'_>,
        now: Now,
        conn: ConnId,
        msg: &CFCheckpt,
    ) {
        let Some(peer) = self.peers.get_mut(&conn) else {
            return;
        };
        if !peer.asked_checkpoints || msg.filter_type != BASIC_FILTER {
            return;
        }
        peer.asked_checkpoints = false;
        cx.slots.release(conn);
        let Some(stop_height) = cx.chain.get(&msg.stop_hash).map(|(h, _, _)| h) else {
            misbehave(cx, conn, "cfcheckpt for a block we never asked about");
            peer.benched = true;
            return;
        };
        if !cx.chain.is_in_best_chain(&msg.stop_hash) {
            // Reorged out while in flight: asked again at the next tick.
            return;
        }
        let expected = (stop_height / CFCHECKPT_INTERVAL) as usize;
        if msg.filter_headers.len() != expected {
            misbehave(cx, conn, "cfcheckpt with the wrong number of checkpoints");
            peer.benched = true;
            return;
        }
        // Checkpoints must agree with what we already hold, which peers
        // cross-checked before it was taken. One that does not is not
        // asked for filter data on this connection: held headers are not
        // reopened by a newcomer's word (nor can it stall the sync of new
        // blocks), and it is not scored either, since nothing here proves
        // which side is wrong.
        let contradiction = msg
            .filter_headers
            .iter()
            .enumerate()
            .find(|(i, header)| {
                cx.filters
                    .header_at(checkpoint_height(*i))
                    .is_some_and(|ours| ours != **header)
            })
            .map(|(i, _)| checkpoint_height(i));
        if let Some(height) = contradiction {
            tracing::warn!(
                %conn,
                height,
                "peer's filter header checkpoint contradicts the filter headers we hold; \
                 not asking it for filter data"
            );
            peer.benched = true;
        }
        peer.checkpoints = Some(Checkpoints {
            stop: msg.stop_hash,
            headers: msg.filter_headers.clone(),
        });
        self.tick(cx, now);
    }

    /// A `cfheaders` arrived.
    pub fn on_cfheaders(
        &mut self,
        cx: &mut FilterCtx<'_>,
        now: Now,
        conn: ConnId,
        msg: &CFHeaders,
    ) {
        let Some(interval) = self.asked.remove(&conn) else {
            return;
        };
        cx.slots.release(conn);
        let count = interval.stop - interval.start + 1;
        if msg.filter_type != BASIC_FILTER
            || msg.stop_hash != interval.stop_hash
            || msg.filter_hashes.len() != count as usize
        {
            misbehave(cx, conn, "cfheaders that do not answer our getcfheaders");
            self.bench(conn);
            return;
        }
        if cx.chain.hash_at(interval.stop) != Some(interval.stop_hash) {
            // Reorged while in flight: the answer is for a stale branch.
            self.tick(cx, now);
            return;
        }
        self.drop_stale_checkpoints(cx.chain);
        let agreed = self.agreed_checkpoints();
        // Where the interval must start from: the header below it that we
        // hold, or the agreed checkpoint.
        let below = match interval.start.checked_sub(1) {
            None => Some(FilterHeader::from_byte_array([0; 32])),
            Some(h) => cx
                .filters
                .header_at(h)
                .or_else(|| agreed_below(&agreed, interval.start)),
        };
        if below.is_some_and(|b| b != msg.previous_filter_header) {
            misbehave(
                cx,
                conn,
                "cfheaders that start from the wrong filter header",
            );
            self.bench(conn);
            return;
        }
        let top = chain_headers(msg.previous_filter_header, &msg.filter_hashes);
        let index = checkpoint_index(interval.stop);
        let own = index.and_then(|i| {
            let p = self.peers.get(&conn)?;
            p.checkpoints.as_ref()?.headers.get(i).copied()
        });
        if own.is_some_and(|c| c != top) {
            misbehave(cx, conn, "cfheaders that contradict its own cfcheckpt");
            self.bench(conn);
            self.tick(cx, now);
            return;
        }
        let checkpoint = index.and_then(|i| agreed.get(i));
        match checkpoint {
            Some(c) if *c != top => {
                misbehave(cx, conn, "cfheaders that contradict the agreed checkpoint");
                self.bench(conn);
            }
            Some(_) => {
                let verified = Verified {
                    interval,
                    hashes: msg.filter_hashes.clone(),
                    cross_checked: true,
                };
                self.ready.insert(verified.interval.start, verified);
            }
            None => self.tail_answer(
                cx,
                now,
                conn,
                TailAnswer {
                    from: conn,
                    interval,
                    previous: msg.previous_filter_header,
                    hashes: msg.filter_hashes.clone(),
                },
            ),
        }
        self.store_ready(cx);
        self.tick(cx, now);
    }

    /// An answer for an interval no checkpoint covers.
    fn tail_answer(&mut self, cx: &mut FilterCtx<'_>, now: Now, conn: ConnId, answer: TailAnswer) {
        let witnesses = self.peers.values().filter(|p| !p.benched).count();
        match self.tail.take() {
            Some(first) if first.interval == answer.interval && first.from != conn => {
                if first.previous == answer.previous && first.hashes == answer.hashes {
                    let verified = Verified {
                        interval: answer.interval,
                        hashes: answer.hashes,
                        cross_checked: true,
                    };
                    self.ready.insert(verified.interval.start, verified);
                } else {
                    tracing::warn!(
                        first = %first.from,
                        second = %conn,
                        start = answer.interval.start,
                        "two filter peers give different filter headers for the newest blocks: \
                         neither is taken"
                    );
                    self.tail_dispute = Some((answer.interval.start, [first.from, conn]));
                    self.start_dispute(cx, now, &first, &answer);
                }
            }
            _ if witnesses < TAIL_WITNESSES => {
                // A single filter peer: its word is all there is.
                let verified = Verified {
                    interval: answer.interval,
                    hashes: answer.hashes,
                    cross_checked: false,
                };
                self.ready.insert(verified.interval.start, verified);
            }
            _ => self.tail = Some(answer),
        }
    }

    /// Gather evidence on the first block whose filter hash two peers give
    /// differently (BIP157: fetch the filter from each, and the block).
    fn start_dispute(
        &mut self,
        cx: &mut FilterCtx<'_>,
        now: Now,
        first: &TailAnswer,
        second: &TailAnswer,
    ) {
        if self.dispute.is_some() || first.previous != second.previous {
            return;
        }
        let Some(i) = first
            .hashes
            .iter()
            .zip(&second.hashes)
            .position(|(a, b)| a != b)
        else {
            return;
        };
        let height = first.interval.start + u32::try_from(i).unwrap_or(u32::MAX);
        let Some(block) = cx.chain.hash_at(height) else {
            return;
        };
        tracing::info!(
            height,
            %block,
            "settling a filter header dispute: fetching the block and both filters"
        );
        self.dispute = Some(Dispute::new(
            height,
            block,
            [
                (first.from, first.hashes[i]),
                (second.from, second.hashes[i]),
            ],
        ));
        self.ask_evidence(cx, now);
    }

    /// Ask for the dispute's filters and block, of idle peers.
    fn ask_evidence(&mut self, cx: &mut FilterCtx<'_>, now: Now) {
        let Some(d) = &mut self.dispute else { return };
        let (height, block) = (d.height(), d.block_hash());
        for conn in d.filters_to_ask() {
            if cx.slots.is_busy(conn) {
                continue;
            }
            d.filter_asked(conn);
            cx.slots
                .take(conn, Purpose::Evidence, now.mono + FILTER_RESPONSE_TIMEOUT);
            cx.out.push_back(Output::Send {
                conn,
                msg: NetworkMessage::GetCFilters(GetCFilters {
                    filter_type: BASIC_FILTER,
                    start_height: height,
                    stop_hash: block,
                }),
            });
        }
        if d.needs_block() {
            // Any peer will do: the block is checked against its header.
            let source = d
                .parties()
                .chain(self.peers.keys().copied())
                .find(|c| !cx.slots.is_busy(*c) && !self.asked.contains_key(c));
            if let Some(conn) = source {
                d.block_asked(conn);
                cx.slots
                    .take(conn, Purpose::Evidence, now.mono + FILTER_RESPONSE_TIMEOUT);
                cx.out.push_back(Output::Send {
                    conn,
                    msg: NetworkMessage::GetData(vec![crate::wire::Inventory::WitnessBlock(block)]),
                });
            }
        }
    }

    /// A filter or block asked for as evidence.
    pub fn on_evidence(
        &mut self,
        cx: &mut FilterCtx<'_>,
        now: Now,
        conn: ConnId,
        msg: &NetworkMessage,
    ) {
        let Some(d) = &mut self.dispute else {
            cx.slots.release(conn);
            return;
        };
        match msg {
            NetworkMessage::CFilter(f) => {
                if !d.on_filter(conn, f) {
                    return;
                }
            }
            NetworkMessage::Block(b) if d.block_from() == Some(conn) => {
                if let Err(problem) = d.on_block(b) {
                    d.block_lost();
                    cx.slots.release(conn);
                    tracing::info!(%conn, %problem, "peer sent a block that does not match its header");
                    misbehave(cx, conn, "a block that does not match its header");
                    self.bench(conn);
                    return;
                }
            }
            NetworkMessage::NotFound(_) if d.block_from() == Some(conn) => d.block_lost(),
            _ => return,
        }
        cx.slots.release(conn);
        match d.verdict() {
            Verdict::Pending => {}
            Verdict::Liars(liars) => {
                let height = d.height();
                self.dispute = None;
                self.tail_dispute = None;
                for liar in liars {
                    tracing::warn!(%liar, height, "peer served a filter that does not fit its block");
                    misbehave(cx, liar, "a filter that does not fit its block");
                    self.bench(liar);
                }
            }
            Verdict::Undecided => {
                tracing::warn!(
                    height = d.height(),
                    "both filters hold every output of the disputed block; they differ in what \
                     the block spends, which a node without the UTXO set cannot check: \
                     neither peer's filter headers are taken"
                );
                self.dispute = None;
            }
        }
        self.tick(cx, now);
    }

    /// Append the verified intervals that continue the chain.
    fn store_ready(&mut self, cx: &mut FilterCtx<'_>) {
        let mut grew = false;
        while let Some(entry) = self.ready.first_entry() {
            let start = *entry.key();
            if start as usize != cx.filters.len() {
                if (start as usize) < cx.filters.len() {
                    entry.remove();
                    continue;
                }
                break;
            }
            let Verified {
                interval,
                hashes,
                cross_checked,
            } = entry.remove();
            if cx.chain.hash_at(interval.stop) != Some(interval.stop_hash) {
                // Answered for a branch that lost since: asked again.
                continue;
            }
            // The newest interval held says how well the top is vouched for.
            self.tail_checked = cross_checked;
            for (height, hash) in (interval.start..=interval.stop).zip(hashes) {
                let Some(block) = cx.chain.hash_at(height) else {
                    break;
                };
                cx.filters.push(block, hash);
            }
            grew = true;
        }
        if grew {
            cx.out.push_back(Output::PersistFilterHeaders);
        }
    }

    fn bench(&mut self, conn: ConnId) {
        if let Some(p) = self.peers.get_mut(&conn) {
            p.benched = true;
        }
    }
}

/// Whether `conn` is a peer we sync from (regular, manual or extra: not a
/// feeler, which leaves at once, nor a private broadcast, which carries
/// one transaction and must not be linked to anything else we do) that
/// advertised filters.
fn serves_filters(peers: &PeerTable, conn: ConnId) -> bool {
    peers.get(conn).is_some_and(|e| {
        e.kind.syncs_from()
            && e.info()
                .is_some_and(|i| i.services.has(crate::wire::ServiceFlags::COMPACT_FILTERS))
    })
}

/// Where the branch of `block` (at `height`) meets the best chain: the
/// header chain keeps side branches, so their ancestry is known.
fn fork_height(chain: &HeaderChain, block: BlockHash, height: u32) -> u32 {
    let mut fork = height;
    let mut hash = block;
    while let Some((h, header, _)) = chain.get(&hash) {
        if chain.hash_at(h) == Some(hash) {
            return h;
        }
        hash = header.prev_blockhash;
        fork = h.saturating_sub(1);
    }
    fork.min(chain.height())
}

/// The height of checkpoint `i`.
fn checkpoint_height(i: usize) -> u32 {
    u32::try_from(i + 1)
        .unwrap_or(u32::MAX)
        .saturating_mul(CFCHECKPT_INTERVAL)
}

/// The last height of the interval starting at `start`: the next
/// checkpoint height.
fn interval_stop(start: u32) -> u32 {
    (start / CFCHECKPT_INTERVAL + 1) * CFCHECKPT_INTERVAL
}

/// The first height of the interval that ends at checkpoint height `h`.
fn interval_start(h: u32) -> u32 {
    if h <= CFCHECKPT_INTERVAL {
        0
    } else {
        h - CFCHECKPT_INTERVAL + 1
    }
}

/// The agreed checkpoint just below an interval starting at `start`, when
/// `start - 1` is a checkpoint height.
fn agreed_below(agreed: &[FilterHeader], start: u32) -> Option<FilterHeader> {
    agreed
        .get(checkpoint_index(start.checked_sub(1)?)?)
        .copied()
}

/// Which checkpoint sits at `height`, if one does (genesis has none).
fn checkpoint_index(height: u32) -> Option<usize> {
    (height > 0 && height.is_multiple_of(CFCHECKPT_INTERVAL))
        .then(|| (height / CFCHECKPT_INTERVAL) as usize - 1)
}

/// The filter header at the top of `hashes` chained onto `previous`.
pub fn chain_headers(previous: FilterHeader, hashes: &[FilterHash]) -> FilterHeader {
    hashes
        .iter()
        .fold(previous, |prev, hash| hash.filter_header(&prev))
}

fn misbehave(cx: &mut FilterCtx<'_>, conn: ConnId, what: &'static str) {
    cx.out.push_back(Output::Misbehaving {
        conn,
        points: WRONG_FILTER_DATA_POINTS,
        what,
    });
}
