//! `rset-top`: the live hotspot viewer. It reads a running session's live file
//! ([`monitor::live`]: counters under a seqlock, never holding the writer) and
//! shows, refreshed every `-d` seconds, which node runs which thread and
//! references how much ([`app::View::Nodes`]), every monitored data area with its
//! references per node and remote share over time (Regions), and one area's
//! granules as a heat map (Granules), where `r` asks the running monitor, through
//! the live file's control area, for finer granules of the one under the cursor.
//!
//! | file | what is in it |
//! | --- | --- |
//! | [`frame`] | a reading of the counters, from a live file or a saved session; finding live files |
//! | [`machine`] | nodes from sysfs, the target's threads from `/proc` |
//! | [`model`] | what the views show, kept across refreshes (rates, history, sorting) |
//! | [`app`] | the keys and the state they change (no terminal) |
//! | [`ui`] | drawing, with ratatui |
//! | [`batch`] | `--once`, `-n`, `--json` |
//! | `term` | the terminal: raw mode, the alternate screen, restoring it on exit, panic and SIGTERM |

pub mod app;
pub mod batch;
pub mod frame;
pub mod machine;
pub mod model;
mod term;
pub mod ui;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;

use crate::cli::{self, Failure};
use app::{Action, App, View};
use frame::{ReadError, Source};
use model::{Model, Status};

/// The live hotspot viewer for rset-mon sessions.
#[derive(Parser, Debug)]
#[command(
    name = "rset-top",
    version,
    about = "Live NUMA hotspot viewer: which data area, page and cache line is referenced \
             from which node, while the program runs",
    long_about = "Live NUMA hotspot viewer: which data area, page and cache line is referenced \
                  from which node, while the program runs.\n\n\
                  It reads the live counters a monitored program exports (rset-mon record \
                  does, and any monitor::Session with .live(..)) from the runtime directory \
                  ($XDG_RUNTIME_DIR/rset-mon, else /tmp/rset-mon-UID). Views: Nodes (CPUs, \
                  memory, local and remote references per second, the target's threads), \
                  Regions (each monitored area, references per node, remote share over \
                  time) and Granules (a heat map of one area; r refines a granule, page > \
                  512 B > 64 B lines, in the running monitor).",
    after_help = "KEYS: Tab views, Enter drills down, Esc back, arrows/hjkl move, s sort, \
                  / filter, m heat colour, r refine, [ ] replay frames, p pause, ? help, q quit.\n\n\
                  EXAMPLES:\n  \
                  rset-mon record -- ./a.out & rset-top        open the only live session\n  \
                  rset-top 4242                                the session of pid 4242\n  \
                  rset-top --once --json -n 3 -d 1 4242        three JSON lines, one a second\n  \
                  rset-top --replay rset-mon.session           a saved session, a frame per second\n  \
                                                               of the run ([ and ] move), then the end"
)]
pub struct Args {
    /// The monitored process (its live file in the runtime directory), or a path
    /// to a `.live` file. Without it: the only live session, or a list to pick from.
    pub target: Option<String>,
    /// Play a saved session (`rset-mon record -o FILE`) instead of a live one: a
    /// frame per second of the run (the session's timeline; `[` and `]` move), then
    /// its final counts, which `--once` prints.
    #[arg(long, value_name = "FILE", conflicts_with = "target")]
    pub replay: Option<PathBuf>,
    /// Seconds between refreshes (and between batch iterations).
    #[arg(short = 'd', long = "delay", value_name = "SECS", default_value = "1",
          value_parser = parse_delay)]
    pub delay: Duration,
    /// Print the nodes and the hottest regions and granules once and exit (no
    /// terminal needed).
    #[arg(long)]
    pub once: bool,
    /// With --once: this many iterations, -d apart.
    #[arg(short = 'n', long = "iterations", value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub iterations: u32,
    /// With --once: one JSON object per iteration, one per line.
    #[arg(long)]
    pub json: bool,
    /// With --once: regions and granules listed.
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub top: usize,
    /// The runtime directory to look for live files in.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

fn parse_delay(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .parse()
        .map_err(|_| format!("`{s}` is not a number of seconds"))?;
    if !(0.05..=3600.0).contains(&secs) {
        return Err(format!(
            "`{s}`: the delay must be between 0.05 and 3600 seconds"
        ));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Where the session is, from the arguments.
enum Opening {
    Source(Source),
    /// Several live sessions: let the user pick.
    Pick(Vec<frame::Found>),
}

fn open(args: &Args) -> Result<Opening, Failure> {
    if let Some(path) = &args.replay {
        let file = monitor::SessionFile::load(path)
            .map_err(|e| Failure::usage(format!("--replay: {e}")))?;
        return Ok(Opening::Source(Source::Replay {
            path: path.clone(),
            replay: frame::Replayed::new(file),
        }));
    }
    let dir = args.dir.clone().unwrap_or_else(monitor::live::live_dir);
    match &args.target {
        Some(t) if t.parse::<u32>().is_ok() => {
            let path = dir.join(format!("{t}.live"));
            if !path.exists() {
                let running = Path::new(&format!("/proc/{t}")).exists();
                return Err(Failure::usage(if running {
                    format!(
                        "process {t} exports no live counters ({} is missing); run it under \
                         rset-mon record",
                        path.display()
                    )
                } else {
                    format!("no process {t}, and no live file {}", path.display())
                }));
            }
            Ok(Opening::Source(Source::Live { path }))
        }
        Some(t) => {
            let path = PathBuf::from(t);
            if !path.is_file() {
                return Err(Failure::usage(format!(
                    "`{t}` is neither a process id nor a live file"
                )));
            }
            Ok(Opening::Source(Source::Live { path }))
        }
        None => {
            let found = frame::discover(&dir);
            match found.len() {
                0 => Err(Failure::usage(format!(
                    "no live sessions in {}; start one with `rset-mon record -- PROGRAM`, \
                     or name a pid or --replay a session",
                    dir.display()
                ))),
                1 => Ok(Opening::Source(Source::Live {
                    path: found[0].path.clone(),
                })),
                _ => Ok(Opening::Pick(found)),
            }
        }
    }
}

/// Reads `source` into `m` (live: a new frame, the target's threads and state).
fn refresh(source: &Source, m: &mut Model, last: &mut Option<Instant>) {
    match source.read() {
        Ok(Some(frame)) => {
            let now = Instant::now();
            let dt = last.map_or(0.0, |t| now.duration_since(t).as_secs_f64());
            *last = Some(now);
            let pid = frame.pid;
            m.update(frame, dt);
            m.threads = machine::threads(pid);
            m.status = if machine::alive(pid) {
                Status::Running
            } else {
                Status::Exited
            };
        }
        Ok(None) => {}
        Err(ReadError::Gone) => {
            m.status = Status::Exited;
            m.threads.clear();
        }
        Err(ReadError::Unreadable(why)) => m.status = Status::Unreadable(why),
    }
}

/// An empty model: with this machine's nodes for a live session, with none for a
/// replay (it may come from another machine).
fn new_model(source: &Source) -> Model {
    match source {
        Source::Live { .. } => Model::new(machine::nodes(Path::new("/sys/devices/system/node"))),
        Source::Replay { .. } => Model::new(Vec::new()),
    }
}

fn batch(args: &Args, source: &Source) -> Result<ExitCode, Failure> {
    let mut m = new_model(source);
    let mut last = None;
    if let Source::Replay { replay, .. } = source {
        m.update(replay.frame(replay.len() - 1), 0.0);
        m.status = Status::Replay;
    }
    // A first reading a moment before the first iteration, so that it has rates.
    if matches!(source, Source::Live { .. }) {
        refresh(source, &mut m, &mut last);
        std::thread::sleep(args.delay.min(Duration::from_millis(250)));
    }
    for i in 1..=args.iterations {
        if i > 1 {
            std::thread::sleep(args.delay);
        }
        refresh(source, &mut m, &mut last);
        if m.frame.is_none() {
            let why = match &m.status {
                Status::Unreadable(w) => w.clone(),
                _ => "the session ended before its first counters".into(),
            };
            return Err(Failure::runtime(format!("{}: {why}", source.describe())));
        }
        if args.json {
            let line = serde_json::to_string(&batch::iteration(&m, i, args.top))
                .map_err(|e| Failure::runtime(format!("encoding JSON: {e}")))?;
            cli::emit(&(line + "\n"))?;
        } else {
            cli::emit(&batch::text(&m, i, args.top))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Asks the session behind `source`, through its live file's control area, for a
/// filter over `[start, start + size)` by `granularity`-byte granules: what the
/// `r` key does with the [`Action::Refine`] it yields.
///
/// # Errors
/// A replay, or a live file that cannot be written, with the reason.
pub fn send_refine(source: &Source, start: u64, size: u64, granularity: u64) -> Result<(), String> {
    match source {
        Source::Live { path } => monitor::live::send_command(
            path,
            monitor::live::Command {
                cmd: monitor::live::CMD_ADD_FILTER,
                args: [start, size, granularity],
            },
        )
        .map_err(|e| e.to_string()),
        Source::Replay { .. } => {
            Err("a replay cannot be refined (the program is not running)".into())
        }
    }
}

fn interactive(args: &Args, opening: Opening) -> Result<ExitCode, Failure> {
    let (mut source, mut app) = match opening {
        Opening::Source(s) => (Some(s), App::new(View::Nodes)),
        Opening::Pick(found) => {
            let mut a = App::new(View::Sessions);
            a.sessions = found;
            (None, a)
        }
    };
    let mut m = source
        .as_ref()
        .map_or_else(|| Model::new(Vec::new()), new_model);
    let mut last = None;
    if let Some(Source::Replay { replay, .. }) = &source {
        app.replay = Some((replay.len() - 1, replay.len()));
        app.view = View::Regions;
        m.status = Status::Replay;
    }
    let mut term =
        term::Terminal::start().map_err(|e| Failure::runtime(format!("the terminal: {e}")))?;
    let mut next = Instant::now();
    let mut shown_replay = None;
    // Drawn when something changed (a new frame, a key, a resize), not on a timer:
    // a screen of 100,000 granules costs milliseconds.
    let mut dirty = true;
    let result = loop {
        if term.terminated() {
            // As a shell reports a program SIGTERM ended.
            break Ok(ExitCode::from(128 + 15));
        }
        if let Some(src) = &source {
            if let (Source::Replay { replay, .. }, Some((at, _))) = (src, app.replay) {
                if shown_replay != Some(at) {
                    m.update(replay.frame(at), 0.0);
                    app.replay_at_ms = replay.at_ms(at);
                    shown_replay = Some(at);
                    dirty = true;
                }
            } else if !app.paused && Instant::now() >= next {
                refresh(src, &mut m, &mut last);
                next = Instant::now() + args.delay;
                dirty = true;
            }
        }
        if dirty || term.take_resized() {
            let title = source
                .as_ref()
                .map_or("pick a session".into(), Source::describe);
            if let Err(e) = term.draw(|f| ui::draw(f, &app, &m, &title)) {
                break Err(Failure::runtime(format!("drawing: {e}")));
            }
            dirty = false;
        }
        let wait = next
            .saturating_duration_since(Instant::now())
            .min(Duration::from_millis(250));
        let key = match term.key(wait) {
            Ok(k) => k,
            Err(e) => break Err(Failure::runtime(format!("reading keys: {e}"))),
        };
        let Some(key) = key else { continue };
        dirty = true;
        match app.on_key(key, &m) {
            Action::None => {}
            Action::Quit => break Ok(ExitCode::SUCCESS),
            Action::Open(path) => {
                let s = Source::Live { path };
                m = new_model(&s);
                source = Some(s);
                app.view = View::Nodes;
                next = Instant::now();
            }
            Action::Refine {
                start,
                size,
                granularity,
                what,
            } => {
                let src = source
                    .as_ref()
                    .expect("a refinement comes from a open session");
                app.message = Some(match send_refine(src, start, size, granularity) {
                    Ok(()) => format!(
                        "asked for {granularity} B granules of {what}; they appear as a new region"
                    ),
                    Err(e) => format!("refine failed: {e}"),
                });
                next = Instant::now() + Duration::from_millis(300);
            }
        }
    };
    term.stop()
        .map_err(|e| Failure::runtime(format!("restoring the terminal: {e}")))?;
    result
}

/// The `rset-top` command.
pub fn main() -> ExitCode {
    let args = Args::parse();
    let run = || -> Result<ExitCode, Failure> {
        if !args.once && (args.json || args.iterations > 1) {
            return Err(Failure::usage("--json and -n go with --once (batch mode)"));
        }
        let opening = open(&args)?;
        if args.once {
            return match opening {
                Opening::Source(s) => batch(&args, &s),
                Opening::Pick(found) => Err(Failure::usage(format!(
                    "{} live sessions (pids {}); name one",
                    found.len(),
                    found
                        .iter()
                        .map(|f| f.pid.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))),
            };
        }
        if !std::io::stdout().is_terminal() || !std::io::stdin().is_terminal() {
            return Err(Failure::usage(
                "not a terminal; use --once (and --json) for scripts and pipes",
            ));
        }
        interactive(&args, opening)
    };
    match run() {
        Ok(code) => code,
        Err(f) => f.report("rset-top"),
    }
}
