//! Wire benchmarks: BIP324 packet encryption and decryption at the message
//! sizes nightjar sees, and how fast the v1 and v2 codecs decode the two
//! big messages of header sync and transaction relay.
//!
//! Run with `cargo bench -p nightjar --bench wire`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../tests/wire_support/cipher_pair.rs"]
mod cipher_pair;

use std::hint::black_box;

use bip324::{InboundCipher, NUM_LENGTH_BYTES, OutboundCipher, PacketType};
use bitcoin::block::Header;
use bitcoin::blockdata::constants::genesis_block;
use bitcoin::hashes::Hash;
use bitcoin::{Network, Wtxid};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use nightjar::wire::{
    Inventory, Magic, NetworkMessage, V1Decoder, decode_v2_contents, encode_v1, encode_v2_contents,
};

/// A ping, an inv or small tx, a full `headers` reply (2000 × 81 bytes), a
/// block-sized message.
const PACKET_SIZES: [(&str, usize); 4] = [
    ("32B", 32),
    ("1KiB", 1024),
    ("160KiB", 160 * 1024),
    ("1MiB", 1024 * 1024),
];

/// Core's MAX_HEADERS_RESULTS: a full `headers` reply.
const HEADERS_PER_MESSAGE: usize = 2_000;

/// Core's MAX_INV_SZ: the largest `inv` a peer may send.
const INV_ENTRIES: usize = 50_000;

/// One encrypt and one decrypt per iteration, with preallocated buffers so
/// the figure is the cipher's, not the allocator's.
fn v2_packets(c: &mut Criterion) {
    let mut group = c.benchmark_group("v2_encrypt_decrypt");
    for (label, size) in PACKET_SIZES {
        let pair = cipher_pair::handshake_pair(Magic::BITCOIN.to_bytes(), [0x11; 32], [0x22; 32]);
        let (_, mut outbound) = pair.initiator.into_split();
        let (mut inbound, _) = pair.responder.into_split();
        let contents = vec![0xa5u8; size];
        let mut packet = vec![0u8; OutboundCipher::encryption_buffer_len(size)];
        let mut plaintext = vec![0u8; packet.len()];
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_function(BenchmarkId::from_parameter(label), |b| {
            b.iter(|| {
                outbound
                    .encrypt(black_box(&contents), &mut packet, PacketType::Genuine, None)
                    .unwrap();
                let (len_bytes, rest) = packet.split_first_chunk::<NUM_LENGTH_BYTES>().unwrap();
                let len = inbound.decrypt_packet_len(*len_bytes);
                let plain_len = InboundCipher::decryption_buffer_len(len);
                inbound
                    .decrypt(&rest[..len], &mut plaintext[..plain_len], None)
                    .unwrap();
                black_box(&plaintext);
            });
        });
    }
    group.finish();
}

fn headers_message() -> NetworkMessage {
    let genesis = genesis_block(Network::Bitcoin).header;
    NetworkMessage::Headers(
        (0..HEADERS_PER_MESSAGE as u32)
            .map(|n| Header {
                nonce: n,
                ..genesis
            })
            .collect(),
    )
}

fn inv_message() -> NetworkMessage {
    NetworkMessage::Inv(
        (0..INV_ENTRIES as u32)
            .map(|n| {
                let mut hash = [0u8; 32];
                hash[..4].copy_from_slice(&n.to_le_bytes());
                Inventory::WTx(Wtxid::from_byte_array(hash))
            })
            .collect(),
    )
}

/// Decoding from plaintext bytes to a message: v1 through the push decoder
/// (buffering and checksum included), v2 from the decrypted contents.
fn decode_rate(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode");
    for (label, msg, elements) in [
        ("headers_2000", headers_message(), HEADERS_PER_MESSAGE),
        ("inv_50000", inv_message(), INV_ENTRIES),
    ] {
        group.throughput(Throughput::Elements(elements as u64));

        let frame = encode_v1(Magic::BITCOIN, &msg);
        let mut decoder = V1Decoder::new(Magic::BITCOIN);
        group.bench_function(BenchmarkId::new("v1", label), |b| {
            b.iter(|| {
                decoder.push(black_box(&frame));
                black_box(decoder.next_message().unwrap().unwrap());
            });
        });

        let contents = encode_v2_contents(&msg);
        group.bench_function(BenchmarkId::new("v2", label), |b| {
            b.iter(|| black_box(decode_v2_contents(black_box(&contents)).unwrap()));
        });
    }
    group.finish();
}

criterion_group!(benches, v2_packets, decode_rate);
criterion_main!(benches);
