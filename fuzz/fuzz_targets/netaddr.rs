//! Peer addresses: addrv2 entries (`AddrV2Message` → `NetAddr`) and the
//! `host:port` text forms (`NetAddr::from_str`, `Display`).
//!
//! Input: a selector byte, then either one consensus-encoded addrv2 entry
//! (even selector) or text (odd). Checked: no panic; an accepted entry
//! converts back to the same addrv2 address; text that parses prints as
//! text that parses to the same address; printing is stable.

#![no_main]

use bitcoin::consensus::deserialize_partial;
use libfuzzer_sys::fuzz_target;
use nightjar::addrman::AddrRecord;
use nightjar::netaddr::NetAddr;
use nightjar::wire::AddrV2Message;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    if selector % 2 == 0 {
        addrv2(rest);
    } else if let Ok(text) = std::str::from_utf8(rest) {
        text_form(text);
    }
});

fn addrv2(bytes: &[u8]) {
    let Ok((msg, _)) = deserialize_partial::<AddrV2Message>(bytes) else {
        return;
    };
    let Ok(addr) = NetAddr::try_from(&msg) else {
        return;
    };
    assert_eq!(
        addr.to_addrv2(),
        msg.addr,
        "addrv2 round trip changed the host"
    );
    assert_eq!(addr.port, msg.port);
    let _ = (addr.is_routable(), addr.netgroup(), addr.host.onion());
    if let Ok(record) = AddrRecord::from_addrv2(&msg) {
        let back = record.to_addrv2();
        assert_eq!(back.addr, msg.addr);
        assert_eq!(back.port, msg.port);
    }
    // Text cannot tell CJDNS from IPv6 in fc00::/8, so compare printed forms.
    let printed = addr.to_string();
    match printed.parse::<NetAddr>() {
        Ok(reparsed) => assert_eq!(reparsed.to_string(), printed, "printing is not stable"),
        Err(e) => panic!("{printed:?} (printed from addrv2) does not parse: {e}"),
    }
}

fn text_form(text: &str) {
    let Ok(addr) = text.parse::<NetAddr>() else {
        return;
    };
    let printed = addr.to_string();
    match printed.parse::<NetAddr>() {
        Ok(reparsed) => assert_eq!(reparsed, addr, "{printed:?} parses to another address"),
        Err(e) => panic!("{printed:?} (printed from {text:?}) does not parse: {e}"),
    }
    let _ = (addr.is_routable(), addr.netgroup(), addr.to_addrv2());
}
