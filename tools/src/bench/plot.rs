//! SVG plots of sweeps and matrices (plotters, SVG backend only: no fonts or
//! image libraries are linked; text is left to the SVG viewer).

use std::path::Path;

use plotters::prelude::*;

use super::cache::Cache;
use super::run::{Cell, MatrixNodes};
use super::size::format_size;

fn err(path: &Path) -> impl Fn(String) -> String + '_ {
    move |e| format!("drawing {}: {e}", path.display())
}

/// Latency against buffer size (log scale), with the cache sizes marked: the
/// steps of the memory hierarchy.
///
/// # Errors
/// A one-line message when the file cannot be written.
pub fn latency_sweep(
    path: &Path,
    title: &str,
    points: &[(usize, f64)],
    caches: &[Cache],
) -> Result<(), String> {
    let e = err(path);
    let root = SVGBackend::new(path, (900, 540)).into_drawing_area();
    root.fill(&WHITE).map_err(|x| e(x.to_string()))?;
    let xmin = points.iter().map(|p| p.0).min().unwrap_or(1).max(1) as f64;
    let xmax = (points.iter().map(|p| p.0).max().unwrap_or(2) as f64).max(xmin * 2.0);
    let ymax = points.iter().map(|p| p.1).fold(1.0, f64::max) * 1.1;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d((xmin..xmax).log_scale(), 0.0..ymax)
        .map_err(|x| e(x.to_string()))?;
    chart
        .configure_mesh()
        .x_desc("buffer size")
        .y_desc("ns per load")
        .x_label_formatter(&|v| format_size(*v as usize))
        .draw()
        .map_err(|x| e(x.to_string()))?;
    for c in caches.iter().filter(|c| (c.size_bytes as f64) < xmax) {
        let x = c.size_bytes as f64;
        chart
            .draw_series(LineSeries::new([(x, 0.0), (x, ymax)], BLACK.mix(0.3)))
            .map_err(|x| e(x.to_string()))?
            .label(format!("L{} {}", c.level, format_size(c.size_bytes)));
        chart
            .draw_series([Text::new(
                format!("L{}", c.level),
                (x, ymax * 0.95),
                ("sans-serif", 14),
            )])
            .map_err(|x| e(x.to_string()))?;
    }
    let line: Vec<(f64, f64)> = points.iter().map(|&(s, ns)| (s as f64, ns)).collect();
    chart
        .draw_series(LineSeries::new(line.clone(), BLUE.stroke_width(2)))
        .map_err(|x| e(x.to_string()))?;
    chart
        .draw_series(line.iter().map(|&p| Circle::new(p, 3, BLUE.filled())))
        .map_err(|x| e(x.to_string()))?;
    root.present().map_err(|x| e(x.to_string()))
}

/// Bandwidth against thread count, and the speedup over one thread (Fig. 6).
///
/// # Errors
/// A one-line message when the file cannot be written.
pub fn bandwidth_sweep(path: &Path, title: &str, points: &[(usize, f64)]) -> Result<(), String> {
    let e = err(path);
    let root = SVGBackend::new(path, (900, 540)).into_drawing_area();
    root.fill(&WHITE).map_err(|x| e(x.to_string()))?;
    let xmax = points.iter().map(|p| p.0).max().unwrap_or(1) as f64 + 0.5;
    let ymax = points.iter().map(|p| p.1).fold(0.1, f64::max) * 1.15;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d(0.5..xmax, 0.0..ymax)
        .map_err(|x| e(x.to_string()))?;
    chart
        .configure_mesh()
        .x_desc("threads")
        .y_desc("GB/s")
        .x_labels(points.len().clamp(2, 32))
        .x_label_formatter(&|v| format!("{v:.0}"))
        .draw()
        .map_err(|x| e(x.to_string()))?;
    let line: Vec<(f64, f64)> = points.iter().map(|&(t, g)| (t as f64, g)).collect();
    chart
        .draw_series(LineSeries::new(line.clone(), BLUE.stroke_width(2)))
        .map_err(|x| e(x.to_string()))?;
    let base = points.first().map_or(1.0, |p| p.1.max(1e-12));
    chart
        .draw_series(line.iter().map(|&p| Circle::new(p, 4, BLUE.filled())))
        .map_err(|x| e(x.to_string()))?;
    chart
        .draw_series(line.iter().map(|&(t, g)| {
            Text::new(
                format!("x{:.2}", g / base),
                (t, g + ymax * 0.03),
                ("sans-serif", 13),
            )
        }))
        .map_err(|x| e(x.to_string()))?;
    root.present().map_err(|x| e(x.to_string()))
}

/// A node-pair matrix as a heat map: rows are CPU nodes, columns memory nodes; each
/// cell shows its value and its ratio to the row's local cell (Fig. 5 / Fig. 7).
/// `higher_is_worse` colours large ratios (latency) or small ones (bandwidth).
///
/// # Errors
/// A one-line message when the file cannot be written.
pub fn matrix(
    path: &Path,
    title: &str,
    nodes: &MatrixNodes,
    cells: &[Cell],
    unit: &str,
    higher_is_worse: bool,
) -> Result<(), String> {
    let e = err(path);
    let cols = nodes.mem_nodes.len().max(1);
    let rows = nodes.cpu_nodes.len().max(1);
    let root = SVGBackend::new(path, ((160 * cols + 140) as u32, (90 * rows + 140) as u32))
        .into_drawing_area();
    root.fill(&WHITE).map_err(|x| e(x.to_string()))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..cols as f64, 0.0..rows as f64)
        .map_err(|x| e(x.to_string()))?;
    let mem = nodes.mem_nodes.clone();
    let cpu = nodes.cpu_nodes.clone();
    let label = |ids: &[u32], v: f64| {
        let i = v.floor() as usize;
        if (v - v.floor() - 0.5).abs() < 0.01 {
            ids.get(i).map_or(String::new(), |n| format!("node {n}"))
        } else {
            String::new()
        }
    };
    chart
        .configure_mesh()
        .disable_mesh()
        .x_desc("memory node")
        .y_desc("CPU node")
        .x_labels(cols * 2 + 1)
        .y_labels(rows * 2 + 1)
        .x_label_formatter(&|v| label(&mem, *v))
        .y_label_formatter(&|v| label(&cpu, *v))
        .draw()
        .map_err(|x| e(x.to_string()))?;
    let worst = cells
        .iter()
        .filter_map(|c| c.ratio)
        .map(|r| {
            if higher_is_worse {
                r
            } else {
                1.0 / r.max(1e-9)
            }
        })
        .fold(1.0, f64::max);
    for c in cells {
        let (Some(x), Some(y)) = (
            nodes.mem_nodes.iter().position(|&n| n == c.mem_node),
            nodes.cpu_nodes.iter().position(|&n| n == c.cpu_node),
        ) else {
            continue;
        };
        let badness = c.ratio.map_or(0.0, |r| {
            let r = if higher_is_worse {
                r
            } else {
                1.0 / r.max(1e-9)
            };
            ((r - 1.0) / (worst - 1.0).max(1e-9)).clamp(0.0, 1.0)
        });
        let fill = RGBColor(
            255,
            (235.0 - 150.0 * badness) as u8,
            (200.0 - 170.0 * badness) as u8,
        );
        let (x, y) = (x as f64, (rows - 1 - y) as f64);
        chart
            .draw_series([Rectangle::new(
                [(x + 0.02, y + 0.04), (x + 0.98, y + 0.96)],
                fill.filled(),
            )])
            .map_err(|x| e(x.to_string()))?;
        let ratio = c.ratio.map_or(String::new(), |r| format!("x{r:.2}"));
        chart
            .draw_series([
                Text::new(
                    format!("{:.1} {unit}", c.value),
                    (x + 0.12, y + 0.65),
                    ("sans-serif", 15),
                ),
                Text::new(ratio, (x + 0.12, y + 0.35), ("sans-serif", 15)),
            ])
            .map_err(|x| e(x.to_string()))?;
    }
    root.present().map_err(|x| e(x.to_string()))
}
