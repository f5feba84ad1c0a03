//! Replies we asked for. A peer's answer to our own request (`headers` for
//! a `getheaders`, a block or `notfound` for a `getdata`, filters for a
//! `getcf*`) can be large and many (a scan's batch is 100 filters) and
//! arrive at full speed; the byte and message rate limits are meant for
//! traffic the peer chose to send, so a solicited reply counts against
//! neither. Each request admits only as many replies as it asked for.

use crate::wire::NetworkMessage;

/// Most `cfilter` replies one `getcfilters` may bring (BIP157's cap).
pub const MAX_CFILTERS_PER_REQUEST: u32 = 1000;

/// Replies still owed to us, by the kind of request that asked for them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Solicited {
    /// `headers` replies (one per `getheaders`).
    headers: u32,
    /// Items asked with `getdata`: each is answered by one `block`, `tx` or
    /// `merkleblock`, or listed in a `notfound`.
    data_items: u32,
    /// `cfheaders` replies (one per `getcfheaders`).
    cfheaders: u32,
    /// `cfcheckpt` replies (one per `getcfcheckpt`).
    cfcheckpt: u32,
    /// `cfilter` replies (up to [`MAX_CFILTERS_PER_REQUEST`] per
    /// `getcfilters`; the range's size is the engine's to know).
    cfilters: u32,
}

impl Solicited {
    /// Nothing asked yet.
    pub fn new() -> Self {
        Solicited::default()
    }

    /// Note a message we are about to send: if it is a request, its
    /// replies become expected.
    pub fn on_send(&mut self, msg: &NetworkMessage) {
        let slot = match msg {
            NetworkMessage::GetHeaders(_) => (&mut self.headers, 1),
            NetworkMessage::GetData(items) => (&mut self.data_items, count(items.len())),
            NetworkMessage::GetCFHeaders(_) => (&mut self.cfheaders, 1),
            NetworkMessage::GetCFCheckpt(_) => (&mut self.cfcheckpt, 1),
            NetworkMessage::GetCFilters(_) => (&mut self.cfilters, MAX_CFILTERS_PER_REQUEST),
            _ => return,
        };
        *slot.0 = slot.0.saturating_add(slot.1);
    }

    /// Whether `msg`, just received, answers a request of ours; if so, it is
    /// taken off what is owed.
    pub fn take_reply(&mut self, msg: &NetworkMessage) -> bool {
        let (slot, n) = match msg {
            NetworkMessage::Headers(_) => (&mut self.headers, 1),
            NetworkMessage::Block(_) | NetworkMessage::Tx(_) | NetworkMessage::MerkleBlock(_) => {
                (&mut self.data_items, 1)
            }
            // A notfound answers as many items as it lists.
            NetworkMessage::NotFound(items) => (&mut self.data_items, count(items.len())),
            NetworkMessage::CFHeaders(_) => (&mut self.cfheaders, 1),
            NetworkMessage::CFCheckpt(_) => (&mut self.cfcheckpt, 1),
            NetworkMessage::CFilter(_) => (&mut self.cfilters, 1),
            _ => return false,
        };
        if *slot == 0 || n > *slot {
            return false;
        }
        *slot -= n;
        true
    }
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{GetHeadersMessage, Inventory};
    use bitcoin::BlockHash;
    use bitcoin::hashes::Hash;

    fn getheaders() -> NetworkMessage {
        NetworkMessage::GetHeaders(GetHeadersMessage::new(Vec::new(), BlockHash::all_zeros()))
    }

    #[test]
    fn each_request_admits_its_own_replies_only() {
        let mut s = Solicited::new();
        assert!(!s.take_reply(&NetworkMessage::Headers(Vec::new())));
        s.on_send(&getheaders());
        s.on_send(&getheaders());
        assert!(s.take_reply(&NetworkMessage::Headers(Vec::new())));
        assert!(s.take_reply(&NetworkMessage::Headers(Vec::new())));
        assert!(!s.take_reply(&NetworkMessage::Headers(Vec::new())));
        // A getheaders does not open the door to blocks.
        s.on_send(&getheaders());
        let items = vec![Inventory::Block(BlockHash::all_zeros()); 3];
        assert!(!s.take_reply(&NetworkMessage::NotFound(items.clone())));
        s.on_send(&NetworkMessage::GetData(items.clone()));
        assert!(s.take_reply(&NetworkMessage::NotFound(items[..2].to_vec())));
        // One item left: a notfound of three is more than was asked.
        assert!(!s.take_reply(&NetworkMessage::NotFound(items)));
        assert_eq!(s.data_items, 1);
        // Messages that are never replies are never solicited.
        assert!(!s.take_reply(&NetworkMessage::Ping(1)));
    }
}
