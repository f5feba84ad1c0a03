//! Every method against the in-memory backend.

use bitcoin::consensus::encode::serialize_hex;
use bitcoin::hashes::{Hash, sha256d};
use bitcoin::{Amount, TxMerkleNode, Txid};
use serde_json::{Value, json};

use super::*;
use crate::electrum::backend::{BackendError, HistoryEntry, MerkleProof, Utxo};
use crate::electrum::testing::{FakeBackend, chain, sh, tx};

fn params(v: Value) -> Params {
    match v {
        Value::Array(a) => Params::Positional(a),
        Value::Object(m) => Params::Named(m),
        _ => panic!("params are an array or an object"),
    }
}

/// One client's session on a fake node.
struct Fixture {
    b: FakeBackend,
    s: Session,
}

impl Fixture {
    /// A node at `height` and a session allowing `max_subscriptions`.
    fn new(height: u32, max_subscriptions: usize) -> Self {
        Fixture {
            b: FakeBackend::new(height),
            s: Session::new(max_subscriptions),
        }
    }

    async fn call(&mut self, method: &str, p: Value) -> Result<Value, RpcError> {
        self.s.call(&self.b, method, &params(p)).await
    }

    async fn ok(&mut self, method: &str, p: Value) -> Value {
        self.call(method, p).await.unwrap()
    }

    async fn err(&mut self, method: &str, p: Value) -> RpcError {
        self.call(method, p).await.unwrap_err()
    }

    async fn on_change(&mut self, change: Change) -> Option<Value> {
        self.s.on_change(&self.b, change).await
    }
}

/// The parameters of a method taking only a script hash: `sh(n)`'s.
fn of(n: u8) -> Value {
    json!([sh(n).to_string()])
}

fn txid(n: u32) -> Txid {
    tx(n).compute_txid()
}

fn entry(n: u32, height: i32, fee: Option<u64>) -> HistoryEntry {
    HistoryEntry {
        txid: txid(n),
        height,
        fee,
    }
}

/// Climbs a branch from `leaf` at `index`, the way a client checks it.
fn climb(leaf: sha256d::Hash, mut index: u32, branch: &[Value]) -> sha256d::Hash {
    let mut node = leaf;
    for sibling in branch {
        // Hex as displayed: the bytes reversed.
        let sibling: BlockHash = sibling.as_str().unwrap().parse().unwrap();
        let sibling = sibling.to_raw_hash();
        let mut bytes = Vec::new();
        if index.is_multiple_of(2) {
            bytes.extend_from_slice(node.as_byte_array());
            bytes.extend_from_slice(sibling.as_byte_array());
        } else {
            bytes.extend_from_slice(sibling.as_byte_array());
            bytes.extend_from_slice(node.as_byte_array());
        }
        node = sha256d::Hash::hash(&bytes);
        index /= 2;
    }
    node
}

fn displayed(hash: sha256d::Hash) -> String {
    BlockHash::from_raw_hash(hash).to_string()
}

#[tokio::test]
async fn version_is_negotiated_once() {
    let mut c = Fixture::new(3, 10);
    let v = c
        .ok("server.version", json!(["Electrum 4.5", ["1.2", "1.4.2"]]))
        .await;
    assert_eq!(v, json!([server_software(), "1.4"]));
    assert!(server_software().starts_with("nightjar "));
    assert!(!c.s.wants_close());
    let e = c
        .err("server.version", json!(["Electrum 4.5", "1.4"]))
        .await;
    assert_eq!(e.code, codes::BAD_REQUEST);
    assert!(
        !c.s.wants_close(),
        "a repeated version is refused, not fatal"
    );
}

#[tokio::test]
async fn version_defaults_and_named_params() {
    let mut c = Fixture::new(0, 10);
    assert_eq!(c.ok("server.version", json!([])).await[1], "1.4");
    c.s = Session::new(10);
    let v = c
        .ok(
            "server.version",
            json!({"client_name": "x", "protocol_version": "1.4"}),
        )
        .await;
    assert_eq!(v[1], "1.4");
    c.s = Session::new(10);
    let v = c
        .ok("server.version", json!(["x", "1.4", "future-arg"]))
        .await;
    assert_eq!(v[1], "1.4", "extra arguments are ignored");
}

#[tokio::test]
async fn a_version_range_without_1_4_closes_the_session() {
    let mut c = Fixture::new(0, 10);
    for range in [json!(["1.5", "1.6"]), json!("1.3"), json!(["1.0", "1.2"])] {
        c.s = Session::new(10);
        let e = c.err("server.version", json!(["x", range])).await;
        assert_eq!(e.code, codes::BAD_REQUEST);
        assert!(e.message.contains("1.4"), "{}", e.message);
        assert!(c.s.wants_close(), "{range}");
    }
    for bad in [json!(5), json!(["1.4"]), json!("one.four")] {
        c.s = Session::new(10);
        let e = c.err("server.version", json!(["x", bad])).await;
        assert_eq!(e.code, codes::INVALID_PARAMS);
        assert!(e.message.contains("protocol_version"));
        assert!(!c.s.wants_close());
    }
}

#[tokio::test]
async fn server_methods() {
    let mut c = Fixture::new(0, 10);
    let f = c.ok("server.features", json!([])).await;
    assert_eq!(
        f["genesis_hash"],
        json!(chain(1)[0].block_hash().to_string())
    );
    assert_eq!(f["hosts"], json!({}));
    assert_eq!(f["protocol_min"], "1.4");
    assert_eq!(f["protocol_max"], "1.4");
    assert_eq!(f["pruning"], Value::Null);
    assert_eq!(f["hash_function"], "sha256");
    assert_eq!(f["server_version"], json!(server_software()));
    let banner = c.ok("server.banner", json!([])).await;
    assert!(banner.as_str().unwrap().starts_with("nightjar"));
    assert_eq!(c.ok("server.ping", json!([])).await, Value::Null);
    assert_eq!(c.ok("server.donation_address", json!([])).await, "");
    assert_eq!(c.ok("server.peers.subscribe", json!([])).await, json!([]));
    assert_eq!(c.ok("blockchain.estimatefee", json!([6])).await, json!(-1));
    assert_eq!(c.ok("blockchain.relayfee", json!([])).await, json!(0.00001));
    assert_eq!(
        c.ok("mempool.get_fee_histogram", json!([])).await,
        json!([])
    );
}

#[tokio::test]
async fn unknown_methods_and_bad_params() {
    let mut c = Fixture::new(0, 10);
    let e = c.err("blockchain.address.get_history", json!([])).await;
    assert_eq!(e.code, codes::METHOD_NOT_FOUND);
    let e = c.err("server.ping", json!([1])).await;
    assert_eq!(e.code, codes::INVALID_PARAMS);
    let e = c.err("blockchain.estimatefee", json!([])).await;
    assert_eq!(
        (e.code, e.message.as_str()),
        (codes::INVALID_PARAMS, "missing parameter number")
    );
    let e = c
        .err("blockchain.scripthash.get_history", json!(["nothex"]))
        .await;
    assert_eq!(e.code, codes::INVALID_PARAMS);
    assert!(e.message.contains("scripthash"));
}

#[tokio::test]
async fn headers_subscribe_and_tip_notifications() {
    let mut c = Fixture::new(5, 10);
    let headers = chain(8);
    // No subscription, no notification.
    let change = Change::Tip {
        height: 6,
        header: headers[6],
    };
    assert_eq!(c.on_change(change.clone()).await, None);

    let tip = c.ok("blockchain.headers.subscribe", json!([])).await;
    assert_eq!(tip, json!({"height": 5, "hex": serialize_hex(&headers[5])}));
    // The tip the client already has is not sent again.
    let same = Change::Tip {
        height: 5,
        header: headers[5],
    };
    assert_eq!(c.on_change(same).await, None);
    let n = c.on_change(change.clone()).await.unwrap();
    assert_eq!(
        n,
        json!({"jsonrpc": "2.0", "method": "blockchain.headers.subscribe",
               "params": [{"height": 6, "hex": serialize_hex(&headers[6])}]})
    );
    assert_eq!(c.on_change(change).await, None);
}

#[tokio::test]
async fn block_header_with_and_without_checkpoint() {
    let mut c = Fixture::new(20, 10);
    let headers = chain(21);
    let h = c.ok("blockchain.block.header", json!([7])).await;
    assert_eq!(h, json!(serialize_hex(&headers[7])));
    let e = c.err("blockchain.block.header", json!([21])).await;
    assert_eq!(e.code, codes::BAD_REQUEST);

    let p = c
        .ok(
            "blockchain.block.header",
            json!({"height": 7, "cp_height": 12}),
        )
        .await;
    assert_eq!(p["header"], json!(serialize_hex(&headers[7])));
    // 13 leaves: 4 levels.
    assert_eq!(p["branch"].as_array().unwrap().len(), 4);
    let root = climb(
        headers[7].block_hash().to_raw_hash(),
        7,
        p["branch"].as_array().unwrap(),
    );
    assert_eq!(p["root"], json!(displayed(root)));
    let leaves = headers[..13]
        .iter()
        .map(|h| h.block_hash().to_raw_hash())
        .collect();
    let (_, expected_root) = crate::chain::merkle::branch_and_root(leaves, 0).unwrap();
    assert_eq!(root, expected_root);

    for (height, cp) in [(7, 6), (7, 21)] {
        let e = c.err("blockchain.block.header", json!([height, cp])).await;
        assert_eq!(e.code, codes::BAD_REQUEST, "{height} {cp}");
        assert!(e.message.contains("cp_height"));
    }
}

#[tokio::test]
async fn block_headers_chunks() {
    let mut c = Fixture::new(2100, 10);
    let headers = chain(2101);
    let r = c.ok("blockchain.block.headers", json!([3, 2])).await;
    let hex: String = headers[3..5].iter().map(serialize_hex).collect();
    assert_eq!(r, json!({"count": 2, "hex": hex, "max": 2016}));
    // Capped at max.
    let r = c.ok("blockchain.block.headers", json!([0, 5000])).await;
    assert_eq!(r["count"], 2016);
    assert_eq!(r["hex"].as_str().unwrap().len(), 2016 * 160);
    // Fewer at the tip, none above it.
    let r = c.ok("blockchain.block.headers", json!([2099, 10])).await;
    assert_eq!(r["count"], 2);
    let r = c.ok("blockchain.block.headers", json!([3000, 10])).await;
    assert_eq!(r, json!({"count": 0, "hex": "", "max": 2016}));
    // The proof is for the last header returned, over 0..=cp_height,
    // which needs more than one chunk of headers here.
    let r = c.ok("blockchain.block.headers", json!([10, 3, 2050])).await;
    assert_eq!(r["count"], 3);
    let root = climb(
        headers[12].block_hash().to_raw_hash(),
        12,
        r["branch"].as_array().unwrap(),
    );
    assert_eq!(r["root"], json!(displayed(root)));
    let leaves = headers[..2051]
        .iter()
        .map(|h| h.block_hash().to_raw_hash())
        .collect();
    let (_, expected_root) = crate::chain::merkle::branch_and_root(leaves, 0).unwrap();
    assert_eq!(root, expected_root);
    let e = c.err("blockchain.block.headers", json!([10, 3, 11])).await;
    assert_eq!(e.code, codes::BAD_REQUEST);
}

#[tokio::test]
async fn history_mempool_and_status() {
    let mut c = Fixture::new(10, 10);
    c.b.state().history.insert(
        sh(1),
        vec![
            entry(3, 0, Some(300)),
            entry(1, 5, None),
            entry(2, -1, Some(200)),
        ],
    );
    c.b.state().history.insert(sh(2), vec![]);
    let h = c.ok("blockchain.scripthash.get_history", of(1)).await;
    assert_eq!(
        h,
        json!([
            {"tx_hash": txid(1).to_string(), "height": 5},
            {"tx_hash": txid(3).to_string(), "height": 0, "fee": 300},
            {"tx_hash": txid(2).to_string(), "height": -1, "fee": 200},
        ])
    );
    let m = c.ok("blockchain.scripthash.get_mempool", of(1)).await;
    assert_eq!(m, json!([h[1], h[2]]));

    let st = c.ok("blockchain.scripthash.subscribe", of(1)).await;
    // The status is over the history in the order get_history gave it.
    let text = format!("{}:5:{}:0:{}:-1:", txid(1), txid(3), txid(2));
    let expected = bitcoin::hashes::sha256::Hash::hash(text.as_bytes());
    assert_eq!(
        st,
        json!(bitcoin::hex::DisplayHex::to_lower_hex_string(
            &expected.to_byte_array()[..]
        ))
    );
    let empty = c.ok("blockchain.scripthash.subscribe", of(2)).await;
    assert_eq!(empty, Value::Null);
}

#[tokio::test]
async fn subscriptions_notify_changes_only() {
    let mut c = Fixture::new(10, 10);
    c.b.state().history.insert(sh(1), vec![]);
    c.b.state().history.insert(sh(2), vec![]);
    c.ok("blockchain.scripthash.subscribe", of(1)).await;
    // Nothing changed yet; an unsubscribed script hash is never reported.
    assert_eq!(c.on_change(Change::ScriptHash(sh(1))).await, None);
    c.b.state().history.insert(sh(2), vec![entry(9, 0, None)]);
    assert_eq!(c.on_change(Change::ScriptHash(sh(2))).await, None);

    c.b.state()
        .history
        .insert(sh(1), vec![entry(1, 0, Some(1))]);
    let n = c.on_change(Change::ScriptHash(sh(1))).await.unwrap();
    let status = crate::electrum::status::status(&[entry(1, 0, None)]).unwrap();
    assert_eq!(
        n,
        json!({"jsonrpc": "2.0", "method": "blockchain.scripthash.subscribe",
               "params": [sh(1).to_string(), status]})
    );
    assert_eq!(
        c.on_change(Change::ScriptHash(sh(1))).await,
        None,
        "sent once"
    );

    // Missed changes: everything is re-checked.
    c.b.state().history.insert(sh(1), vec![entry(1, 4, None)]);
    let missed = c.s.on_missed_changes(&c.b).await;
    assert_eq!(missed.len(), 1);
    assert_eq!(missed[0]["params"][0], json!(sh(1).to_string()));

    let yes = c.ok("blockchain.scripthash.unsubscribe", of(1)).await;
    assert_eq!(yes, json!(true));
    let no = c.ok("blockchain.scripthash.unsubscribe", of(1)).await;
    assert_eq!(no, json!(false));
    c.b.state().history.insert(sh(1), vec![]);
    assert_eq!(c.on_change(Change::ScriptHash(sh(1))).await, None);
}

#[tokio::test]
async fn subscription_limit_and_unwatched_scripts() {
    let mut c = Fixture::new(1, 2);
    for n in 1..=3 {
        c.b.state().history.insert(sh(n), vec![]);
    }
    c.ok("blockchain.scripthash.subscribe", of(1)).await;
    c.ok("blockchain.scripthash.subscribe", of(2)).await;
    // Subscribing again to one already counted is fine.
    c.ok("blockchain.scripthash.subscribe", of(2)).await;
    let e = c.err("blockchain.scripthash.subscribe", of(3)).await;
    assert_eq!(e.code, codes::BAD_REQUEST);
    assert!(e.message.contains("at most 2"));

    let e = c.err("blockchain.scripthash.get_history", of(9)).await;
    assert_eq!(e.code, codes::BAD_REQUEST);
    assert!(e.message.contains(&sh(9).to_string()) && e.message.contains("[wallet]"));
}

#[tokio::test]
async fn coins_and_balance() {
    let mut c = Fixture::new(10, 10);
    let utxo = |n, vout, sat, height| Utxo {
        txid: txid(n),
        vout,
        value: Amount::from_sat(sat),
        height,
    };
    c.b.state().utxos.insert(
        sh(1),
        vec![
            utxo(1, 0, 5_000, 3),
            utxo(2, 1, 7_000, 8),
            utxo(3, 2, 1_000, 0),
            utxo(4, 0, 10, -1),
        ],
    );
    let bal = c.ok("blockchain.scripthash.get_balance", of(1)).await;
    assert_eq!(bal, json!({"confirmed": 12_000, "unconfirmed": 1_010}));
    let list = c
        .ok(
            "blockchain.scripthash.listunspent",
            json!({"scripthash": sh(1).to_string()}),
        )
        .await;
    assert_eq!(
        list,
        json!([
            {"tx_hash": txid(1).to_string(), "tx_pos": 0, "value": 5000, "height": 3},
            {"tx_hash": txid(2).to_string(), "tx_pos": 1, "value": 7000, "height": 8},
            {"tx_hash": txid(3).to_string(), "tx_pos": 2, "value": 1000, "height": 0},
            {"tx_hash": txid(4).to_string(), "tx_pos": 0, "value": 10, "height": 0},
        ])
    );
    let e = c.err("blockchain.scripthash.get_balance", of(2)).await;
    assert_eq!(e.code, codes::BAD_REQUEST);
}

#[tokio::test]
async fn transactions_and_proofs() {
    let mut c = Fixture::new(10, 10);
    c.b.state().txs.insert(txid(1), tx(1));
    let branch = vec![
        TxMerkleNode::from_raw_hash(txid(7).to_raw_hash()),
        TxMerkleNode::from_byte_array([0xab; 32]),
    ];
    c.b.state().proofs.insert(
        (txid(1), 6),
        MerkleProof {
            block_height: 6,
            pos: 1,
            branch: branch.clone(),
        },
    );
    c.b.state()
        .blocks
        .insert(6, vec![(txid(7), vec![]), (txid(1), branch.clone())]);

    let raw = c
        .ok("blockchain.transaction.get", json!([txid(1).to_string()]))
        .await;
    assert_eq!(raw, json!(serialize_hex(&tx(1))));
    let raw = c
        .ok(
            "blockchain.transaction.get",
            json!([txid(1).to_string(), false]),
        )
        .await;
    assert_eq!(raw, json!(serialize_hex(&tx(1))));
    let e = c
        .err(
            "blockchain.transaction.get",
            json!([txid(1).to_string(), true]),
        )
        .await;
    assert_eq!(e.code, codes::BAD_REQUEST);
    assert!(e.message.contains("raw transactions only"));
    let e = c
        .err("blockchain.transaction.get", json!([txid(2).to_string()]))
        .await;
    assert_eq!(e.code, codes::BAD_REQUEST);

    let m = c
        .ok(
            "blockchain.transaction.get_merkle",
            json!([txid(1).to_string(), 6]),
        )
        .await;
    // Branch hashes are written like txids (bytes reversed): a sibling
    // that is a txid reads as that txid.
    assert_eq!(
        m,
        json!({"block_height": 6, "pos": 1,
               "merkle": [txid(7).to_string(), "ab".repeat(32)]})
    );
    let e = c
        .err(
            "blockchain.transaction.get_merkle",
            json!([txid(1).to_string()]),
        )
        .await;
    assert_eq!(e.message, "missing parameter height");

    let id = c
        .ok("blockchain.transaction.id_from_pos", json!([6, 1]))
        .await;
    assert_eq!(id, json!(txid(1).to_string()));
    let id = c
        .ok("blockchain.transaction.id_from_pos", json!([6, 1, true]))
        .await;
    assert_eq!(
        id,
        json!({"tx_hash": txid(1).to_string(), "merkle": [txid(7).to_string(), "ab".repeat(32)]})
    );
    let e = c
        .err("blockchain.transaction.id_from_pos", json!([6, 5]))
        .await;
    assert_eq!(e.code, codes::BAD_REQUEST);
}

#[tokio::test]
async fn broadcast() {
    let mut c = Fixture::new(1, 10);
    let hex = serialize_hex(&tx(5));
    let r = c.ok("blockchain.transaction.broadcast", json!([hex])).await;
    assert_eq!(r, json!(txid(5).to_string()));
    assert_eq!(c.b.state().broadcast, vec![tx(5)]);

    let e = c
        .err("blockchain.transaction.broadcast", json!(["xyz"]))
        .await;
    assert_eq!(e.code, codes::INVALID_PARAMS);
    assert!(e.message.contains("raw_tx"));
    let e = c
        .err("blockchain.transaction.broadcast", json!(["00"]))
        .await;
    assert_eq!(e.code, codes::INVALID_PARAMS);
    assert!(e.message.contains("not a valid transaction"));

    c.b.state().reject_broadcast = Some("min relay fee not met".into());
    let e = c
        .err("blockchain.transaction.broadcast", json!([hex]))
        .await;
    assert_eq!(e.code, codes::BAD_REQUEST);
    assert!(e.message.contains("min relay fee not met"));
}

#[tokio::test]
async fn an_unavailable_node_is_a_daemon_error() {
    let mut c = Fixture::new(1, 10);
    c.b.state().unavailable = true;
    let e = c.err("blockchain.headers.subscribe", json!([])).await;
    assert_eq!(e.code, codes::DAEMON_ERROR);
    assert_eq!(
        e.message,
        BackendError::Unavailable("syncing headers".into()).to_string()
    );
}
