//! The machine's layout as plain data: NUMA nodes, packages, cores and PUs.
//!
//! A [`Topology`] is read once from hwloc (the running machine, a synthetic
//! description, or an XML file) and copied into plain vectors of ids, so the rest
//! of the crate, and its tests, never touch hwloc objects. It can also be built
//! by hand with [`Topology::from_layout`].
//!
//! Each PU belongs to exactly one NUMA node, the one the OS gives it: the first
//! NUMA node attached to the PU's nearest ancestor that has memory attached.
//! A node to which no PU belongs is *CPU-less* (high-bandwidth memory, CXL
//! expanders, ...), even though hwloc gives it the CPUs of its parent as locality.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hwlocality::object::TopologyObject;
use hwlocality::object::types::ObjectType;
use serde::Serialize;

use crate::set::{CpuId, CpuSet, NodeId, NodeSet};

/// Distance from a node to itself when hwloc reports no distance matrix.
pub const ASSUMED_LOCAL_DISTANCE: u64 = 10;
/// Distance between two nodes when hwloc reports no distance matrix.
pub const ASSUMED_REMOTE_DISTANCE: u64 = 20;

/// A NUMA node: some memory and the CPUs that are local to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Node {
    /// The OS number of the node.
    pub id: NodeId,
    /// The PUs that belong to this node (empty for a CPU-less node).
    pub cpus: CpuSet,
    /// Memory of the node in bytes (0 if hwloc does not know).
    pub memory_bytes: u64,
    /// Distance to every node of the topology, in [`Topology::nodes`] order;
    /// the entry for this node itself is the local distance.
    pub distances: Vec<u64>,
    /// Truth that no PU belongs to this node.
    pub cpu_less: bool,
}

/// A processor package (socket).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Package {
    /// Position in [`Topology::packages`].
    pub index: usize,
    /// The OS number of the package, when hwloc has one.
    pub os_index: Option<u32>,
    /// The PUs of the package.
    pub cpus: CpuSet,
    /// The nodes its PUs belong to.
    pub nodes: NodeSet,
}

/// A physical core and its hardware threads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Core {
    /// Position in [`Topology::cores`].
    pub index: usize,
    /// Position of its package in [`Topology::packages`].
    pub package: usize,
    /// Its PUs in hwloc's logical order: the first is the core's first hardware
    /// thread, the others are its SMT siblings.
    pub pus: Vec<CpuId>,
}

/// A processing unit: one hardware thread, what the OS calls a CPU.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Pu {
    /// The OS number of the CPU.
    pub id: CpuId,
    /// Position of its core in [`Topology::cores`].
    pub core: usize,
    /// Position of its package in [`Topology::packages`].
    pub package: usize,
    /// The NUMA node it belongs to.
    pub node: NodeId,
}

/// One NUMA node of a hand-built topology, for [`Topology::from_layout`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeLayout {
    /// The node's OS number.
    pub id: NodeId,
    /// Its memory in bytes.
    pub memory_bytes: u64,
    /// Its cores, each as the list of its PUs (first hardware thread first).
    /// No cores makes a CPU-less node.
    pub cores: Vec<Vec<CpuId>>,
}

/// Why a topology could not be read or built. Carries the offending input.
#[derive(Debug, thiserror::Error)]
pub enum TopologyError {
    /// hwloc could not discover the running machine.
    #[error("cannot discover this machine's topology: {reason}")]
    System {
        /// What hwloc said.
        reason: String,
    },
    /// hwloc rejected a synthetic description.
    #[error("`{description}` is not a valid hwloc synthetic topology description")]
    Synthetic {
        /// The description that was given.
        description: String,
    },
    /// An XML file could not be read.
    #[error("cannot read topology XML file `{}`: {error}", path.display())]
    XmlRead {
        /// The path that was given.
        path: PathBuf,
        /// Why it could not be read.
        #[source]
        error: std::io::Error,
    },
    /// hwloc rejected an XML file.
    #[error("`{}` is not a valid hwloc XML topology", path.display())]
    XmlInvalid {
        /// The path that was given.
        path: PathBuf,
    },
    /// A `--topology` value that is none of `system`, `synthetic:DESC`, `xml:FILE`.
    #[error("unknown topology source `{input}` (expected system, synthetic:DESC or xml:FILE)")]
    UnknownSource {
        /// The value that was given.
        input: String,
    },
    /// hwloc reported something this crate cannot represent.
    #[error("unusable topology from {input}: {reason}")]
    Unusable {
        /// Where the topology came from.
        input: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The same node appears twice.
    #[error("node {node} appears twice in the topology")]
    DuplicateNode {
        /// The repeated node.
        node: NodeId,
    },
    /// The same CPU appears twice.
    #[error("CPU {cpu} appears twice in the topology")]
    DuplicateCpu {
        /// The repeated CPU.
        cpu: CpuId,
    },
    /// A core without PUs in a hand-built layout.
    #[error("a core of node {node} has no CPU")]
    EmptyCore {
        /// The node the core was given for.
        node: NodeId,
    },
    /// A topology without NUMA nodes or without CPUs.
    #[error("the topology has no {missing}")]
    Missing {
        /// `"NUMA node"` or `"CPU"`.
        missing: &'static str,
    },
    /// A hand-built distance matrix that is not square over the nodes.
    #[error("distance row {row} has {len} entries for {nodes} nodes")]
    BadDistances {
        /// Number of nodes.
        nodes: usize,
        /// The offending row (or the number of rows, when rows are missing).
        row: usize,
        /// Its length.
        len: usize,
    },
}

/// The layout of a machine as plain data. Cheap to clone (shared).
///
/// Nodes and PUs are sorted by OS number; cores and packages are in hwloc's
/// logical order. Two topologies are equal when their data is.
#[derive(Clone)]
pub struct Topology {
    data: Arc<Data>,
}

#[derive(Debug, PartialEq, Eq, Serialize)]
struct Data {
    source: String,
    nodes: Vec<Node>,
    packages: Vec<Package>,
    cores: Vec<Core>,
    pus: Vec<Pu>,
    distances_assumed: bool,
    #[serde(skip)]
    all_cpus: CpuSet,
    #[serde(skip)]
    all_nodes: NodeSet,
}

/// What a source hands to [`Topology::assemble`]: cores carry their PUs and the
/// node of each.
struct Raw {
    source: String,
    nodes: Vec<(NodeId, u64)>,
    packages: Vec<Option<u32>>,
    cores: Vec<(usize, Vec<(CpuId, NodeId)>)>,
    /// Rows and columns in the order of `nodes`, when known.
    distances: Option<Vec<Vec<u64>>>,
}

impl Topology {
    /// The running machine, as hwloc discovers it.
    ///
    /// # Errors
    /// [`TopologyError::System`] when hwloc fails.
    pub fn from_system() -> Result<Self, TopologyError> {
        let topo = hwlocality::Topology::new().map_err(|e| TopologyError::System {
            reason: e.to_string(),
        })?;
        Self::from_hwloc(&topo, "system".to_owned())
    }

    /// A machine described in hwloc's synthetic syntax, such as
    /// `"pack:2 numa:2 core:4 pu:2"`. hwloc gives such topologies no distances,
    /// so they get the assumed ones (see [`Topology::distances_assumed`]).
    ///
    /// # Errors
    /// [`TopologyError::Synthetic`] when hwloc rejects the description.
    pub fn from_synthetic(description: &str) -> Result<Self, TopologyError> {
        let bad = || TopologyError::Synthetic {
            description: description.to_owned(),
        };
        let topo = hwlocality::Topology::builder()
            .from_synthetic(description)
            .map_err(|_| bad())?
            .build()
            .map_err(|_| bad())?;
        Self::from_hwloc(&topo, format!("synthetic:{description}"))
    }

    /// A machine saved as an hwloc XML file (`lstopo machine.xml`).
    ///
    /// # Errors
    /// [`TopologyError::XmlRead`] when the file cannot be read,
    /// [`TopologyError::XmlInvalid`] when hwloc rejects it.
    pub fn from_xml_file(path: impl AsRef<Path>) -> Result<Self, TopologyError> {
        let path = path.as_ref();
        let xml = std::fs::read_to_string(path).map_err(|error| TopologyError::XmlRead {
            path: path.to_owned(),
            error,
        })?;
        let bad = || TopologyError::XmlInvalid {
            path: path.to_owned(),
        };
        let topo = hwlocality::Topology::builder()
            .from_xml(&xml)
            .map_err(|_| bad())?
            .build()
            .map_err(|_| bad())?;
        Self::from_hwloc(&topo, format!("xml:{}", path.display()))
    }

    /// Reads a `--topology` value: `system`, `synthetic:DESC` or `xml:FILE`.
    ///
    /// # Errors
    /// [`TopologyError::UnknownSource`] for any other form, and the errors of
    /// the constructor it picks.
    pub fn from_source(source: &str) -> Result<Self, TopologyError> {
        if source == "system" {
            Self::from_system()
        } else if let Some(desc) = source.strip_prefix("synthetic:") {
            Self::from_synthetic(desc)
        } else if let Some(file) = source.strip_prefix("xml:") {
            Self::from_xml_file(file)
        } else {
            Err(TopologyError::UnknownSource {
                input: source.to_owned(),
            })
        }
    }

    /// Builds a topology by hand: one package per node that has cores.
    /// `distances`, when given, has one row per node in the order of `nodes`;
    /// without it the assumed distances are used.
    ///
    /// # Errors
    /// A node or CPU given twice, a core without PUs, no nodes or no CPUs at
    /// all, or a distance matrix that is not square over the nodes.
    pub fn from_layout(
        nodes: Vec<NodeLayout>,
        distances: Option<Vec<Vec<u64>>>,
    ) -> Result<Self, TopologyError> {
        if let Some(rows) = &distances {
            let n = nodes.len();
            if rows.len() != n {
                return Err(TopologyError::BadDistances {
                    nodes: n,
                    row: rows.len(),
                    len: n,
                });
            }
            if let Some((row, r)) = rows.iter().enumerate().find(|(_, r)| r.len() != n) {
                return Err(TopologyError::BadDistances {
                    nodes: n,
                    row,
                    len: r.len(),
                });
            }
        }
        let mut raw = Raw {
            source: "layout".to_owned(),
            nodes: nodes.iter().map(|n| (n.id, n.memory_bytes)).collect(),
            packages: Vec::new(),
            cores: Vec::new(),
            distances,
        };
        for node in &nodes {
            if node.cores.is_empty() {
                continue;
            }
            let package = raw.packages.len();
            raw.packages.push(Some(node.id.0));
            for core in &node.cores {
                if core.is_empty() {
                    return Err(TopologyError::EmptyCore { node: node.id });
                }
                raw.cores
                    .push((package, core.iter().map(|&c| (c, node.id)).collect()));
            }
        }
        Self::assemble(raw)
    }

    /// Copies what the crate needs out of an hwloc topology.
    fn from_hwloc(topo: &hwlocality::Topology, source: String) -> Result<Self, TopologyError> {
        let unusable = |reason: &str| TopologyError::Unusable {
            input: source.clone(),
            reason: reason.to_owned(),
        };
        let os_id = |obj: &TopologyObject| -> Result<u32, TopologyError> {
            obj.os_index()
                .and_then(|i| u32::try_from(i).ok())
                .ok_or_else(|| unusable("an object has no OS number"))
        };
        let mut nodes = Vec::new();
        for node in topo.objects_with_type(ObjectType::NUMANode) {
            nodes.push((NodeId(os_id(node)?), node.total_memory()));
        }
        let mut packages: Vec<Option<u32>> = topo
            .objects_with_type(ObjectType::Package)
            .map(|p| p.os_index().and_then(|i| u32::try_from(i).ok()))
            .collect();
        let mut implicit_package = None;
        let mut core_of: HashMap<u64, usize> = HashMap::new();
        let mut cores: Vec<(usize, Vec<(CpuId, NodeId)>)> = Vec::new();
        for pu in topo.objects_with_type(ObjectType::PU) {
            let id = CpuId(os_id(pu)?);
            let node = pu
                .ancestors()
                .find_map(first_numa_child)
                .map(|n| os_id(n).map(NodeId))
                .transpose()?
                .or_else(|| nodes.first().map(|n| n.0))
                .ok_or_else(|| unusable("a PU has no NUMA node"))?;
            let package = match pu.first_ancestor_with_type(ObjectType::Package) {
                Some(p) => p.logical_index(),
                None => *implicit_package.get_or_insert_with(|| {
                    packages.push(None);
                    packages.len() - 1
                }),
            };
            let core = pu.first_ancestor_with_type(ObjectType::Core);
            match core.and_then(|c| core_of.get(&c.global_persistent_index())) {
                Some(&at) => cores[at].1.push((id, node)),
                None => {
                    if let Some(c) = core {
                        core_of.insert(c.global_persistent_index(), cores.len());
                    }
                    cores.push((package, vec![(id, node)]));
                }
            }
        }
        let distances = hwloc_distances(topo, &nodes);
        Self::assemble(Raw {
            source,
            nodes,
            packages,
            cores,
            distances,
        })
    }

    /// Checks the raw parts and fills in everything derived from them.
    fn assemble(raw: Raw) -> Result<Self, TopologyError> {
        if raw.nodes.is_empty() {
            return Err(TopologyError::Missing {
                missing: "NUMA node",
            });
        }
        // Sort nodes by id, carrying the distance rows and columns along.
        let mut order: Vec<usize> = (0..raw.nodes.len()).collect();
        order.sort_by_key(|&i| raw.nodes[i].0);
        if let Some(w) = order
            .windows(2)
            .find(|w| raw.nodes[w[0]].0 == raw.nodes[w[1]].0)
        {
            return Err(TopologyError::DuplicateNode {
                node: raw.nodes[w[0]].0,
            });
        }
        let distances_assumed = raw.distances.is_none();
        let mut nodes: Vec<Node> = order
            .iter()
            .map(|&i| Node {
                id: raw.nodes[i].0,
                cpus: CpuSet::new(),
                memory_bytes: raw.nodes[i].1,
                distances: order
                    .iter()
                    .map(|&j| match &raw.distances {
                        Some(m) => m[i][j],
                        None if i == j => ASSUMED_LOCAL_DISTANCE,
                        None => ASSUMED_REMOTE_DISTANCE,
                    })
                    .collect(),
                cpu_less: true,
            })
            .collect();
        let mut packages: Vec<Package> = (raw.packages.iter().enumerate())
            .map(|(index, &os_index)| Package {
                index,
                os_index,
                cpus: CpuSet::new(),
                nodes: NodeSet::new(),
            })
            .collect();
        let mut cores = Vec::with_capacity(raw.cores.len());
        let mut pus = Vec::new();
        for (index, (package, members)) in raw.cores.into_iter().enumerate() {
            for &(id, node) in &members {
                let at = nodes.binary_search_by_key(&node, |n| n.id).map_err(|_| {
                    TopologyError::Missing {
                        missing: "NUMA node for a CPU",
                    }
                })?;
                nodes[at].cpus.insert(id);
                nodes[at].cpu_less = false;
                packages[package].cpus.insert(id);
                packages[package].nodes.insert(node);
                pus.push(Pu {
                    id,
                    core: index,
                    package,
                    node,
                });
            }
            cores.push(Core {
                index,
                package,
                pus: members.into_iter().map(|(id, _)| id).collect(),
            });
        }
        if pus.is_empty() {
            return Err(TopologyError::Missing { missing: "CPU" });
        }
        pus.sort_by_key(|p| p.id);
        if let Some(w) = pus.windows(2).find(|w| w[0].id == w[1].id) {
            return Err(TopologyError::DuplicateCpu { cpu: w[0].id });
        }
        let all_cpus = pus.iter().map(|p| p.id).collect();
        let all_nodes = nodes.iter().map(|n| n.id).collect();
        Ok(Topology {
            data: Arc::new(Data {
                source: raw.source,
                nodes,
                packages,
                cores,
                pus,
                distances_assumed,
                all_cpus,
                all_nodes,
            }),
        })
    }

    /// Where the topology came from: `system`, `synthetic:DESC`, `xml:FILE` or
    /// `layout`.
    pub fn source(&self) -> &str {
        &self.data.source
    }

    /// The NUMA nodes, by increasing id.
    pub fn nodes(&self) -> &[Node] {
        &self.data.nodes
    }

    /// The packages, in hwloc's logical order.
    pub fn packages(&self) -> &[Package] {
        &self.data.packages
    }

    /// The physical cores, in hwloc's logical order.
    pub fn cores(&self) -> &[Core] {
        &self.data.cores
    }

    /// The PUs (CPUs), by increasing id.
    pub fn pus(&self) -> &[Pu] {
        &self.data.pus
    }

    /// Truth that hwloc gave no distance matrix, so the node distances are the
    /// assumed [`ASSUMED_LOCAL_DISTANCE`] and [`ASSUMED_REMOTE_DISTANCE`].
    pub fn distances_assumed(&self) -> bool {
        self.data.distances_assumed
    }

    /// Every CPU of the machine.
    pub fn cpu_ids(&self) -> &CpuSet {
        &self.data.all_cpus
    }

    /// Every NUMA node of the machine.
    pub fn node_ids(&self) -> &NodeSet {
        &self.data.all_nodes
    }

    /// The node with this id, if the machine has it.
    pub fn node(&self, id: NodeId) -> Option<&Node> {
        let nodes = &self.data.nodes;
        nodes
            .binary_search_by_key(&id, |n| n.id)
            .ok()
            .map(|i| &nodes[i])
    }

    /// The PU with this id, if the machine has it.
    pub fn pu(&self, id: CpuId) -> Option<&Pu> {
        let pus = &self.data.pus;
        pus.binary_search_by_key(&id, |p| p.id)
            .ok()
            .map(|i| &pus[i])
    }

    /// The distance from node `from` to node `to`, if both exist.
    pub fn distance(&self, from: NodeId, to: NodeId) -> Option<u64> {
        let col = self.data.nodes.binary_search_by_key(&to, |n| n.id).ok()?;
        self.node(from).map(|n| n.distances[col])
    }

    /// The CPUs of the given nodes (unknown nodes contribute nothing).
    pub fn cpus_of_nodes(&self, nodes: &NodeSet) -> CpuSet {
        nodes
            .iter()
            .filter_map(|id| self.node(id))
            .flat_map(|n| n.cpus.iter())
            .collect()
    }

    /// The nodes the given CPUs belong to (unknown CPUs contribute nothing).
    pub fn nodes_of_cpus(&self, cpus: &CpuSet) -> NodeSet {
        cpus.iter()
            .filter_map(|id| self.pu(id))
            .map(|p| p.node)
            .collect()
    }

    /// Truth that both handles share the same data (a cheap check that implies
    /// equality).
    pub fn ptr_eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.data, &other.data)
    }
}

/// The first NUMA node attached to `obj`, looking through memory-side caches.
fn first_numa_child(obj: &TopologyObject) -> Option<&TopologyObject> {
    obj.memory_children().find_map(|child| {
        if child.object_type() == ObjectType::NUMANode {
            Some(child)
        } else {
            first_numa_child(child)
        }
    })
}

/// The NUMA latency matrix in the order of `nodes`, when hwloc has one that
/// covers every node.
fn hwloc_distances(topo: &hwlocality::Topology, nodes: &[(NodeId, u64)]) -> Option<Vec<Vec<u64>>> {
    use hwlocality::object::distance::DistancesKind;
    let all = topo.distances_with_type(None, ObjectType::NUMANode).ok()?;
    let matrix = all
        .iter()
        .find(|d| d.kind().contains(DistancesKind::MEANS_LATENCY))
        .or_else(|| all.first())?;
    // Column of each of `nodes` in the matrix.
    let ids: Vec<Option<u32>> = matrix
        .objects()
        .map(|o| {
            o.and_then(|o| o.os_index())
                .and_then(|i| u32::try_from(i).ok())
        })
        .collect();
    let cols: Vec<usize> = nodes
        .iter()
        .map(|(id, _)| ids.iter().position(|&x| x == Some(id.0)))
        .collect::<Option<_>>()?;
    let n = ids.len();
    let values = matrix.distances();
    Some(
        cols.iter()
            .map(|&r| cols.iter().map(|&c| values[r * n + c]).collect())
            .collect(),
    )
}

impl PartialEq for Topology {
    fn eq(&self, other: &Self) -> bool {
        self.ptr_eq(other) || self.data == other.data
    }
}

impl Eq for Topology {}

impl fmt::Debug for Topology {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.data.fmt(f)
    }
}

impl Serialize for Topology {
    /// `{"source", "nodes", "packages", "cores", "pus", "distances_assumed"}`.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.data.serialize(s)
    }
}
