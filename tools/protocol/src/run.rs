//! The placement plan (`rset-run`): a [`RunConfig`] of [`Slot`]s, and the one
//! function that decodes and checks it.

use alloc_policies::Policy;
use rset::list::format_list;
use rset::{CpuId, NodeId};
use serde::{Deserialize, Serialize};

use crate::{ProtocolError, RUN_ENV};

/// One slot of the placement plan: where a placed thread runs and how its heap is
/// placed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Slot {
    /// CPU the slot's thread is bound to.
    pub cpu: CpuId,
    /// That CPU's node (not necessarily a memory node of the RSet:
    /// `cpu:0-3 + mem:2`).
    pub node: NodeId,
    /// The slot's memory policy for the allocator: `float`, `local`, `remote:N`
    /// (resolved by `rset-run`: never the bare `remote`) or `striped:K`.
    #[serde(with = "crate::policy_text")]
    pub policy: Policy,
}

/// Placement of an unmodified program's threads and memory (`rset-run`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunConfig {
    /// The plan: thread slot `i` (the main thread is slot 0, then threads in the
    /// order they are created) takes `slots[i mod len]`.
    pub slots: Vec<Slot>,
    /// The RSet's CPUs: where skipped threads may run.
    pub rset_cpus: Vec<u32>,
    /// The RSet's memory nodes: every placed thread's kernel policy is `MPOL_BIND`
    /// over them (nearest first), so stacks and static data stay inside.
    pub rset_nodes: Vec<u32>,
    /// Every memory node of the machine (what `striped:K` stripes over).
    pub memory_nodes: Vec<u32>,
    /// Creation indices (main = 0, first `pthread_create` = 1, ...) of threads that
    /// take no slot and run anywhere in the RSet; increasing, each once.
    pub skip: Vec<usize>,
    /// File the library appends [`Record`](crate::Record) lines to (`--report`).
    pub log: Option<String>,
    /// Print each binding to stderr as it happens (`-v`).
    pub verbose: bool,
}

impl RunConfig {
    /// Decodes the value of [`RUN_ENV`] and checks the plan ([`RunConfig::check`]).
    ///
    /// # Errors
    /// [`ProtocolError::Json`] for text that is not a configuration (a policy text
    /// that is not a policy included), else what [`RunConfig::check`] refuses.
    pub fn from_env_value(value: &str) -> Result<RunConfig, ProtocolError> {
        let cfg: RunConfig = serde_json::from_str(value).map_err(|e| ProtocolError::Json {
            var: RUN_ENV,
            message: e.to_string(),
        })?;
        cfg.check()?;
        Ok(cfg)
    }

    /// The value of [`RUN_ENV`] for this configuration.
    ///
    /// # Errors
    /// [`ProtocolError::Encode`] (not expected: every field has a JSON form).
    pub fn to_env_value(&self) -> Result<String, ProtocolError> {
        serde_json::to_string(self).map_err(|e| ProtocolError::Encode {
            var: RUN_ENV,
            message: e.to_string(),
        })
    }

    /// Checks that the library can follow the plan: at least one slot; an RSet with
    /// CPUs and memory nodes, its nodes memory of the machine; each slot's CPU in
    /// the RSet and its policy one the library applies per thread (`remote:N` to a
    /// memory node of the RSet other than the slot's own, `striped:K` only when the
    /// RSet has every memory node of the machine); the skip list increasing.
    ///
    /// # Errors
    /// The first [`ProtocolError`] found, in that order.
    pub fn check(&self) -> Result<(), ProtocolError> {
        if self.slots.is_empty() {
            return Err(ProtocolError::NoSlots);
        }
        if self.rset_cpus.is_empty() {
            return Err(ProtocolError::NoCpus);
        }
        if self.rset_nodes.is_empty() {
            return Err(ProtocolError::NoNodes);
        }
        if let Some(&node) = self
            .rset_nodes
            .iter()
            .find(|n| !self.memory_nodes.contains(n))
        {
            return Err(ProtocolError::NodeNotOnMachine {
                node,
                machine: list(&self.memory_nodes),
            });
        }
        for (i, s) in self.slots.iter().enumerate() {
            self.check_slot(i, s)?;
        }
        if self.skip.windows(2).any(|w| w[0] >= w[1]) {
            return Err(ProtocolError::SkipUnordered {
                list: format!("{:?}", self.skip),
            });
        }
        Ok(())
    }

    fn check_slot(&self, slot: usize, s: &Slot) -> Result<(), ProtocolError> {
        if !self.rset_cpus.contains(&s.cpu.0) {
            return Err(ProtocolError::CpuOutsideRSet {
                slot,
                cpu: s.cpu,
                rset: list(&self.rset_cpus),
            });
        }
        match &s.policy {
            Policy::Float | Policy::Local => Ok(()),
            Policy::RemoteTo(n) if !self.rset_nodes.contains(&n.0) => {
                Err(ProtocolError::RemoteOutsideRSet {
                    slot,
                    node: *n,
                    rset: list(&self.rset_nodes),
                })
            }
            Policy::RemoteTo(n) if *n == s.node => {
                Err(ProtocolError::RemoteIsLocal { slot, node: *n })
            }
            Policy::RemoteTo(_) => Ok(()),
            Policy::Striped { .. } if self.rset_nodes != self.memory_nodes => {
                Err(ProtocolError::StripedPartial {
                    policy: s.policy.clone(),
                    machine: list(&self.memory_nodes),
                    rset: list(&self.rset_nodes),
                })
            }
            Policy::Striped { .. } => Ok(()),
            other => Err(ProtocolError::UnsupportedPolicy {
                slot,
                policy: other.clone(),
            }),
        }
    }

    /// Truth that the thread created `created`-th (main = 0) takes no slot.
    pub fn skips(&self, created: usize) -> bool {
        self.skip.binary_search(&created).is_ok()
    }
}

fn list(ids: &[u32]) -> String {
    format_list(ids)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc_policies::Stride;

    fn slot(cpu: u32, node: u32, policy: &str) -> Slot {
        Slot {
            cpu: CpuId(cpu),
            node: NodeId(node),
            policy: policy.parse().unwrap(),
        }
    }

    /// Two nodes of two CPUs, the RSet everything, Local.
    fn config() -> RunConfig {
        RunConfig {
            slots: vec![slot(0, 0, "local"), slot(2, 1, "local")],
            rset_cpus: vec![0, 1, 2, 3],
            rset_nodes: vec![0, 1],
            memory_nodes: vec![0, 1],
            skip: vec![1, 3],
            log: Some("/tmp/run.log".into()),
            verbose: true,
        }
    }

    fn decode(cfg: &RunConfig) -> Result<RunConfig, ProtocolError> {
        RunConfig::from_env_value(&cfg.to_env_value().unwrap())
    }

    #[test]
    fn a_good_plan_travels_unchanged() {
        let mut cfg = config();
        assert_eq!(decode(&cfg), Ok(cfg.clone()));
        cfg.slots[0].policy = "remote:1".parse().unwrap();
        cfg.slots[1].policy = Policy::Striped {
            stride_pages: Stride::new(4).unwrap(),
        };
        cfg.slots.push(slot(1, 0, "float"));
        assert_eq!(decode(&cfg), Ok(cfg.clone()));
    }

    #[test]
    fn the_wire_form_is_plain_json_with_policy_texts() {
        let json = config().to_env_value().unwrap();
        assert!(
            json.starts_with(r#"{"slots":[{"cpu":0,"node":0,"policy":"local"},"#),
            "{json}"
        );
    }

    #[test]
    fn not_json_is_refused_naming_the_variable() {
        let e = RunConfig::from_env_value("{").unwrap_err();
        assert!(
            matches!(
                e,
                ProtocolError::Json {
                    var: "RSET_RUN",
                    ..
                }
            ),
            "{e}"
        );
        assert!(e.to_string().starts_with("bad RSET_RUN: "), "{e}");
    }

    #[test]
    fn a_bad_policy_text_is_refused_naming_it() {
        let json = config()
            .to_env_value()
            .unwrap()
            .replacen("\"local\"", "\"stripd:2\"", 1);
        let e = RunConfig::from_env_value(&json).unwrap_err();
        assert!(matches!(e, ProtocolError::Json { .. }), "{e}");
        assert!(e.to_string().contains("stripd:2"), "{e}");
        let json = config()
            .to_env_value()
            .unwrap()
            .replacen("\"local\"", "\"striped:0\"", 1);
        let e = RunConfig::from_env_value(&json).unwrap_err();
        assert!(e.to_string().contains("striped:0"), "{e}");
    }

    #[test]
    fn an_empty_plan_is_refused() {
        let mut cfg = config();
        cfg.slots.clear();
        assert_eq!(decode(&cfg), Err(ProtocolError::NoSlots));
    }

    #[test]
    fn an_rset_without_cpus_or_nodes_is_refused() {
        let mut cfg = config();
        cfg.rset_cpus.clear();
        assert_eq!(decode(&cfg), Err(ProtocolError::NoCpus));
        let mut cfg = config();
        cfg.rset_nodes.clear();
        assert_eq!(decode(&cfg), Err(ProtocolError::NoNodes));
    }

    #[test]
    fn an_rset_node_the_machine_lacks_is_refused() {
        let mut cfg = config();
        cfg.rset_nodes = vec![0, 7];
        assert_eq!(
            decode(&cfg),
            Err(ProtocolError::NodeNotOnMachine {
                node: 7,
                machine: "0-1".into()
            })
        );
    }

    #[test]
    fn a_slot_cpu_outside_the_rset_is_refused() {
        let mut cfg = config();
        cfg.slots[1].cpu = CpuId(9);
        let e = decode(&cfg).unwrap_err();
        assert_eq!(
            e,
            ProtocolError::CpuOutsideRSet {
                slot: 1,
                cpu: CpuId(9),
                rset: "0-3".into()
            }
        );
        assert_eq!(
            e.to_string(),
            "slot 1: CPU 9 is not in the RSet (its CPUs are 0-3)"
        );
    }

    #[test]
    fn remote_to_a_node_outside_the_rset_or_to_its_own_is_refused() {
        let mut cfg = config();
        cfg.rset_nodes = vec![0];
        cfg.slots[0].policy = "remote:1".parse().unwrap();
        assert_eq!(
            decode(&cfg),
            Err(ProtocolError::RemoteOutsideRSet {
                slot: 0,
                node: NodeId(1),
                rset: "0".into()
            })
        );
        let mut cfg = config();
        cfg.slots[1].policy = "remote:1".parse().unwrap();
        assert_eq!(
            decode(&cfg),
            Err(ProtocolError::RemoteIsLocal {
                slot: 1,
                node: NodeId(1)
            })
        );
    }

    #[test]
    fn striped_over_part_of_the_machine_is_refused() {
        let mut cfg = config();
        cfg.rset_nodes = vec![0];
        cfg.slots[0].policy = "striped:4".parse().unwrap();
        let e = decode(&cfg).unwrap_err();
        assert_eq!(
            e.to_string(),
            "striped:4 stripes over every memory node (0-1), but the RSet has only 0"
        );
    }

    #[test]
    fn policies_the_library_does_not_apply_per_thread_are_refused() {
        for text in ["remote", "bind:0", "interleave:0-1"] {
            let mut cfg = config();
            cfg.slots[1].policy = text.parse().unwrap();
            assert_eq!(
                decode(&cfg),
                Err(ProtocolError::UnsupportedPolicy {
                    slot: 1,
                    policy: text.parse().unwrap()
                }),
                "{text}"
            );
        }
    }

    #[test]
    fn a_skip_list_out_of_order_or_with_repeats_is_refused() {
        for skip in [vec![3, 1], vec![2, 2]] {
            let mut cfg = config();
            cfg.skip = skip.clone();
            assert_eq!(
                decode(&cfg),
                Err(ProtocolError::SkipUnordered {
                    list: format!("{skip:?}")
                })
            );
        }
    }

    #[test]
    fn skips_answers_from_the_list() {
        let cfg = config();
        assert!(cfg.skips(1) && cfg.skips(3));
        assert!(!cfg.skips(0) && !cfg.skips(2) && !cfg.skips(4));
    }
}
