//! The basic filter header chain (BIP157): one filter header per block of
//! the best header chain, from genesis up.
//!
//! A filter header commits to its block's filter and, through the previous
//! filter header, to every filter before it; so once the chain of filter
//! headers is settled (cross-checked between peers), a filter fetched from
//! anyone is checked by hashing it and chaining it onto the header below.
//!
//! Memory holds only the 32-byte headers (about 29 MB for mainnet's
//! 900 000 blocks). Which block each one belongs to is on disk
//! ([`super::filter_store`]) and, for the tip, here: the header chain says
//! whether that block is still in the best chain, and its ancestry finds
//! the fork point after a reorg.

use bitcoin::BlockHash;
use bitcoin::bip158::{FilterHash, FilterHeader};
use bitcoin::hashes::Hash;

/// Filter headers by height, with the records the store has yet to write.
#[derive(Debug, Clone, Default)]
pub struct FilterHeaderChain {
    /// Index = height.
    headers: Vec<FilterHeader>,
    /// The block the top header belongs to.
    tip_block: Option<BlockHash>,
    /// Heights the file already holds.
    written: usize,
    /// What the file is missing, from height `written` on.
    unwritten: Vec<(BlockHash, FilterHash)>,
}

impl FilterHeaderChain {
    /// No filter headers yet.
    pub fn new() -> Self {
        FilterHeaderChain::default()
    }

    /// How many heights have a filter header (the next one is for this
    /// height).
    pub fn len(&self) -> usize {
        self.headers.len()
    }

    /// Whether there is none, not even genesis's.
    pub fn is_empty(&self) -> bool {
        self.headers.is_empty()
    }

    /// The filter header at `height`.
    pub fn header_at(&self, height: u32) -> Option<FilterHeader> {
        self.headers.get(height as usize).copied()
    }

    /// The top: its height, its block and its filter header.
    pub fn tip(&self) -> Option<(u32, BlockHash, FilterHeader)> {
        let block = self.tip_block?;
        let header = *self.headers.last()?;
        Some((height_of(self.headers.len() - 1), block, header))
    }

    /// The header the next one chains onto: the top's, or all zeros below
    /// genesis (BIP157).
    pub fn previous(&self) -> FilterHeader {
        self.headers
            .last()
            .copied()
            .unwrap_or(FilterHeader::from_byte_array([0; 32]))
    }

    /// Append the filter header of `block`, whose filter hashes to
    /// `filter_hash`, at the next height; returns it.
    pub fn push(&mut self, block: BlockHash, filter_hash: FilterHash) -> FilterHeader {
        let header = filter_hash.filter_header(&self.previous());
        self.headers.push(header);
        self.tip_block = Some(block);
        self.unwritten.push((block, filter_hash));
        header
    }

    /// Append a header read back from the file: already written.
    pub(crate) fn push_stored(&mut self, block: BlockHash, filter_hash: FilterHash) {
        self.push(block, filter_hash);
        self.unwritten.clear();
        self.written = self.headers.len();
    }

    /// Room for `more` headers: a load knows how many it will replay, and
    /// growing by doubling would briefly hold half again as much.
    pub(crate) fn reserve_exact(&mut self, more: usize) {
        self.headers.reserve_exact(more);
    }

    /// Keep the first `len` heights (a reorg replaced the blocks above);
    /// `tip_block` is the block at height `len - 1`, from the header chain.
    /// Returns whether the file must shrink too (it held more than `len`).
    pub fn truncate(&mut self, len: usize, tip_block: Option<BlockHash>) -> bool {
        if len >= self.headers.len() {
            return false;
        }
        self.headers.truncate(len);
        self.tip_block = if len == 0 { None } else { tip_block };
        if len >= self.written {
            self.unwritten.truncate(len - self.written);
            false
        } else {
            self.unwritten.clear();
            self.written = len;
            true
        }
    }

    /// The records the file lacks: the first one's height and the records.
    pub fn unwritten(&self) -> (u32, &[(BlockHash, FilterHash)]) {
        (height_of(self.written), &self.unwritten)
    }

    /// The store wrote everything [`FilterHeaderChain::unwritten`] returned.
    pub fn mark_written(&mut self) {
        self.written = self.headers.len();
        self.unwritten.clear();
    }
}

fn height_of(index: usize) -> u32 {
    u32::try_from(index).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(n: u8) -> BlockHash {
        BlockHash::from_byte_array([n; 32])
    }

    fn filter(n: u8) -> FilterHash {
        FilterHash::from_byte_array([n; 32])
    }

    #[test]
    fn each_header_chains_onto_the_one_below() {
        let mut c = FilterHeaderChain::new();
        let h0 = c.push(block(0), filter(10));
        assert_eq!(
            h0,
            filter(10).filter_header(&FilterHeader::from_byte_array([0; 32]))
        );
        let h1 = c.push(block(1), filter(11));
        assert_eq!(h1, filter(11).filter_header(&h0));
        assert_eq!(c.tip(), Some((1, block(1), h1)));
        assert_eq!(
            c.unwritten(),
            (0, &[(block(0), filter(10)), (block(1), filter(11))][..])
        );
        c.mark_written();
        assert_eq!(c.unwritten().0, 2);
    }

    #[test]
    fn truncating_below_the_file_asks_the_file_to_shrink() {
        let mut c = FilterHeaderChain::new();
        for n in 0..3 {
            c.push(block(n), filter(n));
        }
        c.mark_written();
        c.push(block(3), filter(3));
        assert!(
            !c.truncate(3, Some(block(2))),
            "only the unwritten header goes"
        );
        assert_eq!(c.unwritten(), (3, &[][..]));
        assert!(c.truncate(1, Some(block(0))));
        assert_eq!(c.tip().map(|t| t.1), Some(block(0)));
        assert_eq!(c.unwritten().0, 1);
        assert!(c.truncate(0, None));
        assert!(c.tip().is_none() && c.is_empty());
    }
}
