//! The data directory on a full or read-only file system (issue 16, item
//! 5): a clear error, no corruption, and a retry once space is back.
//!
//! Each daemon runs in a mount namespace of its own (`unshare --user
//! --mount`) with a small tmpfs mounted over its chain directory, so the
//! file system can fill up without touching the machine's disks. The test
//! reaches the daemon's files through `/proc/<pid>/root`, which sees that
//! namespace's mounts; the RPC cookie lives outside the tmpfs.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr
)]

#[path = "support/daemon_log.rs"]
mod daemon_log;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bitcoin::Network;
use daemon_log::Daemon;
use nightjar::chain::HeaderChain;
use nightjar::chain::regtest_miner::mine_regtest_chain_until;
use nightjar::chain::store::{FILE_HEADER_LEN, RECORD_LEN};
use nightjar_testpeer::node::{NodeSpec, PeerFarm};
use serde_json::Value;
use tempfile::TempDir;

const LIMIT: Duration = Duration::from_secs(120);

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Whether this kernel lets an unprivileged user namespace mount a tmpfs.
/// CI runs as root with user namespaces on, so there a refusal fails.
fn namespaces_available() -> bool {
    let ok = Command::new("unshare")
        .args(["--user", "--map-root-user", "--mount", "true"])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI needs `unshare --user --mount` for the full-disk tests"
        );
        eprintln!("SKIP: no user/mount namespaces here");
    }
    ok
}

/// A daemon whose chain directory is a tmpfs of `size_kib`, holding a
/// ballast file of `ballast_kib` so that it is nearly full from the start.
struct SmallDisk {
    daemon: Daemon,
    /// Holds `--datadir`; the chain directory inside is the tmpfs.
    datadir: TempDir,
    rpc_port: u16,
}

impl SmallDisk {
    fn spawn(size_kib: u64, ballast_kib: u64, read_only: bool, args: &[String]) -> SmallDisk {
        let datadir = tempfile::tempdir().unwrap();
        let chain_dir = datadir.path().join("regtest");
        std::fs::create_dir(&chain_dir).unwrap();
        let rpc_port = nightjar_testpeer::free_port().unwrap();
        // Mount, fill with ballast, optionally make read-only, then become
        // the daemon (exec keeps the PID, so the test's PID is nightjar's).
        let script = r#"set -e
            mount -t tmpfs -o "size=${1}k" tmpfs "$2"
            if [ "$3" -gt 0 ]; then head -c "$(( $3 * 1024 ))" /dev/zero > "$2/ballast"; fi
            if [ "$4" = ro ]; then mount -o remount,ro "$2"; fi
            shift 4
            exec "$@""#;
        let mut cmd = Command::new("unshare");
        cmd.args([
            "--user",
            "--map-root-user",
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            script,
            "sh",
        ])
        .arg(size_kib.to_string())
        .arg(&chain_dir)
        .arg(ballast_kib.to_string())
        .arg(if read_only { "ro" } else { "rw" })
        .arg(env!("CARGO_BIN_EXE_nightjar"))
        .args(["--network", "regtest", "--datadir"])
        .arg(datadir.path())
        .arg(format!("--rpcport={rpc_port}"))
        .arg(format!(
            "--rpccookiefile={}",
            cookie(datadir.path()).display()
        ))
        .args(["--no-tor", "--no-dnsseed", "--log-sensitive"])
        .args(args)
        .env("HOME", datadir.path())
        .env_remove("RUST_LOG");
        let daemon = Daemon::spawn(cmd).unwrap();
        SmallDisk {
            daemon,
            datadir,
            rpc_port,
        }
    }

    /// A path inside the daemon's chain directory, as the test sees it.
    fn chain_file(&self, name: &str) -> PathBuf {
        let inside = self.datadir.path().join("regtest").join(name);
        let relative = inside.strip_prefix("/").unwrap();
        Path::new("/proc")
            .join(self.daemon.pid().to_string())
            .join("root")
            .join(relative)
    }

    fn rpc(&self, args: &[&str]) -> Option<Value> {
        let out = Command::new(env!("CARGO_BIN_EXE_nightjar-cli"))
            .arg("-regtest")
            .arg(format!("-rpcport={}", self.rpc_port))
            .arg(format!(
                "-rpccookiefile={}",
                cookie(self.datadir.path()).display()
            ))
            .arg("-rpcwait")
            .arg("-rpcclienttimeout=30")
            .args(args)
            .output()
            .unwrap();
        if !out.status.success() {
            return None;
        }
        let text = String::from_utf8(out.stdout).unwrap();
        let text = text.trim();
        Some(serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned())))
    }

    fn block_count(&self) -> Option<u64> {
        self.rpc(&["getblockcount"]).and_then(|v| v.as_u64())
    }

    fn wait_for(&mut self, what: &str, mut ready: impl FnMut(&SmallDisk) -> bool) {
        let deadline = Instant::now() + LIMIT;
        while Instant::now() < deadline {
            if ready(self) {
                self.daemon.pump(Duration::ZERO);
                return;
            }
            self.daemon.pump(Duration::from_millis(200));
            assert!(
                !self.daemon.exited(),
                "nightjar exited while waiting for {what}:\n{}",
                self.daemon.lines().join("\n")
            );
        }
        panic!(
            "no {what} within {LIMIT:?}; log:\n{}",
            self.daemon.lines().join("\n")
        );
    }

    /// The chain `headers.dat` holds right now, loaded by the real loader
    /// from a copy, and the file's length.
    fn headers_on_disk(&self) -> (u32, u64) {
        let copy = tempfile::tempdir().unwrap();
        let path = copy.path().join("headers.dat");
        std::fs::copy(self.chain_file("headers.dat"), &path).unwrap();
        let len = std::fs::metadata(&path).unwrap().len();
        let loaded = HeaderChain::load_or_new(&path, Network::Regtest).unwrap();
        (loaded.chain.height(), len)
    }
}

fn cookie(datadir: &Path) -> PathBuf {
    datadir.join("rpc.cookie")
}

/// A full disk: appends fail with a clear error and are cut back whole,
/// the node keeps running and answering, and once space is free the next
/// batch saves everything that was missing.
#[test]
fn a_full_disk_loses_nothing_and_recovers() {
    if !namespaces_available() {
        return;
    }
    let full = 6_000;
    let chain = mine_regtest_chain_until(full, unix_now());
    let farm = PeerFarm::new().unwrap();
    let source = farm
        .start_node(NodeSpec::regtest("source").with_headers(chain[..full - 500].to_vec()))
        .unwrap();
    // 1 MiB with 800 KiB of ballast: room for about 2 500 headers of the
    // 5 500 offered, after the other files.
    let mut node = SmallDisk::spawn(
        1024,
        800,
        false,
        &["--connect".to_owned(), source.addr().to_string()],
    );
    node.wait_for("the whole chain in memory", |n| {
        n.block_count() == Some((full - 500) as u64)
    });
    let reported = node.daemon.wait_until(LIMIT, |lines| {
        lines
            .iter()
            .any(|l| l.contains("headers.dat") && l.contains("No space left on device"))
    });
    assert!(
        reported,
        "no full-disk error:\n{}",
        node.daemon.lines().join("\n")
    );

    // What is on disk is a clean prefix: whole records, and it loads.
    let (saved, len) = node.headers_on_disk();
    assert!(
        saved > 0 && (saved as usize) < full - 500,
        "saved {saved} headers"
    );
    assert_eq!(
        (len as usize - FILE_HEADER_LEN) % RECORD_LEN,
        0,
        "headers.dat ends on a record boundary"
    );
    assert_eq!(
        (len as usize - FILE_HEADER_LEN) / RECORD_LEN,
        saved as usize
    );
    eprintln!("disk full after {saved} of {} headers", full - 500);

    // Free the space; the next batch brings the file up to date.
    std::fs::remove_file(node.chain_file("ballast")).unwrap();
    source.set_headers(chain.clone());
    node.wait_for("the longer chain", |n| n.block_count() == Some(full as u64));
    let deadline = Instant::now() + LIMIT;
    loop {
        let (saved, _) = node.headers_on_disk();
        if saved as usize == full {
            break;
        }
        assert!(Instant::now() < deadline, "headers.dat stuck at {saved}");
        std::thread::sleep(Duration::from_millis(200));
    }
    node.daemon.terminate(Duration::from_secs(30)).unwrap();
}

/// A read-only data directory: the daemon refuses to start, says which
/// directory and why, and exits with a failure status.
#[test]
fn a_read_only_datadir_is_refused_clearly() {
    if !namespaces_available() {
        return;
    }
    let mut node = SmallDisk::spawn(256, 0, true, &[]);
    let deadline = Instant::now() + LIMIT;
    while !node.daemon.exited() {
        assert!(Instant::now() < deadline, "the daemon kept running");
        node.daemon.pump(Duration::from_millis(200));
    }
    let status = node.daemon.exit_status().unwrap();
    assert!(!status.success(), "exit status {status:?}");
    let log = node.daemon.lines().join("\n");
    assert!(
        log.contains("Read-only file system")
            && log.contains("regtest")
            && log.contains("--datadir"),
        "{log}"
    );
    assert_eq!(log.matches("os error 30").count(), 1, "said once: {log}");
}
