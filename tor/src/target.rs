//! Where a stream goes: an onion service, an IP address, or a host name that
//! the exit resolves.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use crate::onion_address::{OnionAddressError, OnionV3Address};

/// The destination of a Tor stream.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    /// A v3 onion service and virtual port; never leaves the Tor network.
    Onion {
        /// The service.
        address: OnionV3Address,
        /// The service's virtual port.
        port: u16,
    },
    /// An IP address, reached through an exit relay.
    Ip(SocketAddr),
    /// A host name, resolved by the exit relay (never by us), then reached
    /// through it.
    Host {
        /// The DNS name.
        name: String,
        /// The TCP port.
        port: u16,
    },
}

/// Which time limit and which Arti preferences apply to a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetKind {
    /// Onion service rendezvous.
    Onion,
    /// A stream through an exit relay.
    Exit,
}

/// Why a string is not a target.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TargetParseError {
    /// No `:port` at the end (an IPv6 address needs brackets: `[::1]:8333`).
    #[error("missing port: write host:port, [ipv6]:port or <56 chars>.onion:port")]
    MissingPort,
    /// The port is not a number from 1 to 65535.
    #[error("invalid port {0:?}: must be a number from 1 to 65535")]
    BadPort(String),
    /// The host part is empty or not a valid DNS name.
    #[error("invalid host name {0:?}")]
    BadHost(String),
    /// A `.onion` name that is not a valid v3 address.
    #[error("invalid onion address: {0}")]
    Onion(#[from] OnionAddressError),
}

impl Target {
    /// Onion or exit.
    pub fn kind(&self) -> TargetKind {
        match self {
            Target::Onion { .. } => TargetKind::Onion,
            Target::Ip(_) | Target::Host { .. } => TargetKind::Exit,
        }
    }

    /// The TCP (or onion virtual) port.
    pub fn port(&self) -> u16 {
        match self {
            Target::Onion { port, .. } | Target::Host { port, .. } => *port,
            Target::Ip(addr) => addr.port(),
        }
    }
}

/// Is `name` a plausible DNS host name (letters, digits, hyphens, dots)?
fn is_host_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

impl FromStr for Target {
    type Err = TargetParseError;

    /// Parses `host:port`, `1.2.3.4:port`, `[v6]:port` and `<56 chars>.onion:port`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Ok(addr) = s.parse::<SocketAddr>() {
            return Ok(Target::Ip(addr));
        }
        let (host, port) = s.rsplit_once(':').ok_or(TargetParseError::MissingPort)?;
        let bracketed_ip = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .is_some_and(|ip| ip.parse::<std::net::Ipv6Addr>().is_ok());
        if bracketed_ip {
            // A well-formed `[ipv6]:port` that failed to parse as a whole:
            // the port is what is wrong.
            return Err(TargetParseError::BadPort(port.to_string()));
        }
        if host.contains(':') || host.starts_with('[') {
            // An IPv6 address without brackets, or a malformed bracketed one.
            return Err(TargetParseError::MissingPort);
        }
        let port: u16 = match port.parse() {
            Ok(p) if p != 0 => p,
            _ => return Err(TargetParseError::BadPort(port.to_string())),
        };
        if host.parse::<IpAddr>().is_ok() {
            return Err(TargetParseError::BadHost(host.to_string()));
        }
        if host.to_ascii_lowercase().ends_with(".onion") {
            return Ok(Target::Onion {
                address: host.parse()?,
                port,
            });
        }
        if !is_host_name(host) {
            return Err(TargetParseError::BadHost(host.to_string()));
        }
        Ok(Target::Host {
            name: host.to_ascii_lowercase(),
            port,
        })
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Onion { address, port } => write!(f, "{address}:{port}"),
            Target::Ip(addr) => write!(f, "{addr}"),
            Target::Host { name, port } => write!(f, "{name}:{port}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONION: &str = "2gzyxa5ihm7nsggfxnu52rck2vv4rvmdlkiu3zzui5du4xyclen53wid.onion";

    #[test]
    fn parses_every_form_and_prints_it_back() {
        for text in [
            "127.0.0.1:8333".to_string(),
            "[::1]:18444".to_string(),
            "seed.bitcoin.test:8333".to_string(),
            format!("{ONION}:8333"),
        ] {
            let t: Target = text.parse().unwrap();
            assert_eq!(t.to_string(), text);
        }
        assert_eq!(
            format!("{ONION}:1").parse::<Target>().unwrap().kind(),
            TargetKind::Onion
        );
        assert_eq!(
            "10.0.0.1:1".parse::<Target>().unwrap().kind(),
            TargetKind::Exit
        );
    }

    #[test]
    fn rejects_malformed_targets_with_a_reason() {
        assert_eq!(
            "example.test".parse::<Target>(),
            Err(TargetParseError::MissingPort)
        );
        assert_eq!(
            "::1:8333".parse::<Target>(),
            Err(TargetParseError::MissingPort)
        );
        assert_eq!(
            "[::1]:99999".parse::<Target>(),
            Err(TargetParseError::BadPort("99999".into()))
        );
        assert_eq!(
            "[::1]:".parse::<Target>(),
            Err(TargetParseError::BadPort("".into()))
        );
        assert_eq!(
            "1.2.3.4:99999".parse::<Target>(),
            Err(TargetParseError::BadPort("99999".into()))
        );
        assert_eq!(
            "example.test:0".parse::<Target>(),
            Err(TargetParseError::BadPort("0".into()))
        );
        assert_eq!(
            "example.test:99999".parse::<Target>(),
            Err(TargetParseError::BadPort("99999".into()))
        );
        assert!(matches!(
            "bad_-.onion:8333".parse::<Target>(),
            Err(TargetParseError::Onion(_))
        ));
        assert!(matches!(
            "a..b:1".parse::<Target>(),
            Err(TargetParseError::BadHost(_))
        ));
        assert!(matches!(
            ":1".parse::<Target>(),
            Err(TargetParseError::BadHost(_))
        ));
    }
}
