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
        onion_service: None,
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
        json!({"enabled": true, "bootstrapped": true, "progress": 100, "summary": "done", "blocked": null, "onion_service": null})
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
    // Core's documented positional form (issue 16, D5).
    assert_eq!(
        call(&mut e, base, "disconnectnode", json!(["", 1])).unwrap(),
        Value::Null
    );
    let neither = call(&mut e, base, "disconnectnode", json!([""])).unwrap_err();
    assert_eq!(neither.code, codes::INVALID_PARAMETER);
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
    assert!(text.starts_with("== Blockchain =="));
    assert!(text.contains("\n\n== Control ==\n"));
    assert_eq!(
        call(&mut e, base, "help", json!(["getpeerinfo"])).unwrap(),
        json!("getpeerinfo")
    );
    let unknown = call(&mut e, base, "getmempoolinfo", json!([])).unwrap_err();
    assert_eq!(unknown.code, codes::METHOD_NOT_FOUND);
    assert_eq!(unknown.message, "Method not found");
}

// --- Chain methods ---

use bitcoin::block::Header;
use bitcoin::consensus::deserialize;
use bitcoin::hex::FromHex;

use crate::chain::HeaderChain;
use crate::chain::regtest_miner::{mine_regtest_branch, mine_regtest_chain, regtest_genesis};

/// Core's `GetDifficulty` for regtest's nBits `0x207fffff`: 0xffff /
/// 0x7fffff, shifted down three bytes.
const REGTEST_DIFFICULTY: f64 = 65535.0 / 8_388_607.0 / 16_777_216.0;

/// Regtest's genesis hash, display order.
const REGTEST_GENESIS: &str = "0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206";

/// A regtest chain: ten headers on genesis (the last at `T0 - 600`), a
/// two-header side branch off height 5 and a one-header branch off height
/// 9 (ending at the tip's height, with the same work: the tip keeps it).
fn regtest_chain() -> (HeaderChain, Vec<Header>, Vec<Header>, Vec<Header>) {
    let mut chain = HeaderChain::new(bitcoin::Network::Regtest);
    let start = u32::try_from(T0 - 6000).unwrap();
    let main = mine_regtest_chain(&regtest_genesis(), 10, start);
    chain.accept(&main, T0).unwrap();
    let side = mine_regtest_branch(&main[4], 2, main[5].time, 1);
    chain.accept(&side, T0).unwrap();
    let twin = mine_regtest_branch(&main[8], 1, main[9].time, 2);
    chain.accept(&twin, T0).unwrap();
    assert_eq!(chain.tip().1, main[9].block_hash());
    (chain, main, side, twin)
}

/// An engine with no peers holding `chain`.
fn with_chain(chain: HeaderChain) -> (Engine, Instant) {
    let config = EngineConfig::new(chain.network());
    let mut rng = StdRng::seed_from_u64(2);
    let addrman = AddrMan::new(chain.network(), AddrManKey::generate(&mut rng));
    (
        Engine::new(config, addrman, [6; 32]).with_chain(chain),
        Instant::now(),
    )
}

#[test]
fn getblockcount_getbestblockhash_getblockhash() {
    let (chain, main, _, _) = regtest_chain();
    let (mut e, base) = with_chain(chain.clone());
    assert_eq!(
        call(&mut e, base, "getblockcount", json!([])).unwrap(),
        json!(10)
    );
    assert_eq!(
        call(&mut e, base, "getbestblockhash", json!([])).unwrap(),
        json!(main[9].block_hash().to_string())
    );
    assert_eq!(
        call(&mut e, base, "getblockhash", json!([0])).unwrap(),
        json!(REGTEST_GENESIS)
    );
    for h in 0..=10u32 {
        let got = call(&mut e, base, "getblockhash", json!([h])).unwrap();
        assert_eq!(
            got,
            json!(chain.hash_at(h).unwrap().to_string()),
            "height {h}"
        );
    }
    // The side branch's height-6 header is not what the best chain has.
    assert_eq!(
        call(&mut e, base, "getblockhash", json!({"height": 6})).unwrap(),
        json!(main[5].block_hash().to_string())
    );
    for bad in [
        json!([11]),
        json!([-1]),
        json!([i64::MAX]),
        json!([u64::MAX]),
    ] {
        let err = call(&mut e, base, "getblockhash", bad.clone()).unwrap_err();
        assert_eq!(err.code, codes::INVALID_PARAMETER, "{bad}");
        assert_eq!(err.message, "Block height out of range");
    }
    for bad in [json!(["1"]), json!([1.5])] {
        let typed = call(&mut e, base, "getblockhash", bad.clone()).unwrap_err();
        assert_eq!(typed.code, codes::TYPE_ERROR, "{bad}");
    }
    let missing = call(&mut e, base, "getblockhash", json!([])).unwrap_err();
    assert_eq!(missing.code, codes::INVALID_PARAMS);
}

#[test]
fn getblockheader_verbose_fields_and_link_rules() {
    let (chain, main, side, _) = regtest_chain();
    let (mut e, base) = with_chain(chain.clone());
    let hdr =
        |e: &mut Engine, hash: String| call(e, base, "getblockheader", json!([hash])).unwrap();

    // A header in the middle of the best chain: every field.
    let h5 = main[4];
    let got = hdr(&mut e, h5.block_hash().to_string());
    let want = json!({
        "hash": h5.block_hash().to_string(),
        "confirmations": 6,
        "height": 5,
        "version": 0x2000_0000,
        "versionHex": "20000000",
        "merkleroot": h5.merkle_root.to_string(),
        "time": h5.time,
        "mediantime": chain.median_time_past(&h5.block_hash()).unwrap(),
        "nonce": h5.nonce,
        "bits": "207fffff",
        "target": format!("7fffff{}", "0".repeat(58)),
        "difficulty": REGTEST_DIFFICULTY,
        "chainwork": format!("{:064x}", 12),
        "nTx": 0,
        "previousblockhash": main[3].block_hash().to_string(),
        "nextblockhash": main[5].block_hash().to_string(),
    });
    assert_eq!(got, want);
    // The median of heights 0..=5 is height 3's time (genesis is oldest).
    assert_eq!(got["mediantime"], json!(main[2].time));

    // Genesis: no previousblockhash.
    let g = hdr(&mut e, REGTEST_GENESIS.into());
    assert_eq!(g["height"], json!(0));
    assert_eq!(g["confirmations"], json!(11));
    assert_eq!(g["chainwork"], json!(format!("{:064x}", 2)));
    assert_eq!(g["versionHex"], json!("00000001"));
    assert!(g.get("previousblockhash").is_none());
    assert_eq!(g["nextblockhash"], json!(main[0].block_hash().to_string()));

    // The tip: one confirmation, no nextblockhash.
    let t = hdr(&mut e, main[9].block_hash().to_string());
    assert_eq!(t["confirmations"], json!(1));
    assert_eq!(t["height"], json!(10));
    assert!(t.get("nextblockhash").is_none());
    assert_eq!(
        t["previousblockhash"],
        json!(main[8].block_hash().to_string())
    );

    // Off the best chain: -1 confirmations, no nextblockhash even with a
    // child on the branch.
    let s = hdr(&mut e, side[0].block_hash().to_string());
    assert_eq!(s["confirmations"], json!(-1));
    assert_eq!(s["height"], json!(6));
    assert_eq!(
        s["previousblockhash"],
        json!(main[4].block_hash().to_string())
    );
    assert!(s.get("nextblockhash").is_none());

    // Upper-case hex is a hash too.
    let upper = hdr(&mut e, h5.block_hash().to_string().to_uppercase());
    assert_eq!(upper, want);
}

#[test]
fn getblockheader_hex_round_trips() {
    let (chain, main, side, _) = regtest_chain();
    let (mut e, base) = with_chain(chain);
    for header in [regtest_genesis(), main[0], main[9], side[1]] {
        let hash = header.block_hash().to_string();
        for args in [
            json!([hash, false]),
            json!({"blockhash": hash, "verbose": false}),
        ] {
            let got = call(&mut e, base, "getblockheader", args).unwrap();
            let hex = got.as_str().unwrap();
            assert_eq!(hex.len(), 160);
            let bytes = Vec::<u8>::from_hex(hex).unwrap();
            let back: Header = deserialize(&bytes).unwrap();
            assert_eq!(back, header);
        }
    }
    let verbose = call(
        &mut e,
        base,
        "getblockheader",
        json!([main[0].block_hash().to_string(), true]),
    )
    .unwrap();
    assert!(verbose.is_object());
}

#[test]
fn getblockheader_errors_match_core() {
    let (chain, _, _, _) = regtest_chain();
    let (mut e, base) = with_chain(chain);
    let err = |e: &mut Engine, args: Value| call(e, base, "getblockheader", args).unwrap_err();

    let unknown = err(&mut e, json!(["00".repeat(32)]));
    assert_eq!(unknown.code, -5);
    assert_eq!(unknown.message, "Block not found");

    let short = err(&mut e, json!(["x"]));
    assert_eq!(short.code, codes::INVALID_PARAMETER);
    assert_eq!(
        short.message,
        "blockhash must be of length 64 (not 1, for 'x')"
    );
    let bad = "z".repeat(64);
    let nonhex = err(&mut e, json!([bad]));
    assert_eq!(nonhex.code, codes::INVALID_PARAMETER);
    assert_eq!(
        nonhex.message,
        format!("blockhash must be hexadecimal string (not '{bad}')")
    );
    assert_eq!(err(&mut e, json!([5])).code, codes::TYPE_ERROR);
    assert_eq!(err(&mut e, json!([])).code, codes::INVALID_PARAMS);
    assert_eq!(
        err(&mut e, json!([REGTEST_GENESIS, "no"])).code,
        codes::TYPE_ERROR
    );
}

#[test]
fn getchaintips_lists_active_and_side_branches() {
    let (chain, main, side, twin) = regtest_chain();
    let (mut e, base) = with_chain(chain);
    let got = call(&mut e, base, "getchaintips", json!([])).unwrap();
    assert_eq!(
        got,
        json!([
            {"height": 10, "hash": main[9].block_hash().to_string(), "branchlen": 0, "status": "active"},
            {"height": 10, "hash": twin[0].block_hash().to_string(), "branchlen": 1, "status": "valid-headers"},
            {"height": 7, "hash": side[1].block_hash().to_string(), "branchlen": 2, "status": "valid-headers"},
        ])
    );

    // Genesis alone: one active tip at height 0.
    let (mut g, base) = with_chain(HeaderChain::new(bitcoin::Network::Regtest));
    assert_eq!(
        call(&mut g, base, "getchaintips", json!([])).unwrap(),
        json!([{"height": 0, "hash": REGTEST_GENESIS, "branchlen": 0, "status": "active"}])
    );
}

#[test]
fn getblockchaininfo_reports_headers_only_sync_state() {
    let (chain, main, _, _) = regtest_chain();
    let (mut e, base) = with_chain(chain.clone());
    let got = call(&mut e, base, "getblockchaininfo", json!([])).unwrap();
    let tip = main[9];
    assert_eq!(
        got,
        json!({
            "chain": "regtest",
            "blocks": 10,
            "headers": 10,
            "bestblockhash": tip.block_hash().to_string(),
            "bits": "207fffff",
            "target": format!("7fffff{}", "0".repeat(58)),
            "difficulty": REGTEST_DIFFICULTY,
            "time": tip.time,
            "mediantime": chain.median_time_past(&tip.block_hash()).unwrap(),
            "verificationprogress": 1.0,
            "initialblockdownload": false,
            "chainwork": format!("{:064x}", 22),
            "size_on_disk": 0,
            "pruned": false,
            "headersonly": true,
            "warnings": [HEADERS_ONLY_WARNING],
            // Filters off (the default): nothing synced, nobody asked.
            "filters": {
                "enabled": false,
                "filter_headers": 0,
                "peers": 0,
                "cross_checked": false,
                "disputed_from": null,
            },
        })
    );
    assert_eq!(got["mediantime"], json!(main[4].time));

    // A tip more than a day old: back in initial download, progress is the
    // tip's share of the time since genesis.
    let later = u64::from(tip.time) + crate::engine::header_sync::MAX_TIP_AGE + 1;
    let stale = blockchain_info(&chain, later);
    assert_eq!(stale["initialblockdownload"], json!(true));
    let genesis = u64::from(regtest_genesis().time);
    let want = (u64::from(tip.time) - genesis) as f64 / (later - genesis) as f64;
    let progress = stale["verificationprogress"].as_f64().unwrap();
    assert!((progress - want).abs() < 1e-12, "{progress} vs {want}");
    assert!(progress > 0.0 && progress < 1.0);
    // Exactly a day old still counts as synced.
    let edge = blockchain_info(
        &chain,
        u64::from(tip.time) + crate::engine::header_sync::MAX_TIP_AGE,
    );
    assert_eq!(edge["initialblockdownload"], json!(false));

    // Mainnet genesis only: below the minimum chain work, difficulty 1.
    let main_info = blockchain_info(&HeaderChain::new(bitcoin::Network::Bitcoin), T0);
    assert_eq!(main_info["chain"], json!("main"));
    assert_eq!(main_info["blocks"], json!(0));
    assert_eq!(main_info["bits"], json!("1d00ffff"));
    assert_eq!(
        main_info["target"],
        json!(format!("00000000ffff{}", "0".repeat(52)))
    );
    assert_eq!(main_info["difficulty"], json!(1.0));
    assert_eq!(
        main_info["chainwork"],
        json!(format!("{:064x}", 0x1_0001_0001_u64))
    );
    assert_eq!(main_info["initialblockdownload"], json!(true));
    assert_eq!(
        main_info["bestblockhash"],
        json!("000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f")
    );
    for (net, name) in [
        (bitcoin::Network::Testnet, "test"),
        (bitcoin::Network::Testnet4, "testnet4"),
        (bitcoin::Network::Signet, "signet"),
    ] {
        assert_eq!(
            blockchain_info(&HeaderChain::new(net), T0)["chain"],
            json!(name)
        );
    }
}

#[test]
fn core_difficulty_formula() {
    use bitcoin::pow::CompactTarget;
    let d = |bits: u32| difficulty(CompactTarget::from_consensus(bits));
    assert_eq!(d(0x1d00_ffff), 1.0);
    // Core prints this with 16 digits, 4.656542373906925e-10; serde_json
    // prints the same double in full.
    assert_eq!(d(0x207f_ffff), REGTEST_DIFFICULTY);
    assert_eq!(
        format!("{:.15e}", REGTEST_DIFFICULTY),
        "4.656542373906925e-10"
    );
    // Mainnet block 100000's bits; Core reports 14484.1623612254.
    assert!((d(0x1b04_864c) - 14484.162361225399).abs() < 1e-9);
}

/// A transaction spending an anyone-can-spend P2WSH output to P2WPKH.
fn standard_tx(n: u8) -> bitcoin::Transaction {
    use bitcoin::hashes::Hash;
    bitcoin::Transaction {
        version: bitcoin::transaction::Version::TWO,
        lock_time: bitcoin::absolute::LockTime::ZERO,
        input: vec![bitcoin::TxIn {
            previous_output: bitcoin::OutPoint::new(bitcoin::Txid::from_byte_array([n; 32]), 0),
            script_sig: bitcoin::ScriptBuf::new(),
            sequence: bitcoin::Sequence::MAX,
            witness: bitcoin::Witness::from_slice(&[vec![0x51]]),
        }],
        output: vec![bitcoin::TxOut {
            value: bitcoin::Amount::from_sat(90_000),
            script_pubkey: bitcoin::ScriptBuf::new_p2wpkh(&bitcoin::WPubkeyHash::from_byte_array(
                [n; 20],
            )),
        }],
    }
}

#[test]
fn sendrawtransaction_queues_and_the_queue_is_shown_in_cores_shape() {
    let (mut e, base) = connected(true);
    let tx = standard_tx(1);
    let hex = bitcoin::consensus::encode::serialize_hex(&tx);
    let txid = tx.compute_txid().to_string();
    assert_eq!(
        call(&mut e, base, "sendrawtransaction", json!([hex])).unwrap(),
        json!(txid)
    );
    // Again: the same answer, one entry.
    assert_eq!(
        call(&mut e, base, "sendrawtransaction", json!([hex, 0.1])).unwrap(),
        json!(txid)
    );
    let info = call(&mut e, base, "getprivatebroadcastinfo", json!([])).unwrap();
    let list = info["transactions"].as_array().unwrap();
    assert_eq!(list.len(), 1);
    let t = &list[0];
    assert_eq!(t["txid"], txid);
    assert_eq!(t["wtxid"], tx.compute_wtxid().to_string());
    assert_eq!(t["hex"], hex);
    assert_eq!(t["time_added"], T0 + 60);
    assert_eq!(t["peers"], json!([]));
    assert_eq!(t["attempts"], 0);
    assert_eq!(t["attempts_remaining"], 1000);
    assert_eq!(t["seen"], false);

    // Abort by wtxid, as Core matches either.
    let wtxid = tx.compute_wtxid().to_string();
    let removed = call(&mut e, base, "abortprivatebroadcast", json!([wtxid])).unwrap();
    assert_eq!(removed["removed_transactions"][0]["txid"], txid);
    let err = call(&mut e, base, "abortprivatebroadcast", json!([txid])).unwrap_err();
    assert_eq!(err.code, codes::INVALID_ADDRESS_OR_KEY);
}

#[test]
fn sendrawtransaction_errors_carry_cores_codes() {
    let (mut e, base) = connected(false);
    for bad in ["zz", "0200", ""] {
        let err = call(&mut e, base, "sendrawtransaction", json!([bad])).unwrap_err();
        assert_eq!(err.code, codes::DESERIALIZATION_ERROR, "{bad}");
    }
    // Two outputs below the dust threshold: policy, -26.
    let mut dusty = standard_tx(2);
    dusty.output[0].value = bitcoin::Amount::from_sat(1);
    dusty.output.push(dusty.output[0].clone());
    let hex = bitcoin::consensus::encode::serialize_hex(&dusty);
    let err = call(&mut e, base, "sendrawtransaction", json!([hex])).unwrap_err();
    assert_eq!(err.code, codes::VERIFY_REJECTED, "{err:?}");
    // Burning coins needs maxburnamount: -25 without.
    let mut burn = standard_tx(3);
    burn.output.push(bitcoin::TxOut {
        value: bitcoin::Amount::from_sat(1_000),
        script_pubkey: bitcoin::ScriptBuf::new_op_return([7u8; 4]),
    });
    let hex = bitcoin::consensus::encode::serialize_hex(&burn);
    let err = call(&mut e, base, "sendrawtransaction", json!([hex])).unwrap_err();
    assert_eq!(err.code, codes::VERIFY_ERROR, "{err:?}");
    assert!(call(&mut e, base, "sendrawtransaction", json!([hex, 0, 0.00001])).is_ok());
    let err = call(&mut e, base, "sendrawtransaction", json!([hex, 1])).unwrap_err();
    assert_eq!(
        err.code,
        codes::INVALID_PARAMETER,
        "maxfeerate of 1 BTC/kvB"
    );
}

#[test]
fn sendrawtransaction_without_tor_refuses_and_queues_nothing() {
    let mut config = EngineConfig::new(bitcoin::Network::Regtest);
    config.reach = crate::engine::Reach::Direct;
    let mut rng = StdRng::seed_from_u64(1);
    let addrman = AddrMan::new(bitcoin::Network::Regtest, AddrManKey::generate(&mut rng));
    let mut e = Engine::new(config, addrman, [5; 32]);
    let base = Instant::now();
    let hex = bitcoin::consensus::encode::serialize_hex(&standard_tx(4));
    let err = call(&mut e, base, "sendrawtransaction", json!([hex])).unwrap_err();
    assert_eq!(err.code, codes::MISC_ERROR);
    assert!(err.message.contains("needs Tor"), "{err:?}");
    assert_eq!(e.private_broadcast().pending().count(), 0);
}

#[test]
fn addpeeraddress_puts_an_onion_peer_in_the_book() {
    let (mut e, base) = connected(true);
    let before = e.addrman().len();
    let onion = "2gzyxa5ihm7nsggfxnu52rck2vv4rvmdlkiu3zzui5du4xyclen53wid.onion";
    let got = call(&mut e, base, "addpeeraddress", json!([onion, 8333])).unwrap();
    assert_eq!(got, json!({"success": true}));
    assert_eq!(e.addrman().len(), before + 1);
    let got = call(
        &mut e,
        base,
        "addpeeraddress",
        json!(["1.2.3.4", 8333, true]),
    )
    .unwrap();
    assert_eq!(got, json!({"success": true}));
    let err = call(
        &mut e,
        base,
        "addpeeraddress",
        json!(["not an address", 8333]),
    )
    .unwrap_err();
    assert_eq!(err.code, codes::INVALID_IP_OR_SUBNET);
}
