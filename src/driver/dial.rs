//! Dial tasks: a Tor stream (or, with Tor explicitly off, a TCP socket), then
//! the BIP324 handshake, handed back to the engine task ready to run.

use std::net::SocketAddr;

use nightjar_tor::{CircuitLabel, Target, TorTransport};
use tokio::sync::mpsc;

use super::DriverEvent;
use crate::engine::{DialFailure, DialRequest};
use crate::peer::task::{PeerHandle, spawn_peer};
use crate::peer::{ConnId, PeerMachine, PeerUpdate};
use crate::transport::{
    DialError, DirectTcpDialer, HandshakeError, PeerStream, Session, TorDialer, TransportKind,
    connect_outbound,
};
use crate::wire::Magic;

/// Starts the peer task for a session that is already up. Boxed so that
/// the engine task, which starts it, need not know the stream type; and so
/// that it starts only after the engine has recorded the connection (the
/// peer's first report must not overtake `Connected`).
pub type StartPeer =
    Box<dyn FnOnce(ConnId, PeerMachine, mpsc::Sender<PeerUpdate>) -> PeerHandle + Send>;

/// A finished dial.
pub struct Dialed {
    /// Which connection.
    pub conn: ConnId,
    /// v1 or v2.
    pub transport: TransportKind,
    /// The circuit carrying it.
    pub circuit: Option<CircuitLabel>,
    /// Starts its peer task.
    pub start: StartPeer,
}

impl std::fmt::Debug for Dialed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dialed")
            .field("conn", &self.conn)
            .field("transport", &self.transport)
            .field("circuit", &self.circuit)
            .finish_non_exhaustive()
    }
}

/// How the driver reaches peers.
#[derive(Clone)]
pub enum Network {
    /// Through the embedded Tor client.
    Tor(TorTransport),
    /// Direct TCP (Tor explicitly turned off).
    Direct,
}

/// Dial `req` and report the outcome on `events`.
pub async fn dial(
    network: Network,
    magic: Magic,
    req: DialRequest,
    events: mpsc::Sender<DriverEvent>,
) {
    let conn = req.conn;
    let outcome = match network {
        Network::Tor(tor) => {
            let dialer = TorDialer::new(tor, req.target.clone(), req.isolation.group);
            connect_outbound(&dialer, magic, req.v1).await.map(ready)
        }
        Network::Direct => match direct_addr(&req.target).await {
            Ok(addr) => connect_outbound(&DirectTcpDialer::new(addr), magic, req.v1)
                .await
                .map(ready),
            Err(e) => Err(e),
        },
    };
    let event = match outcome {
        Ok((transport, circuit, start)) => DriverEvent::Dialed(Dialed {
            conn,
            transport,
            circuit,
            start,
        }),
        Err(e) => DriverEvent::DialFailed {
            conn,
            failure: DialFailure {
                peer_at_fault: peer_at_fault(&e),
                reason: e.to_string(),
            },
        },
    };
    let _ = events.send(event).await;
}

fn ready<S: PeerStream>(session: Session<S>) -> (TransportKind, Option<CircuitLabel>, StartPeer) {
    let transport = session.kind();
    let circuit = session.circuit();
    let start: StartPeer =
        Box::new(move |conn, machine, to_engine| spawn_peer(conn, session, machine, to_engine));
    (transport, circuit, start)
}

/// Without Tor a host name is resolved by the system: the user turned Tor
/// off, so there is nothing to protect.
async fn direct_addr(target: &Target) -> Result<SocketAddr, HandshakeError> {
    match target {
        Target::Ip(addr) => Ok(*addr),
        Target::Host { name, port } => tokio::net::lookup_host((name.as_str(), *port))
            .await?
            .next()
            .ok_or_else(|| HandshakeError::Protocol(format!("{name} has no address"))),
        Target::Onion { .. } => Err(HandshakeError::Protocol(
            "onion peers cannot be reached with Tor turned off".into(),
        )),
    }
}

/// Whether a failure says something about the peer (and so counts against
/// its address) rather than about us or the Tor network. Only a Tor-side
/// failure can be ours or the network's; a refused TCP connect or a broken
/// handshake is the peer's.
fn peer_at_fault(e: &HandshakeError) -> bool {
    match e {
        HandshakeError::Dial(DialError::Tor(t)) => t.kind().blames_remote(),
        _ => true,
    }
}
