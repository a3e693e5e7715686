//! `rset-bench`: memory latency and bandwidth on placed threads and placed memory,
//! the synthetic tests of the IBM ccNUMA paper (Fig. 5-7). The kernels live in
//! `rset_tools::bench`; this file parses, runs and prints.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use rset::{Placement, RSet, Topology};
use rset_tools::bench::cache::{self, Cache};
use rset_tools::bench::run::{
    self, BwPoint, BwSpec, Cell, LatPoint, LatSpec, MatrixNodes, MemSpec,
};
use rset_tools::bench::{HugePages, Machine, Op, format_size, parse_size, plot};
use rset_tools::cli::{Failure, emit, json};
use serde::Serialize;

const EXAMPLES: &str = "\
EXAMPLES:
  rset-bench lat                                  ns per load, local memory, one size
  rset-bench lat --sweep --plot lat.svg           4 KiB to past the last-level cache: the cache steps
  rset-bench lat --size 256M --huge-pages on      the same with 2 MiB pages: less TLB cost
  rset-bench lat --cpus node:0 --mem remote       Fig. 5: remote memory, nearest other node
  rset-bench bw --op copy --threads 2             GB/s, counted as STREAM / likwid-bench do
  rset-bench bw --op read --cpus node:0 --sweep-threads --plot fig6.svg
  rset-bench bw --op copy --mem striped:4 --placement round-robin --threads 8
  rset-bench matrix lat --json                    every (CPU node, memory node) pair
  rset-bench matrix bw --op read --plot fig7.svg  Fig. 7: bandwidth normalised to local

SPECS AND POLICIES:
  --cpus takes an rset spec (`rset --help`): all, node:LIST, cpu:LIST, with + & -.
  --mem takes a policy (float, local, remote, remote:N, striped:K, bind:LIST,
  interleave:LIST), resolved on the thread that owns the buffer, or a spec whose
  memory nodes the buffer is bound to (mem:2, node:1-2).

COUNTING: read counts bytes read, write bytes written, copy bytes read + bytes
written (as STREAM and likwid-bench); --size is each thread's working set (copy:
half source, half destination). Bandwidth is the best repetition after a warm-up.

In a virtual machine timings are indicative only; in an emulator (QEMU without
KVM) they are not meaningful, and every report says so.

EXIT STATUS: 0 on success, 2 for bad arguments, 1 when the system refuses.";

/// Memory latency and bandwidth of placed threads and placed memory.
///
/// Threads run on CPUs of a resource set; each buffer is placed by a memory policy
/// and checked page by page. Every command prints a table, or JSON with --json.
#[derive(Parser)]
#[command(name = "rset-bench", version, after_help = EXAMPLES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Load latency: a dependent pointer chase over a random cycle of cache lines.
    Lat(LatArgs),
    /// Bandwidth of placed threads: read, write or copy, in GB/s.
    Bw(BwArgs),
    /// Every (CPU node, memory node) pair: latency or bandwidth and the ratio to local.
    Matrix(MatrixArgs),
}

#[derive(Args, Clone)]
struct Common {
    /// Repetitions per measurement (default 5 for lat, 10 for bw; 3 when emulated).
    #[arg(long, value_name = "N")]
    reps: Option<usize>,
    /// Milliseconds per repetition (default 100; 10 when emulated).
    #[arg(long, value_name = "MS")]
    time_ms: Option<u64>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Draw the sweep or the matrix into this SVG file.
    #[arg(long, value_name = "FILE.svg")]
    plot: Option<PathBuf>,
    /// Transparent huge pages for the buffers: on (MADV_HUGEPAGE), off, or system.
    #[arg(long, value_name = "on|off|system", default_value = "system")]
    huge_pages: String,
}

#[derive(Args)]
struct LatArgs {
    /// The CPUs: the thread runs on the first CPU of this spec.
    #[arg(long, value_name = "SPEC", default_value = "all")]
    cpus: String,
    /// Where the buffer goes: a policy or a spec (see below).
    #[arg(long, value_name = "POLICY|SPEC", default_value = "local")]
    mem: String,
    /// Buffer size, e.g. 256M (default 256 MiB; 16 MiB when emulated).
    #[arg(long, value_name = "BYTES", conflicts_with = "sweep")]
    size: Option<String>,
    /// Sizes from 4 KiB to well past the last-level cache.
    #[arg(long)]
    sweep: bool,
    #[command(flatten)]
    common: Common,
}

#[derive(Args)]
struct BwArgs {
    /// read, write or copy.
    #[arg(long, value_name = "OP", default_value = "copy")]
    op: String,
    /// The CPUs the threads are placed on.
    #[arg(long, value_name = "SPEC", default_value = "all")]
    cpus: String,
    /// Threads (default: one per CPU of --cpus); the largest count with --sweep-threads.
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
    /// fill (a node's CPUs first) or round-robin (thread i on node i mod N).
    #[arg(long, value_name = "POLICY", default_value = "fill")]
    placement: String,
    /// Where each thread's buffer goes: a policy or a spec (see below).
    #[arg(long, value_name = "POLICY|SPEC", default_value = "local")]
    mem: String,
    /// Working set of each thread (default 256 MiB; 8 MiB when emulated).
    #[arg(long, value_name = "BYTES")]
    size: Option<String>,
    /// 1, 2, ... --threads threads: the scaling curve of Fig. 6.
    #[arg(long)]
    sweep_threads: bool,
    #[command(flatten)]
    common: Common,
}

#[derive(Args)]
struct MatrixArgs {
    /// lat or bw.
    #[arg(value_name = "lat|bw")]
    what: String,
    /// For bw: read, write or copy.
    #[arg(long, value_name = "OP", default_value = "read")]
    op: String,
    /// For bw: threads per CPU node (default: all its CPUs).
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
    /// Buffer size (lat) or working set per thread (bw); default 256 MiB, 8 MiB
    /// (lat) or 4 MiB (bw) when emulated.
    #[arg(long, value_name = "BYTES")]
    size: Option<String>,
    #[command(flatten)]
    common: Common,
}

fn usage(message: impl ToString) -> Failure {
    Failure::usage(message)
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(
                e.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) {
                e.exit();
            }
            let text = e.to_string();
            let line = text.lines().next().unwrap_or("bad arguments");
            eprintln!(
                "rset-bench: {} (see --help)",
                line.trim_start_matches("error: ")
            );
            return ExitCode::from(2);
        }
    };
    let result = match cli.command {
        Command::Lat(a) => lat(&a),
        Command::Bw(a) => bw(&a),
        Command::Matrix(a) => matrix(&a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("rset-bench: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}

/// What every command needs: the machine, its topology, the timing settings.
struct Setup {
    machine: Machine,
    topo: Topology,
    huge: HugePages,
    target: Duration,
    reps: usize,
}

impl Setup {
    fn new(common: &Common, default_reps: usize) -> Result<Setup, Failure> {
        // Cheap checks first, then discovery.
        let huge: HugePages = common
            .huge_pages
            .parse()
            .map_err(|e| usage(format!("--huge-pages: {e}")))?;
        if common.reps == Some(0) {
            return Err(usage("--reps 0: give at least 1 repetition"));
        }
        if common.time_ms == Some(0) {
            return Err(usage(
                "--time-ms 0: give at least 1 millisecond per repetition",
            ));
        }
        if let Some(p) = &common.plot {
            if p.extension().and_then(|e| e.to_str()) != Some("svg") {
                return Err(usage(format!(
                    "--plot {}: the plot is SVG, name it FILE.svg",
                    p.display()
                )));
            }
        }
        let machine = Machine::detect();
        let emulated = machine.is_emulated();
        let topo = Topology::from_system().map_err(|e| Failure {
            message: format!("reading the topology: {e}"),
            code: 1,
        })?;
        Ok(Setup {
            huge,
            target: Duration::from_millis(common.time_ms.unwrap_or(if emulated {
                10
            } else {
                100
            })),
            reps: common
                .reps
                .unwrap_or(if emulated { 3 } else { default_reps }),
            machine,
            topo,
        })
    }

    fn emulated(&self) -> bool {
        self.machine.is_emulated()
    }

    /// An RSet for the thread side: it must have CPUs.
    fn cpus(&self, spec: &str) -> Result<RSet, Failure> {
        let r =
            RSet::parse(spec, &self.topo).map_err(|e| usage(format!("--cpus `{spec}`: {e}")))?;
        if r.cpus().is_empty() {
            return Err(usage(format!(
                "--cpus `{spec}`: the resource set has no CPUs to run the benchmark threads on \
                 (memory-only nodes and mem: terms give none)"
            )));
        }
        Ok(r)
    }

    fn mem(&self, text: &str) -> Result<MemSpec, Failure> {
        MemSpec::parse(text, &self.topo).map_err(usage)
    }

    fn size(&self, text: Option<&str>, host: usize, emulated: usize) -> Result<usize, Failure> {
        match text {
            Some(t) => parse_size(t).map_err(|e| usage(format!("--size: {e}"))),
            None => Ok(if self.emulated() { emulated } else { host }),
        }
    }

    fn header(&self) -> String {
        self.machine.notice().map_or_else(String::new, |n| n + "\n")
    }
}

fn progress(len: usize, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len as u64);
    if let Ok(style) = ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} {elapsed}") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what.to_owned());
    bar
}

fn drawn(result: Result<(), String>) -> Result<(), Failure> {
    result.map_err(|message| Failure { message, code: 1 })
}

fn pages(map: &std::collections::BTreeMap<u32, usize>) -> String {
    let total: usize = map.values().sum();
    if total == 0 {
        return "-".into();
    }
    map.iter()
        .map(|(n, c)| format!("{n}:{:.0}%", 100.0 * *c as f64 / total as f64))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Sweep sizes: powers of two and the halves between them (x1.5), from 4 KiB to
/// `max`.
fn sweep_sizes(max: usize) -> Vec<usize> {
    let mut sizes = Vec::new();
    let mut s = 4096usize;
    while s <= max {
        sizes.push(s);
        if s + s / 2 <= max {
            sizes.push(s + s / 2);
        }
        s *= 2;
    }
    sizes
}

#[derive(Serialize)]
struct LatJson<'a> {
    command: &'static str,
    machine: &'a Machine,
    notice: Option<String>,
    cpus: &'a str,
    mem: &'a str,
    huge_pages: HugePages,
    caches: &'a [Cache],
    points: Vec<LatJsonPoint<'a>>,
}

#[derive(Serialize)]
struct LatJsonPoint<'a> {
    fits_in: String,
    #[serde(flatten)]
    point: &'a LatPoint,
}

fn lat(args: &LatArgs) -> Result<(), Failure> {
    let setup = Setup::new(&args.common, 5)?;
    if args.common.plot.is_some() && !args.sweep {
        return Err(usage("--plot draws sweeps: add --sweep (or use `matrix`)"));
    }
    let cpus = setup.cpus(&args.cpus)?;
    let mem = setup.mem(&args.mem)?;
    let first_cpu = cpus.cpus().first().map_or(0, |c| c.0);
    let caches = cache::caches_of(first_cpu);
    let sizes = if args.sweep {
        let llc = caches.last().map_or(32 << 20, |c| c.size_bytes);
        let max = if setup.emulated() {
            16 << 20
        } else {
            (llc * 8).max(64 << 20)
        };
        sweep_sizes(max)
    } else {
        vec![setup.size(args.size.as_deref(), 256 << 20, 16 << 20)?]
    };
    let spec = LatSpec {
        cpus,
        mem: mem.clone(),
        mem_rset: setup.topo.global_rset(),
        huge: setup.huge,
        target: setup.target,
        reps: setup.reps,
    };
    let bar = progress(sizes.len(), "lat");
    let mut points = Vec::new();
    for &size in &sizes {
        bar.set_message(format!("lat {}", format_size(size)));
        points.push(run::lat_point(&spec, size)?);
        bar.inc(1);
    }
    bar.finish_and_clear();
    if let Some(path) = &args.common.plot {
        let data: Vec<(usize, f64)> = points
            .iter()
            .map(|p| (p.size_bytes, p.sample.ns_per_load))
            .collect();
        let title = format!(
            "load latency, CPU {} ({}), memory {}",
            points[0].thread.cpu, args.cpus, args.mem
        );
        drawn(plot::latency_sweep(path, &title, &data, &caches))?;
    }
    if args.common.json {
        return json(&LatJson {
            command: "lat",
            machine: &setup.machine,
            notice: setup.machine.notice(),
            cpus: &args.cpus,
            mem: &mem.text,
            huge_pages: setup.huge,
            caches: &caches,
            points: points
                .iter()
                .map(|p| LatJsonPoint {
                    fits_in: cache::fits_in(&caches, p.size_bytes),
                    point: p,
                })
                .collect(),
        });
    }
    let t = &points[0].thread;
    let mut out = setup.header();
    out += &format!(
        "lat: CPU {} (node {}), memory {}, huge pages {}\n",
        t.cpu, t.node, mem.text, setup.huge
    );
    out += &format!(
        "{:>10}  {:<7}  {:>8}  {:>8}  {:>6}  pages on nodes\n",
        "size", "fits in", "ns/load", "min", "huge"
    );
    for p in &points {
        out += &format!(
            "{:>10}  {:<7}  {:>8.2}  {:>8.2}  {:>6}  {}\n",
            format_size(p.size_bytes),
            cache::fits_in(&caches, p.size_bytes),
            p.sample.ns_per_load,
            p.sample.ns_min,
            p.huge_page_share
                .map_or("-".into(), |h| format!("{:.0}%", h * 100.0)),
            pages(&p.pages_per_node)
        );
    }
    emit(&out)
}

#[derive(Serialize)]
struct BwJson<'a> {
    command: &'static str,
    machine: &'a Machine,
    notice: Option<String>,
    op: Op,
    cpus: &'a str,
    placement: Placement,
    mem: &'a str,
    huge_pages: HugePages,
    points: Vec<BwJsonPoint<'a>>,
}

#[derive(Serialize)]
struct BwJsonPoint<'a> {
    /// GB/s over the one-thread GB/s (Fig. 6).
    speedup: f64,
    #[serde(flatten)]
    point: &'a BwPoint,
}

fn bw(args: &BwArgs) -> Result<(), Failure> {
    let setup = Setup::new(&args.common, 10)?;
    let op: Op = args.op.parse().map_err(|e| usage(format!("--op: {e}")))?;
    let placement: Placement = args
        .placement
        .parse()
        .map_err(|e| usage(format!("--placement `{}`: {e}", args.placement)))?;
    if args.threads == Some(0) {
        return Err(usage("--threads 0: give at least 1 thread"));
    }
    if args.common.plot.is_some() && !args.sweep_threads {
        return Err(usage(
            "--plot draws sweeps: add --sweep-threads (or use `matrix`)",
        ));
    }
    let cpus = setup.cpus(&args.cpus)?;
    let mem = setup.mem(&args.mem)?;
    let size = setup.size(args.size.as_deref(), 256 << 20, 8 << 20)?;
    let max_threads = args.threads.unwrap_or(cpus.cpus().len());
    let counts: Vec<usize> = if args.sweep_threads {
        (1..=max_threads).collect()
    } else {
        vec![max_threads]
    };
    let bar = progress(counts.len(), "bw");
    let mut points = Vec::new();
    for &threads in &counts {
        bar.set_message(format!("bw {op} {threads} threads"));
        points.push(run::bw_point(&BwSpec {
            cpus: cpus.clone(),
            threads,
            placement,
            mem: mem.clone(),
            mem_rset: setup.topo.global_rset(),
            op,
            size_per_thread: size,
            huge: setup.huge,
            target: setup.target,
            reps: setup.reps,
        })?);
        bar.inc(1);
    }
    bar.finish_and_clear();
    let base = points[0].gb_per_s.max(1e-12);
    if let Some(path) = &args.common.plot {
        let data: Vec<(usize, f64)> = points.iter().map(|p| (p.threads, p.gb_per_s)).collect();
        let title = format!(
            "{op} bandwidth, {placement} over {}, memory {}",
            args.cpus, args.mem
        );
        drawn(plot::bandwidth_sweep(path, &title, &data))?;
    }
    if args.common.json {
        return json(&BwJson {
            command: "bw",
            machine: &setup.machine,
            notice: setup.machine.notice(),
            op,
            cpus: &args.cpus,
            placement,
            mem: &mem.text,
            huge_pages: setup.huge,
            points: points
                .iter()
                .map(|p| BwJsonPoint {
                    speedup: p.gb_per_s / base,
                    point: p,
                })
                .collect(),
        });
    }
    let mut out = setup.header();
    out += &format!(
        "bw {op}: {placement} over `{}`, memory {}, {} per thread, counted as STREAM \
         (copy = read + written)\n",
        args.cpus,
        mem.text,
        format_size(size)
    );
    out += &format!(
        "{:>7}  {:>11}  {:>13}  {:>7}  {:<12}  pages on nodes\n",
        "threads", "GB/s (best)", "GB/s (median)", "speedup", "cpus"
    );
    for p in &points {
        let cpus: Vec<String> = p.plan.iter().map(|t| t.cpu.to_string()).collect();
        out += &format!(
            "{:>7}  {:>11.2}  {:>13.2}  {:>7.2}  {:<12}  {}\n",
            p.threads,
            p.gb_per_s,
            p.gb_per_s_median,
            p.gb_per_s / base,
            cpus.join(","),
            pages(&p.pages_per_node)
        );
    }
    emit(&out)
}

#[derive(Serialize)]
struct MatrixJson<'a> {
    command: &'static str,
    kind: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    op: Option<Op>,
    unit: &'a str,
    ratio: &'a str,
    machine: &'a Machine,
    notice: Option<String>,
    size_bytes: usize,
    #[serde(flatten)]
    nodes: &'a MatrixNodes,
    pairs: &'a [Cell],
}

fn matrix(args: &MatrixArgs) -> Result<(), Failure> {
    let is_lat = match args.what.as_str() {
        "lat" => true,
        "bw" => false,
        other => {
            return Err(usage(format!(
                "unknown matrix `{other}` (expected lat or bw)"
            )));
        }
    };
    let setup = Setup::new(&args.common, if is_lat { 5 } else { 10 })?;
    let op: Op = args.op.parse().map_err(|e| usage(format!("--op: {e}")))?;
    if args.threads == Some(0) {
        return Err(usage("--threads 0: give at least 1 thread"));
    }
    let size = setup.size(
        args.size.as_deref(),
        256 << 20,
        if is_lat { 8 << 20 } else { 4 << 20 },
    )?;
    let nodes = MatrixNodes::of(&setup.topo);
    if nodes.cpu_nodes.is_empty() {
        return Err(usage("this machine has no node with CPUs"));
    }
    let global = setup.topo.global_rset();
    let bar = progress(nodes.cpu_nodes.len() * nodes.mem_nodes.len(), "matrix");
    let mut cells = Vec::new();
    for &c in &nodes.cpu_nodes {
        let cpus = setup.cpus(&format!("node:{c}"))?;
        for &m in &nodes.mem_nodes {
            bar.set_message(format!("matrix {} cpu node {c}, mem node {m}", args.what));
            let mem = run::bind_to(m);
            let (value, pages_per_node) = if is_lat {
                let p = run::lat_point(
                    &LatSpec {
                        cpus: cpus.clone(),
                        mem,
                        mem_rset: global.clone(),
                        huge: setup.huge,
                        target: setup.target,
                        reps: setup.reps,
                    },
                    size,
                )?;
                (p.sample.ns_per_load, p.pages_per_node)
            } else {
                let p = run::bw_point(&BwSpec {
                    threads: args.threads.unwrap_or(cpus.cpus().len()),
                    cpus: cpus.clone(),
                    placement: Placement::Fill,
                    mem,
                    mem_rset: global.clone(),
                    op,
                    size_per_thread: size,
                    huge: setup.huge,
                    target: setup.target,
                    reps: setup.reps,
                })?;
                (p.gb_per_s, p.pages_per_node)
            };
            cells.push(Cell {
                cpu_node: c,
                mem_node: m,
                value,
                ratio: None,
                pages_per_node,
            });
            bar.inc(1);
        }
    }
    bar.finish_and_clear();
    run::set_ratios(&mut cells);
    let unit = if is_lat { "ns" } else { "GB/s" };
    let ratio = if is_lat {
        "latency over the local latency of the row (Fig. 5)"
    } else {
        "bandwidth over the local bandwidth of the row (Fig. 7)"
    };
    if let Some(path) = &args.common.plot {
        let title = if is_lat {
            "load latency by CPU node and memory node (ratio to local)".to_owned()
        } else {
            format!("{op} bandwidth by CPU node and memory node (ratio to local)")
        };
        drawn(plot::matrix(path, &title, &nodes, &cells, unit, is_lat))?;
    }
    if args.common.json {
        return json(&MatrixJson {
            command: "matrix",
            kind: &args.what,
            op: (!is_lat).then_some(op),
            unit,
            ratio,
            machine: &setup.machine,
            notice: setup.machine.notice(),
            size_bytes: size,
            nodes: &nodes,
            pairs: &cells,
        });
    }
    let mut out = setup.header();
    out += &if is_lat {
        format!(
            "matrix lat: ns per load, {} buffer; (ratio) = {ratio}\n",
            format_size(size)
        )
    } else {
        format!(
            "matrix bw {op}: GB/s, {} per thread, all CPUs of the node unless --threads; \
             (ratio) = {ratio}\n",
            format_size(size)
        )
    };
    out += &format!("{:<10}", "cpu \\ mem");
    for m in &nodes.mem_nodes {
        out += &format!("  {:>16}", format!("node {m}"));
    }
    out += "\n";
    for &c in &nodes.cpu_nodes {
        out += &format!("{:<10}", format!("node {c}"));
        for &m in &nodes.mem_nodes {
            let cell = cells.iter().find(|x| x.cpu_node == c && x.mem_node == m);
            let text = cell.map_or("-".to_owned(), |x| {
                format!(
                    "{:.2} ({})",
                    x.value,
                    x.ratio.map_or("-".into(), |r| format!("x{r:.2}"))
                )
            });
            out += &format!("  {text:>16}");
        }
        out += "\n";
    }
    emit(&out)
}
