//! `rset-bench matrix`: every (CPU node, memory node) pair, latency or bandwidth
//! and the ratio to local (Fig. 5, Fig. 7).

use clap::Args;
use rset::Placement;
use serde::Serialize;

use super::setup::{Common, Setup, drawn, progress, usage};
use crate::bench::run::{self, BwSpec, Cell, LatSpec, MatrixNodes};
use crate::bench::{Machine, Op, format_size, plot};
use crate::cli::{Failure, emit, json};

#[derive(Args)]
pub(super) struct MatrixArgs {
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

/// `rset-bench matrix`.
pub(super) fn matrix(args: &MatrixArgs) -> Result<(), Failure> {
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
