//! `rset`: the machine's NUMA topology, resource-set specs, thread plans and
//! binding. One file per subcommand (`show.rs`, `calc.rs`, `bind.rs`; a new one
//! such as `rset part`, RSet partitions, gets its own file here) and the
//! `--topology` option they share (`source.rs`).
//!
//! (This module is the *command*; `::rset` is the library crate it drives.)

mod bind;
mod calc;
mod show;
mod source;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

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
    Show(show::ShowArgs),
    /// Resolve a spec to CPUs and nodes and, with --threads, plan thread placement.
    Calc(calc::CalcArgs),
    /// Run a program bound to an RSet (CPU affinity + strict memory binding).
    Bind(bind::BindArgs),
}

/// The `rset` command: parses the arguments, runs the subcommand, and gives the
/// exit status.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Show(a) => show::show(&a),
        Command::Calc(a) => calc::calc(&a),
        Command::Bind(a) => bind::bind(&a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => f.report("rset"),
    }
}
