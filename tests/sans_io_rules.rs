//! The sans-IO rule, enforced mechanically: protocol code (the wire codec,
//! the peer machine and its limits, the address manager's tables and
//! selection, the connection engine) reads no clock, does no I/O, spawns nothing and draws no global
//! randomness. Time and randomness are inputs;
//! only the driver side (peer task, transport, daemon) touches the world.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

/// Code that must stay pure.
const PURE: &[&str] = &[
    "src/wire.rs",
    "src/wire",
    "src/peer/machine.rs",
    "src/peer/limits.rs",
    "src/peer/reason.rs",
    "src/peer/kind.rs",
    "src/peer/report.rs",
    "src/engine.rs",
    "src/engine",
    "src/chain.rs",
    "src/chain",
    "src/addrman.rs",
    "src/addrman",
    "src/netaddr.rs",
    "src/netaddr",
];

/// Files under a pure directory that are the I/O edge on purpose: the
/// address manager's state file, the header store and the filter header
/// store.
const IO_EDGE: &[&str] = &[
    "src/addrman/persist.rs",
    "src/chain/store.rs",
    "src/chain/filter_store.rs",
];

/// What pure code may not mention (outside comments).
const FORBIDDEN: &[&str] = &[
    "tokio",
    "Instant::now",
    "SystemTime::now",
    "thread_rng",
    "rand::rng()",
    "std::fs",
    "std::net::TcpStream",
    "std::thread",
    "spawn(",
    "arti_client",
    "TorTransport",
    "TorStream",
];

fn rust_files(path: &Path, out: &mut Vec<PathBuf>) {
    if path.is_dir() {
        for entry in std::fs::read_dir(path).unwrap() {
            rust_files(&entry.unwrap().path(), out);
        }
    } else if path.extension().is_some_and(|e| e == "rs") {
        out.push(path.to_path_buf());
    }
}

#[test]
fn protocol_code_is_sans_io() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for p in PURE {
        rust_files(&root.join(p), &mut files);
    }
    files.retain(|f| !IO_EDGE.iter().any(|edge| f.ends_with(edge)));
    // `tests.rs` modules compile only under `cfg(test)` (like the
    // `#[cfg(test)]` tails cut off below).
    files.retain(|f| !f.ends_with("tests.rs"));
    assert!(
        files.len() >= 6,
        "expected the pure modules, found {files:?}"
    );
    let mut violations = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        // Unit tests may use real clocks to make Instants; the rule is for
        // the code they test.
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        for (n, line) in code.lines().enumerate() {
            let line = line.split("//").next().unwrap_or_default();
            for bad in FORBIDDEN {
                if line.contains(bad) {
                    violations.push(format!("{}:{}: `{bad}` in {line:?}", file.display(), n + 1));
                }
            }
        }
    }
    assert!(
        violations.is_empty(),
        "sans-IO violations:\n{}",
        violations.join("\n")
    );
}
