//! Sockets: the accept loop, one task per client, newline framing with a
//! size limit, notifications interleaved between replies, and the limits
//! that keep a misbehaving client from hurting the node.
//!
//! A client's requests are answered one at a time, in order (a batch is
//! one request): this is the protocol's expectation and also bounds what
//! one client can have in flight to a single call. Notifications go out
//! between replies, never inside one.
//!
//! The same client handler serves plain TCP ([`serve`]) and TLS
//! ([`serve_tls`]): it is generic over the stream, and a TLS connection
//! only adds a handshake, under a timeout, before it.
//!
//! Privacy: client addresses and script hashes are logged at debug level
//! only.

mod framing;
#[cfg(test)]
mod tests;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufRead, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, broadcast, watch};
use tokio::task::JoinSet;
use tokio::time::{Instant, sleep_until, timeout};

use super::backend::Backend;
use super::jsonrpc::{RpcError, codes, reply};
use super::methods::Session;
use super::request::{handle_line, to_line};
use super::tls::{TlsAcceptor, TlsStream};
use framing::{Line, read_line};

/// Pause after a failed `accept` (out of file descriptors, say), so the
/// loop does not spin while the condition lasts.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(100);

/// How long shutdown waits for clients to finish the call they are in.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Per-client and per-server limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Longest request line in bytes. 1 MB holds the largest standard
    /// transaction (400 000 weight units, 800 kB of hex) with room to spare.
    pub max_line_bytes: usize,
    /// Clients served at once; more are refused (closed at once).
    pub max_clients: usize,
    /// Script hashes one client may subscribe to.
    pub max_subscriptions: usize,
    /// Requests in one batch.
    pub max_batch: usize,
    /// A client that sends nothing for this long is disconnected (Electrum
    /// pings about every minute; the protocol suggests ~10 minutes).
    pub idle_timeout: Duration,
    /// How long writing one message may take before the client (not
    /// reading its replies) is dropped.
    pub write_timeout: Duration,
    /// Lines that are not JSON a client may send before it is dropped:
    /// each is answered, but a client sending nothing else is broken or
    /// not speaking this protocol at all.
    pub max_malformed_lines: u32,
    /// How long a TLS client has to complete its handshake. The
    /// connection holds one of the `max_clients` slots meanwhile, so a
    /// client that connects and stalls must not keep it for long.
    pub tls_handshake_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_line_bytes: 1_000_000,
            max_clients: 64,
            max_subscriptions: 10_000,
            max_batch: 1_000,
            idle_timeout: Duration::from_secs(600),
            write_timeout: Duration::from_secs(30),
            max_malformed_lines: 10,
            tls_handshake_timeout: Duration::from_secs(10),
        }
    }
}

/// Why the server could not listen.
#[derive(Debug, thiserror::Error)]
#[error("could not listen for Electrum clients on {addr}: {source}{}", bind_hint(.source))]
pub struct BindError {
    /// The address.
    pub addr: SocketAddr,
    /// The operating system's error.
    #[source]
    pub source: io::Error,
}

/// Advice for the common bind failures.
fn bind_hint(e: &io::Error) -> &'static str {
    match e.kind() {
        io::ErrorKind::AddrInUse => {
            " (is another Electrum server, such as electrs or Fulcrum, or another nightjar, \
             already using this port? choose another port)"
        }
        io::ErrorKind::AddrNotAvailable => " (no local interface has this address)",
        io::ErrorKind::PermissionDenied => " (ports below 1024 need privileges)",
        _ => "",
    }
}

/// A listening socket on `addr`, for [`serve`] or [`serve_tls`]. IPv6
/// sockets are IPv6 only, so `0.0.0.0` and `::` can share a port. Must be
/// called within a Tokio runtime.
pub fn bind(addr: SocketAddr) -> Result<TcpListener, BindError> {
    crate::rpc::server::listen_on(addr).map_err(|source| BindError { addr, source })
}

/// Serves Electrum clients on `listener` until `shutdown` turns true (or
/// its sender is dropped), then closes every connection (letting a call in
/// progress finish for a few seconds) and returns.
pub async fn serve<B: Backend>(
    listener: TcpListener,
    backend: Arc<B>,
    limits: Limits,
    shutdown: watch::Receiver<bool>,
) {
    accept_loop(listener, Transport::Plain, backend, limits, shutdown).await;
}

/// [`serve`] over TLS: each connection starts with a handshake with
/// `acceptor`'s identity (see [`super::tls`]), which must finish within
/// [`Limits::tls_handshake_timeout`] and holds one of the
/// [`Limits::max_clients`] slots meanwhile. A failed handshake drops only
/// that connection.
pub async fn serve_tls<B: Backend>(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    backend: Arc<B>,
    limits: Limits,
    shutdown: watch::Receiver<bool>,
) {
    accept_loop(
        listener,
        Transport::Tls(acceptor),
        backend,
        limits,
        shutdown,
    )
    .await;
}

/// What a connection speaks under the protocol.
#[derive(Debug, Clone)]
enum Transport {
    /// Plain TCP.
    Plain,
    /// TLS, after a handshake with this acceptor.
    Tls(TlsAcceptor),
}

/// The accept loop of [`serve`] and [`serve_tls`].
async fn accept_loop<B: Backend>(
    listener: TcpListener,
    transport: Transport,
    backend: Arc<B>,
    limits: Limits,
    mut shutdown: watch::Receiver<bool>,
) {
    let tls = matches!(transport, Transport::Tls(_));
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, tls, "Electrum server listening");
    }
    let limits = Arc::new(limits);
    let slots = Arc::new(Semaphore::new(limits.max_clients));
    let mut clients = JoinSet::new();
    loop {
        tokio::select! {
            () = stopping(&mut shutdown) => break,
            Some(_) = clients.join_next(), if !clients.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => match Arc::clone(&slots).try_acquire_owned() {
                    Ok(slot) => {
                        tracing::debug!(%peer, tls, "Electrum client connected");
                        clients.spawn(connection(
                            stream,
                            transport.clone(),
                            Arc::clone(&backend),
                            Arc::clone(&limits),
                            shutdown.clone(),
                            slot,
                        ));
                    }
                    Err(_) => {
                        tracing::info!(
                            max = limits.max_clients,
                            tls,
                            "Electrum: refused a client, the maximum number are connected"
                        );
                        drop(stream);
                    }
                },
                Err(e) => {
                    tracing::warn!(error = %e, tls, "could not accept an Electrum client");
                    tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
                }
            },
        }
    }
    drop(listener);
    let drained = timeout(SHUTDOWN_GRACE, async {
        while clients.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::info!(
            remaining = clients.len(),
            tls,
            "Electrum clients still busy at shutdown; closing them"
        );
    }
    clients.shutdown().await;
    tracing::info!(tls, "Electrum server stopped");
}

/// One accepted connection, holding its slot until it ends: the TLS
/// handshake first when there is one, then the client.
async fn connection<B: Backend>(
    stream: TcpStream,
    transport: Transport,
    backend: Arc<B>,
    limits: Arc<Limits>,
    shutdown: watch::Receiver<bool>,
    _slot: OwnedSemaphorePermit,
) {
    // Replies are single small writes: sending them at once beats
    // batching them for a client waiting on each.
    let _ = stream.set_nodelay(true);
    match transport {
        Transport::Plain => serve_client(stream, backend, limits, shutdown).await,
        Transport::Tls(acceptor) => {
            if let Some(stream) = handshake(&acceptor, stream, &limits, shutdown.clone()).await {
                serve_client(stream, backend, limits, shutdown).await;
            }
        }
    }
}

/// The server side of a TLS handshake, within the handshake timeout and
/// given up at shutdown; `None` (logged at debug: a scanner or a client
/// that does not trust the certificate is no fault of the node) when it
/// does not complete.
async fn handshake(
    acceptor: &TlsAcceptor,
    stream: TcpStream,
    limits: &Limits,
    mut shutdown: watch::Receiver<bool>,
) -> Option<TlsStream> {
    tokio::select! {
        () = stopping(&mut shutdown) => None,
        done = timeout(limits.tls_handshake_timeout, acceptor.accept(stream)) => match done {
            Ok(Ok(stream)) => Some(stream),
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "Electrum TLS handshake failed");
                None
            }
            Err(_) => {
                tracing::debug!(
                    timeout = ?limits.tls_handshake_timeout,
                    "Electrum TLS handshake timed out"
                );
                None
            }
        },
    }
}

/// Resolves once shutdown is asked for: `shutdown` true, or its sender
/// dropped. Cancel-safe, so each `select!` round may call it afresh; and it
/// looks at the current value first, so a shutdown asked for before a task
/// started is not missed.
async fn stopping(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|&stop| stop).await;
}

/// Why a client's connection ended.
#[derive(Debug)]
enum End {
    /// The client closed it.
    Closed,
    /// Server shutdown.
    Shutdown,
    /// Nothing received for the idle timeout.
    Idle,
    /// A line over the size limit.
    TooLong,
    /// Too many lines that were not JSON.
    Malformed,
    /// No protocol version in common.
    Version,
    /// Reading or writing failed (or a write timed out).
    Io(io::Error),
}

/// One client, from its first request to close, over any stream (plain
/// TCP, or TLS after the handshake).
async fn serve_client<B, S>(
    stream: S,
    backend: Arc<B>,
    limits: Arc<Limits>,
    shutdown: watch::Receiver<bool>,
) where
    B: Backend,
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (read, mut write) = tokio::io::split(stream);
    let mut reader = BufReader::new(read);
    let end = client_loop(&mut reader, &mut write, &*backend, &limits, shutdown).await;
    close(reader, write, &end).await;
    match end {
        End::Io(e) => tracing::debug!(error = %e, "Electrum client connection failed"),
        other => tracing::debug!(reason = ?other, "Electrum client disconnected"),
    }
}

/// Reads requests and changes until the connection must end.
async fn client_loop<B, R, W>(
    reader: &mut R,
    write: &mut W,
    backend: &B,
    limits: &Limits,
    mut shutdown: watch::Receiver<bool>,
) -> End
where
    B: Backend,
    R: AsyncBufRead + Unpin,
    W: AsyncWrite + Unpin,
{
    // Subscribed before the first request, so no change after a
    // subscription's answer can be missed.
    let mut changes = backend.subscribe();
    let mut changes_open = true;
    let mut partial = Vec::new();
    let mut session = Session::new(limits.max_subscriptions);
    let mut malformed = 0u32;
    let mut deadline = Instant::now() + limits.idle_timeout;
    loop {
        tokio::select! {
            () = stopping(&mut shutdown) => return End::Shutdown,
            () = sleep_until(deadline) => return End::Idle,
            line = read_line(reader, &mut partial, limits.max_line_bytes) => {
                let line = match line {
                    Ok(Line::Complete(line)) => line,
                    Ok(Line::Eof) => return End::Closed,
                    Ok(Line::TooLong) => {
                        let e = RpcError::new(
                            codes::INVALID_REQUEST,
                            format!("request line longer than {} bytes; closing", limits.max_line_bytes),
                        );
                        // Best effort: the connection closes either way.
                        let _ = send(write, &reply(Value::Null, Err(e)), limits).await;
                        return End::TooLong;
                    }
                    Err(e) => return End::Io(e),
                };
                deadline = Instant::now() + limits.idle_timeout;
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                let handled = handle_line(&mut session, backend, &line, limits.max_batch).await;
                if let Some(text) = handled.reply
                    && let Err(e) = send_line(write, text, limits).await
                {
                    return End::Io(e);
                }
                if handled.malformed {
                    malformed += 1;
                    if malformed >= limits.max_malformed_lines {
                        return End::Malformed;
                    }
                }
                if session.wants_close() {
                    return End::Version;
                }
            }
            change = changes.recv(), if changes_open => {
                let notes = match change {
                    Ok(change) => session.on_change(backend, change).await.into_iter().collect(),
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        tracing::debug!(missed, "Electrum client fell behind the changes; re-checking its subscriptions");
                        session.on_missed_changes(backend).await
                    }
                    Err(broadcast::error::RecvError::Closed) => {
                        // The node stopped publishing; requests are still served.
                        changes_open = false;
                        Vec::new()
                    }
                };
                for note in &notes {
                    if let Err(e) = send(write, note, limits).await {
                        return End::Io(e);
                    }
                }
            }
        }
    }
}

/// How long a closing connection's unread input is drained, so the
/// last reply (an error, typically) is not lost to a reset.
const CLOSE_DRAIN_TIME: Duration = Duration::from_secs(1);

/// Most bytes drained from a closing connection.
const CLOSE_DRAIN_BYTES: usize = 2_000_000;

/// Ends a connection. Closing a socket with unread input makes the kernel
/// send a reset, which can destroy the reply just written before the client
/// reads it; so after an error the write side is shut first and the input
/// read and thrown away for a moment.
async fn close<R, W>(mut reader: R, mut write: W, end: &End)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    if matches!(end, End::Closed | End::Io(_)) {
        return;
    }
    let _ = timeout(CLOSE_DRAIN_TIME, write.shutdown()).await;
    let _ = timeout(CLOSE_DRAIN_TIME, async {
        let mut sink = [0u8; 8192];
        let mut drained = 0;
        while drained < CLOSE_DRAIN_BYTES {
            match reader.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => drained += n,
            }
        }
    })
    .await;
}

/// Writes one message as a line.
async fn send<W: AsyncWriteExt + Unpin>(
    w: &mut W,
    value: &Value,
    limits: &Limits,
) -> io::Result<()> {
    send_line(w, to_line(value), limits).await
}

/// Writes one line (adding its newline), within the write timeout.
async fn send_line<W: AsyncWriteExt + Unpin>(
    w: &mut W,
    mut text: String,
    limits: &Limits,
) -> io::Result<()> {
    text.push('\n');
    match timeout(limits.write_timeout, w.write_all(text.as_bytes())).await {
        Ok(result) => result,
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "the client is not reading its replies",
        )),
    }
}
