//! `rset-mon`'s arguments and help.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Who touches what, from which NUMA node: per-region, per-granule, per-node local
/// and remote reference counts, as the IBM ccNUMA paper's Opium card gave them.
///
/// `rset-mon record` monitors an unmodified program (a preloaded library watches
/// its heap blocks with the software sampler) and writes a session; `rset-mon
/// refine` re-runs a program, zooming from pages to cache lines; `rset-mon report`
/// reads sessions.
#[derive(Parser)]
#[command(name = "rset-mon", version, after_long_help = HELP)]
pub(super) struct Cli {
    #[command(subcommand)]
    pub(super) command: Command,
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
pub(super) enum Command {
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
pub(super) struct RecordOpts {
    /// Granule size: page, line, huge (2 MiB) or a power of two in bytes (64 .. 2M).
    #[arg(long, default_value = "page", value_name = "page|line|BYTES")]
    pub(super) granularity: String,
    /// Heap blocks smaller than this are not watched (K, M, G suffixes).
    #[arg(long, default_value = "1M", value_name = "BYTES")]
    pub(super) min_size: String,
    /// Samples per second of each thread's CPU time (tick sampler), or arming
    /// rounds per second (protect sampler).
    #[arg(long, default_value_t = 1000, value_name = "HZ")]
    pub(super) rate: u64,
    /// Largest share of each thread's time sampling may cost (0: no limit).
    #[arg(long, default_value_t = 0.02, value_name = "SHARE")]
    pub(super) max_overhead: f64,
    /// Software sampler: tick (time-based ticks, the address decoded from the
    /// interrupted instruction; x86-64, Linux 5.13, perf events allowed), protect
    /// (page protection: the first access after a random instant; its cost grows
    /// with the watched size), or auto: tick where the kernel gives it, else protect.
    #[arg(long, default_value = "auto", value_name = "auto|tick|protect")]
    pub(super) sampler: monitor::session::Software,
}
