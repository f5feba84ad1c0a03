//! Scriptable Bitcoin test peers for nightjar's tests.
//!
//! A [`TestPeer`] speaks the real wire format — v1 framing or a real BIP324
//! v2 session (the `bip324` crate's key exchange and ciphers) — in either
//! role, over any byte stream (an in-memory duplex, a TCP socket, a Tor
//! stream). Tests script it step by step: send this, expect that, misbehave
//! here. [`RawPeer`] writes arbitrary bytes for hostile-input tests.
//!
//! It is built from nightjar's own codec and transport. That is deliberate:
//! the codec is checked separately against the BIP324 vectors and the
//! `bitcoin` crate's encodings; here we need a peer that can be told to
//! break the *protocol* in precise ways.
//!
//! [`node::ScriptedNode`] builds on it: a listening peer that a real
//! `nightjar` process dials, for end-to-end tests and the offline demo.

pub mod node;

use std::time::Duration;

use nightjar::peer::DisconnectReason;
use nightjar::transport::{
    HandshakeError, MessageReader, MessageWriter, PeerStream, Session, TransportKind,
    accept_inbound, initiate_v2,
};
use nightjar::wire::{Address, Magic, NetworkMessage, ServiceFlags, VersionMessage};
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};

/// The regtest network magic, the usual choice for test peers.
pub const REGTEST: Magic = Magic::REGTEST;

/// How long [`TestPeer::recv`] waits before declaring the other side silent.
pub const RECV_TIMEOUT: Duration = Duration::from_secs(30);

/// Which transport a test peer uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Speak {
    /// Legacy v1 framing.
    V1,
    /// BIP324 v2.
    V2,
}

/// A peer that speaks whole messages.
pub struct TestPeer<S: PeerStream> {
    reader: MessageReader<ReadHalf<S>>,
    writer: MessageWriter<WriteHalf<S>>,
    kind: TransportKind,
}

impl<S: PeerStream> std::fmt::Debug for TestPeer<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TestPeer({})", self.kind)
    }
}

impl<S: PeerStream> TestPeer<S> {
    /// Open a session as the initiator.
    pub async fn connect(stream: S, magic: Magic, speak: Speak) -> Result<Self, HandshakeError> {
        let session = match speak {
            Speak::V1 => Session::start_v1(stream, magic),
            Speak::V2 => initiate_v2(stream, magic).await?,
        };
        Ok(Self::from_session(session))
    }

    /// Accept a session as the responder (v1 allowed if `allow_v1`).
    pub async fn accept(stream: S, magic: Magic, allow_v1: bool) -> Result<Self, HandshakeError> {
        Ok(Self::from_session(
            accept_inbound(stream, magic, allow_v1).await?,
        ))
    }

    fn from_session(session: Session<S>) -> Self {
        let kind = session.kind();
        let (reader, writer) = session.into_split();
        TestPeer {
            reader,
            writer,
            kind,
        }
    }

    /// The transport in use (with the v2 session id).
    pub fn kind(&self) -> TransportKind {
        self.kind
    }

    /// Send one message.
    pub async fn send(&mut self, msg: NetworkMessage) -> std::io::Result<()> {
        self.writer.send(&msg).await.map(|_| ())
    }

    /// The next message, or why there is none (within [`RECV_TIMEOUT`]).
    pub async fn recv(&mut self) -> Result<NetworkMessage, DisconnectReason> {
        self.recv_within(RECV_TIMEOUT).await
    }

    /// The next message, waiting at most `limit`.
    pub async fn recv_within(
        &mut self,
        limit: Duration,
    ) -> Result<NetworkMessage, DisconnectReason> {
        match tokio::time::timeout(limit, self.reader.next()).await {
            Ok(Ok((msg, _))) => Ok(msg),
            Ok(Err(reason)) => Err(reason),
            Err(_) => Err(DisconnectReason::Local(
                "test peer: nothing received in time".into(),
            )),
        }
    }

    /// Receive until a message matching `want` arrives (skipping others);
    /// returns it, or the reason the stream ended.
    pub async fn recv_until(
        &mut self,
        mut want: impl FnMut(&NetworkMessage) -> bool,
    ) -> Result<NetworkMessage, DisconnectReason> {
        loop {
            let msg = self.recv().await?;
            if want(&msg) {
                return Ok(msg);
            }
        }
    }

    /// Wait until the other side closes; returns how it ended.
    pub async fn closed(&mut self) -> DisconnectReason {
        loop {
            if let Err(reason) = self.recv().await {
                return reason;
            }
        }
    }

    /// Complete the version handshake from the responder side: wait for
    /// their `version`, answer with `ours`, `wtxidrelay`, `sendaddrv2` and
    /// `verack`, then wait for their `verack`.
    pub async fn answer_handshake(
        &mut self,
        ours: VersionMessage,
    ) -> Result<VersionMessage, DisconnectReason> {
        Ok(self.answer_handshake_full(ours).await?.version)
    }

    /// [`answer_handshake`](Self::answer_handshake), also returning what
    /// the other side negotiated (its `wtxidrelay`, `sendaddrv2`).
    pub async fn answer_handshake_full(
        &mut self,
        ours: VersionMessage,
    ) -> Result<Handshake, DisconnectReason> {
        let theirs = match self.recv().await? {
            NetworkMessage::Version(v) => v,
            other => {
                return Err(DisconnectReason::Local(format!(
                    "expected version, got {}",
                    other.cmd()
                )));
            }
        };
        self.send_all([NetworkMessage::Version(ours)]).await?;
        self.negotiate_and_verack(theirs).await
    }

    /// Complete the version handshake from the initiator side: send `ours`,
    /// wait for their `version` and `verack`, then send our `verack`.
    pub async fn start_handshake(
        &mut self,
        ours: VersionMessage,
    ) -> Result<VersionMessage, DisconnectReason> {
        Ok(self.start_handshake_full(ours).await?.version)
    }

    /// [`start_handshake`](Self::start_handshake), also returning what the
    /// other side negotiated (its `wtxidrelay`, `sendaddrv2`).
    pub async fn start_handshake_full(
        &mut self,
        ours: VersionMessage,
    ) -> Result<Handshake, DisconnectReason> {
        self.send_all([NetworkMessage::Version(ours)]).await?;
        let theirs = match self
            .recv_until(|m| matches!(m, NetworkMessage::Version(_)))
            .await?
        {
            NetworkMessage::Version(v) => v,
            _ => return Err(DisconnectReason::Local("unreachable".into())),
        };
        self.negotiate_and_verack(theirs).await
    }

    /// Our half of the handshake after their `version`: feature
    /// negotiation, `verack`, then wait for their `verack`, noting the
    /// features they negotiated on the way (BIP339 and BIP155 put them
    /// between `version` and `verack`; later ones do not count, as in
    /// Core). Anything else before their `verack` is skipped.
    async fn negotiate_and_verack(
        &mut self,
        theirs: VersionMessage,
    ) -> Result<Handshake, DisconnectReason> {
        self.send_all([
            NetworkMessage::WtxidRelay,
            NetworkMessage::SendAddrV2,
            NetworkMessage::Verack,
        ])
        .await?;
        let mut handshake = Handshake {
            version: theirs,
            wtxid_relay: false,
            addrv2: false,
        };
        loop {
            match self.recv().await? {
                NetworkMessage::Verack => return Ok(handshake),
                NetworkMessage::WtxidRelay => handshake.wtxid_relay = true,
                NetworkMessage::SendAddrV2 => handshake.addrv2 = true,
                _ => {}
            }
        }
    }

    async fn send_all<const N: usize>(
        &mut self,
        msgs: [NetworkMessage; N],
    ) -> Result<(), DisconnectReason> {
        for msg in msgs {
            self.send(msg)
                .await
                .map_err(|e| DisconnectReason::Io(e.to_string()))?;
        }
        Ok(())
    }
}

/// What the other side of a completed version handshake sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handshake {
    /// Its `version`.
    pub version: VersionMessage,
    /// Whether it sent `wtxidrelay` (BIP339) before its `verack`: it then
    /// expects transactions announced by wtxid.
    pub wtxid_relay: bool,
    /// Whether it sent `sendaddrv2` (BIP155) before its `verack`.
    pub addrv2: bool,
}

/// A peer that writes whatever bytes a test wants.
#[derive(Debug)]
pub struct RawPeer<S> {
    stream: S,
}

impl<S: PeerStream> RawPeer<S> {
    /// Wrap a stream.
    pub fn new(stream: S) -> Self {
        RawPeer { stream }
    }

    /// Write and flush raw bytes.
    pub async fn send_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes).await?;
        self.stream.flush().await
    }

    /// Close our sending direction (the other side reads EOF) but keep
    /// the stream, so its writes to us still succeed.
    pub async fn finish(&mut self) -> std::io::Result<()> {
        self.stream.shutdown().await
    }

    /// Read whatever arrives (up to `max` bytes) within [`RECV_TIMEOUT`];
    /// empty at EOF.
    pub async fn recv_raw(&mut self, max: usize) -> std::io::Result<Vec<u8>> {
        let mut buf = vec![0u8; max];
        let n = tokio::time::timeout(RECV_TIMEOUT, self.stream.read(&mut buf))
            .await
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
        buf.truncate(n);
        Ok(buf)
    }

    /// Read until EOF (or an error), discarding; returns the bytes seen.
    pub async fn drain_until_closed(&mut self) -> usize {
        let mut total = 0;
        let mut buf = [0u8; 4096];
        loop {
            match tokio::time::timeout(RECV_TIMEOUT, self.stream.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return total,
                Ok(Ok(n)) => total += n,
            }
        }
    }

    /// Give back the stream.
    pub fn into_inner(self) -> S {
        self.stream
    }
}

/// A v2 responder built on the `bip324` crate alone, independent of
/// nightjar's transport: for tests that need a remote speaking raw BIP324
/// packets (decoys, unknown short ids, noise after the handshake).
pub async fn bip324_responder<S: PeerStream>(
    stream: S,
    magic: Magic,
) -> Result<bip324::futures::Protocol<ReadHalf<S>, WriteHalf<S>>, bip324::io::ProtocolError> {
    let (r, w) = tokio::io::split(stream);
    bip324::futures::Protocol::new(magic.to_bytes(), bip324::Role::Responder, None, None, r, w)
        .await
}

/// A plausible `version` message for a test peer (protocol 70016, a full
/// node with witness support that relays transactions, as Core does).
pub fn version_message(nonce: u64, start_height: i32, user_agent: &str) -> VersionMessage {
    let services = ServiceFlags::NETWORK | ServiceFlags::WITNESS;
    let unroutable = Address::new(
        &std::net::SocketAddr::from(([0, 0, 0, 0], 0)),
        ServiceFlags::NONE,
    );
    VersionMessage {
        version: 70016,
        services,
        timestamp: 1_700_000_000,
        receiver: unroutable.clone(),
        sender: unroutable,
        nonce,
        user_agent: user_agent.to_string(),
        start_height,
        relay: true,
    }
}

/// A loopback TCP port nobody listens on right now, for a daemon's RPC
/// server in tests (another process could take it before the daemon binds
/// it; on a test machine that is rare, and the daemon then fails loudly).
pub fn free_port() -> std::io::Result<u16> {
    Ok(
        std::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0))?
            .local_addr()?
            .port(),
    )
}
