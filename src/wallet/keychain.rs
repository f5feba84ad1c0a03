//! Keychains: the streams of scripts a watch-only wallet follows, read
//! from the config file's `descriptors` entries.
//!
//! An entry is either an output descriptor in Bitcoin Core's syntax
//! (`wpkh([d34db33f/84h/0h/0h]xpub…/0/*)#checksum`, `tr(…)`,
//! `sh(wpkh(…))`, `wsh(multi(…))`, `pkh(…)`), or a bare extended public
//! key as Electrum and most hardware wallets export it, whose SLIP-132
//! prefix names the script type: `xpub`/`tpub` for P2PKH, `ypub`/`upub`
//! for P2SH-wrapped P2WPKH, `zpub`/`vpub` for native P2WPKH. A bare key
//! is an account key and gives two keychains, receive (`/0/*`) and change
//! (`/1/*`); so does a multipath descriptor (`/<0;1>/*`).
//!
//! Parsing, checksums and derivation are `miniscript`'s and the `bitcoin`
//! crate's; this module only adds what a config file needs: the bare-key
//! shorthand, the network check, and refusing private keys without ever
//! repeating one (an error message ends up in logs, terminals and bug
//! reports, where a secret must not follow it).

use std::fmt;
use std::str::FromStr;

use bitcoin::bip32::Xpub;
use bitcoin::{Network, NetworkKind, ScriptBuf};
use miniscript::descriptor::checksum::desc_checksum;
use miniscript::descriptor::{ConversionError, Wildcard};
use miniscript::{Descriptor, DescriptorPublicKey, ForEachKey};

/// The first index that would be a hardened child: BIP32 derives indexes
/// below it from a public key, and none at or above it.
const HARDENED: u32 = 1 << 31;

/// Why a config entry is not a usable keychain. The messages say what is
/// wrong and what to write instead, and never repeat a private key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeychainError {
    /// The entry holds a private key (xprv and its SLIP-132 cousins, or a
    /// WIF key).
    #[error(
        "watch-only: give the xpub, never a private key (this entry holds one, \
         which is not repeated here; remove it from the file)"
    )]
    PrivateKey,
    /// The `#checksum` does not match the descriptor.
    #[error(
        "the descriptor's checksum #{given} does not match it, so the descriptor was \
         changed or mistyped; copy it again from the wallet that made it"
    )]
    Checksum {
        /// The checksum as written.
        given: String,
    },
    /// Not a descriptor nodes understand.
    #[error(
        "not a valid descriptor: {why}; write it as Bitcoin Core does, \
         e.g. wpkh([fingerprint/84h/0h/0h]xpub…/0/*), or give a bare xpub, ypub or zpub"
    )]
    Invalid {
        /// What the parser said.
        why: String,
    },
    /// Neither a descriptor nor a usable extended public key.
    #[error(
        "not a descriptor and not an extended public key ({why}); give a descriptor \
         such as wpkh(xpub…/0/*), or a bare xpub, ypub or zpub (tpub, upub or vpub \
         on the test networks)"
    )]
    BadKey {
        /// What is wrong with it.
        why: &'static str,
    },
    /// A key for another network than the node's.
    #[error(
        "the key is {} but the node runs on {}; give the wallet's key for {}, \
         or set chain to the wallet's network",
        key_network(*key),
        network.to_core_arg(),
        network.to_core_arg()
    )]
    WrongNetwork {
        /// The key's kind of network.
        key: NetworkKind,
        /// The node's network.
        network: Network,
    },
    /// A SLIP-132 key (`ypub`, `zpub`, …) inside a descriptor, where the
    /// descriptor, not the key, says the script type.
    #[error(
        "a {prefix} key inside a descriptor: descriptors take xpub or tpub keys, the \
         script type being the descriptor's own; give the {prefix} alone, without a \
         descriptor around it"
    )]
    Slip132InDescriptor {
        /// The key's prefix.
        prefix: &'static str,
    },
    /// A bare key of a multisig wallet (`Ypub`, `Zpub`, …): one cosigner's
    /// key does not say which scripts the wallet uses.
    #[error(
        "a {prefix} is one cosigner's key of a multisig wallet, which alone says \
         nothing of the wallet's scripts; give the wallet's descriptor, \
         e.g. wsh(sortedmulti(2,xpub…/0/*,xpub…/0/*,xpub…/0/*))"
    )]
    MultisigKey {
        /// The key's prefix.
        prefix: &'static str,
    },
    /// The descriptor parses but its scripts cannot be derived from public
    /// keys (a hardened step after the xpub).
    #[error(
        "its scripts cannot be derived from the public key ({why}); after the xpub \
         only unhardened steps can be followed: write …/0/*, not …/0h/* or …/*h"
    )]
    Derivation {
        /// What the derivation said.
        why: String,
    },
    /// [`Keychain::script_at`] beyond the keychain.
    #[error("index {index} is out of range: {}", if *ranged {
        "a ranged keychain has indexes 0 to 2147483647"
    } else {
        "a keychain without /* has the one index 0"
    })]
    IndexOutOfRange {
        /// The index asked for.
        index: u32,
        /// Whether the keychain is ranged.
        ranged: bool,
    },
}

fn key_network(kind: NetworkKind) -> &'static str {
    match kind {
        NetworkKind::Main => "a mainnet key (xpub, ypub, zpub)",
        NetworkKind::Test => "a test-network key (tpub, upub, vpub)",
    }
}

/// The script type a bare account key stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ScriptType {
    /// P2PKH (BIP44).
    Pkh,
    /// P2WPKH nested in P2SH (BIP49).
    ShWpkh,
    /// Native P2WPKH (BIP84).
    Wpkh,
}

/// What an extended key's version bytes say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyKind {
    /// A single-signature public key, with its script type.
    Public(ScriptType),
    /// A public key of a multisig wallet (capitalised prefixes).
    MultisigPublic,
    /// Any private key.
    Private,
}

/// One registered version of an extended key (BIP32, BIP49, BIP84 and
/// SLIP-132).
struct Version {
    bytes: [u8; 4],
    prefix: &'static str,
    network: NetworkKind,
    kind: KeyKind,
}

const fn v(bytes: u32, prefix: &'static str, network: NetworkKind, kind: KeyKind) -> Version {
    Version {
        bytes: bytes.to_be_bytes(),
        prefix,
        network,
        kind,
    }
}

use KeyKind::{MultisigPublic, Private, Public};
use NetworkKind::{Main, Test};
use ScriptType::{Pkh, ShWpkh, Wpkh};

/// The registered versions. Private ones are listed so they can be
/// recognised and refused, never decoded.
const VERSIONS: [Version; 20] = [
    v(0x0488_b21e, "xpub", Main, Public(Pkh)),
    v(0x049d_7cb2, "ypub", Main, Public(ShWpkh)),
    v(0x04b2_4746, "zpub", Main, Public(Wpkh)),
    v(0x0295_b43f, "Ypub", Main, MultisigPublic),
    v(0x02aa_7ed3, "Zpub", Main, MultisigPublic),
    v(0x0435_87cf, "tpub", Test, Public(Pkh)),
    v(0x044a_5262, "upub", Test, Public(ShWpkh)),
    v(0x045f_1cf6, "vpub", Test, Public(Wpkh)),
    v(0x0242_89ef, "Upub", Test, MultisigPublic),
    v(0x0257_5483, "Vpub", Test, MultisigPublic),
    v(0x0488_ade4, "xprv", Main, Private),
    v(0x049d_7878, "yprv", Main, Private),
    v(0x04b2_430c, "zprv", Main, Private),
    v(0x0295_b005, "Yprv", Main, Private),
    v(0x02aa_7a99, "Zprv", Main, Private),
    v(0x0435_8394, "tprv", Test, Private),
    v(0x044a_4e28, "uprv", Test, Private),
    v(0x045f_18bc, "vprv", Test, Private),
    v(0x0242_85b5, "Uprv", Test, Private),
    v(0x0257_5048, "Vprv", Test, Private),
];

/// The version of a decoded 78-byte extended key, if registered.
fn version_of(data: &[u8]) -> Option<&'static Version> {
    let head = data.get(..4)?;
    VERSIONS.iter().find(|v| v.bytes == head)
}

/// The decoded payload of `token` if it is a base58check extended key.
fn decode_xkey(token: &str) -> Option<Vec<u8>> {
    bitcoin::base58::decode_check(token)
        .ok()
        .filter(|d| d.len() == 78)
}

/// The words of `text` that could be keys: runs of letters and digits.
fn tokens(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|t| !t.is_empty())
}

/// Whether `token` is, or was meant to be, a private key. A mistyped
/// `xprv…` fails its checksum but is still a secret, so the prefix alone
/// is enough.
fn looks_secret(token: &str) -> bool {
    let private_prefix = VERSIONS
        .iter()
        .filter(|v| v.kind == Private)
        .any(|v| token.starts_with(v.prefix));
    if private_prefix && token.len() > 100 {
        return true;
    }
    if bitcoin::PrivateKey::from_wif(token).is_ok() {
        return true;
    }
    decode_xkey(token)
        .and_then(|d| version_of(&d))
        .is_some_and(|v| v.kind == Private)
}

/// `message` with every long word of `text` (keys, in practice) replaced,
/// so a parser's error cannot carry a key that slipped past
/// [`looks_secret`] (a mistyped WIF, say) into a log.
fn redact(message: &str, text: &str) -> String {
    let mut out = message.to_owned();
    for token in tokens(text).filter(|t| t.len() >= 40) {
        out = out.replace(token, "<key>");
    }
    out
}

/// One stream of scripts a wallet watches: a single-path output
/// descriptor, ranged (`/*`: a script per index) or not (one script).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Keychain {
    descriptor: Descriptor<DescriptorPublicKey>,
}

impl Keychain {
    /// Parse one config entry: a descriptor or a bare xpub/ypub/zpub/tpub/upub/vpub.
    /// May yield 1 or 2 keychains: a bare key and a `<0;1>` multipath
    /// descriptor give receive then change (a multipath with more
    /// branches gives one keychain per branch, in order).
    ///
    /// Checks everything a scan would trip on later: the checksum (when
    /// given), the network of every extended key, and that scripts derive
    /// from public keys alone.
    pub fn parse(text: &str, network: Network) -> Result<Vec<Keychain>, KeychainError> {
        let text = text.trim();
        // First, before any parser can quote the text back.
        if tokens(text).any(looks_secret) {
            return Err(KeychainError::PrivateKey);
        }
        let chains = if text.contains('(') {
            parse_descriptor(text, network)?
        } else {
            parse_bare_key(text, network)?
        };
        for chain in &chains {
            // Index 0 exists for every keychain: deriving it now turns any
            // other derivation problem into a config error, not a failure
            // in the middle of a scan.
            chain.script_at(0)?;
        }
        Ok(chains)
    }

    /// The script at `index` (for a non-ranged keychain, only index 0 exists).
    pub fn script_at(&self, index: u32) -> Result<ScriptBuf, KeychainError> {
        let ranged = self.is_ranged();
        if index >= HARDENED || (!ranged && index != 0) {
            return Err(KeychainError::IndexOutOfRange { index, ranged });
        }
        let definite = self
            .descriptor
            .at_derivation_index(index)
            .map_err(derivation)?;
        // Derivation proper (the elliptic-curve step) happens here.
        let secp = bitcoin::secp256k1::Secp256k1::verification_only();
        let concrete = definite.derived_descriptor(&secp).map_err(derivation)?;
        Ok(concrete.script_pubkey())
    }

    /// Whether it derives a script per index (`/*`).
    pub fn is_ranged(&self) -> bool {
        self.descriptor.has_wildcard()
    }

    /// The canonical descriptor with checksum, e.g. "wpkh([..]tpub…/0/*)#abcd1234": a stable id for persisted state.
    ///
    /// Canonical as `miniscript` prints it: hardened steps as `'`, the
    /// checksum recomputed. The same keychain written as a bare key or as
    /// its descriptor gives the same string.
    pub fn descriptor(&self) -> String {
        self.descriptor.to_string()
    }
}

impl fmt::Display for Keychain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.descriptor, f)
    }
}

fn derivation(e: ConversionError) -> KeychainError {
    KeychainError::Derivation { why: e.to_string() }
}

/// A descriptor entry, already known to hold no private key.
fn parse_descriptor(text: &str, network: Network) -> Result<Vec<Keychain>, KeychainError> {
    let invalid = |why: String| KeychainError::Invalid {
        why: redact(&why, text),
    };
    let body = match text.split_once('#') {
        Some((body, given)) => {
            let expected = desc_checksum(body).map_err(|e| invalid(e.to_string()))?;
            if expected != given {
                return Err(KeychainError::Checksum {
                    given: given.to_owned(),
                });
            }
            body
        }
        None => text,
    };
    for kind in ["addr(", "raw(", "combo("] {
        if body.starts_with(kind) {
            return Err(invalid(format!(
                "{kind}…) gives no key to derive a wallet's scripts from"
            )));
        }
    }
    // miniscript would only say the key does not parse; say why.
    for token in tokens(body) {
        if let Some(version) = decode_xkey(token).and_then(|d| version_of(&d))
            && !matches!(version.prefix, "xpub" | "tpub")
        {
            return Err(KeychainError::Slip132InDescriptor {
                prefix: version.prefix,
            });
        }
    }
    let descriptor =
        Descriptor::<DescriptorPublicKey>::from_str(body).map_err(|e| invalid(e.to_string()))?;
    check_network(&descriptor, network)?;
    check_unhardened(&descriptor)?;
    let singles = descriptor
        .into_single_descriptors()
        .map_err(|e| invalid(e.to_string()))?;
    Ok(singles
        .into_iter()
        .map(|descriptor| Keychain { descriptor })
        .collect())
}

/// Every extended key of `descriptor` must be for `network` (raw public
/// keys carry no network and always pass).
fn check_network(
    descriptor: &Descriptor<DescriptorPublicKey>,
    network: Network,
) -> Result<(), KeychainError> {
    let ours = NetworkKind::from(network);
    let mut wrong = None;
    descriptor.for_each_key(|key| {
        let kind = match key {
            DescriptorPublicKey::Single(_) => None,
            DescriptorPublicKey::XPub(x) => Some(x.xkey.network),
            DescriptorPublicKey::MultiXPub(x) => Some(x.xkey.network),
        };
        if let Some(kind) = kind.filter(|k| *k != ours) {
            wrong = Some(kind);
        }
        true
    });
    match wrong {
        Some(key) => Err(KeychainError::WrongNetwork { key, network }),
        None => Ok(()),
    }
}

/// Every extended key of `descriptor` must derive without hardened steps
/// after it: a public key cannot follow them. Checked up front because
/// `miniscript` 12 panics, rather than fail, when asked to derive such a
/// key at an index, and a [`Keychain`] promises [`Keychain::script_at`]
/// works for every index in range.
pub(crate) fn check_unhardened(
    descriptor: &Descriptor<DescriptorPublicKey>,
) -> Result<(), KeychainError> {
    let hardened = descriptor.for_any_key(|key| {
        let wildcard = match key {
            DescriptorPublicKey::Single(_) => Wildcard::None,
            DescriptorPublicKey::XPub(x) => x.wildcard,
            DescriptorPublicKey::MultiXPub(x) => x.wildcard,
        };
        key.has_hardened_step() || wildcard == Wildcard::Hardened
    });
    if hardened {
        return Err(KeychainError::Derivation {
            why: "a hardened step after the extended key".to_owned(),
        });
    }
    Ok(())
}

/// A bare account key: receive and change keychains of the script type
/// its prefix registers.
fn parse_bare_key(text: &str, network: Network) -> Result<Vec<Keychain>, KeychainError> {
    // The base58 error itself is not shown: it would quote checksum bytes
    // of what might be a mistyped secret.
    let mut data = decode_xkey(text).ok_or(KeychainError::BadKey {
        why: "not base58 with a valid checksum, or not 78 bytes",
    })?;
    let version = version_of(&data).ok_or(KeychainError::BadKey {
        why: "unknown version prefix",
    })?;
    let script = match version.kind {
        Public(script) => script,
        MultisigPublic => {
            return Err(KeychainError::MultisigKey {
                prefix: version.prefix,
            });
        }
        Private => return Err(KeychainError::PrivateKey),
    };
    if version.network != NetworkKind::from(network) {
        return Err(KeychainError::WrongNetwork {
            key: version.network,
            network,
        });
    }
    // SLIP-132 differs from BIP32 in the version bytes only: put the plain
    // xpub/tpub ones back and let the bitcoin crate decode the rest.
    let plain = match version.network {
        Main => 0x0488_b21e_u32,
        Test => 0x0435_87cf_u32,
    };
    if let Some(head) = data.get_mut(..4) {
        head.copy_from_slice(&plain.to_be_bytes());
    }
    let xpub = Xpub::decode(&data).map_err(|_| KeychainError::BadKey {
        why: "not a valid extended public key",
    })?;
    [0, 1]
        .into_iter()
        .map(|branch| {
            let text = match script {
                Pkh => format!("pkh({xpub}/{branch}/*)"),
                ShWpkh => format!("sh(wpkh({xpub}/{branch}/*))"),
                Wpkh => format!("wpkh({xpub}/{branch}/*)"),
            };
            Descriptor::<DescriptorPublicKey>::from_str(&text)
                .map(|descriptor| Keychain { descriptor })
                .map_err(|e| KeychainError::Invalid {
                    why: redact(&e.to_string(), &text),
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    use bitcoin::Address;

    /// BIP84's account 0 of "abandon … about", as Electrum exports it.
    const BIP84_ZPUB: &str = "zpub6rFR7y4Q2AijBEqTUquhVz398htDFrtymD9xYYfG1m4wAcvPhXNfE3EfH1r1ADqtfSdVCToUG868RvUUkgDKf31mGDtKsAYz2oz2AGutZYs";
    /// The same key with the plain BIP32 version bytes.
    const BIP84_XPUB: &str = "xpub6CatWdiZiodmUeTDp8LT5or8nmbKNcuyvz7WyksVFkKB4RHwCD3XyuvPEbvqAQY3rAPshWcMLoP2fMFMKHPJ4ZeZXYVUhLv1VMrjPC7PW6V";
    /// BIP84's published account private key (a test vector, public).
    const BIP84_ZPRV: &str = "zprvAdG4iTXWBoARxkkzNpNh8r6Qag3irQB8PzEMkAFeTRXxHpbF9z4QgEvBRmfvqWvGp42t42nvgGpNgYSJA9iefm1yYNZKEm7z6qUWCroSQnE";
    /// BIP84's first receiving private key, WIF.
    const BIP84_WIF: &str = "KyZpNDKnfs94vbrwhJneDi77V6jF64PWPF8x5cdJb8ifgg2DUc9d";
    /// BIP49's testnet account 0 of "abandon … about".
    const BIP49_UPUB: &str = "upub5EFU65HtV5TeiSHmZZm7FUffBGy8UKeqp7vw43jYbvZPpoVsgU93oac7Wk3u6moKegAEWtGNF8DehrnHtv21XXEMYRUocHqguyjknFHYfgY";
    /// BIP49's testnet account private key.
    const BIP49_UPRV: &str = "uprv91G7gZkzehuMVxDJTYE6tLivdF8e4rvzSu1LFfKw3b2Qx1Aj8vpoFnHdfUZ3hmi9jsvPifmZ24RTN2KhwB8BfMLTVqaBReibyaFFcTP1s9n";
    /// m/44'/0'/0' of "abandon … about" (BIP44 publishes no vectors; this
    /// is the account every BIP39 tool shows for that mnemonic).
    const BIP44_XPUB: &str = "xpub6BosfCnifzxcFwrSzQiqu2DBVTshkCXacvNsWGYJVVhhawA7d4R5WSWGFNbi8Aw6ZRc1brxMyWMzG3DSSSSoekkudhUd9yLb6qx39T9nMdj";
    /// BIP86's account 0 of "abandon … about".
    const BIP86_XPUB: &str = "xpub6BgBgsespWvERF3LHQu6CnqdvfEvtMcQjYrcRzx53QJjSxarj2afYWcLteoGVky7D3UKDP9QyrLprQ3VCECoY49yfdDEHGCtMMj92pReUsQ";

    /// BIP84's first two receiving addresses and first change address.
    const BIP84_RECEIVE: [&str; 2] = [
        "bc1qcr8te4kr609gcawutmrza0j4xv80jy8z306fyu",
        "bc1qnjg0jd8228aq7egyzacy8cys3knf9xvrerkf9g",
    ];
    const BIP84_CHANGE: &str = "bc1q8c6fshw2dlwun7ekn9qwf37cu2rn755upcp6el";

    fn script(address: &str) -> ScriptBuf {
        Address::from_str(address)
            .unwrap()
            .assume_checked()
            .script_pubkey()
    }

    /// The keychain's scripts from index 0 on are those of `addresses`.
    fn assert_pays(chain: &Keychain, addresses: &[&str]) {
        for (index, address) in (0..).zip(addresses) {
            assert_eq!(
                chain.script_at(index).unwrap(),
                script(address),
                "{chain} at {index}"
            );
        }
    }

    fn one(text: &str, network: Network) -> Keychain {
        let mut chains = Keychain::parse(text, network).unwrap();
        assert_eq!(chains.len(), 1, "{text}");
        chains.remove(0)
    }

    #[test]
    fn bip84_through_the_bare_zpub_and_the_descriptor() {
        let bare = Keychain::parse(BIP84_ZPUB, Network::Bitcoin).unwrap();
        assert_eq!(bare.len(), 2);
        assert!(bare.iter().all(Keychain::is_ranged));
        assert_pays(&bare[0], &BIP84_RECEIVE);
        assert_pays(&bare[1], &[BIP84_CHANGE]);

        let desc = one(
            &format!("wpkh([73c5da0a/84h/0h/0h]{BIP84_XPUB}/0/*)"),
            Network::Bitcoin,
        );
        assert_pays(&desc, &BIP84_RECEIVE);
        // Without the origin, the descriptor is the bare key's receive
        // keychain exactly: same id.
        let plain = one(&format!("wpkh({BIP84_XPUB}/0/*)"), Network::Bitcoin);
        assert_eq!(plain, bare[0]);
        assert_eq!(plain.descriptor(), bare[0].descriptor());
        assert_eq!(
            bare[1].descriptor().split('#').next().unwrap(),
            format!("wpkh({BIP84_XPUB}/1/*)")
        );
    }

    #[test]
    fn bip49_and_bip44_bare_keys_take_their_script_types() {
        let upub = Keychain::parse(BIP49_UPUB, Network::Testnet4).unwrap();
        assert_pays(&upub[0], &["2Mww8dCYPUpKHofjgcXcBCEGmniw9CoaiD2"]);
        assert!(upub[0].descriptor().starts_with("sh(wpkh(tpub"));
        assert!(upub[1].descriptor().contains("/1/*))#"));

        let xpub = Keychain::parse(BIP44_XPUB, Network::Bitcoin).unwrap();
        assert_pays(
            &xpub[0],
            &[
                "1LqBGSKuX5yYUonjxT5qGfpUsXKYYWeabA",
                "1Ak8PffB2meyfYnbXZR9EGfLfFZVpzJvQP",
            ],
        );
        assert!(xpub[0].descriptor().starts_with("pkh(xpub"));
    }

    #[test]
    fn taproot_and_nested_descriptors_derive() {
        let tr = one(
            &format!("tr([73c5da0a/86h/0h/0h]{BIP86_XPUB}/0/*)"),
            Network::Bitcoin,
        );
        assert_pays(
            &tr,
            &["bc1p5cyxnuxmeuwuvkwfem96lqzszd02n6xdcjrs20cac6yqjjwudpxqkedrcr"],
        );
        let multi = one(
            &format!("wsh(multi(1,{BIP84_XPUB}/0/*,{BIP44_XPUB}/0/*))"),
            Network::Bitcoin,
        );
        assert!(multi.script_at(7).unwrap().is_p2wsh());
        let sh = one(&format!("sh(wpkh({BIP84_XPUB}/0/*))"), Network::Bitcoin);
        assert!(sh.script_at(0).unwrap().is_p2sh());
    }

    #[test]
    fn multipath_gives_receive_then_change() {
        let chains = Keychain::parse(
            &format!("wpkh([73c5da0a/84h/0h/0h]{BIP84_XPUB}/<0;1>/*)"),
            Network::Bitcoin,
        )
        .unwrap();
        assert_eq!(chains.len(), 2);
        assert_pays(&chains[0], &[BIP84_RECEIVE[0]]);
        assert_pays(&chains[1], &[BIP84_CHANGE]);
        assert!(chains[1].descriptor().contains("/1/*)#"));
    }

    #[test]
    fn checksums_are_optional_but_verified() {
        let body = format!("wpkh({BIP84_XPUB}/0/*)");
        let sum = desc_checksum(&body).unwrap();
        let with = one(&format!("{body}#{sum}"), Network::Bitcoin);
        assert_eq!(with, one(&body, Network::Bitcoin));
        assert_eq!(with.descriptor(), format!("{body}#{sum}"));

        let wrong = Keychain::parse(&format!("{body}#qqqqqqqq"), Network::Bitcoin).unwrap_err();
        assert_eq!(
            wrong,
            KeychainError::Checksum {
                given: "qqqqqqqq".into()
            }
        );
        assert!(wrong.to_string().contains("copy it again"), "{wrong}");
        // A one-letter change of the key breaks the checksum.
        let typo = format!("{body}#{sum}").replacen("xpub6Ca", "xpub6Cb", 1);
        assert!(matches!(
            Keychain::parse(&typo, Network::Bitcoin),
            Err(KeychainError::Checksum { .. })
        ));
    }

    #[test]
    fn private_keys_are_refused_and_never_repeated() {
        let xprv_desc = "wpkh(xprv9s21ZrQH143K3QTDL4LXw2F7HEK3wJUD2nW2nRk4stbPy6cq3jPPqjiChkVvvNKmPGJxWUtg6LnF5kejMRNNU3TGtRBeJgk33yuGBxrMPHi/0/*)";
        let wrong_sum = format!("{}#qqqqqqqq", &xprv_desc);
        let mistyped = xprv_desc.replacen("xprv9s21Zr", "xprv9s21Zs", 1);
        let wif_multi = format!("wsh(multi(1,{BIP84_WIF},{BIP84_XPUB}/0/*))");
        for (text, net) in [
            (xprv_desc, Network::Bitcoin),
            (wrong_sum.as_str(), Network::Bitcoin),
            (mistyped.as_str(), Network::Bitcoin),
            (BIP84_ZPRV, Network::Bitcoin),
            (BIP84_ZPRV, Network::Regtest),
            (BIP49_UPRV, Network::Testnet4),
            (BIP84_WIF, Network::Bitcoin),
            (&format!("pkh({BIP84_WIF})"), Network::Bitcoin),
            (wif_multi.as_str(), Network::Bitcoin),
        ] {
            let e = Keychain::parse(text, net).unwrap_err();
            assert_eq!(e, KeychainError::PrivateKey, "{text}");
            let message = e.to_string();
            assert!(message.contains("give the xpub, never a private key"));
            for token in tokens(text).filter(|t| t.len() > 20) {
                assert!(!message.contains(token), "{message}");
                assert!(!format!("{e:?}").contains(token));
            }
        }
    }

    #[test]
    fn a_key_for_the_other_network_is_refused_naming_both() {
        let e = Keychain::parse(BIP84_ZPUB, Network::Regtest).unwrap_err();
        assert_eq!(
            e,
            KeychainError::WrongNetwork {
                key: NetworkKind::Main,
                network: Network::Regtest
            }
        );
        let m = e.to_string();
        assert!(m.contains("mainnet key") && m.contains("regtest"), "{m}");
        let e = Keychain::parse(BIP49_UPUB, Network::Bitcoin).unwrap_err();
        let m = e.to_string();
        assert!(m.contains("test-network key") && m.contains("main"), "{m}");
        // Inside a descriptor, any extended key of it.
        let e = Keychain::parse(
            &format!("wsh(multi(1,{BIP84_XPUB}/0/*,{BIP44_XPUB}/0/*))"),
            Network::Signet,
        )
        .unwrap_err();
        assert!(matches!(e, KeychainError::WrongNetwork { .. }), "{e}");
    }

    #[test]
    fn a_non_ranged_keychain_has_one_script() {
        let key = one(&format!("wpkh({BIP84_XPUB}/0/0)"), Network::Bitcoin);
        assert!(!key.is_ranged());
        assert_pays(&key, &[BIP84_RECEIVE[0]]);
        assert_eq!(
            key.script_at(1).unwrap_err(),
            KeychainError::IndexOutOfRange {
                index: 1,
                ranged: false
            }
        );
        let raw = one(
            "wpkh(0330d54fd0dd420a6e5f8d3624f5f3482cae350f79d5f0753bf5beef9c2d91af3c)",
            Network::Regtest,
        );
        assert_pays(&raw, &[BIP84_RECEIVE[0]]);
        let ranged = one(&format!("wpkh({BIP84_XPUB}/0/*)"), Network::Bitcoin);
        assert!(matches!(
            ranged.script_at(HARDENED),
            Err(KeychainError::IndexOutOfRange { ranged: true, .. })
        ));
    }

    #[test]
    fn unusable_entries_say_why() {
        let cases = [
            ("wpkh(nonsense)", "not a valid descriptor"),
            ("addr(bc1qcr8te4kr609gcawutmrza0j4xv80jy8z306fyu)", "no key"),
            ("hello", "not a descriptor and not an extended public key"),
            (
                &format!("wpkh({BIP84_ZPUB}/0/*)"),
                "a zpub key inside a descriptor",
            ),
            (&format!("wpkh({BIP84_XPUB}/0h/*)"), "only unhardened steps"),
            (&format!("wpkh({BIP84_XPUB}/0/*h)"), "only unhardened steps"),
        ];
        for (text, says) in cases {
            let e = Keychain::parse(text, Network::Bitcoin).unwrap_err();
            assert!(e.to_string().contains(says), "{text}: {e}");
        }
    }
}
