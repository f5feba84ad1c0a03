//! nightjar as a wallet's Electrum server, against real Bitcoin Core on
//! the private Tor network.
//!
//! One regtest Core with `-blockfilterindex=1 -peerblockfilters=1` sits
//! behind two onion services: the first is nightjar's regular peer, the
//! second only in its address book, where private broadcast may go. The
//! test holds a BIP84 key; coinbase outputs anyone can spend pay the
//! wallet's addresses, including one past the first gap limit. nightjar
//! `--privacy` is configured with the watch-only descriptors and serves
//! them over the Electrum protocol on 127.0.0.1. Checked:
//!
//! - the balance nightjar serves for the wallet's scripts equals the
//!   total Core's `scantxoutset` finds for the same descriptors, and each
//!   history entry's merkle branch proves the header's merkle root;
//! - a transaction the test signs, broadcast through
//!   `blockchain.transaction.broadcast`, reaches Core's mempool through
//!   private broadcast, shows as unconfirmed, then confirmed once mined;
//! - a reorg on Core that drops a payment updates history and balance;
//! - after a restart the index comes from its file;
//! - Debian's Electrum, in daemon mode with a watch-only wallet from the
//!   same key, shows the balance Core's `scantxoutset` reports, a
//!   transaction it broadcasts is mined by Core, and a reorg on Core that
//!   takes that block away (then mines it again) shows in its history.
//!
//! Core here is built without its wallet (the source `libbitcoinkernel-sys`
//! vendors leaves it out), so the test's own key signs, and Core's
//! `scantxoutset` over the same descriptors is the reference balance.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr
)]

#[path = "support/daemon_log.rs"]
mod daemon_log;
#[path = "support/electrum_client.rs"]
mod electrum_client;
#[path = "support/nightjar_node.rs"]
mod nightjar_node;
#[path = "support/test_wallet.rs"]
mod test_wallet;

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use bitcoin::{Amount, OutPoint, ScriptBuf, Sequence, Transaction, TxIn, TxOut, Txid, Witness};
use electrum_client::ElectrumClient;
use nightjar::wallet::scripthash::ScriptHash;
use nightjar_corenode::{
    CoreBinaries, CoreConfig, CoreNode, anyone_can_spend_address, core_required,
};
use nightjar_node::Nightjar;
use nightjar_privnet::figures::rss_mib;
use nightjar_privnet::{PrivNet, PrivNetConfig};
use serde_json::{Value, json};
use test_wallet::{OwnedCoin, TestWallet};

/// The onion services' virtual port (regtest's P2P port).
const ONION_PORT: u16 = 18444;

/// Bootstrap, rendezvous, header and filter sync, a scan.
const LIMIT: Duration = Duration::from_secs(300);

/// Blocks mined before the first payment to the wallet.
const MINED_FIRST: usize = 1_100;

/// The wallet's birthday: a thousand blocks before its first payment, so
/// the first sync scans a thousand filters (the figure it prints).
const BIRTHDAY: usize = 100;

/// The wallets' gap limit: Electrum's (it subscribes to 20 unused
/// receive addresses, and nightjar answers only for scripts it watches).
const GAP: u32 = 20;

/// Core's P2P port, fixed before the network starts.
fn core_port() -> u16 {
    static PORT: std::sync::OnceLock<u16> = std::sync::OnceLock::new();
    *PORT.get_or_init(free_port)
}

fn setup(test: &str) -> Option<(CoreBinaries, &'static PrivNet)> {
    let bins = core_required(test)?;
    if !nightjar_privnet::tor_required(test) {
        return None;
    }
    let port = core_port();
    let net = nightjar_privnet::shared(|| PrivNetConfig {
        // Four onion services in front of the same Core: a regular peer
        // and three peers only in the book, where private broadcast may go
        // (each transaction's connection takes one for a few minutes).
        onion_services: vec![(ONION_PORT, (Ipv4Addr::LOCALHOST, port).into()); 4],
        dir: std::env::var_os("NIGHTJAR_PRIVNET_DIR").map(|d| Path::new(&d).join("core_electrum")),
        ..PrivNetConfig::default()
    })
    .unwrap_or_else(|e| panic!("private Tor network failed to start: {e:#}"));
    Some((bins, net))
}

fn free_port() -> u16 {
    nightjar_testpeer::free_port().unwrap()
}

/// A transaction spending the anyone-can-spend coinbase of block `height`
/// to `outputs` (whatever is left is the fee).
fn spend_coinbase(core: &CoreNode, height: usize, outputs: Vec<TxOut>) -> Transaction {
    let hash = core.cli(&["getblockhash", &height.to_string()]).unwrap();
    let block = core.rpc(&["getblock", &hash, "2"]).unwrap();
    let txid: Txid = block["tx"][0]["txid"].as_str().unwrap().parse().unwrap();
    Transaction {
        version: bitcoin::transaction::Version::TWO,
        lock_time: bitcoin::absolute::LockTime::ZERO,
        input: vec![TxIn {
            previous_output: OutPoint::new(txid, 0),
            script_sig: ScriptBuf::new(),
            sequence: Sequence::MAX,
            witness: Witness::from_slice(&[vec![0x51]]),
        }],
        output: outputs,
    }
}

fn pay(to: ScriptBuf, sats: u64) -> TxOut {
    TxOut {
        value: Amount::from_sat(sats),
        script_pubkey: to,
    }
}

/// Core's `getblockcount` (the active chain, whatever headers it knows).
fn block_count(core: &CoreNode) -> u64 {
    core.cli(&["getblockcount"]).unwrap().parse().unwrap()
}

/// Submit to Core directly (the funding side of the test, not nightjar's).
fn submit(core: &CoreNode, tx: &Transaction) -> Txid {
    let hex = bitcoin::consensus::encode::serialize_hex(tx);
    // The coinbase is 50 BTC: what is not paid out is a fee far above
    // Core's default cap (maxfeerate 0 lifts it).
    core.cli(&["sendrawtransaction", &hex, "0"])
        .unwrap()
        .parse()
        .unwrap()
}

/// Core's view of the wallet: the total of the UTXOs its descriptors
/// derive (indexes 0 to 99 of receive and change), in satoshis.
fn core_balance(core: &CoreNode, wallet: &TestWallet) -> u64 {
    let objects = json!([
        {"desc": wallet.descriptor(0), "range": 99},
        {"desc": wallet.descriptor(1), "range": 99},
    ]);
    let scan = core
        .rpc(&["scantxoutset", "start", &objects.to_string()])
        .unwrap();
    assert_eq!(scan["success"], true, "{scan:#}");
    let btc = scan["total_amount"].as_f64().unwrap();
    Amount::from_btc(btc).unwrap().to_sat()
}

/// The Electrum script hash of `script`, as the protocol writes it.
fn scripthash(script: &ScriptBuf) -> String {
    ScriptHash::of(script).to_string()
}

/// Poll `attempt` every `every` until it gives `Ok`, for up to [`LIMIT`];
/// its last `Err` if it never did.
fn poll<T>(every: Duration, mut attempt: impl FnMut() -> Result<T, String>) -> Result<T, String> {
    let start = Instant::now();
    loop {
        let last = attempt();
        if last.is_ok() || start.elapsed() >= LIMIT {
            return last;
        }
        std::thread::sleep(every);
    }
}

/// Whether `txid` is in Core's mempool.
fn in_mempool(core: &CoreNode, txid: &str) -> anyhow::Result<bool> {
    Ok(core
        .rpc(&["getrawmempool"])?
        .as_array()
        .is_some_and(|m| m.iter().any(|t| t.as_str() == Some(txid))))
}

/// A reorg on Core: the block at `height` is invalidated and a branch of
/// empty blocks grows until the chain is `new_count` blocks long. The
/// transactions of the dropped blocks go back to Core's mempool.
fn reorg(core: &CoreNode, height: u64, new_count: u64) {
    let block = core.cli(&["getblockhash", &height.to_string()]).unwrap();
    core.cli(&["invalidateblock", &block]).unwrap();
    while block_count(core) < new_count {
        core.cli(&[
            "generateblock",
            &anyone_can_spend_address().to_string(),
            "[]",
        ])
        .unwrap();
    }
}

/// Wait until the daemon logs `message`; the fields of that line.
fn logged(node: &mut Nightjar, message: &str) -> BTreeMap<String, String> {
    let find = |lines: &[String]| {
        lines
            .iter()
            .find_map(|l| daemon_log::fields_after(l, message))
    };
    node.daemon.wait_until(LIMIT, |lines| find(lines).is_some());
    find(node.daemon.lines())
        .unwrap_or_else(|| panic!("no {message:?} logged: {:#?}", node.daemon.lines()))
}

/// The wallet's balance as nightjar serves it, over its scripts 0..n of
/// both chains: (confirmed, unconfirmed). Scripts the index does not
/// watch (yet, or past the gap) count nothing: a payment to one would
/// show as a balance below Core's.
fn served_balance(client: &mut ElectrumClient, wallet: &TestWallet, n: u32) -> (i64, i64) {
    let mut total = (0, 0);
    for chain in [0, 1] {
        for i in 0..n {
            let b = client.call(
                "blockchain.scripthash.get_balance",
                json!([scripthash(&wallet.script(chain, i))]),
            );
            if let Ok(b) = b {
                total.0 += b["confirmed"].as_i64().unwrap();
                total.1 += b["unconfirmed"].as_i64().unwrap();
            }
        }
    }
    total
}

/// The nightjar config file for `wallet`, its Electrum server on `port`.
fn config_file(
    dir: &Path,
    wallet: &TestWallet,
    port: u16,
    tls_port: u16,
    birthday: usize,
) -> std::path::PathBuf {
    let path = dir.join("wallet.toml");
    let text = format!(
        "electrum = true\nelectrum_bind = \"127.0.0.1:{port}\"\n\
         electrum_tls_bind = \"127.0.0.1:{tls_port}\"\n\n[wallet.main]\n\
         descriptors = [\"{}\", \"{}\"]\nbirthday = {birthday}\ngap_limit = {GAP}\n",
        wallet.descriptor(0),
        wallet.descriptor(1),
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// Wait until the server's tip is Core's and the balance matches Core's.
fn wait_synced(
    client: &mut ElectrumClient,
    core: &CoreNode,
    wallet: &TestWallet,
    scripts: u32,
    what: &str,
) -> (i64, i64) {
    let want_tip = block_count(core);
    let want = core_balance(core, wallet);
    poll(Duration::from_millis(500), || {
        let tip = client.call("blockchain.headers.subscribe", json!([]));
        let balance = served_balance(client, wallet, scripts);
        if tip.as_ref().is_ok_and(|t| t["height"] == json!(want_tip))
            && u64::try_from(balance.0).unwrap() == want
        {
            Ok(balance)
        } else {
            Err(format!(
                "tip {tip:?}, balance {balance:?}, Core {want_tip} / {want}"
            ))
        }
    })
    .unwrap_or_else(|e| panic!("{what}: {e}"))
}

#[test]
fn a_watch_only_wallet_is_served_over_electrum_from_filters_and_blocks_over_tor() {
    let Some((bins, net)) = setup("a_watch_only_wallet_is_served_over_electrum") else {
        return;
    };
    // Decided before minutes of set-up: in CI a missing Electrum fails now.
    let with_electrum = electrum_required("a_watch_only_wallet_is_served_over_electrum");
    let mut core = CoreNode::start(
        &bins,
        CoreConfig::regtest("core-electrum")
            .p2p_port(core_port())
            .conf("blockfilterindex=1")
            .conf("peerblockfilters=1"),
    )
    .unwrap();
    let wallet = TestWallet::new(3);
    core.mine_to(MINED_FIRST, &anyone_can_spend_address())
        .unwrap();
    // Payments: receive 0 and 2, change 0, then receive GAP + 2 (past the
    // first gap: found only because receive 2 moved the gap).
    let mut coins: BTreeMap<&str, OwnedCoin> = BTreeMap::new();
    let plan: [(&str, u32, u32, u64); 4] = [
        ("r0", 0, 0, 1_000_000),
        ("r2", 0, 2, 2_000_000),
        ("c0", 1, 0, 300_000),
        ("r7", 0, GAP + 2, 700_000),
    ];
    for (n, (name, chain, index, sats)) in plan.iter().enumerate() {
        let tx = spend_coinbase(
            &core,
            n + 1,
            vec![pay(wallet.script(*chain, *index), *sats)],
        );
        let txid = submit(&core, &tx);
        core.mine(1).unwrap();
        coins.insert(
            name,
            OwnedCoin {
                outpoint: OutPoint::new(txid, 0),
                value: Amount::from_sat(*sats),
                chain: *chain,
                index: *index,
            },
        );
    }
    core.mine(3).unwrap();
    core.wait_for(LIMIT, "the filter index", |c| {
        let info = c.rpc(&["getindexinfo", "basic block filter index"])?;
        Ok(info["basic block filter index"]["synced"] == true)
    })
    .unwrap();

    let electrum_port = free_port();
    let datadir = tempfile::tempdir().unwrap();
    let tls_port = free_port();
    let config = config_file(datadir.path(), &wallet, electrum_port, tls_port, BIRTHDAY);
    let regular = format!("{}:{ONION_PORT}", net.onion_services()[0].onion_address);
    let carriers: Vec<String> = net.onion_services()[1..]
        .iter()
        .map(|s| s.onion_address.clone())
        .collect();
    let network_file = net.arti_network_file().display().to_string();
    let args = |config: &Path| {
        vec![
            "--tor-network".to_owned(),
            network_file.clone(),
            "--privacy".to_owned(),
            "--conf".to_owned(),
            config.display().to_string(),
            "--connect".to_owned(),
            regular.clone(),
        ]
    };
    let spawned = Instant::now();
    let mut node = Nightjar::spawn_in(datadir, args(&config));
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, electrum_port));
    let mut client = connect_when_up(&mut node, addr);
    let version = client
        .call("server.version", json!(["nightjar-test", "1.4"]))
        .unwrap();
    assert_eq!(version[1], "1.4", "{version}");

    let (confirmed, unconfirmed) = wait_synced(&mut client, &core, &wallet, 3 * GAP, "first sync");
    let first_sync = spawned.elapsed();
    assert_eq!(confirmed, 4_000_000);
    assert_eq!(unconfirmed, 0);
    // The wallet scan shows in getindexinfo, in Core's shape.
    let info = node.rpc(&["getindexinfo"]).unwrap();
    assert_eq!(info["wallet index"]["synced"], true, "{info}");
    assert_eq!(
        info["wallet index"]["best_block_height"],
        json!(block_count(&core)),
        "{info}"
    );
    // The same server over TLS, with the certificate the log announced.
    let announced = logged(&mut node, "Electrum TLS certificate");
    let (tls_version, presented) =
        tls_server_version(SocketAddr::from((Ipv4Addr::LOCALHOST, tls_port)));
    assert_eq!(tls_version[1], "1.4", "{tls_version}");
    assert_eq!(presented, announced["sha256_fingerprint"]);
    // A script outside the wallets is refused, not answered as empty.
    let stranger = client.call(
        "blockchain.scripthash.get_history",
        json!([scripthash(&anyone_can_spend_address().script_pubkey())]),
    );
    assert!(stranger.is_err(), "{stranger:?}");

    // History and proofs for receive 2: the merkle branch proves the
    // merkle root of the header nightjar serves.
    let sh = scripthash(&wallet.script(0, 2));
    let history = client
        .call("blockchain.scripthash.get_history", json!([sh]))
        .unwrap();
    let entry = &history[0];
    let txid = entry["tx_hash"].as_str().unwrap();
    let height = entry["height"].as_u64().unwrap();
    assert_eq!(txid, coins["r2"].outpoint.txid.to_string());
    assert_eq!(height, MINED_FIRST as u64 + 2);
    let proof = client
        .call("blockchain.transaction.get_merkle", json!([txid, height]))
        .unwrap();
    let header_hex = client
        .call("blockchain.block.header", json!([height]))
        .unwrap();
    let header: bitcoin::block::Header =
        bitcoin::consensus::encode::deserialize_hex(header_hex.as_str().unwrap()).unwrap();
    let branch: Vec<bitcoin::TxMerkleNode> = proof["merkle"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h.as_str().unwrap().parse().unwrap())
        .collect();
    assert_eq!(
        nightjar::chain::merkle::root_from_branch(
            txid.parse().unwrap(),
            usize::try_from(proof["pos"].as_u64().unwrap()).unwrap(),
            &branch
        ),
        header.merkle_root
    );
    let raw = client
        .call("blockchain.transaction.get", json!([txid]))
        .unwrap();
    let tx: Transaction =
        bitcoin::consensus::encode::deserialize_hex(raw.as_str().unwrap()).unwrap();
    assert_eq!(tx.compute_txid().to_string(), txid);

    // Subscribed, then a spend signed here goes out through the server
    // and private broadcast, and reaches Core's mempool.
    let status_before = client
        .call("blockchain.scripthash.subscribe", json!([sh]))
        .unwrap();
    assert!(status_before.is_string());
    for onion in &carriers {
        let added = node
            .rpc(&["addpeeraddress", onion, &ONION_PORT.to_string()])
            .unwrap();
        assert_eq!(added["success"], true, "{added}");
    }
    let spend = wallet.spend(
        coins["r2"],
        vec![
            pay(wallet.script(1, 1), 1_500_000),
            pay(anyone_can_spend_address().script_pubkey(), 490_000),
        ],
    );
    let spend_id = spend.compute_txid().to_string();
    let answer = client
        .call(
            "blockchain.transaction.broadcast",
            json!([bitcoin::consensus::encode::serialize_hex(&spend)]),
        )
        .unwrap();
    assert_eq!(answer, json!(spend_id));
    let mempool = client
        .call("blockchain.scripthash.get_mempool", json!([sh]))
        .unwrap();
    assert_eq!(mempool[0]["tx_hash"], json!(spend_id), "{mempool}");
    assert_eq!(mempool[0]["fee"], json!(10_000), "{mempool}");

    core.wait_for(LIMIT, "the spend in Core's mempool", |c| {
        in_mempool(c, &spend_id)
    })
    .unwrap();
    core.mine(1).unwrap();
    let (confirmed, unconfirmed) =
        wait_synced(&mut client, &core, &wallet, 3 * GAP, "the spend mined");
    assert_eq!((confirmed, unconfirmed), (3_500_000, 0));
    let history = client
        .call("blockchain.scripthash.get_history", json!([sh]))
        .unwrap();
    assert_eq!(history.as_array().unwrap().len(), 2, "{history}");
    assert_eq!(history[1]["tx_hash"], json!(spend_id));
    // The subscription was told (the status changed at least once).
    assert!(
        client.notifications.iter().any(
            |n| n["method"] == "blockchain.scripthash.subscribe" && n["params"][0] == json!(sh)
        ),
        "{:?}",
        client.notifications
    );

    // A reorg drops the block paying change 0: both Core and nightjar
    // lose it.
    // The dropped transactions go back to Core's mempool; a longer branch
    // of empty blocks leaves them out of the chain.
    reorg(&core, MINED_FIRST as u64 + 3, block_count(&core) + 1);
    let (confirmed, _) = wait_synced(&mut client, &core, &wallet, 3 * GAP, "after the reorg");
    assert_eq!(
        u64::try_from(confirmed).unwrap(),
        core_balance(&core, &wallet)
    );
    assert!(
        confirmed < 3_500_000,
        "the reorg dropped payments: {confirmed}"
    );
    // Core mines the dropped transactions again (they went back to its
    // mempool): nightjar finds them in the new block.
    core.mine(1).unwrap();
    let again = wait_synced(&mut client, &core, &wallet, 3 * GAP, "mined again");
    assert_eq!(again, (3_500_000, 0));

    let index_file = node.dir().join("regtest").join("wallet_index.json");
    eprintln!(
        "figure: wallet sync from a birthday {} blocks back (bootstrap, filter headers, scan, 4 blocks) {:.1} s; \
         peak RSS {:.1} MiB; index {} bytes for 5 transactions",
        block_count(&core) - BIRTHDAY as u64,
        first_sync.as_secs_f64(),
        rss_mib(&node.daemon.pid().to_string()).1,
        std::fs::metadata(&index_file).unwrap().len()
    );

    // A restart: the index comes from its file.
    drop(client);
    let (_, datadir) = node.stop_keeping_data();
    let mut node = Nightjar::spawn_in(datadir, args(&config));
    let mut client = connect_when_up(&mut node, addr);
    let loaded = logged(&mut node, "wallet index loaded");
    // Four payments and the spend.
    assert_eq!(loaded["transactions"], "5", "{loaded:?}");
    let after = wait_synced(&mut client, &core, &wallet, 3 * GAP, "after the restart");
    assert_eq!(after, (3_500_000, 0));
    drop(client);

    // Debian's Electrum, watch-only from the same key, through nightjar.
    if with_electrum {
        debian_electrum_sees_cores_balance_and_broadcasts(
            &mut core,
            &node,
            &wallet,
            &coins,
            electrum_port,
        );
    }
    let log = node.stop();
    assert!(
        !log.iter().any(|l| l.contains("wallet index is damaged")),
        "{log:#?}"
    );
}

/// Electrum's balance equals Core's `scantxoutset` for the descriptors,
/// and a spend it broadcasts (signed here) is mined by Core.
fn debian_electrum_sees_cores_balance_and_broadcasts(
    core: &mut CoreNode,
    node: &Nightjar,
    wallet: &TestWallet,
    coins: &BTreeMap<&str, OwnedCoin>,
    port: u16,
) {
    let electrum = ElectrumDaemon {
        dir: tempfile::tempdir().unwrap(),
    };
    // Nothing but our server: no exchange rates, no update checks.
    for (key, value) in [
        ("use_exchange_rate", "false"),
        ("check_updates", "false"),
        ("log_to_file", "true"),
    ] {
        electrum
            .run(&["--offline", "setconfig", key, value])
            .unwrap();
    }
    let server = format!("127.0.0.1:{port}:t");
    electrum
        .run(&["daemon", "-d", "--oneserver", "--server", &server])
        .unwrap();
    electrum.run(&["restore", &wallet.vpub()]).unwrap();
    electrum.run(&["load_wallet"]).unwrap();
    electrum_balance_settles(&electrum, core, wallet, "Electrum's first sync");

    // A spend signed elsewhere, broadcast by Electrum.
    let spend = wallet.spend(
        coins["r0"],
        vec![
            pay(wallet.script(1, 2), 600_000),
            pay(anyone_can_spend_address().script_pubkey(), 390_000),
        ],
    );
    let txid = spend.compute_txid().to_string();
    let said = electrum
        .run(&[
            "broadcast",
            &bitcoin::consensus::encode::serialize_hex(&spend),
        ])
        .unwrap();
    assert!(said.contains(&txid), "{said}");
    let arrived = core.wait_for(LIMIT, "Electrum's broadcast in Core's mempool", |c| {
        in_mempool(c, &txid)
    });
    if let Err(e) = arrived {
        let log = core.debug_log();
        let mentions: Vec<&str> = log
            .lines()
            .filter(|l| {
                l.contains(&txid[..16]) || l.contains("reject") || l.contains("privatebroadcast")
            })
            .collect();
        panic!(
            "{e:#}\nnightjar's private broadcasts: {:#}\nCore's log on it:\n{}",
            node.rpc(&["getprivatebroadcastinfo"]).unwrap_or_default(),
            mentions.join("\n")
        );
    }
    core.mine(1).unwrap();
    electrum_balance_settles(&electrum, core, wallet, "the broadcast mined");
    let found = electrum.history_entry(&txid);
    let mined_at = block_count(core);
    assert_eq!(found["height"], json!(mined_at), "{found:#}");

    // A reorg on Core takes that block away: Electrum's history loses the
    // confirmation and its balance follows Core's UTXO set again.
    reorg(core, mined_at, mined_at + 2);
    // (Electrum may keep the transaction as its own "local" one: what
    // matters is that no confirmation is left.)
    poll(Duration::from_secs(1), || {
        let info = electrum.json(&["getinfo"]);
        let history = electrum.json(&["onchain_history"]);
        let still_confirmed = history["transactions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["txid"] == json!(txid) && t["height"].as_u64().is_some_and(|h| h > 0));
        if info["blockchain_height"] == json!(block_count(core)) && !still_confirmed {
            Ok(())
        } else {
            Err(format!("{info} {history:#}"))
        }
    })
    .unwrap_or_else(|e| {
        panic!(
            "the reorg never reached Electrum: {e}; its log ends:\n{}",
            electrum.log_tail()
        )
    });
    // Mined again on the new branch: confirmed at its new height.
    core.mine(1).unwrap();
    electrum_balance_settles(&electrum, core, wallet, "mined again");
    let again = electrum.history_entry(&txid);
    assert_eq!(again["height"], json!(block_count(core)), "{again:#}");
}

/// Connect once the server listens (the daemon is starting); fail at
/// once, with its log, if the daemon exits instead.
fn connect_when_up(node: &mut Nightjar, addr: SocketAddr) -> ElectrumClient {
    let mut client = None;
    node.wait_for(LIMIT, &format!("Electrum server on {addr}"), |_| {
        client = ElectrumClient::connect(addr).ok();
        client.is_some()
    });
    client.unwrap()
}

/// Debian's Electrum (`electrum` package) in daemon mode, run with a data
/// directory of its own.
struct ElectrumDaemon {
    dir: tempfile::TempDir,
}

impl ElectrumDaemon {
    fn run(&self, args: &[&str]) -> Result<String, String> {
        let out = Command::new("electrum")
            .arg("--regtest")
            .arg("--dir")
            .arg(self.dir.path())
            .args(args)
            .env("HOME", self.dir.path())
            .output()
            .map_err(|e| format!("electrum could not run: {e}"))?;
        let stdout = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        if out.status.success() {
            Ok(stdout)
        } else {
            Err(format!(
                "electrum {args:?}: {}\n{stdout}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    fn json(&self, args: &[&str]) -> Value {
        let out = self.run(args).unwrap();
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("electrum {args:?} said {out:?}: {e}"))
    }

    /// The wallet's `onchain_history` entry for `txid`.
    fn history_entry(&self, txid: &str) -> Value {
        let history = self.json(&["onchain_history"]);
        history["transactions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["txid"] == json!(txid))
            .unwrap_or_else(|| panic!("{history:#}"))
            .clone()
    }

    /// The end of Electrum's own log files (`log_to_file`).
    fn log_tail(&self) -> String {
        let logs = self.dir.path().join("regtest").join("logs");
        let mut text = String::new();
        for entry in std::fs::read_dir(&logs).into_iter().flatten().flatten() {
            text.push_str(&std::fs::read_to_string(entry.path()).unwrap_or_default());
        }
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(60)..].join("\n")
    }
}

impl Drop for ElectrumDaemon {
    fn drop(&mut self) {
        let _ = self.run(&["stop"]);
    }
}

/// Whether Debian's Electrum runs: the rule of `core_required` and
/// `tor_required` (a loud skip, a failure in CI).
fn electrum_required(test: &str) -> bool {
    let runs = match Command::new("electrum")
        .args(["version", "--offline"])
        .output()
    {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => Err(anyhow::anyhow!(
            "`electrum version --offline` failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Err(e) => Err(anyhow::anyhow!(
            "no electrum ({e}): apt-get install --no-install-recommends electrum"
        )),
    };
    nightjar_privnet::required(test, "Debian's Electrum", runs)
}

fn balance_sats(v: &Value, key: &str) -> u64 {
    v.get(key).and_then(Value::as_str).map_or(0, |b| {
        Amount::from_str_in(b, bitcoin::Denomination::Bitcoin)
            .unwrap()
            .to_sat()
    })
}

/// Wait until Electrum is synchronized at Core's height with Core's
/// balance for the descriptors, and nothing unconfirmed.
fn electrum_balance_settles(
    electrum: &ElectrumDaemon,
    core: &CoreNode,
    wallet: &TestWallet,
    what: &str,
) {
    let want = core_balance(core, wallet);
    poll(Duration::from_secs(1), || {
        let synced = electrum
            .run(&["is_synchronized"])
            .is_ok_and(|s| s == "true");
        let balance = electrum.json(&["getbalance"]);
        let info = electrum.json(&["getinfo"]);
        if synced
            && info["blockchain_height"] == json!(block_count(core))
            && balance_sats(&balance, "confirmed") == want
            && balance.get("unconfirmed").is_none()
        {
            Ok(())
        } else {
            Err(format!(
                "Electrum shows {balance} at {info}, Core {want} sat"
            ))
        }
    })
    .unwrap_or_else(|e| panic!("{what}: {e}; its log ends:\n{}", electrum.log_tail()));
}

/// `server.version` over TLS (the certificate is self-signed, so it is
/// not verified: it is compared with the fingerprint the log announced),
/// and the SHA-256 fingerprint of the certificate the server presented.
fn tls_server_version(addr: SocketAddr) -> (Value, String) {
    use std::io::{BufRead, BufReader, Write};

    use openssl::hash::MessageDigest;
    use openssl::ssl::{SslConnector, SslMethod, SslVerifyMode};

    let mut builder = SslConnector::builder(SslMethod::tls()).unwrap();
    builder.set_verify(SslVerifyMode::NONE);
    let tcp = std::net::TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut tls = builder.build().connect("localhost", tcp).unwrap();
    let digest = tls
        .ssl()
        .peer_certificate()
        .unwrap()
        .digest(MessageDigest::sha256())
        .unwrap();
    let fingerprint: Vec<String> = digest.iter().map(|b| format!("{b:02X}")).collect();
    let request =
        json!({"jsonrpc": "2.0", "id": 1, "method": "server.version", "params": ["t", "1.4"]});
    writeln!(tls, "{request}").unwrap();
    let mut line = String::new();
    BufReader::new(&mut tls).read_line(&mut line).unwrap();
    let reply: Value = serde_json::from_str(&line).unwrap();
    (reply["result"].clone(), fingerprint.join(":"))
}
