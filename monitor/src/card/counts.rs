//! What the card counts, as laid out in its cells and as read out: per accessing node
//! ([`NodeCounts`]), per granule, per filter, per secondary counter, and the card's
//! own statistics.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::program::{SecondaryId, SecondarySpec};
use crate::filter::{FilterId, FilterSpec};
use crate::sample::Access;

/// The most nodes a card counts for.
pub const MAX_NODES: u32 = 4096;

pub(super) const LOCAL: usize = 0;
pub(super) const REMOTE: usize = 1;
pub(super) const READS: usize = 2;
pub(super) const WRITES: usize = 3;
pub(super) const CELLS: usize = 4;

pub(super) fn bump(cells: &mut [u64], remote: Option<bool>, access: Access) {
    match remote {
        Some(true) => cells[REMOTE] += 1,
        Some(false) => cells[LOCAL] += 1,
        None => {}
    }
    if access == Access::Write {
        cells[WRITES] += 1;
    } else {
        cells[READS] += 1;
    }
}

/// References counted for one accessing node (in one granule, region or area).
///
/// `reads + writes` is every counted reference; `local + remote` is the part whose
/// locality was known (see [`crate::filter`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct NodeCounts {
    /// References served by the accessing node's own memory or caches.
    pub local: u64,
    /// References served by another node.
    pub remote: u64,
    /// Loads (and references of unknown type).
    pub reads: u64,
    /// Stores.
    pub writes: u64,
}

impl NodeCounts {
    /// Every reference counted: reads plus writes.
    pub fn total(&self) -> u64 {
        self.reads.saturating_add(self.writes)
    }

    /// Adds `other` into these counts (saturating).
    pub fn add(&mut self, other: &NodeCounts) {
        self.local = self.local.saturating_add(other.local);
        self.remote = self.remote.saturating_add(other.remote);
        self.reads = self.reads.saturating_add(other.reads);
        self.writes = self.writes.saturating_add(other.writes);
    }

    /// Truth that nothing was counted.
    pub fn is_zero(&self) -> bool {
        *self == NodeCounts::default()
    }

    pub(super) fn from_cells(cells: &[u64]) -> NodeCounts {
        NodeCounts {
            local: cells[LOCAL],
            remote: cells[REMOTE],
            reads: cells[READS],
            writes: cells[WRITES],
        }
    }
}

/// One granule's counters, as read out of a filter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GranuleCounts {
    /// Bytes from the filter's start to the granule's start.
    pub offset: u64,
    /// The home node of the granule's pages, as last reported to [`Card::record`]
    /// (`None`: never known).
    pub home_node: Option<u32>,
    /// Truth that samples reported more than one home node for this granule (pages of
    /// several nodes in it, or a page that migrated).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub home_mixed: bool,
    /// Counts per accessing node; nodes with no reference are left out.
    pub by_node: BTreeMap<u32, NodeCounts>,
}

impl GranuleCounts {
    /// The sum over accessing nodes.
    pub fn totals(&self) -> NodeCounts {
        let mut t = NodeCounts::default();
        for c in self.by_node.values() {
            t.add(c);
        }
        t
    }
}

/// A filter's programming and its touched granules (ascending offsets), as read out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilterCounts {
    /// The filter's handle on the card.
    pub id: FilterId,
    /// Its programming.
    pub spec: FilterSpec,
    /// The granules with at least one reference.
    pub granules: Vec<GranuleCounts>,
}

/// A secondary counter as read out: its programming and its counts per accessing node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecondaryCounts {
    /// Its handle.
    pub id: SecondaryId,
    /// Its programming.
    pub spec: SecondarySpec,
    /// Counts per accessing node; nodes with no reference are left out.
    pub by_node: BTreeMap<u32, NodeCounts>,
}

/// What the card saw, besides its counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CardStats {
    /// Samples given to [`Card::record`].
    pub samples: u64,
    /// Samples counted by at least one filter.
    pub matched: u64,
    /// Samples no filter counted.
    pub unmatched: u64,
    /// Samples dropped because their accessing node is not below the node count.
    pub bad_node: u64,
    /// Samples whose locality nothing told (counted as neither local nor remote).
    pub unknown_locality: u64,
}
