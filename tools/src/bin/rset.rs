//! `rset`: the machine's NUMA topology, resource-set specs, thread plans and binding.

use std::ffi::OsString;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use rset::{Placement, Plan, RSet, Topology};
use rset_tools::cli::{Failure, emit, json};
use serde::Serialize;

const GRAMMAR: &str = "\
RESOURCE SPECS (shared by every rset tool):
  all            every CPU and every memory node
  node:LIST      the CPUs and the memory of those nodes
  cpu:LIST       those CPUs (memory: the nodes of those CPUs, unless a mem: term adds some)
  mem:LIST       only the memory of those nodes (threads may run on any CPU)
  LIST           numactl form: 0-3,5
  A + B          union          A & B    intersection          A - B    difference
  Operators apply strictly left to right; parentheses group: (node:0+node:1)&cpu:0-2
  A `-` right after a complete term is the difference: node:0-3-node:1 is nodes 0-3
  less node 1. Whitespace is ignored. Quote specs in the shell.

EXAMPLES:
  rset show                                   nodes, CPUs, memory, distances
  rset show --topology 'synthetic:pack:2 numa:2 core:4 pu:2' --json
  rset calc 'node:0-1' --threads 6 --placement round-robin
  rset calc 'all - node:0' --json
  rset bind 'node:1' -- ./my-program --flag   run it on node 1's CPUs and memory

EXIT STATUS: 0 on success, 2 for a bad spec or bad arguments, 1 when binding fails,
127 when the program to run is not found.";

/// Resource sets (CPUs + memory nodes) for NUMA machines.
///
/// A resource set (RSet) is a set of CPUs plus a set of memory nodes: a thread bound
/// to one runs only on its CPUs and allocates only from its nodes.
#[derive(Parser)]
#[command(name = "rset", version, after_long_help = GRAMMAR, after_help = "See `rset --help` for the spec grammar.")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show the NUMA nodes: their CPUs, memory and distances; CPU-less nodes.
    Show(ShowArgs),
    /// Resolve a spec to CPUs and nodes and, with --threads, plan thread placement.
    Calc(CalcArgs),
    /// Run a program bound to an RSet (CPU affinity + strict memory binding).
    Bind(BindArgs),
}

#[derive(Args)]
struct TopologyArg {
    /// Plan for another machine: `synthetic:DESC` (hwloc synthetic, e.g.
    /// `synthetic:pack:2 numa:2 core:4 pu:2`) or `xml:FILE` (from `lstopo foo.xml`).
    #[arg(long, value_name = "SOURCE", default_value = "system")]
    topology: String,
}

#[derive(Args)]
struct ShowArgs {
    #[command(flatten)]
    topology: TopologyArg,
    /// Print JSON: {"nodes":[{"id","cpus","memory_bytes","distances","cpu_less"}], ...}.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct CalcArgs {
    /// The resource spec (see the grammar in `rset --help`).
    spec: String,
    #[command(flatten)]
    topology: TopologyArg,
    /// Plan this many threads over the RSet.
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
    /// `fill` (a node's CPUs before the next node) or `round-robin` (thread i on node
    /// i mod N).
    #[arg(long, default_value = "fill", value_name = "POLICY")]
    placement: Placement,
    /// Print JSON: {"cpus":[..],"nodes":[..],"plan":[{"thread","cpu","node"}]}.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct BindArgs {
    /// The resource spec (see the grammar in `rset --help`).
    spec: String,
    /// The program and its arguments, after `--`.
    #[arg(last = true, required = true, value_name = "PROGRAM")]
    program: Vec<OsString>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Show(a) => show(&a),
        Command::Calc(a) => calc(&a),
        Command::Bind(a) => bind(&a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => f.report("rset"),
    }
}

fn load(source: &TopologyArg) -> Result<Topology, Failure> {
    Topology::from_source(&source.topology).map_err(Failure::usage)
}

fn mib(bytes: u64) -> String {
    format!("{:.0} MiB", bytes as f64 / (1024.0 * 1024.0))
}

fn show(args: &ShowArgs) -> Result<(), Failure> {
    let topo = load(&args.topology)?;
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

#[derive(Serialize)]
struct CalcJson<'a> {
    spec: &'a str,
    cpus: Vec<u32>,
    nodes: Vec<u32>,
    /// Where threads of this RSet allocate: its nodes, or its CPUs' nodes.
    effective_nodes: Vec<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    placement: Option<Placement>,
    #[serde(skip_serializing_if = "Option::is_none")]
    plan: Option<&'a Plan>,
}

fn calc(args: &CalcArgs) -> Result<(), Failure> {
    let topo = load(&args.topology)?;
    let rset = RSet::parse(&args.spec, &topo).map_err(Failure::usage)?;
    let plan = match args.threads {
        Some(n) => Some(rset::plan(&rset, args.placement, n).map_err(Failure::usage)?),
        None => None,
    };
    if args.json {
        return json(&CalcJson {
            spec: &args.spec,
            cpus: rset.cpus().iter().map(|c| c.0).collect(),
            nodes: rset.nodes().iter().map(|n| n.0).collect(),
            effective_nodes: rset.effective_nodes().iter().map(|n| n.0).collect(),
            placement: plan.as_ref().map(|_| args.placement),
            plan: plan.as_ref(),
        });
    }
    let none = |s: String| if s.is_empty() { "none".to_owned() } else { s };
    let mut out = format!(
        "cpus   {}\nnodes  {}\n",
        none(rset.cpus().to_string()),
        none(rset.nodes().to_string())
    );
    if rset.nodes().is_empty() {
        out += &format!(
            "memory from the nodes of its CPUs: {}\n",
            none(rset.effective_nodes().to_string())
        );
    }
    if let Some(plan) = &plan {
        out += &format!(
            "\n{} threads, {}:\nthread  cpu  node\n",
            plan.len(),
            args.placement
        );
        for t in plan.iter() {
            out += &format!("{:>6}  {:>3}  {:>4}\n", t.thread, t.cpu, t.node);
        }
    }
    emit(&out)
}

fn bind(args: &BindArgs) -> Result<(), Failure> {
    let topo = load(&TopologyArg {
        topology: "system".into(),
    })?;
    let rset = RSet::parse(&args.spec, &topo).map_err(Failure::usage)?;
    rset::bind::bind_current_thread(&rset).map_err(|e| Failure {
        message: e.to_string(),
        code: 1,
    })?;
    let program = &args.program[0];
    let err = std::os::unix::process::CommandExt::exec(
        std::process::Command::new(program).args(&args.program[1..]),
    );
    let code = if err.kind() == std::io::ErrorKind::NotFound {
        127
    } else {
        126
    };
    Err(Failure {
        message: format!("cannot run `{}`: {err}", program.to_string_lossy()),
        code,
    })
}
