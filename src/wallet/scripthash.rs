//! The Electrum protocol's name for a script: the SHA-256 of its bytes,
//! written in reverse byte order.

use std::fmt;
use std::str::FromStr;

use bitcoin::Script;
use bitcoin::hashes::{Hash, sha256};
use bitcoin::hex::{DisplayHex, FromHex};

/// The SHA-256 of a script's bytes. Displayed and parsed as Electrum does:
/// 64 hex digits, bytes reversed.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ScriptHash([u8; 32]);

impl ScriptHash {
    /// The script hash of `script`.
    pub fn of(script: &Script) -> Self {
        ScriptHash(sha256::Hash::hash(script.as_bytes()).to_byte_array())
    }

    /// The digest in SHA-256's own byte order.
    pub fn to_byte_array(self) -> [u8; 32] {
        self.0
    }

    /// A script hash from a digest in SHA-256's own byte order.
    pub fn from_byte_array(bytes: [u8; 32]) -> Self {
        ScriptHash(bytes)
    }
}

impl fmt::Display for ScriptHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut reversed = self.0;
        reversed.reverse();
        f.write_str(&reversed.to_lower_hex_string())
    }
}

impl fmt::Debug for ScriptHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ScriptHash({self})")
    }
}

/// Why a string is not a script hash.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a script hash is 64 hex digits (the SHA-256 of the script, bytes reversed)")]
pub struct BadScriptHash;

impl FromStr for ScriptHash {
    type Err = BadScriptHash;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut bytes = <[u8; 32]>::from_hex(s).map_err(|_| BadScriptHash)?;
        bytes.reverse();
        Ok(ScriptHash(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::ScriptBuf;

    #[test]
    fn matches_the_protocol_docs_example() {
        // The ElectrumX docs' example: P2PKH of 1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa.
        let script =
            ScriptBuf::from_hex("76a91462e907b15cbf27d5425399ebf6f0fb50ebb88f1888ac").expect("hex");
        let sh = ScriptHash::of(&script);
        assert_eq!(
            sh.to_string(),
            "8b01df4e368ea28f8dc0423bcf7a4923e3a12d307c875e47a0cfbf90b5c39161"
        );
        assert_eq!(sh.to_string().parse::<ScriptHash>(), Ok(sh));
    }

    #[test]
    fn refuses_what_is_not_64_hex_digits() {
        assert_eq!("ab".parse::<ScriptHash>(), Err(BadScriptHash));
        assert_eq!("zz".repeat(32).parse::<ScriptHash>(), Err(BadScriptHash));
        assert_eq!("é".repeat(32).parse::<ScriptHash>(), Err(BadScriptHash));
    }
}
