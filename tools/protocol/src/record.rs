//! What the library writes back: one JSON [`Record`] per line of the run's log.

use alloc_policies::Policy;
use serde::{Deserialize, Serialize};

/// A line the library appends to [`RunConfig::log`](crate::RunConfig::log).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Record {
    /// A thread bound itself (or, skipped, did not).
    Thread {
        /// Process id.
        pid: u32,
        /// Kernel thread id.
        tid: i32,
        /// Creation index in its process (main = 0).
        created: usize,
        /// The slot it took; `None` when skipped.
        slot: Option<usize>,
        /// The CPU it runs on, read with `getcpu` after binding.
        cpu: u32,
        /// That CPU's node.
        node: u32,
        /// Its memory policy.
        #[serde(with = "crate::policy_text")]
        policy: Policy,
    },
    /// A process ended (`exit`): the memory its allocator placed.
    Exit {
        /// Process id.
        pid: u32,
        /// The program (`/proc/self/exe`).
        exe: String,
        /// Per policy, per node: pages of large heap blocks placed there.
        pages: Vec<PolicyPages>,
        /// Heap blocks the allocator served (small and large).
        blocks: u64,
    },
}

/// Pages placed by one policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyPages {
    /// The policy.
    #[serde(with = "crate::policy_text")]
    pub policy: Policy,
    /// `(node, pages)`; node `None` for first touch (float).
    pub nodes: Vec<(Option<u32>, u64)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_read_back_as_written() {
        let thread = Record::Thread {
            pid: 7,
            tid: 8,
            created: 1,
            slot: None,
            cpu: 3,
            node: 1,
            policy: Policy::Float,
        };
        let line = serde_json::to_string(&thread).unwrap();
        assert_eq!(
            line,
            r#"{"event":"thread","pid":7,"tid":8,"created":1,"slot":null,"cpu":3,"node":1,"policy":"float"}"#
        );
        assert_eq!(serde_json::from_str::<Record>(&line).unwrap(), thread);
        let exit = Record::Exit {
            pid: 7,
            exe: "/bin/true".into(),
            pages: vec![PolicyPages {
                policy: "striped:2".parse().unwrap(),
                nodes: vec![(Some(0), 3), (None, 1)],
            }],
            blocks: 9,
        };
        let line = serde_json::to_string(&exit).unwrap();
        assert!(line.contains(r#""policy":"striped:2""#), "{line}");
        assert_eq!(serde_json::from_str::<Record>(&line).unwrap(), exit);
    }
}
