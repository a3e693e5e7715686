//! `rset-mon`: the Opium-style remote-access monitor's command line.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command as Process, ExitCode, ExitStatus};

use clap::{Parser, Subcommand};
use monitor::svg::{Metric, SvgOptions};
use monitor::{Granularity, Report, SessionFile, line_verdicts, plan_next_round};
use rset_tools::cli::{Failure, emit};
use rset_tools::launch;
use rset_tools::preload_protocol::{LIBRARY, MON_ENV, MonConfig};

/// Marks this program for librset_preload.so, which leaves it alone when
/// `rset-run` starts it (`rset-run -- rset-mon record -- PROGRAM`): rset-mon's own
/// threads take no slot; PROGRAM's do. Exported by tools/build.rs.
#[unsafe(no_mangle)]
#[used]
pub static rset_preload_passive: u8 = 1;

/// Who touches what, from which NUMA node: per-region, per-granule, per-node local
/// and remote reference counts, as the IBM ccNUMA paper's Opium card gave them.
///
/// `rset-mon record` monitors an unmodified program (a preloaded library watches
/// its heap blocks with the software sampler) and writes a session; `rset-mon
/// refine` re-runs a program, zooming from pages to cache lines; `rset-mon report`
/// reads sessions.
#[derive(Parser)]
#[command(name = "rset-mon", version, after_long_help = HELP)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

const HELP: &str = "\
COUNTS ARE ESTIMATES: the software sampler records one reference per round, chosen
with probability proportional to how often memory is referenced, so a share p from n
samples is good to about +/- 2*sqrt(p(1-p)/n) (95%); the report prints n.

EXAMPLES:
  rset-mon record -- ./a.out                  watch heap blocks >= 1 MiB, page counters
  rset-mon record --granularity line --min-size 64K -o run.session -- ./a.out
  rset-mon record --filter 0x7ffff7a00000:8M:page -- ./a.out   (addresses: see --help of record)
  rset-mon refine --rounds 3 -- ./a.out      pages, then 512 B, then cache lines
  rset-run --threads round-robin --mem local -- rset-mon record -o run.session -- ./a.out
  rset-mon report run.session                 the table of data areas, top 20 granules
  rset-mon report run.session --json > run.json
  rset-mon report run.session --csv > run.csv
  rset-mon report run.session --svg run.svg   heatmap of granules x accessing nodes

EXIT STATUS: report: 0, or 2 for bad arguments or an unreadable session file.
record and refine: the program's status (128+N if killed by signal N); 127 if it
is not found, 126 if not executable, 2 for bad arguments or a program a preload
cannot reach (statically linked, set-user-ID).";

const RECORD_HELP: &str = "\
WHAT IS WATCHED: every heap block of at least --min-size bytes the program gets
from malloc, calloc, realloc or the aligned allocators (the preloaded library
serves them), from allocation to free, at --granularity; regions are named
heap#N in allocation order. --filter watches address ranges instead (add --heap
to watch both). Static data, stacks and memory the program maps itself are not
watched unless given with --filter.

ADDRESSES: the program runs without address-space randomisation (personality
ADDR_NO_RANDOMIZE), so the addresses of one run are those of the next run of the
same deterministic program; `rset-mon refine` matches heap blocks across runs by
allocation sequence number (heap#N) all the same.

LIVING INSIDE THE PROGRAM: the program's own SIGSEGV/SIGTRAP handlers keep working
(the library chains to them); read/write/pread/pwrite/readv/writev/recv/send/
fread/fwrite run with the watched pages disarmed (other system calls on a watched
buffer may fail with EFAULT in the instant a page is armed); a forked child is not
monitored; the session is written at exit() (not after _exit or a fatal signal).";

#[derive(Subcommand)]
enum Command {
    /// Print the report of a saved session.
    Report {
        /// The session file.
        file: PathBuf,
        /// JSON: {"regions":[{"name","start","size","granularity","granules":[..]}], "totals", "sampler", ..}.
        #[arg(long, conflicts_with_all = ["csv", "svg"])]
        json: bool,
        /// CSV: one row per granule per accessing node.
        #[arg(long, conflicts_with = "svg")]
        csv: bool,
        /// Write an SVG heatmap (granules x accessing nodes, like the paper's Fig. 8/9).
        #[arg(long, value_name = "OUT")]
        svg: Option<PathBuf>,
        /// What colours the heatmap: remote, local, total, reads or writes.
        #[arg(long, default_value = "remote", value_name = "METRIC")]
        metric: String,
        /// Granules listed in the text report.
        #[arg(long, default_value_t = 20, value_name = "N")]
        top: usize,
    },
    /// Run an unmodified program under the monitor and write its session.
    #[command(after_long_help = RECORD_HELP)]
    Record {
        #[command(flatten)]
        opts: RecordOpts,
        /// The session file to write.
        #[arg(short, long, default_value = "rset-mon.session", value_name = "FILE")]
        output: PathBuf,
        /// Watch ranges START:SIZE:GRAN (hex or decimal; SIZE may end in K, M or G;
        /// GRAN as --granularity) instead of heap blocks. Repeatable.
        #[arg(long, value_name = "START:SIZE:GRAN")]
        filter: Vec<String>,
        /// With --filter: watch heap blocks too.
        #[arg(long)]
        heap: bool,
        /// The program and its arguments.
        #[arg(
            required = true,
            trailing_var_arg = true,
            allow_hyphen_values = true,
            value_name = "PROGRAM"
        )]
        command: Vec<OsString>,
    },
    /// Re-run a deterministic program, each round zooming into the previous round's
    /// hottest granules, and print the final table with per-line verdicts.
    #[command(after_long_help = REFINE_HELP)]
    Refine {
        #[command(flatten)]
        opts: RecordOpts,
        /// Rounds (at least 2): the granularity falls from --granularity to 64 B.
        #[arg(long, default_value_t = 2, value_name = "N")]
        rounds: u32,
        /// Granules kept for the next round (those with the most remote references).
        #[arg(long, default_value_t = 8, value_name = "K")]
        top: usize,
        /// The last round's session file.
        #[arg(short, long, default_value = "rset-mon.session", value_name = "FILE")]
        output: PathBuf,
        /// The program and its arguments.
        #[arg(
            required = true,
            trailing_var_arg = true,
            allow_hyphen_values = true,
            value_name = "PROGRAM"
        )]
        command: Vec<OsString>,
    },
}

const REFINE_HELP: &str = "\
Round 1 watches every heap block of at least --min-size bytes at --granularity
(default page); each later round watches only the K granules with the most remote
references of the round before, at a finer granularity, ending at 64 B cache lines
(rounds=2: 4 KiB then 64 B; rounds=3: 4 KiB, 512 B, 64 B). The program must do the
same allocations in the same order each run: heap blocks are matched across runs by
allocation sequence number (heap#N), and the runs are made without address-space
randomisation. Each round's session is kept as FILE.roundN.";

#[derive(clap::Args, Clone)]
struct RecordOpts {
    /// Granule size: page, line, huge (2 MiB) or a power of two in bytes (64 .. 2M).
    #[arg(long, default_value = "page", value_name = "page|line|BYTES")]
    granularity: String,
    /// Heap blocks smaller than this are not watched (K, M, G suffixes).
    #[arg(long, default_value = "1M", value_name = "BYTES")]
    min_size: String,
    /// Sampling rounds per second.
    #[arg(long, default_value_t = 1000, value_name = "HZ")]
    rate: u64,
    /// Largest share of the program's time sampling may cost (0: no limit).
    #[arg(long, default_value_t = 0.01, value_name = "SHARE")]
    max_overhead: f64,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Report {
            file,
            json,
            csv,
            svg,
            metric,
            top,
        } => report(&file, json, csv, svg, &metric, top),
        Command::Record {
            opts,
            output,
            filter,
            heap,
            command,
        } => record(&opts, &output, &filter, heap, &command),
        Command::Refine {
            opts,
            rounds,
            top,
            output,
            command,
        } => refine(&opts, rounds, top, &output, &command),
    };
    match result {
        Ok(code) => code,
        Err(f) => f.report("rset-mon"),
    }
}

fn metric(name: &str) -> Option<Metric> {
    Some(match name {
        "remote" => Metric::Remote,
        "local" => Metric::Local,
        "total" => Metric::Total,
        "reads" => Metric::Reads,
        "writes" => Metric::Writes,
        _ => return None,
    })
}

fn report(
    file: &Path,
    json: bool,
    csv: bool,
    svg: Option<PathBuf>,
    m: &str,
    top: usize,
) -> Result<ExitCode, Failure> {
    let session = SessionFile::load(file).map_err(Failure::usage)?;
    let report = Report::from_session(&session);
    if json {
        emit(&(report.to_json() + "\n"))?;
    } else if csv {
        emit(&report.to_csv())?;
    } else if let Some(out) = svg {
        let metric = metric(m).ok_or_else(|| {
            Failure::usage(format!(
                "unknown metric `{m}` (expected remote, local, total, reads or writes)"
            ))
        })?;
        let opts = SvgOptions {
            metric,
            ..SvgOptions::default()
        };
        std::fs::write(&out, report.to_svg(&opts))
            .map_err(|e| Failure::usage(format!("{}: {e}", out.display())))?;
    } else {
        emit(&report.to_text(top))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `page`, `line`, `huge` or a power of two of bytes.
fn granularity(text: &str) -> Result<Granularity, Failure> {
    let bytes = match text {
        "page" => Granularity::PAGE.bytes(),
        "line" => Granularity::LINE.bytes(),
        "huge" => Granularity::HUGE.bytes(),
        other => size(other)?,
    };
    Granularity::new(bytes).map_err(|e| Failure::usage(format!("granularity `{text}`: {e}")))
}

/// Decimal or 0x hex, with an optional K, M or G suffix (powers of 1024).
fn size(text: &str) -> Result<u64, Failure> {
    let bad = || {
        Failure::usage(format!(
            "`{text}` is not a size (e.g. 4096, 0x1000, 64K, 8M)"
        ))
    };
    let t = text.trim();
    let (digits, mult) = match t.char_indices().last() {
        Some((i, 'k' | 'K')) => (&t[..i], 1u64 << 10),
        Some((i, 'm' | 'M')) => (&t[..i], 1 << 20),
        Some((i, 'g' | 'G')) => (&t[..i], 1 << 30),
        _ => (t, 1),
    };
    let n = match digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
    {
        Some(hex) => u64::from_str_radix(hex, 16).map_err(|_| bad())?,
        None => digits.parse::<u64>().map_err(|_| bad())?,
    };
    n.checked_mul(mult).ok_or_else(bad)
}

/// `START:SIZE:GRAN`.
fn filter(text: &str) -> Result<(u64, u64, u64), Failure> {
    let parts: Vec<&str> = text.split(':').collect();
    let [start, len, gran] = parts[..] else {
        return Err(Failure::usage(format!(
            "--filter `{text}`: expected START:SIZE:GRAN, e.g. 0x7ffff0000000:8M:page"
        )));
    };
    let (start, len, gran) = (size(start)?, size(len)?, granularity(gran)?);
    if len == 0 {
        return Err(Failure::usage(format!("--filter `{text}`: the size is 0")));
    }
    Ok((start, len, gran.bytes()))
}

/// Runs `command` under the monitor with `config` (its parent filled in here) and
/// returns its exit status.
fn run_monitored(command: &[OsString], mut config: MonConfig) -> Result<ExitStatus, Failure> {
    let program = launch::resolve(&command[0])?;
    launch::check_preloadable(&program)?;
    let library = launch::library()?;
    // Addresses of one run are those of the next (refinement, --filter).
    nix::sys::personality::set(
        nix::sys::personality::get().unwrap_or(nix::sys::personality::Persona::empty())
            | nix::sys::personality::Persona::ADDR_NO_RANDOMIZE,
    )
    .map_err(|e| Failure::runtime(format!("cannot turn off address randomisation: {e}")))?;
    config.parent = std::process::id();
    let json = serde_json::to_string(&config).map_err(Failure::runtime)?;
    let mut cmd = Process::new(&program);
    std::os::unix::process::CommandExt::arg0(&mut cmd, &command[0]);
    cmd.args(&command[1..]).env(MON_ENV, json);
    // Under rset-run the library is preloaded already (and rset-run's plan is in
    // the environment): keep LD_PRELOAD as it is.
    let preloaded = std::env::var("LD_PRELOAD").is_ok_and(|v| v.contains(LIBRARY));
    if !preloaded {
        cmd.env("LD_PRELOAD", launch::ld_preload(&library));
    }
    cmd.status().map_err(|e| {
        Failure::runtime(format!("cannot run {}: {e}", program.display())).with_code(126)
    })
}

fn exit_code(status: ExitStatus) -> ExitCode {
    ExitCode::from(launch::status_code(status))
}

fn base_config(opts: &RecordOpts, output: &Path) -> Result<MonConfig, Failure> {
    if !(0.0..=1.0).contains(&opts.max_overhead) {
        return Err(Failure::usage(format!(
            "--max-overhead {}: give a share between 0 and 1",
            opts.max_overhead
        )));
    }
    if opts.rate == 0 {
        return Err(Failure::usage("--rate 0: give at least 1 round per second"));
    }
    Ok(MonConfig {
        parent: 0,
        output: std::path::absolute(output)
            .unwrap_or_else(|_| output.to_path_buf())
            .display()
            .to_string(),
        granularity: granularity(&opts.granularity)?.bytes(),
        min_size: size(&opts.min_size)?.max(1),
        filters: Vec::new(),
        heap: true,
        zoom: Vec::new(),
        rate_hz: opts.rate,
        max_overhead: opts.max_overhead,
    })
}

fn record(
    opts: &RecordOpts,
    output: &Path,
    filters: &[String],
    heap: bool,
    command: &[OsString],
) -> Result<ExitCode, Failure> {
    let mut config = base_config(opts, output)?;
    config.filters = filters
        .iter()
        .map(|f| filter(f))
        .collect::<Result<_, _>>()?;
    config.heap = filters.is_empty() || heap;
    let _ = std::fs::remove_file(output);
    let status = run_monitored(command, config)?;
    summarize(output);
    Ok(exit_code(status))
}

/// One line on what was written (or why nothing was).
fn summarize(output: &Path) {
    match SessionFile::load(output) {
        Ok(s) => {
            let r = Report::from_session(&s);
            eprintln!(
                "rset-mon: {} regions, {} samples ({} remote) in {}; `rset-mon report {}` shows the table",
                r.regions.len(),
                r.totals.all.total(),
                r.totals.all.remote,
                output.display(),
                output.display()
            );
        }
        Err(_) => eprintln!(
            "rset-mon: no session was written to {} (the program did not reach exit(), or it \
             is not the process rset-mon started)",
            output.display()
        ),
    }
}

/// Where a region of a round came from: heap block `seq`, starting `offset` bytes
/// before the region (names `heap#N` and `heap#N+0xOFF`).
fn block_of(name: &str) -> Option<(u64, u64)> {
    let rest = name.strip_prefix("heap#")?;
    match rest.split_once('+') {
        None => Some((rest.parse().ok()?, 0)),
        Some((seq, off)) => Some((
            seq.parse().ok()?,
            u64::from_str_radix(off.strip_prefix("0x")?, 16).ok()?,
        )),
    }
}

fn refine(
    opts: &RecordOpts,
    rounds: u32,
    top: usize,
    output: &Path,
    command: &[OsString],
) -> Result<ExitCode, Failure> {
    if rounds < 2 {
        return Err(Failure::usage(format!(
            "--rounds {rounds}: refinement needs at least 2"
        )));
    }
    if top == 0 {
        return Err(Failure::usage("--top 0: keep at least one granule"));
    }
    let base = base_config(opts, output)?;
    let first = base.granularity.trailing_zeros();
    let last = Granularity::LINE.bytes().trailing_zeros();
    if first <= last {
        return Err(Failure::usage(format!(
            "--granularity {}: refinement starts above 64 B",
            opts.granularity
        )));
    }
    let step = (first - last).div_ceil(rounds - 1).max(1);
    let mut zoom: Vec<(u64, u64, u64, u64)> = Vec::new();
    let mut gran = base.granularity;
    let mut status = None;
    for round in 1..=rounds {
        let file = if round == rounds {
            output.to_path_buf()
        } else {
            PathBuf::from(format!("{}.round{round}", output.display()))
        };
        let mut config = base.clone();
        config.output = std::path::absolute(&file)
            .unwrap_or_else(|_| file.clone())
            .display()
            .to_string();
        config.zoom = zoom.clone();
        config.granularity = gran;
        let _ = std::fs::remove_file(&file);
        eprintln!(
            "rset-mon: round {round}/{rounds}: {} at {gran} B granules",
            if zoom.is_empty() {
                "every heap block".to_string()
            } else {
                format!("{} hot ranges", zoom.len())
            }
        );
        let st = run_monitored(command, config)?;
        if !st.success() {
            return Err(Failure::runtime(format!(
                "round {round}: the program failed ({st}); refinement needs runs that succeed"
            ))
            .with_code(launch::status_code(st).max(1)));
        }
        status = Some(st);
        let session = SessionFile::load(&file).map_err(|e| {
            Failure::runtime(format!(
                "round {round}: no session ({e}): did the program reach exit()?"
            ))
        })?;
        if round == rounds {
            let report = Report::from_session(&session);
            emit(&report.to_text(top.max(20)))?;
            emit(&monitor::refine::verdicts_text(&line_verdicts(&report)))?;
            break;
        }
        let next = 1u64 << first.saturating_sub(step * round).max(last);
        let report = Report::from_session(&session);
        let plan = plan_next_round(
            &report,
            top,
            Granularity::new(next).map_err(Failure::runtime)?,
        );
        if plan.is_empty() {
            return Err(Failure::runtime(format!(
                "round {round}: no granule had a remote reference; nothing to refine (see {})",
                file.display()
            )));
        }
        zoom = plan
            .iter()
            .filter_map(|spec| {
                let region = report
                    .regions
                    .iter()
                    .find(|r| r.start <= spec.start && spec.start < r.end())?;
                let (seq, off) = block_of(&region.name)?;
                let block_start = region.start - off;
                Some((seq, spec.start - block_start, spec.size, next))
            })
            .collect();
        gran = next;
    }
    Ok(status.map_or(ExitCode::SUCCESS, exit_code))
}
