//! Crash-safe file replacement, and setting bad files aside.
//!
//! [`write_atomically`] leaves either the old file or the complete new one
//! at `path`, whatever moment the process or the machine dies at:
//!
//! 1. write the bytes to a temporary file in the same directory (a rename
//!    is only atomic within one file system);
//! 2. `fsync` the temporary file, so its *contents* are on disk before its
//!    name is;
//! 3. rename it over `path` (atomic on POSIX);
//! 4. `fsync` the directory, so the rename itself survives a power cut.
//!
//! One writer per path is assumed (the daemon holds a lock on its data
//! directory, see [`crate::datadir_lock`]): the temporary name is fixed, so
//! a stale one from a crash is simply overwritten.

use std::ffi::OsString;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

/// Suffix of the temporary file next to the target.
const TEMP_SUFFIX: &str = ".tmp";

/// How many set-aside copies of one file may pile up before we stop
/// looking for a free name (a node that keeps corrupting its state file has
/// a problem a thousand copies will not explain better).
pub const MAX_SET_ASIDE: u32 = 1000;

/// The step of a file operation that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileOp {
    /// Creating the temporary file.
    CreateTemp,
    /// Writing the temporary file.
    Write,
    /// Flushing the temporary file to disk.
    SyncFile,
    /// Renaming the temporary file over the target.
    Rename,
    /// Flushing the directory entry to disk.
    SyncDir,
    /// Looking for a free set-aside name.
    FindAsideName,
    /// Renaming a bad file aside.
    MoveAside,
}

impl fmt::Display for FileOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FileOp::CreateTemp => "create a temporary file for",
            FileOp::Write => "write the temporary file for",
            FileOp::SyncFile => "flush to disk the temporary file for",
            FileOp::Rename => "rename the temporary file onto",
            FileOp::SyncDir => "flush to disk the directory of",
            FileOp::FindAsideName => "find a free name to set aside",
            FileOp::MoveAside => "set aside",
        })
    }
}

/// A failed file operation: which step, on which path, and why.
#[derive(Debug, thiserror::Error)]
#[error(
    "could not {op} {}: {source}; check that the directory exists and is writable, and that the disk is not full",
    path.display()
)]
pub struct AtomicFileError {
    /// The step that failed.
    pub op: FileOp,
    /// The file being written or set aside.
    pub path: PathBuf,
    /// The operating system's error.
    #[source]
    pub source: io::Error,
}

/// Replaces `path` with `bytes` atomically and durably (see the module docs).
/// On error the old file, if any, is untouched.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), AtomicFileError> {
    write_atomically_from(path, &mut &bytes[..])
}

/// [`write_atomically`] with the contents streamed from `source`, for
/// files too large to hold in memory at once.
pub fn write_atomically_from(
    path: &Path,
    source: &mut impl io::Read,
) -> Result<(), AtomicFileError> {
    write_with(path, source, false)
}

/// [`write_atomically`] for secrets (a private key): the file is readable
/// by its owner only (mode 0600) from its first byte, since the temporary
/// file is created anew with that mode.
pub fn write_atomically_private(path: &Path, bytes: &[u8]) -> Result<(), AtomicFileError> {
    write_with(path, &mut &bytes[..], true)
}

fn write_with(
    path: &Path,
    source: &mut impl io::Read,
    private: bool,
) -> Result<(), AtomicFileError> {
    use std::os::unix::fs::OpenOptionsExt;

    let err = |op| {
        move |source| AtomicFileError {
            op,
            path: path.to_path_buf(),
            source,
        }
    };
    let temp = sibling(path, TEMP_SUFFIX);
    let mut options = OpenOptions::new();
    options.write(true);
    if private {
        // A stale temporary file would keep its old mode through a
        // truncating open: remove it so the new one gets 0600.
        match fs::remove_file(&temp) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(err(FileOp::CreateTemp)(e)),
        }
        options.create_new(true).mode(0o600);
    } else {
        options.create(true).truncate(true);
    }
    let result = (|| {
        let mut file = options.open(&temp).map_err(err(FileOp::CreateTemp))?;
        io::copy(source, &mut file).map_err(err(FileOp::Write))?;
        file.sync_all().map_err(err(FileOp::SyncFile))?;
        drop(file);
        fs::rename(&temp, path).map_err(err(FileOp::Rename))
    })();
    if result.is_err() {
        // Best effort: a leftover temporary file is harmless but untidy.
        let _ = fs::remove_file(&temp);
    }
    result?;
    sync_dir(path).map_err(err(FileOp::SyncDir))
}

/// Renames a bad file to `<name>.<label>-<n>` (the first free `n` from 1),
/// never overwriting an earlier one, and returns the new path. `label`
/// says why, e.g. `corrupt`.
pub fn move_aside(path: &Path, label: &str) -> Result<PathBuf, AtomicFileError> {
    let err = |op| {
        move |source| AtomicFileError {
            op,
            path: path.to_path_buf(),
            source,
        }
    };
    for n in 1..=MAX_SET_ASIDE {
        let candidate = sibling(path, &format!(".{label}-{n}"));
        if candidate.try_exists().map_err(err(FileOp::FindAsideName))? {
            continue;
        }
        fs::rename(path, &candidate).map_err(err(FileOp::MoveAside))?;
        sync_dir(path).map_err(err(FileOp::SyncDir))?;
        return Ok(candidate);
    }
    Err(err(FileOp::FindAsideName)(io::Error::new(
        io::ErrorKind::AlreadyExists,
        format!("{MAX_SET_ASIDE} set-aside copies exist already; delete old ones"),
    )))
}

/// `path` with `suffix` appended to its file name.
fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name: OsString = path.file_name().map(OsString::from).unwrap_or_default();
    name.push(suffix);
    path.with_file_name(name)
}

/// Flushes the directory holding `path`, so a rename in it is durable.
#[cfg(unix)]
fn sync_dir(path: &Path) -> io::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    File::open(dir)?.sync_all()
}

/// Directories cannot be opened for syncing here; the rename is as durable
/// as the platform makes it.
#[cfg(not(unix))]
fn sync_dir(_path: &Path) -> io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_and_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.dat");
        write_atomically(&path, b"one").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"one");
        write_atomically(&path, b"two, longer").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two, longer");
        assert!(!dir.path().join("state.dat.tmp").exists());
    }

    #[test]
    fn overwrites_a_stale_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.dat");
        fs::write(dir.path().join("state.dat.tmp"), b"junk from a crash").unwrap();
        write_atomically(&path, b"fresh").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"fresh");
    }

    #[test]
    fn failure_names_the_step_and_keeps_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing-dir").join("state.dat");
        let e = write_atomically(&path, b"x").unwrap_err();
        assert_eq!(e.op, FileOp::CreateTemp);
        assert!(e.to_string().contains("missing-dir"));
    }

    #[test]
    fn move_aside_never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("peers.dat");
        fs::write(&path, b"first").unwrap();
        let a = move_aside(&path, "corrupt").unwrap();
        assert_eq!(a, dir.path().join("peers.dat.corrupt-1"));
        fs::write(&path, b"second").unwrap();
        let b = move_aside(&path, "corrupt").unwrap();
        assert_eq!(b, dir.path().join("peers.dat.corrupt-2"));
        assert_eq!(fs::read(&a).unwrap(), b"first");
        assert_eq!(fs::read(&b).unwrap(), b"second");
        assert!(!path.exists());
    }

    #[test]
    fn move_aside_of_a_missing_file_fails_cleanly() {
        let dir = tempfile::tempdir().unwrap();
        let e = move_aside(&dir.path().join("nope"), "corrupt").unwrap_err();
        assert_eq!(e.op, FileOp::MoveAside);
    }
}
