//! What the views show, kept across refreshes: the latest frame, references per
//! second by node (the difference of two frames), each region's remote share over
//! time, the machine's nodes and the target's threads.

use std::collections::{HashMap, VecDeque};

use super::frame::{Counts, Frame, Granule, Region};
use super::machine::{NodeInfo, ThreadInfo};

/// Refreshes of remote-share history kept per region (the sparkline).
pub const HISTORY: usize = 60;

/// How the target is doing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Counting.
    Running,
    /// The program is gone; the last counters stay on screen.
    Exited,
    /// The live file cannot be read now (why).
    Unreadable(String),
    /// Playing back a saved session.
    Replay,
}

/// How the Regions view is ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Sort {
    /// Most references first.
    #[default]
    References,
    /// Highest remote share first.
    RemoteShare,
    /// By name.
    Name,
    /// Largest first.
    Size,
}

impl Sort {
    /// The next order (`s`).
    pub fn next(self) -> Sort {
        match self {
            Sort::References => Sort::RemoteShare,
            Sort::RemoteShare => Sort::Name,
            Sort::Name => Sort::Size,
            Sort::Size => Sort::References,
        }
    }

    /// Its name in the header.
    pub fn label(self) -> &'static str {
        match self {
            Sort::References => "references",
            Sort::RemoteShare => "remote share",
            Sort::Name => "name",
            Sort::Size => "size",
        }
    }
}

/// Everything the views draw from.
#[derive(Debug, Clone)]
pub struct Model {
    /// The latest frame.
    pub frame: Option<Frame>,
    /// References per second from each node: (local, remote).
    pub rates: Vec<(f64, f64)>,
    /// Remote share (per mille) of each region at each refresh, oldest first.
    pub history: HashMap<(u64, u64, u64), VecDeque<u64>>,
    /// The machine's nodes.
    pub nodes: Vec<NodeInfo>,
    /// The target's threads.
    pub threads: Vec<ThreadInfo>,
    /// The target's state.
    pub status: Status,
    /// The frame's counts per accessing node, over every region.
    pub by_node: Vec<Counts>,
    /// Per region of the frame: positions of its granules, most referenced first
    /// (ties: lower address first), sorted once per frame.
    pub orders: Vec<Vec<usize>>,
}

impl Model {
    /// An empty model for a machine with `nodes`.
    pub fn new(nodes: Vec<NodeInfo>) -> Model {
        Model {
            frame: None,
            rates: Vec::new(),
            history: HashMap::new(),
            nodes,
            threads: Vec::new(),
            status: Status::Running,
            orders: Vec::new(),
            by_node: Vec::new(),
        }
    }

    /// Takes a new frame, `dt_s` seconds after the one before.
    pub fn update(&mut self, frame: Frame, dt_s: f64) {
        let now = frame.by_node();
        self.rates = match &self.frame {
            Some(_) if dt_s > 0.0 => {
                let before = &self.by_node;
                now.iter()
                    .enumerate()
                    .map(|(n, c)| {
                        let b = before.get(n).copied().unwrap_or_default();
                        (
                            c.local.saturating_sub(b.local) as f64 / dt_s,
                            c.remote.saturating_sub(b.remote) as f64 / dt_s,
                        )
                    })
                    .collect()
            }
            _ => vec![(0.0, 0.0); frame.nodes],
        };
        for r in &frame.regions {
            let h = self.history.entry(r.key()).or_default();
            h.push_back((r.all().remote_share() * 1000.0).round() as u64);
            while h.len() > HISTORY {
                h.pop_front();
            }
        }
        self.orders = frame.regions.iter().map(order).collect();
        self.by_node = now;
        self.frame = Some(frame);
    }

    /// The granules of the region with this identity, most referenced first.
    pub fn granules_by_heat(&self, key: (u64, u64, u64)) -> Option<(&Region, Vec<&Granule>)> {
        let f = self.frame.as_ref()?;
        let i = f.regions.iter().position(|r| r.key() == key)?;
        let r = &f.regions[i];
        let order = self.orders.get(i)?;
        Some((r, order.iter().map(|&p| &r.granules[p]).collect()))
    }

    /// The regions in `sort` order whose name contains `filter`, as indices into
    /// the frame's regions.
    pub fn regions(&self, sort: Sort, filter: &str) -> Vec<usize> {
        let Some(f) = &self.frame else {
            return Vec::new();
        };
        let mut idx: Vec<usize> = (0..f.regions.len())
            .filter(|&i| filter.is_empty() || f.regions[i].name.contains(filter))
            .collect();
        let r = &f.regions;
        match sort {
            Sort::References => idx.sort_by_key(|&i| std::cmp::Reverse(r[i].all().total())),
            Sort::RemoteShare => idx.sort_by(|&a, &b| {
                r[b].all()
                    .remote_share()
                    .total_cmp(&r[a].all().remote_share())
            }),
            Sort::Name => idx.sort_by(|&a, &b| r[a].name.cmp(&r[b].name)),
            Sort::Size => idx.sort_by_key(|&i| std::cmp::Reverse(r[i].size)),
        }
        idx
    }

    /// The region with this identity in the latest frame.
    pub fn region(&self, key: (u64, u64, u64)) -> Option<&Region> {
        self.frame.as_ref()?.regions.iter().find(|r| r.key() == key)
    }

    /// The threads of the target on `node`.
    pub fn threads_on(&self, node: u32) -> Vec<&ThreadInfo> {
        self.threads
            .iter()
            .filter(|t| super::machine::node_of_cpu(&self.nodes, t.cpu) == Some(node))
            .collect()
    }
}

/// Positions of a region's granules, most referenced first (ties: lower address).
fn order(r: &Region) -> Vec<usize> {
    let mut o: Vec<usize> = (0..r.granules.len()).collect();
    o.sort_unstable_by_key(|&p| {
        (
            std::cmp::Reverse(r.granules[p].all().total()),
            r.granules[p].index,
        )
    });
    o
}

/// A region's `n` granules with the most references, most first (ties: lower
/// address first).
pub fn top_granules(r: &Region, n: usize) -> Vec<&Granule> {
    order(r)
        .into_iter()
        .take(n)
        .map(|p| &r.granules[p])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn region(name: &str, start: u64, refs: &[(u64, [u64; 2])]) -> Region {
        Region {
            name: name.into(),
            start,
            size: 4096 * 4,
            granularity: 4096,
            granules: refs
                .iter()
                .map(|&(index, [l, r])| {
                    Granule::new(
                        index,
                        vec![
                            Counts {
                                local: l,
                                remote: 0,
                                reads: l,
                                writes: 0,
                            },
                            Counts {
                                local: 0,
                                remote: r,
                                reads: r,
                                writes: 0,
                            },
                        ],
                    )
                })
                .collect(),
        }
    }

    fn frame(regions: Vec<Region>) -> Frame {
        Frame {
            pid: 1,
            nodes: 2,
            samples: 0,
            lost: 0,
            rate_hz: 1000,
            sampler: None,
            regions,
        }
    }

    #[test]
    fn rates_come_from_two_frames_and_history_grows_to_its_limit() {
        let mut m = Model::new(Vec::new());
        m.update(frame(vec![region("a", 0, &[(0, [10, 10])])]), 1.0);
        assert_eq!(m.rates, vec![(0.0, 0.0), (0.0, 0.0)]);
        m.update(frame(vec![region("a", 0, &[(0, [30, 50])])]), 2.0);
        assert_eq!(m.rates, vec![(10.0, 0.0), (0.0, 20.0)]);
        let h = &m.history[&(0, 16384, 4096)];
        assert_eq!(h.iter().copied().collect::<Vec<_>>(), vec![500, 625]);
        for _ in 0..100 {
            m.update(frame(vec![region("a", 0, &[(0, [1, 1])])]), 1.0);
        }
        assert_eq!(m.history[&(0, 16384, 4096)].len(), HISTORY);
    }

    #[test]
    fn regions_sort_and_filter() {
        let mut m = Model::new(Vec::new());
        m.update(
            frame(vec![
                region("heap#0", 0, &[(0, [5, 0])]),
                region("heap#1", 1 << 20, &[(0, [1, 9]), (2, [0, 1])]),
                region("grid", 2 << 20, &[(1, [4, 4])]),
            ]),
            1.0,
        );
        assert_eq!(m.regions(Sort::References, ""), vec![1, 2, 0]);
        assert_eq!(m.regions(Sort::RemoteShare, ""), vec![1, 2, 0]);
        assert_eq!(m.regions(Sort::Name, ""), vec![2, 0, 1]);
        assert_eq!(m.regions(Sort::References, "heap"), vec![1, 0]);
        let f = m.frame.as_ref().unwrap();
        let top: Vec<u64> = top_granules(&f.regions[1], 5)
            .iter()
            .map(|g| g.index)
            .collect();
        assert_eq!(top, vec![0, 2]);
    }
}
