#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The config file: every key parses, the shipped example is exactly the
//! defaults and documents every key, and every kind of mistake gives one
//! message naming the file, the key, the value and the fix.

use std::path::{Path, PathBuf};

use nightjar::config::{self, Chain, ConfigError, Environment, Isolation, Source};
use nightjar::logging::DebugCategory;
use nightjar::netaddr::NetworkId;

#[path = "support/config_env.rs"]
mod config_env;

use config_env::{cli, env, repo_file, values};

const ONION: &str = "2gzyxa5ihm7nsggfxnu52rck2vv4rvmdlkiu3zzui5du4xyclen53wid.onion";

fn from_text(text: &str) -> Result<config::Config, ConfigError> {
    config::resolve(
        &cli(&[]).options,
        Some((Path::new("/etc/nightjar/nightjar.toml"), text)),
        &env(),
    )
}

fn error(text: &str) -> String {
    from_text(text).unwrap_err().to_string()
}

#[test]
fn every_key_is_read_from_the_file() {
    let net_file = tempfile::NamedTempFile::new().unwrap();
    let text = format!(
        r#"
chain = "signet"
datadir = "/srv/nightjar"
onlynet = ["onion", "ipv6"]
connect = ["{ONION}:38333"]
addnode = ["10.0.0.1:38333", "{ONION}:1"]
listen = false
listenonion = false
bind = []
maxconnections = 40
v2transport = true
dnsseed = false
fixedseeds = false
rpcbind = ["127.0.0.1", "[::1]:1234"]
rpcport = 4000
rpccookiefile = "auth/cookie"
privacy = false
v1fallback = true
maxoutbound = 12
feeler_interval_secs = 30
block_filters = true
decoy_blocks = 7
electrum = false
electrum_bind = "[::1]:50010"
electrum_tls_bind = "127.0.0.1:50020"

[tor]
network_file = "{}"
enabled = true
isolation = "per-connection"
memory_limit_mib = 100
bridges = ["192.0.2.11:9001 316E643333645F6D79216558614D3931657A5F5F"]
transport_binary = {{ obfs4 = "/usr/bin/lyrebird" }}

[log]
debug = ["net", "rpc"]
sensitive = true
"#,
        net_file.path().display()
    );
    let c = from_text(&text).unwrap();
    let s = &c.settings;
    assert_eq!(s.chain.value, Chain::Signet);
    assert_eq!(s.datadir.value.as_deref(), Some(Path::new("/srv/nightjar")));
    assert_eq!(s.onlynet.value, vec![NetworkId::Onion, NetworkId::Ipv6]);
    assert_eq!(s.connect.value[0].to_string(), format!("{ONION}:38333"));
    assert_eq!(s.addnode.value.len(), 2);
    assert!(!s.listen.value && s.bind.value.is_empty() && s.v2transport.value);
    assert!(!s.listenonion.value);
    assert_eq!(s.maxconnections.value, 40);
    assert!(!s.dnsseed.value && !s.fixedseeds.value);
    assert_eq!(s.rpcbind.value.len(), 2);
    assert_eq!(s.rpcport.value, 4000);
    assert_eq!(s.rpccookiefile.value, Path::new("auth/cookie"));
    assert!(!s.privacy.value && s.v1fallback.value);
    assert_eq!(s.maxoutbound.value, 12);
    assert_eq!(s.feeler_interval_secs.value, 30);
    assert!(s.block_filters.value);
    assert_eq!(s.decoy_blocks.value, 7);
    assert!(!s.electrum.value);
    assert_eq!(s.electrum_bind.value, "[::1]:50010".parse().unwrap());
    assert_eq!(
        s.electrum_tls_bind.value,
        Some("127.0.0.1:50020".parse().unwrap())
    );
    assert_eq!(s.tor_network_file.value.as_deref(), Some(net_file.path()));
    assert!(s.tor_enabled.value);
    assert_eq!(s.tor_isolation.value, Isolation::PerConnection);
    assert_eq!(s.tor_memory_limit_mib.value, 100);
    assert_eq!(s.tor_bridges.value.len(), 1);
    assert_eq!(
        s.tor_transport_binary
            .value
            .get("obfs4")
            .map(PathBuf::as_path),
        Some(Path::new("/usr/bin/lyrebird"))
    );
    assert_eq!(
        s.log_debug.value,
        vec![DebugCategory::Net, DebugCategory::Rpc]
    );
    assert!(s.log_sensitive.value);
    // Every one of them is marked as coming from the file.
    for line in c.to_toml().lines().filter(|l| l.contains(" = ")) {
        assert!(line.contains("# file"), "{line}");
    }

    // And it reaches the daemon's types.
    let d = c.daemon_options();
    assert_eq!(d.network, bitcoin::Network::Signet);
    assert_eq!(d.paths.chain_dir, Path::new("/srv/nightjar/signet"));
    assert_eq!(d.tor_network.as_deref(), Some(net_file.path()));
    assert_eq!(d.tor_memory_limit, 100 << 20);
    assert!(d.engine.block_filters);
    assert_eq!(d.engine.decoy_blocks, 7);
    assert_eq!(d.engine.target_outbound, 12);
    assert_eq!(d.engine.connect.len(), 1);
    assert_eq!(d.engine.addnodes.len(), 2);
    assert!(d.engine.v1_fallback && !d.engine.dns_seeds && !d.engine.fixed_seeds);
    assert_eq!(d.engine.feeler_interval.as_secs(), 30);
    assert!(d.engine.isolate_every_connection);
    assert!(d.engine.onlynet.contains(NetworkId::Ipv6));
    assert!(!d.engine.onlynet.contains(NetworkId::Ipv4));
    assert_eq!(
        d.rpc.binds,
        vec![
            "127.0.0.1:4000".parse().unwrap(),
            "[::1]:1234".parse().unwrap()
        ]
    );
    assert_eq!(
        d.rpc.cookie_file,
        Path::new("/srv/nightjar/signet/auth/cookie")
    );
    assert_eq!(
        c.log_settings().debug,
        vec![DebugCategory::Net, DebugCategory::Rpc]
    );
}

#[test]
fn block_filters_are_off_with_one_decoy_by_default() {
    for c in [
        config::resolve(&cli(&[]).options, None, &env()).unwrap(),
        from_text("").unwrap(),
        from_text("maxoutbound = 4").unwrap(),
    ] {
        let s = &c.settings;
        assert!(!s.block_filters.value);
        assert_eq!(s.block_filters.source, Source::Default);
        assert_eq!(s.decoy_blocks.value, 1);
        assert_eq!(s.decoy_blocks.source, Source::Default);
        let d = c.daemon_options();
        assert!(!d.engine.block_filters);
        assert_eq!(d.engine.decoy_blocks, 1);
        let printed = c.to_toml();
        assert!(
            printed.contains("\nblock_filters = false  # default\n"),
            "{printed}"
        );
        assert!(
            printed.contains("\ndecoy_blocks = 1  # default\n"),
            "{printed}"
        );
    }
    // Each key alone, and the ends of decoy_blocks' range.
    let c = from_text("block_filters = true").unwrap();
    assert!(c.settings.block_filters.value && c.daemon_options().engine.block_filters);
    assert_eq!(c.settings.block_filters.source, Source::File);
    assert_eq!(c.daemon_options().engine.decoy_blocks, 1);
    for n in [0, 10] {
        let c = from_text(&format!("decoy_blocks = {n}")).unwrap();
        assert_eq!(c.settings.decoy_blocks.value, n);
        assert_eq!(c.settings.decoy_blocks.source, Source::File);
        assert_eq!(c.daemon_options().engine.decoy_blocks, n);
        assert!(!c.daemon_options().engine.block_filters);
    }
}

#[test]
fn the_shipped_example_is_exactly_the_defaults() {
    let path = repo_file("nightjar.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let from_file = config::resolve(&cli(&[]).options, Some((&path, &text)), &env()).unwrap();
    let defaults = config::resolve(&cli(&[]).options, None, &env()).unwrap();
    assert_eq!(values(&from_file), values(&defaults));
    assert!(from_file.warnings.is_empty(), "{:?}", from_file.warnings);
    // The file does set keys (it is not all comments).
    assert_eq!(from_file.settings.maxconnections.source, Source::File);
}

#[test]
fn the_shipped_example_documents_every_key() {
    let text = std::fs::read_to_string(repo_file("nightjar.toml")).unwrap();
    let mut table = String::new();
    let mut seen = Vec::new();
    for line in text.lines() {
        // `key = value`, or `# key = value` for keys whose default
        // depends on the system or the chain, or that belong to the
        // commented-out example `# [wallet.main]` table.
        let line = line.trim();
        let body = line.strip_prefix("# ").unwrap_or(line);
        if let Some(name) = body.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            table = format!("{name}.");
            continue;
        }
        if let Some((key, _)) = body.split_once(" = ")
            && !key.contains(' ')
        {
            seen.push(format!("{table}{key}"));
        }
    }
    let wallet_keys = config::file::wallet_keys()
        .iter()
        .map(|k| format!("wallet.main.{k}"));
    for key in config::file::all_keys().into_iter().chain(wallet_keys) {
        assert!(
            seen.contains(&key),
            "config/nightjar.toml does not document {key}"
        );
    }
}

#[test]
fn unknown_keys_are_named_with_a_suggestion() {
    assert_eq!(
        error("onlynett = [\"onion\"]"),
        "config error in /etc/nightjar/nightjar.toml: unknown key `onlynett`; did you mean `onlynet`?"
    );
    assert_eq!(
        error("[tor]\nisolaton = \"per-kind\""),
        "config error in /etc/nightjar/nightjar.toml: unknown key `tor.isolaton`; did you mean `isolation` in the [tor] table?"
    );
    let e = error("max_outbound = 3");
    assert!(
        e.contains("`max_outbound`") && e.contains("`maxoutbound`"),
        "{e}"
    );
    // Nothing close: the known keys are listed instead.
    let e = error("[log]\nwhatever = 1");
    assert!(
        e.contains("unknown key `log.whatever`")
            && e.contains("known keys in [log]: debug, sensitive"),
        "{e}"
    );
    // Bitcoin Core's filter options point to nightjar's.
    for core in ["blockfilterindex = 1", "peerblockfilters = true"] {
        let key = core.split(' ').next().unwrap();
        assert_eq!(
            error(core),
            format!(
                "config error in /etc/nightjar/nightjar.toml: unknown key `{key}`; did you mean `block_filters`?"
            )
        );
    }
    assert_eq!(
        error("[log]\nblock_filters = true"),
        "config error in /etc/nightjar/nightjar.toml: unknown key `log.block_filters`; did you mean `block_filters`?"
    );
    assert_eq!(
        error("decoy_block = 2"),
        "config error in /etc/nightjar/nightjar.toml: unknown key `decoy_block`; did you mean `decoy_blocks`?"
    );
    let e = error("[arti]\nx = 1");
    assert!(e.contains("unknown key `arti`"), "{e}");
}

#[test]
fn bad_values_name_the_key_the_value_and_the_fix() {
    assert_eq!(
        error("onlynet = [\"clearnet\"]"),
        "config error in /etc/nightjar/nightjar.toml: onlynet = [\"clearnet\"]: unknown network \"clearnet\"; use one of ipv4, ipv6, onion, i2p, cjdns"
    );
    assert_eq!(
        error("chain = \"mainnet\""),
        "config error in /etc/nightjar/nightjar.toml: chain = \"mainnet\": unknown chain \"mainnet\"; use one of main, testnet4, signet, regtest"
    );
    assert_eq!(
        error("dnsseed = 1"),
        "config error in /etc/nightjar/nightjar.toml: dnsseed = 1: expected true or false"
    );
    let e = error("addnode = [\"example.test\"]");
    assert!(
        e.contains("addnode = [\"example.test\"]") && e.contains("missing port"),
        "{e}"
    );
    let e = error("[tor]\nisolation = \"per-peer\"");
    assert!(
        e.contains("tor.isolation = \"per-peer\"") && e.contains("\"per-connection\""),
        "{e}"
    );
    for bad in ["8", "2000000"] {
        let e = error(&format!("[tor]\nmemory_limit_mib = {bad}"));
        assert!(
            e.contains(&format!("tor.memory_limit_mib = {bad}"))
                && e.contains("from 16 to 1048576"),
            "{e}"
        );
    }
    assert_eq!(
        error("block_filters = \"yes\""),
        "config error in /etc/nightjar/nightjar.toml: block_filters = \"yes\": expected true or false"
    );
    for bad in ["-1", "\"2\"", "1.5", "5000000000"] {
        assert_eq!(
            error(&format!("decoy_blocks = {bad}")),
            format!(
                "config error in /etc/nightjar/nightjar.toml: decoy_blocks = {bad}: expected a whole number from 0 to 10"
            )
        );
    }
    let e = error("[log]\ndebug = [\"mempool\"]");
    assert!(
        e.contains("log.debug = [\"mempool\"]") && e.contains("addrman"),
        "{e}"
    );
    let e = error("rpcbind = [\"localhost\"]");
    assert!(
        e.contains("rpcbind = [\"localhost\"]") && e.contains("127.0.0.1"),
        "{e}"
    );
    let e = error("rpcport = 70000");
    assert!(
        e.contains("rpcport = 70000") && e.contains("1 to 65535"),
        "{e}"
    );
}

#[test]
fn values_out_of_range_or_unsupported_are_refused_by_name() {
    assert_eq!(
        error("maxoutbound = 65"),
        "config error in /etc/nightjar/nightjar.toml: maxoutbound = 65: at most 64 outbound connections; use a number from 0 to 64"
    );
    for bad in [11, 1000] {
        assert_eq!(
            error(&format!("decoy_blocks = {bad}")),
            format!(
                "config error in /etc/nightjar/nightjar.toml: decoy_blocks = {bad}: use a number from 0 to 10 \
                 (each decoy is a whole block downloaded and discarded); the default is 1"
            )
        );
    }
    let e = error("bind = [\"127.0.0.1\"]");
    assert!(
        e.contains("bind = [\"127.0.0.1\"]") && e.contains("add listen = true"),
        "{e}"
    );
    let e = error("listen = true\nbind = [\"127.0.0.1:8334=onion\"]");
    assert!(
        e.contains("bind = [\"127.0.0.1:8334=onion\"]") && e.contains("not available"),
        "{e}"
    );
    let e = error("v2transport = false");
    assert!(
        e.contains("v2transport = false") && e.contains("v1fallback = true"),
        "{e}"
    );
    let e = error("feeler_interval_secs = 0");
    assert!(
        e.contains("feeler_interval_secs = 0") && e.contains("at least 1"),
        "{e}"
    );
    let e = error("onlynet = []");
    assert!(
        e.contains("onlynet = []") && e.contains("remove the key"),
        "{e}"
    );
    let e = error("[tor]\nnetwork_file = \"/nonexistent/net.toml\"");
    assert!(
        e.contains("tor.network_file") && e.contains("no such file"),
        "{e}"
    );
    let e = error(&format!(
        "addnode = [\"{ONION}:8333\"]\n[tor]\nenabled = false"
    ));
    assert!(
        e.contains("addnode") && e.contains("onion peers need Tor"),
        "{e}"
    );
}

#[test]
fn syntax_errors_give_file_line_and_column() {
    let e = error("chain = \"main\"\n\nmaxoutbound = = 3\n");
    assert!(
        e.starts_with("config error in /etc/nightjar/nightjar.toml, line 3, column 15: "),
        "{e}"
    );
    assert!(!e.contains('\n'), "one line: {e}");
    let e = error("listen = true\nlisten = false\n");
    assert!(e.contains("line 2") && e.contains("duplicate key"), "{e}");
}

#[test]
fn the_default_file_is_found_in_the_config_directory() {
    let dir = tempfile::tempdir().unwrap();
    let conf_dir = dir.path().to_path_buf();
    let lookup = conf_dir.clone();
    let env = Environment::new(
        move |name| (name == "CONFIGURATION_DIRECTORY").then(|| lookup.clone().into_os_string()),
        None,
    );
    let datadir = dir.path().join("data");
    let options = cli(&["--datadir", datadir.to_str().unwrap()]).options;

    // Absent: defaults, no error.
    let c = config::load(&options, &env).unwrap();
    assert_eq!(c.file, None);
    assert_eq!(c.describe_file(), "no file, defaults");

    std::fs::write(conf_dir.join("nightjar.toml"), "maxoutbound = 3\n").unwrap();
    let c = config::load(&options, &env).unwrap();
    assert_eq!(c.file, Some(conf_dir.join("nightjar.toml")));
    assert_eq!(c.settings.maxoutbound.value, 3);

    // --conf replaces it, and must exist.
    let other = dir.path().join("other.toml");
    std::fs::write(&other, "maxoutbound = 5\n").unwrap();
    let mut with_conf = options.clone();
    with_conf.conf = Some(other.clone());
    assert_eq!(
        config::load(&with_conf, &env)
            .unwrap()
            .settings
            .maxoutbound
            .value,
        5
    );
    with_conf.conf = Some(dir.path().join("missing.toml"));
    let e = config::load(&with_conf, &env).unwrap_err().to_string();
    assert!(
        e.contains("cannot read") && e.contains("missing.toml"),
        "{e}"
    );
}

#[test]
fn print_config_reads_back_to_the_same_settings() {
    let args = [
        "--privacy",
        "--network",
        "regtest",
        "--max-outbound",
        "3",
        "--addnode",
        "2gzyxa5ihm7nsggfxnu52rck2vv4rvmdlkiu3zzui5du4xyclen53wid.onion:18444",
        "--debug",
        "tor",
        "--block-filters",
        "--decoy-blocks",
        "4",
    ];
    let first = config::resolve(&cli(&args).options, None, &env()).unwrap();
    let printed = first.to_toml();
    let again = config::resolve(
        &cli(&[]).options,
        Some((Path::new("/tmp/printed.toml"), &printed)),
        &env(),
    )
    .unwrap();
    assert_eq!(values(&again), values(&first), "{printed}");
    assert_eq!(again.dirs.paths.chain_dir, first.dirs.paths.chain_dir);
    assert_eq!(again.settings.privacy.source, Source::File);
    assert!(again.settings.block_filters.value);
    assert_eq!(again.settings.block_filters.source, Source::File);
    assert_eq!(again.settings.decoy_blocks.value, 4);
    assert_eq!(again.settings.decoy_blocks.source, Source::File);
    assert!(
        printed.contains("\nblock_filters = true  # command line (--block-filters)\n"),
        "{printed}"
    );
    assert!(
        printed.contains("\ndecoy_blocks = 4  # command line (--decoy-blocks)\n"),
        "{printed}"
    );

    // Off and zero read back too (zero is not taken for "unset").
    let first = config::resolve(
        &cli(&["--no-block-filters", "--decoy-blocks", "0"]).options,
        Some((
            Path::new("/tmp/n.toml"),
            "block_filters = true\ndecoy_blocks = 9",
        )),
        &env(),
    )
    .unwrap();
    let printed = first.to_toml();
    let again = config::resolve(
        &cli(&[]).options,
        Some((Path::new("/tmp/printed.toml"), &printed)),
        &env(),
    )
    .unwrap();
    assert_eq!(values(&again), values(&first), "{printed}");
    assert!(!again.settings.block_filters.value);
    assert_eq!(again.settings.decoy_blocks.value, 0);
    assert_eq!(again.settings.decoy_blocks.source, Source::File);
}

#[test]
fn print_config_reads_back_when_paths_hold_control_characters() {
    // Found by the `config` fuzz target: a carriage return in a path was
    // copied into a comment of the printed file, where TOML forbids it.
    let text = "datadir = \"/srv/a\\rb\"\nrpccookiefile = \"c\\nookie\\u0007\"\n";
    let first = from_text(text).unwrap();
    let printed = first.to_toml();
    let again = config::resolve(
        &cli(&[]).options,
        Some((Path::new("/tmp/printed.toml"), &printed)),
        &env(),
    )
    .unwrap_or_else(|e| panic!("{e}\n{printed}"));
    assert_eq!(values(&again), values(&first), "{printed}");
    assert_eq!(again.dirs.paths.chain_dir, first.dirs.paths.chain_dir);
    assert!(printed.contains("\\r"), "{printed}");
}
