//! The Electrum server's TLS identity (`electrum_tls_bind`): a self-signed
//! certificate made at first start and kept in the chain directory, so a
//! wallet that pinned it keeps trusting the server across restarts.
//!
//! Electrum wallets trust a server's self-signed certificate on first use
//! and compare it afterwards; the SHA-256 fingerprint logged at every start
//! is what a user checks against the wallet's "server certificate" view.
//!
//! Everything cryptographic is OpenSSL's (through the `openssl` and
//! `native-tls` crates Arti already links): the P-256 key, the X.509
//! certificate, the handshake.
//!
//! Files, next to the wallet index:
//! - [`CERT_FILE`]: the certificate, PEM (a chain is accepted, the first
//!   certificate being the server's);
//! - [`KEY_FILE`]: its private key, PEM PKCS#8, mode 0600.
//!
//! A user may replace both with a pair of their own in the same formats.

use std::fmt;
use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, MsbOption};
use openssl::ec::{EcGroup, EcKey};
use openssl::error::ErrorStack;
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::PKey;
use openssl::x509::extension::{
    BasicConstraints, ExtendedKeyUsage, SubjectAlternativeName, SubjectKeyIdentifier,
};
use openssl::x509::{X509, X509NameBuilder};
use tokio::net::TcpStream;
use tokio_native_tls::native_tls;
use zeroize::Zeroizing;

use crate::atomic_file::{AtomicFileError, write_atomically, write_atomically_private};

/// The certificate's file name in the chain directory.
pub const CERT_FILE: &str = "electrum_tls_cert.pem";

/// The private key's file name in the chain directory.
pub const KEY_FILE: &str = "electrum_tls_key.pem";

/// How long a new certificate is valid. A pinned self-signed certificate
/// gains nothing from rotation, and every renewal makes each wallet ask
/// its user again.
const VALIDITY_DAYS: u32 = 3650;

/// How far back a new certificate's validity starts, so a client whose
/// clock is behind does not see it as not yet valid.
const BACKDATE: Duration = Duration::from_secs(24 * 60 * 60);

/// Largest file read as a certificate or key. Real ones are a few kB; a
/// bigger file is not one, and is not read whole into memory.
const MAX_FILE_BYTES: u64 = 1 << 20;

/// A certificate's SHA-256 fingerprint (of its DER encoding). Shown as
/// colon-separated uppercase hex pairs, as wallets and browsers show it.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint([u8; 32]);

impl Fingerprint {
    /// The 32 bytes of the digest.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, byte) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(":")?;
            }
            write!(f, "{byte:02X}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

/// Accepts TLS connections with the server's identity, for
/// [`serve_tls`](super::server::serve_tls). Cheap to clone.
#[derive(Clone)]
pub struct TlsAcceptor {
    inner: tokio_native_tls::TlsAcceptor,
}

impl fmt::Debug for TlsAcceptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TlsAcceptor")
    }
}

/// A connection after its TLS handshake.
pub(crate) type TlsStream = tokio_native_tls::TlsStream<TcpStream>;

impl TlsAcceptor {
    /// Runs the server side of the handshake on `stream` (no timeout: the
    /// caller sets one).
    pub(crate) async fn accept(&self, stream: TcpStream) -> io::Result<TlsStream> {
        self.inner.accept(stream).await.map_err(io::Error::other)
    }
}

/// The server's certificate and key, loaded and ready to accept.
#[derive(Debug, Clone)]
pub struct TlsIdentity {
    acceptor: TlsAcceptor,
    fingerprint: Fingerprint,
    cert_path: PathBuf,
    created: bool,
}

impl TlsIdentity {
    /// The acceptor for [`serve_tls`](super::server::serve_tls).
    pub fn acceptor(&self) -> TlsAcceptor {
        self.acceptor.clone()
    }

    /// The SHA-256 fingerprint of the server's certificate.
    pub fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }

    /// Where the certificate is.
    pub fn cert_path(&self) -> &Path {
        &self.cert_path
    }

    /// Whether this start generated the pair (rather than reading it).
    pub fn created(&self) -> bool {
        self.created
    }
}

/// Why the TLS identity could not be loaded or made.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file exists but could not be read.
    #[error(
        "could not read {}: {source} (check its owner and permissions; to start over \
         with a new certificate, delete both {} and {})",
        path.display(), cert.display(), key.display()
    )]
    Read {
        /// The file.
        path: PathBuf,
        /// The certificate's path.
        cert: PathBuf,
        /// The key's path.
        key: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// The files are there but do not make a usable pair.
    #[error(
        "the Electrum TLS certificate {} and key {} are not a usable pair: {reason}; \
         delete both files and restart nightjar to generate a new pair \
         (wallets that trusted the old certificate will ask to trust the new one)",
        cert.display(), key.display()
    )]
    Damaged {
        /// The certificate's path.
        cert: PathBuf,
        /// The key's path.
        key: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Writing a new file failed.
    #[error(transparent)]
    Write(#[from] AtomicFileError),
    /// OpenSSL could not make a key or certificate.
    #[error("could not generate the Electrum TLS certificate: {reason}")]
    Generate {
        /// OpenSSL's error.
        reason: String,
    },
}

/// Loads the certificate and key from `dir`, generating and saving a new
/// self-signed pair when neither file exists, and logs the certificate's
/// fingerprint. One file without the other, or files that do not make a
/// working pair, are an error (never silently replaced: a wallet may have
/// pinned the certificate).
pub fn load_or_create(dir: &Path) -> Result<TlsIdentity, TlsError> {
    let cert_path = dir.join(CERT_FILE);
    let key_path = dir.join(KEY_FILE);
    let exists = |path: &Path| {
        path.try_exists().map_err(|source| TlsError::Read {
            path: path.to_path_buf(),
            cert: cert_path.clone(),
            key: key_path.clone(),
            source,
        })
    };
    let damaged = |reason: String| TlsError::Damaged {
        cert: cert_path.clone(),
        key: key_path.clone(),
        reason,
    };
    let (cert_pem, key_pem, created) = match (exists(&cert_path)?, exists(&key_path)?) {
        (false, false) => {
            let (cert_pem, key_pem) = generate().map_err(|e| TlsError::Generate {
                reason: e.to_string(),
            })?;
            // The key first: a crash between the two leaves a key without
            // a certificate, reported below, never a certificate whose key
            // is lost.
            write_atomically_private(&key_path, &key_pem)?;
            write_atomically(&cert_path, &cert_pem)?;
            (Zeroizing::new(cert_pem), key_pem, true)
        }
        (true, true) => {
            let read = |path: &Path| {
                read_limited(path).map_err(|source| TlsError::Read {
                    path: path.to_path_buf(),
                    cert: cert_path.clone(),
                    key: key_path.clone(),
                    source,
                })
            };
            let cert_pem = read(&cert_path)?;
            let key_pem = read(&key_path)?;
            warn_if_exposed(&key_path);
            (cert_pem, key_pem, false)
        }
        (true, false) => return Err(damaged(format!("{} is missing", key_path.display()))),
        (false, true) => return Err(damaged(format!("{} is missing", cert_path.display()))),
    };
    let (acceptor, fingerprint) = acceptor_from_pem(&cert_pem, &key_pem).map_err(damaged)?;
    tracing::info!(
        sha256_fingerprint = %fingerprint,
        file = %cert_path.display(),
        generated = created,
        "Electrum TLS certificate"
    );
    Ok(TlsIdentity {
        acceptor,
        fingerprint,
        cert_path,
        created,
    })
}

/// A new P-256 key and a self-signed certificate for it: PEM certificate,
/// PEM PKCS#8 key.
fn generate() -> Result<(Vec<u8>, Zeroizing<Vec<u8>>), ErrorStack> {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)?;
    let key = PKey::from_ec_key(EcKey::generate(&group)?)?;

    let mut name = X509NameBuilder::new()?;
    name.append_entry_by_nid(Nid::ORGANIZATIONNAME, "nightjar")?;
    name.append_entry_by_nid(Nid::COMMONNAME, "localhost")?;
    let name = name.build();

    let mut builder = X509::builder()?;
    builder.set_version(2)?; // X.509 v3, for the extensions
    // A random positive serial of at most 20 bytes (RFC 5280), so two
    // certificates of the same name never share one.
    let mut serial = BigNum::new()?;
    serial.rand(159, MsbOption::MAYBE_ZERO, false)?;
    builder.set_serial_number(&*serial.to_asn1_integer()?)?;
    builder.set_subject_name(&name)?;
    builder.set_issuer_name(&name)?;
    builder.set_pubkey(&key)?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .saturating_sub(BACKDATE)
        .as_secs();
    let not_before = match now.try_into() {
        Ok(t) => Asn1Time::from_unix(t)?,
        Err(_) => Asn1Time::days_from_now(0)?,
    };
    builder.set_not_before(&not_before)?;
    builder.set_not_after(&*Asn1Time::days_from_now(VALIDITY_DAYS)?)?;
    // No key usage extension: OpenSSL 1.1 does not treat a certificate
    // without keyCertSign as self-signed, and clients that pin it verify
    // it as its own issuer. Not a CA, for clients that check.
    builder.append_extension(BasicConstraints::new().critical().build()?)?;
    builder.append_extension(ExtendedKeyUsage::new().server_auth().build()?)?;
    let ski = SubjectKeyIdentifier::new().build(&builder.x509v3_context(None, None))?;
    builder.append_extension(ski)?;
    let san = SubjectAlternativeName::new()
        .dns("localhost")
        .ip("127.0.0.1")
        .build(&builder.x509v3_context(None, None))?;
    builder.append_extension(san)?;
    builder.sign(&key, MessageDigest::sha256())?;
    let cert = builder.build();
    Ok((
        cert.to_pem()?,
        Zeroizing::new(key.private_key_to_pem_pkcs8()?),
    ))
}

/// Checks the pair and builds the acceptor; the error says what is wrong.
fn acceptor_from_pem(
    cert_pem: &[u8],
    key_pem: &[u8],
) -> Result<(TlsAcceptor, Fingerprint), String> {
    let chain = X509::stack_from_pem(cert_pem)
        .map_err(|e| format!("the certificate is not a PEM X.509 certificate ({e})"))?;
    let leaf = chain
        .first()
        .ok_or_else(|| "the certificate file holds no certificate".to_owned())?;
    let key = PKey::private_key_from_pem(key_pem)
        .map_err(|e| format!("the key is not a PEM private key ({e})"))?;
    let public = leaf
        .public_key()
        .map_err(|e| format!("the certificate's public key is unreadable ({e})"))?;
    if !public.public_eq(&key) {
        return Err("the key is not the certificate's".to_owned());
    }
    if let Ok(now) = Asn1Time::days_from_now(0)
        && leaf.not_after() < now
    {
        tracing::warn!(
            expired = %leaf.not_after(),
            "the Electrum TLS certificate has expired; wallets may refuse it \
             (delete both files to generate a new pair)"
        );
    }
    let digest = leaf
        .digest(MessageDigest::sha256())
        .map_err(|e| format!("could not hash the certificate ({e})"))?;
    let fingerprint = Fingerprint(
        digest
            .as_ref()
            .try_into()
            .map_err(|_| "SHA-256 digest of the wrong length".to_owned())?,
    );
    let identity = native_tls::Identity::from_pkcs8(cert_pem, key_pem)
        .map_err(|e| format!("the key must be PEM PKCS#8, BEGIN PRIVATE KEY ({e})"))?;
    let acceptor = native_tls::TlsAcceptor::builder(identity)
        .min_protocol_version(Some(native_tls::Protocol::Tlsv12))
        .build()
        .map_err(|e| format!("OpenSSL refused the pair ({e})"))?;
    Ok((
        TlsAcceptor {
            inner: acceptor.into(),
        },
        fingerprint,
    ))
}

/// Reads a file of at most [`MAX_FILE_BYTES`] into zeroized memory,
/// sized up front so no copy of it is left behind by a reallocation.
fn read_limited(path: &Path) -> io::Result<Zeroizing<Vec<u8>>> {
    let file = File::open(path)?;
    let len = file.metadata()?.len();
    if len > MAX_FILE_BYTES {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{len} bytes, too large for a certificate or key"),
        ));
    }
    // `len` fits: it is at most MAX_FILE_BYTES. One spare byte lets
    // `read_to_end` see the end without growing the buffer.
    let mut bytes = Zeroizing::new(Vec::with_capacity(usize::try_from(len).unwrap_or(0) + 1));
    file.take(MAX_FILE_BYTES).read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Warns when the key file can be read by other users (a pair the user
/// copied in, or permissions changed since).
fn warn_if_exposed(path: &Path) {
    if let Ok(meta) = fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(
            file = %path.display(),
            "the Electrum TLS key is readable by other users; chmod 600 it"
        );
    }
}

#[cfg(test)]
mod tests {
    use bitcoin::hashes::{Hash, sha256};

    use super::*;

    #[test]
    fn creates_the_pair_once_then_reuses_it() {
        let dir = tempfile::tempdir().unwrap();
        let first = load_or_create(dir.path()).unwrap();
        assert!(first.created());
        let cert = dir.path().join(CERT_FILE);
        let key = dir.path().join(KEY_FILE);
        assert_eq!(first.cert_path(), cert);
        assert!(
            fs::read_to_string(&cert)
                .unwrap()
                .starts_with("-----BEGIN CERTIFICATE-----")
        );
        assert!(
            fs::read_to_string(&key)
                .unwrap()
                .starts_with("-----BEGIN PRIVATE KEY-----")
        );
        assert_eq!(
            fs::metadata(&key).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(!dir.path().join(format!("{KEY_FILE}.tmp")).exists());

        let key_before = fs::read(&key).unwrap();
        let second = load_or_create(dir.path()).unwrap();
        assert!(!second.created());
        assert_eq!(second.fingerprint(), first.fingerprint());
        assert_eq!(
            fs::read(&key).unwrap(),
            key_before,
            "the key is not rewritten"
        );

        // Another directory, another key and certificate.
        let other = tempfile::tempdir().unwrap();
        assert_ne!(
            load_or_create(other.path()).unwrap().fingerprint(),
            first.fingerprint()
        );
    }

    #[test]
    fn the_certificate_is_as_specified() {
        let dir = tempfile::tempdir().unwrap();
        let id = load_or_create(dir.path()).unwrap();
        let cert = X509::from_pem(&fs::read(dir.path().join(CERT_FILE)).unwrap()).unwrap();

        // The fingerprint is the SHA-256 of the DER, computed independently.
        let der = cert.to_der().unwrap();
        let expected = sha256::Hash::hash(&der).to_byte_array();
        assert_eq!(id.fingerprint().as_bytes(), &expected);
        let text = id.fingerprint().to_string();
        assert_eq!(text.len(), 32 * 3 - 1);
        let hex: String = expected.iter().map(|b| format!("{b:02X}")).collect();
        assert_eq!(text.replace(':', ""), hex);
        assert!(text.split(':').all(|p| p.len() == 2), "{text}");

        let sans: Vec<String> = cert
            .subject_alt_names()
            .unwrap()
            .iter()
            .map(|n| match (n.dnsname(), n.ipaddress()) {
                (Some(d), _) => format!("DNS:{d}"),
                (None, Some(ip)) => format!("IP:{ip:?}"),
                _ => "other".to_owned(),
            })
            .collect();
        assert_eq!(sans, ["DNS:localhost", "IP:[127, 0, 0, 1]"]);
        // Valid now, for about ten years.
        let now = Asn1Time::days_from_now(0).unwrap();
        assert!(cert.not_before() < now);
        let diff = cert.not_before().diff(cert.not_after()).unwrap();
        assert!((3650..=3652).contains(&diff.days), "{diff:?}");
        assert_eq!(cert.public_key().unwrap().bits(), 256);
        // Self-signed: it verifies with its own key.
        assert!(cert.verify(&cert.public_key().unwrap()).unwrap());
    }

    #[test]
    fn serials_are_random() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        load_or_create(a.path()).unwrap();
        load_or_create(b.path()).unwrap();
        let serial = |dir: &Path| {
            let cert = X509::from_pem(&fs::read(dir.join(CERT_FILE)).unwrap()).unwrap();
            cert.serial_number().to_bn().unwrap()
        };
        assert_ne!(serial(a.path()), serial(b.path()));
    }

    #[test]
    fn a_truncated_key_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        load_or_create(dir.path()).unwrap();
        let key = dir.path().join(KEY_FILE);
        let bytes = fs::read(&key).unwrap();
        fs::write(&key, &bytes[..bytes.len() / 2]).unwrap();
        let e = load_or_create(dir.path()).unwrap_err();
        assert!(matches!(e, TlsError::Damaged { .. }), "{e:?}");
        let text = e.to_string();
        assert!(text.contains(&key.display().to_string()), "{text}");
        assert!(
            text.contains(&dir.path().join(CERT_FILE).display().to_string()),
            "{text}"
        );
        assert!(text.contains("not a PEM private key"), "{text}");
        assert!(text.contains("delete both files"), "{text}");
        // Left alone: the user decides.
        assert_eq!(fs::read(&key).unwrap(), &bytes[..bytes.len() / 2]);
    }

    #[test]
    fn a_key_of_another_certificate_is_refused() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        load_or_create(a.path()).unwrap();
        load_or_create(b.path()).unwrap();
        fs::copy(b.path().join(KEY_FILE), a.path().join(KEY_FILE)).unwrap();
        let text = load_or_create(a.path()).unwrap_err().to_string();
        assert!(text.contains("the key is not the certificate's"), "{text}");
    }

    #[test]
    fn half_a_pair_is_an_error_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        load_or_create(dir.path()).unwrap();
        let cert = dir.path().join(CERT_FILE);
        fs::remove_file(&cert).unwrap();
        let text = load_or_create(dir.path()).unwrap_err().to_string();
        assert!(
            text.contains(&format!("{} is missing", cert.display())),
            "{text}"
        );
        assert!(!cert.exists());
        assert!(dir.path().join(KEY_FILE).exists());
    }

    #[test]
    fn a_stale_temp_file_does_not_widen_the_key_mode() {
        let dir = tempfile::tempdir().unwrap();
        let temp = dir.path().join(format!("{KEY_FILE}.tmp"));
        fs::write(&temp, b"left by a crash").unwrap();
        fs::set_permissions(&temp, fs::Permissions::from_mode(0o644)).unwrap();
        load_or_create(dir.path()).unwrap();
        let mode = fs::metadata(dir.path().join(KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(!temp.exists());
    }

    #[test]
    fn a_missing_directory_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let gone = dir.path().join("nope");
        let text = load_or_create(&gone).unwrap_err().to_string();
        assert!(
            text.contains(&gone.join(KEY_FILE).display().to_string()),
            "{text}"
        );
    }

    #[test]
    fn fingerprint_display() {
        let mut bytes = [0u8; 32];
        bytes[0] = 0xab;
        bytes[31] = 0x0f;
        let text = Fingerprint(bytes).to_string();
        assert!(text.starts_with("AB:00:"), "{text}");
        assert!(text.ends_with(":00:0F"), "{text}");
    }
}
