//! Helpers shared by the integration tests.
//!
//! The `guest` test binary runs inside the emulated NUMA machine booted by
//! `cargo xtask test`; the harness tells it the topology it asked QEMU for through
//! `RSET_GUEST_*` environment variables, so tests compare what the kernel reports
//! with what was requested rather than with itself.
#![deny(missing_docs)]
#![deny(unsafe_code)]

mod mapping;

pub use mapping::{Mapping, page_size};

use std::path::PathBuf;

/// The topology the harness requested for this guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuestSpec {
    /// Nodes with CPUs (ids `0..nodes`).
    pub nodes: u32,
    /// CPUs on each of those nodes.
    pub cpus_per_node: u32,
    /// Memory per node, MiB (CPU-less nodes too).
    pub mem_per_node_mib: u64,
    /// Memory-only nodes (ids `nodes..nodes + cpuless_nodes`).
    pub cpuless_nodes: u32,
}

impl GuestSpec {
    /// Reads the spec from the environment the harness sets.
    ///
    /// # Panics
    /// Outside a guest, with a message saying how these tests are meant to run.
    pub fn from_env() -> GuestSpec {
        let var = |name: &str| -> u64 {
            let v = std::env::var(name).unwrap_or_else(|_| {
                panic!(
                    "{name} is not set: this test runs only inside the emulated NUMA guest \
                     (`cargo xtask test`, or `cargo xtask vm -- <test binary>`)"
                )
            });
            v.parse()
                .unwrap_or_else(|_| panic!("{name}={v:?} is not a number"))
        };
        GuestSpec {
            nodes: var("RSET_GUEST_NODES") as u32,
            cpus_per_node: var("RSET_GUEST_CPUS_PER_NODE") as u32,
            mem_per_node_mib: var("RSET_GUEST_MEM_PER_NODE_MIB"),
            cpuless_nodes: var("RSET_GUEST_CPULESS_NODES") as u32,
        }
    }

    /// All nodes, with and without CPUs.
    pub fn total_nodes(&self) -> u32 {
        self.nodes + self.cpuless_nodes
    }

    /// The CPUs the harness put on `node`: consecutive blocks of `cpus_per_node`.
    pub fn cpus_of(&self, node: u32) -> Vec<u32> {
        if node >= self.nodes {
            return Vec::new();
        }
        let c = self.cpus_per_node;
        (node * c..(node + 1) * c).collect()
    }
}

/// What Linux says about its NUMA nodes, read from sysfs.
pub mod sysfs {
    use super::*;

    fn node_dir(node: u32) -> PathBuf {
        PathBuf::from(format!("/sys/devices/system/node/node{node}"))
    }

    fn read(path: &std::path::Path) -> String {
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
    }

    /// Ids of the online nodes.
    pub fn online_nodes() -> Vec<u32> {
        let s = read("/sys/devices/system/node/online".as_ref());
        rset::list::parse_list(s.trim()).expect("sysfs node list")
    }

    /// CPUs of `node` (empty for a memory-only node).
    pub fn node_cpus(node: u32) -> Vec<u32> {
        let s = read(&node_dir(node).join("cpulist"));
        let s = s.trim();
        if s.is_empty() {
            Vec::new()
        } else {
            rset::list::parse_list(s).expect("sysfs cpulist")
        }
    }

    /// `MemTotal` of `node`, bytes.
    pub fn node_mem_total(node: u32) -> u64 {
        let s = read(&node_dir(node).join("meminfo"));
        let line = s
            .lines()
            .find(|l| l.contains("MemTotal:"))
            .expect("MemTotal line in node meminfo");
        let kib: u64 = line
            .split_whitespace()
            .rev()
            .nth(1)
            .and_then(|v| v.parse().ok())
            .expect("MemTotal value");
        kib * 1024
    }

    /// The distance row of `node`.
    pub fn node_distances(node: u32) -> Vec<u32> {
        read(&node_dir(node).join("distance"))
            .split_whitespace()
            .map(|d| d.parse().expect("distance"))
            .collect()
    }
}

/// A small xorshift generator for access patterns (deterministic, no dependency).
#[derive(Debug, Clone)]
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A uniform number in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}
