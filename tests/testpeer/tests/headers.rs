//! The scripted node serving a header chain, seen from a v2 dialler over
//! loopback: `version`'s start height, `getheaders` answered as Core
//! answers it (2000 at a time, `hash_stop`, unknown locators, reorgs),
//! announcements after `sendheaders`, arbitrary (invalid) chains served by
//! position, and exact statistics.

// Test code: unwrap and panic are how a test fails.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr
)]

use std::net::SocketAddr;
use std::time::Duration;

use bitcoin::BlockHash;
use bitcoin::block::Header;
use bitcoin::hashes::Hash;
use nightjar::chain::regtest_miner::{mine_regtest_branch, mine_regtest_chain, regtest_genesis};
use nightjar::wire::{GetHeadersMessage, NetworkMessage};
use nightjar_testpeer::node::{
    MAX_HEADERS_RESULTS, MAX_LOCATOR_SIZE, NodeSpec, NodeStats, ScriptedNode,
};
use nightjar_testpeer::{REGTEST, Speak, TestPeer, version_message};
use tokio::net::TcpStream;

/// Long enough for a loaded machine; the node answers in microseconds.
const LIMIT: Duration = Duration::from_secs(10);

/// Regtest genesis time plus a day: any start works for the miner.
const START_TIME: u32 = 1_296_688_602 + 86_400;

/// How long to wait for a message the node should not send.
const QUIET: Duration = Duration::from_millis(300);

fn chain(count: usize) -> Vec<Header> {
    mine_regtest_chain(&regtest_genesis(), count, START_TIME)
}

fn hashes(headers: &[Header]) -> Vec<BlockHash> {
    headers.iter().map(Header::block_hash).collect()
}

fn getheaders(locator: Vec<BlockHash>, stop: BlockHash) -> NetworkMessage {
    NetworkMessage::GetHeaders(GetHeadersMessage::new(locator, stop))
}

/// A v2 session with `addr`, handshaken; returns the node's start height.
async fn dial(addr: SocketAddr, nonce: u64) -> (TestPeer<TcpStream>, i32) {
    let stream = TcpStream::connect(addr).await.unwrap();
    let mut peer = TestPeer::connect(stream, REGTEST, Speak::V2).await.unwrap();
    let theirs = peer
        .start_handshake(version_message(nonce, 0, "/syncer/"))
        .await
        .unwrap();
    (peer, theirs.start_height)
}

/// Send `getheaders` and return the `headers` that answers it.
async fn ask(
    peer: &mut TestPeer<TcpStream>,
    locator: Vec<BlockHash>,
    stop: BlockHash,
) -> Vec<Header> {
    peer.send(getheaders(locator, stop)).await.unwrap();
    next_headers(peer).await
}

async fn next_headers(peer: &mut TestPeer<TcpStream>) -> Vec<Header> {
    match peer
        .recv_until(|m| matches!(m, NetworkMessage::Headers(_)))
        .await
        .unwrap()
    {
        NetworkMessage::Headers(h) => h,
        _ => unreachable!(),
    }
}

/// Whether a `headers` arrives within [`QUIET`] (pings are answered by
/// the node, so anything else would be a surprise too).
async fn headers_within_quiet(peer: &mut TestPeer<TcpStream>) -> Option<NetworkMessage> {
    peer.recv_within(QUIET).await.ok()
}

/// Poll the node's statistics from inside its runtime.
async fn wait_stats(node: &ScriptedNode, done: impl Fn(&NodeStats) -> bool) -> NodeStats {
    let deadline = tokio::time::Instant::now() + LIMIT;
    loop {
        let s = node.stats();
        if done(&s) {
            return s;
        }
        assert!(tokio::time::Instant::now() < deadline, "never: {s:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn start(spec: NodeSpec) -> ScriptedNode {
    ScriptedNode::start(&tokio::runtime::Handle::current(), spec).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn five_thousand_headers_are_served_2000_at_a_time_as_core_does() {
    let served = chain(5000);
    let all = hashes(&served);
    let node = start(NodeSpec::regtest("tall").with_headers(served.clone()));
    assert_eq!(node.height(), 5000);
    assert_eq!(node.tip_hash(), all[4999]);
    assert_eq!(node.genesis(), regtest_genesis());
    assert_eq!(node.headers(), served);

    let (mut peer, start_height) = dial(node.addr(), 1).await;
    assert_eq!(start_height, 5000, "version announces the served height");
    let genesis = regtest_genesis().block_hash();
    let zero = BlockHash::all_zeros();

    let first = ask(&mut peer, vec![genesis], zero).await;
    assert_eq!(first.len(), MAX_HEADERS_RESULTS);
    assert_eq!(first, served[..2000]);
    let second = ask(&mut peer, vec![all[1999], genesis], zero).await;
    assert_eq!(second, served[2000..4000]);
    let third = ask(&mut peer, vec![all[3999], all[1999], genesis], zero).await;
    assert_eq!(third.len(), 1000);
    assert_eq!(third, served[4000..]);
    let empty = ask(&mut peer, vec![all[4999], all[3999], genesis], zero).await;
    assert!(
        empty.is_empty(),
        "nothing after the tip: {} headers",
        empty.len()
    );

    // hash_stop ends the answer early, and is included.
    let stopped = ask(&mut peer, vec![genesis], all[9]).await;
    assert_eq!(stopped, served[..10]);
    // A stop hash beyond the 2000 limit does not lift it.
    let capped = ask(&mut peer, vec![genesis], all[4000]).await;
    assert_eq!(capped, served[..2000]);
    // A stop hash before the fork point is never reached.
    let past = ask(&mut peer, vec![all[99]], all[9]).await;
    assert_eq!(past, served[100..2100]);

    // The first known locator hash counts, unknown ones are skipped, and
    // a locator with nothing known starts from genesis.
    let unknown = BlockHash::from_byte_array([7; 32]);
    let skipped = ask(&mut peer, vec![unknown, all[4989], all[10]], zero).await;
    assert_eq!(skipped, served[4990..]);
    let from_genesis = ask(&mut peer, vec![unknown], all[2]).await;
    assert_eq!(from_genesis, served[..3]);

    // An empty locator asks for the stop hash's header alone.
    let alone = ask(&mut peer, Vec::new(), all[41]).await;
    assert_eq!(alone, [served[41]]);
    let genesis_alone = ask(&mut peer, Vec::new(), genesis).await;
    assert_eq!(genesis_alone, [regtest_genesis()]);

    let stats = node.stats();
    assert_eq!(stats.getheaders_received, 11);
    assert_eq!(
        stats.headers_sent,
        2000 + 2000 + 1000 + 10 + 2000 + 2000 + 10 + 3 + 1 + 1
    );
    assert_eq!(stats.headers_announced, 0);
    assert_eq!(stats.sendheaders_received, 0);
    let record = &stats.connections[0];
    assert_eq!(record.getheaders_count, 11);
    assert_eq!(record.headers_sent, stats.headers_sent);
    assert!(!record.sendheaders);
    assert_eq!(
        record.last_getheaders,
        Some(GetHeadersMessage::new(Vec::new(), genesis))
    );

    // An empty locator with an unknown stop hash gets no answer at all;
    // the connection stays up (a ping still gets its pong).
    peer.send(getheaders(Vec::new(), unknown)).await.unwrap();
    peer.send(NetworkMessage::Ping(5)).await.unwrap();
    assert_eq!(peer.recv().await.unwrap(), NetworkMessage::Pong(5));
    let stats = node.stats();
    assert_eq!(stats.getheaders_received, 12);
    assert_eq!(stats.headers_sent, 9025);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_without_headers_serves_genesis_only() {
    let node = start(NodeSpec::regtest("short"));
    assert_eq!(
        (node.height(), node.tip_hash()),
        (0, regtest_genesis().block_hash())
    );
    let (mut peer, start_height) = dial(node.addr(), 2).await;
    assert_eq!(start_height, 0);
    let genesis = regtest_genesis().block_hash();
    assert!(
        ask(&mut peer, vec![genesis], BlockHash::all_zeros())
            .await
            .is_empty()
    );
    let stats = node.stats();
    assert_eq!((stats.getheaders_received, stats.headers_sent), (1, 0));
}

#[tokio::test(flavor = "multi_thread")]
async fn sendheaders_is_recorded_and_gets_new_headers_announced() {
    let first = chain(100);
    let node = start(NodeSpec::regtest("announcer").with_headers(first.clone()));
    let (mut listener, _) = dial(node.addr(), 3).await;
    let (mut poller, _) = dial(node.addr(), 4).await;
    listener.send(NetworkMessage::SendHeaders).await.unwrap();
    let stats = wait_stats(&node, |s| s.sendheaders_received == 1).await;
    assert!(stats.connections[0].sendheaders);
    assert!(!stats.connections[1].sendheaders);

    // The chain grows by 5: the listener is told, the poller is not.
    let mut longer = first.clone();
    longer.extend(mine_regtest_chain(
        first.last().unwrap(),
        5,
        START_TIME + 100 * 600,
    ));
    node.set_headers(longer.clone());
    assert_eq!(next_headers(&mut listener).await, longer[100..]);
    assert_eq!(headers_within_quiet(&mut poller).await, None);
    // The poller catches up by asking, from the new chain.
    let tip = first.last().unwrap().block_hash();
    assert_eq!(
        ask(&mut poller, vec![tip], BlockHash::all_zeros()).await,
        longer[100..]
    );

    // Setting the same chain again announces nothing.
    node.set_headers(longer.clone());
    assert_eq!(headers_within_quiet(&mut listener).await, None);

    // A reorg: a heavier branch from height 103 is announced from the
    // fork point on, so the listener can connect it.
    let mut reorg = longer[..103].to_vec();
    reorg.extend(mine_regtest_branch(
        &longer[102],
        4,
        START_TIME + 103 * 600,
        9,
    ));
    node.set_headers(reorg.clone());
    let announced = next_headers(&mut listener).await;
    assert_eq!(announced, reorg[103..]);
    assert_eq!(announced[0].prev_blockhash, longer[102].block_hash());
    // getheaders from a tip of the old branch lands on the fork point.
    let old_tip = longer.last().unwrap().block_hash();
    let old_mid = longer[103].block_hash();
    let answer = ask(
        &mut poller,
        vec![old_tip, old_mid, longer[102].block_hash()],
        BlockHash::all_zeros(),
    )
    .await;
    assert_eq!(answer, reorg[103..]);

    // Quietly: nobody is told, and asking still gets the news.
    let mut quiet = reorg.clone();
    quiet.extend(mine_regtest_chain(
        reorg.last().unwrap(),
        3,
        START_TIME + 107 * 600,
    ));
    node.set_headers_quietly(quiet.clone());
    assert_eq!(headers_within_quiet(&mut listener).await, None);
    let tip = reorg.last().unwrap().block_hash();
    assert_eq!(
        ask(&mut listener, vec![tip], BlockHash::all_zeros()).await,
        quiet[107..]
    );

    // A long extension is announced 2000 at most.
    let mut tall = quiet.clone();
    tall.extend(mine_regtest_chain(
        quiet.last().unwrap(),
        2500,
        START_TIME + 110 * 600,
    ));
    node.set_headers(tall.clone());
    assert_eq!(next_headers(&mut listener).await, tall[110..2110]);

    let stats = node.stats();
    let (l, p) = (&stats.connections[0], &stats.connections[1]);
    assert_eq!(l.headers_announced, 5 + 4 + 2000);
    assert_eq!(l.headers_sent, 5 + 4 + 3 + 2000);
    assert_eq!((l.getheaders_count, p.getheaders_count), (1, 2));
    assert_eq!((p.headers_announced, p.headers_sent), (0, 5 + 4));
    assert_eq!(stats.headers_announced, 2009);
    assert_eq!(stats.sendheaders_received, 1);

    // Cutting the chain back announces nothing; a new connection sees the
    // new height in version.
    node.set_headers(tall[..2600].to_vec());
    assert_eq!(headers_within_quiet(&mut listener).await, None);
    let (_late, start_height) = dial(node.addr(), 5).await;
    assert_eq!(start_height, 2600);
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_chains_are_served_as_given_by_position() {
    // Garbage: every header's parent link and proof of work are wrong.
    let mut bad = chain(30);
    for (i, h) in bad.iter_mut().enumerate() {
        h.prev_blockhash = BlockHash::from_byte_array([u8::try_from(i).unwrap(); 32]);
        h.nonce = h.nonce.wrapping_add(1);
    }
    let node = start(NodeSpec::regtest("liar"));
    node.set_headers(bad.clone());
    assert_eq!(node.headers(), bad);
    let (mut peer, start_height) = dial(node.addr(), 6).await;
    assert_eq!(start_height, 30);
    let genesis = regtest_genesis().block_hash();
    assert_eq!(
        ask(&mut peer, vec![genesis], BlockHash::all_zeros()).await,
        bad
    );
    // Located by each header's own hash, then by position.
    let after = ask(
        &mut peer,
        vec![bad[19].block_hash()],
        BlockHash::all_zeros(),
    )
    .await;
    assert_eq!(after, bad[20..]);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_oversized_locator_closes_the_connection_as_core_does() {
    let node = start(NodeSpec::regtest("strict").with_headers(chain(10)));
    let (mut peer, _) = dial(node.addr(), 7).await;
    let locator = vec![regtest_genesis().block_hash(); MAX_LOCATOR_SIZE + 1];
    peer.send(getheaders(locator, BlockHash::all_zeros()))
        .await
        .unwrap();
    peer.closed().await;
    let stats = wait_stats(&node, |s| s.open == 0).await;
    assert_eq!((stats.getheaders_received, stats.headers_sent), (1, 0));
    let reason = stats.connections[0].close_reason.clone().unwrap();
    assert!(reason.contains("locator"), "{reason}");
}
