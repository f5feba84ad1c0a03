//! An established transport: reads and writes whole messages, v1 or v2.

use std::fmt;

use bip324::CipherSession;
use nightjar_tor::CircuitLabel;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};

use crate::peer::DisconnectReason;
use crate::transport::dialer::PeerStream;
use crate::transport::v2_packets::{PacketDecoder, PacketEncoder, PacketError};
use crate::wire::{
    Magic, NetworkMessage, V1Decoder, decode_v2_contents, encode_v1, encode_v2_contents,
};

/// Bytes read from the stream at a time.
const READ_CHUNK: usize = 16 * 1024;

/// Which protocol a session speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportKind {
    /// Legacy plaintext framing.
    V1,
    /// BIP324 encrypted transport.
    V2 {
        /// The BIP324 session id both sides derive (compare it out of band to
        /// rule out a man in the middle).
        session_id: [u8; 32],
    },
}

impl TransportKind {
    /// Core's `transport_protocol_type` value.
    pub fn core_name(&self) -> &'static str {
        match self {
            TransportKind::V1 => "v1",
            TransportKind::V2 { .. } => "v2",
        }
    }

    /// Core's `session_id` field: hex for v2, empty for v1.
    pub fn session_id_hex(&self) -> String {
        match self {
            TransportKind::V1 => String::new(),
            TransportKind::V2 { session_id } => {
                session_id.iter().map(|b| format!("{b:02x}")).collect()
            }
        }
    }
}

impl fmt::Display for TransportKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.core_name())
    }
}

enum Decoder {
    V1(V1Decoder),
    V2(PacketDecoder),
}

enum Encoder {
    V1(Magic),
    V2(PacketEncoder),
}

/// A stream with an established transport.
pub struct Session<S> {
    stream: S,
    kind: TransportKind,
    fell_back_to_v1: bool,
    decoder: Decoder,
    encoder: Encoder,
}

impl<S> fmt::Debug for Session<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("kind", &self.kind)
            .field("fell_back_to_v1", &self.fell_back_to_v1)
            .finish_non_exhaustive()
    }
}

impl<S: PeerStream> Session<S> {
    /// A v1 session on a stream we opened: v1 has no handshake, the
    /// initiator simply speaks first.
    pub fn start_v1(stream: S, magic: Magic) -> Self {
        Self::v1(stream, magic, Vec::new(), false)
    }

    /// A v1 session; `already` holds bytes read while probing.
    pub(crate) fn v1(stream: S, magic: Magic, already: Vec<u8>, fell_back_to_v1: bool) -> Self {
        let mut decoder = V1Decoder::new(magic);
        decoder.push(&already);
        Session {
            stream,
            kind: TransportKind::V1,
            fell_back_to_v1,
            decoder: Decoder::V1(decoder),
            encoder: Encoder::V1(magic),
        }
    }

    /// A v2 session from a completed handshake; `leftover` holds bytes that
    /// arrived with it.
    pub(crate) fn v2(stream: S, cipher: CipherSession, leftover: Vec<u8>) -> Self {
        let session_id = *cipher.id();
        let (inbound, outbound) = cipher.into_split();
        Session {
            stream,
            kind: TransportKind::V2 { session_id },
            fell_back_to_v1: false,
            decoder: Decoder::V2(PacketDecoder::new(inbound, leftover)),
            encoder: Encoder::V2(PacketEncoder::new(outbound)),
        }
    }

    /// The protocol in use.
    pub fn kind(&self) -> TransportKind {
        self.kind
    }

    /// Whether v2 was refused and this is the v1 retry.
    pub fn fell_back_to_v1(&self) -> bool {
        self.fell_back_to_v1
    }

    /// The Tor circuit carrying the session, if any.
    pub fn circuit(&self) -> Option<CircuitLabel> {
        self.stream.circuit()
    }

    /// Split into a reader and a writer that work independently.
    pub fn into_split(self) -> (MessageReader<ReadHalf<S>>, MessageWriter<WriteHalf<S>>) {
        let (read, write) = tokio::io::split(self.stream);
        (
            MessageReader {
                inner: read,
                decoder: self.decoder,
                chunk: vec![0u8; READ_CHUNK],
                skipped: 0,
            },
            MessageWriter {
                inner: write,
                encoder: self.encoder,
            },
        )
    }
}

/// Reads whole messages.
pub struct MessageReader<R> {
    inner: R,
    decoder: Decoder,
    chunk: Vec<u8>,
    /// Wire bytes of v2 decoy packets since the last message, charged to
    /// the next one.
    skipped: usize,
}

impl<R: AsyncRead + Unpin> MessageReader<R> {
    /// The next message and its size on the wire. Every failure is already
    /// classified as the reason the connection ends.
    pub async fn next(&mut self) -> Result<(NetworkMessage, usize), DisconnectReason> {
        loop {
            if let Some(found) = self.decode_buffered()? {
                return Ok(found);
            }
            let n = self
                .inner
                .read(&mut self.chunk)
                .await
                .map_err(|e| DisconnectReason::Io(e.to_string()))?;
            let Some(bytes) = self.chunk.get(..n) else {
                return Err(DisconnectReason::Io("read past buffer".into()));
            };
            if n == 0 {
                let partial = match &self.decoder {
                    Decoder::V1(d) => d.has_partial_frame(),
                    Decoder::V2(d) => d.has_partial(),
                };
                return Err(if partial {
                    DisconnectReason::TruncatedFrame
                } else {
                    DisconnectReason::PeerClosed
                });
            }
            match &mut self.decoder {
                Decoder::V1(d) => d.push(bytes),
                Decoder::V2(d) => d.push(bytes),
            }
        }
    }

    /// A message from bytes already buffered, if a whole one is there.
    ///
    /// Every wire error ends the connection, also those the v1 decoder
    /// could step over (a bad checksum, a malformed payload): Core drops
    /// such a frame and reads on, but over TCP or Tor, which deliver bytes
    /// intact, a damaged frame is not line noise; it is a peer sending
    /// garbage, and it is scored as such.
    fn decode_buffered(&mut self) -> Result<Option<(NetworkMessage, usize)>, DisconnectReason> {
        match &mut self.decoder {
            Decoder::V1(d) => {
                let before = d.buffered();
                let msg = d.next_message().map_err(DisconnectReason::Wire)?;
                Ok(msg.map(|m| (m, before.saturating_sub(d.buffered()))))
            }
            Decoder::V2(d) => loop {
                let packet = match d.next_packet() {
                    Ok(Some(p)) => p,
                    Ok(None) => return Ok(None),
                    Err(PacketError::Decryption) => return Err(DisconnectReason::Decryption),
                    Err(PacketError::TooLong(len)) => {
                        return Err(DisconnectReason::Wire(crate::wire::WireError::Oversize {
                            command: "(v2 packet)".into(),
                            len,
                            max: crate::transport::v2_packets::MAX_PACKET_LEN,
                        }));
                    }
                };
                if packet.decoy {
                    // Ignored, but not free: its bytes are charged with the
                    // next message, so decoys cannot slip a flood past the
                    // peer's byte budget.
                    self.skipped = self.skipped.saturating_add(packet.wire_len);
                    continue;
                }
                let msg = decode_v2_contents(&packet.contents).map_err(DisconnectReason::Wire)?;
                let wire_len = packet
                    .wire_len
                    .saturating_add(std::mem::take(&mut self.skipped));
                return Ok(Some((msg, wire_len)));
            },
        }
    }
}

/// Writes whole messages.
pub struct MessageWriter<W> {
    inner: W,
    encoder: Encoder,
}

impl<W: AsyncWrite + Unpin> MessageWriter<W> {
    /// Write one message and flush it; returns its size on the wire.
    pub async fn send(&mut self, msg: &NetworkMessage) -> std::io::Result<usize> {
        let bytes = match &mut self.encoder {
            Encoder::V1(magic) => encode_v1(*magic, msg),
            Encoder::V2(enc) => enc.encrypt(&encode_v2_contents(msg)),
        };
        self.inner.write_all(&bytes).await?;
        // Tor streams (and BufWriters) hold bytes until flushed.
        self.inner.flush().await?;
        Ok(bytes.len())
    }

    /// Close our sending direction.
    pub async fn shutdown(&mut self) -> std::io::Result<()> {
        self.inner.shutdown().await
    }
}
