//! Hostile peers against the real daemon: one listening `nightjar` process
//! (regtest, Tor off) synced from a scripted node, and a series of inbound
//! connections from 127.0.0.1 that each misbehave in one way — broken v1
//! framing, broken BIP324 packets, handshake abuse, floods, bad headers, a
//! peer that never reads, a thousand connect/disconnect cycles.
//!
//! For every behaviour the test records how the daemon reacted, the reason
//! it logged for that connection (matched by our local port) and the
//! weight the daemon gives that reason, and checks that the daemon stayed
//! healthy: its well-behaved outbound peer still connected, RPC answering,
//! resident memory under a bound and `headers.dat` unchanged. The table is
//! printed with `--nocapture` (README.md's "Hostile peers" table).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr,
    clippy::print_stdout
)]

#[path = "support/daemon_log.rs"]
mod daemon_log;
#[path = "support/hostile_peer.rs"]
mod hostile_peer;
#[path = "support/nightjar_node.rs"]
mod nightjar_node;
#[path = "support/peer_verdict.rs"]
mod peer_verdict;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bitcoin::block::Header;
use bitcoin::hashes::Hash;
use bitcoin::{BlockHash, TxMerkleNode};
use daemon_log::DisconnectLine;
use hostile_peer::{
    Reaction, Recv, Speaker, Spoil, V1Raw, V2Raw, Watch, checksum, full_handshake, v1_frame,
    watch_raw,
};
use nightjar::chain::regtest_miner::mine_regtest_chain_until;
use nightjar::wire::{
    AddrV2, AddrV2Message, Address, CommandString, GetHeadersMessage, Inventory, MAX_PAYLOAD_LEN,
    NetworkMessage, ServiceFlags, encode_v1,
};
use nightjar_node::Nightjar;
use nightjar_testpeer::node::{NodeSpec, PeerFarm};
use nightjar_testpeer::{REGTEST, version_message};
use peer_verdict::{rss_kib, score_of};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::runtime::Runtime;
use tokio::task::JoinHandle;

/// Headers the daemon syncs before the hostile peers arrive.
const CHAIN_LEN: usize = 2_500;
/// Resident memory the daemon must stay under (a debug build).
const RSS_LIMIT_KIB: u64 = 200 * 1024;
/// How long to wait for a reaction the daemon should have at once.
const PROMPT: Duration = Duration::from_secs(20);
/// How long a connection that should be tolerated is watched.
const TOLERATED: Duration = Duration::from_secs(3);
/// Startup and sync.
const SYNC_LIMIT: Duration = Duration::from_secs(120);
/// Longest we wait for the daemon's timeouts (handshake 30 s, write stall
/// 60 s) to fire.
const SLOW: Duration = Duration::from_secs(100);

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// What the daemon should do with a behaviour's connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// Close it, giving a reason whose weight is at least `min_score`.
    Drop { min_score: u32 },
    /// Close it before the transport handshake completes (logged as a
    /// failed inbound handshake, which carries no score).
    DropInTransport,
    /// Leave it open (the behaviour is odd but harmless).
    Keep,
    /// We hang up; the daemon logs the end without counting it against us.
    Hangup,
}

/// One row of the result table.
#[derive(Debug, Clone)]
struct Row {
    behaviour: String,
    transport: &'static str,
    reaction: Reaction,
    reason: String,
    score: Option<u32>,
    /// The next connection from the host was refused as discouraged.
    discouraged: bool,
    rss_kib: u64,
}

/// Open file descriptors of process `pid`.
fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// The listening daemon, its source of headers and what the checks need.
struct Arena {
    node: Nightjar,
    listen: SocketAddr,
    chain: Vec<Header>,
    headers_file: PathBuf,
    rows: Vec<Row>,
    /// Per address, how many of its end-of-connection log lines earlier
    /// judgements took. A behaviour's connection is found in the log by
    /// its address, and the kernel may give a later connection the local
    /// port of an earlier one: the later one's line is the next one.
    lines_taken: HashMap<String, usize>,
    _source: nightjar_testpeer::node::ScriptedNode,
    _farm: PeerFarm,
}

impl Arena {
    fn start() -> Arena {
        let chain = mine_regtest_chain_until(CHAIN_LEN, unix_now());
        let farm = PeerFarm::new().unwrap();
        let source = farm
            .start_node(NodeSpec::regtest("source").with_headers(chain.clone()))
            .unwrap();
        let port = nightjar_testpeer::free_port().unwrap();
        let listen: SocketAddr = ([127, 0, 0, 1], port).into();
        // `--debug net`: a peer dropped before its handshake completes is
        // logged at debug level only, and those are half the behaviours.
        let mut node = Nightjar::spawn([
            "--no-tor".to_owned(),
            "--no-dnsseed".to_owned(),
            "--log-sensitive".to_owned(),
            "--debug".to_owned(),
            "net".to_owned(),
            "--connect".to_owned(),
            source.addr().to_string(),
            "--listen".to_owned(),
            "--bind".to_owned(),
            listen.to_string(),
        ]);
        node.wait_for(SYNC_LIMIT, "the chain", |n| {
            n.block_count() == Some(CHAIN_LEN as u64)
        });
        let headers_file = node.dir().join("regtest").join("headers.dat");
        Arena {
            node,
            listen,
            chain,
            headers_file,
            rows: Vec::new(),
            lines_taken: HashMap::new(),
            _source: source,
            _farm: farm,
        }
    }

    /// How many log lines so far contain `text`.
    fn count_lines(&self, text: &str) -> usize {
        self.node
            .daemon
            .lines()
            .iter()
            .filter(|l| l.contains(text))
            .count()
    }

    fn pid(&self) -> u32 {
        self.node.daemon.pid()
    }

    /// How the connection from our `port` ended in the daemon's log: the
    /// reason of its `peer disconnected` line, or, for a stream that never
    /// got through the transport handshake, of its `dial failed` line
    /// (`true` then). The reason is the line's last field and logged
    /// unquoted, so it runs to the end of the line.
    fn logged_end(&mut self, port: u16, limit: Duration) -> Option<(String, bool)> {
        let addr = format!("127.0.0.1:{port}");
        let target = format!(" target={addr} ");
        let taken = self.lines_taken.get(&addr).copied().unwrap_or(0);
        let find = |lines: &[String]| {
            lines
                .iter()
                .filter_map(|l| {
                    let line = daemon_log::strip_ansi(l);
                    let transport = if line.contains("dial failed") && line.contains(&target) {
                        true
                    } else if DisconnectLine::parse(l)?.addr.as_deref() == Some(addr.as_str()) {
                        false
                    } else {
                        return None;
                    };
                    Some((line.split_once(" reason=")?.1.trim().to_owned(), transport))
                })
                .nth(taken)
        };
        self.node
            .daemon
            .wait_until(limit, |lines| find(lines).is_some());
        let found = find(self.node.daemon.lines());
        if found.is_some() {
            *self.lines_taken.entry(addr).or_default() += 1;
        }
        found
    }

    /// The daemon is still well: the outbound peer is connected, RPC
    /// answers with the whole chain, memory is bounded and no header was
    /// stored from a hostile peer.
    fn assert_healthy(&self, after: &str) -> u64 {
        let peers = self.node.peers();
        assert!(
            peers.iter().any(|p| p["inbound"] == false),
            "after {after}: the outbound peer is gone: {peers:#?}"
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
        let rss = rss_kib(self.pid());
        assert!(
            rss < RSS_LIMIT_KIB,
            "after {after}: RSS {rss} KiB over {RSS_LIMIT_KIB} KiB"
        );
        rss
    }

    /// Check a finished behaviour against `expect` and record it.
    fn judge(
        &mut self,
        behaviour: &str,
        transport: &'static str,
        expect: Expect,
        (port, reaction): (u16, Reaction),
    ) {
        let (reason, in_transport) = self
            .logged_end(port, PROMPT)
            .unwrap_or_else(|| ("-".into(), false));
        // A failed transport handshake is not scored at all.
        let score = if in_transport {
            None
        } else {
            score_of(&reason)
        };
        if reason == "-" {
            let tag = format!(":{port}");
            for l in self.node.daemon.lines().iter().filter(|l| l.contains(&tag)) {
                eprintln!("  log: {l}");
            }
        }
        eprintln!("{behaviour} [{transport}]: {reaction}; {reason} ({score:?})");
        match expect {
            Expect::Drop { min_score } => {
                assert_eq!(reaction, Reaction::Dropped, "{behaviour} [{transport}]");
                // The daemon ended it, for a reason of its own.
                assert!(
                    !reason.starts_with("peer closed") && !reason.starts_with("I/O error"),
                    "{behaviour} [{transport}]: the daemon did not end it: {reason:?}"
                );
                assert!(
                    score.is_some_and(|s| s >= min_score),
                    "{behaviour} [{transport}]: reason {reason:?} weighs {score:?}, want >= {min_score}"
                );
            }
            Expect::DropInTransport => {
                assert_eq!(reaction, Reaction::Dropped, "{behaviour} [{transport}]");
                assert!(in_transport, "{behaviour} [{transport}]: {reason:?}");
                assert!(
                    !reason.contains("peer closed"),
                    "{behaviour} [{transport}]: the daemon did not end it: {reason:?}"
                );
            }
            Expect::Keep => {
                assert_eq!(reaction, Reaction::Kept, "{behaviour} [{transport}]");
                // Our own hang-up afterwards is the logged reason.
                assert_eq!(score, Some(0), "{behaviour} [{transport}]: {reason:?}");
            }
            Expect::Hangup => {
                assert_eq!(reaction, Reaction::WeClosed, "{behaviour} [{transport}]");
                assert_eq!(score, Some(0), "{behaviour} [{transport}]: {reason:?}");
            }
        }
        let rss_kib = self.assert_healthy(behaviour);
        // A drop that weighs 100 discourages the host (whatever its port),
        // as in Core: prove it, then forgive it so the next behaviour can
        // connect.
        let discouraged = score.is_some_and(|s| s >= 100);
        if discouraged {
            self.assert_discouraged_then_forgive(behaviour, transport);
        }
        self.rows.push(Row {
            behaviour: behaviour.to_owned(),
            transport,
            reaction,
            reason,
            score,
            discouraged,
            rss_kib,
        });
    }

    /// A new connection from this host is refused at once as discouraged;
    /// `clearbanned` lifts it.
    fn assert_discouraged_then_forgive(&mut self, behaviour: &str, transport: &str) {
        use std::io::Read;
        // This connection's refusal comes after every line logged so far
        // (an earlier refusal may name the same local port).
        let from = self.node.daemon.lines().len();
        let mut stream = std::net::TcpStream::connect(self.listen).unwrap();
        let port = stream.local_addr().unwrap().port();
        stream.set_read_timeout(Some(PROMPT)).unwrap();
        let mut buf = [0u8; 1];
        let closed = match stream.read(&mut buf) {
            Ok(0) => true,
            Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
            Ok(_) => false,
        };
        assert!(
            closed,
            "after {behaviour} [{transport}]: the host was not discouraged"
        );
        let tag = format!("127.0.0.1:{port}");
        let logged = self.node.daemon.wait_until(PROMPT, |lines| {
            lines.get(from..).unwrap_or_default().iter().any(|l| {
                l.contains("inbound refused") && l.contains(&tag) && l.contains("discouraged")
            })
        });
        assert!(
            logged,
            "after {behaviour} [{transport}]: no refusal as discouraged in the log"
        );
        assert!(self.node.rpc(&["clearbanned"]).is_some(), "clearbanned");
    }

    /// The result table, Markdown.
    fn table(&self) -> String {
        let mut out = String::from(
            "| behaviour | transport | reaction | reason | score | host discouraged | RSS KiB |\n|---|---|---|---|---|---|---|\n",
        );
        for r in &self.rows {
            let score = r.score.map_or("-".to_owned(), |s| s.to_string());
            let discouraged = if r.discouraged { "yes" } else { "-" };
            out.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} | {} |\n",
                r.behaviour, r.transport, r.reaction, r.reason, score, discouraged, r.rss_kib
            ));
        }
        out
    }
}

// === BEHAVIOURS ===
//
// Each returns our local port (to find the connection in the log) and how
// the connection ended.

/// How long to watch a connection whose reaction should be `expect`.
fn watch_time(expect: Expect) -> Duration {
    match expect {
        Expect::Keep => TOLERATED,
        _ => PROMPT,
    }
}

fn hostile_version() -> nightjar::wire::VersionMessage {
    version_message(0x4105_71e0, 0, "/hostile:0.1/")
}

/// Handshake fully, then send `msgs` (stopping if a write fails), then
/// watch for `limit`.
async fn after_handshake<P: Speaker>(
    listen: SocketAddr,
    msgs: Vec<NetworkMessage>,
    limit: Duration,
) -> (u16, Reaction) {
    let mut peer = P::open(listen, REGTEST).await.unwrap();
    full_handshake(&mut peer, hostile_version()).await.unwrap();
    for msg in &msgs {
        if peer.send_msg(msg).await.is_err() {
            return (peer.port(), Reaction::Dropped);
        }
    }
    let reaction = peer.watch(limit).await;
    (peer.port(), still_serving(&mut peer, reaction).await)
}

/// A connection the daemon kept must still be served: a `ping` gets its
/// `pong`. `Unserved` if not.
async fn still_serving<P: Speaker>(peer: &mut P, reaction: Reaction) -> Reaction {
    const NONCE: u64 = 0x5eed_f00d;
    if reaction != Reaction::Kept {
        return reaction;
    }
    if peer.send_msg(&NetworkMessage::Ping(NONCE)).await.is_err() {
        return Reaction::Dropped;
    }
    let deadline = Instant::now() + PROMPT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match peer.recv_within(left).await {
            Recv::Msg(NetworkMessage::Pong(NONCE)) => return Reaction::Kept,
            Recv::Msg(_) => {}
            Recv::Closed(_) => return Reaction::Dropped,
            Recv::Silent => return Reaction::Unserved,
        }
    }
}

/// A v1 session after its handshake, then `bytes` as they are.
async fn v1_raw_after_handshake(
    listen: SocketAddr,
    bytes: Vec<u8>,
    limit: Duration,
) -> (u16, Reaction) {
    let mut peer = V1Raw::connect(listen, REGTEST).await.unwrap();
    full_handshake(&mut peer, hostile_version()).await.unwrap();
    if peer.send_raw(&bytes).await.is_err() {
        return (peer.port, Reaction::Dropped);
    }
    let reaction = peer.watch(limit).await;
    (peer.port, still_serving(&mut peer, reaction).await)
}

/// A fresh TCP stream that sends `bytes` before anything else.
async fn raw_first(listen: SocketAddr, bytes: Vec<u8>, limit: Duration) -> (u16, Reaction) {
    let mut s = TcpStream::connect(listen).await.unwrap();
    let port = s.local_addr().unwrap().port();
    if s.write_all(&bytes).await.is_err() {
        return (port, Reaction::Dropped);
    }
    (port, watch_raw(&mut s, limit).await)
}

/// `msg` sent before `version`.
async fn before_version<P: Speaker>(listen: SocketAddr, msg: NetworkMessage) -> (u16, Reaction) {
    let mut peer = P::open(listen, REGTEST).await.unwrap();
    peer.send_msg(&msg).await.unwrap();
    (peer.port(), peer.watch(PROMPT).await)
}

/// `version`, then silence instead of `verack`.
async fn never_verack<P: Speaker>(listen: SocketAddr) -> (u16, Reaction) {
    let mut peer = P::open(listen, REGTEST).await.unwrap();
    peer.send_msg(&NetworkMessage::Version(hostile_version()))
        .await
        .unwrap();
    (peer.port(), peer.watch(SLOW).await)
}

/// `bytes` written one per second until the daemon hangs up.
async fn slowloris(listen: SocketAddr, bytes: Vec<u8>) -> (u16, Reaction) {
    let mut s = TcpStream::connect(listen).await.unwrap();
    let port = s.local_addr().unwrap().port();
    let mut buf = [0u8; 4096];
    for b in bytes {
        if s.write_all(&[b]).await.is_err() {
            return (port, Reaction::Dropped);
        }
        // The pause doubles as the watch: EOF ends the behaviour.
        if let Ok(Ok(0) | Err(_)) =
            tokio::time::timeout(Duration::from_secs(1), s.read(&mut buf)).await
        {
            return (port, Reaction::Dropped);
        }
    }
    (port, watch_raw(&mut s, SLOW).await)
}

/// A v1 peer with a tiny receive buffer that asks for 2 000 headers again
/// and again and never reads; it only checks whether its stream is still
/// up. Also returns the peak RSS seen meanwhile.
async fn never_reads(listen: SocketAddr, pid: u32) -> ((u16, Reaction), u64) {
    let mut peer = V1Raw::connect(listen, REGTEST).await.unwrap();
    full_handshake(&mut peer, hostile_version()).await.unwrap();
    socket2::SockRef::from(&*peer.stream())
        .set_recv_buffer_size(4096)
        .unwrap();
    let genesis = bitcoin::blockdata::constants::genesis_block(bitcoin::Network::Regtest);
    let ask = NetworkMessage::GetHeaders(GetHeadersMessage::new(
        vec![genesis.block_hash()],
        BlockHash::all_zeros(),
    ));
    // Within the message burst: the point is the replies, not a flood.
    for _ in 0..400 {
        if peer.send(&ask).await.is_err() {
            return ((peer.port, Reaction::Dropped), rss_kib(pid));
        }
    }
    let mut peak = rss_kib(pid);
    let deadline = Instant::now() + SLOW;
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_secs(2)).await;
        peak = peak.max(rss_kib(pid));
        // A write to a stream the daemon reset fails (the first one after
        // the reset may still succeed, the next does not).
        if peer.send(&NetworkMessage::Ping(1)).await.is_err() {
            return ((peer.port, Reaction::Dropped), peak);
        }
    }
    ((peer.port, Reaction::Kept), peak)
}

/// `n` addresses, distinct, routable-looking.
fn addrs(n: usize) -> Vec<(u32, Address)> {
    (0..n)
        .map(|i| {
            let ip = [11, (i >> 16) as u8, (i >> 8) as u8, i as u8];
            let sa = SocketAddr::from((ip, 8333));
            (unix_now() as u32, Address::new(&sa, ServiceFlags::NETWORK))
        })
        .collect()
}

fn addrs_v2(n: usize) -> Vec<AddrV2Message> {
    (0..n)
        .map(|i| AddrV2Message {
            time: unix_now() as u32,
            services: ServiceFlags::NETWORK,
            addr: AddrV2::Ipv4([11, (i >> 16) as u8, (i >> 8) as u8, i as u8].into()),
            port: 8333,
        })
        .collect()
}

fn unknown_command(i: usize) -> NetworkMessage {
    NetworkMessage::Unknown {
        command: CommandString::try_from("hostilecmd").unwrap(),
        payload: (i as u32).to_le_bytes().to_vec(),
    }
}

/// A header on `prev` whose proof of work is valid (`valid`) or not.
fn header_on(prev: &Header, prev_hash: BlockHash, salt: u32, valid: bool) -> Header {
    let mut h = Header {
        version: prev.version,
        prev_blockhash: prev_hash,
        merkle_root: TxMerkleNode::from_byte_array([salt as u8; 32]),
        time: prev.time + 1,
        bits: prev.bits,
        nonce: salt.wrapping_mul(7919),
    };
    while h.target().is_met_by(h.block_hash()) != valid {
        h.nonce = h.nonce.wrapping_add(1);
    }
    h
}

/// A PoW-valid header whose parent nobody knows.
fn orphan_header(tip: &Header, salt: u32) -> Header {
    header_on(
        tip,
        BlockHash::from_byte_array([salt as u8 ^ 0xa5; 32]),
        salt,
        true,
    )
}

/// The behaviours that wait for the daemon's own timeouts, running in the
/// background while the others go on.
struct Background {
    verack_v1: JoinHandle<(u16, Reaction)>,
    verack_v2: JoinHandle<(u16, Reaction)>,
    loris_v1: JoinHandle<(u16, Reaction)>,
    loris_v2: JoinHandle<(u16, Reaction)>,
    ping_first: JoinHandle<(u16, Reaction)>,
    reader: JoinHandle<((u16, Reaction), u64)>,
}

impl Background {
    fn start(rt: &Runtime, listen: SocketAddr, pid: u32) -> Background {
        let version_frame = encode_v1(REGTEST, &NetworkMessage::Version(hostile_version()));
        Background {
            verack_v1: rt.spawn(never_verack::<V1Raw>(listen)),
            verack_v2: rt.spawn(never_verack::<V2Raw>(listen)),
            loris_v1: rt.spawn(slowloris(listen, version_frame)),
            loris_v2: rt.spawn(slowloris(listen, vec![0x5a; 64])),
            // A v1 stream is recognised by its first frame being `version`;
            // any other first frame is taken for the start of a v2 key
            // exchange.
            ping_first: rt.spawn(raw_first(
                listen,
                encode_v1(REGTEST, &NetworkMessage::Ping(1)),
                SLOW,
            )),
            reader: rt.spawn(never_reads(listen, pid)),
        }
    }
}

/// Broken v1 framing after a handshake, and garbage before one.
fn v1_framing(arena: &mut Arena, rt: &Runtime) {
    let listen = arena.listen;
    let magic = REGTEST.to_bytes();
    let ping = encode_v1(REGTEST, &NetworkMessage::Ping(7));
    let ping_payload = 7u64.to_le_bytes();

    let mut bad_magic = ping.clone();
    bad_magic[..4].copy_from_slice(&[0xf9, 0xbe, 0xb4, 0xd9]);
    let r = rt.block_on(v1_raw_after_handshake(listen, bad_magic, PROMPT));
    arena.judge("bad magic", "v1", Expect::Drop { min_score: 100 }, r);

    let bad_sum = v1_frame(magic, "ping", 8, [0; 4], &ping_payload);
    let r = rt.block_on(v1_raw_after_handshake(listen, bad_sum, PROMPT));
    arena.judge("bad checksum", "v1", Expect::Drop { min_score: 100 }, r);

    let over = v1_frame(magic, "block", (MAX_PAYLOAD_LEN + 1) as u32, [0; 4], &[]);
    let r = rt.block_on(v1_raw_after_handshake(listen, over, PROMPT));
    arena.judge(
        "length over maximum",
        "v1",
        Expect::Drop { min_score: 100 },
        r,
    );

    let r = rt.block_on(async {
        let mut peer = V1Raw::connect(listen, REGTEST).await.unwrap();
        full_handshake(&mut peer, hostile_version()).await.unwrap();
        let frame = v1_frame(magic, "ping", 8, checksum(&ping_payload), &ping_payload);
        peer.send_raw(&frame[..28]).await.unwrap();
        peer.finish().await.unwrap();
        // Stay to read, so that the daemon meets our EOF mid-frame rather
        // than a reset when it next writes.
        peer.watch(PROMPT).await;
        (peer.port, Reaction::WeClosed)
    });
    arena.judge("truncated frame, then close", "v1", Expect::Hangup, r);

    let unknown = v1_frame(
        magic,
        "hostilecmd",
        4,
        checksum(&[1, 2, 3, 4]),
        &[1, 2, 3, 4],
    );
    let r = rt.block_on(v1_raw_after_handshake(listen, unknown, TOLERATED));
    arena.judge("unknown command", "v1", Expect::Keep, r);

    let garbage: Vec<u8> = (0..300u32).map(|i| (i * 37 + 11) as u8).collect();
    let r = rt.block_on(v1_raw_after_handshake(listen, garbage, PROMPT));
    arena.judge(
        "garbage after handshake",
        "v1",
        Expect::Drop { min_score: 100 },
        r,
    );

    // Before any transport: garbage where the v2 key exchange goes.
    let noise: Vec<u8> = (0..64 + 5_000u32).map(|i| (i * 131 + 7) as u8).collect();
    let r = rt.block_on(raw_first(listen, noise, PROMPT));
    arena.judge(
        "64 random bytes then 5000 more",
        "v2 handshake",
        Expect::DropInTransport,
        r,
    );
}

/// Spoiled and decoy BIP324 packets in an established v2 session.
fn v2_packets(arena: &mut Arena, rt: &Runtime) {
    let listen = arena.listen;
    let r = rt.block_on(async {
        let mut peer = V2Raw::connect(listen, REGTEST).await.unwrap();
        full_handshake(&mut peer, hostile_version()).await.unwrap();
        peer.send_spoiled(&NetworkMessage::Ping(9), Spoil::AuthTag)
            .await
            .unwrap();
        (peer.port, peer.watch(PROMPT).await)
    });
    arena.judge("bad auth tag", "v2", Expect::Drop { min_score: 100 }, r);

    let r = rt.block_on(async {
        let mut peer = V2Raw::connect(listen, REGTEST).await.unwrap();
        full_handshake(&mut peer, hostile_version()).await.unwrap();
        peer.send_spoiled(&NetworkMessage::Ping(9), Spoil::Length)
            .await
            .unwrap();
        (peer.port, peer.watch(PROMPT).await)
    });
    arena.judge("bad length", "v2", Expect::Drop { min_score: 100 }, r);

    let r = rt.block_on(async {
        let mut peer = V2Raw::connect(listen, REGTEST).await.unwrap();
        full_handshake(&mut peer, hostile_version()).await.unwrap();
        for _ in 0..2_000 {
            if peer.send_decoy(1_000).await.is_err() {
                return (peer.port, Reaction::Dropped);
            }
        }
        let reaction = peer.watch(TOLERATED).await;
        (peer.port, still_serving(&mut peer, reaction).await)
    });
    arena.judge("2000 decoy packets of 1 kB", "v2", Expect::Keep, r);

    let r = rt.block_on(async {
        let mut peer = V2Raw::connect(listen, REGTEST).await.unwrap();
        full_handshake(&mut peer, hostile_version()).await.unwrap();
        for _ in 0..12_000 {
            if peer.send_decoy(1_000).await.is_err() {
                return (peer.port, Reaction::Dropped);
            }
        }
        let reaction = peer.watch(TOLERATED).await;
        (peer.port, still_serving(&mut peer, reaction).await)
    });
    // Decoys are ignored but their bytes are charged with the next
    // message: 12 MB of them and then a ping is over the 8 MB byte burst.
    arena.judge(
        "12000 decoy packets of 1 kB, then a ping",
        "v2",
        Expect::Drop { min_score: 100 },
        r,
    );
}

/// Messages out of the version handshake's order, and oversized `version`.
fn handshake_abuse(arena: &mut Arena, rt: &Runtime) {
    let listen = arena.listen;
    let r = rt.block_on(before_version::<V2Raw>(listen, NetworkMessage::Ping(1)));
    arena.judge(
        "ping before version",
        "v2",
        Expect::Drop { min_score: 50 },
        r,
    );

    let r = rt.block_on(before_version::<V2Raw>(listen, NetworkMessage::Verack));
    arena.judge(
        "verack before version",
        "v2",
        Expect::Drop { min_score: 50 },
        r,
    );
    let r = rt.block_on(after_handshake::<V1Raw>(
        listen,
        vec![NetworkMessage::Verack],
        PROMPT,
    ));
    arena.judge("second verack", "v1", Expect::Drop { min_score: 50 }, r);
    let r = rt.block_on(after_handshake::<V2Raw>(
        listen,
        vec![NetworkMessage::SendAddrV2],
        PROMPT,
    ));
    arena.judge(
        "sendaddrv2 after verack",
        "v2",
        Expect::Drop { min_score: 50 },
        r,
    );

    let again = vec![NetworkMessage::Version(hostile_version())];
    let r = rt.block_on(after_handshake::<V1Raw>(listen, again.clone(), PROMPT));
    arena.judge("second version", "v1", Expect::Drop { min_score: 50 }, r);
    let r = rt.block_on(after_handshake::<V2Raw>(listen, again, PROMPT));
    arena.judge("second version", "v2", Expect::Drop { min_score: 50 }, r);

    let long_agent = NetworkMessage::Version(version_message(3, 0, &"a".repeat(300)));
    let r = rt.block_on(before_version::<V1Raw>(listen, long_agent.clone()));
    arena.judge(
        "user agent of 300 bytes",
        "v1",
        Expect::Drop { min_score: 100 },
        r,
    );
    let r = rt.block_on(before_version::<V2Raw>(listen, long_agent));
    arena.judge(
        "user agent of 300 bytes",
        "v2",
        Expect::Drop { min_score: 100 },
        r,
    );
}

/// Oversized and too many messages after a full handshake.
fn floods(arena: &mut Arena, rt: &Runtime) {
    let listen = arena.listen;
    type Case = (&'static str, Vec<NetworkMessage>, Expect);
    let genesis = bitcoin::blockdata::constants::genesis_block(bitcoin::Network::Regtest);
    let floods: Vec<Case> = vec![
        (
            "addr with 1001 entries",
            vec![NetworkMessage::Addr(addrs(1_001))],
            Expect::Drop { min_score: 100 },
        ),
        (
            "addrv2 with 1001 entries",
            vec![NetworkMessage::AddrV2(addrs_v2(1_001))],
            Expect::Drop { min_score: 100 },
        ),
        (
            "5000 pings",
            (0..5_000).map(NetworkMessage::Ping).collect(),
            Expect::Drop { min_score: 100 },
        ),
        (
            "inv with 50001 entries",
            vec![NetworkMessage::Inv(
                (0..50_001u32)
                    .map(|i| {
                        let mut h = [0u8; 32];
                        h[..4].copy_from_slice(&i.to_le_bytes());
                        Inventory::Block(BlockHash::from_byte_array(h))
                    })
                    .collect(),
            )],
            Expect::Drop { min_score: 100 },
        ),
        (
            "1000 unknown commands",
            (0..1_000).map(unknown_command).collect(),
            Expect::Drop { min_score: 100 },
        ),
        (
            "getheaders with 102-hash locator",
            vec![NetworkMessage::GetHeaders(GetHeadersMessage::new(
                vec![genesis.block_hash(); 102],
                BlockHash::all_zeros(),
            ))],
            Expect::Drop { min_score: 100 },
        ),
        (
            "headers with 2001 entries",
            vec![NetworkMessage::Headers(arena.chain[..2_001].to_vec())],
            // A nuisance worth 20 points (as Core before v25), not a drop.
            Expect::Keep,
        ),
        (
            "5 headers messages of 2001 entries",
            vec![NetworkMessage::Headers(arena.chain[..2_001].to_vec()); 5],
            Expect::Drop { min_score: 100 },
        ),
    ];
    for (name, msgs, expect) in floods {
        let r = rt.block_on(after_handshake::<V1Raw>(
            listen,
            msgs.clone(),
            watch_time(expect),
        ));
        arena.judge(name, "v1", expect, r);
        let r = rt.block_on(after_handshake::<V2Raw>(listen, msgs, watch_time(expect)));
        arena.judge(name, "v2", expect, r);
    }
}

/// Headers that must be refused and never stored.
fn bad_headers(arena: &mut Arena, rt: &Runtime) {
    let listen = arena.listen;
    let tip = arena.chain[CHAIN_LEN - 1];
    // Ten unconnecting messages in a row cost 20 points: a few are
    // tolerated (a peer may be mid-reorg), fifty add up to a drop.
    let unconnecting = |n: u32| -> Vec<NetworkMessage> {
        (0..n)
            .map(|i| NetworkMessage::Headers(vec![orphan_header(&tip, i)]))
            .collect()
    };
    let r = rt.block_on(after_handshake::<V1Raw>(
        listen,
        unconnecting(12),
        TOLERATED,
    ));
    arena.judge("12 unconnecting headers messages", "v1", Expect::Keep, r);
    let r = rt.block_on(after_handshake::<V2Raw>(listen, unconnecting(60), PROMPT));
    arena.judge(
        "60 unconnecting headers messages",
        "v2",
        Expect::Drop { min_score: 100 },
        r,
    );

    let bad_pow = header_on(&tip, tip.block_hash(), 77, false);
    let r = rt.block_on(after_handshake::<V1Raw>(
        listen,
        vec![NetworkMessage::Headers(vec![bad_pow])],
        PROMPT,
    ));
    arena.judge(
        "header with bad proof of work",
        "v1",
        Expect::Drop { min_score: 100 },
        r,
    );

    let r = rt.block_on(after_handshake::<V2Raw>(
        listen,
        vec![NetworkMessage::Headers(vec![orphan_header(&tip, 200)])],
        TOLERATED,
    ));
    arena.judge("one header with unknown prev", "v2", Expect::Keep, r);
}

/// The behaviours started in the background, once their timeouts fired.
fn slow_ones(arena: &mut Arena, rt: &Runtime, bg: Background) {
    let r = rt.block_on(bg.verack_v1).unwrap();
    arena.judge("never sends verack", "v1", Expect::Drop { min_score: 0 }, r);
    let r = rt.block_on(bg.verack_v2).unwrap();
    arena.judge("never sends verack", "v2", Expect::Drop { min_score: 0 }, r);
    let r = rt.block_on(bg.loris_v1).unwrap();
    arena.judge(
        "slowloris version, 1 byte/s",
        "v1",
        Expect::Drop { min_score: 0 },
        r,
    );
    let r = rt.block_on(bg.loris_v2).unwrap();
    arena.judge(
        "slowloris v2 key, 1 byte/s",
        "v2 handshake",
        Expect::DropInTransport,
        r,
    );
    let r = rt.block_on(bg.ping_first).unwrap();
    arena.judge("ping before version", "v1", Expect::DropInTransport, r);
    let (r, peak) = rt.block_on(bg.reader).unwrap();
    eprintln!("never reads: peak RSS {peak} KiB");
    assert!(
        peak < RSS_LIMIT_KIB,
        "peak RSS {peak} KiB while a peer did not read"
    );
    arena.judge(
        &format!("never reads, 400 getheaders (peak RSS {peak} KiB)"),
        "v1",
        Expect::Drop { min_score: 0 },
        r,
    );
}

/// A thousand connect/disconnect cycles, then a proper peer.
fn churn(arena: &mut Arena, rt: &Runtime) {
    let listen = arena.listen;
    let pid = arena.pid();
    let fds_before = fd_count(pid);
    let refused_before = arena.count_lines("inbound refused");
    rt.block_on(async {
        for _ in 0..1_000 {
            drop(TcpStream::connect(listen).await.unwrap());
        }
    });
    // The churn may have filled the group's share for a moment; the
    // daemon must let go of every stream (it sees each one's EOF) and then
    // let a proper peer in.
    let settle = Instant::now() + PROMPT;
    while fd_count(pid) > fds_before + 2 && Instant::now() < settle {
        std::thread::sleep(Duration::from_millis(200));
    }
    let fds_after = fd_count(pid);
    arena.node.daemon.pump(Duration::ZERO);
    let refused = arena.count_lines("inbound refused") - refused_before;
    eprintln!("churn: daemon fds {fds_before} -> {fds_after}; {refused} of 1000 refused at accept");
    assert!(
        fds_after <= fds_before + 2,
        "the churn left descriptors behind: {fds_before} -> {fds_after}"
    );
    let r = rt.block_on(after_handshake::<V1Raw>(listen, Vec::new(), TOLERATED));
    arena.judge(
        "1000 connect/disconnect cycles, then a good peer",
        "v1",
        Expect::Keep,
        r,
    );
}

#[test]
fn hostile_peers_are_dropped_and_scored_and_the_daemon_stays_well() {
    let mut arena = Arena::start();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let listen = arena.listen;
    let pid = arena.pid();
    let rss_start = arena.assert_healthy("sync");
    eprintln!("synced; RSS {rss_start} KiB");

    // The slow ones wait for the daemon's own timeouts: run them alongside
    // (six connections plus the one in the foreground stay within the
    // eight one network group may hold).
    let bg = Background::start(&rt, listen, pid);

    v1_framing(&mut arena, &rt);
    v2_packets(&mut arena, &rt);
    handshake_abuse(&mut arena, &rt);
    floods(&mut arena, &rt);
    bad_headers(&mut arena, &rt);
    slow_ones(&mut arena, &rt, bg);
    churn(&mut arena, &rt);

    let table = arena.table();
    println!("\n{table}");
    arena.node.stop();
}
