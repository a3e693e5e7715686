//! The CPU caches, as Linux describes them in
//! `/sys/devices/system/cpu/cpuN/cache/index*/`.

use serde::Serialize;

use super::size::parse_size;

/// One data or unified cache level of a CPU.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cache {
    /// 1, 2, 3, ...
    pub level: u32,
    /// Bytes of one instance (the share one core sees, not the sum over cores).
    pub size_bytes: usize,
}

/// The data and unified caches of `cpu`, by level (instruction caches left out);
/// empty when sysfs does not say (as in many emulators).
pub fn caches_of(cpu: u32) -> Vec<Cache> {
    let dir = format!("/sys/devices/system/cpu/cpu{cpu}/cache");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut caches = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        let read = |name: &str| std::fs::read_to_string(path.join(name)).unwrap_or_default();
        if read("type").trim() == "Instruction" {
            continue;
        }
        let (Ok(level), Ok(size_bytes)) = (read("level").trim().parse(), parse_size(&read("size")))
        else {
            continue;
        };
        caches.push(Cache { level, size_bytes });
    }
    caches.sort_by_key(|c| c.level);
    caches.dedup_by_key(|c| c.level);
    caches
}

/// Which cache level a buffer of `bytes` fits in (`"L1"`, `"L2"`, ...), or
/// `"memory"` when it is larger than the last level.
pub fn fits_in(caches: &[Cache], bytes: usize) -> String {
    caches
        .iter()
        .find(|c| bytes <= c.size_bytes)
        .map_or_else(|| "memory".to_owned(), |c| format!("L{}", c.level))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_map_to_the_smallest_cache_that_holds_them() {
        let c = [
            Cache {
                level: 1,
                size_bytes: 48 << 10,
            },
            Cache {
                level: 2,
                size_bytes: 1 << 20,
            },
            Cache {
                level: 3,
                size_bytes: 32 << 20,
            },
        ];
        assert_eq!(fits_in(&c, 32 << 10), "L1");
        assert_eq!(fits_in(&c, 48 << 10), "L1");
        assert_eq!(fits_in(&c, 64 << 10), "L2");
        assert_eq!(fits_in(&c, 16 << 20), "L3");
        assert_eq!(fits_in(&c, 64 << 20), "memory");
        assert_eq!(fits_in(&[], 1), "memory");
    }
}
