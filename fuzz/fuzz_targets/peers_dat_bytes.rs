//! `peers.dat` restore in memory (`AddrMan::from_bytes`): the decoder
//! without the file system, fast enough for long runs (`peers_dat` covers
//! the loader around it: reading, setting a bad file aside).
//!
//! The trailing checksum is recomputed over the mutated bytes, so that the
//! fuzzer reaches the payload decoder instead of stopping at the checksum
//! nearly every time. Checked: no panic; a restored book is consistent, and
//! saves and restores to the same bytes.

#![no_main]

use bitcoin::hashes::{Hash, sha256d};
use libfuzzer_sys::fuzz_target;
use nightjar::addrman::AddrMan;

/// sha256d of everything before it.
const CHECKSUM_LEN: usize = 32;

fuzz_target!(|data: &[u8]| {
    let mut bytes = data.to_vec();
    if let Some(body) = bytes.len().checked_sub(CHECKSUM_LEN) {
        let sum = sha256d::Hash::hash(&bytes[..body]);
        bytes[body..].copy_from_slice(sum.as_byte_array());
    }
    let Ok(book) = AddrMan::from_bytes(&bytes, bitcoin::Network::Regtest) else {
        return;
    };
    nightjar_fuzz::check_restored_book(&book);
});
