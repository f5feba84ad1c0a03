//! The header chain on disk: an append-only file of fixed-size records,
//! checked on load, never trusted when damaged, and the store the chain
//! reads full headers back from.
//!
//! # Format (version 1)
//!
//! ```text
//! file header  magic "NJHDRCHN" (8) | version u32 LE | chain magic (4)
//!              | checksum (4): first 4 bytes of SHA-256d of the 16 before
//! record       header (80, consensus encoding) | checksum (4): the first
//!              4 bytes of the header's SHA-256d, i.e. of its block hash
//! ```
//!
//! Records are the chain's headers in the order they were accepted
//! ([`HeaderChain::headers_in_order`]), genesis excluded, so every record's
//! parent is in the file before it. The checksum is the block hash we
//! compute anyway, so checking it is free.
//!
//! # Crash safety
//!
//! The file header is written atomically ([`crate::atomic_file`]) when the
//! file is created; after that, records are only appended (one `write` and
//! one `fdatasync` per [`ChainStore::append`]). A crash mid-append leaves a
//! partial record, or whole records of garbage (zeros, on file systems that
//! extend the file before writing its data), at the end. On load, a run of
//! bad records reaching the end of the file is such a torn write: the file
//! is truncated to the last good record and [`LoadReport::truncated`] says
//! so. A bad record followed by a good one cannot come from a torn append:
//! the file is reported as corrupt and moved aside.
//!
//! [`ChainStore::truncate`] (dropping provisional headers the chain let go
//! with [`HeaderChain::truncate`]) shrinks the file to a record boundary
//! and syncs. The file is then a shorter list of the same valid records;
//! a crash leaves either length, or at worst one ending in a partial
//! record, which load cuts off like a torn append.
//!
//! # Trust on load
//!
//! A record is trusted as far as Bitcoin Core trusts its block index at
//! start-up (`LoadBlockIndexGuts`): its checksum (the first 4 bytes of its
//! block hash, so every record is hashed) must hold, it must connect to an
//! earlier record, its proof of work must meet its own nBits within the
//! pow limit, and the checkpoints must agree. The contextual rules
//! (required difficulty, median time past, time warp, version heights)
//! were checked when the header arrived from a peer and are not checked
//! again: they cost about as much as the hashing, and a million headers
//! then load in a fraction of a second (`cargo bench --bench
//! chain_scale`).
//!
//! What that leaves to someone who can write to the data directory: they
//! could splice in headers that break a contextual rule, but not forge
//! work. Each header's work is what its own hash proves, so a fake branch
//! costs real hashing, and the honest chain that peers serve wins again
//! as soon as it has more work. The same person could also replace the
//! configuration, the peer list or the binary, so the file is not where a
//! defence against them belongs; the checksums are for disks and crashes.
//!
//! # Reading back
//!
//! Once appended, a header leaves memory ([`HeaderChain`] keeps only what
//! validation needs) and is read back from the file by entry id
//! ([`HeaderSource`]): record `id - 1` sits at a fixed offset.

use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bitcoin::block::Header;
use bitcoin::consensus::encode;
use bitcoin::hashes::{Hash, sha256d};
use bitcoin::{BlockHash, Network};

use super::{ChainParams, HeaderChain, HeaderError, HeaderSource};
use crate::atomic_file::{self, AtomicFileError};
use crate::wire::Magic;

/// First bytes of every header chain file.
pub const FILE_MAGIC: [u8; 8] = *b"NJHDRCHN";

/// The format this code writes and reads. Bump it on any layout change.
pub const FORMAT_VERSION: u32 = 1;

/// Bytes of the file header.
pub const FILE_HEADER_LEN: usize = 8 + 4 + 4 + 4;

/// Bytes of one record: a header and its checksum.
pub const RECORD_LEN: usize = 80 + 4;

/// Records validated per batch on load: bounds the memory of a load
/// whatever the file size.
const REPLAY_BATCH: usize = 4_000;

/// Threads a load hashes records on, at most.
const MAX_DECODE_THREADS: usize = 4;

/// Fewer records than this per thread are hashed on the loading thread:
/// starting a thread costs about as much as hashing a few hundred.
const MIN_RECORDS_PER_THREAD: usize = 500;

/// What is wrong with a header chain file that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CorruptFile {
    /// Shorter than the file header (which is written atomically, so this
    /// is not a torn write).
    #[error("{len} bytes, shorter than the {FILE_HEADER_LEN}-byte file header")]
    TooShort {
        /// Bytes present.
        len: u64,
    },
    /// Not a header chain file.
    #[error("not a header chain file (bad magic)")]
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
        /// Index of the first bad record (0 is the first after the file
        /// header).
        record: u64,
    },
    /// A record is intact but not a valid header in its place.
    #[error("record {record} is not a valid header: {error}")]
    InvalidHeader {
        /// Index of the record.
        record: u64,
        /// Why it was rejected.
        error: HeaderError,
    },
}

impl CorruptFile {
    /// The label a set-aside copy gets: `<name>.<label>-<n>`.
    fn label(&self) -> &'static str {
        match self {
            CorruptFile::UnsupportedVersion { .. } => "unsupported",
            CorruptFile::WrongNetwork { .. } => "wrong-network",
            CorruptFile::InvalidHeader { .. } => "invalid",
            _ => "corrupt",
        }
    }
}

/// A failure that leaves us without a usable header file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// Reading, writing or truncating the file failed.
    #[error("header chain file {}: cannot {action}: {source}; check its permissions and the disk", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What we were doing.
        action: &'static str,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// Creating the file, or moving a bad one aside, failed.
    #[error(transparent)]
    Atomic(#[from] AtomicFileError),
    /// A bad file could not be moved aside; it is left in place and not
    /// used (starting afresh would overwrite it).
    #[error("header chain file {} is unusable ({corrupt}) and could not be set aside: {source}", path.display())]
    SetAsideFailed {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        corrupt: Box<CorruptFile>,
        /// Why it could not be moved.
        #[source]
        source: AtomicFileError,
    },
    /// An earlier append failed and could not be undone: the file may end
    /// in a partial record. Reload it (which truncates that away).
    #[error("header chain file {} is in an unknown state after a failed append; reload it", path.display())]
    Poisoned {
        /// The file.
        path: PathBuf,
    },
    /// [`ChainStore::append`] was given a chain with fewer headers than
    /// the file holds, or one whose unwritten headers another store took:
    /// not the chain this store was loaded with.
    #[error(
        "the chain has {chain} headers but the file already holds {persisted}: not the chain it was loaded with"
    )]
    ForeignChain {
        /// Headers in the chain.
        chain: usize,
        /// Headers already persisted.
        persisted: usize,
    },
}

/// A torn tail that was cut off on load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Truncation {
    /// The file's length before.
    pub original_len: u64,
    /// The length it was cut to (the end of the last good record).
    pub kept_len: u64,
    /// Whole records dropped (bad checksums at the end).
    pub dropped_records: u64,
    /// Bytes of a partial record dropped.
    pub partial_bytes: u64,
}

/// Why the chain starts from genesis instead of the file.
#[derive(Debug, Clone, PartialEq)]
pub enum Recovery {
    /// There was no file; a new one was created.
    Created,
    /// The file was unusable, was moved to `moved_to`, and a new one was
    /// created.
    SetAside {
        /// What was wrong.
        corrupt: CorruptFile,
        /// Where the bad file went.
        moved_to: PathBuf,
    },
}

/// A file damaged after a good prefix: the prefix was kept.
#[derive(Debug, Clone, PartialEq)]
pub struct Damage {
    /// What was wrong at the end of the good part.
    pub corrupt: CorruptFile,
    /// Records kept (all those before the damage).
    pub kept_records: u64,
    /// Where the whole damaged file was moved, for a look.
    pub moved_to: PathBuf,
}

/// What loading found.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LoadReport {
    /// Records replayed into the chain.
    pub records: u64,
    /// Set when a torn tail was cut off.
    pub truncated: Option<Truncation>,
    /// Set when a record in the middle was damaged or invalid: the records
    /// before it were kept, the rest dropped.
    pub damaged: Option<Damage>,
    /// Set when the chain starts afresh.
    pub recovery: Option<Recovery>,
}

/// A loaded (or fresh) chain, the store to append to, and what happened.
#[derive(Debug)]
pub struct Loaded {
    /// The chain.
    pub chain: HeaderChain,
    /// Its file.
    pub store: ChainStore,
    /// What loading found.
    pub report: LoadReport,
}

/// The open header chain file, ready for appends.
#[derive(Debug)]
pub struct ChainStore {
    path: PathBuf,
    file: File,
    /// Bytes of good data in the file.
    len: u64,
    /// Chain entries (genesis included) already in the file.
    persisted: usize,
    /// The chain's [`HeaderChain::truncation_seq`] when the file last
    /// matched it: a later truncation may have made records stale.
    seen_truncation: u64,
    poisoned: bool,
    /// Reads records back for the chain.
    source: Arc<FileSource>,
}

/// Reads records of the header file back by entry id (`pread`, so reads
/// never disturb the append handle).
#[derive(Debug)]
struct FileSource {
    path: PathBuf,
    file: File,
}

impl FileSource {
    fn open(path: &Path) -> Result<Arc<FileSource>, StoreError> {
        let file = File::open(path).map_err(|source| StoreError::Io {
            path: path.to_path_buf(),
            action: "open it for reading",
            source,
        })?;
        Ok(Arc::new(FileSource {
            path: path.to_path_buf(),
            file,
        }))
    }
}

impl HeaderSource for FileSource {
    fn read(&self, first: u32, out: &mut [Header]) -> io::Result<()> {
        let Some(record) = u64::from(first).checked_sub(1) else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "genesis is not stored",
            ));
        };
        let mut buf = vec![0u8; out.len() * RECORD_LEN];
        let at = FILE_HEADER_LEN as u64 + record * RECORD_LEN as u64;
        let result = self.file.read_exact_at(&mut buf, at).and_then(|()| {
            for (slot, record) in out.iter_mut().zip(buf.chunks_exact(RECORD_LEN)) {
                *slot = encode::deserialize(&record[..80])
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            }
            Ok(())
        });
        if let Err(e) = &result {
            // The chain can only turn a failed read into "not found"; the
            // cause belongs in the log.
            tracing::error!(
                "header chain file {}: cannot read back {} record(s) from entry {first}: {e}",
                self.path.display(),
                out.len()
            );
        }
        result
    }
}

impl HeaderChain {
    /// Loads the chain for `network` from `path`, or starts from genesis
    /// with a new file (see [`ChainStore`] and the module docs).
    pub fn load_or_new(path: &Path, network: Network) -> Result<Loaded, StoreError> {
        HeaderChain::load_or_new_with_params(path, ChainParams::new(network))
    }

    /// [`HeaderChain::load_or_new`] with explicit rules.
    pub fn load_or_new_with_params(path: &Path, params: ChainParams) -> Result<Loaded, StoreError> {
        let io_err = |action| {
            move |source| StoreError::Io {
                path: path.to_path_buf(),
                action,
                source,
            }
        };
        let file = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return create(path, params, Recovery::Created);
            }
            Err(e) => return Err(io_err("open it")(e)),
        };
        let original_len = file.metadata().map_err(io_err("read its size"))?.len();
        let mut chain = HeaderChain::with_params(params.clone());
        let reader = FileSource::open(path)?;
        let (records, kept_len, damage) =
            match replay(file, original_len, &mut chain, &reader).map_err(io_err("read it"))? {
                Replayed::Unusable(corrupt) => {
                    let moved_to =
                        atomic_file::move_aside(path, corrupt.label()).map_err(|source| {
                            StoreError::SetAsideFailed {
                                path: path.to_path_buf(),
                                corrupt: Box::new(corrupt.clone()),
                                source,
                            }
                        })?;
                    return create(path, params, Recovery::SetAside { corrupt, moved_to });
                }
                Replayed::Usable {
                    records,
                    kept_len,
                    damage,
                } => (records, kept_len, damage),
            };
        let mut report = LoadReport {
            records,
            ..LoadReport::default()
        };
        if let Some(corrupt) = damage {
            // Keep the whole damaged file for a look, and go on with the
            // good prefix in a file of its own.
            let moved_to = atomic_file::move_aside(path, corrupt.label()).map_err(|source| {
                StoreError::SetAsideFailed {
                    path: path.to_path_buf(),
                    corrupt: Box::new(corrupt.clone()),
                    source,
                }
            })?;
            let moved = File::open(&moved_to).map_err(io_err("read the moved file"))?;
            atomic_file::write_atomically_from(path, &mut moved.take(kept_len))?;
            report.damaged = Some(Damage {
                corrupt,
                kept_records: records,
                moved_to,
            });
        } else if kept_len != original_len {
            let file = OpenOptions::new()
                .write(true)
                .open(path)
                .map_err(io_err("open it for truncation"))?;
            file.set_len(kept_len).map_err(io_err("truncate it"))?;
            file.sync_all().map_err(io_err("flush the truncation"))?;
            let records_bytes = original_len - kept_len;
            report.truncated = Some(Truncation {
                original_len,
                kept_len,
                dropped_records: records_bytes / RECORD_LEN as u64,
                partial_bytes: records_bytes % RECORD_LEN as u64,
            });
        }
        let file = OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(io_err("open it for appending"))?;
        // A damaged file was replaced by a copy of its good prefix: read
        // from whatever is at `path` now.
        let source = FileSource::open(path)?;
        chain.headers_written(chain.len(), source.clone());
        let store = ChainStore {
            path: path.to_path_buf(),
            file,
            len: kept_len,
            persisted: chain.len(),
            seen_truncation: chain.truncation_seq(),
            poisoned: false,
            source,
        };
        Ok(Loaded {
            chain,
            store,
            report,
        })
    }
}

/// Writes a new file holding only the file header, and a genesis chain.
fn create(path: &Path, params: ChainParams, recovery: Recovery) -> Result<Loaded, StoreError> {
    atomic_file::write_atomically(path, &file_header(params.network))?;
    let file = OpenOptions::new()
        .append(true)
        .open(path)
        .map_err(|source| StoreError::Io {
            path: path.to_path_buf(),
            action: "open it for appending",
            source,
        })?;
    let mut chain = HeaderChain::with_params(params);
    let source = FileSource::open(path)?;
    chain.headers_written(chain.len(), source.clone());
    Ok(Loaded {
        store: ChainStore {
            path: path.to_path_buf(),
            file,
            len: FILE_HEADER_LEN as u64,
            persisted: chain.len(),
            seen_truncation: chain.truncation_seq(),
            poisoned: false,
            source,
        },
        chain,
        report: LoadReport {
            recovery: Some(recovery),
            ..LoadReport::default()
        },
    })
}

/// The file header for `network`.
fn file_header(network: Network) -> [u8; FILE_HEADER_LEN] {
    file_header_of(&FILE_MAGIC, FORMAT_VERSION, network)
}

/// A file header in the layout the chain's files share (the module docs;
/// [`super::filter_store`] uses it with its own magic and version).
pub(super) fn file_header_of(
    magic: &[u8; 8],
    version: u32,
    network: Network,
) -> [u8; FILE_HEADER_LEN] {
    let mut out = [0u8; FILE_HEADER_LEN];
    out[..8].copy_from_slice(magic);
    out[8..12].copy_from_slice(&version.to_le_bytes());
    out[12..16].copy_from_slice(&network.magic().to_bytes());
    let sum = sha256d::Hash::hash(&out[..16]);
    out[16..].copy_from_slice(&sum.as_byte_array()[..4]);
    out
}

/// What replaying a file found.
enum Replayed {
    /// The file header is wrong: nothing in the file can be trusted.
    Unusable(CorruptFile),
    /// `records` good records, ending at byte `kept_len`; after them either
    /// nothing, a torn tail, or (`damage`) a bad record in the middle or a
    /// header that does not validate, with everything from it on dropped.
    Usable {
        records: u64,
        kept_len: u64,
        damage: Option<CorruptFile>,
    },
}

impl Replayed {
    fn prefix(records: u64, damage: Option<CorruptFile>) -> Replayed {
        Replayed::Usable {
            records,
            kept_len: FILE_HEADER_LEN as u64 + records * RECORD_LEN as u64,
            damage,
        }
    }
}

/// Checks the file header, then replays the records into `chain`. The
/// error is I/O; the result says how much of the file is good.
///
/// A damaged record in the middle, or an intact one that is not a valid
/// header in its place, ends the replay there: the records before it are
/// valid and stay (on mainnet they are worth tens of megabytes of
/// downloads), the rest is dropped.
fn replay(
    file: File,
    len: u64,
    chain: &mut HeaderChain,
    source: &Arc<FileSource>,
) -> io::Result<Replayed> {
    let mut reader = BufReader::with_capacity(1 << 20, file);
    if len < FILE_HEADER_LEN as u64 {
        return Ok(Replayed::Unusable(CorruptFile::TooShort { len }));
    }
    let mut head = [0u8; FILE_HEADER_LEN];
    reader.read_exact(&mut head)?;
    if let Err(corrupt) = check_file_header(&head, chain.network()) {
        return Ok(Replayed::Unusable(corrupt));
    }
    let body = len - FILE_HEADER_LEN as u64;
    let whole = body / RECORD_LEN as u64;
    chain.reserve_exact(usize::try_from(whole).unwrap_or(0));
    // Replayed records are read back from the file, not kept.
    chain.headers_written(chain.len(), source.clone());
    let mut batch: Vec<(Header, BlockHash)> = Vec::with_capacity(REPLAY_BATCH);
    let mut batch_start = 0u64;
    let mut first_bad: Option<u64> = None;
    let mut chunk = vec![0u8; REPLAY_BATCH * RECORD_LEN];
    let mut decoded = Vec::with_capacity(REPLAY_BATCH);
    let mut i = 0u64;
    while i < whole {
        let n = (whole - i).min(REPLAY_BATCH as u64) as usize;
        reader.read_exact(&mut chunk[..n * RECORD_LEN])?;
        decode_records(&chunk[..n * RECORD_LEN], &mut decoded);
        for header in decoded.drain(..) {
            match (header, first_bad) {
                (Some(_), Some(bad)) => {
                    // A good record after a bad one: not a torn append, but
                    // the records before the bad one are still good.
                    if let Err((record, e)) = flush(chain, &mut batch, batch_start) {
                        return Ok(Replayed::prefix(record, Some(e)));
                    }
                    return Ok(Replayed::prefix(
                        bad,
                        Some(CorruptFile::RecordChecksum { record: bad }),
                    ));
                }
                (Some(h), None) => {
                    batch.push(h);
                    if batch.len() == REPLAY_BATCH {
                        if let Err((record, e)) = flush(chain, &mut batch, batch_start) {
                            return Ok(Replayed::prefix(record, Some(e)));
                        }
                        batch_start = i + 1;
                    }
                }
                (None, None) => first_bad = Some(i),
                (None, Some(_)) => {}
            }
            i += 1;
        }
    }
    if let Err((record, e)) = flush(chain, &mut batch, batch_start) {
        return Ok(Replayed::prefix(record, Some(e)));
    }
    Ok(Replayed::prefix(first_bad.unwrap_or(whole), None))
}

/// Decodes whole records into `out` (one entry per record, `None` where
/// the checksum fails). Hashing is most of a load's work and each record
/// stands alone, so a long run is split over the machine's cores.
fn decode_records(records: &[u8], out: &mut Vec<Option<(Header, BlockHash)>>) {
    let count = records.len() / RECORD_LEN;
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(MAX_DECODE_THREADS);
    let decode = |part: &[u8]| -> Vec<Option<(Header, BlockHash)>> {
        part.chunks_exact(RECORD_LEN)
            .map(|r| r.try_into().ok().and_then(decode_record))
            .collect()
    };
    if threads < 2 || count < 2 * MIN_RECORDS_PER_THREAD {
        out.extend(decode(records));
        return;
    }
    let per_thread = count.div_ceil(threads) * RECORD_LEN;
    std::thread::scope(|scope| {
        let parts: Vec<_> = records
            .chunks(per_thread)
            .map(|part| scope.spawn(move || decode(part)))
            .collect();
        for part in parts {
            match part.join() {
                Ok(decoded) => out.extend(decoded),
                // Decoding cannot panic; should it, the records count as
                // damaged rather than bring the node down.
                Err(_) => out.extend(std::iter::repeat_n(None, per_thread / RECORD_LEN)),
            }
        }
    });
    out.truncate(count);
}

/// Adds a batch of stored headers (with the block hashes their checksums
/// were checked against, so each is hashed once), trusted as the module
/// docs say. On failure the headers before the bad one are in the chain,
/// and the error names the bad record's index.
fn flush(
    chain: &mut HeaderChain,
    batch: &mut Vec<(Header, BlockHash)>,
    start: u64,
) -> Result<(), (u64, CorruptFile)> {
    if batch.is_empty() {
        return Ok(());
    }
    // Added one batch at a time, so on failure find the exact record by
    // adding the batch header by header (only on the error path).
    if chain
        .accept_stored(batch.iter().map(|(h, hash)| (h, *hash)))
        .is_err()
    {
        for (offset, (header, hash)) in batch.iter().enumerate() {
            if let Err(error) = chain.accept_stored(std::iter::once((header, *hash))) {
                let record = start + offset as u64;
                return Err((record, CorruptFile::InvalidHeader { record, error }));
            }
        }
    }
    batch.clear();
    Ok(())
}

fn check_file_header(head: &[u8; FILE_HEADER_LEN], network: Network) -> Result<(), CorruptFile> {
    check_file_header_of(head, &FILE_MAGIC, FORMAT_VERSION, network).map_err(|fault| match fault {
        FileHeaderFault::BadMagic => CorruptFile::BadMagic,
        FileHeaderFault::Checksum => CorruptFile::HeaderChecksum,
        FileHeaderFault::UnsupportedVersion(found) => CorruptFile::UnsupportedVersion { found },
        FileHeaderFault::WrongNetwork(found) => CorruptFile::WrongNetwork {
            found,
            expected: network,
        },
    })
}

/// What is wrong with a file header, in words no one file's: each file
/// turns it into its own error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FileHeaderFault {
    /// Not the expected magic: another kind of file.
    BadMagic,
    /// The file header's checksum does not match.
    Checksum,
    /// The version found, which is not the one expected.
    UnsupportedVersion(u32),
    /// The chain magic found, which is not the network's.
    WrongNetwork(Magic),
}

/// Checks a file header written by [`file_header_of`] with `magic` and
/// `version` for `network`. The checksum is checked before the version and
/// the chain magic, so a flipped bit there reads as damage, not as another
/// version or network.
pub(super) fn check_file_header_of(
    head: &[u8; FILE_HEADER_LEN],
    magic: &[u8; 8],
    version: u32,
    network: Network,
) -> Result<(), FileHeaderFault> {
    if head[..8] != magic[..] {
        return Err(FileHeaderFault::BadMagic);
    }
    let sum = sha256d::Hash::hash(&head[..16]);
    if head[16..] != sum.as_byte_array()[..4] {
        return Err(FileHeaderFault::Checksum);
    }
    let mut found = [0u8; 4];
    found.copy_from_slice(&head[8..12]);
    let found = u32::from_le_bytes(found);
    if found != version {
        return Err(FileHeaderFault::UnsupportedVersion(found));
    }
    let mut chain_magic = [0u8; 4];
    chain_magic.copy_from_slice(&head[12..16]);
    if chain_magic != network.magic().to_bytes() {
        return Err(FileHeaderFault::WrongNetwork(Magic::from_bytes(
            chain_magic,
        )));
    }
    Ok(())
}

/// The header in a record and its block hash, if the checksum holds.
fn decode_record(record: &[u8; RECORD_LEN]) -> Option<(Header, BlockHash)> {
    // The block hash is the SHA-256d of the 80 bytes as they are: no need
    // to encode the decoded header again to hash it.
    let hash = BlockHash::from_raw_hash(sha256d::Hash::hash(&record[..80]));
    if record[80..] != hash.as_byte_array()[..4] {
        return None;
    }
    let header: Header = encode::deserialize(&record[..80]).ok()?;
    Some((header, hash))
}

/// `header` as a record.
fn encode_record(header: &Header, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&encode::serialize(header));
    let hash = sha256d::Hash::hash(&out[start..]);
    out.extend_from_slice(&hash.as_byte_array()[..4]);
}

impl ChainStore {
    /// Appends the headers `chain` accepted since the last append (or the
    /// load), durably: one write, one `fdatasync`. Returns how many. The
    /// chain then reads them back from the file instead of keeping them.
    ///
    /// On failure the file is cut back to its previous length, so it never
    /// keeps half an append; if even that fails the store refuses further
    /// appends ([`StoreError::Poisoned`]) until the chain is reloaded.
    pub fn append(&mut self, chain: &mut HeaderChain) -> Result<usize, StoreError> {
        if self.poisoned {
            return Err(StoreError::Poisoned {
                path: self.path.clone(),
            });
        }
        // A chain truncated below what the file holds (and not the file
        // with it) may have accepted other headers in the dropped slots:
        // cut the file back first so the records stay the chain's prefix.
        let unchanged = chain.unchanged_since(self.seen_truncation);
        if unchanged < self.persisted {
            self.cut(unchanged)?;
        }
        self.seen_truncation = chain.truncation_seq();
        let foreign = StoreError::ForeignChain {
            chain: chain.len(),
            persisted: self.persisted,
        };
        if chain.len() < self.persisted {
            return Err(foreign);
        }
        let count = chain.len() - self.persisted;
        if count == 0 {
            return Ok(0);
        }
        let Some(headers) = chain.unwritten_headers(self.persisted) else {
            return Err(foreign);
        };
        let mut buf = Vec::with_capacity(count * RECORD_LEN);
        for header in headers {
            encode_record(header, &mut buf);
        }
        let result = self
            .file
            .write_all(&buf)
            .and_then(|()| self.file.sync_data());
        if let Err(source) = result {
            if self.file.set_len(self.len).is_err() {
                self.poisoned = true;
            }
            return Err(StoreError::Io {
                path: self.path.clone(),
                action: "append to it",
                source,
            });
        }
        self.len += buf.len() as u64;
        self.persisted = chain.len();
        chain.headers_written(self.persisted, self.source.clone());
        Ok(count)
    }

    /// Makes the file hold exactly the first `entries` chain entries, as
    /// [`HeaderChain::len`] and [`HeaderChain::truncate`] count them
    /// (genesis included, so clamped to at least 1; genesis is never a
    /// record): drops the records after them and syncs. Meant to follow
    /// [`HeaderChain::truncate`] with the same length. If the file holds no
    /// more than that already, nothing changes.
    ///
    /// Crash safety: the cut lands on a record boundary, so whatever a
    /// crash leaves is a file [`HeaderChain::load_or_new`] reads like any
    /// other: the old length (the truncation is lost and the dropped,
    /// still valid, headers come back), the new one, or, on a file system
    /// that shrinks in steps, something between ending in a partial record,
    /// which load cuts off as a torn write.
    ///
    /// On failure the file's length is unknown and the store refuses
    /// appends ([`StoreError::Poisoned`]) until a truncation succeeds or the
    /// chain is reloaded. A successful truncation also clears an earlier
    /// failed append's poisoning: the file then has a known length again.
    pub fn truncate(&mut self, entries: usize) -> Result<(), StoreError> {
        let entries = entries.max(1);
        if entries >= self.persisted && !self.poisoned {
            return Ok(());
        }
        self.cut(entries.min(self.persisted))
    }

    /// Cuts the file to its first `entries` entries (≤ `persisted`).
    fn cut(&mut self, entries: usize) -> Result<(), StoreError> {
        let records = entries.saturating_sub(1) as u64;
        let len = FILE_HEADER_LEN as u64 + records * RECORD_LEN as u64;
        // `sync_all`, not `sync_data`: the new length is the whole point.
        let result = self.file.set_len(len).and_then(|()| self.file.sync_all());
        if let Err(source) = result {
            self.poisoned = true;
            return Err(StoreError::Io {
                path: self.path.clone(),
                action: "truncate it",
                source,
            });
        }
        self.len = len;
        self.persisted = entries.max(1);
        self.poisoned = false;
        Ok(())
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes of good data in the file.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the file holds no records yet.
    pub fn is_empty(&self) -> bool {
        self.len <= FILE_HEADER_LEN as u64
    }
}
