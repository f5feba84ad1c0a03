//! The transport layer over real in-memory streams: BIP324 v2 in both
//! directions, responder-side v1 detection, the v1 fallback policy (and that
//! a fallback redials through the same dialer), and hostile handshakes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Mutex;

use nightjar::transport::{
    DialError, Dialer, HandshakeError, TransportKind, V1Fallback, accept_inbound, connect_outbound,
};
use nightjar::wire::{NetworkMessage, encode_v1};
use nightjar_testpeer::{REGTEST, RawPeer, Speak, TestPeer, bip324_responder, version_message};
use tokio::io::{AsyncReadExt, DuplexStream, duplex};

/// In-memory pipe capacity: large enough for any handshake.
const PIPE: usize = 64 * 1024;

/// What the far end of each dial does.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Remote {
    /// A v2-capable responder (nightjar's own transport).
    V2,
    /// An old node: expects v1, hangs up on anything else.
    V1Only,
}

/// A dialer that hands out in-memory streams to scripted remotes, and
/// records every dial (target label, isolation label) it makes.
struct ScriptedDialer {
    remote: Remote,
    label: (&'static str, &'static str),
    dials: Mutex<Vec<(&'static str, &'static str)>>,
}

impl ScriptedDialer {
    fn new(remote: Remote) -> Self {
        ScriptedDialer {
            remote,
            label: ("peer.onion:8333", "iso-7"),
            dials: Mutex::new(Vec::new()),
        }
    }
}

impl Dialer for ScriptedDialer {
    type Stream = DuplexStream;

    async fn dial(&self) -> Result<DuplexStream, DialError> {
        self.dials.lock().unwrap().push(self.label);
        let (ours, theirs) = duplex(PIPE);
        match self.remote {
            Remote::V2 => {
                tokio::spawn(async move {
                    let mut peer = TestPeer::accept(theirs, REGTEST, true).await.unwrap();
                    let _ = peer
                        .answer_handshake(version_message(2, 0, "/remote/"))
                        .await;
                    let _ = peer.closed().await;
                });
            }
            Remote::V1Only => {
                tokio::spawn(async move {
                    let mut raw = RawPeer::new(theirs);
                    let first = raw.recv_raw(24).await.unwrap_or_default();
                    if first.get(..4) != Some(&REGTEST.to_bytes()[..]) {
                        return; // bad magic: an old node just hangs up
                    }
                    // A v1 header: answer in v1, as an old node would.
                    let _ = raw
                        .send_raw(&encode_v1(REGTEST, &NetworkMessage::Verack))
                        .await;
                    raw.drain_until_closed().await;
                });
            }
        }
        Ok(ours)
    }
}

#[tokio::test]
async fn v2_handshake_succeeds_in_both_directions_with_one_session_id() {
    let (a, b) = duplex(PIPE);
    let responder = tokio::spawn(async move { accept_inbound(b, REGTEST, false).await.unwrap() });
    let initiator = nightjar::transport::initiate_v2(a, REGTEST).await.unwrap();
    let responder = responder.await.unwrap();
    let (TransportKind::V2 { session_id: x }, TransportKind::V2 { session_id: y }) =
        (initiator.kind(), responder.kind())
    else {
        panic!("both sides must be v2");
    };
    assert_eq!(x, y, "both sides derive the same session id");
    assert_eq!(initiator.kind().session_id_hex().len(), 64);

    // And messages flow both ways.
    let (mut ir, mut iw) = initiator.into_split();
    let (mut rr, mut rw) = responder.into_split();
    iw.send(&NetworkMessage::Ping(7)).await.unwrap();
    assert_eq!(rr.next().await.unwrap().0, NetworkMessage::Ping(7));
    rw.send(&NetworkMessage::Pong(7)).await.unwrap();
    assert_eq!(ir.next().await.unwrap().0, NetworkMessage::Pong(7));
}

#[tokio::test]
async fn outbound_prefers_v2_and_dials_once() {
    let dialer = ScriptedDialer::new(Remote::V2);
    let session = connect_outbound(&dialer, REGTEST, V1Fallback::Allowed)
        .await
        .unwrap();
    assert!(matches!(session.kind(), TransportKind::V2 { .. }));
    assert!(!session.fell_back_to_v1());
    assert_eq!(dialer.dials.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn v1_fallback_redials_through_the_same_dialer_only_when_allowed() {
    let dialer = ScriptedDialer::new(Remote::V1Only);
    let session = connect_outbound(&dialer, REGTEST, V1Fallback::Allowed)
        .await
        .unwrap();
    assert_eq!(session.kind(), TransportKind::V1);
    assert!(session.fell_back_to_v1());
    let dials = dialer.dials.lock().unwrap().clone();
    assert_eq!(dials.len(), 2, "one v2 attempt, one v1 retry");
    assert_eq!(
        dials[0], dials[1],
        "the retry must use the same target and isolation"
    );

    // The v1 session works: the old node answers our version.
    let (mut r, mut w) = session.into_split();
    w.send(&NetworkMessage::Version(version_message(1, 0, "/us/")))
        .await
        .unwrap();
    assert_eq!(r.next().await.unwrap().0, NetworkMessage::Verack);

    let dialer = ScriptedDialer::new(Remote::V1Only);
    let err = connect_outbound(&dialer, REGTEST, V1Fallback::Forbidden)
        .await
        .unwrap_err();
    assert!(matches!(err, HandshakeError::RejectedV2), "{err}");
    assert_eq!(
        dialer.dials.lock().unwrap().len(),
        1,
        "no v1 attempt when forbidden"
    );
}

#[tokio::test]
async fn responder_detects_v1_and_obeys_policy() {
    for allow in [true, false] {
        let (a, b) = duplex(PIPE);
        let initiator = tokio::spawn(async move {
            let mut peer = TestPeer::connect(a, REGTEST, Speak::V1).await.unwrap();
            let _ = peer
                .send(NetworkMessage::Version(version_message(3, 0, "/old/")))
                .await;
            peer
        });
        let result = accept_inbound(b, REGTEST, allow).await;
        let _peer = initiator.await.unwrap();
        match (allow, result) {
            (true, Ok(session)) => {
                assert_eq!(session.kind(), TransportKind::V1);
                // The probed bytes were not lost: the version decodes.
                let (mut r, _w) = session.into_split();
                assert!(matches!(
                    r.next().await.unwrap().0,
                    NetworkMessage::Version(_)
                ));
            }
            (false, Err(HandshakeError::V1NotAllowed)) => {}
            (allow, other) => panic!("allow_v1={allow}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn garbage_instead_of_a_v2_handshake_fails_cleanly() {
    // 5000 bytes of noise: read as a key, then no garbage terminator within
    // the 4095 bytes BIP324 allows.
    let (a, b) = duplex(PIPE);
    let noise: Vec<u8> = (0..5000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let writer = tokio::spawn(async move {
        let mut raw = RawPeer::new(a);
        raw.send_raw(&noise).await.unwrap();
        raw.drain_until_closed().await
    });
    let err = accept_inbound(b, REGTEST, true).await.unwrap_err();
    assert!(matches!(err, HandshakeError::Protocol(_)), "{err}");
    writer.await.unwrap();

    // A peer that hangs up half-way through its key.
    let (a, b) = duplex(PIPE);
    tokio::spawn(async move {
        let mut raw = RawPeer::new(a);
        raw.send_raw(&[0x55; 40]).await.unwrap();
    });
    let err = accept_inbound(b, REGTEST, true).await.unwrap_err();
    assert!(
        matches!(err, HandshakeError::RejectedV2 | HandshakeError::Io(_)),
        "{err}"
    );
}

#[tokio::test]
async fn v1_bytes_on_the_wire_are_exactly_the_frame_encoding() {
    // The v1 session writes nothing but the framed message.
    let (a, mut b) = duplex(PIPE);
    let mut peer = TestPeer::connect(a, REGTEST, Speak::V1).await.unwrap();
    peer.send(NetworkMessage::Verack).await.unwrap();
    let mut got = vec![0u8; 24];
    b.read_exact(&mut got).await.unwrap();
    assert_eq!(got, encode_v1(REGTEST, &NetworkMessage::Verack));
}

#[tokio::test]
async fn decoy_packets_are_skipped_but_their_bytes_are_charged() {
    // The remote is the bip324 crate's own session, independent of ours.
    let (a, b) = duplex(PIPE);
    let remote = tokio::spawn(async move {
        let mut p = bip324_responder(b, REGTEST).await.unwrap();
        p.write(&bip324::io::Payload::decoy(vec![0u8; 300]))
            .await
            .unwrap();
        let ping = nightjar::wire::encode_v2_contents(&NetworkMessage::Ping(42));
        p.write(&bip324::io::Payload::genuine(ping)).await.unwrap();
        p
    });
    let session = nightjar::transport::initiate_v2(a, REGTEST).await.unwrap();
    let (mut reader, _w) = session.into_split();
    let _p = remote.await.unwrap();
    let (msg, wire_len) = reader.next().await.unwrap();
    assert_eq!(msg, NetworkMessage::Ping(42));
    // The decoy is not handed out, but its bytes (300 of contents plus
    // its framing) are counted with the ping, so that decoys cannot slip
    // a flood past the byte budget.
    let ping_len = nightjar::wire::encode_v2_contents(&NetworkMessage::Ping(42)).len();
    assert!(
        wire_len >= 300 + ping_len && wire_len < 400 + ping_len,
        "the decoy's bytes are charged with the ping: {wire_len}"
    );
}
