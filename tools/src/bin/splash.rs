//! `splash`: SPLASH-2 programs on RSets, with the paper's orig/reorg layouts.
//!
//! `splash [COMMON FLAGS] PROGRAM [PROGRAM FLAGS]`: the common flags (long, `--x`)
//! may come before or after the program name; everything else goes to the program,
//! which reads it as the original C program read its `argv`.
//!
//! `splash compare NAME ORIG REORG ...` prints the paper's Table 2 from session
//! files of monitored runs.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use monitor::{Granularity, Report, SessionFile, line_verdicts};
use splash_ports::framework::{self, MonitorOptions, RunConfig, SplashError, Zoom};
use splash_ports::refine::{Reduction, Tally, by_array, paper_factor};

const HELP: &str = "\
splash: SPLASH-2 programs on resource sets, with the IBM ccNUMA paper's data layouts

USAGE:
  splash [COMMON FLAGS] PROGRAM [PROGRAM FLAGS]
  splash PROGRAM -h          the program's own option list, as the original prints it
  splash compare NAME ORIG REORG [NAME ORIG REORG]...
                             the paper's Table 2 from monitored runs (see below)

Each program takes the original C program's flags and prints the original's output
lines, so a run can be compared with the C program line by line (times are
microseconds and differ, of course).

PROGRAMS:
  fft     SPLASH-2 FFT kernel: radix-sqrt(n) six-step 1D FFT with blocked transposes
            -mM   2^M complex points, M even (default 10)
            -pP   P threads, a power of 2, at most 2^(M/2) (default 1)
            -nN   cache lines used to block the transposes (default 65536)
            -lL   log2 of the cache line size in bytes (default 4)
            -s    every thread's times    -t  forward + inverse FFT, checksum test
            -o    print the data          -h  the original's help
  ocean   SPLASH-2 Ocean, contiguous partitions: eddy and boundary currents of an
          N x N basin, red-black multigrid solver, threads own square subgrids
            -nN   grid size, (a power of 2) + 2 (default 258)
            -pP   P threads, a power of 2 (default 1)
            -eE   error tolerance of the multigrid relaxation (default 1e-7)
            -rR   distance between grid points in meters (default 20000)
            -tT   time step in seconds (default 28800)
            -s    every thread's statistics   -o  the solver's iterations and
                                               residuals (compare with the C program)
  fft3d   the paper's 3D-FFT: N x N x N complex doubles, 1D FFTs along each axis,
          threads own planes, one all-to-all transpose per transform; prints
          the spectrum's sum and energy (the same for every -p and layout)
            -nN   N points per axis, a power of 2 (default 128)
            -pP   P threads, at most N (default 1)
            -t    forward + inverse, round-trip error (tolerance 1e-12 x max|x|)
            -iI   I round trips (implies -t; makes runs long enough to monitor)
            -d    also compare with a direct DFT, N <= 16 (tolerance 1e-10 x sum|x|)
            -s    every thread's times    -h  help

COMMON FLAGS (every program):
  --rset SPEC              where threads run and memory comes from (rset spec:
                           all, node:0-1, cpu:0-3 + mem:2, ...; default all)
  --placement fill|round-robin
                           fill: a node's CPUs before the next node (default);
                           round-robin: thread i on node i mod N
  --pin node|cpu           node: each thread held to the RSet's CPUs on its
                           planned node, as the paper binds a thread to a node
                           (default; the scheduler may move it between them,
                           never off its node, so reorg stays local; like
                           OMP_PLACES=numa_domains); cpu: to its planned CPU
  --layout orig|reorg      orig: every shared array striped one page per node
                           (the paper's base case, default); reorg: each thread's
                           partition on its own node, page by page
  --monitor FILE           record a monitor session of the threads' work (one
                           filter per shared array, named fft.x, fft3d.a,
                           ocean.psi, ...) and save it to FILE; read it with
                           `rset-mon report FILE`; a summary goes to stderr
  --monitor-rate HZ        sampling rounds per second of --monitor (default 1000)
  --monitor-overhead SHARE the largest share of the run's time sampling may take
                           (default 0.05; 0: no limit): arming costs a page-table
                           walk of every watched page, so big arrays get fewer
                           rounds; raise it (or run longer) for more samples
  --monitor-granularity page|line|huge|BYTES
                           granule of the --monitor filters: a 4 KiB page
                           (default), a 64 B cache line, 2 MiB, or a power of two
                           between 64 and 2M; finer than a page also writes
                           FILE.lines: the table and a verdict for every touched
                           line (dominant node; SHARED-WRITE when two or more
                           nodes wrote it)
  --monitor-zoom PREV      successive refinement (the paper's method): watch only
                           the granules of session PREV (a run of the same program
                           with the same flags) with the most remote references,
                           at --monitor-granularity (default: line here). Arrays
                           move between runs, so each hot range is found again by
                           array label and offset (fft3d.a + 0x5000)
  --monitor-top K          granules of PREV kept by --monitor-zoom (default 8)
  -h, --help               this text

SUCCESSIVE REFINEMENT, then ORIG vs REORG (add --placement round-robin and
--monitor-overhead 0 in the emulated machine, as `cargo xtask demo` does):
  splash --monitor r1.session fft3d -n32 -p8 -i10      round 1: every page
  rset-mon report r1.session                           the table of data areas
  rset-mon report r1.session --svg r1.svg              bands (the paper's Fig. 8)
  splash --monitor r2.session --monitor-zoom r1.session fft3d -n32 -p8 -i10
                                                       round 2: the hot pages by
                                                       line; r2.session.lines
  splash --layout reorg --monitor reorg.session fft3d -n32 -p8 -i10
  splash compare fft3d r1.session reorg.session        the paper's Table 2

COMPARE: splash compare NAME ORIG REORG [NAME ORIG REORG]... prints, for each
program NAME (fft3d, ocean, or a name with a tag: fft3d/n128), the sampled
references of the orig and reorg sessions (ORIG and REORG may each list several
files, joined by commas, to pool runs), the remote share with its 95% margin, and
the reduction of remote references, orig share / reorg share (both runs make the
same references), with its 95% interval, beside the paper's factor (Table 2,
interconnect packets: fft3d 5.9x, ocean 12.3x). Use page-granular sessions of
whole arrays (not zoomed ones).

EXAMPLES:
  splash fft -m16 -p2 -t                  compare with the C program's output
  splash --placement round-robin fft -m20 -p4 -s
  splash fft3d -n64 -p4 -t                round trip, error printed
  splash ocean -n258 -p2 -o               solver output, as the C program prints it
  splash --layout orig  --monitor orig.session  fft3d -n128 -p8
  splash --layout reorg --monitor reorg.session fft3d -n128 -p8
  splash --monitor run.session --monitor-overhead 0.5 fft3d -n64 -p8 -i20
  rset-mon report orig.session            who referenced each array from which node
  splash --monitor lines.session --monitor-zoom orig.session --monitor-top 4
         fft3d -n128 -p8                  the 4 hottest pages of orig.session, by line
  splash compare fft3d orig.session reorg.session

EXIT STATUS: 0 on success, 2 for bad flags (the program's message on stderr, as
the original printed it) or a run that could not be set up.";

/// The common flags, and what is left for the program.
struct Parsed {
    config: RunConfig,
    monitor_rate: Option<u64>,
    monitor_overhead: Option<f64>,
    monitor_top: Option<usize>,
    program: Option<String>,
    args: Vec<String>,
    help: bool,
}

fn parse(argv: &[String]) -> Result<Parsed, String> {
    let mut p = Parsed {
        config: RunConfig::default(),
        monitor_rate: None,
        monitor_overhead: None,
        monitor_top: None,
        program: None,
        args: Vec::new(),
        help: false,
    };
    let mut it = argv.iter();
    while let Some(a) = it.next() {
        if a == "--help" || (p.program.is_none() && a == "-h") {
            p.help = true;
            continue;
        }
        let Some(long) = a.strip_prefix("--") else {
            if p.program.is_none() {
                p.program = Some(a.clone());
            } else {
                p.args.push(a.clone());
            }
            continue;
        };
        let (name, inline) = match long.split_once('=') {
            Some((n, v)) => (n, Some(v.to_owned())),
            None => (long, None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| it.next().cloned())
                .ok_or_else(|| format!("--{name} needs a value"))
        };
        match name {
            "rset" => p.config.rset = value()?,
            "placement" => {
                let v = value()?;
                p.config.placement = v.parse().map_err(|e| format!("--placement: {e}"))?;
            }
            "pin" => {
                let v = value()?;
                p.config.pin = v.parse().map_err(|e| format!("--pin: {e}"))?;
            }
            "layout" => {
                let v = value()?;
                p.config.layout = v.parse().map_err(|e| format!("--layout: {e}"))?;
            }
            "monitor" => p.config.monitor = Some(PathBuf::from(value()?)),
            "monitor-rate" => {
                let v = value()?;
                let hz = v
                    .parse::<u64>()
                    .ok()
                    .filter(|&h| h > 0)
                    .ok_or_else(|| format!("--monitor-rate: `{v}` is not a positive number"))?;
                p.monitor_rate = Some(hz);
            }
            "monitor-overhead" => {
                let v = value()?;
                let share = v
                    .parse::<f64>()
                    .ok()
                    .filter(|s| (0.0..=1.0).contains(s))
                    .ok_or_else(|| {
                        format!("--monitor-overhead: `{v}` is not a share between 0 and 1")
                    })?;
                p.monitor_overhead = Some(share);
            }
            "monitor-granularity" => {
                let v = value()?;
                p.config.monitor_granularity = Some(granularity(&v)?);
            }
            "monitor-zoom" => {
                p.config.monitor_zoom = Some(Zoom {
                    previous: PathBuf::from(value()?),
                    top: Zoom::DEFAULT_TOP,
                });
            }
            "monitor-top" => {
                let v = value()?;
                let k = v
                    .parse::<usize>()
                    .ok()
                    .filter(|&k| k > 0)
                    .ok_or_else(|| format!("--monitor-top: `{v}` is not a positive number"))?;
                p.monitor_top = Some(k);
            }
            _ => return Err(format!("unknown flag `{a}` (see splash --help)")),
        }
    }
    match (&mut p.config.monitor_zoom, p.monitor_top) {
        (Some(z), Some(k)) => z.top = k,
        (None, Some(_)) => return Err("--monitor-top needs --monitor-zoom PREV".into()),
        _ => {}
    }
    if p.config.monitor_zoom.is_some() && p.config.monitor.is_none() {
        return Err("--monitor-zoom needs --monitor FILE for the zoomed run's session".into());
    }
    if p.config.monitor_granularity.is_some() && p.config.monitor.is_none() {
        return Err("--monitor-granularity needs --monitor FILE".into());
    }
    Ok(p)
}

/// `page`, `line`, `huge` or a power of two of bytes between 64 and 2M (`K`/`M`
/// suffixes allowed).
fn granularity(text: &str) -> Result<Granularity, String> {
    let bad = |why: String| format!("--monitor-granularity `{text}`: {why}");
    let bytes = match text {
        "page" => Granularity::PAGE.bytes(),
        "line" => Granularity::LINE.bytes(),
        "huge" => Granularity::HUGE.bytes(),
        other => {
            let (digits, mult) = match other.strip_suffix(['k', 'K']) {
                Some(d) => (d, 1u64 << 10),
                None => match other.strip_suffix(['m', 'M']) {
                    Some(d) => (d, 1 << 20),
                    None => (other, 1),
                },
            };
            digits
                .parse::<u64>()
                .ok()
                .and_then(|n| n.checked_mul(mult))
                .ok_or_else(|| bad("expected page, line, huge or a number of bytes".into()))?
        }
    };
    Granularity::new(bytes).map_err(|e| bad(e.to_string()))
}

type Program = fn(&[String], &RunConfig, &mut dyn Write) -> Result<(), SplashError>;

fn program(name: &str) -> Option<Program> {
    Some(match name {
        "fft" => splash_ports::fft::run,
        "fft3d" => splash_ports::fft3d::run,
        "ocean" => splash_ports::ocean::run,
        _ => return None,
    })
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let parsed = match parse(&argv) {
        Ok(p) => p,
        Err(msg) => {
            eprintln!("splash: {msg}");
            return ExitCode::from(2);
        }
    };
    let Some(name) = parsed.program.as_deref().filter(|_| !parsed.help) else {
        let code = if parsed.help {
            ExitCode::SUCCESS
        } else {
            eprintln!("splash: no program given (fft, fft3d, ocean); see splash --help");
            return ExitCode::from(2);
        };
        println!("{HELP}");
        return code;
    };
    if name == "compare" {
        return compare(&parsed.args);
    }
    let Some(run) = program(name) else {
        eprintln!("splash: unknown program `{name}` (fft, fft3d, ocean); see splash --help");
        return ExitCode::from(2);
    };
    let defaults = MonitorOptions::default();
    framework::set_monitor_options(MonitorOptions {
        rate_hz: parsed.monitor_rate.unwrap_or(defaults.rate_hz),
        max_overhead: parsed.monitor_overhead.unwrap_or(defaults.max_overhead),
    });
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let result = run(&parsed.args, &parsed.config, &mut out).and_then(|()| Ok(out.flush()?));
    match result {
        Ok(()) => {
            if let Some(path) = &parsed.config.monitor {
                summarize(path, &parsed.config);
            }
            ExitCode::SUCCESS
        }
        Err(SplashError::Output(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => {
            ExitCode::SUCCESS
        }
        Err(e) => {
            // What was printed before the error stays, as with the C programs.
            let _ = out.flush();
            match e {
                SplashError::Usage(msg) => eprintln!("splash {name}: ERROR: {msg}"),
                other => eprintln!("splash {name}: {other}"),
            }
            ExitCode::from(2)
        }
    }
}

/// One line on stderr on what a `--monitor` run recorded; for a run at finer than
/// page granularity, its hottest lines' verdicts too.
fn summarize(path: &Path, config: &RunConfig) {
    // A program that only printed its help monitored nothing.
    let Ok(session) = SessionFile::load(path) else {
        return;
    };
    let report = Report::from_session(&session);
    let t = &report.totals.all;
    let n = t.local + t.remote;
    let share = if n == 0 {
        "-".to_owned()
    } else {
        format!(
            "{:.1}%{}",
            100.0 * t.remote as f64 / n as f64,
            monitor::report::margin95(t.remote, n)
        )
    };
    let what = match &config.monitor_zoom {
        Some(z) => format!(
            "{} hot ranges of {}",
            report.regions.len(),
            z.previous.display()
        ),
        None => format!("{} arrays", report.regions.len()),
    };
    let gran = report.regions.first().map_or(0, |r| r.granularity.bytes());
    eprintln!(
        "splash: --monitor {}: {n} sampled references, {} remote ({share}) in {what}, {gran} B granules; `rset-mon report {}` prints the table",
        path.display(),
        t.remote,
        path.display()
    );
    let lines = framework::lines_path(path);
    if gran < Granularity::PAGE.bytes() && lines.exists() {
        let mut verdicts = line_verdicts(&report);
        let shared = verdicts.iter().filter(|v| v.write_shared).count();
        verdicts.sort_by(|a, b| b.remote.cmp(&a.remote).then(b.total.cmp(&a.total)));
        verdicts.truncate(8);
        eprintln!(
            "splash: the lines with the most remote references ({shared} lines written from two or more nodes; all verdicts in {}):",
            lines.display()
        );
        for l in monitor::refine::verdicts_text(&verdicts).lines() {
            eprintln!("  {l}");
        }
    }
}

/// A row of `splash compare`: the program's name and its two tallies.
struct Row {
    name: String,
    orig: Tally,
    reorg: Tally,
    /// Sampled (remote, all) references per array under reorg.
    left: std::collections::BTreeMap<String, (u64, u64)>,
}

fn load_all(list: &str) -> Result<Vec<SessionFile>, String> {
    list.split(',')
        .filter(|p| !p.is_empty())
        .map(|p| SessionFile::load(p).map_err(|e| format!("compare: {p}: {e}")))
        .collect()
}

fn tally(sessions: &[SessionFile]) -> Tally {
    let mut t = Tally::default();
    for s in sessions {
        t.add(s);
    }
    t
}

/// `splash compare NAME ORIG REORG ...`: the paper's Table 2 from session files.
fn compare(args: &[String]) -> ExitCode {
    match compare_rows(args) {
        Ok(rows) => {
            let text = table2(&rows);
            let mut out = std::io::stdout().lock();
            // A closed pipe is not an error.
            let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
            ExitCode::SUCCESS
        }
        Err(msg) => {
            eprintln!("splash {msg}");
            ExitCode::from(2)
        }
    }
}

fn compare_rows(args: &[String]) -> Result<Vec<Row>, String> {
    if args.is_empty() || !args.len().is_multiple_of(3) {
        return Err(format!(
            "compare: expected NAME ORIG.session REORG.session, one triple per program (got {} arguments)",
            args.len()
        ));
    }
    args.chunks(3)
        .map(|t| {
            let orig = load_all(&t[1])?;
            let reorg = load_all(&t[2])?;
            if orig.is_empty() || reorg.is_empty() {
                return Err(format!("compare: {}: no session file given", t[0]));
            }
            Ok(Row {
                name: t[0].clone(),
                orig: tally(&orig),
                reorg: tally(&reorg),
                left: by_array(&reorg),
            })
        })
        .collect()
}

fn share_text(t: &Tally) -> String {
    if t.samples == 0 {
        "-".to_owned()
    } else {
        format!("{:.1}% ±{:.1}", 100.0 * t.share(), 100.0 * t.margin95())
    }
}

/// The table: per program, orig and reorg rows, the reduction with its interval and
/// the paper's factor; then what carries reorg's remaining remote references.
fn table2(rows: &[Row]) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Remote references, orig vs reorg (the paper's Table 2; sampled references, 95% intervals)\n"
    );
    let w = rows
        .iter()
        .map(|r| r.name.chars().count())
        .max()
        .unwrap_or(0)
        .max("PROGRAM".len());
    let _ = writeln!(
        out,
        "{:<w$} {:<6} {:>5} {:>8} {:>7} {:>14}   {:<22} {:>6}",
        "PROGRAM",
        "LAYOUT",
        "RUNS",
        "SAMPLES",
        "REMOTE",
        "REMOTE SHARE",
        "REDUCTION (95% CI)",
        "PAPER"
    );
    let mut notes = Vec::new();
    for r in rows {
        let reduction = Reduction::of(&r.orig, &r.reorg);
        let paper = paper_factor(&r.name).map_or("-".to_owned(), |f| format!("{f:.1}x"));
        for (layout, t) in [("orig", &r.orig), ("reorg", &r.reorg)] {
            let last = layout == "reorg";
            let row = format!(
                "{:<w$} {:<6} {:>5} {:>8} {:>7} {:>14}   {:<22} {:>6}",
                if last { "" } else { r.name.as_str() },
                layout,
                t.sessions,
                t.samples,
                t.remote,
                share_text(t),
                if last {
                    reduction.to_string()
                } else {
                    String::new()
                },
                if last { paper.as_str() } else { "" },
            );
            let _ = writeln!(out, "{}", row.trim_end());
        }
        let nodes = r.orig.nodes.max(r.reorg.nodes);
        match reduction {
            Reduction::NothingRemote if nodes <= 1 => notes.push(format!(
                "{}: a one-node machine has no remote memory: nothing to reduce\n  (see it on the emulated 4-node machine: cargo xtask demo)",
                r.name
            )),
            Reduction::NothingRemote => notes.push(format!(
                "{}: orig had no remote sample: nothing to compare",
                r.name
            )),
            _ => {
                if let (Some(paper), Some(est), Some(low)) = (
                    paper_factor(&r.name),
                    reduction.estimate().or(reduction.low()),
                    reduction.low(),
                ) {
                    let verdict = if low >= paper {
                        "at least the paper's, with 95% confidence"
                    } else if est >= paper {
                        "at least the paper's, but its interval reaches below it: more samples would settle it"
                    } else {
                        "below the paper's"
                    };
                    notes.push(format!(
                        "{}: {est:.1}x fewer remote references, {verdict} ({paper:.1}x)",
                        r.name
                    ));
                }
                let mut carriers: Vec<(&String, &(u64, u64))> =
                    r.left.iter().filter(|(_, (rem, _))| *rem > 0).collect();
                carriers.sort_by(|a, b| b.1.0.cmp(&a.1.0).then(a.0.cmp(b.0)));
                if !carriers.is_empty() {
                    let list: Vec<String> = carriers
                        .iter()
                        .take(5)
                        .map(|(name, (rem, all))| format!("{name} {rem} of {all}"))
                        .collect();
                    notes.push(format!(
                        "{}: reorg's remote samples by array: {}",
                        r.name,
                        list.join(", ")
                    ));
                }
            }
        }
    }
    out.push('\n');
    for n in notes {
        let _ = writeln!(out, "{n}");
    }
    out.push_str(
        "(Both layouts run the same program with the same flags, so they make the same\n\
         references: the ratio of the remote shares is the ratio of remote references.\n\
         The paper counted interconnect packets on its 4-node machine.)\n",
    );
    out
}
