//! `rset show`: the NUMA nodes, their CPUs, memory and distances.

use clap::Args;

use super::source::TopologyArg;
use crate::cli::{Failure, emit, json};

#[derive(Args)]
pub(super) struct ShowArgs {
    #[command(flatten)]
    topology: TopologyArg,
    /// Print JSON: {"nodes":[{"id","cpus","memory_bytes","distances","cpu_less"}], ...}.
    #[arg(long)]
    json: bool,
}

fn mib(bytes: u64) -> String {
    format!("{:.0} MiB", bytes as f64 / (1024.0 * 1024.0))
}

pub(super) fn show(args: &ShowArgs) -> Result<(), Failure> {
    let topo = args.topology.load()?;
    if args.json {
        return json(&topo);
    }
    let nodes = topo.nodes();
    let mut out = format!(
        "{}: {} node{}, {} CPUs, {} package{}, {} cores\n",
        topo.source(),
        nodes.len(),
        if nodes.len() == 1 { "" } else { "s" },
        topo.pus().len(),
        topo.packages().len(),
        if topo.packages().len() == 1 { "" } else { "s" },
        topo.cores().len(),
    );
    let width = nodes
        .iter()
        .map(|n| n.cpus.to_string().len())
        .max()
        .unwrap_or(0)
        .max(4);
    out += &format!("node  {:<width$}  {:>10}  distances\n", "cpus", "memory");
    for n in nodes {
        let cpus = if n.cpu_less {
            "-".to_owned()
        } else {
            n.cpus.to_string()
        };
        let d: Vec<String> = n.distances.iter().map(u64::to_string).collect();
        out += &format!(
            "{:>4}  {cpus:<width$}  {:>10}  {}{}\n",
            n.id,
            mib(n.memory_bytes),
            d.join(" "),
            if n.cpu_less {
                "  (no CPUs: memory only)"
            } else {
                ""
            }
        );
    }
    if topo.distances_assumed() {
        out += "distances assumed (10 local, 20 remote): the source gives none\n";
    }
    emit(&out)
}
