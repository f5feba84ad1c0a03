//! The JSON-RPC server: HTTP/1.1 on the `rpcbind` addresses, cookie
//! authentication, and Core's request and reply conventions (see
//! [`jsonrpc`] for the envelope rules).
//!
//! Per request, in Core's order: only `POST` is served (405 otherwise, on
//! any path: Core serves `/` and `/wallet/<name>` alike); the `Authorization`
//! header must carry the cookie (401 otherwise, after a 250 ms pause when
//! wrong credentials were sent, to slow guessing); a body larger than
//! [`RpcSettings::max_body`] is refused with 413 without being read; then
//! the body is parsed and the calls go to the [`Dispatch`].
//!
//! Time limits: a request must be complete and answered within
//! [`RpcSettings::request_timeout`] of its first byte, or it gets 408 and
//! the connection is closed (the calls in [`crate::rpc::UNTIMED_METHODS`],
//! answered from peers over Tor, only have to be read within it); a connection that sends no request for that
//! long is closed too (hyper's header-read timeout, which also covers idle
//! keep-alive connections, like Core's `-rpcservertimeout`). Writing the
//! reply is not timed: replies are small enough for the socket buffer, and
//! only an authenticated client gets more than a few bytes.
//!
//! A new connection must send its first byte within 5 s (or the request
//! timeout, if shorter), so an idle one does not hold a slot for long.
//!
//! Limits on numbers: connections are always accepted; at 128 open, the
//! oldest idle one is closed to make room (a 503 only when every one is
//! busy with a request; see [`slots`]), and at most 32 requests run at once.

pub mod jsonrpc;
mod slots;

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::{Body, Bytes, Incoming};
use hyper::header::{AUTHORIZATION, CONNECTION, CONTENT_TYPE, HeaderValue, WWW_AUTHENTICATE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::{JoinHandle, JoinSet};

use super::cookie::{Cookie, CookieFile};
use super::{Dispatch, RpcSettings};

/// Pause before answering wrong credentials (Core sleeps 250 ms too).
const AUTH_FAILURE_DELAY: Duration = Duration::from_millis(250);

/// Most connections served at once, over all listeners. More wait in the
/// kernel's backlog: the RPC port is local, so this is about a runaway
/// script, not an attacker, and waiting is kinder than refusing.
const MAX_CONNECTIONS: usize = 128;

/// Requests served at once; more wait for a turn (within their time
/// limit). Connections are not what is scarce: requests are (see
/// [`slots`]).
const MAX_REQUESTS_IN_FLIGHT: usize = 32;

/// How long a new connection may stay silent before its first byte. Every
/// real client sends its request the moment it connects; a connection that
/// says nothing is a leftover or an attacker holding a slot, so it goes
/// long before the request timeout would close it.
const FIRST_BYTE_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a refused newcomer's 503 may take to write.
const REFUSAL_WRITE_LIMIT: Duration = Duration::from_secs(1);

/// Listen backlog of each socket.
const LISTEN_BACKLOG: i32 = 128;

/// Longest [`RpcServer::shutdown`] waits for requests in flight (at most
/// the request timeout, since no request may run longer than that).
const MAX_SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Pause after a failed `accept` (such as running out of file descriptors),
/// so the loop does not spin while the condition lasts.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(100);

/// Core's `WWW-Authenticate` value.
const WWW_AUTH: &str = "Basic realm=\"jsonrpc\"";

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum RpcStartError {
    /// The settings name no address to listen on.
    #[error("no address to listen on for RPC (rpcbind is empty)")]
    NoBindAddress,
    /// One of the addresses could not be bound (nothing was started).
    #[error("could not listen for RPC on {addr}: {source}{}", bind_hint(.source))]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// The cookie file could not be written (nothing was started).
    #[error(
        "could not create the RPC cookie file {}: {source}; check that its directory is writable",
        path.display()
    )]
    Cookie {
        /// The cookie file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
}

/// Advice for the common bind failures.
fn bind_hint(e: &io::Error) -> &'static str {
    match e.kind() {
        io::ErrorKind::AddrInUse => {
            " (is another nightjar, or bitcoind, already using this port? choose another with rpcport)"
        }
        io::ErrorKind::AddrNotAvailable => " (no local interface has this address)",
        io::ErrorKind::PermissionDenied => " (ports below 1024 need privileges)",
        _ => "",
    }
}

/// A running RPC server. Dropping it stops the listeners too, but only
/// [`RpcServer::shutdown`] waits for requests in flight and reports when
/// the cookie is gone.
#[derive(Debug)]
pub struct RpcServer {
    /// The addresses actually bound (port 0 resolved).
    local_addrs: Vec<SocketAddr>,
    /// The cookie, shared with the connections that check it.
    cookie: Arc<CookieFile>,
    /// Tells the accept loops and connections to stop (also when dropped).
    stop: watch::Sender<bool>,
    /// One accept loop per listener.
    loops: Vec<JoinHandle<()>>,
}

impl RpcServer {
    /// The addresses the server listens on, in the order of
    /// [`RpcSettings::binds`], with any port 0 replaced by the real port.
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.local_addrs
    }

    /// Where the cookie file is.
    pub fn cookie_file(&self) -> &Path {
        self.cookie.path()
    }

    /// Stops accepting connections, lets requests in flight finish (for at
    /// most the request timeout, capped at 10 s; idle keep-alive
    /// connections are closed at once), then removes the cookie file.
    pub async fn shutdown(self) {
        let RpcServer {
            local_addrs,
            cookie,
            stop,
            loops,
        } = self;
        let _ = stop.send(true);
        for handle in loops {
            if let Err(e) = handle.await {
                tracing::warn!(error = %e, "an RPC accept loop ended abnormally");
            }
        }
        // Every connection has ended, so this is the last reference; should
        // one still exist, its drop removes the file instead.
        match Arc::try_unwrap(cookie) {
            Ok(cookie) => {
                if let Err(e) = cookie.remove() {
                    tracing::warn!(error = %e, "could not remove the RPC cookie file");
                }
            }
            Err(shared) => drop(shared),
        }
        tracing::info!(addrs = ?local_addrs, "RPC server stopped");
    }
}

/// What every connection needs.
struct Shared<D> {
    /// Answers the calls.
    dispatch: Arc<D>,
    /// Checks credentials.
    cookie: Arc<CookieFile>,
    /// Largest request body.
    max_body: usize,
    /// Time limit per request.
    request_timeout: Duration,
    /// Turns for requests in flight.
    requests: Semaphore,
}

/// Binds every address in `settings.binds`, writes the cookie file, and
/// starts serving on background tasks.
///
/// The listeners are bound before the cookie is written, so a second daemon
/// that finds the port taken fails without overwriting the running one's
/// cookie. IPv6 sockets are IPv6-only, so `0.0.0.0` and `::` can both be
/// bound on one port.
pub async fn serve<D: Dispatch>(
    settings: RpcSettings,
    dispatch: Arc<D>,
) -> Result<RpcServer, RpcStartError> {
    if settings.binds.is_empty() {
        return Err(RpcStartError::NoBindAddress);
    }
    let mut listeners = Vec::with_capacity(settings.binds.len());
    let mut local_addrs = Vec::with_capacity(settings.binds.len());
    for &addr in &settings.binds {
        let listener = listen_on(addr).map_err(|source| RpcStartError::Bind { addr, source })?;
        let local = listener
            .local_addr()
            .map_err(|source| RpcStartError::Bind { addr, source })?;
        listeners.push(listener);
        local_addrs.push(local);
    }
    let cookie = Cookie::create(&settings.cookie_file).map_err(|source| RpcStartError::Cookie {
        path: settings.cookie_file.clone(),
        source,
    })?;
    let cookie = Arc::new(cookie);
    let shared = Arc::new(Shared {
        dispatch,
        cookie: Arc::clone(&cookie),
        max_body: settings.max_body,
        request_timeout: settings.request_timeout,
        requests: Semaphore::new(MAX_REQUESTS_IN_FLIGHT),
    });
    let (stop, stop_rx) = watch::channel(false);
    let limit = slots::Slots::new(MAX_CONNECTIONS);
    let grace = settings.request_timeout.min(MAX_SHUTDOWN_GRACE);
    let loops = listeners
        .into_iter()
        .map(|listener| {
            tokio::spawn(accept_loop(
                listener,
                Arc::clone(&shared),
                Arc::clone(&limit),
                stop_rx.clone(),
                grace,
            ))
        })
        .collect();
    tracing::info!(
        addrs = ?local_addrs,
        cookie = %settings.cookie_file.display(),
        "RPC server listening"
    );
    Ok(RpcServer {
        local_addrs,
        cookie,
        stop,
        loops,
    })
}

/// A listening socket for `addr` (the RPC and Electrum servers'). IPv6
/// sockets are IPv6 only, so `0.0.0.0` and `::` can share a port. Must be
/// called within a Tokio runtime.
pub(crate) fn listen_on(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    // Lets a restarted daemon bind while old connections sit in TIME_WAIT;
    // it does not let two listeners share the port.
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    socket.set_nonblocking(true)?;
    TcpListener::from_std(socket.into())
}

/// Accepts connections until told to stop, then waits (at most `grace`)
/// for the connections to finish their requests.
async fn accept_loop<D: Dispatch>(
    listener: TcpListener,
    shared: Arc<Shared<D>>,
    limit: Arc<slots::Slots>,
    mut stop: watch::Receiver<bool>,
    grace: Duration,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            // A send or the sender's drop: both mean stop.
            _ = stop.changed() => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    tracing::trace!(%peer, "RPC connection");
                    match limit.admit() {
                        Some(slot) => {
                            connections.spawn(serve_connection(
                                stream,
                                peer,
                                Arc::clone(&shared),
                                stop.clone(),
                                slot,
                            ));
                        }
                        None => {
                            tracing::warn!(%peer, "RPC: every connection is busy with a request; turned away with 503");
                            connections.spawn(refuse_busy(stream));
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "could not accept an RPC connection");
                    tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
                }
            },
        }
    }
    drop(listener);
    let drained = tokio::time::timeout(grace, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            remaining = connections.len(),
            "RPC requests still running at shutdown; closing their connections"
        );
    }
    connections.shutdown().await;
}

/// Every slot is serving a request: say so and close.
async fn refuse_busy(mut stream: TcpStream) {
    use tokio::io::AsyncWriteExt;
    let reply =
        b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    let _ = tokio::time::timeout(REFUSAL_WRITE_LIMIT, stream.write_all(reply)).await;
}

/// Serves one connection (keep-alive: any number of requests) until the
/// client closes it, a limit is hit, or the server stops.
async fn serve_connection<D: Dispatch>(
    stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared<D>>,
    mut stop: watch::Receiver<bool>,
    slot: slots::SlotGuard,
) {
    // Replies are written in one piece; Nagle would only add latency.
    let _ = stream.set_nodelay(true);
    let first_byte_limit = FIRST_BYTE_TIMEOUT.min(shared.request_timeout);
    let mut probe = [0u8; 1];
    let first_byte = tokio::select! {
        peeked = tokio::time::timeout(first_byte_limit, stream.peek(&mut probe)) => {
            matches!(peeked, Ok(Ok(n)) if n > 0)
        }
        _ = stop.changed() => false,
        () = slot.evicted() => false,
    };
    if !first_byte {
        tracing::debug!(%peer, "RPC connection sent nothing; closed");
        return;
    }
    let clock = Arc::new(RequestClock::default());
    let io = TokioIo::new(ClockedStream {
        inner: stream,
        clock: Arc::clone(&clock),
    });
    let request_timeout = shared.request_timeout;
    let slot = Arc::new(slot);
    let in_service = Arc::clone(&slot);
    let service = service_fn(move |request| {
        let shared = Arc::clone(&shared);
        let clock = Arc::clone(&clock);
        // Busy from the request's head until its reply: a busy connection
        // is never evicted.
        let busy = in_service.busy();
        async move {
            let reply = timed(request, peer, &shared, &clock).await;
            drop(busy);
            Ok::<_, Infallible>(reply)
        }
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(request_timeout)
        .keep_alive(true);
    let connection = builder.serve_connection(io, service);
    tokio::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        _ = stop.changed() => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
        () = slot.evicted() => {
            tracing::debug!(%peer, "idle RPC connection closed to make room");
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(%peer, error = %e, "RPC connection ended with an error");
    }
}

/// Answers one request within the time limit, counted from its first byte.
async fn timed<D: Dispatch>(
    request: Request<Incoming>,
    peer: SocketAddr,
    shared: &Shared<D>,
    clock: &RequestClock,
) -> Response<Full<Bytes>> {
    let started = clock.take().unwrap_or_else(Instant::now);
    let deadline = started + shared.request_timeout;
    let turn_then_read = async {
        // Closed only with the server, which then stops serving anyway.
        let turn = shared.requests.acquire().await.ok();
        (turn, read_request(request, peer, shared, clock).await)
    };
    let timed_out = || {
        tracing::info!(%peer, "RPC request took too long; closing the connection");
        closing(plain(StatusCode::REQUEST_TIMEOUT, ""))
    };
    let (_turn, body) = match tokio::time::timeout_at(deadline.into(), turn_then_read).await {
        Ok((turn, Ok(body))) => (turn, body),
        Ok((_, Err(response))) => return response,
        Err(_) => return timed_out(),
    };
    // Calls that fetch from peers (a scan of the whole chain over Tor)
    // take as long as the network does; the time limit is for reading the
    // request and for the calls answered from the node's state.
    if jsonrpc::calls_any(&body, crate::rpc::UNTIMED_METHODS) {
        return answer(&body, shared).await;
    }
    match tokio::time::timeout_at(deadline.into(), answer(&body, shared)).await {
        Ok(response) => response,
        Err(_) => {
            tracing::info!(%peer, "RPC request took too long; closing the connection");
            closing(plain(StatusCode::REQUEST_TIMEOUT, ""))
        }
    }
}

/// Checks one request and reads its body (the module docs give the order
/// of the checks); the response to send instead when a check fails.
async fn read_request<D: Dispatch>(
    request: Request<Incoming>,
    peer: SocketAddr,
    shared: &Shared<D>,
    clock: &RequestClock,
) -> Result<Bytes, Response<Full<Bytes>>> {
    if request.method() != Method::POST {
        return Err(plain(
            StatusCode::METHOD_NOT_ALLOWED,
            "JSONRPC server handles only POST requests",
        ));
    }
    let Some(authorization) = request.headers().get(AUTHORIZATION) else {
        // No guess was made, so no pause (as in Core): this is a client
        // finding out that it needs credentials.
        return Err(unauthorized());
    };
    let authorized = authorization
        .to_str()
        .is_ok_and(|value| shared.cookie.check_basic_auth(value));
    if !authorized {
        tracing::warn!(%peer, "RPC: incorrect password attempt");
        tokio::time::sleep(AUTH_FAILURE_DELAY).await;
        return Err(unauthorized());
    }
    // A declared length is checked before a byte of the body is read;
    // a chunked body is cut off by `Limited` once it grows too large.
    if request.body().size_hint().lower() > u64::try_from(shared.max_body).unwrap_or(u64::MAX) {
        return Err(too_large(peer, shared.max_body));
    }
    let body = match Limited::new(request.into_body(), shared.max_body)
        .collect()
        .await
    {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => {
            return Err(too_large(peer, shared.max_body));
        }
        Err(e) => {
            tracing::debug!(%peer, error = %e, "could not read an RPC request body");
            return Err(closing(plain(
                StatusCode::BAD_REQUEST,
                "could not read the request body",
            )));
        }
    };
    // The body is in: bytes read from now on start the next request.
    clock.clear();
    Ok(body)
}

/// Runs the calls of a request body and builds the response.
async fn answer<D: Dispatch>(body: &[u8], shared: &Shared<D>) -> Response<Full<Bytes>> {
    let reply = jsonrpc::handle(body, &shared.dispatch).await;
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    match reply.body {
        Some(json) => {
            let mut response = Response::new(Full::new(Bytes::from(json)));
            *response.status_mut() = status;
            response
                .headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            response
        }
        None => {
            let mut response = Response::new(Full::new(Bytes::new()));
            *response.status_mut() = status;
            response
        }
    }
}

/// 413, closing the connection (the unread body cannot be skipped).
fn too_large(peer: SocketAddr, max_body: usize) -> Response<Full<Bytes>> {
    tracing::info!(%peer, max_body, "RPC request body too large");
    closing(plain(
        StatusCode::PAYLOAD_TOO_LARGE,
        "request body too large",
    ))
}

/// 401 with Core's challenge and an empty body.
fn unauthorized() -> Response<Full<Bytes>> {
    let mut response = plain(StatusCode::UNAUTHORIZED, "");
    response
        .headers_mut()
        .insert(WWW_AUTHENTICATE, HeaderValue::from_static(WWW_AUTH));
    response
}

/// A response with a short text body (as Core's non-JSON errors).
fn plain(status: StatusCode, text: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *response.status_mut() = status;
    if !text.is_empty() {
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    }
    response
}

/// Marks `response` as the last one on its connection.
fn closing(mut response: Response<Full<Bytes>>) -> Response<Full<Bytes>> {
    response
        .headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("close"));
    response
}

/// When the current request's first byte arrived.
///
/// hyper only hands us a request once its headers are parsed; to count the
/// time limit from the first byte, the connection's reads are watched
/// ([`ClockedStream`]) and the first one after the previous request's body
/// starts the clock.
#[derive(Debug, Default)]
struct RequestClock {
    /// The start of the request being received, if it has begun.
    started: Mutex<Option<Instant>>,
}

impl RequestClock {
    /// Bytes arrived: starts the clock unless it is running.
    fn mark(&self) {
        let mut started = self.started.lock().unwrap_or_else(PoisonError::into_inner);
        if started.is_none() {
            *started = Some(Instant::now());
        }
    }

    /// The start of the request just received (and resets the clock).
    fn take(&self) -> Option<Instant> {
        self.started
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }

    /// Forgets reads that belonged to the request just received.
    fn clear(&self) {
        *self.started.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }
}

/// A TCP stream that starts the [`RequestClock`] on reads.
struct ClockedStream {
    /// The connection.
    inner: TcpStream,
    /// The clock of its requests.
    clock: Arc<RequestClock>,
}

impl AsyncRead for ClockedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let poll = Pin::new(&mut this.inner).poll_read(cx, buf);
        if matches!(poll, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.clock.mark();
        }
        poll
    }
}

impl AsyncWrite for ClockedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
