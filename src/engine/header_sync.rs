//! Headers-first sync: which peer we ask for headers, what we do with the
//! answers, and the stale-tip defence.
//!
//! # Sessions
//!
//! A *session* is a run of `getheaders` → `headers` round trips with one
//! peer, continued while the peer fills its replies (2000 headers) and
//! finished by a short or empty reply. During initial sync (the best
//! header is below the network's minimum chain work or more than a day
//! old, Core's `IsInitialBlockDownload` test) at most one session runs:
//! one sync peer at a time, as Core does, so a slow or lying peer costs a
//! timeout, not a flood. After initial sync every new outbound peer gets
//! one session, which tells us whether it knows a better chain, and
//! `sendheaders` (BIP130) lets peers announce new tips as headers.
//!
//! # Anti-DoS
//!
//! - A header that fails validation ([`HeaderError::is_invalid`]) costs the
//!   sender 100 points: the peer machine closes the connection and the
//!   address is discouraged.
//! - Headers that do not connect get a `getheaders` back (the announcer may
//!   be a few blocks ahead); the tenth such message in a row costs 20 points.
//! - A `headers` message with more than 2000 entries costs 20 points.
//! - **Low-work chains** (Core answers with headers presync: commitments,
//!   then a second download). We keep headers, but treat everything
//!   accepted below the minimum chain work as *provisional*:
//!   - only the sync peer's headers are taken while below it, so the
//!     headers since the session began are that peer's alone;
//!   - if its chain grows past [`ChainParams::plausible_height`] (how many
//!     blocks an honest chain can have at this time) while still below the
//!     minimum work, it cannot be the network's chain: the session's headers
//!     are rolled back (memory and file) and the peer scored 100;
//!   - if provisional headers from several peers together exceed that
//!     bound, all of them are dropped back to what the node started with.
//!
//!   So memory holds at most one plausible chain's worth of unproven
//!   headers (about 1.2 million on mainnet in 2026: about 42 MB as the
//!   best chain, as on a fresh node, at most about 180 MB off it, where
//!   each also keeps its height, parent and work in the side table; see
//!   `crate::chain`'s "Memory") and an
//!   attacker must redo its work for every new identity, while an honest
//!   sync keeps its progress across restarts and peers, which presync's
//!   second download would cost on a slow Tor circuit.
//! - Past the minimum work, a batch that neither moves the tip nor ends
//!   within 144 blocks' worth of work of it is dropped unstored (Core's
//!   anti-DoS work threshold): side branches cost real work.
//!
//! # Stale tip
//!
//! When the best header has not moved for [`EngineConfig::stale_tip_after`]
//! (Core: 30 minutes) and the outbound slots are full, the engine opens one
//! `Extra` connection, on its own circuit isolation, and starts a session
//! with it straight away. If the session brings more work the peer stays;
//! otherwise it is dropped. Another extra may follow after
//! [`EXTRA_RETRY_INTERVAL`] if the tip is still stale.
//!
//! [`ChainParams::plausible_height`]: crate::chain::ChainParams::plausible_height

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use bitcoin::BlockHash;
use bitcoin::block::Header;
use bitcoin::hashes::Hash;

use super::config::EngineConfig;
use super::io::{Now, Output};
use super::peers::PeerTable;
use crate::chain::{HeaderChain, HeaderError};
use crate::peer::machine::MIN_PROTOCOL_VERSION;
use crate::peer::{ConnId, ConnectionKind};
use crate::wire::{GetHeadersMessage, Inventory, NetworkMessage};

/// Headers per message (Core's `MAX_HEADERS_RESULTS`).
pub const MAX_HEADERS_RESULTS: usize = 2000;

/// How long a peer may take to answer a `getheaders`. 2000 headers are
/// 162 kB, seconds even over a slow onion circuit; two minutes also covers
/// a circuit that is being rebuilt.
pub const HEADERS_RESPONSE_TIMEOUT: Duration = Duration::from_secs(120);

/// Wait between stale-tip extra connections (Core's `STALE_CHECK_INTERVAL`).
pub const EXTRA_RETRY_INTERVAL: Duration = Duration::from_secs(10 * 60);

/// During initial sync, when every peer has had its session and we are
/// still behind, ask them again after this long.
pub const SYNC_RETRY_INTERVAL: Duration = Duration::from_secs(10 * 60);

/// A best header older than this means we are still syncing (Core's
/// `max_tip_age`).
pub const MAX_TIP_AGE: u64 = 24 * 60 * 60;

/// Unconnecting `headers` messages in a row before the peer is scored
/// (Core's `MAX_NUM_UNCONNECTING_HEADERS_MSGS`).
pub const MAX_UNCONNECTING_HEADERS: u32 = 10;

/// Blocks' worth of work below our tip within which a side branch is still
/// worth storing (Core's anti-DoS work threshold).
pub const ANTI_DOS_WORK_BLOCKS: u32 = 144;

/// Points for a provably invalid header or an implausible low-work chain:
/// enough to disconnect and discourage.
pub const INVALID_HEADERS_POINTS: u32 = 100;

/// Points for repeatedly unconnecting or oversized `headers` messages.
pub const NUISANCE_POINTS: u32 = 20;

/// Core's `MAX_LOCATOR_SZ`: the longest block locator a `getheaders` may
/// carry.
pub const MAX_LOCATOR_SIZE: usize = 101;

/// A session in progress with one peer.
#[derive(Debug, Clone)]
struct Session {
    /// When the outstanding `getheaders` must be answered.
    deadline: Instant,
    /// The chain's header count when the session began: what a rollback
    /// of this peer's provisional headers returns to.
    mark: usize,
    /// Whether any reply moved our best tip.
    brought_work: bool,
    /// Headers new to us, over the session.
    new_headers: usize,
}

/// What we track about each peer for sync.
#[derive(Debug, Clone)]
struct SyncPeer {
    kind: ConnectionKind,
    /// The height it claimed in its `version`.
    start_height: i32,
    session: Option<Session>,
    /// Whether it already had a session (during initial sync: do not pick
    /// it again until [`SYNC_RETRY_INTERVAL`] passes).
    tried: bool,
    /// Unconnecting `headers` messages in a row.
    unconnecting: u32,
    /// It asked for new blocks as `headers` (BIP130 `sendheaders`).
    wants_headers: bool,
}

impl SyncPeer {
    /// End its session, if any; a peer whose session ended has had its turn.
    fn end_session(&mut self) -> Option<Session> {
        let ended = self.session.take();
        self.tried |= ended.is_some();
        ended
    }

    /// Outbound full-relay peers may be asked for headers; feelers leave
    /// at once, inbound peers are anyone, broadcast connections carry one
    /// transaction.
    fn may_sync(&self) -> bool {
        matches!(
            self.kind,
            ConnectionKind::Regular(_) | ConnectionKind::Manual | ConnectionKind::Extra
        )
    }
}

/// The borrows a sync call works with.
#[derive(Debug)]
pub struct SyncCtx<'a> {
    /// The configuration.
    pub config: &'a EngineConfig,
    /// The header chain.
    pub chain: &'a mut HeaderChain,
    /// The connections (read-only: kinds and handshake facts).
    pub peers: &'a PeerTable,
    /// Where outputs go.
    pub out: &'a mut VecDeque<Output>,
}

/// The sync state.
#[derive(Debug)]
pub struct HeaderSync {
    peers: BTreeMap<ConnId, SyncPeer>,
    /// Headers the node started with (or held when it reached the minimum
    /// work): the floor provisional headers are rolled back to.
    base_len: usize,
    last_tip_change: Option<Instant>,
    extra: Option<ConnId>,
    next_extra: Option<Instant>,
    next_retry: Option<Instant>,
}

impl HeaderSync {
    /// Sync state for a node starting with `chain`.
    pub fn new(chain: &HeaderChain) -> Self {
        HeaderSync {
            peers: BTreeMap::new(),
            base_len: chain.len(),
            last_tip_change: None,
            extra: None,
            next_extra: None,
            next_retry: None,
        }
    }

    /// Whether we are still catching up: Core's `IsInitialBlockDownload`,
    /// on headers.
    pub fn in_initial_sync(chain: &HeaderChain, now_unix: u64) -> bool {
        !chain.has_minimum_chain_work()
            || u64::from(chain.tip_header().time).saturating_add(MAX_TIP_AGE) < now_unix
    }

    /// The current sync peer during initial sync (the peer with a session).
    pub fn sync_peer(&self) -> Option<ConnId> {
        self.peers
            .iter()
            .find(|(_, p)| p.session.is_some())
            .map(|(c, _)| *c)
    }

    /// Whether `conn` has a session in progress.
    pub fn is_syncing_with(&self, conn: ConnId) -> bool {
        self.peers.get(&conn).is_some_and(|p| p.session.is_some())
    }

    /// How long the best header has not moved.
    pub fn tip_idle(&self, now: Now) -> Duration {
        self.last_tip_change
            .map_or(Duration::ZERO, |t| now.mono.saturating_duration_since(t))
    }

    /// The stale-tip extra connection, while it lasts.
    pub fn extra(&self) -> Option<ConnId> {
        self.extra
    }

    /// A peer completed its handshake.
    pub fn peer_ready(
        &mut self,
        cx: &mut SyncCtx<'_>,
        now: Now,
        conn: ConnId,
        kind: ConnectionKind,
        start_height: i32,
    ) {
        if matches!(
            kind,
            ConnectionKind::Feeler | ConnectionKind::PrivateBroadcast
        ) {
            return;
        }
        let peer = SyncPeer {
            kind,
            start_height,
            session: None,
            tried: false,
            unconnecting: 0,
            wants_headers: false,
        };
        let may_sync = peer.may_sync();
        self.peers.insert(conn, peer);
        if kind == ConnectionKind::Inbound {
            self.announce_tip_to_newcomer(cx, now, conn);
        }
        if !may_sync {
            return;
        }
        // BIP130: announce new blocks to us as headers.
        cx.out.push_back(Output::Send {
            conn,
            msg: NetworkMessage::SendHeaders,
        });
        let initial = Self::in_initial_sync(cx.chain, now.unix);
        if kind == ConnectionKind::Extra && Some(conn) == self.extra {
            // The stale-tip defence must hear from the newcomer even if a
            // sync session runs: that session is evidently not helping.
            if initial {
                for p in self.peers.values_mut() {
                    p.session = None;
                }
            }
            self.start_session(cx, now, conn, None);
        } else if !initial {
            self.start_session(cx, now, conn, None);
        }
        // During initial sync, `tick` picks the one sync peer.
    }

    /// A connection ended.
    pub fn peer_closed(&mut self, now: Now, conn: ConnId) {
        self.peers.remove(&conn);
        if self.extra == Some(conn) {
            self.extra = None;
            self.next_extra = Some(now.mono + EXTRA_RETRY_INTERVAL);
        }
    }

    /// Time passed: expire sessions, pick a sync peer, watch for a stale
    /// tip. Returns `true` when an `Extra` connection should be opened.
    pub fn tick(&mut self, cx: &mut SyncCtx<'_>, now: Now) -> bool {
        let last_change = *self.last_tip_change.get_or_insert(now.mono);
        let expired: Vec<ConnId> = self
            .peers
            .iter()
            .filter(|(_, p)| p.session.as_ref().is_some_and(|s| now.mono >= s.deadline))
            .map(|(c, _)| *c)
            .collect();
        for conn in expired {
            self.session_timed_out(cx, conn);
        }
        if Self::in_initial_sync(cx.chain, now.unix) && self.sync_peer().is_none() {
            self.pick_sync_peer(cx, now);
        }
        let stale = now.mono.saturating_duration_since(last_change) >= cx.config.stale_tip_after;
        stale && self.extra.is_none() && self.next_extra.is_none_or(|t| now.mono >= t)
    }

    /// The earliest of header sync's timers: a `getheaders` deadline, the
    /// next round of initial sync, the next stale-tip check.
    pub fn next_deadline(&self, config: &EngineConfig) -> Option<Instant> {
        let sessions = self
            .peers
            .values()
            .filter_map(|p| p.session.as_ref().map(|s| s.deadline));
        let stale_check = self
            .last_tip_change
            .filter(|_| self.extra.is_none())
            .map(|t| {
                let stale_at = t + config.stale_tip_after;
                self.next_extra.map_or(stale_at, |e| stale_at.max(e))
            });
        sessions.chain(self.next_retry).chain(stale_check).min()
    }

    /// Tell a peer that connected to us where our best chain ends, with
    /// its tip header, once we are out of initial sync. A node that cannot
    /// serve blocks is never picked for a header sync by Core, but Core
    /// answers an announcement it cannot connect with a `getheaders`, which
    /// we serve: a fresh node can learn the chain from us alone.
    fn announce_tip_to_newcomer(&self, cx: &mut SyncCtx<'_>, now: Now, conn: ConnId) {
        if Self::in_initial_sync(cx.chain, now.unix) || cx.chain.height() == 0 {
            return;
        }
        cx.out.push_back(Output::Send {
            conn,
            msg: NetworkMessage::Headers(vec![cx.chain.tip_header()]),
        });
    }

    /// A peer sent `sendheaders`: announce new tips to it as headers.
    pub fn on_sendheaders(&mut self, conn: ConnId) {
        if let Some(p) = self.peers.get_mut(&conn) {
            p.wants_headers = true;
        }
    }

    /// Our tip moved (headers from `source`): announce it, as a `headers`
    /// message with the tip, to the inbound peers that asked for
    /// announcements with `sendheaders`. One header is enough: a peer
    /// that cannot connect it asks with `getheaders`, which we serve.
    /// Outbound peers are where our headers come from; they are not told.
    fn announce_tip(&self, cx: &mut SyncCtx<'_>, source: ConnId) {
        let tip = cx.chain.tip_header();
        for (conn, p) in &self.peers {
            if *conn != source && p.wants_headers && p.kind == ConnectionKind::Inbound {
                cx.out.push_back(Output::Send {
                    conn: *conn,
                    msg: NetworkMessage::Headers(vec![tip]),
                });
            }
        }
    }

    /// The engine opened the stale-tip extra connection.
    pub fn extra_opened(&mut self, now: Now, conn: ConnId) {
        self.extra = Some(conn);
        self.next_extra = Some(now.mono + EXTRA_RETRY_INTERVAL);
    }

    /// A stale-tip check found nothing to open (no address, slots not full):
    /// look again after the retry interval.
    pub fn extra_deferred(&mut self, now: Now) {
        self.next_extra = Some(now.mono + EXTRA_RETRY_INTERVAL);
    }

    fn pick_sync_peer(&mut self, cx: &mut SyncCtx<'_>, now: Now) {
        let candidate = |peers: &BTreeMap<ConnId, SyncPeer>| {
            peers
                .iter()
                .filter(|(_, p)| p.may_sync() && !p.tried)
                // The highest claimed height first; the oldest connection
                // among equals (BTreeMap order keeps this deterministic).
                .max_by_key(|(c, p)| (p.start_height, std::cmp::Reverse(**c)))
                .map(|(c, _)| *c)
        };
        let mut pick = candidate(&self.peers);
        if pick.is_none() && self.peers.values().any(SyncPeer::may_sync) {
            // Everyone had a turn and we are still behind: after a pause,
            // give everyone another.
            match self.next_retry {
                Some(t) if now.mono >= t => {
                    self.next_retry = None;
                    for p in self.peers.values_mut() {
                        p.tried = false;
                    }
                    pick = candidate(&self.peers);
                }
                Some(_) => {}
                None => self.next_retry = Some(now.mono + SYNC_RETRY_INTERVAL),
            }
        }
        if let Some(conn) = pick {
            tracing::info!(%conn, height = cx.chain.height(), "syncing headers from this peer");
            self.start_session(cx, now, conn, None);
        }
    }

    /// Send a `getheaders` and open (or continue) the session. `after`: the
    /// last header the peer sent, to continue from there.
    fn start_session(
        &mut self,
        cx: &mut SyncCtx<'_>,
        now: Now,
        conn: ConnId,
        after: Option<BlockHash>,
    ) {
        let Some(peer) = self.peers.get_mut(&conn) else {
            return;
        };
        let mark = cx.chain.len();
        let session = peer.session.get_or_insert(Session {
            deadline: now.mono,
            mark,
            brought_work: false,
            new_headers: 0,
        });
        session.deadline = now.mono + HEADERS_RESPONSE_TIMEOUT;
        cx.out.push_back(Output::Send {
            conn,
            msg: getheaders(cx.chain, after),
        });
    }

    fn session_timed_out(&mut self, cx: &mut SyncCtx<'_>, conn: ConnId) {
        let Some(peer) = self.peers.get_mut(&conn) else {
            return;
        };
        peer.end_session();
        if peer.kind == ConnectionKind::Manual {
            // The user vouched for it; just ask someone else.
            tracing::info!(%conn, "added peer did not answer getheaders in time");
            return;
        }
        tracing::info!(%conn, "headers sync timed out: disconnecting the peer");
        cx.out.push_back(Output::Disconnect {
            conn,
            reason: "headers sync timed out".into(),
        });
    }

    fn finish_session(&mut self, cx: &mut SyncCtx<'_>, now: Now, conn: ConnId) {
        let Some(peer) = self.peers.get_mut(&conn) else {
            return;
        };
        let Some(session) = peer.end_session() else {
            return;
        };
        tracing::debug!(%conn, new = session.new_headers, height = cx.chain.height(), "headers session finished");
        if Some(conn) == self.extra {
            if session.brought_work {
                tracing::info!(%conn, height = cx.chain.height(), "stale tip: the extra peer brought more work; keeping it");
            } else {
                tracing::info!(%conn, "stale tip: the extra peer knows nothing better; dropping it");
                cx.out.push_back(Output::Disconnect {
                    conn,
                    reason: "extra peer had no new headers".into(),
                });
            }
            self.next_extra = Some(now.mono + EXTRA_RETRY_INTERVAL);
        }
    }

    /// A peer sent `headers`.
    pub fn on_headers(&mut self, cx: &mut SyncCtx<'_>, now: Now, conn: ConnId, headers: &[Header]) {
        let Some(peer) = self.peers.get(&conn) else {
            return;
        };
        let in_session = peer.session.is_some();
        if headers.len() > MAX_HEADERS_RESULTS {
            misbehave(
                cx,
                conn,
                NUISANCE_POINTS,
                "headers message with over 2000 headers",
            );
            return;
        }
        let Some(last) = headers.last() else {
            // "Nothing after what you have": the session is over.
            self.finish_session(cx, now, conn);
            return;
        };
        let provisional = !cx.chain.has_minimum_chain_work();
        if provisional && !in_session {
            // While below the minimum work only the sync peer's headers
            // count (rollbacks rely on it); others are heard later.
            tracing::debug!(%conn, count = headers.len(), "initial sync: headers from a non-sync peer ignored");
            return;
        }
        let batch_mark = cx.chain.len();
        let outcome = match cx.chain.accept(headers, now.unix) {
            Ok(outcome) => outcome,
            Err(HeaderError::TimeTooNew { hash, .. }) => {
                return self.ahead_of_our_clock(cx, now, conn, headers, hash);
            }
            Err(e) => return self.rejected(cx, now, conn, in_session, &e),
        };
        if let Some(p) = self.peers.get_mut(&conn) {
            p.unconnecting = 0;
        }
        if provisional {
            if !self.provisional_within_bounds(cx, now, conn) {
                return;
            }
            if cx.chain.has_minimum_chain_work() {
                tracing::info!(
                    height = cx.chain.height(),
                    "the header chain reached the network's minimum chain work"
                );
                self.base_len = cx.chain.len();
            }
        } else if !outcome.tip_changed && is_low_work(cx.chain, &last.block_hash()) {
            // A side branch too far below our tip to matter: not stored.
            cx.chain.truncate(batch_mark);
            tracing::debug!(%conn, count = headers.len(), "low-work headers ignored");
            if in_session {
                self.finish_session(cx, now, conn);
            }
            return;
        }
        if outcome.new_headers > 0 {
            cx.out.push_back(Output::PersistChain);
        }
        if outcome.tip_changed {
            self.last_tip_change = Some(now.mono);
            self.announce_tip(cx, conn);
            let (height, hash) = outcome.tip;
            if let Some(reorg) = outcome.reorg {
                tracing::warn!(%conn, height, %hash, fork_height = reorg.fork_height, disconnected = reorg.disconnected, connected = reorg.connected, "header chain reorganised");
            } else {
                tracing::info!(%conn, height, %hash, "new best header");
            }
        }
        let full = headers.len() == MAX_HEADERS_RESULTS;
        match self.peers.get_mut(&conn).and_then(|p| p.session.as_mut()) {
            Some(session) => {
                session.brought_work |= outcome.tip_changed;
                session.new_headers += outcome.new_headers;
                if full {
                    self.start_session(cx, now, conn, Some(last.block_hash()));
                } else {
                    self.finish_session(cx, now, conn);
                }
            }
            // An announcement that filled a whole message: there is more.
            None if full => self.start_session(cx, now, conn, Some(last.block_hash())),
            None => {}
        }
    }

    /// Checks the provisional-header bounds after a batch from `conn`; on a
    /// breach rolls back and returns `false`.
    fn provisional_within_bounds(&mut self, cx: &mut SyncCtx<'_>, now: Now, conn: ConnId) -> bool {
        if cx.chain.has_minimum_chain_work() {
            return true;
        }
        let plausible = cx.chain.params().plausible_height(now.unix);
        let mark = self
            .peers
            .get(&conn)
            .and_then(|p| p.session.as_ref())
            .map_or(cx.chain.len(), |s| s.mark);
        if cx.chain.height() > plausible {
            let dropped = cx.chain.len().saturating_sub(mark);
            tracing::warn!(%conn, height = cx.chain.height(), plausible, dropped, "low-work header chain longer than any honest chain: rolled back");
            self.roll_back(cx, mark);
            if let Some(p) = self.peers.get_mut(&conn) {
                p.end_session();
            }
            misbehave(cx, conn, INVALID_HEADERS_POINTS, "low-work header chain");
            return false;
        }
        let cap = usize::try_from(plausible)
            .unwrap_or(usize::MAX)
            .saturating_add(1);
        if cx.chain.len() > cap && cx.chain.len() > self.base_len {
            // Several peers' provisional headers add up to more than one
            // plausible chain: some of it is junk, and we cannot tell
            // whose. Start over from what we had.
            let dropped = cx.chain.len() - self.base_len;
            tracing::warn!(
                dropped,
                "provisional headers exceeded the bound for one chain: all rolled back"
            );
            self.roll_back(cx, self.base_len);
            if let Some(p) = self.peers.get_mut(&conn) {
                p.session = None;
            }
            self.start_session(cx, now, conn, None);
            return false;
        }
        true
    }

    fn roll_back(&mut self, cx: &mut SyncCtx<'_>, len: usize) {
        cx.chain.truncate(len);
        cx.out.push_back(Output::TruncateChain(cx.chain.len()));
        // Sessions' marks above the new length would point past the end.
        for p in self.peers.values_mut() {
            if let Some(s) = p.session.as_mut() {
                s.mark = s.mark.min(cx.chain.len());
            }
        }
    }

    /// A header of the batch is over two hours ahead of our clock: keep
    /// the headers before it (the batch is all or nothing, so they are
    /// accepted again on their own), punish nobody, and end the session;
    /// the header is asked for again with the next announcement or sync
    /// round, by when our clock may have caught up (Core does the same).
    fn ahead_of_our_clock(
        &mut self,
        cx: &mut SyncCtx<'_>,
        now: Now,
        conn: ConnId,
        headers: &[Header],
        too_new: BlockHash,
    ) {
        let valid = headers
            .iter()
            .position(|h| h.block_hash() == too_new)
            .unwrap_or(0);
        tracing::info!(%conn, kept = valid, "a header is more than two hours ahead of our clock (is the clock slow?): keeping the headers before it, asking again later");
        if valid > 0 {
            // A short batch: taken as the peer's whole answer, so its
            // session (if any) ends as after any short reply.
            self.on_headers(cx, now, conn, &headers[..valid]);
        } else if self.peers.get(&conn).is_some_and(|p| p.session.is_some()) {
            self.finish_session(cx, now, conn);
        }
    }

    /// A batch failed validation.
    fn rejected(
        &mut self,
        cx: &mut SyncCtx<'_>,
        now: Now,
        conn: ConnId,
        in_session: bool,
        error: &HeaderError,
    ) {
        if error.is_invalid() {
            tracing::warn!(%conn, "invalid header from peer: {error}");
            if let Some(p) = self.peers.get_mut(&conn) {
                p.end_session();
            }
            misbehave(cx, conn, INVALID_HEADERS_POINTS, "invalid header");
            return;
        }
        let HeaderError::Orphan { .. } = error else {
            tracing::warn!(%conn, "headers not stored: {error}");
            return;
        };
        let Some(peer) = self.peers.get_mut(&conn) else {
            return;
        };
        peer.unconnecting += 1;
        tracing::debug!(%conn, count = peer.unconnecting, "headers do not connect");
        if peer.unconnecting >= MAX_UNCONNECTING_HEADERS {
            peer.unconnecting = 0;
            misbehave(cx, conn, NUISANCE_POINTS, "unconnecting headers");
        }
        // An announcer may be a few blocks ahead of us: ask for what we
        // miss. (Under a session the peer is answering our own locator; a
        // reply that does not connect to it is only counted.)
        if !in_session {
            self.start_session(cx, now, conn, None);
        }
    }

    /// A peer announced inventory: an unknown block means a tip we lack.
    pub fn on_inv(&mut self, cx: &mut SyncCtx<'_>, now: Now, conn: ConnId, items: &[Inventory]) {
        let unknown_block = items.iter().any(|i| match i {
            Inventory::Block(h) | Inventory::WitnessBlock(h) | Inventory::CompactBlock(h) => {
                !cx.chain.contains(h)
            }
            _ => false,
        });
        let Some(peer) = self.peers.get(&conn) else {
            return;
        };
        if unknown_block && peer.session.is_none() && !Self::in_initial_sync(cx.chain, now.unix) {
            self.start_session(cx, now, conn, None);
        }
    }

    /// A peer asked for headers: serve up to 2000 from the best chain once
    /// we are synced (Core does not serve during initial sync either: our
    /// chain would only mislead).
    pub fn on_getheaders(
        &self,
        cx: &mut SyncCtx<'_>,
        now: Now,
        conn: ConnId,
        req: &GetHeadersMessage,
    ) {
        if req.locator_hashes.len() > MAX_LOCATOR_SIZE {
            // Core disconnects such a peer: an honest locator never needs
            // more (it doubles its steps back from the tip).
            misbehave(
                cx,
                conn,
                INVALID_HEADERS_POINTS,
                "getheaders locator too long",
            );
            return;
        }
        if Self::in_initial_sync(cx.chain, now.unix) {
            return;
        }
        let fork = req
            .locator_hashes
            .iter()
            .filter(|h| cx.chain.is_in_best_chain(h))
            .find_map(|h| cx.chain.get(h).map(|(height, _, _)| height))
            .unwrap_or(0);
        let first = fork.saturating_add(1);
        let mut headers = cx.chain.headers_from(first, MAX_HEADERS_RESULTS);
        // Each header's hash is the next one's back link (the last one's
        // is a lookup): stopping at `stop_hash` needs no hashing.
        let stop = (0..headers.len()).find(|&i| {
            let hash = match headers.get(i + 1) {
                Some(next) => Some(next.prev_blockhash),
                None => cx.chain.hash_at(first + i as u32),
            };
            hash == Some(req.stop_hash)
        });
        if let Some(i) = stop {
            headers.truncate(i + 1);
        }
        cx.out.push_back(Output::Send {
            conn,
            msg: NetworkMessage::Headers(headers),
        });
    }
}

/// `getheaders` continuing after `after`, or from our best chain.
fn getheaders(chain: &HeaderChain, after: Option<BlockHash>) -> NetworkMessage {
    let mut locator_hashes = chain.locator();
    if let Some(hash) = after
        && locator_hashes.first() != Some(&hash)
    {
        // The peer's own last header first: it may be on a branch that is
        // not (yet) our best chain, and the peer must continue from there,
        // not from our tip.
        locator_hashes.insert(0, hash);
    }
    NetworkMessage::GetHeaders(GetHeadersMessage {
        version: MIN_PROTOCOL_VERSION,
        locator_hashes,
        stop_hash: BlockHash::all_zeros(),
    })
}

/// Whether the header `hash` ends a branch more than
/// [`ANTI_DOS_WORK_BLOCKS`] blocks' worth of work below our tip.
fn is_low_work(chain: &HeaderChain, hash: &BlockHash) -> bool {
    let Some((_, _, work)) = chain.get(hash) else {
        return false;
    };
    let per_block = chain.tip_header().work();
    let mut margin = per_block;
    for _ in 1..ANTI_DOS_WORK_BLOCKS {
        margin = margin + per_block;
    }
    let tip = chain.tip_work();
    // Below `tip - margin`, written without subtraction underflow.
    work + margin < tip
}

fn misbehave(cx: &mut SyncCtx<'_>, conn: ConnId, points: u32, what: &'static str) {
    cx.out.push_back(Output::Misbehaving { conn, points, what });
}
