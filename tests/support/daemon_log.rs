//! Running a `nightjar` process and reading its log: the `key=value` lines
//! the daemon writes on stderr about its peers, parsed into structs.
//!
//! Shared by the end-to-end tests (`#[path]`-included, so it does not
//! depend on the rest of `tests/support`) and `examples/offline_demo.rs`,
//! so it must stay free of `unwrap` and panics.

#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

/// Remove ANSI escape sequences (colours, italics): the daemon should
/// write none to a pipe, but a log line must parse the same either way.
pub fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\u{1b}' {
            out.push(c);
            continue;
        }
        // CSI: ESC '[' parameters... final byte in '@'..='~'.
        if chars.peek() == Some(&'[') {
            chars.next();
            for c in chars.by_ref() {
                if ('@'..='~').contains(&c) {
                    break;
                }
            }
        } else {
            // Two-character escapes: drop the one that follows ESC.
            chars.next();
        }
    }
    out
}

/// The `key=value` fields after `message` in `line`, or `None` if the line
/// is not that message. Values may be quoted (tracing's `Debug` format,
/// with `\"` and `\\` escapes); quotes are removed.
pub fn fields_after(line: &str, message: &str) -> Option<BTreeMap<String, String>> {
    let line = strip_ansi(line);
    let rest = line
        .match_indices(message)
        .find(|(at, _)| {
            // A whole message, not part of a longer word or a field value.
            let before = line[..*at].chars().next_back();
            let after = line[at + message.len()..].chars().next();
            matches!(before, None | Some(' ' | ':')) && matches!(after, None | Some(' '))
        })
        .map(|(at, _)| line[at + message.len()..].to_string())?;
    Some(parse_fields(&rest))
}

/// Parse `a=1 b="x y" c=-` into a map; tokens without `=` are skipped.
pub fn parse_fields(text: &str) -> BTreeMap<String, String> {
    let mut fields = BTreeMap::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.peek() == Some(&' ') {
            chars.next();
        }
        if chars.peek().is_none() {
            return fields;
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c == ' ' {
                break;
            }
            key.push(c);
            chars.next();
        }
        if chars.peek() != Some(&'=') {
            continue; // a bare word
        }
        chars.next();
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => {
                        if let Some(escaped) = chars.next() {
                            value.push(escaped);
                        }
                    }
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ' ' {
                    break;
                }
                value.push(c);
                chars.next();
            }
        }
        let is_key = !key.is_empty()
            && key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
        if is_key {
            fields.insert(key, value);
        }
    }
}

/// A `peer connected` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerLine {
    /// The connection id, e.g. `conn-3`.
    pub conn: String,
    /// `manual`, `regular`, `feeler` or `extra`.
    pub kind: String,
    /// `host:port` of the peer.
    pub addr: String,
    /// `v1` or `v2`.
    pub transport: String,
    /// The circuit label as logged (`-` when there is no circuit); `None`
    /// if the line has no `circuit` field.
    pub circuit: Option<String>,
    /// The isolation label, if logged.
    pub isolation: Option<String>,
    /// The BIP324 session id, if logged.
    pub session_id: Option<String>,
}

impl PeerLine {
    /// Parse a `peer connected` line; `None` for any other line.
    pub fn parse(line: &str) -> Option<PeerLine> {
        let mut f = fields_after(line, "peer connected")?;
        Some(PeerLine {
            conn: f.remove("conn")?,
            kind: f.remove("kind")?,
            addr: f.remove("addr")?,
            transport: f.remove("transport")?,
            circuit: f.remove("circuit"),
            isolation: f.remove("isolation"),
            session_id: f.remove("session_id"),
        })
    }

    /// The circuit label, if the connection has one (not `-`).
    pub fn circuit_id(&self) -> Option<&str> {
        self.circuit
            .as_deref()
            .filter(|c| !c.is_empty() && *c != "-")
    }
}

/// A `peer disconnected` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisconnectLine {
    /// The connection id.
    pub conn: String,
    /// The connection kind.
    pub kind: Option<String>,
    /// `host:port` of the peer.
    pub addr: Option<String>,
    /// Why it ended.
    pub reason: Option<String>,
}

impl DisconnectLine {
    /// Parse a `peer disconnected` line; `None` for any other line.
    pub fn parse(line: &str) -> Option<DisconnectLine> {
        let mut f = fields_after(line, "peer disconnected")?;
        Some(DisconnectLine {
            conn: f.remove("conn")?,
            kind: f.remove("kind"),
            addr: f.remove("addr"),
            reason: f.remove("reason"),
        })
    }
}

/// A `feeler done` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeelerDone {
    /// The connection id.
    pub conn: Option<String>,
    /// Which address was tested.
    pub addr: String,
    /// How many addresses the feeler brought back, if logged.
    pub learned: Option<usize>,
}

impl FeelerDone {
    /// Parse a `feeler done` line; `None` for any other line.
    pub fn parse(line: &str) -> Option<FeelerDone> {
        let mut f = fields_after(line, "feeler done")?;
        Some(FeelerDone {
            conn: f.remove("conn"),
            addr: f.remove("addr")?,
            learned: f.remove("learned").and_then(|n| n.parse().ok()),
        })
    }
}

/// The address count of an `address book loaded` line.
pub fn address_book_loaded(line: &str) -> Option<usize> {
    fields_after(line, "address book loaded")?
        .get("addresses")?
        .parse()
        .ok()
}

/// Every `peer connected` line in `lines`.
pub fn peer_lines(lines: &[String]) -> Vec<PeerLine> {
    lines.iter().filter_map(|l| PeerLine::parse(l)).collect()
}

/// The connections still open at the end of `lines`: each `peer connected`
/// without a later `peer disconnected` of the same connection id.
pub fn open_peers(lines: &[String]) -> Vec<PeerLine> {
    let mut open: Vec<PeerLine> = Vec::new();
    for line in lines {
        if let Some(p) = PeerLine::parse(line) {
            open.retain(|o| o.conn != p.conn);
            open.push(p);
        } else if let Some(d) = DisconnectLine::parse(line) {
            open.retain(|o| o.conn != d.conn);
        }
    }
    open
}

/// A running `nightjar` process whose stderr is read line by line on a
/// thread. Killed (by its PID, through `Child`) if still running when
/// dropped, so a failing test leaves nothing behind.
#[derive(Debug)]
pub struct Daemon {
    child: Child,
    /// The daemon's own process: the child, or the process a wrapper
    /// (strace) runs ([`Daemon::spawn_wrapped`]).
    target: u32,
    incoming: Receiver<String>,
    lines: Vec<String>,
    exit: Option<ExitStatus>,
}

impl Daemon {
    /// Start `command` (program, arguments and environment set by the
    /// caller) with stderr piped and stdout discarded.
    pub fn spawn(mut command: Command) -> std::io::Result<Daemon> {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?;
        let (tx, incoming) = channel();
        if let Some(stderr) = child.stderr.take() {
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    if tx.send(strip_ansi(&line)).is_err() {
                        break;
                    }
                }
            });
        }
        Ok(Daemon {
            target: child.id(),
            child,
            incoming,
            lines: Vec::new(),
            exit: None,
        })
    }

    /// [`spawn`](Self::spawn) a wrapper (e.g. `strace -f -o FILE nightjar
    /// …`) that runs the daemon as its child named `name`, and wait until
    /// that child exists. [`pid`](Self::pid), [`terminate`](Self::terminate)
    /// and drop then act on the daemon itself: a signal to strace would only
    /// detach it and leave the daemon running. The wrapper exits with the
    /// daemon's status.
    pub fn spawn_wrapped(command: Command, name: &str) -> std::io::Result<Daemon> {
        let mut daemon = Daemon::spawn(command)?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let [pid] = children_named(daemon.child.id(), name)[..] {
                daemon.target = pid;
                return Ok(daemon);
            }
            if daemon.exited() || Instant::now() > deadline {
                return Err(std::io::Error::other(format!(
                    "the wrapper started no {name} process"
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The daemon's process id.
    pub fn pid(&self) -> u32 {
        self.target
    }

    /// Every line read so far (ANSI escapes removed).
    pub fn lines(&self) -> &[String] {
        &self.lines
    }

    /// Wait up to `wait` for output; returns the lines that arrived (all
    /// that are ready once the first one is there).
    pub fn pump(&mut self, wait: Duration) -> Vec<String> {
        let mut fresh = Vec::new();
        match self.incoming.recv_timeout(wait) {
            Ok(line) => fresh.push(line),
            Err(RecvTimeoutError::Timeout) => {}
            // The pipe is closed: the process is gone or going. Waiting
            // here keeps polling callers from spinning meanwhile.
            Err(RecvTimeoutError::Disconnected) => {
                std::thread::sleep(wait.min(Duration::from_millis(50)));
            }
        }
        while let Ok(line) = self.incoming.try_recv() {
            fresh.push(line);
        }
        self.lines.extend(fresh.iter().cloned());
        fresh
    }

    /// Read lines until `done(all lines so far)` holds (`true`), the
    /// process exits or `limit` passes (`false`).
    pub fn wait_until(&mut self, limit: Duration, mut done: impl FnMut(&[String]) -> bool) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            if done(&self.lines) {
                return true;
            }
            let now = Instant::now();
            if now >= deadline || self.exited() {
                // One last look at whatever is still buffered.
                self.pump(Duration::ZERO);
                return done(&self.lines);
            }
            self.pump((deadline - now).min(Duration::from_millis(250)));
        }
    }

    /// Whether the process has exited (its status is kept).
    pub fn exited(&mut self) -> bool {
        if self.exit.is_none() {
            self.exit = self.child.try_wait().ok().flatten();
        }
        self.exit.is_some()
    }

    /// The exit status, once exited.
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        self.exited();
        self.exit
    }

    /// Send SIGTERM (through `kill`, as a user would) and wait up to
    /// `limit` for the exit; `None` if it is still running then.
    pub fn terminate(&mut self, limit: Duration) -> std::io::Result<Option<ExitStatus>> {
        if !self.exited() {
            let sent = Command::new("kill")
                .args(["-TERM", &self.pid().to_string()])
                .status()?;
            if !sent.success() && !self.exited() {
                return Err(std::io::Error::other(format!("kill -TERM failed: {sent}")));
            }
        }
        let deadline = Instant::now() + limit;
        while !self.exited() && Instant::now() < deadline {
            self.pump(Duration::from_millis(100));
        }
        // Collect the shutdown lines (address book saved, ...) too.
        self.pump(Duration::from_millis(200));
        Ok(self.exit)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if !self.exited() {
            if self.target != self.child.id() {
                // Killing only the wrapper would leave the daemon running.
                let _ = Command::new("kill")
                    .args(["-KILL", &self.target.to_string()])
                    .status();
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A process's command name, state letter and parent, from `/proc/PID/stat`.
fn proc_stat(pid: u32) -> Option<(String, char, u32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) state ppid …": comm may hold spaces and parentheses, so
    // split at the last ')'.
    let (head, tail) = stat.rsplit_once(") ")?;
    let comm = head.split_once(" (")?.1.to_owned();
    let mut fields = tail.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((comm, state, ppid))
}

/// PIDs of the children of `parent` whose command name is `name`.
pub fn children_named(parent: u32, name: &str) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| proc_stat(*pid).is_some_and(|(comm, _, ppid)| comm == name && ppid == parent))
        .collect()
}

/// Whether process `pid` is gone, or a zombie (it has exited), within
/// `limit`.
pub fn gone_within(pid: u32, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if proc_stat(pid).is_none_or(|(_, state, _)| state == 'Z') {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn strips_colours_and_unquotes_values() {
        let coloured = "\u{1b}[2m2026\u{1b}[0m \u{1b}[32m INFO\u{1b}[0m feeler done \u{1b}[3mconn\u{1b}[0m\u{1b}[2m=\u{1b}[0mconn-5 addr=x.onion:1 learned=2";
        let f = FeelerDone::parse(coloured).unwrap();
        assert_eq!(
            (f.conn.as_deref(), f.addr.as_str(), f.learned),
            (Some("conn-5"), "x.onion:1", Some(2))
        );
        let fields = parse_fields(r#"a="say \"hi\"" b=- bare c="""#);
        assert_eq!(fields["a"], r#"say "hi""#);
        assert_eq!(fields["b"], "-");
        assert_eq!(fields["c"], "");
        assert!(!fields.contains_key("bare"));
        assert_eq!(
            address_book_loaded("INFO address book loaded addresses=12 file=/p"),
            Some(12)
        );
        assert!(PeerLine::parse("INFO no peer connected yet").is_none());
    }

    #[test]
    fn parses_the_contract_lines() {
        let line = "2026-01-02T03:04:05.678901Z  INFO peer connected conn=conn-3 kind=manual \
                    addr=abc.onion:18444 transport=v2 circuit=\"Circ 1.4\" isolation=manual/1 session_id=ab12";
        let p = PeerLine::parse(line).unwrap();
        assert_eq!(p.conn, "conn-3");
        assert_eq!(p.kind, "manual");
        assert_eq!(p.addr, "abc.onion:18444");
        assert_eq!(p.transport, "v2");
        assert_eq!(p.circuit_id(), Some("Circ 1.4"));
        assert_eq!(p.isolation.as_deref(), Some("manual/1"));
        assert_eq!(p.session_id.as_deref(), Some("ab12"));
    }
}
