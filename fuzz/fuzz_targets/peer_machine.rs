//! A `PeerMachine` fed a random sequence of messages and time steps.
//!
//! Input: a kind byte (which `ConnectionKind` the connection is), then
//! steps in the format of `nightjar_fuzz::steps`. Messages are the contents
//! of v2 packets, decoded with `decode_v2_contents`; contents that do not
//! decode are skipped (the decoders have targets of their own). What the
//! machine sends is dropped: the fuzzer plays a peer that never answers.
//!
//! Checked: no panic; `Disconnect` is reported exactly once and nothing
//! after it; a closed machine says so and sends nothing more; a deadline
//! never lies in the past after it was handled.

#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use nightjar::engine::version::our_version;
use nightjar::peer::{ConnectionKind, DisconnectReason, PeerConfig, PeerEvent, PeerMachine};
use nightjar::wire::{ServiceFlags, decode_v2_contents};
use nightjar_fuzz::steps::{self, Step};
use nightjar_fuzz::{PEER_TARGET, UNIX_START, v2_wire_len};
use nightjar_tor::Target;

/// The connection kinds, in the order the kind byte picks them.
fn kinds() -> [ConnectionKind; 6] {
    [
        ConnectionKind::Regular(ServiceFlags::NETWORK | ServiceFlags::WITNESS),
        ConnectionKind::Manual,
        ConnectionKind::Feeler,
        ConnectionKind::Extra,
        ConnectionKind::PrivateBroadcast,
        ConnectionKind::Inbound,
    ]
}

fuzz_target!(|data: &[u8]| {
    let Some((&kind, rest)) = data.split_first() else {
        return;
    };
    let kinds = kinds();
    let kind = kinds[usize::from(kind) % kinds.len()];
    let Ok(target) = PEER_TARGET.parse::<Target>() else {
        panic!("bad peer target");
    };
    let start = Instant::now();
    let mut now = start;
    let config = PeerConfig {
        kind,
        our_version: our_version(kind, &target, 0x6e6a_6675_7a7a, UNIX_START, "/fuzz/"),
        ping_seed: 7,
    };
    let mut machine = PeerMachine::new(config, now);
    let mut closed = false;
    for step in steps::parse(rest) {
        match step {
            Step::Message(contents) => {
                if let Ok(msg) = decode_v2_contents(&contents) {
                    machine.handle_message(now, msg, v2_wire_len(contents.len()));
                }
            }
            Step::Advance(by) => {
                now += by;
                machine.handle_timeout(now);
            }
            Step::Deadline => {
                if let Some(deadline) = machine.poll_timeout() {
                    now = now.max(deadline);
                    machine.handle_timeout(now);
                    if let Some(next) = machine.poll_timeout() {
                        assert!(next > now || machine.is_closed(), "deadline not consumed");
                    }
                }
            }
            Step::Close => machine.close(DisconnectReason::PeerClosed),
            Step::Misbehave(points) => machine.misbehave(u32::from(points), "fuzz"),
        }
        while let Some(event) = machine.poll_event() {
            assert!(!closed, "event after Disconnect: {event:?}");
            if let PeerEvent::Disconnect(_) = event {
                closed = true;
            }
        }
        while machine.poll_transmit().is_some() {
            assert!(!closed, "a message queued after Disconnect");
        }
        if closed {
            assert!(
                machine.is_closed(),
                "Disconnect reported but the machine is open"
            );
        }
        // Keep time from running away: a u16 of seconds per step is enough
        // to reach every timeout, and `Instant` overflow is not under test.
        if now.duration_since(start) > Duration::from_secs(30 * 24 * 3600) {
            break;
        }
    }
});
