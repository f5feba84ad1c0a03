//! Table sizes per network, as `getaddrmaninfo` reports them.

use crate::netaddr::NetworkId;

/// Entries in each table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TableCounts {
    /// Entries in the new table.
    pub new: usize,
    /// Entries in the tried table.
    pub tried: usize,
}

impl TableCounts {
    /// Entries in both tables.
    pub fn total(&self) -> usize {
        self.new + self.tried
    }
}

/// Entry counts per network (Core's `getaddrmaninfo`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AddrManInfo {
    per_network: [TableCounts; NetworkId::COUNT],
}

impl AddrManInfo {
    pub(crate) fn from_counts(
        new: [usize; NetworkId::COUNT],
        tried: [usize; NetworkId::COUNT],
    ) -> Self {
        let mut per_network = [TableCounts::default(); NetworkId::COUNT];
        for (i, c) in per_network.iter_mut().enumerate() {
            *c = TableCounts {
                new: new[i],
                tried: tried[i],
            };
        }
        AddrManInfo { per_network }
    }

    /// Counts for one network.
    pub fn network(&self, network: NetworkId) -> TableCounts {
        self.per_network[network.index()]
    }

    /// Counts over every network (Core's `all_networks`).
    pub fn all_networks(&self) -> TableCounts {
        self.per_network
            .iter()
            .fold(TableCounts::default(), |acc, c| TableCounts {
                new: acc.new + c.new,
                tried: acc.tried + c.tried,
            })
    }

    /// `(network, counts)` for every network, in Core's order.
    pub fn iter(&self) -> impl Iterator<Item = (NetworkId, TableCounts)> + '_ {
        NetworkId::ALL.into_iter().map(|n| (n, self.network(n)))
    }
}
