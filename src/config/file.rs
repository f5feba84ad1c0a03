//! The config file: TOML with Bitcoin Core's key names.
//!
//! The file is read in three steps, so every error can name the key:
//! 1. as a plain TOML table (syntax errors: line and column);
//! 2. key by key against the schema, which is the [`FileConfig`] struct
//!    itself (unknown keys: a "did you mean" from the struct's field names);
//! 3. each key's value on its own through serde (bad values: the key, the
//!    value as written and what to write instead). The struct keeps
//!    `deny_unknown_fields` as a second guard for any other caller.
//!
//! Wallets are tables of tables, `[wallet.NAME]`, named by the user: their
//! keys are checked the same way inside each, and each table must have
//! `descriptors` and a `birthday`. The descriptors themselves are read
//! later ([`super::resolve::wallets`]), once the chain is known.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

use nightjar_tor::{BridgeLine, Target, Transport};

use super::ConfigError;
use super::layer::{Layer, Source, Sourced};
use super::types::{self, BindSpec, Birthday, Chain, Isolation, ListVisitor, RpcBind, WalletEntry};
use crate::logging::DebugCategory;
use crate::netaddr::NetworkId;

/// The config file's top level.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileConfig {
    #[serde(default, deserialize_with = "de_chain")]
    chain: Option<Chain>,
    datadir: Option<PathBuf>,
    #[serde(default, deserialize_with = "de_networks")]
    onlynet: Option<Vec<NetworkId>>,
    #[serde(default, deserialize_with = "de_targets")]
    connect: Option<Vec<Target>>,
    #[serde(default, deserialize_with = "de_targets")]
    addnode: Option<Vec<Target>>,
    listen: Option<bool>,
    listenonion: Option<bool>,
    #[serde(default, deserialize_with = "de_binds")]
    bind: Option<Vec<BindSpec>>,
    maxconnections: Option<u32>,
    v2transport: Option<bool>,
    dnsseed: Option<bool>,
    fixedseeds: Option<bool>,
    #[serde(default, deserialize_with = "de_rpcbinds")]
    rpcbind: Option<Vec<RpcBind>>,
    rpcport: Option<u16>,
    rpccookiefile: Option<PathBuf>,
    privacy: Option<bool>,
    v1fallback: Option<bool>,
    maxoutbound: Option<u16>,
    feeler_interval_secs: Option<u64>,
    block_filters: Option<bool>,
    decoy_blocks: Option<u32>,
    electrum: Option<bool>,
    #[serde(default, deserialize_with = "de_electrum_bind")]
    electrum_bind: Option<SocketAddr>,
    #[serde(default, deserialize_with = "de_electrum_tls_bind")]
    electrum_tls_bind: Option<SocketAddr>,
    tor: Option<TorSection>,
    log: Option<LogSection>,
    wallet: Option<BTreeMap<String, WalletSection>>,
}

/// The `[tor]` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TorSection {
    network_file: Option<PathBuf>,
    enabled: Option<bool>,
    #[serde(default, deserialize_with = "de_isolation")]
    isolation: Option<Isolation>,
    memory_limit_mib: Option<u64>,
    #[serde(default, deserialize_with = "de_bridges")]
    bridges: Option<Vec<BridgeLine>>,
    #[serde(default, deserialize_with = "de_transport_binary")]
    transport_binary: Option<BTreeMap<String, PathBuf>>,
}

/// The `[log]` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LogSection {
    #[serde(default, deserialize_with = "de_categories")]
    debug: Option<Vec<DebugCategory>>,
    sensitive: Option<bool>,
}

/// A `[wallet.NAME]` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WalletSection {
    #[serde(default, deserialize_with = "de_descriptors")]
    descriptors: Option<Vec<String>>,
    #[serde(default, deserialize_with = "de_birthday")]
    birthday: Option<Birthday>,
    #[serde(default, deserialize_with = "de_gap_limit")]
    gap_limit: Option<u32>,
}

/// `gap_limit` when the table does not set it: the gap BIP44 recommends
/// and wallets use.
pub const DEFAULT_GAP_LIMIT: u32 = 20;

/// The largest `gap_limit` accepted: every unused script watched costs a
/// filter match test per block, and a wallet leaving 1000 addresses unused
/// in a row is better described with a new descriptor.
pub const MAX_GAP_LIMIT: u32 = 1000;

/// The longest wallet name accepted.
pub const MAX_WALLET_NAME: usize = 64;

fn de_electrum_bind<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SocketAddr>, D::Error> {
    types::from_text(d, types::parse_electrum_bind).map(Some)
}

fn de_electrum_tls_bind<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SocketAddr>, D::Error> {
    types::from_text(d, types::parse_electrum_tls_bind).map(Some)
}

/// One entry or a list of them, never an empty list. The entries stay
/// text: reading them needs the chain ([`super::resolve::wallets`]).
fn de_descriptors<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    let list = d.deserialize_any(ListVisitor::new(|s| Ok(s.to_owned())))?;
    if list.is_empty() {
        return Err(de::Error::custom(
            "list at least one descriptor or extended public key",
        ));
    }
    Ok(Some(list))
}

/// A height, a date in quotes, or a TOML date (`birthday = 2024-04-20`,
/// which TOML users will write). Both date spellings go through TOML's
/// own date parser; read from a `toml::Value` (as every key is, see
/// `check_value`), a TOML date even arrives here as its text.
fn de_birthday<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Birthday>, D::Error> {
    let birthday = match toml::Value::deserialize(d)? {
        toml::Value::Integer(h) => u32::try_from(h)
            .map(Birthday::Height)
            .map_err(|_| format!("{h} is not a block height; use a number from 0 to 4294967295")),
        toml::Value::String(s) => s.parse::<Birthday>(),
        toml::Value::Datetime(dt) => Birthday::from_datetime(&dt),
        _ => Err(format!("expected {}", expected("wallet.birthday"))),
    };
    birthday.map(Some).map_err(de::Error::custom)
}

fn de_gap_limit<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    let n = i64::deserialize(d)?;
    match u32::try_from(n) {
        Ok(n) if (1..=MAX_GAP_LIMIT).contains(&n) => Ok(Some(n)),
        _ => Err(de::Error::custom(format!(
            "use a number from 1 to {MAX_GAP_LIMIT} (unused scripts watched past the last \
             used one); the default is {DEFAULT_GAP_LIMIT}"
        ))),
    }
}

fn de_chain<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Chain>, D::Error> {
    types::from_text(d, types::parse_display::<Chain>).map(Some)
}

fn de_isolation<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Isolation>, D::Error> {
    types::from_text(d, types::parse_display::<Isolation>).map(Some)
}

fn de_networks<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<NetworkId>>, D::Error> {
    d.deserialize_any(ListVisitor::new(types::parse_network))
        .map(Some)
}

fn de_targets<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<Target>>, D::Error> {
    d.deserialize_any(ListVisitor::new(|s| {
        types::parse_display::<Target>(s).map_err(|e| format!("{s:?}: {e}"))
    }))
    .map(Some)
}

/// Bridge lines, each checked field by field: the error quotes the line
/// and names the field that is wrong.
fn de_bridges<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<BridgeLine>>, D::Error> {
    d.deserialize_any(ListVisitor::new(|s| {
        s.parse::<BridgeLine>().map_err(|e| format!("{s:?}: {e}"))
    }))
    .map(Some)
}

/// `{ TRANSPORT = "binary" }`, each entry as [`Transport::new`] takes it.
fn de_transport_binary<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<BTreeMap<String, PathBuf>>, D::Error> {
    let map = BTreeMap::<String, PathBuf>::deserialize(d)?;
    for (transport, binary) in &map {
        Transport::new(transport, binary).map_err(de::Error::custom)?;
    }
    Ok(Some(map))
}

fn de_binds<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<BindSpec>>, D::Error> {
    d.deserialize_any(ListVisitor::new(types::parse_display::<BindSpec>))
        .map(Some)
}

fn de_rpcbinds<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<RpcBind>>, D::Error> {
    d.deserialize_any(ListVisitor::new(types::parse_display::<RpcBind>))
        .map(Some)
}

fn de_categories<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<DebugCategory>>, D::Error> {
    d.deserialize_any(ListVisitor::new(types::parse_display::<DebugCategory>))
        .map(Some)
}

/// A deserializer that only records the field names a derived struct asks
/// for, so the schema has one source of truth: the structs above.
struct FieldNames(&'static [&'static str]);

impl<'de> Deserializer<'de> for &mut FieldNames {
    type Error = de::value::Error;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
        Err(de::Error::custom("field names only"))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.0 = fields;
        Err(de::Error::custom("field names only"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map enum identifier ignored_any
    }
}

/// The field names of a struct deriving `Deserialize`.
fn field_names<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
    let mut names = FieldNames(&[]);
    // The error is the point: the names were recorded on the way.
    let _ = T::deserialize(&mut names);
    names.0
}

/// The keys of the top level, in the file's documented order.
pub fn top_level_keys() -> &'static [&'static str] {
    field_names::<FileConfig>()
}

/// The keys of a `[wallet.NAME]` table.
pub fn wallet_keys() -> &'static [&'static str] {
    field_names::<WalletSection>()
}

/// The keys of a table (`tor`, `log`), or `None` for a plain key.
pub fn table_keys(table: &str) -> Option<&'static [&'static str]> {
    match table {
        "tor" => Some(field_names::<TorSection>()),
        "log" => Some(field_names::<LogSection>()),
        _ => None,
    }
}

/// Every key, qualified (`tor.isolation`), tables themselves left out, and
/// the `[wallet.NAME]` tables too: their names are the user's (their keys
/// are [`wallet_keys`]).
pub fn all_keys() -> Vec<String> {
    let mut out = Vec::new();
    for key in top_level_keys().iter().filter(|k| **k != "wallet") {
        match table_keys(key) {
            Some(inner) => out.extend(inner.iter().map(|k| format!("{key}.{k}"))),
            None => out.push((*key).to_owned()),
        }
    }
    out
}

/// What a key's value must look like, for type errors (`listen = "yes"`).
pub fn expected(key: &str) -> &'static str {
    match key {
        "chain" => "one of \"main\", \"testnet4\", \"signet\", \"regtest\"",
        "datadir" | "rpccookiefile" | "tor.network_file" => "a path in quotes",
        "onlynet" => "a list of networks, e.g. [\"onion\"]",
        "connect" | "addnode" => "a list of peers, e.g. [\"<56 chars>.onion:8333\"]",
        "bind" => "a list of addresses, e.g. [\"127.0.0.1:8334=onion\"]",
        "rpcbind" => "a list of addresses, e.g. [\"127.0.0.1\"]",
        "listen" | "listenonion" | "v2transport" | "dnsseed" | "fixedseeds" | "privacy"
        | "v1fallback" | "block_filters" | "electrum" | "tor.enabled" | "log.sensitive" => {
            "true or false"
        }
        "electrum_bind" => "an address in quotes, e.g. \"127.0.0.1:50001\"",
        "electrum_tls_bind" => "an address in quotes, e.g. \"127.0.0.1:50002\"",
        "wallet" => "a [wallet.NAME] table per wallet, with descriptors and a birthday",
        "wallet.descriptors" => {
            "a list of descriptors or extended public keys, e.g. [\"wpkh([d34db33f/84h/0h/0h]xpub…/<0;1>/*)\"]"
        }
        "wallet.birthday" => "a block height or a date, e.g. 840000 or \"2024-04-20\"",
        "wallet.gap_limit" => "a whole number from 1 to 1000",
        "maxconnections" => "a whole number from 0 to 4294967295",
        "rpcport" => "a port number from 1 to 65535",
        "maxoutbound" => "a whole number from 0 to 64",
        "feeler_interval_secs" => "a whole number of seconds, at least 1",
        "decoy_blocks" => "a whole number from 0 to 10",
        "tor.isolation" => "\"per-kind\" or \"per-connection\"",
        "tor.memory_limit_mib" => "a whole number of MiB from 16 to 1048576",
        "tor.bridges" => {
            "a list of bridge lines, e.g. [\"obfs4 192.0.2.10:443 <40 hex digits> cert=… iat-mode=0\"]"
        }
        "tor.transport_binary" => {
            "a table of transport = binary, e.g. { obfs4 = \"/usr/bin/obfs4proxy\" }"
        }
        "log.debug" => "a list of categories, e.g. [\"net\", \"tor\"]",
        "tor" | "log" => "a table",
        _ => "a valid value",
    }
}

/// Line and column (both from 1) of byte `offset` in `text`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
    (line, column)
}

/// Parse `text` (read from `file`) into a layer of explicit settings.
pub fn parse(text: &str, file: &Path) -> Result<Layer, ConfigError> {
    let table: toml::Table = toml::from_str(text).map_err(|e| {
        let (line, column) = e.span().map_or((0, 0), |s| line_column(text, s.start));
        ConfigError::Syntax {
            file: file.to_path_buf(),
            line,
            column,
            // toml's messages may span lines ("expected ..."); one line.
            message: e.message().trim().replace('\n', "; "),
        }
    })?;
    check_keys(&table, file)?;
    let config: FileConfig =
        toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Invalid {
                file: Some(file.to_path_buf()),
                setting: "the file".to_owned(),
                problem: e.message().trim().to_owned(),
            })?;
    config.into_layer(file)
}

/// Step 2 and 3: every key known, every value valid on its own.
fn check_keys(table: &toml::Table, file: &Path) -> Result<(), ConfigError> {
    for (key, value) in table {
        if !top_level_keys().contains(&key.as_str()) {
            return Err(unknown_key(key, file));
        }
        if key == "wallet" {
            check_wallets(value, file)?;
            continue;
        }
        let Some(inner_keys) = table_keys(key) else {
            check_value(key, key, single(key, value.clone()), value, file)?;
            continue;
        };
        let Some(inner) = value.as_table() else {
            return Err(bad_value(
                key,
                value,
                &format!("expected a [{key}] table"),
                file,
            ));
        };
        for (inner_key, inner_value) in inner {
            let qualified = format!("{key}.{inner_key}");
            if !inner_keys.contains(&inner_key.as_str()) {
                return Err(unknown_key(&qualified, file));
            }
            let doc = single(key, single(inner_key, inner_value.clone()));
            check_value(&qualified, &qualified, doc, inner_value, file)?;
        }
    }
    Ok(())
}

/// Whether `name` may name a wallet: it shows in logs, in `print-config`
/// and to the code that keeps each wallet's state, so nothing that needs
/// quoting or escaping anywhere.
fn valid_wallet_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_WALLET_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Step 2 and 3 for the `[wallet.NAME]` tables.
fn check_wallets(value: &toml::Value, file: &Path) -> Result<(), ConfigError> {
    let Some(wallets) = value.as_table() else {
        // Core's `wallet=<name>` lands here.
        return Err(bad_value(
            "wallet",
            value,
            &format!("expected {}", expected("wallet")),
            file,
        ));
    };
    for (name, table) in wallets {
        let Some(table) = table.as_table() else {
            let problem = if wallet_keys().contains(&name.as_str()) {
                format!(
                    "a wallet's keys go in a table named after it: write [wallet.main] (or another name) above {name}"
                )
            } else {
                format!("expected a [wallet.{name}] table, with descriptors and a birthday")
            };
            return Err(bad_value(&format!("wallet.{name}"), table, &problem, file));
        };
        if !valid_wallet_name(name) {
            return Err(ConfigError::Invalid {
                file: Some(file.to_path_buf()),
                setting: format!("[wallet.{}]", toml_key(name)),
                problem: format!(
                    "a wallet name may hold letters, digits, '-' and '_' only, at most {MAX_WALLET_NAME} of them"
                ),
            });
        }
        for (inner_key, inner_value) in table {
            let shown = format!("wallet.{name}.{inner_key}");
            if !wallet_keys().contains(&inner_key.as_str()) {
                return Err(unknown_key(&shown, file));
            }
            let doc = single(
                "wallet",
                single(name, single(inner_key, inner_value.clone())),
            );
            check_value(
                &format!("wallet.{inner_key}"),
                &shown,
                doc,
                inner_value,
                file,
            )?;
        }
        let missing = |key: &str, problem: String| ConfigError::Invalid {
            file: Some(file.to_path_buf()),
            setting: format!("[wallet.{name}]"),
            problem: format!("no {key}: {problem}"),
        };
        if !table.contains_key("descriptors") {
            return Err(missing(
                "descriptors",
                "list the wallet's descriptors or its extended public key, \
                 e.g. descriptors = [\"zpub…\"]"
                    .to_owned(),
            ));
        }
        if !table.contains_key("birthday") {
            return Err(missing(
                "birthday",
                "give the height of the first block the wallet can have used \
                 (birthday = 840000) or the day it was made (birthday = \"2024-04-20\"); \
                 without one every block since 2009 would be scanned, which over Tor takes hours"
                    .to_owned(),
            ));
        }
    }
    Ok(())
}

/// A TOML key as it must be written (quoted unless bare).
fn toml_key(key: &str) -> String {
    if valid_wallet_name(key) {
        key.to_owned()
    } else {
        super::resolve::toml_str(key)
    }
}

/// `{key = value}` as a table value.
fn single(key: &str, value: toml::Value) -> toml::Value {
    let mut t = toml::Table::new();
    t.insert(key.to_owned(), value);
    toml::Value::Table(t)
}

/// Deserialize a document holding only `key`, naming `key` if it fails.
fn check_value(
    key: &str,
    shown: &str,
    doc: toml::Value,
    value: &toml::Value,
    file: &Path,
) -> Result<(), ConfigError> {
    match doc.try_into::<FileConfig>() {
        Ok(_) => Ok(()),
        Err(e) => {
            let message = e.message().trim();
            // serde's own type errors ("invalid type: string \"yes\",
            // expected a boolean") speak Rust; say what to write instead.
            // Our parsers' messages already do.
            let problem = if ["invalid type", "invalid value", "invalid length"]
                .iter()
                .any(|p| message.starts_with(p))
            {
                format!("expected {}", expected(key))
            } else {
                message.to_owned()
            };
            Err(bad_value(shown, value, &problem, file))
        }
    }
}

fn bad_value(key: &str, value: &toml::Value, problem: &str, file: &Path) -> ConfigError {
    // toml prints a lone date as the table serde carries it in; show it as
    // written.
    let value = match value {
        toml::Value::Datetime(dt) => dt.to_string(),
        other => other.to_string(),
    };
    ConfigError::Invalid {
        file: Some(file.to_path_buf()),
        setting: format!("{key} = {value}"),
        problem: problem.to_owned(),
    }
}

fn unknown_key(key: &str, file: &Path) -> ConfigError {
    let hint = match suggest(key) {
        Some(s) => s,
        None => {
            let (scope, keys) = match key.split_once('.') {
                Some(("wallet", rest)) => (
                    format!(" in [wallet.{}]", rest.split('.').next().unwrap_or(rest)),
                    wallet_keys().join(", "),
                ),
                Some((table, _)) => (
                    format!(" in [{table}]"),
                    table_keys(table).unwrap_or(&[]).join(", "),
                ),
                None => (String::new(), top_level_keys().join(", ")),
            };
            format!("known keys{scope}: {keys}")
        }
    };
    ConfigError::UnknownKey {
        file: file.to_path_buf(),
        key: key.to_owned(),
        hint,
    }
}

/// A key with `-` and `_` dropped and lower-cased, so `max_outbound`,
/// `max-outbound` and `maxOutbound` all meet `maxoutbound`.
fn normalize(key: &str) -> String {
    key.chars()
        .filter(|c| *c != '-' && *c != '_')
        .flat_map(char::to_lowercase)
        .collect()
}

/// Levenshtein distance, in characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitute = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitute.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

/// How a qualified key is written in a file: `onlynet`, or `isolation` in
/// the `[tor]` table.
fn spelled(qualified: &str) -> String {
    match qualified.split_once('.') {
        Some((table, key)) => format!("`{key}` in the [{table}] table"),
        None => format!("`{qualified}`"),
    }
}

/// A hint for an unknown key: the key the user probably meant.
pub fn suggest(unknown: &str) -> Option<String> {
    let leaf = unknown.rsplit('.').next().unwrap_or(unknown);
    let n = normalize(leaf);
    // Names the user may know from nightjar's flags or from bitcoin.conf.
    let alias = match n.as_str() {
        "conf" | "includeconf" => {
            return Some(
                "the config file can only be chosen on the command line (--conf FILE), as in Bitcoin Core"
                    .to_owned(),
            );
        }
        "main" | "test" | "testnet4" | "signet" | "regtest" => {
            return Some(
                "nightjar has no per-chain sections; set chain = \"...\" and put the keys at the top level"
                    .to_owned(),
            );
        }
        "notor" => {
            return Some("did you mean `enabled = false` in the [tor] table?".to_owned());
        }
        "network" | "testnet" => Some("chain"),
        "tornetwork" | "networkfile" => Some("tor.network_file"),
        "proxyrandomize" => Some("tor.isolation"),
        "memorylimit" | "maxmeminqueues" | "memquota" => Some("tor.memory_limit_mib"),
        "debug" | "logdebug" => Some("log.debug"),
        "logsensitive" | "sensitive" | "logips" => Some("log.sensitive"),
        "feelerinterval" => Some("feeler_interval_secs"),
        // Core's filter index and its serving of filters to peers; nightjar
        // keeps the filter header chain from peers instead.
        "blockfilterindex" | "peerblockfilters" | "compactfilters" | "cfilters" => {
            Some("block_filters")
        }
        "decoys" | "decoycount" => Some("decoy_blocks"),
        "electrs" | "electrumserver" | "electrumx" | "fulcrum" => Some("electrum"),
        _ => None,
    };
    if let Some(key) = alias {
        return Some(format!("did you mean {}?", spelled(key)));
    }
    // Keys of a wallet table: within one, or astray outside one.
    let wallet_key = match n.as_str() {
        "descriptor" | "desc" | "descs" | "xpub" | "xpubs" | "zpub" | "keys" => Some("descriptors"),
        "gap" | "gaplimit" | "lookahead" => Some("gap_limit"),
        "height" | "startheight" | "rescanfrom" | "created" => Some("birthday"),
        _ => nearest(&n, wallet_keys()).copied(),
    };
    match (
        unknown.split('.').collect::<Vec<_>>().as_slice(),
        wallet_key,
    ) {
        (["wallet", name, _], Some(key)) => {
            return Some(format!(
                "did you mean `{key}` in the [wallet.{name}] table?"
            ));
        }
        (["wallet", _, _], None) => return None,
        (_, Some(key)) => {
            return Some(format!("did you mean `{key}` in a [wallet.NAME] table?"));
        }
        _ => {}
    }
    nearest(&n, &all_keys()).map(|k| format!("did you mean {}?", spelled(k)))
}

/// The key of `keys` a normalized name `n` most likely meant: the same
/// name (in another table, for qualified keys: `isolation` at the top
/// level), else the nearest within a distance that grows with length.
fn nearest<'k, K: AsRef<str>>(n: &str, keys: &'k [K]) -> Option<&'k K> {
    let leaf_of = |k: &K| {
        let k = k.as_ref();
        normalize(k.rsplit('.').next().unwrap_or(k))
    };
    if let Some(k) = keys.iter().find(|k| leaf_of(k) == n) {
        return Some(k);
    }
    let limit = if n.chars().count() >= 6 { 2 } else { 1 };
    keys.iter()
        .map(|k| (edit_distance(n, &leaf_of(k)), k))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// A value from the file.
fn f<T>(value: T) -> Sourced<T> {
    Sourced::new(value, Source::File)
}

impl FileConfig {
    /// The layer this file gives. Relative `datadir` and `tor.network_file`
    /// are taken relative to the file's directory, not to wherever nightjar
    /// happens to be started from (`/` under systemd).
    fn into_layer(self, file: &Path) -> Result<Layer, ConfigError> {
        let base = file.parent().unwrap_or(Path::new(""));
        let rel = |p: PathBuf| if p.is_relative() { base.join(p) } else { p };
        let tor = self.tor.unwrap_or_default();
        let log = self.log.unwrap_or_default();
        let wallets = match self.wallet {
            Some(tables) => Some(f(wallet_entries(tables, file)?)),
            None => None,
        };
        Ok(Layer {
            chain: self.chain.map(f),
            datadir: self.datadir.map(rel).map(f),
            onlynet: self.onlynet.map(f),
            connect: self.connect.map(f),
            addnode: self.addnode.map(f),
            listen: self.listen.map(f),
            listenonion: self.listenonion.map(f),
            bind: self.bind.map(f),
            maxconnections: self.maxconnections.map(f),
            v2transport: self.v2transport.map(f),
            dnsseed: self.dnsseed.map(f),
            fixedseeds: self.fixedseeds.map(f),
            rpcbind: self.rpcbind.map(f),
            rpcport: self.rpcport.map(f),
            // Relative to the chain directory, as in Core: kept as written.
            rpccookiefile: self.rpccookiefile.map(f),
            privacy: self.privacy.map(f),
            v1fallback: self.v1fallback.map(f),
            maxoutbound: self.maxoutbound.map(f),
            feeler_interval_secs: self.feeler_interval_secs.map(f),
            block_filters: self.block_filters.map(f),
            decoy_blocks: self.decoy_blocks.map(f),
            electrum: self.electrum.map(f),
            electrum_bind: self.electrum_bind.map(f),
            electrum_tls_bind: self.electrum_tls_bind.map(f),
            tor_network_file: tor.network_file.map(rel).map(f),
            tor_enabled: tor.enabled.map(f),
            tor_isolation: tor.isolation.map(f),
            tor_memory_limit_mib: tor.memory_limit_mib.map(f),
            tor_bridges: tor.bridges.map(f),
            tor_transport_binary: tor.transport_binary.map(f),
            log_debug: log.debug.map(f),
            log_sensitive: log.sensitive.map(f),
            wallets,
        })
    }
}

/// The wallets of the file, in name order. [`WalletSection`]'s keys are
/// optional only so that `check_value` can read them one at a time;
/// [`check_wallets`] has already refused a table without them, with a
/// better message, so the error here is a guard users never see.
fn wallet_entries(
    tables: BTreeMap<String, WalletSection>,
    file: &Path,
) -> Result<Vec<WalletEntry>, ConfigError> {
    tables
        .into_iter()
        .map(|(name, w)| match (w.descriptors, w.birthday) {
            (Some(descriptors), Some(birthday)) => Ok(WalletEntry {
                name,
                descriptors,
                birthday,
                gap_limit: w.gap_limit,
            }),
            _ => Err(ConfigError::Invalid {
                file: Some(file.to_path_buf()),
                setting: format!("[wallet.{name}]"),
                problem: "a wallet needs descriptors and a birthday".to_owned(),
            }),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file() -> &'static Path {
        Path::new("/etc/nightjar/nightjar.toml")
    }

    fn error(text: &str) -> String {
        parse(text, file()).unwrap_err().to_string()
    }

    #[test]
    fn the_schema_comes_from_the_structs() {
        let keys = all_keys();
        assert!(keys.contains(&"onlynet".to_owned()));
        assert!(keys.contains(&"tor.isolation".to_owned()));
        assert!(keys.contains(&"log.sensitive".to_owned()));
        assert!(!keys.contains(&"tor".to_owned()));
        assert!(keys.contains(&"block_filters".to_owned()));
        assert!(keys.contains(&"decoy_blocks".to_owned()));
        assert!(keys.contains(&"electrum_bind".to_owned()));
        assert!(keys.contains(&"tor.bridges".to_owned()));
        assert!(keys.contains(&"tor.transport_binary".to_owned()));
        // Wallet tables are named by the user: listed apart.
        assert!(!keys.iter().any(|k| k.starts_with("wallet")), "{keys:?}");
        assert_eq!(wallet_keys(), ["descriptors", "birthday", "gap_limit"]);
        assert_eq!(keys.len(), 32, "{keys:?}");
    }

    #[test]
    fn every_key_says_what_it_expects() {
        for key in all_keys() {
            assert_ne!(expected(&key), "a valid value", "{key} has no hint");
        }
        for key in wallet_keys() {
            let key = format!("wallet.{key}");
            assert_ne!(expected(&key), "a valid value", "{key} has no hint");
        }
    }

    #[test]
    fn typos_get_the_nearest_key() {
        assert_eq!(
            suggest("onlynett").as_deref(),
            Some("did you mean `onlynet`?")
        );
        assert_eq!(
            suggest("max_outbound").as_deref(),
            Some("did you mean `maxoutbound`?")
        );
        assert_eq!(
            suggest("isolation").as_deref(),
            Some("did you mean `isolation` in the [tor] table?")
        );
        assert_eq!(
            suggest("tor.enabeld").as_deref(),
            Some("did you mean `enabled` in the [tor] table?")
        );
        assert_eq!(suggest("network").as_deref(), Some("did you mean `chain`?"));
        for core in ["blockfilterindex", "peerblockfilters", "block-filters"] {
            assert_eq!(
                suggest(core).as_deref(),
                Some("did you mean `block_filters`?"),
                "{core}"
            );
        }
        assert_eq!(
            suggest("decoy_block").as_deref(),
            Some("did you mean `decoy_blocks`?")
        );
        assert!(suggest("conf").unwrap().contains("--conf"));
        assert_eq!(suggest("zzzzzzzz"), None);
    }

    #[test]
    fn wallet_tables_become_entries_in_name_order() {
        let layer = parse(
            "[wallet.b]\ndescriptors = \"vpub…\"\nbirthday = 2024-04-20\n\
             [wallet.a]\ndescriptors = [\"x\", \"y\"]\nbirthday = 5\ngap_limit = 1000\n",
            file(),
        )
        .unwrap();
        let wallets = layer.wallets.unwrap();
        assert_eq!(wallets.source, Source::File);
        let [a, b] = wallets.value.as_slice() else {
            panic!("{wallets:?}")
        };
        assert_eq!(
            (a.name.as_str(), a.birthday, a.gap_limit),
            ("a", Birthday::Height(5), Some(1000))
        );
        assert_eq!(a.descriptors, ["x", "y"]);
        // Descriptors stay text here: reading them needs the chain.
        assert_eq!(b.descriptors, ["vpub…"]);
        assert_eq!(b.birthday, "2024-04-20".parse().unwrap());
        assert_eq!(b.gap_limit, None);
        assert_eq!(parse("", file()).unwrap().wallets, None);
    }

    #[test]
    fn wallet_keys_get_suggestions_in_and_out_of_their_table() {
        assert_eq!(
            suggest("wallet.main.gap-limit").as_deref(),
            Some("did you mean `gap_limit` in the [wallet.main] table?")
        );
        assert_eq!(
            suggest("wallet.main.xpub").as_deref(),
            Some("did you mean `descriptors` in the [wallet.main] table?")
        );
        assert_eq!(
            suggest("birthday").as_deref(),
            Some("did you mean `birthday` in a [wallet.NAME] table?")
        );
        assert_eq!(suggest("wallet.main.zzzzzzzz"), None);
        let e = error("[wallet.main]\nzzzzzzzz = 1");
        assert!(
            e.contains("known keys in [wallet.main]: descriptors, birthday, gap_limit"),
            "{e}"
        );
        assert_eq!(
            suggest("electrs").as_deref(),
            Some("did you mean `electrum`?")
        );
    }

    #[test]
    fn edit_distance_counts_edits() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("dnsseed", "dnsseed"), 0);
    }

    #[test]
    fn syntax_errors_have_line_and_column() {
        let e = parse("chain = \"main\"\nlisten = \n", file()).unwrap_err();
        match e {
            ConfigError::Syntax { line, column, .. } => {
                assert_eq!((line, column), (2, 10));
            }
            other => panic!("{other}"),
        }
    }

    #[test]
    fn type_errors_say_what_to_write() {
        let e = error("listen = \"yes\"");
        assert_eq!(
            e,
            "config error in /etc/nightjar/nightjar.toml: listen = \"yes\": expected true or false"
        );
        let e = error("[tor]\nisolation = 3");
        assert!(
            e.contains("tor.isolation = 3") && e.contains("per-connection"),
            "{e}"
        );
        let e = error("tor = 3");
        assert!(e.contains("tor = 3: expected a [tor] table"), "{e}");
    }

    #[test]
    fn a_single_string_is_a_one_element_list() {
        let layer = parse("onlynet = \"onion\"", file()).unwrap();
        assert_eq!(layer.onlynet.unwrap().value, vec![NetworkId::Onion]);
    }

    #[test]
    fn relative_paths_are_taken_from_the_files_directory() {
        let layer = parse(
            "datadir = \"data\"\nrpccookiefile = \"c\"\n[tor]\nnetwork_file = \"net.toml\"",
            file(),
        )
        .unwrap();
        assert_eq!(
            layer.datadir.unwrap().value,
            Path::new("/etc/nightjar/data")
        );
        assert_eq!(
            layer.tor_network_file.unwrap().value,
            Path::new("/etc/nightjar/net.toml")
        );
        assert_eq!(layer.rpccookiefile.unwrap().value, Path::new("c"));
    }
}
