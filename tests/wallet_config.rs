#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Watch-only wallets and the Electrum server in the configuration: the
//! `[wallet.NAME]` tables read into keychains for the chain, the Electrum
//! keys and what they imply (block filters) or refuse (no wallet, a
//! non-loopback address under `--privacy`), and `check-config` naming the
//! wallet and the entry of a bad descriptor without repeating a secret.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use nightjar::config::{self, Birthday, ElectrumSettings, Source};
use nightjar::wallet::keychain::Keychain;

#[path = "support/config_env.rs"]
mod config_env;

use config_env::{cli, env, error, resolve, values};

/// BIP84's account 0 of "abandon … about", as Electrum shows it.
const ZPUB: &str = "zpub6rFR7y4Q2AijBEqTUquhVz398htDFrtymD9xYYfG1m4wAcvPhXNfE3EfH1r1ADqtfSdVCToUG868RvUUkgDKf31mGDtKsAYz2oz2AGutZYs";
/// The same account key with BIP32's version bytes.
const BIP84_XPUB: &str = "xpub6CatWdiZiodmUeTDp8LT5or8nmbKNcuyvz7WyksVFkKB4RHwCD3XyuvPEbvqAQY3rAPshWcMLoP2fMFMKHPJ4ZeZXYVUhLv1VMrjPC7PW6V";
/// BIP86's account 0 of the same mnemonic.
const BIP86_XPUB: &str = "xpub6BgBgsespWvERF3LHQu6CnqdvfEvtMcQjYrcRzx53QJjSxarj2afYWcLteoGVky7D3UKDP9QyrLprQ3VCECoY49yfdDEHGCtMMj92pReUsQ";
/// BIP49's testnet account 0 (a test-network key: regtest, signet, …).
const UPUB: &str = "upub5EFU65HtV5TeiSHmZZm7FUffBGy8UKeqp7vw43jYbvZPpoVsgU93oac7Wk3u6moKegAEWtGNF8DehrnHtv21XXEMYRUocHqguyjknFHYfgY";
/// BIP32's first test vector, master private key (public knowledge).
const XPRV: &str = "xprv9s21ZrQH143K3QTDL4LXw2F7HEK3wJUD2nW2nRk4stbPy6cq3jPPqjiChkVvvNKmPGJxWUtg6LnF5kejMRNNU3TGtRBeJgk33yuGBxrMPHi";

/// A main-chain wallet table named `name`.
fn wallet(name: &str, descriptors: &str) -> String {
    format!("[wallet.{name}]\ndescriptors = {descriptors}\nbirthday = 840000\n")
}

fn script(address: &str) -> bitcoin::ScriptBuf {
    address
        .parse::<bitcoin::Address<_>>()
        .unwrap()
        .assume_checked()
        .script_pubkey()
}

#[test]
fn wallet_tables_resolve_to_keychains_for_the_chain() {
    let text = format!(
        r#"
[wallet.savings]
descriptors = ["tr([73c5da0a/86h/0h/0h]{BIP86_XPUB}/<0;1>/*)"]
birthday = 2024-04-20
gap_limit = 50

[wallet.daily]
descriptors = "{ZPUB}"
birthday = 840000
"#
    );
    let c = resolve(&[], &text).unwrap();
    // In name order; no Electrum server unless asked, but the wallets'
    // index needs the filters, so they are on.
    let names: Vec<&str> = c.wallets.iter().map(|w| w.name.as_str()).collect();
    assert_eq!(names, ["daily", "savings"]);
    assert_eq!(c.daemon_options().electrum, None);
    assert!(c.settings.block_filters_implied());
    assert!(c.daemon_options().engine.block_filters);

    let daily = &c.wallets[0];
    assert_eq!(daily.birthday, Birthday::Height(840_000));
    assert_eq!(daily.gap_limit, 20);
    assert_eq!(daily.keychains.len(), 2);
    assert_eq!(
        daily.keychains[0].script_at(0).unwrap(),
        script("bc1qcr8te4kr609gcawutmrza0j4xv80jy8z306fyu")
    );
    assert_eq!(
        daily.keychains[1].script_at(0).unwrap(),
        script("bc1q8c6fshw2dlwun7ekn9qwf37cu2rn755upcp6el")
    );

    let savings = &c.wallets[1];
    assert_eq!(savings.birthday, "2024-04-20".parse().unwrap());
    assert_eq!(savings.gap_limit, 50);
    assert_eq!(savings.keychains.len(), 2);
    assert!(savings.keychains.iter().all(Keychain::is_ranged));
    assert_eq!(
        savings.keychains[0].script_at(0).unwrap(),
        script("bc1p5cyxnuxmeuwuvkwfem96lqzszd02n6xdcjrs20cac6yqjjwudpxqkedrcr")
    );

    // The canonical descriptors (with checksums) read back to the same
    // keychains: they are what persisted state is keyed by.
    let ids: Vec<String> = daily.keychains.iter().map(Keychain::descriptor).collect();
    let again = resolve(&[], &wallet("daily", &format!("{ids:?}"))).unwrap();
    assert_eq!(again.wallets[0].keychains, daily.keychains);
}

#[test]
fn electrum_serves_the_wallets_and_turns_block_filters_on() {
    let text = format!(
        "electrum = true\n{}",
        wallet("main", &format!("[\"{ZPUB}\"]"))
    );
    let c = resolve(&[], &text).unwrap();
    assert_eq!(
        c.daemon_options().electrum,
        Some(ElectrumSettings {
            bind: "127.0.0.1:50001".parse().unwrap(),
            tls_bind: None,
        })
    );
    assert!(c.settings.block_filters.value);
    assert_eq!(c.settings.block_filters.source, Source::Default);
    assert!(c.daemon_options().engine.block_filters);
    let printed = c.to_toml();
    assert!(
        printed.contains("\nblock_filters = true  # default (on for the wallets)\n"),
        "{printed}"
    );
    assert!(printed.contains("\nelectrum = true  # file\n"), "{printed}");

    // Addresses from the command line, ports by convention.
    let c = resolve(
        &[
            "--electrum-bind",
            "[::1]",
            "--electrum-tls-bind",
            "127.0.0.1",
        ],
        &text,
    )
    .unwrap();
    assert_eq!(
        c.daemon_options().electrum,
        Some(ElectrumSettings {
            bind: "[::1]:50001".parse().unwrap(),
            tls_bind: Some("127.0.0.1:50002".parse().unwrap()),
        })
    );
    // --no-electrum turns the server off; the wallet still keeps the
    // filters on, since its index is synced without a server too.
    let c = resolve(&["--no-electrum"], &text).unwrap();
    assert_eq!(c.daemon_options().electrum, None);
    assert!(c.settings.block_filters_implied());
    assert_eq!(c.wallets.len(), 1);
}

#[test]
fn electrum_needs_a_wallet_and_the_filters() {
    assert_eq!(
        error(&[], "electrum = true"),
        "config error in /etc/nightjar/nightjar.toml: electrum = true: electrum = true serves \
         your wallets: add a [wallet.NAME] table (descriptors and birthday) to the config file, \
         or turn electrum off"
    );
    assert_eq!(
        error(&["--electrum"], ""),
        "config error: --electrum: electrum = true serves your wallets: add a [wallet.NAME] \
         table (descriptors and birthday) to the config file, or turn electrum off"
    );
    let text = format!(
        "electrum = true\nblock_filters = false\n{}",
        wallet("main", &format!("[\"{ZPUB}\"]"))
    );
    let e = error(&[], &text);
    assert!(
        e.starts_with("config error in /etc/nightjar/nightjar.toml: block_filters = false: ")
            && e.contains("remove block_filters = false, or turn electrum off"),
        "{e}"
    );
    let text = format!(
        "electrum = true\nelectrum_bind = \"127.0.0.1:8332\"\n{}",
        wallet("main", &format!("[\"{ZPUB}\"]"))
    );
    let e = error(&[], &text);
    assert!(
        e.contains("electrum_bind = \"127.0.0.1:8332\"") && e.contains("RPC server"),
        "{e}"
    );
}

#[test]
fn the_privacy_preset_keeps_electrum_on_loopback() {
    let wallets = wallet("main", &format!("[\"{ZPUB}\"]"));
    let text = format!("electrum = true\nelectrum_bind = \"0.0.0.0\"\n{wallets}");
    assert_eq!(
        error(&["--privacy"], &text),
        "config error in /etc/nightjar/nightjar.toml: --privacy contradicts: electrum_bind \
         0.0.0.0:50001 is not loopback (config file); the privacy preset fails closed: remove \
         it or turn privacy off"
    );
    let e = error(
        &["--privacy", "--electrum-tls-bind", "192.168.1.2"],
        &format!("electrum = true\n{wallets}"),
    );
    assert!(
        e.contains("electrum_tls_bind 192.168.1.2:50002 is not loopback (--electrum-tls-bind)"),
        "{e}"
    );
    // Loopback is fine, and outside the preset an open address only warns.
    let c = resolve(&["--privacy"], &format!("electrum = true\n{wallets}")).unwrap();
    assert!(c.daemon_options().electrum.is_some());
    let c = resolve(&[], &text).unwrap();
    assert!(
        c.warnings
            .iter()
            .any(|w| w.starts_with("electrum_bind 0.0.0.0:50001: ")),
        "{:?}",
        c.warnings
    );
}

#[test]
fn a_bad_descriptor_names_the_wallet_the_entry_and_why() {
    let good = format!("wpkh({BIP84_XPUB}/0/*)");
    let e = error(
        &[],
        &wallet("cold", &format!("[\"{good}\", \"{good}#qqqqqqqq\"]")),
    );
    assert_eq!(
        e,
        "config error in /etc/nightjar/nightjar.toml: wallet.cold.descriptors[1]: the \
         descriptor's checksum #qqqqqqqq does not match it, so the descriptor was changed or \
         mistyped; copy it again from the wallet that made it"
    );

    // A private key: refused, and not repeated.
    let e = error(&[], &wallet("hot", &format!("[\"wpkh({XPRV}/0/*)\"]")));
    assert!(
        e.contains("wallet.hot.descriptors[0]: watch-only: give the xpub, never a private key"),
        "{e}"
    );
    assert!(!e.contains(&XPRV[..20]), "{e}");

    // The other network: both named, and where the chain came from.
    let e = error(
        &["--chain", "regtest"],
        &wallet("main", &format!("[\"{ZPUB}\"]")),
    );
    assert!(
        e.contains("wallet.main.descriptors[0]: the key is a mainnet key")
            && e.contains("the node runs on regtest")
            && e.contains("(chain: command line (--network))"),
        "{e}"
    );
    // A test-network key is fine there.
    let c = resolve(
        &["--chain", "regtest"],
        &wallet("t", &format!("[\"{UPUB}\"]")),
    )
    .unwrap();
    assert_eq!(c.wallets[0].keychains.len(), 2);
}

#[test]
fn a_keychain_belongs_to_one_wallet() {
    // The zpub's receive keychain, written as a descriptor with an origin.
    let text = format!(
        "{}{}",
        wallet("a", &format!("[\"{ZPUB}\"]")),
        wallet(
            "b",
            &format!("[\"wpkh([73c5da0a/84h/0h/0h]{BIP84_XPUB}/0/*)\"]")
        ),
    );
    let e = error(&[], &text);
    assert!(
        e.starts_with("config error in /etc/nightjar/nightjar.toml: wallet.b.descriptors[0]: wallet.a.descriptors[0] already watches the keychain wpkh("),
        "{e}"
    );
    let e = error(&[], &wallet("a", &format!("[\"{ZPUB}\", \"{ZPUB}\"]")));
    assert!(
        e.contains("wallet.a.descriptors[1]: wallet.a.descriptors[0] already"),
        "{e}"
    );
}

#[test]
fn wallet_tables_say_what_is_missing_or_wrong() {
    let zpub = format!("[\"{ZPUB}\"]");
    assert_eq!(
        error(&[], &format!("[wallet.main]\ndescriptors = {zpub}\n")),
        "config error in /etc/nightjar/nightjar.toml: [wallet.main]: no birthday: give the \
         height of the first block the wallet can have used (birthday = 840000) or the day it \
         was made (birthday = \"2024-04-20\"); without one every block since 2009 would be \
         scanned, which over Tor takes hours"
    );
    assert_eq!(
        error(&[], "[wallet.main]\nbirthday = 1\n"),
        "config error in /etc/nightjar/nightjar.toml: [wallet.main]: no descriptors: list the \
         wallet's descriptors or its extended public key, e.g. descriptors = [\"zpub…\"]"
    );
    let e = error(&[], "[wallet.main]\nbirthday = 1\ndescriptors = []\n");
    assert!(
        e.contains("wallet.main.descriptors = []: list at least one"),
        "{e}"
    );
    for (bad, says) in [
        ("birthday = -1", "not a block height"),
        ("birthday = \"20.4.2024\"", "\"YYYY-MM-DD\""),
        ("birthday = 2024-04-20T10:00:00", "without a time"),
        ("birthday = 2001-01-01", "not a date from 2009 on"),
        ("birthday = true", "a block height or a date"),
        ("gap_limit = 0", "from 1 to 1000"),
        ("gap_limit = 1001", "from 1 to 1000"),
        ("descriptors = 3", "a list of descriptors"),
    ] {
        let key = bad.split(' ').next().unwrap();
        let mut lines = vec![format!("descriptors = {zpub}"), "birthday = 1".to_owned()];
        lines.retain(|l| !l.starts_with(key));
        lines.push(bad.to_owned());
        let e = error(&[], &format!("[wallet.w]\n{}\n", lines.join("\n")));
        assert!(
            e.contains(&format!("wallet.w.{key} = ")) && e.contains(says),
            "{bad}: {e}"
        );
    }
    assert_eq!(
        error(
            &[],
            &format!("[wallet.w]\ndescriptors = {zpub}\nbirthday = 1\ngaplimit = 5\n")
        ),
        "config error in /etc/nightjar/nightjar.toml: unknown key `wallet.w.gaplimit`; did you mean `gap_limit` in the [wallet.w] table?"
    );
    assert_eq!(
        error(&[], &format!("descriptors = {zpub}\n")),
        "config error in /etc/nightjar/nightjar.toml: unknown key `descriptors`; did you mean `descriptors` in a [wallet.NAME] table?"
    );
    let e = error(&[], &format!("[wallet]\ndescriptors = {zpub}\n"));
    assert!(e.contains("write [wallet.main]"), "{e}");
    let e = error(&[], "wallet = \"default\"");
    assert!(
        e.contains("wallet = \"default\": expected a [wallet.NAME] table"),
        "{e}"
    );
    let e = error(
        &[],
        &format!("[wallet.\"my wallet\"]\ndescriptors = {zpub}\nbirthday = 1\n"),
    );
    assert!(
        e.contains("[wallet.\"my wallet\"]: a wallet name may hold letters, digits"),
        "{e}"
    );
}

#[test]
fn print_config_shows_the_wallets_and_reads_back() {
    let text = format!(
        "electrum = true\nelectrum_tls_bind = \"127.0.0.1:50002\"\n\
         [wallet.main]\ndescriptors = [\"{ZPUB}\"]\nbirthday = 2024-04-20\n\
         [wallet.old]\ndescriptors = [\"pkh({BIP84_XPUB}/5/*)\"]\nbirthday = 100\ngap_limit = 7\n"
    );
    let first = resolve(&[], &text).unwrap();
    let printed = first.to_toml();
    for expected in [
        "\n[wallet.main]\n".to_owned(),
        format!("descriptors = [\"{ZPUB}\"]  # file\n"),
        format!("#   keychain: wpkh({BIP84_XPUB}/0/*)#"),
        format!("#   keychain: wpkh({BIP84_XPUB}/1/*)#"),
        "birthday = \"2024-04-20\"  # file\n".to_owned(),
        "gap_limit = 20  # default\n".to_owned(),
        "birthday = 100  # file\ngap_limit = 7  # file\n".to_owned(),
        "electrum_tls_bind = \"127.0.0.1:50002\"  # file\n".to_owned(),
    ] {
        assert!(printed.contains(&expected), "{expected}\n{printed}");
    }
    let again = config::resolve(
        &cli(&[]).options,
        Some((Path::new("/tmp/printed.toml"), &printed)),
        &env(),
    )
    .unwrap_or_else(|e| panic!("{e}\n{printed}"));
    assert_eq!(values(&again), values(&first), "{printed}");
    assert_eq!(again.wallets, first.wallets);
    assert_eq!(
        again.daemon_options().electrum,
        first.daemon_options().electrum
    );
}

// ---- the process ----

/// Run `nightjar` with `args` and a throwaway HOME; it must exit by itself
/// (none of these may start the node).
fn run(args: &[&str], home: &Path) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_nightjar"))
        .args(args)
        .env("HOME", home)
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("XDG_DATA_HOME")
        .env_remove("XDG_CACHE_HOME")
        .env_remove("STATE_DIRECTORY")
        .env_remove("CACHE_DIRECTORY")
        .env_remove("CONFIGURATION_DIRECTORY")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(30) {
            child.kill().unwrap();
            panic!("nightjar {args:?} did not exit: it started instead of checking");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn check_config_names_the_wallet_and_entry_of_a_bad_descriptor() {
    let home = tempfile::tempdir().unwrap();
    let conf = home.path().join("wallets.toml");
    // `nightjar COMMAND --conf wallets.toml`, the file holding `toml`.
    let on = |command: &str, toml: &str| {
        std::fs::write(&conf, toml).unwrap();
        run(&[command, "--conf", conf.to_str().unwrap()], home.path())
    };
    let cold = |descriptors: &str| format!("electrum = true\n{}", wallet("cold", descriptors));

    let out = on(
        "check-config",
        &cold(&format!("[\"{ZPUB}\", \"wpkh(nonsense/0/*)\"]")),
    );
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.starts_with(&format!(
            "config error in {}: wallet.cold.descriptors[1]: not a valid descriptor: ",
            conf.display()
        )) && err.ends_with('\n')
            && err.lines().count() == 1,
        "{err}"
    );
    assert!(out.stdout.is_empty());

    // A private key: refused without being printed.
    let out = on("check-config", &wallet("hot", &format!("\"{XPRV}\"")));
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("wallet.hot.descriptors[0]: watch-only"),
        "{err}"
    );
    assert!(!err.contains(&XPRV[4..30]), "{err}");

    // Fixed: OK, and print-config shows the wallet.
    let fixed = cold(&format!("[\"{ZPUB}\"]"));
    let out = on("check-config", &fixed);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        format!("configuration OK: {}\n", conf.display())
    );
    let out = on("print-config", &fixed);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let printed = text(&out.stdout);
    assert!(printed.contains("\n[wallet.cold]\n"), "{printed}");
    assert!(printed.contains("\nelectrum = true  # file\n"), "{printed}");
}
