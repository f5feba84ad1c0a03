//! Crash safety under `kill -9` (issue 16, item 3): a real regtest
//! `nightjar` (Tor off) syncs a long header chain and a few hundred gossiped
//! addresses from a scripted node and is killed with SIGKILL a hundred
//! times, at random moments, and restarted on the same data directory.
//!
//! Each restart must load its files without setting anything aside, lose
//! at most the one header batch that was not yet on disk, and the node must
//! still reach the full chain at the end. Once each, a file is damaged
//! between a kill and a restart (`headers.dat` cut inside a record,
//! `peers.dat` with one byte flipped): the daemon must say what it did and
//! carry on. Figures are printed at the end (`--nocapture`); they are
//! figures, not asserts.
//!
//! The random waits come from a seeded generator; set `KILL_LOOP_SEED` to
//! replay a run.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr
)]

#[path = "support/daemon_log.rs"]
mod daemon_log;
#[path = "support/nightjar_node.rs"]
mod nightjar_node;

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use daemon_log::fields_after;
use nightjar::chain::regtest_miner::mine_regtest_chain_until;
use nightjar::chain::store::{FILE_HEADER_LEN, RECORD_LEN};
use nightjar::netaddr::{Host, NetAddr};
use nightjar_node::Nightjar;
use nightjar_testpeer::node::{NodeSpec, PeerFarm, gossip_entry};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tempfile::TempDir;

/// Headers the scripted node serves: fifteen full batches of 2 000.
const CHAIN_LEN: u64 = 30_000;
/// Onion addresses the scripted node gossips in answer to `getaddr`.
const GOSSIP: u32 = 300;
/// SIGKILLs in the loop.
const KILLS: usize = 100;
/// Longest random wait between "RPC answers" and the kill.
const MAX_WAIT_MS: u64 = 700;
/// One `headers` message: what a kill may lose (received, counted by
/// RPC, not yet appended).
const BATCH: u64 = 2_000;
/// After this kill the daemon is stopped cleanly once (not counted as a
/// kill), so that `peers.dat` exists for the kills that follow.
const CLEAN_STOP_AFTER: usize = 25;
/// Before this restart `headers.dat` is cut inside a record.
const CUT_HEADERS_AT: usize = 50;
/// Before this restart one byte of `peers.dat` is flipped.
const FLIP_PEERS_AT: usize = 60;
/// Generous: only to keep a broken daemon from hanging the test.
const LIMIT: Duration = Duration::from_secs(120);

/// Words that must not appear in the log of a restart after a plain kill.
/// (The torn-tail warning is counted separately: see `torn_tail`.)
const BAD_WORDS: [&str; 5] = [
    "set aside",
    "corrupt",
    "moved aside",
    "is damaged",
    "unusable",
];

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// `count` distinct onion addresses (the keys need not be curve points:
/// nobody dials them with Tor off).
fn onion_gossip(count: u32) -> Vec<nightjar::wire::AddrV2Message> {
    (0..count)
        .map(|i| {
            let mut key = [0u8; 32];
            key[..4].copy_from_slice(&i.to_le_bytes());
            key[4..8].copy_from_slice(&i.wrapping_mul(2_654_435_761).to_be_bytes());
            key[31] = 0x5a;
            gossip_entry(&NetAddr::new(Host::TorV3(key), 18444))
        })
        .collect()
}

/// The regtest chain directory inside a `--datadir`.
fn chain_dir(datadir: &Path) -> PathBuf {
    datadir.join("regtest")
}

/// What one start of the daemon showed.
struct Started {
    node: Nightjar,
    /// Spawn to the first `getblockcount` answer.
    took: Duration,
    /// That first answer.
    height: u64,
    /// What `nightjar-cli` said if its first call, made as soon as the
    /// RPC port accepted connections, failed.
    first_error: Option<String>,
}

/// `getblockcount` through `nightjar-cli`, with its stderr on failure.
fn block_count(node: &Nightjar) -> Result<u64, String> {
    let out = Command::new(env!("CARGO_BIN_EXE_nightjar-cli"))
        .arg(format!("-datadir={}", node.dir().display()))
        .arg("-regtest")
        .arg(format!("-rpcport={}", node.rpc_port))
        .arg("-rpcwait")
        .arg("getblockcount")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    match text.trim().parse() {
        Ok(h) if out.status.success() => Ok(h),
        _ => Err(String::from_utf8_lossy(&out.stderr).trim().to_owned()),
    }
}

/// Start on `datadir` and wait for the first RPC answer. The RPC port is
/// polled with plain TCP connects first: `nightjar-cli -rpcwait` retries
/// only once a second, which would dominate the figure.
fn start(datadir: TempDir, args: &[String]) -> Started {
    let begun = Instant::now();
    let mut node = Nightjar::spawn_in(datadir, args.iter().cloned());
    let rpc: SocketAddr = ([127, 0, 0, 1], node.rpc_port).into();
    let deadline = begun + LIMIT;
    while TcpStream::connect_timeout(&rpc, Duration::from_millis(200)).is_err() {
        node.daemon.pump(Duration::from_millis(5));
        assert!(
            !node.daemon.exited() && Instant::now() < deadline,
            "no RPC server after a restart:\n{}",
            node.daemon.lines().join("\n")
        );
    }
    // A failed first call is retried and counted here, and the count must
    // be zero at the end: after a kill the old run's `.cookie` is still
    // there until the new server writes its own, and a client that read
    // the old one is refused once; nightjar-cli then reads the new cookie
    // and tries again (this loop found that race: about 40 of 100 starts
    // failed before the fix).
    let mut first_error = None;
    let height = loop {
        match block_count(&node) {
            Ok(h) => break h,
            Err(e) => {
                first_error.get_or_insert(e);
                assert!(
                    !node.daemon.exited() && Instant::now() < deadline,
                    "getblockcount failed after a restart ({first_error:?}):\n{}",
                    node.daemon.lines().join("\n")
                );
                node.daemon.pump(Duration::from_millis(20));
            }
        }
    };
    let took = begun.elapsed();
    // The start-up lines (chain and address book loaded) are out by now:
    // both come before the RPC server starts.
    node.daemon.pump(Duration::from_millis(20));
    Started {
        node,
        took,
        height,
        first_error,
    }
}

/// The fields of the first line carrying `message`.
fn field(lines: &[String], message: &str, key: &str) -> Option<String> {
    lines
        .iter()
        .find_map(|l| fields_after(l, message))
        .and_then(|mut f| f.remove(key))
}

/// The `address book loaded` count, if the book was loaded from a file.
fn addresses_loaded(lines: &[String]) -> Option<usize> {
    lines
        .iter()
        .find_map(|l| daemon_log::address_book_loaded(l))
}

/// Whether the chain loader cut off a torn tail.
fn torn_tail(lines: &[String]) -> bool {
    lines.iter().any(|l| l.contains("ended in a torn write"))
}

/// The line holding `needle`, for quoting in the figures.
fn quote(lines: &[String], needle: &str) -> String {
    lines
        .iter()
        .find(|l| l.contains(needle))
        .cloned()
        .unwrap_or_else(|| panic!("no line with {needle:?}:\n{}", lines.join("\n")))
}

/// `getnodeaddresses 0`: how many the book hands out.
fn node_addresses(node: &Nightjar) -> usize {
    node.rpc(&["getnodeaddresses", "0"])
        .and_then(|v| v.as_array().map(Vec::len))
        .unwrap_or(0)
}

/// Cut `headers.dat` in the middle of the file, half-way through a record;
/// the number of whole records kept.
fn cut_headers(chain_dir: &Path) -> u64 {
    let path = chain_dir.join("headers.dat");
    let len = std::fs::metadata(&path).unwrap().len();
    let records = (len - FILE_HEADER_LEN as u64) / RECORD_LEN as u64;
    let keep = records / 2;
    let cut = FILE_HEADER_LEN as u64 + keep * RECORD_LEN as u64 + RECORD_LEN as u64 / 2;
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(cut).unwrap();
    keep
}

/// Flip every bit of the byte in the middle of `peers.dat`.
fn flip_peers(chain_dir: &Path) {
    let path = chain_dir.join("peers.dat");
    let mut bytes = std::fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();
}

/// A restart after a kill that left the header file alone: nothing set
/// aside, and at most one batch below the `peak` seen before a kill.
fn check_plain_restart(
    round: usize,
    lines: &[String],
    height: u64,
    peak: u64,
    figures: &mut Figures,
) {
    // A flipped peers.dat is reported on its own round; the chain must
    // still be clean there.
    let expected = |l: &str| {
        round == FLIP_PEERS_AT && l.contains("the address book was unusable and was moved aside")
    };
    for word in BAD_WORDS {
        let hit = lines.iter().find(|l| l.contains(word) && !expected(l));
        assert!(
            hit.is_none(),
            "restart {round} after a plain kill logged {word:?}:\n{}",
            lines.join("\n")
        );
    }
    if torn_tail(lines) {
        figures.torn_tails += 1;
    }
    let regression = peak.saturating_sub(height);
    figures.max_regression = figures.max_regression.max(regression);
    assert!(
        regression <= BATCH,
        "restart {round}: height {height} is {regression} below the {peak} seen before a kill"
    );
}

/// Running figures for the report.
#[derive(Default)]
struct Figures {
    kills: usize,
    restarts: usize,
    max_regression: u64,
    restart_times: Vec<Duration>,
    torn_tails: usize,
    kills_mid_sync: usize,
    /// Starts whose first RPC call failed, and the first such message.
    refused_first_calls: usize,
    refusal: Option<String>,
    /// Addresses the clean stop saved, and the restarts after a kill that
    /// loaded exactly that many from `peers.dat`.
    book_at_stop: usize,
    books_reloaded: usize,
}

impl Figures {
    fn note_refusal(&mut self, error: Option<&str>) {
        if let Some(e) = error {
            self.refused_first_calls += 1;
            self.refusal.get_or_insert_with(|| e.to_owned());
        }
    }
}

#[test]
fn a_hundred_sigkills_lose_at_most_one_batch_and_never_corrupt_a_file() {
    let seed: u64 = std::env::var("KILL_LOOP_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("kill loop seed: {seed} (replay with KILL_LOOP_SEED={seed})");
    let mut rng = ChaCha8Rng::seed_from_u64(seed);

    let chain = mine_regtest_chain_until(CHAIN_LEN as usize, unix_now());
    let farm = PeerFarm::new().unwrap();
    let source = farm
        .start_node(NodeSpec::regtest("source").with_headers(chain))
        .unwrap();
    source.set_gossip(onion_gossip(GOSSIP));
    let args: Vec<String> = [
        "--no-tor",
        "--no-dnsseed",
        "--log-sensitive",
        "--connect",
        &source.addr().to_string(),
    ]
    .map(str::to_owned)
    .to_vec();

    let mut figures = Figures::default();
    let first = start(tempfile::tempdir().unwrap(), &args);
    figures.restart_times.push(first.took);
    let mut node = first.node;
    // The highest height any RPC answer showed before a kill: the chain
    // the node had, at least in memory.
    let mut peak = first.height;
    // Addresses in the `peers.dat` the clean stop wrote, once it has.
    let mut saved_book: Option<usize> = None;
    let mut cut_message = String::new();
    let mut flip_message = String::new();
    let mut last_addresses = 0;

    for round in 1..=KILLS {
        std::thread::sleep(Duration::from_millis(rng.random_range(0..=MAX_WAIT_MS)));
        if let Some(h) = node.block_count() {
            peak = peak.max(h);
        }
        if peak < CHAIN_LEN {
            figures.kills_mid_sync += 1;
        }
        last_addresses = node_addresses(&node);
        let (_, mut datadir) = node.sigkill_keeping_data();
        figures.kills += 1;

        if round == CLEAN_STOP_AFTER {
            // Wait for the chain and the gossip, then a clean stop, which
            // writes `peers.dat` (it is otherwise saved every 15 minutes).
            let restarted = start(datadir, &args);
            figures.restarts += 1;
            figures.restart_times.push(restarted.took);
            figures.note_refusal(restarted.first_error.as_deref());
            let mut again = restarted.node;
            again.wait_for(LIMIT, "the chain and the gossip", |n| {
                n.block_count() == Some(CHAIN_LEN) && node_addresses(n) > 0
            });
            (_, datadir) = again.stop_keeping_data();
            peak = CHAIN_LEN;
        }
        let mut cut_kept = None;
        if round == CUT_HEADERS_AT {
            cut_kept = Some(cut_headers(&chain_dir(datadir.path())));
        }
        if round == FLIP_PEERS_AT {
            flip_peers(&chain_dir(datadir.path()));
        }

        let started = start(datadir, &args);
        figures.restarts += 1;
        figures.restart_times.push(started.took);
        figures.note_refusal(started.first_error.as_deref());
        node = started.node;
        let lines = node.daemon.lines().to_vec();
        let loaded_height: u64 = field(&lines, "header chain loaded", "height")
            .and_then(|h| h.parse().ok())
            .unwrap_or_else(|| panic!("no `header chain loaded` line:\n{}", lines.join("\n")));
        assert!(
            started.height >= loaded_height,
            "RPC height {} below the loaded {loaded_height}",
            started.height
        );

        if let Some(kept) = cut_kept {
            // The cut is a torn tail: kept records stay, the partial one
            // goes, nothing is set aside, and the rest is fetched again.
            assert!(
                torn_tail(&lines),
                "no torn-tail message:\n{}",
                lines.join("\n")
            );
            assert_eq!(
                field(&lines, "header file ended in a torn write", "partial_bytes").as_deref(),
                Some((RECORD_LEN / 2).to_string().as_str())
            );
            assert_eq!(loaded_height, kept, "the records before the cut are kept");
            assert!(
                !lines
                    .iter()
                    .any(|l| l.contains("set aside") || l.contains("corrupt")),
                "a torn tail must be cut off, not the file set aside:\n{}",
                lines.join("\n")
            );
            cut_message = quote(&lines, "ended in a torn write (a crash");
            // Only what the file held counts from here on.
            peak = loaded_height;
        } else {
            check_plain_restart(round, &lines, started.height, peak, &mut figures);
        }
        if round == FLIP_PEERS_AT {
            assert!(
                lines
                    .iter()
                    .any(|l| l.contains("the address book was unusable and was moved aside")),
                "peers.dat damage not reported:\n{}",
                lines.join("\n")
            );
            assert!(
                chain_dir(node.dir()).join("peers.dat.corrupt-1").exists(),
                "the damaged book was not kept aside"
            );
            flip_message = quote(&lines, "the address book was unusable and was moved aside");
            saved_book = None;
        } else if let Some(book) = saved_book {
            figures.books_reloaded += 1;
            assert_eq!(
                addresses_loaded(&lines),
                Some(book),
                "restart {round}: peers.dat did not load as saved"
            );
        }
        if round == CLEAN_STOP_AFTER {
            let book = addresses_loaded(&lines).expect("peers.dat after a clean stop");
            assert!(book > 0, "the clean stop saved an empty book");
            saved_book = Some(book);
            figures.book_at_stop = book;
        }
    }

    node.wait_for(LIMIT, "the full chain after the last restart", |n| {
        n.block_count() == Some(CHAIN_LEN)
    });
    let final_addresses = node_addresses(&node);
    let final_loaded = addresses_loaded(node.daemon.lines());
    node.stop();

    let n = figures.restart_times.len() as u32;
    let mean = figures.restart_times.iter().sum::<Duration>() / n;
    let max = figures
        .restart_times
        .iter()
        .max()
        .copied()
        .unwrap_or_default();
    eprintln!("kill loop figures (seed {seed}):");
    eprintln!("  chain: {CHAIN_LEN} headers, gossip: {GOSSIP} onion addresses");
    eprintln!(
        "  kills: {} (mid-sync: {}), restarts: {}",
        figures.kills, figures.kills_mid_sync, figures.restarts
    );
    eprintln!(
        "  max height regression after a plain kill: {}",
        figures.max_regression
    );
    eprintln!(
        "  torn tails cut off after a plain kill: {}",
        figures.torn_tails
    );
    eprintln!("  start to first RPC answer: mean {mean:?}, max {max:?} over {n} starts");
    eprintln!(
        "  peers.dat: {} addresses saved by the clean stop, reloaded intact after {} kills",
        figures.book_at_stop, figures.books_reloaded
    );
    eprintln!(
        "  addresses: {last_addresses} before the last kill, {final_loaded:?} loaded from peers.dat \
         at the last restart, {final_addresses} by getnodeaddresses at the end"
    );
    eprintln!(
        "  starts whose first RPC call (made once the port accepted) failed: {}; first error: {:?}",
        figures.refused_first_calls, figures.refusal
    );
    eprintln!("  headers.dat cut: {cut_message}");
    eprintln!("  peers.dat flipped: {flip_message}");
    assert_eq!(
        figures.refused_first_calls, 0,
        "a first RPC call after a restart failed: {:?}",
        figures.refusal
    );
}
