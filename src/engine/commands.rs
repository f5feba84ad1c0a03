//! What the user may ask of the engine directly (through RPC): manage added
//! peers, disconnect one, list addresses. Each call is an input like any
//! other; its outputs queue up for the driver.

use nightjar_tor::Target;

use super::Engine;
use super::conn_manager::CommandError;
use super::io::{Now, Output};
use crate::addrman::AddrRecord;
use crate::netaddr::NetworkSet;
use crate::peer::ConnId;

impl Engine {
    /// `addnode <peer> add`.
    pub fn add_node(&mut self, target: Target) -> Result<(), CommandError> {
        let cx = ctx!(self);
        self.conns.add_node(&cx, target)
    }

    /// `addnode <peer> remove`.
    pub fn remove_node(&mut self, target: &Target) -> Result<(), CommandError> {
        self.conns.remove_node(target)
    }

    /// `addnode <peer> onetry` (only while Tor is ready: nothing is dialled
    /// before).
    pub fn one_try(&mut self, now: Now, target: Target) -> Result<ConnId, CommandError> {
        if !self.tor_ready || self.shutting_down {
            return Err(CommandError::Refused("Tor is not ready yet"));
        }
        let mut cx = ctx!(self);
        self.conns.one_try(&mut cx, now, target)
    }

    /// The added peers (`addnode`, `connect`).
    pub fn added_nodes(&self) -> impl Iterator<Item = &super::manual::ManualPeer> {
        self.conns.manual_peers().iter()
    }

    /// `disconnectnode`: close `conn`; `false` if there is no such
    /// connection.
    pub fn disconnect(&mut self, conn: ConnId, reason: &str) -> bool {
        if self.peers.get(conn).is_none() {
            return false;
        }
        self.outputs.push_back(Output::Disconnect {
            conn,
            reason: reason.to_owned(),
        });
        true
    }

    /// `getnodeaddresses`: up to `count` known addresses (all for 0) on
    /// `networks`.
    pub fn node_addresses(
        &mut self,
        count: usize,
        networks: NetworkSet,
        unix: u64,
    ) -> Vec<AddrRecord> {
        self.addrman.sample(count, networks, unix, &mut self.rng)
    }
}
