//! A script hash's *status*: the digest a client compares with its own
//! copy of the history to learn whether it must fetch it again.
//!
//! The protocol defines it as the SHA-256 of the concatenation of
//! `"{tx_hash}:{height}:"` over the history, hex, or `null` for an empty
//! history. A client recomputes it from the `get_history` answer and
//! refuses a mismatch, so the history is put in one canonical order
//! ([`canonical_order`]) used for both.

use bitcoin::Txid;
use bitcoin::hashes::{Hash, HashEngine, sha256};

use super::backend::HistoryEntry;

/// Puts a history in the order the protocol specifies: confirmed entries
/// by height (keeping the backend's order within a block, which is the
/// position in the block), then unconfirmed ones, those with every input
/// confirmed (height 0) before those with an unconfirmed parent (-1),
/// each group ordered by txid as displayed. Sorting here rather than
/// trusting the backend keeps the unconfirmed order stable from one call
/// to the next, which the status needs.
pub(crate) fn canonical_order(mut history: Vec<HistoryEntry>) -> Vec<HistoryEntry> {
    history.sort_by_key(|e| {
        if e.height > 0 {
            (0u8, e.height, [0u8; 32])
        } else {
            (1, -e.height, display_order(e.txid))
        }
    });
    history
}

/// The txid's bytes in the order its hex is shown, so that comparing them
/// compares the hex strings.
fn display_order(txid: Txid) -> [u8; 32] {
    let mut bytes = txid.to_byte_array();
    bytes.reverse();
    bytes
}

/// The status of a history already in [`canonical_order`]: hex SHA-256,
/// or `None` when the history is empty.
pub(crate) fn status(history: &[HistoryEntry]) -> Option<String> {
    if history.is_empty() {
        return None;
    }
    let mut engine = sha256::Hash::engine();
    for entry in history {
        engine.input(format!("{}:{}:", entry.txid, entry.height).as_bytes());
    }
    // SHA-256 displays in its own byte order (unlike txids): plain hex.
    Some(sha256::Hash::from_engine(engine).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(txid: &str, height: i32) -> HistoryEntry {
        HistoryEntry {
            txid: txid.parse().unwrap(),
            height,
            fee: None,
        }
    }

    const A: &str = "a6c9c361bd0bc536d6a22648efbf8f9b200e425ef6c3a7a9669dc444c532a347";
    const B: &str = "9c42f84b2fcdaff676ba25d9d4941741cc0d1a01cce0c23fdc4c0b2afa38431c";
    const C: &str = "770f2d4371b3fabb902dd9a103e2dd005fcd3971181078fca4a2a1d6ff127b30";
    const D: &str = "80b19848aed792565ab7c5a79b7c2a00fbf985741579396ebe0ab6098e607311";
    const E: &str = "e02a1dadfa83b996b24175df807b271ea5d02937ef5b35c195fac1e1bdc3198f";
    const F: &str = "bb4c8ab438c13b89ca80d1d5bee25b0b6b7f55673f4d801998ba97db161d9e85";

    #[test]
    fn empty_history_has_no_status() {
        assert_eq!(status(&[]), None);
    }

    #[test]
    fn one_entry_hashes_its_text() {
        // sha256("a6c9…a347:2472:"), computed separately with Python's hashlib.
        assert_eq!(
            status(&[entry(A, 2472)]).as_deref(),
            Some("513031467e85abc1151e86a73c9f8987daefc0a0494e239df1ea8d3c8ac7800a")
        );
    }

    #[test]
    fn matches_the_protocol_docs_example() {
        // The Electrum protocol docs' regtest example (basics, "Status"),
        // handed over shuffled: the order must come from canonical_order.
        let shuffled = vec![
            entry(F, -1),
            entry(A, 2472),
            entry(E, 0),
            entry(B, 2473),
            entry(D, 0),
            entry(C, 2473),
        ];
        let ordered = canonical_order(shuffled);
        let txids: Vec<String> = ordered.iter().map(|e| e.txid.to_string()).collect();
        assert_eq!(txids, [A, B, C, D, E, F]);
        assert_eq!(
            status(&ordered).as_deref(),
            Some("78e96c6562cafa71c115503b9411fdfdc595a45031e2ab76ff75162fe1b0590d")
        );
    }

    #[test]
    fn the_order_within_a_block_is_kept() {
        let ordered = canonical_order(vec![entry(C, 7), entry(B, 7), entry(A, 3)]);
        let heights_and_ids: Vec<(i32, String)> = ordered
            .iter()
            .map(|e| (e.height, e.txid.to_string()))
            .collect();
        assert_eq!(
            heights_and_ids,
            [(3, A.to_string()), (7, C.to_string()), (7, B.to_string())]
        );
    }
}
