//! A Tor network file whose only directory cache is a closed loopback port:
//! the embedded client starts, never bootstraps, and sends nothing beyond
//! 127.0.0.1. For tests of what a daemon does while Tor cannot be reached.

// `#[path]`-included by several test crates: `pub` is how they reach it.
#![allow(unreachable_pub)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};

/// Write the file into `dir` and return its path.
pub fn write(dir: &Path) -> PathBuf {
    let closed_port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let ident = "ACDBE7991A6F0F6B6E2B7F2D1B9B0A1C2D3E4F50";
    let path = dir.join("dead-network.toml");
    std::fs::write(
        &path,
        format!(
            "[tor_network.authorities]\nv3idents = [\"{ident}\"]\n\n\
             [[tor_network.fallback_caches]]\nrsa_identity = \"{ident}\"\n\
             ed_identity = \"vvpZnaYawCdGXg/Nkpy35IyJUReryiZI/bgRzhVEepo\"\n\
             orports = [\"127.0.0.1:{closed_port}\"]\n\n[address_filter]\nallow_local_addrs = true\n"
        ),
    )
    .unwrap();
    path
}
