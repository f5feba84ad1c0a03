//! The per-peer protocol state machine: no I/O, no clock, no randomness of
//! its own.
//!
//! The host (a tokio task in production, a simulator in tests) feeds it
//! decoded messages and the current time, and drains what it wants sent and
//! what it wants the engine to know:
//!
//! - [`PeerMachine::handle_message`] for each message read;
//! - [`PeerMachine::handle_timeout`] when [`PeerMachine::poll_timeout`] passes;
//! - [`PeerMachine::send`] for messages the engine wants delivered;
//! - then [`PeerMachine::poll_transmit`] and [`PeerMachine::poll_event`] until
//!   both return `None`.
//!
//! The handshake, as BIP339 and BIP155 shape it: both sides send `version`;
//! on receiving the peer's `version` a side sends `wtxidrelay` and
//! `sendaddrv2` (if the peer's version supports them) and then `verack`; the
//! handshake is complete when our `verack` is sent and theirs received.
//! Feature negotiation after `verack` is a violation.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::peer::kind::ConnectionKind;
use crate::peer::limits::{self, TokenBucket};
use crate::peer::reason::{DisconnectReason, Flood, HandshakeViolation, MISBEHAVIOR_LIMIT};
use crate::peer::requests::Solicited;
use crate::wire::{AddrV2, AddrV2Message, Address, NetworkMessage, ServiceFlags, VersionMessage};

/// Time allowed from connection to a completed handshake. Core allows 60 s;
/// the seeds used 10 s. Over Tor the stream is already open when the machine
/// starts (circuit and rendezvous are done), so version/verack needs two
/// round trips of a few seconds at worst; 30 s keeps slow circuits and
/// frees slots from peers that go silent.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// Idle time after which we ping. Core pings every 2 minutes; we ping only
/// when the peer has been quiet that long, since any message proves liveness.
pub const PING_IDLE: Duration = Duration::from_secs(120);

/// Time a ping may go unanswered. Core waits 20 minutes, which lets a dead
/// circuit hold a slot; the seeds' 30 s drops healthy peers on congested
/// onion circuits (RTTs of several seconds are normal). 90 s is thirty slow
/// round trips.
pub const PONG_TIMEOUT: Duration = Duration::from_secs(90);

/// BIP339 (`wtxidrelay`) and BIP155 (`sendaddrv2`) both need 70016; a peer
/// older than that cannot tell us about onion addresses.
pub const MIN_PROTOCOL_VERSION: u32 = 70016;

/// Where the handshake stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Waiting for their `version`.
    AwaitVersion,
    /// Their `version` is in, our `verack` sent; waiting for theirs.
    AwaitVerack,
    /// Handshake complete.
    Ready,
    /// Disconnect decided; nothing more is processed.
    Closed,
}

/// What the peer told us about itself in its `version`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerInfo {
    /// Protocol version.
    pub version: u32,
    /// Advertised services.
    pub services: ServiceFlags,
    /// User agent (as sent; not sanitized).
    pub user_agent: String,
    /// Their best height when they connected.
    pub start_height: i32,
    /// Their handshake nonce.
    pub nonce: u64,
    /// Whether they want transaction relay.
    pub relay: bool,
    /// Whether they announced `wtxidrelay`.
    pub wtxid_relay: bool,
    /// Whether they announced `sendaddrv2` (gossip them addrv2).
    pub addrv2: bool,
}

/// What the machine tells the engine.
#[derive(Debug, Clone, PartialEq)]
pub enum PeerEvent {
    /// Their `version` arrived, with this nonce: the engine compares it with
    /// the nonces of its own outbound connections to catch self-connections.
    VersionNonce(u64),
    /// The handshake completed.
    HandshakeComplete(PeerInfo),
    /// Gossiped addresses that passed the rate limit (addr entries converted
    /// to addrv2 form), and how many were dropped.
    Addresses {
        /// Accepted addresses.
        addrs: Vec<AddrV2Message>,
        /// Entries dropped by the rate limit.
        dropped: usize,
    },
    /// A round-trip time sample from a ping.
    Rtt(Duration),
    /// Misbehaviour that did not (yet) end the connection.
    Misbehaved {
        /// Points added.
        points: u32,
        /// The new total.
        total: u32,
        /// What happened.
        what: &'static str,
    },
    /// Any other post-handshake message, for the engine to act on.
    Message(NetworkMessage),
    /// The connection must end; emitted exactly once, and last.
    Disconnect(DisconnectReason),
}

/// Fixed facts about one connection.
#[derive(Debug, Clone)]
pub struct PeerConfig {
    /// Why the connection exists.
    pub kind: ConnectionKind,
    /// The `version` message we send (its nonce identifies us).
    pub our_version: VersionMessage,
    /// Seed for ping nonces (the host draws it from its RNG).
    pub ping_seed: u64,
}

/// The protocol state of one peer connection.
#[derive(Debug)]
pub struct PeerMachine {
    config: PeerConfig,
    stage: Stage,
    started: Instant,
    last_received: Instant,
    info: Option<PeerInfo>,
    their_wtxid_relay: bool,
    their_addrv2: bool,
    ping_counter: u64,
    outstanding_ping: Option<(u64, Instant)>,
    messages: TokenBucket,
    bytes: TokenBucket,
    pings: TokenBucket,
    addrs: TokenBucket,
    addrs_dropped: usize,
    /// Replies to our requests still owed: they were asked for, so they do
    /// not count against the byte rate.
    solicited: Solicited,
    misbehavior: u32,
    transmit: VecDeque<NetworkMessage>,
    events: VecDeque<PeerEvent>,
}

impl PeerMachine {
    /// A machine for a connection that opened at `now`. An outbound
    /// connection speaks first: its `version` is queued at once.
    pub fn new(config: PeerConfig, now: Instant) -> Self {
        let mut machine = PeerMachine {
            stage: Stage::AwaitVersion,
            started: now,
            last_received: now,
            info: None,
            their_wtxid_relay: false,
            their_addrv2: false,
            ping_counter: 0,
            outstanding_ping: None,
            messages: TokenBucket::full(limits::MESSAGE_BURST, limits::MESSAGE_RATE_PER_SEC, now),
            bytes: TokenBucket::full(limits::BYTE_BURST, limits::BYTE_RATE_PER_SEC, now),
            pings: TokenBucket::full(limits::PING_BURST, limits::PING_RATE_PER_SEC, now),
            addrs: TokenBucket::new(
                limits::ADDR_BUCKET_CAPACITY,
                limits::ADDR_RATE_PER_SEC,
                limits::ADDR_INITIAL_TOKENS,
                now,
            ),
            addrs_dropped: 0,
            solicited: Solicited::new(),
            misbehavior: 0,
            transmit: VecDeque::new(),
            events: VecDeque::new(),
            config,
        };
        if machine.config.kind.is_outbound() {
            machine.send_version();
        }
        machine
    }

    /// Our handshake nonce.
    pub fn our_nonce(&self) -> u64 {
        self.config.our_version.nonce
    }

    /// The connection's kind.
    pub fn kind(&self) -> ConnectionKind {
        self.config.kind
    }

    /// What the peer said about itself, once its `version` arrived.
    pub fn info(&self) -> Option<&PeerInfo> {
        self.info.as_ref()
    }

    /// Whether the handshake completed (and the connection is still open).
    pub fn is_ready(&self) -> bool {
        self.stage == Stage::Ready
    }

    /// Whether a disconnect has been decided.
    pub fn is_closed(&self) -> bool {
        self.stage == Stage::Closed
    }

    /// The next message to write, if any.
    pub fn poll_transmit(&mut self) -> Option<NetworkMessage> {
        self.transmit.pop_front()
    }

    /// The next event for the engine, if any.
    pub fn poll_event(&mut self) -> Option<PeerEvent> {
        self.events.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.stage {
            Stage::Closed => None,
            Stage::AwaitVersion | Stage::AwaitVerack => Some(self.started + HANDSHAKE_TIMEOUT),
            Stage::Ready => Some(match self.outstanding_ping {
                Some((_, sent)) => sent + PONG_TIMEOUT,
                None => self.last_received + PING_IDLE,
            }),
        }
    }

    /// Act on the passage of time: handshake and pong deadlines, idle pings.
    pub fn handle_timeout(&mut self, now: Instant) {
        match self.stage {
            Stage::Closed => {}
            Stage::AwaitVersion | Stage::AwaitVerack => {
                if now >= self.started + HANDSHAKE_TIMEOUT {
                    self.close(DisconnectReason::HandshakeTimeout);
                }
            }
            Stage::Ready => match self.outstanding_ping {
                Some((_, sent)) if now >= sent + PONG_TIMEOUT => {
                    self.close(DisconnectReason::PongTimeout)
                }
                Some(_) => {}
                None if now >= self.last_received + PING_IDLE => self.send_ping(now),
                None => {}
            },
        }
    }

    /// Queue a message from the engine. Sending `getaddr` opens the address
    /// budget for the reply, as Core does.
    pub fn send(&mut self, now: Instant, msg: NetworkMessage) {
        if self.stage == Stage::Closed {
            return;
        }
        if matches!(msg, NetworkMessage::GetAddr) {
            self.addrs.credit(limits::ADDR_BUCKET_CAPACITY, now);
        }
        self.solicited.on_send(&msg);
        self.transmit.push_back(msg);
    }

    /// End the connection for a reason found outside the machine (I/O error,
    /// wire error, engine decision). Ignored if already closed.
    pub fn close(&mut self, reason: DisconnectReason) {
        if self.stage == Stage::Closed {
            return;
        }
        self.stage = Stage::Closed;
        self.transmit.clear();
        self.events.push_back(PeerEvent::Disconnect(reason));
    }

    /// Process one message of `wire_len` bytes received at `now`.
    pub fn handle_message(&mut self, now: Instant, msg: NetworkMessage, wire_len: usize) {
        if self.stage == Stage::Closed {
            return;
        }
        self.last_received = now;
        // A reply we asked for (a 162 kB `headers`, a block, a scan's
        // filters) may come at full speed: the rates are meant for traffic
        // the peer chose to send. Replies are bounded anyway: each request
        // admits only as many as it asked for (a `getcfilters` up to 1000).
        if !self.solicited.take_reply(&msg) {
            if !self.messages.try_take(1.0, now) {
                return self.close(DisconnectReason::Flood(Flood::Messages));
            }
            if !self.bytes.try_take(wire_len as f64, now) {
                return self.close(DisconnectReason::Flood(Flood::Bytes));
            }
        }
        match self.stage {
            Stage::AwaitVersion => self.handle_before_version(msg),
            Stage::AwaitVerack => self.handle_before_verack(msg),
            Stage::Ready => self.handle_ready(now, msg),
            Stage::Closed => {}
        }
    }

    fn handle_before_version(&mut self, msg: NetworkMessage) {
        match msg {
            NetworkMessage::Version(v) => self.accept_version(v),
            NetworkMessage::Verack => self.close(DisconnectReason::Handshake(
                HandshakeViolation::VerackBeforeVersion,
            )),
            _ => self.close(DisconnectReason::Handshake(
                HandshakeViolation::MessageBeforeVersion,
            )),
        }
    }

    fn handle_before_verack(&mut self, msg: NetworkMessage) {
        match msg {
            NetworkMessage::Verack => self.complete_handshake(),
            NetworkMessage::WtxidRelay => self.their_wtxid_relay = true,
            NetworkMessage::SendAddrV2 => self.their_addrv2 = true,
            NetworkMessage::Version(_) => self.close(DisconnectReason::Handshake(
                HandshakeViolation::DuplicateVersion,
            )),
            // Core tolerates a few others here (e.g. sendcmpct before verack
            // from old peers), but nothing we need: stricter is simpler.
            _ => self.close(DisconnectReason::Handshake(
                HandshakeViolation::MessageBeforeVerack,
            )),
        }
    }

    fn handle_ready(&mut self, now: Instant, msg: NetworkMessage) {
        match msg {
            NetworkMessage::Version(_) => self.close(DisconnectReason::Handshake(
                HandshakeViolation::DuplicateVersion,
            )),
            NetworkMessage::Verack => self.close(DisconnectReason::Handshake(
                HandshakeViolation::DuplicateVerack,
            )),
            NetworkMessage::WtxidRelay | NetworkMessage::SendAddrV2 => self.close(
                DisconnectReason::Handshake(HandshakeViolation::FeatureNegotiationAfterVerack),
            ),
            NetworkMessage::Ping(nonce) => {
                if self.pings.try_take(1.0, now) {
                    self.transmit.push_back(NetworkMessage::Pong(nonce));
                } else {
                    self.close(DisconnectReason::Flood(Flood::Pings));
                }
            }
            NetworkMessage::Pong(nonce) => self.handle_pong(now, nonce),
            NetworkMessage::Addr(entries) => {
                let count = entries.len();
                let addrs = entries
                    .into_iter()
                    .filter_map(|(time, a)| addr_v1_to_v2(time, &a))
                    .collect();
                self.handle_gossip(now, count, addrs);
            }
            NetworkMessage::AddrV2(entries) => {
                let count = entries.len();
                self.handle_gossip(now, count, entries);
            }
            // Core's MAX_INV_SZ, for announcements and requests alike.
            NetworkMessage::Inv(items)
            | NetworkMessage::GetData(items)
            | NetworkMessage::NotFound(items)
                if items.len() > limits::MAX_INV_ENTRIES =>
            {
                self.misbehave(MISBEHAVIOR_LIMIT, "inventory message over 50 000 entries");
            }
            other => self.events.push_back(PeerEvent::Message(other)),
        }
    }

    fn accept_version(&mut self, v: VersionMessage) {
        if v.nonce == self.our_nonce() && v.nonce != 0 {
            return self.close(DisconnectReason::SelfConnection);
        }
        if v.version < MIN_PROTOCOL_VERSION {
            return self.close(DisconnectReason::ObsoleteVersion(v.version));
        }
        if !v.services.has(self.config.kind.required_services()) {
            return self.close(DisconnectReason::MissingServices);
        }
        self.events.push_back(PeerEvent::VersionNonce(v.nonce));
        self.info = Some(PeerInfo {
            version: v.version,
            services: v.services,
            user_agent: v.user_agent.clone(),
            start_height: v.start_height,
            nonce: v.nonce,
            relay: v.relay,
            wtxid_relay: false,
            addrv2: false,
        });
        if !self.config.kind.is_outbound() {
            self.send_version();
        }
        // Feature negotiation goes between their version and our verack.
        // A private broadcast negotiates nothing, as Core's sends nothing
        // but `verack`: it wants no gossip and announces by txid.
        if self.config.kind != ConnectionKind::PrivateBroadcast {
            self.transmit.push_back(NetworkMessage::WtxidRelay);
            self.transmit.push_back(NetworkMessage::SendAddrV2);
        }
        self.transmit.push_back(NetworkMessage::Verack);
        self.stage = Stage::AwaitVerack;
    }

    fn complete_handshake(&mut self) {
        self.stage = Stage::Ready;
        if let Some(info) = &mut self.info {
            info.wtxid_relay = self.their_wtxid_relay;
            info.addrv2 = self.their_addrv2;
            self.events
                .push_back(PeerEvent::HandshakeComplete(info.clone()));
        }
    }

    fn send_version(&mut self) {
        self.transmit
            .push_back(NetworkMessage::Version(self.config.our_version.clone()));
    }

    fn send_ping(&mut self, now: Instant) {
        // splitmix64 over a counter: distinct, unpredictable-enough nonces
        // without an RNG inside the machine. (A peer that could predict them
        // gains nothing: a pong only proves liveness.)
        self.ping_counter = self.ping_counter.wrapping_add(1);
        let nonce = splitmix64(self.config.ping_seed.wrapping_add(self.ping_counter)).max(1);
        self.outstanding_ping = Some((nonce, now));
        self.transmit.push_back(NetworkMessage::Ping(nonce));
    }

    fn handle_pong(&mut self, now: Instant, nonce: u64) {
        match self.outstanding_ping {
            Some((expected, sent)) if expected == nonce => {
                self.outstanding_ping = None;
                self.events
                    .push_back(PeerEvent::Rtt(now.saturating_duration_since(sent)));
            }
            // Not our liveness ping: the engine's (a private broadcast
            // asks for a receipt this way), or unsolicited, which the
            // engine ignores as Core does.
            _ => self
                .events
                .push_back(PeerEvent::Message(NetworkMessage::Pong(nonce))),
        }
    }

    fn handle_gossip(&mut self, now: Instant, count: usize, addrs: Vec<AddrV2Message>) {
        if count > limits::MAX_ADDRS_PER_MESSAGE {
            return self.close(DisconnectReason::OversizedAddr(count));
        }
        let granted = self.addrs.take_up_to(addrs.len(), now);
        let dropped = addrs.len() - granted;
        self.addrs_dropped = self.addrs_dropped.saturating_add(dropped);
        if self.addrs_dropped > limits::ADDR_FLOOD_DROPPED_LIMIT {
            return self.close(DisconnectReason::Flood(Flood::Addresses));
        }
        let addrs: Vec<_> = addrs.into_iter().take(granted).collect();
        self.events
            .push_back(PeerEvent::Addresses { addrs, dropped });
    }

    /// Add misbehaviour points for something the engine judged (invalid
    /// headers, say); at [`MISBEHAVIOR_LIMIT`] the peer is disconnected.
    pub fn misbehave(&mut self, points: u32, what: &'static str) {
        if points == 0 || self.stage == Stage::Closed {
            return;
        }
        self.misbehavior = self.misbehavior.saturating_add(points);
        if self.misbehavior >= MISBEHAVIOR_LIMIT {
            self.close(DisconnectReason::Misbehaving(self.misbehavior));
        } else {
            self.events.push_back(PeerEvent::Misbehaved {
                points,
                total: self.misbehavior,
                what,
            });
        }
    }
}

/// One step of the splitmix64 generator: a bijective mix of 64 bits.
fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// Convert a legacy `addr` entry to addrv2 form; `None` for entries that are
/// not plain IPv4/IPv6 endpoints.
fn addr_v1_to_v2(time: u32, a: &Address) -> Option<AddrV2Message> {
    let socket = a.socket_addr().ok()?;
    let addr = match socket.ip() {
        std::net::IpAddr::V4(ip) => AddrV2::Ipv4(ip),
        std::net::IpAddr::V6(ip) => match ip.to_ipv4_mapped() {
            Some(v4) => AddrV2::Ipv4(v4),
            None => AddrV2::Ipv6(ip),
        },
    };
    Some(AddrV2Message {
        time,
        services: a.services,
        addr,
        port: socket.port(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Address, Inventory};

    const OUR_NONCE: u64 = 0xdead_beef;

    fn version(nonce: u64, protocol: u32, services: ServiceFlags) -> VersionMessage {
        let nowhere = Address::new(
            &std::net::SocketAddr::from(([0, 0, 0, 0], 0)),
            ServiceFlags::NONE,
        );
        VersionMessage {
            version: protocol,
            services,
            timestamp: 0,
            receiver: nowhere.clone(),
            sender: nowhere,
            nonce,
            user_agent: "/test/".into(),
            start_height: 7,
            relay: false,
        }
    }

    fn full_node() -> ServiceFlags {
        ServiceFlags::NETWORK | ServiceFlags::WITNESS
    }

    fn machine(kind: ConnectionKind, t0: Instant) -> PeerMachine {
        let config = PeerConfig {
            kind,
            our_version: version(OUR_NONCE, 70016, ServiceFlags::NONE),
            ping_seed: 42,
        };
        PeerMachine::new(config, t0)
    }

    fn transmitted(m: &mut PeerMachine) -> Vec<&'static str> {
        std::iter::from_fn(|| m.poll_transmit())
            .map(|msg| msg.cmd())
            .collect()
    }

    fn events(m: &mut PeerMachine) -> Vec<PeerEvent> {
        std::iter::from_fn(|| m.poll_event()).collect()
    }

    fn disconnect_reason(m: &mut PeerMachine) -> Option<DisconnectReason> {
        events(m).into_iter().find_map(|e| match e {
            PeerEvent::Disconnect(r) => Some(r),
            _ => None,
        })
    }

    /// An outbound machine with a completed handshake at `t0`.
    fn ready(t0: Instant) -> PeerMachine {
        let mut m = machine(ConnectionKind::Regular(full_node()), t0);
        m.handle_message(
            t0,
            NetworkMessage::Version(version(1, 70016, full_node())),
            100,
        );
        m.handle_message(t0, NetworkMessage::WtxidRelay, 24);
        m.handle_message(t0, NetworkMessage::SendAddrV2, 24);
        m.handle_message(t0, NetworkMessage::Verack, 24);
        assert!(m.is_ready());
        transmitted(&mut m);
        events(&mut m);
        m
    }

    #[test]
    fn outbound_handshake_negotiates_features_between_version_and_verack() {
        let t0 = Instant::now();
        let mut m = machine(ConnectionKind::Regular(full_node()), t0);
        assert_eq!(transmitted(&mut m), ["version"]);
        m.handle_message(
            t0,
            NetworkMessage::Version(version(1, 70016, full_node())),
            100,
        );
        assert_eq!(transmitted(&mut m), ["wtxidrelay", "sendaddrv2", "verack"]);
        assert_eq!(events(&mut m), [PeerEvent::VersionNonce(1)]);
        m.handle_message(t0, NetworkMessage::WtxidRelay, 24);
        m.handle_message(t0, NetworkMessage::SendAddrV2, 24);
        assert!(!m.is_ready());
        m.handle_message(t0, NetworkMessage::Verack, 24);
        let info = match events(&mut m).as_slice() {
            [PeerEvent::HandshakeComplete(info)] => info.clone(),
            other => panic!("unexpected {other:?}"),
        };
        assert!(info.wtxid_relay && info.addrv2);
        assert_eq!((info.nonce, info.start_height), (1, 7));
    }

    #[test]
    fn inbound_waits_for_their_version_before_speaking() {
        let t0 = Instant::now();
        let mut m = machine(ConnectionKind::Inbound, t0);
        assert!(transmitted(&mut m).is_empty());
        m.handle_message(
            t0,
            NetworkMessage::Version(version(1, 70016, ServiceFlags::NONE)),
            100,
        );
        assert_eq!(
            transmitted(&mut m),
            ["version", "wtxidrelay", "sendaddrv2", "verack"]
        );
    }

    #[test]
    fn handshake_deadline_is_exact() {
        let t0 = Instant::now();
        let mut m = machine(ConnectionKind::Feeler, t0);
        assert_eq!(m.poll_timeout(), Some(t0 + HANDSHAKE_TIMEOUT));
        m.handle_timeout(
            (t0 + HANDSHAKE_TIMEOUT)
                .checked_sub(Duration::from_millis(1))
                .unwrap(),
        );
        assert!(!m.is_closed());
        m.handle_timeout(t0 + HANDSHAKE_TIMEOUT);
        assert_eq!(
            disconnect_reason(&mut m),
            Some(DisconnectReason::HandshakeTimeout)
        );
        assert_eq!(m.poll_timeout(), None);
    }

    #[test]
    fn idle_peer_is_pinged_and_dropped_without_pong() {
        let t0 = Instant::now();
        let mut m = ready(t0);
        assert_eq!(m.poll_timeout(), Some(t0 + PING_IDLE));
        // Any message resets the idle clock.
        let t1 = t0 + Duration::from_secs(60);
        m.handle_message(t1, NetworkMessage::SendHeaders, 24);
        assert_eq!(m.poll_timeout(), Some(t1 + PING_IDLE));
        let t2 = t1 + PING_IDLE;
        m.handle_timeout(t2);
        let Some(NetworkMessage::Ping(nonce)) = m.poll_transmit() else {
            panic!("no ping")
        };
        assert_eq!(m.poll_timeout(), Some(t2 + PONG_TIMEOUT));
        // A pong with the wrong nonce is ignored; the right one gives an RTT.
        m.handle_message(
            t2 + Duration::from_secs(1),
            NetworkMessage::Pong(nonce ^ 1),
            32,
        );
        m.handle_message(t2 + Duration::from_secs(3), NetworkMessage::Pong(nonce), 32);
        assert!(events(&mut m).contains(&PeerEvent::Rtt(Duration::from_secs(3))));
        // Next time nobody answers.
        let t3 = t2 + Duration::from_secs(3) + PING_IDLE;
        m.handle_timeout(t3);
        assert!(matches!(m.poll_transmit(), Some(NetworkMessage::Ping(n)) if n != nonce));
        m.handle_timeout(t3 + PONG_TIMEOUT);
        assert_eq!(
            disconnect_reason(&mut m),
            Some(DisconnectReason::PongTimeout)
        );
    }

    #[test]
    fn handshake_order_violations_have_their_reasons() {
        use HandshakeViolation as H;
        let t0 = Instant::now();
        let v = || NetworkMessage::Version(version(1, 70016, full_node()));
        let cases: Vec<(Vec<NetworkMessage>, DisconnectReason)> = vec![
            (
                vec![NetworkMessage::Ping(1)],
                DisconnectReason::Handshake(H::MessageBeforeVersion),
            ),
            (
                vec![NetworkMessage::Verack],
                DisconnectReason::Handshake(H::VerackBeforeVersion),
            ),
            (
                vec![v(), v()],
                DisconnectReason::Handshake(H::DuplicateVersion),
            ),
            (
                vec![v(), NetworkMessage::Inv(vec![])],
                DisconnectReason::Handshake(H::MessageBeforeVerack),
            ),
            (
                vec![v(), NetworkMessage::Verack, v()],
                DisconnectReason::Handshake(H::DuplicateVersion),
            ),
            (
                vec![v(), NetworkMessage::Verack, NetworkMessage::Verack],
                DisconnectReason::Handshake(H::DuplicateVerack),
            ),
            (
                vec![v(), NetworkMessage::Verack, NetworkMessage::SendAddrV2],
                DisconnectReason::Handshake(H::FeatureNegotiationAfterVerack),
            ),
            (
                vec![NetworkMessage::Version(version(1, 70015, full_node()))],
                DisconnectReason::ObsoleteVersion(70015),
            ),
            (
                vec![NetworkMessage::Version(version(
                    1,
                    70016,
                    ServiceFlags::NONE,
                ))],
                DisconnectReason::MissingServices,
            ),
            (
                vec![NetworkMessage::Version(version(
                    OUR_NONCE,
                    70016,
                    full_node(),
                ))],
                DisconnectReason::SelfConnection,
            ),
        ];
        for (msgs, want) in cases {
            let mut m = machine(ConnectionKind::Regular(full_node()), t0);
            for msg in msgs.clone() {
                m.handle_message(t0, msg, 24);
            }
            let got: Vec<_> = events(&mut m)
                .into_iter()
                .filter_map(|e| match e {
                    PeerEvent::Disconnect(r) => Some(r),
                    _ => None,
                })
                .collect();
            assert_eq!(got, vec![want.clone()], "after {msgs:?}");
            assert!(!want.is_transient());
        }
    }

    #[test]
    fn address_gossip_is_budgeted_and_floods_are_cut_off() {
        let t0 = Instant::now();
        let mut m = ready(t0);
        let entry = |i: u32| {
            (
                0u32,
                Address::new(
                    &std::net::SocketAddr::from(([10, 0, (i >> 8) as u8, i as u8], 8333)),
                    full_node(),
                ),
            )
        };
        // Unsolicited: one token only.
        m.handle_message(t0, NetworkMessage::Addr((0..10).map(entry).collect()), 300);
        let accepted = |m: &mut PeerMachine| {
            events(m).into_iter().find_map(|e| match e {
                PeerEvent::Addresses { addrs, dropped } => Some((addrs.len(), dropped)),
                _ => None,
            })
        };
        assert_eq!(accepted(&mut m), Some((1, 9)));
        // After our getaddr, a full answer fits.
        m.send(t0, NetworkMessage::GetAddr);
        m.handle_message(
            t0,
            NetworkMessage::Addr((0..1000).map(entry).collect()),
            30_000,
        );
        assert_eq!(accepted(&mut m), Some((1000, 0)));
        // More than 1000 in one message is a violation.
        m.handle_message(
            t0,
            NetworkMessage::Addr((0..1001).map(entry).collect()),
            30_000,
        );
        assert_eq!(
            disconnect_reason(&mut m),
            Some(DisconnectReason::OversizedAddr(1001))
        );

        // Keep sending full messages without being asked: cut off as a flood.
        let mut m = ready(t0);
        let mut reason = None;
        for i in 0..20u64 {
            let t = t0 + Duration::from_secs(i);
            m.handle_message(
                t,
                NetworkMessage::Addr((0..1000).map(entry).collect()),
                30_000,
            );
            if let Some(r) = disconnect_reason(&mut m) {
                reason = Some((i, r));
                break;
            }
        }
        let (when, r) = reason.expect("flood never cut off");
        assert_eq!(r, DisconnectReason::Flood(Flood::Addresses));
        assert!(when >= 10, "cut off too early, after {when} messages");
    }

    #[test]
    fn ping_and_message_floods_disconnect() {
        let t0 = Instant::now();
        let mut m = ready(t0);
        let mut pongs = 0;
        for i in 0..100 {
            m.handle_message(t0, NetworkMessage::Ping(i), 32);
            pongs += transmitted(&mut m).len();
            if m.is_closed() {
                break;
            }
        }
        assert_eq!(pongs, limits::PING_BURST as usize);
        assert_eq!(
            disconnect_reason(&mut m),
            Some(DisconnectReason::Flood(Flood::Pings))
        );

        let mut m = ready(t0);
        for _ in 0..(limits::MESSAGE_BURST as usize + 10) {
            m.handle_message(t0, NetworkMessage::Inv(vec![Inventory::Error]), 61);
        }
        assert_eq!(
            disconnect_reason(&mut m),
            Some(DisconnectReason::Flood(Flood::Messages))
        );

        let mut m = ready(t0);
        m.handle_message(
            t0,
            NetworkMessage::SendHeaders,
            limits::BYTE_BURST as usize + 1,
        );
        assert_eq!(
            disconnect_reason(&mut m),
            Some(DisconnectReason::Flood(Flood::Bytes))
        );
    }

    #[test]
    fn solicited_headers_skip_the_byte_rate_but_unsolicited_ones_do_not() {
        let t0 = Instant::now();
        let big = limits::BYTE_BURST as usize + 1;
        let getheaders = || {
            NetworkMessage::GetHeaders(crate::wire::GetHeadersMessage {
                version: MIN_PROTOCOL_VERSION,
                locator_hashes: Vec::new(),
                stop_hash: bitcoin::hashes::Hash::all_zeros(),
            })
        };
        let mut m = ready(t0);
        m.send(t0, getheaders());
        m.send(t0, getheaders());
        // Two replies were asked for: both pass however big.
        m.handle_message(t0, NetworkMessage::Headers(Vec::new()), big);
        m.handle_message(t0, NetworkMessage::Headers(Vec::new()), big);
        assert!(!m.is_closed());
        // A third was not.
        m.handle_message(t0, NetworkMessage::Headers(Vec::new()), big);
        assert_eq!(
            disconnect_reason(&mut m),
            Some(DisconnectReason::Flood(Flood::Bytes))
        );
    }

    #[test]
    fn misbehaviour_accumulates_to_a_disconnect_reported_once() {
        let t0 = Instant::now();
        let mut m = ready(t0);
        m.misbehave(60, "bad headers");
        assert!(matches!(
            events(&mut m).as_slice(),
            [PeerEvent::Misbehaved { total: 60, .. }]
        ));
        m.misbehave(50, "more bad headers");
        assert_eq!(
            disconnect_reason(&mut m),
            Some(DisconnectReason::Misbehaving(110))
        );
        assert_eq!(DisconnectReason::Misbehaving(110).weight(), 100);
        // Closed machines ignore everything and never report twice.
        m.handle_message(t0, NetworkMessage::Ping(1), 32);
        m.close(DisconnectReason::PeerClosed);
        m.handle_timeout(t0 + Duration::from_secs(3600));
        assert!(events(&mut m).is_empty());
        assert!(m.poll_transmit().is_none());
    }

    #[test]
    fn an_inventory_over_core_limit_is_misbehaviour() {
        // Issue 16: Core discourages a peer for an `inv` of over 50 000.
        let t0 = Instant::now();
        let mut m = ready(t0);
        let items = vec![Inventory::Error; limits::MAX_INV_ENTRIES];
        m.handle_message(t0, NetworkMessage::Inv(items.clone()), 100);
        assert!(matches!(
            events(&mut m).as_slice(),
            [PeerEvent::Message(NetworkMessage::Inv(_))]
        ));
        let mut over = items;
        over.push(Inventory::Error);
        m.handle_message(t0, NetworkMessage::GetData(over), 100);
        assert_eq!(
            disconnect_reason(&mut m),
            Some(DisconnectReason::Misbehaving(MISBEHAVIOR_LIMIT))
        );
    }

    #[test]
    fn other_messages_reach_the_engine() {
        let t0 = Instant::now();
        let mut m = ready(t0);
        m.handle_message(t0, NetworkMessage::Headers(vec![]), 25);
        assert_eq!(
            events(&mut m),
            [PeerEvent::Message(NetworkMessage::Headers(vec![]))]
        );
    }
}
