//! Whom we let in: the policy for streams that arrive at our listeners,
//! decided before any byte of theirs is read, so that refusing costs
//! nothing.
//!
//! - Slots: [`EngineConfig::max_inbound`] (derived from `maxconnections`);
//!   outbound, manual and extra connections never count against it and are
//!   never touched for an inbound one.
//! - Diversity: at most [`MAX_INBOUND_PER_NETGROUP`] connections from one
//!   network group, so one /16 (or one host) cannot take every slot.
//! - Discouraged addresses (misbehaviour past the limit) and addresses the
//!   user banned (`setban`) are refused.
//! - The transport handshake must finish within
//!   [`INBOUND_HANDSHAKE_TIMEOUT`]; the version handshake then has the peer
//!   machine's own limit.
//!
//! When the slots are full, one inbound peer is evicted to make room, as
//! Core's `AttemptToEvictConnection` does (see [`super::eviction`]); if
//! every one is protected, the newcomer is refused.

use std::time::Duration;

use super::config::EngineConfig;
use super::peers::PeerTable;
use crate::netaddr::{NetAddr, NetGroup};
use crate::peer::ConnectionKind;

/// Inbound connections from one network group at most.
pub const MAX_INBOUND_PER_NETGROUP: usize = 8;

/// Time an accepted stream has to complete its transport (BIP324 or v1
/// detection) handshake. Shorter than an outbound dial's limit: there is no
/// circuit to build, only bytes to exchange.
pub const INBOUND_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// Why an inbound stream was turned away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// We do not listen (or are shutting down).
    NotListening,
    /// Every inbound slot is taken.
    Full,
    /// Its network group already has its share.
    NetgroupFull,
    /// The address misbehaved recently.
    Discouraged,
    /// The user banned the address (`setban`).
    Banned,
}

impl Refusal {
    /// For logs.
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::NotListening => "not accepting connections",
            Refusal::Full => "inbound slots full",
            Refusal::NetgroupFull => "too many connections from its network group",
            Refusal::Discouraged => "address discouraged after misbehaviour",
            Refusal::Banned => "address banned",
        }
    }
}

/// Decide on a stream from network group `group` (`None` for onion peers,
/// which have no address), given the connections we hold. `Full` is not
/// final: the caller may make room by eviction.
pub fn judge(
    config: &EngineConfig,
    peers: &PeerTable,
    group: Option<NetGroup>,
    discouraged: bool,
) -> Result<(), Refusal> {
    if config.max_inbound == 0 {
        return Err(Refusal::NotListening);
    }
    if discouraged {
        return Err(Refusal::Discouraged);
    }
    // A peer chosen for eviction has given up its slot already.
    let inbound = || {
        peers
            .iter()
            .filter(|e| e.kind == ConnectionKind::Inbound && !e.evicted)
    };
    let same_group = inbound()
        .filter(|e| match &e.target {
            nightjar_tor::Target::Ip(sa) => Some(NetAddr::from(*sa).netgroup()) == group,
            _ => false,
        })
        .count();
    // The group's share first: a newcomer from a group that has its share
    // must not make room for itself by evicting one of its own.
    if same_group >= MAX_INBOUND_PER_NETGROUP {
        return Err(Refusal::NetgroupFull);
    }
    if inbound().count() >= config.max_inbound {
        return Err(Refusal::Full);
    }
    Ok(())
}
