//! Interop with Bitcoin Core, directly over loopback (`--no-tor`): a real
//! regtest `bitcoind` (built by `tests/core/build`) is the peer, and every
//! test checks what *both* sides report, so a misreading of a BIP that our
//! own test peers share cannot pass.
//!
//! - headers-first sync of Core-mined blocks over BIP324, with the same
//!   session id on both sides, and a reorg made on Core that nightjar follows;
//! - Core's view of our `version` message;
//! - BIP155: addresses of all five networks learned from Core's `addrv2`;
//! - inbound: a fresh Core that knows only nightjar's TCP listener learns
//!   the whole header chain from it.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr
)]

#[path = "support/daemon_log.rs"]
mod daemon_log;
#[path = "support/nightjar_node.rs"]
mod nightjar_node;

use std::collections::BTreeMap;
use std::time::Duration;

use bitcoin::{Address, Network, ScriptBuf};
use nightjar_corenode::{CoreConfig, CoreNode, core_required};
use nightjar_node::Nightjar;
use serde_json::Value;

/// Blocks Core mines before nightjar connects: more than one full
/// `headers` reply (2 000), so the sync continues from a locator.
const CHAIN_LEN: usize = 2_100;

/// Sync, reorg and gossip each finish in seconds; this allows for a debug
/// build on a loaded two-core machine. Core sends its `getaddr` answer at
/// its next address-relay slot, on average 30 s after the handshake
/// (exponentially distributed), hence the longer gossip limit.
const LIMIT: Duration = Duration::from_secs(180);
const GOSSIP_LIMIT: Duration = Duration::from_secs(300);

/// nightjar's user agent, as its version message carries it.
fn our_user_agent() -> String {
    format!("/nightjar:{}/", env!("CARGO_PKG_VERSION"))
}

/// nightjar on regtest, Tor off, connected only to `core`.
fn nightjar_connected_to(core: &CoreNode) -> Nightjar {
    Nightjar::spawn([
        "--no-tor".to_owned(),
        "--no-dnsseed".to_owned(),
        "--log-sensitive".to_owned(),
        "--connect".to_owned(),
        core.p2p_addr().to_string(),
    ])
}

/// Core's `getpeerinfo` entry for nightjar, once Core has its version.
fn cores_entry_for_us(core: &mut CoreNode) -> Value {
    let mut found = None;
    core.wait_for(LIMIT, "nightjar as a peer", |c| {
        found = c
            .peers()?
            .into_iter()
            .find(|p| p["subver"] == our_user_agent());
        Ok(found.is_some())
    })
    .unwrap();
    found.unwrap()
}

/// The `feefilter` nightjar sent Core, as Core shows it (`minfeefilter`,
/// BTC/kvB), once it has arrived.
fn cores_fee_filter_for_us(core: &mut CoreNode) -> f64 {
    let mut filter = None;
    core.wait_for(LIMIT, "nightjar's feefilter", |c| {
        filter = c
            .peers()?
            .into_iter()
            .find(|p| p["subver"] == our_user_agent())
            .and_then(|p| p["minfeefilter"].as_f64())
            .filter(|f| *f > 0.0);
        Ok(filter.is_some())
    })
    .unwrap();
    filter.unwrap_or_default()
}

#[test]
fn syncs_cores_chain_over_v2_with_one_session_id_and_follows_cores_reorg() {
    let Some(bins) = core_required("syncs_cores_chain_over_v2") else {
        return;
    };
    let mut core = CoreNode::start(&bins, CoreConfig::regtest("core-sync")).unwrap();
    let mined = core.mine(CHAIN_LEN).unwrap();
    let mut node = nightjar_connected_to(&core);

    // 1. Headers-first sync of everything Core mined.
    node.wait_for(LIMIT, "Core's chain", |n| {
        n.block_count() == Some(CHAIN_LEN as u64)
    });
    let tip = core.best_block_hash().unwrap();
    assert_eq!(tip, mined[CHAIN_LEN - 1]);
    assert_eq!(node.best_hash(), Some(tip.to_string()));

    // 2. One BIP324 session, seen from both ends: the same session id.
    let ours = node.peers();
    assert_eq!(ours.len(), 1, "{ours:#?}");
    assert_eq!(ours[0]["transport_protocol_type"], "v2", "{:#?}", ours[0]);
    let theirs = cores_entry_for_us(&mut core);
    assert_eq!(theirs["inbound"], true, "{theirs:#}");
    assert_eq!(theirs["connection_type"], "inbound", "{theirs:#}");
    assert_eq!(theirs["transport_protocol_type"], "v2", "{theirs:#}");
    let session = theirs["session_id"].as_str().unwrap();
    assert_eq!(session.len(), 64, "{theirs:#}");
    assert_eq!(ours[0]["session_id"], session);

    // 3. Core's view of our version message: no services claimed (we serve
    // no blocks), transaction relay asked for but shut by `feefilter` (we
    // want announcements only while a private broadcast of ours waits:
    // Core shows the filter as 21 million BTC/kvB), our user agent, and
    // nothing about our own address: the only address Core learned from
    // us (`addrlocal`, its own address as we saw it) is the one we dialled.
    assert_eq!(theirs["services"], "0000000000000000", "{theirs:#}");
    assert_eq!(theirs["servicesnames"], Value::Array(vec![]), "{theirs:#}");
    assert_eq!(theirs["relaytxes"], true, "{theirs:#}");
    let filter = cores_fee_filter_for_us(&mut core);
    assert_eq!(filter, 21_000_000.0, "the announcement tap is shut");
    assert_eq!(theirs["version"], 70016, "{theirs:#}");
    if let Some(local) = theirs.get("addrlocal") {
        assert_eq!(
            local,
            &Value::String(core.p2p_addr().to_string()),
            "{theirs:#}"
        );
    }

    // 4. A reorg made on Core: the last 5 blocks invalidated, a longer
    // branch of 8 mined on the block before them. nightjar follows it and
    // keeps the old tip as a side branch.
    let fork_height = CHAIN_LEN - 5;
    core.cli(&["invalidateblock", &mined[fork_height].to_string()])
        .unwrap();
    let other_payee = Address::p2wsh(&ScriptBuf::from_bytes(vec![0x52]), Network::Regtest);
    let branch = core.mine_to(8, &other_payee).unwrap();
    let new_tip = branch[7].to_string();
    assert_eq!(core.best_block_hash().unwrap().to_string(), new_tip);
    node.wait_for(LIMIT, "the reorg", |n| {
        n.best_hash().as_deref() == Some(new_tip.as_str())
    });
    assert_eq!(node.block_count(), Some((fork_height + 8) as u64));
    let tips = node.rpc(&["getchaintips"]).unwrap();
    let tips = tips.as_array().unwrap();
    assert!(
        tips.iter().any(|t| t["status"] == "active"
            && t["hash"] == new_tip
            && t["height"] == fork_height + 8
            && t["branchlen"] == 0),
        "{tips:#?}"
    );
    assert!(
        tips.iter().any(|t| t["status"] == "valid-headers"
            && t["hash"] == mined[CHAIN_LEN - 1].to_string()
            && t["height"] == CHAIN_LEN
            && t["branchlen"] == 5),
        "{tips:#?}"
    );
    // Core agrees on the shape: its old tip is now an invalid branch.
    let core_tips = core.rpc(&["getchaintips"]).unwrap();
    assert!(
        core_tips
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["status"] == "invalid"
                && t["hash"] == mined[CHAIN_LEN - 1].to_string()
                && t["branchlen"] == 5),
        "{core_tips:#}"
    );

    let lines = node.stop();
    assert!(
        lines.iter().any(|l| l.contains("header chain reorganised")),
        "{lines:#?}"
    );
    core.stop().unwrap();
}

/// `count` addresses of each network, in the text `addpeeraddress` takes,
/// spread over many netgroups so Core's address manager keeps them apart.
fn addresses_of_every_network(count: u8) -> BTreeMap<&'static str, Vec<(String, u16)>> {
    let key = |net: u8, i: u8| {
        let mut k = [0u8; 32];
        k[0] = net;
        k[1] = i;
        k[31] = 0x5a;
        k
    };
    let mut by_net = BTreeMap::new();
    by_net.insert(
        "ipv4",
        (0..count)
            // Public unicast: first octets 11 to 110 (clear of 100.64/10 and
            // 127/8), the second octet telling the rest apart.
            .map(|i| {
                let (i, n) = (u16::from(i), u16::from(i) % 100);
                (format!("{}.{}.7.9", 11 + n, (3 * i + 1) % 256), 8333)
            })
            .collect(),
    );
    by_net.insert(
        "ipv6",
        (0..count)
            // Canonical text (`2a01:100::1`, not `2a01:100:0::1`), as both
            // nodes print it back.
            .map(|i| {
                let text = format!("2a01:{:x}:{:x}::1", 0x100 + u16::from(i), i);
                let ip: std::net::Ipv6Addr = text.parse().unwrap();
                (ip.to_string(), 8333)
            })
            .collect(),
    );
    by_net.insert(
        "onion",
        (0..count)
            .map(|i| {
                let onion = nightjar_tor::OnionV3Address::from_pubkey(key(1, i));
                (onion.to_string(), 8333)
            })
            .collect(),
    );
    by_net.insert(
        "i2p",
        (0..count)
            .map(|i| {
                let label = data_encoding::BASE32_NOPAD
                    .encode(&key(2, i))
                    .to_ascii_lowercase();
                // I2P (SAM 3.1) has no ports: Core stores and sends 0.
                (format!("{label}.b32.i2p"), 0)
            })
            .collect(),
    );
    by_net.insert(
        "cjdns",
        (0..count)
            .map(|i| (format!("fc{:02x}:{:x}::1", i, 0x200 + u16::from(i)), 8333))
            .collect(),
    );
    by_net
}

#[test]
fn learns_addresses_of_all_five_networks_from_cores_addrv2() {
    let Some(bins) = core_required("learns_addresses_from_cores_addrv2") else {
        return;
    };
    // cjdnsreachable: Core files fc00::/8 under CJDNS only if told to.
    let mut core = CoreNode::start(
        &bins,
        CoreConfig::regtest("core-addrv2").conf("cjdnsreachable=1"),
    )
    .unwrap();
    // Twice what is needed: Core's new table puts the addresses of one
    // source group in at most 64 of its buckets, so onion, I2P and CJDNS
    // addresses (few netgroups) collide, and how many depends on Core's
    // random addrman key. 60 planted once left only 26 onion addresses.
    let planted = addresses_of_every_network(120);
    for (net, addrs) in &planted {
        let mut taken = 0;
        for (host, port) in addrs {
            let r = core
                .rpc(&["addpeeraddress", host, &port.to_string()])
                .unwrap();
            taken += usize::from(r["success"] == true);
        }
        // Some collide in Core's buckets (I2P and CJDNS addresses fall in
        // few netgroups); most must be taken.
        assert!(taken >= 30, "Core took only {taken} {net} addresses");
    }
    let info = core.rpc(&["getaddrmaninfo"]).unwrap();
    for net in planted.keys() {
        assert!(info[net]["total"].as_u64().unwrap() >= 30, "{info:#}");
    }

    let mut node = nightjar_connected_to(&core);
    // Core answers one `getaddr` per inbound peer with a sample of at most
    // 23 % of its table: over a hundred of the few hundred taken, each
    // network among them.
    node.wait_for(GOSSIP_LIMIT, "addresses of all five networks", |n| {
        planted.keys().all(|net| {
            n.rpc(&["getnodeaddresses", "0", net])
                .and_then(|v| v.as_array().map(|a| !a.is_empty()))
                .unwrap_or(false)
        })
    });
    // Every address nightjar learned is one Core had, with its network and
    // port intact: nothing was mangled between the two address encodings.
    let learned = node.rpc(&["getnodeaddresses", "0"]).unwrap();
    let learned = learned.as_array().unwrap();
    for a in learned {
        let net = a["network"].as_str().unwrap();
        let host = a["address"].as_str().unwrap();
        let port = a["port"].as_u64().unwrap();
        assert!(
            planted[net]
                .iter()
                .any(|(h, p)| h == host && u64::from(*p) == port),
            "nightjar learned {a} which Core was never given"
        );
    }
    eprintln!("nightjar learned {} addresses from Core", learned.len());
    // Core sent them as addrv2 because we asked for it (BIP155): an onion
    // v3, I2P or CJDNS address does not fit the old `addr` message at all.
    let theirs = cores_entry_for_us(&mut core);
    assert_eq!(theirs["addr_relay_enabled"], true, "{theirs:#}");
    assert!(
        theirs["bytessent_per_msg"]["addrv2"].as_u64().unwrap_or(0) > 0,
        "{theirs:#}"
    );
    assert!(
        theirs["bytessent_per_msg"].get("addr").is_none(),
        "{theirs:#}"
    );
    node.stop();
    core.stop().unwrap();
}

#[test]
fn a_fresh_core_learns_the_chain_from_nightjar_alone_through_its_listener() {
    let Some(bins) = core_required("a_fresh_core_learns_the_chain_from_nightjar_alone") else {
        return;
    };
    let source = CoreNode::start(&bins, CoreConfig::regtest("core-source")).unwrap();
    let mined = source.mine(CHAIN_LEN).unwrap();
    let port = nightjar_testpeer::free_port().unwrap();
    let listen = format!("127.0.0.1:{port}");
    let mut node = Nightjar::spawn([
        "--no-tor",
        "--no-dnsseed",
        "--log-sensitive",
        "--connect",
        &source.p2p_addr().to_string(),
        "--listen",
        "--bind",
        &listen,
    ]);
    node.wait_for(LIMIT, "the source's chain", |n| {
        n.block_count() == Some(CHAIN_LEN as u64)
    });

    // A fresh Core whose only peer is nightjar. Core never picks a peer
    // that serves no blocks for its initial header sync; nightjar announces
    // its tip, and Core fetches the rest with getheaders.
    let mut fresh =
        CoreNode::start(&bins, CoreConfig::regtest("core-fresh").connect(&listen)).unwrap();
    fresh
        .wait_for(LIMIT, "nightjar's headers", |c| {
            Ok(c.header_count()? == CHAIN_LEN as u64)
        })
        .unwrap();
    let tip = fresh
        .rpc(&["getblockheader", &mined[CHAIN_LEN - 1].to_string()])
        .unwrap();
    assert_eq!(tip["height"], CHAIN_LEN, "{tip:#}");
    let theirs = fresh.peers().unwrap();
    assert_eq!(theirs.len(), 1, "{theirs:#?}");
    let us = &theirs[0];
    assert_eq!(us["subver"], our_user_agent(), "{us:#}");
    assert_eq!(us["inbound"], false, "{us:#}");
    assert_eq!(us["connection_type"], "manual", "{us:#}");
    assert_eq!(us["transport_protocol_type"], "v2", "{us:#}");
    // We advertise no services: we keep no blocks to serve.
    assert_eq!(us["servicesnames"], Value::Array(vec![]), "{us:#}");
    let ours = node.peers();
    let inbound = ours
        .iter()
        .find(|p| p["inbound"] == true)
        .unwrap_or_else(|| panic!("no inbound peer: {ours:#?}"));
    assert_eq!(inbound["connection_type"], "inbound", "{inbound:#}");
    assert_eq!(inbound["session_id"], us["session_id"], "{inbound:#}");
    assert!(
        inbound["subver"].as_str().unwrap().starts_with("/Satoshi:"),
        "{inbound:#}"
    );
    node.stop();
    fresh.stop().unwrap();
}
