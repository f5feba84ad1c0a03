//! `headers.dat` load: `HeaderChain::load_or_new` (`chain::store`) on a
//! mutated file.
//!
//! The input is written to `headers.dat` in the process's scratch directory
//! and loaded for regtest (whose proof of work a mutated header can meet).
//! Loading repairs what it can: it cuts a torn tail, or sets a corrupt file
//! aside and starts a new one. Checked: no panic, no I/O error on a
//! writable directory, and the repair is complete: loading the file again
//! finds nothing to repair and the same chain, every header of which reads
//! back from the file (the chain keeps only a few fields in memory).

#![no_main]

use bitcoin::Network;
use libfuzzer_sys::fuzz_target;
use nightjar::chain::HeaderChain;
use nightjar_fuzz::scratch;

fuzz_target!(|data: &[u8]| {
    let path = scratch::file_with("headers.dat", data);
    let first = match HeaderChain::load_or_new(&path, Network::Regtest) {
        Ok(loaded) => loaded,
        Err(e) => panic!("load failed outright: {e}"),
    };
    let tip = first.chain.tip();
    let len = first.chain.len();
    drop(first);
    let again = match HeaderChain::load_or_new(&path, Network::Regtest) {
        Ok(loaded) => loaded,
        Err(e) => panic!("the repaired file does not load: {e}"),
    };
    assert_eq!(
        again.report.truncated, None,
        "the repaired file was cut again"
    );
    assert_eq!(
        again.report.recovery, None,
        "the repaired file was set aside"
    );
    assert_eq!(again.chain.tip(), tip, "reloading changed the tip");
    assert_eq!(again.chain.len(), len);
    assert_eq!(again.chain.memory().headers_in_memory, 0);
    assert_eq!(
        again.chain.headers_in_order(0).count(),
        len,
        "a header does not read back"
    );
    for height in 0..=tip.0 {
        let header = again.chain.header_at(height).expect("best chain header");
        assert_eq!(again.chain.hash_at(height), Some(header.block_hash()));
    }
});
