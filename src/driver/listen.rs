//! Inbound streams: an accept loop per bound TCP listener (as in LDK's
//! listener: accept, hand over, accept again), and the responder handshake
//! of each stream the engine takes on.
//!
//! The engine decides before a byte is read (see [`crate::engine::inbound`]);
//! a refused stream is simply dropped. An accepted one gets the BIP324
//! responder handshake, with v1 detected from its first bytes, and comes
//! back to the engine task as a [`Dialed`], exactly like an outbound dial.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use super::DriverEvent;
use super::dial::{Dialed, StartPeer};
use crate::engine::{AcceptRequest, DialFailure};
use crate::peer::task::spawn_peer;
use crate::transport::accept_inbound;
use crate::wire::Magic;

/// Pause after a failed `accept` (out of file descriptors, say), so the
/// loop does not spin while the condition lasts.
pub const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// Bind each address; the ones that fail are reported and skipped (as Core
/// does when, say, IPv6 is unavailable), but at least one must bind.
pub async fn bind_all(addrs: &[SocketAddr]) -> std::io::Result<Vec<TcpListener>> {
    let mut bound = Vec::new();
    let mut last_error = None;
    for addr in addrs {
        match TcpListener::bind(addr).await {
            Ok(l) => {
                tracing::info!(addr = %l.local_addr().unwrap_or(*addr), "listening for peers");
                bound.push(l);
            }
            Err(e) => {
                tracing::warn!(%addr, "cannot listen: {e}");
                last_error = Some(e);
            }
        }
    }
    match (bound.is_empty(), last_error) {
        (true, Some(e)) => Err(e),
        _ => Ok(bound),
    }
}

/// Accept streams forever, handing each to the engine task.
pub async fn accept_loop(listener: TcpListener, events: mpsc::Sender<DriverEvent>) {
    loop {
        match listener.accept().await {
            Ok((stream, remote)) => {
                // Core sets TCP_NODELAY on every peer socket: small
                // protocol messages must not wait for Nagle.
                let _ = stream.set_nodelay(true);
                if events
                    .send(DriverEvent::Accepted { stream, remote })
                    .await
                    .is_err()
                {
                    return;
                }
            }
            Err(e) => {
                tracing::debug!("accept failed: {e}");
                tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
            }
        }
    }
}

/// The responder handshake for a stream the engine took on; the outcome
/// goes to `events` as for a dial.
pub async fn handshake(
    stream: TcpStream,
    magic: Magic,
    req: AcceptRequest,
    events: mpsc::Sender<DriverEvent>,
) {
    let conn = req.conn;
    let event = match accept_inbound(stream, magic, req.allow_v1).await {
        Ok(session) => {
            let transport = session.kind();
            let start: StartPeer = Box::new(move |conn, machine, to_engine| {
                spawn_peer(conn, session, machine, to_engine)
            });
            DriverEvent::Dialed(Dialed {
                conn,
                transport,
                circuit: None,
                start,
            })
        }
        Err(e) => DriverEvent::DialFailed {
            conn,
            failure: DialFailure {
                reason: format!("inbound handshake: {e}"),
                peer_at_fault: true,
            },
        },
    };
    let _ = events.send(event).await;
}
