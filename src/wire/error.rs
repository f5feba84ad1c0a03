//! What can be wrong with bytes a peer sent.

/// Why bytes from a peer could not be turned into a message.
///
/// Every variant is the peer's doing (or a bug on their side); none is ours.
/// Whether to drop the message, score the peer or disconnect is the peer
/// machine's decision, so the error says *what* was wrong and, where there is
/// one, for which command. [`crate::wire::V1Decoder::is_broken`] tells which
/// errors leave a v1 stream impossible to frame any further.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The v1 header's network magic is not ours: the peer is on another
    /// network, or the stream lost its framing. Nothing after it can be read.
    #[error("wrong network magic {}, expected {}", hex(got), hex(expected))]
    BadMagic {
        /// Our network's magic.
        expected: [u8; 4],
        /// What the header carried.
        got: [u8; 4],
    },
    /// The v1 payload does not match the checksum in its header. The frame
    /// was skipped; the next one can still be read.
    #[error("bad checksum on a `{command}` message")]
    BadChecksum {
        /// The command of the corrupted message.
        command: String,
    },
    /// The declared (v1) or actual (v2) payload length is above the cap for
    /// its command, see [`crate::wire::max_payload_len`].
    #[error("`{command}` message of {len} bytes is over its {max}-byte cap")]
    Oversize {
        /// The command, escaped if it was not valid.
        command: String,
        /// The payload length the peer sent or announced.
        len: usize,
        /// The cap for that command.
        max: usize,
    },
    /// The 12-byte command field is not printable ASCII followed by NUL padding.
    #[error("command field is not NUL-padded printable ASCII")]
    BadCommand,
    /// A v2 message starts with a short id that BIP324 does not assign
    /// (0 introduces the long form and is never reported here).
    #[error("unknown BIP324 short message id {0}")]
    UnknownShortId(u8),
    /// The v2 contents are empty, or end inside the 12-byte long-form command.
    #[error("v2 message has no complete message type")]
    Empty,
    /// The payload did not decode as its command says, or left bytes over.
    #[error("malformed `{command}` message: {reason}")]
    Malformed {
        /// The command whose payload was bad.
        command: String,
        /// What the decoder objected to.
        reason: String,
    },
}

impl WireError {
    /// The command the error is about, when the bytes named a valid one.
    pub fn command(&self) -> Option<&str> {
        match self {
            Self::BadChecksum { command }
            | Self::Oversize { command, .. }
            | Self::Malformed { command, .. } => Some(command),
            Self::BadMagic { .. } | Self::BadCommand | Self::UnknownShortId(_) | Self::Empty => {
                None
            }
        }
    }
}

/// Magic bytes as Core prints them in its logs (lower-case hex, wire order).
fn hex(bytes: &[u8; 4]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_problem() {
        let err = WireError::BadMagic {
            expected: [0xf9, 0xbe, 0xb4, 0xd9],
            got: [0x0b, 0x11, 0x09, 0x07],
        };
        assert_eq!(
            err.to_string(),
            "wrong network magic 0b110907, expected f9beb4d9"
        );
        assert_eq!(err.command(), None);
        let err = WireError::Oversize {
            command: "ping".into(),
            len: 9,
            max: 8,
        };
        assert_eq!(
            err.to_string(),
            "`ping` message of 9 bytes is over its 8-byte cap"
        );
        assert_eq!(err.command(), Some("ping"));
    }
}
