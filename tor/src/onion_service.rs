//! Hosting an onion service inside the process, for inbound peers.
//!
//! Arti calls onion-service hosting experimental, so this module exists only
//! with the `onion-service` feature. Keys live in Arti's keystore under the
//! transport's state directory: the same nickname gives the same onion
//! address across restarts.

use std::sync::Arc;

use arti_client::config::onion_service::OnionServiceConfigBuilder;
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tor_cell::relaycell::msg::{Connected, End, EndReason};
use tor_hsservice::RunningOnionService;
use tor_hsservice::status::State;
use tor_proto::stream::IncomingStreamRequest;

use crate::error::{TorError, TorErrorKind};
use crate::onion_address::OnionV3Address;
use crate::stream::TorStream;
use crate::transport::TorTransport;

/// Inbound streams accepted but not yet taken by the application. Past this,
/// new streams are refused rather than queued: an onion service must not let
/// strangers grow our memory.
pub const INBOUND_QUEUE: usize = 32;

/// Where the service is in its life, coarsely.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum OnionServiceState {
    /// Establishing introduction points and publishing descriptors.
    Starting,
    /// Reachable, descriptors published.
    Running,
    /// Reachable, but with problems (fewer introduction points than wanted).
    Degraded,
    /// Probably unreachable; Arti keeps trying.
    Unreachable,
    /// Stopped or failed for good.
    Stopped,
}

/// A running onion service whose inbound streams arrive on one virtual port.
pub struct OnionService {
    address: OnionV3Address,
    running: Arc<RunningOnionService>,
    incoming: mpsc::Receiver<TorStream>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for OnionService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnionService")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

impl Drop for OnionService {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl OnionService {
    /// The service's onion address (known as soon as it is launched).
    pub fn address(&self) -> OnionV3Address {
        self.address
    }

    /// The next inbound stream. Inbound onion streams have no remote address:
    /// the peer is anonymous by construction. `None` once the service stopped.
    pub async fn accept(&mut self) -> Option<TorStream> {
        self.incoming.recv().await
    }

    /// The service's state now.
    pub fn state(&self) -> OnionServiceState {
        match self.running.status().state() {
            State::Running => OnionServiceState::Running,
            State::DegradedReachable => OnionServiceState::Degraded,
            State::DegradedUnreachable | State::Broken => OnionServiceState::Unreachable,
            State::Shutdown => OnionServiceState::Stopped,
            _ => OnionServiceState::Starting,
        }
    }
}

/// The service is also a stream of inbound streams, ending when it stops.
impl futures::Stream for OnionService {
    type Item = TorStream;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<TorStream>> {
        self.incoming.poll_recv(cx)
    }
}

impl TorTransport {
    /// Launch the onion service `nickname`, accepting streams to
    /// `virtual_port` and refusing every other port.
    pub fn serve_onion(&self, nickname: &str, virtual_port: u16) -> Result<OnionService, TorError> {
        let context = format!("launching onion service {nickname:?}");
        let config_err = |detail: String| TorError::new(TorErrorKind::Config, &context, detail);
        let nick = nickname
            .parse()
            .map_err(|e: tor_hsservice::InvalidNickname| config_err(e.to_string()))?;
        let config = OnionServiceConfigBuilder::default()
            .nickname(nick)
            .build()
            .map_err(|e| config_err(e.to_string()))?;
        let (running, requests) = self
            .inner()
            .client
            .launch_onion_service(config)
            .map_err(|e| TorError::from_arti(&context, &e))?
            .ok_or_else(|| config_err("onion service is disabled in the configuration".into()))?;
        let hsid = running.onion_address().ok_or_else(|| {
            TorError::new(TorErrorKind::LocalState, &context, "service has no key")
        })?;
        let address = safelog::DisplayRedacted::display_unredacted(&hsid)
            .to_string()
            .parse::<OnionV3Address>()
            .map_err(|e| TorError::new(TorErrorKind::Other, &context, e.to_string()))?;

        let (tx, incoming) = mpsc::channel(INBOUND_QUEUE);
        let task = tokio::spawn(async move {
            let mut streams = Box::pin(tor_hsservice::handle_rend_requests(requests));
            while let Some(request) = streams.next().await {
                let wanted = matches!(request.request(), IncomingStreamRequest::Begin(b) if b.port() == virtual_port);
                let room = tx.capacity() > 0;
                if !(wanted && room) {
                    let reason = if wanted {
                        EndReason::RESOURCELIMIT
                    } else {
                        EndReason::DONE
                    };
                    if let Err(e) = request.reject(End::new_with_reason(reason)).await {
                        tracing::debug!(error = %e, "rejecting an inbound onion stream failed");
                    }
                    continue;
                }
                match request.accept(Connected::new_empty()).await {
                    Ok(stream) => {
                        if tx.send(TorStream::new(stream)).await.is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "accepting an inbound onion stream failed")
                    }
                }
            }
        });
        Ok(OnionService {
            address,
            running,
            incoming,
            task,
        })
    }
}
