//! Log output: `tracing` with Arti's level discipline.
//!
//! error = the user must act; warn = something abnormal, naming who
//! misbehaved; info = rare and meaningful (bootstrap done, peers connected);
//! debug and below for developers. `RUST_LOG` overrides the default filter.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// What is shown when `RUST_LOG` is not set: our info, everyone else's warnings.
pub const DEFAULT_FILTER: &str = "warn,nightjar=info,nightjar_tor=info";

/// Install the global subscriber, writing to stderr.
pub fn init() {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    // journald adds its own timestamps; don't print a second one there.
    let under_journald = std::env::var_os("JOURNAL_STREAM").is_some();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only for a person at a terminal: logs piped to a
        // file, journald or a test must stay plain text.
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false);
    let result = if under_journald {
        builder.without_time().try_init()
    } else {
        builder.try_init()
    };
    // A subscriber already installed (tests) is fine: keep it.
    drop(result);
}
