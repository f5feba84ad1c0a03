#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The `--privacy` preset: what it sets, that `config/privacy.toml` is the
//! same thing spelled out, and that it fails closed: every explicit option
//! contradicting it is refused, named with its source.

use std::path::{Path, PathBuf};

use nightjar::config::{self, ConfigError, Isolation, Source};
use nightjar::engine::{IsolationScope, Reach};
use nightjar::netaddr::NetworkId;

#[path = "support/config_env.rs"]
mod config_env;

use config_env::{cli, env, repo_file, values};

const ONION: &str = "2gzyxa5ihm7nsggfxnu52rck2vv4rvmdlkiu3zzui5du4xyclen53wid.onion:8333";
const FILE: &str = "/etc/nightjar/nightjar.toml";

fn resolve(args: &[&str], file: Option<&str>) -> Result<config::Config, ConfigError> {
    config::resolve(
        &cli(args).options,
        file.map(|t| (Path::new(FILE), t)),
        &env(),
    )
}

fn refusal(args: &[&str], file: Option<&str>) -> String {
    match resolve(args, file) {
        Ok(c) => panic!("accepted: {}", c.to_toml()),
        Err(e @ ConfigError::Privacy { .. }) => e.to_string(),
        Err(other) => panic!("refused, but not by the preset: {other}"),
    }
}

#[test]
fn the_preset_sets_every_documented_default() {
    let c = resolve(&["--privacy"], None).unwrap();
    let s = &c.settings;
    assert_eq!(s.onlynet.value, vec![NetworkId::Onion]);
    assert!(!s.v1fallback.value && s.v2transport.value);
    assert_eq!(s.tor_isolation.value, Isolation::PerConnection);
    assert!(!s.dnsseed.value && s.fixedseeds.value);
    assert!(!s.listen.value && s.bind.value.is_empty());
    assert!(s.rpcbind.value.iter().all(|b| b.ip.is_loopback()));
    assert!(!s.log_sensitive.value);
    assert!(s.tor_enabled.value);
    for source in [
        s.onlynet.source,
        s.v1fallback.source,
        s.tor_isolation.source,
        s.dnsseed.source,
        s.listen.source,
        s.rpcbind.source,
        s.log_sensitive.source,
        s.tor_enabled.source,
    ] {
        assert_eq!(source, Source::Privacy);
    }
    // Keys outside the preset keep their ordinary defaults.
    assert_eq!(s.maxoutbound.source, Source::Default);

    let d = c.daemon_options();
    assert!(d.engine.privacy);
    assert_eq!(d.engine.isolation_scope(), IsolationScope::PerConnection);
    assert!(!d.engine.may_use_dns_seeds());
    assert_eq!(d.engine.reach, Reach::Tor);
    assert_eq!(
        d.engine.reachable_networks().iter().collect::<Vec<_>>(),
        vec![NetworkId::Onion]
    );
    assert!(d.rpc.binds.iter().all(|a| a.ip().is_loopback()));
    assert!(!c.log_settings().sensitive);
}

#[test]
fn without_the_preset_nothing_is_narrowed() {
    let c = resolve(&[], None).unwrap();
    assert_eq!(c.settings.onlynet.value.len(), 5);
    assert!(c.settings.dnsseed.value);
    assert_eq!(c.settings.tor_isolation.value, Isolation::PerKind);
    assert!(!c.daemon_options().engine.privacy);
}

fn privacy_toml() -> (PathBuf, String) {
    let path = repo_file("privacy.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    (path, text)
}

#[test]
fn privacy_toml_is_the_preset_spelled_out() {
    let (path, text) = privacy_toml();
    let from_flag = resolve(&["--privacy"], None).unwrap();
    let from_file = config::resolve(&cli(&[]).options, Some((&path, &text)), &env()).unwrap();
    assert_eq!(values(&from_file), values(&from_flag));
    assert_eq!(
        from_file.daemon_options().engine.reachable_networks(),
        from_flag.daemon_options().engine.reachable_networks()
    );

    // Even without its `privacy = true` line the file's explicit keys give
    // the preset's values: it really spells the preset out.
    let without: String = text
        .lines()
        .filter(|l| !l.starts_with("privacy"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_ne!(without, text);
    let spelled = config::resolve(&cli(&[]).options, Some((&path, &without)), &env()).unwrap();
    let differing: Vec<(String, String)> = values(&spelled)
        .into_iter()
        .zip(values(&from_flag))
        .filter(|(a, b)| a != b)
        .collect();
    assert_eq!(
        differing,
        vec![("privacy = false".to_owned(), "privacy = true".to_owned())]
    );
}

#[test]
fn print_config_with_privacy_shows_the_preset_as_the_source() {
    let printed = resolve(&["--privacy"], None).unwrap().to_toml();
    assert!(
        printed.contains("onlynet = [\"onion\"]  # privacy preset"),
        "{printed}"
    );
    assert!(
        printed.contains("isolation = \"per-connection\"  # privacy preset"),
        "{printed}"
    );
    assert!(
        printed.contains("dnsseed = false  # privacy preset"),
        "{printed}"
    );
    assert!(
        printed.contains("privacy = true  # command line (--privacy)"),
        "{printed}"
    );
}

/// One contradiction per case: the option as given, and the words the
/// refusal must contain (the option and its source).
#[test]
fn every_contradiction_is_refused_and_named_with_its_source() {
    let cases: Vec<(Vec<&str>, Option<&str>, &str)> = vec![
        (
            vec!["--onlynet", "ipv4"],
            None,
            "onlynet includes ipv4 (--onlynet)",
        ),
        (
            vec![],
            Some("onlynet = [\"onion\", \"ipv6\"]"),
            "onlynet includes ipv6 (config file)",
        ),
        (
            vec!["--connect", "1.2.3.4:8333"],
            None,
            "connect 1.2.3.4:8333 is not an onion peer (--connect)",
        ),
        (
            vec![],
            Some("addnode = [\"seed.example.test:8333\"]"),
            "addnode seed.example.test:8333 is not an onion peer (config file)",
        ),
        (vec!["--listen"], None, "listen = true (--listen)"),
        (
            vec![],
            Some("bind = [\"127.0.0.1:8334=onion\"]"),
            "bind = [\"127.0.0.1:8334=onion\"] (config file)",
        ),
        (
            vec![],
            Some("v2transport = false"),
            "v2transport = false (config file)",
        ),
        (
            vec!["--v1-fallback"],
            None,
            "v1fallback = true (--v1-fallback)",
        ),
        (vec!["--dnsseed"], None, "dnsseed = true (--dnsseed)"),
        (
            vec![],
            Some("dnsseed = true"),
            "dnsseed = true (config file)",
        ),
        (
            vec!["--rpcbind", "0.0.0.0"],
            None,
            "rpcbind includes 0.0.0.0, not loopback (--rpcbind)",
        ),
        (vec!["--no-tor"], None, "tor.enabled = false (--no-tor)"),
        (
            vec!["--isolation", "per-kind"],
            None,
            "tor.isolation = \"per-kind\" (--isolation)",
        ),
        (
            vec![],
            Some("[tor]\nisolation = \"per-kind\""),
            "tor.isolation = \"per-kind\" (config file)",
        ),
        (
            vec!["--log-sensitive"],
            None,
            "log.sensitive = true (--log-sensitive)",
        ),
        (
            vec![],
            Some("[log]\nsensitive = true"),
            "log.sensitive = true (config file)",
        ),
    ];
    for (extra, file, expected) in cases {
        let mut args = vec!["--privacy"];
        args.extend(extra.iter().copied());
        let e = refusal(&args, file);
        assert!(
            e.starts_with(&format!(
                "config error{}: --privacy contradicts: ",
                if file.is_some() {
                    format!(" in {FILE}")
                } else {
                    String::new()
                }
            )),
            "{e}"
        );
        assert!(e.contains(expected), "expected {expected:?} in: {e}");
        assert!(e.ends_with("remove it or turn privacy off"), "{e}");
    }
}

#[test]
fn all_contradictions_are_listed_at_once() {
    let e = refusal(
        &["--privacy", "--v1-fallback", "--addnode", "127.0.0.1:8333"],
        Some("onlynet = [\"ipv4\", \"onion\"]"),
    );
    assert_eq!(
        e,
        format!(
            "config error in {FILE}: --privacy contradicts: onlynet includes ipv4 (config file), \
             addnode 127.0.0.1:8333 is not an onion peer (--addnode), v1fallback = true (--v1-fallback); \
             the privacy preset fails closed: remove them or turn privacy off"
        )
    );
}

#[test]
fn privacy_from_the_file_is_named_as_such() {
    let e = refusal(&["--connect", "10.0.0.1:8333"], Some("privacy = true"));
    assert!(
        e.contains("privacy = true (config file) contradicts: connect 10.0.0.1:8333"),
        "{e}"
    );
}

#[test]
fn explicit_values_that_agree_with_the_preset_are_fine() {
    let args = [
        "--privacy",
        "--onlynet",
        "onion",
        "--no-dnsseed",
        "--isolation",
        "per-connection",
        "--addnode",
        ONION,
        "--connect",
        ONION,
        "--rpcbind",
        "::1",
        "--no-fixedseeds",
    ];
    let c = resolve(&args, Some("listen = false\nv1fallback = false")).unwrap();
    assert!(!c.settings.fixedseeds.value);
    assert_eq!(c.settings.addnode.value.len(), 1);
}

#[test]
fn the_command_line_can_undo_a_contradiction_in_the_file() {
    // Per key: the effective explicit value is what the preset judges.
    let c = resolve(&["--privacy", "--no-dnsseed"], Some("dnsseed = true")).unwrap();
    assert!(!c.settings.dnsseed.value);
    // And --no-privacy turns a file's preset off.
    let c = resolve(&["--no-privacy"], Some("privacy = true\ndnsseed = true")).unwrap();
    assert!(!c.settings.privacy.value && c.settings.dnsseed.value);
}
