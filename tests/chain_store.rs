#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The header chain file: reload, torn tails, corruption.

use std::fs::{self, OpenOptions};
use std::path::Path;

use bitcoin::Network;
use bitcoin::block::Header;
use nightjar::chain::regtest_miner::{
    SPACING, mine_regtest_branch, mine_regtest_chain, regtest_genesis,
};
use nightjar::chain::store::{FILE_HEADER_LEN, RECORD_LEN};
use nightjar::chain::{CorruptFile, HeaderChain, HeaderError, Loaded, Recovery};

/// The chain as far as a reload can tell: entries in order, tips, tip.
fn same_chain(a: &HeaderChain, b: &HeaderChain) {
    assert_eq!(a.len(), b.len());
    assert_eq!(a.tip(), b.tip());
    assert_eq!(a.tips(), b.tips());
    assert!(a.headers_in_order(0).eq(b.headers_in_order(0)));
}

/// Every query answers alike on `a` and `b`: by height on the best chain,
/// by hash for every header of `all` (any branch), and the chain-wide ones.
fn same_answers(a: &HeaderChain, b: &HeaderChain, all: &[Header]) {
    same_chain(a, b);
    for height in 0..=a.height() + 1 {
        assert_eq!(a.header_at(height), b.header_at(height), "height {height}");
        assert_eq!(a.hash_at(height), b.hash_at(height), "height {height}");
    }
    for header in all {
        let hash = header.block_hash();
        assert_eq!(a.get(&hash), b.get(&hash));
        assert_eq!(a.contains(&hash), b.contains(&hash));
        assert_eq!(a.is_in_best_chain(&hash), b.is_in_best_chain(&hash));
        assert_eq!(a.median_time_past(&hash), b.median_time_past(&hash));
    }
    assert_eq!(a.locator(), b.locator());
    assert_eq!(a.tip_header(), b.tip_header());
    assert_eq!(a.tip_work(), b.tip_work());
    for from in [0, 1, a.height() / 2, a.height()] {
        assert_eq!(a.headers_from(from, 2000), b.headers_from(from, 2000));
    }
}

const NOW: u64 = 2_000_000_000;

fn load(path: &Path) -> Loaded {
    HeaderChain::load_or_new(path, Network::Regtest).unwrap()
}

/// A file holding 1000 headers (in batches, appended after each) plus a
/// 3-header side branch; returns the headers.
fn populated(path: &Path) -> Vec<Header> {
    let mut loaded = load(path);
    assert_eq!(loaded.report.recovery, Some(Recovery::Created));
    let headers = mine_regtest_chain(&regtest_genesis(), 1000, regtest_genesis().time + SPACING);
    for batch in headers.chunks(300) {
        loaded.chain.accept(batch, NOW).unwrap();
        assert_eq!(loaded.store.append(&mut loaded.chain).unwrap(), batch.len());
    }
    let side = mine_regtest_branch(&headers[499], 3, headers[499].time + 1, 7);
    loaded.chain.accept(&side, NOW).unwrap();
    assert_eq!(loaded.store.append(&mut loaded.chain).unwrap(), 3);
    assert_eq!(loaded.store.append(&mut loaded.chain).unwrap(), 0);
    headers
}

fn file_len(path: &Path) -> u64 {
    fs::metadata(path).unwrap().len()
}

#[test]
fn reload_gives_the_same_chain() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("headers.dat");
    let headers = populated(&path);
    assert_eq!(
        file_len(&path),
        (FILE_HEADER_LEN + 1003 * RECORD_LEN) as u64
    );
    let loaded = load(&path);
    assert_eq!(loaded.report.records, 1003);
    assert_eq!(loaded.report.truncated, None);
    assert_eq!(loaded.report.recovery, None);
    assert_eq!(loaded.chain.tip(), (1000, headers[999].block_hash()));
    assert_eq!(loaded.chain.tips().len(), 2);
    assert_eq!(loaded.chain.len(), 1004);
}

/// The chain keeps full headers only until the store has written them;
/// after that every answer comes from the file, and must be what a chain
/// that kept everything in memory says, on the best chain and off it,
/// through a reorg onto a branch that was only on disk, a truncation, and
/// another reload.
#[test]
fn headers_read_back_from_the_file_answer_like_memory() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("headers.dat");
    let headers = populated(&path);
    let side = mine_regtest_branch(&headers[499], 3, headers[499].time + 1, 7);
    let mut memory = HeaderChain::new(Network::Regtest);
    memory.accept(&headers, NOW).unwrap();
    memory.accept(&side, NOW).unwrap();
    let mut all: Vec<Header> = headers.iter().chain(&side).copied().collect();

    let mut loaded = load(&path);
    assert_eq!(loaded.chain.memory().headers_in_memory, 0);
    same_answers(&loaded.chain, &memory, &all);

    // The side branch (on disk) overtakes the best chain.
    let longer = mine_regtest_branch(&side[2], 510, side[2].time + SPACING, 8);
    all.extend_from_slice(&longer);
    let before = loaded.chain.len();
    let outcome = loaded.chain.accept(&longer, NOW).unwrap();
    assert_eq!(outcome, memory.accept(&longer, NOW).unwrap());
    let reorg = outcome.reorg.expect("a reorg");
    assert_eq!((reorg.fork_height, reorg.disconnected), (500, 500));
    same_answers(&loaded.chain, &memory, &all);
    loaded.store.append(&mut loaded.chain).unwrap();
    assert_eq!(loaded.chain.memory().headers_in_memory, 0);
    same_answers(&loaded.chain, &memory, &all);

    // Cut the branch off again: the old best chain comes back.
    assert_eq!(loaded.chain.truncate(before), memory.truncate(before));
    assert_eq!(loaded.chain.tip(), (1000, headers[999].block_hash()));
    same_answers(&loaded.chain, &memory, &all);
    loaded.store.truncate(before).unwrap();
    drop(loaded);
    let loaded = load(&path);
    same_answers(&loaded.chain, &memory, &all);
}

/// Issue 17's budget: at most 48 bytes of memory per header once loaded
/// (the chain's own accounting of its allocations; the bench
/// `chain_scale` measures the process's RSS).
#[test]
fn a_loaded_chain_keeps_under_48_bytes_per_header() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("headers.dat");
    populated(&path);
    let loaded = load(&path);
    let m = loaded.chain.memory();
    assert_eq!(m.entries, 1004);
    assert_eq!(m.headers_in_memory, 0);
    assert_eq!(m.side_entries, 3);
    let per_header = (m.columns + m.index + m.best_chain) as f64 / m.entries as f64;
    assert!(
        per_header <= 48.0,
        "{per_header:.1} bytes per header: {m:?}"
    );
}

#[test]
fn appends_continue_after_a_reload() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("headers.dat");
    let headers = populated(&path);
    let mut loaded = load(&path);
    let more = mine_regtest_chain(&headers[999], 10, headers[999].time + SPACING);
    loaded.chain.accept(&more, NOW).unwrap();
    assert_eq!(loaded.store.append(&mut loaded.chain).unwrap(), 10);
    drop(loaded);
    let loaded = load(&path);
    assert_eq!(loaded.chain.tip(), (1010, more[9].block_hash()));
}

#[test]
fn a_torn_last_record_is_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("headers.dat");
    let headers = populated(&path);
    let full = file_len(&path);
    // Cut the last record (the side branch's third header) in half.
    let cut = full - 30;
    OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(cut)
        .unwrap();
    let mut loaded = load(&path);
    let t = loaded.report.truncated.unwrap();
    assert_eq!(
        (t.original_len, t.kept_len),
        (cut, full - RECORD_LEN as u64)
    );
    assert_eq!(
        (t.dropped_records, t.partial_bytes),
        (0, (RECORD_LEN - 30) as u64)
    );
    assert_eq!(loaded.report.records, 1002);
    assert_eq!(loaded.report.recovery, None);
    assert_eq!(loaded.chain.tip(), (1000, headers[999].block_hash()));
    assert_eq!(loaded.chain.tips().len(), 2);
    assert_eq!(file_len(&path), full - RECORD_LEN as u64);
    // The file is usable again: append, reload, nothing to cut.
    let more = mine_regtest_chain(&headers[999], 1, headers[999].time + SPACING);
    loaded.chain.accept(&more, NOW).unwrap();
    loaded.store.append(&mut loaded.chain).unwrap();
    drop(loaded);
    let loaded = load(&path);
    assert_eq!(loaded.report.truncated, None);
    assert_eq!(loaded.chain.height(), 1001);
}

#[test]
fn whole_garbage_records_at_the_end_are_a_torn_write() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("headers.dat");
    let headers = populated(&path);
    let full = file_len(&path);
    // A file system that extended the file but never wrote the data.
    let mut bytes = fs::read(&path).unwrap();
    bytes.extend(std::iter::repeat_n(0u8, 2 * RECORD_LEN + 5));
    fs::write(&path, &bytes).unwrap();
    let loaded = load(&path);
    let t = loaded.report.truncated.unwrap();
    assert_eq!(
        (t.kept_len, t.dropped_records, t.partial_bytes),
        (full, 2, 5)
    );
    assert_eq!(loaded.chain.tip().1, headers[999].block_hash());
}

/// Issue 16, D6: one bad record in the middle costs only what follows it.
/// The records before it stay (on mainnet, tens of megabytes not fetched
/// again), the whole damaged file is kept aside, and the file left in
/// place loads again with nothing more to repair.
#[test]
fn a_flipped_byte_mid_file_keeps_the_records_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("headers.dat");
    let headers = populated(&path);
    let mut bytes = fs::read(&path).unwrap();
    let record = 400;
    bytes[FILE_HEADER_LEN + record * RECORD_LEN + 40] ^= 0x01;
    fs::write(&path, &bytes).unwrap();
    let loaded = load(&path);
    assert_eq!(loaded.report.recovery, None, "not started afresh");
    let damage = loaded.report.damaged.clone().expect("damage reported");
    assert_eq!(damage.corrupt, CorruptFile::RecordChecksum { record: 400 });
    assert_eq!(damage.kept_records, 400);
    assert_eq!(damage.moved_to, dir.path().join("headers.dat.corrupt-1"));
    assert!(
        fs::read(&damage.moved_to).unwrap() == bytes,
        "kept as it was"
    );
    assert_eq!(loaded.chain.height(), 400);
    assert_eq!(loaded.chain.tip().1, headers[399].block_hash());
    assert_eq!(
        file_len(&path),
        (FILE_HEADER_LEN + 400 * RECORD_LEN) as u64,
        "the good prefix is what stays in place"
    );
    drop(loaded);
    let again = load(&path);
    assert_eq!(again.report.damaged, None);
    assert_eq!(again.report.truncated, None);
    assert_eq!(again.chain.height(), 400);
}

#[test]
fn a_bad_file_header_is_reported_and_set_aside() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("headers.dat");
    populated(&path);
    let mut bytes = fs::read(&path).unwrap();
    bytes[0] ^= 0xff;
    fs::write(&path, &bytes).unwrap();
    let loaded = load(&path);
    assert!(matches!(
        loaded.report.recovery,
        Some(Recovery::SetAside {
            corrupt: CorruptFile::BadMagic,
            ..
        })
    ));
    // A flipped version byte breaks the file header checksum.
    populated(&dir.path().join("b.dat"));
    let mut bytes = fs::read(dir.path().join("b.dat")).unwrap();
    bytes[9] ^= 0x01;
    fs::write(dir.path().join("b.dat"), &bytes).unwrap();
    assert!(matches!(
        load(&dir.path().join("b.dat")).report.recovery,
        Some(Recovery::SetAside {
            corrupt: CorruptFile::HeaderChecksum,
            ..
        })
    ));
    // A stub shorter than the file header.
    fs::write(dir.path().join("c.dat"), b"NJHD").unwrap();
    assert!(matches!(
        load(&dir.path().join("c.dat")).report.recovery,
        Some(Recovery::SetAside {
            corrupt: CorruptFile::TooShort { len: 4 },
            ..
        })
    ));
}

#[test]
fn another_networks_file_is_not_loaded() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("headers.dat");
    populated(&path);
    let loaded = HeaderChain::load_or_new(&path, Network::Testnet4).unwrap();
    match loaded.report.recovery {
        Some(Recovery::SetAside { corrupt, moved_to }) => {
            assert!(matches!(
                corrupt,
                CorruptFile::WrongNetwork {
                    expected: Network::Testnet4,
                    ..
                }
            ));
            assert_eq!(moved_to, dir.path().join("headers.dat.wrong-network-1"));
        }
        other => panic!("expected set aside, got {other:?}"),
    }
    assert_eq!(loaded.chain.network(), Network::Testnet4);
    assert_eq!(loaded.chain.height(), 0);
}

#[test]
fn an_intact_but_invalid_record_is_not_trusted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("headers.dat");
    let headers = populated(&path);
    // Append a correctly checksummed record whose header does not connect.
    let stranger = mine_regtest_chain(&regtest_genesis(), 2, regtest_genesis().time + 1);
    let mut bytes = fs::read(&path).unwrap();
    let header = bitcoin::consensus::serialize(&stranger[1]);
    bytes.extend_from_slice(&header);
    bytes.extend_from_slice(&stranger[1].block_hash()[..4]);
    fs::write(&path, &bytes).unwrap();
    let loaded = load(&path);
    assert_eq!(loaded.report.recovery, None);
    let damage = loaded.report.damaged.clone().expect("damage reported");
    assert_eq!(
        damage.corrupt,
        CorruptFile::InvalidHeader {
            record: 1003,
            error: HeaderError::Orphan {
                hash: stranger[1].block_hash(),
                prev: stranger[0].block_hash()
            }
        }
    );
    assert!(damage.moved_to.ends_with("headers.dat.invalid-1"));
    // Everything before the stranger is valid and kept.
    assert_eq!(damage.kept_records, 1003);
    assert_eq!(loaded.chain.tip().1, headers.last().unwrap().block_hash());
}

/// What a load still checks of an intact record (the module docs of
/// `chain::store`, "Trust on load"): a header whose hash does not meet its
/// own nBits cannot come in through the file, whatever its checksum says.
#[test]
fn a_record_without_its_proof_of_work_is_not_loaded() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("headers.dat");
    let headers = populated(&path);
    let mut forged = mine_regtest_chain(&headers[999], 1, headers[999].time + SPACING)[0];
    while forged.target().is_met_by(forged.block_hash()) {
        forged.nonce = forged.nonce.wrapping_add(1);
    }
    let mut bytes = fs::read(&path).unwrap();
    bytes.extend_from_slice(&bitcoin::consensus::serialize(&forged));
    bytes.extend_from_slice(&forged.block_hash()[..4]);
    fs::write(&path, &bytes).unwrap();
    let loaded = load(&path);
    let damage = loaded.report.damaged.clone().expect("damage reported");
    assert_eq!(
        damage.corrupt,
        CorruptFile::InvalidHeader {
            record: 1003,
            error: HeaderError::BadProofOfWork {
                hash: forged.block_hash()
            }
        }
    );
    assert_eq!(loaded.chain.tip().1, headers[999].block_hash());
}

// --- truncation ---

#[test]
fn a_truncated_store_reloads_as_the_truncated_chain() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("headers.dat");
    let headers = populated(&path);
    let mut loaded = load(&path);
    // Genesis and the first 600 headers: the side branch (after 500) and
    // the last 400 go.
    let out = loaded.chain.truncate(601);
    assert_eq!(
        (out.removed, out.tip),
        (403, (600, headers[599].block_hash()))
    );
    loaded.store.truncate(601).unwrap();
    assert_eq!(file_len(&path), (FILE_HEADER_LEN + 600 * RECORD_LEN) as u64);
    assert_eq!(loaded.store.len(), file_len(&path));
    let reloaded = load(&path);
    assert_eq!(reloaded.report.records, 600);
    assert_eq!(reloaded.report.truncated, None);
    assert_eq!(reloaded.report.recovery, None);
    same_chain(&reloaded.chain, &loaded.chain);
    drop(reloaded);

    // Appending goes on from the cut: the same headers again, then more.
    loaded.chain.accept(&headers[600..], NOW).unwrap();
    let more = mine_regtest_chain(&headers[999], 5, headers[999].time + SPACING);
    loaded.chain.accept(&more, NOW).unwrap();
    assert_eq!(loaded.store.append(&mut loaded.chain).unwrap(), 405);
    let reloaded = load(&path);
    same_chain(&reloaded.chain, &loaded.chain);
    assert_eq!(reloaded.chain.tip(), (1005, more[4].block_hash()));
}

#[test]
fn truncating_the_store_to_zero_or_one_keeps_only_the_file_header() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("headers.dat");
    populated(&path);
    for entries in [1, 0] {
        let mut loaded = load(&path);
        loaded.chain.truncate(entries);
        loaded.store.truncate(entries).unwrap();
        assert!(loaded.store.is_empty());
        assert_eq!(file_len(&path), FILE_HEADER_LEN as u64);
        // Truncating past the end changes nothing.
        loaded.store.truncate(50).unwrap();
        assert_eq!(file_len(&path), FILE_HEADER_LEN as u64);
        let reloaded = load(&path);
        assert_eq!(reloaded.chain.height(), 0);
        assert_eq!(reloaded.report.recovery, None);
    }
}

#[test]
fn appending_after_a_chain_truncation_rewrites_the_stale_tail() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("headers.dat");
    let headers = populated(&path);
    let mut loaded = load(&path);
    // The chain drops everything after height 500 but the store is not
    // told; a longer branch then fills the dropped slots and more.
    loaded.chain.truncate(501);
    let other = mine_regtest_branch(&headers[499], 700, headers[499].time + 1, 9);
    loaded.chain.accept(&other, NOW).unwrap();
    assert!(loaded.chain.len() > 1004);
    assert_eq!(loaded.store.append(&mut loaded.chain).unwrap(), 700);
    let reloaded = load(&path);
    assert_eq!(reloaded.report.recovery, None);
    same_chain(&reloaded.chain, &loaded.chain);
    assert_eq!(reloaded.chain.tip(), (1200, other[699].block_hash()));
}

#[test]
fn a_torn_truncation_is_recovered_on_load() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("headers.dat");
    let headers = populated(&path);
    let kept = (FILE_HEADER_LEN + 600 * RECORD_LEN) as u64;
    // A file system that shrank the file in steps and crashed between:
    // the cut is mid-record.
    OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(kept + 50)
        .unwrap();
    let loaded = load(&path);
    let t = loaded.report.truncated.unwrap();
    assert_eq!(
        (t.kept_len, t.dropped_records, t.partial_bytes),
        (kept, 0, 50)
    );
    assert_eq!(loaded.chain.tip(), (600, headers[599].block_hash()));
    assert_eq!(file_len(&path), kept);
}
