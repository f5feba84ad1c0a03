//! Readiness and status reports to systemd, for `Type=notify` units
//! (`packaging/systemd/nightjar.service`).
//!
//! systemd passes the path of its notification socket in `$NOTIFY_SOCKET`;
//! a report is one datagram of `KEY=value` lines (sd_notify(3)). Without
//! the variable (not started by systemd, or a unit that is not
//! `Type=notify`) every function here does nothing, so the daemon calls
//! them unconditionally. Failures are logged at debug level and otherwise
//! ignored: a lost status line must never stop the node.
//!
//! This is the whole protocol nightjar needs, over `std`'s
//! [`UnixDatagram`]: no libsystemd, no extra crate, no `unsafe`. Abstract
//! socket names (`@name`) are supported, as sd_notify(3) requires.

use std::io;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::time::Duration;

/// The environment variable systemd sets for `Type=notify` services.
pub const NOTIFY_SOCKET: &str = "NOTIFY_SOCKET";

/// Tell systemd the service is up (`READY=1`), with a status line: call
/// once the Tor client has bootstrapped and the RPC server listens. Until
/// then `systemctl start nightjar` waits (up to the unit's
/// `TimeoutStartSec=`), and units ordered after nightjar wait too.
pub fn ready(status: &str) {
    send(&format!("READY=1\nSTATUS={}", one_line(status)));
}

/// Set the one-line status `systemctl status nightjar` shows, e.g. the Tor
/// bootstrap progress or the number of peers.
pub fn status(text: &str) {
    send(&format!("STATUS={}", one_line(text)));
}

/// Tell systemd the service is stopping (`STOPPING=1`): call when a
/// termination signal arrives, before the shutdown work.
pub fn stopping() {
    send(&format!("STOPPING=1\nSTATUS={}", one_line("stopping")));
}

/// Ask for `extra` more time before systemd's start (or stop) timeout
/// fires (`EXTEND_TIMEOUT_USEC=`): for a bootstrap that is slow but still
/// making progress. Optional; the unit's `TimeoutStartSec=` is generous.
pub fn extend_timeout(extra: Duration) {
    send(&format!("EXTEND_TIMEOUT_USEC={}", extra.as_micros()));
}

/// Send `state` to `$NOTIFY_SOCKET`, if it is set.
fn send(state: &str) {
    let Some(socket) = std::env::var_os(NOTIFY_SOCKET) else {
        return;
    };
    if let Err(e) = notify_to(Path::new(&socket), state) {
        tracing::debug!("sd_notify to {}: {e}", socket.to_string_lossy());
    }
}

/// Send one notification datagram to `socket`: a filesystem path, or an
/// abstract socket name when it starts with `@`.
pub fn notify_to(socket: &Path, state: &str) -> io::Result<()> {
    let sock = UnixDatagram::unbound()?;
    let bytes = state.as_bytes();
    let sent = match socket.to_str().and_then(|s| s.strip_prefix('@')) {
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
            sock.send_to_addr(bytes, &addr)?
        }
        None => sock.send_to(bytes, socket)?,
    };
    if sent == bytes.len() {
        Ok(())
    } else {
        Err(io::Error::other("short write to the notify socket"))
    }
}

/// A status text cannot span lines: a newline would start another field.
fn one_line(text: &str) -> String {
    text.replace(['\n', '\r'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receive(sock: &UnixDatagram) -> String {
        let mut buf = [0u8; 512];
        let n = sock.recv(&mut buf).unwrap();
        String::from_utf8(buf[..n].to_vec()).unwrap()
    }

    #[test]
    fn a_notification_reaches_a_path_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let server = UnixDatagram::bind(&path).unwrap();
        notify_to(&path, "READY=1\nSTATUS=Tor bootstrapped").unwrap();
        assert_eq!(receive(&server), "READY=1\nSTATUS=Tor bootstrapped");
    }

    #[test]
    fn a_notification_reaches_an_abstract_socket() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("nightjar-notify-test-{}", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(&name).unwrap();
        let server = UnixDatagram::bind_addr(&addr).unwrap();
        notify_to(Path::new(&format!("@{name}")), "STOPPING=1").unwrap();
        assert_eq!(receive(&server), "STOPPING=1");
    }

    #[test]
    fn a_status_stays_on_one_line() {
        assert_eq!(one_line("a\nREADY=1\r"), "a READY=1 ");
    }

    #[test]
    fn a_missing_socket_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        assert!(notify_to(&dir.path().join("absent"), "READY=1").is_err());
    }
}
