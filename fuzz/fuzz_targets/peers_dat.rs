//! `peers.dat` restore: `driver::addr_file::load` (→ `addrman::persist`) on
//! a mutated file.
//!
//! The input is written to `peers.dat` in the process's scratch directory
//! and loaded for regtest; a file that does not load is set aside there and
//! the book starts empty, as at daemon start. Checked: no panic; whatever
//! was loaded passes the address manager's consistency check and survives
//! a save/restore round trip byte for byte.

#![no_main]

use libfuzzer_sys::fuzz_target;
use nightjar::driver::addr_file::{ADDRMAN_FILE, load};
use nightjar_fuzz::scratch;

fuzz_target!(|data: &[u8]| {
    let path = scratch::file_with(ADDRMAN_FILE, data);
    let book = load(&path, bitcoin::Network::Regtest);
    nightjar_fuzz::check_restored_book(&book);
});
