//! Bans the user sets (`setban`), by IP subnet, until a wall-clock time.
//!
//! Unlike discouragement (an automatic, in-memory, 24-hour measure against
//! misbehaving peers), a ban is the user's decision: it survives restarts
//! (saved as `banlist.json` in the chain's data directory, the file name
//! Core uses), it applies to every kind of connection, inbound and
//! outbound, added peers included, and it lasts until it expires or is
//! lifted.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// Why a ban could not be set or lifted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BanError {
    /// `setban add` for a subnet already banned.
    #[error("IP/subnet already banned")]
    AlreadyBanned,
    /// `setban remove` for a subnet not banned.
    #[error("IP/subnet was not banned")]
    NotBanned,
}

/// One ban.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ban {
    /// What is banned.
    pub subnet: IpNet,
    /// When the ban was set (unix seconds).
    pub created: u64,
    /// When it ends (unix seconds).
    pub until: u64,
}

/// The banned subnets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BanList {
    bans: BTreeMap<IpNet, Ban>,
}

/// The file's shape: a version and the list, so a later format can tell.
#[derive(Serialize, Deserialize)]
struct BanFile {
    version: u32,
    banned: Vec<Ban>,
}

const FILE_VERSION: u32 = 1;

impl BanList {
    /// No bans.
    pub fn new() -> Self {
        BanList::default()
    }

    /// Ban `subnet` from `created` until `until`.
    pub fn add(&mut self, subnet: IpNet, created: u64, until: u64) -> Result<(), BanError> {
        let subnet = subnet.trunc();
        if self.bans.contains_key(&subnet) {
            return Err(BanError::AlreadyBanned);
        }
        self.bans.insert(
            subnet,
            Ban {
                subnet,
                created,
                until,
            },
        );
        Ok(())
    }

    /// Lift the ban on exactly `subnet`.
    pub fn remove(&mut self, subnet: IpNet) -> Result<(), BanError> {
        self.bans
            .remove(&subnet.trunc())
            .map(|_| ())
            .ok_or(BanError::NotBanned)
    }

    /// Lift every ban.
    pub fn clear(&mut self) {
        self.bans.clear();
    }

    /// Whether `ip` is in a ban still in force at `now_unix`.
    pub fn is_banned(&self, ip: IpAddr, now_unix: u64) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        self.bans
            .values()
            .any(|b| now_unix < b.until && b.subnet.contains(&ip))
    }

    /// Forget the bans that ended by `now_unix`; whether any did.
    pub fn sweep(&mut self, now_unix: u64) -> bool {
        let before = self.bans.len();
        self.bans.retain(|_, b| now_unix < b.until);
        self.bans.len() != before
    }

    /// The bans, by subnet.
    pub fn iter(&self) -> impl Iterator<Item = &Ban> {
        self.bans.values()
    }

    /// The file's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let file = BanFile {
            version: FILE_VERSION,
            banned: self.bans.values().copied().collect(),
        };
        serde_json::to_vec_pretty(&file).unwrap_or_default()
    }

    /// Read a file written by [`to_bytes`](Self::to_bytes).
    pub fn from_bytes(bytes: &[u8]) -> Result<BanList, String> {
        let file: BanFile =
            serde_json::from_slice(bytes).map_err(|e| format!("not a ban list: {e}"))?;
        if file.version != FILE_VERSION {
            return Err(format!(
                "ban list version {} (this nightjar reads version {FILE_VERSION})",
                file.version
            ));
        }
        let mut list = BanList::new();
        for b in file.banned {
            list.bans.insert(b.subnet.trunc(), b);
        }
        Ok(list)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn subnets_ban_their_addresses_until_they_expire() {
        let mut b = BanList::new();
        b.add(net("203.0.113.0/24"), 100, 200).unwrap();
        b.add(net("2001:db8::1/128"), 100, 300).unwrap();
        assert_eq!(
            b.add(net("203.0.113.9/24"), 1, 2),
            Err(BanError::AlreadyBanned)
        );
        assert!(b.is_banned("203.0.113.77".parse().unwrap(), 150));
        // An IPv4 address seen as IPv4-mapped IPv6 is the same address.
        assert!(b.is_banned("::ffff:203.0.113.77".parse().unwrap(), 150));
        assert!(!b.is_banned("203.0.114.1".parse().unwrap(), 150));
        assert!(!b.is_banned("203.0.113.77".parse().unwrap(), 200));
        assert!(b.is_banned("2001:db8::1".parse().unwrap(), 250));
        assert!(b.sweep(250));
        assert_eq!(b.iter().count(), 1);
        assert_eq!(b.remove(net("203.0.113.0/24")), Err(BanError::NotBanned));
        b.remove(net("2001:db8::1/128")).unwrap();
        assert_eq!(b.iter().count(), 0);
    }

    #[test]
    fn the_file_round_trips_and_damage_is_reported() {
        let mut b = BanList::new();
        b.add(net("198.51.100.7/32"), 10, 20).unwrap();
        let back = BanList::from_bytes(&b.to_bytes()).unwrap();
        assert_eq!(back, b);
        let err = BanList::from_bytes(b"{\"version\": 1, \"banned\": [").unwrap_err();
        assert!(err.contains("not a ban list"), "{err}");
        let err = BanList::from_bytes(b"{\"version\": 9, \"banned\": []}").unwrap_err();
        assert!(err.contains("version 9"), "{err}");
    }
}
