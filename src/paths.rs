//! Where nightjar keeps its files.
//!
//! The data directory holds one subdirectory per chain (as Bitcoin Core does
//! for its test chains), so a regtest experiment never touches mainnet state.
//! Inside it, Arti gets `tor/state`; its cache (safe to delete) goes to the
//! platform cache directory when nightjar chose the location, or `tor/cache`
//! inside an explicit `--datadir`.

use std::path::{Path, PathBuf};

use bitcoin::Network;

/// The subdirectory name of each chain, as Core names them ("" for mainnet).
pub fn chain_subdir(network: Network) -> &'static str {
    match network {
        Network::Bitcoin => "",
        Network::Testnet => "testnet3",
        Network::Testnet4 => "testnet4",
        Network::Signet => "signet",
        Network::Regtest => "regtest",
    }
}

/// The directories one run of the daemon uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataPaths {
    /// Per-chain data directory (address book, headers, cookie).
    pub chain_dir: PathBuf,
    /// Arti's persistent state (guards, onion service keys).
    pub tor_state: PathBuf,
    /// Arti's directory cache.
    pub tor_cache: PathBuf,
}

impl DataPaths {
    /// Paths under an explicit data directory: everything stays inside it.
    pub fn under(datadir: &Path, network: Network) -> Self {
        let chain_dir = datadir.join(chain_subdir(network));
        DataPaths {
            tor_state: chain_dir.join("tor").join("state"),
            tor_cache: chain_dir.join("tor").join("cache"),
            chain_dir,
        }
    }

    /// Paths in the platform's per-user locations (XDG on Linux), or `None`
    /// when there is no home directory to put them in.
    pub fn platform_default(network: Network) -> Option<Self> {
        let dirs = directories::ProjectDirs::from("", "", "nightjar")?;
        let chain_dir = dirs.data_local_dir().join(chain_subdir(network));
        let cache = dirs.cache_dir().join(chain_subdir(network));
        Some(DataPaths {
            tor_state: chain_dir.join("tor").join("state"),
            tor_cache: cache.join("tor"),
            chain_dir,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chains_never_share_a_directory() {
        let base = Path::new("/var/lib/nightjar");
        let main = DataPaths::under(base, Network::Bitcoin);
        let reg = DataPaths::under(base, Network::Regtest);
        assert_eq!(main.chain_dir, base);
        assert_eq!(reg.chain_dir, base.join("regtest"));
        assert!(reg.tor_state.starts_with(&reg.chain_dir));
        assert_ne!(main.tor_state, reg.tor_state);
    }
}
