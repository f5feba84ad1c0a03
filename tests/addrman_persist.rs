//! The address manager's state file: round trips, restore determinism, and
//! every way a file can be damaged (each must give its specific error,
//! never a panic, and `load_or_recover` must set the file aside).

// Helpers here are test code too: clippy.toml's test allowances (unwrap,
// expect, panic, printing) only reach `#[test]` functions, not their helpers.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr
)]

use std::fs;
use std::net::Ipv4Addr;
use std::path::Path;

use bitcoin::hashes::{Hash, sha256d};
use bitcoin::p2p::ServiceFlags;
use nightjar::addrman::{
    ADDRMAN_KEY_LEN, AddrMan, AddrManKey, AddrRecord, AddrSource, CorruptReason, DecodeError,
    FORMAT_VERSION, InternalSource, LoadError, MAX_FILE_LEN, Recovery, Want, load_or_recover,
};
use nightjar::netaddr::{Host, NetAddr, NetworkId, NetworkSet};
use proptest::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

const NOW: u64 = 1_700_000_000;
const NET: bitcoin::Network = bitcoin::Network::Bitcoin;
/// Header: magic (8), version (4), chain magic (4), payload length (8).
const HEADER_LEN: usize = 24;

fn key() -> AddrManKey {
    AddrManKey::from_bytes([0x33; ADDRMAN_KEY_LEN])
}

/// A routable IPv4 address, spread over many /16s.
fn v4(i: u32) -> NetAddr {
    let [a, b, c, d] = i.wrapping_mul(2_654_435_761).to_be_bytes();
    NetAddr::new(Host::Ipv4(Ipv4Addr::new(30 + a % 60, b, c, d | 1)), 8333)
}

fn onion(i: u32) -> NetAddr {
    let mut k = [0u8; 32];
    k[..4].copy_from_slice(&i.to_be_bytes());
    k[4] = (i.wrapping_mul(97)) as u8;
    k[0] ^= (i % 251) as u8;
    NetAddr::new(Host::TorV3(k), 8333)
}

/// A manager with history: gossip from many sources, promotions,
/// collisions, failures, removals and a shuffled sample order.
fn busy_manager(n: u32, seeds: bool) -> AddrMan {
    let mut m = AddrMan::new(NET, key());
    let mut rng = ChaCha20Rng::seed_from_u64(11);
    let recs: Vec<_> = (0..n)
        .flat_map(|i| [v4(i * 7), onion(i)])
        .map(|addr| AddrRecord {
            addr,
            services: ServiceFlags::NETWORK | ServiceFlags::WITNESS,
            last_seen: NOW - 3600,
        })
        .collect();
    for (i, chunk) in recs.chunks(97).enumerate() {
        let src = match i % 5 {
            0 => AddrSource::InboundOnion,
            1 => AddrSource::Internal(InternalSource::named("seed.example")),
            _ => AddrSource::Peer(v4(1_000_000 + i as u32 * 13)),
        };
        m.add(chunk, &src, NOW, &mut rng);
    }
    for (i, r) in recs.iter().enumerate().step_by(3) {
        m.attempt(&r.addr, i % 2 == 0, NOW + 10);
        if i % 4 == 0 {
            m.good(&r.addr, NOW + 20);
        }
    }
    for r in recs.iter().step_by(31) {
        m.forget(&r.addr);
    }
    if seeds {
        m.add_fixed_seeds(NetworkSet::all(), NOW, &mut rng);
    }
    m.gossip_sample(1000, NetworkSet::all(), NOW, &mut rng);
    m.resolve_collisions(NOW + 3 * 3600);
    m.check_consistency().unwrap();
    m
}

fn selections(m: &AddrMan, seed: u64) -> Vec<NetAddr> {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let wants = [
        Want::new(NetworkSet::all()),
        Want::new(NetworkSet::only(NetworkId::Onion)),
        Want::new(NetworkSet::all())
            .prefer_onion(60)
            .require(ServiceFlags::WITNESS),
    ];
    (0..600)
        .filter_map(|i| {
            let w = &wants[i % wants.len()];
            if i % 7 == 0 {
                m.select_feeler(w, NOW + 7200, &mut rng)
            } else {
                m.select(w, NOW + 7200, &mut rng)
            }
        })
        .map(|s| s.addr)
        .collect()
}

fn small_file() -> Vec<u8> {
    busy_manager(20, false).to_bytes()
}

/// `bytes` with the checksum recomputed, as a careless or malicious editor would.
fn reseal(mut bytes: Vec<u8>) -> Vec<u8> {
    let body = bytes.len() - 32;
    let sum = sha256d::Hash::hash(&bytes[..body]);
    bytes[body..].copy_from_slice(sum.as_byte_array());
    bytes
}

#[test]
fn round_trip_is_byte_identical() {
    let m = busy_manager(2000, true);
    assert!(m.len_tried() > 100 && m.len_new() > 1000);
    let bytes = m.to_bytes();
    let back = AddrMan::from_bytes(&bytes, NET).unwrap();
    back.check_consistency().unwrap();
    assert_eq!(back.to_bytes(), bytes);
    assert_eq!(back.info(), m.info());
    assert_eq!(back.len(), m.len());
}

#[test]
fn restored_manager_selects_like_the_original() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("addrman.dat");
    let mut original = busy_manager(2000, true);
    original.save_file(&path).unwrap();
    let mut restored = AddrMan::load_file(&path, NET).unwrap();
    for seed in [1, 2, 3] {
        let a = selections(&original, seed);
        assert!(a.len() > 500);
        assert_eq!(a, selections(&restored, seed));
    }
    // Gossip samples (which reorder internal state) agree too, twice running.
    for _ in 0..2 {
        let mut r1 = ChaCha20Rng::seed_from_u64(5);
        let mut r2 = ChaCha20Rng::seed_from_u64(5);
        assert_eq!(
            original.gossip_sample(1000, NetworkSet::all(), NOW, &mut r1),
            restored.gossip_sample(1000, NetworkSet::all(), NOW, &mut r2)
        );
    }
    // And so does a fresh manager fed the same history.
    assert_eq!(
        selections(&busy_manager(2000, true), 9),
        selections(&original, 9)
    );
}

#[test]
fn missing_file() {
    let dir = tempfile::tempdir().unwrap();
    let e = AddrMan::load_file(&dir.path().join("nope.dat"), NET).unwrap_err();
    assert!(matches!(e, LoadError::Missing { .. }), "{e}");
}

#[test]
fn empty_file_is_truncated() {
    assert_eq!(
        AddrMan::from_bytes(&[], NET).unwrap_err(),
        DecodeError::Truncated {
            len: 0,
            needed: HEADER_LEN as u64
        }
    );
}

#[test]
fn every_truncation_is_reported_as_such() {
    let bytes = small_file();
    for cut in 0..bytes.len() {
        match AddrMan::from_bytes(&bytes[..cut], NET) {
            Err(DecodeError::Truncated { len, .. }) => assert_eq!(len, cut as u64),
            other => panic!("cut at {cut}: {other:?}"),
        }
    }
}

#[test]
fn wrong_magic_and_garbage() {
    let mut bytes = small_file();
    bytes[0] ^= 0x20;
    assert_eq!(
        AddrMan::from_bytes(&bytes, NET).unwrap_err(),
        DecodeError::Corrupt(CorruptReason::BadMagic)
    );
    let garbage: Vec<u8> = (0..5000u32).map(|i| (i * 7919 % 251) as u8).collect();
    assert_eq!(
        AddrMan::from_bytes(&garbage, NET).unwrap_err(),
        DecodeError::Corrupt(CorruptReason::BadMagic)
    );
}

#[test]
fn future_version_is_unsupported() {
    let mut bytes = small_file();
    bytes[8..12].copy_from_slice(&(FORMAT_VERSION + 1).to_le_bytes());
    assert_eq!(
        AddrMan::from_bytes(&reseal(bytes), NET).unwrap_err(),
        DecodeError::UnsupportedVersion {
            found: FORMAT_VERSION + 1,
            supported: FORMAT_VERSION
        }
    );
}

#[test]
fn another_chains_file_is_refused() {
    let bytes = small_file();
    assert!(matches!(
        AddrMan::from_bytes(&bytes, bitcoin::Network::Testnet4).unwrap_err(),
        DecodeError::WrongNetwork {
            expected: bitcoin::Network::Testnet4,
            ..
        }
    ));
}

#[test]
fn flipped_bytes_are_caught_where_they_land() {
    let bytes = small_file();
    for pos in (0..bytes.len()).step_by(7).chain([bytes.len() - 1]) {
        let mut bad = bytes.clone();
        bad[pos] ^= 0x01;
        let e = AddrMan::from_bytes(&bad, NET).unwrap_err();
        let ok = match pos {
            0..8 => e == DecodeError::Corrupt(CorruptReason::BadMagic),
            8..12 => matches!(e, DecodeError::UnsupportedVersion { .. }),
            12..16 => matches!(e, DecodeError::WrongNetwork { .. }),
            16..24 => matches!(
                e,
                DecodeError::Truncated { .. }
                    | DecodeError::Corrupt(CorruptReason::WrongLength { .. })
            ),
            _ => e == DecodeError::Corrupt(CorruptReason::ChecksumMismatch),
        };
        assert!(ok, "flip at {pos}: {e:?}");
    }
}

#[test]
fn trailing_bytes_are_corrupt() {
    let mut bytes = small_file();
    bytes.push(0);
    assert!(matches!(
        AddrMan::from_bytes(&bytes, NET).unwrap_err(),
        DecodeError::Corrupt(CorruptReason::WrongLength { .. })
    ));
}

#[test]
fn a_valid_checksum_does_not_make_bad_contents_trusted() {
    let bytes = small_file();
    // Another key: every stored placement is now where this key would not put it.
    let mut other_key = bytes.clone();
    other_key[HEADER_LEN] ^= 0xff;
    let e = AddrMan::from_bytes(&reseal(other_key), NET).unwrap_err();
    assert!(
        matches!(&e, DecodeError::Corrupt(CorruptReason::Malformed(m)) if m.contains("not where the key puts it")),
        "{e:?}"
    );
    // An entry count larger than the tables (at the CompactSize after key and last_good).
    let mut huge = bytes.clone();
    let at = HEADER_LEN + ADDRMAN_KEY_LEN + 8;
    assert!(huge[at] < 0xfd, "the small file's count is one byte");
    huge.splice(at..at + 1, [0xfe, 0xff, 0xff, 0xff, 0x00]);
    // Keep the header's payload length honest so the envelope passes.
    let payload_len = (huge.len() - HEADER_LEN - 32) as u64;
    huge[16..24].copy_from_slice(&payload_len.to_le_bytes());
    let e = AddrMan::from_bytes(&reseal(huge), NET).unwrap_err();
    assert!(
        matches!(&e, DecodeError::Corrupt(CorruptReason::Malformed(m)) if m.contains("more than the tables hold")),
        "{e:?}"
    );
}

#[test]
fn oversized_file_is_not_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.dat");
    let f = fs::File::create(&path).unwrap();
    f.set_len(MAX_FILE_LEN + 1).unwrap();
    let e = AddrMan::load_file(&path, NET).unwrap_err();
    assert!(matches!(
        e.decode_error(),
        Some(DecodeError::Corrupt(CorruptReason::WrongLength { .. }))
    ));
}

fn write(path: &Path, bytes: &[u8]) {
    fs::write(path, bytes).unwrap();
}

#[test]
fn recovery_sets_bad_files_aside_and_starts_fresh() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("addrman.dat");
    let mut rng = ChaCha20Rng::seed_from_u64(3);

    let s = load_or_recover(&path, NET, &mut rng);
    assert!(matches!(s.recovery, Some(Recovery::Missing)));
    assert!(s.addrman.is_empty());

    let good = small_file();
    write(&path, &good);
    let s = load_or_recover(&path, NET, &mut rng);
    assert!(s.recovery.is_none());
    assert_eq!(s.addrman.to_bytes(), good);

    let mut flipped = good.clone();
    flipped[100] ^= 4;
    write(&path, &flipped);
    let s = load_or_recover(&path, NET, &mut rng);
    let Some(Recovery::SetAside { moved_to, error }) = s.recovery else {
        panic!("expected SetAside");
    };
    assert_eq!(moved_to, dir.path().join("addrman.dat.corrupt-1"));
    assert!(matches!(
        error.decode_error(),
        Some(DecodeError::Corrupt(CorruptReason::ChecksumMismatch))
    ));
    assert_eq!(fs::read(&moved_to).unwrap(), flipped);
    assert!(!path.exists() && s.addrman.is_empty());

    // A second bad file does not overwrite the first one set aside.
    write(&path, &flipped);
    let s = load_or_recover(&path, NET, &mut rng);
    assert!(
        matches!(s.recovery, Some(Recovery::SetAside { ref moved_to, .. }) if *moved_to == dir.path().join("addrman.dat.corrupt-2"))
    );

    write(&path, &good[..good.len() / 2]);
    let s = load_or_recover(&path, NET, &mut rng);
    assert!(
        matches!(s.recovery, Some(Recovery::SetAside { ref moved_to, .. }) if *moved_to == dir.path().join("addrman.dat.truncated-1"))
    );

    // The fresh manager works and can be saved where the bad file was.
    let mut fresh = s.addrman;
    fresh.add_fixed_seeds(NetworkSet::only(NetworkId::Onion), NOW, &mut rng);
    fresh.save_file(&path).unwrap();
    assert!(AddrMan::load_file(&path, NET).is_ok());
}

#[test]
fn unreadable_file_is_left_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("addrman.dat");
    fs::create_dir(&path).unwrap();
    let s = load_or_recover(&path, NET, &mut ChaCha20Rng::seed_from_u64(1));
    assert!(matches!(
        s.recovery,
        Some(Recovery::Unreadable {
            error: LoadError::Io { .. }
        })
    ));
    assert!(path.is_dir());
}

#[test]
fn a_fresh_key_differs_per_seed() {
    let a = AddrMan::new(
        NET,
        AddrManKey::generate(&mut ChaCha20Rng::seed_from_u64(1)),
    )
    .to_bytes();
    let b = AddrMan::new(
        NET,
        AddrManKey::generate(&mut ChaCha20Rng::seed_from_u64(2)),
    )
    .to_bytes();
    assert_ne!(a, b);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_mutations_never_load_and_never_panic(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..8)
    ) {
        let bytes = small_file();
        let mut bad = bytes.clone();
        for (pos, xor) in edits {
            let p = pos.index(bad.len());
            bad[p] ^= xor;
        }
        prop_assert!(AddrMan::from_bytes(&bad, NET).is_err());
    }

    #[test]
    fn resealed_payload_mutations_never_panic(
        pos in any::<prop::sample::Index>(),
        xor in 1u8..=255,
    ) {
        // Past the checksum, straight into the decoder: it may accept a
        // harmless change (a timestamp) but must never panic or break the tables.
        let bytes = small_file();
        let mut bad = bytes.clone();
        let p = HEADER_LEN + pos.index(bytes.len() - HEADER_LEN - 32);
        bad[p] ^= xor;
        if let Ok(m) = AddrMan::from_bytes(&reseal(bad), NET) {
            prop_assert!(m.check_consistency().is_ok());
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        prop_assert!(AddrMan::from_bytes(&bytes, NET).is_err());
        let mut with_magic = b"NJADDRMN".to_vec();
        with_magic.extend_from_slice(&bytes);
        prop_assert!(AddrMan::from_bytes(&with_magic, NET).is_err());
    }
}
