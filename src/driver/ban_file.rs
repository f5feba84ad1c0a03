//! The user's bans on disk (`banlist.json`, Core's name): loaded once at
//! start, saved atomically whenever they change.

use std::path::{Path, PathBuf};

use crate::atomic_file::write_atomically;
use crate::engine::banlist::BanList;

/// The file's name in the chain directory.
pub const BANLIST_FILE: &str = "banlist.json";

/// Where the bans live for a chain directory.
pub fn banlist_path(chain_dir: &Path) -> PathBuf {
    chain_dir.join(BANLIST_FILE)
}

/// Load the bans. A missing file is no bans; a damaged one is reported,
/// moved aside (so the user can look at it and nothing is overwritten) and
/// the node starts with no bans.
pub fn load(path: &Path) -> BanList {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return BanList::new(),
        Err(e) => {
            tracing::error!(file = %path.display(), "cannot read the ban list: {e}; starting with no bans");
            return BanList::new();
        }
    };
    match BanList::from_bytes(&bytes) {
        Ok(list) => {
            tracing::info!(bans = list.iter().count(), file = %path.display(), "ban list loaded");
            list
        }
        Err(e) => {
            let aside = path.with_extension("json.corrupt");
            let moved = std::fs::rename(path, &aside).is_ok();
            tracing::error!(
                file = %path.display(),
                moved_to = %if moved { aside.display().to_string() } else { "-".into() },
                "the ban list is damaged ({e}); starting with no bans"
            );
            BanList::new()
        }
    }
}

/// Save `bytes` (a serialized ban list) on a blocking thread.
pub async fn save(path: PathBuf, bytes: Vec<u8>) {
    let shown = path.display().to_string();
    match tokio::task::spawn_blocking(move || write_atomically(&path, &bytes)).await {
        Ok(Ok(())) => tracing::debug!(file = %shown, "ban list saved"),
        Ok(Err(e)) => tracing::warn!(file = %shown, "could not save the ban list: {e}"),
        Err(e) => tracing::warn!(file = %shown, "ban list save task failed: {e}"),
    }
}
