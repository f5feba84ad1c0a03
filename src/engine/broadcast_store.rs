//! The private-broadcast queue's file format: the pending transactions and
//! what was done for them, nothing else (no peer, no circuit, nothing
//! about transactions already seen).
//!
//! JSON, so that a user can read what waits. Each entry carries the
//! transaction's bytes and its txid; on load the txid is computed again
//! from the bytes, so a damaged entry is caught instead of broadcasting
//! something the user never submitted. The driver writes it atomically
//! (see [`crate::atomic_file`]) before `sendrawtransaction` answers.

use bitcoin::consensus::encode;
use serde::{Deserialize, Serialize};

use super::private_broadcast::{Pending, Receipt};
use crate::netaddr::NetworkId;

/// The format's version.
pub const FORMAT_VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    version: u32,
    transactions: Vec<Entry>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    txid: String,
    hex: String,
    added: u64,
    attempts: u32,
    receipts: Vec<StoredReceipt>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredReceipt {
    network: String,
    sent: u64,
    received: u64,
}

/// Why a queue file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Not the JSON we write (truncated, say).
    #[error("not a private broadcast queue: {0}")]
    Format(#[from] serde_json::Error),
    /// Written by another version.
    #[error("format version {0} is not supported (this nightjar reads {FORMAT_VERSION})")]
    Version(u32),
    /// An entry is damaged.
    #[error("transaction {index}: {why}")]
    Entry {
        /// Its position in the file.
        index: usize,
        /// What is wrong.
        why: String,
    },
}

/// The queue as bytes.
pub fn to_bytes<'a>(pending: impl Iterator<Item = &'a Pending>) -> Vec<u8> {
    let file = File {
        version: FORMAT_VERSION,
        transactions: pending
            .map(|p| Entry {
                txid: p.txid.to_string(),
                hex: encode::serialize_hex(&p.tx),
                added: p.added_unix,
                attempts: p.attempts,
                receipts: p
                    .receipts
                    .iter()
                    .map(|r| StoredReceipt {
                        network: r.network.as_str().to_owned(),
                        sent: r.sent,
                        received: r.received,
                    })
                    .collect(),
            })
            .collect(),
    };
    let mut bytes = serde_json::to_vec_pretty(&file).unwrap_or_default();
    bytes.push(b'\n');
    bytes
}

/// The queue from bytes; any damage is an error (nothing is guessed).
pub fn from_bytes(bytes: &[u8]) -> Result<Vec<Pending>, StoreError> {
    let file: File = serde_json::from_slice(bytes)?;
    if file.version != FORMAT_VERSION {
        return Err(StoreError::Version(file.version));
    }
    file.transactions
        .into_iter()
        .enumerate()
        .map(|(index, e)| {
            let bad = |why: String| StoreError::Entry { index, why };
            let tx: bitcoin::Transaction =
                encode::deserialize_hex(&e.hex).map_err(|err| bad(format!("bad bytes: {err}")))?;
            if tx.compute_txid().to_string() != e.txid {
                return Err(bad(format!("its bytes do not hash to its txid {}", e.txid)));
            }
            let receipts = e
                .receipts
                .iter()
                .map(|r| {
                    let network: NetworkId = r
                        .network
                        .parse()
                        .map_err(|_| bad(format!("unknown network {:?}", r.network)))?;
                    Ok::<_, StoreError>(Receipt {
                        network,
                        sent: r.sent,
                        received: r.received,
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Pending::new(tx, e.added, e.attempts, receipts))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::absolute::LockTime;
    use bitcoin::hashes::Hash;
    use bitcoin::transaction::Version;
    use bitcoin::{Amount, OutPoint, ScriptBuf, Sequence, TxIn, TxOut, Witness};

    fn tx(n: u8) -> bitcoin::Transaction {
        bitcoin::Transaction {
            version: Version::TWO,
            lock_time: LockTime::ZERO,
            input: vec![TxIn {
                previous_output: OutPoint::new(bitcoin::Txid::from_byte_array([n; 32]), 0),
                script_sig: ScriptBuf::new(),
                sequence: Sequence::MAX,
                witness: Witness::from_slice(&[vec![0x51]]),
            }],
            output: vec![TxOut {
                value: Amount::from_sat(5_000),
                script_pubkey: ScriptBuf::new_op_return([n; 8]),
            }],
        }
    }

    #[test]
    fn round_trips_transactions_attempts_and_receipts() {
        let mut a = Pending::new(tx(1), 1_700_000_000, 4, Vec::new());
        a.receipts.push(Receipt {
            network: NetworkId::Onion,
            sent: 1_700_000_090,
            received: 1_700_000_100,
        });
        let b = Pending::new(tx(2), 1_700_000_050, 0, Vec::new());
        let bytes = to_bytes([&a, &b].into_iter());
        let back = from_bytes(&bytes).unwrap();
        assert_eq!(back.len(), 2);
        assert_eq!(back[0].tx, a.tx);
        assert_eq!(back[0].attempts, 4);
        assert_eq!(back[0].receipts, a.receipts);
        assert_eq!(back[1].wtxid, b.wtxid);
    }

    #[test]
    fn truncation_and_damage_are_errors() {
        let a = Pending::new(tx(1), 1, 0, Vec::new());
        let bytes = to_bytes([&a].into_iter());
        for cut in [1, bytes.len() / 2, bytes.len() - 3] {
            assert!(
                matches!(from_bytes(&bytes[..cut]), Err(StoreError::Format(_))),
                "cut at {cut}"
            );
        }
        // One hex digit of the transaction changed: it no longer hashes to
        // the stored txid.
        let text = String::from_utf8(bytes).unwrap();
        let hex = encode::serialize_hex(&a.tx);
        let mut damaged_hex = hex.clone().into_bytes();
        let last = damaged_hex.len() - 1;
        damaged_hex[last] = if damaged_hex[last] == b'0' {
            b'1'
        } else {
            b'0'
        };
        let damaged = text.replace(&hex, std::str::from_utf8(&damaged_hex).unwrap());
        assert!(matches!(
            from_bytes(damaged.as_bytes()),
            Err(StoreError::Entry { index: 0, .. })
        ));
        let future = text.replace("\"version\": 1", "\"version\": 9");
        assert!(matches!(
            from_bytes(future.as_bytes()),
            Err(StoreError::Version(9))
        ));
    }
}
