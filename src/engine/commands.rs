//! What the user asks of the engine (through RPC): manage added peers,
//! disconnect one. Each [`Command`] is an input like any other, handled at
//! a time the driver gives, and its outputs queue up for the driver; the
//! one difference is that the caller (an RPC call) waits for its answer, so
//! [`Engine::command`] returns it instead of queueing it as an output that
//! the driver would have to match back to the call.
//!
//! Read-only questions (peers, the chain, addresses) are not commands: they
//! are answered from the engine's state through its accessors.

use nightjar_tor::Target;

use super::Engine;
use super::conn_manager::CommandError;
use super::io::{Now, Output};
use crate::addrman::AddrRecord;
use crate::netaddr::NetworkSet;
use crate::peer::ConnId;

/// A user command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `addnode <peer> add`: keep this peer connected.
    AddNode(Target),
    /// `addnode <peer> remove`.
    RemoveNode(Target),
    /// `addnode <peer> onetry`: one attempt, now.
    OneTry(Target),
    /// `disconnectnode`: close this connection.
    Disconnect {
        /// Which.
        conn: ConnId,
        /// Why, for logs.
        reason: String,
    },
    /// `setban <subnet> add`: ban until `until` (unix seconds).
    Ban {
        /// What.
        subnet: ipnet::IpNet,
        /// Until when.
        until: u64,
    },
    /// `setban <subnet> remove`.
    Unban(ipnet::IpNet),
    /// `clearbanned`.
    ClearBans,
    /// `sendrawtransaction`: broadcast this (checked) transaction privately.
    PrivateBroadcast(bitcoin::Transaction),
    /// `abortprivatebroadcast`: stop broadcasting it.
    AbortPrivateBroadcast(bitcoin::Txid),
    /// `scanblocks start`: look for scripts in the filters of a range.
    ScanBlocks(super::block_fetch::ScanRequest),
    /// `scanblocks abort`.
    AbortScan,
    /// `getblockfilter`: the filter of this block.
    GetBlockFilter(bitcoin::BlockHash),
    /// `getblock`: this block, fetched from a peer and checked.
    GetBlock(bitcoin::BlockHash),
    /// `addpeeraddress`: put an address in the book without connecting.
    AddPeerAddress {
        /// The address.
        addr: crate::netaddr::NetAddr,
        /// Straight into the tried table (as if we had connected).
        tried: bool,
    },
}

/// What a command did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandReply {
    /// Done (nothing to report).
    Done,
    /// A connection was opened (`onetry`).
    Dialling(ConnId),
    /// The transaction is queued for private broadcast.
    Broadcasting(bitcoin::Txid),
    /// Whether the address book took the address (`addpeeraddress`).
    AddressAdded(bool),
    /// The answer comes later, as [`Output::Fetched`] with this id.
    Pending(super::block_fetch::RequestId),
    /// Whether a scan was running (`scanblocks abort`).
    Aborted(bool),
}

impl Engine {
    /// Handle `command` at `now` and return its answer.
    pub fn command(&mut self, now: Now, command: Command) -> Result<CommandReply, CommandError> {
        self.last_now = Some(now.mono);
        match command {
            Command::AddNode(target) => {
                let cx = ctx!(self);
                self.conns
                    .add_node(&cx, target)
                    .map(|()| CommandReply::Done)
            }
            Command::RemoveNode(target) => {
                self.conns.remove_node(&target).map(|()| CommandReply::Done)
            }
            Command::OneTry(target) => {
                // Only while Tor is ready: nothing is dialled before.
                if !self.tor_ready || self.shutting_down {
                    return Err(CommandError::Refused("Tor is not ready yet"));
                }
                let mut cx = ctx!(self);
                self.conns
                    .one_try(&mut cx, now, target)
                    .map(CommandReply::Dialling)
            }
            Command::Disconnect { conn, reason } => {
                if self.peers.get(conn).is_none() {
                    return Err(CommandError::NotConnected);
                }
                self.outputs.push_back(Output::Disconnect { conn, reason });
                Ok(CommandReply::Done)
            }
            Command::Ban { subnet, until } => {
                let mut cx = ctx!(self);
                self.conns
                    .ban(&mut cx, now, subnet, until)
                    .map(|()| CommandReply::Done)
                    .map_err(CommandError::from)
            }
            Command::Unban(subnet) => {
                let mut cx = ctx!(self);
                self.conns
                    .unban(&mut cx, subnet)
                    .map(|()| CommandReply::Done)
                    .map_err(CommandError::from)
            }
            Command::ClearBans => {
                let mut cx = ctx!(self);
                self.conns.clear_bans(&mut cx);
                Ok(CommandReply::Done)
            }
            Command::PrivateBroadcast(tx) => {
                // Every private-broadcast connection goes through Tor; a
                // node told not to use Tor has nothing private to offer.
                if self.config.reach != super::Reach::Tor {
                    return Err(CommandError::NeedsTor);
                }
                self.broadcast
                    .submit(&mut broadcast_ctx!(self), now, tx)
                    .map(CommandReply::Broadcasting)
                    .map_err(|_| CommandError::QueueFull)
            }
            Command::AbortPrivateBroadcast(txid) => {
                if self.broadcast.abort(&mut broadcast_ctx!(self), txid) {
                    Ok(CommandReply::Done)
                } else {
                    Err(CommandError::NotQueued)
                }
            }
            Command::ScanBlocks(request) => self
                .fetch
                .start_scan(&mut fetch_ctx!(self), now, request)
                .map(CommandReply::Pending)
                .map_err(CommandError::from),
            Command::AbortScan => Ok(CommandReply::Aborted(
                self.fetch.abort_scan(&mut fetch_ctx!(self)),
            )),
            Command::GetBlockFilter(hash) => self
                .fetch
                .fetch_filter(&mut fetch_ctx!(self), now, hash)
                .map(CommandReply::Pending)
                .map_err(CommandError::from),
            Command::GetBlock(hash) => self
                .fetch
                .fetch_block(&mut fetch_ctx!(self), now, hash)
                .map(CommandReply::Pending)
                .map_err(CommandError::from),
            Command::AddPeerAddress { addr, tried } => Ok(CommandReply::AddressAdded(
                self.add_peer_address(now, addr, tried),
            )),
        }
    }

    /// `addpeeraddress`, as Core's test-only RPC does it: a full node's
    /// services, seen now, the address as its own source; into the tried
    /// table if asked. Whether the book holds it afterwards.
    fn add_peer_address(&mut self, now: Now, addr: crate::netaddr::NetAddr, tried: bool) -> bool {
        let record = AddrRecord {
            addr,
            services: super::config::regular_services(),
            last_seen: now.unix,
        };
        let source = crate::addrman::AddrSource::Peer(addr);
        let added = self
            .addrman
            .add(&[record], &source, now.unix, &mut self.rng)
            > 0;
        if tried && self.addrman.contains(&addr) {
            self.addrman.good(&addr, now.unix);
        }
        added || (tried && self.addrman.contains(&addr))
    }

    /// Our onion service's address, once it runs (`localaddresses`).
    pub fn local_onion(&self) -> Option<crate::netaddr::NetAddr> {
        self.conns.local_onion()
    }

    /// The user's bans (`listbanned`).
    pub fn bans(&self) -> &super::banlist::BanList {
        self.conns.bans()
    }

    /// Start from these bans (loaded from disk).
    pub fn with_bans(mut self, bans: super::banlist::BanList) -> Self {
        self.conns.set_bans(bans);
        self
    }

    /// The added peers (`addnode`, `connect`).
    pub fn added_nodes(&self) -> impl Iterator<Item = &super::manual::ManualPeer> {
        self.conns.manual_peers().iter()
    }

    /// `getnodeaddresses`: up to `count` known addresses (all for 0) on
    /// `networks`. A question, not a command, though sampling draws on the
    /// engine's RNG.
    pub fn node_addresses(
        &mut self,
        count: usize,
        networks: NetworkSet,
        unix: u64,
    ) -> Vec<AddrRecord> {
        self.addrman.sample(count, networks, unix, &mut self.rng)
    }
}
