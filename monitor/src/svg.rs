//! An SVG heatmap of a report, like the paper's Figures 8 and 9: for each region,
//! granules (addresses, left to right) against accessing nodes (one row each), the
//! colour of a cell growing with its count.
//!
//! Written by hand as text. A region with more granules than
//! [`SvgOptions::max_columns`] has several granules per column (their counts summed).
//! Each cell carries a `<title>` tooltip with its address range, node and count.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::card::{MAX_NODES, NodeCounts};
use crate::report::{RegionReport, Report};

/// Which count colours the cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Metric {
    /// Remote references (what the card counted).
    #[default]
    Remote,
    /// Local references.
    Local,
    /// All references.
    Total,
    /// Reads.
    Reads,
    /// Writes.
    Writes,
}

impl Metric {
    /// The chosen count of `c`.
    pub fn of(self, c: &NodeCounts) -> u64 {
        match self {
            Metric::Remote => c.remote,
            Metric::Local => c.local,
            Metric::Total => c.total(),
            Metric::Reads => c.reads,
            Metric::Writes => c.writes,
        }
    }

    /// Its name in captions.
    pub fn name(self) -> &'static str {
        match self {
            Metric::Remote => "remote",
            Metric::Local => "local",
            Metric::Total => "all",
            Metric::Reads => "read",
            Metric::Writes => "write",
        }
    }
}

/// How to draw the heatmap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SvgOptions {
    /// Which count colours the cells.
    pub metric: Metric,
    /// The most columns per region (at least 1).
    pub max_columns: usize,
    /// The width of the plot area, pixels (cells are at least one pixel wide).
    pub plot_width: u32,
    /// The height of one node's row, pixels.
    pub row_height: u32,
}

impl Default for SvgOptions {
    fn default() -> Self {
        SvgOptions {
            metric: Metric::Remote,
            max_columns: 512,
            plot_width: 960,
            row_height: 18,
        }
    }
}

const LEFT: u64 = 90;
const RIGHT: u64 = 20;
const TITLE_H: u64 = 28;
const AXIS_H: u64 = 30;
const TOP: u64 = 36;

/// Escapes text for an SVG text node or attribute.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Characters XML 1.0 does not allow at all.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// The colour of a cell whose count is `v` of the panel's largest `max` (> 0): from
/// pale yellow to dark red, on a square-root scale so that small counts show.
fn colour(v: u64, max: u64) -> String {
    let t = (v as f64 / max as f64).sqrt().clamp(0.0, 1.0);
    let lerp = |a: f64, b: f64| (a + (b - a) * t).round() as u8;
    format!(
        "#{:02x}{:02x}{:02x}",
        lerp(255.0, 165.0),
        lerp(237.0, 0.0),
        lerp(160.0, 38.0)
    )
}

/// Per column and node, the chosen count of `r` with `columns` columns of `per`
/// granules each.
fn bins(r: &RegionReport, nodes: usize, columns: usize, per: u64, metric: Metric) -> Vec<u64> {
    let mut v = vec![0u64; columns * nodes];
    let g = r.granularity.bytes();
    for gran in &r.granules {
        let col = ((gran.offset / g) / per) as usize;
        if col >= columns {
            continue;
        }
        for (&n, c) in &gran.by_node {
            if let Some(cell) = v.get_mut(col * nodes + n as usize) {
                *cell = cell.saturating_add(metric.of(c));
            }
        }
    }
    v
}

/// The heatmap of every region of `report`, one panel each, as an SVG document.
pub fn heatmap(report: &Report, opts: &SvgOptions) -> String {
    let nodes = report.machine.nodes.clamp(1, MAX_NODES) as usize;
    let row_h = u64::from(opts.row_height.clamp(1, 1000));
    let panel_h = TITLE_H + nodes as u64 * row_h + AXIS_H;
    let max_columns = opts.max_columns.clamp(1, 1 << 16);
    let plot_w = opts.plot_width.clamp(1, 1 << 20);
    let width = LEFT + u64::from(plot_w) + RIGHT;
    let height = TOP + panel_h * report.regions.len().max(1) as u64 + 10;

    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(
        out,
        r#"<rect x="0" y="0" width="{width}" height="{height}" fill="white"/>"#
    );
    let _ = writeln!(
        out,
        r#"<text x="{LEFT}" y="20" font-size="14">{} references per granule and accessing node ({} samples, {} lost)</text>"#,
        escape(opts.metric.name()),
        report.sampler.samples,
        report.sampler.lost
    );
    if report.regions.is_empty() {
        let _ = writeln!(
            out,
            r#"<text x="{LEFT}" y="{}">no regions</text>"#,
            TOP + 20
        );
    }
    for (i, r) in report.regions.iter().enumerate() {
        let y0 = TOP + panel_h * i as u64;
        let granules = r.granule_count().max(1);
        let per = granules.div_ceil(max_columns as u64).max(1);
        let columns = granules.div_ceil(per) as usize;
        let cw = (f64::from(plot_w) / columns as f64).max(1.0);
        let v = bins(r, nodes, columns, per, opts.metric);
        let max = v.iter().copied().max().unwrap_or(0);
        let plot_y = y0 + TITLE_H;
        let g = r.granularity.bytes();
        let _ = writeln!(out, r#"<g class="region" data-id="{}">"#, r.id.0);
        let _ = writeln!(
            out,
            r#"<text x="{LEFT}" y="{}" font-size="12">{} — {} granules of {}, {} per column, max {}</text>"#,
            y0 + 18,
            escape(&r.name),
            r.granule_count(),
            r.granularity,
            per,
            max
        );
        let _ = writeln!(
            out,
            r##"<rect x="{LEFT}" y="{plot_y}" width="{:.2}" height="{}" fill="#f4f4f4" stroke="#999999"/>"##,
            cw * columns as f64,
            nodes as u64 * row_h
        );
        for n in 0..nodes {
            let y = plot_y + n as u64 * row_h;
            let _ = writeln!(
                out,
                r#"<text x="{}" y="{}" text-anchor="end">node {n}</text>"#,
                LEFT - 6,
                y + row_h / 2 + 4
            );
            for col in 0..columns {
                let count = v[col * nodes + n];
                if count == 0 || max == 0 {
                    continue;
                }
                let lo = r.start.saturating_add((col as u64 * per).saturating_mul(g));
                let hi = lo.saturating_add(per.saturating_mul(g)).min(r.end());
                let _ = writeln!(
                    out,
                    r#"<rect x="{:.2}" y="{y}" width="{:.2}" height="{row_h}" fill="{}"><title>node {n}, {lo:#x}..{hi:#x}: {count} {}</title></rect>"#,
                    LEFT as f64 + cw * col as f64,
                    cw,
                    colour(count, max),
                    escape(opts.metric.name())
                );
            }
        }
        let axis_y = plot_y + nodes as u64 * row_h + 14;
        let _ = writeln!(
            out,
            r#"<text x="{LEFT}" y="{axis_y}">{:#x}</text>"#,
            r.start
        );
        let _ = writeln!(
            out,
            r#"<text x="{}" y="{axis_y}" text-anchor="end">{:#x}</text>"#,
            LEFT + u64::from(plot_w),
            r.end()
        );
        let _ = writeln!(out, "</g>");
    }
    out.push_str("</svg>\n");
    out
}

impl Report {
    /// The report's heatmap (see [`heatmap`]).
    pub fn to_svg(&self, opts: &SvgOptions) -> String {
        heatmap(self, opts)
    }
}
