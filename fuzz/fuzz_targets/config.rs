//! The config file and its resolution: `config::resolve` (what
//! `config::load` does after reading the file), i.e. `config::file::parse`,
//! layering under the command line, the privacy check, `Settings::merge`
//! and `resolve::validate`.
//!
//! Input: the TOML text. Checked: no panic; a config that resolves prints
//! (`print-config`, `Config::to_toml`) as TOML that resolves again to the
//! same settings. The comments of the printed form are left out of the
//! comparison: they say where each value came from (the fuzzed file, or a
//! default), which the round trip changes on purpose, and a datadir given
//! in a file also moves the Tor cache under it.

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use nightjar::config::{CliOptions, Environment, resolve};
use nightjar::paths::UserDirs;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let cli = CliOptions::default();
    let env = environment();
    let file = Path::new("/fuzz/nightjar.toml");
    let Ok(config) = resolve(&cli, Some((file, text)), &env) else {
        return;
    };
    let printed = config.to_toml();
    match resolve(&cli, Some((file, &printed)), &env) {
        Ok(again) => assert_eq!(
            values_only(&again.to_toml()),
            values_only(&printed),
            "printed config resolves differently"
        ),
        Err(e) => panic!("printed config does not resolve: {e}"),
    }
});

/// No environment variables and made-up home directories: nothing is read
/// from the real environment, so every run resolves alike.
fn environment() -> Environment {
    Environment::new(
        |_| None,
        Some(UserDirs {
            data: "/fuzz/home/data".into(),
            cache: "/fuzz/home/cache".into(),
            config: "/fuzz/home/config".into(),
        }),
    )
}

/// The printed settings without their comments.
fn values_only(printed: &str) -> String {
    printed
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .map(|l| l.split_once("  #").map_or(l, |(value, _)| value).trim_end())
        .collect::<Vec<_>>()
        .join("\n")
}
