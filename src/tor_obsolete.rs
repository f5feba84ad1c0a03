//! What nightjar does when the Tor network declares its Arti obsolete.
//!
//! Arti would end the process with `exit(1)` five seconds after saying so
//! (see [`nightjar_tor::obsolete`]): no peers.dat save, no cookie removal,
//! and an exit status systemd restarts into the same failure. Instead, a
//! `tracing` layer watches for Arti's notice and wakes the daemon, which
//! stops in order and exits with [`EXIT_STATUS`]. The packaged unit does
//! not restart on that status (`RestartPreventExitStatus=`): only an
//! upgrade helps, and the package upgrade restarts the unit.

use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Notify;
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

/// The daemon's exit status when the Tor network requires a newer Arti.
/// Documented in the README and the systemd unit.
pub const EXIT_STATUS: u8 = 3;

/// What the user reads (log, systemd status, stderr).
pub const MESSAGE: &str = "the Tor network now requires a newer Tor client than the one built \
     into this nightjar: upgrade nightjar (your distribution's package, or a newer release)";

static SEEN: AtomicBool = AtomicBool::new(false);
static WAKE: Notify = Notify::const_new();

/// The daemon stopped because its Arti is obsolete; `main` turns this into
/// [`EXIT_STATUS`].
#[derive(Debug, thiserror::Error)]
#[error("{MESSAGE}")]
pub struct TorObsolete;

/// A `tracing` layer that notices Arti's announcement (added to the global
/// subscriber by [`crate::logging::init`]).
#[derive(Debug, Default, Clone, Copy)]
pub struct ObsoleteWatch;

impl<S: Subscriber> Layer<S> for ObsoleteWatch {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let meta = event.metadata();
        if nightjar_tor::obsolete::is_obsolete_notice(meta.target(), *meta.level()) {
            SEEN.store(true, Ordering::SeqCst);
            WAKE.notify_waiters();
        }
    }
}

/// Whether the announcement has been seen.
pub fn seen() -> bool {
    SEEN.load(Ordering::SeqCst)
}

/// Resolves once Arti has announced that it is obsolete (at once if it
/// already has).
pub async fn announced() {
    loop {
        let woken = WAKE.notified();
        tokio::pin!(woken);
        // Registered before the check, so a notice between the two is not
        // lost.
        woken.as_mut().enable();
        if seen() {
            return;
        }
        woken.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::layer::SubscriberExt;

    #[tokio::test]
    async fn arti_s_notice_wakes_the_daemon_and_nothing_else_does() {
        let subscriber = tracing_subscriber::registry().with(ObsoleteWatch);
        let waiter = tokio::spawn(announced());
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(target: "arti_client::protostatus", "recommended protocol missing");
            tracing::error!(target: "nightjar::daemon", "unrelated");
        });
        tokio::task::yield_now().await;
        assert!(!seen() && !waiter.is_finished());
        let subscriber = tracing_subscriber::registry().with(ObsoleteWatch);
        tracing::subscriber::with_default(subscriber, || {
            tracing::error!(target: "arti_client::protostatus", "required protocol missing");
        });
        tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
            .await
            .unwrap_or_else(|_| panic!("not woken"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(seen());
        // Later waiters return at once.
        announced().await;
    }
}
