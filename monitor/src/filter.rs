//! What a region filter matches: an address range cut into granules, a transaction
//! mask and a direction, as programmed into one of the Opium card's filters.
//!
//! # Direction
//!
//! A reference is *remote* when the PMU's data source says so
//! ([`DataSource::is_remote`](crate::sample::DataSource::is_remote)), otherwise when
//! the accessing node (the node of the CPU) differs from the page's home node. When
//! neither tells (no data source and an unknown home node), it is neither local nor
//! remote. With no node named, the three remote directions are the same set: every
//! remote reference. With a node `n` named:
//!
//! | direction | counts a reference when |
//! | --- | --- |
//! | [`Direction::All`] | the accessing node or the home node is `n` (local ones too) |
//! | [`Direction::Outbound`] | it is remote and made from `n` (to memory elsewhere) |
//! | [`Direction::Inbound`] | it is remote, to memory homed on `n`, from another node |
//! | [`Direction::Both`] | outbound or inbound for `n` |
//!
//! [`Direction::All`] with no node counts every reference, local and remote: the card
//! could not see local traffic, a sampler can.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::granularity::Granularity;
use crate::sample::Access;

/// The handle of a programmed filter: its index in programming order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct FilterId(pub u32);

impl fmt::Display for FilterId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "filter {}", self.0)
    }
}

/// Which transaction types a filter or a secondary counter counts.
///
/// A sample of [`Access::Unknown`] counts as a read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TxMask {
    /// Count loads.
    pub reads: bool,
    /// Count stores.
    pub writes: bool,
}

impl TxMask {
    /// Reads and writes.
    pub const ALL: TxMask = TxMask {
        reads: true,
        writes: true,
    };
    /// Reads only.
    pub const READS: TxMask = TxMask {
        reads: true,
        writes: false,
    };
    /// Writes only.
    pub const WRITES: TxMask = TxMask {
        reads: false,
        writes: true,
    };

    /// Truth that the mask passes `access`.
    pub fn accepts(self, access: Access) -> bool {
        match access {
            Access::Write => self.writes,
            Access::Read | Access::Unknown => self.reads,
        }
    }

    /// Truth that the mask passes nothing.
    pub fn is_empty(self) -> bool {
        !self.reads && !self.writes
    }
}

impl Default for TxMask {
    fn default() -> Self {
        TxMask::ALL
    }
}

impl fmt::Display for TxMask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match (self.reads, self.writes) {
            (true, true) => "rw",
            (true, false) => "r",
            (false, true) => "w",
            (false, false) => "none",
        })
    }
}

/// Why text is not a transaction mask.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot read {0:?} as a transaction mask (r, w, rw, reads, writes, all)")]
pub struct TxMaskParseError(pub String);

impl FromStr for TxMask {
    type Err = TxMaskParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "r" | "read" | "reads" => Ok(TxMask::READS),
            "w" | "write" | "writes" => Ok(TxMask::WRITES),
            "rw" | "wr" | "all" | "reads+writes" | "both" => Ok(TxMask::ALL),
            _ => Err(TxMaskParseError(s.to_owned())),
        }
    }
}

/// Which references a filter counts, seen from a node (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Every reference, local and remote (with a node: those made from it or to it).
    #[default]
    All,
    /// Remote references made from the node to memory elsewhere.
    Outbound,
    /// Remote references into the node's memory from elsewhere.
    Inbound,
    /// Outbound or inbound.
    Both,
}

impl Direction {
    /// Truth that a reference from `accessing` to memory homed on `home` (with the
    /// locality `remote`, `None` when unknown) passes this direction for `node`.
    pub fn accepts(
        self,
        node: Option<u32>,
        accessing: u32,
        home: u32,
        remote: Option<bool>,
    ) -> bool {
        let remote = remote == Some(true);
        match (self, node) {
            (Direction::All, None) => true,
            (Direction::All, Some(n)) => accessing == n || home == n,
            (_, None) => remote,
            (Direction::Outbound, Some(n)) => remote && accessing == n,
            (Direction::Inbound, Some(n)) => remote && home == n && accessing != n,
            (Direction::Both, Some(n)) => remote && (accessing == n || home == n),
        }
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Direction::All => "all",
            Direction::Outbound => "outbound",
            Direction::Inbound => "inbound",
            Direction::Both => "both",
        })
    }
}

/// Why text is not a direction.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot read {0:?} as a direction (all, outbound, inbound, both)")]
pub struct DirectionParseError(pub String);

impl FromStr for Direction {
    type Err = DirectionParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "all" | "any" => Ok(Direction::All),
            "out" | "outbound" => Ok(Direction::Outbound),
            "in" | "inbound" => Ok(Direction::Inbound),
            "both" | "remote" => Ok(Direction::Both),
            _ => Err(DirectionParseError(s.to_owned())),
        }
    }
}

/// One filter's registers: the range, its granularity, the mask and the direction.
///
/// Granule `i` covers `start + i * granularity .. start + (i + 1) * granularity`; a
/// size that is not a multiple of the granularity is rounded up to whole granules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilterSpec {
    /// First byte monitored.
    pub start: u64,
    /// Bytes monitored (not zero).
    pub size: u64,
    /// Bytes per granule (one counter set per granule).
    pub granularity: Granularity,
    /// Transaction types counted.
    #[serde(default)]
    pub mask: TxMask,
    /// Which references count (see the module docs).
    #[serde(default)]
    pub direction: Direction,
    /// The node the direction is about, if any.
    #[serde(default)]
    pub node: Option<u32>,
    /// A label for reports (a data structure's name), if the caller has one.
    #[serde(default)]
    pub name: Option<String>,
}

impl FilterSpec {
    /// A filter over `start .. start + size` that counts every reference, read or
    /// write, local or remote, per granule of `granularity`.
    pub fn new(start: u64, size: u64, granularity: Granularity) -> Self {
        FilterSpec {
            start,
            size,
            granularity,
            mask: TxMask::ALL,
            direction: Direction::All,
            node: None,
            name: None,
        }
    }

    /// The same filter with transaction mask `mask`.
    pub fn mask(mut self, mask: TxMask) -> Self {
        self.mask = mask;
        self
    }

    /// The same filter with direction `direction` about `node` (`None`: any node).
    pub fn direction(mut self, direction: Direction, node: Option<u32>) -> Self {
        self.direction = direction;
        self.node = node;
        self
    }

    /// The same filter labelled `name`.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The number of granules (size rounded up), or `None` for a size of zero.
    pub fn granules(&self) -> Option<u64> {
        if self.size == 0 {
            return None;
        }
        Some(self.size.div_ceil(self.granularity.bytes()))
    }

    /// One past the last byte counted (the end of the last granule), or `None` if
    /// that overflows the address space or the size is zero.
    pub fn end(&self) -> Option<u64> {
        self.granules()?
            .checked_mul(self.granularity.bytes())?
            .checked_add(self.start)
    }
}
