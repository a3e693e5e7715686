//! The Opium remote-access monitor of the IBM ccNUMA paper, in software.
//!
//! Samplers observe memory references ([`sample::Sample`]); the monitor counts them
//! per region filter, per granule, per accessing node, local or remote.
//!
//! The pure core:
//! - [`granularity`]: the monitoring unit, a power of two from a line to 2 MiB;
//! - [`filter`]: what a filter matches (range, granularity, mask, direction);
//! - [`card`]: the card, filters with counters allocated at programming time within a
//!   budget, secondary counters, thresholds; [`Card::record`] counts a sample;
//! - [`report`] and [`svg`]: the data-area table, per-granule detail, text, JSON, CSV
//!   and an SVG heatmap;
//! - [`session_file`]: the saved session that `rset-mon report` reads;
//! - [`refine`]: successive refinement, from pages down to lines, and the verdicts of
//!   the last round;
//! - [`replay`]: recorded sample streams and a sampler that plays them back;
//! - [`perf_record`]: a parser for perf_event ring-buffer records.
#![deny(missing_docs)]
#![deny(unsafe_code)]

pub mod card;
pub mod filter;
pub mod granularity;
pub mod home;
pub mod live;
pub mod perf_record;
pub mod refine;
pub mod replay;
pub mod report;
pub mod sample;
pub mod sampler;
pub mod session;
pub mod session_file;
pub mod svg;
#[cfg(test)]
mod test_alloc;
pub mod timeline;

pub use card::{
    Card, CardError, CardStats, NodeCounts, SecondaryId, SecondarySource, SecondarySpec,
    ThresholdEvent, ThresholdId, ThresholdOn, UNKNOWN_NODE,
};
pub use filter::{Direction, FilterId, FilterSpec, TxMask};
pub use granularity::{Granularity, GranularityError};
pub use refine::{LineVerdict, RefineOptions, Select, line_verdicts, plan_next_round};
pub use replay::{RecordedSample, Replay, ReplayError, StreamFormat, StreamHeader, StreamWriter};
pub use report::Report;
pub use session_file::{Label, Machine, SessionError, SessionFile};
pub use svg::{Metric, SvgOptions};
pub use timeline::{Timeline, TimelinePoint};
