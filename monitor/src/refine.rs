//! Successive refinement (the paper's method): count coarse granules first, then
//! program the next round's filters over the hottest granules only, at a finer
//! granularity, down to cache lines; after the last round, say which node dominates
//! each line and flag lines written from two or more nodes.
//!
//! The planner is pure: it reads a round's counters (a [`Report`], a [`Card`] or a
//! [`SessionFile`]) and returns [`FilterSpec`]s to program on a fresh card.

use std::borrow::Cow;
use std::fmt::Write as _;

use crate::card::Card;
use crate::filter::{FilterId, FilterSpec};
use crate::granularity::Granularity;
use crate::report::{GranuleRef, RegionReport, Report};
use crate::session_file::SessionFile;

/// Anything holding a round's counters.
pub trait Counted {
    /// The regions (filters) with their touched granules.
    fn regions(&self) -> Cow<'_, [RegionReport]>;
}

impl Counted for Report {
    fn regions(&self) -> Cow<'_, [RegionReport]> {
        Cow::Borrowed(&self.regions)
    }
}

impl Counted for Card {
    fn regions(&self) -> Cow<'_, [RegionReport]> {
        Cow::Owned(Report::from_card(self).regions)
    }
}

impl Counted for SessionFile {
    fn regions(&self) -> Cow<'_, [RegionReport]> {
        Cow::Owned(Report::from_session(self).regions)
    }
}

/// Which granules the next round zooms into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Select {
    /// The `k` with the most remote references (at least one).
    #[default]
    Remote,
    /// The `k` most referenced among those touched from two or more nodes.
    Shared,
    /// The `k` with the most remote references among those with a remote reference or
    /// touched from two or more nodes.
    RemoteOrShared,
}

/// How to plan the next round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefineOptions {
    /// How many granules to keep.
    pub k: usize,
    /// The next round's granularity.
    pub next: Granularity,
    /// Which granules.
    pub select: Select,
    /// Truth that adjacent kept granules of one filter become one filter.
    pub merge_adjacent: bool,
}

impl Default for RefineOptions {
    /// The top 8 granules by remote references, refined to cache lines, merged.
    fn default() -> Self {
        RefineOptions {
            k: 8,
            next: Granularity::LINE,
            select: Select::Remote,
            merge_adjacent: true,
        }
    }
}

/// The next round's filters over the `k` granules with the most remote references,
/// at granularity `next` (adjacent ones merged). See [`plan_next_round_with`].
pub fn plan_next_round<C: Counted + ?Sized>(
    counts: &C,
    k: usize,
    next: Granularity,
) -> Vec<FilterSpec> {
    plan_next_round_with(
        counts,
        &RefineOptions {
            k,
            next,
            ..RefineOptions::default()
        },
    )
}

/// The next round's filters: one per kept granule (or run of adjacent kept granules of
/// one filter), covering it at granularity `opts.next`, with the parent filter's mask,
/// direction, node and name, sorted by address. Ties rank by references, then by
/// address.
pub fn plan_next_round_with<C: Counted + ?Sized>(
    counts: &C,
    opts: &RefineOptions,
) -> Vec<FilterSpec> {
    let regions = counts.regions();
    let mut candidates: Vec<GranuleRef<'_>> = regions
        .iter()
        .flat_map(|r| {
            r.granules.iter().map(move |g| GranuleRef {
                region: r,
                granule: g,
                addr: r.start.saturating_add(g.offset),
                totals: g.totals(),
            })
        })
        .filter(|g| {
            let shared = g.granule.by_node.values().filter(|c| c.total() > 0).count() >= 2;
            let remote = g.totals.remote > 0;
            match opts.select {
                Select::Remote => remote,
                Select::Shared => shared,
                Select::RemoteOrShared => remote || shared,
            }
        })
        .collect();
    if opts.select == Select::Shared {
        candidates.sort_by(GranuleRef::by_references);
    } else {
        candidates.sort_by(GranuleRef::by_remote);
    }
    candidates.truncate(opts.k);
    candidates.sort_by_key(|g| (g.region.id, g.addr));

    let mut out: Vec<(FilterId, FilterSpec)> = Vec::new();
    for g in candidates {
        let r = g.region;
        let region_end = r.start.saturating_add(r.size);
        let end = g
            .addr
            .saturating_add(r.granularity.bytes())
            .min(region_end)
            .max(g.addr.saturating_add(1));
        if opts.merge_adjacent {
            if let Some((id, last)) = out.last_mut() {
                if *id == r.id && last.start.saturating_add(last.size) == g.addr {
                    last.size = end - last.start;
                    continue;
                }
            }
        }
        let mut spec = FilterSpec::new(g.addr, end - g.addr, opts.next)
            .mask(r.mask)
            .direction(r.direction, r.node);
        spec.name = Some(r.name.clone());
        out.push((r.id, spec));
    }
    let mut specs: Vec<FilterSpec> = out.into_iter().map(|(_, s)| s).collect();
    specs.sort_by_key(|a| (a.start, a.size));
    specs
}

/// What the last round says about one line (granule).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineVerdict {
    /// The filter counting it.
    pub filter: FilterId,
    /// That filter's name.
    pub region: String,
    /// Its first byte.
    pub addr: u64,
    /// Its size (the filter's granularity).
    pub size: u64,
    /// The home node of its page, if known.
    pub home_node: Option<u32>,
    /// Its references.
    pub total: u64,
    /// Its remote references.
    pub remote: u64,
    /// The accessing node with the most references (the lowest on a tie).
    pub dominant_node: Option<u32>,
    /// That node's references.
    pub dominant_refs: u64,
    /// Nodes that read it.
    pub readers: Vec<u32>,
    /// Nodes that wrote it.
    pub writers: Vec<u32>,
    /// Truth that two or more nodes wrote it: true or false sharing.
    pub write_shared: bool,
}

impl LineVerdict {
    /// The dominant node's share of the references, 0 ..= 1.
    pub fn dominant_share(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.dominant_refs as f64 / self.total as f64
        }
    }
}

/// A verdict for every touched granule of the last round, by address (then filter).
pub fn line_verdicts<C: Counted + ?Sized>(counts: &C) -> Vec<LineVerdict> {
    let regions = counts.regions();
    let mut out: Vec<LineVerdict> = regions
        .iter()
        .flat_map(|r| {
            r.granules.iter().map(move |g| {
                let t = g.totals();
                let mut dominant: Option<(u32, u64)> = None;
                for (&n, c) in &g.by_node {
                    if dominant.is_none_or(|(_, best)| c.total() > best) {
                        dominant = Some((n, c.total()));
                    }
                }
                let readers: Vec<u32> = g
                    .by_node
                    .iter()
                    .filter(|(_, c)| c.reads > 0)
                    .map(|(&n, _)| n)
                    .collect();
                let writers: Vec<u32> = g
                    .by_node
                    .iter()
                    .filter(|(_, c)| c.writes > 0)
                    .map(|(&n, _)| n)
                    .collect();
                LineVerdict {
                    filter: r.id,
                    region: r.name.clone(),
                    addr: r.start.saturating_add(g.offset),
                    size: r.granularity.bytes(),
                    home_node: g.home_node,
                    total: t.total(),
                    remote: t.remote,
                    dominant_node: dominant.filter(|&(_, c)| c > 0).map(|(n, _)| n),
                    dominant_refs: dominant.map_or(0, |(_, c)| c),
                    readers,
                    write_shared: writers.len() >= 2,
                    writers,
                }
            })
        })
        .collect();
    out.sort_by_key(|v| (v.addr, v.filter));
    out
}

fn node_list(nodes: &[u32]) -> String {
    if nodes.is_empty() {
        return "-".to_owned();
    }
    nodes
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// The verdicts as text, one line each, write-shared lines marked `SHARED-WRITE`.
pub fn verdicts_text(verdicts: &[LineVerdict]) -> String {
    let mut out = String::new();
    for v in verdicts {
        let dominant = v
            .dominant_node
            .map_or("-".to_owned(), |n| format!("node {n}"));
        let home = v.home_node.map_or("?".to_owned(), |h| h.to_string());
        let _ = writeln!(
            out,
            "{:#x} {} ({} B, home {home}): {} refs, {} remote; dominated by {dominant} ({:.0}%); readers {}; writers {}{}",
            v.addr,
            v.region,
            v.size,
            v.total,
            v.remote,
            v.dominant_share() * 100.0,
            node_list(&v.readers),
            node_list(&v.writers),
            if v.write_shared { "  SHARED-WRITE" } else { "" }
        );
    }
    out
}
