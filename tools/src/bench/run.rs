//! Placed runs: one latency point, one bandwidth point, and the node-pair matrix,
//! each on threads of a team over an RSet with buffers placed by a policy.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use alloc_policies::{Policy, Region, RegionError};
use rset::{NodeId, Placement, RSet, TeamError, Topology};
use serde::Serialize;

use super::chase::{self, ChaseSample, LINE_BYTES};
use super::huge::{self, HugePages};
use super::stream::{self, Op};

/// Why a run did not happen: bad input (exit status 2) or a refusal of the system
/// (exit status 1). Every message is one line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RunError {
    /// The arguments cannot work: a policy that does not apply, a size that does
    /// not fit, an RSet without CPUs.
    #[error("{0}")]
    Usage(String),
    /// The kernel refused something the arguments allow.
    #[error("{0}")]
    System(String),
}

impl From<RegionError> for RunError {
    fn from(e: RegionError) -> RunError {
        match e {
            RegionError::Policy(p) => RunError::Usage(format!("--mem: {p}")),
            e @ (RegionError::ZeroSize { .. }
            | RegionError::TooLarge { .. }
            | RegionError::NodeFull { .. }) => RunError::Usage(format!("--size: {e}")),
            e => RunError::System(e.to_string()),
        }
    }
}

impl From<TeamError> for RunError {
    fn from(e: TeamError) -> RunError {
        match e {
            TeamError::Plan(p) => RunError::Usage(p.to_string()),
            e => RunError::System(e.to_string()),
        }
    }
}

/// The memory side of a run: a policy, or a resource spec whose memory nodes the
/// buffer is bound to. Policies resolve over the whole machine, on the node of the
/// thread that owns the buffer (`local` is that thread's node; `remote` the nearest
/// other).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemSpec {
    /// The text given.
    pub text: String,
    /// The policy it means.
    pub policy: Policy,
}

impl MemSpec {
    /// `float`, `local`, `remote`, `remote:N`, `striped:K`, `bind:LIST`,
    /// `interleave:LIST`, or a resource spec (`mem:2`, `node:1-2`) meaning
    /// `bind` to its memory nodes.
    ///
    /// # Errors
    /// A one-line message naming the text when it is neither.
    pub fn parse(text: &str, topo: &Topology) -> Result<MemSpec, String> {
        let policy = match text.parse::<Policy>() {
            Ok(p) => p,
            Err(policy_error) => match RSet::parse(text, topo) {
                Ok(r) if !r.effective_nodes().is_empty() => Policy::Bind(r.effective_nodes()),
                Ok(_) => {
                    return Err(format!(
                        "--mem `{text}`: the resource set has no memory node"
                    ));
                }
                Err(spec_error) => {
                    return Err(format!(
                        "--mem `{text}` is neither a policy ({policy_error}) nor a resource spec ({spec_error})"
                    ));
                }
            },
        };
        Ok(MemSpec {
            text: text.to_owned(),
            policy,
        })
    }

    /// Truth that the policy spreads pages over nodes in runs that a huge page would
    /// break, or that must be populated when placed (so huge-page advice cannot come
    /// first).
    pub fn spreads_pages(&self) -> bool {
        matches!(self.policy, Policy::Striped { .. } | Policy::Interleave(_))
    }
}

/// Where a thread ran and where its pages were.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Placed {
    /// Thread index.
    pub thread: usize,
    /// Its CPU.
    pub cpu: u32,
    /// Its node.
    pub node: u32,
}

/// Builds a thread's buffer of `words` u64s: placed by the policy on the calling
/// (bound) thread; with huge-page advice, the advice comes first and `init` does
/// the first touch.
fn build_buffer(
    words: usize,
    mem: &MemSpec,
    mem_rset: &RSet,
    huge: HugePages,
    label: &str,
) -> Result<Region<u64>, RunError> {
    let lazy = huge != HugePages::System;
    if lazy && mem.spreads_pages() {
        return Err(RunError::Usage(format!(
            "--huge-pages {huge} needs a policy that keeps the buffer whole (float, local, \
             remote, remote:N, bind:LIST), not `{}`",
            mem.text
        )));
    }
    let mut region = Region::<u64>::builder(words)
        .policy(mem.policy.clone())
        .rset(mem_rset)
        .label(label)
        .populate(!lazy)
        .build()?;
    if lazy {
        huge::advise(&region, huge)
            .map_err(|e| RunError::System(format!("madvise for --huge-pages {huge}: {e}")))?;
        // First touch, under the region's policy.
        region.fill(0);
    }
    Ok(region)
}

fn node_pages(region: &Region<u64>) -> BTreeMap<u32, usize> {
    region
        .pages_per_node()
        .map(|m| m.into_iter().map(|(n, c)| (n.0, c)).collect())
        .unwrap_or_default()
}

/// What a latency point measures.
#[derive(Debug, Clone)]
pub struct LatSpec {
    /// The thread runs on the first CPU of this RSet (Fill placement).
    pub cpus: RSet,
    /// Where the buffer goes.
    pub mem: MemSpec,
    /// The RSet policies resolve over (the whole machine).
    pub mem_rset: RSet,
    /// Huge-page advice for the buffer.
    pub huge: HugePages,
    /// About how long one repetition runs.
    pub target: Duration,
    /// Repetitions (the median is reported).
    pub reps: usize,
}

/// One latency measurement.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LatPoint {
    /// Buffer bytes.
    pub size_bytes: usize,
    /// Where the thread ran.
    pub thread: Placed,
    /// The chase's timings.
    #[serde(flatten)]
    pub sample: ChaseSample,
    /// Pages of the buffer on each node (from `move_pages`).
    pub pages_per_node: BTreeMap<u32, usize>,
    /// Share of the buffer in transparent huge pages.
    pub huge_page_share: Option<f64>,
}

/// Measures load latency over a buffer of `size` bytes.
///
/// # Errors
/// [`RunError`] for an RSet without CPUs, a size below one line, a policy that
/// does not apply, or a refusal of the kernel.
pub fn lat_point(spec: &LatSpec, size: usize) -> Result<LatPoint, RunError> {
    if size < LINE_BYTES {
        return Err(RunError::Usage(format!(
            "--size {size}: the chase needs at least one {LINE_BYTES}-byte cache line"
        )));
    }
    let team = spec
        .cpus
        .team()
        .threads(1)
        .placement(Placement::Fill)
        .build()?;
    let mut out = team.broadcast(|ctx| -> Result<LatPoint, RunError> {
        let mut region = build_buffer(
            size / 8,
            &spec.mem,
            &spec.mem_rset,
            spec.huge,
            "rset-bench lat",
        )?;
        chase::link_random_cycle(&mut region, 0x5EED ^ size as u64);
        let sample = chase::chase_latency(&region, spec.target, spec.reps);
        Ok(LatPoint {
            size_bytes: size,
            thread: Placed {
                thread: ctx.index(),
                cpu: ctx.cpu().0,
                node: ctx.node().0,
            },
            sample,
            pages_per_node: node_pages(&region),
            huge_page_share: huge::huge_share(&region),
        })
    })?;
    out.pop().unwrap_or_else(|| {
        Err(RunError::System(
            "the benchmark thread did not report".into(),
        ))
    })
}

/// What a bandwidth point measures.
#[derive(Debug, Clone)]
pub struct BwSpec {
    /// The threads run on CPUs of this RSet.
    pub cpus: RSet,
    /// How many threads.
    pub threads: usize,
    /// Fill or Round-robin over the RSet's nodes.
    pub placement: Placement,
    /// Where each thread's buffer goes (resolved on that thread).
    pub mem: MemSpec,
    /// The RSet policies resolve over (the whole machine).
    pub mem_rset: RSet,
    /// The kernel.
    pub op: Op,
    /// Working-set bytes of each thread (copy: half source, half destination).
    pub size_per_thread: usize,
    /// Huge-page advice for the buffers.
    pub huge: HugePages,
    /// About how long one repetition runs.
    pub target: Duration,
    /// Repetitions; the first is a warm-up when there are more than one.
    pub reps: usize,
}

/// One bandwidth measurement.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BwPoint {
    /// The kernel.
    pub op: Op,
    /// Threads.
    pub threads: usize,
    /// Working-set bytes per thread.
    pub size_per_thread: usize,
    /// Best repetition (as STREAM reports), 10^9 counted bytes per second.
    pub gb_per_s: f64,
    /// Median repetition, 10^9 bytes per second.
    pub gb_per_s_median: f64,
    /// Counted bytes per repetition, all threads.
    pub bytes_per_rep: u64,
    /// Passes over the buffer per repetition.
    pub passes: u64,
    /// Timed repetitions (after the warm-up).
    pub reps: usize,
    /// Where each thread ran.
    pub plan: Vec<Placed>,
    /// Pages of all buffers on each node.
    pub pages_per_node: BTreeMap<u32, usize>,
}

struct ThreadRun {
    placed: Placed,
    spans: Vec<(f64, f64)>,
    pages: BTreeMap<u32, usize>,
}

/// Measures the bandwidth of `spec.threads` placed threads.
///
/// # Errors
/// [`RunError`] as [`lat_point`], and for 0 threads.
pub fn bw_point(spec: &BwSpec) -> Result<BwPoint, RunError> {
    if spec.size_per_thread < LINE_BYTES {
        return Err(RunError::Usage(format!(
            "--size {}: give each thread at least one {LINE_BYTES}-byte cache line",
            spec.size_per_thread
        )));
    }
    let team = spec
        .cpus
        .team()
        .threads(spec.threads)
        .placement(spec.placement)
        .build()?;
    let epoch = Instant::now();
    let failed = AtomicBool::new(false);
    let first_error: Mutex<Option<RunError>> = Mutex::new(None);
    let slowest_pass = AtomicU64::new(1);
    let reps = spec.reps.max(1) + usize::from(spec.reps > 1);
    let words = spec.size_per_thread / 8;
    let runs = team.broadcast(|ctx| -> Option<ThreadRun> {
        let built = build_buffer(words, &spec.mem, &spec.mem_rset, spec.huge, "rset-bench bw");
        let mut region = match built {
            Ok(r) => Some(r),
            Err(e) => {
                failed.store(true, Ordering::SeqCst);
                first_error
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get_or_insert(e);
                None
            }
        };
        // Every thread reaches every barrier, failed or not.
        ctx.barrier();
        let mut region = region.take().filter(|_| !failed.load(Ordering::SeqCst))?;
        let t = Instant::now();
        std::hint::black_box(stream::run_pass(spec.op, &mut region, 0));
        slowest_pass.fetch_max(t.elapsed().as_nanos() as u64, Ordering::SeqCst);
        ctx.barrier();
        let pass_ns = slowest_pass.load(Ordering::SeqCst).max(1);
        let passes = (spec.target.as_nanos() as u64 / pass_ns).clamp(1, 1 << 20);
        let mut spans = Vec::with_capacity(reps);
        for rep in 0..reps {
            ctx.barrier();
            let start = epoch.elapsed().as_secs_f64();
            for p in 0..passes {
                std::hint::black_box(stream::run_pass(
                    spec.op,
                    &mut region,
                    rep as u64 * passes + p,
                ));
            }
            spans.push((start, epoch.elapsed().as_secs_f64()));
        }
        let pages = node_pages(&region);
        Some(ThreadRun {
            placed: Placed {
                thread: ctx.index(),
                cpu: ctx.cpu().0,
                node: ctx.node().0,
            },
            spans,
            pages,
        })
    })?;
    if let Some(e) = first_error.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(e);
    }
    let runs: Vec<ThreadRun> = runs.into_iter().flatten().collect();
    let passes = (spec.target.as_nanos() as u64 / slowest_pass.load(Ordering::SeqCst).max(1))
        .clamp(1, 1 << 20);
    let bytes_per_rep = spec.op.counted_bytes(spec.size_per_thread) * passes * runs.len() as u64;
    let skip = usize::from(reps > 1);
    let mut rates: Vec<f64> = (skip..reps)
        .map(|r| {
            let start = runs
                .iter()
                .map(|t| t.spans[r].0)
                .fold(f64::INFINITY, f64::min);
            let end = runs.iter().map(|t| t.spans[r].1).fold(0.0, f64::max);
            bytes_per_rep as f64 / (end - start).max(1e-9) / 1e9
        })
        .collect();
    rates.sort_by(f64::total_cmp);
    let mut pages_per_node = BTreeMap::new();
    for t in &runs {
        for (&n, &c) in &t.pages {
            *pages_per_node.entry(n).or_insert(0) += c;
        }
    }
    Ok(BwPoint {
        op: spec.op,
        threads: runs.len(),
        size_per_thread: spec.size_per_thread,
        gb_per_s: rates.last().copied().unwrap_or(0.0),
        gb_per_s_median: rates.get(rates.len() / 2).copied().unwrap_or(0.0),
        bytes_per_rep,
        passes,
        reps: rates.len(),
        plan: runs.iter().map(|t| t.placed.clone()).collect(),
        pages_per_node,
    })
}

/// The nodes of a node-pair matrix: CPU nodes (rows) and memory nodes (columns).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MatrixNodes {
    /// Nodes with CPUs, where the threads run.
    pub cpu_nodes: Vec<u32>,
    /// Nodes with memory (CPU-less ones included), where the buffers go.
    pub mem_nodes: Vec<u32>,
}

impl MatrixNodes {
    /// The rows and columns for `topo`.
    pub fn of(topo: &Topology) -> MatrixNodes {
        MatrixNodes {
            cpu_nodes: topo
                .nodes()
                .iter()
                .filter(|n| !n.cpu_less)
                .map(|n| n.id.0)
                .collect(),
            mem_nodes: topo.nodes().iter().map(|n| n.id.0).collect(),
        }
    }
}

/// One cell of a matrix.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cell {
    /// Where the threads ran.
    pub cpu_node: u32,
    /// Where the memory was.
    pub mem_node: u32,
    /// ns per load (latency) or GB/s (bandwidth).
    pub value: f64,
    /// Latency: this cell over the row's local cell (remote / local, Fig. 5).
    /// Bandwidth: this cell over the row's local cell (normalised to local, Fig. 7).
    /// `None` when the row has no local cell.
    pub ratio: Option<f64>,
    /// Pages of the buffer(s) on each node, as measured.
    pub pages_per_node: BTreeMap<u32, usize>,
}

/// Fills in each cell's ratio to the local cell of its row (`cpu_node == mem_node`).
pub fn set_ratios(cells: &mut [Cell]) {
    let local: BTreeMap<u32, f64> = cells
        .iter()
        .filter(|c| c.cpu_node == c.mem_node)
        .map(|c| (c.cpu_node, c.value))
        .collect();
    for c in cells {
        c.ratio = local
            .get(&c.cpu_node)
            .filter(|&&l| l > 0.0)
            .map(|l| c.value / l);
    }
}

/// The policy that puts a buffer on `node` only.
pub fn bind_to(node: u32) -> MemSpec {
    MemSpec {
        text: format!("bind:{node}"),
        policy: Policy::Bind([NodeId(node)].into_iter().collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(c: u32, m: u32, v: f64) -> Cell {
        Cell {
            cpu_node: c,
            mem_node: m,
            value: v,
            ratio: None,
            pages_per_node: BTreeMap::new(),
        }
    }

    #[test]
    fn ratios_are_to_the_local_cell_of_each_row() {
        let mut cells = vec![
            cell(0, 0, 100.0),
            cell(0, 1, 210.0),
            cell(1, 0, 190.0),
            cell(1, 1, 95.0),
            cell(1, 2, 300.0),
        ];
        set_ratios(&mut cells);
        let r: Vec<f64> = cells.iter().map(|c| c.ratio.unwrap()).collect();
        assert_eq!(r[0], 1.0);
        assert!((r[1] - 2.1).abs() < 1e-9);
        assert!((r[2] - 2.0).abs() < 1e-9);
        assert_eq!(r[3], 1.0);
        assert!((r[4] - 300.0 / 95.0).abs() < 1e-9);
    }

    #[test]
    fn matrix_nodes_leave_cpu_less_nodes_out_of_the_rows() {
        let topo = Topology::from_source("synthetic:pack:2 numa:2 core:2 pu:1").unwrap();
        let m = MatrixNodes::of(&topo);
        assert_eq!(m.cpu_nodes, vec![0, 1, 2, 3]);
        assert_eq!(m.mem_nodes, vec![0, 1, 2, 3]);
    }

    #[test]
    fn mem_takes_policies_and_specs_and_names_bad_text() {
        let topo = Topology::from_source("synthetic:pack:2 numa:2 core:2 pu:1").unwrap();
        assert_eq!(
            MemSpec::parse("striped:4", &topo)
                .unwrap()
                .policy
                .to_string(),
            "striped:4"
        );
        assert_eq!(
            MemSpec::parse("mem:2-3", &topo).unwrap().policy.to_string(),
            "bind:2-3"
        );
        let e = MemSpec::parse("nowhere", &topo).unwrap_err();
        assert!(e.starts_with("--mem `nowhere`"), "{e}");
    }
}
