//! The machine as the allocator sees it: its nodes, read once from sysfs into
//! fixed tables ([`Machine`]), and the node of the CPU a thread runs on.
//!
//! Everything here runs inside the global allocator, so nothing here allocates
//! through it: the topology is read with raw `open`/`read` into stack buffers (not
//! with hwloc, which allocates), tables are fixed-size arrays of at most
//! [`MAX_NODES`] nodes, node sets are 64-bit masks, and errors are `Copy` values.

use std::ffi::CStr;
use std::sync::OnceLock;

use rset::NodeId;

use super::mi::{MI_ARENA_MAX, MI_ARENA_MIN};
use crate::error::NumaAllocError;
use crate::sys::{cpu, file};

/// The most NUMA nodes the allocator serves (node ids `0..MAX_NODES`). A policy
/// naming a node beyond it gets [`NumaAllocError::NoSuchNode`].
pub const MAX_NODES: usize = 64;

/// CPUs beyond this many are looked up with `getcpu(2)` rather than the table.
pub(super) const MAX_CPUS: usize = 4096;
/// "No node": an unknown CPU's node, a missing Remote node.
pub(super) const NO_NODE: u8 = u8::MAX;
const SYS_NODE: &str = "/sys/devices/system/node";

/// A set of node ids below [`MAX_NODES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct NodeMask(u64);

impl NodeMask {
    pub(super) fn with(self, n: u8) -> NodeMask {
        NodeMask(self.0 | (1 << n))
    }

    pub(crate) fn contains(self, n: u8) -> bool {
        (n as usize) < MAX_NODES && self.0 & (1 << n) != 0
    }

    pub(crate) fn count(self) -> usize {
        self.0.count_ones() as usize
    }

    /// The `i`-th node in increasing order (`i < count`).
    pub(crate) fn nth(self, i: usize) -> u8 {
        self.iter().nth(i).unwrap_or(NO_NODE)
    }

    pub(crate) fn iter(self) -> impl Iterator<Item = u8> {
        (0..MAX_NODES as u8).filter(move |&n| self.contains(n))
    }

    /// The nodes as the `u32`s `mbind` takes, in `buf`.
    pub(super) fn raw(self, buf: &mut [u32; MAX_NODES]) -> &[u32] {
        let mut k = 0;
        for n in self.iter() {
            buf[k] = n.into();
            k += 1;
        }
        &buf[..k]
    }
}

/// The machine as the allocator sees it: read once from sysfs, never reallocated.
pub(crate) struct Machine {
    /// Nodes that have memory (the global RSet's memory nodes).
    pub(super) memory: NodeMask,
    /// Node of each CPU, [`NO_NODE`] when unknown.
    pub(super) cpu_node: [u8; MAX_CPUS],
    /// `distance[a][b]` from sysfs (10 local, 20 remote when sysfs says nothing).
    pub(super) distance: [[u8; MAX_NODES]; MAX_NODES],
    /// The Remote node of each node: nearest other memory node, lowest id on ties.
    pub(super) remote_of: [u8; MAX_NODES],
    /// `MemTotal` of each node, bytes.
    pub(super) mem_bytes: [u64; MAX_NODES],
}

static MACHINE: OnceLock<Machine> = OnceLock::new();

/// The machine, discovered on first use.
#[inline]
pub(crate) fn machine() -> &'static Machine {
    MACHINE.get_or_init(Machine::discover)
}

impl Machine {
    fn discover() -> Machine {
        cpu::find_rseq();
        Machine::read_sysfs()
    }

    /// No node known yet: no memory, CPUs of no node, distances of 20 (10 from a
    /// node to itself).
    fn blank() -> Machine {
        let mut m = Machine {
            memory: NodeMask::default(),
            cpu_node: [NO_NODE; MAX_CPUS],
            distance: [[20; MAX_NODES]; MAX_NODES],
            remote_of: [NO_NODE; MAX_NODES],
            mem_bytes: [0; MAX_NODES],
        };
        for (i, row) in m.distance.iter_mut().enumerate() {
            row[i] = 10;
        }
        m
    }

    /// The tables, from sysfs (one node holding everything where it has no NUMA
    /// directory).
    fn read_sysfs() -> Machine {
        let mut m = Machine::blank();
        let mut buf = [0u8; 8192];
        let mut path = [0u8; 128];
        let mut online = NodeMask::default();
        match file::read_file(c"/sys/devices/system/node/online", &mut buf) {
            Some(list) => for_each_in_list(list, |n| {
                if (n as usize) < MAX_NODES {
                    online = online.with(n as u8);
                }
            }),
            None => {
                // A kernel without NUMA: one node with every CPU and all memory.
                m.memory = NodeMask::default().with(0);
                m.cpu_node = [0; MAX_CPUS];
                m.mem_bytes[0] = u64::MAX;
                return m;
            }
        }
        for n in online.iter() {
            if let Some(list) = file::read_file(node_file(&mut path, n, "cpulist"), &mut buf) {
                for_each_in_list(list, |cpu| {
                    if let Some(slot) = m.cpu_node.get_mut(cpu as usize) {
                        *slot = n;
                    }
                });
            }
            if let Some(text) = file::read_file(node_file(&mut path, n, "meminfo"), &mut buf) {
                m.mem_bytes[n as usize] = mem_total_kib(text).saturating_mul(1024);
            }
            if let Some(text) = file::read_file(node_file(&mut path, n, "distance"), &mut buf) {
                // One number per online node, in id order.
                for (to, d) in online.iter().zip(numbers(text)) {
                    m.distance[n as usize][to as usize] = d.min(u8::MAX as u32 - 1) as u8;
                }
            }
        }
        match file::read_file(c"/sys/devices/system/node/has_memory", &mut buf) {
            Some(list) => for_each_in_list(list, |n| {
                if online.contains_u32(n) {
                    m.memory = m.memory.with(n as u8);
                }
            }),
            None => {
                for n in online.iter() {
                    if m.mem_bytes[n as usize] > 0 {
                        m.memory = m.memory.with(n);
                    }
                }
            }
        }
        m.find_remotes(online);
        m
    }

    /// Sets the Remote node of each of `online`: the nearest other memory node,
    /// lowest id on ties.
    fn find_remotes(&mut self, online: NodeMask) {
        for n in online.iter() {
            self.remote_of[n as usize] = self
                .memory
                .iter()
                .filter(|&o| o != n)
                .min_by_key(|&o| (self.distance[n as usize][o as usize], o))
                .unwrap_or(NO_NODE);
        }
    }

    /// A machine of `distance.len()` nodes with CPUs, all with memory except
    /// `cpu_only`, `cpus_per_node` CPUs each in node order, distances as given.
    #[cfg(test)]
    pub(super) fn synthetic(distance: &[&[u8]], cpu_only: &[u8], cpus_per_node: usize) -> Machine {
        let mut m = Machine::blank();
        let mut online = NodeMask::default();
        for (a, row) in distance.iter().enumerate() {
            let n = a as u8;
            online = online.with(n);
            if !cpu_only.contains(&n) {
                m.memory = m.memory.with(n);
                m.mem_bytes[a] = 1 << 30;
            }
            m.distance[a][..row.len()].copy_from_slice(row);
            m.cpu_node[a * cpus_per_node..(a + 1) * cpus_per_node].fill(n);
        }
        m.find_remotes(online);
        m
    }

    /// The node of `id` as an index, if it is a memory node we serve.
    pub(super) fn memory_node(&self, id: NodeId) -> Result<u8, NumaAllocError> {
        match u8::try_from(id.0) {
            Ok(n) if self.memory.contains(n) => Ok(n),
            _ => Err(NumaAllocError::NoSuchNode { node: id }),
        }
    }

    /// The mask of a node set, every node of which must be a memory node.
    pub(super) fn mask_of(&self, ids: &[NodeId]) -> Result<NodeMask, NumaAllocError> {
        if ids.is_empty() {
            return Err(NumaAllocError::NoNodes);
        }
        ids.iter().try_fold(NodeMask::default(), |mask, &id| {
            self.memory_node(id).map(|n| mask.with(n))
        })
    }

    /// The node of `mask` nearest to `from` (itself if in it), lowest id on ties.
    pub(super) fn nearest(&self, from: u8, mask: NodeMask) -> u8 {
        if mask.contains(from) {
            return from;
        }
        match self.distance.get(from as usize) {
            Some(row) => mask
                .iter()
                .min_by_key(|&n| (row[n as usize], n))
                .unwrap_or(NO_NODE),
            None => mask.nth(0),
        }
    }

    /// Bytes of the arena reserved for `node`: its memory, between 64 MiB and
    /// 16 GiB, in whole 32 MiB steps.
    pub(super) fn arena_len(&self, node: u8) -> usize {
        let mem = usize::try_from(self.mem_bytes[node as usize]).unwrap_or(usize::MAX);
        let len = mem.clamp(2 * MI_ARENA_MIN, MI_ARENA_MAX);
        len.div_ceil(MI_ARENA_MIN) * MI_ARENA_MIN
    }
}

impl NodeMask {
    fn contains_u32(self, n: u32) -> bool {
        u8::try_from(n).is_ok_and(|n| self.contains(n))
    }
}

/// `/sys/devices/system/node/node<n>/<leaf>` as a C string in `buf`.
fn node_file<'b>(buf: &'b mut [u8; 128], node: u8, leaf: &str) -> &'b CStr {
    let mut k = 0;
    let mut push = |bytes: &[u8]| {
        for &b in bytes {
            if k < buf.len() - 1 {
                buf[k] = b;
                k += 1;
            }
        }
    };
    push(SYS_NODE.as_bytes());
    push(b"/node");
    let mut digits = [0u8; 3];
    let mut v = node;
    let mut d = digits.len();
    loop {
        d -= 1;
        digits[d] = b'0' + v % 10;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    push(&digits[d..]);
    push(b"/");
    push(leaf.as_bytes());
    buf[k] = 0;
    CStr::from_bytes_until_nul(&buf[..=k]).unwrap_or(c"")
}

/// Calls `f` for every id of a kernel list (`0-3,8,10-11`).
fn for_each_in_list(text: &[u8], mut f: impl FnMut(u32)) {
    for part in text.split(|&b| b == b',') {
        let part = part.trim_ascii();
        if part.is_empty() {
            continue;
        }
        let (lo, hi) = match part.iter().position(|&b| b == b'-') {
            Some(i) => (number(&part[..i]), number(&part[i + 1..])),
            None => (number(part), number(part)),
        };
        if let (Some(lo), Some(hi)) = (lo, hi) {
            for id in lo..=hi.min(lo.saturating_add(1 << 16)) {
                f(id);
            }
        }
    }
}

fn number(text: &[u8]) -> Option<u32> {
    let text = text.trim_ascii();
    if text.is_empty() || !text.iter().all(u8::is_ascii_digit) {
        return None;
    }
    text.iter().try_fold(0u32, |v, &b| {
        v.checked_mul(10)?.checked_add((b - b'0').into())
    })
}

/// The whitespace-separated numbers of `text`.
fn numbers(text: &[u8]) -> impl Iterator<Item = u32> + '_ {
    text.split(u8::is_ascii_whitespace).filter_map(number)
}

/// `MemTotal` in KiB from a node's `meminfo` (`Node 0 MemTotal:  524288 kB`).
fn mem_total_kib(text: &[u8]) -> u64 {
    const KEY: &[u8] = b"MemTotal:";
    text.windows(KEY.len())
        .position(|w| w == KEY)
        .and_then(|at| {
            let rest = &text[at + KEY.len()..];
            let line = rest.split(|&b| b == b'\n').next().unwrap_or(rest);
            numbers(line).next()
        })
        .map_or(0, u64::from)
}

/// The node of the CPU the calling thread runs on now: `sched_getcpu` (no system
/// call with glibc's rseq) and the CPU table, or `getcpu(2)` for a CPU beyond it.
/// [`u8::MAX`] for a node beyond [`MAX_NODES`].
#[inline]
pub(crate) fn current_node(m: &Machine) -> u8 {
    match m.cpu_node.get(cpu::current_cpu() as usize) {
        Some(&n) if n != NO_NODE => n,
        _ => current_node_slow(),
    }
}

#[cold]
pub(super) fn current_node_slow() -> u8 {
    rset::sys::affinity::getcpu()
        .ok()
        .and_then(|(_, node)| u8::try_from(node).ok())
        .filter(|&n| (n as usize) < MAX_NODES)
        .unwrap_or(NO_NODE)
}

/// The raw node id for messages (`u8::MAX` stays a large, impossible id).
pub(crate) fn node_id(n: u8) -> NodeId {
    NodeId(if n == NO_NODE { u32::MAX } else { n.into() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_numbers_and_meminfo_parse_without_allocating_helpers() {
        let mut got = [0u32; 8];
        let mut k = 0;
        for_each_in_list(b"0-2,5, 7\n", |id| {
            got[k] = id;
            k += 1;
        });
        assert_eq!(&got[..k], &[0, 1, 2, 5, 7]);
        assert_eq!(
            numbers(b"10 20  30\n").collect::<Vec<_>>(),
            vec![10, 20, 30]
        );
        assert_eq!(
            mem_total_kib(b"Node 0 MemTotal:        7825620 kB\nNode 0 MemFree: 1 kB\n"),
            7_825_620
        );
        assert_eq!(number(b"x1"), None);
    }

    #[test]
    fn node_files_are_named_like_sysfs() {
        let mut buf = [0u8; 128];
        assert_eq!(
            node_file(&mut buf, 12, "cpulist").to_str().unwrap(),
            "/sys/devices/system/node/node12/cpulist"
        );
    }

    #[test]
    fn masks_count_and_index() {
        let m = NodeMask::default().with(1).with(3).with(63);
        assert_eq!(m.count(), 3);
        assert_eq!(m.nth(0), 1);
        assert_eq!(m.nth(2), 63);
        assert!(!m.contains(64));
        let mut buf = [0; MAX_NODES];
        assert_eq!(m.raw(&mut buf), &[1, 3, 63]);
    }

    #[test]
    #[cfg_attr(miri, ignore)] // reads sysfs and the thread's CPU
    fn the_host_machine_has_a_memory_node_and_a_cpu_table() {
        let m = machine();
        assert!(m.memory.count() >= 1);
        let here = current_node(m);
        assert!(m.memory.contains(here), "node {here}");
    }

    #[test]
    fn remote_nodes_are_the_nearest_other_memory_node() {
        let m = Machine::synthetic(&[&[10, 30, 20], &[30, 10, 20], &[20, 20, 10]], &[], 2);
        assert_eq!(m.remote_of[..3], [2, 2, 0]);
        assert_eq!(m.nearest(0, NodeMask::default().with(1).with(2)), 2);
        assert_eq!(
            m.memory_node(NodeId(5)),
            Err(NumaAllocError::NoSuchNode { node: NodeId(5) })
        );
        assert_eq!(m.mask_of(&[]), Err(NumaAllocError::NoNodes));
        let cpu_only = Machine::synthetic(&[&[10, 20], &[20, 10]], &[1], 1);
        assert_eq!(cpu_only.remote_of[..2], [NO_NODE, 0]);
    }

    #[test]
    fn arenas_take_the_node_memory_in_32_mib_steps() {
        let mut m = Machine::synthetic(&[&[10]], &[], 1);
        assert_eq!(m.arena_len(0), 1 << 30);
        m.mem_bytes[0] = 1;
        assert_eq!(m.arena_len(0), 2 * MI_ARENA_MIN);
        m.mem_bytes[0] = (100 << 20) + 1;
        assert_eq!(m.arena_len(0), 128 << 20);
        m.mem_bytes[0] = u64::MAX;
        assert_eq!(m.arena_len(0), MI_ARENA_MAX);
    }
}
