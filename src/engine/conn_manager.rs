//! The connection manager: the seeds' `maybe_open_connection`,
//! `create_connection` and `open_connection`, made Tor-first, plus what
//! happens to a connection afterwards (dial result, handshake, gossip, end).
//!
//! It owns only policy state (manual peers, seeding, the feeler timer,
//! recent dials, discouraged addresses); the address book, the peer table,
//! the isolation policy, the RNG and the output queue are borrowed for each
//! call through [`Ctx`], so every method shows what it may touch.

use std::collections::{BTreeMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use nightjar_tor::{CircuitLabel, Target};
use rand::Rng;
use rand::rngs::StdRng;
use safelog::sensitive;

use super::banlist::{BanError, BanList};
use super::config::{EngineConfig, regular_services};
use super::eviction::{Candidate, select_victim};
use super::inbound::{self, INBOUND_HANDSHAKE_TIMEOUT, Refusal};
use super::io::{AcceptRequest, DialFailure, DialRequest, InboundFrom, Now, Output};
use super::isolation::IsolationPolicy;
use super::manual::ManualPeers;
use super::peers::{PeerEntry, PeerState, PeerTable};
use super::redial::RedialPauses;
use super::seeding::{SeedAction, Seeding, dns_seeds};
use super::targets::{addr_to_target, target_to_addr};
use super::version::our_version;
use crate::addrman::{AddrMan, AddrRecord, AddrSource, InternalSource, Want};
use crate::netaddr::{NetAddr, NetGroup};
use crate::peer::limits::MAX_ADDRS_PER_MESSAGE;
use crate::peer::{ConnId, ConnectionKind, PeerConfig, PeerEvent, PeerReport, PeerUpdate};
use crate::transport::{TransportKind, V1Fallback};
use crate::wire::NetworkMessage;

/// Regular dials in flight at once: the seeds' connection batch. Small, so
/// a burst of dials does not hand one Tor guard a neat list of our peers,
/// big enough to fill eight slots within a few rounds.
pub const DIAL_BATCH: usize = 4;

/// How long a dial (Tor stream plus BIP324 handshake) may take before the
/// engine gives up on it: an onion rendezvous may take the full 60 s
/// `ONION_CONNECT_TIMEOUT`, the transport handshake over a slow circuit
/// another 30 s.
pub const DIAL_TIMEOUT: Duration = Duration::from_secs(120);

/// A feeler waits this long after its handshake for the address reply.
pub const FEELER_ADDR_WAIT: Duration = Duration::from_secs(30);

/// Automatic dials (regular, feeler, extra) are at least this far apart,
/// as Core's connection thread paces them: a flood of gossip cannot turn
/// into a burst of circuits (issue 16, D3). Manual peers and private
/// broadcasts have their own schedules.
pub const DIAL_PACING: Duration = Duration::from_millis(500);

/// How long a peer that misbehaved past the limit stays discouraged.
pub const DISCOURAGE_FOR: Duration = Duration::from_secs(24 * 60 * 60);

/// Discouraged addresses remembered at most (oldest forgotten first).
pub const MAX_DISCOURAGED: usize = 10_000;

/// How long a `getaddr` answer is reused at least (Core: 21 hours, plus
/// up to [`GETADDR_CACHE_SPREAD`] at random).
pub const GETADDR_CACHE_LIFETIME: Duration = Duration::from_secs(21 * 60 * 60);

/// The random part of a `getaddr` answer's lifetime (Core: up to 6 hours).
pub const GETADDR_CACHE_SPREAD: Duration = Duration::from_secs(6 * 60 * 60);

/// Mean interval between announcements of our own onion address to our
/// outbound peers (Core's `AVG_LOCAL_ADDRESS_BROADCAST_INTERVAL`).
pub const SELF_ANNOUNCE_INTERVAL: Duration = Duration::from_secs(24 * 60 * 60);

/// Address-book picks tried per connection before giving up for this round.
pub const SELECT_TRIES: usize = 16;

/// Share (percent) of picks that look at onion addresses first when onion
/// is reachable: onion peers cost an observer more to watch and never use an
/// exit, so we lean on them, but not only, so a Sybil of cheap onion names
/// cannot take every slot.
pub const ONION_PREFERENCE_PERCENT: u8 = 70;

/// The parts of the engine a connection-manager call may use.
#[derive(Debug)]
pub struct Ctx<'a> {
    /// The configuration.
    pub config: &'a EngineConfig,
    /// The address book.
    pub addrman: &'a mut AddrMan,
    /// The connections.
    pub peers: &'a mut PeerTable,
    /// The isolation policy.
    pub isolation: &'a mut IsolationPolicy,
    /// The seeded RNG.
    pub rng: &'a mut StdRng,
    /// Where outputs go.
    pub out: &'a mut VecDeque<Output>,
}

/// Why no connection was opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoDial {
    /// The address book had nothing suitable.
    NoAddress,
    /// The last automatic dial was too recent ([`DIAL_PACING`]).
    Paced,
}

/// Filter-serving peers among the regular connections when filters are
/// wanted: two, so that filter headers can be cross-checked (BIP157).
pub const MIN_FILTER_PEERS: usize = 2;

/// What a regular peer chosen for filters must offer.
fn filter_services() -> crate::wire::ServiceFlags {
    regular_services() | crate::wire::ServiceFlags::COMPACT_FILTERS
}

/// Why a user command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// The policy forbids the peer (e.g. clearnet under `--privacy`).
    #[error("refused: {0}")]
    Refused(&'static str),
    /// `addnode add` for a peer already added.
    #[error("node already added")]
    AlreadyAdded,
    /// `addnode remove` for a peer never added.
    #[error("node has not been added")]
    NotAdded,
    /// `onetry` for a peer we are already connected to.
    #[error("already connected to this peer")]
    AlreadyConnected,
    /// `disconnectnode` for a connection we do not have.
    #[error("no such connection")]
    NotConnected,
    /// `setban add` for a subnet already banned.
    #[error("IP/subnet already banned")]
    AlreadyBanned,
    /// `setban remove` for a subnet not banned.
    #[error("IP/subnet was not banned")]
    NotBanned,
    /// Private broadcast without Tor.
    #[error("private broadcast needs Tor, which is turned off")]
    NeedsTor,
    /// The private-broadcast queue is full.
    #[error("the private broadcast queue is full")]
    QueueFull,
    /// `abortprivatebroadcast` for a transaction not pending.
    #[error("transaction not in the private broadcast queue")]
    NotQueued,
    /// A scan or fetch cannot start.
    #[error("{0}")]
    Fetch(#[from] super::block_fetch::FetchError),
}

impl From<BanError> for CommandError {
    fn from(e: BanError) -> Self {
        match e {
            BanError::AlreadyBanned => CommandError::AlreadyBanned,
            BanError::NotBanned => CommandError::NotBanned,
        }
    }
}

/// The connection manager's own state.
#[derive(Debug)]
pub struct ConnManager {
    manual: ManualPeers,
    /// Only the `--connect` peer(s): no automatic connections at all.
    only_manual: bool,
    seeding: Seeding,
    next_conn: u64,
    next_feeler: Option<Instant>,
    /// When each recently dialled address may be dialled again.
    pauses: RedialPauses,
    /// No automatic dial before this.
    next_dial: Option<Instant>,
    discouraged: BTreeMap<NetAddr, Instant>,
    /// The user's bans.
    bans: BanList,
    /// Our `getaddr` answer, per way in (onion or not), until it expires.
    getaddr_cache: BTreeMap<bool, (Vec<AddrRecord>, Instant)>,
    /// Our own onion service, announced to outbound peers.
    local_onion: Option<NetAddr>,
    /// When to announce it to every outbound peer again.
    next_self_announce: Option<Instant>,
}

impl ConnManager {
    /// Policy state for `config`; user-named peers that the policy refuses
    /// (a clearnet peer under `--privacy`) are dropped here, with a warning.
    pub fn new(config: &EngineConfig) -> Self {
        let named = config
            .connect
            .iter()
            .map(|t| ("connect", t))
            .chain(config.addnodes.iter().map(|t| ("addnode", t)));
        let mut keep = Vec::new();
        for (option, target) in named {
            match config.refuses(target) {
                Some(why) => tracing::warn!("{option} {} ignored: {why}", sensitive(target)),
                None => keep.push(target.clone()),
            }
        }
        ConnManager {
            manual: ManualPeers::new(keep),
            only_manual: !config.connect.is_empty(),
            seeding: Seeding::new(),
            next_conn: 1,
            next_feeler: None,
            pauses: RedialPauses::new(),
            next_dial: None,
            discouraged: BTreeMap::new(),
            bans: BanList::new(),
            getaddr_cache: BTreeMap::new(),
            local_onion: None,
            next_self_announce: None,
        }
    }

    // === OPENING CONNECTIONS ===

    /// The seeds' `maybe_open_connection`: run after every input while Tor
    /// is ready.
    pub fn maybe_open_connections(&mut self, cx: &mut Ctx<'_>, now: Now) {
        for index in self.manual.due(now.mono) {
            self.open_manual(cx, now, index);
        }
        if self.only_manual {
            return;
        }
        self.maybe_seed(cx, now);
        while cx.peers.regular_count() < cx.config.target_outbound
            && cx.peers.regular_dialing() < DIAL_BATCH
        {
            // With filters wanted, regular slots go to filter peers until
            // enough of them are connected or on their way; when the book
            // knows none, any full node will do (the feeler finds more).
            if cx.config.block_filters
                && cx.peers.filter_peer_count() < MIN_FILTER_PEERS
                && self
                    .create_connection(cx, now, ConnectionKind::Regular(filter_services()))
                    .is_ok()
            {
                continue;
            }
            let kind = ConnectionKind::Regular(regular_services());
            if self.create_connection(cx, now, kind).is_err() {
                break;
            }
        }
        self.maybe_feeler(cx, now);
    }

    fn open_manual(&mut self, cx: &mut Ctx<'_>, now: Now, index: usize) {
        let Some(peer) = self.manual.get(index) else {
            return;
        };
        let (target, addr) = (peer.target.clone(), peer.addr);
        if cx.peers.has_target(&target, addr.as_ref()) {
            // Already connected some other way (say, as a regular peer).
            return;
        }
        if banned(&self.bans, &target, now.unix) {
            // The user banned it after adding it: the ban wins.
            return;
        }
        let conn = self.open_connection(cx, now, ConnectionKind::Manual, target, addr);
        self.manual.dialled(index, conn);
    }

    /// Add addresses when the book runs dry: DNS seeds through Tor, or the
    /// fixed seeds.
    fn maybe_seed(&mut self, cx: &mut Ctx<'_>, now: Now) {
        let reachable = cx.config.reachable_networks();
        if !cx.addrman.is_starved(reachable) {
            return;
        }
        let seeds = dns_seeds(cx.config.network);
        let dns_allowed = cx.config.may_use_dns_seeds() && !seeds.is_empty();
        match self.seeding.next(now.mono, dns_allowed) {
            SeedAction::Wait => {}
            SeedAction::AskDns => {
                tracing::info!(
                    "few known peers: asking {} DNS seeds through Tor",
                    seeds.len()
                );
                for seed in seeds {
                    // Each lookup on its own circuit: one exit should not
                    // see us ask every seed.
                    cx.out.push_back(Output::ResolveSeed {
                        host: (*seed).to_owned(),
                        group: cx.isolation.fresh(),
                    });
                }
            }
            SeedAction::AddFixed if cx.config.fixed_seeds => {
                let added = cx.addrman.add_fixed_seeds(reachable, now.unix, cx.rng);
                if added > 0 {
                    tracing::info!(added, "few known peers: added the fixed seeds");
                }
            }
            // `fixedseeds = false`: the user supplies peers.
            SeedAction::AddFixed => {}
        }
    }

    /// Feelers test addresses nobody confirmed yet, on a randomized timer,
    /// once the regular slots are full (before that, regular dials test
    /// addresses anyway).
    fn maybe_feeler(&mut self, cx: &mut Ctx<'_>, now: Now) {
        let Some(due) = self.next_feeler else {
            self.schedule_feeler(cx, now);
            return;
        };
        if now.mono < due || self.next_dial.is_some_and(|t| now.mono < t) {
            // A feeler held back by the pacing goes on the next round.
            return;
        }
        self.schedule_feeler(cx, now);
        let full = cx.peers.regular_count() >= cx.config.target_outbound;
        let busy = cx.peers.count(|k| k == ConnectionKind::Feeler) > 0;
        if full && !busy {
            cx.addrman.resolve_collisions(now.unix);
            let _ = self.create_connection(cx, now, ConnectionKind::Feeler);
        }
    }

    fn schedule_feeler(&mut self, cx: &mut Ctx<'_>, now: Now) {
        // Exponential gaps (a Poisson process, as Core does), capped at
        // ten means so one unlucky draw does not stop feelers for hours.
        let mean = cx.config.feeler_interval.as_secs_f64().max(0.001);
        let u: f64 = cx.rng.random_range(f64::EPSILON..1.0);
        let gap = (-u.ln() * mean).min(10.0 * mean);
        self.next_feeler = Some(now.mono + Duration::from_secs_f64(gap));
    }

    /// The stale-tip defence: one `Extra` connection, from a netgroup we
    /// have no peer in.
    pub fn open_extra(&mut self, cx: &mut Ctx<'_>, now: Now) -> Option<ConnId> {
        if self.only_manual {
            return None;
        }
        self.create_connection(cx, now, ConnectionKind::Extra).ok()
    }

    /// A peer for one private-broadcast connection: an address from the
    /// book on a network we reach (onion first), not connected in any
    /// way, not banned or discouraged, outside `avoid_groups` (the groups
    /// already carrying this transaction) and not in `avoid` (peers that
    /// had it in earlier rounds). The book is only read.
    pub fn private_broadcast_target(
        &self,
        cx: &mut Ctx<'_>,
        now: Now,
        avoid_groups: &[NetGroup],
        avoid: &[NetAddr],
    ) -> Option<(Target, NetAddr)> {
        let want = Want::new(cx.config.reachable_networks())
            .prefer_onion(100)
            .exclude(avoid_groups.iter().cloned());
        for _ in 0..SELECT_TRIES {
            let addr = cx.addrman.select(&want, now.unix, cx.rng)?.addr;
            let Some(target) = addr_to_target(&addr) else {
                continue;
            };
            if cx.peers.has_target(&target, Some(&addr))
                || avoid.contains(&addr)
                || avoid_groups.contains(&addr.netgroup())
                || self.is_discouraged(&addr)
                || banned(&self.bans, &target, now.unix)
                || !cx.config.reachable_networks().contains(addr.network())
            {
                continue;
            }
            return Some((target, addr));
        }
        None
    }

    /// Open a private-broadcast connection to `target` (see
    /// [`super::private_broadcast`]): its own circuit, v2 only, and no
    /// trace in the address book or the redial pauses.
    pub fn open_private_broadcast(
        &mut self,
        cx: &mut Ctx<'_>,
        now: Now,
        target: Target,
        addr: NetAddr,
    ) -> ConnId {
        self.open_connection(
            cx,
            now,
            ConnectionKind::PrivateBroadcast,
            target,
            Some(addr),
        )
    }

    /// The seeds' `create_connection`: pick an address for `kind` that is
    /// not connected, not just tried and not discouraged, then open it.
    fn create_connection(
        &mut self,
        cx: &mut Ctx<'_>,
        now: Now,
        kind: ConnectionKind,
    ) -> Result<ConnId, NoDial> {
        if self.next_dial.is_some_and(|t| now.mono < t) {
            return Err(NoDial::Paced);
        }
        let mut want = Want::new(cx.config.reachable_networks())
            .prefer_onion(ONION_PREFERENCE_PERCENT)
            .require(kind.required_services());
        if matches!(kind, ConnectionKind::Regular(_) | ConnectionKind::Extra) {
            want = want.exclude(cx.peers.outbound_netgroups());
        }
        for _ in 0..SELECT_TRIES {
            let picked = if kind == ConnectionKind::Feeler {
                cx.addrman
                    .select_tried_collision(cx.rng)
                    .or_else(|| cx.addrman.select_feeler(&want, now.unix, cx.rng))
            } else {
                cx.addrman.select(&want, now.unix, cx.rng)
            };
            let Some(picked) = picked else {
                return Err(NoDial::NoAddress);
            };
            let addr = picked.addr;
            let Some(target) = addr_to_target(&addr) else {
                continue;
            };
            if cx.peers.has_target(&target, Some(&addr))
                || self.pauses.is_paused(&addr, now.mono)
                || self.is_discouraged(&addr)
                || banned(&self.bans, &target, now.unix)
                || !cx.config.reachable_networks().contains(addr.network())
            {
                continue;
            }
            self.next_dial = Some(now.mono + DIAL_PACING);
            return Ok(self.open_connection(cx, now, kind, target, Some(addr)));
        }
        Err(NoDial::NoAddress)
    }

    /// The seeds' `open_connection`: allocate the id, fix isolation and
    /// transport policy, record the attempt, emit the dial.
    fn open_connection(
        &mut self,
        cx: &mut Ctx<'_>,
        now: Now,
        kind: ConnectionKind,
        target: Target,
        addr: Option<NetAddr>,
    ) -> ConnId {
        let conn = ConnId(self.next_conn);
        self.next_conn += 1;
        let (isolation, retired) = cx.isolation.assign(kind, now.mono);
        if let Some(old) = retired.filter(|g| !cx.peers.uses_group(*g)) {
            cx.out.push_back(Output::ReleaseGroup(old));
        }
        // v1 only where policy allows it, and never under --privacy: a v1
        // session is readable by every relay operator on the path... and by
        // the exit for clearnet peers.
        // A private broadcast never speaks v1, whatever the options: its
        // transaction would cross the circuit readable by every relay.
        let v1 = if !cx.config.privacy
            && kind != ConnectionKind::PrivateBroadcast
            && (kind == ConnectionKind::Manual || cx.config.v1_fallback)
        {
            V1Fallback::Allowed
        } else {
            V1Fallback::Forbidden
        };
        let nonce = fresh_nonce(cx, conn);
        let peer = PeerConfig {
            kind,
            our_version: our_version(kind, &target, nonce, now.unix, &cx.config.user_agent),
            ping_seed: cx.rng.random(),
        };
        if let Some(a) = addr.filter(|_| kind.uses_address_book()) {
            self.pauses.dialled(a, now.mono);
        }
        tracing::debug!(%conn, kind = %kind.label(), target = %sensitive(&target), %isolation, "dialling");
        cx.peers.insert(PeerEntry::opening(
            conn,
            kind,
            target.clone(),
            addr,
            Some(isolation),
            v1,
            nonce,
            (now.mono, now.unix),
            now.mono + DIAL_TIMEOUT,
        ));
        cx.out.push_back(Output::Dial(DialRequest {
            conn,
            target,
            kind,
            isolation,
            v1,
            peer,
        }));
        conn
    }

    /// A stream arrived at one of our listeners: take it on as an inbound
    /// connection, or refuse it (see [`super::inbound`]).
    pub fn accept(&mut self, cx: &mut Ctx<'_>, now: Now, link: u64, from: InboundFrom) {
        // An onion peer is anonymous: no address to ban, discourage or
        // group; only the slots (and eviction) apply.
        let (target, group, banned, discouraged) = match from {
            InboundFrom::Tcp(remote) => {
                let addr = NetAddr::from(remote);
                (
                    Target::Ip(remote),
                    Some(addr.netgroup()),
                    self.bans.is_banned(remote.ip(), now.unix),
                    self.is_discouraged(&addr),
                )
            }
            InboundFrom::Onion(service) => (service, None, false, false),
        };
        let verdict = match inbound::judge(cx.config, cx.peers, group, discouraged) {
            _ if banned => Err(Refusal::Banned),
            Err(Refusal::Full) => self.evict_one(cx),
            other => other,
        };
        if let Err(refusal) = verdict {
            tracing::debug!(peer = %sensitive(&target), reason = refusal.reason(), "inbound refused");
            cx.out.push_back(Output::Refuse {
                link,
                reason: refusal.reason(),
            });
            return;
        }
        let conn = ConnId(self.next_conn);
        self.next_conn += 1;
        let nonce = fresh_nonce(cx, conn);
        let peer = PeerConfig {
            kind: ConnectionKind::Inbound,
            // Their address as we saw it (none for onion), ours nowhere
            // (see `our_version`).
            our_version: our_version(
                ConnectionKind::Inbound,
                &target,
                nonce,
                now.unix,
                &cx.config.user_agent,
            ),
            ping_seed: cx.rng.random(),
        };
        let allow_v1 = cx.config.inbound_v1_allowed();
        let v1 = if allow_v1 {
            V1Fallback::Allowed
        } else {
            V1Fallback::Forbidden
        };
        // Inbound peers stay out of the address book (`addr: None`):
        // whoever connects does not get to choose whom we dial. No
        // isolation group: the connection came in on no circuit of ours.
        cx.peers.insert(PeerEntry::opening(
            conn,
            ConnectionKind::Inbound,
            target,
            None,
            None,
            v1,
            nonce,
            (now.mono, now.unix),
            now.mono + INBOUND_HANDSHAKE_TIMEOUT,
        ));
        cx.out.push_back(Output::Accept(AcceptRequest {
            link,
            conn,
            allow_v1,
            peer,
        }));
    }

    /// Every inbound slot is taken: make room by evicting one inbound peer
    /// (see [`super::eviction`]), or say why not.
    fn evict_one(&mut self, cx: &mut Ctx<'_>) -> Result<(), Refusal> {
        let candidates: Vec<Candidate> = cx
            .peers
            .iter()
            .filter(|e| e.kind == ConnectionKind::Inbound && e.is_ready() && !e.evicted)
            .filter_map(|e| {
                Some(Candidate {
                    conn: e.conn,
                    // Onion inbound peers share our service's group.
                    netgroup: target_to_addr(&e.target)?.netgroup(),
                    min_rtt: e.min_rtt,
                    connected: e.opened,
                    last_useful_headers: e.last_useful_headers,
                    onion: matches!(e.target, Target::Onion { .. }),
                })
            })
            .collect();
        let victim = select_victim(&candidates, cx.rng.random()).ok_or(Refusal::Full)?;
        if let Some(e) = cx.peers.get_mut(victim) {
            e.evicted = true;
            tracing::debug!(conn = %victim, peer = %sensitive(&e.target), "evicting an inbound peer for a newcomer");
        }
        disconnect(cx, victim, "evicted to make room for an inbound peer");
        Ok(())
    }

    /// Start from these bans (loaded from disk).
    pub fn set_bans(&mut self, bans: BanList) {
        self.bans = bans;
    }

    /// The user's bans.
    pub fn bans(&self) -> &BanList {
        &self.bans
    }

    /// `setban <subnet> add`: ban it until `until` (unix seconds), and
    /// close every connection to an address in it, added peers included.
    pub fn ban(
        &mut self,
        cx: &mut Ctx<'_>,
        now: Now,
        subnet: ipnet::IpNet,
        until: u64,
    ) -> Result<(), BanError> {
        self.bans.add(subnet, now.unix, until)?;
        let doomed: Vec<ConnId> = cx
            .peers
            .iter()
            .filter(|e| banned(&self.bans, &e.target, now.unix))
            .map(|e| e.conn)
            .collect();
        for conn in doomed {
            disconnect(cx, conn, "banned by the user");
        }
        cx.out.push_back(Output::PersistBans(self.bans.to_bytes()));
        Ok(())
    }

    /// `setban <subnet> remove`.
    pub fn unban(&mut self, cx: &mut Ctx<'_>, subnet: ipnet::IpNet) -> Result<(), BanError> {
        self.bans.remove(subnet)?;
        cx.out.push_back(Output::PersistBans(self.bans.to_bytes()));
        Ok(())
    }

    /// `clearbanned`; it also forgives discouraged hosts, so that the user
    /// has one command to undo every automatic measure (discouragement is
    /// in memory only and would otherwise last its full day).
    pub fn clear_bans(&mut self, cx: &mut Ctx<'_>) {
        self.bans.clear();
        self.discouraged.clear();
        cx.out.push_back(Output::PersistBans(self.bans.to_bytes()));
    }

    // === USER COMMANDS ===

    /// `addnode add`: keep `target` connected from now on.
    pub fn add_node(&mut self, cx: &Ctx<'_>, target: Target) -> Result<(), CommandError> {
        if let Some(why) = cx.config.refuses(&target) {
            return Err(CommandError::Refused(why));
        }
        if self.manual.add(target) {
            Ok(())
        } else {
            Err(CommandError::AlreadyAdded)
        }
    }

    /// `addnode remove`: stop keeping `target` connected.
    pub fn remove_node(&mut self, target: &Target) -> Result<(), CommandError> {
        if self.manual.remove(target) {
            Ok(())
        } else {
            Err(CommandError::NotAdded)
        }
    }

    /// `addnode onetry`: one manual connection attempt, not retried.
    pub fn one_try(
        &mut self,
        cx: &mut Ctx<'_>,
        now: Now,
        target: Target,
    ) -> Result<ConnId, CommandError> {
        if let Some(why) = cx.config.refuses(&target) {
            return Err(CommandError::Refused(why));
        }
        let addr = super::targets::target_to_addr(&target);
        if cx.peers.has_target(&target, addr.as_ref()) {
            return Err(CommandError::AlreadyConnected);
        }
        Ok(self.open_connection(cx, now, ConnectionKind::Manual, target, addr))
    }

    /// The user-named peers.
    pub fn manual_peers(&self) -> &ManualPeers {
        &self.manual
    }

    // === WHAT HAPPENS TO A CONNECTION ===

    /// Tor readiness changed: schedule the first feeler from now.
    pub fn tor_ready_changed(&mut self, cx: &mut Ctx<'_>, now: Now, ready: bool) {
        if ready && self.next_feeler.is_none() {
            self.schedule_feeler(cx, now);
        }
    }

    /// A dial completed: the transport is up and the handshake starts.
    pub fn connected(
        &mut self,
        cx: &mut Ctx<'_>,
        conn: ConnId,
        transport: TransportKind,
        circuit: Option<CircuitLabel>,
    ) {
        match cx.peers.get_mut(conn) {
            Some(e) if matches!(e.state, PeerState::Dialing { .. }) => {
                e.state = PeerState::Handshaking;
                e.transport = Some(transport);
                e.circuit = circuit;
            }
            // We gave up on it (timeout, shutdown): close what arrived late.
            _ => cx.out.push_back(Output::Disconnect {
                conn,
                reason: "dial no longer wanted".into(),
            }),
        }
    }

    /// A dial failed.
    pub fn dial_failed(&mut self, cx: &mut Ctx<'_>, now: Now, conn: ConnId, failure: &DialFailure) {
        let Some(entry) = cx.peers.remove(conn) else {
            return;
        };
        if let Some(addr) = entry.addr.filter(|_| entry.kind.uses_address_book()) {
            cx.addrman.attempt(&addr, failure.peer_at_fault, now.unix);
            // The rest counts from the failure, not the attempt.
            self.pauses.failed(addr, now.mono);
        }
        let manual = self.manual.owns(conn);
        if manual {
            self.manual.ended(conn, now.mono);
            tracing::info!(
                %conn,
                target = %sensitive(&entry.target),
                reason = %failure.reason,
                "could not reach added peer; will retry"
            );
        } else {
            tracing::debug!(%conn, kind = %entry.kind.label(), target = %sensitive(&entry.target), reason = %failure.reason, "dial failed");
        }
        release_if_unused(cx, &entry);
    }

    /// A peer task reported.
    pub fn peer_report(&mut self, cx: &mut Ctx<'_>, now: Now, update: PeerUpdate) {
        let conn = update.conn;
        match update.report {
            PeerReport::Closed(reason) => {
                let Some(entry) = cx.peers.remove(conn) else {
                    return;
                };
                if let Some(addr) = entry.addr.filter(|_| entry.kind.uses_address_book()) {
                    if entry.is_ready() {
                        cx.addrman.connected(&addr, now.unix);
                    }
                    self.pauses.ended(addr, now.mono);
                }
                if self.manual.owns(conn) {
                    self.manual.ended(conn, now.mono);
                } else if reason.weight() >= crate::peer::reason::MISBEHAVIOR_LIMIT
                    && let Some(addr) = entry.addr.or_else(|| inbound_host(&entry.target))
                {
                    // Manual peers are never discouraged: the user vouched.
                    self.discourage(addr, now.mono);
                }
                let kind = entry.kind.label();
                let addr = sensitive(&entry.target);
                // Peers the user named are always worth a line: "my addnode
                // peer never connects" must be answerable from the default
                // log, also when the handshake is what failed.
                let asked_for = entry.kind == ConnectionKind::Manual;
                if !asked_for && (entry.kind == ConnectionKind::Feeler || !entry.is_ready()) {
                    tracing::debug!(%conn, %kind, %addr, %reason, "peer disconnected");
                } else {
                    tracing::info!(%conn, %kind, %addr, %reason, "peer disconnected");
                }
                release_if_unused(cx, &entry);
            }
            PeerReport::Event(event) => self.peer_event(cx, now, conn, event),
        }
    }

    fn peer_event(&mut self, cx: &mut Ctx<'_>, now: Now, conn: ConnId, event: PeerEvent) {
        match event {
            PeerEvent::VersionNonce(nonce) => {
                if cx.peers.is_our_nonce(nonce, conn) {
                    // One of our dials reached ourselves (our own onion
                    // service, gossiped back to us).
                    disconnect(cx, conn, "connected to ourselves");
                    if let Some(addr) = cx
                        .peers
                        .get(conn)
                        .filter(|e| e.kind.uses_address_book())
                        .and_then(|e| e.addr)
                    {
                        cx.addrman.forget(&addr);
                    }
                }
            }
            PeerEvent::HandshakeComplete(info) => self.handshake_complete(cx, now, conn, info),
            PeerEvent::Addresses { addrs, dropped } => {
                let Some(entry) = cx.peers.get(conn) else {
                    return;
                };
                if !entry.kind.uses_address_book() {
                    tracing::debug!(%conn, received = addrs.len(), "addresses ignored");
                    return;
                }
                let source = match (&entry.addr, &entry.target, entry.kind) {
                    (_, _, ConnectionKind::Inbound) => AddrSource::InboundOnion,
                    (Some(a), _, _) => AddrSource::Peer(*a),
                    (None, target, _) => {
                        AddrSource::Internal(InternalSource::named(&target.to_string()))
                    }
                };
                let records: Vec<AddrRecord> = addrs
                    .iter()
                    .filter_map(|m| AddrRecord::from_addrv2(m).ok())
                    .collect();
                let learned = cx.addrman.add(&records, &source, now.unix, cx.rng);
                tracing::debug!(%conn, received = addrs.len(), learned, dropped, "addresses");
                if entry.kind == ConnectionKind::Feeler {
                    tracing::info!(%conn, addr = %sensitive(&entry.target), learned, "feeler done");
                    disconnect(cx, conn, "feeler done");
                }
            }
            PeerEvent::Rtt(rtt) => {
                if let Some(e) = cx.peers.get_mut(conn) {
                    e.last_rtt = Some(rtt);
                    e.min_rtt = Some(e.min_rtt.map_or(rtt, |m| m.min(rtt)));
                }
            }
            PeerEvent::Misbehaved {
                points,
                total,
                what,
            } => {
                tracing::debug!(%conn, points, total, what, "peer misbehaved");
            }
            PeerEvent::Message(NetworkMessage::GetAddr) => self.answer_getaddr(cx, now, conn),
            // Other messages (headers, inventory) belong to later parts of
            // the node; the peer machine already enforced the protocol.
            PeerEvent::Message(_) => {}
            // The peer task turns this into `Closed`.
            PeerEvent::Disconnect(_) => {}
        }
    }

    fn handshake_complete(
        &mut self,
        cx: &mut Ctx<'_>,
        now: Now,
        conn: ConnId,
        info: crate::peer::PeerInfo,
    ) {
        let Some(entry) = cx.peers.get_mut(conn) else {
            return;
        };
        let services = info.services;
        entry.state = PeerState::Ready(info);
        let entry = entry.clone();
        if let Some(addr) = entry.addr.filter(|_| entry.kind.uses_address_book()) {
            self.pauses.succeeded(&addr);
            if entry.kind != ConnectionKind::Manual || cx.addrman.contains(&addr) {
                cx.addrman.good(&addr, now.unix);
            }
            cx.addrman.set_services(&addr, services);
        }
        self.manual.succeeded(conn, now.mono);
        log_connected(&entry);
        if entry.kind == ConnectionKind::Feeler
            && let Some(e) = cx.peers.get_mut(conn)
        {
            e.feeler_deadline = Some(now.mono + FEELER_ADDR_WAIT);
        }
        if entry.kind.asks_for_addresses() {
            // Ask for addresses once; the peer machine opens the address
            // budget for the reply.
            cx.out.push_back(Output::Send {
                conn,
                msg: NetworkMessage::GetAddr,
            });
        }
        if announces_to(entry.kind) {
            self.announce_self(cx, now, &[conn]);
        }
    }

    /// Our onion service is up at `service` (or gone): remember it, tell
    /// the outbound peers we have, and keep telling them at Core's cadence.
    pub fn set_local_onion(&mut self, cx: &mut Ctx<'_>, now: Now, service: Option<Target>) {
        self.local_onion = service.as_ref().and_then(target_to_addr);
        if self.local_onion.is_none() {
            self.next_self_announce = None;
            return;
        }
        let peers: Vec<ConnId> = cx
            .peers
            .iter()
            .filter(|e| e.is_ready() && announces_to(e.kind))
            .map(|e| e.conn)
            .collect();
        self.announce_self(cx, now, &peers);
        self.schedule_self_announce(cx, now);
    }

    /// Our onion address, if our onion service runs.
    pub fn local_onion(&self) -> Option<NetAddr> {
        self.local_onion
    }

    /// Send our onion address to `peers` in an `addrv2`. Only the onion
    /// address, ever: a clearnet address of ours is never announced while
    /// Tor is on (we do not even know one).
    fn announce_self(&self, cx: &mut Ctx<'_>, now: Now, peers: &[ConnId]) {
        let Some(addr) = self.local_onion else {
            return;
        };
        let record = AddrRecord {
            addr,
            // We serve no blocks: claiming services would be a lie.
            services: crate::wire::ServiceFlags::NONE,
            last_seen: now.unix,
        };
        for conn in peers {
            cx.out.push_back(Output::Send {
                conn: *conn,
                msg: NetworkMessage::AddrV2(vec![record.to_addrv2()]),
            });
        }
    }

    /// Core re-announces its own address on average once a day
    /// (`AVG_LOCAL_ADDRESS_BROADCAST_INTERVAL`), at exponential intervals.
    fn schedule_self_announce(&mut self, cx: &mut Ctx<'_>, now: Now) {
        let u: f64 = cx.rng.random_range(f64::EPSILON..1.0);
        let gap = (-u.ln() * SELF_ANNOUNCE_INTERVAL.as_secs_f64())
            .min(10.0 * SELF_ANNOUNCE_INTERVAL.as_secs_f64());
        self.next_self_announce = Some(now.mono + Duration::from_secs_f64(gap));
    }

    /// Answer a `getaddr` once per inbound connection (Core answers only
    /// inbound peers: an outbound peer asking is unusual, and answering
    /// would let anyone we dial scrape the table).
    fn answer_getaddr(&mut self, cx: &mut Ctx<'_>, now: Now, conn: ConnId) {
        let Some(entry) = cx.peers.get_mut(conn) else {
            return;
        };
        if entry.kind != ConnectionKind::Inbound || entry.answered_getaddr {
            return;
        }
        entry.answered_getaddr = true;
        let wants_v2 = entry.info().is_some_and(|i| i.addrv2);
        // One cached answer per way in, as Core keeps one per network and
        // local address: reconnecting does not draw a fresh sample (no
        // scraping the table piece by piece), and the onion service and the
        // TCP listener answer differently (their answers cannot be compared
        // to tell that both belong to one node).
        let onion = matches!(entry.target, Target::Onion { .. });
        let fresh = self
            .getaddr_cache
            .get(&onion)
            .filter(|(_, until)| now.mono < *until)
            .map(|(sample, _)| sample.clone());
        let sample = match fresh {
            Some(sample) => sample,
            None => {
                let sample = cx.addrman.gossip_sample(
                    MAX_ADDRS_PER_MESSAGE,
                    cx.config.reachable_networks(),
                    now.unix,
                    cx.rng,
                );
                let spread = cx.rng.random_range(0..GETADDR_CACHE_SPREAD.as_secs());
                let until = now.mono + GETADDR_CACHE_LIFETIME + Duration::from_secs(spread);
                self.getaddr_cache.insert(onion, (sample.clone(), until));
                sample
            }
        };
        let msg = if wants_v2 {
            NetworkMessage::AddrV2(sample.iter().map(AddrRecord::to_addrv2).collect())
        } else {
            // v1 `addr` carries IP only; onion entries cannot be sent.
            let entries = sample
                .iter()
                .filter_map(|r| match r.addr.host {
                    crate::netaddr::Host::Ipv4(ip) => Some((r, IpAddr::V4(ip))),
                    crate::netaddr::Host::Ipv6(ip) => Some((r, IpAddr::V6(ip))),
                    _ => None,
                })
                .map(|(r, ip)| {
                    (
                        u32::try_from(r.last_seen).unwrap_or(u32::MAX),
                        crate::wire::Address::new(&SocketAddr::new(ip, r.addr.port), r.services),
                    )
                })
                .collect();
            NetworkMessage::Addr(entries)
        };
        cx.out.push_back(Output::Send { conn, msg });
    }

    /// A DNS seed answered: its addresses go to the book under the seed's
    /// own source group.
    pub fn seed_resolved(&mut self, cx: &mut Ctx<'_>, now: Now, seed: &str, addrs: &[IpAddr]) {
        let port = default_port(cx.config.network);
        let records: Vec<AddrRecord> = addrs
            .iter()
            .map(|ip| AddrRecord {
                addr: NetAddr::from(SocketAddr::new(*ip, port)),
                services: regular_services(),
                last_seen: now.unix,
            })
            .collect();
        let source = AddrSource::Internal(InternalSource::named(seed));
        let added = cx.addrman.add(&records, &source, now.unix, cx.rng);
        tracing::debug!(%seed, answered = addrs.len(), added, "DNS seed");
    }

    /// The earliest of the connection manager's timers: a dial's or a
    /// feeler's deadline, the next feeler, the next manual-peer retry; and
    /// the next second while regular slots are unfilled (an address may
    /// become usable at any moment: a redial pause ends, gossip arrives).
    pub fn next_deadline(
        &self,
        config: &EngineConfig,
        peers: &PeerTable,
        now: Instant,
        tor_ready: bool,
    ) -> Option<Instant> {
        let entries = peers
            .iter()
            .filter_map(|e| match (&e.state, e.feeler_deadline) {
                (PeerState::Dialing { deadline }, _) => Some(*deadline),
                (PeerState::Ready(_), Some(d)) => Some(d),
                _ => None,
            });
        let automatic = tor_ready && !self.only_manual;
        let wanting = automatic && peers.regular_count() < config.target_outbound;
        entries
            .chain(self.manual.next_retry())
            .chain(self.next_self_announce)
            .chain(self.next_feeler.filter(|_| automatic))
            .chain(wanting.then_some(now + super::MAINTENANCE_INTERVAL))
            .min()
    }

    /// Deadlines: dials that took too long, feelers that got no reply; and
    /// forgetting old backoff records.
    pub fn expire(&mut self, cx: &mut Ctx<'_>, now: Now) {
        let mut overdue = Vec::new();
        for e in cx.peers.iter() {
            match (&e.state, e.feeler_deadline) {
                (PeerState::Dialing { deadline }, _) if now.mono >= *deadline => {
                    overdue.push((e.conn, true));
                }
                (PeerState::Ready(_), Some(d)) if now.mono >= d => overdue.push((e.conn, false)),
                _ => {}
            }
        }
        for (conn, dialing) in overdue {
            if dialing {
                cx.out.push_back(Output::Disconnect {
                    conn,
                    reason: "dial timed out".into(),
                });
                let failure = DialFailure {
                    reason: "timed out".into(),
                    peer_at_fault: true,
                };
                self.dial_failed(cx, now, conn, &failure);
            } else {
                if let Some(e) = cx.peers.get_mut(conn) {
                    e.feeler_deadline = None;
                    tracing::info!(%conn, addr = %sensitive(&e.target), learned = 0, "feeler done");
                }
                disconnect(cx, conn, "feeler: no address reply");
            }
        }
        self.pauses.sweep(now.mono);
        self.discouraged.retain(|_, until| now.mono < *until);
        if self.next_self_announce.is_some_and(|t| now.mono >= t) {
            let peers: Vec<ConnId> = cx
                .peers
                .iter()
                .filter(|e| e.is_ready() && announces_to(e.kind))
                .map(|e| e.conn)
                .collect();
            self.announce_self(cx, now, &peers);
            self.schedule_self_announce(cx, now);
        }
        if self.bans.sweep(now.unix) {
            cx.out.push_back(Output::PersistBans(self.bans.to_bytes()));
        }
    }

    /// Whether `addr`'s host is discouraged (any port: see
    /// [`discouraged_host`]).
    fn is_discouraged(&self, addr: &NetAddr) -> bool {
        self.discouraged.contains_key(&discouraged_host(*addr))
    }

    fn discourage(&mut self, addr: NetAddr, now: Instant) {
        let addr = discouraged_host(addr);
        if self.discouraged.len() >= MAX_DISCOURAGED
            && let Some(oldest) = self
                .discouraged
                .iter()
                .min_by_key(|(_, until)| **until)
                .map(|(a, _)| *a)
        {
            self.discouraged.remove(&oldest);
        }
        self.discouraged.insert(addr, now + DISCOURAGE_FOR);
    }
}

fn disconnect(cx: &mut Ctx<'_>, conn: ConnId, reason: &str) {
    cx.out.push_back(Output::Disconnect {
        conn,
        reason: reason.to_owned(),
    });
}

/// A closed connection's group may go once nobody uses it and it takes no
/// new connections.
fn release_if_unused(cx: &mut Ctx<'_>, entry: &PeerEntry) {
    let Some(group) = entry.isolation.map(|i| i.group) else {
        return;
    };
    if !cx.isolation.is_current(group) && !cx.peers.uses_group(group) {
        cx.out.push_back(Output::ReleaseGroup(group));
    }
}

/// Whether we tell a peer of this kind our own onion address: outbound
/// full-relay peers, as Core does (not feelers, which leave at once, nor
/// inbound peers, who found us already).
fn announces_to(kind: ConnectionKind) -> bool {
    matches!(
        kind,
        ConnectionKind::Regular(_) | ConnectionKind::Manual | ConnectionKind::Extra
    )
}

/// Whether a ban covers `target` (only IP targets can be banned).
fn banned(bans: &BanList, target: &Target, now_unix: u64) -> bool {
    matches!(target, Target::Ip(sa) if bans.is_banned(sa.ip(), now_unix))
}

/// A `version` nonce for `conn`, distinct from every other of ours (a
/// peer that echoes one back is ourselves).
fn fresh_nonce(cx: &mut Ctx<'_>, conn: ConnId) -> u64 {
    loop {
        let n: u64 = cx.rng.random();
        if n != 0 && !cx.peers.is_our_nonce(n, conn) {
            break n;
        }
    }
}

fn log_connected(e: &PeerEntry) {
    // `%` (Display) keeps plain words unquoted in the log line; the circuit
    // label has a space, so it stays quoted (Debug).
    let kind = e.kind.label();
    let transport = e.transport.as_ref().map_or("-", TransportKind::core_name);
    let session_id = e
        .transport
        .as_ref()
        .map(TransportKind::session_id_hex)
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "-".into());
    let circuit = e.circuit.as_ref().map_or("-", |c| c.id.as_str());
    let subver = e.info().map(|i| i.user_agent.as_str()).unwrap_or_default();
    let isolation = e
        .isolation
        .map_or_else(|| "-".to_owned(), |i| i.to_string());
    if e.kind == ConnectionKind::Feeler {
        tracing::debug!(conn = %e.conn, kind = %kind, addr = %sensitive(&e.target), transport = %transport, circuit, isolation = %isolation, session_id = %session_id, "peer connected");
    } else {
        tracing::info!(conn = %e.conn, kind = %kind, addr = %sensitive(&e.target), transport = %transport, circuit, isolation = %isolation, session_id = %session_id, subver, "peer connected");
    }
}

/// The chain's default P2P port (for DNS seed answers, which carry none).
pub fn default_port(network: bitcoin::Network) -> u16 {
    match network {
        bitcoin::Network::Bitcoin => 8333,
        bitcoin::Network::Testnet => 18333,
        bitcoin::Network::Testnet4 => 48333,
        bitcoin::Network::Signet => 38333,
        _ => 18444,
    }
}

/// The key discouragement is kept under: the host, without its port. As
/// in Core, a misbehaving host does not get a fresh start by connecting
/// from another source port (every inbound connection has a new one) or
/// by listening on another port.
fn discouraged_host(addr: NetAddr) -> NetAddr {
    NetAddr { port: 0, ..addr }
}

/// The host an inbound TCP peer came from; `None` for onion peers, who
/// are anonymous (and for outbound peers, which have an address-book
/// entry instead).
fn inbound_host(target: &Target) -> Option<NetAddr> {
    match target {
        Target::Ip(remote) => Some(NetAddr::from(*remote)),
        _ => None,
    }
}
