//! Bridges: unlisted relays that every circuit starts at, for networks that
//! block Tor, optionally reached through a pluggable transport (obfs4).
//!
//! A [`BridgeLine`] is checked field by field here, so that a mistyped line
//! is refused with the name of the field that is wrong, and then handed to
//! Arti's own parser, which has the last word. Transports run as child
//! processes of Arti; [`Transport::locate`] finds their binaries before Arti
//! would fail on them at first use.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use arti_client::config::BridgeConfigBuilder;

/// The transport most bridges use, and the one a bare default serves.
pub const OBFS4: &str = "obfs4";

/// A bridge line, as Tor Browser and bridges.torproject.org give them:
/// `[TRANSPORT] IP:PORT FINGERPRINT [KEY=VALUE …]`, with or without a leading
/// `Bridge` keyword (torrc's spelling).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeLine {
    /// The line without the `Bridge` keyword, whitespace collapsed.
    text: String,
    transport: Option<String>,
    addr: SocketAddr,
    fingerprint: String,
}

/// Why a bridge line was refused: which field, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct BridgeLineError {
    /// The field: `address`, `fingerprint`, `transport`, an option's key, or
    /// `line`.
    pub field: String,
    /// What is wrong, and what a right value looks like.
    pub problem: String,
}

impl BridgeLineError {
    fn new(field: &str, problem: impl Into<String>) -> Self {
        BridgeLineError {
            field: field.to_owned(),
            problem: problem.into(),
        }
    }
}

/// The options each known transport cannot work without.
fn required_options(transport: &str) -> &'static [&'static str] {
    match transport {
        // `cert` carries the bridge's public key and node id; `iat-mode` its
        // timing-obfuscation setting. obfs4proxy refuses a line without them.
        OBFS4 => &["cert", "iat-mode"],
        _ => &[],
    }
}

impl FromStr for BridgeLine {
    type Err = BridgeLineError;

    fn from_str(line: &str) -> Result<Self, Self::Err> {
        let mut words: Vec<&str> = line.split_whitespace().collect();
        if words
            .first()
            .is_some_and(|w| w.eq_ignore_ascii_case("bridge"))
        {
            words.remove(0);
        }
        let Some(&first) = words.first() else {
            return Err(BridgeLineError::new(
                "line",
                "empty; a bridge line reads `obfs4 IP:PORT FINGERPRINT cert=… iat-mode=0` \
                 or `IP:PORT FINGERPRINT`",
            ));
        };
        // A plain bridge starts with its address; anything else is a
        // transport name.
        let (transport, rest) = match first.parse::<SocketAddr>() {
            Ok(_) => (None, &words[..]),
            Err(_) => {
                check_transport_name(first)?;
                (Some(first.to_owned()), &words[1..])
            }
        };
        let addr_word = rest.first().ok_or_else(|| {
            BridgeLineError::new("address", "missing; it follows the transport, as IP:PORT")
        })?;
        let addr: SocketAddr = addr_word.parse().map_err(|_| {
            BridgeLineError::new(
                "address",
                format!("`{addr_word}` is not IP:PORT (e.g. 192.0.2.10:443 or [2001:db8::1]:443)"),
            )
        })?;
        let fingerprint = rest.get(1).ok_or_else(|| {
            BridgeLineError::new(
                "fingerprint",
                "missing; it follows the address: the bridge's 40 hex digit identity, \
                 without which the bridge cannot be authenticated",
            )
        })?;
        let fingerprint = fingerprint.trim_start_matches('$');
        if fingerprint.len() != 40 || !fingerprint.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(BridgeLineError::new(
                "fingerprint",
                format!("`{fingerprint}` is not 40 hex digits"),
            ));
        }
        let options = &rest[2..];
        for option in options {
            let Some((key, value)) = option.split_once('=') else {
                return Err(BridgeLineError::new(
                    option,
                    "not KEY=VALUE (options after the fingerprint look like `cert=…`)",
                ));
            };
            if key.is_empty() || value.is_empty() {
                return Err(BridgeLineError::new(
                    option,
                    "not KEY=VALUE: a side is empty",
                ));
            }
        }
        match &transport {
            None if !options.is_empty() => {
                return Err(BridgeLineError::new(
                    "transport",
                    "options were given, but a bridge without a transport takes none: \
                     start the line with the transport (e.g. `obfs4`)",
                ));
            }
            None => {}
            Some(t) => {
                for key in required_options(t) {
                    let value = options
                        .iter()
                        .find_map(|o| o.strip_prefix(key)?.strip_prefix('='))
                        .ok_or_else(|| {
                            BridgeLineError::new(
                                key,
                                format!("missing; an {t} bridge line carries `{key}=…`"),
                            )
                        })?;
                    check_obfs4_option(key, value)?;
                }
            }
        }
        let text = words.join(" ");
        // Arti's parser has the last word (identity key types, option
        // syntax it alone knows).
        BridgeConfigBuilder::from_str(&text)
            .map_err(|e| BridgeLineError::new("line", format!("refused by Arti: {e}")))?;
        Ok(BridgeLine {
            text,
            transport,
            addr,
            fingerprint: fingerprint.to_ascii_uppercase(),
        })
    }
}

/// The obfs4 options a copy-and-paste can break. `cert` is the bridge's
/// node id (20 bytes) and public key (32 bytes), base64 without padding:
/// exactly 70 characters, so a truncated line is caught here rather than
/// as a handshake that never completes.
fn check_obfs4_option(key: &str, value: &str) -> Result<(), BridgeLineError> {
    const CERT_CHARS: usize = 70;
    match key {
        "cert" => {
            let base64 = value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/');
            if value.len() != CERT_CHARS || !base64 {
                return Err(BridgeLineError::new(
                    key,
                    format!(
                        "`{value}` is not an obfs4 certificate ({CERT_CHARS} base64 characters); \
                         copy the whole bridge line again"
                    ),
                ));
            }
        }
        "iat-mode" if !["0", "1", "2"].contains(&value) => {
            return Err(BridgeLineError::new(
                key,
                format!("`{value}` is not 0, 1 or 2"),
            ));
        }
        _ => {}
    }
    Ok(())
}

/// Whether `word` can name a transport: what a pluggable transport's
/// `-transports` takes (letters, digits and `_`, not starting with a digit).
pub fn is_transport_name(word: &str) -> bool {
    word.chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && word.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A bridge line's first word when it is not an address.
fn check_transport_name(word: &str) -> Result<(), BridgeLineError> {
    if is_transport_name(word) {
        Ok(())
    } else {
        Err(BridgeLineError::new(
            "address",
            format!(
                "`{word}` is neither IP:PORT nor a transport name (e.g. obfs4); \
                 a bridge line reads `obfs4 IP:PORT FINGERPRINT cert=… iat-mode=0`"
            ),
        ))
    }
}

impl BridgeLine {
    /// The pluggable transport, `None` for a plain bridge.
    pub fn transport(&self) -> Option<&str> {
        self.transport.as_deref()
    }

    /// Where the bridge (or its transport) listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The bridge's RSA identity, 40 upper-case hex digits: the first hop of
    /// every circuit through it shows this.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// How reports name the `n`th bridge (from 1): `obfs4 bridge #1 at
    /// 192.0.2.10:443`. A bridge's address is meant to stay unknown to a
    /// censor, so like a peer's it is `[scrubbed]` unless sensitive logging
    /// is on (`safelog`); the number still says which line is meant.
    pub fn report_name(&self, n: usize) -> String {
        let addr = safelog::sensitive(self.addr);
        match &self.transport {
            Some(t) => format!("{t} bridge #{n} at {addr}"),
            None => format!("bridge #{n} at {addr}"),
        }
    }

    /// The line as Arti's configuration takes it. Arti accepted it when the
    /// line was parsed, so an error here would be Arti changing its mind.
    pub(crate) fn arti_config(&self) -> Result<BridgeConfigBuilder, BridgeLineError> {
        BridgeConfigBuilder::from_str(&self.text)
            .map_err(|e| BridgeLineError::new("line", format!("refused by Arti: {e}")))
    }
}

impl fmt::Display for BridgeLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// A pluggable transport binary and the transports it serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transport {
    /// The transport name bridge lines use, e.g. `obfs4`.
    pub protocol: String,
    /// The binary: an absolute path, or a name looked up on `PATH`.
    pub binary: PathBuf,
}

impl Transport {
    /// A transport entry as a user writes it (`[tor] transport_binary`):
    /// a transport name, and a bare binary name (found on `PATH` at start)
    /// or an absolute path. A relative path is refused: it would depend on
    /// the directory nightjar starts in (`/` under systemd).
    pub fn new(protocol: &str, binary: impl Into<PathBuf>) -> Result<Transport, String> {
        let binary = binary.into();
        if !is_transport_name(protocol) {
            return Err(format!(
                "{protocol:?} is not a transport name (letters, digits and '_', e.g. obfs4)"
            ));
        }
        let bare = binary.components().count() == 1 && !binary.is_absolute();
        if binary.as_os_str().is_empty() || !(bare || binary.is_absolute()) {
            return Err(format!(
                "{protocol} = {:?}: give an absolute path (e.g. \"/usr/bin/obfs4proxy\") or a bare \
                 name found on PATH; a relative path would depend on where nightjar starts",
                binary.display().to_string()
            ));
        }
        Ok(Transport {
            protocol: protocol.to_owned(),
            binary,
        })
    }

    /// The default binary for `protocol`: `obfs4proxy` serves obfs4.
    pub fn default_for(protocol: &str) -> Option<Transport> {
        (protocol == OBFS4).then(|| Transport {
            protocol: protocol.to_owned(),
            binary: PathBuf::from("obfs4proxy"),
        })
    }

    /// The package that ships the default binary of this transport, for the
    /// error that says what to install.
    fn package_hint(&self) -> String {
        match self.binary.file_name().and_then(|n| n.to_str()) {
            Some("obfs4proxy") => "install the obfs4proxy package (Debian, Ubuntu and Arch: \
                 obfs4proxy; Fedora: obfs4)"
                .to_owned(),
            Some("lyrebird") => "install the lyrebird package".to_owned(),
            _ => "install it".to_owned(),
        }
    }

    /// The absolute path of the binary: as given when absolute, else found
    /// on `PATH`. The error names the transport, the binary and what to
    /// install, so that a missing transport stops the start with a reason
    /// rather than a bootstrap that never progresses.
    pub fn locate(&self) -> Result<PathBuf, String> {
        let found = if self.binary.is_absolute() {
            is_executable(&self.binary).then(|| self.binary.clone())
        } else {
            let path = std::env::var_os("PATH").unwrap_or_default();
            std::env::split_paths(&path)
                .map(|dir| dir.join(&self.binary))
                .find(|p| is_executable(p))
        };
        found.ok_or_else(|| {
            format!(
                "the {} transport needs `{}`, which {}: {}, or set [tor.transport_binary] {} \
                 to its path",
                self.protocol,
                self.binary.display(),
                if self.binary.is_absolute() {
                    "is not an executable file"
                } else {
                    "is not on PATH"
                },
                self.package_hint(),
                self.protocol,
            )
        })
    }
}

/// The binary for each transport `bridges` use, located: the one
/// `configured` names or the default, found on `PATH` when not absolute.
/// The error names the transport and what to install.
pub fn locate_transports(
    bridges: &[BridgeLine],
    configured: &[Transport],
) -> Result<Vec<(String, PathBuf)>, String> {
    let mut protocols: Vec<&str> = bridges.iter().filter_map(BridgeLine::transport).collect();
    protocols.sort_unstable();
    protocols.dedup();
    protocols
        .into_iter()
        .map(|protocol| {
            let transport = configured
                .iter()
                .find(|t| t.protocol == protocol)
                .cloned()
                .or_else(|| Transport::default_for(protocol))
                .ok_or_else(|| {
                    format!(
                        "the {protocol} transport has no default binary: set \
                         [tor.transport_binary] {protocol} to the path of its client"
                    )
                })?;
            Ok((protocol.to_owned(), transport.locate()?))
        })
        .collect()
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FP: &str = "316E643333645F6D79216558614D3931657A5F5F";
    const CERT: &str =
        "cert=YXJlIGZyZXF1ZW50bHkgZnVsbCBvZiBsaXR0bGUgbWVzc2FnZXMgeW91IGNhbiBmaW5kLg";

    fn refused(line: &str) -> BridgeLineError {
        line.parse::<BridgeLine>().unwrap_err()
    }

    #[test]
    fn obfs4_and_plain_lines_parse_with_or_without_the_keyword() {
        let line = format!("Bridge obfs4 192.0.2.55:38114 {FP} {CERT} iat-mode=0");
        let b: BridgeLine = line.parse().unwrap();
        assert_eq!(b.transport(), Some("obfs4"));
        assert_eq!(b.addr(), "192.0.2.55:38114".parse().unwrap());
        assert_eq!(b.fingerprint(), FP);
        assert_eq!(b.to_string(), line.trim_start_matches("Bridge "));
        let name = b.report_name(1);
        assert!(name.starts_with("obfs4 bridge #1 at "), "{name}");

        let plain: BridgeLine = format!("  [2001:db8::1]:443   ${}", FP.to_lowercase())
            .parse()
            .unwrap();
        assert_eq!(plain.transport(), None);
        assert_eq!(plain.fingerprint(), FP);
        assert!(plain.report_name(2).starts_with("bridge #2 at "));
    }

    #[test]
    fn each_wrong_field_is_named() {
        let e = refused("");
        assert_eq!(e.field, "line");
        let e = refused(&format!("obfs4 192.0.2.55 {FP} {CERT} iat-mode=0"));
        assert_eq!(e.field, "address", "{e}");
        assert!(e.problem.contains("`192.0.2.55` is not IP:PORT"), "{e}");
        let e = refused(&format!("obfs-4 192.0.2.55:1 {FP}"));
        assert_eq!(e.field, "address", "{e}");
        let e = refused("obfs4 192.0.2.55:1");
        assert_eq!(e.field, "fingerprint", "{e}");
        let e = refused(&format!(
            "obfs4 192.0.2.55:1 {} {CERT} iat-mode=0",
            &FP[1..]
        ));
        assert_eq!(e.field, "fingerprint", "{e}");
        assert!(e.problem.contains("40 hex digits"), "{e}");
        let e = refused(&format!("obfs4 192.0.2.55:1 {FP} iat-mode=0"));
        assert_eq!(e.field, "cert", "{e}");
        let e = refused(&format!("obfs4 192.0.2.55:1 {FP} {CERT}"));
        assert_eq!(e.field, "iat-mode", "{e}");
        let e = refused(&format!(
            "obfs4 192.0.2.55:1 {FP} {} iat-mode=0",
            &CERT[..40]
        ));
        assert_eq!(e.field, "cert", "{e}");
        assert!(e.problem.contains("70 base64 characters"), "{e}");
        let e = refused(&format!("obfs4 192.0.2.55:1 {FP} {CERT} iat-mode=3"));
        assert_eq!(e.field, "iat-mode", "{e}");
        assert!(e.problem.contains("not 0, 1 or 2"), "{e}");
        let e = refused(&format!("obfs4 192.0.2.55:1 {FP} {CERT} iat-mode"));
        assert_eq!(e.field, "iat-mode", "{e}");
        assert!(e.problem.contains("KEY=VALUE"), "{e}");
        let e = refused(&format!("192.0.2.55:1 {FP} {CERT}"));
        assert_eq!(e.field, "transport", "{e}");
        assert_eq!(e.to_string(), format!("transport: {}", e.problem));
    }

    #[test]
    fn a_transport_binary_is_found_on_path_or_named_with_its_package() {
        let sh = Transport {
            protocol: "test".into(),
            binary: "sh".into(),
        };
        assert!(sh.locate().unwrap().is_absolute());
        let missing = Transport {
            protocol: OBFS4.into(),
            binary: "/nonexistent/obfs4proxy".into(),
        };
        let e = missing.locate().unwrap_err();
        assert!(
            e.contains("the obfs4 transport needs `/nonexistent/obfs4proxy`"),
            "{e}"
        );
        assert!(e.contains("install the obfs4proxy package"), "{e}");
        assert!(e.contains("[tor.transport_binary] obfs4"), "{e}");
        assert_eq!(
            Transport::default_for("obfs4").map(|t| t.binary),
            Some(PathBuf::from("obfs4proxy"))
        );
        assert_eq!(Transport::default_for("snowflake"), None);
        assert!(Transport::new("obfs4", "/usr/bin/lyrebird").is_ok());
        assert!(Transport::new("obfs4", "lyrebird").is_ok());
        let e = Transport::new("obfs4", "bin/obfs4proxy").unwrap_err();
        assert!(e.contains("give an absolute path"), "{e}");
        let e = Transport::new("obfs-4", "obfs4proxy").unwrap_err();
        assert!(e.contains("not a transport name"), "{e}");
    }
}
