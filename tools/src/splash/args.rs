//! `splash`'s command line, with clap: the common flags (long, before or after the
//! program's name), one subcommand per program with the original's own flags
//! (`splash_ports::*::Flags`), and `compare`; the checks that span flags; and the
//! help text.

use std::path::PathBuf;

use clap::{ArgAction, Args, CommandFactory, Parser, Subcommand};
use monitor::Granularity;
use rset::{Pin, Placement};
use splash_ports::framework::{DataLayout, RunConfig, Zoom};
use splash_ports::{fft, fft3d, ocean};

/// What `splash --help` shows after the flags: the programs' own flags, successive
/// refinement, `compare`, examples and the exit status.
const AFTER_HELP: &str = "\
Each program takes the original C program's flags and prints the original's output
lines, so a run can be compared with the C program line by line (times are
microseconds and differ, of course). `splash PROGRAM -h` prints the program's own
option list, as the original prints it.

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
  Program flags read as getopt reads them: a value attached or next (-m16, -m 16),
  flags combined (-st, -tm10); -s, -t, -o of fft and -s, -o of ocean toggle.

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

/// splash: SPLASH-2 programs on resource sets, with the IBM ccNUMA paper's data
/// layouts.
#[derive(Parser, Debug)]
#[command(
    name = "splash",
    override_usage = "splash [COMMON FLAGS] PROGRAM [PROGRAM FLAGS]\n       \
                      splash PROGRAM -h\n       \
                      splash compare NAME ORIG REORG [NAME ORIG REORG]...",
    after_long_help = AFTER_HELP,
    after_help = AFTER_HELP,
    disable_help_flag = true,
    disable_help_subcommand = true,
    disable_version_flag = true,
    args_override_self = true,
    max_term_width = 100
)]
pub struct Cli {
    /// The common flags.
    #[command(flatten)]
    pub common: Common,
    /// This text (`-h` before the program's name; after it, the program's own).
    #[arg(short = 'h', action = ArgAction::SetTrue)]
    pub short_help: bool,
    /// The program and its flags.
    #[command(subcommand)]
    pub program: Option<Program>,
}

/// The flags common to every program (long, before or after the program's name).
#[derive(Args, Debug)]
#[command(next_help_heading = "COMMON FLAGS (every program, before or after its name)")]
pub struct Common {
    /// Where threads run and memory comes from (rset spec: all, node:0-1,
    /// cpu:0-3 + mem:2, ...; default all).
    #[arg(long, global = true, value_name = "SPEC")]
    pub rset: Option<String>,
    /// fill: a node's CPUs before the next node (default); round-robin: thread i
    /// on node i mod N.
    #[arg(long, global = true, value_name = "fill|round-robin", value_parser = placement)]
    pub placement: Option<Placement>,
    /// node: each thread held to the RSet's CPUs on its planned node, as the
    /// paper binds a thread to a node (default; the scheduler may move it between
    /// them, never off its node, so reorg stays local; like
    /// OMP_PLACES=numa_domains); cpu: to its planned CPU.
    #[arg(long, global = true, value_name = "node|cpu", value_parser = pin)]
    pub pin: Option<Pin>,
    /// orig: every shared array striped one page per node (the paper's base case,
    /// default); reorg: each thread's partition on its own node, page by page.
    #[arg(long, global = true, value_name = "orig|reorg", value_parser = layout)]
    pub layout: Option<DataLayout>,
    /// Record a monitor session of the threads' work (one filter per shared
    /// array, named fft.x, fft3d.a, ocean.psi, ...) and save it to FILE; read it
    /// with `rset-mon report FILE`; a summary goes to stderr.
    #[arg(long, global = true, value_name = "FILE")]
    pub monitor: Option<PathBuf>,
    /// Sampling rounds per second of --monitor (default 1000).
    #[arg(long, global = true, value_name = "HZ", value_parser = rate)]
    pub monitor_rate: Option<u64>,
    /// The largest share of the run's time sampling may take (default 0.05; 0: no
    /// limit): arming costs a page-table walk of every watched page, so big
    /// arrays get fewer rounds; raise it (or run longer) for more samples.
    #[arg(long, global = true, value_name = "SHARE", value_parser = overhead)]
    pub monitor_overhead: Option<f64>,
    /// Granule of the --monitor filters: a 4 KiB page (default), a 64 B cache
    /// line, 2 MiB, or a power of two between 64 and 2M; finer than a page also
    /// writes FILE.lines: the table and a verdict for every touched line
    /// (dominant node; SHARED-WRITE when two or more nodes wrote it).
    #[arg(long, global = true, value_name = "page|line|huge|BYTES", value_parser = granularity)]
    pub monitor_granularity: Option<Granularity>,
    /// Successive refinement (the paper's method): watch only the granules of
    /// session PREV (a run of the same program with the same flags) with the most
    /// remote references, at --monitor-granularity (default: line here). Arrays
    /// move between runs, so each hot range is found again by array label and
    /// offset (fft3d.a + 0x5000).
    #[arg(long, global = true, value_name = "PREV")]
    pub monitor_zoom: Option<PathBuf>,
    /// Granules of PREV kept by --monitor-zoom (default 8).
    #[arg(long, global = true, value_name = "K", value_parser = top)]
    pub monitor_top: Option<usize>,
    /// This text.
    #[arg(long = "help", global = true, action = ArgAction::SetTrue)]
    pub help: bool,
}

/// A program, with its original flags.
#[derive(Subcommand, Debug)]
pub enum Program {
    /// SPLASH-2 FFT kernel: radix-sqrt(n) six-step 1D FFT with blocked transposes.
    #[command(disable_help_flag = true)]
    Fft(fft::Flags),
    /// SPLASH-2 Ocean, contiguous partitions: red-black multigrid, square subgrids.
    #[command(disable_help_flag = true)]
    Ocean(ocean::Flags),
    /// The paper's 3D-FFT: N x N x N complex doubles, one all-to-all transpose per
    /// transform.
    #[command(disable_help_flag = true)]
    Fft3d(fft3d::Flags),
    /// The paper's Table 2 from monitored runs: NAME ORIG REORG [NAME ORIG REORG]...
    #[command(disable_help_flag = true)]
    Compare {
        /// Program names and their orig and reorg session files, in triples.
        #[arg(value_name = "NAME ORIG REORG", allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

impl Program {
    /// The program's name on the command line.
    pub fn name(&self) -> &'static str {
        match self {
            Program::Fft(_) => "fft",
            Program::Ocean(_) => "ocean",
            Program::Fft3d(_) => "fft3d",
            Program::Compare { .. } => "compare",
        }
    }
}

/// The names of the programs (and `compare`), as subcommands.
pub const PROGRAMS: [&str; 4] = ["fft", "ocean", "fft3d", "compare"];

fn placement(v: &str) -> Result<Placement, String> {
    v.parse().map_err(|e| format!("--placement: {e}"))
}

fn pin(v: &str) -> Result<Pin, String> {
    v.parse().map_err(|e| format!("--pin: {e}"))
}

fn layout(v: &str) -> Result<DataLayout, String> {
    v.parse().map_err(|e| format!("--layout: {e}"))
}

fn positive(flag: &str, v: &str) -> Result<u64, String> {
    v.parse::<u64>()
        .ok()
        .filter(|&n| n > 0)
        .ok_or_else(|| format!("--{flag}: `{v}` is not a positive number"))
}

fn rate(v: &str) -> Result<u64, String> {
    positive("monitor-rate", v)
}

fn top(v: &str) -> Result<usize, String> {
    positive("monitor-top", v).map(|k| usize::try_from(k).unwrap_or(usize::MAX))
}

fn overhead(v: &str) -> Result<f64, String> {
    v.parse::<f64>()
        .ok()
        .filter(|s| (0.0..=1.0).contains(s))
        .ok_or_else(|| format!("--monitor-overhead: `{v}` is not a share between 0 and 1"))
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

impl Common {
    /// The run's configuration, with the checks that span flags.
    ///
    /// # Errors
    /// A flag that needs another one missing (`--monitor-top` without
    /// `--monitor-zoom`, a zoom or a granularity without `--monitor`).
    pub fn config(&self) -> Result<RunConfig, String> {
        let d = RunConfig::default();
        let zoom = self.monitor_zoom.clone().map(|previous| Zoom {
            previous,
            top: self.monitor_top.unwrap_or(Zoom::DEFAULT_TOP),
        });
        if zoom.is_none() && self.monitor_top.is_some() {
            return Err("--monitor-top needs --monitor-zoom PREV".into());
        }
        if zoom.is_some() && self.monitor.is_none() {
            return Err("--monitor-zoom needs --monitor FILE for the zoomed run's session".into());
        }
        if self.monitor_granularity.is_some() && self.monitor.is_none() {
            return Err("--monitor-granularity needs --monitor FILE".into());
        }
        Ok(RunConfig {
            rset: self.rset.clone().unwrap_or(d.rset),
            placement: self.placement.unwrap_or(d.placement),
            pin: self.pin.unwrap_or(d.pin),
            layout: self.layout.unwrap_or(d.layout),
            monitor: self.monitor.clone(),
            monitor_granularity: self.monitor_granularity,
            monitor_zoom: zoom,
        })
    }
}

/// `splash --help`.
pub fn help() -> String {
    Cli::command().render_long_help().to_string()
}

/// The program named in `argv`, if any: the first word that is not a common
/// flag or its value.
pub fn program_name(argv: &[String]) -> Option<&'static str> {
    let mut it = argv.iter();
    while let Some(a) = it.next() {
        if let Some(long) = a.strip_prefix("--") {
            if !long.contains('=') && long != "help" {
                it.next();
            }
            continue;
        }
        return PROGRAMS.iter().copied().find(|p| p == a);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("splash").chain(v.iter().copied()))
    }

    #[test]
    fn common_flags_go_before_or_after_the_program() {
        let c = parse(&["--layout", "reorg", "fft", "-m16", "-p2", "-t"]).unwrap();
        assert_eq!(c.common.layout, Some(DataLayout::Reorg));
        assert!(matches!(c.program, Some(Program::Fft(_))));
        let c = parse(&["fft", "-m12", "-t", "-p2", "--layout=reorg", "--pin", "cpu"]).unwrap();
        assert_eq!(c.common.layout, Some(DataLayout::Reorg));
        assert_eq!(c.common.pin, Some(Pin::Cpu));
        let c = parse(&["ocean", "-n258", "-p2"]).unwrap();
        assert_eq!(c.program.as_ref().map(Program::name), Some("ocean"));
        let c = parse(&["fft3d", "-n64", "-p8", "-i20"]).unwrap();
        assert_eq!(c.program.as_ref().map(Program::name), Some("fft3d"));
        assert!(parse(&["fft", "-m", "16", "-st"]).is_ok());
    }

    #[test]
    fn the_program_is_found_past_the_common_flags_values() {
        let v = |s: &[&str]| s.iter().map(|a| a.to_string()).collect::<Vec<_>>();
        assert_eq!(
            program_name(&v(&["--monitor", "fft", "ocean", "-q"])),
            Some("ocean")
        );
        assert_eq!(
            program_name(&v(&["--layout=reorg", "fft3d"])),
            Some("fft3d")
        );
        assert_eq!(program_name(&v(&["nosuch", "fft"])), None);
    }

    #[test]
    fn checks_spanning_flags() {
        let c = parse(&["--monitor-top", "4", "--monitor", "o", "fft"]).unwrap();
        assert_eq!(
            c.common.config().unwrap_err(),
            "--monitor-top needs --monitor-zoom PREV"
        );
        let c = parse(&[
            "--monitor",
            "o",
            "--monitor-zoom",
            "p",
            "--monitor-top",
            "3",
            "fft",
        ])
        .unwrap();
        assert_eq!(c.common.config().unwrap().monitor_zoom.unwrap().top, 3);
    }
}
