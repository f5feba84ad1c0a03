//! Scenario tests of the engine, with hand-made time and a seeded RNG.

use std::time::{Duration, Instant};

use nightjar_tor::Target;
use rand::SeedableRng;
use rand::rngs::StdRng;

use super::conn_manager::{GETADDR_CACHE_LIFETIME, GETADDR_CACHE_SPREAD};
use super::*;
use crate::addrman::{AddrManKey, AddrRecord, AddrSource, InternalSource};
use crate::netaddr::NetAddr;
use crate::peer::{ConnectionKind, DisconnectReason, PeerEvent, PeerInfo, PeerReport};
use crate::transport::{TransportKind, V1Fallback};
use crate::wire::ServiceFlags;

const ONION_A: &str = "pg6mmjiyjmcrsslvykfwnntlaru7p5svn6y2ymmju6nubxndf4pscryd.onion:18444";

/// The unix time scenario clocks start at, unless a test picks its own.
pub(super) const UNIX_START: u64 = 1_700_000_000;

/// An engine with a hand-driven clock.
pub(super) struct Harness {
    pub(super) engine: Engine,
    base: Instant,
    pub(super) now: Duration,
    unix_start: u64,
}

impl Harness {
    pub(super) fn new(config: EngineConfig) -> Self {
        let mut rng = StdRng::seed_from_u64(7);
        let addrman = AddrMan::new(config.network, AddrManKey::generate(&mut rng));
        Harness {
            engine: Engine::new(config, addrman, [9; 32]),
            base: Instant::now(),
            now: Duration::ZERO,
            unix_start: UNIX_START,
        }
    }

    /// The engine starts from `chain` instead of genesis.
    pub(super) fn with_chain(self, chain: crate::chain::HeaderChain) -> Self {
        Harness {
            engine: self.engine.with_chain(chain),
            ..self
        }
    }

    /// The wall clock starts at `unix` instead of [`UNIX_START`].
    pub(super) fn starting_at(mut self, unix: u64) -> Self {
        self.unix_start = unix;
        self
    }

    pub(super) fn t(&self) -> Now {
        Now {
            mono: self.base + self.now,
            unix: self.unix_start + self.now.as_secs(),
        }
    }

    pub(super) fn input(&mut self, input: Input) -> Vec<Output> {
        let t = self.t();
        self.engine.handle(t, input);
        std::iter::from_fn(|| self.engine.poll_output()).collect()
    }

    pub(super) fn advance(&mut self, by: Duration) -> Vec<Output> {
        let mut out = Vec::new();
        let end = self.now + by;
        while self.now < end {
            self.now += Duration::from_secs(1);
            out.extend(self.input(Input::Tick));
        }
        out
    }

    pub(super) fn learn(&mut self, addrs: &[NetAddr]) {
        let records: Vec<AddrRecord> = addrs
            .iter()
            .map(|a| AddrRecord {
                addr: *a,
                services: ServiceFlags::NETWORK | ServiceFlags::WITNESS,
                last_seen: 1_700_000_000,
            })
            .collect();
        let mut rng = StdRng::seed_from_u64(1);
        let src = AddrSource::Internal(InternalSource::named("test"));
        self.engine
            .addrman
            .add(&records, &src, 1_700_000_000, &mut rng);
    }

    pub(super) fn handshake(&mut self, conn: ConnId) -> Vec<Output> {
        self.handshake_at_height(conn, 0)
    }

    /// Connect `conn` and complete its handshake; it claims `start_height`.
    pub(super) fn handshake_at_height(&mut self, conn: ConnId, start_height: i32) -> Vec<Output> {
        let mut out = self.input(Input::Connected {
            conn,
            transport: TransportKind::V2 {
                session_id: [1; 32],
            },
            circuit: None,
        });
        out.extend(self.input(Input::Peer(PeerUpdate {
            conn,
            report: PeerReport::Event(PeerEvent::HandshakeComplete(PeerInfo {
                start_height,
                ..info(conn.0)
            })),
        })));
        out
    }
}

fn info(nonce: u64) -> PeerInfo {
    PeerInfo {
        version: 70016,
        services: ServiceFlags::NETWORK | ServiceFlags::WITNESS,
        user_agent: "/test/".into(),
        start_height: 0,
        nonce: nonce + 1_000_000,
        relay: false,
        wtxid_relay: true,
        addrv2: true,
    }
}

pub(super) fn dials(out: &[Output]) -> Vec<DialRequest> {
    out.iter()
        .filter_map(|o| match o {
            Output::Dial(d) => Some(d.clone()),
            _ => None,
        })
        .collect()
}

/// Routable IPv4 addresses in distinct /16s.
pub(super) fn ipv4_addrs(n: u8) -> Vec<NetAddr> {
    (0..n)
        .map(|i| format!("{}.{}.1.1:18444", 20 + i, i).parse().unwrap())
        .collect()
}

#[test]
fn nothing_is_dialled_until_tor_is_ready() {
    let mut config = EngineConfig::new(bitcoin::Network::Regtest);
    config.addnodes = vec![ONION_A.parse().unwrap()];
    let mut h = Harness::new(config);
    h.learn(&ipv4_addrs(20));
    let out = h.advance(Duration::from_secs(30));
    assert!(dials(&out).is_empty(), "{out:?}");
    let out = h.input(Input::TorReady(true));
    assert!(!dials(&out).is_empty());
}

#[test]
fn regular_dials_fill_the_target_in_batches_and_never_exceed_it() {
    let mut config = EngineConfig::new(bitcoin::Network::Regtest);
    config.target_outbound = 6;
    let mut h = Harness::new(config);
    h.learn(&ipv4_addrs(40));
    // One dial at once, then one per round (paced), until a batch is in
    // flight.
    let mut first = dials(&h.input(Input::TorReady(true)));
    assert_eq!(first.len(), 1, "paced");
    first.extend(dials(&h.advance(Duration::from_secs(10))));
    assert_eq!(first.len(), conn_manager::DIAL_BATCH);
    assert!(
        first
            .iter()
            .all(|d| matches!(d.kind, ConnectionKind::Regular(_)))
    );
    // As dials complete, the batch frees up and the rest of the slots fill.
    let mut more = Vec::new();
    for d in &first {
        more.extend(dials(&h.handshake(d.conn)));
    }
    more.extend(dials(&h.advance(Duration::from_secs(5))));
    assert_eq!(more.len(), 2, "only up to the target");
    for d in &more {
        h.handshake(d.conn);
    }
    assert!(
        dials(&h.advance(Duration::from_secs(60)))
            .iter()
            .all(|d| d.kind == ConnectionKind::Feeler)
    );
    assert_eq!(h.engine.peers().regular_count(), 6);
    // Every regular peer shares the per-kind group; addresses are distinct.
    let all: Vec<_> = first.iter().chain(&more).collect();
    assert!(all.iter().all(|d| d.isolation == all[0].isolation));
    let mut targets: Vec<_> = all.iter().map(|d| d.target.to_string()).collect();
    targets.sort();
    targets.dedup();
    assert_eq!(targets.len(), 6);
    // v2 only for automatic peers.
    assert!(all.iter().all(|d| d.v1 == V1Fallback::Forbidden));
}

#[test]
fn connect_dials_only_the_fixed_peer_as_manual_with_v1_allowed() {
    let mut config = EngineConfig::new(bitcoin::Network::Regtest);
    let fixed: Target = "127.0.0.1:18444".parse().unwrap();
    config.connect = vec![fixed.clone()];
    let mut h = Harness::new(config);
    h.learn(&ipv4_addrs(20));
    let out = h.input(Input::TorReady(true));
    let d = dials(&out);
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].target, fixed);
    assert_eq!(d[0].kind, ConnectionKind::Manual);
    assert_eq!(d[0].v1, V1Fallback::Allowed);
    h.handshake(d[0].conn);
    assert!(dials(&h.advance(Duration::from_secs(600))).is_empty());
}

#[test]
fn privacy_refuses_clearnet_peers_v1_and_shared_circuits() {
    let mut config = EngineConfig::new(bitcoin::Network::Regtest);
    config.privacy = true;
    config.v1_fallback = true;
    config.addnodes = vec!["127.0.0.1:18444".parse().unwrap(), ONION_A.parse().unwrap()];
    let mut h = Harness::new(config);
    h.learn(&ipv4_addrs(20));
    let onions: Vec<NetAddr> = (0u8..8)
        .map(|i| NetAddr::new(crate::netaddr::Host::TorV3([i * 16 + 1; 32]), 18444))
        .collect();
    h.learn(&onions);
    let mut all = dials(&h.input(Input::TorReady(true)));
    all.extend(dials(&h.advance(Duration::from_secs(5))));
    assert!(all.len() >= 2);
    for d in &all {
        assert!(matches!(d.target, Target::Onion { .. }), "{}", d.target);
        assert_eq!(d.v1, V1Fallback::Forbidden);
    }
    let mut groups: Vec<_> = all.iter().map(|d| d.isolation.group).collect();
    groups.sort();
    groups.dedup();
    assert_eq!(groups.len(), all.len(), "a circuit group per connection");
}

#[test]
fn a_dial_that_hangs_is_abandoned_and_the_address_not_retried_at_once() {
    let mut config = EngineConfig::new(bitcoin::Network::Regtest);
    config.target_outbound = 1;
    let mut h = Harness::new(config);
    h.learn(&ipv4_addrs(1));
    let d = dials(&h.input(Input::TorReady(true)));
    assert_eq!(d.len(), 1);
    let out = h.advance(conn_manager::DIAL_TIMEOUT);
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::Disconnect { conn, .. } if *conn == d[0].conn))
    );
    assert!(h.engine.peers().is_empty());
    // The only address just failed: not dialled again within the redial interval.
    assert!(dials(&out).is_empty());
}

#[test]
fn a_feeler_asks_for_addresses_and_leaves_after_the_reply() {
    let mut config = EngineConfig::new(bitcoin::Network::Regtest);
    config.target_outbound = 1;
    config.feeler_interval = Duration::from_secs(5);
    let mut h = Harness::new(config);
    h.learn(&ipv4_addrs(10));
    let d = dials(&h.input(Input::TorReady(true)));
    h.handshake(d[0].conn);
    let mut feeler = None;
    for _ in 0..120 {
        if let Some(f) = dials(&h.advance(Duration::from_secs(1)))
            .into_iter()
            .find(|d| d.kind == ConnectionKind::Feeler)
        {
            feeler = Some(f);
            break;
        }
    }
    let feeler = feeler.expect("a feeler within two minutes");
    assert_ne!(feeler.isolation.group, d[0].isolation.group);
    let out = h.handshake(feeler.conn);
    assert!(out.iter().any(
        |o| matches!(o, Output::Send { conn, msg: NetworkMessage::GetAddr } if *conn == feeler.conn)
    ));
    let out = h.input(Input::Peer(PeerUpdate {
        conn: feeler.conn,
        report: PeerReport::Event(PeerEvent::Addresses {
            addrs: vec![],
            dropped: 0,
        }),
    }));
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::Disconnect { conn, .. } if *conn == feeler.conn))
    );
    assert_eq!(h.engine.peers().regular_count(), 1, "feelers never count");
}

#[test]
fn a_connection_to_ourselves_is_dropped() {
    let mut config = EngineConfig::new(bitcoin::Network::Regtest);
    config.target_outbound = 2;
    let mut h = Harness::new(config);
    h.learn(&ipv4_addrs(5));
    let mut d = dials(&h.input(Input::TorReady(true)));
    d.extend(dials(&h.advance(Duration::from_secs(2))));
    assert_eq!(d.len(), 2);
    // conn B receives the version we sent on conn A.
    h.input(Input::Connected {
        conn: d[1].conn,
        transport: TransportKind::V1,
        circuit: None,
    });
    let out = h.input(Input::Peer(PeerUpdate {
        conn: d[1].conn,
        report: PeerReport::Event(PeerEvent::VersionNonce(d[0].peer.our_version.nonce)),
    }));
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::Disconnect { conn, .. } if *conn == d[1].conn))
    );
}

#[test]
fn manual_peers_are_retried_with_backoff_and_never_discouraged() {
    let mut config = EngineConfig::new(bitcoin::Network::Regtest);
    config.addnodes = vec![ONION_A.parse().unwrap()];
    config.target_outbound = 0;
    let mut h = Harness::new(config);
    let d = dials(&h.input(Input::TorReady(true)));
    assert_eq!(d.len(), 1);
    h.handshake(d[0].conn);
    let out = h.input(Input::Peer(PeerUpdate {
        conn: d[0].conn,
        report: PeerReport::Closed(DisconnectReason::Misbehaving(100)),
    }));
    assert!(dials(&out).is_empty(), "not at once");
    let again = dials(&h.advance(manual::MANUAL_RETRY_MIN));
    assert_eq!(again.len(), 1, "retried after the backoff");
    let fail = DialFailure {
        reason: "unreachable".into(),
        peer_at_fault: true,
    };
    h.input(Input::DialFailed {
        conn: again[0].conn,
        failure: fail,
    });
    assert!(
        dials(&h.advance(manual::MANUAL_RETRY_MIN)).is_empty(),
        "backs off"
    );
    assert_eq!(dials(&h.advance(manual::MANUAL_RETRY_MIN)).len(), 1);
}

#[test]
fn same_seed_and_inputs_give_the_same_outputs() {
    let run = || {
        let mut config = EngineConfig::new(bitcoin::Network::Regtest);
        config.feeler_interval = Duration::from_secs(3);
        let mut h = Harness::new(config);
        h.learn(&ipv4_addrs(30));
        let mut out = h.input(Input::TorReady(true));
        for d in dials(&out) {
            out.extend(h.handshake(d.conn));
        }
        out.extend(h.advance(Duration::from_secs(300)));
        format!("{out:?}")
    };
    assert_eq!(run(), run());
}

#[test]
fn shutdown_disconnects_everyone_and_persists() {
    let mut h = Harness::new(EngineConfig::new(bitcoin::Network::Regtest));
    h.learn(&ipv4_addrs(10));
    let d = dials(&h.input(Input::TorReady(true)));
    let out = h.input(Input::Shutdown);
    for dial in &d {
        assert!(
            out.iter()
                .any(|o| matches!(o, Output::Disconnect { conn, .. } if *conn == dial.conn))
        );
    }
    let Some(Output::PersistAddresses(bytes)) = out.last() else {
        panic!("persist last: {out:?}");
    };
    let back = AddrMan::from_bytes(bytes, bitcoin::Network::Regtest).unwrap();
    assert_eq!(back.len(), 10);
    assert!(dials(&h.advance(Duration::from_secs(60))).is_empty());
    assert_eq!(h.engine.poll_timeout(), None);
}

#[test]
fn the_engine_sleeps_until_its_next_timer_not_every_second() {
    let fixed: Target = ONION_A.parse().unwrap();
    let mut config = EngineConfig::new(bitcoin::Network::Regtest);
    config.connect = vec![fixed];
    let mut h = Harness::new(config);
    let out = h.input(Input::TorReady(true));
    let conn = dials(&out)[0].conn;
    // While a dial is out, its deadline is a timer; nothing else is due
    // and no slot waits, so the engine sleeps past the one-second floor.
    let dialling = h.engine.poll_timeout().unwrap() - h.t().mono;
    assert!(dialling > MAINTENANCE_INTERVAL, "{dialling:?}");
    assert!(dialling <= IDLE_INTERVAL, "{dialling:?}");
    h.handshake(conn);
    // Connected and idle: the idle cap, unless a timer comes sooner.
    let idle = h.engine.poll_timeout().unwrap() - h.t().mono;
    assert_eq!(idle, IDLE_INTERVAL);

    // Unfilled regular slots keep the one-second retry of today.
    let mut h = Harness::new(EngineConfig::new(bitcoin::Network::Regtest));
    h.input(Input::TorReady(true));
    let wanting = h.engine.poll_timeout().unwrap() - h.t().mono;
    assert_eq!(wanting, MAINTENANCE_INTERVAL);
}

fn listening(max_inbound: usize) -> Harness {
    let mut config = EngineConfig::new(bitcoin::Network::Regtest);
    config.connect = vec![ONION_A.parse().unwrap()];
    config.max_inbound = max_inbound;
    let mut h = Harness::new(config);
    h.input(Input::TorReady(true));
    h
}

fn accepted(out: &[Output]) -> Vec<AcceptRequest> {
    out.iter()
        .filter_map(|o| match o {
            Output::Accept(a) => Some(a.clone()),
            _ => None,
        })
        .collect()
}

fn refused(out: &[Output]) -> Vec<&'static str> {
    out.iter()
        .filter_map(|o| match o {
            Output::Refuse { reason, .. } => Some(*reason),
            _ => None,
        })
        .collect()
}

#[test]
fn an_accepted_stream_becomes_an_inbound_connection_outside_the_address_book() {
    let mut h = listening(4);
    let remote: std::net::SocketAddr = "203.0.113.7:50000".parse().unwrap();
    let out = h.input(Input::Accepted {
        link: 9,
        from: InboundFrom::Tcp(remote),
    });
    let a = accepted(&out);
    assert_eq!(a.len(), 1, "{out:?}");
    assert_eq!(a[0].link, 9);
    assert!(a[0].allow_v1);
    assert_eq!(a[0].peer.kind, ConnectionKind::Inbound);
    // Our version tells them their address as we saw it, and nothing of ours.
    let v = &a[0].peer.our_version;
    assert_eq!(v.receiver.socket_addr().unwrap(), remote);
    assert_eq!(
        v.sender.socket_addr().unwrap(),
        "0.0.0.0:0".parse().unwrap()
    );
    let conn = a[0].conn;
    h.handshake(conn);
    let entry = h.engine.peers().get(conn).unwrap();
    assert_eq!(entry.kind, ConnectionKind::Inbound);
    assert!(entry.addr.is_none() && entry.isolation.is_none());
    assert_eq!(h.engine.addrman().info().all_networks().total(), 0);
    // Inbound peers are not asked for addresses (we answer theirs).
    let sent_getaddr = h
        .input(Input::Tick)
        .iter()
        .any(|o| matches!(o, Output::Send { conn: c, msg: NetworkMessage::GetAddr } if *c == conn));
    assert!(!sent_getaddr);
}

#[test]
fn inbound_is_refused_when_not_listening_full_or_from_a_crowded_netgroup() {
    let mut h = listening(0);
    let out = h.input(Input::Accepted {
        link: 1,
        from: InboundFrom::Tcp("203.0.113.7:1".parse().unwrap()),
    });
    assert_eq!(refused(&out), ["not accepting connections"]);

    let mut h = listening(10);
    // Eight from one /16 (81.2.0.0) are let in; the ninth is not.
    for i in 0..8u16 {
        let remote = format!("81.2.100.{i}:{}", 1000 + i).parse().unwrap();
        let out = h.input(Input::Accepted {
            link: u64::from(i),
            from: InboundFrom::Tcp(remote),
        });
        assert_eq!(accepted(&out).len(), 1, "{out:?}");
    }
    let out = h.input(Input::Accepted {
        link: 8,
        from: InboundFrom::Tcp("81.2.200.1:1".parse().unwrap()),
    });
    assert_eq!(
        refused(&out),
        ["too many connections from its network group"],
        "{out:?}"
    );
    // Two more from elsewhere fill the ten slots; the next one is refused.
    for (link, remote) in [(20, "192.0.2.1:1"), (21, "100.64.0.1:1")] {
        h.input(Input::Accepted {
            link,
            from: InboundFrom::Tcp(remote.parse().unwrap()),
        });
    }
    let out = h.input(Input::Accepted {
        link: 30,
        from: InboundFrom::Tcp("203.0.113.99:1".parse().unwrap()),
    });
    assert_eq!(refused(&out), ["inbound slots full"], "{out:?}");
}

#[test]
fn an_inbound_stream_that_never_finishes_its_handshake_is_dropped() {
    let mut h = listening(4);
    let out = h.input(Input::Accepted {
        link: 1,
        from: InboundFrom::Tcp("203.0.113.7:1".parse().unwrap()),
    });
    let conn = accepted(&out)[0].conn;
    let out = h.advance(super::inbound::INBOUND_HANDSHAKE_TIMEOUT + Duration::from_secs(1));
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::Disconnect { conn: c, .. } if *c == conn)),
        "{out:?}"
    );
    assert!(h.engine.peers().get(conn).is_none());
}

#[test]
fn a_full_house_evicts_one_inbound_peer_from_the_most_crowded_group() {
    let mut h = listening(30);
    // Eight each from three /16s, six from a fourth: all complete their
    // handshakes.
    let mut conns = Vec::new();
    for i in 0..30u8 {
        h.now += Duration::from_secs(1);
        let remote = format!("81.{}.0.{}:1", 2 + i / 8, i % 8);
        let out = h.input(Input::Accepted {
            link: u64::from(i),
            from: InboundFrom::Tcp(remote.parse().unwrap()),
        });
        let conn = accepted(&out)[0].conn;
        h.handshake(conn);
        conns.push(conn);
    }
    let evicted = |out: &[Output]| -> Vec<ConnId> {
        out.iter()
            .filter_map(|o| match o {
                Output::Disconnect { conn, reason } if reason.contains("evicted") => Some(*conn),
                _ => None,
            })
            .collect()
    };
    let out = h.input(Input::Accepted {
        link: 99,
        from: InboundFrom::Tcp("203.0.113.5:1".parse().unwrap()),
    });
    assert_eq!(accepted(&out).len(), 1, "{out:?}");
    let first = evicted(&out);
    assert_eq!(first.len(), 1, "{out:?}");
    // Protected: one per group (4), then by ping (8; none measured, so the
    // oldest), by useful headers (4; none), then half of the other 14 by
    // uptime. The 7 youngest are left: the six of 81.5 and one of 81.4, so
    // 81.5 is the most crowded group and loses its youngest member.
    assert_eq!(first, [conns[29]]);
    // While its disconnect is on the way it holds no slot: the next
    // newcomer makes room by evicting someone else, not the same peer.
    let out = h.input(Input::Accepted {
        link: 100,
        from: InboundFrom::Tcp("203.0.113.6:1".parse().unwrap()),
    });
    assert_eq!(accepted(&out).len(), 1, "{out:?}");
    let second = evicted(&out);
    assert_eq!(second.len(), 1, "{out:?}");
    assert_ne!(second[0], first[0]);
    let holding = h
        .engine
        .peers()
        .iter()
        .filter(|e| e.kind == ConnectionKind::Inbound && !e.evicted)
        .count();
    assert_eq!(holding, 30);
}

#[test]
fn user_commands_are_inputs_with_their_own_answers() {
    let mut h = Harness::new(EngineConfig::new(bitcoin::Network::Regtest));
    let peer: Target = ONION_A.parse().unwrap();
    let t = h.t();
    assert_eq!(
        h.engine.command(t, Command::OneTry(peer.clone())),
        Err(CommandError::Refused("Tor is not ready yet"))
    );
    h.input(Input::TorReady(true));
    let t = h.t();
    let Ok(CommandReply::Dialling(conn)) = h.engine.command(t, Command::OneTry(peer.clone()))
    else {
        panic!("onetry did not dial");
    };
    let out: Vec<Output> = std::iter::from_fn(|| h.engine.poll_output()).collect();
    assert!(
        dials(&out)
            .iter()
            .any(|d| d.conn == conn && d.target == peer)
    );
    assert_eq!(
        h.engine.command(t, Command::AddNode(peer.clone())),
        Ok(CommandReply::Done)
    );
    assert_eq!(
        h.engine.command(t, Command::AddNode(peer.clone())),
        Err(CommandError::AlreadyAdded)
    );
    let gone = ConnId(9_999);
    assert_eq!(
        h.engine.command(
            t,
            Command::Disconnect {
                conn: gone,
                reason: "test".into()
            }
        ),
        Err(CommandError::NotConnected)
    );
    assert_eq!(
        h.engine.command(
            t,
            Command::Disconnect {
                conn,
                reason: "test".into()
            }
        ),
        Ok(CommandReply::Done)
    );
    assert!(
        std::iter::from_fn(|| h.engine.poll_output())
            .any(|o| matches!(o, Output::Disconnect { conn: c, .. } if c == conn))
    );
}

#[test]
fn a_ban_closes_matching_connections_refuses_newcomers_and_is_saved() {
    let mut h = listening(8);
    let out = h.input(Input::Accepted {
        link: 1,
        from: InboundFrom::Tcp("203.0.113.7:5000".parse().unwrap()),
    });
    let inside = accepted(&out)[0].conn;
    h.handshake(inside);
    let out = h.input(Input::Accepted {
        link: 2,
        from: InboundFrom::Tcp("198.18.0.1:5000".parse().unwrap()),
    });
    let outside = accepted(&out)[0].conn;
    h.handshake(outside);
    let t = h.t();
    let until = t.unix + 3600;
    let subnet: ipnet::IpNet = "203.0.113.0/24".parse().unwrap();
    assert_eq!(
        h.engine.command(t, Command::Ban { subnet, until }),
        Ok(CommandReply::Done)
    );
    assert_eq!(
        h.engine.command(t, Command::Ban { subnet, until }),
        Err(CommandError::AlreadyBanned)
    );
    let out: Vec<Output> = std::iter::from_fn(|| h.engine.poll_output()).collect();
    let closed: Vec<ConnId> = out
        .iter()
        .filter_map(|o| match o {
            Output::Disconnect { conn, .. } => Some(*conn),
            _ => None,
        })
        .collect();
    assert_eq!(closed, [inside]);
    let saved = out
        .iter()
        .find_map(|o| match o {
            Output::PersistBans(bytes) => Some(bytes.clone()),
            _ => None,
        })
        .unwrap();
    let restored = super::banlist::BanList::from_bytes(&saved).unwrap();
    assert!(restored.is_banned("203.0.113.99".parse().unwrap(), t.unix));
    let out = h.input(Input::Accepted {
        link: 3,
        from: InboundFrom::Tcp("203.0.113.8:1".parse().unwrap()),
    });
    assert_eq!(refused(&out), ["address banned"]);
    // When the ban ends it is dropped, and the file rewritten.
    h.now += Duration::from_secs(3601);
    let out = h.input(Input::Tick);
    assert!(
        out.iter().any(|o| matches!(o, Output::PersistBans(_))),
        "{out:?}"
    );
    assert_eq!(h.engine.bans().iter().count(), 0);
}

#[test]
fn onion_inbound_peers_skip_the_group_share_and_our_onion_is_announced_to_outbound_peers() {
    let ours: Target = "pg6mmjiyjmcrsslvykfwnntlaru7p5svn6y2ymmju6nubxndf4pscryd.onion:18444"
        .parse()
        .unwrap();
    let mut h = listening(10);
    // The manual (--connect) peer dialled at start completes its handshake
    // before our service is up: it hears of it when the service is.
    let dialled = h
        .engine
        .peers()
        .iter()
        .find(|e| e.kind == ConnectionKind::Manual)
        .unwrap()
        .conn;
    h.handshake(dialled);
    let out = h.input(Input::LocalOnion(Some(ours.clone())));
    let announced: Vec<_> = out
        .iter()
        .filter_map(|o| match o {
            Output::Send {
                conn,
                msg: NetworkMessage::AddrV2(a),
            } => Some((*conn, a.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(announced.len(), 1, "{out:?}");
    assert_eq!(announced[0].0, dialled);
    let record = crate::addrman::AddrRecord::from_addrv2(&announced[0].1[0]).unwrap();
    assert_eq!(addr_to_target_for_test(&record.addr), ours);
    assert_eq!(record.services, ServiceFlags::NONE);
    assert_eq!(
        h.engine.local_onion().map(|a| a.to_string()),
        Some(ours.to_string())
    );

    // Twelve anonymous onion streams: no group share applies, only the
    // ten slots.
    let mut accepted_n = 0;
    for link in 0..12 {
        let out = h.input(Input::Accepted {
            link,
            from: InboundFrom::Onion(ours.clone()),
        });
        let a = accepted(&out);
        if let Some(first) = a.first().filter(|_| link == 0) {
            // Our version to an anonymous peer names no address at all.
            let unroutable = "0.0.0.0:0".parse().unwrap();
            assert_eq!(
                first.peer.our_version.receiver.socket_addr().unwrap(),
                unroutable
            );
            assert_eq!(
                first.peer.our_version.sender.socket_addr().unwrap(),
                unroutable
            );
        }
        accepted_n += a.len();
        if link >= 10 {
            assert_eq!(refused(&out), ["inbound slots full"], "{out:?}");
        }
    }
    assert_eq!(accepted_n, 10);
    let out = h.input(Input::Accepted {
        link: 99,
        from: InboundFrom::Tcp("203.0.113.1:1".parse().unwrap()),
    });
    assert_eq!(refused(&out), ["inbound slots full"]);
}

fn addr_to_target_for_test(addr: &NetAddr) -> Target {
    super::targets::addr_to_target(addr).unwrap()
}

#[test]
fn getaddr_answers_are_cached_per_way_in() {
    let mut h = listening(10);
    h.learn(&ipv4_addrs(200));
    let ours: Target = ONION_A.parse().unwrap();
    let ask = |h: &mut Harness, link: u64, from: InboundFrom| {
        let out = h.input(Input::Accepted { link, from });
        let conn = accepted(&out)[0].conn;
        h.handshake(conn);
        let out = h.input(Input::Peer(PeerUpdate {
            conn,
            report: PeerReport::Event(PeerEvent::Message(NetworkMessage::GetAddr)),
        }));
        out.into_iter()
            .find_map(|o| match o {
                Output::Send {
                    conn: c,
                    msg: NetworkMessage::AddrV2(a),
                } if c == conn => Some(a),
                _ => None,
            })
            .unwrap()
    };
    let tcp = |i: u8| InboundFrom::Tcp(format!("203.0.113.{i}:1").parse().unwrap());
    let first = ask(&mut h, 1, tcp(1));
    assert!(!first.is_empty());
    // Another peer, or the same one reconnecting, gets the same answer.
    assert_eq!(ask(&mut h, 2, tcp(2)), first);
    // The onion service answers from its own sample.
    assert_ne!(ask(&mut h, 3, InboundFrom::Onion(ours)), first);
    // A day and more later, a fresh sample.
    h.now += GETADDR_CACHE_LIFETIME + GETADDR_CACHE_SPREAD;
    assert_ne!(ask(&mut h, 4, tcp(4)), first);
}

/// A misbehaving inbound peer's host is discouraged, as Core does: its
/// next connection, from a fresh source port, is refused; `clearbanned`
/// forgives it. Other hosts are unaffected.
#[test]
fn a_misbehaving_inbound_host_is_discouraged_whatever_its_port() {
    let mut h = listening(8);
    let out = h.input(Input::Accepted {
        link: 1,
        from: InboundFrom::Tcp("203.0.113.7:50000".parse().unwrap()),
    });
    let conn = accepted(&out)[0].conn;
    h.handshake(conn);
    h.input(Input::Peer(PeerUpdate {
        conn,
        report: PeerReport::Closed(DisconnectReason::Misbehaving(100)),
    }));
    let out = h.input(Input::Accepted {
        link: 2,
        from: InboundFrom::Tcp("203.0.113.7:50001".parse().unwrap()),
    });
    assert_eq!(
        refused(&out),
        ["address discouraged after misbehaviour"],
        "{out:?}"
    );
    let out = h.input(Input::Accepted {
        link: 3,
        from: InboundFrom::Tcp("203.0.113.8:50001".parse().unwrap()),
    });
    assert_eq!(accepted(&out).len(), 1, "another host: {out:?}");

    h.engine
        .command(h.t(), crate::engine::commands::Command::ClearBans)
        .unwrap();
    let out = h.input(Input::Accepted {
        link: 4,
        from: InboundFrom::Tcp("203.0.113.7:50002".parse().unwrap()),
    });
    assert_eq!(accepted(&out).len(), 1, "forgiven: {out:?}");
}
