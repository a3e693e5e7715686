//! Reports of a session: the table of data areas with references from each node
//! (the paper's postprocessing output), per-granule detail, and renderings as text,
//! JSON, CSV ([`Report::to_text`], [`Report::to_json`], [`Report::to_csv`]) and an
//! SVG heatmap ([`crate::svg`]).
//!
//! Everything is sorted (regions by filter id, granules by offset, nodes by number,
//! areas by address then name), so the same counters always give the same bytes.
//!
//! # Names
//!
//! A region (one filter) is named by the filter's own name, else by the innermost
//! label that covers the whole filter, else by the innermost mapping that does, else
//! by its hex range `0xSTART..0xEND`. A data area is the innermost label containing a
//! granule's first byte, else the innermost such mapping, else the granule's region:
//! so one filter over a whole heap splits into the program's data structures.
//!
//! # Totals
//!
//! Totals sum the regions' counters: a reference counted by two overlapping filters
//! counts twice there (and once in [`CardStats::matched`]).
//!
//! # JSON
//!
//! ```json
//! { "version": 1,
//!   "machine": { "nodes": 2 },
//!   "sampler": { "name": "replay", "samples": 400, "lost": 0, "idle_rounds": 0, "rate_hz": 0 },
//!   "card": { "samples": 400, "matched": 400, "unmatched": 0, "bad_node": 0, "unknown_locality": 0 },
//!   "totals": { "all": { "local": 300, "remote": 100, "reads": 400, "writes": 0 },
//!               "by_node": { "0": { "local": 300, "remote": 100, "reads": 400, "writes": 0 } } },
//!   "regions": [ { "id": 0, "name": "A", "start": 4096, "size": 4096, "granularity": 4096,
//!                  "mask": { "reads": true, "writes": true }, "direction": "all", "node": null,
//!                  "totals": { ... },
//!                  "granules": [ { "offset": 0, "home_node": 0,
//!                                  "by_node": { "0": { "local": 300, "remote": 0, "reads": 300, "writes": 0 } } } ] } ],
//!   "areas": [ { "name": "A", "start": 4096, "size": 4096, "source": "label", "granules": 1, "totals": { ... } } ],
//!   "secondaries": [ { "id": 0, "name": "A writes", "mask": { ... }, "sources": [ ... ], "totals": { ... } } ] }
//! ```

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::card::{Card, CardStats, GranuleCounts, NodeCounts, SecondaryId, SecondarySource};
use crate::filter::{Direction, FilterId, TxMask};
use crate::granularity::Granularity;
use crate::sample::SamplerStats;
use crate::session_file::{Label, Machine, SessionFile};

/// The version of the report's JSON.
pub const REPORT_VERSION: u32 = 1;

/// Counts summed over a set of granules: overall and per accessing node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    /// Over all accessing nodes.
    pub all: NodeCounts,
    /// Per accessing node; nodes with no reference are left out.
    pub by_node: BTreeMap<u32, NodeCounts>,
}

impl Totals {
    /// Adds `counts` of accessing node `node`.
    pub fn add(&mut self, node: u32, counts: &NodeCounts) {
        self.all.add(counts);
        self.by_node.entry(node).or_default().add(counts);
    }

    /// Adds every node of `by_node`.
    pub fn add_all(&mut self, by_node: &BTreeMap<u32, NodeCounts>) {
        for (&n, c) in by_node {
            self.add(n, c);
        }
    }
}

/// One filter's counters in a report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegionReport {
    /// The filter's handle.
    pub id: FilterId,
    /// Its name (see the module docs).
    pub name: String,
    /// First byte.
    pub start: u64,
    /// Bytes.
    pub size: u64,
    /// Granule size.
    pub granularity: Granularity,
    /// Transaction types counted.
    pub mask: TxMask,
    /// Direction counted.
    pub direction: Direction,
    /// The node the direction is about.
    pub node: Option<u32>,
    /// Sums over its granules.
    pub totals: Totals,
    /// Its touched granules, ascending offsets.
    pub granules: Vec<GranuleCounts>,
}

impl RegionReport {
    /// One past the last byte of its last granule (saturating).
    pub fn end(&self) -> u64 {
        let g = self.granularity.bytes();
        self.start
            .saturating_add(self.size.div_ceil(g).saturating_mul(g))
    }

    /// The number of granules (size rounded up).
    pub fn granule_count(&self) -> u64 {
        self.size.div_ceil(self.granularity.bytes())
    }
}

/// Where a data area's name comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AreaSource {
    /// A label the program supplied.
    Label,
    /// A mapping name.
    Mapping,
    /// The filter itself (nothing named the address).
    Region,
}

/// One row group of the data-area table: references to one named area.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AreaReport {
    /// Its name.
    pub name: String,
    /// First byte.
    pub start: u64,
    /// Bytes.
    pub size: u64,
    /// Where the name comes from.
    pub source: AreaSource,
    /// Touched granules counted in it.
    pub granules: u64,
    /// Its references.
    pub totals: Totals,
}

/// One secondary counter in a report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecondaryReport {
    /// Its handle.
    pub id: SecondaryId,
    /// Its name (`secondary N` when it has none).
    pub name: String,
    /// Transaction types it counts.
    pub mask: TxMask,
    /// What it shadows.
    pub sources: Vec<SecondarySource>,
    /// Its references.
    pub totals: Totals,
}

/// A granule singled out (top lists, refinement), with the region it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GranuleRef<'a> {
    /// Its region.
    pub region: &'a RegionReport,
    /// Its counters.
    pub granule: &'a GranuleCounts,
    /// Its first byte.
    pub addr: u64,
    /// Its counts summed over accessing nodes.
    pub totals: NodeCounts,
}

/// The ranking of granules, written once: the report's top granules and the
/// refinement's choice of what to zoom into both sort with these.
impl GranuleRef<'_> {
    /// Most remote references first, then most references, then the lowest address,
    /// then the lowest filter id (a total order, so rankings are reproducible).
    pub fn by_remote(a: &GranuleRef<'_>, b: &GranuleRef<'_>) -> std::cmp::Ordering {
        b.totals
            .remote
            .cmp(&a.totals.remote)
            .then_with(|| GranuleRef::by_references(a, b))
    }

    /// Most references first, then the lowest address, then the lowest filter id.
    pub fn by_references(a: &GranuleRef<'_>, b: &GranuleRef<'_>) -> std::cmp::Ordering {
        b.totals
            .total()
            .cmp(&a.totals.total())
            .then(a.addr.cmp(&b.addr))
            .then(a.region.id.cmp(&b.region.id))
    }
}

/// A session's report (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// [`REPORT_VERSION`].
    pub version: u32,
    /// The machine.
    pub machine: Machine,
    /// The sampler's facts (rate, samples, lost samples).
    pub sampler: SamplerStats,
    /// What the card saw besides its counters.
    pub card: CardStats,
    /// Sums over every region.
    pub totals: Totals,
    /// Every filter, by id.
    pub regions: Vec<RegionReport>,
    /// The data-area table, by address then name.
    pub areas: Vec<AreaReport>,
    /// Every secondary counter, by id.
    pub secondaries: Vec<SecondaryReport>,
}

/// Labels sorted by start, with the running maximum of their ends, for finding the
/// innermost label containing an address or a range.
struct Intervals<'a> {
    labels: Vec<&'a Label>,
    max_end: Vec<u64>,
}

impl<'a> Intervals<'a> {
    fn new(labels: &'a [Label]) -> Self {
        let mut labels: Vec<&Label> = labels.iter().filter(|l| l.size > 0).collect();
        labels.sort();
        let mut m = 0;
        let max_end = labels
            .iter()
            .map(|l| {
                m = m.max(l.end());
                m
            })
            .collect();
        Intervals { labels, max_end }
    }

    /// The innermost label containing `lo .. hi` (`hi > lo`): the smallest, then the
    /// first by start and name.
    fn innermost(&self, lo: u64, hi: u64) -> Option<&'a Label> {
        let mut i = self.labels.partition_point(|l| l.start <= lo);
        let mut best: Option<&'a Label> = None;
        while i > 0 {
            i -= 1;
            if self.max_end[i] < hi {
                break;
            }
            let l = self.labels[i];
            if l.end() >= hi && best.is_none_or(|b| (l.size, l) < (b.size, b)) {
                best = Some(l);
            }
        }
        best
    }
}

/// The 95% sampling margin of a share `k / n` estimated from `n` samples, in
/// percentage points: ` ±1.96·√(p(1−p)/n)` (empty when there is no sample).
pub fn margin95(k: u64, n: u64) -> String {
    if n == 0 {
        return String::new();
    }
    let p = k as f64 / n as f64;
    format!(" ±{:.1}", 196.0 * (p * (1.0 - p) / n as f64).sqrt())
}

fn hex_range(start: u64, end: u64) -> String {
    format!("{start:#x}..{end:#x}")
}

impl Report {
    /// The report of a card's counters, with no sampler facts and no labels (build a
    /// [`SessionFile`] for those and use [`Report::from_session`]).
    pub fn from_card(card: &Card) -> Report {
        Report::from_session(&SessionFile::from_card(card, SamplerStats::default()))
    }

    /// The report of a session file's counters.
    pub fn from_session(session: &SessionFile) -> Report {
        let labels = Intervals::new(&session.labels);
        let mappings = Intervals::new(&session.mappings);
        let mut filters: Vec<_> = session.filters.iter().collect();
        filters.sort_by_key(|f| f.id);

        let mut totals = Totals::default();
        let mut areas: BTreeMap<(u64, u64, String, AreaSource), (u64, Totals)> = BTreeMap::new();
        let mut regions = Vec::with_capacity(filters.len());
        for f in filters {
            let spec = &f.spec;
            let g = spec.granularity.bytes();
            let end = spec
                .start
                .saturating_add(spec.size.div_ceil(g).saturating_mul(g));
            let name = spec
                .name
                .clone()
                .or_else(|| labels.innermost(spec.start, end).map(|l| l.name.clone()))
                .or_else(|| mappings.innermost(spec.start, end).map(|l| l.name.clone()))
                .unwrap_or_else(|| hex_range(spec.start, end));
            let mut region_totals = Totals::default();
            for gran in &f.granules {
                region_totals.add_all(&gran.by_node);
                let addr = spec.start.saturating_add(gran.offset);
                let hi = addr.saturating_add(1);
                let key = if let Some(l) = labels.innermost(addr, hi) {
                    (l.start, l.size, l.name.clone(), AreaSource::Label)
                } else if let Some(m) = mappings.innermost(addr, hi) {
                    (m.start, m.size, m.name.clone(), AreaSource::Mapping)
                } else {
                    (spec.start, spec.size, name.clone(), AreaSource::Region)
                };
                let area = areas.entry(key).or_default();
                area.0 += 1;
                area.1.add_all(&gran.by_node);
            }
            totals.add_all(&region_totals.by_node);
            regions.push(RegionReport {
                id: f.id,
                name,
                start: spec.start,
                size: spec.size,
                granularity: spec.granularity,
                mask: spec.mask,
                direction: spec.direction,
                node: spec.node,
                totals: region_totals,
                granules: f.granules.clone(),
            });
        }
        let areas = areas
            .into_iter()
            .map(
                |((start, size, name, source), (granules, totals))| AreaReport {
                    name,
                    start,
                    size,
                    source,
                    granules,
                    totals,
                },
            )
            .collect();
        let mut secondaries: Vec<SecondaryReport> = session
            .secondaries
            .iter()
            .map(|s| {
                let mut t = Totals::default();
                t.add_all(&s.by_node);
                SecondaryReport {
                    id: s.id,
                    name: s
                        .spec
                        .name
                        .clone()
                        .unwrap_or_else(|| format!("secondary {}", s.id.0)),
                    mask: s.spec.mask,
                    sources: s.spec.sources.clone(),
                    totals: t,
                }
            })
            .collect();
        secondaries.sort_by_key(|s| s.id);
        Report {
            version: REPORT_VERSION,
            machine: session.machine.clone(),
            sampler: session.sampler.clone(),
            card: session.card,
            totals,
            regions,
            areas,
            secondaries,
        }
    }

    /// Every touched granule of every region.
    pub fn granules(&self) -> impl Iterator<Item = GranuleRef<'_>> {
        self.regions.iter().flat_map(|r| {
            r.granules.iter().map(move |g| GranuleRef {
                region: r,
                granule: g,
                addr: r.start.saturating_add(g.offset),
                totals: g.totals(),
            })
        })
    }

    /// The `n` granules with the most remote references (then the most references,
    /// then the lowest address, then the lowest filter id); granules with no remote
    /// reference come last, by references.
    pub fn top_granules(&self, n: usize) -> Vec<GranuleRef<'_>> {
        let mut all: Vec<GranuleRef<'_>> = self.granules().collect();
        all.sort_by(GranuleRef::by_remote);
        all.truncate(n);
        all
    }

    /// The report as pretty-printed JSON (numbers as JSON numbers).
    pub fn to_json(&self) -> String {
        // Serializing these types cannot fail: all map keys are integers.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// One CSV row per touched granule per accessing node, with a header:
    /// `region_id,region,address,offset,granularity,home_node,home_mixed,node,local,remote,reads,writes`.
    pub fn to_csv(&self) -> String {
        let mut out = String::from(
            "region_id,region,address,offset,granularity,home_node,home_mixed,node,local,remote,reads,writes\n",
        );
        for g in self.granules() {
            for (node, c) in &g.granule.by_node {
                let home = g
                    .granule
                    .home_node
                    .map(|h| h.to_string())
                    .unwrap_or_default();
                let _ = writeln!(
                    out,
                    "{},{},{:#x},{},{},{},{},{},{},{},{},{}",
                    g.region.id.0,
                    csv_field(&g.region.name),
                    g.addr,
                    g.granule.offset,
                    g.region.granularity.bytes(),
                    home,
                    g.granule.home_mixed,
                    node,
                    c.local,
                    c.remote,
                    c.reads,
                    c.writes
                );
            }
        }
        out
    }

    /// The report as text: a summary, the data-area table (one row per area per
    /// accessing node), the secondary counters, and the `top` granules with the most
    /// remote references (none when `top` is 0).
    pub fn to_text(&self, top: usize) -> String {
        let mut out = String::new();
        let s = &self.sampler;
        let name = if s.name.is_empty() { "?" } else { &s.name };
        let _ = writeln!(
            out,
            "{} nodes; sampler {name}: {} samples, {} lost, rate {} Hz; card: {} matched, {} unmatched, {} with a bad node, {} of unknown locality",
            self.machine.nodes,
            s.samples,
            s.lost,
            s.rate_hz,
            self.card.matched,
            self.card.unmatched,
            self.card.bad_node,
            self.card.unknown_locality
        );
        let t = &self.totals.all;
        let _ = writeln!(
            out,
            "references: {} ({} local, {} remote, {} remote{}; {} reads, {} writes)",
            t.total(),
            t.local,
            t.remote,
            percent(t.remote, t.local + t.remote),
            margin95(t.remote, t.local + t.remote),
            t.reads,
            t.writes
        );

        out.push('\n');
        let mut rows = Vec::new();
        for a in &self.areas {
            for (node, c) in &a.totals.by_node {
                rows.push(vec![
                    a.name.clone(),
                    format!("{:#x}", a.start),
                    size_text(a.size),
                    node.to_string(),
                    c.local.to_string(),
                    c.remote.to_string(),
                    c.reads.to_string(),
                    c.writes.to_string(),
                    percent(c.remote, c.local + c.remote),
                ]);
            }
        }
        out.push_str(&table(
            2,
            &[
                "DATA AREA",
                "START",
                "SIZE",
                "NODE",
                "LOCAL",
                "REMOTE",
                "READS",
                "WRITES",
                "REMOTE%",
            ],
            &rows,
        ));

        if !self.secondaries.is_empty() {
            out.push('\n');
            let mut rows = Vec::new();
            for s in &self.secondaries {
                for (node, c) in &s.totals.by_node {
                    rows.push(vec![
                        s.name.clone(),
                        s.mask.to_string(),
                        node.to_string(),
                        c.local.to_string(),
                        c.remote.to_string(),
                        c.reads.to_string(),
                        c.writes.to_string(),
                    ]);
                }
            }
            out.push_str(&table(
                2,
                &[
                    "SECONDARY",
                    "MASK",
                    "NODE",
                    "LOCAL",
                    "REMOTE",
                    "READS",
                    "WRITES",
                ],
                &rows,
            ));
        }

        if top > 0 {
            let granules = self.top_granules(top);
            let _ = writeln!(
                out,
                "\ntop {} granules by remote references",
                granules.len()
            );
            let mut rows = Vec::new();
            for g in &granules {
                for (node, c) in &g.granule.by_node {
                    let home = match (g.granule.home_node, g.granule.home_mixed) {
                        (None, _) => "?".to_owned(),
                        (Some(h), false) => h.to_string(),
                        (Some(h), true) => format!("{h}*"),
                    };
                    rows.push(vec![
                        format!("{:#x}", g.addr),
                        g.region.name.clone(),
                        g.region.granularity.to_string(),
                        home,
                        node.to_string(),
                        c.local.to_string(),
                        c.remote.to_string(),
                        c.reads.to_string(),
                        c.writes.to_string(),
                    ]);
                }
            }
            out.push_str(&table(
                3,
                &[
                    "ADDRESS", "REGION", "GRANULE", "HOME", "NODE", "LOCAL", "REMOTE", "READS",
                    "WRITES",
                ],
                &rows,
            ));
        }
        out
    }
}

fn percent(part: u64, whole: u64) -> String {
    if whole == 0 {
        "-".to_owned()
    } else {
        format!("{:.1}%", part as f64 * 100.0 / whole as f64)
    }
}

/// Quotes a CSV field when it holds a comma, a quote or a line break (RFC 4180).
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

/// A byte count in the largest binary unit that divides it (`64`, `8KiB`, `1TiB`).
fn size_text(bytes: u64) -> String {
    const UNITS: [(u32, &str); 4] = [(40, "TiB"), (30, "GiB"), (20, "MiB"), (10, "KiB")];
    for (shift, unit) in UNITS {
        if bytes >= 1 << shift && bytes.is_multiple_of(1 << shift) {
            return format!("{}{unit}", bytes >> shift);
        }
    }
    bytes.to_string()
}

/// A text table: the first `left` columns left-aligned (names, addresses), the others
/// right-aligned (counts).
fn table(left: usize, headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut text = String::new();
        for (i, (cell, w)) in cells.zip(&widths).enumerate() {
            if i > 0 {
                text.push_str("  ");
            }
            let pad = w.saturating_sub(cell.chars().count());
            if i < left {
                text.push_str(cell);
                text.extend(std::iter::repeat_n(' ', pad));
            } else {
                text.extend(std::iter::repeat_n(' ', pad));
                text.push_str(cell);
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(&mut headers.iter().copied());
    for row in rows {
        line(&mut row.iter().map(String::as_str));
    }
    if rows.is_empty() {
        out.push_str("(no references)\n");
    }
    out
}
