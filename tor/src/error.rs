//! Errors of the onion transport, classified by what the caller should do.
//!
//! Arti's errors are opaque on purpose; what it does expose is an
//! [`ErrorKind`](arti_client::ErrorKind) per error. We map those kinds — never
//! message text, which changes between releases — onto a smaller set that
//! nightjar's connection manager can act on, each with a retry hint.

use std::fmt;
use std::time::Duration;

use arti_client::{ErrorKind, HasKind};
use tor_error::ErrorReport;

/// What went wrong, at the granularity a caller acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TorErrorKind {
    /// The client has not finished bootstrapping; wait for readiness.
    NotReady,
    /// The Tor network (guards, directory caches) cannot be reached at all.
    TorNetworkUnreachable,
    /// No descriptor for this onion service: it is offline or never existed.
    OnionServiceNotFound,
    /// The onion service exists but introduction or rendezvous failed.
    OnionServiceUnreachable,
    /// The onion service requires client authorization we do not have.
    OnionServiceAuthRequired,
    /// The exit relay could not open a connection to the destination: refused,
    /// no route, or a failure the exit did not specify. (C-tor exits report a
    /// refused TCP connect as "misc", so these cannot be told apart.)
    RemoteUnreachable,
    /// The exit could not resolve the host name.
    HostNotFound,
    /// No exit relay allows this destination.
    NoExitForTarget,
    /// The operation ran out of time (ours or the network's).
    Timeout,
    /// A circuit or stream failed in a way that usually goes away on retry.
    TransientNetwork,
    /// The target is refused by local policy (for example a local address
    /// without `allow_local_addrs`) or is malformed.
    TargetRejected,
    /// The Tor configuration (or custom-network file) is invalid.
    Config,
    /// Arti's state, cache or keystore directories are unusable.
    LocalState,
    /// The client is shutting down.
    ShuttingDown,
    /// The Tor network requires a protocol this Arti does not implement:
    /// only a newer nightjar (with a newer Arti) can fix it (see
    /// [`crate::obsolete`]).
    SoftwareObsolete,
    /// Anything else, including Arti internal errors.
    Other,
}

/// When an operation that failed may be tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RetryHint {
    /// Retrying cannot help; the user or the configuration must change something.
    Never,
    /// Retry once the client reports it is ready for traffic.
    AfterBootstrap,
    /// Retry after at least this long (with backoff and jitter on repeats).
    After(Duration),
}

/// Delay before retrying a transient failure: long enough that a retry storm
/// cannot form, short enough that a lost circuit is replaced promptly.
pub const TRANSIENT_RETRY_DELAY: Duration = Duration::from_secs(5);

/// Delay before retrying a peer that is absent or refusing: peers restart in
/// minutes, and Core's address manager waits about this long between attempts.
pub const UNREACHABLE_RETRY_DELAY: Duration = Duration::from_secs(10 * 60);

impl TorErrorKind {
    /// The retry hint that goes with this kind of failure.
    pub fn retry_hint(self) -> RetryHint {
        use TorErrorKind as K;
        match self {
            K::NotReady => RetryHint::AfterBootstrap,
            K::TorNetworkUnreachable | K::Timeout | K::TransientNetwork => {
                RetryHint::After(TRANSIENT_RETRY_DELAY)
            }
            K::OnionServiceNotFound
            | K::OnionServiceUnreachable
            | K::RemoteUnreachable
            | K::HostNotFound
            | K::NoExitForTarget
            | K::Other => RetryHint::After(UNREACHABLE_RETRY_DELAY),
            K::OnionServiceAuthRequired
            | K::TargetRejected
            | K::Config
            | K::LocalState
            | K::ShuttingDown
            | K::SoftwareObsolete => RetryHint::Never,
        }
    }

    /// Whether the failure says something about the remote peer (as opposed to
    /// our Tor client or the network in between). Only these should count
    /// against an address in the address manager.
    pub fn blames_remote(self) -> bool {
        use TorErrorKind as K;
        matches!(
            self,
            K::OnionServiceNotFound
                | K::OnionServiceUnreachable
                | K::RemoteUnreachable
                | K::HostNotFound
                | K::NoExitForTarget
        )
    }

    /// Classify one of Arti's error kinds.
    pub(crate) fn from_arti(kind: ErrorKind) -> Self {
        use ErrorKind as A;
        use TorErrorKind as K;
        match kind {
            A::BootstrapRequired | A::DirectoryExpired | A::TorDirectoryUnusable | A::ClockSkew => {
                K::NotReady
            }
            A::TorAccessFailed | A::LocalNetworkError => K::TorNetworkUnreachable,
            A::OnionServiceNotFound | A::OnionServiceNotRunning => K::OnionServiceNotFound,
            A::OnionServiceConnectionFailed | A::OnionServiceProtocolViolation => {
                K::OnionServiceUnreachable
            }
            A::OnionServiceMissingClientAuth | A::OnionServiceWrongClientAuth => {
                K::OnionServiceAuthRequired
            }
            // An END before CONNECTED on a stream we are opening: the exit
            // tried and failed to reach the destination.
            A::RemoteConnectionRefused
            | A::RemoteNetworkFailed
            | A::RemoteStreamError
            | A::RemoteStreamClosed
            | A::RemoteStreamReset => K::RemoteUnreachable,
            A::RemoteHostNotFound | A::RemoteHostResolutionFailed => K::HostNotFound,
            A::ExitPolicyRejected | A::NoExit => K::NoExitForTarget,
            A::ExitTimeout | A::RemoteNetworkTimeout | A::TorNetworkTimeout => K::Timeout,
            A::RemoteProtocolViolation
            | A::TorProtocolViolation
            | A::CircuitCollapse
            | A::CircuitRefused
            | A::RelayTooBusy
            | A::RelayIdMismatch
            | A::TorDirectoryError
            | A::TorDocumentRejected
            | A::NoPath
            | A::LocalResourceExhausted
            | A::TransientFailure => K::TransientNetwork,
            A::ForbiddenStreamTarget | A::InvalidStreamTarget | A::OnionServiceAddressInvalid => {
                K::TargetRejected
            }
            A::InvalidConfig
            | A::InvalidConfigTransition
            | A::NoHomeDirectory
            | A::FeatureDisabled
            | A::NotImplemented => K::Config,
            A::FsPermissions
            | A::PersistentStateAccessFailed
            | A::PersistentStateCorrupted
            | A::CacheCorrupted
            | A::CacheAccessFailed
            | A::KeystoreCorrupted
            | A::KeystoreAccessFailed
            | A::LocalResourceAlreadyInUse => K::LocalState,
            A::ArtiShuttingDown | A::ReactorShuttingDown => K::ShuttingDown,
            A::SoftwareDeprecated => K::SoftwareObsolete,
            _ => K::Other,
        }
    }
}

/// An error from the onion transport: its kind, what we were doing, and the
/// full cause chain as text (Arti's own types stay inside this crate).
#[derive(Debug, Clone)]
pub struct TorError {
    kind: TorErrorKind,
    context: String,
    detail: String,
}

impl TorError {
    /// An error of `kind` while doing `context`, explained by `detail`.
    pub fn new(kind: TorErrorKind, context: impl Into<String>, detail: impl Into<String>) -> Self {
        TorError {
            kind,
            context: context.into(),
            detail: detail.into(),
        }
    }

    /// Wrap an Arti error, classifying it by its `ErrorKind`.
    pub(crate) fn from_arti(context: impl Into<String>, err: &arti_client::Error) -> Self {
        TorError::new(
            TorErrorKind::from_arti(err.kind()),
            context,
            err.report().to_string(),
        )
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> TorErrorKind {
        self.kind
    }

    /// When (if ever) the operation may be retried.
    pub fn retry_hint(&self) -> RetryHint {
        self.kind.retry_hint()
    }

    /// What we were doing when it failed.
    pub fn context(&self) -> &str {
        &self.context
    }
}

impl fmt::Display for TorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.context, self.detail)
    }
}

impl std::error::Error for TorError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_follow_kinds() {
        assert_eq!(TorErrorKind::Config.retry_hint(), RetryHint::Never);
        assert_eq!(
            TorErrorKind::NotReady.retry_hint(),
            RetryHint::AfterBootstrap
        );
        assert_eq!(
            TorErrorKind::TransientNetwork.retry_hint(),
            RetryHint::After(TRANSIENT_RETRY_DELAY)
        );
        assert!(TorErrorKind::OnionServiceNotFound.blames_remote());
        assert!(!TorErrorKind::Timeout.blames_remote());
    }

    #[test]
    fn arti_kinds_map_by_kind() {
        use TorErrorKind as K;
        let cases = [
            (ErrorKind::OnionServiceNotFound, K::OnionServiceNotFound),
            (ErrorKind::RemoteConnectionRefused, K::RemoteUnreachable),
            (ErrorKind::RemoteStreamError, K::RemoteUnreachable),
            (ErrorKind::ExitPolicyRejected, K::NoExitForTarget),
            (ErrorKind::BootstrapRequired, K::NotReady),
            (ErrorKind::ForbiddenStreamTarget, K::TargetRejected),
            (ErrorKind::InvalidConfig, K::Config),
            (ErrorKind::FsPermissions, K::LocalState),
            (ErrorKind::SoftwareDeprecated, K::SoftwareObsolete),
            (ErrorKind::Internal, K::Other),
        ];
        for (arti, ours) in cases {
            assert_eq!(TorErrorKind::from_arti(arti), ours, "{arti:?}");
        }
    }

    #[test]
    fn display_carries_context_and_detail() {
        let e = TorError::new(
            TorErrorKind::Timeout,
            "connecting to x.onion:8333",
            "timed out after 60s",
        );
        assert_eq!(
            e.to_string(),
            "connecting to x.onion:8333: timed out after 60s"
        );
        assert_eq!(e.kind(), TorErrorKind::Timeout);
    }
}
