//! The v2 receive path after a real BIP324 handshake: `PacketDecoder` then
//! `decode_v2_contents`.
//!
//! Feeding fuzz bytes straight into the decrypting side would test only the
//! AEAD: a random packet fails authentication before any of our code looks
//! at it. So the input is a script of what the sender does, and the bytes
//! go through the real cipher:
//!
//! - `0`, len u16 LE, contents: one genuine packet carrying these contents;
//! - `1`, len u16 LE, filler: one decoy packet;
//! - `2`, len u8, bytes: raw bytes injected into the stream (corruption);
//! - `3`, chunk u8: later bytes reach the decoder in chunks of this size.
//!
//! The receiver pulls packets after each push and decodes every genuine
//! one. Checked: no panic; while the stream is intact every genuine packet
//! decrypts, matches what was sent and decodes as `decode_v2_contents`
//! decodes the plain contents; decoys are flagged as decoys.

#![no_main]

use std::collections::VecDeque;

use libfuzzer_sys::fuzz_target;
use nightjar::transport::v2_packets::{PacketDecoder, PacketEncoder};
use nightjar::wire::decode_v2_contents;
use nightjar_fuzz::cipher;

/// What the receiver should see next.
struct Expected {
    decoy: bool,
    contents: Vec<u8>,
}

fuzz_target!(|data: &[u8]| {
    let pair = cipher::pair();
    let mut encoder = PacketEncoder::new(pair.sender);
    let mut decoder = PacketDecoder::new(pair.receiver, Vec::new());
    let mut expected = VecDeque::new();
    let mut chunk = usize::MAX;
    let mut intact = true;
    let mut rest = data;
    while let Some((&op, after)) = rest.split_first() {
        rest = after;
        let bytes = match op % 4 {
            0 | 1 => {
                let Some((len, after)) = rest.split_first_chunk::<2>() else {
                    break;
                };
                let len = usize::from(u16::from_le_bytes(*len));
                let Some((contents, after)) = after.split_at_checked(len) else {
                    break;
                };
                rest = after;
                let decoy = op % 4 == 1;
                expected.push_back(Expected {
                    decoy,
                    contents: contents.to_vec(),
                });
                if decoy {
                    encoder.encrypt_decoy(contents)
                } else {
                    encoder.encrypt(contents)
                }
            }
            2 => {
                let Some((&len, after)) = rest.split_first() else {
                    break;
                };
                let Some((raw, after)) = after.split_at_checked(usize::from(len)) else {
                    break;
                };
                rest = after;
                intact &= raw.is_empty();
                raw.to_vec()
            }
            _ => {
                let Some((&size, after)) = rest.split_first() else {
                    break;
                };
                rest = after;
                chunk = usize::from(size).max(1);
                continue;
            }
        };
        for piece in bytes.chunks(chunk) {
            decoder.push(piece);
            if !drain(&mut decoder, &mut expected, intact) {
                return;
            }
        }
    }
    if intact {
        assert!(
            expected.is_empty(),
            "{} packets never arrived",
            expected.len()
        );
        assert!(!decoder.has_partial(), "bytes left over from whole packets");
    }
});

/// Pulls every complete packet; `false` once the stream is unusable.
fn drain(decoder: &mut PacketDecoder, expected: &mut VecDeque<Expected>, intact: bool) -> bool {
    loop {
        match decoder.next_packet() {
            Ok(Some(packet)) => {
                if intact {
                    let Some(want) = expected.pop_front() else {
                        panic!("a packet arrived that was never sent");
                    };
                    assert_eq!(packet.decoy, want.decoy, "decoy flag lost");
                    assert!(
                        packet.contents == want.contents,
                        "contents changed in transit"
                    );
                }
                if !packet.decoy {
                    let _ = decode_v2_contents(&packet.contents);
                }
            }
            Ok(None) => return true,
            Err(e) => {
                assert!(!intact, "an intact stream failed: {e}");
                return false;
            }
        }
    }
}
