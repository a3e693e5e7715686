//! The SPLASH-2 run-time on RSets: placed threads, barriers, global sums, and shared
//! arrays laid out as the paper's "orig" or "reorg".
//!
//! The SPLASH-2 programs were written against the PARMACS macros (`CREATE`,
//! `BARRIER`, `LOCK`, `G_MALLOC`, ...). Here:
//!
//! | PARMACS | here |
//! | --- | --- |
//! | `CREATE(proc)` x P, `WAIT_FOR_END` | [`Machine::run`]: `f` once on each of P placed threads |
//! | process id (`Global->id++` under a lock) | [`Proc::id`] (thread `i` is always on the same node) |
//! | `BARRIER(bar, P)` | [`Proc::barrier`] (spins briefly, then sleeps) |
//! | `LOCK`/`UNLOCK` around a global sum | [`Proc::sum_f64`], [`Proc::max_f64`]: in thread order, so results do not depend on timing; `std::sync::Mutex` for other critical sections |
//! | `G_MALLOC(bytes)` | [`Machine::shared`]: a labelled, placed [`Shared`] array |
//! | `CLOCK(t)` | `std::time::Instant` |
//!
//! # Layouts
//!
//! Every shared array is an [`alloc_policies::Region`] with a label (`fft.x`,
//! `ocean.psi`, ...), so the allocation registry, and through it the monitor's
//! reports, name it.
//!
//! - [`DataLayout::Orig`], the paper's base case: every array striped one page per
//!   node over the RSet's memory nodes (`Policy::Striped { stride_pages: 1 }`):
//!   page `p` on the `(p mod N)`-th node in id order, whoever uses it.
//! - [`DataLayout::Reorg`]: each element range of the array's [`Partition`] on the
//!   node of the thread that owns it, page by page. A page holding elements of two
//!   or more owners goes to the node of the lowest-numbered of those threads;
//!   pages holding no owned element (padding) go with the nearest owned page
//!   before them (or after, at the start). Mechanism: the region is mapped without
//!   a policy and not populated; each run of consecutive pages bound for one node
//!   gets one `mbind(MPOL_BIND, {node})` (so the kernel makes one mapping per run,
//!   not per page); then every page is faulted in, before any thread touches it.
//!   Placement therefore never depends on who touches first, and it is checked at
//!   once ([`Shared::locate`]). A thread whose node is not among the RSet's memory
//!   nodes gets the nearest of them (by distance, ties to the lowest id).
//!
//! Both layouts fault every page in before [`Machine::shared`] returns, by the
//! team in parallel (each thread an even share of the pages, as the C programs'
//! workers fault in their parts), so no fault falls in a timed phase.
//!
//! # Monitoring
//!
//! With [`RunConfig::monitor`] set, the first [`Machine::run`] starts a
//! [`monitor::session::Session`] with one filter per shared array (named by its
//! label; page granules unless [`RunConfig::monitor_granularity`] says otherwise)
//! and the registry's labels; [`Machine::finish`] stops it and writes the session
//! file, which `rset-mon report FILE` turns into the paper's table of data areas
//! with references from each node. Arrays made after the first `run` are not
//! watched.
//!
//! Successive refinement ([`RunConfig::monitor_zoom`]): the run watches only the
//! hottest granules of a previous run's session (those with the most remote
//! references), at a finer granularity (cache lines unless said otherwise), found
//! in this run's arrays by label and offset ([`crate::refine`]). A run at finer than
//! page granularity also writes `FILE.lines`: the report and a verdict for every
//! touched line (its dominant node; lines written from two or more nodes flagged).
//!
//! ```no_run
//! use splash_ports::framework::{Machine, Partition, RunConfig};
//! let cfg = RunConfig::default();
//! let m = Machine::new(&cfg, 4)?;
//! let n = 1 << 20;
//! let x = m.shared::<f64>("demo.x", n, &Partition::even(n, 4))?;
//! m.run(|p| {
//!     let r = p.id() * n / p.nprocs()..(p.id() + 1) * n / p.nprocs();
//!     // SAFETY: each thread writes only its own range in this phase.
//!     let mine = unsafe { x.slice_mut(r) };
//!     mine.fill(p.id() as f64);
//!     p.barrier();
//! })?;
//! m.finish()?;
//! # Ok::<(), splash_ports::framework::SplashError>(())
//! ```

use std::fmt;
use std::ops::Range;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, OnceLock};

use alloc_policies::registry::{self, InlineStr};
use alloc_policies::{PageStatus, Policy, Region, RegionError};
use monitor::session::{Session, SessionError};
use monitor::{FilterSpec, Granularity, Report, SessionFile};
use rset::sys::mempolicy::{self, MbindFlags, Mode};
use rset::{CpuId, NodeId, Pin, Placement, Plan, RSet, Team, Topology};

use crate::refine::{ArrayRange, ZoomError, ZoomPlan};

pub use bytemuck::Pod;

/// One option found by [`getopt`]: its letter and, for options that take one, its
/// argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opt {
    /// The option letter.
    pub letter: char,
    /// Its argument (`-m16` and `-m 16` both give `"16"`).
    pub arg: Option<String>,
}

/// Parses SPLASH-2 style flags as POSIX `getopt(argc, argv, optstring)` does:
/// `optstring` lists the letters, a letter followed by `:` takes an argument,
/// attached (`-m16`) or next (`-m 16`); flags combine (`-st`); `--` ends the
/// options. Unlike the C programs, which let `getopt` print a warning and went on,
/// an unknown letter, a missing argument or a leftover operand is an error.
///
/// # Errors
/// [`SplashError::Usage`] naming the offending flag.
pub fn getopt(args: &[String], optstring: &str) -> Result<Vec<Opt>, SplashError> {
    let takes = |c: char| -> Option<bool> {
        let i = optstring.find(c).filter(|_| c != ':')?;
        Some(optstring[i + c.len_utf8()..].starts_with(':'))
    };
    let mut out = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--" {
            if let Some(extra) = it.next() {
                return Err(SplashError::Usage(format!("unexpected argument `{extra}`")));
            }
            break;
        }
        let Some(flags) = a.strip_prefix('-').filter(|f| !f.is_empty()) else {
            return Err(SplashError::Usage(format!("unexpected argument `{a}`")));
        };
        for (i, c) in flags.char_indices() {
            match takes(c) {
                None => return Err(SplashError::Usage(format!("invalid option -- '{c}'"))),
                Some(false) => out.push(Opt {
                    letter: c,
                    arg: None,
                }),
                Some(true) => {
                    let rest = &flags[i + c.len_utf8()..];
                    let arg = if rest.is_empty() {
                        it.next().cloned().ok_or_else(|| {
                            SplashError::Usage(format!("option requires an argument -- '{c}'"))
                        })?
                    } else {
                        rest.to_owned()
                    };
                    out.push(Opt {
                        letter: c,
                        arg: Some(arg),
                    });
                    break;
                }
            }
        }
    }
    Ok(out)
}

/// The integer argument of option `-letter`, as C's `atoi` would read a well-formed
/// one (surrounding blanks allowed).
///
/// # Errors
/// [`SplashError::Usage`] when it is not a whole number (`atoi` would have read 0).
pub fn int_arg(letter: char, arg: &str) -> Result<i64, SplashError> {
    arg.trim()
        .parse::<i64>()
        .map_err(|_| SplashError::Usage(format!("-{letter}: `{arg}` is not a whole number")))
}

/// SPLASH `CLOCK`: microseconds since the Unix epoch.
pub fn clock_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

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

fn monitor_options() -> MonitorOptions {
    MONITOR_OPTIONS.get().copied().unwrap_or_default()
}

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

/// What is wrong with a [`Partition`] for an array.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PartitionError {
    /// A range reaches past the array.
    #[error("range {range:?} of thread {thread} reaches past the {len} elements")]
    OutOfBounds {
        /// The range.
        range: Range<usize>,
        /// Its owner.
        thread: usize,
        /// The array's length.
        len: usize,
    },
    /// A range is owned by a thread the team does not have.
    #[error("range {range:?} belongs to thread {thread}, but the team has {threads} threads")]
    NoSuchThread {
        /// The range.
        range: Range<usize>,
        /// The owner named.
        thread: usize,
        /// Threads in the team.
        threads: usize,
    },
    /// Two ranges share elements.
    #[error(
        "ranges {first:?} (thread {first_thread}) and {second:?} (thread {second_thread}) overlap"
    )]
    Overlap {
        /// One range.
        first: Range<usize>,
        /// Its owner.
        first_thread: usize,
        /// The other.
        second: Range<usize>,
        /// Its owner.
        second_thread: usize,
    },
}

/// Who owns which elements of a shared array: element ranges, each with its owning
/// thread. Only [`DataLayout::Reorg`] uses it. Ranges may come in any order; they
/// must not overlap; elements no range covers are padding.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Partition {
    ranges: Vec<(Range<usize>, usize)>,
}

impl Partition {
    /// Ranges with their owners (checked by [`Partition::validate`] when an array
    /// is made).
    pub fn by_thread(ranges: Vec<(Range<usize>, usize)>) -> Partition {
        Partition { ranges }
    }

    /// `len` elements in `threads` contiguous blocks: thread `i` owns
    /// `i * len / threads .. (i + 1) * len / threads`.
    pub fn even(len: usize, threads: usize) -> Partition {
        let at = |i: usize| (i as u128 * len as u128 / threads.max(1) as u128) as usize;
        Partition {
            ranges: (0..threads).map(|i| (at(i)..at(i + 1), i)).collect(),
        }
    }

    /// The ranges and their owners, as given.
    pub fn ranges(&self) -> &[(Range<usize>, usize)] {
        &self.ranges
    }

    /// Checks the ranges against an array of `len` elements and a team of
    /// `threads` threads.
    ///
    /// # Errors
    /// The first [`PartitionError`] found.
    pub fn validate(&self, len: usize, threads: usize) -> Result<(), PartitionError> {
        for (r, t) in &self.ranges {
            if *t >= threads {
                return Err(PartitionError::NoSuchThread {
                    range: r.clone(),
                    thread: *t,
                    threads,
                });
            }
            if r.end > len || r.start > r.end {
                return Err(PartitionError::OutOfBounds {
                    range: r.clone(),
                    thread: *t,
                    len,
                });
            }
        }
        let mut sorted: Vec<&(Range<usize>, usize)> =
            self.ranges.iter().filter(|(r, _)| !r.is_empty()).collect();
        sorted.sort_by_key(|(r, _)| r.start);
        for w in sorted.windows(2) {
            let ((a, ta), (b, tb)) = (w[0], w[1]);
            if b.start < a.end {
                return Err(PartitionError::Overlap {
                    first: a.clone(),
                    first_thread: *ta,
                    second: b.clone(),
                    second_thread: *tb,
                });
            }
        }
        Ok(())
    }

    /// The owning thread of every page of an array of `len` elements of
    /// `elem_bytes` bytes each laid out from a page boundary: the lowest-numbered
    /// thread owning an element on the page; pages without owned elements take the
    /// owner of the nearest owned page before them (after them at the start);
    /// thread 0 if nothing is owned. The partition must be valid for `len`.
    pub fn page_owners(&self, len: usize, elem_bytes: usize, page_bytes: usize) -> Vec<usize> {
        let pages = (len * elem_bytes).div_ceil(page_bytes);
        let mut owner = vec![usize::MAX; pages];
        for (r, t) in &self.ranges {
            if r.is_empty() {
                continue;
            }
            let first = r.start * elem_bytes / page_bytes;
            let last = (r.end * elem_bytes - 1) / page_bytes;
            for o in &mut owner[first..=last] {
                *o = (*o).min(*t);
            }
        }
        let lead = owner
            .iter()
            .copied()
            .find(|&o| o != usize::MAX)
            .unwrap_or(0);
        let mut prev = lead;
        for o in &mut owner {
            if *o == usize::MAX {
                *o = prev;
            } else {
                prev = *o;
            }
        }
        owner
    }
}

/// A placed team of threads over an RSet, and the shared arrays of one program run.
pub struct Machine {
    rset: RSet,
    team: Team,
    layout: DataLayout,
    monitor_path: Option<PathBuf>,
    monitor_granularity: Granularity,
    zoom: Option<(PathBuf, ZoomPlan)>,
    session: Mutex<Option<Session>>,
    arrays: Mutex<Vec<(String, usize, usize)>>,
    /// Threads may spin at barriers only if each has a CPU of its own.
    spin: bool,
}

impl fmt::Debug for Machine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Machine")
            .field("threads", &self.team.len())
            .field("rset", &self.rset)
            .field("layout", &self.layout)
            .field("monitor", &self.monitor_path)
            .finish()
    }
}

impl Machine {
    /// Reads the topology, resolves `cfg.rset` and plans `threads` threads on it by
    /// `cfg.placement`. More threads than CPUs share CPUs (thread `t` and
    /// `t + ncpus` on one CPU).
    ///
    /// With [`RunConfig::monitor_zoom`], the previous run's session is read and
    /// planned here, so that a bad one is refused before the program runs.
    ///
    /// # Errors
    /// [`SplashError::Topology`], [`SplashError::Rset`], [`SplashError::Team`]
    /// (no CPUs in the RSet, zero threads); [`SplashError::Usage`] for a zoom
    /// without `--monitor`, [`SplashError::SessionFile`] and [`SplashError::Zoom`]
    /// for a previous session that cannot be read or zoomed into.
    pub fn new(cfg: &RunConfig, threads: usize) -> Result<Machine, SplashError> {
        let zoom = match &cfg.monitor_zoom {
            None => None,
            Some(_) if cfg.monitor.is_none() => {
                return Err(SplashError::Usage(
                    "--monitor-zoom needs --monitor FILE for the zoomed run's session".into(),
                ));
            }
            Some(z) => {
                let previous =
                    SessionFile::load(&z.previous).map_err(|source| SplashError::SessionFile {
                        flag: "--monitor-zoom",
                        path: z.previous.clone(),
                        source,
                    })?;
                let next = cfg.monitor_granularity.unwrap_or(Granularity::LINE);
                let plan =
                    ZoomPlan::new(&previous, z.top, next).map_err(|source| SplashError::Zoom {
                        path: z.previous.clone(),
                        source,
                    })?;
                Some((z.previous.clone(), plan))
            }
        };
        let topo = Topology::from_system().map_err(|e| SplashError::Topology(e.to_string()))?;
        let rset = RSet::parse(&cfg.rset, &topo).map_err(|e| SplashError::Rset {
            spec: cfg.rset.clone(),
            reason: e.to_string(),
        })?;
        if rset.effective_nodes().is_empty() {
            return Err(SplashError::Rset {
                spec: cfg.rset.clone(),
                reason: "the RSet has no memory node to place the arrays on".into(),
            });
        }
        let team = rset
            .team()
            .threads(threads)
            .placement(cfg.placement)
            .pin(cfg.pin)
            .name("splash")
            .build()?;
        let spin = threads <= rset.cpus().len();
        Ok(Machine {
            rset,
            team,
            layout: cfg.layout,
            monitor_path: cfg.monitor.clone(),
            monitor_granularity: cfg.monitor_granularity.unwrap_or(if zoom.is_some() {
                Granularity::LINE
            } else {
                Granularity::PAGE
            }),
            zoom,
            session: Mutex::new(None),
            arrays: Mutex::new(Vec::new()),
            spin,
        })
    }

    /// Threads in the team.
    pub fn threads(&self) -> usize {
        self.team.len()
    }

    /// The RSet the team runs in and the arrays are placed over.
    pub fn rset(&self) -> &RSet {
        &self.rset
    }

    /// Where each thread runs.
    pub fn plan(&self) -> &Plan {
        self.team.plan()
    }

    /// The layout of the shared arrays.
    pub fn layout(&self) -> DataLayout {
        self.layout
    }

    /// The node a reorg array puts thread `thread`'s pages on: the thread's node if
    /// the RSet has its memory, else the RSet's nearest memory node (ties to the
    /// lowest id). `None` for a thread the team does not have.
    pub fn home_node(&self, thread: usize) -> Option<NodeId> {
        let node = self.team.plan().get(thread)?.node;
        let nodes = self.rset.effective_nodes();
        if nodes.contains(node) {
            return Some(node);
        }
        let topo = self.rset.topology();
        nodes
            .iter()
            .min_by_key(|&n| (topo.distance(node, n).unwrap_or(u64::MAX), n.0))
    }

    /// A shared array of `len` zeroed elements labelled `label`, placed by the
    /// layout (see the module docs); `parts` says who owns what under reorg.
    ///
    /// # Errors
    /// [`SplashError::Partition`] for a partition that does not fit `len` or the
    /// team; [`SplashError::Alloc`] and [`SplashError::Bind`] for memory that
    /// cannot be had or placed.
    pub fn shared<T: Pod>(
        &self,
        label: &str,
        len: usize,
        parts: &Partition,
    ) -> Result<Shared<T>, SplashError> {
        let alloc_err = |source| SplashError::Alloc {
            label: label.to_owned(),
            source,
        };
        let mut region = match self.layout {
            DataLayout::Orig => Region::<T>::builder(len)
                .striped(1)
                .populate(false)
                .rset(&self.rset)
                .label(label)
                .build()
                .map_err(alloc_err)?,
            DataLayout::Reorg => {
                parts
                    .validate(len, self.threads())
                    .map_err(|source| SplashError::Partition {
                        label: label.to_owned(),
                        source,
                    })?;
                let mut region = Region::<T>::builder(len)
                    .policy(Policy::Float)
                    .populate(false)
                    .rset(&self.rset)
                    .label(label)
                    .build()
                    .map_err(alloc_err)?;
                self.place_reorg(&mut region, label, parts)?;
                region
            }
        };
        self.populate(&mut region).map_err(alloc_err)?;
        let ptr = region.as_mut_ptr();
        let shared = Shared {
            region,
            ptr,
            len,
            label: label.to_owned(),
        };
        self.arrays.lock().unwrap_or_else(|p| p.into_inner()).push((
            label.to_owned(),
            ptr as usize,
            shared.region.mapped_bytes(),
        ));
        Ok(shared)
    }

    /// Binds each run of pages to its owner's node, then faults every page in.
    fn place_reorg<T: Pod>(
        &self,
        region: &mut Region<T>,
        label: &str,
        parts: &Partition,
    ) -> Result<(), SplashError> {
        let page = mempolicy::page_size();
        let owners = parts.page_owners(region.len(), size_of::<T>(), page);
        let homes: Vec<NodeId> = (0..self.threads())
            .map(|t| self.home_node(t).expect("every team thread has a node"))
            .collect();
        let base = region.as_ptr().cast::<u8>();
        let mut start = 0;
        while start < owners.len() {
            let node = homes[owners[start]];
            let mut end = start + 1;
            while end < owners.len() && homes[owners[end]] == node {
                end += 1;
            }
            let addr = base.wrapping_add(start * page);
            mempolicy::mbind(
                addr,
                (end - start) * page,
                Mode::Bind,
                &[node.0],
                MbindFlags::default(),
            )
            .map_err(|source| SplashError::Bind {
                label: label.to_owned(),
                pages: start..end,
                node,
                source,
            })?;
            start = end;
        }
        registry::set_policy(region.id(), InlineStr::new("reorg: owners' nodes"));
        Ok(())
    }

    /// Faults every page of a lazy region in under its policy before `shared`
    /// returns: after the memory check, the team does it, thread `t` the `t`-th of
    /// `n` even shares of the pages, as the C programs' workers fault in their own
    /// parts in parallel; then the main thread fills any hole and checks the
    /// interleave phase ([`Region::populate_with`]). Placement does not depend on
    /// who faults a page in (every page has its policy already).
    fn populate<T: Pod>(&self, region: &mut Region<T>) -> Result<(), RegionError> {
        let n = self.threads();
        region.populate_with(|pages, fault| {
            if n < 2 || pages < n {
                return Ok(());
            }
            match self.team.broadcast(|ctx| {
                let t = ctx.index();
                fault(t * pages / n..(t + 1) * pages / n)
            }) {
                Ok(results) => results.into_iter().collect(),
                // A team that cannot start here will not start for the run either;
                // the run reports it. The main thread does the work alone meanwhile.
                Err(_) => Ok(()),
            }
        })
    }

    /// Runs `f` once on every placed thread (thread `i` always on the same node) and
    /// returns when all have ended. The first call starts the `--monitor` session.
    ///
    /// # Errors
    /// [`SplashError::Team`] when the threads cannot start or bind (then `f` ran
    /// nowhere); [`SplashError::Monitor`] when the session cannot start.
    ///
    /// # Panics
    /// Re-raises a panic of `f`.
    pub fn run<F: Fn(&Proc<'_>) + Sync>(&self, f: F) -> Result<(), SplashError> {
        self.start_monitor()?;
        let n = self.threads();
        let state = RunState {
            barrier: HybridBarrier::new(n, self.spin),
            slots: (0..n).map(|_| PaddedU64::default()).collect(),
        };
        self.team.broadcast(|ctx| {
            let p = Proc {
                id: ctx.index(),
                nprocs: n,
                cpu: ctx.cpu(),
                node: ctx.node(),
                state: &state,
            };
            f(&p);
        })?;
        Ok(())
    }

    fn start_monitor(&self) -> Result<(), SplashError> {
        let Some(path) = &self.monitor_path else {
            return Ok(());
        };
        let mut session = self.session.lock().unwrap_or_else(|p| p.into_inner());
        if session.is_some() {
            return Ok(());
        }
        let arrays = self.arrays.lock().unwrap_or_else(|p| p.into_inner());
        if arrays.is_empty() {
            return Err(SplashError::NothingToMonitor(path.clone()));
        }
        let opts = monitor_options();
        let mut b = Session::builder()
            .rate_hz(opts.rate_hz)
            .max_overhead(opts.max_overhead);
        let filters = match &self.zoom {
            None => arrays
                .iter()
                .map(|(label, addr, bytes)| {
                    FilterSpec::new(*addr as u64, *bytes as u64, self.monitor_granularity)
                        .name(label)
                })
                .collect(),
            Some((previous, plan)) => {
                let here: Vec<ArrayRange> = arrays
                    .iter()
                    .map(|(label, addr, bytes)| ArrayRange {
                        label: label.clone(),
                        start: *addr as u64,
                        bytes: *bytes as u64,
                    })
                    .collect();
                plan.filters(&here).map_err(|source| SplashError::Zoom {
                    path: previous.clone(),
                    source,
                })?
            }
        };
        for f in filters {
            b = b.filter(f);
        }
        let started = b
            .labels_from_registry()
            .start()
            .map_err(|source| SplashError::Monitor {
                path: path.clone(),
                source,
            })?;
        *session = Some(started);
        Ok(())
    }

    /// Stops the `--monitor` session, if any, and writes its session file (and,
    /// for granules finer than a page, the line verdicts in `FILE.lines`, see
    /// [`lines_path`]).
    ///
    /// # Errors
    /// [`SplashError::Monitor`] when the session fails;
    /// [`SplashError::SessionFile`] or [`SplashError::Output`] when a file cannot
    /// be written; [`SplashError::NothingToMonitor`] when `--monitor` was given but
    /// no `run` ever started.
    pub fn finish(self) -> Result<(), SplashError> {
        let Some(path) = self.monitor_path.clone() else {
            return Ok(());
        };
        let session = self
            .session
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        let Some(session) = session else {
            return Err(SplashError::NothingToMonitor(path));
        };
        let err = |source| SplashError::Monitor {
            path: path.clone(),
            source,
        };
        let done = session.stop().map_err(err)?;
        let distances = distances(self.rset.topology());
        let file = match distances {
            Some(d) => done.file.with_distances(d),
            None => done.file,
        };
        file.save(&path)
            .map_err(|source| SplashError::SessionFile {
                flag: "--monitor",
                path: path.clone(),
                source,
            })?;
        let lines = lines_path(&path);
        if self.monitor_granularity < Granularity::PAGE {
            let report = Report::from_session(&file);
            std::fs::write(&lines, crate::refine::lines_text(&report)).map_err(|source| {
                SplashError::SessionFile {
                    flag: "--monitor",
                    path: path.clone(),
                    source: monitor::SessionError::Io {
                        path: lines.clone(),
                        source,
                    },
                }
            })?;
        } else {
            // A page-granular run has no line verdicts: none of an earlier run stays.
            let _ = std::fs::remove_file(&lines);
        }
        Ok(())
    }
}

/// Where a session at finer than page granularity keeps its line verdicts: the
/// session file's name with `.lines` added.
pub fn lines_path(session: &std::path::Path) -> PathBuf {
    let mut name = session.as_os_str().to_owned();
    name.push(".lines");
    PathBuf::from(name)
}

/// The node distance matrix by node id, when the ids are `0..N`.
fn distances(topo: &Topology) -> Option<Vec<Vec<u32>>> {
    let nodes = topo.nodes();
    if nodes.iter().enumerate().any(|(i, n)| n.id.0 as usize != i) {
        return None;
    }
    Some(
        nodes
            .iter()
            .map(|n| n.distances.iter().map(|&d| d as u32).collect())
            .collect(),
    )
}

/// A shared array of a program run: a placed, labelled [`Region`] that every thread
/// may read and write, SPLASH style. Synchronisation is the program's business
/// (barriers between phases); the accessors that hand out references are `unsafe`
/// and say what they require.
pub struct Shared<T> {
    region: Region<T>,
    ptr: *mut T,
    len: usize,
    label: String,
}

// SAFETY: the array is plain memory owned by `region`, which lives as long as this
// value; `T: Pod` has no interior references. Moving the handle to another thread
// moves nothing.
unsafe impl<T: Pod + Send> Send for Shared<T> {}
// SAFETY: shared access only hands out references through `unsafe` methods whose
// callers promise the absence of data races; `as_ptr` is a raw pointer.
unsafe impl<T: Pod + Sync> Sync for Shared<T> {}

impl<T> fmt::Debug for Shared<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("label", &self.label)
            .field("len", &self.len)
            .field("ptr", &self.ptr)
            .finish()
    }
}

impl<T: Pod> Shared<T> {
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Truth that the array has no element (never: arrays have at least one).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The label it was made with.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The first element.
    pub fn as_ptr(&self) -> *mut T {
        self.ptr
    }

    /// Bytes mapped (whole pages).
    pub fn mapped_bytes(&self) -> usize {
        self.region.mapped_bytes()
    }

    /// Where each page of the array is, page 0 first (`move_pages`).
    ///
    /// # Errors
    /// The kernel's refusal, as [`RegionError::MovePages`].
    pub fn locate(&self) -> Result<Vec<PageStatus>, RegionError> {
        self.region.locate()
    }

    fn check(&self, range: &Range<usize>) {
        assert!(
            range.start <= range.end && range.end <= self.len,
            "range {range:?} out of `{}` ({} elements)",
            self.label,
            self.len
        );
    }

    /// Elements `range`, for reading.
    ///
    /// # Safety
    /// No other thread writes elements of `range` while the slice lives (phases
    /// separated by barriers).
    ///
    /// # Panics
    /// If `range` is not within the array.
    pub unsafe fn slice(&self, range: Range<usize>) -> &[T] {
        self.check(&range);
        // SAFETY: in bounds (checked), aligned and initialised (a Region of Pod,
        // zeroed at birth); the caller rules out concurrent writes.
        unsafe { std::slice::from_raw_parts(self.ptr.wrapping_add(range.start), range.len()) }
    }

    /// Elements `range`, for writing.
    ///
    /// # Safety
    /// No other thread reads or writes elements of `range` while the slice lives.
    ///
    /// # Panics
    /// If `range` is not within the array.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn slice_mut(&self, range: Range<usize>) -> &mut [T] {
        self.check(&range);
        // SAFETY: in bounds, aligned, initialised; the caller guarantees exclusive
        // access to these elements while the slice lives.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.wrapping_add(range.start), range.len()) }
    }

    /// Element `i`.
    ///
    /// # Safety
    /// No other thread writes element `i` at the same time.
    ///
    /// # Panics
    /// If `i` is out of bounds.
    pub unsafe fn get(&self, i: usize) -> T {
        assert!(i < self.len, "index {i} out of `{}`", self.label);
        // SAFETY: in bounds; the caller rules out a concurrent write.
        unsafe { self.ptr.wrapping_add(i).read() }
    }

    /// Writes element `i`.
    ///
    /// # Safety
    /// No other thread reads or writes element `i` at the same time.
    ///
    /// # Panics
    /// If `i` is out of bounds.
    pub unsafe fn set(&self, i: usize, value: T) {
        assert!(i < self.len, "index {i} out of `{}`", self.label);
        // SAFETY: in bounds; the caller rules out concurrent access.
        unsafe { self.ptr.wrapping_add(i).write(value) }
    }
}

/// One thread of a [`Machine::run`].
pub struct Proc<'a> {
    id: usize,
    nprocs: usize,
    cpu: CpuId,
    node: NodeId,
    state: &'a RunState,
}

impl fmt::Debug for Proc<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Proc")
            .field("id", &self.id)
            .field("nprocs", &self.nprocs)
            .field("cpu", &self.cpu)
            .field("node", &self.node)
            .finish()
    }
}

impl Proc<'_> {
    /// This thread's id, `0..nprocs()`.
    pub fn id(&self) -> usize {
        self.id
    }

    /// Threads in the run.
    pub fn nprocs(&self) -> usize {
        self.nprocs
    }

    /// Waits until every thread of the run has arrived (SPLASH `BARRIER`).
    pub fn barrier(&self) {
        self.state.barrier.wait();
    }

    /// The node of this thread's CPU.
    pub fn node(&self) -> NodeId {
        self.node
    }

    /// This thread's planned CPU: the one it runs on under `--pin cpu`; under
    /// `--pin node` it may run on any CPU of the RSet on [`Proc::node`].
    pub fn cpu(&self) -> CpuId {
        self.cpu
    }

    /// The sum of every thread's `value`, added in thread order (so the same
    /// inputs give the same bits whatever the timing); every thread must call it,
    /// and gets the sum. Two barriers.
    pub fn sum_f64(&self, value: f64) -> f64 {
        self.all_reduce(value, |a, b| a + b)
    }

    /// The largest of every thread's `value` (NaN-ignoring, as `f64::max`); every
    /// thread must call it.
    pub fn max_f64(&self, value: f64) -> f64 {
        self.all_reduce(value, f64::max)
    }

    fn all_reduce(&self, value: f64, op: impl Fn(f64, f64) -> f64) -> f64 {
        let slots = &self.state.slots;
        slots[self.id].0.store(value.to_bits(), Ordering::Relaxed);
        self.barrier();
        let mut acc = f64::from_bits(slots[0].0.load(Ordering::Relaxed));
        for s in &slots[1..] {
            acc = op(acc, f64::from_bits(s.0.load(Ordering::Relaxed)));
        }
        // Nobody may overwrite its slot for the next reduction before all have read.
        self.barrier();
        acc
    }
}

/// Per-thread reduction slot on its own cache lines.
#[derive(Default)]
#[repr(align(128))]
struct PaddedU64(AtomicU64);

struct RunState {
    barrier: HybridBarrier,
    slots: Vec<PaddedU64>,
}

/// A barrier that spins for a while (when every thread has its own CPU), then
/// sleeps on a condition variable.
struct HybridBarrier {
    n: usize,
    spin: bool,
    count: AtomicUsize,
    generation: AtomicUsize,
    sleepers: AtomicUsize,
    lock: Mutex<()>,
    cv: Condvar,
}

/// Spin iterations before sleeping (a few tens of microseconds).
const SPIN_LIMIT: u32 = 1 << 14;

impl HybridBarrier {
    fn new(n: usize, spin: bool) -> HybridBarrier {
        HybridBarrier {
            n,
            spin,
            count: AtomicUsize::new(0),
            generation: AtomicUsize::new(0),
            sleepers: AtomicUsize::new(0),
            lock: Mutex::new(()),
            cv: Condvar::new(),
        }
    }

    fn wait(&self) {
        // The generation cannot move before this thread arrives.
        let generation = self.generation.load(Ordering::Acquire);
        if self.count.fetch_add(1, Ordering::AcqRel) + 1 == self.n {
            self.count.store(0, Ordering::Relaxed);
            self.generation
                .store(generation.wrapping_add(1), Ordering::SeqCst);
            if self.sleepers.load(Ordering::SeqCst) > 0 {
                let _g = self.lock.lock().unwrap_or_else(|p| p.into_inner());
                self.cv.notify_all();
            }
            return;
        }
        if self.spin {
            for _ in 0..SPIN_LIMIT {
                if self.generation.load(Ordering::Acquire) != generation {
                    return;
                }
                std::hint::spin_loop();
            }
        }
        let mut g = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        self.sleepers.fetch_add(1, Ordering::SeqCst);
        while self.generation.load(Ordering::SeqCst) == generation {
            g = self.cv.wait(g).unwrap_or_else(|p| p.into_inner());
        }
        self.sleepers.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn even_partitions_cover_the_array_in_order() {
        let p = Partition::even(10, 3);
        assert_eq!(p.ranges(), &[(0..3, 0), (3..6, 1), (6..10, 2)]);
        assert!(p.validate(10, 3).is_ok());
        let p = Partition::even(2, 4);
        let total: usize = p.ranges().iter().map(|(r, _)| r.len()).sum();
        assert_eq!(total, 2);
        assert!(p.validate(2, 4).is_ok());
    }

    #[test]
    fn bad_partitions_name_the_culprit() {
        let past = Partition::by_thread(vec![(0..5, 0), (5..11, 1)]);
        assert_eq!(
            past.validate(10, 2),
            Err(PartitionError::OutOfBounds {
                range: 5..11,
                thread: 1,
                len: 10
            })
        );
        let thread = Partition::by_thread(vec![(0..5, 0), (5..10, 2)]);
        assert!(matches!(
            thread.validate(10, 2),
            Err(PartitionError::NoSuchThread { thread: 2, .. })
        ));
        let overlap = Partition::by_thread(vec![(4..8, 1), (0..5, 0)]);
        let e = overlap.validate(10, 2).unwrap_err();
        assert_eq!(
            e,
            PartitionError::Overlap {
                first: 0..5,
                first_thread: 0,
                second: 4..8,
                second_thread: 1
            }
        );
        assert!(e.to_string().contains("0..5"), "{e}");
    }

    #[test]
    fn straddling_pages_go_to_the_lower_thread_and_padding_to_its_neighbour() {
        // 8-byte elements, 64-byte "pages" (8 elements each): 4 pages.
        let p = Partition::by_thread(vec![(12..32, 0), (4..12, 1)]);
        // Page 0: elements 0-7, owner 1 (4..8) => 1. Page 1: 8-15, owners 1 and 0 => 0.
        assert_eq!(p.page_owners(32, 8, 64), vec![1, 0, 0, 0]);
        // Padding at the start takes the first owned page's owner; in the middle, the
        // previous one.
        let p = Partition::by_thread(vec![(16..24, 2), (32..40, 1)]);
        assert_eq!(p.page_owners(40, 8, 64), vec![2, 2, 2, 2, 1]);
        // Nothing owned: thread 0.
        assert_eq!(Partition::default().page_owners(9, 8, 64), vec![0, 0]);
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn getopt_reads_flags_as_posix_does() {
        let o = getopt(&strings(&["-m16", "-p", "2", "-st", "-l4"]), "p:m:n:l:stoh").unwrap();
        let got: Vec<(char, Option<&str>)> =
            o.iter().map(|o| (o.letter, o.arg.as_deref())).collect();
        assert_eq!(
            got,
            vec![
                ('m', Some("16")),
                ('p', Some("2")),
                ('s', None),
                ('t', None),
                ('l', Some("4"))
            ]
        );
        let o = getopt(&strings(&["-tm10", "--"]), "m:t").unwrap();
        assert_eq!(o.len(), 2);
        assert_eq!(o[1].arg.as_deref(), Some("10"));
        let e = getopt(&strings(&["-x"]), "m:t").unwrap_err();
        assert_eq!(e.to_string(), "invalid option -- 'x'");
        let e = getopt(&strings(&["-t", "-m"]), "m:t").unwrap_err();
        assert_eq!(e.to_string(), "option requires an argument -- 'm'");
        let e = getopt(&strings(&["16"]), "m:t").unwrap_err();
        assert!(e.to_string().contains("`16`"), "{e}");
        assert!(getopt(&strings(&["-:"]), "m:t").is_err());
        assert_eq!(int_arg('m', " 12").unwrap(), 12);
        assert!(
            int_arg('m', "1x")
                .unwrap_err()
                .to_string()
                .contains("-m: `1x`")
        );
    }

    #[test]
    fn layouts_parse_and_print() {
        assert_eq!("orig".parse::<DataLayout>().unwrap(), DataLayout::Orig);
        assert_eq!("reorg".parse::<DataLayout>().unwrap(), DataLayout::Reorg);
        assert_eq!(DataLayout::Reorg.to_string(), "reorg");
        let e = "striped".parse::<DataLayout>().unwrap_err();
        assert!(e.to_string().contains("`striped`"), "{e}");
    }

    #[test]
    fn barriers_and_sums_are_exact_over_many_rounds() {
        for spin in [true, false] {
            let n = 4;
            let b = HybridBarrier::new(n, spin);
            let counter = AtomicUsize::new(0);
            std::thread::scope(|s| {
                for _ in 0..n {
                    s.spawn(|| {
                        for round in 0..200 {
                            counter.fetch_add(1, Ordering::Relaxed);
                            b.wait();
                            assert_eq!(counter.load(Ordering::Relaxed), (round + 1) * n);
                            b.wait();
                        }
                    });
                }
            });
        }
    }
}
