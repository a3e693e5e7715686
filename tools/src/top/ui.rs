//! Drawing the views with ratatui. Pure: a frame of the model and the app state in,
//! cells out (snapshot-tested with `TestBackend`).

use ratatui::Frame as Screen;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Clear, Paragraph, Row, Table, TableState, Wrap};

use super::app::{App, Heat, View};
use super::frame::{Counts, Region};
use super::model::{Model, Status};

/// The smallest terminal the views fit in.
pub const MIN_SIZE: (u16, u16) = (60, 12);

/// Bytes as `4.0K`, `16M`, `1.5G`.
pub fn size(n: u64) -> String {
    const UNITS: [(&str, u64); 4] = [("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10), ("", 1)];
    for (u, v) in UNITS {
        if n >= v && v > 1 {
            let x = n as f64 / v as f64;
            return if x >= 10.0 || n.is_multiple_of(v) {
                format!("{:.0}{u}", x)
            } else {
                format!("{x:.1}{u}")
            };
        }
    }
    format!("{n}B")
}

/// A count as `999`, `12.3k`, `4.5M`.
pub fn count(n: u64) -> String {
    match n {
        n if n >= 10_000_000 => format!("{:.0}M", n as f64 / 1e6),
        n if n >= 1_000_000 => format!("{:.1}M", n as f64 / 1e6),
        n if n >= 10_000 => format!("{:.0}k", n as f64 / 1e3),
        n if n >= 1_000 => format!("{:.1}k", n as f64 / 1e3),
        n => n.to_string(),
    }
}

fn share(c: &Counts) -> String {
    if c.local + c.remote == 0 {
        "-".into()
    } else {
        format!("{:.0}%", c.remote_share() * 100.0)
    }
}

/// A text sparkline of per-mille values.
pub fn sparkline(values: impl Iterator<Item = u64>, width: usize) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let v: Vec<u64> = values.collect();
    v[v.len().saturating_sub(width)..]
        .iter()
        .map(|&x| BARS[(x.min(1000) as usize * 7 + 500) / 1000])
        .collect()
}

/// The heat colour of `x` in 0..=1: dark blue through red to yellow.
fn heat(x: f64) -> Color {
    let x = x.clamp(0.0, 1.0);
    let (r, g, b) = if x < 0.5 {
        let t = x * 2.0;
        (40.0 + 200.0 * t, 40.0, 120.0 * (1.0 - t) + 20.0)
    } else {
        let t = (x - 0.5) * 2.0;
        (240.0, 40.0 + 200.0 * t, 20.0)
    };
    Color::Rgb(r as u8, g as u8, b as u8)
}

fn selected() -> Style {
    Style::default().add_modifier(Modifier::REVERSED)
}

fn header(cells: Vec<String>) -> Row<'static> {
    Row::new(cells).style(Style::default().add_modifier(Modifier::BOLD))
}

/// Draws everything.
pub fn draw(f: &mut Screen, app: &App, m: &Model, source: &str) {
    let area = f.area();
    if area.width < MIN_SIZE.0 || area.height < MIN_SIZE.1 {
        let msg = format!(
            "terminal too small: {}x{} (rset-top needs {}x{}); q quits",
            area.width, area.height, MIN_SIZE.0, MIN_SIZE.1
        );
        f.render_widget(Paragraph::new(msg).wrap(Wrap { trim: true }), area);
        return;
    }
    let [top, body, bottom] = Layout::vertical([
        Constraint::Length(2),
        Constraint::Min(3),
        Constraint::Length(1),
    ])
    .areas(area);
    draw_title(f, top, app, m, source);
    match app.view {
        View::Sessions => draw_sessions(f, body, app),
        View::Nodes => draw_nodes(f, body, app, m),
        View::Regions => draw_regions(f, body, app, m),
        View::Granules => draw_granules(f, body, app, m),
    }
    draw_status(f, bottom, app, m);
    if app.help {
        draw_help(f, area);
    }
}

fn draw_title(f: &mut Screen, area: Rect, app: &App, m: &Model, source: &str) {
    let tab = |v: View, name: &str| {
        if app.view == v {
            Span::styled(
                format!("[{name}]"),
                Style::default().add_modifier(Modifier::BOLD),
            )
        } else {
            Span::raw(format!(" {name} "))
        }
    };
    let facts = match &m.frame {
        Some(fr) => format!(
            "pid {} · {} nodes · {} regions · {} samples ({} lost) · {} Hz",
            fr.pid,
            fr.nodes,
            fr.regions.len(),
            fr.samples,
            fr.lost,
            fr.rate_hz
        ),
        None => "waiting for the first counters".into(),
    };
    let lines = vec![
        Line::from(vec![
            Span::styled("rset-top ", Style::default().add_modifier(Modifier::BOLD)),
            Span::raw(facts),
        ]),
        Line::from(vec![
            tab(View::Nodes, "Nodes"),
            tab(View::Regions, "Regions"),
            tab(View::Granules, "Granules"),
            Span::raw(format!("  {source}")),
        ]),
    ];
    f.render_widget(Paragraph::new(lines), area);
}

fn draw_status(f: &mut Screen, area: Rect, app: &App, m: &Model) {
    let state = match (&m.status, m.frame.as_ref()) {
        (Status::Exited, Some(fr)) => format!("program {} exited; showing last counters", fr.pid),
        (Status::Exited, None) => "the program exited before any counters".into(),
        (Status::Unreadable(why), _) => {
            format!("live file unreadable ({why}); showing last counters")
        }
        (Status::Replay, _) => match app.replay {
            Some((at, 1)) => format!("replay frame {}/1 ([ ] move)", at + 1),
            Some((at, n)) => match app.replay_at_ms {
                Some(ms) => format!(
                    "replay frame {}/{n} at {:.1} s ([ ] move)",
                    at + 1,
                    ms as f64 / 1000.0
                ),
                None => format!("replay frame {n}/{n}: the final counts ([ ] move)"),
            },
            None => "replay".into(),
        },
        _ if app.view == View::Sessions => "pick a live session: arrows move, Enter opens".into(),
        (Status::Running, _) if app.paused => "paused (p resumes)".into(),
        (Status::Running, _) => "live".into(),
    };
    let text = match (&app.message, app.typing) {
        (_, true) => format!("filter: {}_  (Enter keeps, Esc clears)", app.filter),
        (Some(msg), _) => format!("{msg} · {state}"),
        (None, _) => format!("{state} · ? help · q quit"),
    };
    f.render_widget(
        Paragraph::new(text).style(Style::default().add_modifier(Modifier::REVERSED)),
        area,
    );
}

fn draw_sessions(f: &mut Screen, area: Rect, app: &App) {
    let rows: Vec<Row> = app
        .sessions
        .iter()
        .map(|s| {
            Row::new(vec![
                s.pid.to_string(),
                s.comm.clone().unwrap_or_else(|| "(exited)".into()),
                s.path.display().to_string(),
            ])
        })
        .collect();
    let table = Table::new(
        rows,
        [
            Constraint::Length(8),
            Constraint::Length(18),
            Constraint::Min(10),
        ],
    )
    .header(header(vec![
        "PID".into(),
        "PROGRAM".into(),
        "LIVE FILE".into(),
    ]))
    .block(
        Block::default()
            .borders(Borders::TOP)
            .title("live sessions: Enter opens"),
    )
    .row_highlight_style(selected());
    let mut st = TableState::default().with_selected(Some(app.session_row));
    f.render_stateful_widget(table, area, &mut st);
}

fn draw_nodes(f: &mut Screen, area: Rect, app: &App, m: &Model) {
    let nodes_in_frame = m.frame.as_ref().map_or(0, |fr| fr.nodes);
    let totals = &m.by_node;
    let count_nodes = m.nodes.len().max(nodes_in_frame);
    let rows: Vec<Row> = (0..count_nodes)
        .map(|n| {
            let info = m.nodes.iter().find(|i| i.node as usize == n);
            let cpus = info.map_or(String::new(), |i| {
                if i.cpus.is_empty() {
                    "none (memory only)".into()
                } else {
                    cpu_list(&i.cpus)
                }
            });
            let (l, r) = m.rates.get(n).copied().unwrap_or((0.0, 0.0));
            let threads = m.threads_on(n as u32);
            let t = threads
                .iter()
                .map(|t| format!("{}@{}", t.tid, t.cpu))
                .collect::<Vec<_>>()
                .join(" ");
            Row::new(vec![
                n.to_string(),
                cpus,
                info.map_or("-".into(), |i| size(i.mem_total)),
                info.map_or("-".into(), |i| size(i.mem_free)),
                format!("{:.0}", l),
                format!("{:.0}", r),
                totals.get(n).map_or("-".into(), share),
                format!("{} {t}", threads.len()),
            ])
        })
        .collect();
    let table = Table::new(
        rows,
        [
            Constraint::Length(4),
            Constraint::Length(12),
            Constraint::Length(7),
            Constraint::Length(7),
            Constraint::Length(9),
            Constraint::Length(9),
            Constraint::Length(7),
            Constraint::Min(8),
        ],
    )
    .header(header(
        [
            "NODE",
            "CPUS",
            "MEM",
            "FREE",
            "LOCAL/s",
            "REMOTE/s",
            "REMOTE",
            "THREADS tid@cpu",
        ]
        .map(String::from)
        .to_vec(),
    ))
    .block(
        Block::default()
            .borders(Borders::TOP)
            .title("by accessing node: references/s (local, remote), remote share so far"),
    )
    .row_highlight_style(selected());
    let mut st = TableState::default().with_selected(Some(app.node_row));
    f.render_stateful_widget(table, area, &mut st);
}

/// `0-3,8` ([`rset::list::format_list`]).
pub fn cpu_list(cpus: &[u32]) -> String {
    rset::list::format_list(cpus)
}

fn per_node(c: &[Counts], nodes: usize) -> Vec<String> {
    (0..nodes)
        .map(|n| c.get(n).map_or("0".into(), |c| count(c.total())))
        .collect()
}

fn draw_regions(f: &mut Screen, area: Rect, app: &App, m: &Model) {
    let Some(fr) = &m.frame else {
        f.render_widget(Paragraph::new("no counters yet"), area);
        return;
    };
    let nodes = fr.nodes;
    let order = m.regions(app.sort, &app.filter);
    let spark_w = 12usize;
    let rows: Vec<Row> = order
        .iter()
        .map(|&i| {
            let r = &fr.regions[i];
            let all = r.all();
            let mut cells = vec![
                r.name.clone(),
                size(r.size),
                size(r.granularity),
                count(all.total()),
            ];
            cells.extend(per_node(&r.by_node(nodes), nodes));
            cells.push(share(&all));
            let h = m.history.get(&r.key());
            cells.push(h.map_or(String::new(), |h| sparkline(h.iter().copied(), spark_w)));
            Row::new(cells)
        })
        .collect();
    let mut widths = vec![
        Constraint::Min(12),
        Constraint::Length(6),
        Constraint::Length(5),
        Constraint::Length(7),
    ];
    widths.extend((0..nodes).map(|_| Constraint::Length(6)));
    widths.push(Constraint::Length(7));
    widths.push(Constraint::Length(spark_w as u16));
    let mut head = vec!["REGION".into(), "SIZE".into(), "GRAN".into(), "REFS".into()];
    head.extend((0..nodes).map(|n| format!("N{n}")));
    head.push("REMOTE".into());
    head.push("TREND".into());
    let title = format!(
        "regions by {}{} (s sorts, / filters, Enter opens)",
        app.sort.label(),
        if app.filter.is_empty() {
            String::new()
        } else {
            format!(", name contains \"{}\"", app.filter)
        }
    );
    let table = Table::new(rows, widths)
        .header(header(head))
        .block(Block::default().borders(Borders::TOP).title(title))
        .row_highlight_style(selected());
    let mut st = TableState::default().with_selected(Some(app.region_row));
    f.render_stateful_widget(table, area, &mut st);
}

fn draw_granules(f: &mut Screen, area: Rect, app: &App, m: &Model) {
    let Some((r, order)) = app.region.and_then(|k| m.granules_by_heat(k)) else {
        f.render_widget(Paragraph::new("the region is gone; Esc goes back"), area);
        return;
    };
    let nodes = m.frame.as_ref().map_or(0, |fr| fr.nodes);
    let [table_area, detail] =
        Layout::vertical([Constraint::Min(3), Constraint::Length(nodes as u16 + 2)]).areas(area);
    let max = order.first().map_or(1, |g| g.all().total().max(1));
    // Only the rows on screen are built (a region may have 100,000 granules): a
    // window of the table's height that holds the selected row.
    let visible = usize::from(table_area.height.saturating_sub(2)).max(1);
    let first = app.granule_row.saturating_sub(visible - 1);
    let rows: Vec<Row> = order
        .iter()
        .skip(first)
        .take(visible)
        .map(|g| {
            let all = g.all();
            let mut cells = vec![
                Cell::from(format!("{:#x}", g.index * r.granularity)),
                Cell::from(format!("{:#x}", r.start + g.index * r.granularity)),
                Cell::from(count(all.total())),
            ];
            for n in 0..nodes {
                let c = g.by_node.get(n).copied().unwrap_or_default();
                let x = match app.heat {
                    Heat::References => c.total() as f64 / max as f64,
                    Heat::RemoteShare => c.remote_share(),
                };
                let text = if c.total() == 0 {
                    "·".to_string()
                } else {
                    count(c.total())
                };
                let style = if c.total() == 0 {
                    Style::default()
                } else {
                    Style::default().bg(heat(x)).fg(Color::White)
                };
                cells.push(Cell::from(text).style(style));
            }
            cells.push(Cell::from(share(&all)));
            Row::new(cells)
        })
        .collect();
    let mut widths = vec![
        Constraint::Length(10),
        Constraint::Length(16),
        Constraint::Length(7),
    ];
    widths.extend((0..nodes).map(|_| Constraint::Length(6)));
    widths.push(Constraint::Length(7));
    let mut head = vec!["OFFSET".into(), "ADDRESS".into(), "REFS".into()];
    head.extend((0..nodes).map(|n| format!("N{n}")));
    head.push("REMOTE".into());
    let title = format!(
        "{}: {} granules of {}, {} referenced · colour: {} (m) · r refines",
        r.name,
        r.granule_count(),
        size(r.granularity),
        r.granules.len(),
        match app.heat {
            Heat::References => "refs",
            Heat::RemoteShare => "remote",
        }
    );
    let table = Table::new(rows, widths)
        .header(header(head))
        .block(Block::default().borders(Borders::TOP).title(title))
        .row_highlight_style(selected());
    let mut st = TableState::default().with_selected(Some(app.granule_row - first));
    f.render_stateful_widget(table, table_area, &mut st);
    draw_granule_detail(f, detail, r, order.get(app.granule_row).copied(), nodes);
}

fn draw_granule_detail(
    f: &mut Screen,
    area: Rect,
    r: &Region,
    g: Option<&super::frame::Granule>,
    nodes: usize,
) {
    let Some(g) = g else {
        f.render_widget(
            Paragraph::new("no granule has references yet")
                .block(Block::default().borders(Borders::TOP)),
            area,
        );
        return;
    };
    let lines: Vec<Line> = (0..nodes)
        .map(|n| {
            let c = g.by_node.get(n).copied().unwrap_or_default();
            Line::from(format!(
                "node {n}: {} references ({} local, {} remote), {} reads, {} writes",
                c.total(),
                c.local,
                c.remote,
                c.reads,
                c.writes
            ))
        })
        .collect();
    let title = format!(
        "granule {:#x}..{:#x}",
        r.start + g.index * r.granularity,
        r.start + (g.index + 1) * r.granularity
    );
    f.render_widget(
        Paragraph::new(lines).block(Block::default().borders(Borders::TOP).title(title)),
        area,
    );
}

/// The keys, as the help overlay lists them.
pub const HELP: &[(&str, &str)] = &[
    (
        "Tab / Shift-Tab",
        "next / previous view: Nodes, Regions, Granules",
    ),
    ("Enter", "drill down: a node's regions, a region's granules"),
    ("Esc", "back up one view"),
    ("arrows, hjkl", "move; PgUp/PgDn, g/G: page, first, last"),
    ("s", "Regions: sort by references, remote share, name, size"),
    ("/", "Regions: filter by name (Enter keeps, Esc clears)"),
    ("m", "Granules: colour by references or by remote share"),
    (
        "r",
        "Granules: refine the granule (page > 512 B > 64 B lines)",
    ),
    ("[ ]", "replay: previous / next frame"),
    ("p", "pause / resume refreshing"),
    ("?", "this help (any key closes it)"),
    ("q, Ctrl-C", "quit"),
];

fn draw_help(f: &mut Screen, area: Rect) {
    let w = 80.min(area.width);
    let h = (HELP.len() as u16 + 2).min(area.height);
    let r = Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
    };
    let lines: Vec<Line> = HELP
        .iter()
        .map(|(k, what)| {
            Line::from(vec![
                Span::styled(
                    format!("{k:>16}  "),
                    Style::default().add_modifier(Modifier::BOLD),
                ),
                Span::raw(*what),
            ])
        })
        .collect();
    f.render_widget(Clear, r);
    f.render_widget(
        Paragraph::new(lines).block(
            Block::default()
                .borders(Borders::ALL)
                .title("rset-top keys"),
        ),
        r,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_counts_and_lists_read_well() {
        assert_eq!(size(4096), "4K");
        assert_eq!(size(64), "64B");
        assert_eq!(size(3 << 19), "1.5M");
        assert_eq!(size(2 << 20), "2M");
        assert_eq!(count(999), "999");
        assert_eq!(count(12_345), "12k");
        assert_eq!(count(1_234), "1.2k");
        assert_eq!(cpu_list(&[0, 1, 2, 5, 7, 8]), "0-2,5,7-8");
        assert_eq!(sparkline([0, 500, 1000].into_iter(), 2), "▅█");
    }
}
