//! The command line: `nightjar [OPTIONS] [check-config | print-config]`.
//!
//! Every option is also a config-file key (see `config/nightjar.toml`) except
//! `--conf`, which, as in Bitcoin Core, only the command line can give. The
//! definitions live in the library, not the binary, so tests and packaging
//! (man pages, completions) use the very same parser.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use nightjar_tor::{BridgeLine, Target};

use super::layer::{Layer, Source, Sourced};
use super::types::{self, BindSpec, Chain, Isolation, RpcBind};
use crate::logging::DebugCategory;
use crate::netaddr::NetworkId;

/// A Tor-first Bitcoin P2P node with an embedded Tor client.
///
/// Settings come from built-in defaults, then the config file (--conf FILE,
/// else nightjar.toml in $CONFIGURATION_DIRECTORY or ~/.config/nightjar),
/// then the command line; each key independently.
#[derive(Debug, Clone, Parser)]
#[command(name = "nightjar", version, about, long_about)]
pub struct Cli {
    /// Check or print the configuration instead of running the node.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// The settings.
    #[command(flatten)]
    pub options: CliOptions,
}

/// What to do instead of running the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Subcommand)]
pub enum Command {
    /// Read and validate the configuration, then exit: 0 if it is usable,
    /// 1 (with the reason) if not. Starts nothing.
    CheckConfig,
    /// Print the effective settings as TOML, each with where it came from
    /// (default, file, command line, privacy preset). Starts nothing.
    PrintConfig,
}

/// The options, valid before or after a subcommand.
#[derive(Debug, Clone, Default, Args)]
pub struct CliOptions {
    /// Read this config file instead of the default one (which is optional;
    /// this one must exist).
    #[arg(long, global = true, value_name = "FILE")]
    pub conf: Option<PathBuf>,
    /// Which chain to follow [default: main].
    #[arg(
        long = "network",
        visible_alias = "chain",
        global = true,
        value_enum,
        value_name = "CHAIN"
    )]
    pub network: Option<Chain>,
    /// Data directory [default: $STATE_DIRECTORY under systemd, else
    /// ~/.local/share/nightjar].
    #[arg(long, global = true, value_name = "DIR")]
    pub datadir: Option<PathBuf>,
    /// Join a custom Tor network described by an Arti-format TOML file instead
    /// of the public Tor network (for tests and offline demos).
    #[arg(long, global = true, value_name = "FILE")]
    pub tor_network: Option<PathBuf>,
    /// Reach Tor through this bridge (repeatable): `obfs4 IP:PORT
    /// FINGERPRINT cert=… iat-mode=0`, or `IP:PORT FINGERPRINT` for a plain
    /// bridge. Replaces the config file's `[tor] bridges`.
    #[arg(long = "bridge", global = true, value_name = "LINE")]
    pub bridges: Vec<BridgeLine>,
    /// Connect only to this peer (repeatable; host:port, [v6]:port or
    /// <56 chars>.onion:port). No automatic connections.
    #[arg(long, global = true, value_name = "HOST:PORT")]
    pub connect: Vec<Target>,
    /// Keep a connection to this peer (repeatable; same forms as --connect).
    #[arg(long, global = true, value_name = "HOST:PORT")]
    pub addnode: Vec<Target>,
    /// Make automatic outbound connections only to this network (repeatable:
    /// ipv4, ipv6, onion, i2p, cjdns) [default: all].
    #[arg(long, global = true, value_name = "NET", value_parser = types::parse_network)]
    pub onlynet: Vec<NetworkId>,
    /// Privacy preset: onion peers only, BIP324 v2 only, a Tor circuit per
    /// connection, no DNS seeds, no listening, loopback RPC, redacted logs.
    /// Refuses to start if another option contradicts it.
    #[arg(long, global = true, overrides_with = "no_privacy")]
    pub privacy: bool,
    /// Turn off a `privacy = true` from the config file.
    #[arg(long, global = true, overrides_with = "privacy")]
    pub no_privacy: bool,
    /// Allow falling back to unencrypted v1 when a peer does not speak v2
    /// (added peers may always fall back; refused with --privacy).
    #[arg(
        long,
        global = true,
        alias = "v1fallback",
        overrides_with = "no_v1_fallback"
    )]
    pub v1_fallback: bool,
    /// Never fall back to v1 (undoes the config file's `v1fallback = true`).
    #[arg(long, global = true, overrides_with = "v1_fallback")]
    pub no_v1_fallback: bool,
    /// Do not use Tor: dial peers directly, revealing your IP address to them
    /// (for a local regtest network). Onion peers are unreachable then.
    #[arg(long, global = true)]
    pub no_tor: bool,
    /// How peer connections share Tor circuits [default: per-kind].
    #[arg(long, global = true, value_name = "per-kind|per-connection",
          value_parser = types::parse_display::<Isolation>)]
    pub isolation: Option<Isolation>,
    /// Memory, in MiB, the embedded Tor client may use for queued cells and
    /// stream data before it closes the busiest circuits [default: 256].
    #[arg(long, global = true, value_name = "MIB")]
    pub tor_memory_limit: Option<u64>,
    /// Ask DNS seeds (through Tor exits) when addresses run low [default].
    #[arg(long, global = true, overrides_with = "no_dnsseed")]
    pub dnsseed: bool,
    /// Do not ask DNS seeds for peer addresses.
    #[arg(long, global = true, overrides_with = "dnsseed")]
    pub no_dnsseed: bool,
    /// Use the compiled-in seed addresses when addresses run low [default].
    #[arg(long, global = true, overrides_with = "no_fixedseeds")]
    pub fixedseeds: bool,
    /// Do not use the compiled-in seed addresses.
    #[arg(long, global = true, overrides_with = "fixedseeds")]
    pub no_fixedseeds: bool,
    /// Accept inbound connections on a TCP listener (off by default: a
    /// Tor-first node opens no clearnet port unless asked).
    #[arg(long, global = true)]
    pub listen: bool,
    /// Accept inbound peers through nightjar's own onion service [default:
    /// on when Tor is on, off with --privacy].
    #[arg(long, global = true, overrides_with = "no_listenonion")]
    pub listenonion: bool,
    /// Run no onion service.
    #[arg(long, global = true, overrides_with = "listenonion")]
    pub no_listenonion: bool,
    /// Listen on this address (addr[:port]; needs --listen) [default: every
    /// interface on the chain's port].
    #[arg(long, global = true, value_name = "ADDR", value_parser = types::parse_display::<BindSpec>)]
    pub bind: Vec<BindSpec>,
    /// Most connections in total [default: 125]; caps --max-outbound.
    #[arg(long, global = true, value_name = "N")]
    pub maxconnections: Option<u32>,
    /// Regular outbound connections to keep (0 to 64) [default: 8].
    #[arg(long, global = true, alias = "maxoutbound", value_name = "N")]
    pub max_outbound: Option<u16>,
    /// Mean seconds between feeler connections, which test addresses
    /// [default: 120].
    #[arg(
        long,
        global = true,
        alias = "feeler-interval-secs",
        value_name = "SECS"
    )]
    pub feeler_interval: Option<u64>,
    /// Keep the BIP157 filter header chain in sync from peers that serve
    /// compact block filters (at least two of the regular connections) and
    /// offer scanblocks, getblockfilter and getblock. Downloads 32 bytes of
    /// filter header per block (about 29 MB on mainnet) [default: off].
    #[arg(long, global = true, overrides_with = "no_block_filters")]
    pub block_filters: bool,
    /// Turn off a `block_filters = true` from the config file.
    #[arg(long, global = true, overrides_with = "block_filters")]
    pub no_block_filters: bool,
    /// For every block fetched because a filter matched, fetch this many
    /// other blocks of the same scan range and discard them, so a peer cannot
    /// tell which blocks matter (0 to 10) [default: 1].
    #[arg(long, global = true, value_name = "N")]
    pub decoy_blocks: Option<u32>,
    /// Serve the wallets of the config file's [wallet.NAME] tables to
    /// Electrum clients (Sparrow, Electrum). Turns block filters on, which
    /// the wallets are scanned with [default: off].
    #[arg(long, global = true, overrides_with = "no_electrum")]
    pub electrum: bool,
    /// Turn off an `electrum = true` from the config file.
    #[arg(long, global = true, overrides_with = "electrum")]
    pub no_electrum: bool,
    /// The Electrum server's address (addr or addr:port; loopback only with
    /// --privacy) [default: 127.0.0.1:50001].
    #[arg(long, global = true, value_name = "ADDR", value_parser = types::parse_electrum_bind)]
    pub electrum_bind: Option<SocketAddr>,
    /// Also serve Electrum over TLS on this address (addr or addr:port, port
    /// 50002 by convention) [default: no TLS listener].
    #[arg(long, global = true, value_name = "ADDR", value_parser = types::parse_electrum_tls_bind)]
    pub electrum_tls_bind: Option<SocketAddr>,
    /// Serve JSON-RPC on this address (repeatable; addr or addr:port)
    /// [default: 127.0.0.1].
    #[arg(long, global = true, value_name = "ADDR", value_parser = types::parse_display::<RpcBind>)]
    pub rpcbind: Vec<RpcBind>,
    /// JSON-RPC port [default: 8332, testnet4 48332, signet 38332,
    /// regtest 18443].
    #[arg(long, global = true, value_name = "PORT")]
    pub rpcport: Option<u16>,
    /// The RPC cookie file; relative to the chain's data directory
    /// [default: .cookie].
    #[arg(long, global = true, value_name = "FILE")]
    pub rpccookiefile: Option<PathBuf>,
    /// Log this category at debug level (repeatable: net, tor, rpc, addrman,
    /// all). RUST_LOG, when set, overrides it.
    #[arg(long, global = true, value_name = "CATEGORY",
          value_parser = types::parse_display::<DebugCategory>)]
    pub debug: Vec<DebugCategory>,
    /// Show peer addresses in the log instead of [scrubbed] (refused with
    /// --privacy).
    #[arg(long, global = true)]
    pub log_sensitive: bool,
}

/// `Some(value)` from `flag` when the flag was given.
fn flag(given: bool, value: bool, name: &'static str) -> Option<Sourced<bool>> {
    given.then(|| Sourced::new(value, Source::CommandLine(name)))
}

/// A `--yes`/`--no-yes` pair (clap keeps only the last one given).
fn pair(
    yes: bool,
    no: bool,
    yes_name: &'static str,
    no_name: &'static str,
) -> Option<Sourced<bool>> {
    flag(no, false, no_name).or_else(|| flag(yes, true, yes_name))
}

/// A repeatable option: `None` when never given.
fn list<T: Clone>(values: &[T], name: &'static str) -> Option<Sourced<Vec<T>>> {
    (!values.is_empty()).then(|| Sourced::new(values.to_vec(), Source::CommandLine(name)))
}

fn value<T>(v: Option<T>, name: &'static str) -> Option<Sourced<T>> {
    v.map(|v| Sourced::new(v, Source::CommandLine(name)))
}

impl CliOptions {
    /// The layer of settings the command line gives.
    pub fn layer(&self) -> Layer {
        Layer {
            chain: value(self.network, "--network"),
            datadir: value(self.datadir.clone(), "--datadir"),
            onlynet: list(&self.onlynet, "--onlynet"),
            connect: list(&self.connect, "--connect"),
            addnode: list(&self.addnode, "--addnode"),
            listen: flag(self.listen, true, "--listen"),
            listenonion: pair(
                self.listenonion,
                self.no_listenonion,
                "--listenonion",
                "--no-listenonion",
            ),
            bind: list(&self.bind, "--bind"),
            maxconnections: value(self.maxconnections, "--maxconnections"),
            // No flag: `false` is refused and `true` is the default.
            v2transport: None,
            dnsseed: pair(self.dnsseed, self.no_dnsseed, "--dnsseed", "--no-dnsseed"),
            fixedseeds: pair(
                self.fixedseeds,
                self.no_fixedseeds,
                "--fixedseeds",
                "--no-fixedseeds",
            ),
            rpcbind: list(&self.rpcbind, "--rpcbind"),
            rpcport: value(self.rpcport, "--rpcport"),
            rpccookiefile: value(self.rpccookiefile.clone(), "--rpccookiefile"),
            privacy: pair(self.privacy, self.no_privacy, "--privacy", "--no-privacy"),
            v1fallback: pair(
                self.v1_fallback,
                self.no_v1_fallback,
                "--v1-fallback",
                "--no-v1-fallback",
            ),
            maxoutbound: value(self.max_outbound, "--max-outbound"),
            feeler_interval_secs: value(self.feeler_interval, "--feeler-interval"),
            block_filters: pair(
                self.block_filters,
                self.no_block_filters,
                "--block-filters",
                "--no-block-filters",
            ),
            decoy_blocks: value(self.decoy_blocks, "--decoy-blocks"),
            electrum: pair(
                self.electrum,
                self.no_electrum,
                "--electrum",
                "--no-electrum",
            ),
            electrum_bind: value(self.electrum_bind, "--electrum-bind"),
            electrum_tls_bind: value(self.electrum_tls_bind, "--electrum-tls-bind"),
            tor_network_file: value(self.tor_network.clone(), "--tor-network"),
            tor_enabled: flag(self.no_tor, false, "--no-tor"),
            tor_isolation: value(self.isolation, "--isolation"),
            tor_memory_limit_mib: value(self.tor_memory_limit, "--tor-memory-limit"),
            tor_bridges: list(&self.bridges, "--bridge"),
            // Binaries are per transport: a table, so the file's only.
            tor_transport_binary: None,
            log_debug: list(&self.debug, "--debug"),
            log_sensitive: flag(self.log_sensitive, true, "--log-sensitive"),
            // Wallets are tables of the config file only.
            wallets: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_parser_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn options_work_after_a_subcommand() {
        let cli = Cli::try_parse_from(["nightjar", "print-config", "--privacy"]).unwrap();
        assert_eq!(cli.command, Some(Command::PrintConfig));
        assert!(cli.options.privacy);
    }

    #[test]
    fn the_last_of_a_flag_pair_wins() {
        let cli = Cli::try_parse_from(["nightjar", "--no-dnsseed", "--dnsseed"]).unwrap();
        assert_eq!(
            cli.options.layer().dnsseed,
            Some(Sourced::new(true, Source::CommandLine("--dnsseed")))
        );
        let cli = Cli::try_parse_from(["nightjar", "--dnsseed", "--no-dnsseed"]).unwrap();
        assert_eq!(
            cli.options.layer().dnsseed,
            Some(Sourced::new(false, Source::CommandLine("--no-dnsseed")))
        );
    }

    #[test]
    fn block_filters_is_a_flag_pair_and_decoy_blocks_takes_a_number() {
        let cli =
            Cli::try_parse_from(["nightjar", "--block-filters", "--decoy-blocks", "4"]).unwrap();
        let layer = cli.options.layer();
        assert_eq!(
            layer.block_filters,
            Some(Sourced::new(true, Source::CommandLine("--block-filters")))
        );
        assert_eq!(
            layer.decoy_blocks,
            Some(Sourced::new(4, Source::CommandLine("--decoy-blocks")))
        );
        let cli =
            Cli::try_parse_from(["nightjar", "--block-filters", "--no-block-filters"]).unwrap();
        assert_eq!(
            cli.options.layer().block_filters,
            Some(Sourced::new(
                false,
                Source::CommandLine("--no-block-filters")
            ))
        );
        // A flag, not an option with a value.
        assert!(Cli::try_parse_from(["nightjar", "--block-filters=true"]).is_err());
        assert!(Cli::try_parse_from(["nightjar", "--decoy-blocks", "-1"]).is_err());
    }

    #[test]
    fn electrum_is_a_flag_pair_with_addresses() {
        let cli = Cli::try_parse_from([
            "nightjar",
            "--electrum",
            "--electrum-bind",
            "127.0.0.1",
            "--electrum-tls-bind",
            "[::1]:60002",
        ])
        .unwrap();
        let layer = cli.options.layer();
        assert_eq!(
            layer.electrum,
            Some(Sourced::new(true, Source::CommandLine("--electrum")))
        );
        assert_eq!(
            layer.electrum_bind,
            Some(Sourced::new(
                "127.0.0.1:50001".parse().unwrap(),
                Source::CommandLine("--electrum-bind")
            ))
        );
        assert_eq!(
            layer.electrum_tls_bind.unwrap().value,
            "[::1]:60002".parse().unwrap()
        );
        let cli = Cli::try_parse_from(["nightjar", "--electrum", "--no-electrum"]).unwrap();
        assert_eq!(
            cli.options.layer().electrum,
            Some(Sourced::new(false, Source::CommandLine("--no-electrum")))
        );
        assert!(Cli::try_parse_from(["nightjar", "--electrum-bind", "localhost"]).is_err());
    }

    #[test]
    fn nothing_given_means_an_empty_layer() {
        let cli = Cli::try_parse_from(["nightjar"]).unwrap();
        assert_eq!(cli.options.layer(), Layer::default());
    }
}
