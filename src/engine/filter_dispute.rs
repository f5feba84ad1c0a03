//! Settling a disagreement between two filter peers with evidence
//! (BIP157's advice): when they give different filter hashes for the same
//! block, fetch that block and each peer's filter, and see which filter
//! fits the block.
//!
//! What can be checked without the UTXO set: a filter must hash to what
//! its peer claimed, and must contain every output script of the block
//! (all but empty and `OP_RETURN` scripts, BIP158). A peer whose filter
//! leaves out an output, or does not hash to its own claim, lied. The
//! spent scripts of the inputs cannot be checked here (their outputs are
//! in earlier blocks), so two filters that both hold every output but
//! differ in those stay undecided: neither is taken, and the dispute is
//! reported.

use bitcoin::bip158::{BlockFilter, FilterHash};
use bitcoin::hashes::Hash;
use bitcoin::opcodes::all::OP_RETURN;
use bitcoin::p2p::message_filter::CFilter;
use bitcoin::{Block, BlockHash};

use crate::chain::block_check::{self, BlockProblem};
use crate::peer::ConnId;

/// One peer's side of a dispute.
#[derive(Debug, Clone)]
struct Side {
    conn: ConnId,
    /// The filter hash it claimed for the disputed block.
    claimed: FilterHash,
    /// Its filter, once it sent it.
    filter: Option<Vec<u8>>,
    /// Whether its filter was asked for.
    asked: bool,
}

/// The outcome, once the evidence is in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Still waiting for a filter or the block.
    Pending,
    /// These peers served filters that do not fit the block.
    Liars(Vec<ConnId>),
    /// Both filters fit the block's outputs: nothing more can be checked.
    Undecided,
}

/// A dispute over the filter of one block.
#[derive(Debug, Clone)]
pub struct Dispute {
    height: u32,
    block_hash: BlockHash,
    sides: Vec<Side>,
    block: Option<Block>,
    /// Who was asked for the block.
    block_from: Option<ConnId>,
}

impl Dispute {
    /// A dispute over the filter of `block_hash` at `height`, between
    /// these peers and their claimed filter hashes.
    pub fn new(height: u32, block_hash: BlockHash, sides: [(ConnId, FilterHash); 2]) -> Self {
        Dispute {
            height,
            block_hash,
            sides: sides
                .iter()
                .map(|(conn, claimed)| Side {
                    conn: *conn,
                    claimed: *claimed,
                    filter: None,
                    asked: false,
                })
                .collect(),
            block: None,
            block_from: None,
        }
    }

    /// The disputed block's height.
    pub fn height(&self) -> u32 {
        self.height
    }

    /// The disputed block.
    pub fn block_hash(&self) -> BlockHash {
        self.block_hash
    }

    /// The peers in the dispute.
    pub fn parties(&self) -> impl Iterator<Item = ConnId> + '_ {
        self.sides.iter().map(|s| s.conn)
    }

    /// Whether `conn` is a party.
    pub fn involves(&self, conn: ConnId) -> bool {
        self.sides.iter().any(|s| s.conn == conn)
    }

    /// The parties whose filter is still to be asked for.
    pub fn filters_to_ask(&self) -> Vec<ConnId> {
        self.sides
            .iter()
            .filter(|s| !s.asked)
            .map(|s| s.conn)
            .collect()
    }

    /// `conn`'s filter was asked for.
    pub fn filter_asked(&mut self, conn: ConnId) {
        if let Some(s) = self.sides.iter_mut().find(|s| s.conn == conn) {
            s.asked = true;
        }
    }

    /// Whether the block still needs asking for.
    pub fn needs_block(&self) -> bool {
        self.block.is_none() && self.block_from.is_none()
    }

    /// The block was asked of `conn`.
    pub fn block_asked(&mut self, conn: ConnId) {
        self.block_from = Some(conn);
    }

    /// Who the block was asked of.
    pub fn block_from(&self) -> Option<ConnId> {
        self.block_from
    }

    /// The block's source left or failed: ask someone else.
    pub fn block_lost(&mut self) {
        self.block_from = None;
    }

    /// `conn` sent a filter; whether it was the one expected of it.
    pub fn on_filter(&mut self, conn: ConnId, msg: &CFilter) -> bool {
        match self.sides.iter_mut().find(|s| s.conn == conn) {
            Some(side) if side.filter.is_none() && msg.block_hash == self.block_hash => {
                side.filter = Some(msg.filter.clone());
                true
            }
            _ => false,
        }
    }

    /// The block arrived: checked against its header first.
    pub fn on_block(&mut self, block: &Block) -> Result<(), BlockProblem> {
        block_check::check(block, &self.block_hash)?;
        self.block = Some(block.clone());
        Ok(())
    }

    /// What the evidence says.
    pub fn verdict(&self) -> Verdict {
        let Some(block) = &self.block else {
            return Verdict::Pending;
        };
        let mut liars = Vec::new();
        for side in &self.sides {
            let Some(filter) = &side.filter else {
                return Verdict::Pending;
            };
            if FilterHash::hash(filter) != side.claimed || !fits_outputs(block, filter) {
                liars.push(side.conn);
            }
        }
        if liars.is_empty() {
            Verdict::Undecided
        } else {
            Verdict::Liars(liars)
        }
    }
}

/// Whether `filter` holds every output script of `block` that BIP158 puts
/// in a basic filter (none is empty or starts with `OP_RETURN`).
pub fn fits_outputs(block: &Block, filter: &[u8]) -> bool {
    let scripts: Vec<&[u8]> = block
        .txdata
        .iter()
        .flat_map(|tx| tx.output.iter())
        .map(|o| o.script_pubkey.as_bytes())
        .filter(|s| !s.is_empty() && s[0] != OP_RETURN.to_u8())
        .collect();
    if scripts.is_empty() {
        return true;
    }
    BlockFilter::new(filter)
        .match_all(&block.block_hash(), scripts.into_iter())
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::bip158::BlockFilterWriter;
    use bitcoin::hashes::sha256d;

    fn filter_of(block: &Block, skip_outputs: bool) -> Vec<u8> {
        let mut out = Vec::new();
        let mut writer = BlockFilterWriter::new(&mut out, block);
        if !skip_outputs {
            writer.add_output_scripts();
        } else {
            writer.add_element(b"something else");
        }
        writer.finish().unwrap();
        out
    }

    #[test]
    fn the_peer_whose_filter_leaves_out_an_output_is_the_liar() {
        let block = bitcoin::constants::genesis_block(bitcoin::Network::Regtest);
        let hash = block.block_hash();
        let honest = filter_of(&block, false);
        let forged = filter_of(&block, true);
        let (a, b) = (ConnId(1), ConnId(2));
        let mut d = Dispute::new(
            0,
            hash,
            [
                (a, FilterHash::hash(&honest)),
                (b, FilterHash::hash(&forged)),
            ],
        );
        assert_eq!(d.verdict(), Verdict::Pending);
        let cf = |filter: &Vec<u8>| CFilter {
            filter_type: 0,
            block_hash: hash,
            filter: filter.clone(),
        };
        assert!(d.on_filter(a, &cf(&honest)));
        assert!(!d.on_filter(a, &cf(&honest)), "one filter per side");
        assert!(d.on_filter(b, &cf(&forged)));
        assert_eq!(d.verdict(), Verdict::Pending, "the block is missing");
        d.on_block(&block).unwrap();
        assert_eq!(d.verdict(), Verdict::Liars(vec![b]));
    }

    #[test]
    fn a_filter_that_does_not_hash_to_its_claim_is_a_lie_and_fits_undecided() {
        let block = bitcoin::constants::genesis_block(bitcoin::Network::Regtest);
        let hash = block.block_hash();
        let honest = filter_of(&block, false);
        let (a, b) = (ConnId(1), ConnId(2));
        let claim = FilterHash::hash(&honest);
        let wrong_claim = FilterHash::from_raw_hash(sha256d::Hash::hash(b"x"));
        let cf = CFilter {
            filter_type: 0,
            block_hash: hash,
            filter: honest.clone(),
        };
        let mut d = Dispute::new(0, hash, [(a, claim), (b, wrong_claim)]);
        d.on_filter(a, &cf);
        d.on_filter(b, &cf);
        d.on_block(&block).unwrap();
        assert_eq!(d.verdict(), Verdict::Liars(vec![b]));
        let mut d = Dispute::new(0, hash, [(a, claim), (b, claim)]);
        d.on_filter(a, &cf);
        d.on_filter(b, &cf);
        d.on_block(&block).unwrap();
        assert_eq!(d.verdict(), Verdict::Undecided);
        // A block that is not the disputed one is refused.
        let mut other = block.clone();
        other.header.nonce ^= 1;
        assert!(d.on_block(&other).is_err());
    }
}
