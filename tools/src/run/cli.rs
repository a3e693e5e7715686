//! `rset-run`'s arguments and help.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::Parser;
use rset::Placement;

/// Runs PROGRAM with each of its threads bound to a CPU of the RSet as it is
/// created (Fill or Round-robin), and each thread's heap allocations placed by a
/// memory policy (Float, Local, Remote, Striped:K), without changing the program.
///
/// A preloaded library (librset_preload.so) wraps pthread_create: each new thread
/// takes the next slot of the plan in creation order (the main thread is slot 0,
/// the first thread it creates slot 1, ...; after the last slot it starts again)
/// and binds itself, from inside, before its start routine runs. It also serves
/// malloc, calloc, realloc, free, posix_memalign, aligned_alloc, memalign, valloc
/// and malloc_usable_size from the NUMA allocator, so that every heap block follows
/// the policy of the thread that allocates it.
#[derive(Parser)]
#[command(name = "rset-run", version, after_long_help = HELP)]
pub(super) struct Cli {
    /// The RSet to run in (`rset --help` has the grammar: node:0-1, cpu:0-7 + mem:2, ...).
    #[arg(long, default_value = "all", value_name = "SPEC")]
    pub(super) rset: String,
    /// Thread placement: fill (a node's CPUs, then the next node) or round-robin
    /// (thread i on node i mod N).
    #[arg(long, default_value = "fill", value_name = "fill|round-robin")]
    pub(super) threads: Placement,
    /// Memory policy of every thread's heap: float (first touch, the OS default),
    /// local (the thread's node), remote (the nearest other node of the RSet), or
    /// striped:K (runs of K pages over every memory node in turn).
    #[arg(long, default_value = "float", value_name = "POLICY")]
    pub(super) mem: String,
    /// Threads that take no slot, by creation index (main = 0, first
    /// pthread_create = 1, ...; numactl-style list, e.g. 1,3-4): runtime helper
    /// threads. They run anywhere in the RSet with float memory.
    #[arg(long, value_name = "LIST")]
    pub(super) skip: Option<String>,
    /// Write a JSON report: per thread its pid, tid, slot, CPU and node (read back
    /// with getcpu), per process and policy the heap pages placed on each node.
    #[arg(long, value_name = "FILE")]
    pub(super) report: Option<PathBuf>,
    /// Print the plan before the program starts and each binding as it happens.
    #[arg(short, long)]
    pub(super) verbose: bool,
    /// The program and its arguments.
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "PROGRAM"
    )]
    pub(super) command: Vec<OsString>,
}

const HELP: &str = "\
WHAT IS COVERED: threads made with pthread_create (C, C++, Fortran, OpenMP, Rust
std::thread), heap blocks from the malloc family. NOT covered: static data and
thread stacks (first touch, inside the RSet's memory nodes: every placed thread
gets MPOL_BIND over them), memory a program maps itself with mmap (first touch),
and blocks allocated before the library was loaded.

OPENMP: the runtime's threads are placed as they are created: with GNU libgomp,
OpenMP thread i of the first team is slot i. rset-run sets OMP_NUM_THREADS to the
number of slots unless you set it, and KMP_AFFINITY=disabled (LLVM/Intel runtimes
would re-pin their threads); it refuses OMP_PROC_BIND, OMP_PLACES and
GOMP_CPU_AFFINITY, which would re-pin the threads it places. Use --skip for
runtime helper threads that should not take a slot.

FORK AND EXEC: a forked child keeps its thread's binding; an exec'd program is
placed again from slot 0 (the environment carries the plan).

EXAMPLES:
  rset-run --threads round-robin --mem local -- ./stream
  rset-run --rset node:0-1 --mem striped:4 -v -- ./solver input.dat
  OMP_NUM_THREADS=8 rset-run --threads fill -- ./omp_program
  rset-run --report run.json -- ./a.out && jq '.threads' run.json
  rset-run --mem local -- rset-mon record -o run.session -- ./a.out

EXIT STATUS: the program's (128+N if killed by signal N); 127 if PROGRAM is not
found, 126 if it is not executable, 2 for bad arguments or a program a preload
cannot reach (statically linked, set-user-ID).";
