//! A BIP324 session between two in-memory ends, with fixed secret keys so
//! that every run (and every corpus file) sees the same keystream.
//!
//! `bip324` 0.11 only hands out ciphers at the end of its sans-IO
//! handshake, so the handshake is run for real, once per process, and the
//! resulting ciphers are cloned for each input (they are plain state).

use std::sync::OnceLock;

use bip324::{
    FillBytes, GarbageResult, Handshake, InboundCipher, Initialized, NUM_LENGTH_BYTES,
    OutboundCipher, ReceivedKey, Role, SentVersion, VersionResult,
};
use bitcoin::secp256k1::Secp256k1;

/// The regtest network magic both ends use.
pub const MAGIC: [u8; 4] = [0xfa, 0xbf, 0xb5, 0xda];

/// The initiator's fixed secret key (any valid scalar will do).
const INITIATOR_SECRET: [u8; 32] = [0x11; 32];
/// The responder's fixed secret key.
const RESPONDER_SECRET: [u8; 32] = [0x22; 32];

/// A "random" source that always yields one fixed secret key.
struct FixedSecret([u8; 32]);

impl FillBytes for FixedSecret {
    fn fill_bytes(&mut self, dest: &mut [u8; 32]) {
        *dest = self.0;
    }
}

/// The two directions of the fuzzed stream: the initiator encrypts, the
/// responder decrypts.
#[derive(Clone)]
pub struct Pair {
    /// Encrypts what the (fuzzed) initiator sends.
    pub sender: OutboundCipher,
    /// Decrypts it on the responder's side: the side under test.
    pub receiver: InboundCipher,
}

/// A fresh copy of the session's ciphers at packet zero.
pub fn pair() -> Pair {
    static PAIR: OnceLock<Pair> = OnceLock::new();
    PAIR.get_or_init(handshake).clone()
}

fn handshake() -> Pair {
    let secp = Secp256k1::signing_only();
    let start = |role, secret| {
        let handshake =
            Handshake::<Initialized>::new_with_rng(MAGIC, role, &mut FixedSecret(secret), &secp)
                .unwrap_or_else(|e| panic!("fixed secret rejected: {e}"));
        let mut key = [0u8; 64];
        let handshake = handshake
            .send_key(None, &mut key)
            .unwrap_or_else(|e| panic!("key does not fit: {e}"));
        (handshake, key)
    };
    let (initiator, initiator_key) = start(Role::Initiator, INITIATOR_SECRET);
    let (responder, responder_key) = start(Role::Responder, RESPONDER_SECRET);
    let send_version = |handshake: Handshake<ReceivedKey<'_>>| {
        let mut bytes = vec![0u8; Handshake::<ReceivedKey<'_>>::send_version_len(None)];
        let handshake = handshake
            .send_version(&mut bytes, None)
            .unwrap_or_else(|e| panic!("version does not fit: {e}"));
        (handshake, bytes)
    };
    let received = |h: Result<_, bip324::Error>| h.unwrap_or_else(|e| panic!("key refused: {e}"));
    let (initiator, initiator_version) =
        send_version(received(initiator.receive_key(responder_key)));
    let (responder, responder_version) =
        send_version(received(responder.receive_key(initiator_key)));
    let (_, sender) = finish(initiator, &responder_version).into_split();
    let (receiver, _) = finish(responder, &initiator_version).into_split();
    Pair { sender, receiver }
}

/// Reads the other end's garbage terminator and version packet.
fn finish(handshake: Handshake<SentVersion>, received: &[u8]) -> bip324::CipherSession {
    let GarbageResult::FoundGarbage {
        mut handshake,
        consumed_bytes,
    } = handshake
        .receive_garbage(received)
        .unwrap_or_else(|e| panic!("no garbage terminator: {e}"))
    else {
        panic!("the whole version packet was passed in");
    };
    let packet = received.get(consumed_bytes..).unwrap_or_default();
    let Some((len_bytes, packet)) = packet.split_first_chunk::<NUM_LENGTH_BYTES>() else {
        panic!("version packet has no length");
    };
    let len = handshake
        .decrypt_packet_len(*len_bytes)
        .unwrap_or_else(|e| panic!("length does not decrypt: {e}"));
    let mut packet = packet.get(..len).unwrap_or_default().to_vec();
    match handshake.receive_version(&mut packet) {
        Ok(VersionResult::Complete { cipher }) => cipher,
        Ok(VersionResult::Decoy(_)) => panic!("no decoys were sent"),
        Err(e) => panic!("version packet does not authenticate: {e}"),
    }
}
