//! A `nightjar` process on regtest with its own data directory and RPC
//! port, driven through `nightjar-cli` as a user would. Shared by the
//! end-to-end tests (`#[path]`-included next to `daemon_log.rs`).

#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::ffi::OsString;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

use crate::daemon_log::Daemon;

/// A running regtest `nightjar` and where it keeps its files.
pub struct Nightjar {
    /// The process and its log.
    pub daemon: Daemon,
    /// Its `--datadir`.
    pub datadir: TempDir,
    /// Its `--rpcport`.
    pub rpc_port: u16,
}

impl Nightjar {
    /// Start `nightjar --network regtest` with `args` (peers, Tor options),
    /// a fresh data directory, a free RPC port and peer addresses shown in
    /// the log.
    pub fn spawn<I, S>(args: I) -> Nightjar
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        Self::spawn_in(tempfile::tempdir().unwrap(), args)
    }

    /// [`spawn`](Self::spawn) in an existing data directory (a restart).
    pub fn spawn_in<I, S>(datadir: TempDir, args: I) -> Nightjar
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        Self::spawn_under(&[], datadir, args)
    }

    /// [`spawn_in`](Self::spawn_in) with `wrapper` (a program and its
    /// arguments, e.g. `strace -f -o FILE`) in front of the daemon. The log
    /// is the wrapper's stderr; `daemon.pid()` and [`stop`](Self::stop) are
    /// the daemon's ([`Daemon::spawn_wrapped`]).
    pub fn spawn_under<I, S>(wrapper: &[OsString], datadir: TempDir, args: I) -> Nightjar
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        let rpc_port = nightjar_testpeer::free_port().unwrap();
        let exe = OsString::from(env!("CARGO_BIN_EXE_nightjar"));
        let (program, wrapper_args) = match wrapper.split_first() {
            Some((program, rest)) => (program.clone(), [rest, &[exe]].concat()),
            None => (exe, Vec::new()),
        };
        let mut cmd = Command::new(program);
        cmd.args(wrapper_args)
            .args(["--network", "regtest", "--datadir"])
            .arg(datadir.path())
            .arg("--rpcport")
            .arg(rpc_port.to_string())
            .args(args.into_iter().map(Into::into))
            .env("HOME", datadir.path())
            // The daemon's own default (info) or its `--debug` categories;
            // a developer's RUST_LOG would override both.
            .env_remove("RUST_LOG");
        let daemon = match wrapper {
            [] => Daemon::spawn(cmd),
            _ => Daemon::spawn_wrapped(cmd, "nightjar"),
        }
        .unwrap();
        Nightjar {
            daemon,
            datadir,
            rpc_port,
        }
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        self.datadir.path()
    }

    /// One call through `nightjar-cli` (which waits for the server); the
    /// JSON result, a bare string for string results, `None` on an error.
    pub fn rpc(&self, args: &[&str]) -> Option<Value> {
        self.call(args).ok()
    }

    /// [`rpc`](Self::rpc), with the client's error output on failure.
    pub fn call(&self, args: &[&str]) -> Result<Value, String> {
        let out = Command::new(env!("CARGO_BIN_EXE_nightjar-cli"))
            .arg(format!("-datadir={}", self.dir().display()))
            .arg("-regtest")
            .arg(format!("-rpcport={}", self.rpc_port))
            .arg("-rpcwait")
            .args(args)
            .output()
            .unwrap();
        if !out.status.success() {
            return Err(format!(
                "nightjar-cli {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        let text = String::from_utf8(out.stdout).unwrap();
        let text = text.trim();
        Ok(serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned())))
    }

    /// `getpeerinfo`, one object per peer (empty if the call failed).
    pub fn peers(&self) -> Vec<Value> {
        match self.rpc(&["getpeerinfo"]) {
            Some(Value::Array(p)) => p,
            _ => Vec::new(),
        }
    }

    /// `getblockcount`.
    pub fn block_count(&self) -> Option<u64> {
        self.rpc(&["getblockcount"]).and_then(|v| v.as_u64())
    }

    /// `getbestblockhash`.
    pub fn best_hash(&self) -> Option<String> {
        self.rpc(&["getbestblockhash"])
            .and_then(|v| v.as_str().map(str::to_owned))
    }

    /// Poll `ready` (reading the log meanwhile) until it holds; panics with
    /// the daemon's log if it exits or `limit` passes.
    pub fn wait_for(
        &mut self,
        limit: Duration,
        what: &str,
        mut ready: impl FnMut(&Nightjar) -> bool,
    ) {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if ready(self) {
                // Take in what the daemon logged meanwhile.
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
            "nightjar: no {what} within {limit:?}; its log:\n{}",
            self.daemon.lines().join("\n")
        );
    }

    /// SIGTERM and a clean exit; the whole log.
    pub fn stop(self) -> Vec<String> {
        self.stop_keeping_data().0
    }

    /// [`stop`](Self::stop), handing back the data directory for a restart.
    pub fn stop_keeping_data(mut self) -> (Vec<String>, TempDir) {
        let status = self.daemon.terminate(Duration::from_secs(30)).unwrap();
        assert!(
            status.is_some_and(|s| s.success()),
            "no clean exit ({status:?}):\n{}",
            self.daemon.lines().join("\n")
        );
        (self.daemon.lines().to_vec(), self.datadir)
    }

    /// SIGKILL by PID (as `kill -9` from a shell), wait until the process
    /// is gone, and hand back its log and data directory for a restart.
    pub fn sigkill_keeping_data(mut self) -> (Vec<String>, TempDir) {
        let sent = Command::new("kill")
            .args(["-KILL", &self.daemon.pid().to_string()])
            .status()
            .unwrap();
        assert!(sent.success(), "kill -KILL failed: {sent}");
        let deadline = Instant::now() + Duration::from_secs(60);
        while !self.daemon.exited() {
            assert!(Instant::now() < deadline, "still running after SIGKILL");
            self.daemon.pump(Duration::from_millis(5));
        }
        self.daemon.pump(Duration::ZERO);
        (self.daemon.lines().to_vec(), self.datadir)
    }
}
