//! The value types of configuration keys, each parsed from the same text on
//! the command line and in the config file, with errors that say what to
//! write instead.

use std::fmt;
use std::marker::PhantomData;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::str::FromStr;

use serde::de::{self, Deserializer, SeqAccess, Visitor};

use crate::netaddr::NetworkId;

/// The Bitcoin chains nightjar runs on (`chain`, `--network`/`--chain`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Chain {
    /// Bitcoin mainnet.
    #[default]
    Main,
    /// Testnet4 (BIP94).
    Testnet4,
    /// The default signet.
    Signet,
    /// Local regression-test chain.
    Regtest,
}

impl Chain {
    /// Every chain, in the order the error messages list them.
    pub const ALL: [Chain; 4] = [Chain::Main, Chain::Testnet4, Chain::Signet, Chain::Regtest];

    /// The name Bitcoin Core's `-chain` uses.
    pub const fn as_str(self) -> &'static str {
        match self {
            Chain::Main => "main",
            Chain::Testnet4 => "testnet4",
            Chain::Signet => "signet",
            Chain::Regtest => "regtest",
        }
    }
}

impl From<Chain> for bitcoin::Network {
    fn from(c: Chain) -> Self {
        match c {
            Chain::Main => bitcoin::Network::Bitcoin,
            Chain::Testnet4 => bitcoin::Network::Testnet4,
            Chain::Signet => bitcoin::Network::Signet,
            Chain::Regtest => bitcoin::Network::Regtest,
        }
    }
}

impl fmt::Display for Chain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Chain {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(c) = Chain::ALL.into_iter().find(|c| c.as_str() == s) {
            return Ok(c);
        }
        // Core's name for testnet3, which nightjar does not follow.
        if s == "test" || s == "testnet" || s == "testnet3" {
            return Err(
                "testnet3 is not supported; use testnet4 (or one of main, signet, regtest)"
                    .to_owned(),
            );
        }
        Err(format!(
            "unknown chain {s:?}; use one of main, testnet4, signet, regtest"
        ))
    }
}

/// How peer connections share Tor circuits (`[tor] isolation`, `--isolation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Isolation {
    /// One isolation group per connection kind, rotated periodically.
    #[default]
    PerKind,
    /// A circuit per connection: no two peers can be linked by a shared
    /// circuit (Core's `proxyrandomize`, stricter).
    PerConnection,
}

impl Isolation {
    /// The value's spelling in the config file.
    pub const fn as_str(self) -> &'static str {
        match self {
            Isolation::PerKind => "per-kind",
            Isolation::PerConnection => "per-connection",
        }
    }
}

impl fmt::Display for Isolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Isolation {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "per-kind" => Ok(Isolation::PerKind),
            "per-connection" => Ok(Isolation::PerConnection),
            _ => Err(format!(
                "unknown isolation {s:?}; use \"per-kind\" or \"per-connection\""
            )),
        }
    }
}

/// A network name for `onlynet`, with the error message the config file
/// shows (the list of valid names after a semicolon).
pub(crate) fn parse_network(s: &str) -> Result<NetworkId, String> {
    s.parse::<NetworkId>().map_err(|e| {
        format!(
            "unknown network {:?}; use one of ipv4, ipv6, onion, i2p, cjdns",
            e.0
        )
    })
}

/// Parse an IP address with an optional port: `127.0.0.1`, `::1`, `[::1]`,
/// `127.0.0.1:8332`, `[::1]:8332`. Host names are refused: resolving one
/// would need DNS, which nightjar never does outside Tor.
fn parse_ip_port(s: &str) -> Option<(IpAddr, Option<u16>)> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some((ip, None));
    }
    if let Ok(addr) = s.parse::<SocketAddr>() {
        return (addr.port() != 0).then_some((addr.ip(), Some(addr.port())));
    }
    let inner = s.strip_prefix('[')?.strip_suffix(']')?;
    inner.parse::<IpAddr>().ok().map(|ip| (ip, None))
}

/// Print an IP address with an optional port the way [`parse_ip_port`]
/// reads it back.
fn fmt_ip_port(f: &mut fmt::Formatter<'_>, ip: IpAddr, port: Option<u16>) -> fmt::Result {
    match port {
        Some(p) => write!(f, "{}", SocketAddr::new(ip, p)),
        None => write!(f, "{ip}"),
    }
}

/// An `rpcbind` entry: an address, with the port from `rpcport` unless it
/// names its own (as in Bitcoin Core).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RpcBind {
    /// The address to listen on.
    pub ip: IpAddr,
    /// A port overriding `rpcport` for this address.
    pub port: Option<u16>,
}

impl RpcBind {
    /// Core's default: IPv4 loopback.
    pub const LOOPBACK: RpcBind = RpcBind {
        ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        port: None,
    };

    /// The socket address to bind, given the `rpcport` setting.
    pub fn socket_addr(self, rpcport: u16) -> SocketAddr {
        SocketAddr::new(self.ip, self.port.unwrap_or(rpcport))
    }
}

impl fmt::Display for RpcBind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt_ip_port(f, self.ip, self.port)
    }
}

impl FromStr for RpcBind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (ip, port) = parse_ip_port(s).ok_or_else(|| {
            format!("{s:?} is not an IP address with an optional port; write e.g. 127.0.0.1, ::1 or 127.0.0.1:8332")
        })?;
        Ok(RpcBind { ip, port })
    }
}

/// A `bind` entry as Bitcoin Core writes it: `addr[:port][=onion]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BindSpec {
    /// The address to listen on.
    pub ip: IpAddr,
    /// The port, or the chain's P2P port.
    pub port: Option<u16>,
    /// `=onion`: connections arriving here come from a Tor onion service.
    pub onion: bool,
}

impl fmt::Display for BindSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt_ip_port(f, self.ip, self.port)?;
        if self.onion {
            f.write_str("=onion")?;
        }
        Ok(())
    }
}

impl FromStr for BindSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (addr, onion) = match s.strip_suffix("=onion") {
            Some(a) => (a, true),
            None => (s, false),
        };
        let (ip, port) = parse_ip_port(addr).ok_or_else(|| {
            format!("{s:?} is not an address; write addr[:port][=onion], e.g. 127.0.0.1:8334=onion")
        })?;
        Ok(BindSpec { ip, port, onion })
    }
}

/// Deserialize a value from a TOML string through a parser, so the config
/// file gets the same error text as the command line.
pub(crate) fn from_text<'de, D, T>(
    deserializer: D,
    parse: fn(&str) -> Result<T, String>,
) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
{
    let text = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(deserializer)?;
    parse(&text).map_err(de::Error::custom)
}

/// A list key (`onlynet`, `connect`, ...) written either as a TOML array or,
/// as bitcoin.conf users tend to, as a single string.
pub(crate) struct ListVisitor<T> {
    parse: fn(&str) -> Result<T, String>,
    marker: PhantomData<T>,
}

impl<T> ListVisitor<T> {
    /// A visitor parsing each entry with `parse`.
    pub(crate) fn new(parse: fn(&str) -> Result<T, String>) -> Self {
        ListVisitor {
            parse,
            marker: PhantomData,
        }
    }
}

impl<'de, T> Visitor<'de> for ListVisitor<T> {
    type Value = Vec<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of strings")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        (self.parse)(v).map(|t| vec![t]).map_err(E::custom)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::new();
        while let Some(text) = seq.next_element::<String>()? {
            out.push((self.parse)(&text).map_err(de::Error::custom)?);
        }
        Ok(out)
    }
}

/// Parse anything whose `FromStr` error is displayable, as a `String` error.
pub(crate) fn parse_display<T>(s: &str) -> Result<T, String>
where
    T: FromStr,
    T::Err: fmt::Display,
{
    s.parse::<T>().map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rpcbind_forms_round_trip() {
        for text in [
            "127.0.0.1",
            "::1",
            "127.0.0.1:8332",
            "[::1]:18443",
            "0.0.0.0",
        ] {
            let b: RpcBind = text.parse().unwrap();
            assert_eq!(b.to_string(), text);
        }
        let b: RpcBind = "[::1]".parse().unwrap();
        assert_eq!(b.port, None);
        assert!(b.ip.is_loopback());
        assert_eq!(
            "127.0.0.1".parse::<RpcBind>().unwrap().socket_addr(8332),
            "127.0.0.1:8332".parse().unwrap()
        );
        for bad in ["localhost", "127.0.0.1:0", "1.2.3.4:x", ""] {
            let err = bad.parse::<RpcBind>().unwrap_err();
            assert!(err.contains("127.0.0.1"), "{bad}: {err}");
        }
    }

    #[test]
    fn bind_takes_cores_onion_suffix() {
        let b: BindSpec = "127.0.0.1:8334=onion".parse().unwrap();
        assert!(b.onion);
        assert_eq!(b.port, Some(8334));
        assert_eq!(b.to_string(), "127.0.0.1:8334=onion");
        assert!("example.test".parse::<BindSpec>().is_err());
    }

    #[test]
    fn chain_errors_list_the_choices() {
        assert_eq!("regtest".parse::<Chain>(), Ok(Chain::Regtest));
        let err = "mainnet".parse::<Chain>().unwrap_err();
        assert!(
            err.contains("\"mainnet\"") && err.contains("testnet4"),
            "{err}"
        );
        assert!("test".parse::<Chain>().unwrap_err().contains("testnet4"));
    }

    #[test]
    fn network_errors_list_the_choices() {
        assert_eq!(parse_network("onion"), Ok(NetworkId::Onion));
        let err = parse_network("clearnet").unwrap_err();
        assert_eq!(
            err,
            "unknown network \"clearnet\"; use one of ipv4, ipv6, onion, i2p, cjdns"
        );
    }
}
