//! Bootstrap progress, as a value a progress display can show.

use std::fmt;
use std::pin::Pin;

use futures::Stream;
use tokio::sync::watch;

/// A snapshot of the client's bootstrap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootstrapProgress {
    /// 0–100.
    pub percent: u8,
    /// Whether the client can carry traffic (connects will be attempted).
    pub ready: bool,
    /// Arti's one-line description of the current step.
    pub summary: String,
    /// Why bootstrap is stuck, if it is (e.g. "can't reach the Tor network").
    pub blocked: Option<String>,
}

impl BootstrapProgress {
    /// The state before anything happened.
    pub(crate) fn starting() -> Self {
        BootstrapProgress {
            percent: 0,
            ready: false,
            summary: "starting".to_string(),
            blocked: None,
        }
    }
}

impl fmt::Display for BootstrapProgress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}%: {}", self.percent, self.summary)?;
        if let Some(why) = &self.blocked {
            write!(f, " (blocked: {why})")?;
        }
        Ok(())
    }
}

/// A stream of bootstrap snapshots: yields the current one first, then every
/// change, and ends when the client is dropped.
pub type ProgressStream = Pin<Box<dyn Stream<Item = BootstrapProgress> + Send>>;

/// Turn a watch receiver into a [`ProgressStream`].
pub(crate) fn progress_stream(rx: watch::Receiver<BootstrapProgress>) -> ProgressStream {
    Box::pin(futures::stream::unfold(
        (rx, true),
        |(mut rx, first)| async move {
            if !first && rx.changed().await.is_err() {
                return None;
            }
            let snapshot = rx.borrow_and_update().clone();
            Some((snapshot, (rx, false)))
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    #[tokio::test]
    async fn stream_yields_current_then_changes_then_ends() {
        let (tx, rx) = watch::channel(BootstrapProgress::starting());
        let mut s = progress_stream(rx);
        assert_eq!(s.next().await.map(|p| p.percent), Some(0));
        tx.send_modify(|p| p.percent = 50);
        assert_eq!(s.next().await.map(|p| p.percent), Some(50));
        drop(tx);
        assert!(s.next().await.is_none());
    }

    #[test]
    fn display_shows_blockage() {
        let mut p = BootstrapProgress::starting();
        p.blocked = Some("no route".into());
        assert_eq!(p.to_string(), "0%: starting (blocked: no route)");
    }
}
