//! rset-top's views drawn with ratatui's `TestBackend` from a session recorded in
//! the 4-node guest (tests/fixtures/hotspot-4node.session: the hotspot program
//! under rset-run --threads round-robin --mem local and rset-mon record), at
//! 80x24 and 200x50. The expected screens are checked in under
//! tests/snapshots/top/; `RSET_UPDATE_SNAPSHOTS=1 cargo test --test top_views`
//! rewrites them (review the diff).

use std::path::{Path, PathBuf};

use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::style::Color;
use rset_tools::top::app::{App, Heat, Key, View};
use rset_tools::top::frame::{Found, Frame};
use rset_tools::top::machine::{NodeInfo, ThreadInfo};
use rset_tools::top::model::{Model, Status};
use rset_tools::top::ui;

fn fixture() -> Model {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hotspot-4node.session");
    let file = monitor::SessionFile::load(&path).unwrap();
    let mut frame = Frame::from_session(&file);
    frame.pid = 4242;
    let nodes = (0..4)
        .map(|n| NodeInfo {
            node: n,
            cpus: vec![2 * n, 2 * n + 1],
            mem_total: 512 << 20,
            mem_free: (400 - 10 * u64::from(n)) << 20,
        })
        .collect();
    let mut m = Model::new(nodes);
    // Two readings a second apart: the second has rates and a history.
    let mut half = frame.clone();
    for r in &mut half.regions {
        for g in &mut r.granules {
            for c in &mut g.by_node {
                c.local /= 2;
                c.remote /= 2;
                c.reads /= 2;
                c.writes /= 2;
            }
        }
    }
    m.update(half, 0.0);
    m.update(frame, 1.0);
    m.threads = (0..5)
        .map(|i| ThreadInfo {
            tid: 4242 + i,
            comm: "hotspot".into(),
            cpu: [0, 2, 4, 6, 0][i as usize],
        })
        .collect();
    m.status = Status::Running;
    m
}

fn text(b: &Buffer) -> String {
    let area = b.area;
    let mut out = String::new();
    for y in 0..area.height {
        let line: String = (0..area.width).map(|x| b[(x, y)].symbol()).collect();
        out += line.trim_end();
        out.push('\n');
    }
    out
}

fn render(app: &App, m: &Model, w: u16, h: u16) -> Buffer {
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    t.draw(|f| ui::draw(f, app, m, "/run/user/0/rset-mon/4242.live"))
        .unwrap();
    t.backend().buffer().clone()
}

fn check(name: &str, app: &App, m: &Model) {
    for (w, h) in [(80, 24), (200, 50)] {
        let got = text(&render(app, m, w, h));
        let file: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/snapshots/top")
            .join(format!("{name}-{w}x{h}.txt"));
        if std::env::var_os("RSET_UPDATE_SNAPSHOTS").is_some() {
            std::fs::write(&file, &got).unwrap();
            continue;
        }
        let want = std::fs::read_to_string(&file).unwrap_or_else(|e| {
            panic!(
                "{}: {e} (RSET_UPDATE_SNAPSHOTS=1 writes it)",
                file.display()
            )
        });
        assert!(
            got == want,
            "{name} at {w}x{h} differs from {}:\n--- got ---\n{got}--- want ---\n{want}",
            file.display()
        );
    }
}

fn app_on(view: View, m: &Model) -> App {
    let mut app = App::new(View::Nodes);
    match view {
        View::Regions => {
            app.on_key(Key::Tab, m);
        }
        View::Granules => {
            app.on_key(Key::Tab, m);
            app.on_key(Key::Enter, m);
        }
        _ => app.view = view,
    }
    assert_eq!(app.view, view);
    app
}

#[test]
fn nodes_view() {
    let m = fixture();
    check("nodes", &app_on(View::Nodes, &m), &m);
}

#[test]
fn regions_view() {
    let m = fixture();
    check("regions", &app_on(View::Regions, &m), &m);
}

#[test]
fn granules_view_with_the_cursor_on_the_third_granule() {
    let m = fixture();
    let mut app = app_on(View::Granules, &m);
    app.on_key(Key::Down, &m);
    app.on_key(Key::Down, &m);
    check("granules", &app, &m);
}

#[test]
fn help_overlay() {
    let m = fixture();
    let mut app = app_on(View::Regions, &m);
    app.on_key(Key::Char('?'), &m);
    check("help", &app, &m);
}

#[test]
fn session_picker() {
    let m = Model::new(Vec::new());
    let mut app = App::new(View::Sessions);
    app.sessions = vec![
        Found {
            pid: 4242,
            path: "/run/user/0/rset-mon/4242.live".into(),
            comm: Some("hotspot".into()),
        },
        Found {
            pid: 4300,
            path: "/run/user/0/rset-mon/4300.live".into(),
            comm: None,
        },
    ];
    app.on_key(Key::Down, &m);
    check("sessions", &app, &m);
}

#[test]
fn an_exited_program_keeps_its_last_counters() {
    let mut m = fixture();
    m.status = Status::Exited;
    m.threads.clear();
    let got = text(&render(&app_on(View::Regions, &m), &m, 80, 24));
    assert!(
        got.contains("program 4242 exited; showing last counters"),
        "{got}"
    );
    assert!(got.contains("heap#0"), "{got}");
}

#[test]
fn a_terminal_too_small_says_so() {
    let m = fixture();
    let got = text(&render(&app_on(View::Regions, &m), &m, 50, 10));
    assert!(
        got.contains("terminal too small: 50x10 (rset-top needs 60x12)"),
        "{got}"
    );
}

#[test]
fn the_second_heat_mode_colours_by_remote_share() {
    let m = fixture();
    let mut app = app_on(View::Granules, &m);
    // The first data row, node columns: the colours of both modes differ and
    // the text does not.
    let cells = |b: &Buffer| -> Vec<Color> {
        (0..80)
            .map(|x| b[(x, 4)].bg)
            .filter(|c| *c != Color::Reset)
            .collect()
    };
    let by_refs = render(&app, &m, 80, 24);
    app.on_key(Key::Char('m'), &m);
    assert_eq!(app.heat, Heat::RemoteShare);
    let by_share = render(&app, &m, 80, 24);
    assert!(!cells(&by_refs).is_empty());
    assert_ne!(cells(&by_refs), cells(&by_share));
    let without_title = |b: &Buffer| {
        let t = text(b);
        t.lines()
            .enumerate()
            .filter(|&(i, _)| i != 2)
            .map(|(_, l)| l.to_string())
            .collect::<Vec<_>>()
    };
    assert!(text(&by_share).contains("colour: remote (m)"));
    assert_eq!(without_title(&by_refs), without_title(&by_share));
}
