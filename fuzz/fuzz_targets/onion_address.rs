//! The onion v3 address codec (`nightjar_tor::OnionV3Address`).
//!
//! Input: a selector byte, then text (odd selector) or a 32-byte public key
//! (even). Checked: no panic; a parsed address prints as the canonical
//! lower-case `label.onion` that parses back to the same key; an address
//! made from any key prints as text that parses back to that key.

#![no_main]

use libfuzzer_sys::fuzz_target;
use nightjar_tor::{OnionV3Address, onion_address::ONION_V3_LABEL_LEN};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    if selector % 2 == 0 {
        let Some(key) = rest.first_chunk::<32>() else {
            return;
        };
        let addr = OnionV3Address::from_pubkey(*key);
        check_round_trip(&addr);
    } else if let Ok(text) = std::str::from_utf8(rest)
        && let Ok(addr) = text.parse::<OnionV3Address>()
    {
        assert!(
            text.len() == ONION_V3_LABEL_LEN || text.len() == ONION_V3_LABEL_LEN + ".onion".len(),
            "accepted {} bytes of text",
            text.len()
        );
        check_round_trip(&addr);
    }
});

fn check_round_trip(addr: &OnionV3Address) {
    let printed = addr.to_string();
    assert_eq!(
        printed,
        printed.to_ascii_lowercase(),
        "printed form is not lower case"
    );
    assert_eq!(printed.len(), ONION_V3_LABEL_LEN + ".onion".len());
    match printed.parse::<OnionV3Address>() {
        Ok(back) => assert_eq!(back.pubkey(), addr.pubkey(), "round trip changed the key"),
        Err(e) => panic!("{printed:?} does not parse: {e}"),
    }
    match addr.label().parse::<OnionV3Address>() {
        Ok(back) => assert_eq!(back.pubkey(), addr.pubkey()),
        Err(e) => panic!("the bare label does not parse: {e}"),
    }
}
