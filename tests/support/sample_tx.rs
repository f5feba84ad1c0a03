//! A transaction that passes nightjar's context-free checks (standard
//! P2WPKH output, no dust, a witness), distinct per `n`: its input and
//! output differ. For private-broadcast tests; nothing spends it.

// `#[path]`-included by several test crates: `pub` is how they reach it.
#![allow(unreachable_pub)]

use bitcoin::absolute::LockTime;
use bitcoin::hashes::Hash;
use bitcoin::transaction::Version;
use bitcoin::{Amount, OutPoint, ScriptBuf, Sequence, Transaction, TxIn, TxOut, Txid, Witness};

/// The `n`-th sample transaction.
pub fn tx(n: u8) -> Transaction {
    Transaction {
        version: Version::TWO,
        lock_time: LockTime::ZERO,
        input: vec![TxIn {
            previous_output: OutPoint::new(Txid::from_byte_array([n; 32]), 0),
            script_sig: ScriptBuf::new(),
            sequence: Sequence::MAX,
            witness: Witness::from_slice(&[vec![0x51]]),
        }],
        output: vec![TxOut {
            value: Amount::from_sat(80_000),
            script_pubkey: ScriptBuf::new_p2wpkh(&bitcoin::WPubkeyHash::from_byte_array([n; 20])),
        }],
    }
}
