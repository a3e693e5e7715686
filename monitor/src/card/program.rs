//! How the card is programmed beyond filters: secondary counters and thresholds.

use serde::{Deserialize, Serialize};

use crate::filter::{FilterId, TxMask};

/// The handle of a secondary counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SecondaryId(pub u32);

/// What a secondary counter shadows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SecondarySource {
    /// Every reference this filter counts (so the filter's direction applies).
    Filter(FilterId),
    /// Every reference to `start .. start + size`, whatever its direction.
    Range {
        /// First byte.
        start: u64,
        /// Bytes (not zero).
        size: u64,
    },
}

/// A secondary counter's programming: the card's co-incremented counters that sum a
/// set of filters or scattered ranges (one data structure on scattered pages), with
/// their own transaction mask (to split its reads from its writes).
///
/// A reference counts once per secondary counter, however many of its sources match.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecondarySpec {
    /// What it shadows (at least one).
    pub sources: Vec<SecondarySource>,
    /// Transaction types it counts, among those its sources pass.
    #[serde(default)]
    pub mask: TxMask,
    /// A label for reports.
    #[serde(default)]
    pub name: Option<String>,
}

/// The handle of a threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ThresholdId(pub u32);

/// Which count of a granule (summed over accessing nodes) a threshold watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ThresholdOn {
    /// Remote references (the card's hot-spot interrupt).
    #[default]
    Remote,
    /// All references.
    Total,
}

/// What a threshold handler is told: a granule's count reached the threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThresholdEvent {
    /// The threshold that fired.
    pub threshold: ThresholdId,
    /// Its filter.
    pub filter: FilterId,
    /// The granule's index in the filter.
    pub granule: u64,
    /// The granule's first byte.
    pub addr: u64,
    /// The granule's count (summed over accessing nodes) when it fired.
    pub count: u64,
    /// Which count.
    pub on: ThresholdOn,
    /// The accessing node of the reference that crossed it.
    pub node: u32,
    /// That reference's time, nanoseconds since the session started.
    pub time_ns: u64,
}

/// A threshold's handler: the card's interrupt.
pub type ThresholdHandler = Box<dyn FnMut(ThresholdEvent) + Send>;
