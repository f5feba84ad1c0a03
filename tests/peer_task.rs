//! The peer task hosting a `PeerMachine` over real v1/v2 sessions on
//! in-memory streams, in tokio's paused (simulated) time: no real sleeps.
//! Every hostile input ends in its documented reason, reported once.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use nightjar::peer::machine::{HANDSHAKE_TIMEOUT, PING_IDLE, PONG_TIMEOUT};
use nightjar::peer::task::{
    ConnId, PeerCommand, PeerReport, PeerUpdate, WRITE_STALL_TIMEOUT, spawn_peer,
};
use nightjar::peer::{
    ConnectionKind, DisconnectReason, Flood, HandshakeViolation, PeerConfig, PeerEvent, PeerMachine,
};
use nightjar::transport::{Session, accept_inbound, initiate_v2};
use nightjar::wire::{Address, Inventory, NetworkMessage, ServiceFlags, WireError, encode_v1};
use nightjar_testpeer::{REGTEST, RawPeer, Speak, TestPeer, bip324_responder, version_message};
use tokio::io::{DuplexStream, duplex};
use tokio::sync::mpsc;

const PIPE: usize = 64 * 1024;

fn config(kind: ConnectionKind) -> PeerConfig {
    PeerConfig {
        kind,
        our_version: version_message(0xabcdef, 0, "/nightjar-test/"),
        ping_seed: 9,
    }
}

fn machine() -> PeerMachine {
    PeerMachine::new(
        config(ConnectionKind::Regular(ServiceFlags::NETWORK)),
        tokio::time::Instant::now().into_std(),
    )
}

/// The node side (an outbound peer task) and the remote side's stream.
async fn node_over(
    speak: Speak,
    pipe: usize,
) -> (
    mpsc::Receiver<PeerUpdate>,
    nightjar::peer::task::PeerHandle,
    DuplexStream,
) {
    let (ours, theirs) = duplex(pipe);
    let (tx, rx) = mpsc::channel(16);
    let session = match speak {
        Speak::V1 => Session::start_v1(ours, REGTEST),
        Speak::V2 => unreachable!("use node_with_v2_peer"),
    };
    let handle = spawn_peer(ConnId(1), session, machine(), tx);
    (rx, handle, theirs)
}

/// The node (outbound, v2) with a scripted v2 test peer.
async fn node_with_v2_peer(
    pipe: usize,
) -> (
    mpsc::Receiver<PeerUpdate>,
    nightjar::peer::task::PeerHandle,
    TestPeer<DuplexStream>,
) {
    let (ours, theirs) = duplex(pipe);
    let (session, peer) = tokio::join!(
        initiate_v2(ours, REGTEST),
        TestPeer::accept(theirs, REGTEST, false)
    );
    let (tx, rx) = mpsc::channel(16);
    let handle = spawn_peer(ConnId(1), session.unwrap(), machine(), tx);
    (rx, handle, peer.unwrap())
}

/// Drain updates until `Closed`; assert nothing follows it.
async fn closed_reason(rx: &mut mpsc::Receiver<PeerUpdate>) -> DisconnectReason {
    loop {
        let update = rx.recv().await.expect("channel closed before Closed");
        assert_eq!(update.conn, ConnId(1));
        if let PeerReport::Closed(reason) = update.report {
            assert!(rx.recv().await.is_none(), "a report after Closed");
            return reason;
        }
    }
}

async fn handshake_event(rx: &mut mpsc::Receiver<PeerUpdate>) {
    loop {
        match rx.recv().await.expect("closed").report {
            PeerReport::Event(PeerEvent::HandshakeComplete(_)) => return,
            PeerReport::Closed(r) => panic!("closed during handshake: {r}"),
            _ => {}
        }
    }
}

#[tokio::test(start_paused = true)]
async fn handshake_completes_over_v2_and_v1() {
    let (mut rx, _h, mut peer) = node_with_v2_peer(PIPE).await;
    let theirs = peer
        .answer_handshake(version_message(5, 100, "/remote/"))
        .await
        .unwrap();
    assert_eq!(theirs.nonce, 0xabcdef);
    handshake_event(&mut rx).await;

    let (mut rx, _h, stream) = node_over(Speak::V1, PIPE).await;
    let mut peer = TestPeer::accept(stream, REGTEST, true).await.unwrap();
    peer.answer_handshake(version_message(5, 100, "/remote/"))
        .await
        .unwrap();
    handshake_event(&mut rx).await;
}

#[tokio::test(start_paused = true)]
async fn idle_ping_then_pong_timeout_in_simulated_time() {
    let (mut rx, _h, mut peer) = node_with_v2_peer(PIPE).await;
    peer.answer_handshake(version_message(5, 0, "/remote/"))
        .await
        .unwrap();
    handshake_event(&mut rx).await;
    let start = tokio::time::Instant::now();
    let ping = peer.recv_within(PING_IDLE * 2).await.unwrap();
    assert!(matches!(ping, NetworkMessage::Ping(_)), "{ping:?}");
    assert_eq!(start.elapsed(), PING_IDLE, "ping exactly when idle");
    // Never answer.
    assert_eq!(closed_reason(&mut rx).await, DisconnectReason::PongTimeout);
    assert_eq!(start.elapsed(), PING_IDLE + PONG_TIMEOUT);
}

#[tokio::test(start_paused = true)]
async fn silent_peer_hits_the_handshake_timeout() {
    let (mut rx, _h, _peer) = node_with_v2_peer(PIPE).await;
    let start = tokio::time::Instant::now();
    assert_eq!(
        closed_reason(&mut rx).await,
        DisconnectReason::HandshakeTimeout
    );
    assert_eq!(start.elapsed(), HANDSHAKE_TIMEOUT);
}

/// A v1 frame with fields overridden for hostile tests.
fn frame(
    magic: [u8; 4],
    command: &str,
    payload: &[u8],
    checksum: Option<[u8; 4]>,
    declared_len: Option<u32>,
) -> Vec<u8> {
    let mut real = encode_v1(
        REGTEST,
        &NetworkMessage::Unknown {
            command: nightjar::wire::CommandString::try_from(command.to_string()).unwrap(),
            payload: payload.to_vec(),
        },
    );
    real[..4].copy_from_slice(&magic);
    if let Some(c) = checksum {
        real[20..24].copy_from_slice(&c);
    }
    if let Some(len) = declared_len {
        real[16..20].copy_from_slice(&len.to_le_bytes());
    }
    real
}

#[tokio::test(start_paused = true)]
async fn hostile_v1_bytes_end_in_their_reasons() {
    let regtest = REGTEST.to_bytes();
    type Check = fn(&DisconnectReason) -> bool;
    let cases: Vec<(&str, Vec<u8>, Check)> = vec![
        (
            "bad magic",
            frame([1, 2, 3, 4], "version", &[], None, None),
            |r| matches!(r, DisconnectReason::Wire(WireError::BadMagic { .. })),
        ),
        (
            "bad checksum",
            frame(regtest, "ping", &[0; 8], Some([0, 0, 0, 0]), None),
            |r| matches!(r, DisconnectReason::Wire(WireError::BadChecksum { .. })),
        ),
        (
            "oversize length",
            frame(regtest, "block", &[], None, Some(40_000_000)),
            |r| matches!(r, DisconnectReason::Wire(WireError::Oversize { .. })),
        ),
        (
            "truncated frame",
            frame(regtest, "ping", &[0; 8], None, None)[..27].to_vec(),
            |r| *r == DisconnectReason::TruncatedFrame,
        ),
    ];
    for (name, bytes, check) in cases {
        let (mut rx, _h, stream) = node_over(Speak::V1, PIPE).await;
        let mut raw = RawPeer::new(stream);
        raw.send_raw(&bytes).await.unwrap();
        raw.finish().await.unwrap(); // EOF after the bytes; our end stays open
        let reason = closed_reason(&mut rx).await;
        assert!(check(&reason), "{name}: got {reason:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn handshake_violations_end_in_their_reasons() {
    let v = || NetworkMessage::Version(version_message(5, 0, "/remote/"));
    let cases = [
        (
            vec![NetworkMessage::Ping(1)],
            HandshakeViolation::MessageBeforeVersion,
        ),
        (
            vec![NetworkMessage::Verack],
            HandshakeViolation::VerackBeforeVersion,
        ),
        (vec![v(), v()], HandshakeViolation::DuplicateVersion),
    ];
    for (msgs, want) in cases {
        let (mut rx, _h, mut peer) = node_with_v2_peer(PIPE).await;
        for m in msgs {
            peer.send(m).await.unwrap();
        }
        assert_eq!(
            closed_reason(&mut rx).await,
            DisconnectReason::Handshake(want)
        );
    }
}

/// After a handshake, the remote sends `msgs` as fast as it can (stopping
/// when we hang up); returns why the node closed.
async fn flood(msgs: Vec<NetworkMessage>) -> DisconnectReason {
    let (mut rx, _h, mut peer) = node_with_v2_peer(PIPE).await;
    peer.answer_handshake(version_message(5, 0, "/remote/"))
        .await
        .unwrap();
    let flooder = tokio::spawn(async move {
        for msg in msgs {
            if peer.send(msg).await.is_err() {
                break;
            }
        }
        peer
    });
    let reason = closed_reason(&mut rx).await;
    drop(flooder.await);
    reason
}

#[tokio::test(start_paused = true)]
async fn floods_are_cut_off() {
    let entries: Vec<_> = (0..1000u32)
        .map(|i| {
            let ip = std::net::SocketAddr::from(([10, 1, (i >> 8) as u8, i as u8], 8333));
            (0u32, Address::new(&ip, ServiceFlags::NETWORK))
        })
        .collect();
    let addr_flood = vec![NetworkMessage::Addr(entries); 50];
    assert_eq!(
        flood(addr_flood).await,
        DisconnectReason::Flood(Flood::Addresses)
    );

    let ping_flood = (0..100).map(NetworkMessage::Ping).collect();
    assert_eq!(
        flood(ping_flood).await,
        DisconnectReason::Flood(Flood::Pings)
    );
}

#[tokio::test(start_paused = true)]
async fn unknown_v2_short_id_is_a_wire_error() {
    // The remote here is the bip324 crate's own session, independent of ours,
    // sending contents with short id 200 (not in BIP324's table).
    let (ours, theirs) = duplex(PIPE);
    let (tx, mut rx) = mpsc::channel(16);
    let remote = tokio::spawn(async move {
        let mut p = bip324_responder(theirs, REGTEST).await.unwrap();
        p.write(&bip324::io::Payload::genuine(vec![200u8, 1, 2, 3]))
            .await
            .unwrap();
        p
    });
    let session = initiate_v2(ours, REGTEST).await.unwrap();
    let _h = spawn_peer(ConnId(1), session, machine(), tx);
    let _p = remote.await.unwrap();
    assert_eq!(
        closed_reason(&mut rx).await,
        DisconnectReason::Wire(WireError::UnknownShortId(200))
    );
}

#[tokio::test(start_paused = true)]
async fn a_peer_that_never_reads_stalls_our_writer() {
    let (mut rx, h, mut peer) = node_with_v2_peer(4096).await;
    peer.answer_handshake(version_message(5, 0, "/remote/"))
        .await
        .unwrap();
    handshake_event(&mut rx).await;
    // From now on the peer reads nothing; we keep sending 200 kB messages.
    let big = NetworkMessage::Inv(vec![Inventory::Error; 5000]);
    for _ in 0..10 {
        h.command(PeerCommand::Send(big.clone())).await;
    }
    let start = tokio::time::Instant::now();
    assert_eq!(
        closed_reason(&mut rx).await,
        DisconnectReason::WriterStalled
    );
    assert!(start.elapsed() >= WRITE_STALL_TIMEOUT);
    drop(peer);
}

#[tokio::test(start_paused = true)]
async fn backpressure_stops_reading_when_the_engine_lags() {
    let (ours, theirs) = duplex(4096);
    let (session, peer) = tokio::join!(
        initiate_v2(ours, REGTEST),
        TestPeer::accept(theirs, REGTEST, false)
    );
    let (tx, mut rx) = mpsc::channel(1);
    let _h = spawn_peer(ConnId(1), session.unwrap(), machine(), tx);
    let mut peer = peer.unwrap();
    // Complete the handshake while draining.
    let engine = tokio::spawn(async move {
        handshake_event(&mut rx).await;
        rx
    });
    peer.answer_handshake(version_message(5, 0, "/remote/"))
        .await
        .unwrap();
    let mut rx = engine.await.unwrap();
    // The engine now stops reading. The peer's sends must block well before
    // 400 messages: engine queue (1) + task (1) + reader queue (8) + pipe.
    let inv = NetworkMessage::Inv(vec![Inventory::Error; 10]);
    let mut sent = 0;
    let sender = async {
        for _ in 0..400 {
            peer.send(inv.clone()).await.unwrap();
            sent += 1;
        }
    };
    let finished = tokio::time::timeout(Duration::from_secs(5), sender)
        .await
        .is_ok();
    assert!(!finished, "all 400 messages went through a stalled engine");
    assert!(sent < 100, "{sent} messages buffered for a stalled engine");
    // Draining the engine lets traffic flow again.
    let mut got = 0;
    while got < 5 {
        if let Some(PeerUpdate {
            report: PeerReport::Event(PeerEvent::Message(_)),
            ..
        }) = rx.recv().await
        {
            got += 1;
        }
    }
}

#[tokio::test(start_paused = true)]
async fn closed_is_reported_once_even_when_aborted() {
    let (mut rx, h, _peer) = node_with_v2_peer(PIPE).await;
    h.abort();
    assert_eq!(
        closed_reason(&mut rx).await,
        DisconnectReason::Local("peer task aborted".into())
    );

    let (mut rx, h, _peer) = node_with_v2_peer(PIPE).await;
    assert!(
        h.command(PeerCommand::Disconnect("engine says so".into()))
            .await
    );
    assert_eq!(
        closed_reason(&mut rx).await,
        DisconnectReason::Local("engine says so".into())
    );

    // Inbound: accept, then the remote hangs up cleanly.
    let (a, b) = duplex(PIPE);
    let (tx, mut rx) = mpsc::channel(16);
    let remote =
        tokio::spawn(async move { TestPeer::connect(a, REGTEST, Speak::V2).await.unwrap() });
    let session = accept_inbound(b, REGTEST, false).await.unwrap();
    let machine = PeerMachine::new(
        config(ConnectionKind::Inbound),
        tokio::time::Instant::now().into_std(),
    );
    let _h = spawn_peer(ConnId(1), session, machine, tx);
    drop(remote.await.unwrap());
    assert_eq!(closed_reason(&mut rx).await, DisconnectReason::PeerClosed);
}

#[tokio::test(start_paused = true)]
async fn garbage_after_a_v2_handshake_is_refused_without_buffering_it() {
    // After a good handshake the remote writes noise. Its first 3 bytes
    // decrypt to some length: above our 4 MB cap the packet is refused before
    // a byte of it is buffered; below, authentication fails. Either way the
    // connection ends with a weight-100 reason, and nothing panics.
    use tokio::io::AsyncWriteExt;
    let (ours, theirs) = duplex(PIPE);
    let (tx, mut rx) = mpsc::channel(16);
    let remote = tokio::spawn(async move {
        let p = bip324_responder(theirs, REGTEST).await.unwrap();
        let (reader, writer) = p.into_split();
        let (_cipher, mut raw) = writer.into_inner();
        // Enough noise to complete any packet length under the cap, so the
        // outcome never depends on the (random) decrypted length.
        let noise: Vec<u8> = (0..65_536u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
            .collect();
        for _ in 0..70 {
            if raw.write_all(&noise).await.is_err() {
                break; // refused early: the node has hung up
            }
        }
        (reader, raw)
    });
    let session = initiate_v2(ours, REGTEST).await.unwrap();
    let _h = spawn_peer(ConnId(1), session, machine(), tx);
    let reason = closed_reason(&mut rx).await;
    drop(remote.await.unwrap());
    assert!(
        matches!(
            reason,
            DisconnectReason::Wire(WireError::Oversize { .. }) | DisconnectReason::Decryption
        ),
        "{reason:?}"
    );
    assert_eq!(reason.weight(), 100);
}

#[tokio::test(start_paused = true)]
async fn inbound_handshake_over_v2() {
    // The remote dials us: it speaks first, we answer.
    let (a, b) = duplex(PIPE);
    let (tx, mut rx) = mpsc::channel(16);
    let remote = tokio::spawn(async move {
        let mut peer = TestPeer::connect(a, REGTEST, Speak::V2).await.unwrap();
        let ours = peer
            .start_handshake(version_message(8, 42, "/dialer/"))
            .await
            .unwrap();
        (ours, peer)
    });
    let session = accept_inbound(b, REGTEST, false).await.unwrap();
    let machine = PeerMachine::new(
        config(ConnectionKind::Inbound),
        tokio::time::Instant::now().into_std(),
    );
    let _h = spawn_peer(ConnId(1), session, machine, tx);
    handshake_event(&mut rx).await;
    let (node_version, _peer) = remote.await.unwrap();
    assert_eq!(node_version.user_agent, "/nightjar-test/");
}
