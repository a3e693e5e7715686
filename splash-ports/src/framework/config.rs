//! The flags common to every splash program ([`RunConfig`]: where the threads run,
//! the arrays' layout, the monitor session) and how `--monitor` samples.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::OnceLock;

use monitor::Granularity;
use rset::{Pin, Placement};

use super::error::SplashError;

/// Where the shared arrays live: the paper's two layouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum DataLayout {
    /// Striped one page per node over the RSet's nodes (`orig`).
    #[default]
    Orig,
    /// Each thread's partition on its own node (`reorg`).
    Reorg,
}

impl FromStr for DataLayout {
    type Err = SplashError;
    fn from_str(s: &str) -> Result<DataLayout, SplashError> {
        match s {
            "orig" => Ok(DataLayout::Orig),
            "reorg" => Ok(DataLayout::Reorg),
            _ => Err(SplashError::Usage(format!(
                "unknown layout `{s}` (expected `orig` or `reorg`)"
            ))),
        }
    }
}

impl fmt::Display for DataLayout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DataLayout::Orig => "orig",
            DataLayout::Reorg => "reorg",
        })
    }
}

/// The flags common to every splash program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunConfig {
    /// `--rset SPEC`: where the threads run and the memory comes from (rset spec
    /// grammar; default `all`).
    pub rset: String,
    /// `--placement fill|round-robin` (default fill).
    pub placement: Placement,
    /// `--pin node|cpu`: each thread held to the RSet's CPUs on its planned node
    /// (default: the paper's Fill and Round-robin bind a thread to a node) or to its
    /// planned CPU.
    pub pin: Pin,
    /// `--layout orig|reorg` (default orig).
    pub layout: DataLayout,
    /// `--monitor FILE`: record a monitor session of the run into FILE.
    pub monitor: Option<PathBuf>,
    /// `--monitor-granularity`: the granule size of the session's filters (default:
    /// a page; a cache line when zooming).
    pub monitor_granularity: Option<Granularity>,
    /// `--monitor-zoom PREV [--monitor-top K]`: watch only the hottest granules of
    /// a previous run's session (needs [`RunConfig::monitor`]).
    pub monitor_zoom: Option<Zoom>,
}

/// Where a zoomed run looks: the `top` granules with the most remote references in
/// the session file `previous` (a run of the same program with the same flags).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Zoom {
    /// The previous run's session file.
    pub previous: PathBuf,
    /// Granules kept (default [`Zoom::DEFAULT_TOP`]).
    pub top: usize,
}

impl Zoom {
    /// Granules kept unless said otherwise, as `rset-mon refine`.
    pub const DEFAULT_TOP: usize = 8;
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig {
            rset: "all".to_owned(),
            placement: Placement::Fill,
            pin: Pin::Node,
            layout: DataLayout::Orig,
            monitor: None,
            monitor_granularity: None,
            monitor_zoom: None,
        }
    }
}

/// How a `--monitor` session samples; set once per process with
/// [`set_monitor_options`] (the `splash` binary's `--monitor-rate`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MonitorOptions {
    /// Sampling rounds per second (default 1000).
    pub rate_hz: u64,
    /// The largest share of the run's time sampling may cost (default 0.05; 0: no
    /// limit).
    pub max_overhead: f64,
}

impl Default for MonitorOptions {
    fn default() -> Self {
        MonitorOptions {
            rate_hz: 1000,
            max_overhead: 0.05,
        }
    }
}

static MONITOR_OPTIONS: OnceLock<MonitorOptions> = OnceLock::new();

/// Sets the sampling options of `--monitor` sessions for this process; returns
/// false (and changes nothing) if they were already set.
pub fn set_monitor_options(options: MonitorOptions) -> bool {
    MONITOR_OPTIONS.set(options).is_ok()
}

pub(super) fn monitor_options() -> MonitorOptions {
    MONITOR_OPTIONS.get().copied().unwrap_or_default()
}
