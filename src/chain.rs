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
//! others until [`HeaderChain::has_minimum_chain_work`] is true. Headers
//! below it are provisional: [`HeaderChain::truncate`] takes them back,
//! and header sync (`crate::engine::header_sync`) uses it to bound what a
//! low-work chain can cost, instead of Core's headers presync.
//!
//! # Memory
//!
//! Per header, only what validation needs stays in memory: the first 8
//! bytes of its hash (the index key), its time and its nBits, in columns
//! (16 bytes; 20 on testnet and regtest, which also keep the
//! min-difficulty walk-back), its slot in the hash index (a 4-byte id in a
//! table at most 7/8 full, 5 to 10 bytes with the control byte) and its id
//! in the best chain's list (4 bytes). Height, parent and cumulative work
//! follow from that list on the best chain; cumulative work is sampled
//! every 64 heights (`WORK_SAMPLE_STEP`). Entries off the best chain keep
//! height, parent and work in a side table (64 to 130 bytes each, with
//! the table's spare room). The full
//! 80-byte headers stay in memory only until the store has written them,
//! then are read back from the file on demand ([`HeaderSource`]): about
//! 30 bytes per header in all, 30 MB for a million, however long the
//! chain grows.
//!
//! Side entries are bounded by what header sync lets in: a branch must be
//! within reach of the best chain's work to be fetched at all, and at most
//! one low-work chain is held provisionally (see
//! `crate::engine::header_sync`).

pub mod block_check;
mod bodies;
pub mod filter_headers;
pub mod filter_store;
mod hash_index;
pub mod merkle;
pub mod params;
pub mod regtest_miner;
pub mod retarget;
pub mod store;
mod truncation;
mod work;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use bodies::Bodies;
use hash_index::{HashIndex, key_of};
use truncation::TruncationLog;
use work::ChainWork;

use bitcoin::block::Header;
use bitcoin::blockdata::constants::genesis_block;
use bitcoin::pow::{CompactTarget, Target, Work};
use bitcoin::{BlockHash, Network};

pub use bodies::HeaderSource;
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
    /// misbehaved), as opposed to merely unconnected, or ahead of our own
    /// clock: a header more than two hours in the future may be honest
    /// if *our* clock is slow, and becomes acceptable as time passes, so
    /// Core does not punish it (`time-too-new` is not a misbehaviour).
    pub fn is_invalid(&self) -> bool {
        !matches!(
            self,
            HeaderError::Orphan { .. } | HeaderError::Full | HeaderError::TimeTooNew { .. }
        )
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

/// What [`HeaderChain::truncate`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TruncateOutcome {
    /// Entries dropped (0 if the chain was no longer than asked).
    pub removed: usize,
    /// Whether the best tip moved (it can only move back, to the best
    /// remaining entry).
    pub tip_changed: bool,
    /// The best tip afterwards: height and hash.
    pub tip: (u32, BlockHash),
}

/// Sentinel parent of the genesis entry.
const NO_PARENT: u32 = u32::MAX;

/// Cumulative work is sampled on the best chain every this many heights;
/// the work at any other height is the sample below it plus at most this
/// many blocks' own work.
const WORK_SAMPLE_STEP: u32 = 64;

/// The target and per-block work of one nBits value that passed the
/// context-free checks: every header of a difficulty period shares them,
/// and deriving work takes a 256-bit division.
#[derive(Debug, Clone, Copy)]
struct BitsInfo {
    bits: CompactTarget,
    target: Target,
    work: ChainWork,
}

/// What an entry off the best chain needs beyond the columns: on the best
/// chain, height, parent and work follow from `active`, so they are kept
/// only here.
#[derive(Debug, Clone, Copy)]
struct SideEntry {
    height: u32,
    parent: u32,
    work: ChainWork,
}

/// How much full validation a header gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Checks {
    /// Everything, as for a header from a peer; `now` for the
    /// two-hours-ahead rule when there is a clock to check against.
    Full { now: Option<u64> },
    /// A record of our own file (see [`store`]): it connects, its proof of
    /// work meets its own nBits within the pow limit, and the checkpoints
    /// hold. Difficulty transitions, time and version rules were checked
    /// when it arrived.
    Stored,
}

/// The tree of validated headers and the best chain through it.
///
/// Entries are numbered in the order accepted (0 is genesis): a parent
/// always comes before its children, which lets the store write this order
/// as-is, and makes the ids along any branch increase with height.
#[derive(Debug, Clone)]
pub struct HeaderChain {
    params: ChainParams,
    /// Per entry: the first 8 bytes of its block hash (the index's key).
    keys: Vec<u64>,
    /// Per entry: its timestamp (median time past, retargeting).
    times: Vec<u32>,
    /// Per entry: its nBits.
    bits: Vec<CompactTarget>,
    /// Per entry, on networks with min-difficulty blocks only (empty
    /// elsewhere): what Core's walk-back in `GetNextWorkRequired` returns
    /// from it, its own bits if it starts a period, is genesis or is not
    /// at the pow limit, else its parent's value. A lookup instead of up
    /// to 2015 steps per header (regtest, where every block is at the
    /// limit, always walks back to the period start).
    real_bits: Vec<CompactTarget>,
    index: HashIndex,
    /// The best chain: `active[h]` is the entry at height `h`. Ids
    /// increase with height, so an entry's height is a binary search away.
    active: Vec<u32>,
    /// Cumulative work of `active[k × WORK_SAMPLE_STEP]`.
    active_work: Vec<ChainWork>,
    /// Entries off the best chain.
    side: HashMap<u32, SideEntry>,
    tip_hash: BlockHash,
    tip_header: Header,
    tip_work: ChainWork,
    bodies: Bodies,
    /// The last nBits seen valid, with their target and work.
    bits_cache: Option<BitsInfo>,
    truncations: TruncationLog,
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
        let work = ChainWork::from_work(header.work());
        let keys = vec![key_of(&hash)];
        let mut index = HashIndex::default();
        index.insert(0, &keys);
        let real_bits = if params.consensus.allow_min_difficulty_blocks {
            vec![header.bits]
        } else {
            Vec::new()
        };
        HeaderChain {
            keys,
            times: vec![header.time],
            bits: vec![header.bits],
            real_bits,
            index,
            active: vec![0],
            active_work: vec![work],
            side: HashMap::new(),
            tip_hash: hash,
            tip_header: header,
            tip_work: work,
            bodies: Bodies::new(header),
            bits_cache: None,
            truncations: TruncationLog::default(),
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

    /// [`HeaderChain::accept`] with `now` optional (no future-time rule
    /// without it).
    pub(crate) fn accept_inner(
        &mut self,
        headers: &[Header],
        now: Option<u64>,
    ) -> Result<AcceptOutcome, HeaderError> {
        self.accept_checked(
            headers.iter().map(|h| (h, h.block_hash())),
            Checks::Full { now },
        )
    }

    /// Adds records of our own header file, whose hashes the store computed
    /// for their checksums, with the checks of [`Checks::Stored`].
    pub(crate) fn accept_stored<'a>(
        &mut self,
        headers: impl ExactSizeIterator<Item = (&'a Header, BlockHash)>,
    ) -> Result<AcceptOutcome, HeaderError> {
        self.accept_checked(headers, Checks::Stored)
    }

    fn accept_checked<'a>(
        &mut self,
        headers: impl ExactSizeIterator<Item = (&'a Header, BlockHash)>,
        checks: Checks,
    ) -> Result<AcceptOutcome, HeaderError> {
        let first_new = self.len();
        let old_tip = self.tip_id();
        let old_height = self.height();
        let old_tip_state = (self.tip_hash, self.tip_header, self.tip_work);
        self.reserve(headers.len());
        let mut added = 0;
        for (header, hash) in headers {
            match self.insert(header, hash, checks) {
                Ok(true) => added += 1,
                Ok(false) => {}
                Err(e) => {
                    self.drop_entries_from(first_new);
                    self.active.truncate(old_height as usize + 1);
                    self.active_work
                        .truncate((old_height / WORK_SAMPLE_STEP) as usize + 1);
                    (self.tip_hash, self.tip_header, self.tip_work) = old_tip_state;
                    return Err(e);
                }
            }
        }
        Ok(self.select_best(first_new, added, old_tip, old_height, old_tip_state.2))
    }

    /// Makes room for exactly `more` entries: a load knows how many
    /// records its file holds, and a million entries' doubling slack
    /// would be megabytes.
    pub(crate) fn reserve_exact(&mut self, more: usize) {
        self.keys.reserve_exact(more);
        self.times.reserve_exact(more);
        self.bits.reserve_exact(more);
        if self.params.consensus.allow_min_difficulty_blocks {
            self.real_bits.reserve_exact(more);
        }
        self.active.reserve_exact(more);
        self.active_work
            .reserve_exact(more / WORK_SAMPLE_STEP as usize + 1);
        self.index.reserve(more, &self.keys);
    }

    fn reserve(&mut self, more: usize) {
        self.keys.reserve(more);
        self.times.reserve(more);
        self.bits.reserve(more);
        if self.params.consensus.allow_min_difficulty_blocks {
            self.real_bits.reserve(more);
        }
        self.index.reserve(more, &self.keys);
    }

    /// Forgets entries `from..` in the columns, index, side table and
    /// bodies (not `active`: the callers know what it should become).
    fn drop_entries_from(&mut self, from: usize) {
        let removed = self.len().saturating_sub(from);
        // One index probe per removed entry beats visiting every slot
        // until more than about a 32nd of the chain goes.
        if removed.saturating_mul(32) < from {
            for id in from..self.len() {
                self.index.remove(id as u32, self.keys[id]);
            }
        } else {
            self.index.retain(|id| (id as usize) < from);
        }
        self.keys.truncate(from);
        self.times.truncate(from);
        self.bits.truncate(from);
        self.real_bits.truncate(from);
        if !self.side.is_empty() {
            self.side.retain(|id, _| (*id as usize) < from);
        }
        self.bodies.truncate(from);
    }

    /// Validates one header and stores it; `Ok(false)` if already known.
    ///
    /// A header extending the best tip goes onto `active` at once (it has
    /// more work than the tip, so it would be selected anyway): the rest of
    /// the batch then finds its ancestors, median time past and retarget
    /// block by height instead of by chasing parents.
    /// [`HeaderChain::select_best`] settles the batch's real outcome.
    fn insert(
        &mut self,
        header: &Header,
        hash: BlockHash,
        checks: Checks,
    ) -> Result<bool, HeaderError> {
        // Nearly every header of a sync extends the tip, whose hash is at
        // hand: no index probe for its parent, and none for the duplicate
        // check either, because no entry is a child of the tip (a child has
        // more work, so it would be the tip).
        let parent = if header.prev_blockhash == self.tip_hash {
            Some(self.tip_id())
        } else {
            if self.find(&hash).is_some() {
                return Ok(false);
            }
            self.find(&header.prev_blockhash)
        };
        let Some(parent_id) = parent else {
            return Err(HeaderError::Orphan {
                hash,
                prev: header.prev_blockhash,
            });
        };
        let parent_height = self.height_of(parent_id);
        let height = parent_height.checked_add(1).ok_or(HeaderError::Full)?;

        let own = self.check_own_pow(header, hash)?;
        if let Checks::Full { now } = checks {
            self.check_context(header, hash, parent_id, height, now)?;
        }
        self.check_checkpoints(hash, height)?;

        let parent_work = self.work_of(parent_id);
        let work = parent_work.checked_add(own.work).ok_or(HeaderError::Full)?;
        let id = u32::try_from(self.len())
            .ok()
            .filter(|id| *id != NO_PARENT)
            .ok_or(HeaderError::Full)?;
        let interval = self.params.interval();
        if self.params.consensus.allow_min_difficulty_blocks {
            let real =
                if height.is_multiple_of(interval) || header.bits != self.params.pow_limit_bits {
                    header.bits
                } else {
                    self.real_bits[parent_id as usize]
                };
            self.real_bits.push(real);
        }
        self.keys.push(key_of(&hash));
        self.times.push(header.time);
        self.bits.push(header.bits);
        self.index.insert(id, &self.keys);
        // A record replayed from the file stays there.
        if checks != Checks::Stored || !self.bodies.push_on_disk() {
            self.bodies.push(*header);
        }
        if parent_id == self.tip_id() {
            self.active.push(id);
            if height.is_multiple_of(WORK_SAMPLE_STEP) {
                self.active_work.push(work);
            }
            self.tip_hash = hash;
            self.tip_header = *header;
            self.tip_work = work;
        } else {
            self.side.insert(
                id,
                SideEntry {
                    height,
                    parent: parent_id,
                    work,
                },
            );
        }
        Ok(true)
    }

    /// The contextual rules: required nBits, median time past, the future
    /// limit, BIP94's time warp rule and the version heights.
    fn check_context(
        &self,
        header: &Header,
        hash: BlockHash,
        parent_id: u32,
        height: u32,
        now: Option<u64>,
    ) -> Result<(), HeaderError> {
        let parent_time = self.times[parent_id as usize];
        let expected = self.next_work_required(parent_id, height - 1, header.time);
        if header.bits != expected {
            return Err(HeaderError::BadBits {
                hash,
                expected,
                got: header.bits,
            });
        }
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
        let p = &self.params;
        if p.enforce_bip94
            && height.is_multiple_of(p.interval())
            && header.time < parent_time.saturating_sub(MAX_TIMEWARP)
        {
            return Err(HeaderError::TimeWarp {
                hash,
                time: header.time,
                parent_time,
            });
        }
        let version = header.version.to_consensus();
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
        Ok(())
    }

    /// Context-free proof of work (Core's `CheckProofOfWork`); the bits'
    /// target and work on success.
    fn check_own_pow(&mut self, header: &Header, hash: BlockHash) -> Result<BitsInfo, HeaderError> {
        let info = match self.bits_cache {
            Some(info) if info.bits == header.bits => info,
            _ => {
                let info = self
                    .bits_info(header.bits)
                    .ok_or(HeaderError::BadProofOfWork { hash })?;
                self.bits_cache = Some(info);
                info
            }
        };
        if info.target.is_met_by(hash) {
            Ok(info)
        } else {
            Err(HeaderError::BadProofOfWork { hash })
        }
    }

    /// The target and work of `bits`, if that target is positive, not
    /// overflowing and within the pow limit.
    fn bits_info(&self, bits: CompactTarget) -> Option<BitsInfo> {
        if compact_overflows(bits) {
            return None;
        }
        let target = Target::from_compact(bits);
        if target == Target::ZERO || target > self.params.consensus.max_attainable_target {
            return None;
        }
        Some(BitsInfo {
            bits,
            target,
            work: ChainWork::from_work(target.to_work()),
        })
    }

    /// The work of one block with `bits`, which an accepted header carried.
    fn own_work(&self, bits: CompactTarget) -> ChainWork {
        match self.bits_cache {
            Some(info) if info.bits == bits => info.work,
            _ => ChainWork::from_work(Target::from_compact(bits).to_work()),
        }
    }

    /// Checkpoint at `height`, and no fork below a checkpoint we hold.
    fn check_checkpoints(&self, hash: BlockHash, height: u32) -> Result<(), HeaderError> {
        let checkpoints = &self.params.checkpoints;
        if checkpoints.is_empty() {
            return Ok(());
        }
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
        // do not already have starts a branch that can never pass it. The
        // held checkpoints are a prefix of the list (a header at one
        // checkpoint's height descends from every lower checkpoint, each
        // checked when it arrived), so the first checkpoint above `height`
        // decides: one lookup, none once sync is past the last one.
        let above = checkpoints.partition_point(|cp| cp.height <= height);
        let Some(next) = checkpoints.get(above) else {
            return Ok(());
        };
        if !self.contains(&next.hash) {
            return Ok(());
        }
        // Report the highest checkpoint held (only on the error path).
        let checkpoint_height = checkpoints
            .iter()
            .rev()
            .find(|cp| self.contains(&cp.hash))
            .map_or(next.height, |cp| cp.height);
        Err(HeaderError::ForkBeforeCheckpoint {
            hash,
            height,
            checkpoint_height,
        })
    }

    /// nBits required of a child of `parent_id` (at `parent_height`)
    /// timestamped `time` (Core's `GetNextWorkRequired`).
    fn next_work_required(&self, parent_id: u32, parent_height: u32, time: u32) -> CompactTarget {
        let parent = parent_id as usize;
        let parent_bits = self.bits[parent];
        let parent_time = self.times[parent];
        let interval = self.params.interval();
        let consensus = &self.params.consensus;
        if !(parent_height + 1).is_multiple_of(interval) {
            if consensus.allow_min_difficulty_blocks {
                // Testnet: a block more than twice the spacing after its
                // parent may use the minimum difficulty...
                let spacing = i64::try_from(consensus.pow_target_spacing).unwrap_or(i64::MAX);
                if i64::from(time) > i64::from(parent_time).saturating_add(2 * spacing) {
                    return self.params.pow_limit_bits;
                }
                // ...otherwise it takes the difficulty of the last block
                // that did not use the exception (Core walks back to it;
                // each entry carries the answer).
                return self.real_bits.get(parent).copied().unwrap_or(parent_bits);
            }
            return parent_bits;
        }
        if consensus.no_pow_retargeting {
            return parent_bits;
        }
        let first = self.ancestor(parent_id, parent_height + 1 - interval) as usize;
        calculate_next_work_required(
            &self.params,
            BitsAndTime {
                bits: self.bits[first],
                time: self.times[first],
            },
            BitsAndTime {
                bits: parent_bits,
                time: parent_time,
            },
        )
    }

    /// The best chain after entries from `first_new` on were added (some
    /// perhaps already put on `active` by `insert`), `old_tip` (at
    /// `old_height`, with `old_work`) being the tip before them.
    fn select_best(
        &mut self,
        first_new: usize,
        new_headers: usize,
        old_tip: u32,
        old_height: u32,
        old_work: ChainWork,
    ) -> AcceptOutcome {
        // The best new entry: the most work, the first accepted on a tie.
        // Of the new entries on `active` the tip has the most work; the
        // others are in `side`.
        let mut best: Option<(ChainWork, u32)> =
            (self.tip_id() != old_tip).then(|| (self.tip_work, self.tip_id()));
        for id in first_new..self.len() {
            let id = id as u32;
            if let Some(s) = self.side.get(&id)
                && best.is_none_or(|(w, b)| s.work > w || (s.work == w && id < b))
            {
                best = Some((s.work, id));
            }
        }
        // Strictly more work than the old tip: on a tie, it stays.
        let best = best.filter(|(w, _)| *w > old_work).map(|(_, id)| id);
        let Some(best) = best else {
            // Nothing new can have been put on `active` (an extension of
            // the tip would have more work).
            return AcceptOutcome {
                new_headers,
                tip_changed: false,
                reorg: None,
                tip: self.tip(),
            };
        };
        let fork_height = if best == self.tip_id() {
            old_height
        } else {
            self.activate(best)
        };
        let reorg = (fork_height < old_height).then(|| Reorg {
            fork_height,
            fork_hash: self.hash_at(fork_height).unwrap_or(self.tip_hash),
            disconnected: old_height - fork_height,
            connected: self.height() - fork_height,
        });
        AcceptOutcome {
            new_headers,
            tip_changed: true,
            reorg,
            tip: self.tip(),
        }
    }

    /// Makes the side entry `best` the tip: the best chain's entries above
    /// where `best`'s branch leaves it move to `side`, the branch moves to
    /// `active`. Returns that fork height.
    fn activate(&mut self, best: u32) -> u32 {
        let (Some(header), Some(best_side)) =
            (self.bodies.get(best), self.side.get(&best).copied())
        else {
            // Already active (or unreadable, which cannot happen for an
            // entry we hold): nothing to switch.
            return self.height_of(best);
        };
        let mut path = Vec::new();
        let mut id = best;
        while let Some(s) = self.side.get(&id) {
            path.push(id);
            id = s.parent;
        }
        let fork_height = self.height_of(id);
        // Demote the old branch above the fork, with the work each entry
        // had on it.
        let mut work = self.work_at(fork_height);
        for height in fork_height + 1..=self.height() {
            let id = self.active[height as usize];
            work = work.saturating_add(self.own_work(self.bits[id as usize]));
            let parent = self.active[height as usize - 1];
            self.side.insert(
                id,
                SideEntry {
                    height,
                    parent,
                    work,
                },
            );
        }
        self.active.truncate(fork_height as usize + 1);
        self.active_work
            .truncate((fork_height / WORK_SAMPLE_STEP) as usize + 1);
        for id in path.iter().rev() {
            if let Some(s) = self.side.remove(id) {
                self.active.push(*id);
                if s.height.is_multiple_of(WORK_SAMPLE_STEP) {
                    self.active_work.push(s.work);
                }
            }
        }
        self.tip_hash = header.block_hash();
        self.tip_header = header;
        self.tip_work = best_side.work;
        fork_height
    }

    /// Keeps only the first `len` entries (clamped to at least 1: genesis
    /// stays), in acceptance order as [`HeaderChain::len`] counts them;
    /// parents come before children, so what is left is a valid tree. The
    /// best tip becomes the remaining entry with the most work, the one
    /// accepted first on a tie (what [`HeaderChain::accept`] would have
    /// chosen had the dropped entries never come).
    ///
    /// For the sync's anti-DoS: a low-work chain is accepted provisionally
    /// and cut off here if it never proves enough work. A
    /// [`ChainStore`] holding the chain should be truncated to the same
    /// length ([`ChainStore::truncate`]); if it is not, its next
    /// [`ChainStore::append`] notices and rewrites the stale tail.
    pub fn truncate(&mut self, len: usize) -> TruncateOutcome {
        let len = len.max(1);
        if len >= self.len() {
            return TruncateOutcome {
                removed: 0,
                tip_changed: false,
                tip: self.tip(),
            };
        }
        let removed = self.len() - len;
        let old_tip = self.tip_id();
        self.drop_entries_from(len);
        self.truncations.record(len);
        if (old_tip as usize) < len {
            // The tip had the most work of all, first among equals: it
            // still has among the survivors.
            return TruncateOutcome {
                removed,
                tip_changed: false,
                tip: self.tip(),
            };
        }
        // The best chain's ids increase with height: the survivors on it
        // are a prefix, and its last one has the most work of them.
        let keep = self.active.partition_point(|id| (*id as usize) < len);
        let top_height = keep.saturating_sub(1) as u32;
        let top_work = self.work_at(top_height);
        let top = self.active[top_height as usize];
        self.active.truncate(top_height as usize + 1);
        self.active_work
            .truncate((top_height / WORK_SAMPLE_STEP) as usize + 1);
        if let Some(header) = self.bodies.get(top) {
            self.tip_hash = header.block_hash();
            self.tip_header = header;
        }
        self.tip_work = top_work;
        let mut best = (top_work, top);
        for (id, s) in &self.side {
            if s.work > best.0 || (s.work == best.0 && *id < best.1) {
                best = (s.work, *id);
            }
        }
        if best.1 != top {
            self.activate(best.1);
        }
        TruncateOutcome {
            removed,
            tip_changed: true,
            tip: self.tip(),
        }
    }

    /// Sequence number of the latest [`HeaderChain::truncate`] that removed
    /// anything (0 if none).
    pub(crate) fn truncation_seq(&self) -> u64 {
        self.truncations.seq()
    }

    /// A length up to which the entries are the same as at truncation
    /// sequence `seen` (`usize::MAX` if nothing was cut since).
    pub(crate) fn unchanged_since(&self, seen: u64) -> usize {
        self.truncations.unchanged_since(seen)
    }

    /// The entry whose block hash is `hash`.
    fn find(&self, hash: &BlockHash) -> Option<u32> {
        self.index.find(key_of(hash), &self.keys, |id| {
            self.hash_of(id) == Some(*hash)
        })
    }

    /// The block hash of entry `id`: the tip's is kept, a best-chain
    /// entry's is its child's back link, any other is hashed.
    fn hash_of(&self, id: u32) -> Option<BlockHash> {
        if id == self.tip_id() {
            return Some(self.tip_hash);
        }
        if let Some(height) = self.active_height(id) {
            let child = self.active[height as usize + 1];
            return self.bodies.get(child).map(|h| h.prev_blockhash);
        }
        self.bodies.get(id).map(|h| h.block_hash())
    }

    fn tip_id(&self) -> u32 {
        self.active.last().copied().unwrap_or(0)
    }

    /// The height of `id` if it is on the best chain.
    fn active_height(&self, id: u32) -> Option<u32> {
        if id == self.tip_id() {
            return Some(self.height());
        }
        self.active.binary_search(&id).ok().map(|h| h as u32)
    }

    fn height_of(&self, id: u32) -> u32 {
        match self.side.get(&id) {
            Some(s) => s.height,
            None => self.active_height(id).unwrap_or(0),
        }
    }

    fn parent_of(&self, id: u32) -> u32 {
        match self.side.get(&id) {
            Some(s) => s.parent,
            None => match self.active_height(id) {
                Some(h) if h > 0 => self.active[h as usize - 1],
                _ => NO_PARENT,
            },
        }
    }

    fn work_of(&self, id: u32) -> ChainWork {
        if id == self.tip_id() {
            return self.tip_work;
        }
        match self.side.get(&id) {
            Some(s) => s.work,
            None => self.work_at(self.active_height(id).unwrap_or(0)),
        }
    }

    /// Cumulative work of the best chain at `height` (≤ the tip's): the
    /// sample at or below it plus the blocks since.
    fn work_at(&self, height: u32) -> ChainWork {
        if height >= self.height() {
            return self.tip_work;
        }
        let sample = height / WORK_SAMPLE_STEP;
        let mut work = self.active_work[sample as usize];
        for h in sample * WORK_SAMPLE_STEP + 1..=height {
            let id = self.active[h as usize] as usize;
            work = work.saturating_add(self.own_work(self.bits[id]));
        }
        work
    }

    /// The ancestor of `id` at `height` (≤ its height).
    fn ancestor(&self, mut id: u32, height: u32) -> u32 {
        while let Some(s) = self.side.get(&id) {
            if s.height <= height {
                return id;
            }
            id = s.parent;
        }
        // On the best chain the ancestor is a lookup away.
        self.active.get(height as usize).copied().unwrap_or(id)
    }

    /// Median time of the 11 headers ending at `id`.
    fn mtp_of(&self, mut id: u32) -> u32 {
        let mut times = [0u32; MEDIAN_TIME_SPAN];
        let mut n = 0;
        loop {
            if let Some(height) = self.active_height(id) {
                // On the best chain (where nearly every new header's parent
                // is) the rest are found by height: independent loads
                // instead of a chain of dependent parent links.
                let height = height as usize;
                let from = (height + 1).saturating_sub(MEDIAN_TIME_SPAN - n);
                for a in &self.active[from..=height] {
                    times[n] = self.times[*a as usize];
                    n += 1;
                }
                break;
            }
            times[n] = self.times[id as usize];
            n += 1;
            let parent = self.parent_of(id);
            if n == MEDIAN_TIME_SPAN || parent == NO_PARENT {
                break;
            }
            id = parent;
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
        self.active.len().saturating_sub(1) as u32
    }

    /// Cumulative work of the best chain.
    pub fn tip_work(&self) -> Work {
        self.tip_work.to_work()
    }

    /// The best tip's header.
    pub fn tip_header(&self) -> Header {
        self.tip_header
    }

    /// Whether the best chain has at least the network's minimum chain
    /// work (see the module docs).
    pub fn has_minimum_chain_work(&self) -> bool {
        self.tip_work() >= self.params.minimum_chain_work
    }

    /// The header at `height` on the best chain.
    pub fn header_at(&self, height: u32) -> Option<Header> {
        let id = *self.active.get(height as usize)?;
        self.bodies.get(id)
    }

    /// Up to `max` headers of the best chain from `height` on, read in as
    /// few runs as the branches allow (for serving `getheaders`).
    pub fn headers_from(&self, height: u32, max: usize) -> Vec<Header> {
        let ids = self
            .active
            .get(height as usize..)
            .unwrap_or_default()
            .iter()
            .take(max);
        let mut out = Vec::with_capacity(ids.len());
        let mut run: Option<(u32, usize)> = None;
        for &id in ids {
            run = match run {
                Some((first, n)) if first as usize + n == id as usize => Some((first, n + 1)),
                Some((first, n)) => {
                    if !self.bodies.get_run(first as usize, n, &mut out) {
                        return out;
                    }
                    Some((id, 1))
                }
                None => Some((id, 1)),
            };
        }
        if let Some((first, n)) = run {
            self.bodies.get_run(first as usize, n, &mut out);
        }
        out
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
        let id = self.find(hash)?;
        let header = self.bodies.get(id)?;
        Some((self.height_of(id), header, self.work_of(id).to_work()))
    }

    /// Whether `hash` is a known header (on any branch).
    pub fn contains(&self, hash: &BlockHash) -> bool {
        self.find(hash).is_some()
    }

    /// Whether `hash` is on the best chain.
    pub fn is_in_best_chain(&self, hash: &BlockHash) -> bool {
        self.find(hash)
            .is_some_and(|id| self.active_height(id).is_some())
    }

    /// Number of headers held, on every branch, genesis included: the
    /// entry count, which [`HeaderChain::truncate`] and
    /// [`HeaderChain::headers_in_order`] index by.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Always false: the genesis header is always there.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Headers in the order they were accepted, from the `from`-th (0 is
    /// genesis). Every header's parent comes before it. Headers already
    /// written to the store are read back from it; the iteration stops
    /// early at one that cannot be read.
    pub fn headers_in_order(&self, from: usize) -> impl Iterator<Item = Header> + '_ {
        // Read in runs: one `pread` per header would make a full walk of a
        // million headers a million system calls.
        const RUN: usize = 1024;
        let mut stopped = false;
        (from..self.len())
            .step_by(RUN)
            .map_while(move |first| {
                if stopped {
                    return None;
                }
                let count = RUN.min(self.len() - first);
                let mut run = Vec::with_capacity(count);
                if !self.bodies.get_run(first, count, &mut run) {
                    // Header by header, to stop exactly at an unreadable one.
                    run.extend((first..first + count).map_while(|id| self.bodies.get(id as u32)));
                    stopped = true;
                }
                Some(run)
            })
            .flatten()
    }

    /// The headers from entry `from` on, if none has left memory yet (the
    /// store's next append).
    pub(crate) fn unwritten_headers(&self, from: usize) -> Option<&[Header]> {
        self.bodies.in_memory_from(from)
    }

    /// The store wrote the first `written` entries and reads them back with
    /// `source`: their full headers leave memory.
    pub(crate) fn headers_written(&mut self, written: usize, source: Arc<dyn HeaderSource>) {
        self.bodies.written(written.min(self.len()), source);
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
        self.find(hash).map(|id| self.mtp_of(id))
    }

    /// Every leaf of the header tree (`getchaintips`), highest first; the
    /// active tip first among equals.
    pub fn tips(&self) -> Vec<ChainTip> {
        // Only the active tip ends the best chain, and a side entry's
        // children are side entries: the leaves are the active tip and the
        // side entries no side entry names as parent.
        let parents: HashSet<u32> = self.side.values().map(|s| s.parent).collect();
        let mut tips = vec![(
            self.tip_id(),
            ChainTip {
                height: self.height(),
                hash: self.tip_hash,
                branch_len: 0,
                status: TipStatus::Active,
            },
        )];
        for (id, s) in &self.side {
            if parents.contains(id) {
                continue;
            }
            let fork = self.height_of(self.fork_point(*id));
            tips.push((
                *id,
                ChainTip {
                    height: s.height,
                    hash: self.hash_of(*id).unwrap_or(self.tip_hash),
                    branch_len: s.height - fork,
                    status: TipStatus::ValidHeaders,
                },
            ));
        }
        // Highest first, the active tip first among equals, then in the
        // order accepted.
        tips.sort_by(|(a_id, a), (b_id, b)| {
            b.height
                .cmp(&a.height)
                .then((b.status == TipStatus::Active).cmp(&(a.status == TipStatus::Active)))
                .then(a_id.cmp(b_id))
        });
        tips.into_iter().map(|(_, tip)| tip).collect()
    }

    /// The last best-chain ancestor of `id` (itself if on the best chain).
    fn fork_point(&self, mut id: u32) -> u32 {
        while let Some(s) = self.side.get(&id) {
            id = s.parent;
        }
        id
    }

    /// What the chain holds in memory, for the README's memory table and
    /// the benches: bytes by component (capacity, not length).
    pub fn memory(&self) -> ChainMemory {
        use std::mem::size_of;
        ChainMemory {
            entries: self.len(),
            columns: self.keys.capacity() * size_of::<u64>()
                + (self.times.capacity() + self.bits.capacity() + self.real_bits.capacity())
                    * size_of::<u32>(),
            index: self.index.allocated_bytes(),
            best_chain: self.active.capacity() * size_of::<u32>()
                + self.active_work.capacity() * size_of::<ChainWork>(),
            side_entries: self.side.len(),
            headers_in_memory: self.bodies.in_memory(),
        }
    }
}

/// Where a [`HeaderChain`]'s memory goes ([`HeaderChain::memory`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainMemory {
    /// Entries held (headers on every branch, genesis included).
    pub entries: usize,
    /// Bytes of the per-entry columns (hash key, time, nBits, and on
    /// min-difficulty networks the walk-back bits).
    pub columns: usize,
    /// Bytes of the hash index's table.
    pub index: usize,
    /// Bytes of the best chain's entry list and work samples.
    pub best_chain: usize,
    /// Entries off the best chain (each 64 to 130 bytes with its table
    /// slot and the table's spare room).
    pub side_entries: usize,
    /// Full headers still in memory: not yet written by the store, or all
    /// of them for a chain without one (80 bytes each).
    pub headers_in_memory: usize,
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
