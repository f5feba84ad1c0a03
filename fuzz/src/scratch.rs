//! One temporary directory per fuzzing process, for targets that must go
//! through a file (the state-file loaders take a path).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use tempfile::TempDir;

/// The process's scratch directory, created on first use. It lives until
/// the process exits; libFuzzer runs millions of inputs in one process, so
/// one directory per input would cost a `mkdir` and `rmdir` each.
pub fn dir() -> &'static Path {
    static DIR: OnceLock<TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        tempfile::Builder::new()
            .prefix("nightjar-fuzz-")
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot create a scratch directory: {e}"))
    })
    .path()
}

/// Empties the scratch directory (loaders may set corrupt files aside next
/// to the original), so each input starts from the same state.
pub fn clear() {
    let Ok(entries) = std::fs::read_dir(dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let path: PathBuf = entry.path();
        let _ = if path.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
    }
}

/// Writes `bytes` to `name` in a freshly emptied scratch directory and
/// returns the file's path.
pub fn file_with(name: &str, bytes: &[u8]) -> PathBuf {
    clear();
    let path = dir().join(name);
    if let Err(e) = std::fs::write(&path, bytes) {
        panic!("cannot write {}: {e}", path.display());
    }
    path
}
