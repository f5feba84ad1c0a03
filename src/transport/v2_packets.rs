//! BIP324 packet framing over the `bip324` crate's ciphers, push-style.
//!
//! A v2 packet is a 3-byte encrypted length, then the encrypted header byte
//! and contents, then a 16-byte tag. The crate does all cryptography; this
//! module only buffers bytes, checks the decrypted length against our cap
//! *before* buffering the packet, and hands out whole packets.

use bip324::{InboundCipher, OutboundCipher, PacketType};

use crate::wire::MAX_PAYLOAD_LEN;

/// The header bit that marks a decoy packet.
const IGNORE_BIT: u8 = 0x80;

/// Bytes of the encrypted length prefix.
const LENGTH_BYTES: usize = 3;

/// The largest packet we accept: the largest payload, the long-form message
/// header (1 + 12 bytes), the packet header byte and the 16-byte tag.
pub const MAX_PACKET_LEN: usize = MAX_PAYLOAD_LEN + 13 + 1 + 16;

/// Why a v2 packet could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PacketError {
    /// The decrypted length exceeds [`MAX_PACKET_LEN`].
    #[error("v2 packet of {0} bytes exceeds the {MAX_PACKET_LEN}-byte limit")]
    TooLong(usize),
    /// Authentication failed: tampering, or the streams are out of sync.
    #[error("v2 packet failed to decrypt")]
    Decryption,
}

/// A decrypted packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    /// Decoys carry nothing and are dropped by the caller.
    pub decoy: bool,
    /// The message contents (without the header byte).
    pub contents: Vec<u8>,
    /// Bytes the packet took on the wire.
    pub wire_len: usize,
}

/// Decrypts a stream of v2 packets fed in arbitrary chunks.
pub struct PacketDecoder {
    cipher: InboundCipher,
    buf: Vec<u8>,
    /// Length of the packet being buffered, once its prefix is decrypted.
    /// The length cipher is a stream cipher: each prefix is decrypted once.
    pending: Option<usize>,
}

impl std::fmt::Debug for PacketDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PacketDecoder")
            .field("buffered", &self.buf.len())
            .field("pending", &self.pending)
            .finish_non_exhaustive()
    }
}

impl PacketDecoder {
    /// A decoder using `cipher`, starting with `leftover` bytes that arrived
    /// with the handshake.
    pub fn new(cipher: InboundCipher, leftover: Vec<u8>) -> Self {
        PacketDecoder {
            cipher,
            buf: leftover,
            pending: None,
        }
    }

    /// Append received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Whether part of a packet is buffered (for reporting a truncated
    /// stream at EOF).
    pub fn has_partial(&self) -> bool {
        self.pending.is_some() || !self.buf.is_empty()
    }

    /// The next whole packet, `Ok(None)` if more bytes are needed.
    pub fn next_packet(&mut self) -> Result<Option<Packet>, PacketError> {
        let len = match self.pending {
            Some(len) => len,
            None => {
                let Some(prefix) = self.buf.get(..LENGTH_BYTES) else {
                    return Ok(None);
                };
                let mut len_bytes = [0u8; LENGTH_BYTES];
                len_bytes.copy_from_slice(prefix);
                let len = self.cipher.decrypt_packet_len(len_bytes);
                if len > MAX_PACKET_LEN {
                    return Err(PacketError::TooLong(len));
                }
                self.buf.drain(..LENGTH_BYTES);
                self.pending = Some(len);
                len
            }
        };
        if self.buf.len() < len {
            return Ok(None);
        }
        let mut ciphertext: Vec<u8> = self.buf.drain(..len).collect();
        self.pending = None;
        let (_, plaintext) = self
            .cipher
            .decrypt_in_place(&mut ciphertext, None)
            .map_err(|_| PacketError::Decryption)?;
        // BIP324: the packet is a decoy if the header's top ("ignore") bit is
        // set, whatever the other bits say. (bip324 0.11's `PacketType` only
        // recognises exactly 0x80, as Core would not.)
        let header = plaintext.first().copied().unwrap_or_default();
        Ok(Some(Packet {
            decoy: header & IGNORE_BIT != 0,
            contents: plaintext.get(1..).unwrap_or_default().to_vec(),
            wire_len: LENGTH_BYTES + len,
        }))
    }
}

/// Encrypts outgoing v2 packets.
pub struct PacketEncoder {
    cipher: OutboundCipher,
}

impl std::fmt::Debug for PacketEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PacketEncoder")
    }
}

impl PacketEncoder {
    /// An encoder using `cipher`.
    pub fn new(cipher: OutboundCipher) -> Self {
        PacketEncoder { cipher }
    }

    /// The bytes of one genuine packet carrying `contents`.
    pub fn encrypt(&mut self, contents: &[u8]) -> Vec<u8> {
        self.cipher
            .encrypt_to_vec(contents, PacketType::Genuine, None)
    }

    /// The bytes of one decoy packet (ignored by the receiver).
    pub fn encrypt_decoy(&mut self, filler: &[u8]) -> Vec<u8> {
        self.cipher.encrypt_to_vec(filler, PacketType::Decoy, None)
    }
}
