//! The legacy v1 framing: `magic[4] | command[12] | length u32 LE |
//! checksum[4] | payload`, where the checksum is the first four bytes of the
//! payload's double SHA-256.

use bitcoin::consensus::encode;
use bitcoin::hashes::{Hash, sha256d};
use bitcoin::p2p::Magic;
use bitcoin::p2p::message::NetworkMessage;

use super::command::{self, COMMAND_LEN};
use super::{MAX_PAYLOAD_LEN, WireError, decode_payload, encode_payload};

pub use super::payload::max_payload_len;

/// Length of the v1 header that precedes every payload.
pub const V1_HEADER_LEN: usize = MAGIC_LEN + COMMAND_LEN + LENGTH_LEN + CHECKSUM_LEN;

const MAGIC_LEN: usize = 4;
const LENGTH_LEN: usize = 4;
const CHECKSUM_LEN: usize = 4;

/// Capacity the decoder keeps once it has drained its buffer. Without a
/// limit, one 4 MB block would pin 4 MB for the rest of the connection.
const RETAINED_CAPACITY: usize = 64 * 1024;

/// Frames `msg` for the v1 transport of the network with `magic`.
///
/// The payload is not checked against [`max_payload_len`]; the peer enforces
/// its own caps on what we send.
pub fn encode_v1(magic: Magic, msg: &NetworkMessage) -> Vec<u8> {
    let payload = encode_payload(msg);
    // Only a payload over 4 GiB could fail the conversion, and such a
    // message cannot exist; the peer would refuse the saturated length.
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    let mut frame = Vec::with_capacity(V1_HEADER_LEN + payload.len());
    frame.extend_from_slice(&magic.to_bytes());
    frame.extend_from_slice(&encode::serialize(&msg.command()));
    frame.extend_from_slice(&len.to_le_bytes());
    frame.extend_from_slice(&checksum(&payload));
    frame.extend_from_slice(&payload);
    frame
}

/// Push-style v1 decoder: feed it any chunking of the bytes a peer sent and
/// pull whole messages out.
///
/// Every header is checked (magic, command's size cap) as soon as its 24
/// bytes are in, so a hostile length is refused before any of its payload is
/// accepted: the buffer never holds more than validated frames plus at most
/// one header.
///
/// Errors come in two kinds:
/// - a bad magic or an oversize length breaks the stream: nothing after it
///   can be framed and further bytes are dropped. [`Self::next_message`]
///   still hands out the messages complete before it, then returns the error
///   and keeps repeating it; from that point [`Self::is_broken`] is true;
/// - a bad command, a bad checksum or a malformed payload spoil one frame
///   only: that frame is consumed and the next call goes on with the next
///   one, as Core does when it drops such a message.
#[derive(Debug, Clone)]
pub struct V1Decoder {
    magic: Magic,
    /// Bytes received and not yet handed out, from `start`.
    buf: Vec<u8>,
    /// Offset in `buf` of the first byte not yet consumed.
    start: usize,
    /// End of the last complete frame: `start..complete_end` holds whole
    /// frames with validated headers, `complete_end..` the frame being filled.
    complete_end: usize,
    /// Payload length of the frame being filled, once its header is validated.
    filling_len: Option<usize>,
    /// The header error that broke the stream.
    broken: Option<WireError>,
}

impl V1Decoder {
    /// A decoder for a peer on the network identified by `magic`.
    pub fn new(magic: Magic) -> Self {
        Self {
            magic,
            buf: Vec::new(),
            start: 0,
            complete_end: 0,
            filling_len: None,
            broken: None,
        }
    }

    /// Appends bytes received from the peer.
    ///
    /// Takes only what the current frame still needs, validates each header
    /// the moment it is complete, then moves on to the next frame in `bytes`.
    /// Once the stream is broken, bytes are dropped.
    pub fn push(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() && self.broken.is_none() {
            let held = self.buf.len().saturating_sub(self.complete_end);
            let wanted = V1_HEADER_LEN + self.filling_len.unwrap_or(0);
            let take = wanted.saturating_sub(held).min(bytes.len());
            let Some((now, later)) = bytes.split_at_checked(take) else {
                break;
            };
            if now.is_empty() {
                // Cannot happen while `held < wanted`; stop rather than spin.
                break;
            }
            self.buf.extend_from_slice(now);
            bytes = later;
            self.settle_filling_frame();
        }
    }

    /// The next complete message, `Ok(None)` if more bytes are needed.
    ///
    /// See the type's documentation for which errors can be skipped past.
    pub fn next_message(&mut self) -> Result<Option<NetworkMessage>, WireError> {
        if self.start >= self.complete_end {
            return self.stalled();
        }
        let pending = self
            .buf
            .get(self.start..self.complete_end)
            .unwrap_or_default();
        // `push` only marks whole frames complete; the checks below restate it
        // without indexing.
        let Some((header, rest)) = RawHeader::parse(pending) else {
            return self.stalled();
        };
        let Some(payload) = rest.get(..header.len) else {
            return self.stalled();
        };
        let result = decode_frame(&header, payload);
        self.start += V1_HEADER_LEN + header.len;
        self.compact();
        result.map(Some)
    }

    /// Bytes held: complete frames not yet pulled plus the frame being filled.
    pub fn buffered(&self) -> usize {
        self.buf.len().saturating_sub(self.start)
    }

    /// Whether some bytes of an incomplete frame are held, so that an EOF
    /// now would cut a message short.
    pub fn has_partial_frame(&self) -> bool {
        self.buf.len() > self.complete_end
    }

    /// Whether a header error (bad magic, oversize length) has made the rest
    /// of the stream impossible to frame and every message before it has been
    /// pulled: from now on [`Self::next_message`] only repeats that error, so
    /// the connection should be closed.
    pub fn is_broken(&self) -> bool {
        self.broken.is_some() && self.start >= self.complete_end
    }

    /// The network magic this decoder expects.
    pub fn magic(&self) -> Magic {
        self.magic
    }

    /// Validates the header of the frame being filled once it is complete,
    /// and closes the frame once its payload is complete.
    fn settle_filling_frame(&mut self) {
        let filling = self.buf.get(self.complete_end..).unwrap_or_default();
        if self.filling_len.is_none() {
            let Some((header, _)) = RawHeader::parse(filling) else {
                return;
            };
            match header.validate(self.magic) {
                Ok(()) => self.filling_len = Some(header.len),
                Err(err) => {
                    self.broken = Some(err);
                    return;
                }
            }
        }
        if self
            .filling_len
            .is_some_and(|len| filling.len() == V1_HEADER_LEN + len)
        {
            self.complete_end = self.buf.len();
            self.filling_len = None;
        }
    }

    fn stalled(&self) -> Result<Option<NetworkMessage>, WireError> {
        match &self.broken {
            Some(err) => Err(err.clone()),
            None => Ok(None),
        }
    }

    /// Drops consumed bytes. Waits until they are at least half the buffer so
    /// that many small frames in one push cost amortised O(1) moves each.
    fn compact(&mut self) {
        if self.start >= self.buf.len() {
            self.buf.clear();
            self.buf.shrink_to(RETAINED_CAPACITY);
        } else if self.start >= self.buf.len() / 2 {
            self.buf.drain(..self.start);
        } else {
            return;
        }
        self.complete_end = self.complete_end.saturating_sub(self.start);
        self.start = 0;
    }
}

/// A v1 header split into its fields, not yet validated.
struct RawHeader {
    magic: [u8; MAGIC_LEN],
    command: [u8; COMMAND_LEN],
    len: usize,
    checksum: [u8; CHECKSUM_LEN],
}

impl RawHeader {
    /// Splits a header off the front of `bytes`; `None` if it is shorter.
    fn parse(bytes: &[u8]) -> Option<(Self, &[u8])> {
        let (magic, rest) = bytes.split_first_chunk::<MAGIC_LEN>()?;
        let (command, rest) = rest.split_first_chunk::<COMMAND_LEN>()?;
        let (len, rest) = rest.split_first_chunk::<LENGTH_LEN>()?;
        let (checksum, rest) = rest.split_first_chunk::<CHECKSUM_LEN>()?;
        // A u32 always fits the usize of the 32- and 64-bit targets we build
        // for; saturating keeps a hypothetical 16-bit target on the oversize path.
        let len = usize::try_from(u32::from_le_bytes(*len)).unwrap_or(usize::MAX);
        Some((
            Self {
                magic: *magic,
                command: *command,
                len,
                checksum: *checksum,
            },
            rest,
        ))
    }

    /// The checks that decide whether the stream can be framed past this
    /// header. A bad command is not one of them: the length still frames the
    /// message, so it is reported when the frame is pulled.
    fn validate(&self, magic: Magic) -> Result<(), WireError> {
        if self.magic != magic.to_bytes() {
            return Err(WireError::BadMagic {
                expected: magic.to_bytes(),
                got: self.magic,
            });
        }
        let max = command::parse(&self.command).map_or(MAX_PAYLOAD_LEN, max_payload_len);
        if self.len > max {
            return Err(WireError::Oversize {
                command: command::display(&self.command),
                len: self.len,
                max,
            });
        }
        Ok(())
    }
}

/// Checks and decodes one whole frame.
fn decode_frame(header: &RawHeader, payload: &[u8]) -> Result<NetworkMessage, WireError> {
    let command = command::parse(&header.command)?;
    if checksum(payload) != header.checksum {
        return Err(WireError::BadChecksum {
            command: command.to_owned(),
        });
    }
    decode_payload(command, payload)
}

/// The first four bytes of the payload's double SHA-256.
fn checksum(payload: &[u8]) -> [u8; CHECKSUM_LEN] {
    let [a, b, c, d, ..] = sha256d::Hash::hash(payload).to_byte_array();
    [a, b, c, d]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_layout_is_24_bytes() {
        assert_eq!(V1_HEADER_LEN, 24);
        let frame = encode_v1(Magic::BITCOIN, &NetworkMessage::Verack);
        // Core's verack on mainnet, byte for byte.
        let expected = [
            0xf9, 0xbe, 0xb4, 0xd9, b'v', b'e', b'r', b'a', b'c', b'k', 0, 0, 0, 0, 0, 0, 0, 0, 0,
            0, 0x5d, 0xf6, 0xe0, 0xe2,
        ];
        assert_eq!(frame, expected);
    }

    #[test]
    fn frame_matches_the_crates_raw_network_message() {
        use bitcoin::p2p::message::RawNetworkMessage;
        let msg = NetworkMessage::Ping(0x0102_0304_0506_0708);
        let raw = RawNetworkMessage::new(Magic::TESTNET4, msg.clone());
        assert_eq!(encode_v1(Magic::TESTNET4, &msg), encode::serialize(&raw));
    }

    #[test]
    fn drained_buffer_gives_back_its_capacity() {
        let block = NetworkMessage::Unknown {
            command: "big".try_into().unwrap(),
            payload: vec![7; 1_000_000],
        };
        let mut decoder = V1Decoder::new(Magic::BITCOIN);
        decoder.push(&encode_v1(Magic::BITCOIN, &block));
        assert_eq!(decoder.next_message(), Ok(Some(block)));
        assert_eq!(decoder.buffered(), 0);
        assert!(decoder.buf.capacity() <= RETAINED_CAPACITY);
    }

    #[test]
    fn many_small_frames_in_one_push_come_out_in_order() {
        let stream: Vec<u8> = (0..100u64)
            .flat_map(|n| encode_v1(Magic::BITCOIN, &NetworkMessage::Ping(n)))
            .collect();
        let mut decoder = V1Decoder::new(Magic::BITCOIN);
        decoder.push(&stream);
        for n in 0..100 {
            assert_eq!(decoder.next_message(), Ok(Some(NetworkMessage::Ping(n))));
        }
        assert_eq!(decoder.next_message(), Ok(None));
        assert!(!decoder.has_partial_frame());
        assert_eq!(decoder.buffered(), 0);
    }
}
