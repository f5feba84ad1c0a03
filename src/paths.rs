//! Where nightjar keeps its files.
//!
//! The data directory holds one subdirectory per chain (as Bitcoin Core does
//! for its test chains), so a regtest experiment never touches mainnet state.
//! Inside it, Arti gets `tor/state`; its cache (safe to delete) goes to the
//! platform cache directory when nightjar chose the location, or `tor/cache`
//! inside an explicit `--datadir`.
//!
//! The data directory is, in order of precedence ([`resolve_data_paths`]):
//! 1. `--datadir` on the command line, then `datadir` in the config file;
//! 2. systemd's `$STATE_DIRECTORY` (a unit with `StateDirectory=`), with the
//!    Tor cache in `$CACHE_DIRECTORY` when the unit has `CacheDirectory=`;
//! 3. the per-user XDG directories (`~/.local/share/nightjar`, the Tor cache
//!    in `~/.cache/nightjar`).
//!
//! The config directory ([`config_dir`]) is `$CONFIGURATION_DIRECTORY` under
//! systemd, else `~/.config/nightjar`. Bitcoin Core reads none of systemd's
//! variables and the `directories` crate does not either, so nightjar reads
//! them itself; without them a hardened unit (`ProtectHome=yes`) would point
//! nightjar at an unreadable home directory.

use std::ffi::OsString;
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

/// `base`'s subdirectory for `network`: `base` itself for mainnet, without
/// the trailing slash `join("")` would add to every path shown to the user.
fn in_chain_subdir(base: &Path, network: Network) -> PathBuf {
    match chain_subdir(network) {
        "" => base.to_path_buf(),
        sub => base.join(sub),
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
        let chain_dir = in_chain_subdir(datadir, network);
        DataPaths {
            tor_state: chain_dir.join("tor").join("state"),
            tor_cache: chain_dir.join("tor").join("cache"),
            chain_dir,
        }
    }

    /// Paths in the platform's per-user locations (XDG on Linux), or `None`
    /// when there is no home directory to put them in.
    pub fn platform_default(network: Network) -> Option<Self> {
        let user = UserDirs::platform()?;
        Some(DataPaths::split(&user.data, &user.cache, network))
    }

    /// Chain data under `data`, the Tor cache under `cache`: the layout when
    /// nightjar chose the location and the platform has a cache directory.
    fn split(data: &Path, cache: &Path, network: Network) -> Self {
        let chain_dir = in_chain_subdir(data, network);
        DataPaths {
            tor_state: chain_dir.join("tor").join("state"),
            tor_cache: in_chain_subdir(cache, network).join("tor"),
            chain_dir,
        }
    }
}

/// A way to read environment variables. The daemon passes
/// `|name| std::env::var_os(name)`; tests pass a fixed map, so they never
/// mutate the process environment (which races with other test threads).
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<OsString>;

/// systemd's `StateDirectory=` path (persistent state).
pub const STATE_DIRECTORY: &str = "STATE_DIRECTORY";
/// systemd's `CacheDirectory=` path (deletable cache).
pub const CACHE_DIRECTORY: &str = "CACHE_DIRECTORY";
/// systemd's `ConfigurationDirectory=` path (usually under `/etc`).
pub const CONFIGURATION_DIRECTORY: &str = "CONFIGURATION_DIRECTORY";

/// The config file's name inside the config directory.
pub const CONFIG_FILE_NAME: &str = "nightjar.toml";

/// The per-user directories the platform offers (XDG on Linux).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserDirs {
    /// Data (`~/.local/share/nightjar`).
    pub data: PathBuf,
    /// Cache (`~/.cache/nightjar`).
    pub cache: PathBuf,
    /// Configuration (`~/.config/nightjar`).
    pub config: PathBuf,
}

impl UserDirs {
    /// The platform's directories for nightjar, or `None` without a home
    /// directory. Reads `$HOME` and `$XDG_*` through the `directories` crate.
    pub fn platform() -> Option<Self> {
        let dirs = directories::ProjectDirs::from("", "", "nightjar")?;
        Some(UserDirs {
            data: dirs.data_local_dir().to_path_buf(),
            cache: dirs.cache_dir().to_path_buf(),
            config: dirs.config_dir().to_path_buf(),
        })
    }
}

/// Where the data directory came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataDirOrigin {
    /// `--datadir` or the config file's `datadir`.
    Explicit,
    /// systemd's `$STATE_DIRECTORY`.
    Systemd,
    /// The per-user XDG data directory.
    User,
}

impl DataDirOrigin {
    /// A short description for `print-config` and the start-up log.
    pub fn describe(self) -> &'static str {
        match self {
            DataDirOrigin::Explicit => "given explicitly",
            DataDirOrigin::Systemd => "systemd $STATE_DIRECTORY",
            DataDirOrigin::User => "XDG data directory",
        }
    }
}

/// The data directory and the paths derived from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedDirs {
    /// The base data directory (chains live in subdirectories of it).
    pub datadir: PathBuf,
    /// Where `datadir` came from.
    pub origin: DataDirOrigin,
    /// The paths one run uses.
    pub paths: DataPaths,
}

/// The first absolute path in a systemd directory variable. systemd joins
/// several directories with `:` (a unit listing several `StateDirectory=`
/// entries); nightjar uses the first. A relative value is not something
/// systemd produces, so it is ignored rather than trusted.
fn systemd_dir(env: EnvLookup<'_>, name: &str) -> Option<PathBuf> {
    let value = env(name)?;
    let text = value.to_str()?;
    text.split(':').map(PathBuf::from).find(|p| p.is_absolute())
}

/// Resolve the data directory: `explicit` (`--datadir` or the config file's
/// `datadir`), else `$STATE_DIRECTORY`, else the user's XDG directories.
/// `None` when none applies (no home directory): the caller must ask for
/// `--datadir`.
///
/// The Tor cache goes to `$CACHE_DIRECTORY` whenever nightjar chose the
/// location and systemd provides one; an explicit datadir keeps everything
/// inside it, so removing it removes everything.
pub fn resolve_data_paths(
    network: Network,
    explicit: Option<&Path>,
    env: EnvLookup<'_>,
    user: Option<&UserDirs>,
) -> Option<ResolvedDirs> {
    if let Some(dir) = explicit {
        return Some(ResolvedDirs {
            datadir: dir.to_path_buf(),
            origin: DataDirOrigin::Explicit,
            paths: DataPaths::under(dir, network),
        });
    }
    let systemd_cache = systemd_dir(env, CACHE_DIRECTORY);
    if let Some(state) = systemd_dir(env, STATE_DIRECTORY) {
        let paths = match &systemd_cache {
            Some(cache) => DataPaths::split(&state, cache, network),
            // No CacheDirectory=: the home directory's cache may be
            // unreadable (ProtectHome=yes), so keep the cache with the state.
            None => DataPaths::under(&state, network),
        };
        return Some(ResolvedDirs {
            datadir: state,
            origin: DataDirOrigin::Systemd,
            paths,
        });
    }
    let user = user?;
    let cache = systemd_cache.as_deref().unwrap_or(&user.cache);
    Some(ResolvedDirs {
        datadir: user.data.clone(),
        origin: DataDirOrigin::User,
        paths: DataPaths::split(&user.data, cache, network),
    })
}

/// The directory the config file is looked for in: `$CONFIGURATION_DIRECTORY`
/// under systemd, else the user's XDG config directory.
pub fn config_dir(env: EnvLookup<'_>, user: Option<&UserDirs>) -> Option<PathBuf> {
    systemd_dir(env, CONFIGURATION_DIRECTORY).or_else(|| user.map(|u| u.config.clone()))
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

    fn user() -> UserDirs {
        UserDirs {
            data: PathBuf::from("/home/u/.local/share/nightjar"),
            cache: PathBuf::from("/home/u/.cache/nightjar"),
            config: PathBuf::from("/home/u/.config/nightjar"),
        }
    }

    fn env_of(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<OsString> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| {
            vars.iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| OsString::from(v))
        }
    }

    #[test]
    fn an_explicit_datadir_beats_systemd_and_keeps_everything_inside() {
        let env = env_of(&[
            (STATE_DIRECTORY, "/var/lib/nightjar"),
            (CACHE_DIRECTORY, "/var/cache/nightjar"),
        ]);
        let r = resolve_data_paths(
            Network::Signet,
            Some(Path::new("/srv/nj")),
            &env,
            Some(&user()),
        )
        .unwrap();
        assert_eq!(r.origin, DataDirOrigin::Explicit);
        assert_eq!(r.datadir, Path::new("/srv/nj"));
        assert_eq!(
            r.paths,
            DataPaths::under(Path::new("/srv/nj"), Network::Signet)
        );
        assert!(r.paths.tor_cache.starts_with("/srv/nj"));
    }

    #[test]
    fn systemd_state_and_cache_directories_are_used() {
        let env = env_of(&[
            (STATE_DIRECTORY, "/var/lib/nightjar:/var/lib/other"),
            (CACHE_DIRECTORY, "/var/cache/nightjar"),
        ]);
        let r = resolve_data_paths(Network::Regtest, None, &env, Some(&user())).unwrap();
        assert_eq!(r.origin, DataDirOrigin::Systemd);
        assert_eq!(r.datadir, Path::new("/var/lib/nightjar"));
        assert_eq!(r.paths.chain_dir, Path::new("/var/lib/nightjar/regtest"));
        assert_eq!(
            r.paths.tor_state,
            Path::new("/var/lib/nightjar/regtest/tor/state")
        );
        assert_eq!(
            r.paths.tor_cache,
            Path::new("/var/cache/nightjar/regtest/tor")
        );
    }

    #[test]
    fn systemd_state_without_a_cache_directory_keeps_the_cache_inside() {
        let env = env_of(&[(STATE_DIRECTORY, "/var/lib/nightjar")]);
        let r = resolve_data_paths(Network::Bitcoin, None, &env, Some(&user())).unwrap();
        assert_eq!(r.paths.tor_cache, Path::new("/var/lib/nightjar/tor/cache"));
        assert!(!r.paths.tor_cache.starts_with("/home"));
    }

    #[test]
    fn without_systemd_the_user_directories_are_used() {
        let env = env_of(&[(STATE_DIRECTORY, "relative/ignored")]);
        let r = resolve_data_paths(Network::Testnet4, None, &env, Some(&user())).unwrap();
        assert_eq!(r.origin, DataDirOrigin::User);
        assert_eq!(
            r.paths.chain_dir,
            Path::new("/home/u/.local/share/nightjar/testnet4")
        );
        assert_eq!(
            r.paths.tor_cache,
            Path::new("/home/u/.cache/nightjar/testnet4/tor")
        );
        assert_eq!(resolve_data_paths(Network::Bitcoin, None, &env, None), None);
    }

    #[test]
    fn the_config_directory_follows_systemd_then_xdg() {
        let systemd = env_of(&[(CONFIGURATION_DIRECTORY, "/etc/nightjar")]);
        assert_eq!(
            config_dir(&systemd, Some(&user())),
            Some(PathBuf::from("/etc/nightjar"))
        );
        let plain = env_of(&[]);
        assert_eq!(
            config_dir(&plain, Some(&user())),
            Some(PathBuf::from("/home/u/.config/nightjar"))
        );
        assert_eq!(config_dir(&plain, None), None);
    }
}
