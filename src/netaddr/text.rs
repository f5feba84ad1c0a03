//! The `host:port` text forms Core uses in seed lists, `-addnode` and RPC.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use data_encoding::BASE32_NOPAD;
use nightjar_tor::{OnionAddressError, OnionV3Address};

use super::{CJDNS_PREFIX, Host, NetAddr};

/// The suffix of I2P base32 destination names.
const I2P_SUFFIX: &str = ".b32.i2p";

/// Length of the base32 label of an I2P name (32 bytes → 52 characters).
const I2P_LABEL_LEN: usize = 52;

/// Why a string is not a `host:port` peer address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseNetAddrError {
    /// No `:port` at the end (IPv6 hosts need brackets: `[2001:db8::1]:8333`).
    #[error("missing :port (write IPv6 hosts in brackets, e.g. [2001:db8::1]:8333)")]
    MissingPort,
    /// The port is not a number in 0–65535.
    #[error("port {0:?} is not a number between 0 and 65535")]
    BadPort(String),
    /// The host is not an IP address, onion name or I2P name.
    #[error("host {0:?} is not an IPv4 or [IPv6] address, a .onion or a .b32.i2p name")]
    BadHost(String),
    /// A `.onion` name that is not a valid v3 onion address.
    #[error("bad onion address: {0}")]
    Onion(#[from] OnionAddressError),
    /// A `.b32.i2p` name whose label is not 52 base32 characters.
    #[error("bad I2P address: the label must be {I2P_LABEL_LEN} base32 characters (a-z, 2-7)")]
    I2p,
}

/// Writes `addr` in Core's `host:port` form.
pub(super) fn fmt_netaddr(addr: &NetAddr, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    match &addr.host {
        Host::Ipv4(ip) => write!(f, "{ip}:{}", addr.port),
        Host::Ipv6(ip) | Host::Cjdns(ip) => write!(f, "[{ip}]:{}", addr.port),
        Host::TorV3(key) => write!(f, "{}:{}", OnionV3Address::from_pubkey(*key), addr.port),
        Host::I2p(hash) => write!(
            f,
            "{}{I2P_SUFFIX}:{}",
            BASE32_NOPAD.encode(hash).to_ascii_lowercase(),
            addr.port
        ),
    }
}

/// Parses Core's `host:port` forms (see [`NetAddr`]'s `FromStr`).
pub(super) fn parse_netaddr(s: &str) -> Result<NetAddr, ParseNetAddrError> {
    let s = s.trim();
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (ip, port) = rest
            .split_once("]:")
            .ok_or(ParseNetAddrError::MissingPort)?;
        let ip: Ipv6Addr = ip
            .parse()
            .map_err(|_| ParseNetAddrError::BadHost(ip.to_owned()))?;
        let host = if ip.octets()[0] == CJDNS_PREFIX {
            Host::Cjdns(ip)
        } else {
            Host::from_ip(ip.into())
        };
        (host, port)
    } else {
        let (name, port) = s.rsplit_once(':').ok_or(ParseNetAddrError::MissingPort)?;
        (parse_unbracketed_host(name)?, port)
    };
    let port = port
        .parse::<u16>()
        .map_err(|_| ParseNetAddrError::BadPort(port.to_owned()))?;
    Ok(NetAddr { host, port })
}

/// An IPv4 address, onion name or I2P name.
fn parse_unbracketed_host(name: &str) -> Result<Host, ParseNetAddrError> {
    let lower = name.to_ascii_lowercase();
    if lower.ends_with(".onion") {
        let onion: OnionV3Address = lower.parse()?;
        return Ok(Host::TorV3(*onion.pubkey()));
    }
    if let Some(label) = lower.strip_suffix(I2P_SUFFIX) {
        return parse_i2p_label(label).map(Host::I2p);
    }
    name.parse::<Ipv4Addr>()
        .map(Host::Ipv4)
        .map_err(|_| ParseNetAddrError::BadHost(name.to_owned()))
}

/// The 32-byte destination hash from its 52-character base32 label.
fn parse_i2p_label(label: &str) -> Result<[u8; 32], ParseNetAddrError> {
    if label.len() != I2P_LABEL_LEN {
        return Err(ParseNetAddrError::I2p);
    }
    let raw = BASE32_NOPAD
        .decode(label.to_ascii_uppercase().as_bytes())
        .map_err(|_| ParseNetAddrError::I2p)?;
    raw.try_into().map_err(|_| ParseNetAddrError::I2p)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONION: &str = "2boy2eupcrkymvf456swszxglxgckeoasshdasbgp4kt6jobovnmb5ad.onion";
    const I2P: &str = "22pis7zmm4r466tciqekpwjwzf2qi3a536bow7k5tu5kxgmbvrkq.b32.i2p";

    #[test]
    fn parses_every_form_and_round_trips() {
        for s in [
            "1.2.3.4:8333",
            "[2001:4860::1]:8333",
            &format!("{ONION}:8333"),
            &format!("{I2P}:0"),
            "[fc32:17ea:e415:c3bf:9808:149d:b5a2:c9aa]:8333",
        ] {
            let a: NetAddr = s.parse().unwrap();
            assert_eq!(a.to_string(), s);
        }
    }

    #[test]
    fn networks_are_recognised() {
        use crate::netaddr::NetworkId;
        let net = |s: &str| s.parse::<NetAddr>().unwrap().network();
        assert_eq!(net("1.2.3.4:1"), NetworkId::Ipv4);
        assert_eq!(net("[2001:4860::1]:1"), NetworkId::Ipv6);
        assert_eq!(net("[::ffff:1.2.3.4]:1"), NetworkId::Ipv4);
        assert_eq!(net(&format!("{ONION}:1")), NetworkId::Onion);
        assert_eq!(net(&format!("{}:1", I2P.to_uppercase())), NetworkId::I2p);
        assert_eq!(net("[fc00::1]:1"), NetworkId::Cjdns);
    }

    #[test]
    fn rejects_bad_input() {
        use ParseNetAddrError as E;
        assert_eq!("1.2.3.4".parse::<NetAddr>(), Err(E::MissingPort));
        assert_eq!("[::1]".parse::<NetAddr>(), Err(E::MissingPort));
        assert_eq!(
            "1.2.3.4:70000".parse::<NetAddr>(),
            Err(E::BadPort("70000".into()))
        );
        assert!(matches!(
            "example.com:1".parse::<NetAddr>(),
            Err(E::BadHost(_))
        ));
        assert!(matches!("[zz::1]:1".parse::<NetAddr>(), Err(E::BadHost(_))));
        assert!(matches!("abc.onion:1".parse::<NetAddr>(), Err(E::Onion(_))));
        assert_eq!("abc.b32.i2p:0".parse::<NetAddr>(), Err(E::I2p));
        assert_eq!(
            format!("{}:0", I2P.replacen('2', "1", 1)).parse::<NetAddr>(),
            Err(E::I2p)
        );
        assert!(":".parse::<NetAddr>().is_err());
        assert!("".parse::<NetAddr>().is_err());
        assert!("ü:1".parse::<NetAddr>().is_err());
    }
}
