//! One simulated connection: our peer machine, the remote's peer machine,
//! and the real wire codec between them.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bitcoin::Transaction;
use nightjar::peer::machine::MIN_PROTOCOL_VERSION;
use nightjar::peer::{ConnectionKind, DisconnectReason, PeerConfig, PeerEvent, PeerMachine};
use nightjar::transport::TransportKind;
use nightjar::wire::{
    AddrV2Message, Address, Inventory, Magic, NetworkMessage, ServiceFlags, V1Decoder,
    VersionMessage, WireError, decode_v2_contents, encode_v1, encode_v2_contents,
};

/// Bytes a BIP324 packet adds around its contents: 3 bytes of encrypted
/// length, 1 header byte and a 16-byte authentication tag.
pub const V2_PACKET_OVERHEAD: usize = 20;

/// The user agent of simulated remote peers.
pub const REMOTE_USER_AGENT: &str = "/Satoshi:28.1.0/";

/// The start height simulated remote peers announce.
pub const REMOTE_START_HEIGHT: i32 = 900_000;

/// Which end of a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Our peer machine (the one the engine talks to).
    Local,
    /// The remote peer's machine.
    Remote,
}

/// How messages are framed on a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// v1: magic, command, length, checksum, payload.
    V1,
    /// The contents of v2 packets (short id or command, payload); the
    /// encryption around them is the `bip324` crate's, tested elsewhere, and
    /// adds nothing a peer machine can see.
    V2,
}

/// One direction of a link: frames go in encoded, come out decoded, through
/// nightjar's own codec.
#[derive(Debug)]
struct Pipe {
    framing: Framing,
    magic: Magic,
    decoder: V1Decoder,
}

impl Pipe {
    fn new(framing: Framing, magic: Magic) -> Self {
        Pipe {
            framing,
            magic,
            decoder: V1Decoder::new(magic),
        }
    }

    fn encode(&self, msg: &NetworkMessage) -> Vec<u8> {
        match self.framing {
            Framing::V1 => encode_v1(self.magic, msg),
            Framing::V2 => encode_v2_contents(msg),
        }
    }

    /// The messages in one frame, each with its length on the wire.
    fn decode(&mut self, frame: &[u8]) -> Result<Vec<(NetworkMessage, usize)>, WireError> {
        match self.framing {
            Framing::V2 => {
                let msg = decode_v2_contents(frame)?;
                Ok(vec![(msg, frame.len() + V2_PACKET_OVERHEAD)])
            }
            Framing::V1 => {
                self.decoder.push(frame);
                let mut out = Vec::new();
                // Frames arrive whole, one message each, so a message's
                // wire length is its frame's.
                while let Some(msg) = self.decoder.next_message()? {
                    out.push((msg, frame.len()));
                }
                Ok(out)
            }
        }
    }
}

/// What the remote does beyond following the protocol.
#[derive(Debug, Clone)]
pub struct RemoteScript {
    /// Its `getaddr` answer (sent once, if not empty).
    pub gossip: Vec<AddrV2Message>,
    /// Whether it sends a duplicate `version` after the handshake.
    pub misbehave: bool,
}

/// Frames produced by one round of pumping, by direction.
#[derive(Debug, Default)]
pub struct Flush {
    /// Frames for the remote (sent by our machine).
    pub to_remote: Vec<Vec<u8>>,
    /// Frames for our machine (sent by the remote).
    pub to_local: Vec<Vec<u8>>,
    /// Events of our machine for the engine, in order (never `Disconnect`).
    pub events: Vec<PeerEvent>,
    /// Our machine closed, for this reason; it reports nothing more.
    pub closed: Option<DisconnectReason>,
    /// The remote closed the connection (our side learns it a latency later).
    pub remote_closed: bool,
    /// Transactions the remote received (it asked for each with `getdata`).
    pub txs: Vec<Transaction>,
}

/// A connection with both ends running.
#[derive(Debug)]
pub struct Link {
    local: PeerMachine,
    remote: PeerMachine,
    remote_version: VersionMessage,
    to_local: Pipe,
    to_remote: Pipe,
    latency: Duration,
    script: RemoteScript,
    answered_getaddr: bool,
    misbehaved: bool,
    remote_closed: bool,
    /// The last `feefilter` our machine sent (sat/kvB), if any.
    fee_filter: Option<i64>,
    /// When the simulator last scheduled a wake-up for this link's timers.
    pub next_wake: Option<Duration>,
}

/// The remote's identity on a link.
#[derive(Debug, Clone, Copy)]
pub struct RemoteIdentity {
    /// Its `version` nonce.
    pub nonce: u64,
    /// Its ping nonce seed.
    pub ping_seed: u64,
    /// Its announced services.
    pub services: ServiceFlags,
}

/// Everything a link needs to start.
#[derive(Debug, Clone)]
pub struct LinkSetup {
    /// Our machine's configuration (from the engine's `DialRequest`).
    pub local: PeerConfig,
    /// The remote's identity.
    pub remote: RemoteIdentity,
    /// The transport the dial established.
    pub transport: TransportKind,
    /// The chain's network magic.
    pub magic: Magic,
    /// One-way latency.
    pub latency: Duration,
    /// The remote's script.
    pub script: RemoteScript,
    /// Unix time now (the remote's `version` timestamp).
    pub unix_now: u64,
    /// Whether the remote opened the connection (an inbound peer of ours):
    /// then it speaks first.
    pub remote_initiates: bool,
}

impl Link {
    /// A link that came up at `now`.
    pub fn new(setup: LinkSetup, now: Instant) -> Self {
        let LinkSetup {
            local,
            remote,
            transport,
            magic,
            latency,
            script,
            unix_now,
            remote_initiates,
        } = setup;
        let unroutable = SocketAddr::from(([0, 0, 0, 0], 0));
        let remote_version = VersionMessage {
            version: MIN_PROTOCOL_VERSION,
            services: remote.services,
            timestamp: i64::try_from(unix_now).unwrap_or(i64::MAX),
            receiver: Address::new(&unroutable, ServiceFlags::NONE),
            sender: Address::new(&unroutable, remote.services),
            nonce: remote.nonce,
            user_agent: REMOTE_USER_AGENT.to_owned(),
            start_height: REMOTE_START_HEIGHT,
            relay: true,
        };
        // A remote that dials us is an outbound machine; one we dialled
        // answers as an inbound one. (An added peer's kind demands no
        // services of us, which is what a node dialling a non-serving
        // peer on purpose does.)
        let remote_kind = if remote_initiates {
            ConnectionKind::Manual
        } else {
            ConnectionKind::Inbound
        };
        let remote_config = PeerConfig {
            kind: remote_kind,
            our_version: remote_version.clone(),
            ping_seed: remote.ping_seed,
        };
        let framing = match transport {
            TransportKind::V1 => Framing::V1,
            TransportKind::V2 { .. } => Framing::V2,
        };
        Link {
            local: PeerMachine::new(local, now),
            remote: PeerMachine::new(remote_config, now),
            remote_version,
            to_local: Pipe::new(framing, magic),
            to_remote: Pipe::new(framing, magic),
            latency,
            script,
            answered_getaddr: false,
            misbehaved: false,
            remote_closed: false,
            fee_filter: None,
            next_wake: None,
        }
    }

    /// One-way latency.
    pub fn latency(&self) -> Duration {
        self.latency
    }

    /// Our machine (read-only).
    pub fn local(&self) -> &PeerMachine {
        &self.local
    }

    /// Queue a message from the engine on our machine.
    pub fn send(&mut self, now: Instant, msg: NetworkMessage) {
        self.local.send(now, msg);
    }

    /// Score the remote on our machine (the engine found it misbehaving).
    pub fn misbehave(&mut self, points: u32, what: &'static str) {
        self.local.misbehave(points, what);
    }

    /// Close our end for `reason` (the engine asked, or the remote left).
    pub fn close_local(&mut self, reason: DisconnectReason) {
        self.local.close(reason);
    }

    /// The remote announces `msg` (an `inv`, say) to our machine.
    pub fn remote_send(&mut self, now: Instant, msg: NetworkMessage) {
        self.remote.send(now, msg);
    }

    /// The `feefilter` our machine last sent on this link.
    pub fn fee_filter(&self) -> Option<i64> {
        self.fee_filter
    }

    /// Whether the remote would announce a transaction paying
    /// `rate_sat_per_kvb` to our machine: we asked for relay in our
    /// `version`, and our `feefilter` (if any) lets it through, as Core's
    /// announcement filter does.
    pub fn remote_would_announce(&self, rate_sat_per_kvb: i64) -> bool {
        self.remote.info().is_some_and(|i| i.relay)
            && self.fee_filter.is_none_or(|f| rate_sat_per_kvb >= f)
    }

    /// The remote closes its end.
    pub fn close_remote(&mut self) {
        self.remote
            .close(DisconnectReason::Local("scripted drop".into()));
    }

    /// Frames arrive at `to`.
    pub fn deliver(&mut self, to: Side, now: Instant, frames: &[Vec<u8>]) {
        let (pipe, machine) = match to {
            Side::Local => (&mut self.to_local, &mut self.local),
            Side::Remote => (&mut self.to_remote, &mut self.remote),
        };
        for frame in frames {
            match pipe.decode(frame) {
                Ok(msgs) => {
                    for (msg, len) in msgs {
                        machine.handle_message(now, msg, len);
                    }
                }
                Err(e) => machine.close(DisconnectReason::Wire(e)),
            }
        }
    }

    /// Both machines' deadlines that have come.
    pub fn handle_timeouts(&mut self, now: Instant) {
        for machine in [&mut self.local, &mut self.remote] {
            if machine.poll_timeout().is_some_and(|t| t <= now) {
                machine.handle_timeout(now);
            }
        }
    }

    /// The earlier of the two machines' deadlines.
    pub fn poll_timeout(&self) -> Option<Instant> {
        [self.local.poll_timeout(), self.remote.poll_timeout()]
            .into_iter()
            .flatten()
            .min()
    }

    /// Drains both machines: what each wants sent, what ours reports, and
    /// the remote's scripted reactions, until nothing more comes out.
    pub fn flush(&mut self, now: Instant) -> Flush {
        let mut out = Flush::default();
        loop {
            let mut progress = false;
            while let Some(msg) = self.local.poll_transmit() {
                out.to_remote.push(self.to_remote.encode(&msg));
                progress = true;
            }
            while let Some(event) = self.remote.poll_event() {
                progress = true;
                self.remote_event(now, event, &mut out);
            }
            while let Some(msg) = self.remote.poll_transmit() {
                out.to_local.push(self.to_local.encode(&msg));
                progress = true;
            }
            while let Some(event) = self.local.poll_event() {
                progress = true;
                match event {
                    PeerEvent::Disconnect(reason) => out.closed = Some(reason),
                    other => out.events.push(other),
                }
            }
            if !progress {
                return out;
            }
        }
    }

    fn remote_event(&mut self, now: Instant, event: PeerEvent, out: &mut Flush) {
        match event {
            PeerEvent::HandshakeComplete(_) if self.script.misbehave && !self.misbehaved => {
                self.misbehaved = true;
                // Sent as raw bytes: the remote's machine would never send a
                // second version itself.
                let dup = NetworkMessage::Version(self.remote_version.clone());
                out.to_local.push(self.to_local.encode(&dup));
            }
            PeerEvent::Message(NetworkMessage::GetAddr)
                if !self.answered_getaddr && !self.script.gossip.is_empty() =>
            {
                self.answered_getaddr = true;
                self.remote
                    .send(now, NetworkMessage::AddrV2(self.script.gossip.clone()));
            }
            // The simulated peers know no block beyond genesis, as Core
            // answers then: an empty `headers`.
            PeerEvent::Message(NetworkMessage::GetHeaders(_)) => {
                self.remote.send(now, NetworkMessage::Headers(Vec::new()));
            }
            // A remote that is offered a transaction asks for it once, as
            // a Core node with an empty mempool does: by wtxid if the
            // offer came so, else by txid with witness.
            PeerEvent::Message(NetworkMessage::Inv(items)) => {
                let wanted: Vec<Inventory> = items
                    .iter()
                    .filter_map(|i| match i {
                        Inventory::WTx(w) => Some(Inventory::WTx(*w)),
                        Inventory::Transaction(t) => Some(Inventory::WitnessTransaction(*t)),
                        _ => None,
                    })
                    .collect();
                if !wanted.is_empty() {
                    self.remote.send(now, NetworkMessage::GetData(wanted));
                }
            }
            PeerEvent::Message(NetworkMessage::Tx(tx)) => out.txs.push(tx),
            PeerEvent::Message(NetworkMessage::FeeFilter(rate)) => self.fee_filter = Some(rate),
            PeerEvent::Disconnect(_) if !self.remote_closed => {
                self.remote_closed = true;
                out.remote_closed = true;
            }
            _ => {}
        }
    }
}
