//! `nightjar print-config`: the effective settings as a TOML file that
//! nightjar reads back to the same settings, every key annotated with where
//! its value came from.

use std::collections::BTreeMap;
use std::fmt::Display;
use std::fmt::Write as _;
use std::path::PathBuf;

use super::Config;
use super::layer::{Source, Sourced};
use super::resolve::{toml_list, toml_str};
use super::types::Birthday;

/// Text made safe for a TOML comment, which may hold no control character
/// but tab: a path with a carriage return or a newline in it would otherwise
/// end the comment early, and the printed file would not read back.
fn comment(text: impl Display) -> String {
    text.to_string()
        .chars()
        .map(|c| {
            if c.is_control() && c != '\t' {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// One `key = value  # source` line.
fn line<T>(out: &mut String, key: &str, s: &Sourced<T>, value: &str) {
    let _ = writeln!(out, "{key} = {value}  # {}", comment(s.source.describe()));
}

fn display<T: Display>(out: &mut String, key: &str, s: &Sourced<T>) {
    line(out, key, s, &s.value.to_string());
}

fn string<T: Display>(out: &mut String, key: &str, s: &Sourced<T>) {
    line(out, key, s, &toml_str(&s.value.to_string()));
}

fn list<T: Display>(out: &mut String, key: &str, s: &Sourced<Vec<T>>) {
    line(out, key, s, &toml_list(&s.value));
}

/// `transport_binary` as an inline table, and what the default means.
fn transport_binaries(out: &mut String, s: &Sourced<BTreeMap<String, PathBuf>>) {
    // Transport names are bare keys (checked when read).
    let pairs: Vec<String> = s
        .value
        .iter()
        .map(|(transport, binary)| format!("{transport} = {}", toml_str(&binary.to_string_lossy())))
        .collect();
    if pairs.is_empty() {
        // The default is a rule, not a value: say it.
        let _ = writeln!(
            out,
            "transport_binary = {{}}  # {}: obfs4 runs obfs4proxy, found on PATH",
            comment(s.source.describe())
        );
    } else {
        line(
            out,
            "transport_binary",
            s,
            &format!("{{ {} }}", pairs.join(", ")),
        );
    }
}

/// A key that may be unset: its line when set (`toml` spells the value),
/// else a comment saying what `unset` means (TOML has no null: an unset
/// key can only be shown as a comment).
fn optional<T>(
    out: &mut String,
    key: &str,
    s: &Sourced<Option<T>>,
    toml: impl Fn(&T) -> String,
    unset: &str,
) {
    match &s.value {
        Some(value) => line(out, key, s, &toml(value)),
        None => {
            let _ = writeln!(
                out,
                "# {key}: not set, {unset}  # {}",
                comment(s.source.describe())
            );
        }
    }
}

/// Render the configuration (see the module documentation).
pub(super) fn render(config: &Config) -> String {
    let s = &config.settings;
    let dirs = &config.dirs;
    let mut out = String::new();
    let _ = writeln!(out, "# nightjar: effective configuration");
    let _ = writeln!(out, "# config file: {}", comment(config.describe_file()));
    let _ = writeln!(
        out,
        "# chain directory: {}",
        comment(dirs.paths.chain_dir.display())
    );
    let _ = writeln!(
        out,
        "# Tor state: {}",
        comment(dirs.paths.tor_state.display())
    );
    let _ = writeln!(
        out,
        "# Tor cache: {}",
        comment(dirs.paths.tor_cache.display())
    );
    out.push('\n');

    string(&mut out, "chain", &s.chain);
    // The directory actually used; when nightjar chose it, say how.
    let datadir = toml_str(&dirs.datadir.to_string_lossy());
    match s.datadir.source {
        Source::Default => {
            let _ = writeln!(
                out,
                "datadir = {datadir}  # default ({})",
                comment(dirs.origin.describe())
            );
        }
        _ => line(&mut out, "datadir", &s.datadir, &datadir),
    }
    list(&mut out, "onlynet", &s.onlynet);
    list(&mut out, "connect", &s.connect);
    list(&mut out, "addnode", &s.addnode);
    display(&mut out, "listen", &s.listen);
    display(&mut out, "listenonion", &s.listenonion);
    list(&mut out, "bind", &s.bind);
    display(&mut out, "maxconnections", &s.maxconnections);
    display(&mut out, "v2transport", &s.v2transport);
    display(&mut out, "dnsseed", &s.dnsseed);
    display(&mut out, "fixedseeds", &s.fixedseeds);
    list(&mut out, "rpcbind", &s.rpcbind);
    display(&mut out, "rpcport", &s.rpcport);
    let cookie = toml_str(&s.rpccookiefile.value.to_string_lossy());
    let _ = writeln!(
        out,
        "rpccookiefile = {cookie}  # {} ({})",
        comment(s.rpccookiefile.source.describe()),
        comment(s.cookie_path(&dirs.paths.chain_dir).display())
    );
    display(&mut out, "privacy", &s.privacy);
    display(&mut out, "v1fallback", &s.v1fallback);
    display(&mut out, "maxoutbound", &s.maxoutbound);
    display(&mut out, "feeler_interval_secs", &s.feeler_interval_secs);
    if s.block_filters_implied() {
        let _ = writeln!(
            out,
            "block_filters = true  # {} (on for the wallets)",
            comment(s.block_filters.source.describe())
        );
    } else {
        display(&mut out, "block_filters", &s.block_filters);
    }
    display(&mut out, "decoy_blocks", &s.decoy_blocks);
    display(&mut out, "electrum", &s.electrum);
    string(&mut out, "electrum_bind", &s.electrum_bind);
    optional(
        &mut out,
        "electrum_tls_bind",
        &s.electrum_tls_bind,
        |addr| toml_str(&addr.to_string()),
        "no TLS listener",
    );

    out.push_str("\n[tor]\n");
    optional(
        &mut out,
        "network_file",
        &s.tor_network_file,
        |path| toml_str(&path.to_string_lossy()),
        "the public Tor network",
    );
    display(&mut out, "enabled", &s.tor_enabled);
    string(&mut out, "isolation", &s.tor_isolation);
    display(&mut out, "memory_limit_mib", &s.tor_memory_limit_mib);
    list(&mut out, "bridges", &s.tor_bridges);
    transport_binaries(&mut out, &s.tor_transport_binary);

    out.push_str("\n[log]\n");
    list(&mut out, "debug", &s.log_debug);
    display(&mut out, "sensitive", &s.log_sensitive);

    // Descriptors hold public keys only (private ones are refused), so
    // they are printed as given, each followed by the keychains it gave.
    for (entry, spec) in s.wallets.value.iter().zip(&config.wallets) {
        let _ = writeln!(out, "\n[wallet.{}]", entry.name);
        let source = comment(s.wallets.source.describe());
        let _ = writeln!(
            out,
            "descriptors = {}  # {source}",
            toml_list(&entry.descriptors)
        );
        for chain in &spec.keychains {
            let _ = writeln!(out, "#   keychain: {}", comment(chain));
        }
        let birthday = match entry.birthday {
            Birthday::Height(h) => h.to_string(),
            Birthday::Date { .. } => toml_str(&entry.birthday.to_string()),
        };
        let _ = writeln!(out, "birthday = {birthday}  # {source}");
        match entry.gap_limit {
            Some(n) => {
                let _ = writeln!(out, "gap_limit = {n}  # {source}");
            }
            None => {
                let _ = writeln!(out, "gap_limit = {}  # default", spec.gap_limit);
            }
        }
    }
    out
}
