//! Log output: `tracing` with Arti's level discipline.
//!
//! error = the user must act; warn = something abnormal, naming who
//! misbehaved; info = rare and meaningful (bootstrap done, peers connected);
//! debug and below for developers.
//!
//! What is shown is decided, in order of precedence:
//! 1. `RUST_LOG`, when it is set and parses (an `EnvFilter` directive list):
//!    the developer's override beats any configuration file;
//! 2. the configured debug categories (`[log] debug`, `--debug CATEGORY`),
//!    named like Bitcoin Core's `-debug`, added to [`DEFAULT_FILTER`]:
//!
//!    | category  | filter directives (all at `debug`) |
//!    |-----------|------------------------------------|
//!    | `net`     | `nightjar::engine`, `nightjar::peer`, `nightjar::transport`, `nightjar::driver` |
//!    | `tor`     | `nightjar_tor`, `arti_client`, `tor_` (every `tor_*` Arti crate: targets match by prefix) |
//!    | `rpc`     | `nightjar::rpc` |
//!    | `addrman` | `nightjar::addrman` |
//!    | `all`     | everything, every crate |
//!
//! 3. otherwise [`DEFAULT_FILTER`].
//!
//! Output goes to stderr. Under systemd (`JOURNAL_STREAM` set) lines carry
//! no timestamp and no colour: the journal stamps them itself.
//!
//! Peer addresses are logged wrapped in `safelog::sensitive(..)`, which
//! prints `[scrubbed]` unless the user asked for sensitive logging
//! (`[log] sensitive = true`, `--log-sensitive`); [`init`] then turns
//! Arti's redaction off for the life of the process.

use std::fmt;
use std::io::IsTerminal;
use std::str::FromStr;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// What is shown when neither `RUST_LOG` nor a debug category says otherwise:
/// our info, everyone else's warnings.
pub const DEFAULT_FILTER: &str = "warn,nightjar=info,nightjar_tor=info";

/// A group of log targets that can be turned up to `debug` together, named
/// like Bitcoin Core's `-debug` categories.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DebugCategory {
    /// Peer connections: the engine, peer tasks, transports, the driver.
    Net,
    /// The embedded Tor client (ours and Arti's crates).
    Tor,
    /// The JSON-RPC server.
    Rpc,
    /// The address manager.
    Addrman,
    /// Everything, in every crate.
    All,
}

impl DebugCategory {
    /// Every category, in the order `--help` lists them.
    pub const ALL: [DebugCategory; 5] = [
        DebugCategory::Net,
        DebugCategory::Tor,
        DebugCategory::Rpc,
        DebugCategory::Addrman,
        DebugCategory::All,
    ];

    /// The category's name in the config file and on the command line.
    pub const fn as_str(self) -> &'static str {
        match self {
            DebugCategory::Net => "net",
            DebugCategory::Tor => "tor",
            DebugCategory::Rpc => "rpc",
            DebugCategory::Addrman => "addrman",
            DebugCategory::All => "all",
        }
    }

    /// The `EnvFilter` directives the category adds.
    pub const fn directives(self) -> &'static [&'static str] {
        match self {
            DebugCategory::Net => &[
                "nightjar::engine=debug",
                "nightjar::peer=debug",
                "nightjar::transport=debug",
                "nightjar::driver=debug",
            ],
            // EnvFilter matches targets by prefix, so `tor_` covers every
            // Arti `tor_*` crate (tor_proto, tor_circmgr, tor_dirmgr, ...).
            DebugCategory::Tor => &["nightjar_tor=debug", "arti_client=debug", "tor_=debug"],
            DebugCategory::Rpc => &["nightjar::rpc=debug"],
            DebugCategory::Addrman => &["nightjar::addrman=debug"],
            DebugCategory::All => &["debug"],
        }
    }
}

impl fmt::Display for DebugCategory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A debug category name that is not one of ours.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown debug category {0:?}; use one of net, tor, rpc, addrman, all")]
pub struct UnknownCategoryError(pub String);

impl FromStr for DebugCategory {
    type Err = UnknownCategoryError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DebugCategory::ALL
            .into_iter()
            .find(|c| c.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownCategoryError(s.to_owned()))
    }
}

/// The user's log settings (the `[log]` table of the config file).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogSettings {
    /// Categories shown at `debug` (ignored when `RUST_LOG` is set).
    pub debug: Vec<DebugCategory>,
    /// Show peer addresses and other sensitive values instead of
    /// `[scrubbed]`.
    pub sensitive: bool,
}

impl LogSettings {
    /// The filter directives these settings ask for, before `RUST_LOG`.
    pub fn filter_directives(&self) -> String {
        if self.debug.contains(&DebugCategory::All) {
            // A bare level must stand alone: "warn,…,debug" would leave the
            // winner between the two bare levels to EnvFilter's ordering.
            return DebugCategory::All.directives().join(",");
        }
        let mut out = String::from(DEFAULT_FILTER);
        for category in &self.debug {
            for directive in category.directives() {
                out.push(',');
                out.push_str(directive);
            }
        }
        out
    }

    /// The filter to install: `rust_log` (the value of `RUST_LOG`) when it
    /// is set and parses, else the configured directives.
    pub fn filter(&self, rust_log: Option<&str>) -> EnvFilter {
        if let Some(Ok(filter)) = rust_log.map(EnvFilter::try_new) {
            return filter;
        }
        // Our own directives are constants and tested to parse; should one
        // ever fail, the bare default is a safer fallback than no logging.
        EnvFilter::try_new(self.filter_directives())
            .unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER))
    }
}

/// Keeps process-wide log state alive: hold it until the process exits.
///
/// With sensitive logging on, it owns the `safelog` guard that disables
/// redaction; dropping it turns redaction back on.
#[derive(Debug)]
#[must_use = "dropping the guard turns redaction back on"]
pub struct LogGuard {
    unredacted: Option<safelog::Guard>,
}

impl LogGuard {
    /// Whether sensitive values (peer addresses) are being shown.
    pub fn shows_sensitive(&self) -> bool {
        self.unredacted.is_some()
    }
}

/// Install the global subscriber, writing to stderr, and apply the
/// redaction setting. Keep the returned guard for the process's lifetime.
pub fn init(settings: &LogSettings) -> LogGuard {
    let rust_log = std::env::var("RUST_LOG").ok();
    let filter = settings.filter(rust_log.as_deref());
    // journald adds its own timestamps; don't print a second one there.
    let under_journald = std::env::var_os("JOURNAL_STREAM").is_some();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only for a person at a terminal: logs piped to a
        // file, journald or a test must stay plain text.
        .with_ansi(!under_journald && std::io::stderr().is_terminal())
        .with_target(false);
    // Arti's "obsolete" notice must reach the daemon whatever is logged.
    let watch = crate::tor_obsolete::ObsoleteWatch;
    let result = if under_journald {
        builder.without_time().finish().with(watch).try_init()
    } else {
        builder.finish().with(watch).try_init()
    };
    // A subscriber already installed (tests) is fine: keep it.
    drop(result);

    let unredacted = if settings.sensitive {
        match safelog::disable_safe_logging() {
            Ok(guard) => {
                // The user asked for it, so not a warning; but say it once,
                // so a log shared later shows why it names peers.
                tracing::info!("sensitive logging is on: peer addresses appear in the log");
                Some(guard)
            }
            Err(e) => {
                // Someone enforced safe logging; redaction stays on, which
                // is the safe way to fail.
                tracing::warn!("cannot turn off log redaction ({e}); peer addresses stay hidden");
                None
            }
        }
    } else {
        None
    };
    LogGuard { unredacted }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_category_directive_parses() {
        for c in DebugCategory::ALL {
            let settings = LogSettings {
                debug: vec![c],
                sensitive: false,
            };
            let text = settings.filter_directives();
            assert!(EnvFilter::try_new(&text).is_ok(), "{c}: {text}");
            for d in c.directives() {
                assert!(text.contains(d), "{c} lacks {d}: {text}");
            }
        }
    }

    #[test]
    fn categories_map_to_the_documented_targets() {
        let net = DebugCategory::Net.directives().join(",");
        for t in ["engine", "peer", "transport", "driver"] {
            assert!(net.contains(&format!("nightjar::{t}=debug")), "{net}");
        }
        let tor = DebugCategory::Tor.directives().join(",");
        assert!(tor.contains("arti_client=debug") && tor.contains("tor_=debug"));
        assert_eq!(DebugCategory::Rpc.directives(), ["nightjar::rpc=debug"]);
        assert_eq!(
            DebugCategory::Addrman.directives(),
            ["nightjar::addrman=debug"]
        );
    }

    #[test]
    fn no_categories_means_the_default_filter() {
        assert_eq!(LogSettings::default().filter_directives(), DEFAULT_FILTER);
    }

    #[test]
    fn all_is_debug_everywhere_and_nothing_else() {
        let s = LogSettings {
            debug: vec![DebugCategory::Net, DebugCategory::All],
            sensitive: false,
        };
        assert_eq!(s.filter_directives(), "debug");
    }

    #[test]
    fn rust_log_beats_the_configuration() {
        let s = LogSettings {
            debug: vec![DebugCategory::All],
            sensitive: false,
        };
        assert_eq!(s.filter(Some("error")).to_string(), "error");
        // An unparsable RUST_LOG falls back to the configuration.
        assert_eq!(s.filter(Some("=[bad")).to_string(), "debug");
        assert_eq!(s.filter(None).to_string(), "debug");
    }

    #[test]
    fn category_names_round_trip_and_typos_are_named() {
        for c in DebugCategory::ALL {
            assert_eq!(c.as_str().parse::<DebugCategory>(), Ok(c));
        }
        assert_eq!("NET".parse::<DebugCategory>(), Ok(DebugCategory::Net));
        let err = "mempool".parse::<DebugCategory>().unwrap_err().to_string();
        assert!(
            err.contains("\"mempool\"") && err.contains("addrman"),
            "{err}"
        );
    }
}
