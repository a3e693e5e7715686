//! What the Nodes view shows besides the counters: each node's CPUs and memory
//! (sysfs), and where the target's threads run now (`/proc/PID/task/*/stat`).

use std::path::Path;

/// A NUMA node as sysfs describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    /// Its number.
    pub node: u32,
    /// Its CPUs (empty for a CPU-less memory node).
    pub cpus: Vec<u32>,
    /// Memory, bytes (`MemTotal`).
    pub mem_total: u64,
    /// Free memory, bytes (`MemFree`).
    pub mem_free: u64,
}

/// A thread of the target and where it last ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadInfo {
    /// Its id.
    pub tid: u32,
    /// Its name.
    pub comm: String,
    /// The CPU it last ran on.
    pub cpu: u32,
}

/// Parses a kernel CPU list (`0-3,8,10-11`, empty for a CPU-less node) with
/// [`rset::list::parse_list`]; `None` if it is not one.
pub fn parse_cpulist(text: &str) -> Option<Vec<u32>> {
    let text = text.trim();
    if text.is_empty() {
        return Some(Vec::new());
    }
    rset::list::parse_list(text).ok()
}

/// `MemTotal` and `MemFree` of a node's `meminfo` (`Node 0 MemTotal: 123 kB`).
fn parse_meminfo(text: &str) -> (u64, u64) {
    let field = |name: &str| {
        text.lines()
            .find_map(|l| {
                let (_, rest) = l.split_once(name)?;
                rest.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
            .unwrap_or(0)
            * 1024
    };
    (field("MemTotal:"), field("MemFree:"))
}

/// The nodes under `root` (normally `/sys/devices/system/node`), by number.
pub fn nodes(root: &Path) -> Vec<NodeInfo> {
    let Ok(dir) = std::fs::read_dir(root) else {
        return Vec::new();
    };
    let mut out: Vec<NodeInfo> = dir
        .flatten()
        .filter_map(|e| {
            let node: u32 = e.file_name().to_str()?.strip_prefix("node")?.parse().ok()?;
            let p = e.path();
            let cpus = std::fs::read_to_string(p.join("cpulist"))
                .ok()
                .and_then(|t| parse_cpulist(&t))
                .unwrap_or_default();
            let (mem_total, mem_free) = std::fs::read_to_string(p.join("meminfo"))
                .map(|t| parse_meminfo(&t))
                .unwrap_or((0, 0));
            Some(NodeInfo {
                node,
                cpus,
                mem_total,
                mem_free,
            })
        })
        .collect();
    out.sort_by_key(|n| n.node);
    out
}

/// The CPU a `/proc/.../stat` line says the task last ran on (field 39), and its
/// name (between the first `(` and the last `)`).
pub fn parse_stat(text: &str) -> Option<(String, u32)> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text.get(open + 1..close)?.to_string();
    // Fields after the name start at field 3 (state); the CPU is field 39.
    let cpu = text
        .get(close + 1..)?
        .split_whitespace()
        .nth(36)?
        .parse()
        .ok()?;
    Some((comm, cpu))
}

/// The threads of `pid` now (empty if it is gone), but the monitor's own (named
/// `rset-mon*`).
pub fn threads(pid: u64) -> Vec<ThreadInfo> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    let mut out: Vec<ThreadInfo> = dir
        .flatten()
        .filter_map(|e| {
            let tid: u32 = e.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            let (comm, cpu) = parse_stat(&stat)?;
            (!comm.starts_with("rset-mon")).then_some(ThreadInfo { tid, comm, cpu })
        })
        .collect();
    out.sort_by_key(|t| t.tid);
    out
}

/// Whether process `pid` still exists.
pub fn alive(pid: u64) -> bool {
    pid != 0 && Path::new(&format!("/proc/{pid}")).exists()
}

/// The node of `cpu` among `nodes`.
pub fn node_of_cpu(nodes: &[NodeInfo], cpu: u32) -> Option<u32> {
    nodes.iter().find(|n| n.cpus.contains(&cpu)).map(|n| n.node)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_parse_and_typos_do_not() {
        assert_eq!(parse_cpulist("0-2,5\n"), Some(vec![0, 1, 2, 5]));
        assert_eq!(parse_cpulist("\n"), Some(vec![]));
        assert_eq!(parse_cpulist("3-1"), None);
        assert_eq!(parse_cpulist("0-x"), None);
    }

    #[test]
    fn stat_lines_give_the_name_and_cpu_even_with_odd_names() {
        let line = "4242 (a (b) c) S 1 4242 4242 0 -1 4194560 100 0 0 0 5 6 0 0 20 0 3 0 \
                    100 1000 50 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 7 0 0 0 0 0";
        assert_eq!(parse_stat(line), Some(("a (b) c".to_string(), 7)));
        assert_eq!(parse_stat("1 (x) S"), None);
    }

    #[test]
    fn meminfo_lines_are_read_in_bytes() {
        let t = "Node 0 MemTotal:       524288 kB\nNode 0 MemFree:        262144 kB\n";
        assert_eq!(parse_meminfo(t), (512 << 20, 256 << 20));
    }

    #[test]
    fn this_machine_and_this_process_are_seen() {
        let n = nodes(Path::new("/sys/devices/system/node"));
        assert!(!n.is_empty() && n[0].mem_total > 0, "{n:?}");
        let me = threads(u64::from(std::process::id()));
        assert!(me.iter().any(|t| t.tid == std::process::id()), "{me:?}");
        assert!(me.iter().all(|t| node_of_cpu(&n, t.cpu).is_some()));
        assert!(alive(u64::from(std::process::id())) && !alive(0));
    }
}
