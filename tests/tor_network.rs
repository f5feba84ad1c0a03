//! The embedded onion transport against a real private Tor network: real
//! Arti, real C tor, real sockets, all on 127.0.0.1.
//!
//! One network is shared by every test in this file (starting one takes
//! 20–30 s); each test makes its own Arti client with its own state.

// Test code: unwrap and panic are how a test fails.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr
)]

mod support;

use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::time::Duration;

use futures::StreamExt;
use nightjar_tor::{IsolationGroup, OnionV3Address, Target, TorErrorKind};
use support::{ONION_ECHO_PORT, client, echo_round_trip, echo_server, network};

/// A port on 127.0.0.1 where nothing listens.
fn closed_port() -> u16 {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    l.local_addr().unwrap().port()
}

fn onion_echo_target(net: &nightjar_privnet::PrivNet) -> Target {
    let svc = &net.onion_services()[0];
    format!("{}:{}", svc.onion_address, svc.virtual_port)
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bootstrap_reaches_100_percent_with_progress_events() {
    let Some(net) = network("bootstrap_reaches_100_percent_with_progress_events") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let settings = nightjar_tor::TorSettings::new(dir.path().join("s"), dir.path().join("c"))
        .with_network(nightjar_tor::TorNetwork::Custom(
            net.arti_network_file().into(),
        ));
    let tor = nightjar_tor::TorTransport::start(settings).await.unwrap();
    let events: Vec<_> = tokio::time::timeout(
        support::BOOTSTRAP_LIMIT,
        tor.progress()
            .take_while(|p| futures::future::ready(!p.ready))
            .collect::<Vec<_>>(),
    )
    .await
    .expect("bootstrap did not finish");
    let last = tor.bootstrap_progress();
    assert!(last.ready && last.percent == 100, "final state {last}");
    assert!(
        !events.is_empty() && !events[0].ready,
        "first event must precede readiness"
    );
    assert!(
        events.iter().all(|p| p.percent < 100),
        "100 % claimed before ready: {events:?}"
    );
    let distinct: std::collections::BTreeSet<u8> = events.iter().map(|p| p.percent).collect();
    assert!(
        distinct.len() >= 2,
        "expected intermediate progress, saw {distinct:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn onion_connect_round_trips_bytes() {
    let Some(net) = network("onion_connect_round_trips_bytes") else {
        return;
    };
    let (tor, _dir) = client(net).await;
    let target = onion_echo_target(net);
    assert_eq!(target.port(), ONION_ECHO_PORT);
    let mut stream = tor.connect(&target, IsolationGroup::new(1)).await.unwrap();
    assert_eq!(
        echo_round_trip(&mut stream, b"hello onion").await,
        b"hello onion"
    );
    let circuit = stream.circuit().expect("circuit label");
    assert!(
        circuit.hops.iter().any(|h| h.contains("virtual hop")),
        "onion circuit: {circuit}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_connect_reaches_a_loopback_server() {
    let Some(net) = network("exit_connect_reaches_a_loopback_server") else {
        return;
    };
    let (tor, _dir) = client(net).await;
    let mut stream = tor
        .connect(&Target::Ip(echo_server()), IsolationGroup::new(1))
        .await
        .unwrap();
    assert_eq!(
        echo_round_trip(&mut stream, b"through an exit").await,
        b"through an exit"
    );
    let circuit = stream.circuit().expect("circuit label");
    assert_eq!(circuit.hops.len(), 3, "exit circuit: {circuit}");
    assert!(!circuit.hops.iter().any(|h| h.contains("virtual hop")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_are_resolved_at_the_exit() {
    let Some(net) = network("names_are_resolved_at_the_exit") else {
        return;
    };
    let (tor, _dir) = client(net).await;
    let group = IsolationGroup::new(7);
    let addrs = tor.resolve("seed.nightjar.test", group).await.unwrap();
    assert_eq!(addrs, vec![IpAddr::V4(Ipv4Addr::LOCALHOST)]);
    // The exit, not this process, asked the network's DNS responder.
    assert!(
        net.dns()
            .queries()
            .iter()
            .any(|q| q == "seed.nightjar.test")
    );

    let err = tor.resolve("nothing.invalid", group).await.unwrap_err();
    assert_eq!(err.kind(), TorErrorKind::HostNotFound, "{err}");

    // A host-name target is resolved at the exit too, then connected.
    let host: Target = format!("echo.nightjar.test:{}", echo_server().port())
        .parse()
        .unwrap();
    let mut stream = tor.connect(&host, group).await.unwrap();
    assert_eq!(echo_round_trip(&mut stream, b"by name").await, b"by name");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isolation_groups_get_their_own_circuits() {
    let Some(net) = network("isolation_groups_get_their_own_circuits") else {
        return;
    };
    // Arti hands a stream to any compatible open circuit, and a clean
    // pre-built circuit is compatible with every group. Pre-building is
    // switched off here so that a group's streams have only its own circuit
    // to go to. (Under load Arti may still launch a spare circuit for a slow
    // request; the loop below allows for that, the isolation checks do not.)
    let no_prebuild = tempfile::NamedTempFile::new().unwrap();
    let mut text = std::fs::read_to_string(net.arti_network_file()).unwrap();
    text.push_str(
        "\n[preemptive_circuits]\ndisable_at_threshold = 0\ninitial_predicted_ports = []\n",
    );
    std::fs::write(no_prebuild.path(), text).unwrap();
    let (tor, _dir) = support::client_on(no_prebuild.path()).await;

    let target = Target::Ip(echo_server());
    let (a, b) = (IsolationGroup::new(100), IsolationGroup::new(200));
    let mut streams = Vec::new(); // kept open: an open stream pins its circuit
    async fn circuits_of(
        tor: &nightjar_tor::TorTransport,
        target: &Target,
        group: IsolationGroup,
        streams: &mut Vec<nightjar_tor::TorStream>,
    ) -> String {
        let s = tor.connect(target, group).await.unwrap();
        let id = s.circuit().expect("circuit label").id.clone();
        streams.push(s);
        id
    }

    // One group, one circuit: consecutive streams of a group share one.
    let mut a_ids = vec![circuits_of(&tor, &target, a, &mut streams).await];
    while a_ids.len() < 6 {
        let id = circuits_of(&tor, &target, a, &mut streams).await;
        let reused = a_ids.last() == Some(&id);
        a_ids.push(id);
        if reused {
            break;
        }
    }
    assert!(
        a_ids.windows(2).any(|w| w[0] == w[1]),
        "group {a} never reused its circuit: {a_ids:?}"
    );

    // Two groups, two circuits: never a shared one.
    let b_ids = [
        circuits_of(&tor, &target, b, &mut streams).await,
        circuits_of(&tor, &target, b, &mut streams).await,
    ];
    for id in &b_ids {
        assert!(!a_ids.contains(id), "groups {a} and {b} share circuit {id}");
    }
    assert_eq!(tor.live_groups(), 2);

    // Releasing a group rotates its circuits.
    assert!(tor.release_group(a));
    let rotated = circuits_of(&tor, &target, a, &mut streams).await;
    assert!(!a_ids.contains(&rotated), "released group reused {rotated}");
    assert!(
        !b_ids.contains(&rotated),
        "released group took {b}'s circuit"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_process_onion_service_is_reachable_from_arti_and_c_tor() {
    let Some(net) = network("in_process_onion_service_is_reachable_from_arti_and_c_tor") else {
        return;
    };
    let (host, _host_dir) = client(net).await;
    let mut service = host.serve_onion("nightjar-echo", 8333).unwrap();
    let echo_address = service.address();
    tokio::spawn(async move {
        while let Some(stream) = service.next().await {
            tokio::spawn(async move {
                let (mut r, mut w) = tokio::io::split(stream);
                let mut buf = vec![0u8; 4096];
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                while let Ok(n) = r.read(&mut buf).await {
                    if n == 0 || w.write_all(&buf[..n]).await.is_err() || w.flush().await.is_err() {
                        break;
                    }
                }
            });
        }
    });

    // From a second, independent Arti client. The descriptor may take a few
    // seconds to reach the HSDirs, so retry a connect that finds nothing.
    let (visitor, _visitor_dir) = client(net).await;
    let target = Target::Onion {
        address: echo_address,
        port: 8333,
    };
    let mut stream =
        support::retry_until_ok(|| visitor.connect(&target, IsolationGroup::new(1))).await;
    assert_eq!(
        echo_round_trip(&mut stream, b"arti to arti").await,
        b"arti to arti"
    );

    // From C tor, through its SOCKS port.
    let onion = format!("{echo_address}");
    let mut socks = support::retry_until_ok(|| async {
        tokio_socks::tcp::Socks5Stream::connect(net.socks_addr(), (onion.as_str(), 8333u16))
            .await
            .map_err(|e| e.to_string())
    })
    .await;
    assert_eq!(
        echo_round_trip(&mut socks, b"c tor to arti").await,
        b"c tor to arti"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_onion_and_refused_exit_give_clear_error_kinds() {
    let Some(net) = network("unknown_onion_and_refused_exit_give_clear_error_kinds") else {
        return;
    };
    let (tor, _dir) = client(net).await;
    // A well-formed address of a real service that the private network has
    // never heard of (an arbitrary 32-byte string is usually not a valid key,
    // and Arti rejects it before looking).
    let nobody = Target::Onion {
        address: "2gzyxa5ihm7nsggfxnu52rck2vv4rvmdlkiu3zzui5du4xyclen53wid.onion"
            .parse::<OnionV3Address>()
            .unwrap(),
        port: 8333,
    };
    let err = tor
        .connect(&nobody, IsolationGroup::new(1))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), TorErrorKind::OnionServiceNotFound, "{err}");
    assert!(err.kind().blames_remote());

    let refused = Target::Ip(SocketAddr::from((Ipv4Addr::LOCALHOST, closed_port())));
    let err = tor
        .connect(&refused, IsolationGroup::new(1))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), TorErrorKind::RemoteUnreachable, "{err}");
    assert!(err.kind().blames_remote());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v2_handshake_over_arti_to_an_onion_test_peer() {
    use nightjar::peer::task::{ConnId, PeerReport, spawn_peer};
    use nightjar::peer::{ConnectionKind, PeerConfig, PeerEvent, PeerMachine};
    use nightjar::transport::{TorDialer, TransportKind, V1Fallback, connect_outbound};
    use nightjar_testpeer::{REGTEST, TestPeer, version_message};

    let Some(net) = network("v2_handshake_over_arti_to_an_onion_test_peer") else {
        return;
    };
    // The test peer behind the C-tor onion service: v2 only, like nightjar
    // under --privacy.
    let listener = support::test_peer_listener();
    let remote = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let mut peer = TestPeer::accept(stream, REGTEST, false).await.unwrap();
        let kind = peer.kind();
        let theirs = peer
            .answer_handshake(version_message(77, 123, "/onion-peer/"))
            .await
            .unwrap();
        (kind, theirs, peer)
    });

    let (tor, _dir) = client(net).await;
    let svc = &net.onion_services()[1];
    let target: Target = format!("{}:{}", svc.onion_address, svc.virtual_port)
        .parse()
        .unwrap();
    let dialer = TorDialer::new(tor.clone(), target, IsolationGroup::new(9));
    let session = connect_outbound(&dialer, REGTEST, V1Fallback::Forbidden)
        .await
        .unwrap();
    let TransportKind::V2 { session_id } = session.kind() else {
        panic!("not v2")
    };
    let circuit = session.circuit().expect("a Tor stream has a circuit");
    assert!(
        circuit.hops.iter().any(|h| h.contains("virtual hop")),
        "{circuit}"
    );

    let (tx, mut rx) = tokio::sync::mpsc::channel(16);
    let config = PeerConfig {
        kind: ConnectionKind::Manual,
        our_version: version_message(1, 0, "/nightjar/"),
        ping_seed: 1,
    };
    let machine = PeerMachine::new(config, tokio::time::Instant::now().into_std());
    let _peer = spawn_peer(ConnId(1), session, machine, tx);
    let info = loop {
        match rx.recv().await.expect("peer task ended").report {
            PeerReport::Event(PeerEvent::HandshakeComplete(info)) => break info,
            PeerReport::Closed(reason) => panic!("closed: {reason}"),
            _ => {}
        }
    };
    assert_eq!((info.nonce, info.start_height), (77, 123));
    let (remote_kind, theirs, _peer) = remote.await.unwrap();
    assert_eq!(
        remote_kind,
        TransportKind::V2 { session_id },
        "both ends see one session id"
    );
    assert_eq!(theirs.user_agent, "/nightjar/");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn onion_service_keys_live_under_the_state_dir() {
    let Some(net) = network("onion_service_keys_live_under_the_state_dir") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let settings = || {
        nightjar_tor::TorSettings::new(dir.path().join("state"), dir.path().join("cache"))
            .with_network(nightjar_tor::TorNetwork::Custom(
                net.arti_network_file().into(),
            ))
    };
    let first = {
        let tor = nightjar_tor::TorTransport::start(settings()).await.unwrap();
        tokio::time::timeout(support::BOOTSTRAP_LIMIT, tor.wait_until_ready())
            .await
            .unwrap()
            .unwrap();
        let service = tor.serve_onion("keep-me", 8333).unwrap();
        service.address()
    };
    // A new client on the same state directory: same nickname, same address;
    // another nickname, another key.
    let tor = nightjar_tor::TorTransport::start(settings()).await.unwrap();
    tokio::time::timeout(support::BOOTSTRAP_LIMIT, tor.wait_until_ready())
        .await
        .unwrap()
        .unwrap();
    // Dropping the first client stops its onion service in the background,
    // so the service's state lock is released a moment later, not at once
    // (a restarted daemon is a new process and never meets this).
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let again = loop {
        match tor.serve_onion("keep-me", 8333) {
            Ok(service) => break service,
            Err(e)
                if e.kind() == TorErrorKind::LocalState && std::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("the first client's onion service state stays locked: {e}"),
        }
    };
    assert_eq!(again.address(), first);
    let other = tor.serve_onion("someone-else", 8333).unwrap();
    assert_ne!(other.address(), first);
    assert!(
        dir.path().join("state").join("keystore").is_dir(),
        "keys under the state dir"
    );
}
