//! The user's configuration: built-in defaults, then the config file, then
//! the command line, decided per key; the `--privacy` preset; and the
//! directories nightjar uses.
//!
//! - [`cli`]: the command line ([`Cli`]), shared by the binary and tests;
//! - [`file`]: the TOML config file, with Bitcoin Core's key names;
//! - [`layer`]: settings with their [`Source`], and the privacy preset;
//! - [`resolve`]: merging, the preset's contradiction check, validation,
//!   and the mapping to the daemon's types;
//! - [`types`]: the value types (chain, isolation, RPC and P2P bind
//!   addresses, wallet birthdays) and the resolved wallets and Electrum
//!   server settings.
//!
//! [`load`] does everything; it fails with one [`ConfigError`] whose text
//! names the key, the value, where it came from and what to do instead.
//!
//! The privacy preset fails closed: it fills in defaults (onion only, v2
//! only, a circuit per connection, no DNS seeds, no listening, loopback
//! RPC, redacted logs, Tor on), and any value the user set explicitly that
//! weakens one of them makes [`load`] refuse, listing every such option and
//! its source. A preset that silently lost to a stray config line would
//! promise privacy it does not deliver.

pub mod cli;
pub mod file;
pub mod layer;
mod print;
pub mod resolve;
pub mod types;

use std::ffi::OsString;
use std::path::{Path, PathBuf};

pub use cli::{Cli, CliOptions, Command};
pub use layer::{Layer, Source, Sourced};
pub use resolve::Settings;
pub use types::{BindSpec, Birthday, Chain, ElectrumSettings, Isolation, RpcBind, WalletSpec};

use crate::daemon::DaemonOptions;
use crate::logging::LogSettings;
use crate::paths::{self, ResolvedDirs, UserDirs};

/// Why the configuration cannot be used. Each variant displays as one line.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("config error: cannot read {}: {error}", file.display())]
    Read {
        /// The file.
        file: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// The file is not valid TOML.
    #[error("config error in {}, line {line}, column {column}: {message}", file.display())]
    Syntax {
        /// The file.
        file: PathBuf,
        /// Line, from 1.
        line: usize,
        /// Column in characters, from 1.
        column: usize,
        /// What the TOML parser says.
        message: String,
    },
    /// A key nightjar does not know.
    #[error("config error in {}: unknown key `{key}`; {hint}", file.display())]
    UnknownKey {
        /// The file.
        file: PathBuf,
        /// The key, qualified with its table (`tor.isolaton`).
        key: String,
        /// "did you mean ..." or the list of known keys.
        hint: String,
    },
    /// A value that cannot be used.
    #[error("config error{}: {setting}: {problem}", in_file(file.as_deref()))]
    Invalid {
        /// The file, when the value came from it.
        file: Option<PathBuf>,
        /// The setting as the user wrote it: `key = value` or `--flag value`.
        setting: String,
        /// What is wrong and what to do instead.
        problem: String,
    },
    /// Options contradicting the privacy preset.
    #[error(
        "config error{}: {privacy} contradicts: {}; the privacy preset fails closed: remove {} or turn privacy off",
        in_file(file.as_deref()),
        contradictions.join(", "),
        if contradictions.len() == 1 { "it" } else { "them" },
    )]
    Privacy {
        /// The config file, if one was read.
        file: Option<PathBuf>,
        /// How privacy was turned on: `--privacy` or `privacy = true (config file)`.
        privacy: String,
        /// Each contradicting option as `what (source)`.
        contradictions: Vec<String>,
    },
    /// Nowhere to keep data.
    #[error(
        "config error: no home directory and no systemd $STATE_DIRECTORY to keep data in; pass --datadir DIR or set datadir in the config file"
    )]
    NoDataDir,
}

/// ` in FILE` for messages about values from a file.
fn in_file(file: Option<&Path>) -> String {
    file.map(|f| format!(" in {}", f.display()))
        .unwrap_or_default()
}

/// Looks an environment variable up.
type VarLookup = dyn Fn(&str) -> Option<OsString>;

/// What the configuration may know of the process's surroundings: the
/// environment (systemd's directory variables) and the user's directories.
/// Tests build one by hand instead of touching the real environment.
pub struct Environment {
    var: Box<VarLookup>,
    user_dirs: Option<UserDirs>,
}

impl std::fmt::Debug for Environment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Environment")
            .field("user_dirs", &self.user_dirs)
            .finish_non_exhaustive()
    }
}

impl Environment {
    /// The real process environment and XDG directories.
    pub fn process() -> Self {
        Environment {
            var: Box::new(|name| std::env::var_os(name)),
            user_dirs: UserDirs::platform(),
        }
    }

    /// A made-up environment: `var` looks variables up, `user_dirs` stands
    /// for the XDG directories (`None`: no home directory).
    pub fn new(
        var: impl Fn(&str) -> Option<OsString> + 'static,
        user_dirs: Option<UserDirs>,
    ) -> Self {
        Environment {
            var: Box::new(var),
            user_dirs,
        }
    }

    /// The config file looked for when `--conf` is not given.
    pub fn default_config_file(&self) -> Option<PathBuf> {
        paths::config_dir(&*self.var, self.user_dirs.as_ref())
            .map(|d| d.join(paths::CONFIG_FILE_NAME))
    }
}

/// The resolved configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The config file that was read, if any.
    pub file: Option<PathBuf>,
    /// Every setting with its source.
    pub settings: Settings,
    /// The data directory and the paths under it.
    pub dirs: ResolvedDirs,
    /// Things that work but deserve a word; log them once logging is up.
    pub warnings: Vec<String>,
    /// The watch-only wallets (`[wallet.NAME]` tables), read for the
    /// chain, in name order.
    pub wallets: Vec<WalletSpec>,
}

impl Config {
    /// `FILE`, or `no file, defaults` (for `check-config` and the log).
    pub fn describe_file(&self) -> String {
        match &self.file {
            Some(f) => f.display().to_string(),
            None => "no file, defaults".to_owned(),
        }
    }

    /// What the daemon needs to start.
    pub fn daemon_options(&self) -> DaemonOptions {
        DaemonOptions {
            network: self.settings.network(),
            paths: self.dirs.paths.clone(),
            tor_network: self.settings.tor_network_file.value.clone(),
            tor_memory_limit: self.settings.tor_memory_limit_bytes(),
            tor_bridges: self.settings.tor_bridges.value.clone(),
            tor_transports: self.settings.tor_transports(),
            engine: self.settings.engine_config(),
            rpc: self.settings.rpc_settings(&self.dirs.paths),
            listen: self.settings.listen_addrs(),
            listen_onion: self.settings.listenonion.value && self.settings.tor_enabled.value,
            wallets: self.wallets.clone(),
            electrum: self.settings.electrum_settings(),
        }
    }

    /// The log settings, for [`crate::logging::init`].
    pub fn log_settings(&self) -> LogSettings {
        self.settings.log_settings()
    }

    /// The effective settings as TOML, each key annotated with its source
    /// (`nightjar print-config`).
    pub fn to_toml(&self) -> String {
        print::render(self)
    }
}

/// Read the config file (`--conf`, else the default one if present), merge
/// it with the command line and validate the result. Starts nothing.
pub fn load(cli: &CliOptions, env: &Environment) -> Result<Config, ConfigError> {
    let file = match &cli.conf {
        // An explicit file must exist: a typo in --conf must not silently
        // run the node with defaults.
        Some(path) => Some(read(path)?),
        None => match env.default_config_file() {
            Some(path) if path.exists() => Some(read(&path)?),
            _ => None,
        },
    };
    resolve(
        cli,
        file.as_ref().map(|(p, t)| (p.as_path(), t.as_str())),
        env,
    )
}

fn read(path: &Path) -> Result<(PathBuf, String), ConfigError> {
    std::fs::read_to_string(path)
        .map(|text| (path.to_path_buf(), text))
        .map_err(|error| ConfigError::Read {
            file: path.to_path_buf(),
            error,
        })
}

/// [`load`] with the file's path and text given instead of read.
pub fn resolve(
    cli: &CliOptions,
    file: Option<(&Path, &str)>,
    env: &Environment,
) -> Result<Config, ConfigError> {
    let file_layer = match file {
        Some((path, text)) => file::parse(text, path)?,
        None => Layer::default(),
    };
    let file_path = file.map(|(p, _)| p);
    let explicit = file_layer.overlaid_with(cli.layer());

    if let Some(privacy) = explicit.privacy.as_ref().filter(|p| p.value) {
        let contradictions = resolve::privacy_contradictions(&explicit);
        if !contradictions.is_empty() {
            return Err(ConfigError::Privacy {
                file: file_path.map(Path::to_path_buf),
                privacy: match privacy.source {
                    Source::CommandLine(flag) => flag.to_owned(),
                    other => format!("privacy = true ({other})"),
                },
                contradictions,
            });
        }
    }

    let settings = Settings::merge(explicit);
    let warnings = resolve::validate(&settings, file_path)?;
    let wallets = resolve::wallets(&settings, file_path)?;
    let dirs = paths::resolve_data_paths(
        settings.network(),
        settings.datadir.value.as_deref(),
        &*env.var,
        env.user_dirs.as_ref(),
    )
    .ok_or(ConfigError::NoDataDir)?;
    Ok(Config {
        file: file_path.map(Path::to_path_buf),
        settings,
        dirs,
        warnings,
        wallets,
    })
}
