//! Output descriptors in Bitcoin Core's syntax, turned into the scripts a
//! scan looks for. Parsing, checksums and key derivation are the
//! `miniscript` crate's; `addr()` and `raw()`, which it does not model,
//! are read here with the `bitcoin` crate's address and hex parsers.

use std::str::FromStr;

use bitcoin::{Address, Network, ScriptBuf};
use miniscript::Descriptor;
use miniscript::descriptor::DescriptorPublicKey;
use miniscript::descriptor::checksum::desc_checksum;

/// Core's default range for a ranged descriptor given without one
/// (`scanblocks`, `scantxoutset`): indexes 0 to 999.
pub const DEFAULT_RANGE_END: u32 = 999;

/// The widest range accepted (Core's limit for `scanblocks`).
pub const MAX_RANGE: u32 = 10_000_000;

/// Why a descriptor was refused, in words that name the part at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DescriptorError {
    /// The checksum after `#` does not match.
    #[error("descriptor '{desc}' has checksum {given}, expected {expected}")]
    Checksum {
        /// The descriptor.
        desc: String,
        /// Its checksum.
        given: String,
        /// The right one.
        expected: String,
    },
    /// Not a descriptor this node understands.
    #[error("invalid descriptor '{desc}': {why}")]
    Invalid {
        /// The descriptor.
        desc: String,
        /// What the parser said.
        why: String,
    },
    /// An address for another network.
    #[error("address in '{desc}' is not for {network}")]
    WrongNetwork {
        /// The descriptor.
        desc: String,
        /// Ours.
        network: Network,
    },
    /// A range on a descriptor without `*`, or too wide.
    #[error("bad range for '{desc}': {why}")]
    Range {
        /// The descriptor.
        desc: String,
        /// What is wrong.
        why: &'static str,
    },
}

/// The scripts `desc` describes, for indexes `range` when it is ranged.
pub fn scripts(
    desc: &str,
    range: Option<(u32, u32)>,
    network: Network,
) -> Result<Vec<ScriptBuf>, DescriptorError> {
    let body = checked_body(desc)?;
    let invalid = |why: String| DescriptorError::Invalid {
        desc: desc.to_owned(),
        why,
    };
    if let Some(inner) = body.strip_prefix("addr(").and_then(|r| r.strip_suffix(')')) {
        no_range(desc, range)?;
        let addr = Address::from_str(inner).map_err(|e| invalid(e.to_string()))?;
        let addr = addr
            .require_network(network)
            .map_err(|_| DescriptorError::WrongNetwork {
                desc: desc.to_owned(),
                network,
            })?;
        return Ok(vec![addr.script_pubkey()]);
    }
    if let Some(inner) = body.strip_prefix("raw(").and_then(|r| r.strip_suffix(')')) {
        no_range(desc, range)?;
        let script = ScriptBuf::from_hex(inner).map_err(|e| invalid(e.to_string()))?;
        return Ok(vec![script]);
    }
    let parsed =
        Descriptor::<DescriptorPublicKey>::from_str(body).map_err(|e| invalid(e.to_string()))?;
    // miniscript panics when asked to derive a hardened child of a public
    // key: refuse such a descriptor before deriving anything.
    crate::wallet::keychain::check_unhardened(&parsed).map_err(|_| {
        invalid(
            "a hardened step after the extended public key, which cannot derive hardened \
             children; give the xpub at the last hardened level (the account key)"
                .to_owned(),
        )
    })?;
    if !parsed.has_wildcard() {
        no_range(desc, range)?;
        let d = parsed
            .at_derivation_index(0)
            .map_err(|e| invalid(e.to_string()))?;
        return Ok(vec![d.script_pubkey()]);
    }
    let (begin, end) = range.unwrap_or((0, DEFAULT_RANGE_END));
    let bad = |why| DescriptorError::Range {
        desc: desc.to_owned(),
        why,
    };
    if begin > end {
        return Err(bad("the range's end is below its beginning"));
    }
    if end - begin >= MAX_RANGE {
        return Err(bad("a range may cover at most 10 000 000 indexes"));
    }
    (begin..=end)
        .map(|i| {
            parsed
                .at_derivation_index(i)
                .map(|d| d.script_pubkey())
                .map_err(|e| invalid(e.to_string()))
        })
        .collect()
}

/// `desc` without its checksum, once the checksum (if any) is checked.
fn checked_body(desc: &str) -> Result<&str, DescriptorError> {
    let Some((body, given)) = desc.split_once('#') else {
        return Ok(desc);
    };
    let expected = desc_checksum(body).map_err(|e| DescriptorError::Invalid {
        desc: desc.to_owned(),
        why: e.to_string(),
    })?;
    if expected != given {
        return Err(DescriptorError::Checksum {
            desc: desc.to_owned(),
            given: given.to_owned(),
            expected,
        });
    }
    Ok(body)
}

fn no_range(desc: &str, range: Option<(u32, u32)>) -> Result<(), DescriptorError> {
    match range {
        Some(_) => Err(DescriptorError::Range {
            desc: desc.to_owned(),
            why: "a range is only allowed for a descriptor with a * path",
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A BIP84 test vector account xpub.
    const XPUB: &str = "xpub6CatWdiZiodmUeTDp8LT5or8nmbKNcuyvz7WyksVFkKB4RHwCD3XyuvPEbvqAQY3rAPshWcMLoP2fMFMKHPJ4ZeZXYVUhLv1VMrjPC7PW6V";

    #[test]
    fn a_hardened_step_after_an_xpub_is_refused_not_a_crash() {
        // A public key cannot derive hardened children: an error, never a
        // panic inside the parser (whatever the step or wildcard).
        for desc in [
            format!("wpkh({XPUB}/0h/*)"),
            format!("wpkh({XPUB}/0/*h)"),
            format!("wpkh({XPUB}/1h)"),
        ] {
            let got = std::panic::catch_unwind(|| scripts(&desc, Some((0, 2)), Network::Bitcoin));
            assert!(matches!(got, Ok(Err(_))), "{desc}: {got:?}");
        }
    }

    #[test]
    fn addresses_ranges_and_checksums_give_scripts() {
        let addr = "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080";
        let desc = format!("addr({addr})");
        let sum = desc_checksum(&desc).unwrap();
        let with = scripts(&format!("{desc}#{sum}"), None, Network::Regtest).unwrap();
        assert_eq!(with, scripts(&desc, None, Network::Regtest).unwrap());
        assert_eq!(with.len(), 1);
        assert!(with[0].is_p2wpkh());
        let wrong = scripts(&format!("{desc}#aaaaaaaa"), None, Network::Regtest).unwrap_err();
        assert!(matches!(wrong, DescriptorError::Checksum { .. }), "{wrong}");
        assert!(matches!(
            scripts(&desc, None, Network::Bitcoin).unwrap_err(),
            DescriptorError::WrongNetwork { .. }
        ));
        let ranged = format!("wpkh({XPUB}/0/*)");
        assert_eq!(
            scripts(&ranged, None, Network::Bitcoin).unwrap().len(),
            1000
        );
        let two = scripts(&ranged, Some((5, 6)), Network::Bitcoin).unwrap();
        assert_eq!(two.len(), 2);
        assert_ne!(two[0], two[1]);
        assert!(matches!(
            scripts(&desc, Some((0, 1)), Network::Regtest).unwrap_err(),
            DescriptorError::Range { .. }
        ));
        assert_eq!(
            scripts("raw(51)", None, Network::Regtest).unwrap(),
            vec![ScriptBuf::from_bytes(vec![0x51])]
        );
        assert!(scripts("wpkh(nonsense)", None, Network::Regtest).is_err());
    }
}
