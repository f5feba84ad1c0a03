//! Shared pieces of nightjar's fuzz targets and of the seed generator.
//!
//! The targets live in `fuzz_targets/`, one file each; `examples/gen_seeds.rs`
//! writes their seed corpora with nightjar's real encoders. Everything the
//! two sides must agree on (the command table, the step format of the
//! stateful targets, the fixed BIP324 handshake) is here.

pub mod cipher;
pub mod scratch;
pub mod steps;

/// Every command `decode_payload` models, in a fixed order: the first byte
/// of a `wire_payload` input picks one by index (modulo the length), and
/// an index past the table means "take a command name from the input".
pub const COMMANDS: &[&str] = &[
    "version",
    "verack",
    "addr",
    "inv",
    "getdata",
    "notfound",
    "getblocks",
    "getheaders",
    "mempool",
    "tx",
    "block",
    "headers",
    "sendheaders",
    "getaddr",
    "ping",
    "pong",
    "merkleblock",
    "filterload",
    "filteradd",
    "filterclear",
    "getcfilters",
    "cfilter",
    "getcfheaders",
    "cfheaders",
    "getcfcheckpt",
    "cfcheckpt",
    "sendcmpct",
    "cmpctblock",
    "getblocktxn",
    "blocktxn",
    "alert",
    "reject",
    "feefilter",
    "wtxidrelay",
    "addrv2",
    "sendaddrv2",
];

/// The `wire_payload` selector byte for an unknown command: the command's
/// length (1..=12 bytes) and name follow it.
pub const UNKNOWN_COMMAND: u8 = 0xff;

/// The peer both stateful targets talk to: an onion service on the regtest
/// port (onion, so the engine's default Tor-only reach accepts it).
pub const PEER_TARGET: &str =
    "pg6mmjiyjmcrsslvykfwnntlaru7p5svn6y2ymmju6nubxndf4pscryd.onion:18444";

/// The unix time the stateful targets' clocks start at.
pub const UNIX_START: u64 = 1_700_000_000;

/// Bytes a message of `contents_len` takes on a v2 wire (length, header
/// byte, tag), as the peer task reports it to the machine.
pub fn v2_wire_len(contents_len: usize) -> usize {
    3 + 1 + contents_len + 16
}

/// What every restored address book must satisfy: its tables agree with
/// each other, and it saves to bytes that restore to the same bytes.
pub fn check_restored_book(book: &nightjar::addrman::AddrMan) {
    use nightjar::addrman::AddrMan;
    if let Err(e) = book.check_consistency() {
        panic!("restored book is inconsistent: {e}");
    }
    let saved = book.to_bytes();
    match AddrMan::from_bytes(&saved, bitcoin::Network::Regtest) {
        Ok(again) => assert!(again.to_bytes() == saved, "save/restore is not stable"),
        Err(e) => panic!("a saved book does not restore: {e}"),
    }
}
