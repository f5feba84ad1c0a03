//! Turns the Tor client's bootstrap progress into log lines for the user and
//! readiness changes for the engine.

use futures::StreamExt;
use nightjar_tor::TorTransport;
use tokio::sync::mpsc;

use super::DriverEvent;
use crate::rpc::methods::TorStatus;
use crate::systemd_notify;

/// Log each distinct percentage or blockage once, and report every change
/// to the engine task (readiness gates dialling; the rest is for
/// `getnetworkinfo`); ends when the client goes away.
pub async fn watch(tor: TorTransport, events: mpsc::Sender<DriverEvent>) {
    let mut progress = tor.progress();
    let mut last: Option<(u8, Option<String>)> = None;
    let mut ready = false;
    while let Some(p) = progress.next().await {
        let key = (p.percent, p.blocked.clone());
        let news = last.as_ref() != Some(&key) || p.ready != ready;
        if last.as_ref() != Some(&key) {
            match &p.blocked {
                Some(why) => {
                    tracing::warn!(percent = p.percent, "Tor bootstrap blocked: {why}");
                    systemd_notify::status(&format!("Tor bootstrap blocked: {why}"));
                }
                None if !p.ready => {
                    tracing::info!("Tor bootstrap {}%: {}", p.percent, p.summary);
                    systemd_notify::status(&format!("Tor bootstrap {}%", p.percent));
                }
                None => {}
            }
            last = Some(key);
        }
        if p.ready != ready {
            ready = p.ready;
            if ready {
                tracing::info!("Tor is ready");
                // The unit is `Type=notify`: `systemctl start` returns now.
                // Repeated after a loss of readiness, READY=1 is a no-op.
                systemd_notify::ready("Tor ready; connecting to peers");
            } else {
                systemd_notify::status("Tor is not ready; waiting for it");
                tracing::warn!("Tor is no longer ready; not dialling until it is");
            }
        }
        if news {
            let status = TorStatus {
                enabled: true,
                percent: p.percent,
                ready: p.ready,
                summary: p.summary.clone(),
                blocked: p.blocked.clone(),
                // The driver keeps its own record of the onion service.
                onion_service: None,
            };
            if events.send(DriverEvent::Tor(status)).await.is_err() {
                return;
            }
        }
    }
}
