//! Private broadcast: the user's own transactions leave over short-lived
//! connections that exist for nothing else.
//!
//! Each pending transaction is sent in *rounds*. A round opens up to
//! [`DEFAULT_CONNECTIONS`] `PrivateBroadcast` connections, each to a peer
//! from the address book that we hold no connection to, each in a network
//! group of its own, each on a Tor circuit nobody else ever uses (the
//! isolation policy gives the kind a fresh group per connection). On each:
//! `version` (relay off) and `verack`, then `inv` of the one transaction;
//! the peer must `getdata` exactly it; we send `tx` and `ping`, and the
//! `pong` is the receipt (the peer has processed the `tx` before it
//! answers a later message). Then we close, and a connection that does
//! not get that far within [`CARRIER_LIFETIME`] is closed anyway.
//!
//! The transaction is *seen* when another connection, one that never
//! carried it, announces it to us (`inv` of its wtxid or txid): it made it
//! from the receiving peers into the network. Until then, rounds repeat
//! with a growing pause ([`ROUND_RETRY_FIRST`] doubling up to
//! [`ROUND_RETRY_MAX`]), up to [`MAX_ATTEMPTS`] connections per
//! transaction; at most [`MAX_QUEUE`] transactions wait (Core 32's caps).
//!
//! Announcements are only wanted while something is pending. Our regular
//! peers are told with BIP133 `feefilter`: [`FEE_FILTER_CLOSED`] (no
//! transaction pays that much) while nothing is pending, as Core's
//! blocks-only mode does, and [`FEE_FILTER_OPEN`] (Core's default minimum
//! relay fee) while something is. We never ask for an announced
//! transaction (`getdata`), so nobody else's transaction is fetched or
//! relayed: announcements are only compared with our own ids.
//!
//! Timing: connections are opened one at a time, at exponentially
//! distributed gaps of mean [`MEAN_OPEN_GAP`] drawn from the engine's RNG,
//! each for a transaction picked at random among those that want one. Two
//! transactions submitted together are interleaved; one submitted alone
//! leaves after a random delay; nothing lines a transaction's connections
//! up with the moment it was submitted or with another transaction's.
//!
//! The address book is only read: a private-broadcast connection records
//! no attempt, success, service or gossip there (the connection manager
//! checks [`ConnectionKind::uses_address_book`]).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use bitcoin::{Transaction, Txid, Wtxid};
use rand::Rng;
use rand::rngs::StdRng;

use super::io::{Now, Output};
use super::peers::{PeerState, PeerTable};
use super::version::wants_announcements;
use crate::netaddr::{NetAddr, NetGroup, NetworkId};
use crate::peer::{ConnId, ConnectionKind, PeerInfo};
use crate::wire::{Inventory, NetworkMessage};

/// Connections per round (Core's `-privatebroadcast` uses 3 as well).
pub const DEFAULT_CONNECTIONS: usize = 3;

/// How long a private-broadcast connection may live, dial included (Core:
/// 3 minutes).
pub const CARRIER_LIFETIME: Duration = Duration::from_secs(3 * 60);

/// Transactions that may wait at once (Core 32).
pub const MAX_QUEUE: usize = 10_000;

/// Connections opened for one transaction before we give up on it (Core 32).
pub const MAX_ATTEMPTS: u32 = 1_000;

/// Mean gap between two private-broadcast connections, whatever they carry.
pub const MEAN_OPEN_GAP: Duration = Duration::from_secs(3);

/// The pause after a round whose transaction has not come back yet.
pub const ROUND_RETRY_FIRST: Duration = Duration::from_secs(5 * 60);

/// The longest pause between rounds.
pub const ROUND_RETRY_MAX: Duration = Duration::from_secs(60 * 60);

/// The pause after a connection that failed (no receipt), doubling with
/// each failure in a row.
pub const FAILURE_RETRY_FIRST: Duration = Duration::from_secs(10);

/// The longest pause after failures.
pub const FAILURE_RETRY_MAX: Duration = Duration::from_secs(10 * 60);

/// Seen transactions kept in memory for `getprivatebroadcastinfo`.
pub const SEEN_KEPT: usize = 100;

/// `feefilter` while nothing is pending: Core's `MAX_MONEY` in sat/kvB, the
/// value Core itself sends in blocks-only mode. No transaction pays it.
pub const FEE_FILTER_CLOSED: i64 = 2_100_000_000_000_000;

/// `feefilter` while something is pending: Core's default minimum relay
/// fee (100 sat/kvB). A transaction below it would not be relayed anyway.
pub const FEE_FILTER_OPEN: i64 = 100;

/// One receipt: a peer acknowledged the transaction. The peer's address
/// is not kept (Core shows it): the queue file and the RPC would otherwise
/// list exactly the peers that know where a transaction came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Receipt {
    /// The receiving peer's network.
    pub network: NetworkId,
    /// When its connection was opened (unix seconds).
    pub sent: u64,
    /// When it acknowledged (unix seconds).
    pub received: u64,
}

/// A transaction being broadcast.
#[derive(Debug, Clone)]
pub struct Pending {
    /// The transaction.
    pub tx: Transaction,
    /// Its txid.
    pub txid: Txid,
    /// Its wtxid.
    pub wtxid: Wtxid,
    /// When it was submitted (unix seconds).
    pub added_unix: u64,
    /// Connections opened for it so far, over every round and restart.
    pub attempts: u32,
    /// Receipts so far.
    pub receipts: Vec<Receipt>,
    /// Receipts in the current round.
    round_receipts: usize,
    /// Its connections still open.
    in_flight: usize,
    /// Connections in a row that ended without a receipt.
    failures: u32,
    /// Rounds completed.
    rounds: u32,
    /// No connection is opened for it before this.
    not_before: Option<Instant>,
    /// Peers that had it in this run (not persisted: after a restart any
    /// peer may be asked again).
    sent_to: BTreeSet<NetAddr>,
}

impl Pending {
    /// A transaction submitted at `added_unix`, with what earlier runs did.
    pub fn new(tx: Transaction, added_unix: u64, attempts: u32, receipts: Vec<Receipt>) -> Self {
        Pending {
            txid: tx.compute_txid(),
            wtxid: tx.compute_wtxid(),
            tx,
            added_unix,
            attempts,
            receipts,
            round_receipts: 0,
            in_flight: 0,
            failures: 0,
            rounds: 0,
            not_before: None,
            sent_to: BTreeSet::new(),
        }
    }

    /// Connections it may still use.
    pub fn attempts_remaining(&self) -> u32 {
        MAX_ATTEMPTS.saturating_sub(self.attempts)
    }

    /// When its next connection may open, if it is waiting (monotonic).
    pub fn next_attempt(&self) -> Option<Instant> {
        self.not_before
    }
}

/// A transaction that came back from the network.
#[derive(Debug, Clone)]
pub struct Seen {
    /// Its txid.
    pub txid: Txid,
    /// Its wtxid.
    pub wtxid: Wtxid,
    /// When it was submitted (unix seconds).
    pub added_unix: u64,
    /// Connections it took.
    pub attempts: u32,
    /// Its receipts.
    pub receipts: Vec<Receipt>,
    /// When it came back (unix seconds).
    pub seen_unix: u64,
}

/// Why a transaction was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    /// [`MAX_QUEUE`] transactions wait already.
    #[error("the private broadcast queue is full ({MAX_QUEUE} transactions)")]
    QueueFull,
}

/// Where one private-broadcast connection stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Dialling, or in the version handshake.
    Connecting,
    /// `inv` sent; waiting for `getdata`.
    Offered,
    /// `tx` and `ping` sent; waiting for `pong`.
    Sent {
        /// The ping's nonce.
        nonce: u64,
    },
    /// Receipt in; closing.
    Done,
}

/// A connection carrying one transaction.
#[derive(Debug, Clone)]
struct Carrier {
    txid: Txid,
    addr: NetAddr,
    stage: Stage,
    deadline: Instant,
    opened_unix: u64,
}

/// A connection to open: for which transaction, and which peers to avoid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opening {
    /// The transaction.
    pub txid: Txid,
    /// Network groups already carrying it in this round.
    pub avoid_groups: Vec<NetGroup>,
    /// Peers that had it before.
    pub avoid: Vec<NetAddr>,
}

/// What a private-broadcast call may touch.
#[derive(Debug)]
pub struct BroadcastCtx<'a> {
    /// The connections (read-only: the connection manager owns them).
    pub peers: &'a PeerTable,
    /// The seeded RNG.
    pub rng: &'a mut StdRng,
    /// Where outputs go.
    pub out: &'a mut VecDeque<Output>,
}

/// The private-broadcast queue and its connections.
#[derive(Debug)]
pub struct PrivateBroadcast {
    connections: usize,
    queue: BTreeMap<Txid, Pending>,
    carriers: BTreeMap<ConnId, Carrier>,
    next_open: Option<Instant>,
    /// The `feefilter` our announcing peers were last sent.
    filter: i64,
    seen: VecDeque<Seen>,
}

impl PrivateBroadcast {
    /// An empty queue sending each transaction over `connections`
    /// connections per round.
    pub fn new(connections: usize) -> Self {
        PrivateBroadcast {
            connections: connections.max(1),
            queue: BTreeMap::new(),
            carriers: BTreeMap::new(),
            next_open: None,
            filter: FEE_FILTER_CLOSED,
            seen: VecDeque::new(),
        }
    }

    /// Resume these transactions (from disk). Nothing is sent before the
    /// first opening slot, drawn as for a new submission.
    pub fn resume(&mut self, pending: Vec<Pending>) {
        for p in pending.into_iter().take(MAX_QUEUE) {
            self.queue.insert(p.txid, p);
        }
    }

    /// The pending transactions, by txid.
    pub fn pending(&self) -> impl Iterator<Item = &Pending> {
        self.queue.values()
    }

    /// Recently seen transactions, oldest first.
    pub fn seen(&self) -> impl Iterator<Item = &Seen> {
        self.seen.iter()
    }

    /// Whether `conn` is one of ours.
    pub fn is_carrier(&self, conn: ConnId) -> bool {
        self.carriers.contains_key(&conn)
    }

    /// Queue `tx` (already checked). Submitting a pending transaction again
    /// is not an error, as Core answers a transaction already in its
    /// mempool with its txid.
    pub fn submit(
        &mut self,
        cx: &mut BroadcastCtx<'_>,
        now: Now,
        tx: Transaction,
    ) -> Result<Txid, SubmitError> {
        let txid = tx.compute_txid();
        if self.queue.contains_key(&txid) {
            return Ok(txid);
        }
        if self.queue.len() >= MAX_QUEUE {
            return Err(SubmitError::QueueFull);
        }
        self.queue
            .insert(txid, Pending::new(tx, now.unix, 0, Vec::new()));
        tracing::info!(%txid, "private broadcast: transaction queued");
        self.persist(cx);
        self.sync_fee_filter(cx);
        Ok(txid)
    }

    /// Stop broadcasting `txid`; its open connections close. Whether it
    /// was pending.
    pub fn abort(&mut self, cx: &mut BroadcastCtx<'_>, txid: Txid) -> bool {
        if self.queue.remove(&txid).is_none() {
            return false;
        }
        tracing::info!(%txid, "private broadcast: aborted");
        self.close_carriers_of(cx, txid, "private broadcast aborted");
        self.persist(cx);
        self.sync_fee_filter(cx);
        true
    }

    /// The next connection to open, if one is due at `now` and a
    /// transaction wants one. The caller opens it ([`Self::opened`]) or
    /// reports that no peer fits ([`Self::no_peer`]).
    pub fn next_opening(&mut self, rng: &mut StdRng, now: Now) -> Option<Opening> {
        let wanting: Vec<Txid> = self
            .queue
            .values()
            .filter(|p| self.wants_connection(p, now.mono))
            .map(|p| p.txid)
            .collect();
        if wanting.is_empty() {
            // The next slot is drawn afresh when something wants one, so a
            // submission does not inherit a slot that is already due.
            self.next_open = None;
            return None;
        }
        match self.next_open {
            None => {
                self.next_open = Some(now.mono + open_gap(rng));
                return None;
            }
            Some(due) if now.mono < due => return None,
            Some(_) => {}
        }
        self.next_open = Some(now.mono + open_gap(rng));
        let txid = wanting[rng.random_range(0..wanting.len())];
        let avoid_groups = self
            .carriers
            .values()
            .filter(|c| c.txid == txid)
            .map(|c| c.addr.netgroup())
            .collect();
        let avoid = self
            .queue
            .get(&txid)
            .map(|p| p.sent_to.iter().copied().collect())
            .unwrap_or_default();
        Some(Opening {
            txid,
            avoid_groups,
            avoid,
        })
    }

    fn wants_connection(&self, p: &Pending, now: Instant) -> bool {
        p.not_before.is_none_or(|t| now >= t)
            && p.attempts < MAX_ATTEMPTS
            && p.in_flight + p.round_receipts < self.connections
    }

    /// `conn` was opened to `addr` for `opening`.
    pub fn opened(&mut self, now: Now, opening: &Opening, conn: ConnId, addr: NetAddr) {
        let Some(p) = self.queue.get_mut(&opening.txid) else {
            return;
        };
        p.attempts += 1;
        p.in_flight += 1;
        p.sent_to.insert(addr);
        self.carriers.insert(
            conn,
            Carrier {
                txid: opening.txid,
                addr,
                stage: Stage::Connecting,
                deadline: now.mono + CARRIER_LIFETIME,
                opened_unix: now.unix,
            },
        );
    }

    /// No peer fits `opening`: the address book has too few suitable
    /// peers. A round that already has a receipt ends with fewer
    /// connections (a transaction held back helps nobody, and every
    /// receipt is from a separate peer on a separate circuit); one with
    /// none waits and tries again, as the book may grow meanwhile.
    pub fn no_peer(&mut self, now: Now, opening: &Opening) {
        let Some(p) = self.queue.get_mut(&opening.txid) else {
            return;
        };
        if p.round_receipts > 0 {
            if p.in_flight == 0 {
                end_round(p, now.mono);
            } else {
                // Let the open ones finish first; the round then ends.
                p.not_before = Some(now.mono + FAILURE_RETRY_FIRST);
            }
        } else {
            fail(p, now.mono);
        }
        tracing::debug!(txid = %opening.txid, "private broadcast: no suitable peer for now");
    }

    /// A connection completed its handshake: if it is one of ours, offer
    /// its transaction.
    pub fn handshake_complete(&mut self, cx: &mut BroadcastCtx<'_>, conn: ConnId, info: &PeerInfo) {
        let Some(carrier) = self.carriers.get_mut(&conn) else {
            return;
        };
        let Some(p) = self.queue.get(&carrier.txid) else {
            // Seen or aborted while this connection was being made.
            cx.out.push_back(Output::Disconnect {
                conn,
                reason: "private broadcast: no longer needed".into(),
            });
            return;
        };
        if !info.relay {
            // It would not take a transaction (as Core, we leave).
            cx.out.push_back(Output::Disconnect {
                conn,
                reason: "private broadcast: the peer does not relay transactions".into(),
            });
            return;
        }
        // By txid, as Core's private broadcast does: we sent no
        // `wtxidrelay`, so that is what the peer expects.
        carrier.stage = Stage::Offered;
        cx.out.push_back(Output::Send {
            conn,
            msg: NetworkMessage::Inv(vec![Inventory::Transaction(p.txid)]),
        });
    }

    /// A message from a connected peer. On our connections: `getdata`
    /// and `pong` move the exchange on. On every other connection: an
    /// announcement of a pending transaction means it is seen.
    pub fn on_message(
        &mut self,
        cx: &mut BroadcastCtx<'_>,
        now: Now,
        conn: ConnId,
        msg: &NetworkMessage,
    ) {
        if let Some(carrier) = self.carriers.get_mut(&conn) {
            let Some(p) = self.queue.get_mut(&carrier.txid) else {
                return;
            };
            match (carrier.stage, msg) {
                (Stage::Offered, NetworkMessage::GetData(items))
                    if items.iter().any(|i| names(i, p)) =>
                {
                    let nonce = cx.rng.random::<u64>().max(1);
                    carrier.stage = Stage::Sent { nonce };
                    cx.out.push_back(Output::Send {
                        conn,
                        msg: NetworkMessage::Tx(p.tx.clone()),
                    });
                    cx.out.push_back(Output::Send {
                        conn,
                        msg: NetworkMessage::Ping(nonce),
                    });
                }
                (Stage::Sent { nonce }, NetworkMessage::Pong(n)) if *n == nonce => {
                    carrier.stage = Stage::Done;
                    let receipt = Receipt {
                        network: carrier.addr.network(),
                        sent: carrier.opened_unix,
                        received: now.unix,
                    };
                    p.receipts.push(receipt);
                    p.round_receipts += 1;
                    p.failures = 0;
                    // The txid goes next to the network, never the address.
                    tracing::info!(txid = %p.txid, network = %receipt.network, "private broadcast: receipt");
                    cx.out.push_back(Output::Disconnect {
                        conn,
                        reason: "private broadcast done".into(),
                    });
                    self.persist(cx);
                }
                // Anything else on our connection (their pings are the
                // peer machine's) changes nothing; the lifetime cap ends
                // a peer that never asks.
                _ => {}
            }
            return;
        }
        let NetworkMessage::Inv(items) = msg else {
            return;
        };
        if cx
            .peers
            .get(conn)
            .is_none_or(|e| e.kind == ConnectionKind::PrivateBroadcast)
        {
            return;
        }
        let echoed: Vec<Txid> = self
            .queue
            .values()
            .filter(|p| items.iter().any(|i| names(i, p)))
            .map(|p| p.txid)
            .collect();
        for txid in echoed {
            self.mark_seen(cx, now, txid);
        }
    }

    fn mark_seen(&mut self, cx: &mut BroadcastCtx<'_>, now: Now, txid: Txid) {
        let Some(p) = self.queue.remove(&txid) else {
            return;
        };
        tracing::info!(%txid, attempts = p.attempts, receipts = p.receipts.len(), "private broadcast: transaction seen on the network");
        self.close_carriers_of(cx, txid, "private broadcast: transaction seen");
        if self.seen.len() >= SEEN_KEPT {
            self.seen.pop_front();
        }
        self.seen.push_back(Seen {
            txid,
            wtxid: p.wtxid,
            added_unix: p.added_unix,
            attempts: p.attempts,
            receipts: p.receipts,
            seen_unix: now.unix,
        });
        self.persist(cx);
        self.sync_fee_filter(cx);
    }

    /// A connection ended (closed, or its dial failed). Ours are settled:
    /// a receipt counts toward the round, anything else is a failure.
    pub fn connection_ended(&mut self, now: Now, conn: ConnId) {
        let Some(carrier) = self.carriers.remove(&conn) else {
            return;
        };
        let Some(p) = self.queue.get_mut(&carrier.txid) else {
            return;
        };
        p.in_flight = p.in_flight.saturating_sub(1);
        if carrier.stage != Stage::Done {
            fail(p, now.mono);
        }
        if p.round_receipts >= self.connections && p.in_flight == 0 {
            end_round(p, now.mono);
        }
        if p.attempts >= MAX_ATTEMPTS && p.in_flight == 0 {
            tracing::warn!(txid = %p.txid, "private broadcast: giving up after {MAX_ATTEMPTS} connections; submit it again to retry");
            let txid = p.txid;
            self.queue.remove(&txid);
        }
    }

    /// A peer completed its handshake: tell it the current `feefilter`
    /// if it is one that may announce our transactions back.
    pub fn peer_ready(&self, cx: &mut BroadcastCtx<'_>, conn: ConnId, kind: ConnectionKind) {
        if wants_announcements(kind) {
            cx.out.push_back(Output::Send {
                conn,
                msg: NetworkMessage::FeeFilter(self.filter),
            });
        }
    }

    /// Close connections past their lifetime; settle connections the
    /// connection manager has dropped (a dial given up, say).
    pub fn expire(&mut self, cx: &mut BroadcastCtx<'_>, now: Now) {
        let mut overdue = Vec::new();
        let mut gone = Vec::new();
        for (conn, c) in &self.carriers {
            if cx.peers.get(*conn).is_none() {
                gone.push(*conn);
            } else if now.mono >= c.deadline {
                overdue.push(*conn);
            }
        }
        for conn in gone {
            self.connection_ended(now, conn);
        }
        for conn in overdue {
            if let Some(c) = self.carriers.get_mut(&conn) {
                // Pushed once: the deadline moves out of the way until the
                // connection's end is reported.
                c.deadline = now.mono + CARRIER_LIFETIME;
            }
            cx.out.push_back(Output::Disconnect {
                conn,
                reason: "private broadcast: lifetime over".into(),
            });
        }
    }

    /// The earliest timer: the next opening slot (while a transaction
    /// wants a connection), a pause ending, a connection's lifetime.
    pub fn next_deadline(&self, now: Instant) -> Option<Instant> {
        let any_wanting = self.queue.values().any(|p| self.wants_connection(p, now));
        // Pauses already over are no timers: the next opening slot covers
        // the transactions they held back.
        self.carriers
            .values()
            .map(|c| c.deadline)
            .chain(
                self.queue
                    .values()
                    .filter_map(|p| p.not_before)
                    .filter(|t| *t > now),
            )
            .chain(if any_wanting { self.next_open } else { None })
            .min()
    }

    fn close_carriers_of(&mut self, cx: &mut BroadcastCtx<'_>, txid: Txid, reason: &str) {
        for (conn, c) in &self.carriers {
            // One still dialling is left to connect and is closed at its
            // handshake (an abandoned dial would leave the connection
            // manager waiting for it); one already dropped needs nothing.
            let open = cx
                .peers
                .get(*conn)
                .is_some_and(|e| !matches!(e.state, PeerState::Dialing { .. }));
            if c.txid == txid && open {
                cx.out.push_back(Output::Disconnect {
                    conn: *conn,
                    reason: reason.into(),
                });
            }
        }
    }

    /// Open or close the announcement tap, telling every peer that may
    /// announce (see the module documentation).
    fn sync_fee_filter(&mut self, cx: &mut BroadcastCtx<'_>) {
        let wanted = if self.queue.is_empty() {
            FEE_FILTER_CLOSED
        } else {
            FEE_FILTER_OPEN
        };
        if wanted == self.filter {
            return;
        }
        self.filter = wanted;
        for e in cx
            .peers
            .iter()
            .filter(|e| e.is_ready() && wants_announcements(e.kind))
        {
            cx.out.push_back(Output::Send {
                conn: e.conn,
                msg: NetworkMessage::FeeFilter(wanted),
            });
        }
    }

    /// The `feefilter` currently sent to announcing peers.
    pub fn fee_filter(&self) -> i64 {
        self.filter
    }

    fn persist(&self, cx: &mut BroadcastCtx<'_>) {
        cx.out
            .push_back(Output::PersistBroadcasts(super::broadcast_store::to_bytes(
                self.queue.values(),
            )));
    }
}

/// Whether an inventory item (a `getdata` request or an `inv`
/// announcement) names `p`.
fn names(item: &Inventory, p: &Pending) -> bool {
    match item {
        Inventory::WTx(w) => *w == p.wtxid,
        Inventory::Transaction(t) | Inventory::WitnessTransaction(t) => *t == p.txid,
        _ => false,
    }
}

/// A round is over: pause, then start the next one.
fn end_round(p: &mut Pending, now: Instant) {
    p.rounds = p.rounds.saturating_add(1);
    p.round_receipts = 0;
    p.not_before = Some(now + backoff(ROUND_RETRY_FIRST, ROUND_RETRY_MAX, p.rounds - 1));
}

/// A connection brought no receipt: pause longer each time in a row.
fn fail(p: &mut Pending, now: Instant) {
    p.failures = p.failures.saturating_add(1);
    p.not_before = Some(now + backoff(FAILURE_RETRY_FIRST, FAILURE_RETRY_MAX, p.failures - 1));
}

/// `first` doubled `n` times, at most `max`.
fn backoff(first: Duration, max: Duration, n: u32) -> Duration {
    first.saturating_mul(1u32 << n.min(16)).min(max)
}

/// An exponentially distributed gap of mean [`MEAN_OPEN_GAP`], capped at
/// ten means.
fn open_gap(rng: &mut StdRng) -> Duration {
    let mean = MEAN_OPEN_GAP.as_secs_f64();
    let u: f64 = rng.random_range(f64::EPSILON..1.0);
    Duration::from_secs_f64((-u.ln() * mean).min(10.0 * mean))
}
