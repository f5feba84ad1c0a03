//! What the configuration tests share: a fixed environment (no systemd, a
//! made-up home), command-line parsing, and a source-free view of the
//! effective settings.

// Shared test code: each binary uses part of it.
#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};

use nightjar::config::{self, Cli, ConfigError, Environment};
use nightjar::paths::UserDirs;

/// A file shipped in the repository's `config/` directory.
pub fn repo_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("config")
        .join(name)
}

/// No environment variables, and XDG directories under `/home/u`.
pub fn env() -> Environment {
    Environment::new(
        |_| None,
        Some(UserDirs {
            data: "/home/u/.local/share/nightjar".into(),
            cache: "/home/u/.cache/nightjar".into(),
            config: "/home/u/.config/nightjar".into(),
        }),
    )
}

/// `nightjar ARGS…` parsed.
pub fn cli(args: &[&str]) -> Cli {
    let mut all = vec!["nightjar"];
    all.extend_from_slice(args);
    <Cli as clap::Parser>::try_parse_from(all).unwrap()
}

/// The effective values, one `key = value` line each, sources dropped:
/// two configurations with equal lines behave the same.
pub fn values(c: &config::Config) -> Vec<String> {
    c.to_toml()
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split("  #").next().unwrap().to_owned())
        .collect()
}

/// Where the tests pretend their config file is.
pub const FILE: &str = "/etc/nightjar/nightjar.toml";

/// `nightjar ARGS…` with `text` as the config file [`FILE`].
pub fn resolve(args: &[&str], text: &str) -> Result<config::Config, ConfigError> {
    config::resolve(&cli(args).options, Some((Path::new(FILE), text)), &env())
}

/// The error [`resolve`] gives, as the user reads it; panics if it accepts.
pub fn error(args: &[&str], text: &str) -> String {
    match resolve(args, text) {
        Ok(c) => panic!("accepted:\n{}", c.to_toml()),
        Err(e) => e.to_string(),
    }
}
