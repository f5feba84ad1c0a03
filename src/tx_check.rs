//! What can be checked about a transaction without a UTXO set, before it is
//! sent by private broadcast.
//!
//! nightjar keeps no coins database, so fees, the inputs' existence and
//! their scripts are left to the receiving peers. What needs none of that
//! is checked here, the way Bitcoin Core 31 checks it, with Core's reject
//! reasons so that a user reading the error can look it up:
//!
//! - decoding ([`decode_tx_hex`]): hex, the whole string one transaction,
//!   no trailing bytes (`sendrawtransaction`'s `TX decode failed`);
//! - Core's consensus `CheckTransaction`: inputs and outputs present, size,
//!   amounts, no input spent twice, coinbase shape, no null prevouts;
//! - Core's policy (`IsStandardTx` and the `PreChecks` that need no
//!   UTXO): not a coinbase, version, weight, minimum size, `scriptSig`
//!   size and push-only, standard output types, dust;
//! - witness shape: what Core's `IsWitnessStandard` bounds whatever the
//!   spent output is;
//! - `maxburnamount`, as `sendrawtransaction` checks it.
//!
//! Deliberately not checked, since each needs the spent outputs: fees and
//! fee rates (`maxfeerate` included), that inputs exist and are unspent,
//! scripts and signatures, `nLockTime`/`nSequence` finality against the
//! chain, the per-type witness limits (P2WSH stack items, tapscript sizes),
//! sigop counts, and package or replacement rules.

use bitcoin::consensus::encode;
use bitcoin::script::Instruction;
use bitcoin::{Amount, FeeRate, OutPoint, Script, Transaction};

/// Core's `MAX_BLOCK_WEIGHT`.
pub const MAX_BLOCK_WEIGHT: u64 = 4_000_000;

/// Core's `WITNESS_SCALE_FACTOR`.
pub const WITNESS_SCALE_FACTOR: u64 = 4;

/// Core's `MAX_STANDARD_TX_WEIGHT`.
pub const MAX_STANDARD_TX_WEIGHT: u64 = 400_000;

/// Core's `MIN_STANDARD_TX_NONWITNESS_SIZE`: smaller transactions could
/// be confused with 64-byte Merkle tree nodes.
pub const MIN_STANDARD_TX_NONWITNESS_SIZE: usize = 65;

/// Core's `MAX_STANDARD_SCRIPTSIG_SIZE`.
pub const MAX_STANDARD_SCRIPTSIG_SIZE: usize = 1650;

/// Core's `TX_MAX_STANDARD_VERSION` (version 3 is TRUC, BIP431).
pub const TX_MAX_STANDARD_VERSION: i32 = 3;

/// Core's `DUST_RELAY_TX_FEE`, in sat/kvB.
pub const DUST_RELAY_FEE_SAT_PER_KVB: u64 = 3_000;

/// Core's `MAX_DUST_OUTPUTS_PER_TX`: one dust output may pay for a child
/// (ephemeral dust), and only in a zero-fee transaction, which the
/// receiving peers check.
pub const MAX_DUST_OUTPUTS_PER_TX: usize = 1;

/// Core's `MAX_STANDARD_P2WSH_STACK_ITEMS` plus the witness script: the
/// most items any standard witness has whatever it spends (a tapscript
/// spend has at most as many, being bounded by the same stack limit of
/// Core's script interpreter, `MAX_STACK_SIZE`, at 1000; we keep the
/// tighter P2WSH figure plus the script and a control block).
pub const MAX_STANDARD_WITNESS_ITEMS: usize = 100 + 2;

/// Core's `MAX_SCRIPT_SIZE`: a script this long is unspendable.
pub const MAX_SCRIPT_SIZE: usize = 10_000;

/// Bare multisig is standard up to 3 keys (Core's `-permitbaremultisig`,
/// on by default). `OP_RETURN` outputs have no size limit of their own
/// since Core 30, only the transaction's weight.
pub const MAX_BARE_MULTISIG_KEYS: usize = 3;

/// A transaction that could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Not hex, or an odd number of digits.
    #[error("not hex")]
    NotHex,
    /// Hex, but not one whole transaction.
    #[error("not a transaction: {0}")]
    NotATransaction(String),
}

/// Decode `hex` as one transaction (with or without witness data), all of
/// it. A segwit marker with every witness empty is refused, as Core does
/// ("superfluous witness record"); the `bitcoin` crate's decoder refuses
/// it too, and trailing bytes.
pub fn decode_tx_hex(hex: &str) -> Result<Transaction, DecodeError> {
    let hex = hex.trim();
    let bytes: Vec<u8> = bitcoin::hex::FromHex::from_hex(hex).map_err(|_| DecodeError::NotHex)?;
    let tx: Transaction =
        encode::deserialize(&bytes).map_err(|e| DecodeError::NotATransaction(e.to_string()))?;
    // Re-encoding must give back the very bytes: a decoder that accepted a
    // non-canonical form (a superfluous witness flag, say) would otherwise
    // let us broadcast something other than what the user sent.
    if encode::serialize(&tx) != bytes {
        return Err(DecodeError::NotATransaction(
            "not in canonical serialization".into(),
        ));
    }
    Ok(tx)
}

/// Why a transaction is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    reason: &'static str,
    burn: bool,
}

impl Rejection {
    fn policy(reason: &'static str) -> Self {
        Rejection {
            reason,
            burn: false,
        }
    }

    /// Core's reject reason (`bad-txns-vin-empty`, `dust`, ...).
    pub fn reason(&self) -> &'static str {
        self.reason
    }

    /// Core's RPC error code: -25 (`RPC_TRANSACTION_ERROR`) for
    /// `maxburnamount`, -26 (`RPC_TRANSACTION_REJECTED`) for the rules.
    pub fn rpc_code(&self) -> i64 {
        if self.burn { -25 } else { -26 }
    }
}

impl std::fmt::Display for Rejection {
    /// Core's message: the reason itself, or its `maxburnamount` sentence.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.burn {
            f.write_str("Unspendable output exceeds maximum configured by user (maxburnamount)")
        } else {
            f.write_str(self.reason)
        }
    }
}

impl std::error::Error for Rejection {}

/// Every check of this module, in Core's order: `maxburnamount` (which
/// `sendrawtransaction` checks first), consensus, then policy.
pub fn check_for_broadcast(tx: &Transaction, max_burn: Amount) -> Result<(), Rejection> {
    check_burn(tx, max_burn)?;
    check_transaction(tx)?;
    check_standard(tx)?;
    check_witness_shape(tx)
}

/// `sendrawtransaction`'s `maxburnamount`: any provably unspendable output
/// (`OP_RETURN`, an invalid opcode, an oversized script) worth more.
fn check_burn(tx: &Transaction, max_burn: Amount) -> Result<(), Rejection> {
    let burns = tx.output.iter().any(|o| {
        let s = &o.script_pubkey;
        (s.is_op_return() || s.len() > MAX_SCRIPT_SIZE || !has_valid_ops(s)) && o.value > max_burn
    });
    if burns {
        return Err(Rejection {
            reason: "max-burn-exceeded",
            burn: true,
        });
    }
    Ok(())
}

/// Whether every opcode of `script` parses and is defined (Core's
/// `HasValidOps`).
fn has_valid_ops(script: &Script) -> bool {
    script.instructions().all(|i| match i {
        Ok(Instruction::Op(op)) => op.to_u8() <= 0xb9,
        Ok(Instruction::PushBytes(_)) => true,
        Err(_) => false,
    })
}

/// Core's consensus `CheckTransaction`.
fn check_transaction(tx: &Transaction) -> Result<(), Rejection> {
    if tx.input.is_empty() {
        return Err(Rejection::policy("bad-txns-vin-empty"));
    }
    if tx.output.is_empty() {
        return Err(Rejection::policy("bad-txns-vout-empty"));
    }
    let stripped = tx.base_size() as u64;
    if stripped * WITNESS_SCALE_FACTOR > MAX_BLOCK_WEIGHT {
        return Err(Rejection::policy("bad-txns-oversize"));
    }
    let mut total = Amount::ZERO;
    for o in &tx.output {
        if o.value > Amount::MAX_MONEY {
            return Err(Rejection::policy("bad-txns-vout-toolarge"));
        }
        total = total
            .checked_add(o.value)
            .filter(|t| *t <= Amount::MAX_MONEY)
            .ok_or(Rejection::policy("bad-txns-txouttotal-toolarge"))?;
    }
    let mut spent: Vec<&OutPoint> = tx.input.iter().map(|i| &i.previous_output).collect();
    spent.sort();
    if spent.windows(2).any(|w| w[0] == w[1]) {
        return Err(Rejection::policy("bad-txns-inputs-duplicate"));
    }
    if tx.is_coinbase() {
        let len = tx.input[0].script_sig.len();
        if !(2..=100).contains(&len) {
            return Err(Rejection::policy("bad-cb-length"));
        }
    } else if tx.input.iter().any(|i| i.previous_output.is_null()) {
        return Err(Rejection::policy("bad-txns-prevout-null"));
    }
    Ok(())
}

/// Core's policy checks that need no UTXO.
fn check_standard(tx: &Transaction) -> Result<(), Rejection> {
    if tx.is_coinbase() {
        return Err(Rejection::policy("coinbase"));
    }
    if !(1..=TX_MAX_STANDARD_VERSION).contains(&tx.version.0) {
        return Err(Rejection::policy("version"));
    }
    if tx.weight().to_wu() > MAX_STANDARD_TX_WEIGHT {
        return Err(Rejection::policy("tx-size"));
    }
    if tx.base_size() < MIN_STANDARD_TX_NONWITNESS_SIZE {
        return Err(Rejection::policy("tx-size-small"));
    }
    for input in &tx.input {
        if input.script_sig.len() > MAX_STANDARD_SCRIPTSIG_SIZE {
            return Err(Rejection::policy("scriptsig-size"));
        }
        if !input.script_sig.is_push_only() {
            return Err(Rejection::policy("scriptsig-not-pushonly"));
        }
    }
    let dust_rate = FeeRate::from_sat_per_kwu(DUST_RELAY_FEE_SAT_PER_KVB / 4);
    let mut dust = 0;
    for o in &tx.output {
        let s = &o.script_pubkey;
        if !is_standard_output(s) {
            return Err(Rejection::policy("scriptpubkey"));
        }
        if !s.is_op_return() && o.value < s.minimal_non_dust_custom(dust_rate) {
            dust += 1;
        }
    }
    if dust > MAX_DUST_OUTPUTS_PER_TX {
        return Err(Rejection::policy("dust"));
    }
    Ok(())
}

/// Core's `IsStandard` on an output script, with its defaults: P2PK,
/// P2PKH, P2SH, segwit v0, taproot, pay-to-anchor, `OP_RETURN`, future
/// witness versions and small bare multisig.
fn is_standard_output(s: &Script) -> bool {
    s.is_p2pk()
        || s.is_p2pkh()
        || s.is_p2sh()
        || s.is_p2wpkh()
        || s.is_p2wsh()
        || s.is_p2tr()
        || is_pay_to_anchor(s)
        || s.is_op_return()
        || is_future_witness(s)
        || is_small_bare_multisig(s)
}

/// BIP-less pay-to-anchor (`OP_1 <0x4e73>`), standard since Core 28.
fn is_pay_to_anchor(s: &Script) -> bool {
    s.as_bytes() == [0x51, 0x02, 0x4e, 0x73]
}

/// A witness program of a version Core does not know yet (2 to 16, or
/// version 1 of another length than taproot's): standard to pay to, so
/// that soft forks can use it.
fn is_future_witness(s: &Script) -> bool {
    s.witness_version()
        .is_some_and(|v| v.to_num() >= 1 && !s.is_p2tr() && !is_pay_to_anchor(s))
}

/// Bare `m-of-n` multisig with `n` at most 3 (Core's `-permitbaremultisig`
/// default) and compressed or uncompressed keys.
fn is_small_bare_multisig(s: &Script) -> bool {
    let ops: Vec<Instruction<'_>> = match s.instructions().collect::<Result<_, _>>() {
        Ok(ops) => ops,
        Err(_) => return false,
    };
    let small = |i: &Instruction<'_>| match i {
        Instruction::Op(op) => {
            let n = op.to_u8();
            (0x51..=0x60).contains(&n).then(|| usize::from(n - 0x50))
        }
        Instruction::PushBytes(_) => None,
    };
    let [first, keys @ .., last_n, checkmultisig] = ops.as_slice() else {
        return false;
    };
    let (Some(m), Some(n)) = (small(first), small(last_n)) else {
        return false;
    };
    let is_checkmultisig = matches!(checkmultisig, Instruction::Op(op) if op.to_u8() == 0xae);
    let keys_ok = keys
        .iter()
        .all(|k| matches!(k, Instruction::PushBytes(b) if b.len() == 33 || b.len() == 65));
    is_checkmultisig
        && keys_ok
        && keys.len() == n
        && m <= n
        && (1..=MAX_BARE_MULTISIG_KEYS).contains(&n)
}

/// What Core's witness rules bound whatever the spent output is: at most
/// [`MAX_STANDARD_WITNESS_ITEMS`] items per input. (Its total size is
/// bounded by the weight check; a witness next to inputs without one is
/// fine, since legacy inputs spend non-witness outputs.)
fn check_witness_shape(tx: &Transaction) -> Result<(), Rejection> {
    let too_many = tx
        .input
        .iter()
        .any(|i| i.witness.len() > MAX_STANDARD_WITNESS_ITEMS);
    if too_many {
        return Err(Rejection::policy("bad-witness-nonstandard"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::absolute::LockTime;
    use bitcoin::hashes::Hash;
    use bitcoin::transaction::Version;
    use bitcoin::{ScriptBuf, Sequence, TxIn, TxOut, Txid, WPubkeyHash, Witness};

    fn input(n: u8) -> TxIn {
        TxIn {
            previous_output: OutPoint::new(Txid::from_byte_array([n; 32]), 0),
            script_sig: ScriptBuf::new(),
            sequence: Sequence::MAX,
            witness: Witness::from_slice(&[vec![0x51]]),
        }
    }

    fn pay(value: u64, script: ScriptBuf) -> TxOut {
        TxOut {
            value: Amount::from_sat(value),
            script_pubkey: script,
        }
    }

    fn p2wpkh() -> ScriptBuf {
        ScriptBuf::new_p2wpkh(&WPubkeyHash::from_byte_array([7; 20]))
    }

    fn good() -> Transaction {
        Transaction {
            version: Version::TWO,
            lock_time: LockTime::ZERO,
            input: vec![input(1)],
            output: vec![pay(50_000, p2wpkh())],
        }
    }

    fn reason(tx: &Transaction) -> &'static str {
        check_for_broadcast(tx, Amount::ZERO).unwrap_err().reason()
    }

    #[test]
    fn a_plain_segwit_spend_passes_and_round_trips() {
        let mut tx = good();
        tx.output.push(pay(0, ScriptBuf::new_op_return([1u8; 40])));
        tx.output.push(pay(
            240,
            ScriptBuf::from_bytes(vec![0x51, 0x02, 0x4e, 0x73]),
        ));
        check_for_broadcast(&tx, Amount::ZERO).unwrap();
        let hex = encode::serialize_hex(&tx);
        assert_eq!(decode_tx_hex(&hex).unwrap(), tx);
    }

    #[test]
    fn decoding_refuses_bad_hex_trailing_and_truncated_bytes() {
        let hex = encode::serialize_hex(&good());
        assert_eq!(decode_tx_hex("zz"), Err(DecodeError::NotHex));
        assert_eq!(decode_tx_hex("abc"), Err(DecodeError::NotHex));
        assert!(matches!(
            decode_tx_hex(&format!("{hex}00")),
            Err(DecodeError::NotATransaction(_))
        ));
        assert!(matches!(
            decode_tx_hex(&hex[..hex.len() - 2]),
            Err(DecodeError::NotATransaction(_))
        ));
        // The segwit marker with every witness empty.
        let mut legacy = good();
        legacy.input[0].witness = Witness::new();
        let bare = encode::serialize_hex(&legacy);
        let flagged = format!(
            "{}0001{}00{}",
            &bare[..8],
            &bare[8..bare.len() - 8],
            &bare[bare.len() - 8..]
        );
        assert!(
            decode_tx_hex(&flagged).is_err(),
            "superfluous witness record"
        );
    }

    #[test]
    fn consensus_rules_have_cores_reasons() {
        let mut tx = good();
        tx.input.clear();
        assert_eq!(reason(&tx), "bad-txns-vin-empty");
        let mut tx = good();
        tx.output.clear();
        assert_eq!(reason(&tx), "bad-txns-vout-empty");
        let mut tx = good();
        tx.output[0].value = Amount::MAX_MONEY + Amount::from_sat(1);
        assert_eq!(reason(&tx), "bad-txns-vout-toolarge");
        let mut tx = good();
        tx.output = vec![
            pay(Amount::MAX_MONEY.to_sat(), p2wpkh()),
            pay(1_000, p2wpkh()),
        ];
        assert_eq!(reason(&tx), "bad-txns-txouttotal-toolarge");
        let mut tx = good();
        tx.input.push(input(1));
        assert_eq!(reason(&tx), "bad-txns-inputs-duplicate");
        let mut tx = good();
        tx.input.push(TxIn {
            previous_output: OutPoint::null(),
            ..input(0)
        });
        assert_eq!(reason(&tx), "bad-txns-prevout-null");
        let mut tx = good();
        tx.input = vec![TxIn {
            previous_output: OutPoint::null(),
            script_sig: ScriptBuf::from_bytes(vec![0x51]),
            ..input(0)
        }];
        assert_eq!(reason(&tx), "bad-cb-length");
        tx.input[0].script_sig = ScriptBuf::from_bytes(vec![0x01, 0x51]);
        assert_eq!(reason(&tx), "coinbase");
        let mut tx = good();
        tx.output = vec![pay(0, ScriptBuf::new_op_return([0u8; 75])); 14_000];
        assert_eq!(reason(&tx), "bad-txns-oversize");
    }

    #[test]
    fn policy_rules_have_cores_reasons() {
        let mut tx = good();
        tx.version = Version(4);
        assert_eq!(reason(&tx), "version");
        let mut tx = good();
        tx.output = vec![pay(1_000, p2wpkh()); 3_500];
        assert_eq!(reason(&tx), "tx-size");
        // 64 bytes without witness: a Merkle node look-alike.
        let mut tx = good();
        tx.output[0].script_pubkey = ScriptBuf::new_op_return([0u8; 0]);
        tx.output[0].value = Amount::ZERO;
        tx.output[0].script_pubkey = ScriptBuf::from_bytes(vec![0x6a, 0x01, 0x00]);
        assert!(tx.base_size() < MIN_STANDARD_TX_NONWITNESS_SIZE);
        assert_eq!(reason(&tx), "tx-size-small");
        let mut tx = good();
        tx.input[0].script_sig = ScriptBuf::from_bytes(vec![0x51, 0x93]);
        assert_eq!(reason(&tx), "scriptsig-not-pushonly");
        let mut tx = good();
        let mut big = Vec::new();
        for _ in 0..5 {
            big.extend([0x4d, 0x48, 0x01]);
            big.extend([0u8; 328]);
        }
        tx.input[0].script_sig = ScriptBuf::from_bytes(big);
        assert_eq!(reason(&tx), "scriptsig-size");
        let mut tx = good();
        tx.output[0].script_pubkey = ScriptBuf::from_bytes(vec![0x51; 30]);
        assert_eq!(reason(&tx), "scriptpubkey");
        // One dust output is allowed (ephemeral dust); two are not.
        let mut tx = good();
        tx.output.push(pay(1, p2wpkh()));
        check_for_broadcast(&tx, Amount::ZERO).unwrap();
        tx.output.push(pay(293, p2wpkh()));
        assert_eq!(reason(&tx), "dust");
        tx.output[2].value = Amount::from_sat(294);
        check_for_broadcast(&tx, Amount::ZERO).unwrap();
    }

    #[test]
    fn standard_output_types() {
        let key = [2u8; 33];
        let multisig = |n: usize| {
            let mut b = vec![0x51];
            for _ in 0..n {
                b.push(33);
                b.extend(key);
            }
            b.extend([0x50 + n as u8, 0xae]);
            ScriptBuf::from_bytes(b)
        };
        assert!(is_standard_output(&multisig(3)));
        assert!(!is_standard_output(&multisig(4)));
        let v2 = ScriptBuf::from_bytes([vec![0x52, 0x20], vec![1u8; 32]].concat());
        assert!(is_standard_output(&v2), "future witness versions");
        assert!(!is_standard_output(&ScriptBuf::from_bytes(vec![0xac])));
        let p2pk = ScriptBuf::from_bytes([vec![33], key.to_vec(), vec![0xac]].concat());
        assert!(is_standard_output(&p2pk));
    }

    #[test]
    fn witness_shape_and_burn() {
        let mut tx = good();
        tx.input[0].witness = Witness::from_slice(&vec![vec![1u8]; MAX_STANDARD_WITNESS_ITEMS + 1]);
        assert_eq!(reason(&tx), "bad-witness-nonstandard");
        tx.input[0].witness = Witness::from_slice(&vec![vec![1u8]; MAX_STANDARD_WITNESS_ITEMS]);
        check_for_broadcast(&tx, Amount::ZERO).unwrap();

        let mut tx = good();
        tx.output
            .push(pay(1_000, ScriptBuf::new_op_return([1u8; 4])));
        let err = check_for_broadcast(&tx, Amount::ZERO).unwrap_err();
        assert_eq!(err.rpc_code(), -25);
        assert!(err.to_string().contains("maxburnamount"));
        check_for_broadcast(&tx, Amount::from_sat(1_000)).unwrap();
        let policy = check_for_broadcast(
            &Transaction {
                version: Version(7),
                ..good()
            },
            Amount::ZERO,
        )
        .unwrap_err();
        assert_eq!(policy.rpc_code(), -26);
        assert_eq!(policy.to_string(), "version");
    }
}
