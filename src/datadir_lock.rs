//! One node per data directory: an exclusive lock on `<chain dir>/.lock`,
//! held for the daemon's life, as Core locks its datadir.
//!
//! Two daemons on one directory would both append to `headers.dat`, both
//! rewrite `peers.dat` through the same temporary name, and both broadcast
//! the same queue: every file's crash-safety argument assumes one writer.
//! The lock is the kernel's (`flock` through `File::try_lock`), so it goes
//! away with the process however it ends: a `kill -9` leaves no stale lock.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

/// The lock file's name in the chain directory (Core's name).
pub const LOCK_FILE: &str = ".lock";

/// The held lock; dropping it releases the directory.
#[derive(Debug)]
pub struct DataDirLock {
    _file: File,
    path: PathBuf,
}

/// Why the directory could not be locked.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds it.
    #[error(
        "cannot lock the data directory {}: another nightjar is probably running on it \
         (stop it, or give this one another --datadir)",
        .0.display()
    )]
    Held(PathBuf),
    /// The lock file could not be opened or locked.
    #[error("cannot lock the data directory ({}): {source}{}", .path.display(), writable_hint(.source))]
    Io {
        /// The lock file.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
}

/// Advice when the directory cannot be written at all.
fn writable_hint(e: &std::io::Error) -> &'static str {
    match e.kind() {
        std::io::ErrorKind::ReadOnlyFilesystem | std::io::ErrorKind::PermissionDenied => {
            "; nightjar needs a data directory it can write to (choose one with --datadir)"
        }
        _ => "",
    }
}

impl DataDirLock {
    /// Lock `chain_dir` (which must exist), or say who holds it.
    pub fn acquire(chain_dir: &Path) -> Result<DataDirLock, LockError> {
        let path = chain_dir.join(LOCK_FILE);
        let io = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => Ok(DataDirLock { _file: file, path }),
            Err(TryLockError::WouldBlock) => Err(LockError::Held(chain_dir.to_path_buf())),
            Err(TryLockError::Error(e)) => Err(io(e)),
        }
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_is_refused_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let first = DataDirLock::acquire(dir.path()).unwrap();
        let second = DataDirLock::acquire(dir.path()).unwrap_err();
        assert!(matches!(second, LockError::Held(_)), "{second}");
        assert!(second.to_string().contains("another nightjar"));
        drop(first);
        let again = DataDirLock::acquire(dir.path()).unwrap();
        assert_eq!(again.path(), dir.path().join(LOCK_FILE));
    }
}
