//! The input format of the stateful targets (`peer_machine`, `engine`): a
//! sequence of steps, each one opcode byte and its operands.
//!
//! The format is hand-rolled rather than derived with `arbitrary` so that
//! the seed generator can write real sessions in it: a message step carries
//! the contents of a BIP324 packet exactly as `encode_v2_contents` makes
//! them, and the target decodes them with `decode_v2_contents`. libFuzzer
//! then mutates real messages instead of discovering the wire format.
//!
//! | opcode % 5 | operands           | meaning                                 |
//! |------------|--------------------|-----------------------------------------|
//! | 0          | len u16 LE, bytes  | the peer sends one message (v2 contents)|
//! | 1          | secs u16 LE        | time passes                             |
//! | 2          | –                  | time jumps to the next deadline asked for|
//! | 3          | –                  | the peer's connection ends              |
//! | 4          | points u8          | the host reports misbehaviour           |
//!
//! A truncated step ends the sequence.

use std::time::Duration;

/// One thing that happens to the system under test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// The peer sends a message: the contents of one v2 packet.
    Message(Vec<u8>),
    /// Time passes.
    Advance(Duration),
    /// Time jumps to the machine's (or engine's) next deadline.
    Deadline,
    /// The connection ends from the peer's side.
    Close,
    /// Misbehaviour points found outside the machine.
    Misbehave(u8),
}

/// At most this many steps are taken from one input, so that an input of
/// one-byte steps cannot make a single run take seconds.
pub const MAX_STEPS: usize = 512;

/// Reads steps from `data` until it runs out (or [`MAX_STEPS`]).
pub fn parse(mut data: &[u8]) -> Vec<Step> {
    let mut steps = Vec::new();
    while steps.len() < MAX_STEPS {
        let Some((&op, rest)) = data.split_first() else {
            break;
        };
        data = rest;
        let step = match op % 5 {
            0 => {
                let Some((len, rest)) = data.split_first_chunk::<2>() else {
                    break;
                };
                let len = usize::from(u16::from_le_bytes(*len));
                let Some((contents, rest)) = rest.split_at_checked(len) else {
                    break;
                };
                data = rest;
                Step::Message(contents.to_vec())
            }
            1 => {
                let Some((secs, rest)) = data.split_first_chunk::<2>() else {
                    break;
                };
                data = rest;
                Step::Advance(Duration::from_secs(u64::from(u16::from_le_bytes(*secs))))
            }
            2 => Step::Deadline,
            3 => Step::Close,
            _ => {
                let Some((&points, rest)) = data.split_first() else {
                    break;
                };
                data = rest;
                Step::Misbehave(points)
            }
        };
        steps.push(step);
    }
    steps
}

/// Writes `steps` in the format [`parse`] reads (for the seed generator).
/// Messages longer than 65 535 bytes are cut to fit the length field.
pub fn encode(steps: &[Step]) -> Vec<u8> {
    let mut out = Vec::new();
    for step in steps {
        match step {
            Step::Message(contents) => {
                let len = u16::try_from(contents.len()).unwrap_or(u16::MAX);
                out.push(0);
                out.extend_from_slice(&len.to_le_bytes());
                out.extend_from_slice(contents.get(..usize::from(len)).unwrap_or_default());
            }
            Step::Advance(by) => {
                let secs = u16::try_from(by.as_secs()).unwrap_or(u16::MAX);
                out.push(1);
                out.extend_from_slice(&secs.to_le_bytes());
            }
            Step::Deadline => out.push(2),
            Step::Close => out.push(3),
            Step::Misbehave(points) => {
                out.push(4);
                out.push(*points);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_then_parse_gives_the_steps_back() {
        let steps = vec![
            Step::Message(vec![0, 1, 2]),
            Step::Advance(Duration::from_secs(300)),
            Step::Deadline,
            Step::Misbehave(7),
            Step::Close,
        ];
        assert_eq!(parse(&encode(&steps)), steps);
    }
}
