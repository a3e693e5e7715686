//! `rset-bench bw`: bandwidth of placed threads, or its scaling curve (Fig. 6).

use clap::Args;
use rset::Placement;
use serde::Serialize;

use super::setup::{Common, Setup, drawn, pages, progress, usage};
use crate::bench::run::{self, BwPoint, BwSpec};
use crate::bench::{HugePages, Machine, Op, format_size, plot};
use crate::cli::{Failure, emit, json};

#[derive(Args)]
pub(super) struct BwArgs {
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

/// `rset-bench bw`.
pub(super) fn bw(args: &BwArgs) -> Result<(), Failure> {
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
