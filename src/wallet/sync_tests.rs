//! The wallet sync against an in-memory node: a best chain of hand-built
//! blocks whose "filters" match exactly the scripts a block pays or
//! spends (as BIP158's basic filter holds them), a private broadcast
//! queue, and nothing else. The interop with a real node over Tor is
//! `tests/core_electrum.rs`; this pins the sync's decisions: scans from
//! the birthday, rescans for scripts the gap limit brings in, reorgs,
//! and the user's broadcasts.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use bitcoin::block::Header;
use bitcoin::{Amount, Block, BlockHash, OutPoint, ScriptBuf, Transaction, Txid};

use super::index::WalletIndex;
use super::index_tests::{GAP, block, foreign, receive, script, stranger, tx, wallet_balance};
use super::keychain::Keychain;
use super::node::{Node, NodeError, NodeStatus};
use super::shared::WalletShared;
use super::sync::WalletSync;
use crate::config::types::{Birthday, WalletSpec};

/// The node: a best chain, and the private broadcast queue.
#[derive(Default)]
struct FakeNode {
    state: Mutex<FakeState>,
}

#[derive(Default)]
struct FakeState {
    chain: Vec<Block>,
    queue: BTreeMap<Txid, Transaction>,
    scans: Vec<(u32, u32, usize)>,
    stopped: Vec<Txid>,
}

impl FakeNode {
    fn with_chain(chain: Vec<Block>) -> Self {
        FakeNode {
            state: Mutex::new(FakeState {
                chain,
                ..FakeState::default()
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, FakeState> {
        self.state.lock().unwrap()
    }
}

/// Every output of the chain's transactions, to find what an input spends.
fn outputs(chain: &[Block]) -> HashMap<OutPoint, ScriptBuf> {
    let mut out = HashMap::new();
    for b in chain {
        for t in &b.txdata {
            for (vout, o) in t.output.iter().enumerate() {
                out.insert(
                    OutPoint::new(t.compute_txid(), u32::try_from(vout).unwrap()),
                    o.script_pubkey.clone(),
                );
            }
        }
    }
    out
}

impl Node for FakeNode {
    async fn status(&self) -> Result<NodeStatus, NodeError> {
        let s = self.state();
        let height = u32::try_from(s.chain.len() - 1).unwrap();
        Ok(NodeStatus {
            height,
            tip: s.chain[s.chain.len() - 1].block_hash(),
            filter_headers: height + 1,
            initial_sync: false,
        })
    }

    async fn hash_at(&self, height: u32) -> Result<Option<BlockHash>, NodeError> {
        Ok(self
            .state()
            .chain
            .get(height as usize)
            .map(Block::block_hash))
    }

    async fn header_at(&self, height: u32) -> Result<Option<Header>, NodeError> {
        Ok(self.state().chain.get(height as usize).map(|b| b.header))
    }

    async fn height_of(&self, hash: BlockHash) -> Result<u32, NodeError> {
        let s = self.state();
        let at = s
            .chain
            .iter()
            .position(|b| b.block_hash() == hash)
            .ok_or_else(|| NodeError::Call {
                method: "getblockheader",
                message: "Block not found".to_owned(),
            })?;
        Ok(u32::try_from(at).unwrap())
    }

    async fn scan(
        &self,
        scripts: &[ScriptBuf],
        start: u32,
        stop: u32,
    ) -> Result<Vec<BlockHash>, NodeError> {
        let mut s = self.state();
        s.scans.push((start, stop, scripts.len()));
        let spent = outputs(&s.chain);
        let matches = |b: &Block| {
            b.txdata.iter().any(|t| {
                t.output.iter().any(|o| scripts.contains(&o.script_pubkey))
                    || t.input.iter().any(|i| {
                        spent
                            .get(&i.previous_output)
                            .is_some_and(|s| scripts.contains(s))
                    })
            })
        };
        Ok(s.chain[start as usize..=stop as usize]
            .iter()
            .filter(|b| matches(b))
            .map(Block::block_hash)
            .collect())
    }

    async fn block(&self, hash: BlockHash) -> Result<Block, NodeError> {
        self.state()
            .chain
            .iter()
            .find(|b| b.block_hash() == hash)
            .cloned()
            .ok_or_else(|| NodeError::Call {
                method: "getblock",
                message: "Block not found".to_owned(),
            })
    }

    async fn broadcast(&self, tx: &Transaction) -> Result<Txid, NodeError> {
        let txid = tx.compute_txid();
        self.state().queue.insert(txid, tx.clone());
        Ok(txid)
    }

    async fn broadcasts(&self) -> Result<Vec<(Txid, Option<Transaction>)>, NodeError> {
        Ok(self
            .state()
            .queue
            .iter()
            .map(|(t, tx)| (*t, Some(tx.clone())))
            .collect())
    }

    async fn stop_broadcast(&self, txid: Txid) -> Result<(), NodeError> {
        let mut s = self.state();
        s.queue.remove(&txid);
        s.stopped.push(txid);
        Ok(())
    }
}

/// A chain of `n` empty blocks on branch 0, with `txs` placed at their
/// heights.
fn chain(n: u32, txs: &[(u32, Transaction)]) -> Vec<Block> {
    (0..n)
        .map(|h| {
            let here: Vec<Transaction> = txs
                .iter()
                .filter(|(at, _)| *at == h)
                .map(|(_, t)| t.clone())
                .collect();
            block(h, 0, &here)
        })
        .collect()
}

fn spec(birthday: Birthday) -> WalletSpec {
    WalletSpec {
        name: "main".to_owned(),
        keychains: vec![receive()],
        birthday,
        gap_limit: GAP,
    }
}

fn sync(
    node: FakeNode,
    birthday: Birthday,
) -> (
    WalletSync<FakeNode>,
    std::sync::Arc<WalletShared>,
    tempfile::TempDir,
) {
    let dir = tempfile::tempdir().unwrap();
    let shared = WalletShared::new(WalletIndex::new());
    let s = WalletSync::new(
        node,
        shared.clone(),
        dir.path().join("wallet_index.json"),
        vec![spec(birthday)],
    );
    (s, shared, dir)
}

fn balance(shared: &WalletShared) -> (Amount, Amount) {
    wallet_balance(&shared.read(), "main")
}

#[tokio::test]
async fn a_payment_past_the_gap_paid_early_is_found_by_the_rescan() {
    // Index GAP + 3 is paid at height 12, before index GAP - 1 (which
    // moves the gap far enough to watch it) is paid at 20.
    let early = tx(foreign(1), &[(script(GAP + 3), 5_000)]);
    let late = tx(foreign(2), &[(script(GAP - 1), 7_000)]);
    let before_birthday = tx(foreign(3), &[(script(0), 1_000)]);
    let node = FakeNode::with_chain(chain(
        30,
        &[
            (5, before_birthday),
            (12, early.clone()),
            (20, late.clone()),
        ],
    ));
    let (mut s, shared, dir) = sync(node, Birthday::Height(10));
    s.pass().await.unwrap();
    assert_eq!(balance(&shared), (Amount::from_sat(12_000), Amount::ZERO));
    {
        let index = shared.read();
        assert!(index.transaction(&early.compute_txid()).is_some());
        assert_eq!(index.keychains()[0].next_height, 30);
    }
    // The first scan had the first GAP scripts; each rescan only the
    // scripts new since, from the birthday: index GAP - 1 brought in
    // GAP..2*GAP, then GAP + 3 brought in 2*GAP..GAP + 3 + GAP + 1.
    let scans = s.node_for_tests().state().scans.clone();
    assert_eq!(scans, vec![(10, 29, 5), (10, 29, 5), (10, 29, 4)]);
    // Saved: the file restores the same balance.
    let bytes = std::fs::read(dir.path().join("wallet_index.json")).unwrap();
    let back = super::store::from_bytes(&bytes, bitcoin::Network::Regtest).unwrap();
    assert_eq!(
        wallet_balance(&back, "main"),
        (Amount::from_sat(12_000), Amount::ZERO)
    );
    // Nothing new: the next pass scans nothing.
    s.pass().await.unwrap();
    assert_eq!(s.node_for_tests().state().scans.len(), 3);
}

#[tokio::test]
async fn a_reorg_is_undone_back_to_the_fork_and_the_new_branch_scanned() {
    let pay = tx(foreign(1), &[(script(0), 5_000)]);
    let stays = tx(foreign(2), &[(script(1), 2_000)]);
    let node = FakeNode::with_chain(chain(20, &[(8, stays.clone()), (15, pay.clone())]));
    let (mut s, shared, _dir) = sync(node, Birthday::Height(0));
    s.pass().await.unwrap();
    assert_eq!(balance(&shared), (Amount::from_sat(7_000), Amount::ZERO));
    // Blocks 14.. replaced by a longer branch without the payment.
    {
        let mut st = s.node_for_tests().state();
        st.chain.truncate(14);
        for h in 14..22 {
            st.chain.push(block(h, 1, &[]));
        }
    }
    s.pass().await.unwrap();
    assert_eq!(balance(&shared), (Amount::from_sat(2_000), Amount::ZERO));
    let index = shared.read();
    assert!(index.transaction(&pay.compute_txid()).is_none());
    assert_eq!(index.keychains()[0].next_height, 22);
    assert_eq!(index.anchors().next().map(|(h, _)| h), Some(21));
}

#[tokio::test]
async fn own_broadcasts_show_unconfirmed_and_leave_the_queue_once_mined() {
    let pay = tx(foreign(1), &[(script(0), 50_000)]);
    let node = FakeNode::with_chain(chain(10, &[(3, pay.clone())]));
    let (mut s, shared, _dir) = sync(node, Birthday::Height(0));
    s.pass().await.unwrap();
    // The user's spend waits in the broadcast queue: unconfirmed.
    let spend = tx(
        OutPoint::new(pay.compute_txid(), 0),
        &[(script(1), 45_000), (stranger(), 4_000)],
    );
    s.node_for_tests().broadcast(&spend).await.unwrap();
    s.pass().await.unwrap();
    assert_eq!(balance(&shared), (Amount::ZERO, Amount::from_sat(45_000)));
    // Mined: confirmed, and taken out of the queue.
    {
        let mut st = s.node_for_tests().state();
        st.chain.push(block(10, 0, std::slice::from_ref(&spend)));
    }
    s.pass().await.unwrap();
    assert_eq!(balance(&shared), (Amount::from_sat(45_000), Amount::ZERO));
    let st = s.node_for_tests().state();
    assert_eq!(st.stopped, vec![spend.compute_txid()]);
    assert!(st.queue.is_empty());
}

#[tokio::test]
async fn a_broadcast_dropped_by_the_node_is_dropped_from_the_index() {
    let pay = tx(foreign(1), &[(script(0), 50_000)]);
    let node = FakeNode::with_chain(chain(10, &[(3, pay.clone())]));
    let (mut s, shared, _dir) = sync(node, Birthday::Height(0));
    let spend = tx(OutPoint::new(pay.compute_txid(), 0), &[(script(1), 45_000)]);
    s.node_for_tests().broadcast(&spend).await.unwrap();
    s.pass().await.unwrap();
    assert_eq!(balance(&shared), (Amount::ZERO, Amount::from_sat(45_000)));
    s.node_for_tests().state().queue.clear();
    s.pass().await.unwrap();
    assert_eq!(balance(&shared), (Amount::from_sat(50_000), Amount::ZERO));
}

#[tokio::test]
async fn a_birthday_date_starts_a_day_early() {
    // Block h has time 1_700_000_000 + h (see `block`): a date equal to
    // block 20's time starts at block 0 (a day of slack is more than the
    // whole chain); one two days later starts past the tip.
    let node = FakeNode::with_chain(chain(30, &[]));
    let (mut s, shared, _dir) = sync(
        node,
        Birthday::Date {
            unix: 1_700_000_020,
        },
    );
    s.pass().await.unwrap();
    assert_eq!(shared.read().keychains()[0].birthday, 0);
    let node = FakeNode::with_chain(chain(30, &[]));
    let (mut s, shared, _dir) = sync(
        node,
        Birthday::Date {
            unix: 1_700_000_020 + 2 * 86_400,
        },
    );
    s.pass().await.unwrap();
    let index = shared.read();
    assert_eq!(index.keychains()[0].birthday, 30);
    assert!(s.node_for_tests().state().scans.is_empty());
}

#[tokio::test]
async fn a_wallet_added_later_is_scanned_from_its_own_birthday_only() {
    let change = Keychain::parse(
        &format!("wpkh({}/1/*)", super::index_tests::tpub()),
        bitcoin::Network::Regtest,
    )
    .unwrap()
    .remove(0);
    let to_change = tx(foreign(1), &[(change.script_at(0).unwrap(), 3_000)]);
    let to_receive = tx(foreign(2), &[(script(0), 4_000)]);
    let blocks = chain(40, &[(6, to_change.clone()), (25, to_receive)]);
    let (mut first, shared, dir) = sync(FakeNode::with_chain(blocks.clone()), Birthday::Height(20));
    first.pass().await.unwrap();
    assert_eq!(balance(&shared), (Amount::from_sat(4_000), Amount::ZERO));

    // The next start: the same index, and a second wallet born at 5.
    let later = WalletSpec {
        name: "savings".to_owned(),
        keychains: vec![change],
        birthday: Birthday::Height(5),
        gap_limit: GAP,
    };
    let mut second = WalletSync::new(
        FakeNode::with_chain(blocks),
        shared.clone(),
        dir.path().join("wallet_index.json"),
        vec![spec(Birthday::Height(20)), later],
    );
    second.pass().await.unwrap();
    assert_eq!(
        second.node_for_tests().state().scans,
        // Its GAP scripts, then the one its first payment brought in.
        vec![(5, 39, GAP as usize), (5, 39, 1)],
        "only the new wallet's scripts, from its birthday"
    );
    let index = shared.read();
    assert_eq!(
        wallet_balance(&index, "savings"),
        (Amount::from_sat(3_000), Amount::ZERO)
    );
    assert_eq!(
        wallet_balance(&index, "main"),
        (Amount::from_sat(4_000), Amount::ZERO)
    );
}
