//! The address manager's state file: versioned, checksummed, written
//! atomically, and never trusted when damaged.
//!
//! # Format (version 1)
//!
//! ```text
//! header   magic "NJADDRMN" (8) | version u32 | chain magic (4) | payload length u64
//! payload  key (16) | last_good u64 | entry count (CompactSize) | entries…
//! entry    addr (BIP155 network id + CompactSize length + bytes) | port u16
//!          | services u64 | source group (6) | last_seen u64 | last_try u64
//!          | last_count_attempt u64 | last_success u64 | attempts u32
//!          | placement: 0, n (1–8), n × new slot u16  |  1, tried slot u16
//! trailer  SHA-256d of header and payload (32)
//! ```
//!
//! Integers are little-endian, encoded with `bitcoin::consensus`. Entries are
//! written in the manager's internal order and every slot is stored, so a
//! restored manager is the same manager: same tables, same picks for the
//! same RNG seed. On load every placement is checked against the key (an
//! entry must sit exactly where the key puts it), so even a file with a
//! valid checksum cannot smuggle in an inconsistent table.
//!
//! The chain's network magic is in the header, so a testnet file is never
//! loaded on mainnet (Core does the same with `peers.dat`).

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use crate::wire::AddrV2;
use crate::wire::{Magic, ServiceFlags};
use bitcoin::consensus::encode::{self, Decodable, Encodable, VarInt};
use bitcoin::hashes::{Hash, sha256d};
use rand::CryptoRng;

use super::entry::{Entry, NewRefs, Placement};
use super::key::{ADDRMAN_KEY_LEN, AddrManKey, TableKind};
use super::params::{
    BUCKET_SIZE, MAX_ENTRIES, NEW_BUCKETS_PER_ADDRESS, NEW_SLOT_COUNT, TRIED_SLOT_COUNT,
};
use super::{AddrMan, TRIED, dialable_port};
use crate::atomic_file::{self, AtomicFileError};
use crate::netaddr::{NET_GROUP_PREFIX_LEN, NetAddr, NetGroup};

/// First bytes of every address manager file.
pub const FILE_MAGIC: [u8; 8] = *b"NJADDRMN";

/// The format this code writes and reads. Bump it on any layout change.
pub const FORMAT_VERSION: u32 = 1;

/// Header: magic, version, chain magic, payload length.
const HEADER_LEN: usize = 8 + 4 + 4 + 8;

/// Trailer: a full SHA-256d of everything before it. A random corruption
/// cannot pass it; it is not a MAC (whoever can write our data directory
/// can do worse than forge this file).
const CHECKSUM_LEN: usize = 32;

/// Largest file we read: comfortably above what a full manager writes
/// (81 920 entries of at most 104 bytes, ≈ 8.5 MB), so a huge file is
/// rejected before it is read into memory.
pub const MAX_FILE_LEN: u64 = 16 * 1024 * 1024;

/// Placement tag of a new-table entry.
const TAG_NEW: u8 = 0;
/// Placement tag of a tried-table entry.
const TAG_TRIED: u8 = 1;

/// Why bytes are not a usable address manager state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The file ends early: an interrupted write by a non-atomic tool, a
    /// full disk, or a copy that was cut short.
    #[error("truncated: {len} bytes, at least {needed} expected")]
    Truncated {
        /// Bytes present.
        len: u64,
        /// Bytes the header promises (or a header needs).
        needed: u64,
    },
    /// The bytes are damaged or not ours.
    #[error("corrupt: {0}")]
    Corrupt(CorruptReason),
    /// A format from a newer (or unknown) nightjar. Keep the file for that
    /// version; this one starts afresh.
    #[error("format version {found} is not supported (this nightjar reads version {supported})")]
    UnsupportedVersion {
        /// The file's version.
        found: u32,
        /// The version we read.
        supported: u32,
    },
    /// The file belongs to another chain (e.g. testnet4 on mainnet): a
    /// data-directory mix-up.
    #[error("written for the chain with magic {found}, not for {expected}")]
    WrongNetwork {
        /// The file's network magic.
        found: Magic,
        /// The chain we run.
        expected: bitcoin::Network,
    },
}

/// What exactly is wrong with a corrupt file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CorruptReason {
    /// It does not start with [`FILE_MAGIC`]: not an address manager file.
    #[error("not an address manager file (bad magic)")]
    BadMagic,
    /// The checksum does not match: bytes changed after writing.
    #[error("checksum mismatch (the file changed after it was written)")]
    ChecksumMismatch,
    /// Larger than [`MAX_FILE_LEN`], or bytes after the checksum.
    #[error("{len} bytes where {expected} were expected")]
    WrongLength {
        /// Bytes present.
        len: u64,
        /// Bytes the header promises (or the cap).
        expected: u64,
    },
    /// The checksum matched but the contents do not make sense; a bug in
    /// the writer or a deliberate edit.
    #[error("malformed contents: {0}")]
    Malformed(String),
}

/// Why the state file could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// There is no file: a first start.
    #[error("no address book at {} yet", path.display())]
    Missing {
        /// Where we looked.
        path: PathBuf,
    },
    /// The file exists but cannot be read (permissions, I/O error). Fix the
    /// cause; the file is left in place.
    #[error("cannot read {}: {source}; check its permissions and the disk", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// The file was read but is unusable; [`load_or_recover`] sets it
    /// aside and starts an empty book.
    #[error("the address book {} is unusable: {source}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        #[source]
        source: DecodeError,
    },
}

impl LoadError {
    /// The decoding problem, if the file was read but unusable.
    pub fn decode_error(&self) -> Option<&DecodeError> {
        match self {
            LoadError::Invalid { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// What [`load_or_recover`] had to do instead of loading.
#[derive(Debug)]
#[non_exhaustive]
pub enum Recovery {
    /// No file yet; a fresh manager was made.
    Missing,
    /// The file was unusable and now sits at `moved_to`; a fresh manager
    /// was made.
    SetAside {
        /// What was wrong with it.
        error: LoadError,
        /// Where the bad file went.
        moved_to: PathBuf,
    },
    /// The file was unusable and could not be moved aside either; a fresh
    /// manager was made, and saving it will overwrite the bad file.
    SetAsideFailed {
        /// What was wrong with it.
        error: LoadError,
        /// Why it could not be moved.
        move_error: AtomicFileError,
    },
    /// The file could not be read at all; it was left in place and a fresh
    /// manager was made. Saving will probably fail too until the cause is fixed.
    Unreadable {
        /// The read error.
        error: LoadError,
    },
}

/// A manager ready to use, and what happened on the way.
#[derive(Debug)]
pub struct Startup {
    /// The loaded or fresh manager.
    pub addrman: AddrMan,
    /// `None` if the file loaded; otherwise why the manager is fresh.
    pub recovery: Option<Recovery>,
}

/// Loads the state file at `path`, or starts a fresh manager (with a new
/// key from `rng`) when there is none or it is unusable. An unusable file is
/// reported (`tracing` warning and [`Startup::recovery`]) and moved aside
/// as `<name>.<reason>-<n>`, never trusted and never silently overwritten.
/// A fresh manager is empty: the caller adds fixed seeds.
pub fn load_or_recover<R: CryptoRng + ?Sized>(
    path: &Path,
    network: bitcoin::Network,
    rng: &mut R,
) -> Startup {
    let error = match AddrMan::load_file(path, network) {
        Ok(addrman) => {
            return Startup {
                addrman,
                recovery: None,
            };
        }
        Err(e) => e,
    };
    let fresh = AddrMan::new(network, AddrManKey::generate(rng));
    let recovery = match &error {
        LoadError::Missing { .. } => Recovery::Missing,
        LoadError::Io { .. } => {
            tracing::warn!(%error, "starting with an empty address manager");
            Recovery::Unreadable { error }
        }
        LoadError::Invalid { source, .. } => {
            let label = match source {
                DecodeError::Truncated { .. } => "truncated",
                DecodeError::Corrupt(_) => "corrupt",
                DecodeError::UnsupportedVersion { .. } => "unsupported",
                DecodeError::WrongNetwork { .. } => "wrong-network",
            };
            match atomic_file::move_aside(path, label) {
                Ok(moved_to) => {
                    tracing::warn!(%error, moved_to = %moved_to.display(), "the address book was unusable and was moved aside; starting with an empty one (addresses are learned again from seeds and peers)");
                    Recovery::SetAside { error, moved_to }
                }
                Err(move_error) => {
                    tracing::warn!(%error, %move_error, "the address book was unusable and could not be moved aside; starting with an empty one and leaving the file as it is");
                    Recovery::SetAsideFailed { error, move_error }
                }
            }
        }
    };
    Startup {
        addrman: fresh,
        recovery: Some(recovery),
    }
}

impl AddrMan {
    /// Writes the state to `path` atomically (see [`crate::atomic_file`]).
    pub fn save_file(&self, path: &Path) -> Result<(), AtomicFileError> {
        atomic_file::write_atomically(path, &self.to_bytes())
    }

    /// Reads the state file at `path` for `network`.
    pub fn load_file(path: &Path, network: bitcoin::Network) -> Result<AddrMan, LoadError> {
        let io_err = |source: io::Error| {
            if source.kind() == io::ErrorKind::NotFound {
                LoadError::Missing {
                    path: path.to_path_buf(),
                }
            } else {
                LoadError::Io {
                    path: path.to_path_buf(),
                    source,
                }
            }
        };
        let invalid = |source| LoadError::Invalid {
            path: path.to_path_buf(),
            source,
        };
        let file = File::open(path).map_err(io_err)?;
        let len = file.metadata().map_err(io_err)?.len();
        if len > MAX_FILE_LEN {
            return Err(invalid(DecodeError::Corrupt(CorruptReason::WrongLength {
                len,
                expected: MAX_FILE_LEN,
            })));
        }
        let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
        // `take` guards against a file that grows while we read it.
        file.take(MAX_FILE_LEN + 1)
            .read_to_end(&mut bytes)
            .map_err(io_err)?;
        AddrMan::from_bytes(&bytes, network).map_err(invalid)
    }

    /// The state as file bytes (format in the module docs).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut payload = Vec::with_capacity(64 + self.random.len() * 96);
        put(&mut payload, self.key.secret_bytes());
        put(&mut payload, &self.last_good);
        put(&mut payload, &VarInt(self.random.len() as u64));
        for e in self.random.iter().filter_map(|id| self.entry(*id)) {
            put_entry(&mut payload, e);
        }
        let mut out = Vec::with_capacity(HEADER_LEN + payload.len() + CHECKSUM_LEN);
        out.extend_from_slice(&FILE_MAGIC);
        put(&mut out, &FORMAT_VERSION);
        out.extend_from_slice(&self.network.magic().to_bytes());
        put(&mut out, &(payload.len() as u64));
        out.extend_from_slice(&payload);
        let checksum = sha256d::Hash::hash(&out);
        out.extend_from_slice(checksum.as_byte_array());
        out
    }

    /// The manager from file bytes, for `network`'s chain.
    pub fn from_bytes(bytes: &[u8], network: bitcoin::Network) -> Result<AddrMan, DecodeError> {
        let payload = check_envelope(bytes, network)?;
        decode_payload(payload, network)
            .map_err(|m| DecodeError::Corrupt(CorruptReason::Malformed(m)))
    }
}

/// Encodes `v` onto `buf`. Writing to a `Vec` cannot fail, so the
/// `io::Result` carries nothing.
fn put<T: Encodable + ?Sized>(buf: &mut Vec<u8>, v: &T) {
    let _ = v.consensus_encode(buf);
}

fn put_entry(buf: &mut Vec<u8>, e: &Entry) {
    put(buf, &e.addr.to_addrv2());
    put(buf, &e.addr.port);
    put(buf, &e.services);
    buf.extend_from_slice(&e.source.to_bytes());
    put(buf, &e.last_seen);
    put(buf, &e.last_try);
    put(buf, &e.last_count_attempt);
    put(buf, &e.last_success);
    put(buf, &e.attempts);
    match &e.placement {
        Placement::New(refs) => {
            put(buf, &TAG_NEW);
            put(buf, &(refs.count() as u8));
            for slot in refs.slots() {
                put(buf, slot);
            }
        }
        Placement::Tried(slot) => {
            put(buf, &TAG_TRIED);
            put(buf, slot);
        }
    }
}

/// Checks magic, version, chain, length and checksum, in that order (so the
/// most specific diagnosis wins), and returns the payload.
fn check_envelope(bytes: &[u8], network: bitcoin::Network) -> Result<&[u8], DecodeError> {
    let len = bytes.len() as u64;
    let magic_part = &bytes[..bytes.len().min(FILE_MAGIC.len())];
    if magic_part != &FILE_MAGIC[..magic_part.len()] {
        return Err(DecodeError::Corrupt(CorruptReason::BadMagic));
    }
    let Some(header) = bytes.get(..HEADER_LEN) else {
        return Err(DecodeError::Truncated {
            len,
            needed: HEADER_LEN as u64,
        });
    };
    let mut rest = &header[FILE_MAGIC.len()..];
    let version = u32::consensus_decode(&mut rest).map_err(malformed_header)?;
    if version != FORMAT_VERSION {
        return Err(DecodeError::UnsupportedVersion {
            found: version,
            supported: FORMAT_VERSION,
        });
    }
    let chain = <[u8; 4]>::consensus_decode(&mut rest).map_err(malformed_header)?;
    if chain != network.magic().to_bytes() {
        return Err(DecodeError::WrongNetwork {
            found: Magic::from_bytes(chain),
            expected: network,
        });
    }
    let payload_len = u64::consensus_decode(&mut rest).map_err(malformed_header)?;
    let expected = payload_len
        .checked_add((HEADER_LEN + CHECKSUM_LEN) as u64)
        .filter(|n| *n <= MAX_FILE_LEN)
        .ok_or(DecodeError::Corrupt(CorruptReason::WrongLength {
            len,
            expected: MAX_FILE_LEN,
        }))?;
    if len < expected {
        return Err(DecodeError::Truncated {
            len,
            needed: expected,
        });
    }
    if len > expected {
        return Err(DecodeError::Corrupt(CorruptReason::WrongLength {
            len,
            expected,
        }));
    }
    // `len == expected` and both fit in memory, so these casts are exact.
    let body_end = bytes.len() - CHECKSUM_LEN;
    let (body, checksum) = bytes.split_at(body_end);
    if sha256d::Hash::hash(body).as_byte_array() != checksum {
        return Err(DecodeError::Corrupt(CorruptReason::ChecksumMismatch));
    }
    Ok(&body[HEADER_LEN..])
}

fn malformed_header(e: encode::Error) -> DecodeError {
    DecodeError::Corrupt(CorruptReason::Malformed(format!("header: {e}")))
}

/// Rebuilds the manager from a payload whose checksum matched, checking
/// every invariant the tables rely on.
fn decode_payload(payload: &[u8], network: bitcoin::Network) -> Result<AddrMan, String> {
    let mut r = payload;
    let key_bytes =
        <[u8; ADDRMAN_KEY_LEN]>::consensus_decode(&mut r).map_err(|e| format!("key: {e}"))?;
    let last_good = u64::consensus_decode(&mut r).map_err(|e| format!("last_good: {e}"))?;
    let count = VarInt::consensus_decode(&mut r)
        .map_err(|e| format!("entry count: {e}"))?
        .0;
    if count > MAX_ENTRIES as u64 {
        return Err(format!(
            "{count} entries, more than the tables hold ({MAX_ENTRIES})"
        ));
    }
    let mut man = AddrMan::new(network, AddrManKey::from_bytes(key_bytes));
    man.last_good = last_good;
    // Bounded by MAX_ENTRIES above, so reserving cannot be abused.
    let n = count as usize;
    man.entries.reserve(n);
    man.random.reserve(n);
    man.by_addr.reserve(n);
    for i in 0..count {
        let e = decode_entry(&mut r).map_err(|m| format!("entry {i}: {m}"))?;
        place_entry(&mut man, e).map_err(|m| format!("entry {i}: {m}"))?;
    }
    if !r.is_empty() {
        return Err(format!("{} unexpected bytes after the last entry", r.len()));
    }
    Ok(man)
}

/// Decodes one entry's fields (not yet checked against the tables).
fn decode_entry(r: &mut &[u8]) -> Result<Entry, String> {
    let field = |name: &'static str| move |e: encode::Error| format!("{name}: {e}");
    let addr2 = AddrV2::consensus_decode(r).map_err(field("address"))?;
    let port = u16::consensus_decode(r).map_err(field("port"))?;
    let addr = NetAddr::from_addrv2(&addr2, port).map_err(|e| format!("address: {e}"))?;
    if !addr.is_routable() || !dialable_port(&addr) {
        return Err(format!("{addr} is not an address we store"));
    }
    let services = ServiceFlags::consensus_decode(r).map_err(field("services"))?;
    let group_bytes =
        <[u8; 1 + NET_GROUP_PREFIX_LEN]>::consensus_decode(r).map_err(field("source group"))?;
    let source = NetGroup::from_bytes(group_bytes).ok_or("source group: unknown class")?;
    let last_seen = u64::consensus_decode(r).map_err(field("last_seen"))?;
    let last_try = u64::consensus_decode(r).map_err(field("last_try"))?;
    let last_count_attempt = u64::consensus_decode(r).map_err(field("last_count_attempt"))?;
    let last_success = u64::consensus_decode(r).map_err(field("last_success"))?;
    let attempts = u32::consensus_decode(r).map_err(field("attempts"))?;
    let placement = match u8::consensus_decode(r).map_err(field("placement"))? {
        TAG_NEW => {
            let n = u8::consensus_decode(r).map_err(field("reference count"))?;
            if n == 0 || usize::from(n) > NEW_BUCKETS_PER_ADDRESS {
                return Err(format!(
                    "reference count {n} outside 1..={NEW_BUCKETS_PER_ADDRESS}"
                ));
            }
            let mut refs = NewRefs::default();
            for _ in 0..n {
                refs.push(u16::consensus_decode(r).map_err(field("new slot"))?);
            }
            Placement::New(refs)
        }
        TAG_TRIED => Placement::Tried(u16::consensus_decode(r).map_err(field("tried slot"))?),
        tag => return Err(format!("unknown placement tag {tag}")),
    };
    Ok(Entry {
        addr,
        services,
        source,
        last_seen,
        last_try,
        last_count_attempt,
        last_success,
        attempts,
        placement,
        random_pos: 0,
    })
}

/// Puts a decoded entry back where it was, after checking that the key
/// puts it there and that nobody else claimed the slot.
fn place_entry(man: &mut AddrMan, mut e: Entry) -> Result<(), String> {
    if man.by_addr.contains_key(&e.addr) {
        return Err(format!("{} appears twice", e.addr));
    }
    let addr = e.addr;
    let net = addr.network();
    let placement = std::mem::replace(&mut e.placement, Placement::New(NewRefs::default()));
    match &placement {
        Placement::Tried(slot) => {
            let slot = usize::from(*slot);
            if slot >= TRIED_SLOT_COUNT || man.key.tried_slot(&addr) != slot {
                return Err(format!(
                    "{addr} is not where the key puts it in the tried table"
                ));
            }
            if man.tried_table.get(slot).is_some() {
                return Err(format!("tried slot {slot} is claimed twice"));
            }
        }
        Placement::New(refs) => {
            for (i, slot) in refs.slots().iter().enumerate() {
                let slot = usize::from(*slot);
                if slot >= NEW_SLOT_COUNT
                    || man.key.slot(TableKind::New, slot / BUCKET_SIZE, &addr) != slot
                {
                    return Err(format!(
                        "{addr} is not where the key puts it in the new table"
                    ));
                }
                if man.new_table.get(slot).is_some() || refs.slots()[..i].contains(&(slot as u16)) {
                    return Err(format!("new slot {slot} is claimed twice"));
                }
            }
        }
    }
    let id = man.create(e);
    match placement {
        Placement::Tried(slot) => {
            man.tried_table.put(usize::from(slot), id, net);
            man.counts[TRIED][net.index()] += 1;
            if let Some(entry) = man.entry_mut(id) {
                entry.placement = Placement::Tried(slot);
            }
        }
        Placement::New(refs) => {
            for slot in refs.slots() {
                man.put_new(id, usize::from(*slot));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_file_len_covers_a_full_manager() {
        // Largest entry: 34 (I2P/onion addr) + 2 + 8 + 6 + 32 + 4 + 1 + 1 + 16.
        let max_entry = 34 + 2 + 8 + 6 + 32 + 4 + 1 + 1 + 2 * NEW_BUCKETS_PER_ADDRESS;
        assert_eq!(max_entry, 104);
        let full = HEADER_LEN + ADDRMAN_KEY_LEN + 8 + 5 + MAX_ENTRIES * max_entry + CHECKSUM_LEN;
        assert!((full as u64) < MAX_FILE_LEN);
    }
}
