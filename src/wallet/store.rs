//! The wallet index on disk (`wallet_index.json` in the chain directory).
//!
//! Everything in it can be found again from the chain, so damage costs a
//! rescan, never a coin: a file that fails its checks is reported, set
//! aside and rebuilt from the wallets' birthdays. The first line carries a
//! format name, its version and the SHA-256 of the JSON after it, so a
//! flipped digit (a height, a value) is caught rather than served to the
//! user's wallet. Written atomically (temp file, fsync, rename).
//!
//! Transactions are stored in chain order (then the unconfirmed, parents
//! first), so that replaying them rebuilds the same coins and spends.

use std::collections::BTreeSet;

use bitcoin::consensus::encode;
use bitcoin::hashes::{Hash, sha256};
use bitcoin::{BlockHash, TxMerkleNode, Txid};
use serde::{Deserialize, Serialize};

use super::index::{Confirmation, Tracked, WalletIndex};
use super::keychain::{Keychain, KeychainError};

/// The file's name in the chain directory.
pub const WALLET_INDEX_FILE: &str = "wallet_index.json";

/// The first word of the file.
const MAGIC: &str = "nightjar-wallet-index";

/// The format's version.
pub const FORMAT_VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    keychains: Vec<StoredKeychain>,
    transactions: Vec<StoredTx>,
    anchors: Vec<(u32, String)>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredKeychain {
    descriptor: String,
    wallet: String,
    gap_limit: u32,
    last_used: Option<u32>,
    birthday: u32,
    next_height: u32,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredTx {
    txid: String,
    hex: String,
    confirmed: Option<StoredConfirmation>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredConfirmation {
    height: u32,
    pos: u32,
    branch: Vec<String>,
}

/// Why a saved index cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum IndexFileError {
    /// The first line is not ours.
    #[error("not a nightjar wallet index (its first line should start with {MAGIC:?})")]
    NotOurs,
    /// Written by another version.
    #[error("format version {0} is not supported (this nightjar reads {FORMAT_VERSION})")]
    Version(u32),
    /// The body does not hash to the checksum (damaged or truncated).
    #[error("its checksum does not match its contents (damaged or cut short)")]
    Checksum,
    /// The body is not the JSON we write.
    #[error("its contents cannot be read: {0}")]
    Format(#[from] serde_json::Error),
    /// A keychain is no longer valid.
    #[error("keychain {descriptor}: {source}")]
    Keychain {
        /// The keychain's descriptor.
        descriptor: String,
        /// Why.
        source: KeychainError,
    },
    /// An entry is damaged.
    #[error("{what}: {why}")]
    Entry {
        /// Which entry.
        what: String,
        /// What is wrong.
        why: String,
    },
}

/// The index as file bytes.
pub fn to_bytes(index: &WalletIndex) -> Vec<u8> {
    let keychains = index
        .keychains()
        .iter()
        .map(|t| StoredKeychain {
            descriptor: t.keychain.descriptor(),
            wallet: t.wallet.clone(),
            gap_limit: t.gap_limit,
            last_used: t.last_used,
            birthday: t.birthday,
            next_height: t.next_height,
        })
        .collect();
    let transactions = chain_order(index)
        .into_iter()
        .filter_map(|txid| index.transaction(&txid).map(|w| (txid, w)))
        .map(|(txid, w)| StoredTx {
            txid: txid.to_string(),
            hex: encode::serialize_hex(&w.tx),
            confirmed: w.confirmed.as_ref().map(|c| StoredConfirmation {
                height: c.height,
                pos: c.pos,
                branch: c.branch.iter().map(ToString::to_string).collect(),
            }),
        })
        .collect();
    let anchors = index.anchors().map(|(h, b)| (h, b.to_string())).collect();
    let file = File {
        keychains,
        transactions,
        anchors,
    };
    let body = serde_json::to_vec_pretty(&file).unwrap_or_default();
    let mut bytes =
        format!("{MAGIC} {FORMAT_VERSION} {}\n", sha256::Hash::hash(&body)).into_bytes();
    bytes.extend_from_slice(&body);
    bytes
}

/// Confirmed transactions by (height, position), then unconfirmed ones
/// with every parent before its children.
fn chain_order(index: &WalletIndex) -> Vec<Txid> {
    let mut confirmed: Vec<((u32, u32), Txid)> = Vec::new();
    let mut unconfirmed: Vec<Txid> = Vec::new();
    for w in index.transactions() {
        let txid = w.tx.compute_txid();
        match &w.confirmed {
            Some(c) => confirmed.push(((c.height, c.pos), txid)),
            None => unconfirmed.push(txid),
        }
    }
    confirmed.sort();
    let mut order: Vec<Txid> = confirmed.into_iter().map(|(_, t)| t).collect();
    let mut placed: BTreeSet<Txid> = order.iter().copied().collect();
    // Unconfirmed chains are short (the user's own broadcasts): place
    // those whose wallet parents are placed until none is left.
    while !unconfirmed.is_empty() {
        let before = unconfirmed.len();
        unconfirmed.retain(|txid| {
            let ready = index.transaction(txid).is_none_or(|w| {
                w.tx.input.iter().all(|i| {
                    index.transaction(&i.previous_output.txid).is_none()
                        || placed.contains(&i.previous_output.txid)
                })
            });
            if ready {
                order.push(*txid);
                placed.insert(*txid);
            }
            !ready
        });
        if unconfirmed.len() == before {
            // A cycle cannot happen between valid transactions; keep the
            // rest rather than lose them.
            order.append(&mut unconfirmed);
        }
    }
    order
}

/// An index from file bytes, checked throughout: the checksum, every
/// keychain, every transaction's bytes against its txid, and every
/// confirmed one's merkle branch length.
pub fn from_bytes(bytes: &[u8], network: bitcoin::Network) -> Result<WalletIndex, IndexFileError> {
    let newline = bytes
        .iter()
        .position(|b| *b == b'\n')
        .ok_or(IndexFileError::NotOurs)?;
    let first = std::str::from_utf8(&bytes[..newline]).map_err(|_| IndexFileError::NotOurs)?;
    let body = &bytes[newline + 1..];
    let mut words = first.split(' ');
    if words.next() != Some(MAGIC) {
        return Err(IndexFileError::NotOurs);
    }
    let version: u32 = words
        .next()
        .and_then(|v| v.parse().ok())
        .ok_or(IndexFileError::NotOurs)?;
    if version != FORMAT_VERSION {
        return Err(IndexFileError::Version(version));
    }
    let sum = words.next().ok_or(IndexFileError::NotOurs)?;
    if sha256::Hash::hash(body).to_string() != sum {
        return Err(IndexFileError::Checksum);
    }
    let file: File = serde_json::from_slice(body)?;
    let mut index = WalletIndex::new();
    for k in file.keychains {
        let bad = |source| IndexFileError::Keychain {
            descriptor: k.descriptor.clone(),
            source,
        };
        let mut parsed = Keychain::parse(&k.descriptor, network).map_err(bad)?;
        if parsed.len() != 1 {
            return Err(IndexFileError::Entry {
                what: format!("keychain {}", k.descriptor),
                why: "it is not a single keychain".to_owned(),
            });
        }
        let keychain = parsed.remove(0);
        index.restore_keychain(Tracked {
            keychain,
            wallet: k.wallet,
            gap_limit: k.gap_limit,
            derived: 0,
            last_used: k.last_used,
            birthday: k.birthday,
            next_height: k.next_height,
        });
    }
    for (i, t) in file.transactions.into_iter().enumerate() {
        let bad = |why: String| IndexFileError::Entry {
            what: format!("transaction {i}"),
            why,
        };
        let tx: bitcoin::Transaction =
            encode::deserialize_hex(&t.hex).map_err(|e| bad(format!("bad bytes: {e}")))?;
        if tx.compute_txid().to_string() != t.txid {
            return Err(bad(format!("its bytes do not hash to its txid {}", t.txid)));
        }
        let confirmed = t
            .confirmed
            .map(|c| {
                let branch = c
                    .branch
                    .iter()
                    .map(|h| h.parse::<TxMerkleNode>())
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| bad(format!("bad merkle branch: {e}")))?;
                Ok::<_, IndexFileError>(Confirmation {
                    height: c.height,
                    pos: c.pos,
                    branch,
                })
            })
            .transpose()?;
        index.restore_tx(tx, confirmed);
    }
    for (height, hash) in file.anchors {
        let hash: BlockHash = hash.parse().map_err(|e| IndexFileError::Entry {
            what: format!("anchor at height {height}"),
            why: format!("bad block hash: {e}"),
        })?;
        index.restore_anchor(height, hash);
    }
    Ok(index)
}
