//! `rset-bench lat`: load latency of one placed thread over one size or a sweep
//! of sizes.

use clap::Args;
use serde::Serialize;

use super::setup::{Common, Setup, drawn, pages, progress, usage};
use crate::bench::cache::{self, Cache};
use crate::bench::run::{self, LatPoint, LatSpec};
use crate::bench::{HugePages, Machine, format_size, plot};
use crate::cli::{Failure, emit, json};

#[derive(Args)]
pub(super) struct LatArgs {
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

/// `rset-bench lat`.
pub(super) fn lat(args: &LatArgs) -> Result<(), Failure> {
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
