//! `nightjar-tor`: nightjar's embedded onion transport.
//!
//! This is the only crate in nightjar that talks to Arti, and no Arti type
//! appears in its public API, so an Arti upgrade touches this crate alone.
//!
//! - [`TorTransport::start`] creates an in-process Arti client with its state
//!   and cache where [`TorSettings`] says, on the public Tor network or on a
//!   custom network (tests, offline demos; see [`custom_network`]), and
//!   bootstraps it in the background while reporting [`BootstrapProgress`].
//! - [`TorTransport::connect`] opens a [`TorStream`] to a [`Target`] (onion
//!   service, IP through an exit, or host name resolved at the exit) on the
//!   circuits of an [`IsolationGroup`]; [`TorStream::circuit`] tells which
//!   circuit carries it.
//! - With [`TorSettings::with_bridges`], every circuit starts at a
//!   [`BridgeLine`]'s bridge, reached through its pluggable transport
//!   (obfs4proxy, run by Arti as a child process) where the line names one.
//! - [`TorTransport::resolve`] resolves names at an exit: nightjar never asks
//!   the system resolver.
//! - With the `onion-service` feature, [`TorTransport::serve_onion`] hosts an
//!   onion service in-process.
//!
//! Errors are [`TorError`]s whose [`TorErrorKind`] and [`RetryHint`] come from
//! Arti's error kinds, never from message text.

mod blockage;
pub mod bootstrap;
pub mod bridge;
pub mod custom_network;
pub mod error;
pub mod isolation;
pub mod obsolete;
pub mod onion_address;
#[cfg(feature = "onion-service")]
pub mod onion_service;
pub mod settings;
pub mod stream;
pub mod target;
mod transport;

pub use bootstrap::{BootstrapProgress, ProgressStream};
pub use bridge::{BridgeLine, BridgeLineError, Transport};
pub use error::{RetryHint, TorError, TorErrorKind};
pub use isolation::IsolationGroup;
pub use onion_address::{OnionAddressError, OnionV3Address};
#[cfg(feature = "onion-service")]
pub use onion_service::{OnionService, OnionServiceState};
pub use settings::{DEFAULT_MEMORY_LIMIT, Timeouts, TorNetwork, TorSettings};
pub use stream::{CircuitLabel, TorStream};
pub use target::{Target, TargetKind, TargetParseError};
pub use transport::TorTransport;
