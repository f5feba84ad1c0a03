//! How an outbound stream is opened: through the embedded Tor client, or
//! (only when the user turned Tor off, e.g. regtest on localhost) plain TCP.
//!
//! A dialer is bound to one target and one isolation group, so that a retry
//! — the v1 fallback in particular — can only go where the first attempt
//! went, the way it went. (Bitcoin Core 31.0 leaked users' IP addresses by
//! retrying v1 outside its proxy.)

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;

use nightjar_tor::{CircuitLabel, IsolationGroup, Target, TorError, TorStream, TorTransport};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// Why a dial failed.
#[derive(Debug, thiserror::Error)]
pub enum DialError {
    /// The Tor client could not open the stream.
    #[error(transparent)]
    Tor(#[from] TorError),
    /// A direct TCP connect failed.
    #[error("TCP connect to {addr} failed: {source}")]
    Tcp {
        /// Where we tried to go.
        addr: SocketAddr,
        /// What the OS said.
        source: std::io::Error,
    },
}

/// A byte stream fit for a peer connection.
pub trait PeerStream: AsyncRead + AsyncWrite + Send + Unpin + 'static {
    /// The Tor circuit carrying the stream (`None` off Tor).
    fn circuit(&self) -> Option<CircuitLabel>;
}

impl PeerStream for TorStream {
    fn circuit(&self) -> Option<CircuitLabel> {
        TorStream::circuit(self).cloned()
    }
}

impl PeerStream for TcpStream {
    fn circuit(&self) -> Option<CircuitLabel> {
        None
    }
}

impl PeerStream for tokio::io::DuplexStream {
    fn circuit(&self) -> Option<CircuitLabel> {
        None
    }
}

/// Opens streams to one fixed target.
pub trait Dialer: Send + Sync {
    /// The stream type.
    type Stream: PeerStream;

    /// Open a new stream to the target.
    fn dial(&self) -> impl Future<Output = Result<Self::Stream, DialError>> + Send;
}

/// Dials one target through the embedded Tor client, in one isolation group.
#[derive(Clone)]
pub struct TorDialer {
    tor: TorTransport,
    target: Target,
    group: IsolationGroup,
}

impl TorDialer {
    /// A dialer for `target` whose streams use circuits of `group`.
    pub fn new(tor: TorTransport, target: Target, group: IsolationGroup) -> Self {
        TorDialer { tor, target, group }
    }

    /// Where it dials.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// Its isolation group.
    pub fn group(&self) -> IsolationGroup {
        self.group
    }
}

impl fmt::Debug for TorDialer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TorDialer({} via {})", self.target, self.group)
    }
}

impl Dialer for TorDialer {
    type Stream = TorStream;

    async fn dial(&self) -> Result<TorStream, DialError> {
        Ok(self.tor.connect(&self.target, self.group).await?)
    }
}

/// Dials one address directly, bypassing Tor. Only for setups where the user
/// explicitly turned Tor off (a regtest network on localhost).
#[derive(Debug, Clone, Copy)]
pub struct DirectTcpDialer {
    addr: SocketAddr,
}

impl DirectTcpDialer {
    /// A dialer for `addr`.
    pub fn new(addr: SocketAddr) -> Self {
        DirectTcpDialer { addr }
    }
}

impl Dialer for DirectTcpDialer {
    type Stream = TcpStream;

    async fn dial(&self) -> Result<TcpStream, DialError> {
        let stream = TcpStream::connect(self.addr)
            .await
            .map_err(|source| DialError::Tcp {
                addr: self.addr,
                source,
            })?;
        // Core sets TCP_NODELAY on every peer socket: a `getheaders` or
        // `pong` must not wait for Nagle's algorithm. (Tor streams are
        // Arti's business; this is the `--no-tor` path.)
        let _ = stream.set_nodelay(true);
        Ok(stream)
    }
}
