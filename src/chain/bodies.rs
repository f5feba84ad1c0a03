//! Where the chain's full 80-byte headers live: in memory until the store
//! has written them, then only in the header file, read back on demand.
//!
//! Validation needs only a few fields of each header (time and nBits, kept
//! in columns by [`super::HeaderChain`]); the full header is wanted for
//! RPC answers, for serving `getheaders`, and to confirm a hash index hit.
//! Keeping a million of them in memory would cost 80 MB that the file
//! already holds.

use std::fmt;
use std::io;
use std::sync::Arc;

use bitcoin::block::Header;

/// Reads headers the store has written. Entry ids are the chain's (0 is
/// genesis, never asked for: it is not in the file).
pub trait HeaderSource: fmt::Debug + Send + Sync {
    /// Fills `out` with the headers of entries `first..first + out.len()`.
    fn read(&self, first: u32, out: &mut [Header]) -> io::Result<()>;
}

/// The full headers of a chain's entries.
#[derive(Debug, Clone)]
pub(crate) struct Bodies {
    genesis: Header,
    /// Entries `1..on_disk` are read from `source`; entries from `on_disk`
    /// on are in `recent`. Without a source, everything is in `recent`.
    on_disk: usize,
    recent: Vec<Header>,
    source: Option<Arc<dyn HeaderSource>>,
}

impl Bodies {
    /// Only genesis.
    pub(crate) fn new(genesis: Header) -> Bodies {
        Bodies {
            genesis,
            on_disk: 1,
            recent: Vec::new(),
            source: None,
        }
    }

    /// The header of entry `id`, if there is one and it can be read.
    pub(crate) fn get(&self, id: u32) -> Option<Header> {
        let id = id as usize;
        if id == 0 {
            return Some(self.genesis);
        }
        if id >= self.on_disk {
            return self.recent.get(id - self.on_disk).copied();
        }
        let mut out = [self.genesis];
        self.read(id, &mut out).then_some(out[0])
    }

    /// Appends the headers of entries `first..first + count` to `out`, in
    /// one read where they are on disk; false (and `out` unchanged) if any
    /// is missing or unreadable.
    pub(crate) fn get_run(&self, first: usize, count: usize, out: &mut Vec<Header>) -> bool {
        let start = out.len();
        let end = first + count;
        if first == 0 && count > 0 {
            out.push(self.genesis);
        }
        // The part on disk (genesis aside), read in one go.
        let (disk_from, disk_to) = (first.max(1), end.min(self.on_disk));
        if disk_from < disk_to {
            let at = out.len();
            out.resize(at + (disk_to - disk_from), self.genesis);
            if !self.read(disk_from, &mut out[at..]) {
                out.truncate(start);
                return false;
            }
        }
        let mem_from = first.max(self.on_disk);
        if mem_from < end {
            let Some(part) = self.recent.get(mem_from - self.on_disk..end - self.on_disk) else {
                out.truncate(start);
                return false;
            };
            out.extend_from_slice(part);
        }
        true
    }

    fn read(&self, id: usize, out: &mut [Header]) -> bool {
        let (Some(source), Ok(id)) = (&self.source, u32::try_from(id)) else {
            return false;
        };
        // The source reports its own errors: a failed read here can only
        // become "not found" for the caller.
        source.read(id, out).is_ok()
    }

    /// Adds the header of the next entry.
    pub(crate) fn push(&mut self, header: Header) {
        self.recent.push(header);
    }

    /// Adds the next entry, whose header the source already holds (a load
    /// replaying the file): nothing to keep. False if the source cannot
    /// serve it (no source yet, or unwritten entries before it).
    pub(crate) fn push_on_disk(&mut self) -> bool {
        if self.source.is_none() || !self.recent.is_empty() {
            return false;
        }
        self.on_disk += 1;
        true
    }

    /// Keeps the first `len` entries. Entries cut below what is on disk
    /// are no longer read from it: the store rewrites those slots.
    pub(crate) fn truncate(&mut self, len: usize) {
        if len < self.on_disk {
            self.on_disk = len.max(1);
            self.recent.clear();
        } else {
            self.recent.truncate(len - self.on_disk);
        }
    }

    /// The headers held in memory from entry `from` on, if all of them are.
    pub(crate) fn in_memory_from(&self, from: usize) -> Option<&[Header]> {
        self.recent.get(from.checked_sub(self.on_disk)?..)
    }

    /// The store has written entries up to `written` and reads them with
    /// `source`: they leave memory.
    pub(crate) fn written(&mut self, written: usize, source: Arc<dyn HeaderSource>) {
        if written > self.on_disk {
            let drop = (written - self.on_disk).min(self.recent.len());
            self.recent.drain(..drop);
            self.on_disk += drop;
        }
        self.source = Some(source);
    }

    /// Headers held in memory.
    pub(crate) fn in_memory(&self) -> usize {
        self.recent.len()
    }
}
