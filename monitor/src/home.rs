//! The home node of a sampled page: where its memory is, from batched `move_pages`
//! queries, cached per page and refreshed when an entry is older than the refresh
//! interval (pages move: migration, NUMA balancing, `Region::replace`).

use std::collections::HashMap;
use std::time::Duration;

use rset::sys::mempolicy::{self, PageStatus};

use crate::sample::Sample;

/// Pages asked for in one `move_pages` call.
const BATCH: usize = 1024;

/// A per-page cache of home nodes.
#[derive(Debug)]
pub struct HomeCache {
    page_shift: u32,
    refresh_ns: u64,
    pages: HashMap<u64, (u32, u64)>,
    queries: u64,
    unresolved: u64,
}

impl HomeCache {
    /// A cache whose entries are re-queried once older than `refresh`.
    pub fn new(refresh: Duration) -> HomeCache {
        let page = page_size();
        HomeCache {
            page_shift: page.trailing_zeros(),
            refresh_ns: refresh.as_nanos().min(u128::from(u64::MAX)) as u64,
            pages: HashMap::new(),
            queries: 0,
            unresolved: 0,
        }
    }

    /// The home node of each sample's page (`None`: the kernel says the page is not
    /// present, or not ours), querying the kernel for pages unknown or stale at
    /// `now_ns` (the samples' clock).
    pub fn resolve(&mut self, samples: &[Sample], now_ns: u64) -> Vec<Option<u32>> {
        let mut missing: Vec<u64> = samples
            .iter()
            .map(|s| s.addr >> self.page_shift)
            .filter(|p| match self.pages.get(p) {
                Some(&(_, at)) => now_ns.saturating_sub(at) > self.refresh_ns,
                None => true,
            })
            .collect();
        missing.sort_unstable();
        missing.dedup();
        for chunk in missing.chunks(BATCH) {
            let addrs: Vec<*const u8> = chunk
                .iter()
                .map(|p| (p << self.page_shift) as usize as *const u8)
                .collect();
            self.queries += 1;
            match mempolicy::move_pages_query(&addrs) {
                Ok(status) => {
                    for (p, st) in chunk.iter().zip(status) {
                        match st {
                            PageStatus::Node(n) => {
                                self.pages.insert(*p, (n, now_ns));
                            }
                            _ => {
                                self.pages.remove(p);
                            }
                        }
                    }
                }
                Err(_) => {
                    for p in chunk {
                        self.pages.remove(p);
                    }
                }
            }
        }
        samples
            .iter()
            .map(|s| {
                let home = self
                    .pages
                    .get(&(s.addr >> self.page_shift))
                    .map(|&(n, _)| n);
                if home.is_none() {
                    self.unresolved += 1;
                }
                home
            })
            .collect()
    }

    /// Forgets every entry (after the program moved memory on purpose).
    pub fn invalidate(&mut self) {
        self.pages.clear();
    }

    /// `move_pages` calls made so far.
    pub fn queries(&self) -> u64 {
        self.queries
    }

    /// Samples whose page had no home (not present any more).
    pub fn unresolved(&self) -> u64 {
        self.unresolved
    }
}

fn page_size() -> usize {
    mempolicy::page_size()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::Access;

    fn sample(addr: u64) -> Sample {
        Sample {
            addr,
            tid: 1,
            cpu: 0,
            node: 0,
            time_ns: 0,
            access: Access::Read,
            source: None,
        }
    }

    #[test]
    fn touched_pages_have_a_home_and_untouched_ones_do_not() {
        let touched = vec![1u8; page_size() * 2];
        let mut cache = HomeCache::new(Duration::from_secs(1));
        let homes = cache.resolve(&[sample(touched.as_ptr() as u64), sample(8)], 0);
        assert!(homes[0].is_some(), "{homes:?}");
        assert_eq!(homes[1], None);
        assert_eq!(cache.unresolved(), 1);
    }

    #[test]
    fn entries_are_cached_then_refreshed() {
        let data = vec![1u8; page_size() * 2];
        let s = sample(data.as_ptr() as u64);
        let mut cache = HomeCache::new(Duration::from_millis(5));
        cache.resolve(&[s, s], 0);
        assert_eq!(cache.queries(), 1);
        cache.resolve(&[s], 1_000_000);
        assert_eq!(cache.queries(), 1, "fresh entry reused");
        cache.resolve(&[s], 10_000_000);
        assert_eq!(cache.queries(), 2, "stale entry re-queried");
    }
}
