//! Establishing a transport: the BIP324 v2 handshake, v1 detection on the
//! responder side, and the policy-bound v1 fallback on the initiator side.
//!
//! The key exchange and ciphers are the `bip324` crate's; this module drives
//! its handshake state machine over an async stream so that we keep the
//! session id (for `getpeerinfo`) and control every byte read, which the
//! crate's one-call handshake does not allow.

use bip324::{GarbageResult, Handshake, Initialized, ReceivedKey, Role, VersionResult};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::transport::dialer::{DialError, Dialer, PeerStream};
use crate::transport::session::Session;
use crate::wire::Magic;

/// Bytes of an ElligatorSwift-encoded public key.
const KEY_BYTES: usize = 64;

/// Bytes of the garbage terminator.
const TERMINATOR_BYTES: usize = 16;

/// The most garbage BIP324 allows before the terminator.
const MAX_GARBAGE: usize = 4095;

/// Bytes that identify a v1 `version` message: the network magic and the
/// NUL-padded command `version` (what Core's responder checks, too).
const V1_PREFIX_LEN: usize = 16;

/// Longest v2 packet accepted during the handshake (decoys and the version
/// packet carry no payload of interest; anything big is hostile).
const MAX_HANDSHAKE_PACKET: usize = 4096;

/// Whether the initiator may retry with v1 when the peer rejects v2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum V1Fallback {
    /// Never speak v1 (always under `--privacy`).
    Forbidden,
    /// Retry once with v1, over a new stream from the same dialer.
    Allowed,
}

/// Why a transport could not be established.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    /// The stream could not be opened.
    #[error("dial failed: {0}")]
    Dial(#[from] DialError),
    /// The peer closed or reset the stream during the key exchange: it most
    /// likely speaks only v1.
    #[error("peer closed the connection during the v2 key exchange (v1-only peer?)")]
    RejectedV2,
    /// A v1 peer connected to us and policy forbids v1.
    #[error("peer speaks v1 and v1 is not allowed")]
    V1NotAllowed,
    /// The handshake bytes were invalid (bad garbage, failed authentication).
    #[error("v2 handshake failed: {0}")]
    Protocol(String),
    /// I/O failed mid-handshake.
    #[error("I/O error during handshake: {0}")]
    Io(#[from] std::io::Error),
}

impl From<bip324::Error> for HandshakeError {
    fn from(e: bip324::Error) -> Self {
        HandshakeError::Protocol(e.to_string())
    }
}

/// Open an outbound transport: v2 first; v1 only if the peer rejects v2 and
/// `fallback` allows it, over a fresh stream from the same dialer.
pub async fn connect_outbound<D: Dialer>(
    dialer: &D,
    magic: Magic,
    fallback: V1Fallback,
) -> Result<Session<D::Stream>, HandshakeError> {
    let stream = dialer.dial().await?;
    match initiate_v2(stream, magic).await {
        Err(HandshakeError::RejectedV2) if fallback == V1Fallback::Allowed => {
            tracing::debug!("peer rejected v2; retrying with v1 over the same dialer");
            let stream = dialer.dial().await?;
            Ok(Session::v1(stream, magic, Vec::new(), true))
        }
        other => other,
    }
}

/// Run the v2 handshake as the initiator over an open stream, with no
/// fallback (the caller owns the stream, so it cannot redial).
pub async fn initiate_v2<S: PeerStream>(
    stream: S,
    magic: Magic,
) -> Result<Session<S>, HandshakeError> {
    v2_handshake(stream, magic, Role::Initiator, Vec::new()).await
}

/// Accept an inbound transport. A peer that opens with a v1 `version` header
/// gets v1 if `allow_v1`; anyone else must complete the v2 handshake.
pub async fn accept_inbound<S: PeerStream>(
    mut stream: S,
    magic: Magic,
    allow_v1: bool,
) -> Result<Session<S>, HandshakeError> {
    let mut prefix = vec![0u8; V1_PREFIX_LEN];
    stream.read_exact(&mut prefix).await?;
    if prefix == v1_version_prefix(magic) {
        if !allow_v1 {
            return Err(HandshakeError::V1NotAllowed);
        }
        return Ok(Session::v1(stream, magic, prefix, false));
    }
    v2_handshake(stream, magic, Role::Responder, prefix).await
}

/// The first 16 bytes of any v1 connection: magic, then `version` padded.
fn v1_version_prefix(magic: Magic) -> [u8; V1_PREFIX_LEN] {
    let mut p = [0u8; V1_PREFIX_LEN];
    p[..4].copy_from_slice(&magic.to_bytes());
    p[4..11].copy_from_slice(b"version");
    p
}

/// Bytes read from the stream but not yet consumed by the handshake.
struct Input<'s, S> {
    stream: &'s mut S,
    buf: Vec<u8>,
}

impl<S: AsyncRead + Unpin> Input<'_, S> {
    /// Make sure at least `n` bytes are buffered.
    async fn fill(&mut self, n: usize) -> std::io::Result<()> {
        let mut chunk = [0u8; 1024];
        while self.buf.len() < n {
            let got = self.stream.read(&mut chunk).await?;
            if got == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            self.buf.extend_from_slice(&chunk[..got]);
        }
        Ok(())
    }

    /// Remove and return the first `n` buffered bytes (`fill` first).
    fn take(&mut self, n: usize) -> Vec<u8> {
        self.buf.drain(..n.min(self.buf.len())).collect()
    }
}

/// Whether an I/O error during the key exchange means "the peer hung up on
/// v2, try v1". The `bip324` crate makes that call (a reset, abort or EOF
/// while waiting for the peer's key); we ask it rather than second-guess it.
fn crate_suggests_v1(kind: std::io::ErrorKind) -> bool {
    use bip324::io::{ProtocolError, ProtocolFailureSuggestion};
    matches!(
        ProtocolError::from(std::io::Error::from(kind)),
        ProtocolError::Io(_, ProtocolFailureSuggestion::RetryV1)
    )
}

/// Run the BIP324 handshake in `role` over `stream`, `already` holding
/// bytes read before (the responder's v1 probe).
async fn v2_handshake<S: PeerStream>(
    mut stream: S,
    magic: Magic,
    role: Role,
    already: Vec<u8>,
) -> Result<Session<S>, HandshakeError> {
    let magic_bytes = magic.to_bytes();
    let handshake = Handshake::<Initialized>::new(magic_bytes, role)?;
    let mut key_out = vec![0u8; Handshake::<Initialized>::send_key_len(None)];
    let handshake = handshake.send_key(None, &mut key_out)?;
    write_all(&mut stream, &key_out).await?;

    let mut input = Input {
        stream: &mut stream,
        buf: already,
    };
    if let Err(e) = input.fill(KEY_BYTES).await {
        return Err(if crate_suggests_v1(e.kind()) {
            HandshakeError::RejectedV2
        } else {
            e.into()
        });
    }
    let mut their_key = [0u8; KEY_BYTES];
    their_key.copy_from_slice(&input.take(KEY_BYTES));
    let handshake = handshake.receive_key(their_key)?;

    let mut version_out = vec![0u8; Handshake::<ReceivedKey>::send_version_len(None)];
    let handshake = handshake.send_version(&mut version_out, None)?;
    write_all(input.stream, &version_out).await?;

    // Their garbage (up to 4095 bytes), then the 16-byte terminator. The
    // crate keeps a borrow of the garbage (it authenticates the version
    // packet), so it gets a buffer of its own that outlives the search.
    input.fill(TERMINATOR_BYTES).await?;
    let mut garbage = std::mem::take(&mut input.buf);
    let mut waiting = handshake;
    let (mut handshake, consumed) = loop {
        match waiting.receive_garbage(&garbage) {
            Ok(GarbageResult::FoundGarbage {
                handshake,
                consumed_bytes,
            }) => break (handshake, consumed_bytes),
            Ok(GarbageResult::NeedMoreData(h)) => {
                if garbage.len() > MAX_GARBAGE + TERMINATOR_BYTES {
                    return Err(HandshakeError::Protocol("no garbage terminator".into()));
                }
                waiting = h;
                let mut chunk = [0u8; 512];
                let got = input.stream.read(&mut chunk).await?;
                if got == 0 {
                    return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into());
                }
                garbage.extend_from_slice(&chunk[..got]);
            }
            Err(e) => return Err(e.into()),
        }
    };
    input.buf = garbage.get(consumed..).unwrap_or_default().to_vec();

    // Decoy packets, then the version packet that completes the handshake.
    let cipher = loop {
        input.fill(3).await?;
        let len_bytes: [u8; 3] = input
            .take(3)
            .try_into()
            .map_err(|_| HandshakeError::Protocol("short length".into()))?;
        let len = handshake.decrypt_packet_len(len_bytes)?;
        if len > MAX_HANDSHAKE_PACKET {
            return Err(HandshakeError::Protocol(format!(
                "{len}-byte packet during handshake"
            )));
        }
        input.fill(len).await?;
        let mut packet = input.take(len);
        match handshake.receive_version(&mut packet)? {
            VersionResult::Complete { cipher } => break cipher,
            VersionResult::Decoy(h) => handshake = h,
        }
    };
    let leftover = std::mem::take(&mut input.buf);
    Ok(Session::v2(stream, cipher, leftover))
}

/// Write and flush (Tor streams hold bytes until flushed).
async fn write_all<S: AsyncWrite + Unpin>(stream: &mut S, bytes: &[u8]) -> std::io::Result<()> {
    stream.write_all(bytes).await?;
    stream.flush().await
}
