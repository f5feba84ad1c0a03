//! Every size, limit and time span of the address manager, with its reason.
//!
//! Most mirror Bitcoin Core (`addrman_impl.h`, `addrman.cpp`,
//! `net_processing.cpp`); the Core name is given where one exists. All times
//! are in seconds.

/// log2 of [`NEW_BUCKET_COUNT`] (Core's `ADDRMAN_NEW_BUCKET_COUNT_LOG2`).
pub const NEW_BUCKET_COUNT_LOG2: u32 = 10;

/// Buckets in the new table: 1 024 (Core's `ADDRMAN_NEW_BUCKET_COUNT`). With
/// [`NEW_BUCKETS_PER_SOURCE_GROUP`] = 64, one source group reaches 1/16 of them.
pub const NEW_BUCKET_COUNT: usize = 1 << NEW_BUCKET_COUNT_LOG2;

/// log2 of [`TRIED_BUCKET_COUNT`] (Core's `ADDRMAN_TRIED_BUCKET_COUNT_LOG2`).
pub const TRIED_BUCKET_COUNT_LOG2: u32 = 8;

/// Buckets in the tried table: 256 (Core's `ADDRMAN_TRIED_BUCKET_COUNT`).
/// Smaller than the new table: it only holds peers we reached ourselves.
pub const TRIED_BUCKET_COUNT: usize = 1 << TRIED_BUCKET_COUNT_LOG2;

/// log2 of [`BUCKET_SIZE`] (Core's `ADDRMAN_BUCKET_SIZE_LOG2`).
pub const BUCKET_SIZE_LOG2: u32 = 6;

/// Slots per bucket: 64 (Core's `ADDRMAN_BUCKET_SIZE`). Exactly one `u64`
/// bitmap per bucket in the selection index.
pub const BUCKET_SIZE: usize = 1 << BUCKET_SIZE_LOG2;

/// Slots in the new table (65 536: every slot index fits a `u16`).
pub const NEW_SLOT_COUNT: usize = NEW_BUCKET_COUNT * BUCKET_SIZE;

/// Slots in the tried table (16 384).
pub const TRIED_SLOT_COUNT: usize = TRIED_BUCKET_COUNT * BUCKET_SIZE;

/// The most entries the manager can hold: every slot of both tables.
pub const MAX_ENTRIES: usize = NEW_SLOT_COUNT + TRIED_SLOT_COUNT;

/// Tried buckets one address group can reach (Core's
/// `ADDRMAN_TRIED_BUCKETS_PER_GROUP`): a `/16` owns at most 8 of 256.
pub const TRIED_BUCKETS_PER_GROUP: u64 = 8;

/// New buckets one source group can reach (Core's
/// `ADDRMAN_NEW_BUCKETS_PER_SOURCE_GROUP`): one gossiping operator fills at
/// most 64 of 1 024 buckets.
pub const NEW_BUCKETS_PER_SOURCE_GROUP: u64 = 64;

/// New-table references one address may hold, one per distinct source group
/// that told us about it (Core's `ADDRMAN_NEW_BUCKETS_PER_ADDRESS`).
pub const NEW_BUCKETS_PER_ADDRESS: usize = 8;

/// An address not seen for this long is terrible (Core's `ADDRMAN_HORIZON`, 30 days).
pub const HORIZON: u64 = 30 * 24 * 60 * 60;

/// Failed attempts after which a never-reached address is terrible (Core's `ADDRMAN_RETRIES`).
pub const RETRIES: u32 = 3;

/// Failed attempts after which an address not reached for [`MIN_FAIL`] is
/// terrible (Core's `ADDRMAN_MAX_FAILURES`).
pub const MAX_FAILURES: u32 = 10;

/// See [`MAX_FAILURES`] (Core's `ADDRMAN_MIN_FAIL`, 7 days).
pub const MIN_FAIL: u64 = 7 * 24 * 60 * 60;

/// An address tried this recently is never called terrible, so a slow first
/// connection does not get it evicted (Core: 1 minute in `IsTerrible`).
pub const TERRIBLE_GRACE: u64 = 60;

/// Timestamps further than this into the future are nonsense (Core: 10
/// minutes, in `IsTerrible` and net_processing).
pub const FUTURE_SLACK: u64 = 10 * 60;

/// A gossiped timestamp below this is nonsense (Core: `100000000`, 1973).
pub const MIN_SANE_TIMESTAMP: u64 = 100_000_000;

/// Nonsense gossiped timestamps become `now` minus this (Core: 5 days in net_processing).
pub const BAD_TIMESTAMP_AGE: u64 = 5 * 24 * 60 * 60;

/// Relayed addresses are stored this much older than announced, so a peer
/// cannot make its gossip look fresher than our own observations (Core:
/// the 2-hour penalty net_processing passes to `AddrMan::Add`). A peer's
/// announcement of its own address gets no penalty.
pub const GOSSIP_TIME_PENALTY: u64 = 2 * 60 * 60;

/// An address seen within this window counts as online; its timestamp is
/// then refreshed more eagerly (Core: 24 hours in `AddSingle`).
pub const ONLINE_WINDOW: u64 = 24 * 60 * 60;

/// How stale a stored timestamp of an online address may get before gossip
/// refreshes it (Core: 1 hour in `AddSingle`).
pub const ONLINE_UPDATE_INTERVAL: u64 = 60 * 60;

/// The same for addresses not seen within [`ONLINE_WINDOW`] (Core: 24 hours).
pub const OFFLINE_UPDATE_INTERVAL: u64 = 24 * 60 * 60;

/// [`crate::addrman::AddrMan::connected`] refreshes a timestamp older than
/// this; finer updates would reveal who we are connected to (Core: 20
/// minutes in `Connected_`).
pub const CONNECTED_UPDATE_INTERVAL: u64 = 20 * 60;

/// Selection shies away from addresses tried this recently (Core: 10 minutes in `GetChance`).
pub const RECENT_TRY: u64 = 10 * 60;

/// How much less likely a recently tried address is picked (Core: 0.01).
pub const RECENT_TRY_FACTOR: f64 = 0.01;

/// Each failed attempt multiplies the chance of a pick by this (Core: 0.66).
pub const FAILED_ATTEMPT_FACTOR: f64 = 0.66;

/// Failed attempts beyond this no longer lower the chance, so an outage does
/// not bury good addresses for ever (Core: 8, i.e. at most 1/28).
pub const MAX_PENALISED_ATTEMPTS: u32 = 8;

/// After each rejected pick the acceptance chance grows by this factor, so
/// selection terminates even when every candidate is unlikely (Core: 1.2).
pub const CHANCE_GROWTH: f64 = 1.2;

/// Picks `select` makes before giving up. Core loops until it succeeds, but
/// we also filter by services and netgroups, which may reject every
/// candidate; after 200 picks a filter passing 10 % of candidates fails with
/// odds 0.9^200 ≈ 10⁻⁹, and the worst case stays near 50 µs.
pub const SELECT_MAX_PROBES: u32 = 200;

/// Pending tried-table collisions kept for test-before-evict (Core's
/// `ADDRMAN_SET_TRIED_COLLISION_SIZE`).
pub const TRIED_COLLISION_SET_SIZE: usize = 10;

/// A tried entry that connected this recently is kept over a colliding newcomer
/// (Core's `ADDRMAN_REPLACEMENT`, 4 hours).
pub const REPLACEMENT: u64 = 4 * 60 * 60;

/// A colliding newcomer not resolved within this window wins anyway: the old
/// entry could not even be tested (Core's `ADDRMAN_TEST_WINDOW`, 40 minutes).
pub const TEST_WINDOW: u64 = 40 * 60;

/// The test connection to an old tried entry gets this long before it counts
/// as failed (Core: 60 seconds in `ResolveCollisions_`).
pub const COLLISION_TEST_GRACE: u64 = 60;

/// Most addresses in one `getaddr` reply (Core's `MAX_ADDR_TO_SEND`; also the
/// BIP155 per-message limit).
pub const GETADDR_MAX: usize = 1000;

/// Largest share of our table, in percent, one `getaddr` reply reveals
/// (Core's `MAX_PCT_ADDR_TO_SEND`): a peer must not map our whole table.
pub const GETADDR_MAX_PCT: usize = 23;

/// Fixed seeds get a random "last seen" this many seconds in the past at
/// least... (Core: one week, in `ConvertSeeds`) so that any gossiped address
/// looks fresher than a seed.
pub const SEED_AGE_MIN: u64 = 7 * 24 * 60 * 60;

/// ...and at most this many (Core: two weeks).
pub const SEED_AGE_MAX: u64 = 14 * 24 * 60 * 60;

/// Fewer known addresses than this on the allowed networks means the
/// manager is starved and fixed seeds should be added: a full outbound set
/// is 8–10 peers plus feelers, and a few dozen candidates leave room for
/// the many that fail.
pub const STARVED_BELOW: usize = 32;
