//! The v1 frame decoder (`V1Decoder`) fed a byte stream in chunks.
//!
//! Input: one byte choosing the chunk size (1..=256, or all at once for 0),
//! then the stream. After each chunk every complete message is pulled.
//! Checked: no panic; the decoder never holds more than one header past the
//! validated frames (so a hostile length cannot make it buffer); a decoded
//! message survives `encode_v1` and a second decode unchanged.

#![no_main]

use libfuzzer_sys::fuzz_target;
use nightjar::wire::{MAX_PAYLOAD_LEN, Magic, V1_HEADER_LEN, V1Decoder, encode_v1};

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, stream)) = data.split_first() else {
        return;
    };
    let chunk = match chunk {
        0 => stream.len().max(1),
        n => usize::from(n),
    };
    let mut decoder = V1Decoder::new(Magic::REGTEST);
    for piece in stream.chunks(chunk) {
        decoder.push(piece);
        // A validated frame is at most a header and the largest payload;
        // anything beyond one such frame and a header is unchecked buffering.
        assert!(
            decoder.buffered() <= stream.len().min(2 * (V1_HEADER_LEN + MAX_PAYLOAD_LEN)),
            "decoder buffers {} bytes",
            decoder.buffered()
        );
        loop {
            match decoder.next_message() {
                Ok(Some(msg)) => {
                    let mut again = V1Decoder::new(Magic::REGTEST);
                    again.push(&encode_v1(Magic::REGTEST, &msg));
                    match again.next_message() {
                        Ok(Some(back)) => assert_eq!(back, msg, "v1 round trip changed a message"),
                        other => panic!("re-encoded {} did not decode: {other:?}", msg.cmd()),
                    }
                }
                Ok(None) => break,
                Err(_) if decoder.is_broken() => return,
                Err(_) => {}
            }
        }
    }
});
