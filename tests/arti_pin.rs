//! Arti's crates move together, and security fixes arrive only with new
//! releases: every `arti-*` and `tor-*` crate in the lock file must be the
//! one pinned release, at least the one with the fixes we rely on. An
//! upgrade also means re-checking `tor/src/obsolete.rs` (how Arti announces
//! that it is obsolete) and the README's "Arti upgrades" section.

#![allow(clippy::unwrap_used, clippy::panic)]

/// arti-client 0.47.0 is Arti 2.7.0 (2026-10-01), which carries twelve
/// security fixes (TROVE-2026-028, -029, -044, -046, -047, -048 among them).
const OLDEST_ACCEPTABLE: (u64, u64, u64) = (0, 47, 0);

fn version(text: &str) -> (u64, u64, u64) {
    let mut parts = text.split('.').map(|p| p.parse::<u64>().unwrap());
    (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap(),
    )
}

#[test]
fn every_arti_crate_is_the_one_pinned_release_with_the_security_fixes() {
    let lock = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.lock")).unwrap();
    let mut arti = Vec::new();
    for package in lock.split("[[package]]").skip(1) {
        let field = |key: &str| {
            package.lines().find_map(|l| l.strip_prefix(key)).map(|v| {
                v.trim_matches(|c| c == ' ' || c == '=' || c == '"')
                    .to_owned()
            })
        };
        let (Some(name), Some(v)) = (field("name"), field("version")) else {
            continue;
        };
        if name == "arti-client" || name.starts_with("tor-") {
            arti.push((name, v));
        }
    }
    assert!(
        arti.iter().any(|(n, _)| n == "arti-client"),
        "no arti-client in Cargo.lock"
    );
    let client = &arti.iter().find(|(n, _)| n == "arti-client").unwrap().1;
    assert!(
        version(client) >= OLDEST_ACCEPTABLE,
        "arti-client {client} predates the security fixes of 0.47.0"
    );
    let strays: Vec<_> = arti.iter().filter(|(_, v)| v != client).collect();
    assert!(
        strays.is_empty(),
        "not at arti-client's {client}: {strays:?}"
    );
}
