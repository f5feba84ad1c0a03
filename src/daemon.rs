//! The daemon's life: start the embedded Tor client, load the address book,
//! run the node until SIGINT or SIGTERM, then disconnect, save and stop Arti
//! within a bounded time.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use bitcoin::Network;
use nightjar_tor::{BridgeLine, TorErrorKind, TorNetwork, TorSettings, TorTransport, Transport};
use tokio::signal::unix::{SignalKind, signal};

use crate::chain::{HeaderChain, Loaded, Recovery};
use crate::config::types::{ElectrumSettings, WalletSpec};
use crate::driver::{self, DriverOptions, NodeRpc, addr_file, ban_file, broadcast_file};
use crate::engine::{Engine, EngineConfig, Reach};
use crate::paths::DataPaths;
use crate::rpc;
use crate::rpc::RpcSettings;
use crate::wallet::rpc::WalletRpc;
use crate::wallet::service::WalletService;
use crate::wire::Magic;
use crate::{systemd_notify, tor_obsolete};

/// The header chain's file name in the chain's data directory.
pub const HEADERS_FILE: &str = "headers.dat";

/// The filter header chain's file name, next to [`HEADERS_FILE`].
pub const FILTER_HEADERS_FILE: &str = "filter_headers.dat";

/// How long shutdown may take before we stop waiting for Arti's tasks.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Everything the daemon needs to start.
#[derive(Debug, Clone)]
pub struct DaemonOptions {
    /// Which Bitcoin chain.
    pub network: Network,
    /// Where files go.
    pub paths: DataPaths,
    /// A custom Tor network file (tests, offline demos); the public Tor
    /// network when `None`.
    pub tor_network: Option<PathBuf>,
    /// Arti's memory quota in bytes (`[tor] memory_limit_mib`).
    pub tor_memory_limit: usize,
    /// Bridges every circuit starts at (`[tor] bridges`, `--bridge`);
    /// empty: Tor's relays are reached directly.
    pub tor_bridges: Vec<BridgeLine>,
    /// Binaries for the bridges' transports (`[tor] transport_binary`).
    pub tor_transports: Vec<Transport>,
    /// The connection policy (peers, privacy, limits).
    pub engine: EngineConfig,
    /// The RPC server.
    pub rpc: RpcSettings,
    /// Where to listen for peers (`listen`, `bind`); empty: nowhere.
    pub listen: Vec<std::net::SocketAddr>,
    /// Accept inbound peers through our own onion service (`listenonion`).
    pub listen_onion: bool,
    /// The watch-only wallets to index (`[wallet.NAME]`).
    pub wallets: Vec<WalletSpec>,
    /// The Electrum server, when on.
    pub electrum: Option<ElectrumSettings>,
}

/// Run until a termination signal arrives.
pub async fn run(options: DaemonOptions) -> Result<()> {
    let DaemonOptions {
        network,
        paths,
        tor_network,
        tor_memory_limit,
        tor_bridges,
        tor_transports,
        engine,
        rpc,
        listen,
        listen_onion,
        wallets,
        electrum,
    } = options;
    std::fs::create_dir_all(&paths.chain_dir)
        .with_context(|| {
            format!(
                "creating data directory {} (nightjar needs a directory it can write to; choose one with --datadir)",
                paths.chain_dir.display()
            )
        })?;
    // Held until `run` returns: every file below assumes one writer.
    let _lock = crate::datadir_lock::DataDirLock::acquire(&paths.chain_dir)?;
    // Signal handlers first: a SIGTERM during bootstrap must still stop us
    // cleanly.
    let mut sigterm = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut sigint = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    tracing::info!(
        chain = %network,
        datadir = %paths.chain_dir.display(),
        privacy = engine.privacy,
        "nightjar starting"
    );
    // The header chain first: a damaged file is reported (and set aside)
    // before anything goes on the network.
    let loaded = load_chain(&paths.chain_dir, network)?;
    let filters = if engine.block_filters {
        Some(load_filter_headers(&paths.chain_dir, &loaded.chain)?)
    } else {
        None
    };

    let tor = match engine.reach {
        Reach::Tor => {
            let settings = TorSettings::new(&paths.tor_state, &paths.tor_cache)
                .with_network(tor_network_of(tor_network))
                .with_memory_limit(tor_memory_limit)
                .with_bridges(tor_bridges, tor_transports);
            Some(start_tor(settings).await?)
        }
        Reach::Direct => {
            tracing::warn!("Tor is turned off: peers are dialled directly and see your IP address");
            None
        }
    };
    // Loaded before the RPC server, so that getindexinfo reports it at
    // once. (The config turns block filters on for the wallets.)
    let index_path = paths
        .chain_dir
        .join(crate::wallet::store::WALLET_INDEX_FILE);
    let wallet_index =
        (!wallets.is_empty()).then(|| WalletService::load(&index_path, network, wallets.len()));
    // RPC answers from the start (getnetworkinfo shows the bootstrap);
    // calls wait for the engine task, which starts right below.
    let (dispatch, rpc_calls) = NodeRpc::new();
    let rpc_dispatch = WalletRpc::new(dispatch.clone(), wallet_index.clone());
    let rpc_server = match rpc::server::serve(rpc, Arc::new(rpc_dispatch)).await {
        Ok(server) => server,
        Err(e) => {
            drop(tor);
            return Err(e).context("starting the RPC server");
        }
    };
    let listeners = if listen.is_empty() {
        Vec::new()
    } else {
        driver::listen::bind_all(&listen)
            .await
            .context("listening for peers (listen, bind)")?
    };
    // Launched by the driver once Tor is ready: a service launched before
    // bootstrap ends at once.
    let onion_service =
        (tor.is_some() && listen_onion).then(|| crate::engine::conn_manager::default_port(network));
    let addrman_file = addr_file::addrman_path(&paths.chain_dir);
    let addrman = addr_file::load(&addrman_file, network);
    let seed: [u8; 32] = rand::random();
    let banlist_file = ban_file::banlist_path(&paths.chain_dir);
    let bans = ban_file::load(&banlist_file);
    let broadcast_file = broadcast_file::broadcast_path(&paths.chain_dir);
    let pending = broadcast_file::load(&broadcast_file);
    let (filter_headers, filter_store) = match filters {
        Some(f) => (f.filters, Some(f.store)),
        None => (Default::default(), None),
    };
    let node = Engine::new(engine, addrman, seed)
        .with_chain(loaded.chain)
        .with_filter_headers(filter_headers)
        .with_bans(bans)
        .with_private_broadcasts(pending);
    let options = DriverOptions {
        magic: Magic::from(network),
        addrman_file,
        banlist_file,
        broadcast_file,
        network: match &tor {
            Some(t) => driver::Network::Tor(t.clone()),
            None => driver::Network::Direct,
        },
        chain_store: Some(loaded.store),
        filter_store,
        listeners,
        onion_service,
    };
    let wallet = match wallet_index {
        Some(shared) => Some(
            WalletService::start(shared, &index_path, network, wallets, electrum, dispatch)
                .await
                .context("starting the wallet index and its Electrum server")?,
        ),
        None => None,
    };
    let stop = async {
        tokio::select! {
            _ = sigterm.recv() => tracing::info!("SIGTERM received"),
            _ = sigint.recv() => tracing::info!("SIGINT received"),
            () = tor_obsolete::announced() => {
                // Arti ends the process ARTI_EXIT_DELAY after its notice;
                // the shutdown below saves our files well within that.
                tracing::error!("{}; stopping", tor_obsolete::MESSAGE);
                systemd_notify::status(tor_obsolete::MESSAGE);
            }
        }
    };
    driver::run(node, options, rpc_calls, stop).await;
    if let Some(wallet) = wallet {
        wallet.stop().await;
    }
    // Removes the cookie: a client must not find a stale one.
    rpc_server.shutdown().await;
    // Dropping the last handle stops the Tor client's tasks.
    drop(tor);
    if tor_obsolete::seen() {
        return Err(tor_obsolete::TorObsolete.into());
    }
    tracing::info!("stopped");
    Ok(())
}

/// Load the filter header chain from `<chain dir>/filter_headers.dat`,
/// saying what was found.
fn load_filter_headers(
    chain_dir: &std::path::Path,
    chain: &HeaderChain,
) -> Result<crate::chain::filter_store::FilterLoaded> {
    let path = chain_dir.join(FILTER_HEADERS_FILE);
    let loaded = crate::chain::filter_store::FilterStore::load_or_new(&path, chain)
        .with_context(|| format!("opening the filter header chain {}", path.display()))?;
    tracing::info!(
        file = %path.display(),
        filter_headers = loaded.report.records,
        "filter header chain loaded"
    );
    Ok(loaded)
}

/// Load the header chain from `<chain dir>/headers.dat`, saying what was
/// found.
fn load_chain(chain_dir: &std::path::Path, network: Network) -> Result<Loaded> {
    let path = chain_dir.join(HEADERS_FILE);
    let loaded = HeaderChain::load_or_new(&path, network)
        .with_context(|| format!("opening the header chain {}", path.display()))?;
    let report = &loaded.report;
    if let Some(t) = &report.truncated {
        tracing::warn!(
            file = %path.display(),
            dropped_records = t.dropped_records,
            partial_bytes = t.partial_bytes,
            "the header file ended in a torn write (a crash while saving); the damaged tail was cut off"
        );
    }
    if let Some(d) = &report.damaged {
        tracing::warn!(
            file = %path.display(),
            kept_headers = d.kept_records,
            moved_to = %d.moved_to.display(),
            "the header file is damaged ({}); the {} headers before the damage were kept, the rest will be fetched again, and the whole damaged file was moved aside",
            d.corrupt,
            d.kept_records
        );
    }
    match &report.recovery {
        Some(Recovery::SetAside { corrupt, moved_to }) => tracing::error!(
            file = %path.display(),
            moved_to = %moved_to.display(),
            "the header file is corrupt ({corrupt}); it was moved aside and headers will be fetched again"
        ),
        Some(Recovery::Created) => tracing::info!(file = %path.display(), "new header chain file"),
        None => {}
    }
    let (height, hash) = loaded.chain.tip();
    tracing::info!(height, %hash, records = report.records, "header chain loaded");
    Ok(loaded)
}

fn tor_network_of(file: Option<PathBuf>) -> TorNetwork {
    match file {
        Some(file) => {
            tracing::info!(file = %file.display(), "using a custom Tor network");
            TorNetwork::Custom(file)
        }
        None => TorNetwork::Public,
    }
}

async fn start_tor(settings: TorSettings) -> Result<TorTransport> {
    for (n, bridge) in (1..).zip(&settings.bridges) {
        tracing::info!(bridge = %bridge.report_name(n), "Tor is reached through a bridge");
    }
    match TorTransport::start(settings).await {
        Ok(tor) => Ok(tor),
        // A consensus already cached says this Arti is obsolete: Arti
        // refuses to start rather than exiting (see `tor_obsolete`).
        Err(e) if e.kind() == TorErrorKind::SoftwareObsolete => {
            tracing::error!("{e}; {}", tor_obsolete::MESSAGE);
            systemd_notify::status(tor_obsolete::MESSAGE);
            Err(tor_obsolete::TorObsolete.into())
        }
        Err(e) => Err(anyhow::Error::new(e).context("starting the embedded Tor client")),
    }
}
