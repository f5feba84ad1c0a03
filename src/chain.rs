//! The header chain: every block header we accepted, validated as Bitcoin
//! Core validates headers, with the most-work chain selected and side
//! branches kept.
//!
//! [`HeaderChain`] is sans-IO: the caller passes the current time in, and
//! persistence lives in [`store`] (the one file here that touches the disk).
//!
//! # What a header must satisfy
//!
//! Checked in this order, each failure its own [`HeaderError`] so the caller
//! can score the peer:
//!
//! 1. it connects to a header we have ([`HeaderError::Orphan`] otherwise,
//!    which is not proof of misbehaviour: the peer may just be ahead);
//! 2. its hash meets the target of its own nBits, and that target is
//!    positive, not overflowing and within the network's pow limit
//!    ([`HeaderError::BadProofOfWork`]);
//! 3. its nBits are exactly the required next work
//!    ([`HeaderError::BadBits`]): 2016-block retargeting with Core's
//!    off-by-one and 4× clamp; on testnet3/testnet4 the 20-minute
//!    min-difficulty exception; on testnet4 BIP94's "retarget from the
//!    period's first block"; no retargeting on regtest;
//! 4. it agrees with the checkpoints ([`HeaderError::CheckpointConflict`]),
//!    and does not fork below a checkpoint we already hold
//!    ([`HeaderError::ForkBeforeCheckpoint`]);
//! 5. its time is after the median of the previous 11
//!    ([`HeaderError::TimeTooOld`]), at most two hours ahead of `now`
//!    ([`HeaderError::TimeTooNew`]), and on testnet4 a period's first block
//!    is not more than 10 minutes before its parent
//!    ([`HeaderError::TimeWarp`], BIP94);
//! 6. its version is at least 2/3/4 from the BIP34/66/65 heights
//!    ([`HeaderError::BadVersion`]).
//!
//! A batch is accepted or rejected as a whole: on any error nothing of it
//! is kept (the valid prefix is cheap to fetch again from an honest peer,
//! and all-or-nothing keeps the store append-only).
//!
//! # Chain selection
//!
//! The best chain ends at the header with the most cumulative work; on a
//! tie the header seen first keeps the tip. Every accepted header is kept,
//! so a side branch that later gains more work becomes active (a reorg,
//! reported with its fork point).
//!
//! # Minimum chain work
//!
//! [`ChainParams::minimum_chain_work`] is Core's `nMinimumChainWork`: a
//! chain below it is not the network's, whatever it looks like. Headers are
//! still stored below it (there is no other way to climb above it), but a
//! caller should not leave initial sync, fetch blocks or serve the chain to
//! others until [`HeaderChain::has_minimum_chain_work`] is true. Core's
//! headers presync (commitments instead of storage until the peer proves
//! enough work) is not implemented here; the memory cost of a low-work spam
//! chain is bounded by the checkpoints and by peer scoring.
//!
//! # Memory
//!
//! One entry per header: the 80-byte header, height, parent index and
//! cumulative work (≈ 120 bytes), plus a hash-to-index map and the active
//! chain as a `Vec<u32>`: about 180 bytes per header, ≈ 170 MB for a
//! million. Hashes are not stored next to headers: the child's
//! `prev_blockhash` gives them on the active chain, and hashing 80 bytes is
//! cheap elsewhere.

pub mod params;
pub mod regtest_miner;
pub mod retarget;
pub mod store;

use std::collections::HashMap;

use bitcoin::block::Header;
use bitcoin::blockdata::constants::genesis_block;
use bitcoin::pow::{CompactTarget, Target, Work};
use bitcoin::{BlockHash, Network};

pub use params::{ChainParams, Checkpoint};
pub use retarget::{BitsAndTime, calculate_next_work_required};
pub use store::{ChainStore, CorruptFile, LoadReport, Loaded, Recovery, StoreError, Truncation};

/// How far ahead of our clock a header's time may be (Core's
/// `MAX_FUTURE_BLOCK_TIME`).
pub const MAX_FUTURE_BLOCK_TIME: u64 = 2 * 60 * 60;

/// How many previous headers the median time past is taken over.
pub const MEDIAN_TIME_SPAN: usize = 11;

/// BIP94: how far before its parent the first block of a period may be
/// timestamped.
pub const MAX_TIMEWARP: u32 = 600;

/// Why a header was rejected. All but [`HeaderError::Orphan`] prove the
/// sender relayed an invalid header (see [`HeaderError::is_invalid`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HeaderError {
    /// The header's parent is unknown.
    #[error("header {hash} does not connect: parent {prev} is unknown")]
    Orphan {
        /// The header.
        hash: BlockHash,
        /// Its unknown parent.
        prev: BlockHash,
    },
    /// The hash does not meet the header's own target, or that target is
    /// zero, negative, overflowing or above the pow limit.
    #[error("header {hash} has invalid proof of work")]
    BadProofOfWork {
        /// The header.
        hash: BlockHash,
    },
    /// The nBits are not the required difficulty.
    #[error("header {hash} has bits {got:?}, {expected:?} required")]
    BadBits {
        /// The header.
        hash: BlockHash,
        /// What the chain requires.
        expected: CompactTarget,
        /// What the header has.
        got: CompactTarget,
    },
    /// The time is not after the median time past of its parent.
    #[error("header {hash} time {time} is not after the median time past {median_time_past}")]
    TimeTooOld {
        /// The header.
        hash: BlockHash,
        /// Its time.
        time: u32,
        /// The median of the 11 headers before it.
        median_time_past: u32,
    },
    /// The time is more than two hours ahead of our clock.
    #[error("header {hash} time {time} is more than two hours after now ({now})")]
    TimeTooNew {
        /// The header.
        hash: BlockHash,
        /// Its time.
        time: u32,
        /// Our clock.
        now: u64,
    },
    /// BIP94: a period's first block is timestamped too far before its
    /// parent.
    #[error("header {hash} time {time} is more than 600 s before its parent's {parent_time}")]
    TimeWarp {
        /// The header.
        hash: BlockHash,
        /// Its time.
        time: u32,
        /// The parent's time.
        parent_time: u32,
    },
    /// A different block than the checkpoint at a checkpointed height.
    #[error("header {got} at height {height} conflicts with checkpoint {expected}")]
    CheckpointConflict {
        /// The height.
        height: u32,
        /// The checkpoint's hash.
        expected: BlockHash,
        /// The header's hash.
        got: BlockHash,
    },
    /// A header below a checkpoint we hold: it can only start a fork that
    /// the checkpoint rules out.
    #[error("header {hash} at height {height} forks below the checkpoint at {checkpoint_height}")]
    ForkBeforeCheckpoint {
        /// The header.
        hash: BlockHash,
        /// Its height.
        height: u32,
        /// The checkpoint it forks below.
        checkpoint_height: u32,
    },
    /// The version is too low for the height (BIP34/66/65).
    #[error("header {hash} at height {height} has obsolete version {version}")]
    BadVersion {
        /// The header.
        hash: BlockHash,
        /// Its height.
        height: u32,
        /// Its version.
        version: i32,
    },
    /// The chain cannot grow any more (2^32 headers, or work overflowing
    /// 256 bits); unreachable with real proof of work.
    #[error("the header chain is full")]
    Full,
}

impl HeaderError {
    /// Whether the header is provably invalid (a peer that sent it
    /// misbehaved), as opposed to merely unconnected.
    pub fn is_invalid(&self) -> bool {
        !matches!(self, HeaderError::Orphan { .. } | HeaderError::Full)
    }
}

/// A switch of the best chain away from its previous tip.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reorg {
    /// Height of the last block the old and new chains share.
    pub fork_height: u32,
    /// Its hash.
    pub fork_hash: BlockHash,
    /// Blocks of the old chain no longer on the best chain.
    pub disconnected: u32,
    /// Blocks of the new chain above the fork.
    pub connected: u32,
}

/// What [`HeaderChain::accept`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AcceptOutcome {
    /// Headers we did not have before (duplicates are skipped silently).
    pub new_headers: usize,
    /// Whether the best tip moved.
    pub tip_changed: bool,
    /// Set when the old tip left the best chain.
    pub reorg: Option<Reorg>,
    /// The best tip after the batch: height and hash.
    pub tip: (u32, BlockHash),
}

/// How a tip relates to the best chain, as `getchaintips` says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TipStatus {
    /// The best chain's tip.
    Active,
    /// A side branch whose headers are all valid.
    ValidHeaders,
}

impl TipStatus {
    /// The `getchaintips` spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            TipStatus::Active => "active",
            TipStatus::ValidHeaders => "valid-headers",
        }
    }
}

/// One leaf of the header tree, for `getchaintips`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainTip {
    /// Height of the tip.
    pub height: u32,
    /// Its hash.
    pub hash: BlockHash,
    /// Blocks between the tip and the best chain (0 for the active tip).
    pub branch_len: u32,
    /// Active or side branch.
    pub status: TipStatus,
}

/// Sentinel parent of the genesis entry.
const NO_PARENT: u32 = u32::MAX;

/// One stored header.
#[derive(Debug, Clone)]
struct Entry {
    header: Header,
    height: u32,
    /// Index of the parent entry, [`NO_PARENT`] for genesis.
    parent: u32,
    /// Cumulative work from genesis through this header.
    work: Work,
}

/// The tree of validated headers and the best chain through it.
#[derive(Debug, Clone)]
pub struct HeaderChain {
    params: ChainParams,
    /// Every header, in the order accepted: a parent always comes before
    /// its children, which lets the store write this order as-is.
    entries: Vec<Entry>,
    index: HashMap<BlockHash, u32>,
    /// The best chain: `active[h]` is the entry at height `h`.
    active: Vec<u32>,
    tip_hash: BlockHash,
}

impl HeaderChain {
    /// A chain holding only `network`'s genesis block, with Core's rules.
    pub fn new(network: Network) -> HeaderChain {
        HeaderChain::with_params(ChainParams::new(network))
    }

    /// A chain holding only the genesis block of `params.network`.
    pub fn with_params(params: ChainParams) -> HeaderChain {
        let header = genesis_block(&params.consensus).header;
        let hash = header.block_hash();
        let mut index = HashMap::new();
        index.insert(hash, 0);
        HeaderChain {
            entries: vec![Entry {
                header,
                height: 0,
                parent: NO_PARENT,
                work: header.work(),
            }],
            index,
            active: vec![0],
            tip_hash: hash,
            params,
        }
    }

    /// The rules this chain validates with.
    pub fn params(&self) -> &ChainParams {
        &self.params
    }

    /// The network.
    pub fn network(&self) -> Network {
        self.params.network
    }

    /// Validates `headers` (in order; each may build on a known header or
    /// an earlier one of the batch) and adds them. All or nothing: on error
    /// none of the batch is kept. `now_unix` is our clock, for the
    /// two-hours-ahead rule.
    pub fn accept(
        &mut self,
        headers: &[Header],
        now_unix: u64,
    ) -> Result<AcceptOutcome, HeaderError> {
        self.accept_inner(headers, Some(now_unix))
    }

    /// [`HeaderChain::accept`] with `now` optional: replaying our own file,
    /// the future-time rule (which is not a permanent property of a header)
    /// is skipped.
    pub(crate) fn accept_inner(
        &mut self,
        headers: &[Header],
        now: Option<u64>,
    ) -> Result<AcceptOutcome, HeaderError> {
        let first_new = self.entries.len();
        let mut added = Vec::new();
        for header in headers {
            match self.insert(header, now) {
                Ok(Some(hash)) => added.push(hash),
                Ok(None) => {}
                Err(e) => {
                    for hash in &added {
                        self.index.remove(hash);
                    }
                    self.entries.truncate(first_new);
                    return Err(e);
                }
            }
        }
        Ok(self.select_best(first_new, added.len()))
    }

    /// Validates one header and stores it; `Ok(None)` if already known.
    fn insert(
        &mut self,
        header: &Header,
        now: Option<u64>,
    ) -> Result<Option<BlockHash>, HeaderError> {
        let hash = header.block_hash();
        if self.index.contains_key(&hash) {
            return Ok(None);
        }
        let Some(&parent_id) = self.index.get(&header.prev_blockhash) else {
            return Err(HeaderError::Orphan {
                hash,
                prev: header.prev_blockhash,
            });
        };
        let parent = self.entry(parent_id);
        let parent_time = parent.header.time;
        let parent_work = parent.work;
        let height = parent.height.checked_add(1).ok_or(HeaderError::Full)?;

        self.check_own_pow(header, hash)?;
        let expected = self.next_work_required(parent_id, header.time);
        if header.bits != expected {
            return Err(HeaderError::BadBits {
                hash,
                expected,
                got: header.bits,
            });
        }
        self.check_checkpoints(hash, height)?;
        let median_time_past = self.mtp_of(parent_id);
        if header.time <= median_time_past {
            return Err(HeaderError::TimeTooOld {
                hash,
                time: header.time,
                median_time_past,
            });
        }
        if let Some(now) = now
            && u64::from(header.time) > now.saturating_add(MAX_FUTURE_BLOCK_TIME)
        {
            return Err(HeaderError::TimeTooNew {
                hash,
                time: header.time,
                now,
            });
        }
        if self.params.enforce_bip94
            && height.is_multiple_of(self.params.interval())
            && header.time < parent_time.saturating_sub(MAX_TIMEWARP)
        {
            return Err(HeaderError::TimeWarp {
                hash,
                time: header.time,
                parent_time,
            });
        }
        let version = header.version.to_consensus();
        let p = &self.params;
        if (version < 2 && height >= p.bip34_height)
            || (version < 3 && height >= p.bip66_height)
            || (version < 4 && height >= p.bip65_height)
        {
            return Err(HeaderError::BadVersion {
                hash,
                height,
                version,
            });
        }

        let work = checked_add_work(parent_work, header.work()).ok_or(HeaderError::Full)?;
        let id = u32::try_from(self.entries.len())
            .ok()
            .filter(|id| *id != NO_PARENT)
            .ok_or(HeaderError::Full)?;
        self.entries.push(Entry {
            header: *header,
            height,
            parent: parent_id,
            work,
        });
        self.index.insert(hash, id);
        Ok(Some(hash))
    }

    /// Context-free proof of work (Core's `CheckProofOfWork`).
    fn check_own_pow(&self, header: &Header, hash: BlockHash) -> Result<(), HeaderError> {
        let bad = HeaderError::BadProofOfWork { hash };
        if compact_overflows(header.bits) {
            return Err(bad);
        }
        let target = Target::from_compact(header.bits);
        if target == Target::ZERO || target > self.params.consensus.max_attainable_target {
            return Err(bad);
        }
        if target.is_met_by(hash) {
            Ok(())
        } else {
            Err(bad)
        }
    }

    /// Checkpoint at `height`, and no fork below a checkpoint we hold.
    fn check_checkpoints(&self, hash: BlockHash, height: u32) -> Result<(), HeaderError> {
        if let Some(cp) = self.params.checkpoint_at(height)
            && cp.hash != hash
        {
            return Err(HeaderError::CheckpointConflict {
                height,
                expected: cp.hash,
                got: hash,
            });
        }
        // Once the chain holds a checkpoint, every header below it that we
        // do not already have starts a branch that can never pass it. Only
        // heights below the last checkpoint can hit this, so the lookups
        // stop once sync is past it.
        let held = self
            .params
            .checkpoints
            .iter()
            .rev()
            .take_while(|cp| cp.height > height)
            .find(|cp| self.index.contains_key(&cp.hash));
        match held {
            Some(cp) => Err(HeaderError::ForkBeforeCheckpoint {
                hash,
                height,
                checkpoint_height: cp.height,
            }),
            None => Ok(()),
        }
    }

    /// nBits required of a child of `parent_id` timestamped `time` (Core's
    /// `GetNextWorkRequired`).
    fn next_work_required(&self, parent_id: u32, time: u32) -> CompactTarget {
        let parent = self.entry(parent_id);
        let interval = self.params.interval();
        let consensus = &self.params.consensus;
        if !(parent.height + 1).is_multiple_of(interval) {
            if consensus.allow_min_difficulty_blocks {
                // Testnet: a block more than twice the spacing after its
                // parent may use the minimum difficulty...
                let spacing = i64::try_from(consensus.pow_target_spacing).unwrap_or(i64::MAX);
                if i64::from(time) > i64::from(parent.header.time).saturating_add(2 * spacing) {
                    return self.params.pow_limit_bits;
                }
                // ...otherwise it takes the difficulty of the last block
                // that did not use the exception.
                let mut e = parent;
                while e.height != 0
                    && !e.height.is_multiple_of(interval)
                    && e.header.bits == self.params.pow_limit_bits
                {
                    e = self.entry(e.parent);
                }
                return e.header.bits;
            }
            return parent.header.bits;
        }
        if consensus.no_pow_retargeting {
            return parent.header.bits;
        }
        let first_id = self.ancestor(parent_id, parent.height + 1 - interval);
        let first = self.entry(first_id);
        calculate_next_work_required(
            &self.params,
            BitsAndTime {
                bits: first.header.bits,
                time: first.header.time,
            },
            BitsAndTime {
                bits: parent.header.bits,
                time: parent.header.time,
            },
        )
    }

    /// The best chain after new entries from `first_new` on were added.
    fn select_best(&mut self, first_new: usize, new_headers: usize) -> AcceptOutcome {
        let old_tip = self.tip_id();
        let mut best = old_tip;
        let mut best_work = self.entry(old_tip).work;
        // Strictly more work: on a tie, whatever was seen first stays.
        for (i, e) in self.entries.iter().enumerate().skip(first_new) {
            if e.work > best_work {
                best_work = e.work;
                best = u32::try_from(i).unwrap_or(old_tip);
            }
        }
        if best == old_tip {
            return AcceptOutcome {
                new_headers,
                tip_changed: false,
                reorg: None,
                tip: self.tip(),
            };
        }
        let old_height = self.entry(old_tip).height;
        let mut path = Vec::new();
        let mut id = best;
        while !self.is_active(id) {
            path.push(id);
            id = self.entry(id).parent;
        }
        let fork_height = self.entry(id).height;
        self.active.truncate(fork_height as usize + 1);
        self.active.extend(path.iter().rev());
        self.tip_hash = self.entry(best).header.block_hash();
        let reorg = (fork_height < old_height).then(|| Reorg {
            fork_height,
            fork_hash: self.hash_at(fork_height).unwrap_or(self.tip_hash),
            disconnected: old_height - fork_height,
            connected: u32::try_from(path.len()).unwrap_or(u32::MAX),
        });
        AcceptOutcome {
            new_headers,
            tip_changed: true,
            reorg,
            tip: self.tip(),
        }
    }

    fn entry(&self, id: u32) -> &Entry {
        // Ids come from `index`, `active` and `parent` links, all of which
        // point into `entries`; genesis stands in for an impossible miss
        // rather than a panic.
        self.entries.get(id as usize).unwrap_or(&self.entries[0])
    }

    fn tip_id(&self) -> u32 {
        self.active.last().copied().unwrap_or(0)
    }

    fn is_active(&self, id: u32) -> bool {
        self.active.get(self.entry(id).height as usize) == Some(&id)
    }

    /// The ancestor of `id` at `height` (≤ its height).
    fn ancestor(&self, mut id: u32, height: u32) -> u32 {
        loop {
            let e = self.entry(id);
            if e.height <= height || e.parent == NO_PARENT {
                return id;
            }
            // On the best chain the ancestor is a lookup away.
            if self.is_active(id) {
                return self.active.get(height as usize).copied().unwrap_or(id);
            }
            id = e.parent;
        }
    }

    /// Median time of the 11 headers ending at `id`.
    fn mtp_of(&self, mut id: u32) -> u32 {
        let mut times = [0u32; MEDIAN_TIME_SPAN];
        let mut n = 0;
        loop {
            let e = self.entry(id);
            times[n] = e.header.time;
            n += 1;
            if n == MEDIAN_TIME_SPAN || e.parent == NO_PARENT {
                break;
            }
            id = e.parent;
        }
        let times = &mut times[..n];
        times.sort_unstable();
        times[n / 2]
    }

    /// Height and hash of the best tip.
    pub fn tip(&self) -> (u32, BlockHash) {
        (self.height(), self.tip_hash)
    }

    /// Height of the best tip.
    pub fn height(&self) -> u32 {
        self.entry(self.tip_id()).height
    }

    /// Cumulative work of the best chain.
    pub fn tip_work(&self) -> Work {
        self.entry(self.tip_id()).work
    }

    /// The best tip's header.
    pub fn tip_header(&self) -> Header {
        self.entry(self.tip_id()).header
    }

    /// Whether the best chain has at least the network's minimum chain
    /// work (see the module docs).
    pub fn has_minimum_chain_work(&self) -> bool {
        self.tip_work() >= self.params.minimum_chain_work
    }

    /// The header at `height` on the best chain.
    pub fn header_at(&self, height: u32) -> Option<Header> {
        self.active
            .get(height as usize)
            .map(|id| self.entry(*id).header)
    }

    /// The hash of the block at `height` on the best chain.
    pub fn hash_at(&self, height: u32) -> Option<BlockHash> {
        let tip = self.height();
        if height == tip {
            Some(self.tip_hash)
        } else if height < tip {
            // The child's back link is the hash, no hashing needed.
            self.header_at(height + 1).map(|h| h.prev_blockhash)
        } else {
            None
        }
    }

    /// A known header: its height, the header and the cumulative work
    /// through it.
    pub fn get(&self, hash: &BlockHash) -> Option<(u32, Header, Work)> {
        self.index.get(hash).map(|id| {
            let e = self.entry(*id);
            (e.height, e.header, e.work)
        })
    }

    /// Whether `hash` is a known header (on any branch).
    pub fn contains(&self, hash: &BlockHash) -> bool {
        self.index.contains_key(hash)
    }

    /// Whether `hash` is on the best chain.
    pub fn is_in_best_chain(&self, hash: &BlockHash) -> bool {
        self.index.get(hash).is_some_and(|id| self.is_active(*id))
    }

    /// Number of headers held, on every branch, genesis included.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Always false: the genesis header is always there.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Headers in the order they were accepted, from the `from`-th (0 is
    /// genesis). Every header's parent comes before it.
    pub fn headers_in_order(&self, from: usize) -> impl Iterator<Item = &Header> {
        self.entries.iter().skip(from).map(|e| &e.header)
    }

    /// A block locator for the best chain (Core's `LocatorEntries`): the
    /// tip, then ten more one apart, then exponentially sparser, always
    /// ending at genesis.
    pub fn locator(&self) -> Vec<BlockHash> {
        let mut out = Vec::with_capacity(32);
        let mut height = self.height();
        let mut step = 1u32;
        loop {
            if let Some(hash) = self.hash_at(height) {
                out.push(hash);
            }
            if height == 0 {
                break;
            }
            height = height.saturating_sub(step);
            if out.len() > 10 {
                step = step.saturating_mul(2);
            }
        }
        out
    }

    /// The median time past of the 11 headers ending at `hash` (what a
    /// child of it must exceed).
    pub fn median_time_past(&self, hash: &BlockHash) -> Option<u32> {
        self.index.get(hash).map(|id| self.mtp_of(*id))
    }

    /// Every leaf of the header tree (`getchaintips`), highest first; the
    /// active tip first among equals.
    pub fn tips(&self) -> Vec<ChainTip> {
        let mut has_child = vec![false; self.entries.len()];
        for e in &self.entries {
            if let Some(slot) = has_child.get_mut(e.parent as usize) {
                *slot = true;
            }
        }
        let active_tip = self.tip_id();
        let mut tips: Vec<ChainTip> = has_child
            .iter()
            .enumerate()
            .filter(|(_, has)| !**has)
            .filter_map(|(i, _)| u32::try_from(i).ok())
            .map(|id| {
                let e = self.entry(id);
                let fork = self.entry(self.fork_point(id)).height;
                ChainTip {
                    height: e.height,
                    hash: if id == active_tip {
                        self.tip_hash
                    } else {
                        e.header.block_hash()
                    },
                    branch_len: e.height - fork,
                    status: if id == active_tip {
                        TipStatus::Active
                    } else {
                        TipStatus::ValidHeaders
                    },
                }
            })
            .collect();
        tips.sort_by(|a, b| {
            b.height
                .cmp(&a.height)
                .then((b.status == TipStatus::Active).cmp(&(a.status == TipStatus::Active)))
        });
        tips
    }

    /// The last best-chain ancestor of `id` (itself if on the best chain).
    fn fork_point(&self, mut id: u32) -> u32 {
        while !self.is_active(id) {
            id = self.entry(id).parent;
        }
        id
    }
}

/// Core's `SetCompact` overflow flag: a mantissa shifted past 256 bits.
/// The crate's `Target::from_compact` wraps instead, so this is checked
/// first.
fn compact_overflows(bits: CompactTarget) -> bool {
    let bits = bits.to_consensus();
    let size = bits >> 24;
    let word = bits & 0x007f_ffff;
    word != 0 && (size > 34 || (word > 0xff && size > 33) || (word > 0xffff && size > 32))
}

/// `a + b`, or `None` past 2^256 (the crate's `Add` only debug-asserts).
fn checked_add_work(a: Work, b: Work) -> Option<Work> {
    let (a, b) = (a.to_be_bytes(), b.to_be_bytes());
    let mut out = [0u8; 32];
    let mut carry = 0u16;
    for i in (0..32).rev() {
        let sum = u16::from(a[i]) + u16::from(b[i]) + carry;
        out[i] = (sum & 0xff) as u8;
        carry = sum >> 8;
    }
    (carry == 0).then(|| Work::from_be_bytes(out))
}
