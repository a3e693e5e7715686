//! Why the card refuses a programming request.

use super::counts::MAX_NODES;
use crate::filter::FilterId;
use crate::granularity::GranularityError;

/// Why the card refused a programming request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CardError {
    /// A card needs at least one node.
    #[error("a card needs at least one node")]
    NoNodes,
    /// More nodes than [`MAX_NODES`].
    #[error("{0} nodes is more than the {MAX_NODES} a card counts for")]
    TooManyNodes(u32),
    /// The granularity is not valid.
    #[error(transparent)]
    Granularity(#[from] GranularityError),
    /// A filter of size zero.
    #[error("the filter at {start:#x} has size 0")]
    EmptyFilter {
        /// Its start.
        start: u64,
    },
    /// A range of size zero for a secondary counter.
    #[error("the secondary range at {start:#x} has size 0")]
    EmptyRange {
        /// Its start.
        start: u64,
    },
    /// The range runs past the end of the address space.
    #[error(
        "the range {start:#x} + {size:#x} (whole granules) passes the end of the address space"
    )]
    AddressOverflow {
        /// Its start.
        start: u64,
        /// Its size.
        size: u64,
    },
    /// A mask that passes nothing.
    #[error("the transaction mask passes neither reads nor writes")]
    EmptyMask,
    /// A node named that the card does not count.
    #[error("node {node} is out of range (the card counts nodes 0..{nodes})")]
    NodeOutOfRange {
        /// The node named.
        node: u32,
        /// The card's node count.
        nodes: u32,
    },
    /// Programming this would pass the counter budget.
    #[error(
        "{requested} counters requested but only {available} of the budget of {budget} are free"
    )]
    BudgetExceeded {
        /// Counters (64-bit cells) the request needs.
        requested: u64,
        /// Counters still free.
        available: u64,
        /// The whole budget.
        budget: u64,
    },
    /// No filter has this handle.
    #[error("{0} is not programmed")]
    UnknownFilter(FilterId),
    /// A secondary counter with no source.
    #[error("a secondary counter needs at least one source")]
    EmptySecondary,
    /// A threshold of zero references.
    #[error("a threshold must be at least 1")]
    ZeroThreshold,
    /// More filters, secondary counters or thresholds than handles can name.
    #[error("too many {0} for 32-bit handles")]
    TooMany(&'static str),
}
