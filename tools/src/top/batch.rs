//! Batch mode (`--once`, `-n N`, `--json`): the nodes and the hottest regions and
//! granules on stdout, like `top -b`, for scripts.

use serde::Serialize;

use super::frame::{Counts, Granule, Region};
use super::model::{Model, Sort, Status, top_granules};
use super::ui::{count, cpu_list, size};

/// The format name in each JSON object.
pub const FORMAT: &str = "rset-top";
/// Its version.
pub const VERSION: u32 = 1;

/// Counts from one node, in JSON.
#[derive(Debug, Serialize)]
pub struct NodeJson {
    /// The accessing node.
    pub node: usize,
    /// References its own memory served.
    pub local: u64,
    /// References other nodes served.
    pub remote: u64,
    /// Loads.
    pub reads: u64,
    /// Stores.
    pub writes: u64,
}

fn by_node(c: &[Counts]) -> Vec<NodeJson> {
    c.iter()
        .enumerate()
        .map(|(node, c)| NodeJson {
            node,
            local: c.local,
            remote: c.remote,
            reads: c.reads,
            writes: c.writes,
        })
        .collect()
}

/// A granule, in JSON.
#[derive(Debug, Serialize)]
pub struct GranuleJson {
    /// Index in its region.
    pub index: u64,
    /// Its first byte.
    pub start: u64,
    /// References.
    pub references: u64,
    /// Remote share of them.
    pub remote_share: f64,
    /// Per accessing node.
    pub by_node: Vec<NodeJson>,
}

/// A region, in JSON.
#[derive(Debug, Serialize)]
pub struct RegionJson {
    /// Its name.
    pub name: String,
    /// First byte.
    pub start: u64,
    /// Bytes.
    pub size: u64,
    /// Granule size, bytes.
    pub granularity: u64,
    /// References.
    pub references: u64,
    /// Of which remote.
    pub remote: u64,
    /// Remote share.
    pub remote_share: f64,
    /// Per accessing node.
    pub by_node: Vec<NodeJson>,
    /// The most referenced granules, most first.
    pub top_granules: Vec<GranuleJson>,
}

/// A node of the machine, in JSON.
#[derive(Debug, Serialize)]
pub struct MachineNodeJson {
    /// Its number.
    pub node: u32,
    /// Its CPUs.
    pub cpus: String,
    /// Memory, bytes.
    pub mem_total: u64,
    /// Free memory, bytes.
    pub mem_free: u64,
    /// Local references per second from it (since the previous iteration).
    pub local_per_s: f64,
    /// Remote references per second from it.
    pub remote_per_s: f64,
    /// The target's threads on it now.
    pub threads: Vec<u32>,
}

/// One iteration, in JSON.
#[derive(Debug, Serialize)]
pub struct IterationJson {
    /// [`FORMAT`].
    pub format: &'static str,
    /// [`VERSION`].
    pub version: u32,
    /// Iteration number, from 1.
    pub iteration: u32,
    /// The monitored process.
    pub pid: u64,
    /// `running`, `exited`, `unreadable` or `replay`.
    pub status: &'static str,
    /// Samples delivered.
    pub samples: u64,
    /// Samples lost.
    pub lost: u64,
    /// Sampling rate, Hz.
    pub rate_hz: u64,
    /// The machine's nodes.
    pub nodes: Vec<MachineNodeJson>,
    /// The regions, most referenced first.
    pub regions: Vec<RegionJson>,
}

fn granule_json(r: &Region, g: &Granule) -> GranuleJson {
    let all = g.all();
    GranuleJson {
        index: g.index,
        start: r.start + g.index * r.granularity,
        references: all.total(),
        remote_share: all.remote_share(),
        by_node: by_node(&g.by_node),
    }
}

fn status_name(s: &Status) -> &'static str {
    match s {
        Status::Running => "running",
        Status::Exited => "exited",
        Status::Unreadable(_) => "unreadable",
        Status::Replay => "replay",
    }
}

/// The JSON of the model now, with at most `top` regions and granules each.
pub fn iteration(m: &Model, iteration: u32, top: usize) -> IterationJson {
    let fr = m.frame.as_ref();
    // The machine's nodes, and any node the counters know that sysfs did not give
    // (a replay of another machine's session: nothing is known about them).
    let count = m.nodes.len().max(fr.map_or(0, |f| f.nodes));
    let nodes = (0..count as u32)
        .map(|node| {
            let info = m.nodes.iter().find(|n| n.node == node);
            let (l, r) = m.rates.get(node as usize).copied().unwrap_or((0.0, 0.0));
            MachineNodeJson {
                node,
                cpus: info.map_or(String::new(), |n| cpu_list(&n.cpus)),
                mem_total: info.map_or(0, |n| n.mem_total),
                mem_free: info.map_or(0, |n| n.mem_free),
                local_per_s: l,
                remote_per_s: r,
                threads: m.threads_on(node).iter().map(|t| t.tid).collect(),
            }
        })
        .collect();
    let regions = fr.map_or(Vec::new(), |fr| {
        m.regions(Sort::References, "")
            .into_iter()
            .take(top)
            .map(|i| {
                let r = &fr.regions[i];
                let all = r.all();
                RegionJson {
                    name: r.name.clone(),
                    start: r.start,
                    size: r.size,
                    granularity: r.granularity,
                    references: all.total(),
                    remote: all.remote,
                    remote_share: all.remote_share(),
                    by_node: by_node(&r.by_node(fr.nodes)),
                    top_granules: top_granules(r, top)
                        .into_iter()
                        .map(|g| granule_json(r, g))
                        .collect(),
                }
            })
            .collect()
    });
    IterationJson {
        format: FORMAT,
        version: VERSION,
        iteration,
        pid: fr.map_or(0, |f| f.pid),
        status: status_name(&m.status),
        samples: fr.map_or(0, |f| f.samples),
        lost: fr.map_or(0, |f| f.lost),
        rate_hz: fr.map_or(0, |f| f.rate_hz),
        nodes,
        regions,
    }
}

/// The text of the model now, as `--once` prints it.
pub fn text(m: &Model, iteration: u32, top: usize) -> String {
    let j = self::iteration(m, iteration, top);
    let who = if m.status == Status::Replay {
        "replay".to_string()
    } else {
        format!("pid {} {}", j.pid, j.status)
    };
    let mut s = format!(
        "rset-top: {who} · {} samples ({} lost) · {} Hz · iteration {}\n\n",
        j.samples, j.lost, j.rate_hz, j.iteration
    );
    s += &format!(
        "{:<5} {:<10} {:>7} {:>7} {:>9} {:>9}  THREADS\n",
        "NODE", "CPUS", "MEM", "FREE", "LOCAL/s", "REMOTE/s"
    );
    for n in &j.nodes {
        let cpus = if n.cpus.is_empty() {
            "-"
        } else {
            n.cpus.as_str()
        };
        s += &format!(
            "{:<5} {:<10} {:>7} {:>7} {:>9.0} {:>9.0}  {}\n",
            n.node,
            cpus,
            size(n.mem_total),
            size(n.mem_free),
            n.local_per_s,
            n.remote_per_s,
            n.threads.len()
        );
    }
    s += &format!(
        "\n{:<24} {:>6} {:>5} {:>7} {:>7}  BY NODE\n",
        "REGION", "SIZE", "GRAN", "REFS", "REMOTE"
    );
    for r in &j.regions {
        let nodes: Vec<String> = r
            .by_node
            .iter()
            .map(|n| format!("N{} {}", n.node, count(n.reads + n.writes)))
            .collect();
        s += &format!(
            "{:<24} {:>6} {:>5} {:>7} {:>6.1}%  {}\n",
            r.name,
            size(r.size),
            size(r.granularity),
            count(r.references),
            r.remote_share * 100.0,
            nodes.join("  ")
        );
    }
    if let Some(r) = j.regions.first() {
        s += &format!("\nhottest granules of {}:\n", r.name);
        for g in &r.top_granules {
            s += &format!(
                "  {:#x}  {:>7} refs  {:>5.1}% remote\n",
                g.start,
                count(g.references),
                g.remote_share * 100.0
            );
        }
    }
    s
}
