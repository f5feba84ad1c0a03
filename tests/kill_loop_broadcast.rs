//! Crash safety of the private-broadcast queue under `kill -9` (issue 16,
//! item 3): a real regtest `nightjar` holds pending transactions (its Tor
//! client cannot reach any relay, so nothing is ever sent and everything
//! stays pending) and is killed with SIGKILL thirty times, each time while
//! a `sendrawtransaction` may be in flight, and restarted on the same data
//! directory.
//!
//! A transaction whose `sendrawtransaction` answered must be pending after
//! every later restart: the queue is written before the answer. One killed
//! before its answer may or may not be there, and either is right. The
//! queue file must never be set aside as damaged.
//!
//! Random waits come from a seeded generator (`KILL_LOOP_SEED` replays).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr
)]

#[path = "support/daemon_log.rs"]
mod daemon_log;
#[path = "support/dead_tor_network.rs"]
mod dead_tor_network;
#[path = "support/nightjar_node.rs"]
mod nightjar_node;
#[path = "support/sample_tx.rs"]
mod sample_tx;

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::Duration;

use bitcoin::consensus::encode::serialize_hex;
use nightjar_node::Nightjar;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sample_tx::tx;

const KILLS: u8 = 30;
const LIMIT: Duration = Duration::from_secs(60);
/// Longest random wait between starting a submission and the kill.
const MAX_WAIT_MS: u64 = 40;

fn cli(node: &Nightjar) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_nightjar-cli"));
    cmd.arg(format!("-datadir={}", node.dir().display()))
        .arg("-regtest")
        .arg(format!("-rpcport={}", node.rpc_port));
    cmd
}

/// The txids the node lists as pending.
fn pending(node: &Nightjar) -> BTreeSet<String> {
    let info = node
        .rpc(&["getprivatebroadcastinfo"])
        .expect("getprivatebroadcastinfo");
    info["transactions"]
        .as_array()
        .expect("transactions")
        .iter()
        .map(|t| t["txid"].as_str().expect("txid").to_owned())
        .collect()
}

#[test]
fn pending_transactions_survive_thirty_sigkills() {
    let seed = std::env::var("KILL_LOOP_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(16u64);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let net = tempfile::tempdir().unwrap();
    let args = [
        "--no-dnsseed".to_owned(),
        "--tor-network".to_owned(),
        dead_tor_network::write(net.path()).display().to_string(),
    ];
    let mut datadir = tempfile::tempdir().unwrap();
    let mut accepted: BTreeSet<String> = BTreeSet::new();
    let mut unanswered = 0;
    for round in 0..=KILLS {
        let mut node = Nightjar::spawn_in(datadir, args.iter().cloned());
        node.wait_for(LIMIT, "RPC", |n| n.block_count().is_some());
        let listed = pending(&node);
        let lost: Vec<_> = accepted.difference(&listed).collect();
        assert!(
            lost.is_empty(),
            "restart {round}: accepted transactions lost: {lost:?}\n{}",
            node.daemon.lines().join("\n")
        );
        let lines = node.daemon.lines().join("\n");
        // A damaged queue, book or chain file is logged as an error (and
        // the first two as "moved aside").
        assert!(
            !lines.contains("ERROR") && !lines.contains("moved aside"),
            "restart {round}: a file was damaged:\n{lines}"
        );
        // What survived unanswered counts as accepted from now on: it
        // must not vanish later either.
        accepted.extend(listed);
        if round == KILLS {
            node.stop();
            break;
        }

        // One submission that answers, then one the kill may interrupt.
        let first = tx(2 * round + 1);
        let out = cli(&node)
            .args(["sendrawtransaction", &serialize_hex(&first)])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        accepted.insert(first.compute_txid().to_string());

        let second = tx(2 * round + 2);
        let mut child = cli(&node)
            .args(["sendrawtransaction", &serialize_hex(&second)])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(rng.random_range(0..=MAX_WAIT_MS)));
        let (_, dir) = node.sigkill_keeping_data();
        datadir = dir;
        if child.wait().unwrap().success() {
            accepted.insert(second.compute_txid().to_string());
        } else {
            unanswered += 1;
        }
    }
    eprintln!(
        "kill_loop_broadcast: {KILLS} kills, {} transactions accepted and kept, \
         {unanswered} submissions cut off before their answer",
        accepted.len()
    );
    assert!(accepted.len() >= usize::from(KILLS));
}
