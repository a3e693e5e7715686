//! The run over time, for replays: every second the session notes what its filters
//! counted since the last point ([`TimelinePoint`]: only the granules that changed, by
//! how much), so a saved session can be shown as it stood at any moment of the run
//! (`rset-top --replay` moves through the points with `[` and `]`).
//!
//! A point costs a few bytes per granule that changed: with sampling, at most one per
//! sample. A long run keeps at most [`MAX_POINTS`] points; past that, neighbours are
//! merged in pairs and points come half as often.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::card::{FilterCounts, GranuleCounts, NodeCounts};
use crate::filter::FilterId;

/// The most points a timeline keeps.
pub const MAX_POINTS: usize = 1024;

/// How often a session notes a point, until [`MAX_POINTS`] makes it rarer.
pub const EVERY: Duration = Duration::from_secs(1);

/// What the filters counted between the previous point and this one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelinePoint {
    /// Milliseconds since the session started.
    pub at_ms: u64,
    /// Filters with at least one granule that changed; each granule's counts are the
    /// increase since the previous point.
    pub filters: Vec<FilterCounts>,
}

/// Counts per accessing node of one granule.
type ByNode = BTreeMap<u32, NodeCounts>;

/// The points taken so far, and the counts they add up to.
#[derive(Debug, Default)]
pub struct Timeline {
    points: Vec<TimelinePoint>,
    seen: HashMap<(FilterId, u64), ByNode>,
    every: u32,
}

impl Timeline {
    /// An empty timeline.
    pub fn new() -> Timeline {
        Timeline {
            points: Vec::new(),
            seen: HashMap::new(),
            every: 1,
        }
    }

    /// How many [`EVERY`] periods apart points are now (1, then 2, 4, … once
    /// [`MAX_POINTS`] was reached).
    pub fn periods_per_point(&self) -> u32 {
        self.every
    }

    /// Notes a point at `at_ms` from the filters' counts now (as
    /// [`crate::Card::filter_counts`] reads them). Nothing changed: no point.
    pub fn take(&mut self, at_ms: u64, now: &[FilterCounts]) {
        let mut changed = Vec::new();
        for fc in now {
            let mut granules = Vec::new();
            for g in &fc.granules {
                let before = self.seen.get(&(fc.id, g.offset));
                let delta: ByNode = g
                    .by_node
                    .iter()
                    .filter_map(|(&n, c)| {
                        let d = minus(c, before.and_then(|b| b.get(&n)));
                        (!d.is_zero()).then_some((n, d))
                    })
                    .collect();
                if !delta.is_empty() {
                    granules.push(GranuleCounts {
                        offset: g.offset,
                        home_node: g.home_node,
                        home_mixed: g.home_mixed,
                        by_node: delta,
                    });
                    self.seen.insert((fc.id, g.offset), g.by_node.clone());
                }
            }
            if !granules.is_empty() {
                changed.push(FilterCounts {
                    id: fc.id,
                    spec: fc.spec.clone(),
                    granules,
                });
            }
        }
        if changed.is_empty() {
            return;
        }
        self.points.push(TimelinePoint {
            at_ms,
            filters: changed,
        });
        if self.points.len() > MAX_POINTS {
            self.points = halve(std::mem::take(&mut self.points));
            self.every = self.every.saturating_mul(2);
        }
    }

    /// Whether a point is due `elapsed` after the session started, the last one having
    /// been due at `last`: every [`EVERY`] times [`Timeline::periods_per_point`].
    pub fn due(&self, elapsed: Duration, last: Duration) -> bool {
        elapsed.saturating_sub(last) >= EVERY * self.every
    }

    /// The points, oldest first.
    pub fn into_points(self) -> Vec<TimelinePoint> {
        self.points
    }
}

/// `c` less `before` (each count saturating at zero).
fn minus(c: &NodeCounts, before: Option<&NodeCounts>) -> NodeCounts {
    let b = before.copied().unwrap_or_default();
    NodeCounts {
        local: c.local.saturating_sub(b.local),
        remote: c.remote.saturating_sub(b.remote),
        reads: c.reads.saturating_sub(b.reads),
        writes: c.writes.saturating_sub(b.writes),
    }
}

/// Neighbouring points merged in pairs (the later one's time).
fn halve(points: Vec<TimelinePoint>) -> Vec<TimelinePoint> {
    let mut out = Vec::with_capacity(points.len().div_ceil(2));
    let mut it = points.into_iter();
    while let Some(a) = it.next() {
        match it.next() {
            Some(b) => {
                let at_ms = b.at_ms;
                let filters = sum_filters(&[a, b]);
                out.push(TimelinePoint { at_ms, filters });
            }
            None => out.push(a),
        }
    }
    out
}

/// The filters' counts as they stood at `points[k]` (the sum of points `0..=k`), in
/// the order the filters first appear; granules by ascending offset.
pub fn counts_at(points: &[TimelinePoint], k: usize) -> Vec<FilterCounts> {
    sum_filters(&points[..(k + 1).min(points.len())])
}

fn sum_filters(points: &[TimelinePoint]) -> Vec<FilterCounts> {
    let mut order: Vec<FilterId> = Vec::new();
    let mut sums: HashMap<FilterId, (FilterCounts, BTreeMap<u64, GranuleCounts>)> = HashMap::new();
    for p in points {
        for fc in &p.filters {
            let (_, granules) = sums.entry(fc.id).or_insert_with(|| {
                order.push(fc.id);
                (
                    FilterCounts {
                        id: fc.id,
                        spec: fc.spec.clone(),
                        granules: Vec::new(),
                    },
                    BTreeMap::new(),
                )
            });
            for g in &fc.granules {
                let sum = granules.entry(g.offset).or_insert_with(|| GranuleCounts {
                    offset: g.offset,
                    home_node: g.home_node,
                    home_mixed: g.home_mixed,
                    by_node: BTreeMap::new(),
                });
                sum.home_node = g.home_node;
                sum.home_mixed |= g.home_mixed;
                for (&n, c) in &g.by_node {
                    sum.by_node.entry(n).or_default().add(c);
                }
            }
        }
    }
    order
        .into_iter()
        .filter_map(|id| sums.remove(&id))
        .map(|(mut fc, granules)| {
            fc.granules = granules.into_values().collect();
            fc
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::card::Card;
    use crate::filter::FilterSpec;
    use crate::granularity::Granularity;
    use crate::sample::{Access, Sample};

    fn sample(addr: u64, node: u32) -> Sample {
        Sample {
            addr,
            tid: 1,
            cpu: node,
            node,
            time_ns: 0,
            access: Access::Read,
            source: None,
        }
    }

    fn card() -> Card {
        let mut c = Card::new(2).unwrap();
        c.program(FilterSpec::new(0x10_0000, 0x4000, Granularity::PAGE))
            .unwrap();
        c
    }

    #[test]
    fn points_hold_only_what_changed_and_sum_to_the_counts_then() {
        let mut c = card();
        let mut t = Timeline::new();
        c.record(&sample(0x10_0000, 0), 0);
        c.record(&sample(0x10_1000, 1), 0);
        t.take(1000, &c.filter_counts());
        let after_first = c.filter_counts();
        t.take(1500, &c.filter_counts()); // nothing new: no point
        c.record(&sample(0x10_1000, 1), 0);
        c.record(&sample(0x10_1000, 1), 0);
        t.take(2000, &c.filter_counts());
        let points = t.into_points();
        assert_eq!(points.len(), 2);
        assert_eq!(points[1].at_ms, 2000);
        // The second point has the one granule that changed, by 2 remote references.
        assert_eq!(points[1].filters[0].granules.len(), 1);
        let g = &points[1].filters[0].granules[0];
        assert_eq!(g.offset, 0x1000);
        assert_eq!(g.by_node[&1].remote, 2);
        assert_eq!(g.by_node[&1].total(), 2);
        assert_eq!(counts_at(&points, 0), after_first);
        assert_eq!(counts_at(&points, 1), c.filter_counts());
    }

    #[test]
    fn a_long_run_keeps_at_most_max_points_and_still_sums_right() {
        let mut c = card();
        let mut t = Timeline::new();
        for i in 0..(MAX_POINTS as u64 * 2 + 3) {
            c.record(&sample(0x10_0000 + (i % 4) * 0x1000, (i % 2) as u32), 0);
            t.take(i * 1000, &c.filter_counts());
        }
        assert!(t.periods_per_point() >= 2);
        let points = t.into_points();
        assert!(points.len() <= MAX_POINTS, "{}", points.len());
        assert!(points.windows(2).all(|w| w[0].at_ms < w[1].at_ms));
        assert_eq!(counts_at(&points, points.len() - 1), c.filter_counts());
    }

    #[test]
    fn a_point_is_due_every_period_times_the_spacing() {
        let mut t = Timeline::new();
        assert!(!t.due(Duration::from_millis(900), Duration::ZERO));
        assert!(t.due(Duration::from_millis(1000), Duration::ZERO));
        t.every = 4;
        assert!(!t.due(Duration::from_millis(3900), Duration::ZERO));
        assert!(t.due(Duration::from_millis(5000), Duration::from_millis(1000)));
    }
}
