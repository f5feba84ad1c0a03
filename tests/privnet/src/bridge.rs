//! An obfs4 bridge relay: C tor with `BridgeRelay 1`, its transport served
//! by Debian's `obfs4proxy`.
//!
//! The bridge is not in the consensus (it publishes its descriptor nowhere,
//! as an unlisted bridge handed out by hand would), so a client learns of it
//! only from its bridge line. C tor writes that line, with the transport's
//! `cert=`, into `pt_state/obfs4_bridgeline.txt`; the address and
//! fingerprint are left as placeholders, which [`bridge_line`] fills in.

use std::fmt::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

/// The Debian package that ships the transport.
pub const OBFS4_PACKAGE: &str = "obfs4proxy";

/// A running obfs4 bridge of the network.
#[derive(Debug, Clone)]
pub struct Obfs4Bridge {
    /// The full bridge line a client is given, without the `Bridge` keyword:
    /// `obfs4 127.0.0.1:PORT FINGERPRINT cert=… iat-mode=0`.
    pub line: String,
    /// The bridge's RSA identity, 40 upper-case hex digits.
    pub fingerprint: String,
    /// Where obfs4proxy listens for clients.
    pub obfs4_port: u16,
    /// The bridge's own ORPort (plain Tor, which a censor would block).
    pub or_port: u16,
}

/// torrc lines for an obfs4 bridge relay. Its descriptor goes nowhere
/// (`PublishServerDescriptor 0`): clients fetch it from the bridge itself.
pub fn torrc(or_port: u16, obfs4_port: u16, obfs4proxy: &Path) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "Address 127.0.0.1");
    let _ = writeln!(s, "ORPort 127.0.0.1:{or_port}");
    let _ = writeln!(s, "SocksPort 0");
    let _ = writeln!(s, "BridgeRelay 1");
    let _ = writeln!(s, "PublishServerDescriptor 0");
    let _ = writeln!(s, "ExitPolicy reject *:*");
    let _ = writeln!(
        s,
        "ServerTransportPlugin obfs4 exec {}",
        obfs4proxy.display()
    );
    let _ = writeln!(s, "ServerTransportListenAddr obfs4 127.0.0.1:{obfs4_port}");
    s
}

/// The bridge line of the bridge whose data directory is `datadir`, once
/// tor and obfs4proxy have written their halves of it; `None` until then.
pub fn read_line(datadir: &Path, obfs4_port: u16) -> Option<(String, String)> {
    let template =
        std::fs::read_to_string(datadir.join("pt_state").join("obfs4_bridgeline.txt")).ok()?;
    let fingerprint = std::fs::read_to_string(datadir.join("fingerprint")).ok()?;
    // "<nickname> <FINGERPRINT>"
    let fingerprint = fingerprint.split_whitespace().nth(1)?.to_owned();
    let line = bridge_line(&template, &format!("127.0.0.1:{obfs4_port}"), &fingerprint)?;
    Some((line, fingerprint))
}

/// Fill the placeholders of tor's bridge-line template. The template's one
/// line that is not a comment reads
/// `Bridge obfs4 <IP ADDRESS>:<PORT> <FINGERPRINT> cert=… iat-mode=0`.
fn bridge_line(template: &str, addr: &str, fingerprint: &str) -> Option<String> {
    let line = template
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("Bridge obfs4 "))?;
    let filled = line
        .trim_start_matches("Bridge ")
        .replace("<IP ADDRESS>:<PORT>", addr)
        .replace("<FINGERPRINT>", fingerprint);
    (!filled.contains('<')).then_some(filled)
}

/// Where `obfs4proxy` is, or how to install it.
pub fn find_obfs4proxy() -> Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("obfs4proxy"))
        .find(|p| p.is_file())
        .with_context(|| {
            format!("`obfs4proxy` is not installed: run `apt-get install -y {OBFS4_PACKAGE}`")
        })
        .and_then(|p| {
            let runs = Command::new(&p)
                .arg("-version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if !runs {
                bail!(
                    "{} does not run (`obfs4proxy -version` failed)",
                    p.display()
                );
            }
            Ok(p)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_template_gets_the_address_and_fingerprint() {
        let template = "# obfs4 torrc client bridge line\n#\n# This file is an automatically generated bridge line based on\n\
             # the current obfs4proxy configuration.\n\nBridge obfs4 <IP ADDRESS>:<PORT> <FINGERPRINT> cert=abc+/def iat-mode=0\n";
        assert_eq!(
            bridge_line(template, "127.0.0.1:5000", "AB12").as_deref(),
            Some("obfs4 127.0.0.1:5000 AB12 cert=abc+/def iat-mode=0")
        );
        assert_eq!(
            bridge_line("# nothing yet\n", "127.0.0.1:5000", "AB12"),
            None
        );
    }
}
