//! RPC cookie authentication, the way Bitcoin Core does it.
//!
//! At start the server writes `__cookie__:<64 lowercase hex>` (32 random
//! bytes, no trailing newline, 75 bytes) to the cookie file with mode 0600;
//! a local client that can read the file can use the RPC interface, nobody
//! else can. The file is removed at clean exit, so a stale cookie does not
//! suggest a running daemon.
//!
//! Clients send HTTP Basic auth with user `__cookie__` and the hex string as
//! the password ([`read_cookie`] splits the file into the two).

use std::ffi::OsString;
use std::fmt;
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use data_encoding::{BASE64, BASE64_NOPAD, HEXLOWER};
use rand::RngCore;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, Zeroizing};

/// The user name of cookie authentication (Core's `COOKIEAUTH_USER`).
pub const COOKIE_USER: &str = "__cookie__";

/// How many random bytes a cookie holds (Core uses 32).
const COOKIE_BYTES: usize = 32;

/// Suffix of the temporary file the cookie is written to before the rename.
const TEMP_SUFFIX: &str = ".tmp";

/// Largest cookie file [`read_cookie`] accepts: a real one is 75 bytes, and
/// a client pointed at some big file by mistake should not read it all.
const MAX_COOKIE_FILE: u64 = 4096;

/// A fresh RPC secret: the password that goes with [`COOKIE_USER`].
///
/// The secret is wiped from memory when the value is dropped, and `Debug`
/// never shows it.
pub struct Cookie {
    /// 64 lowercase hex digits.
    password: Zeroizing<String>,
}

impl Cookie {
    /// A new cookie from 32 bytes of the operating system's randomness
    /// (through the thread-local CSPRNG, which is seeded from it).
    pub fn generate() -> Self {
        let mut bytes = [0u8; COOKIE_BYTES];
        rand::rng().fill_bytes(&mut bytes);
        let password = Zeroizing::new(HEXLOWER.encode(&bytes));
        bytes.zeroize();
        Cookie { password }
    }

    /// The user name to authenticate with ([`COOKIE_USER`]).
    pub fn user(&self) -> &str {
        COOKIE_USER
    }

    /// The password to authenticate with (64 lowercase hex digits).
    pub fn password(&self) -> &str {
        &self.password
    }

    /// What the cookie file holds: `__cookie__:<password>`, no newline.
    pub fn file_contents(&self) -> Zeroizing<String> {
        Zeroizing::new(format!("{COOKIE_USER}:{}", self.password.as_str()))
    }

    /// Generates a cookie and writes it to `path` (see [`CookieFile`]).
    ///
    /// The bytes go to `<path>.tmp`, created afresh with mode 0600 (a stale
    /// temporary file is deleted first, so its permissions cannot carry
    /// over), are flushed to disk, and the file is renamed over `path`: a
    /// client never reads a half-written cookie, and an old cookie with
    /// looser permissions is replaced rather than rewritten in place. The
    /// parent directory is created (mode 0700) if missing.
    pub fn create(path: &Path) -> io::Result<CookieFile> {
        let cookie = Cookie::generate();
        write_cookie_file(path, &cookie)?;
        Ok(CookieFile {
            path: path.to_path_buf(),
            expected: cookie.file_contents(),
            cookie,
            removed: false,
        })
    }
}

impl fmt::Debug for Cookie {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cookie")
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Writes `cookie` to `path` through a 0600 temporary file and a rename.
fn write_cookie_file(path: &Path, cookie: &Cookie) -> io::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        // 0700: the directory holds the secret; an existing directory keeps
        // whatever mode its owner gave it.
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)
            .map_err(|e| annotate(e, "create the directory", parent))?;
    }
    let tmp = temp_path(path);
    match fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(annotate(e, "remove the stale", &tmp)),
    }
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| annotate(e, "create", &tmp))?;
    let written = file
        .write_all(cookie.file_contents().as_bytes())
        .and_then(|()| file.sync_all());
    drop(file);
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(annotate(e, "write", &tmp));
    }
    if let Err(e) = fs::rename(&tmp, path) {
        let _ = fs::remove_file(&tmp);
        return Err(annotate(e, "rename the temporary file onto", path));
    }
    // Make the rename itself durable; a failure here leaves a correct file
    // that may merely not survive a power cut, which is harmless for a
    // secret that is regenerated at every start.
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        let _ = File::open(parent).and_then(|d| d.sync_all());
    }
    Ok(())
}

/// `<path>.tmp`.
fn temp_path(path: &Path) -> PathBuf {
    let mut name = OsString::from(path.as_os_str());
    name.push(TEMP_SUFFIX);
    PathBuf::from(name)
}

/// Adds what we were doing and to which path to an I/O error, keeping its
/// kind so callers can still tell "permission denied" from "not found".
fn annotate(e: io::Error, what: &str, path: &Path) -> io::Error {
    io::Error::new(
        e.kind(),
        format!("could not {what} {}: {e}", path.display()),
    )
}

/// The cookie file of a running server: the secret it holds, and the file
/// itself, which is removed by [`CookieFile::remove`] or on drop.
///
/// Removal happens only if the file still holds our cookie: if another
/// daemon has since replaced it (same data directory, started later), its
/// cookie is left alone.
pub struct CookieFile {
    /// Where the cookie lives.
    path: PathBuf,
    /// The secret.
    cookie: Cookie,
    /// `__cookie__:<password>`, what the file and a client's decoded
    /// credentials are compared against.
    expected: Zeroizing<String>,
    /// Whether the file was already removed (so drop does nothing).
    removed: bool,
}

impl CookieFile {
    /// Where the cookie file is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The secret in it.
    pub fn cookie(&self) -> &Cookie {
        &self.cookie
    }

    /// Whether an HTTP `Authorization` header value carries our credentials:
    /// `Basic <base64 of "__cookie__:<password>">`.
    ///
    /// The comparison of the decoded credentials takes the same time
    /// whichever byte differs (only the length may leak, and the length of
    /// a cookie is public). The scheme name is matched case-insensitively
    /// (RFC 9110); the base64 may omit its padding.
    pub fn check_basic_auth(&self, header_value: &str) -> bool {
        let value = header_value.trim();
        let Some((scheme, encoded)) = value.split_once(' ') else {
            return false;
        };
        if !scheme.eq_ignore_ascii_case("basic") {
            return false;
        }
        let encoded = encoded.trim().as_bytes();
        let Ok(decoded) = BASE64
            .decode(encoded)
            .or_else(|_| BASE64_NOPAD.decode(encoded))
        else {
            return false;
        };
        let decoded = Zeroizing::new(decoded);
        bool::from(decoded.as_slice().ct_eq(self.expected.as_bytes()))
    }

    /// Removes the cookie file now (if it still holds our cookie), and
    /// reports what went wrong, unlike the silent removal on drop.
    pub fn remove(mut self) -> io::Result<()> {
        self.removed = true;
        remove_if_ours(&self.path, &self.expected)
    }
}

/// Deletes `path` if its contents are `expected`; a missing file is fine.
fn remove_if_ours(path: &Path, expected: &str) -> io::Result<()> {
    let current = match read_limited(path) {
        Ok(bytes) => Zeroizing::new(bytes),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if current.as_slice() != expected.as_bytes() {
        tracing::debug!(
            path = %path.display(),
            "the RPC cookie file holds another cookie now; leaving it"
        );
        return Ok(());
    }
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(annotate(e, "remove", path)),
    }
}

impl Drop for CookieFile {
    fn drop(&mut self) {
        if self.removed {
            return;
        }
        self.removed = true;
        if let Err(e) = remove_if_ours(&self.path, &self.expected) {
            tracing::warn!(error = %e, "could not remove the RPC cookie file");
        }
    }
}

impl fmt::Debug for CookieFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CookieFile")
            .field("path", &self.path)
            .field("cookie", &self.cookie)
            .finish_non_exhaustive()
    }
}

/// Reads at most [`MAX_COOKIE_FILE`] bytes of `path`.
fn read_limited(path: &Path) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    File::open(path)?
        .take(MAX_COOKIE_FILE)
        .read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Reads a cookie file for a client: `(user, password)`.
///
/// Like Core's client, only the first line counts (a cookie written by
/// hand with a trailing newline still works). The error keeps the
/// operating system's kind (`NotFound`: the daemon is not running or uses
/// another data directory; `PermissionDenied`: another user's daemon), and
/// a file without `:` is `InvalidData`.
pub fn read_cookie(path: &Path) -> io::Result<(String, String)> {
    let bytes = Zeroizing::new(read_limited(path)?);
    let text = std::str::from_utf8(&bytes).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("the cookie file {} is not text", path.display()),
        )
    })?;
    let line = text.lines().next().unwrap_or("").trim_end_matches('\r');
    let Some((user, password)) = line.split_once(':') else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "the cookie file {} does not hold `user:password`",
                path.display()
            ),
        ));
    };
    Ok((user.to_owned(), password.to_owned()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn basic(user_pass: &str) -> String {
        format!("Basic {}", BASE64.encode(user_pass.as_bytes()))
    }

    #[test]
    fn generated_cookies_are_64_hex_and_differ() {
        let a = Cookie::generate();
        let b = Cookie::generate();
        assert_eq!(a.password().len(), 64);
        assert!(
            a.password()
                .bytes()
                .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
        );
        assert_ne!(a.password(), b.password());
        assert_eq!(a.file_contents().len(), 75);
        assert!(a.file_contents().starts_with("__cookie__:"));
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let dir = tempfile::tempdir().unwrap();
        let file = Cookie::create(&dir.path().join(".cookie")).unwrap();
        let shown = format!("{file:?} {:?}", file.cookie());
        assert!(!shown.contains(file.cookie().password()), "{shown}");
    }

    #[test]
    fn create_writes_0600_file_and_creates_parent() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a").join("b").join(".cookie");
        let file = Cookie::create(&path).unwrap();
        let meta = fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(meta.len(), 75);
        let dir_mode = fs::metadata(path.parent().unwrap())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(dir_mode & 0o777, 0o700);
        assert!(!temp_path(&path).exists());
        let (user, pass) = read_cookie(&path).unwrap();
        assert_eq!(user, "__cookie__");
        assert_eq!(pass, file.cookie().password());
    }

    #[test]
    fn create_replaces_a_loose_old_cookie_and_stale_temp() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".cookie");
        fs::write(&path, "__cookie__:old").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        fs::write(temp_path(&path), "junk").unwrap();
        fs::set_permissions(temp_path(&path), fs::Permissions::from_mode(0o666)).unwrap();
        let file = Cookie::create(&path).unwrap();
        let meta = fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            *file.cookie().file_contents()
        );
    }

    #[test]
    fn basic_auth_accepts_only_our_credentials() {
        let dir = tempfile::tempdir().unwrap();
        let file = Cookie::create(&dir.path().join(".cookie")).unwrap();
        let good = format!("__cookie__:{}", file.cookie().password());
        assert!(file.check_basic_auth(&basic(&good)));
        assert!(file.check_basic_auth(&format!("  basic   {}  ", BASE64.encode(good.as_bytes()))));
        assert!(file.check_basic_auth(&format!("Basic {}", BASE64_NOPAD.encode(good.as_bytes()))));

        let mut wrong_last = good.clone();
        wrong_last.pop();
        wrong_last.push(if good.ends_with('0') { '1' } else { '0' });
        assert!(!file.check_basic_auth(&basic(&wrong_last)));
        assert!(!file.check_basic_auth(&basic(&format!("admin:{}", file.cookie().password()))));
        assert!(!file.check_basic_auth(&basic(&format!("{good}x"))));
        assert!(!file.check_basic_auth(&basic("__cookie__:")));
        assert!(!file.check_basic_auth(&format!("Bearer {}", BASE64.encode(good.as_bytes()))));
        assert!(!file.check_basic_auth("Basic !!!not-base64!!!"));
        assert!(!file.check_basic_auth("Basic"));
        assert!(!file.check_basic_auth(""));
    }

    #[test]
    fn remove_deletes_only_our_cookie() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".cookie");
        let file = Cookie::create(&path).unwrap();
        file.remove().unwrap();
        assert!(!path.exists());

        // A later daemon replaced the file: dropping the old handle leaves it.
        let old = Cookie::create(&path).unwrap();
        let newer = Cookie::create(&path).unwrap();
        drop(old);
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            *newer.cookie().file_contents()
        );
        drop(newer);
        assert!(!path.exists());
    }

    #[test]
    fn read_cookie_takes_the_first_line_and_rejects_junk() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c");
        fs::write(&path, "user:pa:ss\nignored\n").unwrap();
        assert_eq!(
            read_cookie(&path).unwrap(),
            ("user".to_owned(), "pa:ss".to_owned())
        );
        fs::write(&path, "no separator").unwrap();
        assert_eq!(
            read_cookie(&path).unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
        assert_eq!(
            read_cookie(&dir.path().join("missing")).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
    }
}
