//! The plan `rset-run` hands the library: one slot per CPU of the RSet, in Fill or
//! Round-robin order, each with the memory policy resolved for the slot's node,
//! checked by the protocol exactly as the library will check it.

use alloc_policies::{Layout, Policy};
use rset::{RSet, Topology};
use rset_protocol::{ProtocolError, RunConfig, Slot};
use serde::Serialize;

use super::cli::Cli;
use crate::cli::Failure;

/// A slot of the plan as `-v` prints it and the report writes it.
#[derive(Serialize)]
pub(super) struct PlanEntry<'a> {
    /// Its index.
    slot: usize,
    #[serde(flatten)]
    at: &'a Slot,
}

/// The configuration for `cli` (no log yet: `--report` opens it later), or why
/// there is none: a bad RSet, policy or skip list.
pub(super) fn config(cli: &Cli, topo: &Topology, rset: &RSet) -> Result<RunConfig, Failure> {
    let cpus = rset.effective_cpus();
    if cpus.is_empty() {
        return Err(Failure::usage(format!(
            "the RSet `{}` has no CPU to run threads on",
            cli.rset
        )));
    }
    let plan = rset::plan(rset, cli.threads, cpus.len()).map_err(Failure::usage)?;
    let policy: Policy = cli
        .mem
        .parse()
        .map_err(|e| Failure::usage(format!("--mem {}: {e}", cli.mem)))?;
    let mut slots = Vec::with_capacity(plan.len());
    for t in plan.iter() {
        let policy = match &policy {
            // The library applies one node per slot: the nearest other one.
            Policy::Remote => match policy.resolve(rset, t.node) {
                Ok(Layout::Node(n)) => Policy::RemoteTo(n),
                Ok(_) => {
                    return Err(Failure::runtime(format!(
                        "--mem {}: no single remote node",
                        cli.mem
                    )));
                }
                Err(e) => return Err(Failure::usage(format!("--mem remote: {e}"))),
            },
            // The command line names no node: `remote:N` is the library's form.
            Policy::RemoteTo(_) => return Err(unsupported(cli)),
            other => other.clone(),
        };
        slots.push(Slot {
            cpu: t.cpu,
            node: t.node,
            policy,
        });
    }
    let mut config = RunConfig {
        slots,
        rset_cpus: cpus.iter().map(|c| c.0).collect(),
        rset_nodes: rset.effective_nodes().iter().map(|n| n.0).collect(),
        memory_nodes: topo
            .global_rset()
            .effective_nodes()
            .iter()
            .map(|n| n.0)
            .collect(),
        skip: Vec::new(),
        log: None,
        verbose: cli.verbose,
    };
    config.check().map_err(|e| refusal(cli, e))?;
    if let Some(s) = &cli.skip {
        // Sorted, each once: what the protocol asks of it.
        config.skip = rset::list::parse_list(s)
            .map_err(|e| Failure::usage(format!("--skip {s}: {e}")))?
            .into_iter()
            .map(|i| i as usize)
            .collect();
    }
    Ok(config)
}

/// What the protocol refused, said in terms of the command line.
fn refusal(cli: &Cli, e: ProtocolError) -> Failure {
    match e {
        ProtocolError::UnsupportedPolicy { .. } => unsupported(cli),
        ProtocolError::StripedPartial {
            policy,
            machine,
            rset,
        } => Failure::usage(format!(
            "--mem {policy} stripes over every memory node ({machine}), but the RSet `{}` has \
             only {rset}: use --rset all or another policy",
            cli.rset
        )),
        // The RSet and the plan come from the same topology: not expected.
        other => Failure::runtime(format!("the plan: {other}")),
    }
}

/// `--mem` named a policy rset-run does not apply per thread.
fn unsupported(cli: &Cli) -> Failure {
    Failure::usage(format!(
        "--mem {}: rset-run takes float, local, remote or striped:K",
        cli.mem
    ))
}

/// The slots with their indices.
pub(super) fn entries(config: &RunConfig) -> Vec<PlanEntry<'_>> {
    config
        .slots
        .iter()
        .enumerate()
        .map(|(slot, at)| PlanEntry { slot, at })
        .collect()
}

/// `-v`: the RSet and the plan, on stderr.
pub(super) fn print(cli: &Cli, config: &RunConfig) {
    let list = rset::list::format_list;
    eprintln!(
        "rset-run: RSet `{}` (CPUs {}, memory nodes {}), {} placement, memory {}",
        cli.rset,
        list(&config.rset_cpus),
        list(&config.rset_nodes),
        cli.threads,
        cli.mem
    );
    eprintln!("rset-run: slot  cpu  node  memory");
    for (i, s) in config.slots.iter().enumerate() {
        eprintln!(
            "rset-run: {:>4} {:>4} {:>5}  {}",
            i, s.cpu.0, s.node.0, s.policy
        );
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use rset::NodeId;

    use super::*;

    /// Two nodes of two CPUs each.
    fn machine() -> Topology {
        Topology::from_synthetic("pack:1 numa:2 core:2 pu:1").expect("synthetic machine")
    }

    fn config_for(args: &[&str]) -> Result<RunConfig, Failure> {
        let cli = Cli::parse_from(["rset-run"].iter().chain(args).chain(&["--", "true"]));
        let topo = machine();
        let rset = RSet::parse(&cli.rset, &topo).expect("spec");
        config(&cli, &topo, &rset)
    }

    #[test]
    fn the_plan_is_what_the_library_accepts() {
        for args in [
            &["--mem", "local"][..],
            &["--mem", "striped:4", "--threads", "round-robin"],
            &["--rset", "node:1", "--skip", "3,1-2"],
        ] {
            let cfg = config_for(args).unwrap();
            let back = RunConfig::from_env_value(&cfg.to_env_value().unwrap());
            assert_eq!(back.as_ref(), Ok(&cfg), "{args:?}");
        }
        assert_eq!(config_for(&["--skip", "3,1-2"]).unwrap().skip, [1, 2, 3]);
    }

    #[test]
    fn remote_becomes_the_other_node_of_each_slot() {
        let cfg = config_for(&["--mem", "remote"]).unwrap();
        for s in &cfg.slots {
            assert_eq!(s.policy, Policy::RemoteTo(NodeId(1 - s.node.0)), "{s:?}");
        }
    }

    #[test]
    fn refusals_speak_of_the_command_line() {
        let message = |args: &[&str]| config_for(args).unwrap_err().message;
        assert_eq!(
            message(&["--rset", "node:0", "--mem", "striped:4"]),
            "--mem striped:4 stripes over every memory node (0-1), but the RSet `node:0` has \
             only 0: use --rset all or another policy"
        );
        for mem in ["bind:0", "interleave:0-1", "remote:1"] {
            assert_eq!(
                message(&["--mem", mem]),
                format!("--mem {mem}: rset-run takes float, local, remote or striped:K")
            );
        }
        assert!(message(&["--mem", "stripd:2"]).starts_with("--mem stripd:2: "));
        assert!(message(&["--skip", "1-x"]).starts_with("--skip 1-x: "));
    }
}
