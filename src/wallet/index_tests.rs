//! The wallet index and its file, fed hand-built blocks that pay and spend
//! scripts derived from a test key.

use bitcoin::absolute::LockTime;
use bitcoin::bip32::{DerivationPath, Xpriv, Xpub};
use bitcoin::block::{Header, Version as BlockVersion};
use bitcoin::hashes::Hash;
use bitcoin::secp256k1::Secp256k1;
use bitcoin::transaction::Version;
use bitcoin::{
    Amount, Block, BlockHash, CompactTarget, Network, OutPoint, ScriptBuf, Sequence, Transaction,
    TxIn, TxMerkleNode, TxOut, Txid, Witness,
};

use super::index::{Coin, WalletIndex};
use super::keychain::Keychain;
use super::scripthash::ScriptHash;
use super::store::{self, IndexFileError};
use crate::chain::merkle;

pub(super) const GAP: u32 = 5;

pub(super) fn tpub() -> Xpub {
    let secp = Secp256k1::new();
    let master = Xpriv::new_master(Network::Regtest, &[7u8; 32]).unwrap();
    let path: DerivationPath = "m/84h/1h/0h".parse().unwrap();
    Xpub::from_priv(&secp, &master.derive_priv(&secp, &path).unwrap())
}

pub(super) fn receive() -> Keychain {
    Keychain::parse(&format!("wpkh({}/0/*)", tpub()), Network::Regtest)
        .unwrap()
        .remove(0)
}

/// The confirmed and unconfirmed value of `wallet`'s coins (outputs
/// spent by an unconfirmed transaction left out).
pub(super) fn wallet_balance(index: &WalletIndex, wallet: &str) -> (Amount, Amount) {
    let mut total = (Amount::ZERO, Amount::ZERO);
    for (at, t) in index.keychains().iter().enumerate() {
        if t.wallet != wallet {
            continue;
        }
        for script in index.scripts_of(at) {
            for coin in index.coins(&ScriptHash::of(&script)).unwrap_or_default() {
                if coin.height > 0 {
                    total.0 += coin.value;
                } else {
                    total.1 += coin.value;
                }
            }
        }
    }
    total
}

pub(super) fn index() -> WalletIndex {
    let mut index = WalletIndex::new();
    index.track(receive(), "main", GAP, 100);
    index
}

pub(super) fn script(i: u32) -> ScriptBuf {
    receive().script_at(i).unwrap()
}

pub(super) fn sh(i: u32) -> ScriptHash {
    ScriptHash::of(&script(i))
}

/// A transaction spending `from` and paying `outputs`.
pub(super) fn tx(from: OutPoint, outputs: &[(ScriptBuf, u64)]) -> Transaction {
    Transaction {
        version: Version::TWO,
        lock_time: LockTime::ZERO,
        input: vec![TxIn {
            previous_output: from,
            script_sig: ScriptBuf::new(),
            sequence: Sequence::MAX,
            witness: Witness::from_slice(&[vec![0x51]]),
        }],
        output: outputs
            .iter()
            .map(|(s, v)| TxOut {
                value: Amount::from_sat(*v),
                script_pubkey: s.clone(),
            })
            .collect(),
    }
}

/// An outpoint of nobody's.
pub(super) fn foreign(n: u8) -> OutPoint {
    OutPoint::new(Txid::from_byte_array([n; 32]), 0)
}

pub(super) fn stranger() -> ScriptBuf {
    ScriptBuf::new_p2wsh(&bitcoin::WScriptHash::from_byte_array([9; 32]))
}

/// A block at `height` (on branch `fork`) holding a coinbase and `txs`.
pub(super) fn block(height: u32, fork: u8, txs: &[Transaction]) -> Block {
    let mut coinbase = tx(OutPoint::null(), &[(stranger(), 50)]);
    coinbase.lock_time = LockTime::from_height(height).unwrap();
    coinbase.input[0].script_sig = ScriptBuf::from_bytes(vec![fork, 1, 2]);
    let mut txdata = vec![coinbase];
    txdata.extend_from_slice(txs);
    let mut b = Block {
        header: Header {
            version: BlockVersion::TWO,
            prev_blockhash: BlockHash::all_zeros(),
            merkle_root: TxMerkleNode::all_zeros(),
            time: 1_700_000_000 + height,
            bits: CompactTarget::from_consensus(0x207f_ffff),
            nonce: u32::from(fork),
        },
        txdata,
    };
    b.header.merkle_root = b.compute_merkle_root().unwrap();
    b
}

fn history_ids(index: &WalletIndex, script: &ScriptHash) -> Vec<(Txid, i32)> {
    index
        .history(script)
        .unwrap()
        .into_iter()
        .map(|h| (h.txid, h.height))
        .collect()
}

#[test]
fn a_payment_and_its_spend_make_history_coins_and_proofs() {
    let mut index = index();
    let pay = tx(foreign(1), &[(script(0), 70_000), (stranger(), 5)]);
    let b1 = block(101, 0, std::slice::from_ref(&pay));
    let c = index.apply_block(101, &b1);
    assert_eq!(c.touched, [sh(0)].into());
    assert_eq!(history_ids(&index, &sh(0)), vec![(pay.compute_txid(), 101)]);
    let coins = index.coins(&sh(0)).unwrap();
    assert_eq!(
        coins,
        vec![Coin {
            outpoint: OutPoint::new(pay.compute_txid(), 0),
            value: Amount::from_sat(70_000),
            height: 101
        }]
    );
    // The stored branch proves the block's merkle root.
    let conf = index
        .transaction(&pay.compute_txid())
        .unwrap()
        .confirmed
        .clone()
        .unwrap();
    assert_eq!((conf.height, conf.pos), (101, 1));
    assert_eq!(
        merkle::root_from_branch(pay.compute_txid(), 1, &conf.branch),
        b1.header.merkle_root
    );

    // Spent to index 1 and a stranger: the coin moves.
    let spend = tx(
        OutPoint::new(pay.compute_txid(), 0),
        &[(script(1), 30_000), (stranger(), 39_000)],
    );
    let c = index.apply_block(105, &block(105, 0, std::slice::from_ref(&spend)));
    assert_eq!(c.touched, [sh(0), sh(1)].into());
    assert_eq!(index.coins(&sh(0)).unwrap(), Vec::new());
    assert_eq!(
        history_ids(&index, &sh(0)),
        vec![(pay.compute_txid(), 101), (spend.compute_txid(), 105)]
    );
    assert_eq!(
        wallet_balance(&index, "main"),
        (Amount::from_sat(30_000), Amount::ZERO)
    );
    // Unwatched scripts are not answered as empty.
    assert_eq!(index.history(&ScriptHash::of(&stranger())), None);
    assert_eq!(index.coins(&ScriptHash::of(&stranger())), None);
}

#[test]
fn using_the_last_script_of_the_gap_derives_more_and_says_so() {
    let mut index = index();
    assert_eq!(index.keychains()[0].derived, GAP);
    let c = index.apply_block(
        101,
        &block(101, 0, &[tx(foreign(1), &[(script(GAP - 1), 1_000)])]),
    );
    assert_eq!(c.derived_more, [0].into());
    assert_eq!(index.keychains()[0].derived, 2 * GAP);
    assert!(index.is_watched(&sh(2 * GAP - 1)));
    assert!(!index.is_watched(&sh(2 * GAP)));
    // An index below the last used one moves nothing.
    let c = index.apply_block(
        102,
        &block(102, 0, &[tx(foreign(2), &[(script(0), 1_000)])]),
    );
    assert!(c.derived_more.is_empty());
}

#[test]
fn applying_a_block_again_changes_nothing() {
    let mut index = index();
    let pay = tx(foreign(1), &[(script(0), 70_000)]);
    let spend = tx(OutPoint::new(pay.compute_txid(), 0), &[(script(2), 69_000)]);
    let b1 = block(101, 0, &[pay]);
    let b2 = block(102, 0, &[spend]);
    index.apply_block(101, &b1);
    index.apply_block(102, &b2);
    let before = store::to_bytes(&index);
    index.apply_block(101, &b1);
    index.apply_block(102, &b2);
    assert_eq!(store::to_bytes(&index), before);
    assert_eq!(
        wallet_balance(&index, "main"),
        (Amount::from_sat(69_000), Amount::ZERO)
    );
}

#[test]
fn a_reorg_undoes_the_branch_and_restores_what_it_spent() {
    let mut index = index();
    let pay = tx(foreign(1), &[(script(0), 70_000)]);
    let spend = tx(
        OutPoint::new(pay.compute_txid(), 0),
        &[(stranger(), 69_000)],
    );
    let b1 = block(101, 0, std::slice::from_ref(&pay));
    index.apply_block(101, &b1);
    index.mark_scanned(&[0], 101, b1.block_hash());
    let b2 = block(102, 0, std::slice::from_ref(&spend));
    index.apply_block(102, &b2);
    index.mark_scanned(&[0], 103, block(103, 0, &[]).block_hash());
    assert_eq!(wallet_balance(&index, "main"), (Amount::ZERO, Amount::ZERO));
    assert_eq!(index.anchors().next().unwrap().0, 103);

    let c = index.undo_above(101);
    assert_eq!(c.touched, [sh(0)].into());
    assert_eq!(history_ids(&index, &sh(0)), vec![(pay.compute_txid(), 101)]);
    assert_eq!(
        wallet_balance(&index, "main"),
        (Amount::from_sat(70_000), Amount::ZERO)
    );
    assert_eq!(index.keychains()[0].next_height, 102);
    assert_eq!(
        index.anchors().collect::<Vec<_>>(),
        vec![(101, b1.block_hash())]
    );
    assert!(index.transaction(&spend.compute_txid()).is_none());
}

#[test]
fn own_broadcasts_show_unconfirmed_until_mined_or_dropped() {
    let mut index = index();
    let pay = tx(foreign(1), &[(script(0), 70_000)]);
    index.apply_block(101, &block(101, 0, std::slice::from_ref(&pay)));
    // A broadcast spending the confirmed coin, and a child of it.
    let spend = tx(
        OutPoint::new(pay.compute_txid(), 0),
        &[(script(1), 60_000), (stranger(), 9_000)],
    );
    let child = tx(
        OutPoint::new(spend.compute_txid(), 0),
        &[(script(2), 59_500)],
    );
    assert!(index.add_unconfirmed(&spend).is_some());
    assert!(index.add_unconfirmed(&child).is_some());
    assert_eq!(
        index.add_unconfirmed(&tx(foreign(3), &[(stranger(), 1)])),
        None
    );
    let h = index.history(&sh(1)).unwrap();
    assert_eq!(h.len(), 2);
    assert_eq!((h[0].height, h[0].fee), (0, Some(Amount::from_sat(1_000))));
    assert_eq!((h[1].height, h[1].fee), (-1, Some(Amount::from_sat(500))));
    assert_eq!(index.coins(&sh(0)).unwrap(), Vec::new());
    assert_eq!(
        wallet_balance(&index, "main"),
        (Amount::ZERO, Amount::from_sat(59_500))
    );
    // The protocol's balance: a confirmed coin spent unconfirmed stays
    // confirmed, offset by a negative unconfirmed change; a coin created
    // and spent unconfirmed counts nothing.
    let signed = bitcoin::SignedAmount::from_sat;
    assert_eq!(
        index.balance(&sh(0)),
        Some((Amount::from_sat(70_000), signed(-70_000)))
    );
    assert_eq!(index.balance(&sh(1)), Some((Amount::ZERO, signed(0))));
    assert_eq!(index.balance(&sh(2)), Some((Amount::ZERO, signed(59_500))));
    assert_eq!(index.balance(&ScriptHash::of(&stranger())), None);

    // Mined: confirmed, and its child still unconfirmed (now height 0).
    index.apply_block(102, &block(102, 0, std::slice::from_ref(&spend)));
    let h = index.history(&sh(1)).unwrap();
    assert_eq!((h[0].txid, h[0].height), (spend.compute_txid(), 102));
    assert_eq!((h[1].txid, h[1].height), (child.compute_txid(), 0));

    // The child dropped: gone from every history, the coin back.
    let c = index.remove_unconfirmed(child.compute_txid());
    assert_eq!(c.touched, [sh(1), sh(2)].into());
    assert_eq!(history_ids(&index, &sh(2)), Vec::new());
    assert_eq!(
        wallet_balance(&index, "main"),
        (Amount::from_sat(60_000), Amount::ZERO)
    );
    // A confirmed transaction is never removed as unconfirmed.
    assert!(
        index
            .remove_unconfirmed(spend.compute_txid())
            .touched
            .is_empty()
    );
}

#[test]
fn a_block_spending_a_coin_differently_replaces_the_unconfirmed_spend() {
    let mut index = index();
    let pay = tx(foreign(1), &[(script(0), 70_000)]);
    index.apply_block(101, &block(101, 0, std::slice::from_ref(&pay)));
    let ours = tx(OutPoint::new(pay.compute_txid(), 0), &[(script(1), 60_000)]);
    index.add_unconfirmed(&ours);
    let theirs = tx(
        OutPoint::new(pay.compute_txid(), 0),
        &[(stranger(), 65_000)],
    );
    index.apply_block(102, &block(102, 0, std::slice::from_ref(&theirs)));
    assert!(index.transaction(&ours.compute_txid()).is_none());
    assert_eq!(history_ids(&index, &sh(1)), Vec::new());
    assert_eq!(
        history_ids(&index, &sh(0)),
        vec![(pay.compute_txid(), 101), (theirs.compute_txid(), 102)]
    );
}

#[test]
fn a_later_birthday_keeps_progress_and_an_earlier_one_rescans() {
    let mut index = index();
    index.mark_scanned(&[0], 500, BlockHash::all_zeros());
    index.track(receive(), "main", GAP, 300);
    assert_eq!(index.keychains().len(), 1);
    assert_eq!(index.keychains()[0].next_height, 501);
    index.track(receive(), "main", GAP, 50);
    assert_eq!(
        (
            index.keychains()[0].birthday,
            index.keychains()[0].next_height
        ),
        (50, 50)
    );
}

fn populated() -> WalletIndex {
    let mut index = index();
    let pay = tx(foreign(1), &[(script(GAP - 1), 70_000)]);
    index.apply_block(101, &block(101, 0, std::slice::from_ref(&pay)));
    let spend = tx(OutPoint::new(pay.compute_txid(), 0), &[(script(7), 60_000)]);
    index.apply_block(104, &block(104, 0, std::slice::from_ref(&spend)));
    index.mark_scanned(&[0], 110, block(110, 0, &[]).block_hash());
    let mine = tx(
        OutPoint::new(spend.compute_txid(), 0),
        &[(script(2), 59_000)],
    );
    index.add_unconfirmed(&mine);
    index
}

#[test]
fn the_file_restores_the_same_index() {
    let index = populated();
    let bytes = store::to_bytes(&index);
    let back = store::from_bytes(&bytes, Network::Regtest).unwrap();
    assert_eq!(store::to_bytes(&back), bytes);
    for i in 0..2 * GAP {
        assert_eq!(back.history(&sh(i)), index.history(&sh(i)), "script {i}");
        assert_eq!(back.coins(&sh(i)), index.coins(&sh(i)), "script {i}");
    }
    let k = &back.keychains()[0];
    assert_eq!(
        (k.derived, k.last_used, k.birthday, k.next_height),
        (GAP + 8, Some(7), 100, 111)
    );
}

#[test]
fn a_damaged_or_foreign_file_is_refused_with_the_reason() {
    let bytes = store::to_bytes(&populated());
    // A digit flipped in the body.
    let mut flipped = bytes.clone();
    let at = flipped.len() / 2;
    flipped[at] ^= 0x01;
    assert!(matches!(
        store::from_bytes(&flipped, Network::Regtest),
        Err(IndexFileError::Checksum)
    ));
    // Cut short.
    assert!(matches!(
        store::from_bytes(&bytes[..bytes.len() - 10], Network::Regtest),
        Err(IndexFileError::Checksum)
    ));
    assert!(matches!(
        store::from_bytes(b"", Network::Regtest),
        Err(IndexFileError::NotOurs)
    ));
    assert!(matches!(
        store::from_bytes(b"{\"version\": 1}\n{}", Network::Regtest),
        Err(IndexFileError::NotOurs)
    ));
    let newer = String::from_utf8(bytes.clone()).unwrap().replacen(
        "nightjar-wallet-index 1 ",
        "nightjar-wallet-index 2 ",
        1,
    );
    assert!(matches!(
        store::from_bytes(newer.as_bytes(), Network::Regtest),
        Err(IndexFileError::Version(2))
    ));
    // A regtest key read as mainnet's: the keychain is named.
    let err = store::from_bytes(&bytes, Network::Bitcoin).unwrap_err();
    assert!(matches!(err, IndexFileError::Keychain { .. }), "{err}");
}
