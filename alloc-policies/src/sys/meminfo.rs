//! How much memory a node can still give: `/sys/devices/system/node/nodeN/meminfo`
//! and the watermarks of `/proc/zoneinfo`.
//!
//! A page fault under `MPOL_BIND` that finds its nodes full does not fail: the kernel
//! reclaims what it can and then runs the OOM killer, which may kill this process
//! or another one. A region therefore compares, before it populates, the pages each
//! node must receive with [`NodeMemory::usable_bytes`], and refuses with an error
//! when they do not fit. The figure is an estimate taken at one instant (other
//! processes allocate meanwhile), so the check narrows the window, it cannot close it.

use std::io;

use rset::NodeId;

/// A node's memory as the kernel reports it, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NodeMemory {
    /// `MemTotal`.
    pub total: u64,
    /// `MemFree`.
    pub free: u64,
    /// `Active(file) + Inactive(file)`: page cache, which reclaim can drop or write
    /// back (shared memory and tmpfs are not in it: they live on the anon lists).
    pub file: u64,
    /// The sum of the `high` watermarks of the node's zones: memory the kernel
    /// keeps free for itself (kswapd reclaims until free memory is above it).
    pub reserve: u64,
}

impl NodeMemory {
    /// What a populating fault can take before the kernel has to reclaim beyond
    /// the page cache or kill: `free + file - reserve`, at least 0.
    pub fn usable_bytes(&self) -> u64 {
        (self.free + self.file).saturating_sub(self.reserve)
    }
}

/// Reads the memory of `node`.
///
/// # Errors
/// When `/sys/devices/system/node/nodeN/meminfo` cannot be read (no such node) or
/// lacks `MemFree`. A missing `/proc/zoneinfo` counts as no reserve.
pub fn node_memory(node: NodeId) -> io::Result<NodeMemory> {
    let path = format!("/sys/devices/system/node/node{}/meminfo", node.0);
    let text = std::fs::read_to_string(&path)
        .map_err(|e| io::Error::new(e.kind(), format!("reading {path}: {e}")))?;
    let mut mem = parse_node_meminfo(&text).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{path} has no MemFree line"),
        )
    })?;
    if let Ok(zoneinfo) = std::fs::read_to_string("/proc/zoneinfo") {
        mem.reserve = parse_zoneinfo_high(&zoneinfo, node.0) * crate::sys::mman::page_size() as u64;
    }
    Ok(mem)
}

/// Parses a node `meminfo` file (`Node 0 MemFree:   123 kB` lines); `None` when
/// it has no `MemFree`.
pub fn parse_node_meminfo(text: &str) -> Option<NodeMemory> {
    let mut mem = NodeMemory::default();
    let mut seen_free = false;
    for line in text.lines() {
        let mut words = line.split_whitespace();
        // "Node", the node number, the key, the value, "kB".
        let (Some(_), Some(_), Some(key), Some(value)) =
            (words.next(), words.next(), words.next(), words.next())
        else {
            continue;
        };
        let Ok(value) = value.parse::<u64>() else {
            continue;
        };
        let bytes = if words.next() == Some("kB") {
            value * 1024
        } else {
            value
        };
        match key {
            "MemTotal:" => mem.total = bytes,
            "MemFree:" => {
                mem.free = bytes;
                seen_free = true;
            }
            "Active(file):" | "Inactive(file):" => mem.file += bytes,
            _ => {}
        }
    }
    seen_free.then_some(mem)
}

/// The sum of the `high` watermarks (pages) of `node`'s zones in `/proc/zoneinfo`.
pub fn parse_zoneinfo_high(text: &str, node: u32) -> u64 {
    let mut in_node = false;
    let mut pages = 0;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("Node ") {
            // "Node 1, zone   Normal"
            in_node = rest
                .split(',')
                .next()
                .and_then(|n| n.trim().parse::<u32>().ok())
                == Some(node);
            continue;
        }
        if !in_node {
            continue;
        }
        let mut words = line.split_whitespace();
        if words.next() == Some("high") {
            if let Some(v) = words.next().and_then(|v| v.parse::<u64>().ok()) {
                pages += v;
            }
        }
    }
    pages
}

/// Bytes of transparent huge pages (`AnonHugePages` of `/proc/self/smaps`) in the
/// mappings that overlap `[start, end)`.
///
/// # Errors
/// When `/proc/self/smaps` cannot be read.
pub fn anon_huge_bytes(start: usize, end: usize) -> io::Result<u64> {
    let text = std::fs::read_to_string("/proc/self/smaps")?;
    Ok(parse_smaps_anon_huge(&text, start, end))
}

/// Sums `AnonHugePages` over the `smaps` entries that overlap `[start, end)`.
pub fn parse_smaps_anon_huge(text: &str, start: usize, end: usize) -> u64 {
    let mut inside = false;
    let mut bytes = 0;
    for line in text.lines() {
        let mut words = line.split_whitespace();
        let Some(first) = words.next() else {
            continue;
        };
        if let Some((a, b)) = first.split_once('-') {
            if let (Ok(a), Ok(b)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16)) {
                inside = a < end && b > start;
                continue;
            }
        }
        if inside && first == "AnonHugePages:" {
            if let Some(kib) = words.next().and_then(|v| v.parse::<u64>().ok()) {
                bytes += kib * 1024;
            }
        }
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_meminfo_is_read_in_bytes() {
        let text = "Node 1 MemTotal:         514260 kB\n\
                    Node 1 MemFree:          460428 kB\n\
                    Node 1 Active(file):          10 kB\n\
                    Node 1 Inactive(file):        20 kB\n\
                    Node 1 HugePages_Total:     0\n";
        let m = parse_node_meminfo(text).unwrap();
        assert_eq!(m.total, 514260 * 1024);
        assert_eq!(m.free, 460428 * 1024);
        assert_eq!(m.file, 30 * 1024);
        assert_eq!(parse_node_meminfo("Node 1 MemTotal: 5 kB\n"), None);
    }

    #[test]
    fn zoneinfo_high_watermarks_are_summed_per_node() {
        let text = "Node 0, zone      DMA\n  pages free     3840\n        min      33\n\
                    \x20       high     49\n    cpu: 0\n              high:  12\n\
                    Node 0, zone   Normal\n        high     100\n\
                    Node 1, zone   Normal\n        high     7\n";
        assert_eq!(parse_zoneinfo_high(text, 0), 149);
        assert_eq!(parse_zoneinfo_high(text, 1), 7);
        assert_eq!(parse_zoneinfo_high(text, 2), 0);
    }

    #[test]
    fn smaps_huge_pages_are_summed_over_overlapping_mappings() {
        let text = "1000-3000 rw-p 00000000 00:00 0\n\
                    Size:                  8 kB\n\
                    AnonHugePages:      2048 kB\n\
                    3000-5000 rw-p 00000000 00:00 0 [heap]\n\
                    AnonHugePages:         4 kB\n\
                    VmFlags: rd wr mr mw me ac\n";
        assert_eq!(parse_smaps_anon_huge(text, 0x2000, 0x2001), 2048 * 1024);
        assert_eq!(parse_smaps_anon_huge(text, 0x2000, 0x4000), 2052 * 1024);
        assert_eq!(parse_smaps_anon_huge(text, 0x5000, 0x6000), 0);
    }

    #[test]
    fn usable_memory_never_goes_negative() {
        let m = NodeMemory {
            total: 10,
            free: 3,
            file: 2,
            reserve: 9,
        };
        assert_eq!(m.usable_bytes(), 0);
    }
}
