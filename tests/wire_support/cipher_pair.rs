//! Deterministic BIP324 cipher sessions for the wire tests and benches.
//!
//! `bip324` 0.11 keeps `CipherSession::new` private, so the only public way
//! to a session is its sans-IO handshake. Feeding the handshake fixed secret
//! keys (through the crate's `FillBytes` hook) makes both ends, their keys
//! and every ciphertext reproducible.

#![allow(dead_code)]

use bip324::{
    CipherSession, FillBytes, GarbageResult, Handshake, Initialized, NUM_LENGTH_BYTES, ReceivedKey,
    Role, SentVersion, VersionResult,
};
use bitcoin::secp256k1::Secp256k1;

/// A "random" source that always yields the same 32 bytes: the secret key.
pub(crate) struct FixedSecret(pub(crate) [u8; 32]);

impl FillBytes for FixedSecret {
    fn fill_bytes(&mut self, dest: &mut [u8; 32]) {
        *dest = self.0;
    }
}

/// Both ends of a completed handshake, and what each sent after the keys.
pub(crate) struct CipherPair {
    /// The initiator's session (encrypts with the initiator keys).
    pub(crate) initiator: CipherSession,
    /// The responder's session.
    pub(crate) responder: CipherSession,
    /// The initiator's garbage terminator and version packet.
    pub(crate) initiator_version_bytes: Vec<u8>,
    /// The responder's garbage terminator and version packet.
    pub(crate) responder_version_bytes: Vec<u8>,
}

/// Runs a garbage-free, decoy-free handshake between two in-memory ends
/// whose secret keys are given.
pub(crate) fn handshake_pair(
    magic: [u8; 4],
    initiator_secret: [u8; 32],
    responder_secret: [u8; 32],
) -> CipherPair {
    let secp = Secp256k1::signing_only();
    let start = |role, secret| {
        let handshake =
            Handshake::<Initialized>::new_with_rng(magic, role, &mut FixedSecret(secret), &secp)
                .expect("valid secret key");
        let mut key = [0u8; 64];
        let handshake = handshake.send_key(None, &mut key).expect("key fits");
        (handshake, key)
    };
    let (initiator, initiator_key) = start(Role::Initiator, initiator_secret);
    let (responder, responder_key) = start(Role::Responder, responder_secret);

    let send_version = |handshake: Handshake<ReceivedKey<'_>>| {
        let mut bytes = vec![0u8; Handshake::<ReceivedKey<'_>>::send_version_len(None)];
        let handshake = handshake
            .send_version(&mut bytes, None)
            .expect("version fits");
        (handshake, bytes)
    };
    let (initiator, initiator_version_bytes) =
        send_version(initiator.receive_key(responder_key).expect("responder key"));
    let (responder, responder_version_bytes) =
        send_version(responder.receive_key(initiator_key).expect("initiator key"));

    CipherPair {
        initiator: finish(initiator, &responder_version_bytes),
        responder: finish(responder, &initiator_version_bytes),
        initiator_version_bytes,
        responder_version_bytes,
    }
}

/// Reads the other end's garbage terminator and version packet.
fn finish(handshake: Handshake<SentVersion>, received: &[u8]) -> CipherSession {
    let GarbageResult::FoundGarbage {
        mut handshake,
        consumed_bytes,
    } = handshake
        .receive_garbage(received)
        .expect("garbage terminator")
    else {
        panic!("the whole version packet was passed in");
    };
    let packet = &received[consumed_bytes..];
    let (len_bytes, packet) = packet
        .split_first_chunk::<NUM_LENGTH_BYTES>()
        .expect("length");
    let len = handshake
        .decrypt_packet_len(*len_bytes)
        .expect("length decrypts");
    let mut packet = packet[..len].to_vec();
    match handshake
        .receive_version(&mut packet)
        .expect("version packet authenticates")
    {
        VersionResult::Complete { cipher } => cipher,
        VersionResult::Decoy(_) => panic!("no decoys were sent"),
    }
}
