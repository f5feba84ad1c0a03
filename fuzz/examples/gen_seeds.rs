//! Writes the seed corpora of every fuzz target with nightjar's real
//! encoders: `cargo +nightly run --example gen_seeds -- corpus` (from
//! `fuzz/`). Files are named by content hash, as libFuzzer names them, so
//! rerunning adds nothing twice.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use bitcoin::block::Header;
use bitcoin::consensus::serialize;
use bitcoin::hashes::{Hash, sha256};
use bitcoin::p2p::message_blockdata::Inventory;
use bitcoin::p2p::message_network::VersionMessage;
use bitcoin::{BlockHash, Network, Txid};
use nightjar::addrman::{
    ADDRMAN_KEY_LEN, AddrMan, AddrManKey, AddrRecord, AddrSource, InternalSource,
};
use nightjar::chain::HeaderChain;
use nightjar::chain::regtest_miner::{mine_regtest_chain, regtest_genesis};
use nightjar::netaddr::NetAddr;
use nightjar::transport::v2_packets::PacketEncoder;
use nightjar::wire::{
    AddrV2, AddrV2Message, Address, GetHeadersMessage, Magic, NetworkMessage, ServiceFlags,
    encode_payload, encode_v1, encode_v2_contents,
};
use nightjar_fuzz::steps::{self, Step};
use nightjar_fuzz::{COMMANDS, PEER_TARGET, UNIX_START, cipher};
use rand::SeedableRng;
use rand::rngs::StdRng;

fn main() {
    let root = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "corpus".into()));
    let messages = sample_messages();
    let headers = mine_regtest_chain(&regtest_genesis(), 12, 1_296_688_700);

    for msg in &messages {
        put(
            &root,
            "wire_v1",
            &[vec![0], encode_v1(Magic::REGTEST, msg)].concat(),
        );
        put(
            &root,
            "wire_v1",
            &[vec![7], encode_v1(Magic::REGTEST, msg)].concat(),
        );
        let command = msg.command();
        let index = COMMANDS.iter().position(|c| *c == command.as_ref());
        if let Some(index) = index.and_then(|i| u8::try_from(i).ok()) {
            put(
                &root,
                "wire_payload",
                &[vec![index], encode_payload(msg)].concat(),
            );
        }
        let contents = encode_v2_contents(msg);
        let mut v2 = vec![0];
        v2.extend_from_slice(&u16::try_from(contents.len()).unwrap_or(0).to_le_bytes());
        v2.extend_from_slice(&contents);
        put(&root, "wire_v2", &v2);
    }
    // A whole session on one v1 stream, and a decoy between v2 packets.
    let stream: Vec<u8> = messages
        .iter()
        .flat_map(|m| encode_v1(Magic::REGTEST, m))
        .collect();
    put(&root, "wire_v1", &[vec![13], stream].concat());
    put(
        &root,
        "wire_v2",
        &[1, 3, 0, 9, 9, 9, 3, 5, 0, 2, 0, 18, 1, 2, 3, 4, 5, 6, 7, 8][..],
    );
    let _ = PacketEncoder::new(cipher::pair().sender);

    for (addr, port) in sample_addrv2() {
        let entry = AddrV2Message {
            time: 1_700_000_000,
            services: ServiceFlags::NETWORK,
            addr,
            port,
        };
        put(&root, "netaddr", &[vec![0], serialize(&entry)].concat());
        if let Ok(net) = NetAddr::try_from(&entry) {
            put(
                &root,
                "netaddr",
                &[b"\x01".to_vec(), net.to_string().into_bytes()].concat(),
            );
            if let Some(onion) = net.host.onion() {
                put(
                    &root,
                    "onion_address",
                    &[b"\x01".to_vec(), onion.to_string().into_bytes()].concat(),
                );
                put(
                    &root,
                    "onion_address",
                    &[vec![0], onion.pubkey().to_vec()].concat(),
                );
            }
        }
    }

    put(&root, "peers_dat", &sample_book().to_bytes());
    put(&root, "peers_dat_bytes", &sample_book().to_bytes());
    put(
        &root,
        "peers_dat",
        &AddrMan::new(
            Network::Regtest,
            AddrManKey::from_bytes([1; ADDRMAN_KEY_LEN]),
        )
        .to_bytes(),
    );
    put(&root, "headers_dat", &headers_file(&headers));

    for name in ["nightjar.toml", "privacy.toml"] {
        if let Ok(text) = std::fs::read(Path::new("../config").join(name)) {
            put(&root, "config", &text);
        }
    }
    put(
        &root,
        "config",
        b"network = \"regtest\"\nlisten = true\nmax_connections = 20\n",
    );

    for body in [
        r#"{"method":"getblockchaininfo","params":[],"id":1}"#,
        r#"{"jsonrpc":"1.0","id":"curltest","method":"getpeerinfo","params":[]}"#,
        r#"{"jsonrpc":"2.0","method":"getblockhash","params":[0],"id":2}"#,
        r#"{"jsonrpc":"2.0","method":"addnode","params":{"node":"127.0.0.1:18444","command":"add"},"id":3}"#,
        r#"[{"method":"getblockcount","id":1},{"jsonrpc":"2.0","method":"ping"},{"method":"fail","id":2}]"#,
        r#"{"method":"stop"}"#,
        "[]",
    ] {
        put(&root, "jsonrpc", body.as_bytes());
    }

    for (name, kind) in [
        ("peer_machine", 1u8),
        ("peer_machine", 5),
        ("engine", 0),
        ("engine", 1),
    ] {
        let session = session(&headers);
        put(&root, name, &[vec![kind], steps::encode(&session)].concat());
    }
}

/// A peer's side of a normal session: handshake, headers, gossip, pings,
/// quiet time, then the connection ends.
fn session(headers: &[Header]) -> Vec<Step> {
    let msg = |m: NetworkMessage| Step::Message(encode_v2_contents(&m));
    vec![
        msg(NetworkMessage::Version(version())),
        msg(NetworkMessage::WtxidRelay),
        msg(NetworkMessage::SendAddrV2),
        msg(NetworkMessage::Verack),
        msg(NetworkMessage::SendHeaders),
        Step::Advance(Duration::from_secs(2)),
        msg(NetworkMessage::Headers(headers.to_vec())),
        msg(NetworkMessage::Ping(42)),
        msg(NetworkMessage::AddrV2(
            sample_addrv2()
                .into_iter()
                .map(|(addr, port)| AddrV2Message {
                    time: 1_700_000_000,
                    services: ServiceFlags::NETWORK,
                    addr,
                    port,
                })
                .collect(),
        )),
        Step::Deadline,
        Step::Advance(Duration::from_secs(600)),
        Step::Deadline,
        Step::Misbehave(10),
        Step::Close,
        Step::Advance(Duration::from_secs(120)),
        Step::Deadline,
    ]
}

fn version() -> VersionMessage {
    let any = SocketAddr::from(([0, 0, 0, 0], 0));
    VersionMessage {
        version: 70016,
        services: ServiceFlags::NETWORK | ServiceFlags::WITNESS,
        timestamp: 1_700_000_000,
        receiver: Address::new(&any, ServiceFlags::NONE),
        sender: Address::new(&any, ServiceFlags::NONE),
        nonce: 0x1234_5678,
        user_agent: "/Satoshi:28.0.0/".into(),
        start_height: 12,
        relay: true,
    }
}

fn sample_messages() -> Vec<NetworkMessage> {
    let headers = mine_regtest_chain(&regtest_genesis(), 3, 1_296_688_700);
    let hash = BlockHash::all_zeros();
    let addr = Address::new(
        &SocketAddr::from(([1, 2, 3, 4], 8333)),
        ServiceFlags::NETWORK,
    );
    vec![
        NetworkMessage::Version(version()),
        NetworkMessage::Verack,
        NetworkMessage::SendHeaders,
        NetworkMessage::SendAddrV2,
        NetworkMessage::WtxidRelay,
        NetworkMessage::GetAddr,
        NetworkMessage::MemPool,
        NetworkMessage::Ping(7),
        NetworkMessage::Pong(7),
        NetworkMessage::FeeFilter(1000),
        NetworkMessage::Addr(vec![(1_700_000_000, addr)]),
        NetworkMessage::AddrV2(vec![AddrV2Message {
            time: 1_700_000_000,
            services: ServiceFlags::NETWORK,
            addr: AddrV2::Ipv4(Ipv4Addr::new(1, 2, 3, 4)),
            port: 8333,
        }]),
        NetworkMessage::Inv(vec![
            Inventory::Block(hash),
            Inventory::WTx(bitcoin::Wtxid::all_zeros()),
        ]),
        NetworkMessage::GetData(vec![Inventory::Transaction(Txid::all_zeros())]),
        NetworkMessage::NotFound(vec![Inventory::Block(hash)]),
        NetworkMessage::GetHeaders(GetHeadersMessage::new(vec![hash], hash)),
        NetworkMessage::GetBlocks(bitcoin::p2p::message_blockdata::GetBlocksMessage::new(
            vec![hash],
            hash,
        )),
        NetworkMessage::Headers(headers),
        NetworkMessage::SendCmpct(bitcoin::p2p::message_compact_blocks::SendCmpct {
            send_compact: true,
            version: 2,
        }),
        NetworkMessage::Block(bitcoin::constants::genesis_block(Network::Regtest)),
        NetworkMessage::Tx(bitcoin::constants::genesis_block(Network::Regtest).txdata[0].clone()),
        NetworkMessage::Unknown {
            command: bitcoin::p2p::message::CommandString::try_from_static("foo")
                .unwrap_or_else(|_| unreachable!()),
            payload: vec![1, 2, 3],
        },
    ]
}

fn sample_addrv2() -> Vec<(AddrV2, u16)> {
    let onion = PEER_TARGET.parse::<NetAddr>().map(|a| a.to_addrv2());
    let mut all = vec![
        (AddrV2::Ipv4(Ipv4Addr::new(1, 2, 3, 4)), 8333),
        (
            AddrV2::Ipv6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)),
            8333,
        ),
        (
            AddrV2::Cjdns(Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 1)),
            8333,
        ),
        (AddrV2::I2p([7; 32]), 0),
        (AddrV2::TorV2([1; 10]), 8333),
        (AddrV2::Unknown(42, vec![1, 2, 3]), 1),
    ];
    if let Ok(onion) = onion {
        all.push((onion, 18444));
    }
    all
}

fn sample_book() -> AddrMan {
    let mut book = AddrMan::new(
        Network::Regtest,
        AddrManKey::from_bytes([1; ADDRMAN_KEY_LEN]),
    );
    let records: Vec<AddrRecord> = sample_addrv2()
        .into_iter()
        .filter_map(|(addr, port)| NetAddr::from_addrv2(&addr, port).ok())
        .map(|addr| AddrRecord {
            addr,
            services: ServiceFlags::NETWORK,
            last_seen: UNIX_START,
        })
        .collect();
    let source = AddrSource::Internal(InternalSource::named("seeds"));
    book.add(&records, &source, UNIX_START, &mut StdRng::seed_from_u64(1));
    if let Some(first) = records.first() {
        book.good(&first.addr, UNIX_START);
    }
    book
}

/// A `headers.dat` written by the real store.
fn headers_file(headers: &[Header]) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let path = dir.path().join("headers.dat");
    let mut loaded =
        HeaderChain::load_or_new(&path, Network::Regtest).unwrap_or_else(|e| panic!("{e}"));
    loaded
        .chain
        .accept(headers, UNIX_START)
        .unwrap_or_else(|e| panic!("{e}"));
    loaded
        .store
        .append(&mut loaded.chain)
        .unwrap_or_else(|e| panic!("{e}"));
    drop(loaded);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{e}"))
}

/// Writes one seed, named by its SHA-256 like libFuzzer's own files.
fn put(root: &Path, target: &str, bytes: &[u8]) {
    let dir = root.join(target);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let name = sha256::Hash::hash(bytes).to_string();
    std::fs::write(dir.join(&name[..40]), bytes).unwrap_or_else(|e| panic!("{e}"));
}
