//! The card: programmed region filters with their counters, secondary counters,
//! thresholds, and the counter budget (the Opium card's SRAM).
//!
//! Every counter a filter needs is allocated when it is programmed: one set of four
//! counters (local, remote, reads, writes) per granule per accessing node, in one flat
//! vector. [`Card::record`] only finds the matching filters and increments: it never
//! allocates, so it may run on a sampler's hot path.
//!
//! A *counter* in the budget is one 64-bit cell. A filter of `g` granules on an
//! `n`-node machine takes `4 * g * n` of them; a secondary counter `4 * n`; a threshold
//! one per 64 granules (its "already fired" bits). The default budget,
//! [`DEFAULT_COUNTER_BUDGET`], is 8 Mi cells (64 MiB): the card's 512K granule counters
//! on a four-node machine.

use std::collections::BTreeMap;
use std::fmt;

mod counts;
mod error;
mod program;

use self::counts::{CELLS, READS, REMOTE, WRITES, bump};
pub use self::counts::{
    CardStats, FilterCounts, GranuleCounts, MAX_NODES, NodeCounts, SecondaryCounts,
};
pub use self::error::CardError;
pub use self::program::{
    SecondaryId, SecondarySource, SecondarySpec, ThresholdEvent, ThresholdHandler, ThresholdId,
    ThresholdOn,
};
use crate::filter::{FilterId, FilterSpec};
use crate::sample::{DataSource, Sample};

/// The default counter budget in 64-bit cells (64 MiB).
pub const DEFAULT_COUNTER_BUDGET: u64 = 8 << 20;

/// The home node to pass to [`Card::record`] when the page's node is not known.
pub const UNKNOWN_NODE: u32 = u32::MAX;

const HOME_NONE: u32 = u32::MAX;
const HOME_MIXED: u32 = 1 << 31;

struct Filter {
    spec: FilterSpec,
    shift: u32,
    end: u64,
    granules: usize,
    /// `granules x nodes x CELLS`.
    counts: Vec<u64>,
    /// Per granule: `HOME_NONE`, or the last home node, with `HOME_MIXED` set once a
    /// second one was seen.
    home: Vec<u32>,
    secondaries: Vec<u32>,
    thresholds: Vec<u32>,
}

struct Secondary {
    spec: SecondarySpec,
    ranges: Vec<(u64, u64)>,
    /// `nodes x CELLS`.
    counts: Vec<u64>,
    /// The sequence number of the last sample counted, so that one counts once.
    stamp: u64,
}

struct Threshold {
    count: u64,
    on: ThresholdOn,
    fired: Vec<u64>,
    handler: ThresholdHandler,
}

/// The monitor card: filters, secondary counters and thresholds over a fixed budget.
pub struct Card {
    nodes: u32,
    budget: u64,
    used: u64,
    filters: Vec<Filter>,
    /// Filter indices sorted by start, their starts, and the running maximum of their
    /// ends: the filters containing `a` are among those before the first start past
    /// `a`, back to the last whose running maximum end is past `a`.
    idx_filter: Vec<u32>,
    idx_start: Vec<u64>,
    idx_max_end: Vec<u64>,
    secondaries: Vec<Secondary>,
    range_secondaries: Vec<u32>,
    thresholds: Vec<Threshold>,
    stats: CardStats,
    seq: u64,
}

impl fmt::Debug for Card {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Card")
            .field("nodes", &self.nodes)
            .field("budget", &self.budget)
            .field("used", &self.used)
            .field("filters", &self.filters.len())
            .field("secondaries", &self.secondaries.len())
            .field("thresholds", &self.thresholds.len())
            .field("stats", &self.stats)
            .finish()
    }
}

impl Card {
    /// An empty card for a machine of `nodes` nodes, with the default budget.
    ///
    /// # Errors
    /// [`CardError::NoNodes`] or [`CardError::TooManyNodes`].
    pub fn new(nodes: u32) -> Result<Card, CardError> {
        Card::with_budget(nodes, DEFAULT_COUNTER_BUDGET)
    }

    /// An empty card for `nodes` nodes with a budget of `counters` 64-bit cells.
    ///
    /// # Errors
    /// [`CardError::NoNodes`] or [`CardError::TooManyNodes`].
    pub fn with_budget(nodes: u32, counters: u64) -> Result<Card, CardError> {
        if nodes == 0 {
            return Err(CardError::NoNodes);
        }
        if nodes > MAX_NODES {
            return Err(CardError::TooManyNodes(nodes));
        }
        Ok(Card {
            nodes,
            budget: counters,
            used: 0,
            filters: Vec::new(),
            idx_filter: Vec::new(),
            idx_start: Vec::new(),
            idx_max_end: Vec::new(),
            secondaries: Vec::new(),
            range_secondaries: Vec::new(),
            thresholds: Vec::new(),
            stats: CardStats::default(),
            seq: 0,
        })
    }

    /// The node count.
    pub fn nodes(&self) -> u32 {
        self.nodes
    }

    /// The budget, in 64-bit cells.
    pub fn budget(&self) -> u64 {
        self.budget
    }

    /// Cells allocated so far.
    pub fn used(&self) -> u64 {
        self.used
    }

    /// Cells still free.
    pub fn available(&self) -> u64 {
        self.budget.saturating_sub(self.used)
    }

    fn charge(&mut self, requested: Option<u64>) -> Result<usize, CardError> {
        let available = self.available();
        let over = || CardError::BudgetExceeded {
            requested: requested.unwrap_or(u64::MAX),
            available,
            budget: self.budget,
        };
        let cells = requested.ok_or_else(over)?;
        if cells > available {
            return Err(over());
        }
        let len = usize::try_from(cells).map_err(|_| over())?;
        self.used += cells;
        Ok(len)
    }

    fn check_node(&self, node: u32) -> Result<(), CardError> {
        if node >= self.nodes {
            return Err(CardError::NodeOutOfRange {
                node,
                nodes: self.nodes,
            });
        }
        Ok(())
    }

    /// Programs a filter and allocates all its counters.
    ///
    /// # Errors
    /// [`CardError::EmptyFilter`] for size 0, [`CardError::EmptyMask`],
    /// [`CardError::NodeOutOfRange`] for `spec.node`, [`CardError::AddressOverflow`]
    /// when the rounded-up range passes the end of the address space,
    /// [`CardError::BudgetExceeded`] when its counters do not fit.
    pub fn program(&mut self, spec: FilterSpec) -> Result<FilterId, CardError> {
        if spec.size == 0 {
            return Err(CardError::EmptyFilter { start: spec.start });
        }
        if spec.mask.is_empty() {
            return Err(CardError::EmptyMask);
        }
        if let Some(node) = spec.node {
            self.check_node(node)?;
        }
        let end = spec.end().ok_or(CardError::AddressOverflow {
            start: spec.start,
            size: spec.size,
        })?;
        let id = u32::try_from(self.filters.len()).map_err(|_| CardError::TooMany("filters"))?;
        let granules = spec.granules().unwrap_or(0);
        let per_granule = u64::from(self.nodes) * CELLS as u64;
        let cells = self.charge(granules.checked_mul(per_granule))?;
        // `granules <= cells`, which fit a usize.
        let granules = cells / (self.nodes as usize * CELLS);
        self.filters.push(Filter {
            shift: spec.granularity.shift(),
            end,
            granules,
            counts: vec![0; cells],
            home: vec![HOME_NONE; granules],
            secondaries: Vec::new(),
            thresholds: Vec::new(),
            spec,
        });
        self.rebuild_index();
        Ok(FilterId(id))
    }

    fn rebuild_index(&mut self) {
        let mut order: Vec<u32> = (0..self.filters.len() as u32).collect();
        order.sort_by_key(|&i| (self.filters[i as usize].spec.start, i));
        self.idx_start = order
            .iter()
            .map(|&i| self.filters[i as usize].spec.start)
            .collect();
        let mut max_end = 0;
        self.idx_max_end = order
            .iter()
            .map(|&i| {
                max_end = max_end.max(self.filters[i as usize].end);
                max_end
            })
            .collect();
        self.idx_filter = order;
    }

    fn filter_index(&self, id: FilterId) -> Result<usize, CardError> {
        let i = id.0 as usize;
        if i < self.filters.len() {
            Ok(i)
        } else {
            Err(CardError::UnknownFilter(id))
        }
    }

    /// Adds a secondary counter.
    ///
    /// # Errors
    /// [`CardError::EmptySecondary`], [`CardError::EmptyMask`],
    /// [`CardError::UnknownFilter`], [`CardError::EmptyRange`],
    /// [`CardError::AddressOverflow`], [`CardError::BudgetExceeded`].
    pub fn add_secondary(&mut self, spec: SecondarySpec) -> Result<SecondaryId, CardError> {
        if spec.sources.is_empty() {
            return Err(CardError::EmptySecondary);
        }
        if spec.mask.is_empty() {
            return Err(CardError::EmptyMask);
        }
        let mut filters = Vec::new();
        let mut ranges = Vec::new();
        for source in &spec.sources {
            match *source {
                SecondarySource::Filter(id) => filters.push(self.filter_index(id)?),
                SecondarySource::Range { start, size } => {
                    if size == 0 {
                        return Err(CardError::EmptyRange { start });
                    }
                    let end = start
                        .checked_add(size)
                        .ok_or(CardError::AddressOverflow { start, size })?;
                    ranges.push((start, end));
                }
            }
        }
        let id = u32::try_from(self.secondaries.len())
            .map_err(|_| CardError::TooMany("secondary counters"))?;
        let cells = self.charge(Some(u64::from(self.nodes) * CELLS as u64))?;
        filters.sort_unstable();
        filters.dedup();
        for f in filters {
            self.filters[f].secondaries.push(id);
        }
        if !ranges.is_empty() {
            self.range_secondaries.push(id);
        }
        self.secondaries.push(Secondary {
            spec,
            ranges,
            counts: vec![0; cells],
            stamp: 0,
        });
        Ok(SecondaryId(id))
    }

    /// Calls `handler` once per granule of `filter` whose remote count (summed over
    /// accessing nodes) reaches `count`.
    ///
    /// # Errors
    /// As [`Card::set_threshold_on`].
    pub fn set_threshold(
        &mut self,
        filter: FilterId,
        count: u64,
        handler: ThresholdHandler,
    ) -> Result<ThresholdId, CardError> {
        self.set_threshold_on(filter, ThresholdOn::Remote, count, handler)
    }

    /// Calls `handler` once per granule of `filter` whose `on` count (summed over
    /// accessing nodes) reaches `count`, from within [`Card::record`]. A granule already
    /// past the threshold fires at its next counted reference.
    ///
    /// # Errors
    /// [`CardError::UnknownFilter`], [`CardError::ZeroThreshold`],
    /// [`CardError::BudgetExceeded`] (for its bits, one cell per 64 granules).
    pub fn set_threshold_on(
        &mut self,
        filter: FilterId,
        on: ThresholdOn,
        count: u64,
        handler: ThresholdHandler,
    ) -> Result<ThresholdId, CardError> {
        let f = self.filter_index(filter)?;
        if count == 0 {
            return Err(CardError::ZeroThreshold);
        }
        let id =
            u32::try_from(self.thresholds.len()).map_err(|_| CardError::TooMany("thresholds"))?;
        let words = self.charge(Some(self.filters[f].granules.div_ceil(64) as u64))?;
        self.filters[f].thresholds.push(id);
        self.thresholds.push(Threshold {
            count,
            on,
            fired: vec![0; words],
            handler,
        });
        Ok(ThresholdId(id))
    }

    /// Counts one sample whose page lives on `home_node` ([`UNKNOWN_NODE`] if not
    /// known) in every filter that matches it, and in the secondary counters that
    /// shadow those filters or its address; calls the handlers of the thresholds it
    /// makes a granule reach. Returns how many filters counted it. Never allocates.
    ///
    /// The reference is remote when `sample.source` says so, otherwise when
    /// `sample.node != home_node`; a home node not below the node count is unknown.
    /// A sample whose accessing node is not below the node count is dropped (and
    /// counted in [`CardStats::bad_node`]).
    pub fn record(&mut self, sample: &Sample, home_node: u32) -> usize {
        self.stats.samples += 1;
        let nodes = self.nodes;
        let node = sample.node;
        if node >= nodes {
            self.stats.bad_node += 1;
            return 0;
        }
        let home = if home_node < nodes {
            home_node
        } else {
            UNKNOWN_NODE
        };
        let remote = sample
            .source
            .and_then(DataSource::is_remote)
            .or((home != UNKNOWN_NODE).then_some(node != home));
        if remote.is_none() {
            self.stats.unknown_locality += 1;
        }
        self.seq += 1;
        let seq = self.seq;
        let addr = sample.addr;
        let access = sample.access;
        let nodes = nodes as usize;
        let node_us = node as usize;

        let Card {
            filters,
            idx_filter,
            idx_start,
            idx_max_end,
            secondaries,
            range_secondaries,
            thresholds,
            ..
        } = self;

        let mut matched = 0;
        let mut i = idx_start.partition_point(|&s| s <= addr);
        while i > 0 {
            i -= 1;
            if idx_max_end[i] <= addr {
                break;
            }
            let fi = idx_filter[i] as usize;
            let f = &mut filters[fi];
            if addr >= f.end
                || !f.spec.mask.accepts(access)
                || !f.spec.direction.accepts(f.spec.node, node, home, remote)
            {
                continue;
            }
            matched += 1;
            let g = ((addr - f.spec.start) >> f.shift) as usize;
            let base = (g * nodes + node_us) * CELLS;
            bump(&mut f.counts[base..base + CELLS], remote, access);
            if home != UNKNOWN_NODE {
                let h = &mut f.home[g];
                if *h == HOME_NONE {
                    *h = home;
                } else if *h & !HOME_MIXED != home {
                    *h = home | HOME_MIXED;
                }
            }
            for &s in &f.secondaries {
                let sec = &mut secondaries[s as usize];
                if sec.stamp != seq && sec.spec.mask.accepts(access) {
                    sec.stamp = seq;
                    bump(
                        &mut sec.counts[node_us * CELLS..(node_us + 1) * CELLS],
                        remote,
                        access,
                    );
                }
            }
            for &t in &f.thresholds {
                let th = &mut thresholds[t as usize];
                let (word, bit) = (g / 64, 1u64 << (g % 64));
                if th.fired[word] & bit != 0 {
                    continue;
                }
                let cells = &f.counts[g * nodes * CELLS..(g + 1) * nodes * CELLS];
                let count: u64 = cells
                    .chunks_exact(CELLS)
                    .map(|c| match th.on {
                        ThresholdOn::Remote => c[REMOTE],
                        ThresholdOn::Total => c[READS] + c[WRITES],
                    })
                    .sum();
                if count >= th.count {
                    th.fired[word] |= bit;
                    (th.handler)(ThresholdEvent {
                        threshold: ThresholdId(t),
                        filter: FilterId(fi as u32),
                        granule: g as u64,
                        addr: f.spec.start + ((g as u64) << f.shift),
                        count,
                        on: th.on,
                        node,
                        time_ns: sample.time_ns,
                    });
                }
            }
        }
        for &s in range_secondaries.iter() {
            let sec = &mut secondaries[s as usize];
            if sec.stamp == seq || !sec.spec.mask.accepts(access) {
                continue;
            }
            if sec.ranges.iter().any(|&(lo, hi)| lo <= addr && addr < hi) {
                sec.stamp = seq;
                bump(
                    &mut sec.counts[node_us * CELLS..(node_us + 1) * CELLS],
                    remote,
                    access,
                );
            }
        }
        if matched > 0 {
            self.stats.matched += 1;
        } else {
            self.stats.unmatched += 1;
        }
        matched
    }

    /// Zeroes every counter and statistic and re-arms every threshold; the
    /// programming stays.
    pub fn reset(&mut self) {
        for f in &mut self.filters {
            f.counts.fill(0);
            f.home.fill(HOME_NONE);
        }
        for s in &mut self.secondaries {
            s.counts.fill(0);
            s.stamp = 0;
        }
        for t in &mut self.thresholds {
            t.fired.fill(0);
        }
        self.stats = CardStats::default();
        self.seq = 0;
    }

    /// What the card saw besides its counters.
    pub fn stats(&self) -> CardStats {
        self.stats
    }

    /// The programmed filters, in programming order.
    pub fn filters(&self) -> impl Iterator<Item = (FilterId, &FilterSpec)> {
        self.filters
            .iter()
            .enumerate()
            .map(|(i, f)| (FilterId(i as u32), &f.spec))
    }

    /// The programming of filter `id`.
    pub fn filter(&self, id: FilterId) -> Option<&FilterSpec> {
        self.filters.get(id.0 as usize).map(|f| &f.spec)
    }

    /// The number of granules of filter `id`.
    pub fn granule_count(&self, id: FilterId) -> Option<u64> {
        self.filters.get(id.0 as usize).map(|f| f.granules as u64)
    }

    /// The counts of granule `granule` of filter `id` for accessing node `node`.
    pub fn counts(&self, id: FilterId, granule: u64, node: u32) -> Option<NodeCounts> {
        let f = self.filters.get(id.0 as usize)?;
        if granule >= f.granules as u64 || node >= self.nodes {
            return None;
        }
        let base = (granule as usize * self.nodes as usize + node as usize) * CELLS;
        Some(NodeCounts::from_cells(&f.counts[base..base + CELLS]))
    }

    /// The counts of granule `granule` of filter `id`, summed over accessing nodes.
    pub fn granule_totals(&self, id: FilterId, granule: u64) -> Option<NodeCounts> {
        let mut t = NodeCounts::default();
        for n in 0..self.nodes {
            t.add(&self.counts(id, granule, n)?);
        }
        Some(t)
    }

    /// The counts of secondary counter `id` for accessing node `node`.
    pub fn secondary_counts(&self, id: SecondaryId, node: u32) -> Option<NodeCounts> {
        let s = self.secondaries.get(id.0 as usize)?;
        if node >= self.nodes {
            return None;
        }
        let base = node as usize * CELLS;
        Some(NodeCounts::from_cells(&s.counts[base..base + CELLS]))
    }

    /// Reads out every filter: its programming and its touched granules.
    pub fn filter_counts(&self) -> Vec<FilterCounts> {
        let nodes = self.nodes as usize;
        self.filters
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let granules = (0..f.granules)
                    .filter_map(|g| {
                        let cells = &f.counts[g * nodes * CELLS..(g + 1) * nodes * CELLS];
                        let by_node: BTreeMap<u32, NodeCounts> = cells
                            .chunks_exact(CELLS)
                            .enumerate()
                            .map(|(n, c)| (n as u32, NodeCounts::from_cells(c)))
                            .filter(|(_, c)| !c.is_zero())
                            .collect();
                        if by_node.is_empty() {
                            return None;
                        }
                        let h = f.home[g];
                        Some(GranuleCounts {
                            offset: (g as u64) << f.shift,
                            home_node: (h != HOME_NONE).then_some(h & !HOME_MIXED),
                            home_mixed: h != HOME_NONE && h & HOME_MIXED != 0,
                            by_node,
                        })
                    })
                    .collect();
                FilterCounts {
                    id: FilterId(i as u32),
                    spec: f.spec.clone(),
                    granules,
                }
            })
            .collect()
    }

    /// Reads out every secondary counter.
    pub fn secondary_counts_all(&self) -> Vec<SecondaryCounts> {
        self.secondaries
            .iter()
            .enumerate()
            .map(|(i, s)| SecondaryCounts {
                id: SecondaryId(i as u32),
                spec: s.spec.clone(),
                by_node: s
                    .counts
                    .chunks_exact(CELLS)
                    .enumerate()
                    .map(|(n, c)| (n as u32, NodeCounts::from_cells(c)))
                    .filter(|(_, c)| !c.is_zero())
                    .collect(),
            })
            .collect()
    }
}
