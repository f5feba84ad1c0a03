//! Identity keys for the network's nodes, made with Debian's own tools.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

/// The identities other nodes and Arti need to know a relay by.
#[derive(Debug, Clone)]
pub struct RelayIdentity {
    /// RSA identity fingerprint, 40 hex digits.
    pub rsa: String,
    /// Ed25519 identity, unpadded base64 (what Arti's `ed_identity` takes).
    pub ed25519: String,
}

/// Months an authority certificate stays valid; a test network never lives
/// that long, but the signing key must outlive any run.
const AUTHORITY_CERT_MONTHS: &str = "12";

/// Create a v3 authority identity and signing key in `datadir/keys`, certified
/// for the directory address `dir_addr`; returns the v3 identity fingerprint.
pub fn make_authority_keys(datadir: &Path, dir_addr: &str) -> Result<String> {
    let keys = datadir.join("keys");
    std::fs::create_dir_all(&keys)?;
    let mut child = Command::new("tor-gencert")
        .current_dir(&keys)
        .args([
            "--create-identity-key",
            "-m",
            AUTHORITY_CERT_MONTHS,
            "-a",
            dir_addr,
        ])
        .args([
            "-i",
            "authority_identity_key",
            "-s",
            "authority_signing_key",
        ])
        .args(["-c", "authority_certificate", "--passphrase-fd", "0"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("running tor-gencert (install Debian's `tor` package)")?;
    // An empty passphrase: test keys protect nothing.
    child
        .stdin
        .take()
        .context("tor-gencert stdin")?
        .write_all(b"\n")?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "tor-gencert failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let cert = std::fs::read_to_string(keys.join("authority_certificate"))?;
    cert.lines()
        .find_map(|l| l.strip_prefix("fingerprint "))
        .map(|fp| fp.trim().to_string())
        .context("authority certificate has no fingerprint line")
}

/// Create a relay's identity keys in `datadir` and read them back.
pub fn make_relay_keys(datadir: &Path, nickname: &str) -> Result<RelayIdentity> {
    std::fs::create_dir_all(datadir)?;
    // `--list-fingerprint` needs a relay-shaped config to generate keys; the
    // bogus dirserver keeps tor from ever reaching for the public authorities.
    let out = Command::new("tor")
        .args([
            "--ignore-missing-torrc",
            "-f",
            "/dev/null",
            "--list-fingerprint",
        ])
        .args(["--orport", "1", "--nickname", nickname])
        .args([
            "--dirserver",
            "bogus 127.0.0.1:1 ffffffffffffffffffffffffffffffffffffffff",
        ])
        .arg("--datadirectory")
        .arg(datadir)
        .output()
        .context("running tor (install Debian's `tor` package)")?;
    if !out.status.success() {
        bail!(
            "tor --list-fingerprint failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    let second_word = |file: &str| -> Result<String> {
        let text = std::fs::read_to_string(datadir.join(file))
            .with_context(|| format!("reading {file}"))?;
        text.split_whitespace()
            .nth(1)
            .map(str::to_string)
            .with_context(|| format!("{file} is malformed: {text:?}"))
    };
    Ok(RelayIdentity {
        rsa: second_word("fingerprint")?,
        ed25519: second_word("fingerprint-ed25519")?,
    })
}
