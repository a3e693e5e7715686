//! [`SplashError`]: why a splash program could not run.

use std::ops::Range;
use std::path::PathBuf;

use alloc_policies::RegionError;
use monitor::session::SessionError;
use rset::NodeId;

use super::partition::PartitionError;
use crate::refine::ZoomError;

/// Why a splash program could not run. Every message is one line naming the
/// culprit.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SplashError {
    /// Bad program flags; the message reads like the C original's.
    #[error("{0}")]
    Usage(String),
    /// The machine's topology could not be read.
    #[error("cannot read the machine's topology: {0}")]
    Topology(String),
    /// `--rset SPEC` does not parse or names what the machine lacks.
    #[error("--rset `{spec}`: {reason}")]
    Rset {
        /// The spec.
        spec: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The team of threads could not be planned or started.
    #[error(transparent)]
    Team(#[from] rset::TeamError),
    /// A partition does not fit its array or its team.
    #[error("array `{label}`: {source}")]
    Partition {
        /// The array's label.
        label: String,
        /// What is wrong.
        source: PartitionError,
    },
    /// A shared array could not be allocated or placed.
    #[error("array `{label}`: {source}")]
    Alloc {
        /// The array's label.
        label: String,
        /// What the allocator said.
        source: RegionError,
    },
    /// The kernel refused to bind part of a reorg array to its owner's node.
    #[error("array `{label}`: cannot bind pages {pages:?} to node {node}: {source}")]
    Bind {
        /// The array's label.
        label: String,
        /// The pages.
        pages: Range<usize>,
        /// The node.
        node: NodeId,
        /// The kernel's answer.
        source: std::io::Error,
    },
    /// `--monitor`: the session could not start, stop or be saved.
    #[error("--monitor {path}: {source}")]
    Monitor {
        /// The session file.
        path: PathBuf,
        /// What the monitor said.
        source: SessionError,
    },
    /// `--monitor` was given but the program made no shared array to watch.
    #[error("--monitor {0}: the program made no shared array to watch")]
    NothingToMonitor(PathBuf),
    /// A session file could not be read or written.
    #[error("{flag} {}: {source}", path.display())]
    SessionFile {
        /// The flag that named it (`--monitor`, `--monitor-zoom`).
        flag: &'static str,
        /// The file.
        path: PathBuf,
        /// What the monitor said.
        source: monitor::SessionError,
    },
    /// `--monitor-zoom`: the previous run's session cannot be carried to this run.
    #[error("--monitor-zoom {}: {source}", path.display())]
    Zoom {
        /// The previous run's session file.
        path: PathBuf,
        /// Why not.
        source: ZoomError,
    },
    /// Writing the program's output failed.
    #[error("cannot write the output: {0}")]
    Output(#[from] std::io::Error),
}
