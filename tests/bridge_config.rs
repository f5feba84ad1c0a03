#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Bridges in the configuration: `[tor] bridges` and `--bridge` lines read
//! into the Tor client's settings (the command line replacing the file),
//! `[tor] transport_binary`, and every wrong field named: the line's own
//! fields, a relative binary path, bridges with Tor turned off. Bridges
//! are compatible with the privacy preset.

use std::path::PathBuf;

use nightjar::config::Cli;

#[path = "support/config_env.rs"]
mod config_env;

use config_env::{error, resolve, values};

const FP: &str = "316E643333645F6D79216558614D3931657A5F5F";
const CERT: &str = "cert=YXJlIGZyZXF1ZW50bHkgZnVsbCBvZiBsaXR0bGUgbWVzc2FnZXMgeW91IGNhbiBmaW5kLg";

fn obfs4(addr: &str) -> String {
    format!("obfs4 {addr} {FP} {CERT} iat-mode=0")
}

#[test]
fn file_bridges_and_transport_binaries_reach_the_tor_client_under_privacy() {
    let text = format!(
        "privacy = true\n[tor]\nbridges = [\"{}\", \"Bridge 192.0.2.11:9001 {FP}\"]\n\
         transport_binary = {{ obfs4 = \"/usr/local/bin/lyrebird\" }}\n",
        obfs4("192.0.2.10:443")
    );
    let c = resolve(&[], &text).unwrap();
    let o = c.daemon_options();
    assert!(o.engine.privacy);
    let shown: Vec<String> = o.tor_bridges.iter().map(ToString::to_string).collect();
    assert_eq!(
        shown,
        [obfs4("192.0.2.10:443"), format!("192.0.2.11:9001 {FP}")]
    );
    assert_eq!(o.tor_bridges[0].transport(), Some("obfs4"));
    assert_eq!(o.tor_bridges[1].transport(), None);
    assert_eq!(o.tor_transports.len(), 1);
    assert_eq!(o.tor_transports[0].protocol, "obfs4");
    assert_eq!(
        o.tor_transports[0].binary,
        PathBuf::from("/usr/local/bin/lyrebird")
    );

    // print-config shows them, and what it prints reads back the same.
    let printed = c.to_toml();
    assert!(
        printed.contains("transport_binary = { obfs4 = \"/usr/local/bin/lyrebird\" }"),
        "{printed}"
    );
    let again = resolve(&[], &printed).unwrap();
    assert_eq!(values(&again), values(&c));
}

#[test]
fn bridge_flags_replace_the_files_list() {
    let text = format!("[tor]\nbridges = [\"{}\"]\n", obfs4("192.0.2.10:443"));
    let line = obfs4("198.51.100.7:8443");
    let c = resolve(
        &["--bridge", &line, "--bridge", &obfs4("[2001:db8::7]:443")],
        &text,
    )
    .unwrap();
    let addrs: Vec<String> = c
        .daemon_options()
        .tor_bridges
        .iter()
        .map(|b| b.addr().to_string())
        .collect();
    assert_eq!(addrs, ["198.51.100.7:8443", "[2001:db8::7]:443"]);
    // Without bridges nothing changes: no transport, no bridge.
    let none = resolve(&[], "").unwrap().daemon_options();
    assert!(none.tor_bridges.is_empty() && none.tor_transports.is_empty());
    // print-config says what the default binary is.
    let printed = resolve(&[], "").unwrap().to_toml();
    assert!(
        printed
            .contains("\ntransport_binary = {}  # default: obfs4 runs obfs4proxy, found on PATH\n"),
        "{printed}"
    );
}

#[test]
fn a_bad_line_in_the_file_names_the_key_the_line_and_the_field() {
    let bad = format!("obfs4 192.0.2.10 {FP} {CERT} iat-mode=0");
    let e = error(&[], &format!("[tor]\nbridges = [\"{bad}\"]\n"));
    assert!(e.contains("tor.bridges = "), "{e}");
    assert!(e.contains("address: `192.0.2.10` is not IP:PORT"), "{e}");
    let e = error(
        &[],
        &format!("[tor]\nbridges = [\"obfs4 192.0.2.10:443 {FP} iat-mode=0\"]\n"),
    );
    assert!(e.contains("cert: missing"), "{e}");
    let e = error(&[], "[tor]\nbridges = [\"192.0.2.10:443 ABCD\"]\n");
    assert!(
        e.contains("fingerprint: `ABCD` is not 40 hex digits"),
        "{e}"
    );
    let e = error(&[], "[tor]\nbridges = 3\n");
    assert!(e.contains("expected a list of bridge lines"), "{e}");
}

#[test]
fn a_bad_bridge_flag_is_refused_by_the_parser_with_the_field() {
    let e = <Cli as clap::Parser>::try_parse_from([
        "nightjar",
        "--bridge",
        &format!("obfs4 192.0.2.10:443 {FP}"),
    ])
    .unwrap_err()
    .to_string();
    assert!(e.contains("--bridge"), "{e}");
    assert!(e.contains("cert: missing"), "{e}");
}

#[test]
fn transport_binaries_must_be_absolute_or_bare_names() {
    let e = error(
        &[],
        "[tor]\ntransport_binary = { obfs4 = \"bin/obfs4proxy\" }\n",
    );
    assert!(e.contains("tor.transport_binary"), "{e}");
    assert!(e.contains("give an absolute path"), "{e}");
    let e = error(
        &[],
        "[tor]\ntransport_binary = { \"obfs-4\" = \"obfs4proxy\" }\n",
    );
    assert!(e.contains("not a transport name"), "{e}");
    // A bare name is looked up on PATH when the node starts.
    let c = resolve(&[], "[tor]\ntransport_binary = { obfs4 = \"lyrebird\" }\n").unwrap();
    assert_eq!(
        c.daemon_options().tor_transports[0].binary,
        PathBuf::from("lyrebird")
    );
}

#[test]
fn a_transport_binary_that_is_not_there_is_a_warning_before_it_stops_the_start() {
    let text = format!(
        "[tor]\nbridges = [\"{}\"]\ntransport_binary = {{ obfs4 = \"/nonexistent/obfs4proxy\" }}\n",
        obfs4("192.0.2.10:443")
    );
    let c = resolve(&[], &text).unwrap();
    assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
    let w = &c.warnings[0];
    assert!(
        w.starts_with("tor.bridges: the obfs4 transport needs `/nonexistent/obfs4proxy`"),
        "{w}"
    );
    assert!(w.contains("install the obfs4proxy package"), "{w}");
    // A plain bridge needs no transport, so no warning.
    let plain = format!("[tor]\nbridges = [\"192.0.2.11:9001 {FP}\"]\n");
    assert!(resolve(&[], &plain).unwrap().warnings.is_empty());
}

#[test]
fn bridges_need_tor() {
    let e = error(
        &["--no-tor"],
        &format!("[tor]\nbridges = [\"{}\"]\n", obfs4("192.0.2.10:443")),
    );
    assert!(e.contains("tor.bridges"), "{e}");
    assert!(e.contains("bridges are a way into Tor"), "{e}");
}
