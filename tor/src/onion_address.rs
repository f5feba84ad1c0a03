//! Version 3 onion addresses (`<56 base32 chars>.onion`), as rend-spec-v3 defines
//! them: the service's ed25519 identity key, a two-byte checksum and a version byte.
//!
//! nightjar needs this outside Arti too: addrv2 gossip carries only the 32-byte key
//! (BIP155 `TORV3`), and the address manager, the config parser and `getpeerinfo`
//! all move between that key and the textual name.

use std::fmt;
use std::str::FromStr;

use data_encoding::BASE32_NOPAD;
use sha3::{Digest, Sha3_256};

/// The only onion address version we (and the Tor network) accept.
pub const ONION_V3_VERSION: u8 = 3;

/// Length of the base32 label of a v3 onion address (35 bytes → 56 chars).
pub const ONION_V3_LABEL_LEN: usize = 56;

/// The top-level domain of onion addresses.
const ONION_SUFFIX: &str = ".onion";

/// Domain-separation prefix of the checksum, fixed by rend-spec-v3.
const CHECKSUM_PREFIX: &[u8] = b".onion checksum";

/// A v3 onion service address: the service's ed25519 identity key.
///
/// The checksum and version are derived, so any value of this type is a valid,
/// canonical address. `Display` prints the lowercase `xxx.onion` form.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OnionV3Address {
    pubkey: [u8; 32],
}

/// Why a string is not a v3 onion address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OnionAddressError {
    /// The label is not 56 characters long (v2 addresses were 16; both are rejected).
    #[error(
        "an onion v3 address has {ONION_V3_LABEL_LEN} base32 characters before .onion, this one has {0}"
    )]
    WrongLength(usize),
    /// The name has more than one label before `.onion`.
    #[error("onion address has a subdomain; give only <56 characters>.onion")]
    Subdomain,
    /// The label is not base32 (`a-z`, `2-7`).
    #[error("onion address is not base32 (allowed: a-z and 2-7)")]
    NotBase32,
    /// The version byte is not 3.
    #[error("onion address has version {0}, only version {ONION_V3_VERSION} exists")]
    UnsupportedVersion(u8),
    /// The checksum does not match the key: a typo, most likely.
    #[error("onion address checksum does not match (mistyped address?)")]
    BadChecksum,
}

impl OnionV3Address {
    /// The address of the service whose ed25519 identity key is `pubkey`.
    pub fn from_pubkey(pubkey: [u8; 32]) -> Self {
        OnionV3Address { pubkey }
    }

    /// The service's ed25519 identity key, as carried in BIP155 `TORV3` entries.
    pub fn pubkey(&self) -> &[u8; 32] {
        &self.pubkey
    }

    /// The two checksum bytes that the textual form carries.
    fn checksum(pubkey: &[u8; 32]) -> [u8; 2] {
        let mut hasher = Sha3_256::new();
        hasher.update(CHECKSUM_PREFIX);
        hasher.update(pubkey);
        hasher.update([ONION_V3_VERSION]);
        let digest = hasher.finalize();
        [digest[0], digest[1]]
    }

    /// The 56-character base32 label, lowercase, without `.onion`.
    pub fn label(&self) -> String {
        let mut raw = [0u8; 35];
        raw[..32].copy_from_slice(&self.pubkey);
        raw[32..34].copy_from_slice(&Self::checksum(&self.pubkey));
        raw[34] = ONION_V3_VERSION;
        BASE32_NOPAD.encode(&raw).to_ascii_lowercase()
    }
}

impl FromStr for OnionV3Address {
    type Err = OnionAddressError;

    /// Parses `xxx.onion` or a bare 56-character label, in any letter case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let label = match s.len().checked_sub(ONION_SUFFIX.len()) {
            Some(cut) if s.is_char_boundary(cut) && s[cut..].eq_ignore_ascii_case(ONION_SUFFIX) => {
                &s[..cut]
            }
            _ => s,
        };
        if label.contains('.') {
            return Err(OnionAddressError::Subdomain);
        }
        if label.len() != ONION_V3_LABEL_LEN {
            return Err(OnionAddressError::WrongLength(label.len()));
        }
        let raw = BASE32_NOPAD
            .decode(label.to_ascii_uppercase().as_bytes())
            .map_err(|_| OnionAddressError::NotBase32)?;
        let raw: [u8; 35] = raw.try_into().map_err(|_| OnionAddressError::NotBase32)?;
        let mut pubkey = [0u8; 32];
        pubkey.copy_from_slice(&raw[..32]);
        if raw[34] != ONION_V3_VERSION {
            return Err(OnionAddressError::UnsupportedVersion(raw[34]));
        }
        if raw[32..34] != Self::checksum(&pubkey) {
            return Err(OnionAddressError::BadChecksum);
        }
        Ok(OnionV3Address { pubkey })
    }
}

impl fmt::Display for OnionV3Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{ONION_SUFFIX}", self.label())
    }
}

impl fmt::Debug for OnionV3Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OnionV3Address({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tor_hscrypto::pk::HsId;

    /// A real address (the Tor Project's own service) as a fixed point.
    const KNOWN: &str = "2gzyxa5ihm7nsggfxnu52rck2vv4rvmdlkiu3zzui5du4xyclen53wid.onion";

    /// Deterministic pseudo-random keys without pulling an RNG into the crate.
    fn keys(n: usize) -> impl Iterator<Item = [u8; 32]> {
        (0..n).map(|i| {
            let digest = Sha3_256::digest((i as u64).to_le_bytes());
            let mut k = [0u8; 32];
            k.copy_from_slice(&digest);
            k
        })
    }

    #[test]
    fn known_address_round_trips() {
        let a: OnionV3Address = KNOWN.parse().unwrap();
        assert_eq!(a.to_string(), KNOWN);
        assert_eq!(OnionV3Address::from_pubkey(*a.pubkey()), a);
        // Case does not matter on input; output is canonical lowercase.
        let upper: OnionV3Address = KNOWN.to_ascii_uppercase().parse().unwrap();
        assert_eq!(upper, a);
        // A bare label is accepted too.
        let bare: OnionV3Address = KNOWN.trim_end_matches(".onion").parse().unwrap();
        assert_eq!(bare, a);
    }

    #[test]
    fn our_encoding_is_what_arti_parses() {
        for key in keys(500) {
            let ours = OnionV3Address::from_pubkey(key);
            let text = ours.to_string();
            let arti: HsId = text
                .parse()
                .unwrap_or_else(|e| panic!("Arti rejects {text}: {e}"));
            let back = safelog::DisplayRedacted::display_unredacted(&arti).to_string();
            assert_eq!(back, text);
            assert_eq!(back.parse::<OnionV3Address>().unwrap(), ours);
        }
    }

    #[test]
    fn we_reject_what_arti_rejects() {
        let good = KNOWN.trim_end_matches(".onion");
        let mut cases = vec![
            format!("{}.onion", &good[..55]),     // too short
            format!("{good}a.onion"),             // too long
            format!("www.{good}.onion"),          // subdomain
            format!("{}1.onion", &good[..55]),    // '1' is not base32
            "duskgytldkxiuqc6.onion".to_string(), // a v2 address
        ];
        // Flip each character of the label: the checksum (or version) must catch it.
        for i in 0..good.len() {
            let mut bytes = good.as_bytes().to_vec();
            bytes[i] = if bytes[i] == b'a' { b'b' } else { b'a' };
            cases.push(format!("{}.onion", String::from_utf8(bytes).unwrap()));
        }
        for case in cases {
            let ours = case.parse::<OnionV3Address>();
            let arti = case.parse::<HsId>();
            assert!(ours.is_err(), "we accepted {case}");
            assert!(arti.is_err(), "Arti accepted {case}, test case is wrong");
        }
    }

    #[test]
    fn errors_say_what_is_wrong() {
        let good = KNOWN.trim_end_matches(".onion");
        assert_eq!(
            "duskgytldkxiuqc6.onion".parse::<OnionV3Address>(),
            Err(OnionAddressError::WrongLength(16))
        );
        let mut raw = BASE32_NOPAD
            .decode(good.to_ascii_uppercase().as_bytes())
            .unwrap();
        raw[34] = 4;
        let v4 = BASE32_NOPAD.encode(&raw).to_ascii_lowercase();
        assert_eq!(
            v4.parse::<OnionV3Address>(),
            Err(OnionAddressError::UnsupportedVersion(4))
        );
        raw[34] = 3;
        raw[32] ^= 1;
        let bad_sum = BASE32_NOPAD.encode(&raw).to_ascii_lowercase();
        assert_eq!(
            bad_sum.parse::<OnionV3Address>(),
            Err(OnionAddressError::BadChecksum)
        );
        assert!(
            OnionAddressError::BadChecksum
                .to_string()
                .contains("checksum")
        );
    }
}
