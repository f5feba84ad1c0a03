//! A BIP84 test wallet on regtest: a key the test holds, the descriptors
//! and addresses it gives to nightjar, Core and Electrum, and P2WPKH
//! spends signed with it (the "signed elsewhere" of a watch-only setup).
//! Signing is the `bitcoin` crate's sighash and secp256k1.

// `#[path]`-included by several test crates: `pub` is how they reach it.
#![allow(unreachable_pub, dead_code, clippy::unwrap_used, clippy::expect_used)]

use bitcoin::absolute::LockTime;
use bitcoin::bip32::{ChildNumber, DerivationPath, Xpriv, Xpub};
use bitcoin::hashes::Hash;
use bitcoin::secp256k1::{Message, Secp256k1};
use bitcoin::sighash::{EcdsaSighashType, SighashCache};
use bitcoin::transaction::Version;
use bitcoin::{
    Address, Amount, CompressedPublicKey, Network, OutPoint, ScriptBuf, Sequence, Transaction,
    TxIn, TxOut, Witness,
};

/// The wallet's account key (m/84'/1'/0' of a fixed seed).
pub struct TestWallet {
    account: Xpriv,
}

/// A coin of the wallet: where it is, its value, and which key owns it.
#[derive(Debug, Clone, Copy)]
pub struct OwnedCoin {
    /// The output.
    pub outpoint: OutPoint,
    /// Its value.
    pub value: Amount,
    /// 0 receive, 1 change.
    pub chain: u32,
    /// The address index.
    pub index: u32,
}

impl TestWallet {
    /// The wallet of `seed`.
    pub fn new(seed: u8) -> Self {
        let secp = Secp256k1::new();
        let master = Xpriv::new_master(Network::Regtest, &[seed; 32]).unwrap();
        let path: DerivationPath = "m/84h/1h/0h".parse().unwrap();
        TestWallet {
            account: master.derive_priv(&secp, &path).unwrap(),
        }
    }

    /// The account's tpub.
    pub fn tpub(&self) -> Xpub {
        Xpub::from_priv(&Secp256k1::new(), &self.account)
    }

    /// `wpkh(tpub/<chain>/*)` without a checksum.
    pub fn descriptor(&self, chain: u32) -> String {
        format!("wpkh({}/{chain}/*)", self.tpub())
    }

    /// The account key in SLIP-132 `vpub` form (BIP84 on test chains), as
    /// Electrum's `restore` takes a watch-only P2WPKH wallet.
    pub fn vpub(&self) -> String {
        let mut data = bitcoin::base58::decode_check(&self.tpub().to_string()).unwrap();
        data[..4].copy_from_slice(&[0x04, 0x5f, 0x1c, 0xf6]);
        bitcoin::base58::encode_check(&data)
    }

    fn key(&self, chain: u32, index: u32) -> Xpriv {
        let secp = Secp256k1::new();
        self.account
            .derive_priv(
                &secp,
                &[
                    ChildNumber::from_normal_idx(chain).unwrap(),
                    ChildNumber::from_normal_idx(index).unwrap(),
                ],
            )
            .unwrap()
    }

    fn public(&self, chain: u32, index: u32) -> CompressedPublicKey {
        let secp = Secp256k1::new();
        CompressedPublicKey(self.key(chain, index).private_key.public_key(&secp))
    }

    /// The address at `chain`/`index`.
    pub fn address(&self, chain: u32, index: u32) -> Address {
        Address::p2wpkh(&self.public(chain, index), Network::Regtest)
    }

    /// Its script.
    pub fn script(&self, chain: u32, index: u32) -> ScriptBuf {
        self.address(chain, index).script_pubkey()
    }

    /// A transaction spending `coin` to `outputs`, signed.
    pub fn spend(&self, coin: OwnedCoin, outputs: Vec<TxOut>) -> Transaction {
        let secp = Secp256k1::new();
        let mut tx = Transaction {
            version: Version::TWO,
            lock_time: LockTime::ZERO,
            input: vec![TxIn {
                previous_output: coin.outpoint,
                script_sig: ScriptBuf::new(),
                sequence: Sequence::ENABLE_RBF_NO_LOCKTIME,
                witness: Witness::new(),
            }],
            output: outputs,
        };
        let script = self.script(coin.chain, coin.index);
        let sighash = SighashCache::new(&tx)
            .p2wpkh_signature_hash(0, &script, coin.value, EcdsaSighashType::All)
            .unwrap();
        let key = self.key(coin.chain, coin.index).private_key;
        let signature = bitcoin::ecdsa::Signature {
            signature: secp.sign_ecdsa(&Message::from_digest(sighash.to_byte_array()), &key),
            sighash_type: EcdsaSighashType::All,
        };
        tx.input[0].witness = Witness::p2wpkh(&signature, &key.public_key(&secp));
        tx
    }
}
