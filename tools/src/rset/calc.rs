//! `rset calc`: a spec resolved to CPUs and nodes, and a thread plan over it.

use ::rset::{Placement, Plan, RSet};
use clap::Args;
use serde::Serialize;

use super::source::TopologyArg;
use crate::cli::{Failure, emit, json};

#[derive(Args)]
pub(super) struct CalcArgs {
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

pub(super) fn calc(args: &CalcArgs) -> Result<(), Failure> {
    let topo = args.topology.load()?;
    let rset = RSet::parse(&args.spec, &topo).map_err(Failure::usage)?;
    let plan = match args.threads {
        Some(n) => Some(::rset::plan(&rset, args.placement, n).map_err(Failure::usage)?),
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
