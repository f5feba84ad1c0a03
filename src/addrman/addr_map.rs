//! The address → entry lookup map, hashed under a secret.
//!
//! Peers choose the addresses we store, so the map must not let them aim
//! for hash collisions: it uses SipHash-2-4 under a key derived one-way
//! from the manager's secret key (so the derived key, which lives on in the
//! map and is not wiped on drop, reveals nothing about the bucketing key).
//! It is a hash map rather than a `BTreeMap` because lookups happen on every
//! gossiped address and on load; nothing ever iterates it to decide
//! anything, so its internal order cannot make the manager less deterministic.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};

use bitcoin::hashes::{HashEngine, siphash24};

use super::table::EntryId;
use crate::netaddr::NetAddr;

/// Address → entry id.
pub(crate) type AddrMap = HashMap<NetAddr, EntryId, MapHashBuilder>;

/// Builds [`MapHasher`]s under one derived key.
#[derive(Clone)]
pub(crate) struct MapHashBuilder {
    k0: u64,
    k1: u64,
}

impl MapHashBuilder {
    /// A builder under the two derived key halves.
    pub(crate) fn new(k0: u64, k1: u64) -> Self {
        MapHashBuilder { k0, k1 }
    }
}

impl std::fmt::Debug for MapHashBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MapHashBuilder(<derived key>)")
    }
}

impl BuildHasher for MapHashBuilder {
    type Hasher = MapHasher;

    fn build_hasher(&self) -> MapHasher {
        MapHasher(siphash24::HashEngine::with_keys(self.k0, self.k1))
    }
}

/// `std::hash::Hasher` over `bitcoin::hashes`' SipHash-2-4.
pub(crate) struct MapHasher(siphash24::HashEngine);

impl Hasher for MapHasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.input(bytes);
    }

    fn finish(&self) -> u64 {
        siphash24::Hash::from_engine_to_u64(self.0.clone())
    }
}
