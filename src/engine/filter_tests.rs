//! Compact block filters (BIP157/158) in simulated time: the engine against
//! scripted filter peers, with real regtest blocks and real BIP158 filters.
//!
//! Covered:
//! - who is asked for checkpoints (filter peers only, only with
//!   `block_filters` on) and which regular dials are made for filter peers
//!   (`MIN_FILTER_PEERS`);
//! - filter header sync: intervals in parallel, verified against agreed
//!   checkpoints, the tail cross-checked by two peers (or taken from a lone
//!   peer), contradicting peers scored, disputes stopping sync, timeouts
//!   benching a peer, reorgs cutting and refetching the filter headers;
//! - `scanblocks` (batches spread over the filter peers, matching, wrong
//!   filters, peers leaving, abort), `getblockfilter`, `getblock` with
//!   decoys and block verification, and shutdown answering what is pending.
//!

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use bitcoin::absolute::LockTime;
use bitcoin::bip158::{BlockFilter, FilterHash, FilterHeader};
use bitcoin::block::{Header, Version as BlockVersion};
use bitcoin::hashes::Hash;
use bitcoin::p2p::message_filter::{
    CFCheckpt, CFHeaders, CFilter, GetCFCheckpt, GetCFHeaders, GetCFilters,
};
use bitcoin::pow::CompactTarget;
use bitcoin::{
    Amount, Block, BlockHash, OutPoint, ScriptBuf, Sequence, Transaction, TxIn, TxOut, Witness,
};

use super::block_fetch::{FetchError, Fetched, RequestId, SCAN_BATCH, ScanRequest};
use super::conn_manager::CommandError;
use super::filter_sync::FILTER_RESPONSE_TIMEOUT;
use super::tests::{Harness, UNIX_START, dials};
use super::*;
use crate::addrman::{AddrRecord, AddrSource, InternalSource};
use crate::chain::HeaderChain;
use crate::chain::regtest_miner::{REGTEST_BITS, SPACING, VERSION, solve};
use crate::netaddr::NetAddr;
use crate::peer::{ConnectionKind, DisconnectReason, PeerEvent, PeerInfo};
use crate::transport::TransportKind;
use crate::wire::{Inventory, ServiceFlags};

// === BLOCKS AND THEIR FILTERS ===

/// The script the "wallet" scans for.
fn wallet() -> ScriptBuf {
    ScriptBuf::new_p2wpkh(&bitcoin::WPubkeyHash::from_byte_array([0xee; 20]))
}

/// A script nobody else pays to: one per height and branch.
fn other_script(height: u32, branch: u8) -> ScriptBuf {
    let mut h = [branch; 20];
    h[..4].copy_from_slice(&height.to_le_bytes());
    ScriptBuf::new_p2wpkh(&bitcoin::WPubkeyHash::from_byte_array(h))
}

fn coinbase(height: u32, branch: u8, pay_to: ScriptBuf) -> Transaction {
    let mut sig = height.to_le_bytes().to_vec();
    sig.push(branch);
    Transaction {
        version: bitcoin::transaction::Version::TWO,
        lock_time: LockTime::ZERO,
        input: vec![TxIn {
            previous_output: OutPoint::null(),
            script_sig: ScriptBuf::from_bytes(sig),
            sequence: Sequence::MAX,
            witness: Witness::new(),
        }],
        output: vec![TxOut {
            value: Amount::from_sat(50 * 100_000_000),
            script_pubkey: pay_to,
        }],
    }
}

/// The block's basic filter (its blocks hold coinbases only: no input
/// scripts to look up).
fn basic_filter(block: &Block) -> Vec<u8> {
    BlockFilter::new_script_filter(block, |o: &OutPoint| -> Result<ScriptBuf, _> {
        Err(bitcoin::bip158::Error::UtxoMissing(*o))
    })
    .expect("coinbase-only block")
    .content
}

/// A regtest block chain (height 0 is genesis) with every block's filter,
/// filter hash and filter header: what an honest filter peer serves.
#[derive(Clone)]
struct Blocks {
    blocks: Vec<Block>,
    filters: Vec<Vec<u8>>,
    headers: Vec<FilterHeader>,
    heights: HashMap<BlockHash, u32>,
}

impl Blocks {
    /// `n` blocks on genesis, the last one a block interval before the
    /// harness's clock; the coinbases at `paid` pay the wallet.
    fn new(n: u32, paid: &[u32]) -> Blocks {
        let genesis = bitcoin::blockdata::constants::genesis_block(bitcoin::Network::Regtest);
        let start = (UNIX_START - u64::from(SPACING) * u64::from(n)) as u32;
        let mut blocks = vec![genesis];
        extend(&mut blocks, n, start, 0, paid);
        Blocks::index(blocks)
    }

    /// A competing branch: this chain's blocks up to `fork`, then `count`
    /// new ones (tagged `branch`, paying the wallet at `paid`).
    fn fork(&self, fork: u32, count: u32, branch: u8, paid: &[u32]) -> Blocks {
        let mut blocks = self.blocks[..=fork as usize].to_vec();
        let start = blocks[fork as usize].header.time + 1;
        extend(&mut blocks, count, start, branch, paid);
        Blocks::index(blocks)
    }

    fn index(blocks: Vec<Block>) -> Blocks {
        let filters: Vec<Vec<u8>> = blocks.iter().map(basic_filter).collect();
        let mut headers = Vec::with_capacity(blocks.len());
        let mut previous = FilterHeader::from_byte_array([0; 32]);
        for f in &filters {
            previous = FilterHash::hash(f).filter_header(&previous);
            headers.push(previous);
        }
        let heights = blocks
            .iter()
            .enumerate()
            .map(|(h, b)| (b.block_hash(), h as u32))
            .collect();
        Blocks {
            blocks,
            filters,
            headers,
            heights,
        }
    }

    fn tip(&self) -> u32 {
        self.blocks.len() as u32 - 1
    }

    fn hash(&self, height: u32) -> BlockHash {
        self.blocks[height as usize].block_hash()
    }

    /// Block headers of heights `from..=to`.
    fn block_headers(&self, from: u32, to: u32) -> Vec<Header> {
        self.blocks[from as usize..=to as usize]
            .iter()
            .map(|b| b.header)
            .collect()
    }

    fn filter_hash(&self, height: u32) -> FilterHash {
        FilterHash::hash(&self.filters[height as usize])
    }

    fn header(&self, height: u32) -> FilterHeader {
        self.headers[height as usize]
    }

    /// The checkpoints up to `stop` (every 1000th filter header).
    fn checkpoints(&self, stop: u32) -> Vec<FilterHeader> {
        (1..=stop / 1000).map(|i| self.header(i * 1000)).collect()
    }

    fn cfcheckpt(&self, stop: u32) -> CFCheckpt {
        CFCheckpt {
            filter_type: 0,
            stop_hash: self.hash(stop),
            filter_headers: self.checkpoints(stop),
        }
    }

    fn cfheaders(&self, start: u32, stop: u32) -> CFHeaders {
        CFHeaders {
            filter_type: 0,
            stop_hash: self.hash(stop),
            previous_filter_header: match start.checked_sub(1) {
                None => FilterHeader::from_byte_array([0; 32]),
                Some(h) => self.header(h),
            },
            filter_hashes: (start..=stop).map(|h| self.filter_hash(h)).collect(),
        }
    }

    fn cfilter(&self, height: u32) -> CFilter {
        CFilter {
            filter_type: 0,
            block_hash: self.hash(height),
            filter: self.filters[height as usize].clone(),
        }
    }

    /// The engine's header chain holding these blocks.
    fn header_chain(&self) -> HeaderChain {
        let mut chain = HeaderChain::new(bitcoin::Network::Regtest);
        chain
            .accept(&self.block_headers(1, self.tip()), UNIX_START)
            .expect("valid regtest headers");
        chain
    }
}

/// Mine `count` blocks onto `blocks`, one [`SPACING`] apart from `start`.
fn extend(blocks: &mut Vec<Block>, count: u32, start: u32, branch: u8, paid: &[u32]) {
    for i in 0..count {
        let prev = blocks.last().expect("genesis").header;
        let height = blocks.len() as u32;
        let pay_to = if paid.contains(&height) {
            wallet()
        } else {
            other_script(height, branch)
        };
        let mut block = Block {
            header: Header {
                version: BlockVersion::from_consensus(VERSION),
                prev_blockhash: prev.block_hash(),
                merkle_root: bitcoin::TxMerkleNode::all_zeros(),
                time: start + i * SPACING,
                bits: CompactTarget::from_consensus(REGTEST_BITS),
                nonce: 0,
            },
            txdata: vec![coinbase(height, branch, pay_to)],
        };
        block.header.merkle_root = block.compute_merkle_root().expect("one transaction");
        block.header = solve(block.header).expect("regtest nonce space");
        blocks.push(block);
    }
}

// === THE ENGINE AND ITS PEERS ===

fn filter_services() -> ServiceFlags {
    ServiceFlags::NETWORK | ServiceFlags::WITNESS | ServiceFlags::COMPACT_FILTERS
}

fn plain_services() -> ServiceFlags {
    ServiceFlags::NETWORK | ServiceFlags::WITNESS
}

/// `--connect` to `n` peers, filters on or off.
fn connect_config(n: usize, block_filters: bool) -> EngineConfig {
    let mut config = EngineConfig::new(bitcoin::Network::Regtest);
    config.connect = (0..n)
        .map(|i| format!("10.{i}.0.1:18444").parse().unwrap())
        .collect();
    config.block_filters = block_filters;
    config
}

fn peer_info(conn: ConnId, services: ServiceFlags, start_height: u32) -> PeerInfo {
    PeerInfo {
        version: 70016,
        services,
        user_agent: "/Satoshi:29.0.0/".into(),
        start_height: start_height as i32,
        nonce: 1_000_000 + conn.0,
        relay: true,
        wtxid_relay: true,
        addrv2: true,
    }
}

/// Connect `conn` and complete its handshake with `services`.
fn handshake(h: &mut Harness, conn: ConnId, services: ServiceFlags, height: u32) -> Vec<Output> {
    let mut out = h.input(Input::Connected {
        conn,
        transport: TransportKind::V2 {
            session_id: [3; 32],
        },
        circuit: None,
    });
    out.extend(h.input(Input::Peer(PeerUpdate {
        conn,
        report: PeerReport::Event(PeerEvent::HandshakeComplete(peer_info(
            conn, services, height,
        ))),
    })));
    out
}

/// An engine holding `data`'s header chain, its `--connect` peers
/// handshaken with `services` (one entry per peer): the harness, the
/// peers and the outputs of the handshakes.
fn node_with(
    config: EngineConfig,
    data: &Blocks,
    services: &[ServiceFlags],
) -> (Harness, Vec<ConnId>, Vec<Output>) {
    let mut h = Harness::new(config).with_chain(data.header_chain());
    let conns: Vec<ConnId> = dials(&h.input(Input::TorReady(true)))
        .iter()
        .map(|d| d.conn)
        .collect();
    assert_eq!(conns.len(), services.len());
    let mut out = Vec::new();
    for (conn, s) in conns.iter().zip(services) {
        out.extend(handshake(&mut h, *conn, *s, data.tip()));
    }
    (h, conns, out)
}

/// [`node_with`] with filters on and `peers` filter peers.
fn filter_node(data: &Blocks, peers: usize) -> (Harness, Vec<ConnId>, Vec<Output>) {
    node_with(
        connect_config(peers, true),
        data,
        &vec![filter_services(); peers],
    )
}

/// A filter node whose filter headers are synced with `data`.
fn synced_node(data: &Blocks, peers: usize) -> (Harness, Vec<ConnId>) {
    let (mut h, conns, out) = filter_node(data, peers);
    serve(&mut h, out, &[data], &[]);
    assert_eq!(h.engine.filter_headers().len(), data.blocks.len());
    (h, conns)
}

fn message(h: &mut Harness, conn: ConnId, msg: NetworkMessage) -> Vec<Output> {
    h.input(Input::Peer(PeerUpdate {
        conn,
        report: PeerReport::Event(PeerEvent::Message(msg)),
    }))
}

fn closed(h: &mut Harness, conn: ConnId) -> Vec<Output> {
    h.input(Input::Peer(PeerUpdate {
        conn,
        report: PeerReport::Closed(DisconnectReason::PeerClosed),
    }))
}

fn command(h: &mut Harness, cmd: Command) -> (Result<CommandReply, CommandError>, Vec<Output>) {
    let t = h.t();
    let reply = h.engine.command(t, cmd);
    let out = std::iter::from_fn(|| h.engine.poll_output()).collect();
    (reply, out)
}

fn pending(reply: Result<CommandReply, CommandError>) -> RequestId {
    match reply {
        Ok(CommandReply::Pending(id)) => id,
        other => panic!("expected a pending request, got {other:?}"),
    }
}

/// Every filter or block request an honest peer following one of `data`
/// would answer, answered, along with the requests the answers bring,
/// until none is left (or 1000 were answered). Requests to `gone` are
/// left unanswered. Returns every output on the way, `out` included.
fn serve(h: &mut Harness, out: Vec<Output>, data: &[&Blocks], gone: &[ConnId]) -> Vec<Output> {
    let mut all = out.clone();
    let mut queue: std::collections::VecDeque<(ConnId, NetworkMessage)> = sent(&out).into();
    let mut answered = 0;
    while let Some((conn, msg)) = queue.pop_front() {
        if gone.contains(&conn) || answered >= 1000 {
            continue;
        }
        let knows = |hash: &BlockHash| data.iter().find_map(|d| Some((*d, *d.heights.get(hash)?)));
        let replies: Vec<NetworkMessage> = match &msg {
            NetworkMessage::GetCFCheckpt(m) => knows(&m.stop_hash)
                .map(|(d, stop)| NetworkMessage::CFCheckpt(d.cfcheckpt(stop)))
                .into_iter()
                .collect(),
            NetworkMessage::GetCFHeaders(m) => knows(&m.stop_hash)
                .map(|(d, stop)| NetworkMessage::CFHeaders(d.cfheaders(m.start_height, stop)))
                .into_iter()
                .collect(),
            NetworkMessage::GetCFilters(m) => match knows(&m.stop_hash) {
                Some((d, stop)) => (m.start_height..=stop)
                    .map(|h| NetworkMessage::CFilter(d.cfilter(h)))
                    .collect(),
                None => Vec::new(),
            },
            _ => continue,
        };
        answered += 1;
        for reply in replies {
            let out = message(h, conn, reply);
            queue.extend(sent(&out));
            all.extend(out);
        }
    }
    all
}

// === READING OUTPUTS ===

fn sent(out: &[Output]) -> Vec<(ConnId, NetworkMessage)> {
    out.iter()
        .filter_map(|o| match o {
            Output::Send { conn, msg } => Some((*conn, msg.clone())),
            _ => None,
        })
        .collect()
}

fn getcfcheckpts(out: &[Output]) -> Vec<(ConnId, GetCFCheckpt)> {
    sent(out)
        .into_iter()
        .filter_map(|(c, m)| match m {
            NetworkMessage::GetCFCheckpt(m) => Some((c, m)),
            _ => None,
        })
        .collect()
}

fn getcfheaders(out: &[Output]) -> Vec<(ConnId, GetCFHeaders)> {
    sent(out)
        .into_iter()
        .filter_map(|(c, m)| match m {
            NetworkMessage::GetCFHeaders(m) => Some((c, m)),
            _ => None,
        })
        .collect()
}

fn getcfilters(out: &[Output]) -> Vec<(ConnId, GetCFilters)> {
    sent(out)
        .into_iter()
        .filter_map(|(c, m)| match m {
            NetworkMessage::GetCFilters(m) => Some((c, m)),
            _ => None,
        })
        .collect()
}

/// Blocks asked with `getdata`.
fn getdata_blocks(out: &[Output]) -> Vec<(ConnId, BlockHash)> {
    sent(out)
        .into_iter()
        .flat_map(|(c, m)| match m {
            NetworkMessage::GetData(items) => items
                .into_iter()
                .filter_map(|i| match i {
                    Inventory::WitnessBlock(hash) => Some((c, hash)),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        })
        .collect()
}

fn getcfheaders_req(start_height: u32, stop_hash: BlockHash) -> GetCFHeaders {
    GetCFHeaders {
        filter_type: 0,
        start_height,
        stop_hash,
    }
}

/// Filter requests (checkpoints, headers, filters) sent to `conn`.
fn filter_requests_to(out: &[Output], conn: ConnId) -> usize {
    sent(out)
        .iter()
        .filter(|(c, m)| {
            *c == conn
                && matches!(
                    m,
                    NetworkMessage::GetCFCheckpt(_)
                        | NetworkMessage::GetCFHeaders(_)
                        | NetworkMessage::GetCFilters(_)
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

fn any_misbehaving(out: &[Output]) -> Vec<(ConnId, &'static str)> {
    out.iter()
        .filter_map(|o| match o {
            Output::Misbehaving { conn, what, .. } => Some((*conn, *what)),
            _ => None,
        })
        .collect()
}

fn persisted(out: &[Output]) -> bool {
    out.iter()
        .any(|o| matches!(o, Output::PersistFilterHeaders))
}

fn truncations(out: &[Output]) -> Vec<usize> {
    out.iter()
        .filter_map(|o| match o {
            Output::TruncateFilterHeaders(n) => Some(*n),
            _ => None,
        })
        .collect()
}

fn fetched(out: &[Output]) -> Vec<(RequestId, Result<Fetched, FetchError>)> {
    out.iter()
        .filter_map(|o| match o {
            Output::Fetched { id, result } => Some((*id, result.clone())),
            _ => None,
        })
        .collect()
}

/// The engine's filter headers equal `data`'s, height for height.
fn assert_filter_headers(h: &Harness, data: &Blocks) {
    let ours = h.engine.filter_headers();
    assert_eq!(ours.len(), data.blocks.len(), "filter header count");
    for height in 0..=data.tip() {
        assert_eq!(
            ours.header_at(height),
            Some(data.header(height)),
            "filter header at {height}"
        );
    }
}

/// Checkpoints answered by every peer in `conns` from `data`; the outputs
/// of the last answer.
fn answer_checkpoints(h: &mut Harness, conns: &[ConnId], data: &Blocks) -> Vec<Output> {
    let mut out = Vec::new();
    for c in conns {
        out = message(h, *c, NetworkMessage::CFCheckpt(data.cfcheckpt(data.tip())));
    }
    out
}

/// The `getcfheaders` in `out`, by start height: (peer, stop hash).
fn intervals(out: &[Output]) -> BTreeMap<u32, (ConnId, BlockHash)> {
    getcfheaders(out)
        .into_iter()
        .map(|(c, m)| (m.start_height, (c, m.stop_hash)))
        .collect()
}

// === WHO IS ASKED ===

#[test]
fn checkpoints_are_asked_of_every_filter_peer_once_and_of_no_one_else() {
    let data = Blocks::new(10, &[]);
    let (h, conns, out) = node_with(
        connect_config(3, true),
        &data,
        &[filter_services(), plain_services(), filter_services()],
    );
    let asked = getcfcheckpts(&out);
    let tip = data.hash(10);
    assert_eq!(
        asked,
        vec![
            (
                conns[0],
                GetCFCheckpt {
                    filter_type: 0,
                    stop_hash: tip
                }
            ),
            (
                conns[2],
                GetCFCheckpt {
                    filter_type: 0,
                    stop_hash: tip
                }
            ),
        ]
    );
    assert_eq!(filter_requests_to(&out, conns[1]), 0);
    let status = h.engine.filter_status();
    assert!(status.enabled);
    assert_eq!(status.peers, 2);
    assert_eq!(status.headers, 0);

    // Filters off: nobody is asked, whatever they serve.
    let (mut h, _, out) = node_with(
        connect_config(2, false),
        &data,
        &[filter_services(), filter_services()],
    );
    assert!(getcfcheckpts(&out).is_empty());
    assert!(getcfheaders(&h.advance(Duration::from_secs(5))).is_empty());
    assert!(!h.engine.filter_status().enabled);
}

#[test]
fn regular_slots_go_to_filter_peers_until_two_are_dialled() {
    let learn = |h: &mut Harness, first: u8, n: u8, services: ServiceFlags| {
        let records: Vec<AddrRecord> = (0..n)
            .map(|i| AddrRecord {
                addr: format!("{}.{}.1.1:18444", first + i, i)
                    .parse::<NetAddr>()
                    .unwrap(),
                services,
                last_seen: UNIX_START,
            })
            .collect();
        let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(3);
        let src = AddrSource::Internal(InternalSource::named("test"));
        h.engine.addrman.add(&records, &src, UNIX_START, &mut rng);
    };
    let config = |filters: bool| {
        let mut c = EngineConfig::new(bitcoin::Network::Regtest);
        c.target_outbound = 4;
        c.block_filters = filters;
        c.dns_seeds = false;
        c.fixed_seeds = false;
        c.feeler_interval = Duration::from_secs(1_000_000);
        c
    };
    let filter_addrs: BTreeSet<String> = (0..4u8)
        .map(|i| format!("{}.{i}.1.1:18444", 60 + i))
        .collect();
    let first_dials = |h: &mut Harness| {
        let mut d = dials(&h.input(Input::TorReady(true)));
        d.extend(dials(&h.advance(Duration::from_secs(10))));
        d
    };

    let mut h = Harness::new(config(true));
    learn(&mut h, 20, 20, plain_services());
    learn(&mut h, 60, 4, filter_services());
    let d = first_dials(&mut h);
    let kinds: Vec<ConnectionKind> = d.iter().map(|d| d.kind).collect();
    assert_eq!(
        kinds,
        vec![
            ConnectionKind::Regular(filter_services()),
            ConnectionKind::Regular(filter_services()),
            ConnectionKind::Regular(plain_services()),
            ConnectionKind::Regular(plain_services()),
        ]
    );
    assert!(filter_addrs.contains(&d[0].target.to_string()));
    assert!(filter_addrs.contains(&d[1].target.to_string()));

    // Filters off: no slot is reserved.
    let mut h = Harness::new(config(false));
    learn(&mut h, 60, 4, filter_services());
    let d = first_dials(&mut h);
    assert_eq!(d.len(), 4);
    assert!(
        d.iter()
            .all(|d| d.kind == ConnectionKind::Regular(plain_services()))
    );

    // A book without filter peers: any full node, without delay.
    let mut h = Harness::new(config(true));
    learn(&mut h, 20, 20, plain_services());
    let d = first_dials(&mut h);
    assert_eq!(d.len(), 4);
    assert!(
        d.iter()
            .all(|d| d.kind == ConnectionKind::Regular(plain_services()))
    );
}

#[test]
fn a_feeler_is_not_asked_for_filter_checkpoints() {
    let mut config = EngineConfig::new(bitcoin::Network::Regtest);
    config.target_outbound = 1;
    config.feeler_interval = Duration::from_secs(5);
    config.block_filters = true;
    config.dns_seeds = false;
    config.fixed_seeds = false;
    // A recent chain: out of initial sync, filter work may start.
    let mut h = Harness::new(config).with_chain(Blocks::new(10, &[]).header_chain());
    let records: Vec<AddrRecord> = (0..10u8)
        .map(|i| AddrRecord {
            addr: format!("{}.{i}.1.1:18444", 20 + i).parse().unwrap(),
            services: filter_services(),
            last_seen: UNIX_START,
        })
        .collect();
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(3);
    let src = AddrSource::Internal(InternalSource::named("test"));
    h.engine.addrman.add(&records, &src, UNIX_START, &mut rng);
    let d = dials(&h.input(Input::TorReady(true)));
    let out = handshake(&mut h, d[0].conn, filter_services(), 0);
    assert_eq!(getcfcheckpts(&out).len(), 1, "the regular filter peer");
    let mut feeler = None;
    for _ in 0..300 {
        if let Some(f) = dials(&h.advance(Duration::from_secs(1)))
            .into_iter()
            .find(|d| d.kind == ConnectionKind::Feeler)
        {
            feeler = Some(f);
            break;
        }
    }
    let feeler = feeler.expect("a feeler within five minutes");
    let out = handshake(&mut h, feeler.conn, filter_services(), 0);
    assert_eq!(
        filter_requests_to(&out, feeler.conn),
        0,
        "a feeler only tests the address: {:?}",
        getcfcheckpts(&out)
    );
}

#[test]
fn a_private_broadcast_connection_is_not_asked_for_filter_checkpoints() {
    let mut config = EngineConfig::new(bitcoin::Network::Regtest);
    config.target_outbound = 0;
    config.feeler_interval = Duration::from_secs(1_000_000);
    config.dns_seeds = false;
    config.fixed_seeds = false;
    config.block_filters = true;
    let mut h = Harness::new(config).with_chain(Blocks::new(10, &[]).header_chain());
    h.learn(&super::tests::ipv4_addrs(12));
    h.input(Input::TorReady(true));
    let tx = coinbase(1, 9, wallet());
    let tx = Transaction {
        input: vec![TxIn {
            previous_output: OutPoint::new(bitcoin::Txid::from_byte_array([7; 32]), 0),
            ..tx.input[0].clone()
        }],
        ..tx
    };
    let (reply, _) = command(&mut h, Command::PrivateBroadcast(tx));
    assert!(
        matches!(reply, Ok(CommandReply::Broadcasting(_))),
        "{reply:?}"
    );
    let mut carrier = None;
    for _ in 0..300 {
        if let Some(d) = dials(&h.advance(Duration::from_secs(1)))
            .into_iter()
            .find(|d| d.kind == ConnectionKind::PrivateBroadcast)
        {
            carrier = Some(d);
            break;
        }
    }
    let carrier = carrier.expect("a private-broadcast dial");
    let out = handshake(&mut h, carrier.conn, filter_services(), 0);
    assert_eq!(
        filter_requests_to(&out, carrier.conn),
        0,
        "a private broadcast carries one transaction and nothing else"
    );
}

// === FILTER HEADER SYNC ===

#[test]
fn intervals_go_out_in_parallel_and_the_tail_is_taken_once_both_peers_agree() {
    let data = Blocks::new(2500, &[]);
    let (mut h, conns, _) = filter_node(&data, 2);
    let (a, b) = (conns[0], conns[1]);
    let out = answer_checkpoints(&mut h, &[a], &data);
    assert!(
        getcfheaders(&out).is_empty(),
        "nothing is built before every filter peer's checkpoints are in"
    );
    let out = answer_checkpoints(&mut h, &[b], &data);
    let asked = intervals(&out);
    assert_eq!(getcfheaders(&out).len(), 2, "one request per peer");
    assert_eq!(asked.keys().copied().collect::<Vec<_>>(), vec![0, 1001]);
    assert_eq!(asked[&0].1, data.hash(1000));
    assert_eq!(asked[&1001].1, data.hash(2000));
    let (low, high) = (asked[&0].0, asked[&1001].0);
    assert_ne!(low, high, "in parallel, from different peers");

    // The lowest interval is stored at once; its peer moves on to the tail.
    let out = message(
        &mut h,
        low,
        NetworkMessage::CFHeaders(data.cfheaders(0, 1000)),
    );
    assert!(persisted(&out));
    assert_eq!(h.engine.filter_headers().len(), 1001);
    assert_eq!(
        getcfheaders(&out),
        vec![(low, getcfheaders_req(2001, data.hash(2500)))]
    );
    // One answer for the tail is not enough.
    let out = message(
        &mut h,
        low,
        NetworkMessage::CFHeaders(data.cfheaders(2001, 2500)),
    );
    assert!(!persisted(&out));
    assert_eq!(h.engine.filter_headers().len(), 1001);
    let out = message(
        &mut h,
        high,
        NetworkMessage::CFHeaders(data.cfheaders(1001, 2000)),
    );
    assert!(persisted(&out));
    assert_eq!(h.engine.filter_headers().len(), 2001);
    assert_eq!(
        getcfheaders(&out),
        vec![(high, getcfheaders_req(2001, data.hash(2500)))],
        "the second witness for the tail"
    );
    // What is held so far ends at a checkpoint both peers agreed on.
    assert!(h.engine.filter_status().cross_checked);
    let out = message(
        &mut h,
        high,
        NetworkMessage::CFHeaders(data.cfheaders(2001, 2500)),
    );
    assert!(persisted(&out));
    assert!(getcfheaders(&out).is_empty(), "nothing left to ask");
    assert_filter_headers(&h, &data);
    let status = h.engine.filter_status();
    assert_eq!(status.headers, 2501);
    assert!(status.cross_checked);
    assert_eq!(status.disputed_from, None);
}

#[test]
fn an_interval_contradicting_the_agreed_checkpoint_scores_its_peer_and_is_asked_elsewhere() {
    let data = Blocks::new(2500, &[]);
    let (mut h, conns, _) = filter_node(&data, 2);
    let asked = intervals(&answer_checkpoints(&mut h, &conns, &data));
    let (liar, honest) = (asked[&0].0, asked[&1001].0);
    let mut forged = data.cfheaders(0, 1000);
    forged.filter_hashes[500] = FilterHash::from_byte_array([5; 32]);
    let out = message(&mut h, liar, NetworkMessage::CFHeaders(forged));
    assert_eq!(misbehaving(&out, liar), vec![100]);
    assert!(!persisted(&out));
    assert_eq!(
        h.engine.filter_headers().len(),
        0,
        "nothing from it is stored"
    );
    assert_eq!(filter_requests_to(&out, liar), 0, "benched");
    assert_eq!(h.engine.filter_status().peers, 1);

    // The honest peer's interval waits for the one below it, which the
    // honest peer is asked for next.
    let out = message(
        &mut h,
        honest,
        NetworkMessage::CFHeaders(data.cfheaders(1001, 2000)),
    );
    assert_eq!(h.engine.filter_headers().len(), 0);
    assert_eq!(
        getcfheaders(&out),
        vec![(honest, getcfheaders_req(0, data.hash(1000)))]
    );
    let out = message(
        &mut h,
        honest,
        NetworkMessage::CFHeaders(data.cfheaders(0, 1000)),
    );
    assert!(persisted(&out));
    assert_eq!(h.engine.filter_headers().len(), 2001);
    // One witness left: its word is taken for the tail.
    assert_eq!(
        getcfheaders(&out),
        vec![(honest, getcfheaders_req(2001, data.hash(2500)))]
    );
    message(
        &mut h,
        honest,
        NetworkMessage::CFHeaders(data.cfheaders(2001, 2500)),
    );
    assert_filter_headers(&h, &data);
    assert!(!h.engine.filter_status().cross_checked);
}

#[test]
fn an_interval_that_does_not_start_from_the_checkpoint_below_scores_its_peer() {
    let data = Blocks::new(2500, &[]);
    let (mut h, conns, _) = filter_node(&data, 2);
    let asked = intervals(&answer_checkpoints(&mut h, &conns, &data));
    let high = asked[&1001].0;
    let mut forged = data.cfheaders(1001, 2000);
    forged.previous_filter_header = FilterHeader::from_byte_array([1; 32]);
    let out = message(&mut h, high, NetworkMessage::CFHeaders(forged));
    assert_eq!(misbehaving(&out, high), vec![100]);
    assert_eq!(h.engine.filter_status().peers, 1);
    // An answer for a different block than asked is scored too.
    let low = asked[&0].0;
    let out = message(
        &mut h,
        low,
        NetworkMessage::CFHeaders(data.cfheaders(0, 999)),
    );
    assert_eq!(misbehaving(&out, low), vec![100]);
    assert_eq!(h.engine.filter_headers().len(), 0);
}

#[test]
fn disagreeing_checkpoints_stop_sync_below_the_disputed_height_and_ask_both_sides() {
    let data = Blocks::new(2500, &[]);
    let (mut h, conns, _) = filter_node(&data, 2);
    let (a, b) = (conns[0], conns[1]);
    answer_checkpoints(&mut h, &[a], &data);
    let mut other = data.cfcheckpt(2500);
    other.filter_headers[1] = FilterHeader::from_byte_array([2; 32]);
    let out = message(&mut h, b, NetworkMessage::CFCheckpt(other));
    assert!(any_misbehaving(&out).is_empty(), "no way to tell who lies");
    assert_eq!(h.engine.filter_status().disputed_from, Some(2000));
    let asked = getcfheaders(&out);
    assert_eq!(asked.len(), 1, "{asked:?}");
    assert_eq!(asked[0].1, getcfheaders_req(0, data.hash(1000)));
    let mut out = message(
        &mut h,
        asked[0].0,
        NetworkMessage::CFHeaders(data.cfheaders(0, 1000)),
    );
    out.extend(h.advance(Duration::from_secs(30)));
    assert_eq!(h.engine.filter_headers().len(), 1001);
    // The disputed interval goes to both sides, to be compared; nothing
    // above it is asked.
    let mut asked = getcfheaders(&out);
    asked.sort_by_key(|(c, _)| *c);
    let disputed = getcfheaders_req(1001, data.hash(2000));
    assert_eq!(asked, vec![(a, disputed.clone()), (b, disputed)]);
    assert_eq!(h.engine.filter_status().disputed_from, Some(2000));
    // `b`'s interval cannot hash up to its own checkpoint: it contradicts
    // itself, and is scored; `a`, alone now, is believed.
    let out = message(
        &mut h,
        b,
        NetworkMessage::CFHeaders(data.cfheaders(1001, 2000)),
    );
    assert_eq!(misbehaving(&out, b), vec![100]);
    let mut out = message(
        &mut h,
        a,
        NetworkMessage::CFHeaders(data.cfheaders(1001, 2000)),
    );
    out.extend(h.advance(Duration::from_secs(1)));
    assert_eq!(h.engine.filter_headers().len(), 2001);
    assert_eq!(h.engine.filter_status().disputed_from, None);
}

#[test]
fn a_tail_two_peers_answer_differently_is_not_taken_while_evidence_is_gathered() {
    let data = Blocks::new(1500, &[]);
    let (mut h, conns, _) = filter_node(&data, 2);
    let asked = intervals(&answer_checkpoints(&mut h, &conns, &data));
    let (low, high) = (asked[&0].0, asked[&1001].0);
    assert_eq!(asked[&1001].1, data.hash(1500), "the tail");
    message(
        &mut h,
        high,
        NetworkMessage::CFHeaders(data.cfheaders(1001, 1500)),
    );
    let out = message(
        &mut h,
        low,
        NetworkMessage::CFHeaders(data.cfheaders(0, 1000)),
    );
    assert_eq!(h.engine.filter_headers().len(), 1001);
    assert_eq!(
        getcfheaders(&out),
        vec![(low, getcfheaders_req(1001, data.hash(1500)))]
    );
    let mut other = data.cfheaders(1001, 1500);
    other.filter_hashes[499] = FilterHash::from_byte_array([9; 32]);
    let mut out = message(&mut h, low, NetworkMessage::CFHeaders(other.clone()));
    out.extend(h.advance(Duration::from_secs(30)));
    assert!(any_misbehaving(&out).is_empty());
    assert!(getcfheaders(&out).is_empty(), "{:?}", getcfheaders(&out));
    assert_eq!(h.engine.filter_headers().len(), 1001, "neither is taken");
    let status = h.engine.filter_status();
    assert_eq!(status.disputed_from, Some(1001));
    assert!(!status.cross_checked);
    // Evidence: the disputed block's filter from both sides.
    let mut evidence = getcfilters(&out);
    evidence.sort_by_key(|(c, _)| *c);
    let mut parties = [low, high];
    parties.sort();
    assert_eq!(
        evidence
            .iter()
            .map(|(c, m)| (*c, m.start_height))
            .collect::<Vec<_>>(),
        parties.iter().map(|c| (*c, 1500)).collect::<Vec<_>>()
    );

    // One of them leaves: the other is asked again and, alone, believed.
    let out = closed(&mut h, high);
    assert_eq!(
        getcfheaders(&out),
        vec![(low, getcfheaders_req(1001, data.hash(1500)))]
    );
    let out = message(&mut h, low, NetworkMessage::CFHeaders(other.clone()));
    assert!(persisted(&out));
    let tail_top = {
        let h1000 = data.header(1000);
        other
            .filter_hashes
            .iter()
            .fold(h1000, |prev, hash| hash.filter_header(&prev))
    };
    assert_eq!(h.engine.filter_headers().header_at(1500), Some(tail_top));
    let status = h.engine.filter_status();
    assert_eq!(status.disputed_from, None);
    assert!(!status.cross_checked);
}

#[test]
fn a_tail_disputed_from_genesis_asks_for_nothing_more() {
    let data = Blocks::new(500, &[]);
    let (mut h, conns, _) = filter_node(&data, 2);
    let asked = getcfheaders(&answer_checkpoints(&mut h, &conns, &data));
    assert_eq!(asked.len(), 1);
    let first = asked[0].0;
    let second = if first == conns[0] {
        conns[1]
    } else {
        conns[0]
    };
    let out = message(
        &mut h,
        first,
        NetworkMessage::CFHeaders(data.cfheaders(0, 500)),
    );
    assert_eq!(
        getcfheaders(&out),
        vec![(second, getcfheaders_req(0, data.hash(500)))]
    );
    let mut other = data.cfheaders(0, 500);
    other.filter_hashes[0] = FilterHash::from_byte_array([9; 32]);
    let out = message(&mut h, second, NetworkMessage::CFHeaders(other));
    assert_eq!(h.engine.filter_status().disputed_from, Some(0));
    assert!(
        getcfheaders(&out).is_empty(),
        "disputed from 0, yet asked: {:?}",
        getcfheaders(&out)
    );
}

#[test]
fn a_single_filter_peer_is_taken_at_its_word() {
    let data = Blocks::new(500, &[]);
    let (mut h, conns, out) = filter_node(&data, 1);
    assert_eq!(getcfcheckpts(&out).len(), 1);
    let out = answer_checkpoints(&mut h, &conns, &data);
    assert_eq!(
        getcfheaders(&out),
        vec![(conns[0], getcfheaders_req(0, data.hash(500)))]
    );
    let out = message(
        &mut h,
        conns[0],
        NetworkMessage::CFHeaders(data.cfheaders(0, 500)),
    );
    assert!(persisted(&out));
    assert_filter_headers(&h, &data);
    let status = h.engine.filter_status();
    assert!(!status.cross_checked);
    assert_eq!(status.peers, 1);
}

#[test]
fn a_tail_whose_witness_leaves_is_taken_from_the_one_answer() {
    let data = Blocks::new(500, &[]);
    let (mut h, conns, _) = filter_node(&data, 2);
    let asked = getcfheaders(&answer_checkpoints(&mut h, &conns, &data));
    assert_eq!(asked.len(), 1, "no interval to give the second peer yet");
    let first = asked[0].0;
    let witness = if first == conns[0] {
        conns[1]
    } else {
        conns[0]
    };
    let out = message(
        &mut h,
        first,
        NetworkMessage::CFHeaders(data.cfheaders(0, 500)),
    );
    assert_eq!(h.engine.filter_headers().len(), 0);
    assert_eq!(getcfheaders(&out)[0].0, witness);
    let out = closed(&mut h, witness);
    assert!(persisted(&out));
    assert_filter_headers(&h, &data);
    assert!(!h.engine.filter_status().cross_checked);
}

#[test]
fn a_chain_covered_by_checkpoints_is_cross_checked() {
    let data = Blocks::new(2000, &[]);
    let (h, _) = synced_node(&data, 2);
    assert_filter_headers(&h, &data);
    assert!(h.engine.filter_status().cross_checked);
}

#[test]
fn an_unanswered_request_benches_the_peer_and_its_interval_goes_to_another() {
    let data = Blocks::new(1500, &[]);
    let (mut h, conns, _) = filter_node(&data, 2);
    let asked = intervals(&answer_checkpoints(&mut h, &conns, &data));
    let (slow, quick) = (asked[&0].0, asked[&1001].0);
    let out = message(
        &mut h,
        quick,
        NetworkMessage::CFHeaders(data.cfheaders(1001, 1500)),
    );
    assert!(
        getcfheaders(&out).is_empty(),
        "the tail waits for a witness"
    );
    let out = h.advance(FILTER_RESPONSE_TIMEOUT.saturating_sub(Duration::from_secs(1)));
    assert!(getcfheaders(&out).is_empty());
    assert_eq!(h.engine.filter_status().peers, 2);
    let out = h.advance(Duration::from_secs(1));
    assert_eq!(
        getcfheaders(&out),
        vec![(quick, getcfheaders_req(0, data.hash(1000)))]
    );
    assert_eq!(
        h.engine.filter_status().peers,
        1,
        "the slow peer is benched"
    );
    // Its late answer changes nothing; the new one completes the chain.
    message(
        &mut h,
        slow,
        NetworkMessage::CFHeaders(data.cfheaders(0, 1000)),
    );
    assert_eq!(h.engine.filter_headers().len(), 0);
    let out = message(
        &mut h,
        quick,
        NetworkMessage::CFHeaders(data.cfheaders(0, 1000)),
    );
    assert!(persisted(&out));
    assert_filter_headers(&h, &data);
    // New blocks later: the benched peer is never asked again.
    let more = data.fork(1500, 3, 0, &[]);
    let mut out = message(
        &mut h,
        quick,
        NetworkMessage::Headers(more.block_headers(1501, 1503)),
    );
    out.extend(h.advance(Duration::from_secs(5)));
    assert_eq!(filter_requests_to(&out, slow), 0);
    assert_eq!(
        getcfheaders(&out),
        vec![(quick, getcfheaders_req(1501, more.hash(1503)))]
    );
}

#[test]
fn a_reorg_cuts_the_filter_headers_at_the_fork_and_fetches_the_new_branch() {
    let old = Blocks::new(1500, &[]);
    let (mut h, conns) = synced_node(&old, 2);
    h.engine.filter_headers_for_store().mark_written();
    let new = old.fork(1200, 302, 1, &[]);
    let out = message(
        &mut h,
        conns[0],
        NetworkMessage::Headers(new.block_headers(1201, 1502)),
    );
    assert_eq!(h.engine.chain().tip(), (1502, new.hash(1502)));
    assert_eq!(truncations(&out), vec![1201]);
    assert_eq!(h.engine.filter_headers().len(), 1201);
    assert_eq!(
        h.engine.filter_headers().header_at(1200),
        Some(old.header(1200))
    );
    // Every peer is asked again, for the new branch.
    let asked: BTreeSet<(ConnId, BlockHash)> = getcfcheckpts(&out)
        .into_iter()
        .map(|(c, m)| (c, m.stop_hash))
        .collect();
    let want: BTreeSet<(ConnId, BlockHash)> = conns.iter().map(|c| (*c, new.hash(1502))).collect();
    assert_eq!(asked, want);
    let out = serve(&mut h, out, &[&new], &[]);
    assert!(
        getcfheaders(&out)
            .iter()
            .any(|(_, m)| *m == getcfheaders_req(1201, new.hash(1502)))
    );
    assert!(
        getcfheaders(&out)
            .iter()
            .all(|(_, m)| m.start_height >= 1201)
    );
    assert!(any_misbehaving(&out).is_empty());
    assert_filter_headers(&h, &new);
    assert!(h.engine.filter_status().cross_checked);
}

#[test]
fn a_reorg_of_unwritten_filter_headers_cuts_memory_only() {
    let old = Blocks::new(300, &[]);
    let (mut h, conns) = synced_node(&old, 2);
    let new = old.fork(290, 12, 1, &[]);
    let out = message(
        &mut h,
        conns[1],
        NetworkMessage::Headers(new.block_headers(291, 302)),
    );
    assert!(truncations(&out).is_empty(), "the file holds none of them");
    assert_eq!(h.engine.filter_headers().len(), 291);
    serve(&mut h, out, &[&new], &[]);
    assert_filter_headers(&h, &new);
}

#[test]
fn a_reorg_above_the_filter_tip_does_not_score_honest_peers() {
    let old = Blocks::new(2000, &[]);
    let (mut h, conns, _) = filter_node(&old, 2);
    let asked = intervals(&answer_checkpoints(&mut h, &conns, &old));
    let (low, high) = (asked[&0].0, asked[&1001].0);
    message(
        &mut h,
        low,
        NetworkMessage::CFHeaders(old.cfheaders(0, 1000)),
    );
    assert_eq!(h.engine.filter_headers().len(), 1001);
    // The block at the checkpoint height 2000 is replaced while the
    // interval below it is in flight.
    let new = old.fork(1999, 3, 1, &[]);
    let out = message(
        &mut h,
        low,
        NetworkMessage::Headers(new.block_headers(2000, 2002)),
    );
    assert_eq!(h.engine.chain().tip(), (2002, new.hash(2002)));
    // The answer in flight is for the old branch; from now on the peers
    // follow the new one.
    let mut pending = out;
    pending.extend(message(
        &mut h,
        high,
        NetworkMessage::CFHeaders(old.cfheaders(1001, 2000)),
    ));
    let out = serve(&mut h, pending, &[&new], &[]);
    assert!(
        any_misbehaving(&out).is_empty(),
        "honest peers scored: {:?}",
        any_misbehaving(&out)
    );
    assert_filter_headers(&h, &new);
}

#[test]
fn a_reorg_while_the_tail_waits_for_its_witness_does_not_stall_sync() {
    let old = Blocks::new(1500, &[]);
    let (mut h, conns, _) = filter_node(&old, 2);
    let asked = intervals(&answer_checkpoints(&mut h, &conns, &old));
    let (low, high) = (asked[&0].0, asked[&1001].0);
    message(
        &mut h,
        high,
        NetworkMessage::CFHeaders(old.cfheaders(1001, 1500)),
    );
    let new = old.fork(1400, 102, 1, &[]);
    let mut pending = message(
        &mut h,
        high,
        NetworkMessage::Headers(new.block_headers(1401, 1502)),
    );
    assert_eq!(h.engine.chain().tip(), (1502, new.hash(1502)));
    pending.extend(message(
        &mut h,
        low,
        NetworkMessage::CFHeaders(old.cfheaders(0, 1000)),
    ));
    assert_eq!(h.engine.filter_headers().len(), 1001);
    let mut out = serve(&mut h, pending, &[&new], &[]);
    let later = h.advance(Duration::from_secs(30));
    out.extend(serve(&mut h, later, &[&new], &[]));
    assert!(
        !getcfheaders(&out).is_empty(),
        "nothing asked after the reorg"
    );
    assert_filter_headers(&h, &new);
}

// === SCANS AND FILTERS ===

fn scan(
    h: &mut Harness,
    start: u32,
    stop: u32,
    scripts: Vec<ScriptBuf>,
) -> (RequestId, Vec<Output>) {
    let (reply, out) = command(
        h,
        Command::ScanBlocks(ScanRequest {
            scripts,
            start,
            stop,
        }),
    );
    (pending(reply), out)
}

/// The scan result `id` got in `out`, which must be the only answer.
fn scan_result(out: &[Output], id: RequestId) -> Fetched {
    let answers = fetched(out);
    assert_eq!(answers.len(), 1, "{answers:?}");
    assert_eq!(answers[0].0, id);
    answers[0].1.clone().expect("a scan result")
}

#[test]
fn a_scan_spreads_batches_over_the_filter_peers_and_finds_the_paying_blocks() {
    let data = Blocks::new(300, &[42, 150]);
    let (mut h, conns) = synced_node(&data, 2);
    let (id, out) = scan(&mut h, 0, 300, vec![wallet()]);
    let first: BTreeMap<u32, (ConnId, BlockHash)> = getcfilters(&out)
        .into_iter()
        .map(|(c, m)| (m.start_height, (c, m.stop_hash)))
        .collect();
    assert_eq!(
        first.keys().copied().collect::<Vec<_>>(),
        vec![0, SCAN_BATCH]
    );
    assert_eq!(first[&0].1, data.hash(SCAN_BATCH - 1));
    assert_eq!(first[&SCAN_BATCH].1, data.hash(2 * SCAN_BATCH - 1));
    let peers: BTreeSet<ConnId> = first.values().map(|(c, _)| *c).collect();
    assert_eq!(peers, conns.iter().copied().collect(), "a batch each");
    assert!(h.engine.scan_status().is_some());

    let out = serve(&mut h, out, &[&data], &[]);
    // Every height asked exactly once, in batches of at most SCAN_BATCH.
    let mut heights = Vec::new();
    for (_, m) in getcfilters(&out) {
        let stop = data.heights[&m.stop_hash];
        assert!(stop - m.start_height < SCAN_BATCH);
        heights.extend(m.start_height..=stop);
    }
    heights.sort_unstable();
    assert_eq!(heights, (0..=300).collect::<Vec<_>>());
    assert_eq!(
        scan_result(&out, id),
        Fetched::Scan {
            from: 0,
            to: 300,
            relevant: vec![data.hash(42), data.hash(150)],
            completed: true,
        }
    );
    assert!(any_misbehaving(&out).is_empty());
    assert!(h.engine.scan_status().is_none());

    // A script nobody paid: nothing relevant, over a part of the chain.
    let (id, out) = scan(&mut h, 120, 160, vec![other_script(7, 0xaa)]);
    let out = serve(&mut h, out, &[&data], &[]);
    assert_eq!(
        scan_result(&out, id),
        Fetched::Scan {
            from: 120,
            to: 160,
            relevant: vec![],
            completed: true,
        }
    );
}

#[test]
fn scan_commands_are_refused_when_they_cannot_run() {
    let data = Blocks::new(300, &[]);
    let (mut h, _) = synced_node(&data, 2);
    let (reply, _) = command(
        &mut h,
        Command::ScanBlocks(ScanRequest {
            scripts: vec![wallet()],
            start: 20,
            stop: 10,
        }),
    );
    assert_eq!(
        reply,
        Err(CommandError::Fetch(FetchError::BadRange {
            start: 20,
            stop: 10
        }))
    );
    let (id, _) = scan(&mut h, 0, 300, vec![wallet()]);
    let (reply, _) = command(
        &mut h,
        Command::ScanBlocks(ScanRequest {
            scripts: vec![wallet()],
            start: 0,
            stop: 1,
        }),
    );
    assert_eq!(reply, Err(CommandError::Fetch(FetchError::ScanRunning)));
    // Aborting answers the scan with what it found so far.
    let (reply, out) = command(&mut h, Command::AbortScan);
    assert_eq!(reply, Ok(CommandReply::Aborted(true)));
    assert!(matches!(
        scan_result(&out, id),
        Fetched::Scan {
            completed: false,
            ..
        }
    ));
    let (reply, out) = command(&mut h, Command::AbortScan);
    assert_eq!(reply, Ok(CommandReply::Aborted(false)));
    assert!(fetched(&out).is_empty());

    let (mut h, _, _) = node_with(connect_config(1, false), &data, &[filter_services()]);
    let (reply, _) = command(
        &mut h,
        Command::ScanBlocks(ScanRequest {
            scripts: vec![wallet()],
            start: 0,
            stop: 1,
        }),
    );
    assert_eq!(reply, Err(CommandError::Fetch(FetchError::FiltersOff)));
    let (reply, _) = command(&mut h, Command::GetBlockFilter(data.hash(1)));
    assert_eq!(reply, Err(CommandError::Fetch(FetchError::FiltersOff)));
}

#[test]
fn a_scan_started_before_the_filter_headers_waits_for_them() {
    let data = Blocks::new(300, &[200]);
    let (mut h, _, out) = filter_node(&data, 2);
    let (id, more) = scan(&mut h, 150, 250, vec![wallet()]);
    assert!(
        getcfilters(&more).is_empty(),
        "no filter header to check against yet"
    );
    let mut all = out;
    all.extend(more);
    let out = serve(&mut h, all, &[&data], &[]);
    assert_filter_headers(&h, &data);
    assert_eq!(
        scan_result(&out, id),
        Fetched::Scan {
            from: 150,
            to: 250,
            relevant: vec![data.hash(200)],
            completed: true,
        }
    );
}

#[test]
fn after_an_abort_the_peers_are_free_once_they_answered() {
    let data = Blocks::new(300, &[]);
    let (mut h, _) = synced_node(&data, 2);
    let (_, out) = scan(&mut h, 0, 300, vec![wallet()]);
    let batches = getcfilters(&out);
    assert_eq!(batches.len(), 2);
    let (reply, _) = command(&mut h, Command::AbortScan);
    assert_eq!(reply, Ok(CommandReply::Aborted(true)));
    // The batches in flight arrive after all.
    for (conn, m) in &batches {
        for height in m.start_height..=data.heights[&m.stop_hash] {
            message(&mut h, *conn, NetworkMessage::CFilter(data.cfilter(height)));
        }
    }
    let (_, out) = scan(&mut h, 0, 300, vec![wallet()]);
    assert_eq!(
        getcfilters(&out).len(),
        2,
        "both peers answered everything they were asked: both are idle"
    );
}

#[test]
fn a_filter_that_does_not_match_its_header_scores_the_sender() {
    let data = Blocks::new(300, &[150]);
    let (mut h, _) = synced_node(&data, 2);
    let (_, out) = scan(&mut h, 0, 300, vec![wallet()]);
    let liar = getcfilters(&out)
        .into_iter()
        .find(|(_, m)| m.start_height == 0)
        .expect("the first batch")
        .0;
    let mut forged = data.cfilter(0);
    forged.filter.push(0);
    let out = message(&mut h, liar, NetworkMessage::CFilter(forged));
    assert_eq!(misbehaving(&out, liar), vec![100]);
    assert!(fetched(&out).is_empty());
    // A filter for another block than the one due looks like a late
    // answer to an earlier request: dropped, neither scored nor counted.
    let (mut h, _) = synced_node(&data, 2);
    let (_, out) = scan(&mut h, 0, 300, vec![wallet()]);
    let peer = getcfilters(&out)[0].0;
    let start = getcfilters(&out)[0].1.start_height;
    let out = message(
        &mut h,
        peer,
        NetworkMessage::CFilter(data.cfilter(start + 1)),
    );
    assert!(misbehaving(&out, peer).is_empty());
    assert_eq!(h.engine.scan_status().map(|s| s.progress), Some(0));
}

#[test]
fn a_wrong_filters_height_is_asked_again_and_the_scan_completes() {
    // Height 1 pays the wallet, in the batch the liar spoils.
    let data = Blocks::new(300, &[1, 150]);
    let (mut h, conns) = synced_node(&data, 2);
    let (id, out) = scan(&mut h, 0, 300, vec![wallet()]);
    let liar = getcfilters(&out)
        .into_iter()
        .find(|(_, m)| m.start_height == 0)
        .expect("the first batch")
        .0;
    let honest = if liar == conns[0] { conns[1] } else { conns[0] };
    let mut forged = data.cfilter(0);
    forged.filter.push(0);
    let mut rest = out.clone();
    rest.retain(|o| !matches!(o, Output::Send { conn, .. } if *conn == liar));
    rest.extend(message(&mut h, liar, NetworkMessage::CFilter(forged)));
    // 100 points: its machine disconnects it.
    rest.extend(closed(&mut h, liar));
    let mut out = serve(&mut h, rest, &[&data], &[liar]);
    // (A batch requeued on close may go back to the closed connection
    // first: see `a_batch_whose_peer_leaves_midway_is_finished_by_another`.
    // Its timeout brings it back.)
    let later = h.advance(FILTER_RESPONSE_TIMEOUT);
    out.extend(serve(&mut h, later, &[&data], &[liar]));
    assert!(
        getcfilters(&out)
            .iter()
            .any(|(c, m)| *c == honest && m.start_height == 0),
        "height 0 asked again: {:?}",
        getcfilters(&out)
            .iter()
            .map(|(c, m)| (c, m.start_height))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        scan_result(&out, id),
        Fetched::Scan {
            from: 0,
            to: 300,
            relevant: vec![data.hash(1), data.hash(150)],
            completed: true,
        }
    );
}

#[test]
fn a_batch_whose_peer_leaves_midway_is_finished_by_another() {
    let data = Blocks::new(300, &[70]);
    let (mut h, conns) = synced_node(&data, 2);
    let (id, out) = scan(&mut h, 0, 300, vec![wallet()]);
    let leaver = getcfilters(&out)
        .into_iter()
        .find(|(_, m)| m.start_height == 0)
        .expect("the first batch")
        .0;
    let stayer = if leaver == conns[0] {
        conns[1]
    } else {
        conns[0]
    };
    let mut rest = out.clone();
    rest.retain(|o| !matches!(o, Output::Send { conn, .. } if *conn == leaver));
    for height in 0..50 {
        rest.extend(message(
            &mut h,
            leaver,
            NetworkMessage::CFilter(data.cfilter(height)),
        ));
    }
    assert_eq!(
        h.engine.scan_status().map(|s| s.progress),
        Some(50 * 100 / 301)
    );
    let out = closed(&mut h, leaver);
    assert_eq!(
        filter_requests_to(&out, leaver),
        0,
        "asked of the closed connection: {:?}",
        getcfilters(&out)
    );
    rest.extend(out);
    let out = serve(&mut h, rest, &[&data], &[leaver]);
    assert!(
        getcfilters(&out)
            .iter()
            .any(|(c, m)| *c == stayer && m.start_height == 50 && m.stop_hash == data.hash(99)),
        "the rest of the batch asked of the other peer"
    );
    assert_eq!(
        scan_result(&out, id),
        Fetched::Scan {
            from: 0,
            to: 300,
            relevant: vec![data.hash(70)],
            completed: true,
        }
    );
    assert!(any_misbehaving(&out).is_empty());
}

#[test]
fn a_batch_that_times_out_is_asked_again() {
    let data = Blocks::new(300, &[]);
    let (mut h, conns) = synced_node(&data, 2);
    let (_, out) = scan(&mut h, 0, 300, vec![wallet()]);
    assert_eq!(getcfilters(&out).len(), 2);
    let out = h.advance(FILTER_RESPONSE_TIMEOUT.saturating_sub(Duration::from_secs(1)));
    assert!(getcfilters(&out).is_empty());
    let out = h.advance(Duration::from_secs(1));
    let again: BTreeSet<u32> = getcfilters(&out)
        .iter()
        .map(|(_, m)| m.start_height)
        .collect();
    assert_eq!(again, BTreeSet::from([0, SCAN_BATCH]));
    assert!(getcfilters(&out).iter().all(|(c, _)| conns.contains(c)));
}

#[test]
fn a_slow_peer_answering_late_is_not_scored() {
    let data = Blocks::new(199, &[120]);
    let (mut h, conns) = synced_node(&data, 1);
    let a = conns[0];
    let (id, out) = scan(&mut h, 0, 199, vec![wallet()]);
    assert_eq!(
        getcfilters(&out)
            .iter()
            .map(|(_, m)| m.start_height)
            .collect::<Vec<_>>(),
        vec![0]
    );
    let out = h.advance(FILTER_RESPONSE_TIMEOUT);
    assert_eq!(
        getcfilters(&out)
            .iter()
            .map(|(c, m)| (*c, m.start_height))
            .collect::<Vec<_>>(),
        vec![(a, 0)],
        "asked again"
    );
    // The first request's answer arrives late, then the second's.
    let mut all = Vec::new();
    for _ in 0..2 {
        for height in 0..SCAN_BATCH {
            all.extend(message(
                &mut h,
                a,
                NetworkMessage::CFilter(data.cfilter(height)),
            ));
        }
    }
    let scored = any_misbehaving(&all);
    assert!(
        scored.is_empty(),
        "an honest peer was scored {} times: {:?}",
        scored.len(),
        scored.first()
    );
    let out = serve(&mut h, all, &[&data], &[]);
    assert_eq!(
        scan_result(&out, id),
        Fetched::Scan {
            from: 0,
            to: 199,
            relevant: vec![data.hash(120)],
            completed: true,
        }
    );
}

#[test]
fn getblockfilter_fetches_a_filter_checked_against_its_header() {
    let data = Blocks::new(300, &[]);
    let (mut h, conns) = synced_node(&data, 2);
    let (reply, out) = command(&mut h, Command::GetBlockFilter(data.hash(42)));
    let id = pending(reply);
    let asked = getcfilters(&out);
    assert_eq!(asked.len(), 1);
    assert!(conns.contains(&asked[0].0));
    assert_eq!(
        asked[0].1,
        GetCFilters {
            filter_type: 0,
            start_height: 42,
            stop_hash: data.hash(42),
        }
    );
    let out = message(
        &mut h,
        asked[0].0,
        NetworkMessage::CFilter(data.cfilter(42)),
    );
    assert_eq!(
        fetched(&out),
        vec![(
            id,
            Ok(Fetched::Filter {
                filter: data.filters[42].clone(),
                header: data.header(42),
            })
        )]
    );
    let (reply, _) = command(&mut h, Command::GetBlockFilter(BlockHash::all_zeros()));
    assert_eq!(reply, Err(CommandError::Fetch(FetchError::UnknownBlock)));
}

#[test]
fn a_tail_dispute_is_settled_by_the_block_and_the_liar_scored() {
    let data = Blocks::new(1500, &[1500]);
    let (mut h, conns, _) = filter_node(&data, 2);
    let asked = intervals(&answer_checkpoints(&mut h, &conns, &data));
    let (low, high) = (asked[&0].0, asked[&1001].0);
    message(
        &mut h,
        high,
        NetworkMessage::CFHeaders(data.cfheaders(1001, 1500)),
    );
    message(
        &mut h,
        low,
        NetworkMessage::CFHeaders(data.cfheaders(0, 1000)),
    );
    // `low` claims another filter for block 1500 (which pays the wallet).
    let mut forged = data.cfheaders(1001, 1500);
    forged.filter_hashes[499] = FilterHash::hash(&[1, 2, 3]);
    let out = message(&mut h, low, NetworkMessage::CFHeaders(forged));
    assert!(any_misbehaving(&out).is_empty());
    assert_eq!(getcfilters(&out).len(), 2, "both filters of block 1500");
    // Its filter hashes to its claim, but leaves out the block's outputs.
    let mut out = message(
        &mut h,
        low,
        NetworkMessage::CFilter(CFilter {
            filter_type: 0,
            block_hash: data.hash(1500),
            filter: vec![1, 2, 3],
        }),
    );
    out.extend(message(
        &mut h,
        high,
        NetworkMessage::CFilter(data.cfilter(1500)),
    ));
    let block_asks = getdata_blocks(&out);
    assert_eq!(block_asks.len(), 1, "the block, once: {block_asks:?}");
    assert_eq!(block_asks[0].1, data.hash(1500));
    assert!(any_misbehaving(&out).is_empty(), "not before the block");
    let out = message(
        &mut h,
        block_asks[0].0,
        NetworkMessage::Block(data.blocks[1500].clone()),
    );
    assert_eq!(misbehaving(&out, low), vec![100]);
    assert!(misbehaving(&out, high).is_empty());
    // `low` leaves (its machine disconnects it); `high` alone is believed.
    let mut pending = out;
    pending.retain(|o| !matches!(o, Output::Misbehaving { .. }));
    pending.extend(closed(&mut h, low));
    pending.extend(h.advance(Duration::from_secs(1)));
    let out = serve(&mut h, pending, &[&data], &[low]);
    assert!(any_misbehaving(&out).is_empty());
    assert_eq!(h.engine.filter_headers().len(), 1501);
    assert_eq!(
        h.engine.filter_headers().header_at(1500),
        Some(data.header(1500))
    );
    assert_eq!(h.engine.filter_status().disputed_from, None);
}

// === BLOCKS ===

#[test]
fn getblock_asks_decoys_of_other_peers_and_checks_the_block() {
    let data = Blocks::new(20, &[]);
    let mut config = connect_config(3, false);
    config.decoy_blocks = 2;
    let (mut h, conns, _) = node_with(config, &data, &[plain_services(); 3]);
    let real = data.hash(5);
    let (reply, out) = command(&mut h, Command::GetBlock(real));
    let id = pending(reply);
    let asked = getdata_blocks(&out);
    assert!((2..=3).contains(&asked.len()), "{asked:?}");
    assert_eq!(asked.iter().filter(|(_, b)| *b == real).count(), 1);
    let peers: BTreeSet<ConnId> = asked.iter().map(|(c, _)| *c).collect();
    assert_eq!(peers.len(), asked.len(), "each block from a different peer");
    assert!(peers.iter().all(|c| conns.contains(c)));
    assert!(asked.iter().all(|(_, b)| data.heights.contains_key(b)));
    // Decoys are fetched and dropped.
    let block_of = |hash: &BlockHash| data.blocks[data.heights[hash] as usize].clone();
    for (c, b) in asked.iter().filter(|(_, b)| *b != real) {
        let out = message(&mut h, *c, NetworkMessage::Block(block_of(b)));
        assert!(fetched(&out).is_empty());
        assert!(any_misbehaving(&out).is_empty());
    }
    // A block whose transactions do not match its merkle root.
    let liar = asked.iter().find(|(_, b)| *b == real).unwrap().0;
    let mut forged = block_of(&real);
    forged.txdata[0].lock_time = LockTime::from_consensus(1);
    assert_eq!(forged.block_hash(), real);
    let mut out = message(&mut h, liar, NetworkMessage::Block(forged));
    assert_eq!(misbehaving(&out, liar), vec![100]);
    assert!(fetched(&out).is_empty());
    out.extend(closed(&mut h, liar));
    let again = getdata_blocks(&out)
        .into_iter()
        .rfind(|(c, b)| *b == real && *c != liar)
        .expect("asked again of another peer");
    let out = message(&mut h, again.0, NetworkMessage::Block(block_of(&real)));
    assert_eq!(
        fetched(&out),
        vec![(
            id,
            Ok(Fetched::Block {
                block: Box::new(block_of(&real)),
                height: 5,
            })
        )]
    );
    let (reply, _) = command(&mut h, Command::GetBlock(BlockHash::all_zeros()));
    assert_eq!(reply, Err(CommandError::Fetch(FetchError::UnknownBlock)));
}

#[test]
fn getblock_without_decoys_asks_for_the_one_block() {
    let data = Blocks::new(20, &[]);
    let mut config = connect_config(2, false);
    config.decoy_blocks = 0;
    let (mut h, _, _) = node_with(config, &data, &[plain_services(); 2]);
    let (reply, out) = command(&mut h, Command::GetBlock(data.hash(7)));
    pending(reply);
    assert_eq!(
        getdata_blocks(&out)
            .iter()
            .map(|(_, b)| *b)
            .collect::<Vec<_>>(),
        vec![data.hash(7)]
    );
    // Once verified, the block is kept: asked again, it is answered at
    // once and no peer hears of it.
    let (conn, _) = getdata_blocks(&out)[0];
    let out = message(&mut h, conn, NetworkMessage::Block(data.blocks[7].clone()));
    assert_eq!(fetched(&out).len(), 1);
    let (reply, out) = command(&mut h, Command::GetBlock(data.hash(7)));
    let id = pending(reply);
    assert!(getdata_blocks(&out).is_empty());
    assert!(matches!(
        &fetched(&out)[..],
        [(got, Ok(Fetched::Block { height: 7, .. }))] if *got == id
    ));
}

// === SHUTDOWN ===

#[test]
fn shutdown_answers_pending_fetches() {
    let data = Blocks::new(300, &[]);
    let (mut h, _) = synced_node(&data, 2);
    let (scan_id, _) = scan(&mut h, 0, 300, vec![wallet()]);
    // Every filter peer is busy with a batch: the filter waits.
    let (reply, out) = command(&mut h, Command::GetBlockFilter(data.hash(3)));
    let filter_id = pending(reply);
    assert!(getcfilters(&out).is_empty());
    let out = h.input(Input::Shutdown);
    let mut answers = fetched(&out);
    answers.sort_by_key(|(id, _)| *id);
    let mut want = vec![
        (scan_id, Err(FetchError::ShuttingDown)),
        (filter_id, Err(FetchError::ShuttingDown)),
    ];
    want.sort_by_key(|(id, _)| *id);
    assert_eq!(answers, want);
}
