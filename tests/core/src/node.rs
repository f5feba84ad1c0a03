//! One regtest `bitcoind` process and its RPC client.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bitcoin::{Address, BlockHash, Network, ScriptBuf};
use serde_json::Value;

use crate::CoreBinaries;

/// How long a fresh regtest node may take to answer RPC: under a second
/// normally, far more for a debug-built Core on a loaded two-core machine.
const START_LIMIT: Duration = Duration::from_secs(120);

/// How long `stop` may take before the process is killed.
const STOP_LIMIT: Duration = Duration::from_secs(60);

/// Blocks per `generatetoaddress` call, so one call never runs into
/// `bitcoin-cli`'s client timeout.
const MINE_BATCH: usize = 1000;

/// How a [`CoreNode`] is set up. Start from [`CoreConfig::regtest`].
#[derive(Debug, Clone)]
pub struct CoreConfig {
    /// A name for logs and error messages.
    pub name: String,
    /// `-v2transport`: BIP324 for inbound and outbound connections.
    pub v2transport: bool,
    /// The P2P port on 127.0.0.1; a free one if `None`. Fix it when an
    /// onion service must forward to it.
    pub p2p_port: Option<u16>,
    /// A SOCKS5 proxy for onion addresses (`-onion=`): the private Tor
    /// network's SOCKS port lets Core dial onion services.
    pub onion_proxy: Option<SocketAddr>,
    /// Peers to connect to, and only to (`-connect`); none if empty.
    pub connect: Vec<String>,
    /// More `bitcoin.conf` lines for the `[regtest]` section, e.g.
    /// `cjdnsreachable=1`.
    pub extra: Vec<String>,
    /// Where to keep the data directory; a temporary one if `None`.
    pub datadir: Option<PathBuf>,
}

impl CoreConfig {
    /// A regtest node with BIP324 on, a free port and a temporary datadir.
    pub fn regtest(name: &str) -> CoreConfig {
        CoreConfig {
            name: name.to_owned(),
            v2transport: true,
            p2p_port: None,
            onion_proxy: None,
            connect: Vec::new(),
            extra: Vec::new(),
            datadir: None,
        }
    }

    /// Set `-v2transport`.
    pub fn v2transport(mut self, on: bool) -> CoreConfig {
        self.v2transport = on;
        self
    }

    /// Listen on this port (e.g. an onion service's backend).
    pub fn p2p_port(mut self, port: u16) -> CoreConfig {
        self.p2p_port = Some(port);
        self
    }

    /// Reach onion addresses through this SOCKS5 proxy.
    pub fn onion_proxy(mut self, socks: SocketAddr) -> CoreConfig {
        self.onion_proxy = Some(socks);
        self
    }

    /// Connect to `peer` (`host:port`, an onion name needs
    /// [`onion_proxy`](Self::onion_proxy)) and make no other outbound
    /// connection.
    pub fn connect(mut self, peer: &str) -> CoreConfig {
        self.connect.push(peer.to_owned());
        self
    }

    /// One more `bitcoin.conf` line (`key=value`).
    pub fn conf(mut self, line: &str) -> CoreConfig {
        self.extra.push(line.to_owned());
        self
    }

    /// Keep the data directory at `dir` (created if missing).
    pub fn datadir(mut self, dir: PathBuf) -> CoreConfig {
        self.datadir = Some(dir);
        self
    }

    /// The `bitcoin.conf` text for `p2p`/`rpc` ports.
    fn conf_text(&self, p2p: u16, rpc: u16) -> String {
        let mut lines = vec![
            "regtest=1".to_owned(),
            "[regtest]".to_owned(),
            "server=1".to_owned(),
            // -connect turns listening off by default; we want inbound.
            "listen=1".to_owned(),
            format!("bind=127.0.0.1:{p2p}"),
            format!("port={p2p}"),
            "rpcbind=127.0.0.1".to_owned(),
            "rpcallowip=127.0.0.1".to_owned(),
            format!("rpcport={rpc}"),
            format!("v2transport={}", u8::from(self.v2transport)),
            // Nothing that could leave the machine: no seeds, no automatic
            // outbound connections (only `addnode`), no address discovery,
            // no port mapping, no Tor control port.
            "dnsseed=0".to_owned(),
            "fixedseeds=0".to_owned(),
            "discover=0".to_owned(),
            "natpmp=0".to_owned(),
            "listenonion=0".to_owned(),
            "printtoconsole=0".to_owned(),
            "shrinkdebugfile=0".to_owned(),
            // Regtest turns on Core's internal consistency checks, which a
            // user's node never runs; `checkblockindex` walks the whole block
            // index after every block, making long chains quadratic to mine
            // and sync, and would skew any timing against Core.
            "checkblockindex=0".to_owned(),
            "checkmempool=0".to_owned(),
            // The net category shows every version message Core receives,
            // so tests can say what a peer did or did not send.
            "debug=net".to_owned(),
        ];
        if self.connect.is_empty() {
            lines.push("connect=0".to_owned());
        }
        lines.extend(self.connect.iter().map(|c| format!("connect={c}")));
        if let Some(socks) = self.onion_proxy {
            lines.push(format!("onion={socks}"));
        }
        lines.extend(self.extra.iter().cloned());
        lines.join("\n") + "\n"
    }
}

/// A running regtest `bitcoind`. Stopped (by PID) when dropped; it also
/// gets SIGTERM if the thread that started it ends first (Linux's
/// parent-death signal), so start it on the thread that owns it.
#[derive(Debug)]
pub struct CoreNode {
    name: String,
    bins: CoreBinaries,
    child: Child,
    datadir: PathBuf,
    _tempdir: Option<tempfile::TempDir>,
    p2p: SocketAddr,
    exit: Option<ExitStatus>,
}

/// How many times `bitcoind` is started when it cannot bind its ports.
const START_ATTEMPTS: u32 = 5;

impl CoreNode {
    /// Write `bitcoin.conf`, start `bitcoind` and wait until it answers RPC.
    ///
    /// The ports are chosen free but not held (`bitcoind` binds them
    /// itself), so another process may take one meanwhile, if only as the
    /// local port of a connection. When `bitcoind` cannot bind, it is
    /// started again, on freshly chosen ports (a fixed `p2p_port` stays and
    /// is waited for).
    pub fn start(bins: &CoreBinaries, config: CoreConfig) -> Result<CoreNode> {
        let (datadir, tempdir) = match &config.datadir {
            Some(d) => {
                std::fs::create_dir_all(d)?;
                (d.clone(), None)
            }
            None => {
                let t = tempfile::Builder::new()
                    .prefix("nightjar-core-")
                    .tempdir()?;
                (t.path().to_path_buf(), Some(t))
            }
        };
        let mut attempt = 1;
        loop {
            let mut node = CoreNode::spawn(bins, &config, datadir.clone())?;
            let started = node.wait_for(START_LIMIT, "RPC to answer", |n| {
                Ok(n.cli(&["getblockchaininfo"]).is_ok())
            });
            match started {
                Ok(()) => {
                    node._tempdir = tempdir;
                    return Ok(node);
                }
                Err(_)
                    if attempt < START_ATTEMPTS && node.debug_log().contains("Unable to bind") =>
                {
                    attempt += 1;
                    drop(node);
                    // The next attempt's log is read for the same line.
                    let _ = std::fs::remove_file(datadir.join("regtest").join("debug.log"));
                    std::thread::sleep(Duration::from_secs(1));
                }
                Err(e) => {
                    // Start-up errors come long before the shutdown lines
                    // the tail shows.
                    let log = node.debug_log();
                    let errors: Vec<&str> = log
                        .lines()
                        .filter(|l| l.contains("Error") || l.contains("rror:"))
                        .collect();
                    return Err(e.context(format!("its errors: {errors:?}")));
                }
            }
        }
    }

    /// One `bitcoind` process in `datadir`, its `bitcoin.conf` written
    /// with the configured P2P port or a free one, and a free RPC port.
    fn spawn(bins: &CoreBinaries, config: &CoreConfig, datadir: PathBuf) -> Result<CoreNode> {
        let p2p_port = match config.p2p_port {
            Some(p) => p,
            None => free_port()?,
        };
        let rpc_port = free_port()?;
        std::fs::write(
            datadir.join("bitcoin.conf"),
            config.conf_text(p2p_port, rpc_port),
        )?;
        let mut command = Command::new(&bins.bitcoind);
        command
            .arg(format!("-datadir={}", datadir.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        exit_with_parent(&mut command);
        let child = command
            .spawn()
            .with_context(|| format!("starting {}", bins.bitcoind.display()))?;
        Ok(CoreNode {
            name: config.name.clone(),
            bins: bins.clone(),
            child,
            datadir,
            _tempdir: None,
            p2p: SocketAddr::from((Ipv4Addr::LOCALHOST, p2p_port)),
            exit: None,
        })
    }

    /// The name given in its config.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Where it listens for peers.
    pub fn p2p_addr(&self) -> SocketAddr {
        self.p2p
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its data directory (`bitcoin.conf` is there, the chain in `regtest/`).
    pub fn datadir(&self) -> &Path {
        &self.datadir
    }

    /// Run `bitcoin-cli` with `args` against this node; its trimmed stdout.
    /// `bitcoin-cli` converts numeric and JSON arguments as it does for a
    /// user (`generatetoaddress 10 <addr>`, `addnode <host:port> onetry`).
    pub fn cli(&self, args: &[&str]) -> Result<String> {
        let out = Command::new(&self.bins.bitcoin_cli)
            .arg(format!("-datadir={}", self.datadir.display()))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("running {}", self.bins.bitcoin_cli.display()))?;
        if !out.status.success() {
            bail!(
                "{}: bitcoin-cli {} failed ({}): {}",
                self.name,
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    /// [`cli`](Self::cli) for a method that returns JSON.
    pub fn rpc(&self, args: &[&str]) -> Result<Value> {
        let text = self.cli(args)?;
        serde_json::from_str(&text)
            .with_context(|| format!("{}: {} returned no JSON: {text}", self.name, args[0]))
    }

    /// `getblockchaininfo.headers`.
    pub fn header_count(&self) -> Result<u64> {
        self.rpc(&["getblockchaininfo"])?["headers"]
            .as_u64()
            .context("getblockchaininfo without headers")
    }

    /// `getbestblockhash`.
    pub fn best_block_hash(&self) -> Result<BlockHash> {
        Ok(self.cli(&["getbestblockhash"])?.parse()?)
    }

    /// `getpeerinfo`, one JSON object per peer.
    pub fn peers(&self) -> Result<Vec<Value>> {
        match self.rpc(&["getpeerinfo"])? {
            Value::Array(peers) => Ok(peers),
            other => bail!("getpeerinfo returned {other}"),
        }
    }

    /// Mine `n` blocks paying [`anyone_can_spend_address`]; their hashes.
    pub fn mine(&self, n: usize) -> Result<Vec<BlockHash>> {
        self.mine_to(n, &anyone_can_spend_address())
    }

    /// Mine `n` blocks paying [`anyone_can_spend_address`], one second
    /// apart, the last about a minute ago. Core dates a block no earlier
    /// than its parent's median time past + 1, so blocks mined faster than
    /// one a second creep ahead of the clock (about 0.2 s a block) until they
    /// reach the two-hour future limit, after which mining waits for the
    /// clock. For long chains Core's clock is set back instead
    /// (`setmocktime`), moved one second per block as the batches go, and
    /// restored after.
    pub fn mine_dated_back(&self, n: usize) -> Result<Vec<BlockHash>> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs();
        let start = now - n as u64 - 60;
        let address = anyone_can_spend_address();
        let mut hashes = Vec::with_capacity(n);
        while hashes.len() < n {
            let clock = start + hashes.len() as u64;
            self.cli(&["setmocktime", &clock.to_string()])?;
            let batch = (n - hashes.len()).min(MINE_BATCH);
            hashes.extend(self.mine_to(batch, &address)?);
        }
        self.cli(&["setmocktime", "0"])?;
        Ok(hashes)
    }

    /// Mine `n` blocks paying `address`. After `invalidateblock`, mine the
    /// new branch to another address than the old one: the same parent,
    /// time and payee would give the very block just invalidated.
    pub fn mine_to(&self, n: usize, address: &Address) -> Result<Vec<BlockHash>> {
        let address = address.to_string();
        let mut hashes = Vec::with_capacity(n);
        while hashes.len() < n {
            let batch = (n - hashes.len()).min(MINE_BATCH).to_string();
            let mined = self.rpc(&["generatetoaddress", &batch, &address])?;
            for h in mined
                .as_array()
                .context("generatetoaddress returned no array")?
            {
                hashes.push(h.as_str().context("a block hash")?.parse()?);
            }
        }
        Ok(hashes)
    }

    /// Poll `ready` (every 100 ms) until it returns `true`; fail if the
    /// process exits or `limit` passes. A `ready` error is treated as "not
    /// yet" and reported if time runs out.
    pub fn wait_for(
        &mut self,
        limit: Duration,
        what: &str,
        mut ready: impl FnMut(&CoreNode) -> Result<bool>,
    ) -> Result<()> {
        let deadline = Instant::now() + limit;
        let mut last_error = None;
        loop {
            match ready(self) {
                Ok(true) => return Ok(()),
                Ok(false) => {}
                Err(e) => last_error = Some(e),
            }
            if let Some(status) = self.exit_status() {
                bail!(
                    "{}: bitcoind exited ({status}) while waiting for {what}; {}",
                    self.name,
                    self.log_tail(20)
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "{}: no {what} within {limit:?} (last error: {last_error:?}); {}",
                    self.name,
                    self.log_tail(20)
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The whole `debug.log` so far.
    pub fn debug_log(&self) -> String {
        std::fs::read_to_string(self.datadir.join("regtest").join("debug.log")).unwrap_or_default()
    }

    /// The last `n` lines of `debug.log`, introduced for an error message.
    pub fn log_tail(&self, n: usize) -> String {
        let log = self.debug_log();
        let lines: Vec<&str> = log.lines().collect();
        format!(
            "debug.log ends:\n{}",
            lines[lines.len().saturating_sub(n)..].join("\n")
        )
    }

    /// The exit status, if it has exited.
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        if self.exit.is_none() {
            self.exit = self.child.try_wait().ok().flatten();
        }
        self.exit
    }

    /// Stop it through RPC, as a user would, and wait for the exit; killed
    /// (by PID) if it takes longer than a minute.
    pub fn stop(&mut self) -> Result<ExitStatus> {
        if let Some(status) = self.exit_status() {
            return Ok(status);
        }
        let asked = self.cli(&["stop"]);
        let deadline = Instant::now() + STOP_LIMIT;
        while Instant::now() < deadline {
            if let Some(status) = self.exit_status() {
                return Ok(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let status = self.child.wait()?;
        self.exit = Some(status);
        bail!(
            "{}: bitcoind did not stop within {STOP_LIMIT:?} (stop said {asked:?}); killed",
            self.name
        )
    }
}

impl Drop for CoreNode {
    fn drop(&mut self) {
        if self.exit_status().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The regtest P2WSH address of the script `OP_TRUE`: anyone can spend
/// what is mined to it (witness: the script alone), so tests can build
/// transactions from coinbase outputs without a wallet.
pub fn anyone_can_spend_address() -> Address {
    let op_true = ScriptBuf::from_bytes(vec![0x51]);
    Address::p2wsh(&op_true, Network::Regtest)
}

/// A free TCP port on 127.0.0.1.
fn free_port() -> Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}

/// Have the kernel send the child SIGTERM when the starting thread ends, so
/// a test process that dies leaves no `bitcoind` behind.
#[allow(unsafe_code)]
fn exit_with_parent(command: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs in the forked child before exec and only
    // calls prctl, which is async-signal-safe.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_keeps_core_on_this_machine() {
        let text = CoreConfig::regtest("t")
            .v2transport(false)
            .conf("cjdnsreachable=1")
            .conf_text(18444, 18443);
        for line in [
            "dnsseed=0",
            "fixedseeds=0",
            "connect=0",
            "discover=0",
            "natpmp=0",
            "listenonion=0",
            "listen=1",
            "bind=127.0.0.1:18444",
            "rpcbind=127.0.0.1",
            "v2transport=0",
            "cjdnsreachable=1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing:\n{text}");
        }
        // Everything but the chain switch is in the regtest section, where
        // Core reads it for a regtest node.
        assert_eq!(text.lines().position(|l| l == "[regtest]"), Some(1));
    }

    #[test]
    fn connect_replaces_no_outbound_at_all() {
        let text = CoreConfig::regtest("t")
            .connect("abc.onion:18444")
            .onion_proxy("127.0.0.1:9050".parse().unwrap())
            .conf_text(1, 2);
        assert!(!text.lines().any(|l| l == "connect=0"), "{text}");
        assert!(
            text.lines().any(|l| l == "connect=abc.onion:18444"),
            "{text}"
        );
        assert!(text.lines().any(|l| l == "onion=127.0.0.1:9050"), "{text}");
        assert!(text.lines().any(|l| l == "listen=1"), "{text}");
    }

    #[test]
    fn the_anyone_can_spend_address_is_cores_well_known_one() {
        // Core's functional tests call it ADDRESS_BCRT1_P2WSH_OP_TRUE.
        assert_eq!(
            anyone_can_spend_address().to_string(),
            "bcrt1qft5p2uhsdcdc3l2ua4ap5qqfg4pjaqlp250x7us7a8qqhrxrxfsqseac85"
        );
    }
}
