//! The basic filter header chain (BIP157) on disk: an append-only file of
//! fixed-size records next to `headers.dat`, checked on load, cut back to
//! the best header chain, and never trusted when damaged.
//!
//! # Format (version 1)
//!
//! ```text
//! file header  magic "NJFLTHDR" (8) | version u32 LE | chain magic (4)
//!              | checksum (4): first 4 bytes of SHA-256d of the 16 before
//! record       block hash (32, internal byte order) | filter hash (32)
//!              | checksum (4): first 4 bytes of SHA-256d of the 64 before
//! ```
//!
//! The file header has the layout of the header chain file's
//! ([`super::store`], which writes and checks both), with its own magic so
//! neither file is ever read as the other.
//!
//! Record `i` is for height `i`. Unlike `headers.dat`, genesis has a
//! record: its filter hash is data we downloaded, not a constant of the
//! code.
//!
//! A record holds the filter *hash*, not the filter header: the headers
//! are recomputed on load, each chained onto the one below, so the file
//! cannot hold headers that do not link, and a dropped record can only
//! shorten the chain. That costs one
//! SHA-256d of 64 bytes per record on top of the checksum's; a mainnet
//! file (about 900 000 records, 61 MB) still loads in a fraction of a
//! second on one thread, read in chunks of [`READ_BATCH`] records, with
//! the header chain's hashes read in runs of as many.
//!
//! # Crash safety
//!
//! As for the header chain file: the file header is written atomically
//! ([`crate::atomic_file`]) when the file is created, records are only
//! appended (one `write` and one `fdatasync` per [`FilterStore::append`]),
//! and [`FilterStore::truncate`] cuts at a record boundary and syncs. On
//! load, a run of bad records reaching the end of the file (a partial
//! record, or whole records of zeros from a file system that extended the
//! file before writing its data) is a torn write: it is cut off and
//! reported in [`FilterLoadReport::truncated`]. A bad record followed by a
//! good one cannot come from a torn append: the whole file is moved aside
//! for a look and the records before the bad one are kept in a new file
//! at the same path ([`FilterLoadReport::damaged`]), the policy of the
//! header chain file: those records cost a download each to get back.
//! A bad file header means nothing in the file can be trusted: it is
//! moved aside and a new, empty file is created
//! ([`FilterLoadReport::recovery`]); so is a file written for another
//! network or by another format version.
//!
//! # Agreement with the header chain
//!
//! The two files are written at different times and nothing syncs them
//! together: the node may stop after a reorg reached `headers.dat` but
//! before the filter headers followed, or the header file may have been
//! cut back on its own load. So each record names its block, and on load
//! every record's block must be the best header chain's block at its
//! height. The first record whose block is not there (a fork, or a
//! height above the header chain's tip) ends the replay; it and all after
//! it are dropped from the file and counted in
//! [`FilterLoadReport::reorged`]. That is not damage: the filter headers
//! of the new branch are fetched again.
//!
//! # Trust on load
//!
//! The checksums are for disks and crashes. Someone who can write to the
//! data directory can plant filter hashes that match their checksums; they
//! could as well replace the binary, so the file is not where a defence
//! against them belongs. The filter header chain is settled against peers'
//! `cfheaders` as it grows, not on load.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use bitcoin::bip158::FilterHash;
use bitcoin::hashes::{Hash, sha256d};
use bitcoin::{BlockHash, Network};

use super::HeaderChain;
use super::filter_headers::FilterHeaderChain;
use super::store::{self, FileHeaderFault, Truncation};
use crate::atomic_file::{self, AtomicFileError};
use crate::wire::Magic;

/// The file's name in the chain's directory, next to `headers.dat`.
pub const FILE_NAME: &str = "filter_headers.dat";

/// First bytes of every filter header file.
pub const FILE_MAGIC: [u8; 8] = *b"NJFLTHDR";

/// The format this code writes and reads. Bump it on any layout change.
pub const FORMAT_VERSION: u32 = 1;

/// Bytes of the file header (the layout of the header chain file's).
pub const FILE_HEADER_LEN: usize = store::FILE_HEADER_LEN;

/// Bytes of one record: block hash, filter hash, checksum.
pub const RECORD_LEN: usize = 32 + 32 + 4;

/// Records read per `read` on load (about 1 MiB): a few dozen reads for a
/// mainnet file, and a bounded buffer whatever the file size.
pub const READ_BATCH: usize = 16_384;

/// What is wrong with a filter header file that cannot be (wholly) used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FilterCorruptFile {
    /// Shorter than the file header (which is written atomically, so this
    /// is not a torn write).
    #[error("{len} bytes, shorter than the {FILE_HEADER_LEN}-byte file header")]
    TooShort {
        /// Bytes present.
        len: u64,
    },
    /// Not a filter header file.
    #[error("not a filter header file (bad magic)")]
    BadMagic,
    /// A format from another nightjar version.
    #[error(
        "format version {found} is not supported (this nightjar reads version {FORMAT_VERSION})"
    )]
    UnsupportedVersion {
        /// The file's version.
        found: u32,
    },
    /// Written for another chain: a data-directory mix-up.
    #[error("written for the chain with magic {found}, not for {expected}")]
    WrongNetwork {
        /// The file's chain magic.
        found: Magic,
        /// The chain we run.
        expected: Network,
    },
    /// The file header's checksum does not match.
    #[error("file header checksum mismatch")]
    HeaderChecksum,
    /// A record in the middle of the file is damaged (good records follow
    /// it, so it is not a torn append).
    #[error("record {record} is damaged (checksum mismatch) and later records are intact")]
    RecordChecksum {
        /// Index of the first bad record, which is its height.
        record: u64,
    },
}

impl FilterCorruptFile {
    /// The label a set-aside copy gets: `<name>.<label>-<n>`.
    fn label(&self) -> &'static str {
        match self {
            FilterCorruptFile::UnsupportedVersion { .. } => "unsupported",
            FilterCorruptFile::WrongNetwork { .. } => "wrong-network",
            _ => "corrupt",
        }
    }

    /// The file header check's verdict, in this file's words.
    fn from_fault(fault: FileHeaderFault, expected: Network) -> FilterCorruptFile {
        match fault {
            FileHeaderFault::BadMagic => FilterCorruptFile::BadMagic,
            FileHeaderFault::Checksum => FilterCorruptFile::HeaderChecksum,
            FileHeaderFault::UnsupportedVersion(found) => {
                FilterCorruptFile::UnsupportedVersion { found }
            }
            FileHeaderFault::WrongNetwork(found) => {
                FilterCorruptFile::WrongNetwork { found, expected }
            }
        }
    }
}

/// A failure that leaves us without a usable filter header file, or a
/// write that did not happen.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FilterStoreError {
    /// Reading, writing or truncating the file failed.
    #[error("filter header file {}: cannot {action}: {source}; check its permissions and the disk", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What we were doing.
        action: &'static str,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// Creating the file, or putting a damaged file's good records back in
    /// place, failed.
    #[error(transparent)]
    Atomic(#[from] AtomicFileError),
    /// A bad file could not be moved aside; it is left in place and not
    /// used (starting afresh would overwrite it).
    #[error("filter header file {} is unusable ({corrupt}) and could not be set aside: {source}", path.display())]
    SetAsideFailed {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        corrupt: Box<FilterCorruptFile>,
        /// Why it could not be moved.
        #[source]
        source: AtomicFileError,
    },
    /// An earlier append or truncation failed and could not be undone: the
    /// file's length is unknown. A successful [`FilterStore::truncate`] or
    /// a reload clears it.
    #[error("filter header file {} is in an unknown state after a failed write; reload it", path.display())]
    Poisoned {
        /// The file.
        path: PathBuf,
    },
    /// [`FilterStore::append`] was given filter headers that do not start
    /// where the file ends: not the chain it was loaded with, or one
    /// truncated below the file without [`FilterStore::truncate`] after.
    #[error(
        "the filter headers to append start at height {first} but the file holds {records} records: not the filter header chain it was loaded with"
    )]
    OutOfStep {
        /// Height of the first unwritten filter header.
        first: u32,
        /// Records in the file.
        records: u64,
    },
    /// The header chain could not read back the block hashes the records
    /// are checked against (its own file failed; that error is logged).
    /// Nothing was dropped: a read failure is not a reorg.
    #[error("filter header file {}: cannot read the header chain at height {height} to check the records against it; see the header chain file's error", path.display())]
    HeaderChainUnreadable {
        /// The filter header file.
        path: PathBuf,
        /// The first height the header chain could not give.
        height: u32,
    },
}

/// Why the filter header chain starts empty instead of from the file.
#[derive(Debug, Clone, PartialEq)]
pub enum FilterRecovery {
    /// There was no file; a new one was created.
    Created,
    /// The file was unusable (its file header is wrong), was moved to
    /// `moved_to`, and a new one was created.
    SetAside {
        /// What was wrong.
        corrupt: FilterCorruptFile,
        /// Where the bad file went.
        moved_to: PathBuf,
    },
}

/// A file damaged after a good prefix: the prefix was kept.
#[derive(Debug, Clone, PartialEq)]
pub struct FilterDamage {
    /// What was wrong at the end of the good part.
    pub corrupt: FilterCorruptFile,
    /// Records before the damage. They stay, less any that
    /// [`FilterLoadReport::reorged`] dropped for being off the best chain.
    pub kept_records: u64,
    /// Where the whole damaged file was moved, for a look.
    pub moved_to: PathBuf,
}

/// What loading found.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FilterLoadReport {
    /// Records replayed into the filter header chain: the file holds
    /// exactly these now.
    pub records: u64,
    /// Set when a torn tail was cut off. Its `kept_len` is the end of the
    /// last record with a good checksum; `reorged` may have cut further.
    pub truncated: Option<Truncation>,
    /// Set when a record in the middle was damaged: the records before it
    /// were kept, the rest dropped.
    pub damaged: Option<FilterDamage>,
    /// Set when intact records were dropped because their block is no
    /// longer the best header chain's at their height (a reorg, or a
    /// header chain cut back below them): how many. Not an error.
    pub reorged: Option<u32>,
    /// Set when the filter header chain starts empty.
    pub recovery: Option<FilterRecovery>,
}

/// A loaded (or empty) filter header chain, the store to append to, and
/// what happened.
#[derive(Debug)]
pub struct FilterLoaded {
    /// The filter headers, all already in the file.
    pub filters: FilterHeaderChain,
    /// Its file.
    pub store: FilterStore,
    /// What loading found.
    pub report: FilterLoadReport,
}

/// The open filter header file, ready for appends.
#[derive(Debug)]
pub struct FilterStore {
    path: PathBuf,
    /// Opened for appending: every write lands at the end.
    file: File,
    /// Good records in the file (the next one is for this height).
    records: u64,
    /// A failed write left the file's length unknown.
    poisoned: bool,
}

impl FilterStore {
    /// Opens the filter header file at `path`, or creates it, and replays
    /// its records into a [`FilterHeaderChain`].
    ///
    /// Each record's block must be `chain.hash_at(height)`, `chain` being
    /// the loaded best header chain (whose network the file must be
    /// for): the first record whose block is not there (a reorg happened,
    /// or the header file was cut back) ends the replay, and the file is
    /// cut back to it, reported in [`FilterLoadReport::reorged`], not as an
    /// error. Torn tails, damage and bad files are handled as the module
    /// docs say; the error is for what cannot be worked around (I/O, or
    /// a header chain that cannot read its own file).
    pub fn load_or_new(path: &Path, chain: &HeaderChain) -> Result<FilterLoaded, FilterStoreError> {
        let network = chain.network();
        let io_err = |action| {
            move |source| FilterStoreError::Io {
                path: path.to_path_buf(),
                action,
                source,
            }
        };
        let file = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return create(path, network, FilterRecovery::Created);
            }
            Err(e) => return Err(io_err("open it")(e)),
        };
        let original_len = file.metadata().map_err(io_err("read its size"))?.len();
        let mut filters = FilterHeaderChain::new();
        let replayed = match replay(file, original_len, chain, &mut filters) {
            Ok(r) => r,
            Err(ReplayError::Io(e)) => return Err(io_err("read it")(e)),
            Err(ReplayError::HeaderChain { height }) => {
                return Err(FilterStoreError::HeaderChainUnreadable {
                    path: path.to_path_buf(),
                    height,
                });
            }
        };
        let Replayed {
            good,
            damaged_at,
            kept,
        } = match replayed {
            Ok(r) => r,
            Err(corrupt) => {
                let moved_to = set_aside(path, &corrupt)?;
                return create(
                    path,
                    network,
                    FilterRecovery::SetAside { corrupt, moved_to },
                );
            }
        };
        let good_len = byte_len(good);
        let kept_len = byte_len(kept);
        let mut report = FilterLoadReport {
            records: kept,
            reorged: (kept < good).then(|| u32::try_from(good - kept).unwrap_or(u32::MAX)),
            ..FilterLoadReport::default()
        };
        if let Some(record) = damaged_at {
            // Keep the whole damaged file for a look, and go on with the
            // good prefix in a file of its own (written atomically, so a
            // crash now leaves either no file, which starts afresh, or the
            // whole prefix).
            let corrupt = FilterCorruptFile::RecordChecksum { record };
            let moved_to = set_aside(path, &corrupt)?;
            let moved = File::open(&moved_to).map_err(io_err("read the moved file"))?;
            atomic_file::write_atomically_from(path, &mut moved.take(kept_len))?;
            report.damaged = Some(FilterDamage {
                corrupt,
                kept_records: good,
                moved_to,
            });
        } else if kept_len != original_len {
            let file = OpenOptions::new()
                .write(true)
                .open(path)
                .map_err(io_err("open it for truncation"))?;
            file.set_len(kept_len).map_err(io_err("truncate it"))?;
            // `sync_all`: the new length is the point.
            file.sync_all().map_err(io_err("flush the truncation"))?;
            if good_len != original_len {
                let torn = original_len - good_len;
                report.truncated = Some(Truncation {
                    original_len,
                    kept_len: good_len,
                    dropped_records: torn / RECORD_LEN as u64,
                    partial_bytes: torn % RECORD_LEN as u64,
                });
            }
        }
        let file = open_for_appending(path)?;
        Ok(FilterLoaded {
            filters,
            store: FilterStore {
                path: path.to_path_buf(),
                file,
                records: kept,
                poisoned: false,
            },
            report,
        })
    }

    /// Appends the records `filters` has yet to write
    /// ([`FilterHeaderChain::unwritten`]) durably, one `write` and one
    /// `fdatasync`, then marks them written. Returns how many; nothing to
    /// write is a no-op.
    ///
    /// The first unwritten height must be the file's record count
    /// ([`FilterStoreError::OutOfStep`] otherwise): record `i` is height
    /// `i`, and a chain that does not continue the file is not the one it
    /// was loaded with. On failure the file is cut back to its previous
    /// length, so it never keeps half an append, and `filters` still has
    /// the records to write; if even the cut fails the store refuses
    /// writes ([`FilterStoreError::Poisoned`]) until a truncation succeeds
    /// or the file is reloaded.
    pub fn append(&mut self, filters: &mut FilterHeaderChain) -> Result<usize, FilterStoreError> {
        if self.poisoned {
            return Err(FilterStoreError::Poisoned {
                path: self.path.clone(),
            });
        }
        let (first, records) = filters.unwritten();
        if records.is_empty() {
            return Ok(0);
        }
        if u64::from(first) != self.records {
            return Err(FilterStoreError::OutOfStep {
                first,
                records: self.records,
            });
        }
        let mut buf = Vec::with_capacity(records.len() * RECORD_LEN);
        for (block, filter) in records {
            encode_record(block, filter, &mut buf);
        }
        let result = self
            .file
            .write_all(&buf)
            .and_then(|()| self.file.sync_data());
        if let Err(source) = result {
            if self.file.set_len(byte_len(self.records)).is_err() {
                self.poisoned = true;
            }
            return Err(FilterStoreError::Io {
                path: self.path.clone(),
                action: "append to it",
                source,
            });
        }
        let count = records.len();
        self.records += count as u64;
        filters.mark_written();
        Ok(count)
    }

    /// Makes the file hold exactly its first `records` records (heights
    /// `0..records`) and syncs: meant to follow
    /// [`FilterHeaderChain::truncate`] with the same length when it
    /// returned true. If the file holds no more than that already, nothing
    /// changes.
    ///
    /// The cut lands on a record boundary, so a crash leaves the old
    /// length (the dropped records come back, and the next load drops them
    /// again if their blocks left the best chain), the new one, or, on a
    /// file system that shrinks in steps, one ending in a partial record,
    /// which load cuts off as a torn write.
    ///
    /// On failure the file's length is unknown and the store refuses
    /// appends ([`FilterStoreError::Poisoned`]) until a truncation succeeds
    /// or the file is reloaded; a successful one also clears an earlier
    /// failed append's poisoning.
    pub fn truncate(&mut self, records: usize) -> Result<(), FilterStoreError> {
        let records = records as u64;
        if records >= self.records && !self.poisoned {
            return Ok(());
        }
        let records = records.min(self.records);
        // `sync_all`, not `sync_data`: the new length is the whole point.
        let result = self
            .file
            .set_len(byte_len(records))
            .and_then(|()| self.file.sync_all());
        if let Err(source) = result {
            self.poisoned = true;
            return Err(FilterStoreError::Io {
                path: self.path.clone(),
                action: "truncate it",
                source,
            });
        }
        self.records = records;
        self.poisoned = false;
        Ok(())
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Records in the file: the height the next append starts at. (Unlike
    /// [`super::ChainStore::len`], a count of records, not of bytes.)
    pub fn len(&self) -> u64 {
        self.records
    }

    /// Whether the file holds no records yet.
    pub fn is_empty(&self) -> bool {
        self.records == 0
    }
}

/// Bytes of a file holding `records` records.
fn byte_len(records: u64) -> u64 {
    FILE_HEADER_LEN as u64 + records * RECORD_LEN as u64
}

/// Writes a new file holding only the file header: an empty chain.
fn create(
    path: &Path,
    network: Network,
    recovery: FilterRecovery,
) -> Result<FilterLoaded, FilterStoreError> {
    atomic_file::write_atomically(
        path,
        &store::file_header_of(&FILE_MAGIC, FORMAT_VERSION, network),
    )?;
    let file = open_for_appending(path)?;
    Ok(FilterLoaded {
        filters: FilterHeaderChain::new(),
        store: FilterStore {
            path: path.to_path_buf(),
            file,
            records: 0,
            poisoned: false,
        },
        report: FilterLoadReport {
            recovery: Some(recovery),
            ..FilterLoadReport::default()
        },
    })
}

fn open_for_appending(path: &Path) -> Result<File, FilterStoreError> {
    OpenOptions::new()
        .append(true)
        .open(path)
        .map_err(|source| FilterStoreError::Io {
            path: path.to_path_buf(),
            action: "open it for appending",
            source,
        })
}

/// Moves a bad file aside under a name saying why.
fn set_aside(path: &Path, corrupt: &FilterCorruptFile) -> Result<PathBuf, FilterStoreError> {
    atomic_file::move_aside(path, corrupt.label()).map_err(|source| {
        FilterStoreError::SetAsideFailed {
            path: path.to_path_buf(),
            corrupt: Box::new(corrupt.clone()),
            source,
        }
    })
}

/// How much of a file with a good file header is good.
#[derive(Debug, PartialEq, Eq)]
struct Replayed {
    /// Records with good checksums before the first bad one.
    good: u64,
    /// The first bad record, when a good one follows it (damage, not a
    /// torn tail).
    damaged_at: Option<u64>,
    /// Records of `good` replayed into the chain: those before the first
    /// one whose block is not the best header chain's at its height.
    kept: u64,
}

/// Why a replay could not decide what in the file is good.
enum ReplayError {
    Io(io::Error),
    /// The header chain could not give the block at this height.
    HeaderChain {
        height: u32,
    },
}

impl From<io::Error> for ReplayError {
    fn from(e: io::Error) -> Self {
        ReplayError::Io(e)
    }
}

/// Checks the file header, then replays the records into `filters` while
/// their blocks are the best header chain's. The outer error stops the
/// load; the inner one is a file whose header is bad (nothing in it can
/// be trusted).
///
/// Every record's checksum is checked even after the replay stopped at a
/// block off the best chain: damage in the middle is set aside for a look
/// whatever else is dropped, and a tail of zeros is reported as the torn
/// write it is, not as a reorg.
fn replay(
    mut file: File,
    len: u64,
    chain: &HeaderChain,
    filters: &mut FilterHeaderChain,
) -> Result<Result<Replayed, FilterCorruptFile>, ReplayError> {
    let network = chain.network();
    if len < FILE_HEADER_LEN as u64 {
        return Ok(Err(FilterCorruptFile::TooShort { len }));
    }
    let mut head = [0u8; FILE_HEADER_LEN];
    file.read_exact(&mut head)?;
    if let Err(fault) = store::check_file_header_of(&head, &FILE_MAGIC, FORMAT_VERSION, network) {
        return Ok(Err(FilterCorruptFile::from_fault(fault, network)));
    }
    let whole = (len - FILE_HEADER_LEN as u64) / RECORD_LEN as u64;
    // At most one record per height of the best chain can be kept.
    let most = whole.min(u64::from(chain.height()) + 1);
    filters.reserve_exact(usize::try_from(most).unwrap_or(0));
    let mut chunk = vec![0u8; READ_BATCH * RECORD_LEN];
    let mut expected: Vec<BlockHash> = Vec::with_capacity(READ_BATCH);
    let mut first_bad: Option<u64> = None;
    let mut matching = true;
    let mut kept = 0u64;
    let mut start = 0u64;
    while start < whole {
        let n = (whole - start).min(READ_BATCH as u64) as usize;
        let bytes = &mut chunk[..n * RECORD_LEN];
        file.read_exact(bytes)?;
        if matching && first_bad.is_none() {
            best_chain_hashes(chain, start, n, &mut expected)?;
        }
        for (offset, record) in bytes.chunks_exact(RECORD_LEN).enumerate() {
            let index = start + offset as u64;
            match (decode_record(record), first_bad) {
                // A good record after a bad one: not a torn append.
                (Some(_), Some(bad)) => {
                    return Ok(Ok(Replayed {
                        good: bad,
                        damaged_at: Some(bad),
                        kept,
                    }));
                }
                (Some((block, filter)), None) => {
                    if matching && expected.get(offset) == Some(&block) {
                        filters.push_stored(block, filter);
                        kept = index + 1;
                    } else {
                        matching = false;
                    }
                }
                (None, None) => first_bad = Some(index),
                (None, Some(_)) => {}
            }
        }
        start += n as u64;
    }
    Ok(Ok(Replayed {
        good: first_bad.unwrap_or(whole),
        damaged_at: None,
        kept,
    }))
}

/// The best header chain's block hashes at heights `from..from + count`,
/// as far as it reaches, into `out`. Read in one run from the header file:
/// below the tip, a block's hash is its child's back link, so no header
/// is hashed and no record read twice.
fn best_chain_hashes(
    chain: &HeaderChain,
    from: u64,
    count: usize,
    out: &mut Vec<BlockHash>,
) -> Result<(), ReplayError> {
    out.clear();
    let tip = u64::from(chain.height());
    if from > tip {
        return Ok(());
    }
    let end = (from + count as u64).min(tip + 1);
    // Heights `from..children_end` below the tip, named by their children.
    let children_end = end.min(tip);
    if from < children_end {
        let first_child = u32::try_from(from + 1).unwrap_or(u32::MAX);
        let wanted = (children_end - from) as usize;
        let children = chain.headers_from(first_child, wanted);
        if children.len() != wanted {
            return Err(ReplayError::HeaderChain {
                height: first_child.saturating_add(children.len() as u32),
            });
        }
        out.extend(children.iter().map(|h| h.prev_blockhash));
    }
    if end == tip + 1 {
        out.push(chain.tip().1);
    }
    Ok(())
}

/// The block and filter hash in a record, if its checksum holds.
fn decode_record(record: &[u8]) -> Option<(BlockHash, FilterHash)> {
    let sum = sha256d::Hash::hash(record.get(..64)?);
    if record.get(64..RECORD_LEN)? != &sum.as_byte_array()[..4] {
        return None;
    }
    let mut block = [0u8; 32];
    block.copy_from_slice(&record[..32]);
    let mut filter = [0u8; 32];
    filter.copy_from_slice(&record[32..64]);
    Some((
        BlockHash::from_byte_array(block),
        FilterHash::from_byte_array(filter),
    ))
}

/// A record for `block` and `filter`, appended to `out`.
fn encode_record(block: &BlockHash, filter: &FilterHash, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(block.as_byte_array());
    out.extend_from_slice(filter.as_byte_array());
    let sum = sha256d::Hash::hash(&out[start..]);
    out.extend_from_slice(&sum.as_byte_array()[..4]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::regtest_miner::{SPACING, mine_regtest_chain, regtest_genesis};

    const NOW: u64 = 2_000_000_000;

    fn filter(height: u32) -> FilterHash {
        FilterHash::hash(&height.to_le_bytes())
    }

    /// A regtest header chain of `count` blocks on genesis, in memory.
    fn header_chain(count: usize) -> HeaderChain {
        let mut chain = HeaderChain::new(Network::Regtest);
        let headers =
            mine_regtest_chain(&regtest_genesis(), count, regtest_genesis().time + SPACING);
        chain.accept(&headers, NOW).unwrap();
        chain
    }

    /// Filter headers for the whole best chain of `chain`, appended.
    fn fill(path: &Path, chain: &HeaderChain) -> FilterLoaded {
        let mut loaded = FilterStore::load_or_new(path, chain).unwrap();
        for height in loaded.filters.len() as u32..=chain.height() {
            loaded
                .filters
                .push(chain.hash_at(height).unwrap(), filter(height));
        }
        loaded.store.append(&mut loaded.filters).unwrap();
        loaded
    }

    #[test]
    fn a_record_round_trips_and_its_checksum_catches_a_flip() {
        let block = BlockHash::from_byte_array([7; 32]);
        let mut buf = Vec::new();
        encode_record(&block, &filter(3), &mut buf);
        assert_eq!(buf.len(), RECORD_LEN);
        assert_eq!(&buf[..32], &[7; 32]);
        assert_eq!(decode_record(&buf), Some((block, filter(3))));
        for at in [0, 40, 66] {
            let mut bad = buf.clone();
            bad[at] ^= 0x10;
            assert_eq!(decode_record(&bad), None, "flip at {at}");
        }
        assert_eq!(
            decode_record(&[0u8; RECORD_LEN]),
            None,
            "zeros are no record"
        );
    }

    #[test]
    fn the_file_header_is_the_shared_layout_with_this_files_magic() {
        let head = store::file_header_of(&FILE_MAGIC, FORMAT_VERSION, Network::Regtest);
        assert_eq!(&head[..8], b"NJFLTHDR");
        assert_eq!(&head[8..12], &1u32.to_le_bytes());
        assert_eq!(&head[12..16], &Network::Regtest.magic().to_bytes());
        assert_eq!(&head[16..], &sha256d::Hash::hash(&head[..16])[..4]);
        // A header chain file is not a filter header file.
        let theirs = store::file_header_of(&store::FILE_MAGIC, FORMAT_VERSION, Network::Regtest);
        assert_eq!(
            store::check_file_header_of(&theirs, &FILE_MAGIC, FORMAT_VERSION, Network::Regtest),
            Err(FileHeaderFault::BadMagic)
        );
    }

    #[test]
    fn best_chain_hashes_name_every_height_up_to_the_tip() {
        let chain = header_chain(10);
        let mut out = Vec::new();
        best_chain_hashes(&chain, 0, 4, &mut out).ok().unwrap();
        let want: Vec<_> = (0..4).map(|h| chain.hash_at(h).unwrap()).collect();
        assert_eq!(out, want);
        best_chain_hashes(&chain, 8, 100, &mut out).ok().unwrap();
        assert_eq!(
            out,
            vec![
                chain.hash_at(8).unwrap(),
                chain.hash_at(9).unwrap(),
                chain.tip().1
            ]
        );
        best_chain_hashes(&chain, 10, 1, &mut out).ok().unwrap();
        assert_eq!(out, vec![chain.tip().1]);
        best_chain_hashes(&chain, 11, 5, &mut out).ok().unwrap();
        assert!(out.is_empty());
    }

    #[test]
    fn a_reload_replays_the_same_filter_headers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        let chain = header_chain(40);
        let written = fill(&path, &chain);
        assert_eq!(written.store.len(), 41);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), byte_len(41));
        let loaded = FilterStore::load_or_new(&path, &chain).unwrap();
        assert_eq!(
            loaded.report,
            FilterLoadReport {
                records: 41,
                ..FilterLoadReport::default()
            }
        );
        assert_eq!(loaded.filters.tip(), written.filters.tip());
        assert_eq!(loaded.filters.tip().unwrap().0, 40);
        for h in 0..=41 {
            assert_eq!(loaded.filters.header_at(h), written.filters.header_at(h));
        }
        assert_eq!(loaded.filters.unwritten(), (41, &[][..]));
    }

    #[test]
    fn appending_out_of_step_is_refused_and_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        let chain = header_chain(5);
        let mut loaded = fill(&path, &chain);
        // A fresh chain starts at height 0, the file at 6.
        let mut other = FilterHeaderChain::new();
        other.push(chain.hash_at(0).unwrap(), filter(0));
        let e = loaded.store.append(&mut other).unwrap_err();
        assert!(
            matches!(
                e,
                FilterStoreError::OutOfStep {
                    first: 0,
                    records: 6
                }
            ),
            "{e}"
        );
        assert_eq!(other.unwritten().1.len(), 1, "still to write");
        assert_eq!(std::fs::metadata(&path).unwrap().len(), byte_len(6));
        // Nothing to write is no error, however the chain stands.
        assert_eq!(
            loaded.store.append(&mut FilterHeaderChain::new()).unwrap(),
            0
        );
    }
}
