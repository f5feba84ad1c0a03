#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The command line against the file: default < file < command line for
//! every key; the directories under systemd; and the `nightjar` process's
//! `check-config`, `print-config` and refusal to start, none of which may
//! start Tor.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use nightjar::config::{self, Cli, Environment, Source};
use nightjar::paths::{DataDirOrigin, UserDirs};

const ONION: &str = "2gzyxa5ihm7nsggfxnu52rck2vv4rvmdlkiu3zzui5du4xyclen53wid.onion:8333";

fn user_dirs() -> UserDirs {
    UserDirs {
        data: "/home/u/.local/share/nightjar".into(),
        cache: "/home/u/.cache/nightjar".into(),
        config: "/home/u/.config/nightjar".into(),
    }
}

fn env() -> Environment {
    Environment::new(|_| None, Some(user_dirs()))
}

fn cli(args: &[&str]) -> Cli {
    let mut all = vec!["nightjar"];
    all.extend_from_slice(args);
    <Cli as clap::Parser>::try_parse_from(all).unwrap()
}

/// The printed line of `key` (in its table) with its source comment.
fn printed_line(c: &config::Config, table: &str, key: &str) -> String {
    let mut current = String::new();
    for line in c.to_toml().lines() {
        if let Some(t) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = t.to_owned();
        } else if current == table
            // An unset key (tor.network_file) is printed as a comment.
            && (line.starts_with(&format!("{key} = ")) || line.starts_with(&format!("# {key}: ")))
        {
            return line.to_owned();
        }
    }
    panic!("{table}.{key} not printed:\n{}", c.to_toml())
}

/// One key's precedence case.
struct Case {
    table: &'static str,
    key: &'static str,
    /// The file setting it.
    text: String,
    /// The command line setting it.
    args: Vec<String>,
    /// The value printed when only the file sets it.
    from_file: String,
    /// The value printed when both do.
    from_cli: String,
}

fn case(
    table: &'static str,
    key: &'static str,
    text: String,
    args: Vec<String>,
    from_file: String,
    from_cli: String,
) -> Case {
    Case {
        table,
        key,
        text,
        args,
        from_file,
        from_cli,
    }
}

/// For every key: the file's value beats the default, the command line's
/// beats the file's. The default is checked against a run with neither.
#[test]
fn each_key_follows_default_then_file_then_command_line() {
    let net_a = tempfile::NamedTempFile::new().unwrap();
    let net_b = tempfile::NamedTempFile::new().unwrap();
    let (a, b) = (
        net_a.path().display().to_string(),
        net_b.path().display().to_string(),
    );
    let cases: Vec<Case> = vec![
        case(
            "",
            "chain",
            "chain = \"signet\"".into(),
            vec!["--chain".into(), "regtest".into()],
            "\"signet\"".into(),
            "\"regtest\"".into(),
        ),
        case(
            "",
            "datadir",
            "datadir = \"/a\"".into(),
            vec!["--datadir".into(), "/b".into()],
            "\"/a\"".into(),
            "\"/b\"".into(),
        ),
        case(
            "",
            "onlynet",
            "onlynet = [\"onion\"]".into(),
            vec!["--onlynet".into(), "ipv6".into()],
            "[\"onion\"]".into(),
            "[\"ipv6\"]".into(),
        ),
        case(
            "",
            "connect",
            "connect = [\"10.0.0.1:8333\"]".into(),
            vec!["--connect".into(), "10.0.0.2:8333".into()],
            "[\"10.0.0.1:8333\"]".into(),
            "[\"10.0.0.2:8333\"]".into(),
        ),
        case(
            "",
            "addnode",
            format!("addnode = [\"{ONION}\"]"),
            vec!["--addnode".into(), "10.0.0.2:8333".into()],
            format!("[\"{ONION}\"]"),
            "[\"10.0.0.2:8333\"]".into(),
        ),
        case(
            "",
            "maxconnections",
            "maxconnections = 20".into(),
            vec!["--maxconnections".into(), "30".into()],
            "20".into(),
            "30".into(),
        ),
        case(
            "",
            "dnsseed",
            "dnsseed = false".into(),
            vec!["--dnsseed".into()],
            "false".into(),
            "true".into(),
        ),
        case(
            "",
            "fixedseeds",
            "fixedseeds = true".into(),
            vec!["--no-fixedseeds".into()],
            "true".into(),
            "false".into(),
        ),
        case(
            "",
            "rpcbind",
            "rpcbind = [\"::1\"]".into(),
            vec!["--rpcbind".into(), "127.0.0.2".into()],
            "[\"::1\"]".into(),
            "[\"127.0.0.2\"]".into(),
        ),
        case(
            "",
            "rpcport",
            "rpcport = 1000".into(),
            vec!["--rpcport".into(), "2000".into()],
            "1000".into(),
            "2000".into(),
        ),
        case(
            "",
            "rpccookiefile",
            "rpccookiefile = \"a\"".into(),
            vec!["--rpccookiefile".into(), "b".into()],
            "\"a\"".into(),
            "\"b\"".into(),
        ),
        case(
            "",
            "privacy",
            "privacy = true".into(),
            vec!["--no-privacy".into()],
            "true".into(),
            "false".into(),
        ),
        case(
            "",
            "v1fallback",
            "v1fallback = true".into(),
            vec!["--no-v1-fallback".into()],
            "true".into(),
            "false".into(),
        ),
        case(
            "",
            "maxoutbound",
            "maxoutbound = 4".into(),
            vec!["--max-outbound".into(), "2".into()],
            "4".into(),
            "2".into(),
        ),
        case(
            "",
            "feeler_interval_secs",
            "feeler_interval_secs = 60".into(),
            vec!["--feeler-interval".into(), "5".into()],
            "60".into(),
            "5".into(),
        ),
        case(
            "",
            "block_filters",
            "block_filters = true".into(),
            vec!["--no-block-filters".into()],
            "true".into(),
            "false".into(),
        ),
        case(
            "",
            "decoy_blocks",
            "decoy_blocks = 3".into(),
            vec!["--decoy-blocks".into(), "0".into()],
            "3".into(),
            "0".into(),
        ),
        case(
            "tor",
            "network_file",
            format!("[tor]\nnetwork_file = \"{a}\""),
            vec!["--tor-network".into(), b.clone()],
            format!("\"{a}\""),
            format!("\"{b}\""),
        ),
        case(
            "tor",
            "enabled",
            "[tor]\nenabled = true".into(),
            vec!["--no-tor".into()],
            "true".into(),
            "false".into(),
        ),
        case(
            "tor",
            "isolation",
            "[tor]\nisolation = \"per-connection\"".into(),
            vec!["--isolation".into(), "per-kind".into()],
            "\"per-connection\"".into(),
            "\"per-kind\"".into(),
        ),
        case(
            "tor",
            "memory_limit_mib",
            "[tor]\nmemory_limit_mib = 512".into(),
            vec!["--tor-memory-limit".into(), "64".into()],
            "512".into(),
            "64".into(),
        ),
        case(
            "log",
            "debug",
            "[log]\ndebug = [\"tor\"]".into(),
            vec![
                "--debug".into(),
                "net".into(),
                "--debug".into(),
                "rpc".into(),
            ],
            "[\"tor\"]".into(),
            "[\"net\", \"rpc\"]".into(),
        ),
        case(
            "log",
            "sensitive",
            "[log]\nsensitive = false".into(),
            vec!["--log-sensitive".into()],
            "false".into(),
            "true".into(),
        ),
    ];
    let defaults = config::resolve(&cli(&[]).options, None, &env()).unwrap();
    let file = Path::new("/etc/nightjar/nightjar.toml");
    for Case {
        table,
        key,
        text,
        args,
        from_file,
        from_cli,
    } in cases
    {
        let default_line = printed_line(&defaults, table, key);
        assert!(
            default_line.ends_with("# default") || default_line.contains("# default ("),
            "{default_line}"
        );

        let c = config::resolve(&cli(&[]).options, Some((file, &text)), &env())
            .unwrap_or_else(|e| panic!("{key}: {e}"));
        let line = printed_line(&c, table, key);
        assert!(
            line.starts_with(&format!("{key} = {from_file}  # file")),
            "{line}"
        );
        assert_ne!(
            line, default_line,
            "{key}: the file value must differ from the default"
        );

        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let c = config::resolve(&cli(&args).options, Some((file, &text)), &env())
            .unwrap_or_else(|e| panic!("{key}: {e}"));
        let line = printed_line(&c, table, key);
        assert!(
            line.starts_with(&format!("{key} = {from_cli}  # command line (")),
            "{key}: {line}"
        );
    }
}

#[test]
fn the_existing_flags_still_work() {
    let c = config::resolve(
        &cli(&[
            "--network",
            "regtest",
            "--datadir",
            "/d",
            "--connect",
            "10.0.0.1:18444",
            "--addnode",
            ONION,
            "--v1-fallback",
            "--no-dnsseed",
            "--max-outbound",
            "3",
            "--feeler-interval",
            "9",
        ])
        .options,
        None,
        &env(),
    )
    .unwrap();
    let d = c.daemon_options();
    assert_eq!(d.network, bitcoin::Network::Regtest);
    assert_eq!(d.paths.chain_dir, Path::new("/d/regtest"));
    assert_eq!(d.engine.connect.len(), 1);
    assert_eq!(d.engine.addnodes.len(), 1);
    assert!(d.engine.v1_fallback && !d.engine.dns_seeds);
    assert_eq!(d.engine.target_outbound, 3);
    assert_eq!(d.engine.feeler_interval, Duration::from_secs(9));
    assert_eq!(d.rpc.binds, vec!["127.0.0.1:18443".parse().unwrap()]);
    assert_eq!(d.rpc.cookie_file, Path::new("/d/regtest/.cookie"));
    assert_eq!(d.rpc.max_body, nightjar::rpc::DEFAULT_MAX_BODY);
    assert_eq!(
        d.rpc.request_timeout,
        nightjar::rpc::DEFAULT_REQUEST_TIMEOUT
    );
    assert_eq!(c.settings.chain.source, Source::CommandLine("--network"));
}

#[test]
fn block_filter_flags_override_the_file_and_reach_the_daemon() {
    let file = Path::new("/etc/nightjar/nightjar.toml");
    let text = "block_filters = false\ndecoy_blocks = 2\n";

    // The file alone.
    let c = config::resolve(&cli(&[]).options, Some((file, text)), &env()).unwrap();
    assert!(!c.settings.block_filters.value);
    assert_eq!(c.settings.block_filters.source, Source::File);
    assert_eq!(c.settings.decoy_blocks.value, 2);
    let d = c.daemon_options();
    assert!(!d.engine.block_filters);
    assert_eq!(d.engine.decoy_blocks, 2);

    // --block-filters turns the file's `false` on; --decoy-blocks replaces
    // its count.
    let c = config::resolve(
        &cli(&["--block-filters", "--decoy-blocks", "10"]).options,
        Some((file, text)),
        &env(),
    )
    .unwrap();
    assert!(c.settings.block_filters.value);
    assert_eq!(
        c.settings.block_filters.source,
        Source::CommandLine("--block-filters")
    );
    assert_eq!(c.settings.decoy_blocks.value, 10);
    assert_eq!(
        c.settings.decoy_blocks.source,
        Source::CommandLine("--decoy-blocks")
    );
    let d = c.daemon_options();
    assert!(d.engine.block_filters);
    assert_eq!(d.engine.decoy_blocks, 10);

    // The flag alone, no file: the decoy count keeps its default.
    let c = config::resolve(&cli(&["--block-filters"]).options, None, &env()).unwrap();
    let d = c.daemon_options();
    assert!(d.engine.block_filters);
    assert_eq!(d.engine.decoy_blocks, 1);
    assert_eq!(c.settings.decoy_blocks.source, Source::Default);
    // The flags work after a subcommand too.
    let c = config::resolve(
        &cli(&["print-config", "--block-filters", "--decoy-blocks", "0"]).options,
        None,
        &env(),
    )
    .unwrap();
    assert!(c.daemon_options().engine.block_filters);
    assert_eq!(c.daemon_options().engine.decoy_blocks, 0);

    // Neither: off, one decoy.
    let d = config::resolve(&cli(&[]).options, None, &env())
        .unwrap()
        .daemon_options();
    assert!(!d.engine.block_filters);
    assert_eq!(d.engine.decoy_blocks, 1);
}

#[test]
fn bad_command_line_values_name_the_flag() {
    let e = config::resolve(&cli(&["--rpcport", "0"]).options, None, &env())
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "config error: --rpcport 0: use a port number from 1 to 65535"
    );
    let e = config::resolve(&cli(&["--feeler-interval", "0"]).options, None, &env())
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("config error: --feeler-interval 0: "), "{e}");
    let e = config::resolve(&cli(&["--decoy-blocks", "11"]).options, None, &env())
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "config error: --decoy-blocks 11: use a number from 0 to 10 \
         (each decoy is a whole block downloaded and discarded); the default is 1"
    );
    // The command line's out-of-range value is refused even when the
    // file's is fine, and names the flag, not the file.
    let e = config::resolve(
        &cli(&["--decoy-blocks", "50"]).options,
        Some((Path::new("/etc/nightjar/nightjar.toml"), "decoy_blocks = 2")),
        &env(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.starts_with("config error: --decoy-blocks 50: use a number from 0 to 10"),
        "{e}"
    );
    let e = <Cli as clap::Parser>::try_parse_from(["nightjar", "--decoy-blocks", "many"])
        .unwrap_err()
        .to_string();
    assert!(e.contains("--decoy-blocks") && e.contains("many"), "{e}");
    // Parse errors are clap's, naming the flag and the value.
    let e = <Cli as clap::Parser>::try_parse_from(["nightjar", "--onlynet", "clearnet"])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("--onlynet") && e.contains("unknown network \"clearnet\""),
        "{e}"
    );
}

fn systemd_env(vars: &[(&'static str, &'static str)], user: Option<UserDirs>) -> Environment {
    let vars = vars.to_vec();
    Environment::new(
        move |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| OsString::from(v))
        },
        user,
    )
}

#[test]
fn directories_follow_systemd_then_xdg_and_yield_to_datadir() {
    let env = systemd_env(
        &[
            ("STATE_DIRECTORY", "/var/lib/nightjar"),
            ("CACHE_DIRECTORY", "/var/cache/nightjar"),
            ("CONFIGURATION_DIRECTORY", "/etc/nightjar"),
        ],
        Some(user_dirs()),
    );
    assert_eq!(
        env.default_config_file(),
        Some(PathBuf::from("/etc/nightjar/nightjar.toml"))
    );
    let c = config::resolve(&cli(&["--chain", "signet"]).options, None, &env).unwrap();
    assert_eq!(c.dirs.origin, DataDirOrigin::Systemd);
    assert_eq!(
        c.dirs.paths.chain_dir,
        Path::new("/var/lib/nightjar/signet")
    );
    assert_eq!(
        c.dirs.paths.tor_cache,
        Path::new("/var/cache/nightjar/signet/tor")
    );
    assert!(c.to_toml().contains("# default (systemd $STATE_DIRECTORY)"));
    assert_eq!(
        c.daemon_options().rpc.cookie_file,
        Path::new("/var/lib/nightjar/signet/.cookie")
    );

    // The file's datadir beats systemd; the command line beats the file.
    let file = Path::new("/etc/nightjar/nightjar.toml");
    let c = config::resolve(
        &cli(&[]).options,
        Some((file, "datadir = \"/srv/a\"")),
        &env,
    )
    .unwrap();
    assert_eq!(c.dirs.origin, DataDirOrigin::Explicit);
    assert_eq!(c.dirs.paths.tor_cache, Path::new("/srv/a/tor/cache"));
    let c = config::resolve(
        &cli(&["--datadir", "/srv/b"]).options,
        Some((file, "datadir = \"/srv/a\"")),
        &env,
    )
    .unwrap();
    assert_eq!(c.dirs.datadir, Path::new("/srv/b"));

    // No systemd: XDG. Nothing at all: a clear error.
    let c = config::resolve(&cli(&[]).options, None, &env_plain()).unwrap();
    assert_eq!(c.dirs.origin, DataDirOrigin::User);
    assert_eq!(
        c.dirs.paths.tor_cache,
        Path::new("/home/u/.cache/nightjar/tor")
    );
    let e = config::resolve(&cli(&[]).options, None, &systemd_env(&[], None))
        .unwrap_err()
        .to_string();
    assert!(e.contains("--datadir"), "{e}");
}

fn env_plain() -> Environment {
    env()
}

// ---- the process ----

/// Run `nightjar` with `args`, a throwaway HOME and no systemd or logging
/// variables from the caller; kill it if it is still running after `limit`
/// (it must never get that far: nothing here may start the node).
fn run(args: &[&str], home: &Path, limit: Duration) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_nightjar"));
    cmd.args(args)
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
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > limit {
            child.kill().unwrap();
            let out = child.wait_with_output().unwrap();
            panic!(
                "nightjar {args:?} was still running after {limit:?}: it started instead of refusing\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn check_config_says_ok_and_exits_zero() {
    let home = tempfile::tempdir().unwrap();
    let out = run(&["check-config"], home.path(), Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "configuration OK: no file, defaults\n");

    // The default file in ~/.config/nightjar is found.
    let conf_dir = home.path().join(".config/nightjar");
    std::fs::create_dir_all(&conf_dir).unwrap();
    std::fs::write(conf_dir.join("nightjar.toml"), "maxoutbound = 2\n").unwrap();
    let out = run(&["check-config"], home.path(), Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        format!(
            "configuration OK: {}\n",
            conf_dir.join("nightjar.toml").display()
        )
    );
    // Nothing was started, so nothing was created.
    assert!(!home.path().join(".local").exists());
}

#[test]
fn check_config_on_a_bad_file_prints_one_line_and_exits_one() {
    let home = tempfile::tempdir().unwrap();
    let conf = home.path().join("bad.toml");
    std::fs::write(&conf, "[tor]\nisolation = \"per-peer\"\n").unwrap();
    let out = run(
        &["check-config", "--conf", conf.to_str().unwrap()],
        home.path(),
        Duration::from_secs(30),
    );
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert_eq!(
        err,
        format!(
            "config error in {}: tor.isolation = \"per-peer\": unknown isolation \"per-peer\"; use \"per-kind\" or \"per-connection\"\n",
            conf.display()
        )
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn check_and_print_config_handle_the_block_filter_settings() {
    let home = tempfile::tempdir().unwrap();
    let conf = home.path().join("filters.toml");
    std::fs::write(&conf, "block_filters = true\ndecoy_blocks = 10\n").unwrap();
    let out = run(
        &["check-config", "--conf", conf.to_str().unwrap()],
        home.path(),
        Duration::from_secs(30),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        format!("configuration OK: {}\n", conf.display())
    );

    let out = run(
        &[
            "print-config",
            "--conf",
            conf.to_str().unwrap(),
            "--decoy-blocks",
            "3",
        ],
        home.path(),
        Duration::from_secs(30),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let printed = text(&out.stdout);
    assert!(
        printed.contains("\nblock_filters = true  # file\n"),
        "{printed}"
    );
    assert!(
        printed.contains("\ndecoy_blocks = 3  # command line (--decoy-blocks)\n"),
        "{printed}"
    );

    // Out of range in the file: one line naming the file, key and range.
    let bad = home.path().join("bad.toml");
    std::fs::write(&bad, "decoy_blocks = 11\n").unwrap();
    let out = run(
        &["check-config", "--conf", bad.to_str().unwrap()],
        home.path(),
        Duration::from_secs(30),
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        format!(
            "config error in {}: decoy_blocks = 11: use a number from 0 to 10 \
             (each decoy is a whole block downloaded and discarded); the default is 1\n",
            bad.display()
        )
    );
    assert!(out.stdout.is_empty());

    // Out of range on the command line: the flag is named.
    let out = run(
        &["check-config", "--decoy-blocks", "11"],
        home.path(),
        Duration::from_secs(30),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).starts_with("config error: --decoy-blocks 11: use a number from 0 to 10"),
        "{}",
        text(&out.stderr)
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn print_config_prints_every_key_with_its_source() {
    let home = tempfile::tempdir().unwrap();
    let conf = home.path().join("n.toml");
    std::fs::write(&conf, "maxconnections = 10\n").unwrap();
    let out = run(
        &[
            "print-config",
            "--conf",
            conf.to_str().unwrap(),
            "--max-outbound",
            "3",
        ],
        home.path(),
        Duration::from_secs(30),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let printed = text(&out.stdout);
    assert!(
        printed.contains("maxconnections = 10  # file\n"),
        "{printed}"
    );
    assert!(
        printed.contains("maxoutbound = 3  # command line (--max-outbound)\n"),
        "{printed}"
    );
    assert!(printed.contains("dnsseed = true  # default\n"), "{printed}");
    assert!(
        printed.contains("\nblock_filters = false  # default\n"),
        "{printed}"
    );
    assert!(
        printed.contains("\ndecoy_blocks = 1  # default\n"),
        "{printed}"
    );
    for key in config::file::all_keys() {
        let leaf = key.rsplit('.').next().unwrap();
        assert!(
            printed
                .lines()
                .any(|l| l.starts_with(&format!("{leaf} = "))
                    || l.starts_with(&format!("# {leaf}: "))),
            "{key} missing from print-config:\n{printed}"
        );
    }

    let out = run(
        &["print-config", "--privacy"],
        home.path(),
        Duration::from_secs(30),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let printed = text(&out.stdout);
    assert!(
        printed.contains("onlynet = [\"onion\"]  # privacy preset\n"),
        "{printed}"
    );
    assert!(
        printed.contains("privacy = true  # command line (--privacy)\n"),
        "{printed}"
    );
}

#[test]
fn a_privacy_contradiction_stops_the_daemon_before_anything_starts() {
    let home = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let out = run(
        &[
            "--privacy",
            "--addnode",
            "127.0.0.1:8333",
            "--datadir",
            data.path().to_str().unwrap(),
        ],
        home.path(),
        Duration::from_secs(30),
    );
    assert_ne!(out.status.code(), Some(0));
    assert!(
        out.status.code().is_some(),
        "killed by a signal: {:?}",
        out.status
    );
    let err = text(&out.stderr);
    assert_eq!(
        err,
        "config error: --privacy contradicts: addnode 127.0.0.1:8333 is not an onion peer (--addnode); \
         the privacy preset fails closed: remove it or turn privacy off\n"
    );
    // The daemon creates its data directory first thing and logs "nightjar
    // starting" before Tor; neither happened.
    assert_eq!(std::fs::read_dir(data.path()).unwrap().count(), 0);
    assert!(std::fs::read_dir(home.path()).unwrap().next().is_none());
}

#[test]
fn refused_options_stop_the_daemon_too() {
    let home = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let out = run(
        &[
            "--bind",
            "127.0.0.1:8334",
            "--datadir",
            data.path().to_str().unwrap(),
        ],
        home.path(),
        Duration::from_secs(30),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("bind only applies to listening; add listen = true"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(std::fs::read_dir(data.path()).unwrap().count(), 0);
}

#[test]
fn log_sensitive_turns_redaction_off_for_as_long_as_the_guard_lives() {
    // The only test in this process touching safelog's global state.
    let shown = || format!("{}", safelog::sensitive("10.0.0.1:8333"));
    assert_eq!(shown(), "[scrubbed]");
    let c = config::resolve(&cli(&["--log-sensitive"]).options, None, &env()).unwrap();
    let guard = nightjar::logging::init(&c.log_settings());
    assert!(guard.shows_sensitive());
    assert_eq!(shown(), "10.0.0.1:8333");
    drop(guard);
    assert_eq!(shown(), "[scrubbed]");

    let guard = nightjar::logging::init(&nightjar::logging::LogSettings::default());
    assert!(!guard.shows_sensitive());
    assert_eq!(shown(), "[scrubbed]");
}
