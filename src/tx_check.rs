//! Context-free checks for a transaction submitted with `sendrawtransaction`.
//!
//! nightjar keeps no UTXO set, so it cannot know what an input spends: fees,
//! whether the inputs exist, and everything about scripts and signatures are
//! left to the peers that receive the transaction. What is left is checked
//! here the way Bitcoin Core 31 checks it, in Core's order and with Core's
//! reject strings, so that a user gets the same answer (and the same RPC
//! error code) from nightjar as from a Core node for everything that does
//! not depend on the spent outputs.
//!
//! Checked, in this order ([`check_for_broadcast`]):
//!
//! 1. `sendrawtransaction`'s `maxburnamount`: every provably unspendable
//!    output (or one with unparsable script) must be worth at most the limit.
//!    Core checks this per output and before anything else, right after
//!    decoding; so do we.
//! 2. Core's consensus `CheckTransaction`: inputs and outputs present, the
//!    stripped size, output amounts, duplicate inputs, coinbase `scriptSig`
//!    length, null prevouts.
//! 3. The parts of Core's `PreChecks` and `IsStandardTx` that need no UTXO:
//!    no coinbase, version, weight, `scriptSig` size and push-only, standard
//!    output scripts, at most one dust output, minimum non-witness size.
//! 4. Witness shape: bounds that Core's `IsWitnessStandard` (plus the
//!    consensus stack limit) implies whatever output type an input spends.
//!
//! Deliberately not checked, because each needs the spent outputs, the chain
//! or the mempool: fees and fee rates (`maxfeerate`, the zero-fee condition of
//! ephemeral dust, minimum relay fee), input existence (`missingorspent`),
//! script and signature validity, `AreInputsStandard` (P2SH sigops, spends of
//! non-standard outputs), the per-type witness limits of `IsWitnessStandard`
//! (P2WSH: 100 items, 3600-byte script; tapscript: 80-byte items; no witness
//! on P2A or non-witness spends), sigop limits (including BIP54's legacy sigop
//! cap), `nLockTime`/BIP68 finality, TRUC (v3) topology and size limits,
//! replacement and package rules. `-datacarriersize` needs no check of its
//! own: its default (`MAX_OP_RETURN_RELAY`, 100 000 bytes) can never be
//! reached by a transaction that passed the weight limit, whose stripped size
//! is at most 100 000 bytes. Bare multisig is allowed, as by Core's default
//! `-permitbaremultisig=1`.
//!
//! Decoding ([`decode_tx_hex`]) follows Core's `DecodeHexTx` too, including
//! where rust-bitcoin's own decoder differs from Core's (see there).

#![warn(missing_docs)]

use std::collections::HashSet;
use std::fmt;

use bitcoin::consensus::encode::{self, Decodable};
use bitcoin::hex::{FromHex, HexToBytesError};
use bitcoin::script::Instruction;
use bitcoin::{Amount, Script, Transaction, TxOut, Witness};

/// Core's `MAX_BLOCK_WEIGHT`: consensus limit on a block's weight.
pub const MAX_BLOCK_WEIGHT: u64 = 4_000_000;

/// Core's `WITNESS_SCALE_FACTOR`: weight units per non-witness byte.
pub const WITNESS_SCALE_FACTOR: u64 = 4;

/// Core's `MAX_MONEY`: no amount, nor sum of output amounts, may exceed it.
pub const MAX_MONEY: Amount = Amount::MAX_MONEY;

/// Core's `MAX_SCRIPT_SIZE`: longer scripts can never be executed, so an
/// output carrying one is unspendable.
pub const MAX_SCRIPT_SIZE: usize = 10_000;

/// Core's `MAX_SCRIPT_ELEMENT_SIZE`: the largest push a script may execute.
pub const MAX_SCRIPT_ELEMENT_SIZE: usize = 520;

/// Core's `MAX_OPCODE` (`OP_NOP10`): bytes above it are not opcodes to
/// `CScript::HasValidOps`.
pub const MAX_OPCODE: u8 = 0xb9;

/// Core's `MAX_STACK_SIZE`: consensus bound on the stack, which tapscript
/// also applies to the initial stack taken from the witness.
pub const MAX_STACK_SIZE: usize = 1_000;

/// Core's `TX_MIN_STANDARD_VERSION`: lowest standard transaction version.
pub const TX_MIN_STANDARD_VERSION: i32 = 1;

/// Core's `TX_MAX_STANDARD_VERSION`: highest standard version (3 is TRUC,
/// BIP431).
pub const TX_MAX_STANDARD_VERSION: i32 = 3;

/// Core's `MAX_STANDARD_TX_WEIGHT`: the heaviest transaction Core relays.
pub const MAX_STANDARD_TX_WEIGHT: u64 = 400_000;

/// Core's `MIN_STANDARD_TX_NONWITNESS_SIZE`: a 64-byte transaction could
/// pass for an inner Merkle node (CVE-2017-12842). rust-bitcoin's
/// `policy::MIN_STANDARD_TX_NONWITNESS_SIZE` still says 82, an older value.
pub const MIN_STANDARD_TX_NONWITNESS_SIZE: usize = 65;

/// Core's `MAX_STANDARD_SCRIPTSIG_SIZE`: enough for a 15-of-15 P2SH multisig.
pub const MAX_STANDARD_SCRIPTSIG_SIZE: usize = 1_650;

/// Core's `DUST_RELAY_TX_FEE`, in sat/kvB: the fee rate at which spending an
/// output costs more than it is worth.
pub const DUST_RELAY_TX_FEE: u64 = 3_000;

/// Core's `MAX_DUST_OUTPUTS_PER_TX`: one dust output is allowed (ephemeral
/// dust), on condition that the transaction pays no fee, which only a peer
/// with the UTXO set can check.
pub const MAX_DUST_OUTPUTS_PER_TX: usize = 1;

/// The most keys of a standard bare multisig output (Core's `IsStandard`
/// writes it as a literal 3).
pub const MAX_BARE_MULTISIG_KEYS: u8 = 3;

/// Core's `MAX_STANDARD_P2WSH_STACK_ITEM_SIZE`: largest standard P2WSH stack
/// item, the witness script aside.
pub const MAX_STANDARD_P2WSH_STACK_ITEM_SIZE: usize = 80;

/// Core's `MAX_STANDARD_TAPSCRIPT_STACK_ITEM_SIZE`: largest standard
/// tapscript stack item, the script and control block aside.
pub const MAX_STANDARD_TAPSCRIPT_STACK_ITEM_SIZE: usize = 80;

/// Core's `MAX_STANDARD_P2WSH_STACK_ITEMS`: most standard P2WSH stack items,
/// the witness script aside. Not enforced: we cannot tell a P2WSH spend from
/// a tapscript one, whose limit is [`MAX_STACK_SIZE`].
pub const MAX_STANDARD_P2WSH_STACK_ITEMS: usize = 100;

/// Core's `MAX_STANDARD_P2WSH_SCRIPT_SIZE`: largest standard witness script.
pub const MAX_STANDARD_P2WSH_SCRIPT_SIZE: usize = 3_600;

/// Core's `TAPROOT_CONTROL_MAX_SIZE`: a taproot control block is 33 bytes
/// plus at most 128 Merkle path nodes of 32 bytes.
pub const TAPROOT_CONTROL_MAX_SIZE: usize = 33 + 32 * 128;

/// Core's `ANNEX_TAG`: the first byte of a taproot annex, which Core's
/// policy does not relay.
pub const ANNEX_TAG: u8 = 0x50;

/// The most witness items any standard spend has: a tapscript spend, whose
/// initial stack is bounded by [`MAX_STACK_SIZE`], plus its script and
/// control block. (P2WSH is stricter, 100 items plus the script, but we do
/// not know which an input spends.)
pub const MAX_STANDARD_WITNESS_ITEMS: usize = MAX_STACK_SIZE + 2;

/// Core's `RPC_DESERIALIZATION_ERROR`, returned for any [`DecodeError`].
pub const RPC_DESERIALIZATION_ERROR: i64 = -22;

/// Core's `RPC_TRANSACTION_ERROR` (alias `RPC_VERIFY_ERROR`), returned for
/// [`Rejection::MaxBurnExceeded`].
pub const RPC_TRANSACTION_ERROR: i64 = -25;

/// Core's `RPC_TRANSACTION_REJECTED` (alias `RPC_VERIFY_REJECTED`), returned
/// for every other [`Rejection`].
pub const RPC_TRANSACTION_REJECTED: i64 = -26;

/// The message Core's `sendrawtransaction` gives for every decoding failure,
/// whatever the cause.
pub const TX_DECODE_FAILED_MESSAGE: &str =
    "TX decode failed. Make sure the tx has at least one input.";

/// Why a hex string is not a transaction. Core answers all of these alike
/// ([`TX_DECODE_FAILED_MESSAGE`], code [`RPC_DESERIALIZATION_ERROR`]); the
/// variants say more for logs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The string is empty.
    #[error("TX decode failed: empty string")]
    Empty,
    /// A character is not a hex digit (whitespace included, as in Core).
    #[error("TX decode failed: {0:?} is not a hex digit")]
    InvalidHexChar(char),
    /// An odd number of hex digits.
    #[error("TX decode failed: odd number of hex digits")]
    OddLength,
    /// The data ends inside the transaction.
    #[error("TX decode failed: data ends early")]
    Truncated,
    /// A whole transaction was read but bytes are left over.
    #[error("TX decode failed: {0} bytes left after the transaction")]
    TrailingBytes(usize),
    /// The segwit marker and flag are present but no input has a witness
    /// (Core: "Superfluous witness record").
    #[error("TX decode failed: witness flag set but no witness present")]
    SuperfluousWitness,
    /// A flag byte after the segwit marker other than 1 (Core: "Unknown
    /// transaction optional data").
    #[error("TX decode failed: unknown segwit flag {0:#04x}")]
    UnknownSegwitFlag(u8),
    /// Any other malformation, as rust-bitcoin describes it.
    #[error("TX decode failed: {0}")]
    Malformed(String),
}

impl DecodeError {
    /// The JSON-RPC error code Core gives: [`RPC_DESERIALIZATION_ERROR`].
    pub fn rpc_code(&self) -> i64 {
        RPC_DESERIALIZATION_ERROR
    }
}

/// Decodes a transaction from hex as Core's `sendrawtransaction` does
/// (`DecodeHexTx` with both serializations allowed).
///
/// The string must be non-empty, of even length and all hex digits (Core's
/// `IsHex`: no whitespace, no `0x`). Core then tries the BIP144 (witness)
/// serialization and, only if the 5th byte is zero (an empty input list,
/// which is also the segwit marker), the legacy one; each must use every
/// byte. If both parse, the witness reading wins unless only the legacy one
/// passes Core's `CheckTxScriptsSanity` (every script parses and is at most
/// [`MAX_SCRIPT_SIZE`] bytes).
///
/// Where rust-bitcoin's decoder disagrees with Core's, Core wins:
/// - marker and flag with an empty input list inside: rust-bitcoin accepts a
///   transaction with no inputs; Core rejects it as a superfluous witness
///   record (and so do we) before trying the legacy reading;
/// - marker followed by a flag of 0 or > 1: rust-bitcoin rejects it, Core's
///   legacy reading may still succeed (see below).
///
/// Zero inputs: whenever the 5th byte is zero and the witness reading fails,
/// the legacy reading gives a transaction with no inputs. Like Core, we
/// return it rather than a decode error; [`check_for_broadcast`] then
/// rejects it with `bad-txns-vin-empty` (or `maxburnamount`, which Core
/// checks first), exactly Core's answer. Beware that rust-bitcoin
/// re-serializes such a transaction with a marker and flag, so it does not
/// round-trip; it must not go further than the rejection.
///
/// One known divergence: rust-bitcoin refuses any single witness larger than
/// 4 MB while decoding, where Core would decode it and reject it as
/// `tx-size`. Both refuse the transaction.
pub fn decode_tx_hex(hex: &str) -> Result<Transaction, DecodeError> {
    if hex.is_empty() {
        return Err(DecodeError::Empty);
    }
    let bytes = Vec::<u8>::from_hex(hex).map_err(|e| match e {
        HexToBytesError::InvalidChar(c) => {
            DecodeError::InvalidHexChar(char::from(c.invalid_char()))
        }
        HexToBytesError::OddLengthString(_) => DecodeError::OddLength,
    })?;
    decode_tx_bytes(&bytes)
}

/// Core's `DecodeTx` on raw bytes: see [`decode_tx_hex`].
fn decode_tx_bytes(bytes: &[u8]) -> Result<Transaction, DecodeError> {
    let extended = decode_with_witness(bytes);
    if let Ok(tx) = &extended
        && scripts_sane(tx)
    {
        return extended;
    }
    // If the input count is non-zero both readings are the same bytes read
    // the same way, so the legacy one can only differ when it is zero.
    let legacy = (bytes.get(4) == Some(&0)).then(|| decode_zero_input_legacy(bytes));
    match (extended, legacy) {
        (_, Some(Some(tx))) if scripts_sane(&tx) => Ok(tx),
        (Ok(tx), _) => Ok(tx),
        (Err(_), Some(Some(tx))) => Ok(tx),
        (Err(e), _) => Err(e),
    }
}

/// The BIP144 reading (Core's `TX_WITH_WITNESS`), corrected to reject what
/// Core rejects.
fn decode_with_witness(bytes: &[u8]) -> Result<Transaction, DecodeError> {
    let has_marker = bytes.get(4) == Some(&0) && bytes.get(5) == Some(&1);
    match encode::deserialize_partial::<Transaction>(bytes) {
        // rust-bitcoin only produces an input-less transaction through the
        // marker-and-flag path with an empty inner input list; Core's
        // `HasWitness()` is false for it, so it throws.
        Ok((tx, _)) if tx.input.is_empty() => Err(DecodeError::SuperfluousWitness),
        Ok((tx, used)) if used == bytes.len() => Ok(tx),
        Ok((_, used)) => Err(DecodeError::TrailingBytes(bytes.len() - used)),
        Err(encode::Error::Io(e)) if e.kind() == bitcoin::io::ErrorKind::UnexpectedEof => {
            Err(DecodeError::Truncated)
        }
        Err(encode::Error::UnsupportedSegwitFlag(flag)) => {
            Err(DecodeError::UnknownSegwitFlag(flag))
        }
        // With marker and flag the only parse failure rust-bitcoin reports is
        // "witness flag set but no witnesses present".
        Err(encode::Error::ParseFailed(_)) if has_marker => Err(DecodeError::SuperfluousWitness),
        Err(e) => Err(DecodeError::Malformed(e.to_string())),
    }
}

/// The legacy reading (Core's `TX_NO_WITNESS`) of bytes whose input count is
/// zero: version, `0x00`, outputs, lock time, and nothing after. rust-bitcoin
/// cannot read this layout (it always takes the zero as the segwit marker),
/// so the fields are read one by one. `None` if that does not parse.
fn decode_zero_input_legacy(bytes: &[u8]) -> Option<Transaction> {
    let mut rest = bytes;
    let version = Decodable::consensus_decode_from_finite_reader(&mut rest).ok()?;
    let (&0, after) = rest.split_first()? else {
        return None;
    };
    rest = after;
    let output = Decodable::consensus_decode_from_finite_reader(&mut rest).ok()?;
    let lock_time = Decodable::consensus_decode_from_finite_reader(&mut rest).ok()?;
    rest.is_empty().then_some(Transaction {
        version,
        lock_time,
        input: Vec::new(),
        output,
    })
}

/// Core's `CheckTxScriptsSanity`, used only to choose between two readings.
fn scripts_sane(tx: &Transaction) -> bool {
    let sane = |s: &Script| has_valid_ops(s) && s.len() <= MAX_SCRIPT_SIZE;
    (tx.is_coinbase() || tx.input.iter().all(|i| sane(&i.script_sig)))
        && tx.output.iter().all(|o| sane(&o.script_pubkey))
}

/// Why a transaction is refused. [`Rejection::reason`] is Core's reject
/// string, and `Display` is Core's RPC error message (the reject string,
/// since none of these carries a debug message in Core).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// An unspendable output is worth more than `maxburnamount`.
    MaxBurnExceeded,
    /// `bad-txns-vin-empty`: no inputs.
    VinEmpty,
    /// `bad-txns-vout-empty`: no outputs.
    VoutEmpty,
    /// `bad-txns-oversize`: the stripped size alone would fill a block.
    Oversize,
    /// `bad-txns-vout-toolarge`: an output above [`MAX_MONEY`].
    VoutTooLarge,
    /// `bad-txns-txouttotal-toolarge`: outputs summing above [`MAX_MONEY`].
    TxoutTotalTooLarge,
    /// `bad-txns-inputs-duplicate`: one outpoint spent twice.
    InputsDuplicate,
    /// `bad-cb-length`: a coinbase `scriptSig` not of 2 to 100 bytes.
    CoinbaseLength,
    /// `bad-txns-prevout-null`: a null prevout in a non-coinbase.
    PrevoutNull,
    /// `coinbase`: a coinbase is only valid in a block.
    Coinbase,
    /// `version`: version outside 1..=3.
    Version,
    /// `tx-size`: weight above [`MAX_STANDARD_TX_WEIGHT`].
    TxSize,
    /// `scriptsig-size`: a `scriptSig` above [`MAX_STANDARD_SCRIPTSIG_SIZE`].
    ScriptSigSize,
    /// `scriptsig-not-pushonly`: a `scriptSig` with a non-push opcode.
    ScriptSigNotPushOnly,
    /// `scriptpubkey`: an output script of no standard type.
    ScriptPubKey,
    /// `dust`: more than [`MAX_DUST_OUTPUTS_PER_TX`] dust outputs.
    Dust,
    /// `tx-size-small`: non-witness size below
    /// [`MIN_STANDARD_TX_NONWITNESS_SIZE`].
    TxSizeSmall,
    /// `bad-witness-nonstandard`: a witness no standard spend can have.
    WitnessNonstandard,
}

impl Rejection {
    /// Core's reject reason (for `maxburnamount`, Core's whole message, as
    /// that error has no reject reason of its own).
    pub fn reason(&self) -> &'static str {
        match self {
            Self::MaxBurnExceeded => {
                "Unspendable output exceeds maximum configured by user (maxburnamount)"
            }
            Self::VinEmpty => "bad-txns-vin-empty",
            Self::VoutEmpty => "bad-txns-vout-empty",
            Self::Oversize => "bad-txns-oversize",
            Self::VoutTooLarge => "bad-txns-vout-toolarge",
            Self::TxoutTotalTooLarge => "bad-txns-txouttotal-toolarge",
            Self::InputsDuplicate => "bad-txns-inputs-duplicate",
            Self::CoinbaseLength => "bad-cb-length",
            Self::PrevoutNull => "bad-txns-prevout-null",
            Self::Coinbase => "coinbase",
            Self::Version => "version",
            Self::TxSize => "tx-size",
            Self::ScriptSigSize => "scriptsig-size",
            Self::ScriptSigNotPushOnly => "scriptsig-not-pushonly",
            Self::ScriptPubKey => "scriptpubkey",
            Self::Dust => "dust",
            Self::TxSizeSmall => "tx-size-small",
            Self::WitnessNonstandard => "bad-witness-nonstandard",
        }
    }

    /// The JSON-RPC error code Core's `sendrawtransaction` gives:
    /// [`RPC_TRANSACTION_ERROR`] (-25) for `maxburnamount`, which Core raises
    /// itself, and [`RPC_TRANSACTION_REJECTED`] (-26) for the rest, which
    /// come from mempool acceptance (`TransactionError::MEMPOOL_REJECTED`).
    pub fn rpc_code(&self) -> i64 {
        match self {
            Self::MaxBurnExceeded => RPC_TRANSACTION_ERROR,
            _ => RPC_TRANSACTION_REJECTED,
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason())
    }
}

impl std::error::Error for Rejection {}

/// Checks what can be checked of `tx` without the outputs it spends, in
/// Core's order; see the module documentation for what is and is not
/// checked. `max_burn` is `sendrawtransaction`'s `maxburnamount` (Core's
/// default is zero).
pub fn check_for_broadcast(tx: &Transaction, max_burn: Amount) -> Result<(), Rejection> {
    check_max_burn(tx, max_burn)?;
    check_transaction(tx)?;
    check_standard(tx)?;
    check_witnesses(tx)
}

/// `sendrawtransaction`'s own check, done before mempool acceptance. Core
/// compares each output with the limit, not their sum, and counts an output
/// whose script does not parse as unspendable too.
fn check_max_burn(tx: &Transaction, max_burn: Amount) -> Result<(), Rejection> {
    let burns = |o: &TxOut| is_unspendable(&o.script_pubkey) || !has_valid_ops(&o.script_pubkey);
    if tx.output.iter().any(|o| burns(o) && o.value > max_burn) {
        return Err(Rejection::MaxBurnExceeded);
    }
    Ok(())
}

/// Core's `CheckTransaction` (consensus, context-free).
fn check_transaction(tx: &Transaction) -> Result<(), Rejection> {
    if tx.input.is_empty() {
        return Err(Rejection::VinEmpty);
    }
    if tx.output.is_empty() {
        return Err(Rejection::VoutEmpty);
    }
    // The witness is left out because it has not been checked against
    // malleation yet; `tx-size` bounds the whole later.
    let stripped = tx.base_size() as u64;
    if stripped.saturating_mul(WITNESS_SCALE_FACTOR) > MAX_BLOCK_WEIGHT {
        return Err(Rejection::Oversize);
    }
    // Per output, as Core does: a too-large output is reported as such even
    // when the outputs before it already sum to nearly MAX_MONEY.
    let mut total = Amount::ZERO;
    for out in &tx.output {
        if out.value > MAX_MONEY {
            return Err(Rejection::VoutTooLarge);
        }
        total = match total.checked_add(out.value) {
            Some(t) if t <= MAX_MONEY => t,
            _ => return Err(Rejection::TxoutTotalTooLarge),
        };
    }
    let mut seen = HashSet::with_capacity(tx.input.len());
    if !tx.input.iter().all(|i| seen.insert(i.previous_output)) {
        return Err(Rejection::InputsDuplicate);
    }
    if tx.is_coinbase() {
        let len = tx.input.first().map_or(0, |i| i.script_sig.len());
        if !(2..=100).contains(&len) {
            return Err(Rejection::CoinbaseLength);
        }
    } else if tx.input.iter().any(|i| i.previous_output.is_null()) {
        return Err(Rejection::PrevoutNull);
    }
    Ok(())
}

/// The UTXO-free part of Core's `PreChecks` after `CheckTransaction`:
/// `coinbase`, then `IsStandardTx`, then `tx-size-small`.
fn check_standard(tx: &Transaction) -> Result<(), Rejection> {
    if tx.is_coinbase() {
        return Err(Rejection::Coinbase);
    }
    if !(TX_MIN_STANDARD_VERSION..=TX_MAX_STANDARD_VERSION).contains(&tx.version.0) {
        return Err(Rejection::Version);
    }
    // Signature hashing costs O(inputs * size), so heavy transactions are a
    // cheap way to make peers burn CPU.
    if tx.weight().to_wu() > MAX_STANDARD_TX_WEIGHT {
        return Err(Rejection::TxSize);
    }
    for input in &tx.input {
        if input.script_sig.len() > MAX_STANDARD_SCRIPTSIG_SIZE {
            return Err(Rejection::ScriptSigSize);
        }
        // rust-bitcoin's test is Core's: every op parses and none is above
        // OP_16 (so OP_RESERVED passes, as in Core).
        if !input.script_sig.is_push_only() {
            return Err(Rejection::ScriptSigNotPushOnly);
        }
    }
    if !tx
        .output
        .iter()
        .all(|o| is_standard_output(&o.script_pubkey))
    {
        return Err(Rejection::ScriptPubKey);
    }
    let dust = tx
        .output
        .iter()
        .filter(|o| o.value < dust_threshold(o))
        .count();
    if dust > MAX_DUST_OUTPUTS_PER_TX {
        return Err(Rejection::Dust);
    }
    if tx.base_size() < MIN_STANDARD_TX_NONWITNESS_SIZE {
        return Err(Rejection::TxSizeSmall);
    }
    Ok(())
}

/// Witness bounds that hold for every standard spend, whatever it spends.
///
/// A non-empty witness is standard in Core only for P2WPKH (2 items), P2WSH
/// (up to [`MAX_STANDARD_P2WSH_STACK_ITEMS`] items of at most 80 bytes, then
/// a script of at most [`MAX_STANDARD_P2WSH_SCRIPT_SIZE`]), taproot key path
/// (one 64/65-byte signature) and tapscript (up to [`MAX_STACK_SIZE`] items
/// of at most 80 bytes, a script, a control block of at most
/// [`TAPROOT_CONTROL_MAX_SIZE`]), each optionally P2SH-wrapped except
/// taproot. Every other spend with a witness fails policy or consensus.
/// Hence, for any witness:
/// - at most [`MAX_STANDARD_WITNESS_ITEMS`] items;
/// - every item but the last two at most 80 bytes;
/// - the last item at most [`TAPROOT_CONTROL_MAX_SIZE`] bytes;
/// - with two or more items, the last does not start with [`ANNEX_TAG`]: for
///   taproot that is an annex (non-standard); as a P2WSH script it starts
///   with `OP_RESERVED`, which fails when executed; as a P2WPKH key it is not
///   a compressed key, which policy requires.
fn check_witnesses(tx: &Transaction) -> Result<(), Rejection> {
    if tx.input.iter().all(|i| witness_plausible(&i.witness)) {
        Ok(())
    } else {
        Err(Rejection::WitnessNonstandard)
    }
}

/// See [`check_witnesses`].
fn witness_plausible(witness: &Witness) -> bool {
    let items = witness.len();
    if items > MAX_STANDARD_WITNESS_ITEMS {
        return false;
    }
    let Some(last) = witness.last() else {
        return true; // empty: nothing to bloat
    };
    if last.len() > TAPROOT_CONTROL_MAX_SIZE {
        return false;
    }
    if items >= 2 && last.first() == Some(&ANNEX_TAG) {
        return false;
    }
    // Both per-type limits are 80; the larger is the safe bound.
    let item_max = MAX_STANDARD_P2WSH_STACK_ITEM_SIZE.max(MAX_STANDARD_TAPSCRIPT_STACK_ITEM_SIZE);
    witness
        .iter()
        .take(items.saturating_sub(2))
        .all(|item| item.len() <= item_max)
}

/// Core's `CScript::IsUnspendable`: starts with `OP_RETURN`, or too long to
/// ever execute.
fn is_unspendable(script: &Script) -> bool {
    script.is_op_return() || script.len() > MAX_SCRIPT_SIZE
}

/// Core's `CScript::HasValidOps`: every op parses, none is above
/// [`MAX_OPCODE`] and no push exceeds [`MAX_SCRIPT_ELEMENT_SIZE`].
fn has_valid_ops(script: &Script) -> bool {
    script.instructions().all(|ins| match ins {
        Ok(Instruction::PushBytes(data)) => data.len() <= MAX_SCRIPT_ELEMENT_SIZE,
        Ok(Instruction::Op(op)) => op.to_u8() <= MAX_OPCODE,
        Err(_) => false,
    })
}

/// Core's `GetDustThreshold` at [`DUST_RELAY_TX_FEE`]: what it costs to
/// spend the output (its own size plus a typical input: 148 bytes, or 67
/// virtual bytes for a witness program), at that fee rate.
///
/// rust-bitcoin's `Script::minimal_non_dust` gives the same for every
/// standard output, but treats a script over [`MAX_SCRIPT_SIZE`] as
/// spendable; this one mirrors Core exactly.
fn dust_threshold(out: &TxOut) -> Amount {
    if is_unspendable(&out.script_pubkey) {
        return Amount::ZERO;
    }
    // outpoint + sequence + scriptSig length + scriptSig, where the 107-byte
    // signature and key count a quarter when they sit in the witness.
    let input_size: u64 = if witness_program(out.script_pubkey.as_bytes()).is_some() {
        32 + 4 + 1 + 107 / WITNESS_SCALE_FACTOR + 4
    } else {
        32 + 4 + 1 + 107 + 4
    };
    let size = out.size() as u64 + input_size;
    // Core's `CFeeRate::GetFee` rounds up (exact at 3000 sat/kvB anyway).
    Amount::from_sat(size.saturating_mul(DUST_RELAY_TX_FEE).div_ceil(1_000))
}

/// Core's `CScript::IsWitnessProgram`: a version opcode (`OP_0`, `OP_1` to
/// `OP_16`) then one direct push of 2 to 40 bytes filling the script.
/// Returns the version and the program.
fn witness_program(script: &[u8]) -> Option<(u8, &[u8])> {
    let [op, len, program @ ..] = script else {
        return None;
    };
    let version = match *op {
        0x00 => 0,
        op @ 0x51..=0x60 => op - 0x50,
        _ => return None,
    };
    ((2..=40).contains(&program.len()) && usize::from(*len) == program.len())
        .then_some((version, program))
}

/// Core's `IsStandard` for an output script: `Solver` must recognise it, and
/// bare multisig must be 1 to 3 keys with 1 to n required.
fn is_standard_output(script: &Script) -> bool {
    let bytes = script.as_bytes();
    // Solver's order matters only for the P2SH shape, which is not a witness
    // program, so a simple disjunction is faithful.
    if script.is_p2sh() {
        return true;
    }
    if let Some((version, program)) = witness_program(bytes) {
        // P2WPKH (20), P2WSH (32); every version 1..16 is standard as an
        // output (P2TR, P2A and the unknown versions kept for upgrades).
        return version != 0 || program.len() == 20 || program.len() == 32;
    }
    // Null data: OP_RETURN then pushes only. Core 30 lets any number and
    // size through, within `-datacarriersize` (see the module docs).
    if let Some((&0x6a, data)) = bytes.split_first() {
        return Script::from_bytes(data).is_push_only();
    }
    is_p2pk(bytes) || script.is_p2pkh() || is_standard_bare_multisig(script)
}

/// Core's `CPubKey::ValidSize`: a length matching the header byte.
fn valid_pubkey_size(key: &[u8]) -> bool {
    match key.first() {
        Some(2 | 3) => key.len() == 33,
        Some(4 | 6 | 7) => key.len() == 65,
        _ => false,
    }
}

/// Core's `MatchPayToPubkey`: one direct push of a key, then `OP_CHECKSIG`.
fn is_p2pk(bytes: &[u8]) -> bool {
    const OP_CHECKSIG: u8 = 0xac;
    match bytes {
        [len, key @ .., OP_CHECKSIG] => {
            usize::from(*len) == key.len() && matches!(key.len(), 33 | 65) && valid_pubkey_size(key)
        }
        _ => false,
    }
}

/// Core's `MatchMultisig` followed by `IsStandard`'s limits: `OP_m`, n keys
/// (any push form), `OP_n`, `OP_CHECKMULTISIG`, with 1 <= m <= n <= 3.
///
/// Core also accepts m or n as minimal pushes of 17 to 20; those can never
/// be standard, so only `OP_1`..`OP_16` are recognised here.
fn is_standard_bare_multisig(script: &Script) -> bool {
    const OP_CHECKMULTISIG: u8 = 0xae;
    fn small_int(ins: Option<Result<Instruction<'_>, bitcoin::script::Error>>) -> Option<u8> {
        match ins {
            Some(Ok(Instruction::Op(op))) => match op.to_u8() {
                b @ 0x51..=0x60 => Some(b - 0x50),
                _ => None,
            },
            _ => None,
        }
    }
    let mut ops = script.instructions();
    let Some(required) = small_int(ops.next()) else {
        return false;
    };
    let mut keys: usize = 0;
    let next = loop {
        match ops.next() {
            Some(Ok(Instruction::PushBytes(key))) if valid_pubkey_size(key.as_bytes()) => keys += 1,
            other => break other,
        }
    };
    let Some(total) = small_int(next) else {
        return false;
    };
    let ends_right = matches!(ops.next(), Some(Ok(Instruction::Op(op))) if op.to_u8() == OP_CHECKMULTISIG)
        && ops.next().is_none();
    ends_right
        && usize::from(total) == keys
        && (1..=MAX_BARE_MULTISIG_KEYS).contains(&total)
        && (1..=total).contains(&required)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use bitcoin::consensus::encode::serialize;
    use bitcoin::hashes::Hash;
    use bitcoin::hex::DisplayHex;
    use bitcoin::script::{Builder, PushBytesBuf};
    use bitcoin::transaction::Version;
    use bitcoin::{OutPoint, ScriptBuf, Sequence, TxIn, Txid, absolute};

    const OK_VALUE: Amount = Amount::from_sat(10_000);

    fn outpoint(n: u8) -> OutPoint {
        OutPoint {
            txid: Txid::from_byte_array([n; 32]),
            vout: u32::from(n),
        }
    }

    fn push(data: &[u8]) -> PushBytesBuf {
        PushBytesBuf::try_from(data.to_vec()).unwrap()
    }

    /// A 2-of-2 P2WSH spend: dummy, two signature-sized items, the script.
    fn p2wsh_input(n: u8) -> TxIn {
        let key = |b: u8| {
            let mut k = [b; 33];
            k[0] = 2;
            k
        };
        let script = Builder::new()
            .push_opcode(bitcoin::opcodes::all::OP_PUSHNUM_2)
            .push_slice(key(1))
            .push_slice(key(2))
            .push_opcode(bitcoin::opcodes::all::OP_PUSHNUM_2)
            .push_opcode(bitcoin::opcodes::all::OP_CHECKMULTISIG)
            .into_script();
        TxIn {
            previous_output: outpoint(n),
            script_sig: ScriptBuf::new(),
            sequence: Sequence::MAX,
            witness: Witness::from_slice(&[
                vec![],
                vec![0x30; 72],
                vec![0x30; 71],
                script.to_bytes(),
            ]),
        }
    }

    fn raw(bytes: &[u8]) -> ScriptBuf {
        ScriptBuf::from_bytes(bytes.to_vec())
    }

    fn p2wpkh() -> ScriptBuf {
        let mut b = vec![0x00, 0x14];
        b.extend([7; 20]);
        raw(&b)
    }

    fn p2tr() -> ScriptBuf {
        let mut b = vec![0x51, 0x20];
        b.extend([8; 32]);
        raw(&b)
    }

    fn p2a() -> ScriptBuf {
        raw(&[0x51, 0x02, 0x4e, 0x73])
    }

    fn op_return(data: &[u8]) -> ScriptBuf {
        Builder::new()
            .push_opcode(bitcoin::opcodes::all::OP_RETURN)
            .push_slice(push(data))
            .into_script()
    }

    fn out(value: Amount, script_pubkey: ScriptBuf) -> TxOut {
        TxOut {
            value,
            script_pubkey,
        }
    }

    /// A TRUC transaction spending P2WSH, paying P2WPKH and P2TR, with a
    /// zero-value anchor (the one allowed dust) and an OP_RETURN.
    fn valid_tx() -> Transaction {
        Transaction {
            version: Version(3),
            lock_time: absolute::LockTime::ZERO,
            input: vec![p2wsh_input(1)],
            output: vec![
                out(OK_VALUE, p2wpkh()),
                out(OK_VALUE, p2tr()),
                out(Amount::ZERO, p2a()),
                out(Amount::ZERO, op_return(b"nightjar")),
            ],
        }
    }

    fn check(tx: &Transaction) -> Result<(), Rejection> {
        check_for_broadcast(tx, Amount::ZERO)
    }

    fn with_output(script: ScriptBuf) -> Transaction {
        let mut tx = valid_tx();
        tx.output.push(out(OK_VALUE, script));
        tx
    }

    fn coinbase(script_sig_len: usize) -> Transaction {
        let mut tx = valid_tx();
        tx.input = vec![TxIn {
            previous_output: OutPoint::null(),
            script_sig: raw(&vec![0x51; script_sig_len]),
            sequence: Sequence::MAX,
            witness: Witness::new(),
        }];
        tx
    }

    // ---- decoding ----

    #[test]
    fn decode_round_trips_a_valid_transaction() {
        let tx = valid_tx();
        let hex = serialize(&tx).to_lower_hex_string();
        assert_eq!(decode_tx_hex(&hex).unwrap(), tx);
        assert_eq!(decode_tx_hex(&hex.to_uppercase()).unwrap(), tx);
    }

    #[test]
    fn decode_rejects_bad_hex() {
        let hex = serialize(&valid_tx()).to_lower_hex_string();
        assert_eq!(decode_tx_hex(""), Err(DecodeError::Empty));
        assert_eq!(decode_tx_hex("zz"), Err(DecodeError::InvalidHexChar('z')));
        assert_eq!(
            decode_tx_hex(&format!("{hex}\n")),
            Err(DecodeError::OddLength)
        );
        assert_eq!(
            decode_tx_hex(&format!(" {hex} ")),
            Err(DecodeError::InvalidHexChar(' '))
        );
        assert_eq!(
            decode_tx_hex(&format!("0x{hex}")),
            Err(DecodeError::InvalidHexChar('x'))
        );
        assert_eq!(decode_tx_hex(&hex[1..]), Err(DecodeError::OddLength));
        assert_eq!(DecodeError::Empty.rpc_code(), -22);
    }

    #[test]
    fn decode_rejects_trailing_bytes() {
        let hex = serialize(&valid_tx()).to_lower_hex_string();
        assert_eq!(
            decode_tx_hex(&format!("{hex}00")),
            Err(DecodeError::TrailingBytes(1))
        );
    }

    #[test]
    fn decode_rejects_truncated() {
        let hex = serialize(&valid_tx()).to_lower_hex_string();
        assert_eq!(
            decode_tx_hex(&hex[..hex.len() - 2]),
            Err(DecodeError::Truncated)
        );
        assert_eq!(decode_tx_hex("03000000"), Err(DecodeError::Truncated));
    }

    /// Marker and flag, but every witness empty: Core's "Superfluous
    /// witness record". rust-bitcoin rejects this one itself.
    #[test]
    fn decode_rejects_superfluous_witness() {
        let mut tx = valid_tx();
        tx.input[0].witness = Witness::new();
        let legacy = serialize(&tx);
        // version | 00 01 | inputs and outputs | one empty witness | lock time
        let mut bytes = legacy[..4].to_vec();
        bytes.extend([0x00, 0x01]);
        bytes.extend(&legacy[4..legacy.len() - 4]);
        bytes.push(0x00);
        bytes.extend(&legacy[legacy.len() - 4..]);
        assert_eq!(
            decode_tx_hex(&bytes.to_lower_hex_string()),
            Err(DecodeError::SuperfluousWitness)
        );
    }

    /// rust-bitcoin writes (and reads back) a zero-input transaction with a
    /// marker and flag; Core refuses that reading, and the legacy reading of
    /// the same bytes leaves bytes over, so it does not decode at all.
    #[test]
    fn decode_rejects_marker_with_no_inputs() {
        let mut tx = valid_tx();
        tx.input.clear();
        tx.output.truncate(1);
        let bytes = serialize(&tx);
        assert_eq!(&bytes[4..6], &[0x00, 0x01]);
        assert!(
            encode::deserialize::<Transaction>(&bytes).is_ok(),
            "rust-bitcoin accepts it"
        );
        assert_eq!(
            decode_tx_hex(&bytes.to_lower_hex_string()),
            Err(DecodeError::SuperfluousWitness)
        );
    }

    /// An input count of zero followed by an output count of two reads as an
    /// unknown segwit flag; Core falls back to the legacy reading, a
    /// transaction without inputs, which is then refused as such.
    #[test]
    fn decode_zero_inputs_falls_back_to_legacy() {
        let outputs = vec![out(OK_VALUE, p2wpkh()), out(OK_VALUE, p2tr())];
        let mut bytes = vec![0x02, 0, 0, 0, 0x00];
        bytes.extend(serialize(&outputs));
        bytes.extend([0, 0, 0, 0]);
        let hex = bytes.to_lower_hex_string();
        assert!(matches!(
            decode_with_witness(&bytes),
            Err(DecodeError::UnknownSegwitFlag(2))
        ));
        let tx = decode_tx_hex(&hex).unwrap();
        assert!(tx.input.is_empty());
        assert_eq!(tx.output, outputs);
        assert_eq!(check(&tx), Err(Rejection::VinEmpty));

        // Even when the legacy reading's scripts do not parse, it is taken
        // if it is the only one (and the unparsable output is a burn).
        let mut bytes = vec![0x02, 0, 0, 0, 0x00];
        bytes.extend(serialize(&vec![
            out(OK_VALUE, p2wpkh()),
            out(OK_VALUE, raw(&[0xba])),
        ]));
        bytes.extend([0, 0, 0, 0]);
        let tx = decode_tx_hex(&bytes.to_lower_hex_string()).unwrap();
        assert!(tx.input.is_empty() && !scripts_sane(&tx));
        assert_eq!(check(&tx), Err(Rejection::MaxBurnExceeded));

        // version | 00 | 00 | lock time: Core reads no inputs, no outputs.
        let empty = decode_tx_hex("02000000000000000000").unwrap();
        assert!(empty.input.is_empty() && empty.output.is_empty());
        assert_eq!(check(&empty), Err(Rejection::VinEmpty));
    }

    /// Bytes that read both ways: with witness, a transaction whose output
    /// script does not parse; without, a zero-input transaction whose one
    /// output script is the rest of the bytes, all valid ops. Core keeps
    /// the reading that passes `CheckTxScriptsSanity`; if both pass, the
    /// witness one.
    #[test]
    fn decode_prefers_the_sane_reading() {
        let build = |txid7: u8, output_script: &[u8]| {
            let mut txid = [0u8; 32];
            txid[7] = txid7;
            let tx = Transaction {
                version: Version(2),
                lock_time: absolute::LockTime::ZERO,
                input: vec![TxIn {
                    previous_output: OutPoint {
                        txid: Txid::from_byte_array(txid),
                        vout: 0,
                    },
                    script_sig: ScriptBuf::new(),
                    sequence: Sequence::ZERO,
                    witness: Witness::from_slice(&[[0u8; 64]]),
                }],
                output: vec![out(Amount::ZERO, raw(output_script))],
            };
            let bytes = serialize(&tx);
            // Legacy reading after version, 00, 01: an 8-byte value, then a
            // script length at the txid's 8th byte, the script, lock time.
            let script_len = u8::try_from(bytes.len() - 6 - 8 - 1 - 4).unwrap();
            (tx, script_len)
        };
        for (script, witness_wins) in [(&[0xba][..], false), (&[0x00][..], true)] {
            let (_, len) = build(0, script);
            let (tx, again) = build(len, script);
            assert_eq!(len, again);
            let bytes = serialize(&tx);
            let legacy = decode_zero_input_legacy(&bytes).unwrap();
            assert!(scripts_sane(&legacy));
            assert_eq!(scripts_sane(&tx), witness_wins);
            let decoded = decode_tx_hex(&bytes.to_lower_hex_string()).unwrap();
            if witness_wins {
                assert_eq!(decoded, tx);
            } else {
                assert_eq!(decoded, legacy);
                assert_eq!(check(&decoded), Err(Rejection::VinEmpty));
            }
        }
    }

    #[test]
    fn scripts_sanity_matches_core() {
        assert!(scripts_sane(&valid_tx()));
        // 0xba is OP_CHECKSIGADD, above MAX_OPCODE for HasValidOps.
        assert!(!scripts_sane(&with_output(raw(&[0xba]))));
        assert!(!scripts_sane(&with_output(raw(&[0x4c, 0x05, 0x01]))));
        assert!(!scripts_sane(&with_output(raw(&vec![
            0x00;
            MAX_SCRIPT_SIZE + 1
        ]))));
        assert!(has_valid_ops(&raw(&[0xb9])));
    }

    // ---- the valid transaction ----

    #[test]
    fn valid_transaction_passes() {
        let tx = valid_tx();
        assert_eq!(check(&tx), Ok(()));
        for version in [1, 2] {
            let mut tx = tx.clone();
            tx.version = Version(version);
            assert_eq!(check(&tx), Ok(()));
        }
    }

    // ---- maxburnamount ----

    #[test]
    fn max_burn_is_per_output() {
        let mut tx = valid_tx();
        tx.output[3].value = Amount::from_sat(600);
        let err = check(&tx).unwrap_err();
        assert_eq!(err, Rejection::MaxBurnExceeded);
        assert_eq!(err.rpc_code(), -25);
        assert_eq!(
            err.to_string(),
            "Unspendable output exceeds maximum configured by user (maxburnamount)"
        );
        assert_eq!(check_for_broadcast(&tx, Amount::from_sat(599)), Err(err));
        assert_eq!(check_for_broadcast(&tx, Amount::from_sat(600)), Ok(()));
        // Two burns of 600 each pass a limit of 600: Core compares each
        // output, not the sum.
        tx.output
            .push(out(Amount::from_sat(600), op_return(b"more")));
        assert_eq!(check_for_broadcast(&tx, Amount::from_sat(600)), Ok(()));
    }

    #[test]
    fn max_burn_counts_unparsable_and_oversized_scripts() {
        let tx = with_output(raw(&[0xba]));
        assert_eq!(check(&tx), Err(Rejection::MaxBurnExceeded));
        let tx = with_output(raw(&vec![0x51; MAX_SCRIPT_SIZE + 1]));
        assert_eq!(check(&tx), Err(Rejection::MaxBurnExceeded));
    }

    #[test]
    fn max_burn_comes_before_consensus_checks() {
        let mut tx = valid_tx();
        tx.input.clear();
        tx.output[3].value = Amount::ONE_SAT;
        assert_eq!(check(&tx), Err(Rejection::MaxBurnExceeded));
    }

    // ---- CheckTransaction ----

    #[test]
    fn rejects_no_inputs() {
        let mut tx = valid_tx();
        tx.input.clear();
        assert_eq!(check(&tx), Err(Rejection::VinEmpty));
        assert_eq!(Rejection::VinEmpty.rpc_code(), -26);
        assert_eq!(Rejection::VinEmpty.to_string(), "bad-txns-vin-empty");
    }

    #[test]
    fn rejects_no_outputs() {
        let mut tx = valid_tx();
        tx.output.clear();
        assert_eq!(check(&tx), Err(Rejection::VoutEmpty));
    }

    #[test]
    fn rejects_oversize() {
        // Not OP_RETURN but over MAX_SCRIPT_SIZE, so unspendable: worth zero
        // to pass maxburnamount.
        let mut tx = valid_tx();
        tx.output
            .push(out(Amount::ZERO, raw(&vec![0x51; 1_000_000])));
        assert!(tx.base_size() * 4 > 4_000_000);
        assert_eq!(check(&tx), Err(Rejection::Oversize));
        tx.output.last_mut().unwrap().script_pubkey = raw(&vec![0x51; 999_000]);
        assert_eq!(check(&tx), Err(Rejection::TxSize));
    }

    #[test]
    fn rejects_output_above_max_money() {
        let mut tx = valid_tx();
        tx.output[0].value = MAX_MONEY + Amount::ONE_SAT;
        assert_eq!(check(&tx), Err(Rejection::VoutTooLarge));
        tx.output[0].value = MAX_MONEY;
        assert_eq!(check(&tx), Err(Rejection::TxoutTotalTooLarge));
    }

    #[test]
    fn rejects_outputs_summing_above_max_money() {
        let mut tx = valid_tx();
        tx.output[0].value = Amount::from_int_btc(11_000_000);
        tx.output[1].value = Amount::from_int_btc(10_000_000) + Amount::ONE_SAT;
        assert_eq!(check(&tx), Err(Rejection::TxoutTotalTooLarge));
        // Exactly MAX_MONEY in total is allowed.
        tx.output[1].value = Amount::from_int_btc(10_000_000);
        assert_eq!(check(&tx), Ok(()));
    }

    #[test]
    fn rejects_duplicate_inputs() {
        let mut tx = valid_tx();
        tx.input.push(p2wsh_input(2));
        assert_eq!(check(&tx), Ok(()));
        tx.input.push(p2wsh_input(1));
        assert_eq!(check(&tx), Err(Rejection::InputsDuplicate));
    }

    #[test]
    fn rejects_coinbase_script_sig_length() {
        assert_eq!(check(&coinbase(1)), Err(Rejection::CoinbaseLength));
        assert_eq!(check(&coinbase(101)), Err(Rejection::CoinbaseLength));
    }

    #[test]
    fn rejects_null_prevout() {
        let mut tx = valid_tx();
        let mut null = p2wsh_input(2);
        null.previous_output = OutPoint::null();
        tx.input.push(null);
        assert_eq!(check(&tx), Err(Rejection::PrevoutNull));
    }

    // ---- policy ----

    #[test]
    fn rejects_coinbase() {
        assert_eq!(check(&coinbase(2)), Err(Rejection::Coinbase));
        assert_eq!(check(&coinbase(100)), Err(Rejection::Coinbase));
    }

    #[test]
    fn rejects_nonstandard_version() {
        for version in [0, 4, -1] {
            let mut tx = valid_tx();
            tx.version = Version(version);
            assert_eq!(check(&tx), Err(Rejection::Version), "version {version}");
        }
    }

    #[test]
    fn rejects_heavy_transaction() {
        let mut tx = valid_tx();
        tx.output[3].script_pubkey = op_return(&[0; 100_000]);
        assert!(tx.weight().to_wu() > MAX_STANDARD_TX_WEIGHT);
        assert_eq!(check(&tx), Err(Rejection::TxSize));
        tx.output[3].script_pubkey = op_return(&[0; 99_000]);
        assert_eq!(check(&tx), Ok(()));
    }

    #[test]
    fn rejects_large_script_sig() {
        let mut tx = valid_tx();
        // OP_PUSHDATA2 + length + data.
        tx.input[0].script_sig = Builder::new().push_slice(push(&[1; 1_647])).into_script();
        assert_eq!(tx.input[0].script_sig.len(), MAX_STANDARD_SCRIPTSIG_SIZE);
        assert_eq!(check(&tx), Ok(()));
        tx.input[0].script_sig = Builder::new().push_slice(push(&[1; 1_648])).into_script();
        assert_eq!(check(&tx), Err(Rejection::ScriptSigSize));
    }

    #[test]
    fn rejects_script_sig_not_push_only() {
        let mut tx = valid_tx();
        tx.input[0].script_sig = raw(&[0x76]); // OP_DUP
        assert_eq!(check(&tx), Err(Rejection::ScriptSigNotPushOnly));
        tx.input[0].script_sig = raw(&[0x4c, 0x02, 0x01]); // truncated push
        assert_eq!(check(&tx), Err(Rejection::ScriptSigNotPushOnly));
        // Core counts OP_RESERVED as a push here.
        tx.input[0].script_sig = raw(&[0x50]);
        assert_eq!(check(&tx), Ok(()));
    }

    #[test]
    fn rejects_nonstandard_output_scripts() {
        let key = |len: usize, header: u8| vec![header; len];
        let mut v0_21 = vec![0x00, 21];
        v0_21.extend([1; 21]);
        let mut p2pk_bad = vec![33];
        p2pk_bad.extend(key(33, 0x04));
        p2pk_bad.push(0xac);
        let mut multisig_4 = vec![0x51];
        for _ in 0..4 {
            multisig_4.push(33);
            multisig_4.extend(key(33, 0x02));
        }
        multisig_4.extend([0x54, 0xae]);
        let mut multisig_2_of_1 = vec![0x52, 33];
        multisig_2_of_1.extend(key(33, 0x03));
        multisig_2_of_1.extend([0x51, 0xae]);
        for bad in [
            vec![0x51],                   // OP_TRUE
            vec![],                       // empty
            v0_21,                        // v0 program of neither 20 nor 32 bytes
            vec![0x00, 0x02, 0x4e, 0x73], // v0, two bytes (P2A is v1 only)
            vec![0x51, 0x01, 0x4e],       // a one-byte program is no program
            vec![0x6a, 0x93],             // OP_RETURN OP_ADD
            vec![0x6a, 0x4c, 0x05, 0x01], // OP_RETURN, truncated push
            p2pk_bad,                     // 33-byte key with 0x04 header
            multisig_4,                   // 1-of-4
            multisig_2_of_1,              // 2-of-1
        ] {
            let mut tx = with_output(raw(&bad));
            if bad.first() == Some(&0x6a) {
                tx.output.last_mut().unwrap().value = Amount::ZERO;
            }
            assert_eq!(
                check(&tx),
                Err(Rejection::ScriptPubKey),
                "{}",
                bad.to_lower_hex_string()
            );
        }
    }

    #[test]
    fn accepts_every_standard_output_type() {
        let mut p2pkh = vec![0x76, 0xa9, 0x14];
        p2pkh.extend([3; 20]);
        p2pkh.extend([0x88, 0xac]);
        let mut p2sh = vec![0xa9, 0x14];
        p2sh.extend([4; 20]);
        p2sh.push(0x87);
        let mut p2wsh = vec![0x00, 0x20];
        p2wsh.extend([5; 32]);
        let mut p2pk = vec![65, 0x04];
        p2pk.extend([6; 64]);
        p2pk.push(0xac);
        let mut v2 = vec![0x52, 0x20];
        v2.extend([9; 32]);
        let mut v1_20 = vec![0x51, 0x14];
        v1_20.extend([9; 20]);
        let mut v16_40 = vec![0x60, 40];
        v16_40.extend([9; 40]);
        // 1-of-3, the middle key pushed with OP_PUSHDATA1 (Core's GetOp
        // takes any push form).
        let mut multisig = vec![0x51, 33, 2];
        multisig.extend([1; 32]);
        multisig.extend([0x4c, 65, 4]);
        multisig.extend([2; 64]);
        multisig.extend([33, 3]);
        multisig.extend([3; 32]);
        multisig.extend([0x53, 0xae]);
        for good in [
            p2pkh,
            p2sh,
            p2wsh,
            p2pk,
            v2,
            v1_20,
            v16_40,
            vec![0x52, 0x02, 0x4e, 0x73], // v2, two bytes
            multisig,
            vec![0x6a],       // bare OP_RETURN
            vec![0x6a, 0x50], // OP_RESERVED counts as a push
        ] {
            let mut tx = with_output(raw(&good));
            if good.first() == Some(&0x6a) {
                tx.output.last_mut().unwrap().value = Amount::ZERO;
            }
            assert_eq!(check(&tx), Ok(()), "{}", good.to_lower_hex_string());
        }
    }

    #[test]
    fn rejects_two_dust_outputs() {
        let mut tx = valid_tx();
        tx.output[2].value = Amount::from_sat(240); // the anchor is not dust
        tx.output[0].value = Amount::from_sat(293);
        assert_eq!(check(&tx), Ok(()), "one dust output is allowed");
        tx.output[1].value = Amount::from_sat(329);
        assert_eq!(check(&tx), Err(Rejection::Dust));
        tx.output[1].value = Amount::from_sat(330);
        assert_eq!(check(&tx), Ok(()));
    }

    #[test]
    fn dust_thresholds_match_core() {
        let mut p2pkh = vec![0x76, 0xa9, 0x14];
        p2pkh.extend([3; 20]);
        p2pkh.extend([0x88, 0xac]);
        let mut p2sh = vec![0xa9, 0x14];
        p2sh.extend([4; 20]);
        p2sh.push(0x87);
        let cases = [
            (raw(&p2pkh), 546),
            (raw(&p2sh), 540),
            (p2wpkh(), 294),
            (p2tr(), 330),
            (p2a(), 240),
            (op_return(b"x"), 0),
        ];
        for (script, sats) in cases {
            let o = out(Amount::ZERO, script.clone());
            assert_eq!(dust_threshold(&o), Amount::from_sat(sats), "{script}");
            assert_eq!(
                script.minimal_non_dust(),
                Amount::from_sat(sats),
                "{script}"
            );
        }
        // Where rust-bitcoin and Core differ: too long to execute.
        let long = raw(&vec![0x51; MAX_SCRIPT_SIZE + 1]);
        assert_eq!(
            dust_threshold(&out(Amount::ZERO, long.clone())),
            Amount::ZERO
        );
        assert!(long.minimal_non_dust() > Amount::ZERO);
    }

    #[test]
    fn rejects_small_transaction() {
        let mut tx = valid_tx();
        tx.input[0].witness = Witness::new();
        tx.output = vec![out(Amount::from_sat(240), p2a())];
        assert_eq!(tx.base_size(), 64);
        assert_eq!(check(&tx), Err(Rejection::TxSizeSmall));
        tx.input[0].script_sig = raw(&[0x00]);
        assert_eq!(tx.base_size(), 65);
        assert_eq!(check(&tx), Ok(()));
    }

    // ---- witness ----

    fn with_witness(items: Vec<Vec<u8>>) -> Transaction {
        let mut tx = valid_tx();
        tx.input[0].witness = Witness::from_slice(&items);
        tx
    }

    /// A tapscript spend at the stack limit: 1000 items, script, control
    /// block. Standard in Core, so the item bound must not be P2WSH's 101.
    fn tapscript_witness(stack_items: usize) -> Vec<Vec<u8>> {
        let mut items = vec![vec![1]; stack_items];
        items.push(vec![0x51]);
        items.push([vec![0xc0], vec![2; 32]].concat());
        items
    }

    #[test]
    fn rejects_too_many_witness_items() {
        assert_eq!(check(&with_witness(tapscript_witness(1_000))), Ok(()));
        assert_eq!(
            check(&with_witness(tapscript_witness(1_001))),
            Err(Rejection::WitnessNonstandard)
        );
    }

    #[test]
    fn rejects_large_witness_stack_item() {
        let mut items = vec![vec![0; 80], vec![0; 500], vec![0; 3_600]];
        assert_eq!(check(&with_witness(items.clone())), Ok(()));
        items[0].push(0);
        assert_eq!(
            check(&with_witness(items)),
            Err(Rejection::WitnessNonstandard)
        );
    }

    #[test]
    fn rejects_large_last_witness_item() {
        let control = |nodes: usize| [vec![0xc0], vec![2; 32 + 32 * nodes]].concat();
        let items = vec![vec![1], vec![0x51], control(128)];
        assert_eq!(check(&with_witness(items)), Ok(()));
        let items = vec![vec![1], vec![0x51], [control(128), vec![0]].concat()];
        assert_eq!(
            check(&with_witness(items)),
            Err(Rejection::WitnessNonstandard)
        );
    }

    #[test]
    fn rejects_annex() {
        let sig = vec![3; 64];
        assert_eq!(check(&with_witness(vec![sig.clone()])), Ok(()));
        let annexed = vec![sig.clone(), vec![ANNEX_TAG, 1]];
        assert_eq!(
            check(&with_witness(annexed)),
            Err(Rejection::WitnessNonstandard)
        );
        // A lone item starting with 0x50 is a signature, not an annex.
        assert_eq!(check(&with_witness(vec![vec![ANNEX_TAG; 64]])), Ok(()));
    }
}
