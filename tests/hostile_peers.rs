//! Hostile peers the daemon dials: one `nightjar` process (regtest, Tor
//! off) synced from a well-behaved scripted node, then told with
//! `addnode … onetry` to dial a series of hostile listeners on 127.0.0.1,
//! each misbehaving in one way over BIP324.
//!
//! This is the outbound half of the hostile-peer suite; the inbound half
//! (peers that connect to the daemon's listener) is `tests/hostile_daemon.rs`.
//! For each behaviour the test reads the reason the daemon logged for the
//! connection (matched by the listener's port), turns it into the weight
//! the daemon gives it, and checks the daemon stayed well: its good peer
//! still connected, `getblockcount` answering, resident memory bounded and
//! `headers.dat` unchanged. The table is printed with `--nocapture`
//! (README.md's "Hostile peers" table).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr,
    clippy::print_stdout
)]

#[path = "support/daemon_log.rs"]
mod daemon_log;
#[path = "support/nightjar_node.rs"]
mod nightjar_node;
#[path = "support/peer_verdict.rs"]
mod peer_verdict;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bitcoin::block::Header;
use bitcoin::hashes::Hash;
use bitcoin::{BlockHash, TxMerkleNode};
use daemon_log::DisconnectLine;
use nightjar::chain::regtest_miner::mine_regtest_chain_until;
use nightjar::wire::{Address, CommandString, GetHeadersMessage, NetworkMessage, ServiceFlags};
use nightjar_node::Nightjar;
use nightjar_testpeer::node::{NodeSpec, PeerFarm, ScriptedNode};
use nightjar_testpeer::{REGTEST, TestPeer, version_message};
use peer_verdict::{rss_kib, score_of};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Headers the daemon syncs from its good peer first.
const CHAIN_LEN: usize = 300;
/// Resident memory the daemon must stay under (a debug build).
const RSS_LIMIT_KIB: u64 = 200 * 1024;
/// Startup and sync.
const SYNC_LIMIT: Duration = Duration::from_secs(120);
/// Longest wait for a reaction, past the daemon's 30 s handshake timeout.
const SLOW: Duration = Duration::from_secs(60);
/// How long a connection that should be tolerated is watched.
const TOLERATED: Duration = Duration::from_secs(3);

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The weight of a logged reason; a dial that failed in the transport
/// handshake ("v2 handshake failed") is not scored at all.
fn weight(reason: &str) -> Option<u32> {
    if reason.starts_with("v2 handshake failed") {
        return Some(0);
    }
    score_of(reason)
}

/// What the daemon should do with a hostile listener's connection.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// Close it with a reason weighing at least `min_score`.
    Drop { min_score: u32 },
    /// Keep it: the behaviour is odd but harmless.
    Keep,
    /// Keep it but count `points` against it (logged as `peer misbehaved`).
    Scored { points: u32 },
}

/// One row of the result table.
struct Row {
    behaviour: &'static str,
    transport: &'static str,
    reason: String,
    score: Option<u32>,
    rss_kib: u64,
}

/// The daemon, its good peer and the collected rows.
struct Arena {
    node: Nightjar,
    chain: Vec<Header>,
    headers_file: PathBuf,
    rows: Vec<Row>,
    /// The transport the behaviours now being judged use.
    transport: &'static str,
    good: ScriptedNode,
    _farm: PeerFarm,
}

impl Arena {
    fn start() -> Arena {
        let chain = mine_regtest_chain_until(CHAIN_LEN, unix_now());
        let farm = PeerFarm::new().unwrap();
        let good = farm
            .start_node(NodeSpec::regtest("good").with_headers(chain.clone()))
            .unwrap();
        // `--debug net`: a dial dropped before its handshake completes is
        // logged at debug level only.
        let mut node = Nightjar::spawn([
            "--no-tor".to_owned(),
            "--no-dnsseed".to_owned(),
            "--log-sensitive".to_owned(),
            "--debug".to_owned(),
            "net".to_owned(),
            "--connect".to_owned(),
            good.addr().to_string(),
        ]);
        node.wait_for(SYNC_LIMIT, "the chain", |n| {
            n.block_count() == Some(CHAIN_LEN as u64)
        });
        let headers_file = node.dir().join("regtest").join("headers.dat");
        Arena {
            node,
            chain,
            headers_file,
            rows: Vec::new(),
            transport: "v2",
            good,
            _farm: farm,
        }
    }

    /// A fresh hostile listener, and the daemon told to dial it once.
    async fn dial_me(&self) -> (TcpListener, SocketAddr) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let target = addr.to_string();
        assert!(
            self.node.rpc(&["addnode", &target, "onetry"]).is_some(),
            "addnode {target} onetry"
        );
        (listener, addr)
    }

    /// The reason in the first `peer disconnected` line for `addr`, or in
    /// its `dial failed` line when the daemon gave up before a session
    /// existed. The reason is the line's last field, logged unquoted.
    fn reason_for(&mut self, addr: SocketAddr, limit: Duration) -> Option<String> {
        let addr = addr.to_string();
        let target = format!(" target={addr} ");
        let find = |lines: &[String]| {
            lines.iter().find_map(|l| {
                let ours = DisconnectLine::parse(l)
                    .is_some_and(|d| d.addr.as_deref() == Some(addr.as_str()))
                    || (l.contains("dial failed") && l.contains(&target));
                ours.then_some(())?;
                let line = daemon_log::strip_ansi(l);
                Some(line.split_once(" reason=")?.1.trim().to_owned())
            })
        };
        self.node.daemon.wait_until(limit, |l| find(l).is_some());
        find(self.node.daemon.lines())
    }

    /// What the daemon logged about `addr`, for a failure message.
    fn log_about(&self, addr: SocketAddr) -> String {
        let addr = addr.to_string();
        let lines = self.node.daemon.lines().iter();
        lines
            .filter(|l| l.contains(&addr))
            .map(|l| daemon_log::strip_ansi(l))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The running misbehaviour total the daemon logged for `addr`'s
    /// connection (`peer misbehaved … total=N`), if any.
    fn misbehaved_total(&mut self, addr: SocketAddr) -> Option<u32> {
        let addr = addr.to_string();
        let total = |lines: &[String]| {
            let conn = lines.iter().find_map(|l| {
                let f = daemon_log::fields_after(l, "peer connected")?;
                (f.get("addr")? == &addr).then(|| f.get("conn").cloned())?
            })?;
            lines.iter().find_map(|l| {
                let f = daemon_log::fields_after(l, "peer misbehaved")?;
                (f.get("conn")? == &conn).then(|| f.get("total")?.parse().ok())?
            })
        };
        self.node
            .daemon
            .wait_until(TOLERATED, |l| total(l).is_some());
        total(self.node.daemon.lines())
    }

    /// The daemon is still well after `after`; returns its RSS.
    fn assert_healthy(&self, after: &str) -> u64 {
        let peers = self.node.peers();
        let good = self.good.addr().to_string();
        assert!(
            peers.iter().any(|p| p["addr"] == good.as_str()),
            "after {after}: the good peer is gone ({} peers)",
            peers.len()
        );
        assert_eq!(
            self.node.block_count(),
            Some(CHAIN_LEN as u64),
            "after {after}: getblockcount"
        );
        let size = std::fs::metadata(&self.headers_file).unwrap().len();
        assert_eq!(
            size,
            20 + 84 * CHAIN_LEN as u64,
            "after {after}: headers.dat changed size"
        );
        let rss = rss_kib(self.node.daemon.pid());
        assert!(rss < RSS_LIMIT_KIB, "after {after}: RSS {rss} KiB");
        rss
    }

    /// Check the reaction to one behaviour and record it.
    fn judge(&mut self, behaviour: &'static str, addr: SocketAddr, expect: Expect) {
        let limit = match expect {
            Expect::Drop { .. } => SLOW,
            Expect::Keep | Expect::Scored { .. } => TOLERATED,
        };
        let reason = self.reason_for(addr, limit);
        let mut score = reason.as_deref().and_then(weight);
        if let Expect::Scored { points } = expect {
            score = self.misbehaved_total(addr);
            assert_eq!(score, Some(points), "{behaviour}: misbehaviour total");
        }
        eprintln!("{behaviour}: {reason:?} ({score:?})");
        match expect {
            Expect::Drop { min_score } => {
                let r = reason.as_deref().unwrap_or("");
                assert!(
                    !r.is_empty(),
                    "{behaviour}: the daemon kept the peer; its log:\n{}",
                    self.log_about(addr)
                );
                assert!(
                    score.is_some_and(|s| s >= min_score),
                    "{behaviour}: reason {r:?} weighs {score:?}, want >= {min_score}"
                );
            }
            Expect::Keep | Expect::Scored { .. } => assert!(
                reason.is_none(),
                "{behaviour}: dropped a harmless peer: {reason:?}"
            ),
        }
        let rss_kib = self.assert_healthy(behaviour);
        self.rows.push(Row {
            behaviour,
            transport: self.transport,
            reason: reason.unwrap_or_else(|| match expect {
                Expect::Scored { .. } => "kept, points counted".to_owned(),
                _ => "kept (ignored)".to_owned(),
            }),
            score,
            rss_kib,
        });
    }

    fn table(&self) -> String {
        let mut out = String::from(
            "| behaviour | transport | direction | reaction/reason | score | RSS KiB |\n|---|---|---|---|---|---|\n",
        );
        for r in &self.rows {
            let score = r.score.map_or("-".to_owned(), |s| s.to_string());
            out.push_str(&format!(
                "| {} | {} | outbound | {} | {} | {} |\n",
                r.behaviour, r.transport, r.reason, score, r.rss_kib
            ));
        }
        out
    }
}

/// Accept the daemon's dial and complete the BIP324 transport handshake.
async fn accept_v2(listener: &TcpListener) -> TestPeer<TcpStream> {
    let (stream, _) = tokio::time::timeout(SLOW, listener.accept())
        .await
        .expect("the daemon dialled")
        .unwrap();
    TestPeer::accept(stream, REGTEST, false).await.unwrap()
}

/// Accept, complete transport and version handshakes.
async fn handshaken(listener: &TcpListener) -> TestPeer<TcpStream> {
    let mut peer = accept_v2(listener).await;
    peer.answer_handshake(version_message(7, 0, "/hostile:0.1/"))
        .await
        .unwrap();
    peer
}

/// Refuse the daemon's v2 attempt by closing before answering (the
/// daemon then redials a manual peer with v1), accept the v1 redial and
/// complete the version handshake.
async fn handshaken_v1(listener: &TcpListener) -> TestPeer<TcpStream> {
    let (first, _) = tokio::time::timeout(SLOW, listener.accept())
        .await
        .expect("the daemon dialled")
        .unwrap();
    drop(first);
    let (stream, _) = tokio::time::timeout(SLOW, listener.accept())
        .await
        .expect("the daemon redialled with v1")
        .unwrap();
    let mut peer = TestPeer::accept(stream, REGTEST, true).await.unwrap();
    assert_eq!(peer.kind(), nightjar::transport::TransportKind::V1);
    peer.answer_handshake(version_message(7, 0, "/hostile-v1:0.1/"))
        .await
        .unwrap();
    peer
}

/// Keep accepting (and dropping) further dials, e.g. a v1 retry, so the
/// daemon never waits on a connect timeout.
fn swallow(listener: TcpListener) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            drop(s.shutdown().await);
        }
    })
}

/// A header on the tip whose proof of work fails regtest's target.
fn bad_pow_header(tip: &Header) -> Header {
    let mut h = Header {
        version: tip.version,
        prev_blockhash: tip.block_hash(),
        merkle_root: TxMerkleNode::from_byte_array([7; 32]),
        time: tip.time + 1,
        bits: tip.bits,
        nonce: 0,
    };
    while h.validate_pow(h.target()).is_ok() {
        h.nonce += 1;
    }
    h
}

/// `n` distinct addresses.
fn addrs(n: usize) -> Vec<(u32, Address)> {
    (0..n)
        .map(|i| {
            let ip = [11, (i >> 16) as u8, (i >> 8) as u8, i as u8];
            let sa = SocketAddr::from((ip, 8333));
            (unix_now() as u32, Address::new(&sa, ServiceFlags::NETWORK))
        })
        .collect()
}

/// Have the daemon dial a fresh listener, complete the handshake over v2
/// (or, `v1`, refuse v2 so that it redials with v1), send `msg`, and judge
/// the reaction.
async fn offend(
    arena: &mut Arena,
    v1: bool,
    behaviour: &'static str,
    msg: NetworkMessage,
    expect: Expect,
) {
    let (l, addr) = arena.dial_me().await;
    let mut p = if v1 {
        handshaken_v1(&l).await
    } else {
        handshaken(&l).await
    };
    // The daemon may hang up while we write: that is a reaction, judged
    // below, not a failure.
    drop(p.send(msg).await);
    tokio::task::block_in_place(|| arena.judge(behaviour, addr, expect));
    drop(p);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_listeners_the_daemon_dials_are_dropped_and_scored() {
    let mut arena = tokio::task::block_in_place(Arena::start);
    let tip = *arena.chain.last().unwrap();

    // Garbage where the responder's ellswift key and garbage terminator
    // belong.
    let (l, addr) = arena.dial_me().await;
    let (mut s, _) = l.accept().await.unwrap();
    let mut theirs = [0u8; 64];
    s.read_exact(&mut theirs).await.unwrap();
    drop(s.write_all(&[0xa5; 8192]).await);
    let sw = swallow(l);
    tokio::task::block_in_place(|| {
        arena.judge(
            "garbage instead of the v2 handshake",
            addr,
            Expect::Drop { min_score: 0 },
        )
    });
    sw.abort();
    drop(s);

    // `ping` where `version` belongs.
    let (l, addr) = arena.dial_me().await;
    let mut p = accept_v2(&l).await;
    drop(p.send(NetworkMessage::Ping(1)).await);
    tokio::task::block_in_place(|| {
        arena.judge("ping before version", addr, Expect::Drop { min_score: 50 })
    });
    drop(p);

    // A second `version` after the handshake.
    offend(
        &mut arena,
        false,
        "second version",
        NetworkMessage::Version(version_message(8, 0, "/again/")),
        Expect::Drop { min_score: 50 },
    )
    .await;

    // A header on our tip with failing proof of work.
    offend(
        &mut arena,
        false,
        "header with bad proof of work",
        NetworkMessage::Headers(vec![bad_pow_header(&tip)]),
        Expect::Drop { min_score: 100 },
    )
    .await;

    // 2001 headers in one message (Core's limit is 2000): 20 points, kept.
    let many = vec![tip; 2001];
    offend(
        &mut arena,
        false,
        "headers with 2001 entries",
        NetworkMessage::Headers(many),
        Expect::Scored { points: 20 },
    )
    .await;

    // getheaders with a 102-hash locator (Core's limit is 101): Core
    // drops such a peer; nightjar counts 100 points, which drops it too.
    let locator = vec![tip.block_hash(); 102];
    let ask = GetHeadersMessage::new(locator, BlockHash::all_zeros());
    offend(
        &mut arena,
        false,
        "getheaders with a 102-hash locator",
        NetworkMessage::GetHeaders(ask),
        Expect::Drop { min_score: 100 },
    )
    .await;

    // addr with 1001 entries (the limit is 1000).
    offend(
        &mut arena,
        false,
        "addr with 1001 entries",
        NetworkMessage::Addr(addrs(1001)),
        Expect::Drop { min_score: 100 },
    )
    .await;

    // Unknown commands are ignored, as Core does.
    let (l, addr) = arena.dial_me().await;
    let mut p = handshaken(&l).await;
    for i in 0..50u32 {
        let msg = NetworkMessage::Unknown {
            command: CommandString::try_from("hostilecmd").unwrap(),
            payload: i.to_le_bytes().to_vec(),
        };
        p.send(msg).await.unwrap();
    }
    tokio::task::block_in_place(|| arena.judge("50 unknown commands", addr, Expect::Keep));
    drop(p);

    // Never answers with `verack`: the handshake timeout ends it.
    let (l, addr) = arena.dial_me().await;
    let mut p = accept_v2(&l).await;
    let _ = p.recv().await;
    drop(
        p.send(NetworkMessage::Version(version_message(9, 0, "/mute/")))
            .await,
    );
    tokio::task::block_in_place(|| {
        arena.judge("never sends verack", addr, Expect::Drop { min_score: 0 })
    });
    drop(p);

    // The same offences over v1, the fallback manual peers may use.
    arena.transport = "v1";
    offend(
        &mut arena,
        true,
        "second version",
        NetworkMessage::Version(version_message(8, 0, "/again/")),
        Expect::Drop { min_score: 50 },
    )
    .await;

    offend(
        &mut arena,
        true,
        "header with bad proof of work",
        NetworkMessage::Headers(vec![bad_pow_header(&tip)]),
        Expect::Drop { min_score: 100 },
    )
    .await;

    offend(
        &mut arena,
        true,
        "addr with 1001 entries",
        NetworkMessage::Addr(addrs(1001)),
        Expect::Drop { min_score: 100 },
    )
    .await;

    println!("{}", arena.table());
}
