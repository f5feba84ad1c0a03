#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The filter header file: reload, torn tails, damage, bad files, reorgs
//! while the node was down, and truncation.

use std::fs::{self, OpenOptions};
use std::path::Path;

use bitcoin::bip158::{FilterHash, FilterHeader};
use bitcoin::block::Header;
use bitcoin::hashes::{Hash, sha256d};
use bitcoin::{BlockHash, Network};
use nightjar::chain::HeaderChain;
use nightjar::chain::filter_headers::FilterHeaderChain;
use nightjar::chain::filter_store::{
    FILE_HEADER_LEN, FILE_NAME, FilterCorruptFile, FilterDamage, FilterLoadReport, FilterLoaded,
    FilterRecovery, FilterStore, FilterStoreError, RECORD_LEN,
};
use nightjar::chain::regtest_miner::{
    SPACING, mine_regtest_branch, mine_regtest_chain, regtest_genesis,
};
use nightjar::chain::store::{FILE_MAGIC as HEADERS_MAGIC, Truncation};

const NOW: u64 = 2_000_000_000;

/// Blocks on genesis in the main test chain.
const BLOCKS: usize = 300;

/// Records of a file holding the whole main test chain (genesis too).
const RECORDS: u64 = BLOCKS as u64 + 1;

/// A stand-in for the hash of the filter of the block at `height` on
/// `branch`: any 32 bytes do, as long as they differ per block.
fn filter(branch: u8, height: u32) -> FilterHash {
    let mut data = [branch; 5];
    data[..4].copy_from_slice(&height.to_le_bytes());
    FilterHash::hash(&data)
}

fn mined() -> Vec<Header> {
    mine_regtest_chain(&regtest_genesis(), BLOCKS, regtest_genesis().time + SPACING)
}

fn header_chain(network: Network, batches: &[&[Header]]) -> HeaderChain {
    let mut chain = HeaderChain::new(network);
    for batch in batches {
        chain.accept(batch, NOW).unwrap();
    }
    chain
}

fn load(path: &Path, chain: &HeaderChain) -> FilterLoaded {
    FilterStore::load_or_new(path, chain).unwrap()
}

/// Pushes the filter headers of `chain`'s best chain from where `filters`
/// ends up to `to` (inclusive), with `branch`'s filter hashes.
fn push_up_to(filters: &mut FilterHeaderChain, chain: &HeaderChain, to: u32, branch: u8) {
    for height in filters.len() as u32..=to {
        filters.push(chain.hash_at(height).unwrap(), filter(branch, height));
    }
}

/// The filter headers of `chain`'s best chain computed by hand, by height:
/// what a load must give back.
fn reference(chain: &HeaderChain, to: u32, branch: u8) -> Vec<FilterHeader> {
    assert!(to <= chain.height());
    let mut previous = FilterHeader::all_zeros();
    (0..=to)
        .map(|height| {
            previous = filter(branch, height).filter_header(&previous);
            previous
        })
        .collect()
}

/// A new file holding a record for every block of `chain`'s best chain,
/// appended in batches of 70; returns the store and filter headers.
fn populated(path: &Path, chain: &HeaderChain) -> FilterLoaded {
    let mut loaded = load(path, chain);
    assert_eq!(loaded.report.recovery, Some(FilterRecovery::Created));
    assert!(loaded.store.is_empty());
    let tip = chain.height();
    let mut height = 0;
    while height <= tip {
        let to = (height + 69).min(tip);
        push_up_to(&mut loaded.filters, chain, to, 0);
        let written = loaded.store.append(&mut loaded.filters).unwrap();
        assert_eq!(written as u32, to - height + 1);
        height = to + 1;
    }
    assert_eq!(loaded.store.append(&mut loaded.filters).unwrap(), 0);
    assert_eq!(loaded.store.len(), u64::from(tip) + 1);
    loaded
}

fn file_len(path: &Path) -> u64 {
    fs::metadata(path).unwrap().len()
}

fn bytes_for(records: u64) -> u64 {
    FILE_HEADER_LEN as u64 + records * RECORD_LEN as u64
}

/// `filters` holds exactly `want`, height by height, with `tip_block` on
/// top, and has nothing left to write.
fn holds(filters: &FilterHeaderChain, want: &[FilterHeader], tip_block: BlockHash) {
    assert_eq!(filters.len(), want.len());
    for (height, header) in want.iter().enumerate() {
        assert_eq!(
            filters.header_at(height as u32),
            Some(*header),
            "height {height}"
        );
    }
    assert_eq!(filters.header_at(want.len() as u32), None);
    let top = want.len() as u32 - 1;
    assert_eq!(filters.tip(), Some((top, tip_block, want[top as usize])));
    assert_eq!(filters.unwritten(), (want.len() as u32, &[][..]));
}

#[test]
fn reload_gives_the_same_filter_headers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(FILE_NAME);
    let headers = mined();
    let chain = header_chain(Network::Regtest, &[&headers]);
    let written = populated(&path, &chain);
    assert_eq!(file_len(&path), bytes_for(RECORDS));
    let want = reference(&chain, BLOCKS as u32, 0);
    holds(&written.filters, &want, headers[BLOCKS - 1].block_hash());
    drop(written);

    let mut loaded = load(&path, &chain);
    assert_eq!(
        loaded.report,
        FilterLoadReport {
            records: RECORDS,
            ..FilterLoadReport::default()
        }
    );
    assert_eq!(loaded.store.len(), RECORDS);
    // Genesis's filter header is stored: it chains onto all zeros.
    assert_eq!(
        loaded.filters.header_at(0),
        Some(filter(0, 0).filter_header(&FilterHeader::all_zeros()))
    );
    holds(&loaded.filters, &want, headers[BLOCKS - 1].block_hash());

    // Appends go on after a reload.
    let more = mine_regtest_chain(&headers[BLOCKS - 1], 10, headers[BLOCKS - 1].time + SPACING);
    let chain = header_chain(Network::Regtest, &[&headers, &more]);
    push_up_to(&mut loaded.filters, &chain, chain.height(), 0);
    assert_eq!(loaded.store.append(&mut loaded.filters).unwrap(), 10);
    drop(loaded);
    let loaded = load(&path, &chain);
    assert_eq!(loaded.report.records, RECORDS + 10);
    holds(
        &loaded.filters,
        &reference(&chain, chain.height(), 0),
        more[9].block_hash(),
    );
}

#[test]
fn a_torn_last_record_is_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(FILE_NAME);
    let headers = mined();
    let chain = header_chain(Network::Regtest, &[&headers]);
    populated(&path, &chain);
    let full = file_len(&path);
    let cut = full - 30;
    OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(cut)
        .unwrap();
    let mut loaded = load(&path, &chain);
    assert_eq!(
        loaded.report,
        FilterLoadReport {
            records: RECORDS - 1,
            truncated: Some(Truncation {
                original_len: cut,
                kept_len: full - RECORD_LEN as u64,
                dropped_records: 0,
                partial_bytes: (RECORD_LEN - 30) as u64,
            }),
            ..FilterLoadReport::default()
        }
    );
    assert_eq!(file_len(&path), full - RECORD_LEN as u64);
    let want = reference(&chain, BLOCKS as u32, 0);
    holds(
        &loaded.filters,
        &want[..BLOCKS],
        headers[BLOCKS - 2].block_hash(),
    );
    // The file is usable again: the lost record is appended, and a reload
    // has nothing to cut.
    push_up_to(&mut loaded.filters, &chain, BLOCKS as u32, 0);
    assert_eq!(loaded.store.append(&mut loaded.filters).unwrap(), 1);
    drop(loaded);
    let loaded = load(&path, &chain);
    assert_eq!(loaded.report.truncated, None);
    assert_eq!(file_len(&path), full);
    holds(&loaded.filters, &want, headers[BLOCKS - 1].block_hash());
}

/// A file system that extended the file but never wrote the data: whole
/// records of zeros are a torn write, not records off the best chain.
#[test]
fn whole_records_of_zeros_at_the_end_are_a_torn_write() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(FILE_NAME);
    let headers = mined();
    let chain = header_chain(Network::Regtest, &[&headers]);
    populated(&path, &chain);
    let full = file_len(&path);
    let mut bytes = fs::read(&path).unwrap();
    bytes.extend(std::iter::repeat_n(0u8, 2 * RECORD_LEN));
    fs::write(&path, &bytes).unwrap();
    let loaded = load(&path, &chain);
    assert_eq!(
        loaded.report,
        FilterLoadReport {
            records: RECORDS,
            truncated: Some(Truncation {
                original_len: full + 2 * RECORD_LEN as u64,
                kept_len: full,
                dropped_records: 2,
                partial_bytes: 0,
            }),
            ..FilterLoadReport::default()
        }
    );
    assert_eq!(file_len(&path), full);
    holds(
        &loaded.filters,
        &reference(&chain, BLOCKS as u32, 0),
        headers[BLOCKS - 1].block_hash(),
    );
}

/// The header chain file's policy: one bad record in the middle costs
/// only what follows it; the whole file is kept aside for a look.
#[test]
fn a_damaged_record_mid_file_keeps_the_records_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(FILE_NAME);
    let headers = mined();
    let chain = header_chain(Network::Regtest, &[&headers]);
    populated(&path, &chain);
    let mut bytes = fs::read(&path).unwrap();
    // A bit of record 100's filter hash.
    bytes[FILE_HEADER_LEN + 100 * RECORD_LEN + 40] ^= 0x01;
    fs::write(&path, &bytes).unwrap();
    let loaded = load(&path, &chain);
    let moved_to = dir.path().join(format!("{FILE_NAME}.corrupt-1"));
    assert_eq!(
        loaded.report,
        FilterLoadReport {
            records: 100,
            damaged: Some(FilterDamage {
                corrupt: FilterCorruptFile::RecordChecksum { record: 100 },
                kept_records: 100,
                moved_to: moved_to.clone(),
            }),
            ..FilterLoadReport::default()
        }
    );
    assert!(fs::read(&moved_to).unwrap() == bytes, "kept as it was");
    assert_eq!(file_len(&path), bytes_for(100), "the good prefix stays");
    let want = reference(&chain, 99, 0);
    holds(&loaded.filters, &want, headers[98].block_hash());
    drop(loaded);
    let again = load(&path, &chain);
    assert_eq!(
        again.report,
        FilterLoadReport {
            records: 100,
            ..FilterLoadReport::default()
        }
    );
}

/// Damage right after the file header keeps nothing: the chain starts
/// empty, from a file that is still this one's (no recovery).
#[test]
fn a_damaged_first_record_keeps_an_empty_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(FILE_NAME);
    let chain = header_chain(Network::Regtest, &[&mined()]);
    populated(&path, &chain);
    let mut bytes = fs::read(&path).unwrap();
    bytes[FILE_HEADER_LEN] ^= 0x80;
    fs::write(&path, &bytes).unwrap();
    let loaded = load(&path, &chain);
    let damage = loaded.report.damaged.clone().expect("damage reported");
    assert_eq!(
        damage.corrupt,
        FilterCorruptFile::RecordChecksum { record: 0 }
    );
    assert_eq!((damage.kept_records, loaded.report.records), (0, 0));
    assert_eq!(loaded.report.recovery, None);
    assert!(loaded.filters.is_empty() && loaded.store.is_empty());
    assert_eq!(file_len(&path), FILE_HEADER_LEN as u64);
}

/// What a test does to a file's bytes.
type Spoil = fn(&mut Vec<u8>);

/// A file whose file header is wrong is refused whole: moved aside under
/// a name saying why, and a new empty file takes its place.
#[test]
fn a_bad_file_header_is_reported_and_set_aside() {
    let dir = tempfile::tempdir().unwrap();
    let chain = header_chain(Network::Regtest, &[&mined()]);
    let cases: [(&str, Spoil, FilterCorruptFile); 4] = [
        ("magic", |b| b[0] ^= 0xff, FilterCorruptFile::BadMagic),
        (
            // A flipped version byte breaks the checksum first.
            "version",
            |b| b[9] ^= 0x01,
            FilterCorruptFile::HeaderChecksum,
        ),
        (
            "short",
            |b| b.truncate(4),
            FilterCorruptFile::TooShort { len: 4 },
        ),
        (
            // A well-formed file of format version 2.
            "v2",
            |b| {
                b[8..12].copy_from_slice(&2u32.to_le_bytes());
                let sum = sha256d::Hash::hash(&b[..16]);
                b[16..20].copy_from_slice(&sum.as_byte_array()[..4]);
            },
            FilterCorruptFile::UnsupportedVersion { found: 2 },
        ),
    ];
    for (name, damage, corrupt) in cases {
        let path = dir.path().join(name);
        populated(&path, &chain);
        let mut bytes = fs::read(&path).unwrap();
        damage(&mut bytes);
        fs::write(&path, &bytes).unwrap();
        let loaded = load(&path, &chain);
        let label = if name == "v2" {
            "unsupported"
        } else {
            "corrupt"
        };
        let moved_to = dir.path().join(format!("{name}.{label}-1"));
        assert_eq!(
            loaded.report,
            FilterLoadReport {
                recovery: Some(FilterRecovery::SetAside {
                    corrupt,
                    moved_to: moved_to.clone(),
                }),
                ..FilterLoadReport::default()
            },
            "{name}"
        );
        assert!(
            fs::read(&moved_to).unwrap() == bytes,
            "{name}: kept as it was"
        );
        assert!(loaded.filters.is_empty() && loaded.store.is_empty());
        assert_eq!(file_len(&path), FILE_HEADER_LEN as u64, "{name}");
        assert_eq!(load(&path, &chain).report.recovery, None, "{name}");
    }
}

/// `headers.dat` handed over as the filter header file (a path mix-up) is
/// refused by its magic, and says so in words.
#[test]
fn a_header_chain_file_is_not_a_filter_header_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("headers.dat");
    let mut headers_file = HeaderChain::load_or_new(&path, Network::Regtest).unwrap();
    headers_file.chain.accept(&mined(), NOW).unwrap();
    headers_file.store.append(&mut headers_file.chain).unwrap();
    assert_eq!(fs::read(&path).unwrap()[..8], HEADERS_MAGIC);
    let loaded = load(&path, &headers_file.chain);
    let Some(FilterRecovery::SetAside { corrupt, moved_to }) = loaded.report.recovery else {
        panic!("expected set aside, got {:?}", loaded.report);
    };
    assert_eq!(corrupt, FilterCorruptFile::BadMagic);
    assert_eq!(corrupt.to_string(), "not a filter header file (bad magic)");
    assert_eq!(moved_to, dir.path().join("headers.dat.corrupt-1"));
}

#[test]
fn another_networks_file_is_not_loaded() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(FILE_NAME);
    let chain = header_chain(Network::Regtest, &[&mined()]);
    populated(&path, &chain);
    let testnet = HeaderChain::new(Network::Testnet4);
    let loaded = load(&path, &testnet);
    let Some(FilterRecovery::SetAside { corrupt, moved_to }) = loaded.report.recovery else {
        panic!("expected set aside, got {:?}", loaded.report);
    };
    assert_eq!(
        corrupt,
        FilterCorruptFile::WrongNetwork {
            found: Network::Regtest.magic(),
            expected: Network::Testnet4,
        }
    );
    assert_eq!(
        corrupt.to_string(),
        format!(
            "written for the chain with magic {}, not for testnet4",
            Network::Regtest.magic()
        )
    );
    assert_eq!(
        moved_to,
        dir.path().join(format!("{FILE_NAME}.wrong-network-1"))
    );
    assert_eq!(file_len(&moved_to), bytes_for(RECORDS));
    assert!(loaded.filters.is_empty() && loaded.store.is_empty());
    assert_eq!(loaded.report.records, 0);
}

/// The node stopped after a reorg reached the header file but before the
/// filter headers followed: records from the fork up name blocks the best
/// chain no longer has, and are dropped (not an error, not damage).
#[test]
fn records_off_the_best_chain_are_dropped_at_the_fork() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(FILE_NAME);
    let headers = mined();
    let old = header_chain(Network::Regtest, &[&headers]);
    populated(&path, &old);
    // A longer branch from height 150 (headers[149]): heights 151.. differ.
    let branch = mine_regtest_branch(&headers[149], 200, headers[149].time + 1, 7);
    let new = header_chain(Network::Regtest, &[&headers, &branch]);
    assert_eq!(new.tip(), (350, branch[199].block_hash()));

    let mut loaded = load(&path, &new);
    assert_eq!(
        loaded.report,
        FilterLoadReport {
            records: 151,
            reorged: Some(150),
            ..FilterLoadReport::default()
        }
    );
    assert_eq!(file_len(&path), bytes_for(151));
    let kept = reference(&old, 150, 0);
    holds(&loaded.filters, &kept, headers[149].block_hash());

    // The new branch's filter headers follow on, and reload.
    push_up_to(&mut loaded.filters, &new, 350, 1);
    assert_eq!(loaded.store.append(&mut loaded.filters).unwrap(), 200);
    let tip = loaded.filters.tip();
    drop(loaded);
    let loaded = load(&path, &new);
    assert_eq!(
        loaded.report,
        FilterLoadReport {
            records: 351,
            ..FilterLoadReport::default()
        }
    );
    assert_eq!(loaded.filters.tip(), tip);
    assert_eq!(loaded.filters.header_at(150), Some(kept[150]));
    assert_eq!(
        loaded.filters.header_at(151),
        Some(filter(1, 151).filter_header(&kept[150]))
    );
}

/// The same, with the header chain as the node has it after a start: its
/// headers read back from `headers.dat`, none in memory.
#[test]
fn records_are_checked_against_a_header_chain_read_from_its_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(FILE_NAME);
    let headers = mined();
    populated(&path, &header_chain(Network::Regtest, &[&headers]));
    let branch = mine_regtest_branch(&headers[149], 200, headers[149].time + 1, 7);
    let headers_path = dir.path().join("headers.dat");
    let mut written = HeaderChain::load_or_new(&headers_path, Network::Regtest).unwrap();
    written.chain.accept(&headers, NOW).unwrap();
    written.chain.accept(&branch, NOW).unwrap();
    written.store.append(&mut written.chain).unwrap();
    drop(written);
    let on_disk = HeaderChain::load_or_new(&headers_path, Network::Regtest)
        .unwrap()
        .chain;
    assert_eq!(on_disk.memory().headers_in_memory, 0);
    let loaded = load(&path, &on_disk);
    assert_eq!(
        loaded.report,
        FilterLoadReport {
            records: 151,
            reorged: Some(150),
            ..FilterLoadReport::default()
        }
    );
    holds(
        &loaded.filters,
        &reference(&on_disk, 150, 0),
        headers[149].block_hash(),
    );
}

/// The header file was cut back below the filter headers/// The header file was cut back below the filter headers (its own load
/// dropped a damaged tail): records above its tip go.
#[test]
fn records_above_the_header_chains_tip_are_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(FILE_NAME);
    let headers = mined();
    populated(&path, &header_chain(Network::Regtest, &[&headers]));
    let shorter = header_chain(Network::Regtest, &[&headers[..200]]);
    let loaded = load(&path, &shorter);
    assert_eq!(
        loaded.report,
        FilterLoadReport {
            records: 201,
            reorged: Some(100),
            ..FilterLoadReport::default()
        }
    );
    assert_eq!(file_len(&path), bytes_for(201));
    holds(
        &loaded.filters,
        &reference(&shorter, 200, 0),
        headers[199].block_hash(),
    );
}

/// A reorg and a torn tail at once: each is reported for what it is, the
/// zeros as a torn write and only intact records as reorged.
#[test]
fn a_torn_tail_after_a_reorg_is_reported_apart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(FILE_NAME);
    let headers = mined();
    populated(&path, &header_chain(Network::Regtest, &[&headers]));
    let full = file_len(&path);
    let mut bytes = fs::read(&path).unwrap();
    bytes.extend(std::iter::repeat_n(0u8, RECORD_LEN + 3));
    fs::write(&path, &bytes).unwrap();
    let branch = mine_regtest_branch(&headers[149], 200, headers[149].time + 1, 7);
    let new = header_chain(Network::Regtest, &[&headers, &branch]);
    let loaded = load(&path, &new);
    assert_eq!(
        loaded.report,
        FilterLoadReport {
            records: 151,
            truncated: Some(Truncation {
                original_len: full + RECORD_LEN as u64 + 3,
                kept_len: full,
                dropped_records: 1,
                partial_bytes: 3,
            }),
            reorged: Some(150),
            ..FilterLoadReport::default()
        }
    );
    assert_eq!(file_len(&path), bytes_for(151));
}

#[test]
fn a_truncated_store_reloads_as_the_truncated_chain() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(FILE_NAME);
    let headers = mined();
    let chain = header_chain(Network::Regtest, &[&headers]);
    let mut loaded = populated(&path, &chain);
    let want = reference(&chain, BLOCKS as u32, 0);

    assert!(loaded.filters.truncate(120, chain.hash_at(119)));
    loaded.store.truncate(120).unwrap();
    assert_eq!(loaded.store.len(), 120);
    assert_eq!(file_len(&path), bytes_for(120));
    // Truncating past the end changes nothing.
    loaded.store.truncate(500).unwrap();
    assert_eq!(file_len(&path), bytes_for(120));
    let reloaded = load(&path, &chain);
    assert_eq!(
        reloaded.report,
        FilterLoadReport {
            records: 120,
            ..FilterLoadReport::default()
        }
    );
    holds(&reloaded.filters, &want[..120], headers[118].block_hash());
    drop(reloaded);

    // Appending goes on from the cut.
    push_up_to(&mut loaded.filters, &chain, BLOCKS as u32, 0);
    assert_eq!(
        loaded.store.append(&mut loaded.filters).unwrap(),
        BLOCKS + 1 - 120
    );
    let reloaded = load(&path, &chain);
    assert_eq!(reloaded.report.records, RECORDS);
    holds(&reloaded.filters, &want, headers[BLOCKS - 1].block_hash());
    drop(reloaded);

    // Down to nothing: only the file header stays, and it loads.
    assert!(loaded.filters.truncate(0, None));
    loaded.store.truncate(0).unwrap();
    assert!(loaded.store.is_empty());
    assert_eq!(file_len(&path), FILE_HEADER_LEN as u64);
    let reloaded = load(&path, &chain);
    assert_eq!(reloaded.report, FilterLoadReport::default());
    assert!(reloaded.filters.is_empty());
}

/// A filter chain truncated below the file, without the file following,
/// does not continue the file: appending to it is refused, not written at
/// the wrong heights.
#[test]
fn appending_a_chain_that_does_not_continue_the_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(FILE_NAME);
    let chain = header_chain(Network::Regtest, &[&mined()]);
    let mut loaded = populated(&path, &chain);
    assert!(loaded.filters.truncate(120, chain.hash_at(119)));
    push_up_to(&mut loaded.filters, &chain, 125, 1);
    let e = loaded.store.append(&mut loaded.filters).unwrap_err();
    assert!(
        matches!(
            e,
            FilterStoreError::OutOfStep {
                first: 120,
                records: RECORDS
            }
        ),
        "{e}"
    );
    assert_eq!(file_len(&path), bytes_for(RECORDS), "nothing written");
    assert_eq!(loaded.filters.unwritten().1.len(), 6, "still to write");
    // Once the file follows the chain, the same append goes through.
    loaded.store.truncate(120).unwrap();
    assert_eq!(loaded.store.append(&mut loaded.filters).unwrap(), 6);
    let reloaded = load(&path, &chain);
    assert_eq!(reloaded.report.records, 126);
    assert_eq!(reloaded.filters.tip(), loaded.filters.tip());
}
