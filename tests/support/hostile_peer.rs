//! Byte-level hostile peers for daemon tests: a v1 peer and a BIP324 v2
//! peer that do the version handshake themselves and can then write any
//! frame or packet, well-formed or not, and watch how the daemon reacts.
//!
//! `TestPeer` is the right tool for well-behaved sessions; these exist for
//! the bytes it refuses to produce (bad magic, bad checksums, forged
//! lengths, broken authentication tags, decoy packets).

#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bip324::{OutboundCipher, PacketType};
use bitcoin::hashes::{Hash, sha256d};
use nightjar::wire::{
    Magic, NetworkMessage, V1Decoder, VersionMessage, decode_v2_contents, encode_v1,
    encode_v2_contents,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

/// What one read attempt saw.
#[derive(Debug)]
pub enum Recv {
    /// A whole message.
    Msg(NetworkMessage),
    /// The daemon closed the stream (EOF, reset, or bytes we cannot read).
    Closed(String),
    /// Nothing within the limit; the stream is still open.
    Silent,
}

/// How a connection ended up after a behaviour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reaction {
    /// The daemon closed it.
    Dropped,
    /// Still open when we stopped watching.
    Kept,
    /// We closed it ourselves (the behaviour was to hang up).
    WeClosed,
    /// Open, but a `ping` went unanswered.
    Unserved,
}

impl std::fmt::Display for Reaction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Reaction::Dropped => "dropped",
            Reaction::Kept => "kept",
            Reaction::WeClosed => "we closed",
            Reaction::Unserved => "open, unserved",
        })
    }
}

/// A peer that can read messages and be watched until the daemon hangs up.
pub trait Watch {
    /// The next message, or why there is none, within `limit`.
    fn recv_within(&mut self, limit: Duration) -> impl Future<Output = Recv> + Send;

    /// Read and discard until the daemon closes the stream (`Dropped`) or
    /// `limit` passes (`Kept`).
    fn watch(&mut self, limit: Duration) -> impl Future<Output = Reaction> + Send
    where
        Self: Send,
    {
        async move {
            let deadline = Instant::now() + limit;
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Reaction::Kept;
                }
                match self.recv_within(left).await {
                    Recv::Msg(_) => {}
                    Recv::Closed(_) => return Reaction::Dropped,
                    Recv::Silent => return Reaction::Kept,
                }
            }
        }
    }
}

/// Read raw bytes from `stream` until EOF (`Dropped`) or `limit` (`Kept`).
pub async fn watch_raw(stream: &mut TcpStream, limit: Duration) -> Reaction {
    let deadline = Instant::now() + limit;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Err(_) => return Reaction::Kept,
            Ok(Ok(0) | Err(_)) => return Reaction::Dropped,
            Ok(Ok(_)) => {}
        }
    }
}

/// A v1 frame with every header field chosen by the caller, so that magic,
/// length and checksum can each be wrong on purpose.
pub fn v1_frame(
    magic: [u8; 4],
    command: &str,
    declared_len: u32,
    checksum: [u8; 4],
    payload: &[u8],
) -> Vec<u8> {
    let mut frame = Vec::with_capacity(24 + payload.len());
    frame.extend_from_slice(&magic);
    let mut cmd = [0u8; 12];
    cmd[..command.len()].copy_from_slice(command.as_bytes());
    frame.extend_from_slice(&cmd);
    frame.extend_from_slice(&declared_len.to_le_bytes());
    frame.extend_from_slice(&checksum);
    frame.extend_from_slice(payload);
    frame
}

/// The v1 checksum of `payload` (first four bytes of its double SHA-256).
pub fn checksum(payload: &[u8]) -> [u8; 4] {
    let hash = sha256d::Hash::hash(payload).to_byte_array();
    [hash[0], hash[1], hash[2], hash[3]]
}

/// A v1 peer over TCP that frames its own bytes.
pub struct V1Raw {
    stream: TcpStream,
    decoder: V1Decoder,
    magic: Magic,
    /// Our side's port, to find the connection in the daemon's log.
    pub port: u16,
}

impl V1Raw {
    /// Open a TCP stream to `listen` (no bytes sent yet).
    pub async fn connect(listen: SocketAddr, magic: Magic) -> std::io::Result<V1Raw> {
        let stream = TcpStream::connect(listen).await?;
        let port = stream.local_addr()?.port();
        Ok(V1Raw {
            stream,
            decoder: V1Decoder::new(magic),
            magic,
            port,
        })
    }

    /// Write raw bytes.
    pub async fn send_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes).await?;
        self.stream.flush().await
    }

    /// Write one well-formed message.
    pub async fn send(&mut self, msg: &NetworkMessage) -> std::io::Result<()> {
        let frame = encode_v1(self.magic, msg);
        self.send_raw(&frame).await
    }

    /// Close our sending direction; the daemon reads EOF.
    pub async fn finish(&mut self) -> std::io::Result<()> {
        self.stream.shutdown().await
    }

    /// The stream itself, for tests that stop reading or tune the socket.
    pub fn stream(&mut self) -> &mut TcpStream {
        &mut self.stream
    }
}

impl Watch for V1Raw {
    async fn recv_within(&mut self, limit: Duration) -> Recv {
        let deadline = Instant::now() + limit;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match self.decoder.next_message() {
                Ok(Some(msg)) => return Recv::Msg(msg),
                Ok(None) => {}
                Err(e) => return Recv::Closed(format!("undecodable: {e}")),
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.stream.read(&mut buf)).await {
                Err(_) => return Recv::Silent,
                Ok(Ok(0)) => return Recv::Closed("eof".into()),
                Ok(Err(e)) => return Recv::Closed(e.to_string()),
                Ok(Ok(n)) => self.decoder.push(&buf[..n]),
            }
        }
    }
}

/// Read until the daemon's `verack` (its `version` and feature messages
/// come first).
async fn await_verack(peer: &mut impl Watch) -> Result<(), String> {
    loop {
        match peer.recv_within(Duration::from_secs(20)).await {
            Recv::Msg(NetworkMessage::Verack) => return Ok(()),
            Recv::Msg(_) => {}
            Recv::Closed(why) => return Err(format!("closed during handshake: {why}")),
            Recv::Silent => return Err("no verack".into()),
        }
    }
}

/// How to spoil one v2 packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spoil {
    /// Flip a bit of the authentication tag (the packet's last byte).
    AuthTag,
    /// Flip the top bit of the encrypted length, so that it decrypts to a
    /// length of several megabytes.
    Length,
}

/// A BIP324 v2 initiator built directly on the `bip324` crate, which
/// encrypts its own packets so that it can also send decoys and spoiled
/// ones.
pub struct V2Raw {
    reader: bip324::futures::ProtocolReader<OwnedReadHalf>,
    cipher: OutboundCipher,
    writer: OwnedWriteHalf,
    /// Our side's port, to find the connection in the daemon's log.
    pub port: u16,
}

impl V2Raw {
    /// Connect and complete the BIP324 key exchange.
    pub async fn connect(listen: SocketAddr, magic: Magic) -> Result<V2Raw, String> {
        let stream = TcpStream::connect(listen)
            .await
            .map_err(|e| e.to_string())?;
        let port = stream.local_addr().map_err(|e| e.to_string())?.port();
        let (r, w) = stream.into_split();
        let protocol = bip324::futures::Protocol::new(
            magic.to_bytes(),
            bip324::Role::Initiator,
            None,
            None,
            r,
            w,
        )
        .await
        .map_err(|e| format!("{e:?}"))?;
        let (reader, writer) = protocol.into_split();
        let (cipher, writer) = writer.into_inner();
        Ok(V2Raw {
            reader,
            cipher,
            writer,
            port,
        })
    }

    fn packet(&mut self, contents: &[u8], kind: PacketType) -> Vec<u8> {
        let mut out = vec![0u8; OutboundCipher::encryption_buffer_len(contents.len())];
        self.cipher.encrypt(contents, &mut out, kind, None).unwrap();
        out
    }

    /// Write raw bytes (no encryption).
    pub async fn send_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.writer.write_all(bytes).await?;
        self.writer.flush().await
    }

    /// Send one genuine message.
    pub async fn send(&mut self, msg: &NetworkMessage) -> std::io::Result<()> {
        let packet = self.packet(&encode_v2_contents(msg), PacketType::Genuine);
        self.send_raw(&packet).await
    }

    /// Send one decoy packet of `len` filler bytes.
    pub async fn send_decoy(&mut self, len: usize) -> std::io::Result<()> {
        let packet = self.packet(&vec![0u8; len], PacketType::Decoy);
        self.send_raw(&packet).await
    }

    /// Send `msg` in a packet spoiled as `how`.
    pub async fn send_spoiled(&mut self, msg: &NetworkMessage, how: Spoil) -> std::io::Result<()> {
        let mut packet = self.packet(&encode_v2_contents(msg), PacketType::Genuine);
        match how {
            Spoil::AuthTag => *packet.last_mut().unwrap() ^= 0x01,
            Spoil::Length => packet[2] ^= 0x80,
        }
        self.send_raw(&packet).await
    }
}

impl Watch for V2Raw {
    async fn recv_within(&mut self, limit: Duration) -> Recv {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.reader.read()).await {
                Err(_) => return Recv::Silent,
                Ok(Err(e)) => return Recv::Closed(format!("{e:?}")),
                Ok(Ok(payload)) => {
                    if payload.packet_type() == PacketType::Decoy {
                        continue;
                    }
                    return match decode_v2_contents(payload.contents()) {
                        Ok(msg) => Recv::Msg(msg),
                        Err(e) => Recv::Closed(format!("undecodable: {e}")),
                    };
                }
            }
        }
    }
}

/// A session that can send whole messages: [`V1Raw`] or [`V2Raw`], so that
/// one behaviour can be run over either transport.
pub trait Speaker: Watch + Send + Sized {
    /// Open a session to `listen` (for v2, through the key exchange).
    fn open(listen: SocketAddr, magic: Magic) -> impl Future<Output = Result<Self, String>> + Send;
    /// Send one well-formed message.
    fn send_msg(
        &mut self,
        msg: &NetworkMessage,
    ) -> impl Future<Output = std::io::Result<()>> + Send;
    /// Our side's port.
    fn port(&self) -> u16;
}

impl Speaker for V1Raw {
    async fn open(listen: SocketAddr, magic: Magic) -> Result<Self, String> {
        V1Raw::connect(listen, magic)
            .await
            .map_err(|e| e.to_string())
    }
    async fn send_msg(&mut self, msg: &NetworkMessage) -> std::io::Result<()> {
        self.send(msg).await
    }
    fn port(&self) -> u16 {
        self.port
    }
}

impl Speaker for V2Raw {
    async fn open(listen: SocketAddr, magic: Magic) -> Result<Self, String> {
        V2Raw::connect(listen, magic).await
    }
    async fn send_msg(&mut self, msg: &NetworkMessage) -> std::io::Result<()> {
        self.send(msg).await
    }
    fn port(&self) -> u16 {
        self.port
    }
}

/// Send `version`, wait for the daemon's `verack`, send ours.
pub async fn full_handshake<P: Speaker>(peer: &mut P, ours: VersionMessage) -> Result<(), String> {
    peer.send_msg(&NetworkMessage::Version(ours))
        .await
        .map_err(|e| e.to_string())?;
    await_verack(peer).await?;
    peer.send_msg(&NetworkMessage::Verack)
        .await
        .map_err(|e| e.to_string())
}
