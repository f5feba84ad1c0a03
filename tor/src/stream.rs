//! A byte stream through Tor, and the label of the circuit that carries it.

use std::fmt;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use arti_client::DataStream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tor_proto::client::stream::ClientStreamCtrl;

/// Which circuit carries a stream: Arti's process-unique circuit id and the
/// relays it passes through (onion rendezvous adds a `<virtual hop>`).
///
/// Two streams with equal `id` share a circuit. The hops identify relays, not
/// the peer, so this is safe to show in `getpeerinfo`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CircuitLabel {
    /// Process-unique id, e.g. `Circ 3.8` (channel . circuit).
    pub id: String,
    /// One entry per hop, first hop (guard) first.
    pub hops: Vec<String>,
}

impl fmt::Display for CircuitLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} [{}]", self.id, self.hops.join(" -> "))
    }
}

/// A connected stream through the embedded Tor client.
///
/// Implements tokio's `AsyncRead + AsyncWrite`. Like every Tor stream it
/// buffers written bytes into cells: call `flush` after a message.
pub struct TorStream {
    inner: DataStream,
    circuit: Option<CircuitLabel>,
}

impl TorStream {
    /// Wrap an Arti stream, recording its circuit while the stream is fresh.
    pub(crate) fn new(inner: DataStream) -> Self {
        let circuit = circuit_of(&inner);
        TorStream { inner, circuit }
    }

    /// The circuit this stream was opened on, if Arti could tell.
    pub fn circuit(&self) -> Option<&CircuitLabel> {
        self.circuit.as_ref()
    }
}

impl fmt::Debug for TorStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TorStream")
            .field("circuit", &self.circuit)
            .finish_non_exhaustive()
    }
}

/// Read the circuit label off an Arti stream.
fn circuit_of(stream: &DataStream) -> Option<CircuitLabel> {
    let tunnel = stream.client_stream_ctrl()?.tunnel()?;
    let hops = tunnel
        .all_paths()
        .iter()
        .flat_map(|path| path.iter().map(|hop| hop.to_string()).collect::<Vec<_>>())
        .collect();
    Some(CircuitLabel {
        id: tunnel.unique_id().to_string(),
        hops,
    })
}

impl AsyncRead for TorStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for TorStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
