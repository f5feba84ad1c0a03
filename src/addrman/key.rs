//! The secret that decides where addresses land in the tables.
//!
//! Placement must be unpredictable to peers: if an attacker could compute
//! which bucket and slot an address takes, it could craft addresses that
//! evict exactly the honest entries it wants gone. So every placement is a
//! keyed hash (SipHash-2-4, a PRF built for exactly this kind of
//! hash-flooding resistance) under a random key that never leaves the node
//! except into its own state file, and is wiped from memory on drop.
//!
//! The placement rules are Core's (`AddrInfo::GetTriedBucket`,
//! `GetNewBucket`, `GetBucketPosition`); each hash is domain-separated by a
//! tag byte.

use bitcoin::hashes::{HashEngine, siphash24};
use rand::CryptoRng;
use zeroize::{Zeroize, ZeroizeOnDrop};

use super::addr_map::MapHashBuilder;
use super::params::{
    BUCKET_SIZE, NEW_BUCKET_COUNT, NEW_BUCKETS_PER_SOURCE_GROUP, TRIED_BUCKET_COUNT,
    TRIED_BUCKETS_PER_GROUP,
};
use crate::netaddr::{NetAddr, NetGroup};

/// Length of the bucketing key: SipHash-2-4's 128-bit key. 2¹²⁸ guesses are
/// out of anyone's reach, so Core's 256 bits would add nothing here.
pub const ADDRMAN_KEY_LEN: usize = 16;

/// Hash domain: which of an address group's tried buckets an address takes.
const DOMAIN_TRIED_ADDR: u8 = b'T';
/// Hash domain: an address group's tried bucket.
const DOMAIN_TRIED_GROUP: u8 = b'G';
/// Hash domain: which of a source group's new buckets an address group takes.
const DOMAIN_NEW_PAIR: u8 = b'N';
/// Hash domain: a source group's new bucket.
const DOMAIN_NEW_SOURCE: u8 = b'S';
/// Hash domain: the lookup map's key halves.
const DOMAIN_MAP: u8 = b'M';
/// Hash domain: the slot inside a bucket.
const DOMAIN_SLOT: u8 = b'P';

/// The two tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TableKind {
    /// Addresses we heard about.
    New,
    /// Addresses we connected to.
    Tried,
}

/// The secret bucketing key of one address manager. Persisted with the
/// tables (placements are meaningless under another key) and zeroized on drop.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct AddrManKey([u8; ADDRMAN_KEY_LEN]);

impl AddrManKey {
    /// A fresh key from a cryptographic RNG (in production, one seeded from
    /// the operating system by the driver).
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut key = AddrManKey([0; ADDRMAN_KEY_LEN]);
        rng.fill_bytes(&mut key.0);
        key
    }

    /// A key from its bytes (tests, and loading a state file).
    pub fn from_bytes(bytes: [u8; ADDRMAN_KEY_LEN]) -> Self {
        AddrManKey(bytes)
    }

    /// The key's bytes, for the state file only.
    pub(crate) fn secret_bytes(&self) -> &[u8; ADDRMAN_KEY_LEN] {
        &self.0
    }

    /// A SipHash engine under this key, already fed the domain tag.
    fn engine(&self, domain: u8) -> siphash24::HashEngine {
        let mut k0 = [0u8; 8];
        let mut k1 = [0u8; 8];
        k0.copy_from_slice(&self.0[..8]);
        k1.copy_from_slice(&self.0[8..]);
        let mut e =
            siphash24::HashEngine::with_keys(u64::from_le_bytes(k0), u64::from_le_bytes(k1));
        k0.zeroize();
        k1.zeroize();
        e.input(&[domain]);
        e
    }

    /// A hash builder for the lookup map, under a key derived one-way from
    /// this one.
    pub(crate) fn map_hasher(&self) -> MapHashBuilder {
        let half = |i: u8| {
            let mut e = self.engine(DOMAIN_MAP);
            e.input(&[i]);
            siphash24::Hash::from_engine_to_u64(e)
        };
        MapHashBuilder::new(half(0), half(1))
    }

    /// The tried bucket of `addr`: one of 8 buckets chosen by its group, so
    /// one group can fill at most 8 of the 256 tried buckets.
    pub(crate) fn tried_bucket(&self, addr: &NetAddr) -> usize {
        let mut e = self.engine(DOMAIN_TRIED_ADDR);
        input_addr(&mut e, addr);
        let sub = siphash24::Hash::from_engine_to_u64(e) % TRIED_BUCKETS_PER_GROUP;
        let mut e = self.engine(DOMAIN_TRIED_GROUP);
        e.input(&addr.netgroup().to_bytes());
        e.input(&sub.to_le_bytes());
        reduce(siphash24::Hash::from_engine_to_u64(e), TRIED_BUCKET_COUNT)
    }

    /// The new bucket for an address of `group` heard from `source`: one of
    /// 64 buckets chosen by the source group, and within those exactly one
    /// per address group.
    pub(crate) fn new_bucket(&self, group: &NetGroup, source: &NetGroup) -> usize {
        let mut e = self.engine(DOMAIN_NEW_PAIR);
        e.input(&group.to_bytes());
        e.input(&source.to_bytes());
        let sub = siphash24::Hash::from_engine_to_u64(e) % NEW_BUCKETS_PER_SOURCE_GROUP;
        let mut e = self.engine(DOMAIN_NEW_SOURCE);
        e.input(&source.to_bytes());
        e.input(&sub.to_le_bytes());
        reduce(siphash24::Hash::from_engine_to_u64(e), NEW_BUCKET_COUNT)
    }

    /// The slot index (`bucket * BUCKET_SIZE + position`) `addr` takes in `bucket`.
    pub(crate) fn slot(&self, table: TableKind, bucket: usize, addr: &NetAddr) -> usize {
        let mut e = self.engine(DOMAIN_SLOT);
        e.input(match table {
            TableKind::New => b"N",
            TableKind::Tried => b"K",
        });
        e.input(&(bucket as u64).to_le_bytes());
        input_addr(&mut e, addr);
        bucket * BUCKET_SIZE + reduce(siphash24::Hash::from_engine_to_u64(e), BUCKET_SIZE)
    }

    /// The tried-table slot of `addr`.
    pub(crate) fn tried_slot(&self, addr: &NetAddr) -> usize {
        self.slot(TableKind::Tried, self.tried_bucket(addr), addr)
    }

    /// The new-table slot of `addr` heard from `source`.
    pub(crate) fn new_slot(&self, addr: &NetAddr, source: &NetGroup) -> usize {
        let bucket = self.new_bucket(&addr.netgroup(), source);
        self.slot(TableKind::New, bucket, addr)
    }
}

impl std::fmt::Debug for AddrManKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AddrManKey(<secret>)")
    }
}

/// Feeds an address (network, host bytes, port) to a hash engine; Core's `GetKey()`.
fn input_addr(e: &mut siphash24::HashEngine, addr: &NetAddr) {
    e.input(&[addr.network().bip155_id()]);
    e.input(addr.host.bytes().as_ref());
    e.input(&addr.port.to_be_bytes());
}

/// `hash mod n`, for a power-of-two `n` that fits in a `usize`.
fn reduce(hash: u64, n: usize) -> usize {
    (hash % n as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netaddr::Host;
    use std::collections::BTreeSet;
    use std::net::Ipv4Addr;

    fn key() -> AddrManKey {
        AddrManKey::from_bytes([7; ADDRMAN_KEY_LEN])
    }

    fn v4(a: u8, b: u8, c: u8, d: u8) -> NetAddr {
        NetAddr::new(Host::Ipv4(Ipv4Addr::new(a, b, c, d)), 8333)
    }

    #[test]
    fn one_group_reaches_at_most_eight_tried_buckets() {
        let k = key();
        let buckets: BTreeSet<_> = (0..=255u8)
            .flat_map(|c| (0..8u8).map(move |d| v4(9, 9, c, d)))
            .map(|a| k.tried_bucket(&a))
            .collect();
        assert!(buckets.len() <= TRIED_BUCKETS_PER_GROUP as usize);
        assert!(
            buckets.len() >= 6,
            "should use most of its 8: {}",
            buckets.len()
        );
    }

    #[test]
    fn one_source_reaches_at_most_64_new_buckets() {
        let k = key();
        let source = v4(5, 5, 5, 5).netgroup();
        let buckets: BTreeSet<_> = (0..=255u8)
            .flat_map(|a| (0..=255u8).map(move |b| v4(a, b, 1, 1)))
            .map(|addr| k.new_bucket(&addr.netgroup(), &source))
            .collect();
        assert!(buckets.len() <= NEW_BUCKETS_PER_SOURCE_GROUP as usize);
        assert!(buckets.len() >= 60);
    }

    #[test]
    fn placement_depends_on_the_key() {
        let a = v4(1, 2, 3, 4);
        let other = AddrManKey::from_bytes([8; ADDRMAN_KEY_LEN]);
        let differs = (0..50u8).any(|i| {
            let x = v4(1, i, 3, 4);
            key().tried_slot(&x) != other.tried_slot(&x)
        });
        assert!(differs);
        assert_eq!(key().tried_slot(&a), key().tried_slot(&a));
        assert!(key().tried_slot(&a) < TRIED_BUCKET_COUNT * BUCKET_SIZE);
    }

    #[test]
    fn debug_hides_the_secret() {
        assert_eq!(format!("{:?}", key()), "AddrManKey(<secret>)");
    }
}
