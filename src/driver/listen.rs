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

use nightjar_tor::{OnionService, OnionServiceState};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use super::DriverEvent;
use super::dial::{Dialed, StartPeer};
use crate::engine::{AcceptRequest, DialFailure};
use crate::peer::task::spawn_peer;
use crate::transport::{PeerStream, accept_inbound};
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

/// The nickname of nightjar's onion service in Arti's keystore (under the
/// Tor state directory): the same name gives the same address across
/// restarts.
pub const ONION_SERVICE_NICKNAME: &str = "nightjar-p2p";

/// Launch our onion service for inbound peers on virtual port `port` (the
/// chain's P2P port, as Core's onion services use).
pub fn launch_onion_service(
    tor: &nightjar_tor::TorTransport,
    port: u16,
) -> Result<(OnionService, nightjar_tor::Target), String> {
    match tor.serve_onion(ONION_SERVICE_NICKNAME, port) {
        Ok(service) => {
            let target = nightjar_tor::Target::Onion {
                address: service.address(),
                port,
            };
            tracing::info!(address = %safelog::sensitive(&target), "onion service launched; publishing it");
            Ok((service, target))
        }
        Err(e) => {
            tracing::warn!(
                "onion service could not start: {e}; running with outbound connections only"
            );
            Err(e.to_string())
        }
    }
}

/// How often the onion service's state is looked at (its changes are
/// logged and shown in `getnetworkinfo`).
pub const ONION_STATE_POLL: Duration = Duration::from_secs(5);

/// Accept onion streams from our own service forever, handing each to the
/// engine task, and report the service's state when it changes. Arti keeps
/// publishing the service (and retrying) on its own.
pub async fn onion_accept_loop(mut service: OnionService, events: mpsc::Sender<DriverEvent>) {
    let mut last = None;
    let mut poll = tokio::time::interval(ONION_STATE_POLL);
    loop {
        tokio::select! {
            stream = service.accept() => {
                let event = match stream {
                    Some(stream) => DriverEvent::AcceptedOnion { stream: Box::new(stream) },
                    None => DriverEvent::OnionState(OnionServiceState::Stopped),
                };
                let stopped = matches!(event, DriverEvent::OnionState(_));
                if events.send(event).await.is_err() || stopped {
                    return;
                }
            }
            _ = poll.tick() => {
                let state = service.state();
                // Right after launch Arti may still report the status it
                // starts from (`Shutdown`) before its tasks run: that is
                // not a stop. A real stop ends `accept` above, or follows
                // a state it was in before.
                if state == OnionServiceState::Stopped && last.is_none() {
                    continue;
                }
                if last != Some(state) {
                    last = Some(state);
                    if events.send(DriverEvent::OnionState(state)).await.is_err() {
                        return;
                    }
                }
            }
        }
    }
}

/// The responder handshake for a stream the engine took on; the outcome
/// goes to `events` as for a dial.
pub async fn handshake<S: PeerStream>(
    stream: S,
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
