//! The value types of configuration keys, each parsed from the same text on
//! the command line and in the config file, with errors that say what to
//! write instead.

use std::fmt;
use std::marker::PhantomData;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::str::FromStr;

use serde::de::{self, Deserializer, SeqAccess, Visitor};

use crate::netaddr::NetworkId;
use crate::wallet::keychain::Keychain;

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

/// The port of the Electrum server by convention (plain TCP).
pub const DEFAULT_ELECTRUM_PORT: u16 = 50001;

/// The port of the Electrum server over TLS by convention.
pub const DEFAULT_ELECTRUM_TLS_PORT: u16 = 50002;

/// An Electrum server address, `addr[:port]`, the port defaulting to
/// `default_port`. Host names are refused, as for `rpcbind`.
fn parse_electrum_addr(s: &str, default_port: u16) -> Result<SocketAddr, String> {
    let (ip, port) = parse_ip_port(s).ok_or_else(|| {
        format!(
            "{s:?} is not an IP address with an optional port; write e.g. 127.0.0.1:{default_port} or [::1]:{default_port}"
        )
    })?;
    Ok(SocketAddr::new(ip, port.unwrap_or(default_port)))
}

/// An `electrum_bind` value (port 50001 unless given).
pub(crate) fn parse_electrum_bind(s: &str) -> Result<SocketAddr, String> {
    parse_electrum_addr(s, DEFAULT_ELECTRUM_PORT)
}

/// An `electrum_tls_bind` value (port 50002 unless given).
pub(crate) fn parse_electrum_tls_bind(s: &str) -> Result<SocketAddr, String> {
    parse_electrum_addr(s, DEFAULT_ELECTRUM_TLS_PORT)
}

/// Where the Electrum server listens, when it is on (`electrum = true`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ElectrumSettings {
    /// `electrum_bind`: plain TCP.
    pub bind: SocketAddr,
    /// `electrum_tls_bind`: TLS, when set.
    pub tls_bind: Option<SocketAddr>,
}

/// The earliest point in the chain a wallet can have used
/// (`birthday` in a `[wallet.NAME]` table): scanning starts there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Birthday {
    /// A block height.
    Height(u32),
    /// A day, as the Unix time of its start (00:00 UTC). Blocks whose
    /// timestamps are before it cannot hold the wallet's transactions;
    /// mapping it to a height, with the slack block timestamps need, is
    /// the scanner's business.
    Date {
        /// Seconds since 1970-01-01 00:00 UTC.
        unix: u64,
    },
}

/// Seconds in a day.
const DAY: u64 = 86_400;

/// Whether `year` has a 29 February (Gregorian rules).
const fn is_leap(year: u64) -> bool {
    (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400)
}

/// Days in `month` (1 to 12) of `year`.
const fn month_days(year: u64, month: u64) -> u64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

impl Birthday {
    /// The first year accepted: Bitcoin's genesis block is from 2009.
    pub const FIRST_YEAR: u64 = 2009;

    /// The start of a calendar day (UTC), or `None` for a date that does
    /// not exist or is before 2009.
    fn from_date(year: u64, month: u64, day: u64) -> Option<Birthday> {
        if !(Self::FIRST_YEAR..=9999).contains(&year)
            || !(1..=12).contains(&month)
            || day == 0
            || day > month_days(year, month)
        {
            return None;
        }
        // Whole years since 1970, then whole months of this year, then days:
        // a few thousand iterations at most, and plainly right.
        let mut days = (1970..year)
            .map(|y| if is_leap(y) { 366 } else { 365 })
            .sum::<u64>();
        days += (1..month).map(|m| month_days(year, m)).sum::<u64>();
        days += day - 1;
        Some(Birthday::Date { unix: days * DAY })
    }

    /// The calendar day (UTC) of a date birthday: year, month, day.
    fn ymd(unix: u64) -> (u64, u64, u64) {
        let mut days = unix / DAY;
        let mut year = 1970;
        loop {
            let len = if is_leap(year) { 366 } else { 365 };
            if days < len {
                break;
            }
            days -= len;
            year += 1;
        }
        let mut month = 1;
        while days >= month_days(year, month) {
            days -= month_days(year, month);
            month += 1;
        }
        (year, month, days + 1)
    }

    /// A date as TOML reads it (`birthday = 2024-04-20`, or the same in
    /// quotes): the day alone, from 2009 on.
    pub(crate) fn from_datetime(dt: &toml::value::Datetime) -> Result<Birthday, String> {
        match (dt.date, dt.time, dt.offset) {
            (Some(date), None, None) => Birthday::from_date(
                u64::from(date.year),
                u64::from(date.month),
                u64::from(date.day),
            )
            .ok_or_else(|| not_a_date(&dt.to_string())),
            (Some(_), _, _) => {
                Err("give the day alone, e.g. 2024-04-20 (UTC), without a time".to_owned())
            }
            (None, _, _) => Err(not_a_date(&dt.to_string())),
        }
    }
}

/// The error for text that is neither a height nor a day from 2009 on.
fn not_a_date(s: &str) -> String {
    format!(
        "{s:?} is not a date from 2009 on; write the day as \"YYYY-MM-DD\" \
         (UTC), e.g. \"2024-04-20\", or give a block height"
    )
}

impl fmt::Display for Birthday {
    /// A height as a number, a date as `YYYY-MM-DD`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Birthday::Height(h) => write!(f, "{h}"),
            Birthday::Date { unix } => {
                let (y, m, d) = Birthday::ymd(unix);
                write!(f, "{y:04}-{m:02}-{d:02}")
            }
        }
    }
}

impl FromStr for Birthday {
    type Err = String;

    /// A height (`840000`) or a date (`2024-04-20`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
            return s
                .parse::<u32>()
                .map(Birthday::Height)
                .map_err(|_| format!("{s} is not a block height; use a number up to 4294967295"));
        }
        // TOML's own date syntax (four-digit year, two-digit month and
        // day, checked against the calendar), as the file would write it.
        let dt = s
            .parse::<toml::value::Datetime>()
            .map_err(|_| not_a_date(s))?;
        Birthday::from_datetime(&dt)
    }
}

/// A `[wallet.NAME]` table as the file gives it: entries still text,
/// because reading them needs the chain, which the command line may set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalletEntry {
    /// `NAME`.
    pub name: String,
    /// `descriptors`, as written.
    pub descriptors: Vec<String>,
    /// `birthday`.
    pub birthday: Birthday,
    /// `gap_limit`, if given.
    pub gap_limit: Option<u32>,
}

/// A watch-only wallet, resolved: what the wallet index follows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalletSpec {
    /// The table's name (`[wallet.NAME]`): letters, digits, `-` and `_`.
    pub name: String,
    /// Every keychain of every `descriptors` entry, in order (a bare key
    /// or a multipath descriptor gives receive, then change). Never empty;
    /// no keychain appears twice across all wallets.
    pub keychains: Vec<Keychain>,
    /// Where scanning starts.
    pub birthday: Birthday,
    /// How many unused scripts past the last used one each ranged
    /// keychain is watched for (1 to 1000, default 20).
    pub gap_limit: u32,
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
    fn birthdays_are_heights_or_utc_days() {
        assert_eq!("840000".parse(), Ok(Birthday::Height(840_000)));
        assert_eq!(
            "1970-01-02".parse::<Birthday>().unwrap_err(),
            "\"1970-01-02\" is not a date from 2009 on; write the day as \"YYYY-MM-DD\" (UTC), e.g. \"2024-04-20\", or give a block height"
        );
        // The genesis block's day, and the halving of April 2024.
        assert_eq!(
            "2009-01-03".parse(),
            Ok(Birthday::Date {
                unix: 1_230_940_800
            })
        );
        assert_eq!(
            "2024-04-20".parse(),
            Ok(Birthday::Date {
                unix: 1_713_571_200
            })
        );
        for text in ["2024-02-29", "2009-01-03", "2100-12-31", "2000000"] {
            assert_eq!(text.parse::<Birthday>().unwrap().to_string(), text);
        }
        for bad in [
            "2023-02-29",
            "2024-13-01",
            "2024-4-20",
            "2024-04-20T00:00",
            "",
            "-1",
            "99999999999",
        ] {
            assert!(bad.parse::<Birthday>().is_err(), "{bad}");
        }
    }

    #[test]
    fn electrum_binds_default_their_ports() {
        assert_eq!(
            parse_electrum_bind("127.0.0.1"),
            Ok("127.0.0.1:50001".parse().unwrap())
        );
        assert_eq!(
            parse_electrum_tls_bind("[::1]"),
            Ok("[::1]:50002".parse().unwrap())
        );
        assert_eq!(
            parse_electrum_bind("10.0.0.1:60001"),
            Ok("10.0.0.1:60001".parse().unwrap())
        );
        let err = parse_electrum_bind("localhost").unwrap_err();
        assert!(err.contains("127.0.0.1:50001"), "{err}");
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
