//! The emulated machine's NUMA shape and the QEMU arguments that make it.

use crate::TopologyArgs;
use anyhow::{Context, bail};

/// Local distance: ACPI's SLIT requires 10 on the diagonal.
pub const LOCAL_DISTANCE: u32 = 10;

/// Nodes with CPUs come first (`0..nodes`), CPU-less memory nodes after them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmTopology {
    /// Nodes with CPUs.
    pub nodes: u32,
    /// CPUs on each CPU node.
    pub cpus_per_node: u32,
    /// Memory per node, MiB.
    pub mem_per_node_mib: u64,
    /// Memory-only nodes.
    pub cpuless_nodes: u32,
    /// Full, symmetric distance matrix.
    pub distances: Vec<Vec<u32>>,
}

impl VmTopology {
    /// A machine with the default 10/20 distances.
    pub fn new(nodes: u32, cpus_per_node: u32, mem_per_node_mib: u64, cpuless: u32) -> Self {
        Self::build(nodes, cpus_per_node, mem_per_node_mib, cpuless, 20, &[])
            .expect("built-in topologies are valid")
    }

    pub fn from_args(a: &TopologyArgs) -> anyhow::Result<Self> {
        Self::build(
            a.nodes,
            a.cpus_per_node,
            a.mem_per_node,
            a.cpuless_nodes,
            a.remote_distance,
            &a.distances,
        )
    }

    fn build(
        nodes: u32,
        cpus_per_node: u32,
        mem_per_node_mib: u64,
        cpuless_nodes: u32,
        remote: u32,
        overrides: &[String],
    ) -> anyhow::Result<Self> {
        if nodes == 0 {
            bail!("--nodes 0: the machine needs at least one node with CPUs");
        }
        if cpus_per_node == 0 {
            bail!("--cpus-per-node 0: every CPU node needs at least one CPU");
        }
        if nodes * cpus_per_node > 64 {
            bail!(
                "{nodes} nodes x {cpus_per_node} CPUs = {} CPUs: at most 64 under emulation",
                nodes * cpus_per_node
            );
        }
        let total = nodes + cpuless_nodes;
        if total > 64 {
            bail!("{total} nodes: at most 64");
        }
        if mem_per_node_mib < 128 {
            bail!("--mem-per-node {mem_per_node_mib}: at least 128 MiB per node");
        }
        if total as u64 * mem_per_node_mib > 16 * 1024 {
            bail!("{total} nodes x {mem_per_node_mib} MiB: at most 16 GiB of guest memory in all");
        }
        check_remote(remote).context("--remote-distance")?;
        let n = total as usize;
        let mut distances = vec![vec![remote; n]; n];
        for (i, row) in distances.iter_mut().enumerate() {
            row[i] = LOCAL_DISTANCE;
        }
        for spec in overrides {
            let (a, b, d) =
                parse_override(spec, total).with_context(|| format!("--distance {spec}"))?;
            distances[a][b] = d;
            distances[b][a] = d;
        }
        Ok(VmTopology {
            nodes,
            cpus_per_node,
            mem_per_node_mib,
            cpuless_nodes,
            distances,
        })
    }

    pub fn total_nodes(&self) -> u32 {
        self.nodes + self.cpuless_nodes
    }

    pub fn total_cpus(&self) -> u32 {
        self.nodes * self.cpus_per_node
    }

    /// A short human description: `4 nodes x 2 CPUs + 1 CPU-less, 512 MiB each`.
    pub fn describe(&self) -> String {
        let mut s = format!(
            "{} node{} x {} CPU{}",
            self.nodes,
            plural(self.nodes),
            self.cpus_per_node,
            plural(self.cpus_per_node)
        );
        if self.cpuless_nodes > 0 {
            s += &format!(" + {} CPU-less", self.cpuless_nodes);
        }
        s + &format!(", {} MiB each", self.mem_per_node_mib)
    }

    /// `-smp`, `-m`, one memory backend and `-numa node` per node, `-numa dist`.
    pub fn qemu_args(&self) -> Vec<String> {
        let mut args = vec![
            "-smp".to_owned(),
            format!(
                "{},sockets={},cores={},threads=1",
                self.total_cpus(),
                self.nodes,
                self.cpus_per_node
            ),
            "-m".to_owned(),
            format!("{}M", self.mem_per_node_mib * u64::from(self.total_nodes())),
        ];
        for node in 0..self.total_nodes() {
            args.push("-object".into());
            args.push(format!(
                "memory-backend-ram,id=mem{node},size={}M",
                self.mem_per_node_mib
            ));
            let mut numa = format!("node,nodeid={node},memdev=mem{node}");
            if node < self.nodes {
                let first = node * self.cpus_per_node;
                let last = first + self.cpus_per_node - 1;
                numa += &format!(",cpus={first}-{last}");
            }
            args.push("-numa".into());
            args.push(numa);
        }
        let n = self.total_nodes() as usize;
        for a in 0..n {
            for b in a + 1..n {
                args.push("-numa".into());
                args.push(format!("dist,src={a},dst={b},val={}", self.distances[a][b]));
            }
        }
        args
    }

    /// What the guest is told about itself (`RSET_GUEST_*`), so tests compare the
    /// kernel's view with the request.
    pub fn guest_env(&self) -> Vec<(String, String)> {
        let rows: Vec<String> = self
            .distances
            .iter()
            .map(|r| r.iter().map(u32::to_string).collect::<Vec<_>>().join(","))
            .collect();
        vec![
            ("RSET_GUEST".into(), "1".into()),
            ("RSET_GUEST_NODES".into(), self.nodes.to_string()),
            (
                "RSET_GUEST_CPUS_PER_NODE".into(),
                self.cpus_per_node.to_string(),
            ),
            (
                "RSET_GUEST_MEM_PER_NODE_MIB".into(),
                self.mem_per_node_mib.to_string(),
            ),
            (
                "RSET_GUEST_CPULESS_NODES".into(),
                self.cpuless_nodes.to_string(),
            ),
            ("RSET_GUEST_DISTANCES".into(), rows.join(";")),
        ]
    }
}

fn plural(n: u32) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn check_remote(d: u32) -> anyhow::Result<()> {
    if !(11..=254).contains(&d) {
        bail!("distance {d} must be between 11 and 254 (10 means local)");
    }
    Ok(())
}

fn parse_override(spec: &str, total: u32) -> anyhow::Result<(usize, usize, u32)> {
    let bad = || anyhow::anyhow!("expected A-B=D, for example 0-2=30");
    let (pair, d) = spec.split_once('=').ok_or_else(bad)?;
    let (a, b) = pair.split_once('-').ok_or_else(bad)?;
    let node = |s: &str| -> anyhow::Result<u32> {
        let n: u32 = s.trim().parse().map_err(|_| bad())?;
        if n >= total {
            bail!("node {n} does not exist (nodes 0-{})", total - 1);
        }
        Ok(n)
    };
    let (a, b) = (node(a)?, node(b)?);
    if a == b {
        bail!("node {a} to itself is always {LOCAL_DISTANCE}");
    }
    let d: u32 = d.trim().parse().map_err(|_| bad())?;
    check_remote(d)?;
    Ok((a as usize, b as usize, d))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(nodes: u32, cpus: u32, cpuless: u32, over: &[&str]) -> anyhow::Result<VmTopology> {
        let over: Vec<String> = over.iter().map(|s| s.to_string()).collect();
        VmTopology::build(nodes, cpus, 512, cpuless, 20, &over)
    }

    #[test]
    fn four_nodes_make_the_expected_qemu_arguments() {
        let t = build(4, 2, 0, &[]).unwrap();
        let a = t.qemu_args().join(" ");
        assert!(
            a.starts_with("-smp 8,sockets=4,cores=2,threads=1 -m 2048M "),
            "{a}"
        );
        assert!(
            a.contains("-numa node,nodeid=3,memdev=mem3,cpus=6-7"),
            "{a}"
        );
        assert!(a.contains("-numa dist,src=0,dst=3,val=20"), "{a}");
        assert_eq!(a.matches("-numa dist").count(), 6);
    }

    #[test]
    fn cpuless_nodes_get_memory_and_no_cpus() {
        let t = build(2, 2, 1, &["0-2=30"]).unwrap();
        let a = t.qemu_args().join(" ");
        assert!(a.contains("-numa node,nodeid=2,memdev=mem2 "), "{a}");
        assert!(a.contains("-m 1536M"), "{a}");
        assert_eq!(
            t.distances,
            vec![vec![10, 20, 30], vec![20, 10, 20], vec![30, 20, 10]]
        );
    }

    #[test]
    fn bad_shapes_are_refused_naming_the_value() {
        let e = |r: anyhow::Result<VmTopology>| format!("{:#}", r.unwrap_err());
        assert!(e(build(0, 2, 0, &[])).contains("--nodes 0"));
        assert!(e(build(2, 0, 0, &[])).contains("--cpus-per-node 0"));
        assert!(e(build(2, 2, 0, &["0-5=30"])).contains("node 5 does not exist"));
        assert!(e(build(2, 2, 0, &["0-1=5"])).contains("distance 5"));
        assert!(e(build(2, 2, 0, &["1-1=30"])).contains("to itself"));
        assert!(e(build(2, 2, 0, &["x"])).contains("expected A-B=D"));
    }
}
