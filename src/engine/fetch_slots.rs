//! One outstanding filter or block request per peer, with its deadline.
//!
//! Filter header sync and block scans both ask filter peers for data; a
//! peer with a request in flight is busy for both, so neither can queue a
//! second request behind the first (which would make the first one's
//! timeout meaningless and let one slow peer hold up two jobs).

use std::collections::BTreeMap;
use std::time::Instant;

use crate::peer::ConnId;

/// What a request is for: whose answer the reply is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// `getcfcheckpt` or `getcfheaders` (filter header sync).
    FilterHeaders,
    /// `getcfilters` (a scan).
    Filters,
    /// `getdata` for a block.
    Block,
    /// A filter or block fetched to settle a filter dispute.
    Evidence,
}

/// The requests in flight.
#[derive(Debug, Clone, Default)]
pub struct FetchSlots {
    busy: BTreeMap<ConnId, (Purpose, Instant)>,
}

impl FetchSlots {
    /// No request in flight.
    pub fn new() -> Self {
        FetchSlots::default()
    }

    /// Whether `conn` has a request in flight.
    pub fn is_busy(&self, conn: ConnId) -> bool {
        self.busy.contains_key(&conn)
    }

    /// What `conn`'s request in flight is for.
    pub fn purpose(&self, conn: ConnId) -> Option<Purpose> {
        self.busy.get(&conn).map(|(p, _)| *p)
    }

    /// `conn` was sent a request, to be answered by `deadline`.
    pub fn take(&mut self, conn: ConnId, purpose: Purpose, deadline: Instant) {
        self.busy.insert(conn, (purpose, deadline));
    }

    /// `conn`'s request was answered (or abandoned).
    pub fn release(&mut self, conn: ConnId) {
        self.busy.remove(&conn);
    }

    /// The requests whose deadline passed, taken out.
    pub fn expired(&mut self, now: Instant) -> Vec<(ConnId, Purpose)> {
        let late: Vec<(ConnId, Purpose)> = self
            .busy
            .iter()
            .filter(|(_, (_, d))| now >= *d)
            .map(|(c, (p, _))| (*c, *p))
            .collect();
        for (c, _) in &late {
            self.busy.remove(c);
        }
        late
    }

    /// The earliest deadline.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.busy.values().map(|(_, d)| *d).min()
    }
}
