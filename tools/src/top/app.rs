//! The viewer's state and what each key does to it: a plain state machine, tested
//! without a terminal. Keys that need the outside world (quit, a refinement, a
//! session to open) come back as an [`Action`] for the loop to carry out.

use std::path::PathBuf;

use super::frame::Found;
use super::model::{Model, Sort};

/// A key, as the state machine sees it (the terminal layer converts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    /// A printable character.
    Char(char),
    /// Arrows.
    Up,
    /// Arrows.
    Down,
    /// Arrows.
    Left,
    /// Arrows.
    Right,
    /// A page up.
    PageUp,
    /// A page down.
    PageDown,
    /// To the first row.
    Home,
    /// To the last row.
    End,
    /// Drill down.
    Enter,
    /// Go back.
    Esc,
    /// Next view.
    Tab,
    /// Previous view.
    BackTab,
    /// Delete a character of the filter.
    Backspace,
    /// Ctrl-C.
    Interrupt,
}

/// The views, in Tab order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// Pick one of several live sessions.
    Sessions,
    /// Nodes: CPUs, memory, references per second, threads.
    Nodes,
    /// Every monitored data area.
    Regions,
    /// One region's granules as a heat map.
    Granules,
}

/// How the heat map colours a cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Heat {
    /// By references.
    #[default]
    References,
    /// By remote share.
    RemoteShare,
}

/// What the loop must do after a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Nothing beyond redrawing.
    None,
    /// Leave (restoring the terminal).
    Quit,
    /// Ask the monitor for a finer filter over `[start, start + size)`.
    Refine {
        /// First byte.
        start: u64,
        /// Bytes.
        size: u64,
        /// The finer granule, bytes.
        granularity: u64,
        /// What to call it in the status line.
        what: String,
    },
    /// Open this live file.
    Open(PathBuf),
}

/// The viewer's state.
#[derive(Debug, Clone)]
pub struct App {
    /// The view on screen.
    pub view: View,
    /// The row selected in the Nodes view.
    pub node_row: usize,
    /// The row selected in the Regions view (index into the sorted, filtered list).
    pub region_row: usize,
    /// The region the Granules view shows: (start, size, granularity).
    pub region: Option<(u64, u64, u64)>,
    /// The row selected in the Granules view.
    pub granule_row: usize,
    /// The Regions order.
    pub sort: Sort,
    /// The Regions name filter.
    pub filter: String,
    /// Typing the filter (after `/`).
    pub typing: bool,
    /// The heat map's colouring.
    pub heat: Heat,
    /// The help overlay is up.
    pub help: bool,
    /// Refreshing is paused.
    pub paused: bool,
    /// A message for the status line.
    pub message: Option<String>,
    /// Live sessions to pick from (the Sessions view).
    pub sessions: Vec<Found>,
    /// The row selected in the Sessions view.
    pub session_row: usize,
    /// Replay: the frame shown, and how many there are.
    pub replay: Option<(usize, usize)>,
    /// Replay: how far into the run the frame shown stands, ms (`None`: the final
    /// counts).
    pub replay_at_ms: Option<u64>,
}

/// The next finer granule for refinement: 2 MiB -> page -> 512 B -> 64 B.
pub fn finer(granularity: u64) -> Option<u64> {
    match granularity {
        g if g > 4096 => Some(4096),
        g if g > 512 => Some(512),
        g if g > 64 => Some(64),
        _ => None,
    }
}

/// Rows a page key moves.
const PAGE: usize = 10;

fn step(row: usize, len: usize, key: Key) -> usize {
    let last = len.saturating_sub(1);
    match key {
        Key::Up | Key::Char('k') => row.saturating_sub(1),
        Key::Down | Key::Char('j') => (row + 1).min(last),
        Key::PageUp => row.saturating_sub(PAGE),
        Key::PageDown => (row + PAGE).min(last),
        Key::Home | Key::Char('g') => 0,
        Key::End | Key::Char('G') => last,
        _ => row.min(last),
    }
}

fn is_motion(key: Key) -> bool {
    matches!(
        key,
        Key::Up
            | Key::Down
            | Key::PageUp
            | Key::PageDown
            | Key::Home
            | Key::End
            | Key::Char('j' | 'k' | 'g' | 'G')
    )
}

impl App {
    /// A viewer that starts in `view`.
    pub fn new(view: View) -> App {
        App {
            view,
            node_row: 0,
            region_row: 0,
            region: None,
            granule_row: 0,
            sort: Sort::default(),
            filter: String::new(),
            typing: false,
            heat: Heat::default(),
            help: false,
            paused: false,
            message: None,
            sessions: Vec::new(),
            session_row: 0,
            replay: None,
            replay_at_ms: None,
        }
    }

    /// The region selected in the Regions view, as an index into the frame.
    pub fn selected_region(&self, m: &Model) -> Option<usize> {
        m.regions(self.sort, &self.filter)
            .get(self.region_row)
            .copied()
    }

    /// The granules of the open region in the Granules view's order (most
    /// referenced first), as indices into the region's granule list.
    pub fn granule_order(&self, m: &Model) -> Vec<u64> {
        let Some((_, order)) = self.region.and_then(|k| m.granules_by_heat(k)) else {
            return Vec::new();
        };
        order.iter().map(|g| g.index).collect()
    }

    fn open_selected_region(&mut self, m: &Model) {
        let Some(i) = self.selected_region(m) else {
            self.message = Some("no region to open".into());
            return;
        };
        let f = m.frame.as_ref().expect("a selected region has a frame");
        self.region = Some(f.regions[i].key());
        self.granule_row = 0;
        self.view = View::Granules;
    }

    fn refine(&mut self, m: &Model) -> Action {
        let Some(r) = self.region.and_then(|k| m.region(k)) else {
            self.message = Some("open a region first (Enter on the Regions view)".into());
            return Action::None;
        };
        let order = self.granule_order(m);
        let Some(&index) = order.get(self.granule_row) else {
            self.message = Some("no granule with references to refine yet".into());
            return Action::None;
        };
        let Some(g) = finer(r.granularity) else {
            self.message = Some(format!(
                "{} is counted by {} B lines already: the finest",
                r.name, r.granularity
            ));
            return Action::None;
        };
        let start = r.start + index * r.granularity;
        let size = r.granularity.min(r.start + r.size - start);
        Action::Refine {
            start,
            size,
            granularity: g,
            what: format!("{}+{:#x}", r.name, index * r.granularity),
        }
    }

    /// Applies `key`; `m` is what is on screen.
    pub fn on_key(&mut self, key: Key, m: &Model) -> Action {
        if key == Key::Interrupt {
            return Action::Quit;
        }
        if self.typing {
            match key {
                Key::Enter => self.typing = false,
                Key::Esc => {
                    self.typing = false;
                    self.filter.clear();
                }
                Key::Backspace => {
                    self.filter.pop();
                }
                Key::Char(c) => self.filter.push(c),
                _ => {}
            }
            self.region_row = 0;
            return Action::None;
        }
        if self.help {
            // Any key closes the help; q still quits.
            self.help = false;
            return if key == Key::Char('q') {
                Action::Quit
            } else {
                Action::None
            };
        }
        self.message = None;
        match key {
            Key::Char('q') => return Action::Quit,
            Key::Char('?') => self.help = true,
            Key::Char('p') => self.paused = !self.paused,
            Key::Char('[') | Key::Char(']') => {
                if let Some((at, n)) = self.replay {
                    let at = if key == Key::Char('[') {
                        at.saturating_sub(1)
                    } else {
                        (at + 1).min(n.saturating_sub(1))
                    };
                    self.replay = Some((at, n));
                } else {
                    self.message = Some("[ and ] move through a replay (--replay)".into());
                }
            }
            Key::Tab | Key::BackTab if self.view != View::Sessions => {
                let order = [View::Nodes, View::Regions, View::Granules];
                let at = order.iter().position(|&v| v == self.view).unwrap_or(0);
                let next = if key == Key::Tab {
                    (at + 1) % 3
                } else {
                    (at + 2) % 3
                };
                self.view = order[next];
                if self.view == View::Granules && self.region.is_none() {
                    self.open_selected_region(m);
                    if self.region.is_none() {
                        self.view = View::Nodes;
                    }
                }
            }
            Key::Esc => {
                self.view = match self.view {
                    View::Granules => View::Regions,
                    View::Regions => View::Nodes,
                    v => v,
                }
            }
            _ => return self.on_view_key(key, m),
        }
        Action::None
    }

    fn on_view_key(&mut self, key: Key, m: &Model) -> Action {
        match self.view {
            View::Sessions => match key {
                Key::Enter => {
                    if let Some(s) = self.sessions.get(self.session_row) {
                        return Action::Open(s.path.clone());
                    }
                }
                k if is_motion(k) => {
                    self.session_row = step(self.session_row, self.sessions.len(), k)
                }
                _ => {}
            },
            View::Nodes => match key {
                Key::Enter => self.view = View::Regions,
                k if is_motion(k) => self.node_row = step(self.node_row, m.nodes.len(), k),
                _ => {}
            },
            View::Regions => match key {
                Key::Enter | Key::Right | Key::Char('l') => self.open_selected_region(m),
                Key::Char('s') => {
                    self.sort = self.sort.next();
                    self.region_row = 0;
                }
                Key::Char('/') => {
                    self.typing = true;
                    self.filter.clear();
                }
                k if is_motion(k) => {
                    let n = m.regions(self.sort, &self.filter).len();
                    self.region_row = step(self.region_row, n, k);
                }
                _ => {}
            },
            View::Granules => match key {
                Key::Char('r') => return self.refine(m),
                Key::Char('m') => {
                    self.heat = match self.heat {
                        Heat::References => Heat::RemoteShare,
                        Heat::RemoteShare => Heat::References,
                    }
                }
                Key::Left | Key::Char('h') => self.view = View::Regions,
                k if is_motion(k) => {
                    let n = self.granule_order(m).len();
                    self.granule_row = step(self.granule_row, n, k);
                }
                _ => {}
            },
        }
        Action::None
    }
}

#[cfg(test)]
mod tests {
    use super::super::frame::{Counts, Frame, Granule, Region};
    use super::*;

    fn model() -> Model {
        let g = |index, local, remote| {
            Granule::new(
                index,
                vec![
                    Counts {
                        local,
                        remote: 0,
                        reads: local,
                        writes: 0,
                    },
                    Counts {
                        local: 0,
                        remote,
                        reads: 0,
                        writes: remote,
                    },
                ],
            )
        };
        let mut m = Model::new(Vec::new());
        m.update(
            Frame {
                pid: 7,
                nodes: 2,
                samples: 30,
                lost: 0,
                rate_hz: 1000,
                sampler: None,
                regions: vec![
                    Region {
                        name: "small".into(),
                        start: 0x1000,
                        size: 0x1000,
                        granularity: 64,
                        granules: vec![g(3, 1, 0)],
                    },
                    Region {
                        name: "grid".into(),
                        start: 0x10000,
                        size: 0x4000,
                        granularity: 4096,
                        granules: vec![g(0, 2, 1), g(2, 5, 9)],
                    },
                ],
            },
            1.0,
        );
        m
    }

    fn keys(app: &mut App, m: &Model, ks: &[Key]) -> Vec<Action> {
        ks.iter().map(|&k| app.on_key(k, m)).collect()
    }

    #[test]
    fn enter_drills_down_to_the_hottest_granule_and_esc_comes_back() {
        let m = model();
        let mut app = App::new(View::Nodes);
        keys(&mut app, &m, &[Key::Enter]);
        assert_eq!(app.view, View::Regions);
        // Sorted by references: grid (17) before small (1).
        assert_eq!(app.selected_region(&m), Some(1));
        keys(&mut app, &m, &[Key::Enter]);
        assert_eq!(app.view, View::Granules);
        assert_eq!(app.region, Some((0x10000, 0x4000, 4096)));
        assert_eq!(app.granule_order(&m), vec![2, 0]);
        keys(&mut app, &m, &[Key::Esc]);
        assert_eq!(app.view, View::Regions);
        keys(&mut app, &m, &[Key::Esc, Key::Esc]);
        assert_eq!(app.view, View::Nodes);
    }

    #[test]
    fn r_asks_for_the_next_finer_granules_of_the_granule_under_the_cursor() {
        let m = model();
        let mut app = App::new(View::Regions);
        let a = keys(&mut app, &m, &[Key::Enter, Key::Char('r')]);
        assert_eq!(
            a[1],
            Action::Refine {
                start: 0x12000,
                size: 4096,
                granularity: 512,
                what: "grid+0x2000".into()
            }
        );
        // Down to the second granule, then refine it.
        let a = keys(&mut app, &m, &[Key::Char('j'), Key::Char('r')]);
        assert!(
            matches!(a[1], Action::Refine { start: 0x10000, .. }),
            "{a:?}"
        );
        // Lines cannot be refined: a message, no request.
        let mut app = App::new(View::Regions);
        let a = keys(&mut app, &m, &[Key::End, Key::Enter, Key::Char('r')]);
        assert_eq!(a[2], Action::None);
        assert!(app.message.as_deref().unwrap().contains("finest"));
        assert_eq!(finer(2 << 20), Some(4096));
        assert_eq!(finer(64), None);
    }

    #[test]
    fn tab_cycles_the_views_and_help_pause_sort_filter_and_quit_work() {
        let m = model();
        let mut app = App::new(View::Nodes);
        keys(&mut app, &m, &[Key::Tab]);
        assert_eq!(app.view, View::Regions);
        keys(&mut app, &m, &[Key::Tab]);
        assert_eq!(app.view, View::Granules);
        keys(&mut app, &m, &[Key::Tab]);
        assert_eq!(app.view, View::Nodes);
        keys(&mut app, &m, &[Key::BackTab]);
        assert_eq!(app.view, View::Granules);
        keys(&mut app, &m, &[Key::Char('?')]);
        assert!(app.help);
        // A key closes the help and does nothing else.
        assert_eq!(app.on_key(Key::Char('p'), &m), Action::None);
        assert!(!app.help && !app.paused);
        keys(&mut app, &m, &[Key::Char('p')]);
        assert!(app.paused);
        app.view = View::Regions;
        keys(&mut app, &m, &[Key::Char('s')]);
        assert_eq!(app.sort, Sort::RemoteShare);
        keys(
            &mut app,
            &m,
            &[Key::Char('/'), Key::Char('s'), Key::Char('m'), Key::Enter],
        );
        assert_eq!(app.filter, "sm");
        assert_eq!(app.selected_region(&m), Some(0));
        // While typing, q is a letter of the filter; after it, q quits.
        keys(&mut app, &m, &[Key::Char('/'), Key::Char('q')]);
        assert_eq!(app.filter, "q");
        keys(&mut app, &m, &[Key::Esc]);
        assert!(app.filter.is_empty() && !app.typing);
        assert_eq!(app.on_key(Key::Char('q'), &m), Action::Quit);
        assert_eq!(app.on_key(Key::Interrupt, &m), Action::Quit);
    }

    #[test]
    fn the_replay_slider_stays_in_range() {
        let m = model();
        let mut app = App::new(View::Regions);
        app.replay = Some((0, 3));
        keys(
            &mut app,
            &m,
            &[
                Key::Char('['),
                Key::Char(']'),
                Key::Char(']'),
                Key::Char(']'),
            ],
        );
        assert_eq!(app.replay, Some((2, 3)));
        let mut live = App::new(View::Regions);
        keys(&mut live, &m, &[Key::Char(']')]);
        assert!(live.message.is_some());
    }

    #[test]
    fn the_session_picker_opens_the_selected_file() {
        let m = model();
        let mut app = App::new(View::Sessions);
        app.sessions = (1..=3)
            .map(|pid| Found {
                pid,
                path: format!("/run/{pid}.live").into(),
                comm: None,
            })
            .collect();
        let a = keys(&mut app, &m, &[Key::Down, Key::Down, Key::Down, Key::Enter]);
        assert_eq!(a[3], Action::Open("/run/3.live".into()));
    }
}
