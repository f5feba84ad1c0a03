//! A private Tor network on 127.0.0.1, built from Debian's `tor` package, for
//! nightjar's integration tests and offline demos.
//!
//! [`PrivNet::start`] generates keys, starts three (or more) directory
//! authorities, five (or more) exit relays and a C-tor client hosting onion
//! services in front of local TCP servers, waits until the network is usable,
//! and writes the Arti-format network file that `nightjar-tor` (and
//! `nightjar --tor-network`) take. Every `tor` it starts:
//!
//! - knows only the private authorities (no public directory is configured);
//! - listens on 127.0.0.1 only, on ports picked free at start;
//! - resolves names through a loopback [`dns::DnsResponder`], never the host's
//!   resolver;
//! - is a child process stopped by its PID when the network stops, and exits
//!   on its own if the owning process dies first.
//!
//! Tests share one network per test binary through [`shared`]; tests that need
//! `tor` call [`tor_required`] first, which fails loudly in CI when `tor` is
//! missing and skips loudly elsewhere.

pub mod bridge;
pub mod dns;
pub mod echo;
pub mod figures;
pub mod keys;
pub mod torrc;

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::Serialize;

use crate::bridge::Obfs4Bridge;
use crate::dns::DnsResponder;
use crate::keys::RelayIdentity;

/// How long the network may take to become usable before start gives up:
/// measured at 20–30 s on two cores, so this is generous for a loaded CI box.
pub const READY_TIMEOUT: Duration = Duration::from_secs(240);

/// Fresh networks [`shared`] starts before giving up. One CI run saw C tor
/// bootstrap and then publish no onion service descriptor for 240 s on a
/// loaded machine, where a network is normally usable in 20–30 s; the
/// network is test infrastructure, so a second, fresh one is started
/// (loudly) rather than failing every test of the binary. A network that
/// fails twice is a real problem and fails the tests.
pub const START_ATTEMPTS: usize = 2;

/// How often readiness is re-checked while waiting.
const POLL: Duration = Duration::from_millis(250);

/// The environment variable that turns "tor missing: skip" into a failure.
/// CI systems set it to `true`.
pub const CI_ENV: &str = "CI";

/// The shape of the network.
#[derive(Debug, Clone)]
pub struct PrivNetConfig {
    /// Directory authorities (at least 3, so votes have a majority).
    pub authorities: usize,
    /// Exit relays (at least 5: paths need distinct guard, middle and exit,
    /// and onion circuits need more).
    pub exits: usize,
    /// Onion services hosted by C tor: (virtual port, local TCP backend).
    pub onion_services: Vec<(u16, SocketAddr)>,
    /// Unlisted obfs4 bridge relays (needs `obfs4proxy`).
    pub obfs4_bridges: usize,
    /// Where to put the network's files; a fresh temporary directory if `None`.
    pub dir: Option<PathBuf>,
}

impl Default for PrivNetConfig {
    fn default() -> Self {
        PrivNetConfig {
            authorities: 3,
            exits: 5,
            onion_services: Vec::new(),
            obfs4_bridges: 0,
            dir: None,
        }
    }
}

/// A C-tor onion service of the network.
#[derive(Debug, Clone)]
pub struct CTorOnionService {
    /// `xxx.onion`.
    pub onion_address: String,
    /// The port clients connect to.
    pub virtual_port: u16,
    /// Where C tor forwards the streams.
    pub backend: SocketAddr,
}

/// How long each start-up phase took.
#[derive(Debug, Clone, Copy, Default)]
pub struct StartTimings {
    /// Generating all identity keys.
    pub keys: Duration,
    /// From launching the tor processes until every relay holds a
    /// consensus listing every relay.
    pub consensus: Duration,
    /// From launch to the C-tor client reporting 100 % and every onion
    /// descriptor uploaded: the network is usable.
    pub usable: Duration,
}

/// One running `tor` process.
#[derive(Debug)]
struct TorNode {
    nickname: String,
    datadir: PathBuf,
    child: Child,
}

/// A running private Tor network. Stops (by PID) when dropped.
#[derive(Debug)]
pub struct PrivNet {
    dir: PathBuf,
    _tempdir: Option<tempfile::TempDir>,
    nodes: Mutex<Vec<TorNode>>,
    dns: DnsResponder,
    arti_network_file: PathBuf,
    /// The `DirAuthority` lines every torrc includes.
    dir_auth_conf: PathBuf,
    /// The resolver file pointing at the loopback DNS responder.
    resolv_conf: PathBuf,
    socks_addr: SocketAddr,
    onion_services: Vec<CTorOnionService>,
    bridges: Vec<Obfs4Bridge>,
    /// Every ORPort and DirPort of the listed relays and authorities.
    relay_ports: Vec<u16>,
    timings: StartTimings,
}

/// Reserve `n` distinct free TCP ports on 127.0.0.1. The listeners are held
/// until all ports are chosen, so the same port is never handed out twice.
fn free_ports(n: usize) -> Result<Vec<u16>> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind((Ipv4Addr::LOCALHOST, 0)))
        .collect::<std::io::Result<_>>()?;
    listeners
        .iter()
        .map(|l| Ok(l.local_addr()?.port()))
        .collect()
}

/// The network file Arti reads (see `nightjar_tor::custom_network`).
#[derive(Serialize)]
struct ArtiNetworkFile {
    tor_network: ArtiTorNetwork,
    address_filter: ArtiAddressFilter,
    path_rules: ArtiPathRules,
}

#[derive(Serialize)]
struct ArtiTorNetwork {
    authorities: ArtiAuthorities,
    fallback_caches: Vec<ArtiFallback>,
}

#[derive(Serialize)]
struct ArtiAuthorities {
    v3idents: Vec<String>,
}

#[derive(Serialize)]
struct ArtiFallback {
    rsa_identity: String,
    ed_identity: String,
    orports: Vec<String>,
}

#[derive(Serialize)]
struct ArtiAddressFilter {
    /// Every relay and test server is on 127.0.0.1.
    allow_local_addrs: bool,
    /// ...and so is every answer of the network's DNS responder.
    allow_resolving_local_addrs: bool,
}

#[derive(Serialize)]
struct ArtiPathRules {
    /// All relays share 127.0.0.1, so Arti's "one relay per /16" rule would
    /// leave no valid path; prefixes longer than an address disable it.
    ipv4_subnet_family_prefix: u8,
    ipv6_subnet_family_prefix: u8,
}

impl PrivNet {
    /// Build and start a network, and wait until it is usable.
    pub fn start(config: PrivNetConfig) -> Result<PrivNet> {
        if config.authorities < 3 || config.exits < 5 {
            bail!("a usable private network needs at least 3 authorities and 5 exits");
        }
        check_tor_installed()?;
        let obfs4proxy = match config.obfs4_bridges {
            0 => None,
            _ => Some(bridge::find_obfs4proxy()?),
        };
        let (dir, tempdir) = match &config.dir {
            Some(d) => {
                std::fs::create_dir_all(d)?;
                (d.clone(), None)
            }
            None => {
                let t = tempfile::Builder::new()
                    .prefix("nightjar-privnet-")
                    .tempdir()?;
                (t.path().to_path_buf(), Some(t))
            }
        };
        restrict_permissions(&dir)?;

        let dns = DnsResponder::start().context("starting the loopback DNS responder")?;
        let resolv_conf = dir.join("resolv.conf");
        std::fs::write(&resolv_conf, format!("nameserver {}\n", dns.addr()))?;

        let n_auth = config.authorities;
        let n_exit = config.exits;
        let n_bridge = config.obfs4_bridges;
        // auth: ORPort + DirPort each; exits: ORPort; the onion host:
        // SocksPort; bridges: ORPort + obfs4 port each.
        let ports = free_ports(2 * n_auth + n_exit + 1 + 2 * n_bridge)?;
        let auth_or = &ports[..n_auth];
        let auth_dir = &ports[n_auth..2 * n_auth];
        let exit_or = &ports[2 * n_auth..2 * n_auth + n_exit];
        let socks_port = ports[2 * n_auth + n_exit];
        let bridge_ports = &ports[2 * n_auth + n_exit + 1..];

        let started = Instant::now();
        let auth_names: Vec<String> = (0..n_auth).map(|i| format!("auth{i}")).collect();
        let exit_names: Vec<String> = (0..n_exit).map(|i| format!("exit{i}")).collect();
        // Key generation is CPU-bound and independent per node: do it in parallel.
        let (v3idents, auth_ids, exit_ids) = std::thread::scope(|s| -> Result<_> {
            let v3: Vec<_> = (0..n_auth)
                .map(|i| {
                    let datadir = dir.join(&auth_names[i]);
                    let dir_addr = format!("127.0.0.1:{}", auth_dir[i]);
                    s.spawn(move || keys::make_authority_keys(&datadir, &dir_addr))
                })
                .collect();
            let relays: Vec<_> = auth_names
                .iter()
                .chain(&exit_names)
                .map(|name| {
                    let datadir = dir.join(name);
                    s.spawn(move || keys::make_relay_keys(&datadir, name))
                })
                .collect();
            let v3idents = v3
                .into_iter()
                .map(join_keygen)
                .collect::<Result<Vec<String>>>()?;
            let mut ids = relays
                .into_iter()
                .map(join_keygen)
                .collect::<Result<Vec<RelayIdentity>>>()?;
            let exit_ids = ids.split_off(n_auth);
            Ok((v3idents, ids, exit_ids))
        })?;
        let keys_done = started.elapsed();

        let dir_auth_conf = dir.join("dirauthorities.conf");
        let lines: String = (0..n_auth)
            .map(|i| {
                torrc::dir_authority_line(
                    &auth_names[i],
                    auth_or[i],
                    &v3idents[i],
                    auth_dir[i],
                    &auth_ids[i].rsa,
                )
            })
            .collect();
        std::fs::write(&dir_auth_conf, lines)?;

        let owner = std::process::id();
        let node_torrc = |name: &str, role: String, info_log: bool| -> Result<PathBuf> {
            let datadir = dir.join(name);
            let mut text = torrc::common(
                &datadir,
                name,
                &resolv_conf,
                owner,
                info_log || std::env::var_os("NIGHTJAR_PRIVNET_INFO_LOGS").is_some(),
            );
            text.push_str(&role);
            text.push_str(&format!("%include {}\n", dir_auth_conf.display()));
            let path = datadir.join("torrc");
            std::fs::create_dir_all(&datadir)?;
            std::fs::write(&path, text)?;
            Ok(path)
        };

        let hs_dir = dir.join("onionhost");
        let mut plans = Vec::new();
        for i in 0..n_auth {
            plans.push((
                auth_names[i].clone(),
                node_torrc(
                    &auth_names[i],
                    torrc::authority(auth_or[i], auth_dir[i]),
                    false,
                )?,
            ));
        }
        for i in 0..n_exit {
            plans.push((
                exit_names[i].clone(),
                node_torrc(&exit_names[i], torrc::exit_relay(exit_or[i]), false)?,
            ));
        }
        let bridge_names: Vec<String> = (0..n_bridge).map(|i| format!("bridge{i}")).collect();
        if let Some(obfs4proxy) = &obfs4proxy {
            for (i, name) in bridge_names.iter().enumerate() {
                let (or_port, obfs4_port) = (bridge_ports[2 * i], bridge_ports[2 * i + 1]);
                plans.push((
                    name.clone(),
                    node_torrc(name, bridge::torrc(or_port, obfs4_port, obfs4proxy), false)?,
                ));
            }
        }
        plans.push((
            "onionhost".to_string(),
            node_torrc(
                "onionhost",
                torrc::onion_host(socks_port, &hs_dir, &config.onion_services),
                true,
            )?,
        ));

        let launch = Instant::now();
        let mut net = PrivNet {
            dir: dir.clone(),
            _tempdir: tempdir,
            nodes: Mutex::new(Vec::new()),
            dns,
            arti_network_file: dir.join("arti-network.toml"),
            dir_auth_conf: dir_auth_conf.clone(),
            resolv_conf: resolv_conf.clone(),
            socks_addr: SocketAddr::from((Ipv4Addr::LOCALHOST, socks_port)),
            onion_services: Vec::new(),
            bridges: Vec::new(),
            relay_ports: ports[..2 * n_auth + n_exit].to_vec(),
            timings: StartTimings {
                keys: keys_done,
                ..StartTimings::default()
            },
        };
        for (name, torrc_path) in plans {
            let node = spawn_tor(&name, &dir.join(&name), &torrc_path)?;
            net.lock_nodes().push(node);
        }

        let file = ArtiNetworkFile {
            tor_network: ArtiTorNetwork {
                authorities: ArtiAuthorities { v3idents },
                fallback_caches: auth_ids
                    .iter()
                    .zip(auth_or)
                    .chain(exit_ids.iter().zip(exit_or))
                    .map(|(id, port)| ArtiFallback {
                        rsa_identity: id.rsa.clone(),
                        ed_identity: id.ed25519.clone(),
                        orports: vec![format!("127.0.0.1:{port}")],
                    })
                    .collect(),
            },
            address_filter: ArtiAddressFilter {
                allow_local_addrs: true,
                allow_resolving_local_addrs: true,
            },
            path_rules: ArtiPathRules {
                ipv4_subnet_family_prefix: 33,
                ipv6_subnet_family_prefix: 129,
            },
        };
        let header = "# Arti network file for a private Tor network on 127.0.0.1, written by nightjar-privnet.\n\
                      # Use with `nightjar --tor-network <this file>`. Never edit by hand: it is rewritten on every start.\n\n";
        std::fs::write(
            &net.arti_network_file,
            format!("{header}{}", toml::to_string(&file)?),
        )?;

        let total_relays = n_auth + n_exit;
        // Every relay must hold a consensus that lists every relay, not just
        // the authorities: an exit refuses streams arriving from a middle
        // relay it does not know ("open a stream from unknown relay"), and
        // the first consensus of a fresh network often lacks late relays.
        let relay_names: Vec<&String> = auth_names.iter().chain(&exit_names).collect();
        net.wait_until(
            |net| {
                relay_names
                    .iter()
                    .all(|name| net.consensus_relays(name, "cached-consensus") >= total_relays)
            },
            "every relay to hold a consensus listing every relay",
        )?;
        net.timings.consensus = launch.elapsed();
        net.wait_until(
            |net| net.consensus_relays("onionhost", "cached-microdesc-consensus") >= total_relays,
            "the C-tor client to hold the full consensus",
        )?;
        net.wait_until(
            |_| log_contains(&hs_dir.join("notice.log"), "Bootstrapped 100%"),
            "the C-tor client to bootstrap",
        )?;
        for i in 0..config.onion_services.len() {
            let hostname = hs_dir.join(format!("hs{i}")).join("hostname");
            net.wait_until(|_| hostname.exists(), "onion service keys")?;
            net.onion_services.push(CTorOnionService {
                onion_address: std::fs::read_to_string(&hostname)?.trim().to_string(),
                virtual_port: config.onion_services[i].0,
                backend: config.onion_services[i].1,
            });
        }
        let addresses: Vec<String> = net
            .onion_services
            .iter()
            .map(|svc| svc.onion_address.trim_end_matches(".onion").to_owned())
            .collect();
        net.wait_until(
            |_| descriptors_stored(&hs_dir.join("info.log"), &addresses),
            "every onion service descriptor to be uploaded",
        )?;
        for (i, name) in bridge_names.iter().enumerate() {
            let (or_port, obfs4_port) = (bridge_ports[2 * i], bridge_ports[2 * i + 1]);
            let datadir = dir.join(name);
            // A bridge can carry a client's circuits once it has the whole
            // consensus (to extend to any relay) and its transport's line.
            net.wait_until(
                |net| {
                    net.consensus_relays(name, "cached-consensus") >= total_relays
                        && log_contains(&datadir.join("notice.log"), "Bootstrapped 100%")
                        && bridge::read_line(&datadir, obfs4_port).is_some()
                },
                "the obfs4 bridge to bootstrap and write its bridge line",
            )?;
            let (line, fingerprint) =
                bridge::read_line(&datadir, obfs4_port).context("the bridge line vanished")?;
            net.bridges.push(Obfs4Bridge {
                line,
                fingerprint,
                obfs4_port,
                or_port,
            });
        }
        net.timings.usable = launch.elapsed();
        Ok(net)
    }

    /// The Arti-format network file for `nightjar-tor` / `--tor-network`.
    pub fn arti_network_file(&self) -> &Path {
        &self.arti_network_file
    }

    /// The C-tor client's SOCKS port (for reaching onion services from C tor).
    pub fn socks_addr(&self) -> SocketAddr {
        self.socks_addr
    }

    /// The C-tor onion services, in configuration order.
    pub fn onion_services(&self) -> &[CTorOnionService] {
        &self.onion_services
    }

    /// The obfs4 bridges, in configuration order.
    pub fn obfs4_bridges(&self) -> &[Obfs4Bridge] {
        &self.bridges
    }

    /// Every ORPort and DirPort of the listed relays and authorities: the
    /// ports a client behind a bridge must never connect to.
    pub fn relay_ports(&self) -> &[u16] {
        &self.relay_ports
    }

    /// The loopback DNS responder the exits use.
    pub fn dns(&self) -> &DnsResponder {
        &self.dns
    }

    /// How long start-up took.
    pub fn timings(&self) -> StartTimings {
        self.timings
    }

    /// The network's directory (torrcs, logs, keys).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Start a fresh C-tor client on this network, with a SOCKS port and an
    /// empty data directory under the network's, as a user of Bitcoin Core
    /// would run beside it. Returns at once: [`TorClient::wait_bootstrapped`]
    /// waits for it. Stopped by PID when dropped, and exits by itself if this
    /// process dies.
    /// `name` is the client's nickname: 1 to 19 ASCII letters and digits,
    /// as tor demands.
    pub fn spawn_client(&self, name: &str) -> Result<TorClient> {
        if name.is_empty() || name.len() > 19 || !name.chars().all(|c| c.is_ascii_alphanumeric()) {
            bail!("tor nickname {name:?}: use 1 to 19 ASCII letters and digits");
        }
        let datadir = self.dir.join(name);
        if datadir.exists() {
            bail!(
                "a tor client named {name} already ran in {}",
                self.dir.display()
            );
        }
        std::fs::create_dir_all(&datadir)?;
        restrict_permissions(&datadir)?;
        let socks_port = free_ports(1)?[0];
        let mut text = torrc::common(&datadir, name, &self.resolv_conf, std::process::id(), false);
        text.push_str(&format!("SocksPort 127.0.0.1:{socks_port}\n"));
        text.push_str(&format!("%include {}\n", self.dir_auth_conf.display()));
        let torrc_path = datadir.join("torrc");
        std::fs::write(&torrc_path, text)?;
        let node = spawn_tor(name, &datadir, &torrc_path)?;
        Ok(TorClient {
            node,
            socks_addr: SocketAddr::from((Ipv4Addr::LOCALHOST, socks_port)),
        })
    }

    /// PIDs of the running tor processes.
    pub fn pids(&self) -> Vec<u32> {
        self.lock_nodes().iter().map(|n| n.child.id()).collect()
    }

    /// Stop every tor process (by PID) and wait for it. Idempotent.
    pub fn stop(&self) {
        for mut node in self.lock_nodes().drain(..) {
            // Test relays keep no state worth a clean shutdown.
            let _ = node.child.kill();
            let _ = node.child.wait();
        }
    }

    fn lock_nodes(&self) -> std::sync::MutexGuard<'_, Vec<TorNode>> {
        self.nodes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How many relays the consensus file `file` of node `node` lists.
    fn consensus_relays(&self, node: &str, file: &str) -> usize {
        let path = self.dir.join(node).join(file);
        std::fs::read_to_string(path)
            .map(|text| text.lines().filter(|l| l.starts_with("r ")).count())
            .unwrap_or(0)
    }

    /// Poll `ready` until it holds, a tor process exits, or time runs out.
    fn wait_until(&self, ready: impl Fn(&PrivNet) -> bool, what: &str) -> Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if ready(self) {
                return Ok(());
            }
            for node in self.lock_nodes().iter_mut() {
                if let Ok(Some(status)) = node.child.try_wait() {
                    bail!(
                        "tor node {} exited ({status}) while waiting for {what}; its log ends:\n{}",
                        node.nickname,
                        log_tail(&node.datadir.join("notice.log"))
                    );
                }
            }
            if Instant::now() > deadline {
                bail!(
                    "private Tor network not ready after {READY_TIMEOUT:?}: still waiting for {what}; logs in {}",
                    self.dir.display()
                );
            }
            std::thread::sleep(POLL);
        }
    }
}

/// A C-tor client started by [`PrivNet::spawn_client`].
#[derive(Debug)]
pub struct TorClient {
    node: TorNode,
    socks_addr: SocketAddr,
}

impl TorClient {
    /// Its SOCKS port on 127.0.0.1.
    pub fn socks_addr(&self) -> SocketAddr {
        self.socks_addr
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.node.child.id()
    }

    /// Wait until it reports `Bootstrapped 100%`, it exits, or `limit`
    /// passes.
    pub fn wait_bootstrapped(&mut self, limit: Duration) -> Result<()> {
        let log = self.node.datadir.join("notice.log");
        let deadline = Instant::now() + limit;
        while !log_contains(&log, "Bootstrapped 100%") {
            if let Ok(Some(status)) = self.node.child.try_wait() {
                bail!(
                    "tor client {} exited ({status}); its log ends:\n{}",
                    self.node.nickname,
                    log_tail(&log)
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "tor client {} not bootstrapped after {limit:?}; its log ends:\n{}",
                    self.node.nickname,
                    log_tail(&log)
                );
            }
            std::thread::sleep(POLL);
        }
        Ok(())
    }
}

impl Drop for TorClient {
    fn drop(&mut self) {
        let _ = self.node.child.kill();
        let _ = self.node.child.wait();
    }
}

impl Drop for PrivNet {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Wait for a key-generation thread and pass on its result.
fn join_keygen<T>(handle: std::thread::ScopedJoinHandle<'_, Result<T>>) -> Result<T> {
    handle
        .join()
        .map_err(|_| anyhow::anyhow!("key generation thread panicked"))?
}

/// Start one tor process from its torrc.
fn spawn_tor(nickname: &str, datadir: &Path, torrc: &Path) -> Result<TorNode> {
    let child = Command::new("tor")
        .arg("-f")
        .arg(torrc)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting tor for {nickname}"))?;
    Ok(TorNode {
        nickname: nickname.to_string(),
        datadir: datadir.to_path_buf(),
        child,
    })
}

/// tor refuses data directories that others can read.
fn restrict_permissions(dir: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    Ok(())
}

/// Whether C tor's info log shows every service's current descriptor
/// sent, and every upload it started answered by its HSDir.
///
/// Counting successful uploads alone is not enough: each service uploads
/// to several HSDirs, so as many successes as services can all belong to
/// the first one, and a client that comes early finds no descriptor for
/// the others (and a node then rests their addresses for minutes). The
/// answer lines do not name the service, so every service must have
/// started its upload and every started upload must have its answer; an
/// answer that is not a success still counts, so one refusal cannot hold
/// the network back forever.
fn descriptors_stored(log: &Path, addresses: &[String]) -> bool {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let started: Vec<&str> = text
        .lines()
        .filter(|l| {
            l.contains("upload_descriptor_to_hsdir(): Service ")
                && l.contains("initiated upload request")
        })
        .collect();
    let answered = text
        .matches("Uploading hidden service descriptor: finished with status")
        .count();
    let stored = text.matches("Uploaded hidden service descriptor").count();
    addresses.iter().all(|a| {
        started
            .iter()
            .any(|l| l.contains(a.as_str()) && l.contains(" current descriptor "))
    }) && answered >= started.len()
        && stored >= addresses.len()
}

fn log_contains(path: &Path, needle: &str) -> bool {
    count_in_log(path, needle) > 0
}

fn count_in_log(path: &Path, needle: &str) -> usize {
    std::fs::read_to_string(path)
        .map(|t| t.matches(needle).count())
        .unwrap_or(0)
}

fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

/// Does `tool` run (`tool ARG`, e.g. `--version`)? If not, the error says
/// which Debian `package` to install.
pub fn check_tool(tool: &str, arg: &str, package: &str) -> Result<()> {
    let found = Command::new(tool)
        .arg(arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !found {
        bail!("`{tool}` is not installed: run `apt-get install -y {package}`");
    }
    Ok(())
}

/// Is Debian's `tor` (with `tor-gencert`, from the same package) on the PATH?
pub fn check_tor_installed() -> Result<()> {
    check_tool("tor", "--version", "tor")?;
    check_tool("tor-gencert", "--version", "tor")
}

/// Decide whether a test that needs `tor` can run. Returns `true` if it can.
/// If `tor` is missing: in CI (`CI=true`) this panics, so the test fails
/// loudly; elsewhere it prints how to install `tor` and returns `false`.
pub fn tor_required(test: &str) -> bool {
    required(test, "tor", check_tor_installed())
}

/// [`tor_required`] for a test that also needs Debian's `obfs4proxy` (the
/// bridges of [`PrivNetConfig::obfs4_bridges`] and a client's transport).
pub fn obfs4_required(test: &str) -> bool {
    tor_required(test) && required(test, "obfs4proxy", bridge::find_obfs4proxy().map(drop))
}

/// Whether CI is running us (`CI=true` or `CI=1`): then a missing tool is a
/// failure, never a skip.
pub fn in_ci() -> bool {
    std::env::var(CI_ENV).is_ok_and(|v| v == "true" || v == "1")
}

/// The rule for every external tool a test needs (`tor`, Bitcoin Core):
/// `installed` says whether `tool` is there. Returns `true` if the test can
/// run; in CI a missing tool panics (the test fails); elsewhere the test is
/// skipped with a loud message saying how to get the tool.
pub fn required(test: &str, tool: &str, installed: Result<()>) -> bool {
    decide_required(test, tool, installed, in_ci())
}

/// The decision behind [`required`], apart from the environment.
#[allow(clippy::print_stderr, clippy::panic)]
fn decide_required(test: &str, tool: &str, installed: Result<()>, in_ci: bool) -> bool {
    match installed {
        Ok(()) => true,
        Err(e) if in_ci => panic!("{test} needs {tool} and CI must run it: {e}"),
        Err(e) => {
            eprintln!("\n*** SKIPPING {test}: {e} ***\n*** (in CI this is a failure) ***\n");
            false
        }
    }
}

/// The process-wide network, started on first use with `config()`.
static SHARED: OnceLock<std::result::Result<PrivNet, String>> = OnceLock::new();

/// A network shared by every test in this process, started on first use
/// (up to [`START_ATTEMPTS`] fresh networks).
/// It is stopped by PID when the process exits.
// A failed attempt is reported on stderr, where a test's output goes.
#[allow(clippy::print_stderr)]
pub fn shared(config: impl FnOnce() -> PrivNetConfig) -> Result<&'static PrivNet> {
    let entry = SHARED.get_or_init(|| {
        let config = config();
        let mut failures = Vec::new();
        for attempt in 1..=START_ATTEMPTS {
            let mut this = config.clone();
            if attempt > 1 {
                // A fresh directory: the failed network's files stay for
                // whoever asked to keep them.
                this.dir = this.dir.map(|d| d.join(format!("attempt{attempt}")));
            }
            match PrivNet::start(this) {
                Ok(net) => {
                    register_exit_cleanup();
                    return Ok(net);
                }
                Err(e) => {
                    let e = format!("{e:#}");
                    eprintln!(
                        "*** private Tor network, attempt {attempt} of {START_ATTEMPTS}: {e}"
                    );
                    failures.push(e);
                }
            }
        }
        Err(failures.join("; then: "))
    });
    entry.as_ref().map_err(|e| anyhow::anyhow!("{e}"))
}

extern "C" fn stop_shared_network() {
    if let Some(Ok(net)) = SHARED.get() {
        net.stop();
    }
}

/// Statics are never dropped, so ask libc to stop the shared network when the
/// test binary exits.
#[allow(unsafe_code)]
fn register_exit_cleanup() {
    // SAFETY: `atexit` stores a plain function pointer; the function only
    // touches a `OnceLock` static that lives for the whole process.
    unsafe {
        libc::atexit(stop_shared_network);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptors_count_as_stored_once_every_service_sent_and_every_upload_was_answered() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("info.log");
        let start = |svc: &str| {
            format!(
                "[info] upload_descriptor_to_hsdir(): Service {svc} current descriptor of revision 1 initiated upload request to $AB~exit0\n"
            )
        };
        let ok = "[info] handle_response_upload_hsdesc(): Uploading hidden service descriptor: finished with status 200 (\"HS descriptor stored successfully.\")\n\
                  [info] handle_response_upload_hsdesc(): Uploaded hidden service descriptor (status 200)\n";
        let services = ["aaa".to_owned(), "bbb".to_owned()];
        // Two successes, both from the first service: not yet.
        std::fs::write(&log, format!("{}{}{ok}{ok}", start("aaa"), start("aaa"))).unwrap();
        assert!(!descriptors_stored(&log, &services));
        // The second has started, not been answered: not yet.
        let text = format!("{}{}{ok}{ok}{}", start("aaa"), start("aaa"), start("bbb"));
        std::fs::write(&log, &text).unwrap();
        assert!(!descriptors_stored(&log, &services));
        std::fs::write(&log, format!("{text}{ok}")).unwrap();
        assert!(descriptors_stored(&log, &services));
    }

    #[test]
    fn missing_tor_skips_outside_ci() {
        assert!(decide_required("t", "tor", Ok(()), true));
        assert!(!decide_required(
            "t",
            "tor",
            Err(anyhow::anyhow!("no tor")),
            false
        ));
    }

    #[test]
    #[should_panic(expected = "needs tor and CI must run it")]
    fn missing_tor_fails_in_ci() {
        decide_required("t", "tor", Err(anyhow::anyhow!("no tor")), true);
    }
}
