//! The read-only reports: `getnetworkinfo`, `getpeerinfo`,
//! `getaddrmaninfo`, `getnodeaddresses` entries, with Bitcoin Core's field
//! names and value formats, plus nightjar's own fields where Core has none
//! (the Tor circuit and isolation group of each peer, the Tor client's
//! bootstrap state).

use nightjar_tor::Target;
use serde_json::{Value, json};

use super::TorStatus;
use crate::addrman::AddrRecord;
use crate::engine::peers::PeerEntry;
use crate::engine::targets::target_to_addr;
use crate::engine::{Engine, IsolationScope, Reach};
use crate::netaddr::{Host, NetworkId};
use crate::peer::machine::MIN_PROTOCOL_VERSION;
use crate::transport::TransportKind;
use crate::wire::ServiceFlags;

/// Our version as Core encodes its own (`MMmmpp`): 0.1.0 is 100. We report
/// our own, not Core's: `subversion` names us, and a client that gates on
/// Core's version numbers should know it is not talking to Core.
pub const VERSION_NUMBER: u64 = 100;

/// The name `getnetworkinfo` gives the embedded Tor client as the "proxy" of
/// the networks it reaches (Core shows `host:port` of its SOCKS proxy).
pub const EMBEDDED_TOR: &str = "embedded Arti Tor client";

/// Core's names for service bits (`serviceFlagsToStr`).
pub fn service_names(flags: ServiceFlags) -> Vec<&'static str> {
    const NAMES: [(u64, &str); 6] = [
        (1 << 0, "NETWORK"),
        (1 << 2, "BLOOM"),
        (1 << 3, "WITNESS"),
        (1 << 6, "COMPACT_FILTERS"),
        (1 << 10, "NETWORK_LIMITED"),
        (1 << 11, "P2P_V2"),
    ];
    let bits = flags.to_u64();
    NAMES
        .iter()
        .filter(|(bit, _)| bits & bit != 0)
        .map(|(_, name)| *name)
        .collect()
}

fn services_hex(flags: ServiceFlags) -> String {
    format!("{:016x}", flags.to_u64())
}

/// Core's `network` field for a peer.
fn network_name(target: &Target) -> &'static str {
    match target_to_addr(target) {
        Some(addr) if !addr.is_routable() => "not_publicly_routable",
        Some(addr) => addr.network().as_str(),
        // A host name the exit resolves: we never learn the address.
        None => "unknown",
    }
}

/// `getnetworkinfo`. Core's `relayfee` and `incrementalfee` are left out:
/// nightjar keeps no mempool and relays no transactions, so any value would
/// be made up.
pub fn network_info(engine: &Engine, tor: &TorStatus) -> Value {
    let config = engine.config();
    let reachable = config.reachable_networks();
    let randomized = config.isolation_scope() == IsolationScope::PerConnection;
    let networks: Vec<Value> = NetworkId::ALL
        .iter()
        .map(|n| {
            let via_tor = config.reach == Reach::Tor
                && matches!(n, NetworkId::Ipv4 | NetworkId::Ipv6 | NetworkId::Onion);
            json!({
                "name": n.as_str(),
                "limited": !reachable.contains(*n),
                "reachable": reachable.contains(*n),
                "proxy": if via_tor { EMBEDDED_TOR } else { "" },
                "proxy_randomize_credentials": via_tor && randomized,
            })
        })
        .collect();
    let connections = engine.peers().connected().count();
    let inbound = engine
        .peers()
        .connected()
        .filter(|e| !e.kind.is_outbound())
        .count();
    json!({
        "version": VERSION_NUMBER,
        "subversion": config.user_agent,
        "protocolversion": MIN_PROTOCOL_VERSION,
        "localservices": services_hex(ServiceFlags::NONE),
        "localservicesnames": service_names(ServiceFlags::NONE),
        "localrelay": false,
        "timeoffset": 0,
        "networkactive": true,
        "connections": connections,
        "connections_in": inbound,
        "connections_out": connections - inbound,
        "networks": networks,
        // Our onion service, once it runs; never a clearnet address.
        "localaddresses": engine
            .local_onion()
            .map(|a| {
                let text = a.to_string();
                let (host, port) = text.rsplit_once(':').unwrap_or((text.as_str(), ""));
                vec![json!({ "address": host, "port": port.parse::<u16>().unwrap_or(0), "score": 1 })]
            })
            .unwrap_or_default(),
        "warnings": [],
        "privacy": config.privacy,
        "tor": {
            "enabled": tor.enabled,
            "bootstrapped": tor.ready,
            "progress": tor.percent,
            "summary": tor.summary,
            "blocked": tor.blocked,
            "onion_service": tor.onion_service.as_ref().map(|o| json!({
                "address": o.address,
                "state": o.state,
            })),
        },
    })
}

/// `getpeerinfo`: every connection past the transport handshake.
pub fn peer_info(engine: &Engine) -> Value {
    Value::Array(engine.peers().connected().map(peer_entry).collect())
}

fn peer_entry(e: &PeerEntry) -> Value {
    let info = e.info();
    let services = info.map_or(ServiceFlags::NONE, |i| i.services);
    let (transport, session_id) = match &e.transport {
        Some(t @ TransportKind::V2 { .. }) => ("v2", t.session_id_hex()),
        Some(TransportKind::V1) => ("v1", String::new()),
        None => ("detecting", String::new()),
    };
    let secs = |d: std::time::Duration| d.as_secs_f64();
    let mut v = json!({
        "id": e.conn.0,
        "addr": e.target.to_string(),
        "network": network_name(&e.target),
        "services": services_hex(services),
        "servicesnames": service_names(services),
        "relaytxes": info.is_some_and(|i| i.relay),
        "conntime": e.opened_unix,
        "version": info.map_or(0, |i| i.version),
        "subver": info.map_or("", |i| i.user_agent.as_str()),
        "inbound": !e.kind.is_outbound(),
        "connection_type": e.kind.core_name(),
        "transport_protocol_type": transport,
        "session_id": session_id,
        "addr_relay_enabled": true,
        "permissions": [],
        "nightjar_kind": e.kind.label(),
        "isolation": e.isolation.map(|i| i.to_string()),
        "circuit": e.circuit.as_ref().map(|c| json!({ "id": c.id, "hops": c.hops })),
    });
    if let Some(map) = v.as_object_mut() {
        if let Some(rtt) = e.last_rtt {
            map.insert("pingtime".into(), json!(secs(rtt)));
        }
        if let Some(rtt) = e.min_rtt {
            map.insert("minping".into(), json!(secs(rtt)));
        }
    }
    v
}

/// `getaddrmaninfo` (Core 27+): new/tried/total per network and overall.
pub fn addrman_info(engine: &Engine) -> Value {
    let info = engine.addrman().info();
    let counts = |c: crate::addrman::TableCounts| json!({ "new": c.new, "tried": c.tried, "total": c.total() });
    let mut map = serde_json::Map::new();
    for n in NetworkId::ALL {
        map.insert(n.as_str().to_owned(), counts(info.network(n)));
    }
    map.insert("all_networks".into(), counts(info.all_networks()));
    Value::Object(map)
}

/// One `getnodeaddresses` entry.
pub fn node_address(r: &AddrRecord) -> Value {
    let address = match r.addr.host {
        Host::Ipv4(ip) => ip.to_string(),
        Host::Ipv6(ip) => ip.to_string(),
        // Core prints onion, I2P and CJDNS hosts without the port.
        _ => {
            let text = r.addr.to_string();
            text.rsplit_once(':').map_or(text.clone(), |(h, _)| {
                h.trim_start_matches('[').trim_end_matches(']').to_owned()
            })
        }
    };
    json!({
        "time": r.last_seen,
        "services": r.services.to_u64(),
        "address": address,
        "port": r.addr.port,
        "network": r.addr.network().as_str(),
    })
}
