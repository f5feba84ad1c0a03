//! Header sync scenarios: the engine against scripted peer replies, with a
//! hand-driven clock and real (regtest-mined) headers.

use std::time::Duration;

use bitcoin::block::Header;
use bitcoin::pow::{CompactTarget, Work};

use super::header_sync::{HEADERS_RESPONSE_TIMEOUT, MAX_HEADERS_RESULTS, MAX_UNCONNECTING_HEADERS};
use super::tests::{Harness, UNIX_START, dials, ipv4_addrs};
use super::*;
use crate::chain::regtest_miner::{
    mine_regtest_branch, mine_regtest_chain, mine_regtest_chain_until, regtest_genesis, solve,
};
use crate::chain::{ChainParams, Checkpoint, HeaderChain};
use crate::peer::{ConnectionKind, PeerEvent};
use crate::wire::GetHeadersMessage;

/// `n` headers on regtest genesis whose tip is about "now" (out of initial
/// sync once synced).
fn recent_chain(n: usize) -> Vec<Header> {
    mine_regtest_chain_until(n, UNIX_START)
}

/// `n` headers whose tip is years old: syncing them leaves us in initial
/// sync.
fn old_chain(n: usize) -> Vec<Header> {
    mine_regtest_chain(&regtest_genesis(), n, regtest_genesis().time + 600)
}

fn peer_msg(conn: ConnId, msg: NetworkMessage) -> Input {
    Input::Peer(PeerUpdate {
        conn,
        report: PeerReport::Event(PeerEvent::Message(msg)),
    })
}

fn headers(conn: ConnId, hs: &[Header]) -> Input {
    peer_msg(conn, NetworkMessage::Headers(hs.to_vec()))
}

fn closed(conn: ConnId) -> Input {
    Input::Peer(PeerUpdate {
        conn,
        report: PeerReport::Closed(crate::peer::DisconnectReason::PeerClosed),
    })
}

/// The `getheaders` sent to `conn`, if any.
fn getheaders_to(out: &[Output], conn: ConnId) -> Vec<GetHeadersMessage> {
    out.iter()
        .filter_map(|o| match o {
            Output::Send {
                conn: c,
                msg: NetworkMessage::GetHeaders(m),
            } if *c == conn => Some(m.clone()),
            _ => None,
        })
        .collect()
}

fn getheaders_count(out: &[Output]) -> usize {
    out.iter()
        .filter(|o| {
            matches!(
                o,
                Output::Send {
                    msg: NetworkMessage::GetHeaders(_),
                    ..
                }
            )
        })
        .count()
}

fn misbehaving(out: &[Output], conn: ConnId) -> Vec<u32> {
    out.iter()
        .filter_map(|o| match o {
            Output::Misbehaving {
                conn: c, points, ..
            } if *c == conn => Some(*points),
            _ => None,
        })
        .collect()
}

fn disconnected(out: &[Output], conn: ConnId) -> Option<String> {
    out.iter().find_map(|o| match o {
        Output::Disconnect { conn: c, reason } if *c == conn => Some(reason.clone()),
        _ => None,
    })
}

fn persisted(out: &[Output]) -> bool {
    out.iter().any(|o| matches!(o, Output::PersistChain))
}

/// A harness with `n` `--connect` peers, all handshaken at `heights`; the
/// outputs of the handshakes.
fn manual_peers(h: &mut Harness, heights: &[i32]) -> (Vec<ConnId>, Vec<Output>) {
    let out = h.input(Input::TorReady(true));
    let conns: Vec<ConnId> = dials(&out).iter().map(|d| d.conn).collect();
    assert_eq!(conns.len(), heights.len());
    let mut out = Vec::new();
    for (conn, height) in conns.iter().zip(heights) {
        out.extend(h.handshake_at_height(*conn, *height));
    }
    (conns, out)
}

fn connect_config(n: usize) -> EngineConfig {
    let mut config = EngineConfig::new(bitcoin::Network::Regtest);
    config.connect = (0..n)
        .map(|i| format!("10.{i}.0.1:18444").parse().unwrap())
        .collect();
    config
}

#[test]
fn sync_fetches_the_chain_in_full_batches_then_stops() {
    let chain = recent_chain(5000);
    let mut h = Harness::new(connect_config(1));
    let (conns, out) = manual_peers(&mut h, &[5000]);
    let a = conns[0];
    assert!(out.iter().any(|o| matches!(
        o,
        Output::Send { conn, msg: NetworkMessage::SendHeaders } if *conn == a
    )));
    let first = getheaders_to(&out, a);
    assert_eq!(first.len(), 1);
    assert_eq!(
        first[0].locator_hashes,
        vec![regtest_genesis().block_hash()]
    );

    let out = h.input(headers(a, &chain[..2000]));
    assert!(persisted(&out));
    let next = getheaders_to(&out, a);
    assert_eq!(next.len(), 1, "a full batch asks for more");
    assert_eq!(next[0].locator_hashes[0], chain[1999].block_hash());
    let out = h.input(headers(a, &chain[2000..4000]));
    assert_eq!(getheaders_to(&out, a).len(), 1);
    let out = h.input(headers(a, &chain[4000..]));
    assert!(
        getheaders_to(&out, a).is_empty(),
        "a short batch ends the session"
    );
    assert_eq!(h.engine.chain().height(), 5000);
    assert_eq!(h.engine.chain().tip().1, chain[4999].block_hash());
    assert!(!h.engine.sync().is_syncing_with(a));
}

#[test]
fn initial_sync_uses_one_peer_at_a_time() {
    let mut h = Harness::new(connect_config(2));
    let (conns, out) = manual_peers(&mut h, &[100, 150]);
    let (a, b) = (conns[0], conns[1]);
    assert_eq!(
        getheaders_count(&out),
        1,
        "one sync peer, however many are ready"
    );
    assert_eq!(getheaders_to(&out, a).len(), 1, "the first ready");
    // A's chain is old: we are still in initial sync when it is done, so B
    // gets its turn, and only then.
    let out = h.input(headers(a, &old_chain(100)));
    assert_eq!(getheaders_to(&out, b).len(), 1);
    assert_eq!(getheaders_count(&out), 1);
    assert_eq!(h.engine.sync().sync_peer(), Some(b));
}

#[test]
fn invalid_headers_score_the_peer_and_change_nothing() {
    let good = recent_chain(6);
    let parent = good[4];
    let regtest_bits = parent.bits;
    let faults: Vec<(&str, Header)> = vec![
        ("bad proof of work", {
            // Mainnet's difficulty, not solved: the hash misses the target.
            let mut h = good[5];
            h.bits = CompactTarget::from_consensus(0x1d00_ffff);
            h
        }),
        ("bad bits", {
            let mut h = good[5];
            h.bits = CompactTarget::from_consensus(0x2000_ffff);
            solve(h).unwrap()
        }),
        ("time before the median time past", {
            let mut h = good[5];
            h.time = regtest_genesis().time;
            h.bits = regtest_bits;
            solve(h).unwrap()
        }),
    ];
    for (what, bad) in faults {
        let mut h = Harness::new(connect_config(1));
        let (conns, _) = manual_peers(&mut h, &[6]);
        let a = conns[0];
        let mut batch = good[..5].to_vec();
        batch.push(bad);
        let out = h.input(headers(a, &batch));
        assert_eq!(misbehaving(&out, a), vec![100], "{what}");
        assert!(!persisted(&out), "{what}");
        assert_eq!(h.engine.chain().height(), 0, "{what}: all or nothing");
    }
}

#[test]
fn a_header_from_the_future_costs_nothing_and_the_headers_before_it_are_kept() {
    // Issue 16, D2: a node whose clock is slow must not ban honest peers.
    let good = recent_chain(6);
    let mut ahead = good[5];
    ahead.time = (UNIX_START + 3 * 3600) as u32;
    let ahead = solve(ahead).unwrap();
    let mut h = Harness::new(connect_config(1));
    let (conns, _) = manual_peers(&mut h, &[6]);
    let a = conns[0];
    let mut batch = good[..5].to_vec();
    batch.push(ahead);
    let out = h.input(headers(a, &batch));
    assert!(misbehaving(&out, a).is_empty(), "no points");
    assert!(disconnected(&out, a).is_none(), "no disconnect");
    assert!(persisted(&out), "the valid prefix is stored");
    assert_eq!(h.engine.chain().height(), 5);
    assert!(!h.engine.sync().is_syncing_with(a), "the session ended");

    // A batch whose first header is already too new: nothing stored,
    // nothing punished.
    let mut h = Harness::new(connect_config(1));
    let (conns, _) = manual_peers(&mut h, &[1]);
    let mut first = good[0];
    first.time = (UNIX_START + 3 * 3600) as u32;
    let out = h.input(headers(conns[0], &[solve(first).unwrap()]));
    assert!(misbehaving(&out, conns[0]).is_empty());
    assert_eq!(h.engine.chain().height(), 0);
}

#[test]
fn a_checkpoint_conflict_scores_the_peer() {
    let honest = recent_chain(5);
    let params = ChainParams::new(bitcoin::Network::Regtest).with_checkpoints(vec![Checkpoint {
        height: 3,
        hash: honest[2].block_hash(),
    }]);
    let forged = mine_regtest_branch(&regtest_genesis(), 5, honest[0].time, 9);
    let mut h = Harness::new(connect_config(1));
    h = h.with_chain(HeaderChain::with_params(params));
    let (conns, _) = manual_peers(&mut h, &[5]);
    let out = h.input(headers(conns[0], &forged));
    assert_eq!(misbehaving(&out, conns[0]), vec![100]);
    let out = h.input(headers(conns[0], &honest));
    assert!(persisted(&out));
    assert_eq!(h.engine.chain().height(), 5);
}

#[test]
fn an_unanswered_getheaders_drops_the_peer_and_tries_the_next() {
    let mut config = EngineConfig::new(bitcoin::Network::Regtest);
    config.target_outbound = 2;
    let mut h = Harness::new(config);
    h.learn(&ipv4_addrs(10));
    // Paced: the second dial follows on the next round.
    let mut regular = dials(&h.input(Input::TorReady(true)));
    regular.extend(dials(&h.advance(Duration::from_secs(2))));
    assert_eq!(regular.len(), 2);
    let (a, b) = (regular[0].conn, regular[1].conn);
    let mut out = h.handshake_at_height(a, 10);
    out.extend(h.handshake_at_height(b, 10));
    assert_eq!(
        getheaders_to(&out, a).len(),
        1,
        "oldest connection first among equals"
    );
    let out = h.advance(HEADERS_RESPONSE_TIMEOUT.saturating_sub(Duration::from_secs(1)));
    assert!(disconnected(&out, a).is_none());
    let out = h.advance(Duration::from_secs(1));
    assert_eq!(
        disconnected(&out, a).as_deref(),
        Some("headers sync timed out")
    );
    assert_eq!(
        getheaders_to(&out, b).len(),
        1,
        "the next peer is asked at once"
    );
}

#[test]
fn more_work_on_a_side_branch_reorganises_the_chain() {
    let main = recent_chain(10);
    let mut h = Harness::new(connect_config(1));
    let (conns, _) = manual_peers(&mut h, &[10]);
    let a = conns[0];
    h.input(headers(a, &main));
    assert_eq!(h.engine.chain().height(), 10);
    // A branch from height 5 that ends two blocks higher: more work.
    let branch = mine_regtest_branch(&main[4], 7, main[4].time + 1, 1);
    let out = h.input(headers(a, &branch));
    assert!(persisted(&out));
    assert_eq!(h.engine.chain().tip(), (12, branch[6].block_hash()));
    let tips = h.engine.chain().tips();
    assert_eq!(tips.len(), 2);
    assert!(
        tips.iter()
            .any(|t| t.hash == main[9].block_hash() && t.branch_len == 5)
    );
}

#[test]
fn a_low_work_chain_longer_than_plausible_is_rolled_back_and_scored() {
    // Minimum chain work far above anything regtest can reach, and a clock
    // 3000 s after genesis: an honest chain can hold about 2022 headers.
    let genesis = regtest_genesis();
    let now = u64::from(genesis.time) + 3000;
    let params = ChainParams::new(bitcoin::Network::Regtest)
        .with_minimum_chain_work(Work::from_be_bytes([0x7f; 32]));
    let plausible = params.plausible_height(now);
    assert!((2016..2100).contains(&plausible), "{plausible}");
    // Headers one second apart: cheap to make, far denser than honest.
    let mut spam = Vec::new();
    let mut prev = genesis;
    for i in 0..2100u32 {
        let mut next = prev;
        next.prev_blockhash = prev.block_hash();
        next.time = genesis.time + 1 + i;
        next.nonce = 0;
        next.version =
            bitcoin::block::Version::from_consensus(crate::chain::regtest_miner::VERSION);
        let next = solve(next).unwrap();
        spam.push(next);
        prev = next;
    }
    let mut h = Harness::new(connect_config(1)).starting_at(now);
    h = h.with_chain(HeaderChain::with_params(params));
    let (conns, _) = manual_peers(&mut h, &[2100]);
    let a = conns[0];
    let out = h.input(headers(a, &spam[..MAX_HEADERS_RESULTS]));
    assert!(persisted(&out), "provisional headers are stored: {out:?}");
    assert_eq!(h.engine.chain().height(), 2000);
    let out = h.input(headers(a, &spam[MAX_HEADERS_RESULTS..]));
    assert_eq!(misbehaving(&out, a), vec![100]);
    assert!(out.iter().any(|o| matches!(o, Output::TruncateChain(1))));
    assert_eq!(h.engine.chain().len(), 1, "back to genesis: memory freed");
}

#[test]
fn a_non_sync_peers_headers_wait_during_provisional_sync() {
    let params = ChainParams::new(bitcoin::Network::Regtest)
        .with_minimum_chain_work(Work::from_be_bytes([0x7f; 32]));
    let mut h = Harness::new(connect_config(2));
    h = h.with_chain(HeaderChain::with_params(params));
    let (conns, _) = manual_peers(&mut h, &[10, 5]);
    let (sync, other) = (conns[0], conns[1]);
    assert_eq!(h.engine.sync().sync_peer(), Some(sync));
    let out = h.input(headers(other, &recent_chain(5)));
    assert!(!persisted(&out));
    assert_eq!(h.engine.chain().height(), 0);
    let out = h.input(headers(sync, &recent_chain(10)));
    assert!(persisted(&out));
    assert_eq!(h.engine.chain().height(), 10);
}

/// A harness synced to a recent 10-header chain from one `--connect`
/// peer, out of initial sync.
fn synced(n: usize) -> (Harness, ConnId, Vec<Header>) {
    let chain = recent_chain(n);
    let mut h = Harness::new(connect_config(1));
    let (conns, _) = manual_peers(&mut h, &[n as i32]);
    h.input(headers(conns[0], &chain));
    assert_eq!(h.engine.chain().height() as usize, n);
    (h, conns[0], chain)
}

#[test]
fn getheaders_is_answered_from_the_best_chain_once_synced() {
    let (mut h, a, chain) = synced(10);
    let req = GetHeadersMessage {
        version: 70016,
        locator_hashes: vec![chain[2].block_hash()],
        stop_hash: chain[7].block_hash(),
    };
    let out = h.input(peer_msg(a, NetworkMessage::GetHeaders(req)));
    let sent: Vec<&Vec<Header>> = out
        .iter()
        .filter_map(|o| match o {
            Output::Send {
                msg: NetworkMessage::Headers(hs),
                ..
            } => Some(hs),
            _ => None,
        })
        .collect();
    assert_eq!(sent, vec![&chain[3..8].to_vec()]);

    // A locator over Core's limit is misbehaviour, answered with nothing.
    let long = GetHeadersMessage {
        version: 70016,
        locator_hashes: vec![chain[2].block_hash(); super::header_sync::MAX_LOCATOR_SIZE + 1],
        stop_hash: chain[7].block_hash(),
    };
    let out = h.input(peer_msg(a, NetworkMessage::GetHeaders(long)));
    assert_eq!(misbehaving(&out, a), vec![100]);
    assert!(out.iter().all(|o| !matches!(
        o,
        Output::Send {
            msg: NetworkMessage::Headers(_),
            ..
        }
    )));

    // In initial sync we serve nothing.
    let mut h = Harness::new(connect_config(1));
    let (conns, _) = manual_peers(&mut h, &[0]);
    let req = GetHeadersMessage {
        version: 70016,
        locator_hashes: vec![regtest_genesis().block_hash()],
        stop_hash: bitcoin::hashes::Hash::all_zeros(),
    };
    let out = h.input(peer_msg(conns[0], NetworkMessage::GetHeaders(req)));
    assert!(out.iter().all(|o| !matches!(
        o,
        Output::Send {
            msg: NetworkMessage::Headers(_),
            ..
        }
    )));
}

#[test]
fn announcements_extend_the_chain_and_gaps_are_asked_for() {
    let (mut h, a, chain) = synced(10);
    let more = mine_regtest_chain(&chain[9], 3, chain[9].time + 600);
    let out = h.input(headers(a, &more[..1]));
    assert!(persisted(&out));
    assert_eq!(h.engine.chain().height(), 11);
    // A header two ahead does not connect: we ask for the gap...
    let out = h.input(headers(a, &more[2..]));
    assert_eq!(getheaders_to(&out, a).len(), 1);
    assert!(misbehaving(&out, a).is_empty());
    // ...and a peer that keeps sending unconnecting headers is scored.
    let mut points = Vec::new();
    for _ in 1..MAX_UNCONNECTING_HEADERS {
        points.extend(misbehaving(&h.input(headers(a, &more[2..])), a));
    }
    assert_eq!(points, vec![20]);
}

#[test]
fn a_low_work_side_branch_is_not_stored() {
    let (mut h, a, chain) = synced(300);
    let before = h.engine.chain().len();
    let stub = mine_regtest_branch(&chain[99], 5, chain[99].time + 1, 3);
    let out = h.input(headers(a, &stub));
    assert!(!persisted(&out));
    assert_eq!(h.engine.chain().len(), before);
    // Within 144 blocks of work of the tip, a branch is kept.
    let near = mine_regtest_branch(&chain[289], 5, chain[289].time + 1, 4);
    let out = h.input(headers(a, &near));
    assert!(persisted(&out));
    assert_eq!(h.engine.chain().len(), before + 5);
}

/// Two regular peers, synced to nothing (each answered empty), a stale-tip
/// age of a minute: returns the harness and the extra dial.
fn stale_setup() -> (Harness, DialRequest, Vec<DialRequest>) {
    let mut config = EngineConfig::new(bitcoin::Network::Regtest);
    config.target_outbound = 2;
    config.stale_tip_after = Duration::from_secs(60);
    let mut h = Harness::new(config);
    h.learn(&ipv4_addrs(20));
    let regular = dials(&h.input(Input::TorReady(true)));
    for d in &regular {
        h.handshake_at_height(d.conn, 0);
    }
    for d in &regular {
        h.input(headers(d.conn, &[]));
    }
    let extras = |out: &[Output]| {
        dials(out)
            .into_iter()
            .filter(|d| d.kind == ConnectionKind::Extra)
            .collect::<Vec<_>>()
    };
    let out = h.advance(Duration::from_secs(59));
    assert!(extras(&out).is_empty());
    let out = h.advance(Duration::from_secs(2));
    let extra = extras(&out);
    assert_eq!(extra.len(), 1, "{out:?}");
    (h, extra[0].clone(), regular)
}

#[test]
fn a_stale_tip_opens_an_isolated_extra_peer_dropped_when_it_knows_nothing_new() {
    let (mut h, extra, regular) = stale_setup();
    assert!(
        regular
            .iter()
            .all(|r| r.isolation.group != extra.isolation.group),
        "the extra peer gets its own circuits"
    );
    assert_eq!(h.engine.sync().extra(), Some(extra.conn));
    let out = h.handshake(extra.conn);
    assert_eq!(getheaders_to(&out, extra.conn).len(), 1);
    let out = h.input(headers(extra.conn, &[]));
    assert_eq!(
        disconnected(&out, extra.conn).as_deref(),
        Some("extra peer had no new headers")
    );
    h.input(closed(extra.conn));
    // No second extra before the retry interval.
    let out = h.advance(Duration::from_secs(60));
    assert!(dials(&out).iter().all(|d| d.kind != ConnectionKind::Extra));
}

#[test]
fn a_stale_tip_extra_that_brings_more_work_is_kept() {
    let (mut h, extra, _) = stale_setup();
    h.handshake(extra.conn);
    let out = h.input(headers(extra.conn, &recent_chain(10)));
    assert!(disconnected(&out, extra.conn).is_none());
    assert_eq!(h.engine.chain().height(), 10);
    let out = h.advance(Duration::from_secs(30));
    assert!(disconnected(&out, extra.conn).is_none());
}

#[test]
fn inbound_peers_hear_our_tip_at_once_and_new_tips_after_sendheaders() {
    let mut config = connect_config(1);
    config.max_inbound = 4;
    let chain = recent_chain(10);
    let mut h = Harness::new(config);
    let (conns, _) = manual_peers(&mut h, &[10]);
    let a = conns[0];
    h.input(headers(a, &chain));
    let announced = |out: &[Output], to: ConnId| -> Vec<Vec<Header>> {
        out.iter()
            .filter_map(|o| match o {
                Output::Send {
                    conn,
                    msg: NetworkMessage::Headers(hs),
                } if *conn == to => Some(hs.clone()),
                _ => None,
            })
            .collect()
    };
    // Two inbound peers: both hear our tip when their handshake completes.
    let mut inbound = Vec::new();
    for link in 0..2 {
        let out = h.input(Input::Accepted {
            link,
            from: InboundFrom::Tcp(format!("203.0.113.{link}:1").parse().unwrap()),
        });
        let conn = match &out[..] {
            [Output::Accept(req)] => req.conn,
            other => panic!("{other:?}"),
        };
        let out = h.handshake(conn);
        assert_eq!(announced(&out, conn), vec![vec![chain[9]]]);
        inbound.push(conn);
    }
    // Only the one that asked with sendheaders hears of the next tip; the
    // outbound peer that brought it is not told.
    h.input(peer_msg(inbound[0], NetworkMessage::SendHeaders));
    let more = mine_regtest_chain(&chain[9], 1, chain[9].time + 600);
    let out = h.input(headers(a, &more));
    assert_eq!(announced(&out, inbound[0]), vec![more.clone()]);
    assert!(announced(&out, inbound[1]).is_empty());
    assert!(announced(&out, a).is_empty());
}
