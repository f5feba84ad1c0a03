//! Payload bytes ⇄ [`NetworkMessage`], shared by the v1 and v2 framings.
//!
//! The encodings are the `bitcoin` crate's; this file only chooses the type
//! to decode for each command (mirroring the crate's own `RawNetworkMessage`
//! dispatch, which is not reachable without a v1 header) and adds what the
//! crate leaves to the caller: per-command size caps checked before any
//! decoding, and a readable error for trailing bytes.

use bitcoin::SignedAmount;
use bitcoin::block::Header;
use bitcoin::consensus::encode::{self, Decodable, VarInt};
use bitcoin::p2p::message::{CommandString, NetworkMessage};

use super::{MAX_PAYLOAD_LEN, WireError};

/// Core's MAX_SUBVERSION_LENGTH: the longest user agent a `version` may carry.
pub const MAX_SUBVERSION_LEN: usize = 256;

/// Everything in a `version` payload but the user agent: version (4),
/// services (8), timestamp (8), two addresses without time (26 each),
/// nonce (8), start height (4) and the relay flag (1).
const VERSION_FIXED_LEN: usize = 4 + 8 + 8 + 26 + 26 + 8 + 4 + 1;

/// A compact-size length prefix for 253..=65535 bytes: 0xfd and a u16.
const COMPACT_SIZE_U16_LEN: usize = 3;

/// The largest `version` payload: the fixed fields plus the longest user
/// agent Core accepts. Core fails to parse anything with a longer one.
pub const MAX_VERSION_PAYLOAD_LEN: usize =
    VERSION_FIXED_LEN + COMPACT_SIZE_U16_LEN + MAX_SUBVERSION_LEN;

/// `ping`/`pong` carry one u64 nonce (BIP31); `feefilter` one i64 rate (BIP133).
const U64_PAYLOAD_LEN: usize = 8;

/// BIP152 `sendcmpct`: an announce flag (1) and a version (8).
const SENDCMPCT_PAYLOAD_LEN: usize = 1 + 8;

/// BIP157 `getcfilters`/`getcfheaders`: filter type (1), start height (4),
/// stop hash (32).
const GETCF_RANGE_PAYLOAD_LEN: usize = 1 + 4 + 32;

/// BIP157 `getcfcheckpt`: filter type (1), stop hash (32).
const GETCFCHECKPT_PAYLOAD_LEN: usize = 1 + 32;

/// BIP157 `cfheaders`: filter type (1), stop hash (32), previous filter
/// header (32), a count of at most 2000 (3) and 2000 filter hashes.
const MAX_CFHEADERS_PAYLOAD_LEN: usize = 1 + 32 + 32 + COMPACT_SIZE_U16_LEN + 2000 * 32;

/// The largest basic filter a valid block can have. Every element of a
/// filter is a script of the block taking at least 40 weight units (an
/// output of 10 bytes: an input takes more), so a 4 000 000-unit block has
/// at most N = 100 000 elements. Golomb-Rice coding with P = 19 spends
/// P + 1 bits per element plus the quotients, whose sum is at most
/// N * M / 2^P (M = 784 931), about 1.5 bits each: 21.5 * N bits, 268 750
/// bytes, plus the 5-byte count. Rounded up to 300 000 for margin.
const MAX_BASIC_FILTER_LEN: usize = 300_000;

/// BIP157 `cfilter`: filter type (1), block hash (32), the filter with its
/// length prefix (up to 5 bytes).
const MAX_CFILTER_PAYLOAD_LEN: usize = 1 + 32 + 5 + MAX_BASIC_FILTER_LEN;

/// Core's MAX_BLOOM_FILTER_SIZE (BIP37): the largest filter `filterload` may set.
const MAX_BLOOM_FILTER_SIZE: usize = 36_000;

/// BIP37 `filterload`: the filter with its length prefix, hash function
/// count (4), tweak (4) and flags (1).
const MAX_FILTERLOAD_PAYLOAD_LEN: usize = COMPACT_SIZE_U16_LEN + MAX_BLOOM_FILTER_SIZE + 4 + 4 + 1;

/// Core's MAX_SCRIPT_ELEMENT_SIZE: the largest element `filteradd` may add (BIP37).
const MAX_SCRIPT_ELEMENT_SIZE: usize = 520;

/// BIP37 `filteradd`: one element with its length prefix.
const MAX_FILTERADD_PAYLOAD_LEN: usize = COMPACT_SIZE_U16_LEN + MAX_SCRIPT_ELEMENT_SIZE;

/// One `headers` entry: an 80-byte header and a transaction count that is
/// always the single byte 0. Used only to bound a preallocation.
const HEADERS_ENTRY_LEN: usize = 80 + 1;

/// The largest payload a peer may send for `command`.
///
/// Messages whose layout is fixed or bounded by a BIP get that bound, so a
/// v1 header announcing more is refused before a byte of its payload is
/// buffered. Messages bounded only by an item count that is policy (addr's
/// 1000 entries, inv's 50 000, headers' 2000) get [`MAX_PAYLOAD_LEN`]: the
/// count is for the peer machine to judge once decoded.
pub fn max_payload_len(command: &str) -> usize {
    match command {
        "verack" | "getaddr" | "sendheaders" | "wtxidrelay" | "sendaddrv2" | "mempool"
        | "filterclear" => 0,
        "ping" | "pong" | "feefilter" => U64_PAYLOAD_LEN,
        "sendcmpct" => SENDCMPCT_PAYLOAD_LEN,
        "getcfilters" | "getcfheaders" => GETCF_RANGE_PAYLOAD_LEN,
        "getcfcheckpt" => GETCFCHECKPT_PAYLOAD_LEN,
        "cfheaders" => MAX_CFHEADERS_PAYLOAD_LEN,
        "cfilter" => MAX_CFILTER_PAYLOAD_LEN,
        "version" => MAX_VERSION_PAYLOAD_LEN,
        "filterload" => MAX_FILTERLOAD_PAYLOAD_LEN,
        "filteradd" => MAX_FILTERADD_PAYLOAD_LEN,
        _ => MAX_PAYLOAD_LEN,
    }
}

/// Decodes the payload of one message whose command is already known.
///
/// Checks [`max_payload_len`] first, rejects trailing bytes, and turns a
/// command the `bitcoin` crate does not model into
/// [`NetworkMessage::Unknown`] with the payload kept verbatim.
pub fn decode_payload(command: &str, payload: &[u8]) -> Result<NetworkMessage, WireError> {
    let max = max_payload_len(command);
    if payload.len() > max {
        return Err(WireError::Oversize {
            command: command.to_owned(),
            len: payload.len(),
            max,
        });
    }
    let p = Payload {
        command,
        bytes: payload,
    };
    Ok(match command {
        "version" => NetworkMessage::Version(p.decode()?),
        "verack" => p.nothing(NetworkMessage::Verack)?,
        "addr" => NetworkMessage::Addr(p.decode()?),
        "inv" => NetworkMessage::Inv(p.decode()?),
        "getdata" => NetworkMessage::GetData(p.decode()?),
        "notfound" => NetworkMessage::NotFound(p.decode()?),
        "getblocks" => NetworkMessage::GetBlocks(p.decode()?),
        "getheaders" => NetworkMessage::GetHeaders(p.decode()?),
        "mempool" => p.nothing(NetworkMessage::MemPool)?,
        "tx" => NetworkMessage::Tx(p.decode()?),
        "block" => NetworkMessage::Block(p.decode()?),
        "headers" => NetworkMessage::Headers(p.headers()?),
        "sendheaders" => p.nothing(NetworkMessage::SendHeaders)?,
        "getaddr" => p.nothing(NetworkMessage::GetAddr)?,
        "ping" => NetworkMessage::Ping(p.decode()?),
        "pong" => NetworkMessage::Pong(p.decode()?),
        "merkleblock" => NetworkMessage::MerkleBlock(p.decode()?),
        "filterload" => NetworkMessage::FilterLoad(p.decode()?),
        "filteradd" => NetworkMessage::FilterAdd(p.decode()?),
        "filterclear" => p.nothing(NetworkMessage::FilterClear)?,
        "getcfilters" => NetworkMessage::GetCFilters(p.decode()?),
        "cfilter" => NetworkMessage::CFilter(p.decode()?),
        "getcfheaders" => NetworkMessage::GetCFHeaders(p.decode()?),
        "cfheaders" => NetworkMessage::CFHeaders(p.decode()?),
        "getcfcheckpt" => NetworkMessage::GetCFCheckpt(p.decode()?),
        "cfcheckpt" => NetworkMessage::CFCheckpt(p.decode()?),
        "sendcmpct" => NetworkMessage::SendCmpct(p.decode()?),
        "cmpctblock" => NetworkMessage::CmpctBlock(p.decode()?),
        "getblocktxn" => NetworkMessage::GetBlockTxn(p.decode()?),
        "blocktxn" => NetworkMessage::BlockTxn(p.decode()?),
        "alert" => NetworkMessage::Alert(p.decode()?),
        "reject" => NetworkMessage::Reject(p.decode()?),
        "feefilter" => NetworkMessage::FeeFilter(p.fee_rate()?),
        "wtxidrelay" => p.nothing(NetworkMessage::WtxidRelay)?,
        "addrv2" => NetworkMessage::AddrV2(p.decode()?),
        "sendaddrv2" => p.nothing(NetworkMessage::SendAddrV2)?,
        _ => NetworkMessage::Unknown {
            // Only a caller outside the framings can hand us a command over
            // 12 bytes; neither framing could carry it.
            command: CommandString::try_from(command).map_err(|_| WireError::BadCommand)?,
            payload: payload.to_vec(),
        },
    })
}

/// The payload bytes of `msg`, exactly as the `bitcoin` crate encodes them.
///
/// Nothing is checked against [`max_payload_len`]: what we send is ours to
/// get right, and the peer enforces its own caps.
pub fn encode_payload(msg: &NetworkMessage) -> Vec<u8> {
    encode::serialize(msg)
}

/// A payload on its way to being decoded, with its command for error reports.
struct Payload<'a> {
    command: &'a str,
    bytes: &'a [u8],
}

impl Payload<'_> {
    /// Decodes the whole payload as one `T`.
    fn decode<T: Decodable>(&self) -> Result<T, WireError> {
        let (value, used) =
            encode::deserialize_partial(self.bytes).map_err(|e| self.malformed(e))?;
        self.expect_end(used)?;
        Ok(value)
    }

    /// For messages that carry nothing.
    fn nothing(&self, msg: NetworkMessage) -> Result<NetworkMessage, WireError> {
        self.expect_end(0)?;
        Ok(msg)
    }

    /// `headers` is a vector of (header, compact-size transaction count)
    /// where the count must be zero; the crate's decoder for that shape is
    /// private, so the loop lives here.
    fn headers(&self) -> Result<Vec<Header>, WireError> {
        let mut rest = self.bytes;
        let count = VarInt::consensus_decode(&mut rest)
            .map_err(|e| self.malformed(e))?
            .0;
        // Preallocate for what the bytes can hold, never for what the peer claims.
        let fits = rest.len() / HEADERS_ENTRY_LEN;
        let mut headers = Vec::with_capacity(usize::try_from(count).map_or(fits, |n| n.min(fits)));
        for index in 0..count {
            headers.push(Header::consensus_decode(&mut rest).map_err(|e| self.malformed(e))?);
            let txs = VarInt::consensus_decode(&mut rest)
                .map_err(|e| self.malformed(e))?
                .0;
            if txs != 0 {
                return Err(self.reason(format!("header {index} claims {txs} transactions, not 0")));
            }
        }
        self.expect_end(self.bytes.len() - rest.len())?;
        Ok(headers)
    }

    /// BIP133 fee rate in sat/kvB, limited to 0..=MAX_MONEY as Core's
    /// `MoneyRange` and the crate's own decoder do.
    fn fee_rate(&self) -> Result<i64, WireError> {
        let rate: i64 = self.decode()?;
        if !(0..=SignedAmount::MAX_MONEY.to_sat()).contains(&rate) {
            return Err(self.reason(format!("fee rate {rate} is outside 0..=MAX_MONEY")));
        }
        Ok(rate)
    }

    fn expect_end(&self, used: usize) -> Result<(), WireError> {
        match self.bytes.len().saturating_sub(used) {
            0 => Ok(()),
            extra => Err(self.reason(format!("{extra} trailing bytes after the payload"))),
        }
    }

    fn malformed(&self, err: encode::Error) -> WireError {
        self.reason(err.to_string())
    }

    fn reason(&self, reason: String) -> WireError {
        WireError::Malformed {
            command: self.command.to_owned(),
            reason,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::p2p::message_network::VersionMessage;
    use bitcoin::p2p::{Address, ServiceFlags};

    #[test]
    fn empty_messages_have_a_zero_cap() {
        for msg in [
            NetworkMessage::Verack,
            NetworkMessage::GetAddr,
            NetworkMessage::SendHeaders,
            NetworkMessage::WtxidRelay,
            NetworkMessage::SendAddrV2,
            NetworkMessage::MemPool,
            NetworkMessage::FilterClear,
        ] {
            assert_eq!(max_payload_len(msg.cmd()), 0, "{}", msg.cmd());
            assert_eq!(decode_payload(msg.cmd(), &[]), Ok(msg));
        }
    }

    #[test]
    fn fixed_size_caps_match_the_encodings() {
        assert_eq!(
            encode_payload(&NetworkMessage::Ping(7)).len(),
            max_payload_len("ping")
        );
        assert_eq!(
            encode_payload(&NetworkMessage::Pong(7)).len(),
            max_payload_len("pong")
        );
        assert_eq!(
            encode_payload(&NetworkMessage::FeeFilter(1)).len(),
            max_payload_len("feefilter")
        );
        let sendcmpct = bitcoin::p2p::message_compact_blocks::SendCmpct {
            send_compact: true,
            version: 2,
        };
        assert_eq!(
            encode_payload(&NetworkMessage::SendCmpct(sendcmpct)).len(),
            max_payload_len("sendcmpct")
        );
    }

    #[test]
    fn version_cap_fits_the_longest_user_agent_and_no_more() {
        let addr = Address::new(&"127.0.0.1:8333".parse().unwrap(), ServiceFlags::NONE);
        let mut version = VersionMessage::new(
            ServiceFlags::NETWORK,
            0,
            addr.clone(),
            addr,
            1,
            String::new(),
            0,
        );
        version.user_agent = "u".repeat(MAX_SUBVERSION_LEN);
        let bytes = encode_payload(&NetworkMessage::Version(version.clone()));
        assert_eq!(bytes.len(), MAX_VERSION_PAYLOAD_LEN);
        assert_eq!(
            decode_payload("version", &bytes),
            Ok(NetworkMessage::Version(version.clone()))
        );

        version.user_agent.push('u');
        let bytes = encode_payload(&NetworkMessage::Version(version));
        assert!(matches!(
            decode_payload("version", &bytes),
            Err(WireError::Oversize { .. })
        ));
    }

    #[test]
    fn feefilter_outside_money_range_is_malformed() {
        let bytes = (-1i64).to_le_bytes();
        assert!(matches!(
            decode_payload("feefilter", &bytes),
            Err(WireError::Malformed { .. })
        ));
    }

    #[test]
    fn long_commands_cannot_become_unknown_messages() {
        assert_eq!(
            decode_payload("thirteen_char", &[]),
            Err(WireError::BadCommand)
        );
    }

    // === BIP157 caps: `cfheaders` and `cfilter` ===

    /// `cfheaders` whose filter hashes are 0, 1, ... (`count` of them).
    fn cfheaders(count: u32) -> NetworkMessage {
        use bitcoin::BlockHash;
        use bitcoin::bip158::{FilterHash, FilterHeader};
        use bitcoin::hashes::Hash;
        NetworkMessage::CFHeaders(bitcoin::p2p::message_filter::CFHeaders {
            filter_type: 0,
            stop_hash: BlockHash::from_byte_array([1; 32]),
            previous_filter_header: FilterHeader::from_byte_array([2; 32]),
            filter_hashes: (0..count)
                .map(|i| {
                    let mut h = [0u8; 32];
                    h[..4].copy_from_slice(&i.to_le_bytes());
                    FilterHash::from_byte_array(h)
                })
                .collect(),
        })
    }

    /// A `cfilter` carrying `filter` as its filter bytes.
    fn cfilter(filter: Vec<u8>) -> NetworkMessage {
        use bitcoin::BlockHash;
        use bitcoin::hashes::Hash;
        NetworkMessage::CFilter(bitcoin::p2p::message_filter::CFilter {
            filter_type: 0,
            block_hash: BlockHash::from_byte_array([3; 32]),
            filter,
        })
    }

    fn oversize(command: &str, len: usize, max: usize) -> Result<NetworkMessage, WireError> {
        Err(WireError::Oversize {
            command: command.to_owned(),
            len,
            max,
        })
    }

    /// The largest `cfheaders` BIP157 allows (2000 filter hashes) is
    /// exactly the cap and decodes; one byte more is refused as oversize
    /// before anything is decoded (not as a trailing byte), and so is a
    /// 2001st hash.
    #[test]
    fn cfheaders_cap_is_2000_hashes_exactly() {
        let largest = cfheaders(2000);
        let bytes = encode_payload(&largest);
        assert_eq!(bytes.len(), 64_068);
        assert_eq!(bytes.len(), max_payload_len("cfheaders"));
        assert_eq!(decode_payload("cfheaders", &bytes), Ok(largest));

        let mut over = bytes;
        over.push(0);
        assert_eq!(
            decode_payload("cfheaders", &over),
            oversize("cfheaders", 64_069, 64_068)
        );
        let more = encode_payload(&cfheaders(2001));
        assert_eq!(
            decode_payload("cfheaders", &more),
            oversize("cfheaders", 64_100, 64_068)
        );
    }

    /// Why the `cfilter` cap holds (the derivation on
    /// `MAX_BASIC_FILTER_LEN`, checked here with a real filter):
    ///
    /// - Every element of a basic filter (BIP158) is a non-empty script:
    ///   an output's (not OP_RETURN) or the one an input spends. An output
    ///   is at least 8 (value) + 1 (length) + 1 (script) = 10 bytes, 40
    ///   weight units; an input at least 36 + 1 + 4 = 41 bytes. Elements
    ///   are a set, so repeats count once. A block of 4 000 000 weight
    ///   units therefore has at most N = 100 000 elements.
    /// - Golomb-Rice coding with P = 19 writes each of the N sorted deltas
    ///   as a unary quotient (q + 1 bits) and a 19-bit remainder. The
    ///   deltas add up to less than the largest value, N * M (M = 784 931),
    ///   so the quotients add up to at most N * M / 2^19, 1.4971 N. In all
    ///   at most (20 + 1.4971) * N bits = 268 714 bytes for N = 100 000,
    ///   under 268 750, plus the element count as a compact size (5 bytes
    ///   above 65 535): 268 755 bytes.
    /// - The cap allows 300 000 filter bytes, about 10% over that.
    ///
    /// A filter of 100 000 distinct elements built by the `bitcoin` crate's
    /// BIP158 writer stays within 268 755 bytes; a 268 755-byte filter and
    /// a 300 000-byte one (the cap: a 300 038-byte payload) decode; one
    /// byte more is refused as oversize.
    #[test]
    fn cfilter_cap_holds_the_largest_filter_a_block_can_have() {
        use bitcoin::bip158::BlockFilterWriter;

        let block = bitcoin::constants::genesis_block(bitcoin::Network::Regtest);
        let mut worst = Vec::new();
        let mut writer = BlockFilterWriter::new(&mut worst, &block);
        for i in 0..100_000u32 {
            writer.add_element(&i.to_le_bytes());
        }
        writer.finish().expect("writing to a Vec");
        // Within the bound, and not far under it (263 161 bytes): the
        // bound is nearly tight, and the cap's margin is real.
        assert!(
            (260_000..=268_755).contains(&worst.len()),
            "{} bytes",
            worst.len()
        );
        let msg = cfilter(worst);
        assert_eq!(decode_payload("cfilter", &encode_payload(&msg)), Ok(msg));

        let bound = cfilter(vec![0xa5; 268_755]);
        let bytes = encode_payload(&bound);
        // Filter type (1), block hash (32), compact size 0xfe + u32 (5).
        assert_eq!(bytes.len(), 1 + 32 + 5 + 268_755);
        assert_eq!(decode_payload("cfilter", &bytes), Ok(bound));

        let at_cap = cfilter(vec![0xa5; 300_000]);
        let bytes = encode_payload(&at_cap);
        assert_eq!(bytes.len(), 300_038);
        assert_eq!(bytes.len(), max_payload_len("cfilter"));
        assert_eq!(decode_payload("cfilter", &bytes), Ok(at_cap));

        let over = encode_payload(&cfilter(vec![0xa5; 300_001]));
        assert_eq!(
            decode_payload("cfilter", &over),
            oversize("cfilter", 300_039, 300_038)
        );
    }
}
