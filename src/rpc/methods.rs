//! What each RPC method answers, computed from the engine's state. Pure:
//! the driver calls [`answer`] inside the engine task, with the time, so
//! replies are consistent with the engine and testable without sockets.

mod bans;
mod broadcast;
mod chain;
mod filters;
mod info;

use nightjar_tor::Target;
use serde_json::{Value, json};

use super::{Params, RpcError, codes};
use crate::engine::{Command, CommandError, Engine, Now};
use crate::netaddr::{NetworkId, NetworkSet};
use crate::peer::ConnId;

pub use chain::{
    HEADERS_ONLY_WARNING, best_block_hash, block_count, block_hash, block_header, blockchain_info,
    chain_tips, difficulty,
};
pub use filters::{Reply, fetched, filter_info};
pub use info::{
    EMBEDDED_TOR, VERSION_NUMBER, addrman_info, network_info, node_address, peer_info,
    service_names,
};

/// The state of the embedded Tor client, for `getnetworkinfo`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TorStatus {
    /// Whether Tor is used at all (`false` only when the user turned it off).
    pub enabled: bool,
    /// Bootstrap progress in percent.
    pub percent: u8,
    /// Whether it is ready for traffic.
    pub ready: bool,
    /// What it is doing.
    pub summary: String,
    /// Why it is stuck, if it is.
    pub blocked: Option<String>,
    /// Our own onion service (`listenonion`): its address and state, or
    /// why it could not start.
    pub onion_service: Option<OnionServiceStatus>,
}

/// Our onion service as `getnetworkinfo` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OnionServiceStatus {
    /// `<56 chars>.onion:port`, once launched.
    pub address: Option<String>,
    /// `starting`, `running`, `degraded`, `unreachable`, `stopped`, or
    /// `failed: <why>`.
    pub state: String,
}

/// What a method call may read and change.
#[derive(Debug)]
pub struct NodeView<'a> {
    /// The engine.
    pub engine: &'a mut Engine,
    /// The time of the call.
    pub now: Now,
    /// When the node started (unix seconds), for `uptime`.
    pub started_unix: u64,
    /// The Tor client's state.
    pub tor: &'a TorStatus,
}

/// The methods, with their one-line help, in `help` order.
pub const METHODS: &[(&str, &str, &str)] = &[
    ("Blockchain", "getbestblockhash", "getbestblockhash"),
    ("Blockchain", "getblockchaininfo", "getblockchaininfo"),
    (
        "Blockchain",
        "getblock",
        "getblock \"blockhash\" ( verbosity )",
    ),
    ("Blockchain", "getblockcount", "getblockcount"),
    (
        "Blockchain",
        "getblockfilter",
        "getblockfilter \"blockhash\" ( \"filtertype\" )",
    ),
    ("Blockchain", "getblockhash", "getblockhash height"),
    (
        "Blockchain",
        "getblockheader",
        "getblockheader \"blockhash\" ( verbose )",
    ),
    ("Blockchain", "getchaintips", "getchaintips"),
    // Answered by the wallet layer (`crate::wallet::rpc`) in front of the
    // engine: the wallet index's progress.
    (
        "Blockchain",
        "getindexinfo",
        "getindexinfo ( \"index_name\" )",
    ),
    (
        "Blockchain",
        "scanblocks",
        "scanblocks \"action\" ( [scanobjects,...] start_height stop_height \"filtertype\" options )",
    ),
    ("Control", "help", "help ( \"command\" )"),
    ("Control", "stop", "stop"),
    ("Control", "uptime", "uptime"),
    (
        "Network",
        "addnode",
        "addnode \"node\" \"command\" ( v2transport )",
    ),
    (
        "Network",
        "disconnectnode",
        "disconnectnode ( \"address\" nodeid )",
    ),
    ("Network", "getaddrmaninfo", "getaddrmaninfo"),
    ("Network", "getconnectioncount", "getconnectioncount"),
    ("Network", "getnettotals", "getnettotals"),
    ("Network", "getnetworkinfo", "getnetworkinfo"),
    (
        "Network",
        "getnodeaddresses",
        "getnodeaddresses ( count \"network\" )",
    ),
    ("Network", "getpeerinfo", "getpeerinfo"),
    ("Network", "listbanned", "listbanned"),
    (
        "Network",
        "setban",
        "setban \"subnet\" \"command\" ( bantime absolute )",
    ),
    ("Network", "clearbanned", "clearbanned"),
    (
        "Network",
        "addpeeraddress",
        "addpeeraddress \"address\" port ( tried )",
    ),
    (
        "Rawtransactions",
        "sendrawtransaction",
        "sendrawtransaction \"hexstring\" ( maxfeerate maxburnamount )",
    ),
    (
        "Rawtransactions",
        "getprivatebroadcastinfo",
        "getprivatebroadcastinfo",
    ),
    (
        "Rawtransactions",
        "abortprivatebroadcast",
        "abortprivatebroadcast \"id\"",
    ),
];

/// More help for `help <command>`, after the usage line.
pub const DETAILS: &[(&str, &str)] = &[(
    "sendrawtransaction",
    "Sends the transaction by private broadcast only: over fresh, short-lived Tor \
     connections, each on a circuit of its own, to peers the node holds no other connection \
     to. Returns the txid once the transaction is queued (and saved to disk). nightjar has \
     no UTXO set: it checks what needs none (structure, sizes, standard outputs, dust, \
     witness shape, maxburnamount); fees, inputs and signatures are checked by the \
     receiving peers. maxfeerate is validated but cannot be applied without the inputs. \
     See getprivatebroadcastinfo and abortprivatebroadcast.",
)];

/// Answer one call, or start the fetch whose result answers it later
/// (`scanblocks start`, `getblockfilter`, `getblock`).
pub fn answer_or_defer(
    view: &mut NodeView<'_>,
    method: &str,
    params: &Params,
) -> Result<Reply, RpcError> {
    match method {
        "scanblocks" => filters::scanblocks(view, params),
        "getblockfilter" => filters::getblockfilter(view, params),
        "getblock" => filters::getblock(view, params),
        _ => answer(view, method, params).map(Reply::Now),
    }
}

/// Answer one call. `stop` only answers here: the driver stops the node
/// after sending the reply.
pub fn answer(view: &mut NodeView<'_>, method: &str, params: &Params) -> Result<Value, RpcError> {
    match method {
        "help" => help(params),
        "stop" => Ok(json!("nightjar stopping")),
        "uptime" => Ok(json!(view.now.unix.saturating_sub(view.started_unix))),
        "getnetworkinfo" => Ok(network_info(view.engine, view.tor)),
        "getnettotals" => Ok(net_totals(view.now)),
        "getpeerinfo" => Ok(peer_info(view.engine)),
        "getconnectioncount" => Ok(json!(view.engine.peers().connected().count())),
        "getaddrmaninfo" => Ok(addrman_info(view.engine)),
        "getnodeaddresses" => node_addresses(view, params),
        "addnode" => add_node(view, params),
        "disconnectnode" => disconnect_node(view, params),
        "setban" => bans::set_ban(view, params),
        "listbanned" => Ok(bans::list_banned(view)),
        "clearbanned" => bans::clear_banned(view),
        "addpeeraddress" => broadcast::add_peer_address(view, params),
        "sendrawtransaction" => broadcast::send_raw_transaction(view, params),
        "getprivatebroadcastinfo" => Ok(broadcast::private_broadcast_info(view)),
        "abortprivatebroadcast" => broadcast::abort_private_broadcast(view, params),
        "getblockchaininfo" => {
            let mut info = blockchain_info(view.engine.chain(), view.now.unix);
            if let Value::Object(o) = &mut info {
                o.insert("filters".into(), filter_info(view));
            }
            Ok(info)
        }
        "getblockcount" => Ok(block_count(view.engine.chain())),
        "getbestblockhash" => Ok(best_block_hash(view.engine.chain())),
        "getblockhash" => block_hash(view.engine.chain(), params),
        "getblockheader" => block_header(view.engine.chain(), params),
        "getchaintips" => Ok(chain_tips(view.engine.chain())),
        _ => Err(RpcError::new(codes::METHOD_NOT_FOUND, "Method not found")),
    }
}

fn help(params: &Params) -> Result<Value, RpcError> {
    match params.get(0, "command") {
        None => {
            let mut text = String::new();
            let mut section = "";
            for (group, _, usage) in METHODS {
                if *group != section {
                    if !section.is_empty() {
                        text.push('\n');
                    }
                    text.push_str(&format!("== {group} ==\n"));
                    section = group;
                }
                text.push_str(usage);
                text.push('\n');
            }
            Ok(json!(text.trim_end()))
        }
        Some(Value::String(name)) => METHODS
            .iter()
            .find(|(_, m, _)| m == name)
            .map(
                |(_, _, usage)| match DETAILS.iter().find(|(m, _)| m == name) {
                    Some((_, more)) => json!(format!("{usage}\n\n{more}")),
                    None => json!(usage),
                },
            )
            .ok_or_else(|| {
                RpcError::new(codes::MISC_ERROR, format!("help: unknown command: {name}"))
            }),
        Some(_) => Err(type_error("command", "a string")),
    }
}

fn node_addresses(view: &mut NodeView<'_>, params: &Params) -> Result<Value, RpcError> {
    let count = match params.get(0, "count") {
        None => 1,
        Some(v) => v.as_i64().ok_or_else(|| type_error("count", "a number"))?,
    };
    let count = usize::try_from(count)
        .map_err(|_| RpcError::new(codes::INVALID_PARAMETER, "Address count out of range"))?;
    let networks = match params.get(1, "network") {
        None => NetworkSet::all(),
        Some(Value::String(name)) => {
            let id: NetworkId = name.parse().map_err(|_| {
                RpcError::new(
                    codes::INVALID_PARAMETER,
                    format!("Network not recognized: {name}"),
                )
            })?;
            NetworkSet::only(id)
        }
        Some(_) => return Err(type_error("network", "a string")),
    };
    let records = view.engine.node_addresses(count, networks, view.now.unix);
    Ok(Value::Array(records.iter().map(node_address).collect()))
}

fn parse_target(v: Option<&Value>, name: &str) -> Result<Target, RpcError> {
    let text = match v {
        Some(Value::String(s)) => s,
        Some(_) => return Err(type_error(name, "a string")),
        None => {
            return Err(RpcError::new(
                codes::INVALID_PARAMS,
                format!("missing required parameter {name}"),
            ));
        }
    };
    text.parse().map_err(|e| {
        RpcError::new(
            codes::INVALID_PARAMETER,
            format!("invalid peer address {text:?}: {e}"),
        )
    })
}

fn add_node(view: &mut NodeView<'_>, params: &Params) -> Result<Value, RpcError> {
    let target = parse_target(params.get(0, "node"), "node")?;
    let command = match params.get(1, "command") {
        Some(Value::String(c)) => c.as_str(),
        _ => {
            return Err(RpcError::new(
                codes::INVALID_PARAMS,
                "addnode \"node\" \"command\": command is one of add, remove, onetry",
            ));
        }
    };
    if let Some(v) = params.get(2, "v2transport") {
        match v.as_bool() {
            Some(true) => {}
            Some(false) => {
                return Err(RpcError::new(
                    codes::INVALID_PARAMETER,
                    "v2transport=false is not supported: nightjar always tries BIP324 v2 first \
                     (added peers may fall back to v1 unless --privacy is on)",
                ));
            }
            None => return Err(type_error("v2transport", "a boolean")),
        }
    }
    let command = match command {
        "add" => Command::AddNode(target),
        "remove" => Command::RemoveNode(target),
        "onetry" => Command::OneTry(target),
        other => {
            return Err(RpcError::new(
                codes::INVALID_PARAMETER,
                format!("unknown command {other:?}: use add, remove or onetry"),
            ));
        }
    };
    let result = view.engine.command(view.now, command);
    result.map(|_| Value::Null).map_err(|e| match e {
        CommandError::AlreadyAdded => {
            RpcError::new(codes::NODE_ALREADY_ADDED, "Error: Node already added")
        }
        CommandError::NotAdded => RpcError::new(
            codes::NODE_NOT_ADDED,
            "Error: Node could not be removed. It has not been added previously.",
        ),
        CommandError::AlreadyConnected => {
            RpcError::new(codes::MISC_ERROR, "Error: Already connected to this peer")
        }
        CommandError::Refused(why) => {
            RpcError::new(codes::INVALID_PARAMETER, format!("Error: refused: {why}"))
        }
        CommandError::NotConnected => not_connected(),
        other => RpcError::new(codes::MISC_ERROR, format!("Error: {other}")),
    })
}

fn disconnect_node(view: &mut NodeView<'_>, params: &Params) -> Result<Value, RpcError> {
    // Core's documented form for "by id" is `disconnectnode "" <nodeid>`:
    // an empty (or null) address counts as none.
    let address = params
        .get(0, "address")
        .filter(|a| !a.is_null() && a.as_str() != Some(""));
    let nodeid = params.get(1, "nodeid").filter(|n| !n.is_null());
    let conn = match (address, nodeid) {
        (Some(Value::String(a)), None) => view
            .engine
            .peers()
            .iter()
            .find(|e| e.target.to_string() == *a)
            .map(|e| e.conn),
        (None, Some(id)) => {
            let id = id
                .as_u64()
                .ok_or_else(|| type_error("nodeid", "a number"))?;
            Some(ConnId(id))
        }
        _ => {
            return Err(RpcError::new(
                codes::INVALID_PARAMETER,
                "Only one of address and nodeid should be provided.",
            ));
        }
    };
    let command = |conn| Command::Disconnect {
        conn,
        reason: "disconnectnode".to_owned(),
    };
    match conn.map(|c| view.engine.command(view.now, command(c))) {
        Some(Ok(_)) => Ok(Value::Null),
        _ => Err(not_connected()),
    }
}

fn not_connected() -> RpcError {
    RpcError::new(
        codes::NODE_NOT_CONNECTED,
        "Node not found in connected nodes",
    )
}

/// `getnettotals`, in Core's shape. nightjar serves no blocks, so there is
/// no upload target to report: Core's "no target" values.
fn net_totals(now: Now) -> Value {
    let (received, sent) = crate::peer::traffic::totals();
    json!({
        "totalbytesrecv": received,
        "totalbytessent": sent,
        "timemillis": now.unix.saturating_mul(1000),
        "uploadtarget": {
            "timeframe": 86_400,
            "target": 0,
            "target_reached": false,
            "serve_historical_blocks": false,
            "bytes_left_in_cycle": 0,
            "time_left_in_cycle": 0,
        },
    })
}

fn type_error(name: &str, want: &str) -> RpcError {
    RpcError::new(codes::TYPE_ERROR, format!("{name} must be {want}"))
}

#[cfg(test)]
mod tests;
