//! `decode_payload` for every command.
//!
//! Input: a selector byte, then the payload. The selector indexes
//! `COMMANDS` (modulo its length) except for `UNKNOWN_COMMAND`, after which
//! a length byte (taken modulo 13) and that many bytes of command name come
//! first. Checked: no panic; the per-command size cap holds; a decoded
//! message re-encodes to bytes that decode to the same message.

#![no_main]

use libfuzzer_sys::fuzz_target;
use nightjar::wire::{decode_payload, encode_payload, max_payload_len};
use nightjar_fuzz::{COMMANDS, UNKNOWN_COMMAND};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let (command, payload) = if selector == UNKNOWN_COMMAND {
        let Some((&len, rest)) = rest.split_first() else {
            return;
        };
        let Some((name, payload)) = rest.split_at_checked(usize::from(len % 13)) else {
            return;
        };
        let Ok(name) = std::str::from_utf8(name) else {
            return;
        };
        (name, payload)
    } else {
        (COMMANDS[usize::from(selector) % COMMANDS.len()], rest)
    };
    let Ok(msg) = decode_payload(command, payload) else {
        return;
    };
    assert!(payload.len() <= max_payload_len(command));
    let encoded = encode_payload(&msg);
    match decode_payload(command, &encoded) {
        Ok(back) => assert_eq!(back, msg, "payload round trip changed a {command}"),
        Err(e) => panic!("re-encoded {command} did not decode: {e}"),
    }
});
