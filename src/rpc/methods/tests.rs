//! Golden replies: each method's JSON for a known engine state.

use std::time::{Duration, Instant};

use nightjar_tor::{CircuitLabel, Target};
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde_json::{Value, json};

use super::*;
use crate::addrman::{AddrMan, AddrManKey, AddrRecord, AddrSource, InternalSource};
use crate::engine::{EngineConfig, Input, Output};
use crate::netaddr::NetAddr;
use crate::peer::{PeerEvent, PeerInfo, PeerReport, PeerUpdate};
use crate::transport::TransportKind;
use crate::wire::ServiceFlags;

const ONION: &str = "pg6mmjiyjmcrsslvykfwnntlaru7p5svn6y2ymmju6nubxndf4pscryd.onion:18444";
const T0: u64 = 1_700_000_000;

fn now(base: Instant, secs: u64) -> Now {
    Now {
        mono: base + Duration::from_secs(secs),
        unix: T0 + secs,
    }
}

/// An engine connected to one added onion peer over v2, knowing two
/// addresses.
fn connected(privacy: bool) -> (Engine, Instant) {
    let mut config = EngineConfig::new(bitcoin::Network::Regtest);
    config.privacy = privacy;
    config.addnodes = vec![ONION.parse().unwrap()];
    config.target_outbound = 0;
    let mut rng = StdRng::seed_from_u64(1);
    let mut addrman = AddrMan::new(bitcoin::Network::Regtest, AddrManKey::generate(&mut rng));
    let records: Vec<AddrRecord> = ["20.1.1.1:18444", ONION]
        .iter()
        .map(|a| AddrRecord {
            addr: a.parse::<NetAddr>().unwrap(),
            services: ServiceFlags::NETWORK | ServiceFlags::WITNESS,
            last_seen: T0,
        })
        .collect();
    let src = AddrSource::Internal(InternalSource::named("test"));
    addrman.add(&records, &src, T0, &mut rng);
    let mut engine = Engine::new(config, addrman, [5; 32]);
    let base = Instant::now();
    engine.handle(now(base, 0), Input::TorReady(true));
    let conn = loop {
        match engine.poll_output() {
            Some(Output::Dial(d)) => break d.conn,
            Some(_) => {}
            None => panic!("no dial"),
        }
    };
    engine.handle(
        now(base, 1),
        Input::Connected {
            conn,
            transport: TransportKind::V2 {
                session_id: [0xab; 32],
            },
            circuit: Some(CircuitLabel {
                id: "Circ 2.4".into(),
                hops: vec!["g".into(), "m".into(), "r".into()],
            }),
        },
    );
    let info = PeerInfo {
        version: 70016,
        services: ServiceFlags::NETWORK | ServiceFlags::WITNESS,
        user_agent: "/Satoshi:28.0.0/".into(),
        start_height: 0,
        nonce: 99,
        relay: true,
        wtxid_relay: true,
        addrv2: true,
    };
    for event in [
        PeerEvent::HandshakeComplete(info),
        PeerEvent::Rtt(Duration::from_millis(250)),
    ] {
        engine.handle(
            now(base, 2),
            Input::Peer(PeerUpdate {
                conn,
                report: PeerReport::Event(event),
            }),
        );
    }
    while engine.poll_output().is_some() {}
    (engine, base)
}

fn call(
    engine: &mut Engine,
    base: Instant,
    method: &str,
    params: Value,
) -> Result<Value, RpcError> {
    let tor = TorStatus {
        enabled: true,
        percent: 100,
        ready: true,
        summary: "done".into(),
        blocked: None,
    };
    let params = match params {
        Value::Array(v) => Params::Positional(v),
        Value::Object(m) => Params::Named(m),
        _ => Params::Positional(vec![]),
    };
    let mut view = NodeView {
        engine,
        now: now(base, 60),
        started_unix: T0,
        tor: &tor,
    };
    answer(&mut view, method, &params)
}

#[test]
fn getpeerinfo_uses_cores_fields_and_adds_circuit_and_isolation() {
    let (mut e, base) = connected(false);
    let got = call(&mut e, base, "getpeerinfo", json!([])).unwrap();
    let want = json!([{
        "id": 1,
        "addr": ONION,
        "network": "onion",
        "services": "0000000000000009",
        "servicesnames": ["NETWORK", "WITNESS"],
        "relaytxes": true,
        "conntime": T0,
        "version": 70016,
        "subver": "/Satoshi:28.0.0/",
        "inbound": false,
        "connection_type": "manual",
        "transport_protocol_type": "v2",
        "session_id": "ab".repeat(32),
        "addr_relay_enabled": true,
        "permissions": [],
        "nightjar_kind": "manual",
        "isolation": "manual/1",
        "circuit": {"id": "Circ 2.4", "hops": ["g", "m", "r"]},
        "pingtime": 0.25,
        "minping": 0.25,
    }]);
    assert_eq!(got, want);
    assert_eq!(
        call(&mut e, base, "getconnectioncount", json!([])).unwrap(),
        json!(1)
    );
}

#[test]
fn getnetworkinfo_shows_reachability_through_tor_and_bootstrap_state() {
    let (mut e, base) = connected(false);
    let got = call(&mut e, base, "getnetworkinfo", json!([])).unwrap();
    assert_eq!(got["subversion"], json!("/nightjar:0.1.0/"));
    assert_eq!(got["version"], json!(VERSION_NUMBER));
    assert_eq!(got["protocolversion"], json!(70016));
    assert_eq!(got["connections"], json!(1));
    assert_eq!(got["warnings"], json!([]));
    assert_eq!(
        got["tor"],
        json!({"enabled": true, "bootstrapped": true, "progress": 100, "summary": "done", "blocked": null})
    );
    let net = |name: &str| {
        got["networks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["name"] == name)
            .cloned()
            .unwrap()
    };
    assert_eq!(
        net("ipv4"),
        json!({"name": "ipv4", "limited": false, "reachable": true, "proxy": EMBEDDED_TOR, "proxy_randomize_credentials": false})
    );
    assert_eq!(
        net("i2p"),
        json!({"name": "i2p", "limited": true, "reachable": false, "proxy": "", "proxy_randomize_credentials": false})
    );

    let (mut p, base) = connected(true);
    let got = call(&mut p, base, "getnetworkinfo", json!([])).unwrap();
    let nets = got["networks"].as_array().unwrap();
    for n in nets {
        let onion = n["name"] == "onion";
        assert_eq!(n["reachable"], json!(onion), "{n}");
        assert_eq!(n["limited"], json!(!onion), "{n}");
    }
    assert_eq!(got["privacy"], json!(true));
    let onion = nets.iter().find(|n| n["name"] == "onion").unwrap();
    assert_eq!(onion["proxy_randomize_credentials"], json!(true));
}

#[test]
fn getaddrmaninfo_and_getnodeaddresses() {
    let (mut e, base) = connected(false);
    let got = call(&mut e, base, "getaddrmaninfo", json!([])).unwrap();
    assert_eq!(got["ipv4"], json!({"new": 1, "tried": 0, "total": 1}));
    assert_eq!(got["onion"]["total"], json!(1));
    assert_eq!(got["all_networks"]["total"], json!(2));
    assert_eq!(got["i2p"], json!({"new": 0, "tried": 0, "total": 0}));

    let all = call(&mut e, base, "getnodeaddresses", json!([0])).unwrap();
    assert_eq!(all.as_array().unwrap().len(), 2);
    let onion = call(
        &mut e,
        base,
        "getnodeaddresses",
        json!({"count": 5, "network": "onion"}),
    )
    .unwrap();
    assert_eq!(
        onion,
        json!([{
            "time": T0,
            "services": 9,
            "address": ONION.trim_end_matches(":18444"),
            "port": 18444,
            "network": "onion",
        }])
    );
    let bad = call(&mut e, base, "getnodeaddresses", json!([1, "ipx"])).unwrap_err();
    assert_eq!(bad.code, codes::INVALID_PARAMETER);
    assert_eq!(bad.message, "Network not recognized: ipx");
    let neg = call(&mut e, base, "getnodeaddresses", json!([-1])).unwrap_err();
    assert_eq!(neg.message, "Address count out of range");
}

#[test]
fn addnode_add_remove_onetry_and_their_errors() {
    let (mut e, base) = connected(false);
    let peer = "127.0.0.1:18445";
    assert_eq!(
        call(&mut e, base, "addnode", json!([peer, "add"])).unwrap(),
        Value::Null
    );
    let again = call(&mut e, base, "addnode", json!([peer, "add"])).unwrap_err();
    assert_eq!(again.code, codes::NODE_ALREADY_ADDED);
    assert!(
        e.added_nodes()
            .any(|p| p.target == peer.parse::<Target>().unwrap())
    );
    assert_eq!(
        call(&mut e, base, "addnode", json!([peer, "remove"])).unwrap(),
        Value::Null
    );
    let gone = call(&mut e, base, "addnode", json!([peer, "remove"])).unwrap_err();
    assert_eq!(gone.code, codes::NODE_NOT_ADDED);
    assert_eq!(
        call(&mut e, base, "addnode", json!([peer, "onetry"])).unwrap(),
        Value::Null
    );
    assert!(e.peers().iter().any(|p| p.target.to_string() == peer));
    let dup = call(&mut e, base, "addnode", json!([ONION, "onetry"])).unwrap_err();
    assert_eq!(dup.code, codes::MISC_ERROR);
    let bad = call(&mut e, base, "addnode", json!(["nonsense", "add"])).unwrap_err();
    assert_eq!(bad.code, codes::INVALID_PARAMETER);
    let cmd = call(&mut e, base, "addnode", json!([peer, "join"])).unwrap_err();
    assert_eq!(cmd.code, codes::INVALID_PARAMETER);

    let (mut p, base) = connected(true);
    let refused = call(&mut p, base, "addnode", json!([peer, "add"])).unwrap_err();
    assert_eq!(refused.code, codes::INVALID_PARAMETER);
    assert!(refused.message.contains("onion"), "{}", refused.message);
}

#[test]
fn disconnectnode_by_address_and_id() {
    let (mut e, base) = connected(false);
    assert_eq!(
        call(&mut e, base, "disconnectnode", json!([ONION])).unwrap(),
        Value::Null
    );
    assert!(matches!(e.poll_output(), Some(Output::Disconnect { .. })));
    assert_eq!(
        call(&mut e, base, "disconnectnode", json!({"nodeid": 1})).unwrap(),
        Value::Null
    );
    let missing = call(&mut e, base, "disconnectnode", json!({"nodeid": 7})).unwrap_err();
    assert_eq!(missing.code, codes::NODE_NOT_CONNECTED);
    assert_eq!(missing.message, "Node not found in connected nodes");
    let both = call(&mut e, base, "disconnectnode", json!([ONION, 1])).unwrap_err();
    assert_eq!(both.code, codes::INVALID_PARAMETER);
}

#[test]
fn uptime_help_stop_and_unknown_methods() {
    let (mut e, base) = connected(false);
    assert_eq!(call(&mut e, base, "uptime", json!([])).unwrap(), json!(60));
    assert_eq!(
        call(&mut e, base, "stop", json!([])).unwrap(),
        json!("nightjar stopping")
    );
    let help = call(&mut e, base, "help", json!([])).unwrap();
    let text = help.as_str().unwrap();
    for (_, m, _) in METHODS {
        assert!(text.contains(m), "{m} in help");
    }
    assert!(text.starts_with("== Control =="));
    assert_eq!(
        call(&mut e, base, "help", json!(["getpeerinfo"])).unwrap(),
        json!("getpeerinfo")
    );
    let unknown = call(&mut e, base, "getblockcount", json!([])).unwrap_err();
    assert_eq!(unknown.code, codes::METHOD_NOT_FOUND);
    assert_eq!(unknown.message, "Method not found");
}
