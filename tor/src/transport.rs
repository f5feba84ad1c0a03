//! The embedded Tor client: start, readiness, connect, resolve.

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use arti_client::config::pt::TransportConfigBuilder;
use arti_client::config::{BoolOrAuto, CfgPath, TorClientConfigBuilder};
use arti_client::{BootstrapBehavior, DangerouslyIntoTorAddr, StreamPrefs, TorAddr, TorClient};
use futures::StreamExt;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tor_rtcompat::PreferredRuntime;

use crate::blockage::{self, Bridges};
use crate::bootstrap::{BootstrapProgress, ProgressStream, progress_stream};
use crate::custom_network;
use crate::error::{TorError, TorErrorKind};
use crate::isolation::{IsolationGroup, IsolationRegistry};
use crate::settings::{Timeouts, TorNetwork, TorSettings};
use crate::stream::TorStream;
use crate::target::{Target, TargetKind};

/// First wait after a failed bootstrap attempt. Right after a network starts,
/// directory caches may not have the consensus yet; retrying soon fixes that.
const BOOTSTRAP_RETRY_MIN: Duration = Duration::from_secs(1);

/// Longest wait between bootstrap attempts: patient with a long outage
/// without hammering the directory caches.
const BOOTSTRAP_RETRY_MAX: Duration = Duration::from_secs(60);

/// The embedded Tor client. Cheap to clone; the client stops when the last
/// clone is dropped.
#[derive(Clone)]
pub struct TorTransport {
    inner: Arc<Inner>,
}

/// State shared by all clones.
pub(crate) struct Inner {
    pub(crate) client: Arc<TorClient<PreferredRuntime>>,
    isolation: IsolationRegistry,
    progress: watch::Receiver<BootstrapProgress>,
    timeouts: Timeouts,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl std::fmt::Debug for TorTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TorTransport")
            .field("progress", &*self.inner.progress.borrow())
            .finish_non_exhaustive()
    }
}

/// Create `dir` (and parents) readable by us alone; Arti refuses state
/// directories that others may write.
fn create_private_dir(dir: &Path) -> Result<(), TorError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| {
            TorError::new(
                TorErrorKind::LocalState,
                format!("creating Tor directory {}", dir.display()),
                e.to_string(),
            )
        })
}

/// Build Arti's configuration from our settings.
fn client_config(settings: &TorSettings) -> Result<arti_client::TorClientConfig, TorError> {
    let mut builder = match &settings.network {
        TorNetwork::Public => TorClientConfigBuilder::default(),
        TorNetwork::Custom(path) => custom_network::load(path)?,
    };
    builder
        .storage()
        .state_dir(CfgPath::new_literal(&settings.state_dir))
        .cache_dir(CfgPath::new_literal(&settings.cache_dir));
    // Low water stays Arti's automatic three quarters of the maximum.
    builder.system().memory().max(settings.memory_limit);
    if !settings.bridges.is_empty() {
        add_bridges(&mut builder, settings)?;
    }
    builder.build().map_err(|e| {
        TorError::new(
            TorErrorKind::Config,
            "building the Tor client configuration",
            e.to_string(),
        )
    })
}

/// Every circuit starts at one of the settings' bridges, and each
/// transport they use runs from its located binary, started only when a
/// bridge needs it.
fn add_bridges(
    builder: &mut TorClientConfigBuilder,
    settings: &TorSettings,
) -> Result<(), TorError> {
    let config_error =
        |detail: String| TorError::new(TorErrorKind::Config, "setting up the Tor bridges", detail);
    let bridges = builder.bridges();
    bridges.enabled(BoolOrAuto::Explicit(true));
    for bridge in &settings.bridges {
        let line = bridge
            .arti_config()
            .map_err(|e| config_error(e.to_string()))?;
        bridges.bridges().push(line);
    }
    let located = crate::bridge::locate_transports(&settings.bridges, &settings.transports)
        .map_err(config_error)?;
    for (protocol, binary) in located {
        let name = protocol
            .parse()
            .map_err(|e| config_error(format!("transport name {protocol}: {e}")))?;
        let mut transport = TransportConfigBuilder::default();
        transport
            .protocols(vec![name])
            .path(CfgPath::new_literal(binary))
            .run_on_startup(false);
        bridges.transports().push(transport);
    }
    Ok(())
}

impl TorTransport {
    /// Start the client: create its directories, then bootstrap in the
    /// background (retrying with backoff) while this returns at once.
    /// Watch [`progress`](Self::progress) or await
    /// [`wait_until_ready`](Self::wait_until_ready).
    ///
    /// Must be called from within a tokio runtime.
    pub async fn start(settings: TorSettings) -> Result<Self, TorError> {
        create_private_dir(&settings.state_dir)?;
        create_private_dir(&settings.cache_dir)?;
        let config = client_config(&settings)?;
        let client = TorClient::builder()
            .config(config)
            // Manual: nothing may build circuits before we decide to
            // bootstrap, and a connect while bootstrapping fails fast
            // instead of queueing behind it.
            .bootstrap_behavior(BootstrapBehavior::Manual)
            .create_unbootstrapped()
            .map_err(|e| TorError::from_arti("creating the Tor client", &e))?;

        let (tx, rx) = watch::channel(BootstrapProgress::starting());
        let tx = Arc::new(tx);
        let bridges = Bridges(
            (1..)
                .zip(&settings.bridges)
                .map(|(n, b)| b.report_name(n))
                .collect(),
        );
        let events = tokio::spawn(forward_bootstrap_events(
            client.clone(),
            tx.clone(),
            settings.timeouts.no_relay_report,
            bridges,
        ));
        let bootstrap = tokio::spawn(bootstrap_until_done(client.clone(), tx));

        Ok(TorTransport {
            inner: Arc::new(Inner {
                client,
                isolation: IsolationRegistry::default(),
                progress: rx,
                timeouts: settings.timeouts,
                tasks: vec![events, bootstrap],
            }),
        })
    }

    /// Shared state, for sibling modules.
    pub(crate) fn inner(&self) -> &Inner {
        &self.inner
    }

    /// The bootstrap progress now.
    pub fn bootstrap_progress(&self) -> BootstrapProgress {
        self.inner.progress.borrow().clone()
    }

    /// Whether the client can carry traffic.
    pub fn is_ready(&self) -> bool {
        self.inner.progress.borrow().ready
    }

    /// Bootstrap progress: the current snapshot, then every change.
    pub fn progress(&self) -> ProgressStream {
        progress_stream(self.inner.progress.clone())
    }

    /// Wait until the client is ready for traffic. Bootstrap retries on its
    /// own, so this waits as long as it takes; wrap it in a timeout to bound it.
    pub async fn wait_until_ready(&self) -> Result<(), TorError> {
        let mut rx = self.inner.progress.clone();
        rx.wait_for(|p| p.ready).await.map(|_| ()).map_err(|_| {
            TorError::new(
                TorErrorKind::ShuttingDown,
                "waiting for Tor bootstrap",
                "client stopped",
            )
        })
    }

    /// Open a stream to `target` on circuits of `group`.
    ///
    /// Onion targets stay inside the Tor network; IP and host targets leave
    /// through an exit relay, which also resolves host names (we never do).
    pub async fn connect(
        &self,
        target: &Target,
        group: IsolationGroup,
    ) -> Result<TorStream, TorError> {
        let context = format!("connecting to {target} ({group})");
        if !self.is_ready() {
            return Err(TorError::new(
                TorErrorKind::NotReady,
                context,
                "Tor has not finished bootstrapping",
            ));
        }
        let mut prefs = self.prefs(group);
        let limit = match target.kind() {
            TargetKind::Onion => {
                prefs.connect_to_onion_services(arti_client::config::BoolOrAuto::Explicit(true));
                self.inner.timeouts.onion_connect
            }
            TargetKind::Exit => self.inner.timeouts.exit_connect,
        };
        let addr = tor_addr(target)
            .map_err(|detail| TorError::new(TorErrorKind::TargetRejected, &context, detail))?;
        let attempt = self.inner.client.connect_with_prefs(addr, &prefs);
        match tokio::time::timeout(limit, attempt).await {
            Ok(Ok(stream)) => Ok(TorStream::new(stream)),
            Ok(Err(e)) => Err(TorError::from_arti(context, &e)),
            Err(_) => Err(TorError::new(
                TorErrorKind::Timeout,
                context,
                format!("no connection after {limit:?}"),
            )),
        }
    }

    /// Resolve `host` to addresses at an exit relay, on circuits of `group`.
    /// The system resolver is never consulted.
    pub async fn resolve(
        &self,
        host: &str,
        group: IsolationGroup,
    ) -> Result<Vec<IpAddr>, TorError> {
        let context = format!("resolving {host} through Tor ({group})");
        if !self.is_ready() {
            return Err(TorError::new(
                TorErrorKind::NotReady,
                context,
                "Tor has not finished bootstrapping",
            ));
        }
        let prefs = self.prefs(group);
        let limit = self.inner.timeouts.resolve;
        match tokio::time::timeout(limit, self.inner.client.resolve_with_prefs(host, &prefs)).await
        {
            Ok(Ok(addrs)) => Ok(addrs),
            Ok(Err(e)) => Err(TorError::from_arti(context, &e)),
            Err(_) => Err(TorError::new(
                TorErrorKind::Timeout,
                context,
                format!("no answer after {limit:?}"),
            )),
        }
    }

    /// Forget `group`'s circuits: later streams in a group with the same
    /// number get new ones. Returns whether the group was in use.
    pub fn release_group(&self, group: IsolationGroup) -> bool {
        self.inner.isolation.release(group)
    }

    /// How many isolation groups are live.
    pub fn live_groups(&self) -> usize {
        self.inner.isolation.len()
    }

    /// Stream preferences that pin a stream to `group`.
    fn prefs(&self, group: IsolationGroup) -> StreamPrefs {
        let mut prefs = StreamPrefs::new();
        prefs.set_isolation(self.inner.isolation.token(group));
        prefs
    }
}

/// Arti's address for a target. IP targets go through Arti's "dangerous" door
/// only because the IP did not come from a local DNS lookup: it came from
/// gossip or the user, so connecting to it by number leaks nothing.
fn tor_addr(target: &Target) -> Result<TorAddr, String> {
    match target {
        Target::Onion { address, port } => TorAddr::from((address.to_string().as_str(), *port)),
        Target::Host { name, port } => TorAddr::from((name.as_str(), *port)),
        Target::Ip(addr) => addr.into_tor_addr_dangerously(),
    }
    .map_err(|e| e.to_string())
}

/// Copy Arti's bootstrap events into our progress channel, with blockages
/// in our words (see [`blockage`](crate::blockage)). When `no_relay_after`
/// passes with no progress at all since the start, that itself is reported:
/// Arti would stay silent for a minute or more.
async fn forward_bootstrap_events(
    client: Arc<TorClient<PreferredRuntime>>,
    tx: Arc<watch::Sender<BootstrapProgress>>,
    no_relay_after: Duration,
    bridges: Bridges,
) {
    let mut events = client.bootstrap_events();
    let first_percent = tx.borrow().percent;
    let overdue_timer = tokio::time::sleep(no_relay_after);
    tokio::pin!(overdue_timer);
    let mut overdue = false;
    // Reported when overdue, nothing is ready and nothing has moved.
    let stall_bridges = bridges.clone();
    let stalled = move |p: &BootstrapProgress, overdue: bool| {
        (overdue && !p.ready && p.percent <= first_percent)
            .then(|| blockage::no_relay_answered(no_relay_after, &stall_bridges))
    };
    loop {
        tokio::select! {
            status = events.next() => {
                let Some(status) = status else { return };
                let percent = (status.as_frac().clamp(0.0, 1.0) * 100.0).round() as u8;
                let arti_blocked = status
                    .blocked()
                    .map(|b| blockage::describe(&b.kind(), &b.message().to_string(), &bridges));
                let summary = match &arti_blocked {
                    // Arti's text would be the blockage again ("Stuck at
                    // 0%: Client has been disabled"); `blocked` carries it.
                    Some(None) => "starting".to_owned(),
                    Some(Some(_)) => "stuck".to_owned(),
                    None => {
                        // Arti's text starts with the percentage; we carry
                        // that separately.
                        let text = status.to_string();
                        bridges.stage(text.split_once("%: ").map_or(text.as_str(), |(_, s)| s))
                    }
                };
                let arti_blocked = arti_blocked.flatten();
                tx.send_modify(|p| {
                    // Before `bootstrap()` returns we never claim 100 %: a display
                    // showing "100 %" while connects still fail would mislead.
                    p.percent = if p.ready { 100 } else { percent.min(99) };
                    p.summary = summary;
                    p.blocked = arti_blocked.or_else(|| stalled(p, overdue));
                });
            }
            () = &mut overdue_timer, if !overdue => {
                overdue = true;
                tx.send_if_modified(|p| {
                    if p.blocked.is_some() {
                        return false;
                    }
                    p.blocked = stalled(p, true);
                    p.blocked.is_some()
                });
            }
        }
    }
}

/// Bootstrap, retrying with exponential backoff until it works.
async fn bootstrap_until_done(
    client: Arc<TorClient<PreferredRuntime>>,
    tx: Arc<watch::Sender<BootstrapProgress>>,
) {
    let mut delay = BOOTSTRAP_RETRY_MIN;
    loop {
        match client.bootstrap().await {
            Ok(()) => {
                tracing::info!("Tor bootstrap complete");
                tx.send_modify(|p| {
                    p.ready = true;
                    p.percent = 100;
                    p.blocked = None;
                });
                return;
            }
            Err(e) => {
                let err = TorError::from_arti("bootstrapping Tor", &e);
                tracing::debug!(%err, retry_in = ?delay, "Tor bootstrap attempt failed");
                tx.send_modify(|p| p.blocked = Some(err.to_string()));
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(BOOTSTRAP_RETRY_MAX);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Arti's memory quota is ours, not the one Arti derives from the
    /// machine's memory (gigabytes on a desktop).
    #[test]
    fn the_memory_quota_is_set_from_our_settings() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let settings = TorSettings::new(dir.path().join("s"), dir.path().join("c"))
            .with_memory_limit(64 << 20);
        let config = client_config(&settings).unwrap_or_else(|e| panic!("{e}"));
        // Arti shows its parsed quota only in the configuration's Debug
        // form (the accessor is behind its `testing` feature).
        let debug = format!("{config:?}");
        let enabled = format!(
            "max: ByteQty({}), low_water: ByteQty({})",
            64 << 20,
            48 << 20
        );
        assert!(debug.contains(&enabled), "{debug}");
    }
}
