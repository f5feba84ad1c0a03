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
//! One entry per header: the 80-byte header, height, parent index and
//! cumulative work (≈ 120 bytes), plus a hash-to-index map and the active
//! chain as a `Vec<u32>`: about 180 bytes per header, ≈ 170 MB for a
//! million. Hashes are not stored next to headers: the child's
//! `prev_blockhash` gives them on the active chain, and hashing 80 bytes is
//! cheap elsewhere.

mod hash_index;
pub mod params;
pub mod regtest_miner;
pub mod retarget;
pub mod store;

use hash_index::HashKeyMap;

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

/// Cumulative work as two native 128-bit halves: [`Work`] keeps a private
/// 256-bit integer whose only checked addition goes through byte arrays,
/// and summing and comparing work is done for every header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct ChainWork {
    // Field order matters: the derived `Ord` compares `hi` first.
    hi: u128,
    lo: u128,
}

impl ChainWork {
    fn from_work(work: Work) -> ChainWork {
        let bytes = work.to_be_bytes();
        let mut hi = [0u8; 16];
        let mut lo = [0u8; 16];
        hi.copy_from_slice(&bytes[..16]);
        lo.copy_from_slice(&bytes[16..]);
        ChainWork {
            hi: u128::from_be_bytes(hi),
            lo: u128::from_be_bytes(lo),
        }
    }

    fn to_work(self) -> Work {
        let mut bytes = [0u8; 32];
        bytes[..16].copy_from_slice(&self.hi.to_be_bytes());
        bytes[16..].copy_from_slice(&self.lo.to_be_bytes());
        Work::from_be_bytes(bytes)
    }

    /// `self + other`, or `None` past 2^256.
    fn checked_add(self, other: ChainWork) -> Option<ChainWork> {
        let (lo, carry) = self.lo.overflowing_add(other.lo);
        let hi = self
            .hi
            .checked_add(other.hi)?
            .checked_add(u128::from(carry))?;
        Some(ChainWork { hi, lo })
    }
}

/// The target and per-block work of one nBits value that passed the
/// context-free checks: every header of a difficulty period shares them,
/// and deriving work takes a 256-bit division.
#[derive(Debug, Clone, Copy)]
struct BitsInfo {
    bits: CompactTarget,
    target: Target,
    work: ChainWork,
}

/// One stored header.
#[derive(Debug, Clone)]
struct Entry {
    header: Header,
    height: u32,
    /// Index of the parent entry, [`NO_PARENT`] for genesis.
    parent: u32,
    /// What Core's min-difficulty walk-back (testnet's
    /// `GetNextWorkRequired`) returns from this entry: its own bits if it
    /// starts a period, is genesis or is not at the pow limit, else its
    /// parent's value. Kept so that walk is a lookup, not up to 2015 steps
    /// per header (regtest, where every block is at the limit, always
    /// walked back to the period start).
    real_bits: CompactTarget,
    /// Cumulative work from genesis through this header.
    work: ChainWork,
}

/// Where a chain was cut back by [`HeaderChain::truncate`], so a store that
/// last wrote it before the cut knows which of its records are stale.
///
/// Each truncation gets a sequence number; `marks` keeps, for the latest
/// ones, `(sequence, length)` with lengths increasing, which is all that is
/// needed to answer "the shortest length since sequence `s`" (an older cut
/// to a longer length is hidden by a newer, shorter one). It is bounded by
/// merging its two oldest marks, which can only understate the answer: a
/// store then rewrites more than needed, never less.
#[derive(Debug, Clone, Default)]
struct TruncationLog {
    seq: u64,
    marks: Vec<(u64, usize)>,
}

/// Marks a [`TruncationLog`] keeps at most.
const MAX_TRUNCATION_MARKS: usize = 16;

impl TruncationLog {
    fn record(&mut self, len: usize) {
        self.seq += 1;
        while self.marks.last().is_some_and(|&(_, l)| l >= len) {
            self.marks.pop();
        }
        self.marks.push((self.seq, len));
        if self.marks.len() > MAX_TRUNCATION_MARKS {
            let (_, oldest_len) = self.marks.remove(0);
            if let Some(next) = self.marks.first_mut() {
                next.1 = oldest_len;
            }
        }
    }

    /// A length up to which entries are unchanged since sequence `seen`
    /// (`usize::MAX` when nothing was cut since).
    fn unchanged_since(&self, seen: u64) -> usize {
        self.marks
            .iter()
            .find(|(seq, _)| *seq > seen)
            .map_or(usize::MAX, |&(_, len)| len)
    }
}

/// The tree of validated headers and the best chain through it.
#[derive(Debug, Clone)]
pub struct HeaderChain {
    params: ChainParams,
    /// Every header, in the order accepted: a parent always comes before
    /// its children, which lets the store write this order as-is.
    entries: Vec<Entry>,
    index: HashKeyMap<BlockHash, u32>,
    /// The best chain: `active[h]` is the entry at height `h`.
    active: Vec<u32>,
    tip_hash: BlockHash,
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
        let mut index = HashKeyMap::default();
        index.insert(hash, 0);
        HeaderChain {
            entries: vec![Entry {
                header,
                height: 0,
                parent: NO_PARENT,
                real_bits: header.bits,
                work: ChainWork::from_work(header.work()),
            }],
            index,
            active: vec![0],
            tip_hash: hash,
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

    /// [`HeaderChain::accept`] with `now` optional: replaying our own file,
    /// the future-time rule (which is not a permanent property of a header)
    /// is skipped.
    pub(crate) fn accept_inner(
        &mut self,
        headers: &[Header],
        now: Option<u64>,
    ) -> Result<AcceptOutcome, HeaderError> {
        self.accept_hashed(headers.iter().map(|h| (h, h.block_hash())), now)
    }

    /// [`HeaderChain::accept_inner`] for headers whose block hashes the
    /// caller already computed (the store does, for its checksums): the
    /// SHA-256d is most of the cost of a header, so it is done once.
    pub(crate) fn accept_hashed<'a>(
        &mut self,
        headers: impl ExactSizeIterator<Item = (&'a Header, BlockHash)>,
        now: Option<u64>,
    ) -> Result<AcceptOutcome, HeaderError> {
        let first_new = self.entries.len();
        let old_tip = self.tip_id();
        let old_active_len = self.active.len();
        self.entries.reserve(headers.len());
        self.index.reserve(headers.len());
        let mut added = 0;
        for (header, hash) in headers {
            match self.insert(header, hash, now) {
                Ok(true) => added += 1,
                Ok(false) => {}
                Err(e) => {
                    // The error path may hash the batch again: a peer can
                    // at most double our work, and the happy path keeps no
                    // list of hashes.
                    for dropped in self.entries.drain(first_new..) {
                        self.index.remove(&dropped.header.block_hash());
                    }
                    self.active.truncate(old_active_len);
                    return Err(e);
                }
            }
        }
        Ok(self.select_best(first_new, added, old_tip))
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
        now: Option<u64>,
    ) -> Result<bool, HeaderError> {
        if self.index.contains_key(&hash) {
            return Ok(false);
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
        let parent_real_bits = parent.real_bits;
        let height = parent.height.checked_add(1).ok_or(HeaderError::Full)?;

        let own = self.check_own_pow(header, hash)?;
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
        let interval = self.params.interval();
        if self.params.enforce_bip94
            && height.is_multiple_of(interval)
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

        let work = parent_work.checked_add(own.work).ok_or(HeaderError::Full)?;
        let id = u32::try_from(self.entries.len())
            .ok()
            .filter(|id| *id != NO_PARENT)
            .ok_or(HeaderError::Full)?;
        let real_bits = if height.is_multiple_of(interval) || header.bits != p.pow_limit_bits {
            header.bits
        } else {
            parent_real_bits
        };
        self.entries.push(Entry {
            header: *header,
            height,
            parent: parent_id,
            real_bits,
            work,
        });
        self.index.insert(hash, id);
        if parent_id == self.tip_id() {
            self.active.push(id);
        }
        Ok(true)
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
        if !self.index.contains_key(&next.hash) {
            return Ok(());
        }
        // Report the highest checkpoint held (only on the error path).
        let checkpoint_height = checkpoints
            .iter()
            .rev()
            .find(|cp| self.index.contains_key(&cp.hash))
            .map_or(next.height, |cp| cp.height);
        Err(HeaderError::ForkBeforeCheckpoint {
            hash,
            height,
            checkpoint_height,
        })
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
                // that did not use the exception (Core walks back to it;
                // each entry carries the answer).
                return parent.real_bits;
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

    /// The best chain after new entries from `first_new` on were added
    /// (some perhaps already put on `active` by `insert`), `old_tip` being
    /// the tip before them.
    fn select_best(&mut self, first_new: usize, new_headers: usize, old_tip: u32) -> AcceptOutcome {
        let old_height = self.entry(old_tip).height;
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
            // Nothing was put on `active` (an extension of the tip would
            // have more work); cut back anyway should that ever change.
            self.active.truncate(old_height as usize + 1);
            return AcceptOutcome {
                new_headers,
                tip_changed: false,
                reorg: None,
                tip: self.tip(),
            };
        }
        let fork_height = self.activate(best);
        let reorg = (fork_height < old_height).then(|| Reorg {
            fork_height,
            fork_hash: self.hash_at(fork_height).unwrap_or(self.tip_hash),
            disconnected: old_height - fork_height,
            connected: self.entry(best).height - fork_height,
        });
        AcceptOutcome {
            new_headers,
            tip_changed: true,
            reorg,
            tip: self.tip(),
        }
    }

    /// Makes `best` the tip: rebuilds `active` from where `best`'s branch
    /// leaves it. Returns that fork height (`best`'s own height if it was
    /// already active).
    fn activate(&mut self, best: u32) -> u32 {
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
        if len >= self.entries.len() {
            return TruncateOutcome {
                removed: 0,
                tip_changed: false,
                tip: self.tip(),
            };
        }
        let removed = self.entries.len() - len;
        // Drop the removed hashes from the index: hashing each removed
        // header (~0.25 µs) beats visiting every index slot (a few ns
        // each) until more than about a 32nd of the chain goes.
        if removed.saturating_mul(32) < len {
            for e in &self.entries[len..] {
                self.index.remove(&e.header.block_hash());
            }
        } else {
            self.index.retain(|_, id| (*id as usize) < len);
        }
        self.entries.truncate(len);
        self.truncations.record(len);
        let old_tip = self.tip_id();
        if (old_tip as usize) < len {
            // The tip had the most work of all, first among equals: it
            // still has among the survivors, and its ancestors (all of
            // `active`) come before it.
            return TruncateOutcome {
                removed,
                tip_changed: false,
                tip: self.tip(),
            };
        }
        let mut best = 0u32;
        let mut best_work = self.entries[0].work;
        for (i, e) in self.entries.iter().enumerate().skip(1) {
            if e.work > best_work {
                best_work = e.work;
                best = u32::try_from(i).unwrap_or(0);
            }
        }
        // `active` may still name dropped entries above the fork; those
        // ids are all ≥ `len`, so they never match a surviving entry and
        // `activate` cuts them off.
        self.activate(best);
        TruncateOutcome {
            removed,
            tip_changed: true,
            tip: self.tip(),
        }
    }

    /// Sequence number of the latest [`HeaderChain::truncate`] that removed
    /// anything (0 if none).
    pub(crate) fn truncation_seq(&self) -> u64 {
        self.truncations.seq
    }

    /// A length up to which the entries are the same as at truncation
    /// sequence `seen` (`usize::MAX` if nothing was cut since).
    pub(crate) fn unchanged_since(&self, seen: u64) -> usize {
        self.truncations.unchanged_since(seen)
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
            let height = e.height as usize;
            if self.active.get(height) == Some(&id) {
                // On the best chain (where nearly every new header's parent
                // is) the rest are found by height: independent loads
                // instead of a chain of dependent parent links.
                let from = (height + 1).saturating_sub(MEDIAN_TIME_SPAN - n);
                for a in self.active.get(from..=height).unwrap_or_default() {
                    times[n] = self.entry(*a).header.time;
                    n += 1;
                }
                break;
            }
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
        self.entry(self.tip_id()).work.to_work()
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
            (e.height, e.header, e.work.to_work())
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

    /// Number of headers held, on every branch, genesis included: the
    /// entry count, which [`HeaderChain::truncate`] and
    /// [`HeaderChain::headers_in_order`] index by.
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
