//! The BIP324 message layer: the contents of one decrypted v2 packet.
//!
//! Contents are either a one-byte short id followed by the payload, or the
//! byte 0, the 12-byte NUL-padded command and the payload. Encryption, the
//! packet length and decoy packets are the `bip324` crate's business.
//!
//! `bitcoin` 0.32 has no BIP324 support, so the short-id table lives here;
//! it goes away when the split `bitcoin-p2p-messages` crate is adopted.

use bitcoin::consensus::encode;
use bitcoin::p2p::message::NetworkMessage;

use super::command::{self, COMMAND_LEN};
use super::{WireError, decode_payload, encode_payload};

/// The first byte of long-form contents: a 12-byte command follows.
pub const LONG_FORM_ID: u8 = 0;

/// BIP324's one-byte message ids: `SHORT_IDS[i]` has id `i + 1`. Ids 29 and
/// up are reserved for future BIPs; commands not listed (`version`, `verack`,
/// `getaddr`, `sendaddrv2`, `wtxidrelay`, `sendheaders`, …) use the long form.
const SHORT_IDS: [&str; 28] = [
    "addr",         // 1
    "block",        // 2
    "blocktxn",     // 3
    "cmpctblock",   // 4
    "feefilter",    // 5
    "filteradd",    // 6
    "filterclear",  // 7
    "filterload",   // 8
    "getblocks",    // 9
    "getblocktxn",  // 10
    "getdata",      // 11
    "getheaders",   // 12
    "headers",      // 13
    "inv",          // 14
    "mempool",      // 15
    "merkleblock",  // 16
    "notfound",     // 17
    "ping",         // 18
    "pong",         // 19
    "sendcmpct",    // 20
    "tx",           // 21
    "getcfilters",  // 22
    "cfilter",      // 23
    "getcfheaders", // 24
    "cfheaders",    // 25
    "getcfcheckpt", // 26
    "cfcheckpt",    // 27
    "addrv2",       // 28
];

/// The BIP324 short id of `command`, if it has one.
pub fn short_id(command: &str) -> Option<u8> {
    let index = SHORT_IDS.iter().position(|&c| c == command)?;
    u8::try_from(index + 1).ok()
}

/// The command a BIP324 short id stands for; `None` for 0 (the long-form
/// marker) and for the reserved ids.
pub fn command_for_short_id(id: u8) -> Option<&'static str> {
    let index = usize::from(id).checked_sub(1)?;
    SHORT_IDS.get(index).copied()
}

/// The contents of the v2 packet that carries `msg`: its short id when it
/// has one (saving 12 bytes, as BIP324 intends), else the long form.
pub fn encode_v2_contents(msg: &NetworkMessage) -> Vec<u8> {
    let command = msg.command();
    let payload = encode_payload(msg);
    match short_id(command.as_ref()) {
        Some(id) => {
            let mut contents = Vec::with_capacity(1 + payload.len());
            contents.push(id);
            contents.extend_from_slice(&payload);
            contents
        }
        None => {
            let mut contents = Vec::with_capacity(1 + COMMAND_LEN + payload.len());
            contents.push(LONG_FORM_ID);
            contents.extend_from_slice(&encode::serialize(&command));
            contents.extend_from_slice(&payload);
            contents
        }
    }
}

/// Decodes the contents of one genuine v2 packet.
///
/// Both forms are accepted for every command, as BIP324 requires; the
/// payload is held to [`super::max_payload_len`] like a v1 payload.
pub fn decode_v2_contents(contents: &[u8]) -> Result<NetworkMessage, WireError> {
    let (&id, rest) = contents.split_first().ok_or(WireError::Empty)?;
    if id == LONG_FORM_ID {
        let (raw, payload) = rest
            .split_first_chunk::<COMMAND_LEN>()
            .ok_or(WireError::Empty)?;
        decode_payload(command::parse(raw)?, payload)
    } else {
        let command = command_for_short_id(id).ok_or(WireError::UnknownShortId(id))?;
        decode_payload(command, rest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_ids_are_a_bijection_over_1_to_28() {
        for id in 1..=28u8 {
            let command = command_for_short_id(id).unwrap();
            assert_eq!(short_id(command), Some(id));
        }
        assert_eq!(command_for_short_id(0), None);
        assert!((29..=255).all(|id| command_for_short_id(id).is_none()));
    }

    #[test]
    fn spot_check_the_bip324_table() {
        assert_eq!(short_id("addr"), Some(1));
        assert_eq!(short_id("headers"), Some(13));
        assert_eq!(short_id("ping"), Some(18));
        assert_eq!(short_id("tx"), Some(21));
        assert_eq!(short_id("addrv2"), Some(28));
        for long in [
            "version",
            "verack",
            "getaddr",
            "sendaddrv2",
            "wtxidrelay",
            "sendheaders",
        ] {
            assert_eq!(short_id(long), None, "{long}");
        }
    }

    #[test]
    fn every_table_entry_is_a_command_the_crate_models() {
        // A typo in the table would turn that message into `Unknown`.
        for command in SHORT_IDS {
            let decoded = decode_payload(command, &[]);
            assert!(
                !matches!(decoded, Ok(NetworkMessage::Unknown { .. })),
                "{command}"
            );
        }
    }

    #[test]
    fn long_form_of_a_short_id_command_is_accepted() {
        let mut contents = vec![LONG_FORM_ID];
        contents.extend_from_slice(b"ping\0\0\0\0\0\0\0\0");
        contents.extend_from_slice(&5u64.to_le_bytes());
        assert_eq!(decode_v2_contents(&contents), Ok(NetworkMessage::Ping(5)));
    }
}
