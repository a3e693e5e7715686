//! `rset-run`: places every thread and every heap block of an unmodified program.

use std::ffi::OsString;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::ExitStatus;
use std::process::{Command, ExitCode};
use std::str::FromStr;

use alloc_policies::{Layout, Policy};
use clap::Parser;
use rset::{Placement, RSet, Topology};
use rset_tools::cli::Failure;
use rset_tools::launch;
use rset_tools::preload_protocol::{MON_ENV, RUN_ENV, Record, RunConfig, Slot};
use serde::Serialize;

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
struct Cli {
    /// The RSet to run in (`rset --help` has the grammar: node:0-1, cpu:0-7 + mem:2, ...).
    #[arg(long, default_value = "all", value_name = "SPEC")]
    rset: String,
    /// Thread placement: fill (a node's CPUs, then the next node) or round-robin
    /// (thread i on node i mod N).
    #[arg(long, default_value = "fill", value_name = "fill|round-robin")]
    threads: Placement,
    /// Memory policy of every thread's heap: float (first touch, the OS default),
    /// local (the thread's node), remote (the nearest other node of the RSet), or
    /// striped:K (runs of K pages over every memory node in turn).
    #[arg(long, default_value = "float", value_name = "POLICY")]
    mem: String,
    /// Threads that take no slot, by creation index (main = 0, first
    /// pthread_create = 1, ...; numactl-style list, e.g. 1,3-4): runtime helper
    /// threads. They run anywhere in the RSet with float memory.
    #[arg(long, value_name = "LIST")]
    skip: Option<String>,
    /// Write a JSON report: per thread its pid, tid, slot, CPU and node (read back
    /// with getcpu), per process and policy the heap pages placed on each node.
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    /// Print the plan before the program starts and each binding as it happens.
    #[arg(short, long)]
    verbose: bool,
    /// The program and its arguments.
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "PROGRAM"
    )]
    command: Vec<OsString>,
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(code) => code,
        Err(f) => f.report("rset-run"),
    }
}

/// The whole plan, as printed by `-v` and written in the report.
#[derive(Serialize)]
struct PlanEntry {
    slot: usize,
    cpu: u32,
    node: u32,
    policy: String,
}

fn run(cli: &Cli) -> Result<ExitCode, Failure> {
    let topo = Topology::from_system().map_err(Failure::runtime)?;
    let rset = RSet::parse(&cli.rset, &topo).map_err(Failure::usage)?;
    let cpus = rset.effective_cpus();
    if cpus.is_empty() {
        return Err(Failure::usage(format!(
            "the RSet `{}` has no CPU to run threads on",
            cli.rset
        )));
    }
    let plan = rset::plan(&rset, cli.threads, cpus.len()).map_err(Failure::usage)?;
    let memory_nodes: Vec<u32> = topo
        .global_rset()
        .effective_nodes()
        .iter()
        .map(|n| n.0)
        .collect();
    let rset_nodes: Vec<u32> = rset.effective_nodes().iter().map(|n| n.0).collect();
    let policy = Policy::from_str(&cli.mem)
        .map_err(|e| Failure::usage(format!("--mem {}: {e}", cli.mem)))?;
    let mut slots = Vec::with_capacity(plan.len());
    for t in plan.iter() {
        let name = match &policy {
            Policy::Float => "float".to_string(),
            Policy::Local => "local".to_string(),
            Policy::Remote => match policy.resolve(&rset, t.node) {
                Ok(Layout::Node(n)) => format!("remote:{n}"),
                Ok(_) => unreachable_policy(&cli.mem)?,
                Err(e) => return Err(Failure::usage(format!("--mem remote: {e}"))),
            },
            Policy::Striped { stride_pages } => {
                if rset_nodes != memory_nodes {
                    return Err(Failure::usage(format!(
                        "--mem striped:{stride_pages} stripes over every memory node ({}), \
                         but the RSet `{}` has only {}: use --rset all or another policy",
                        list(&memory_nodes),
                        cli.rset,
                        list(&rset_nodes)
                    )));
                }
                format!("striped:{stride_pages}")
            }
            _ => {
                return Err(Failure::usage(format!(
                    "--mem {}: rset-run takes float, local, remote or striped:K",
                    cli.mem
                )));
            }
        };
        slots.push(Slot {
            cpu: t.cpu.0,
            node: t.node.0,
            policy: name,
        });
    }
    let skip = match &cli.skip {
        Some(s) => rset::list::parse_list(s)
            .map_err(|e| Failure::usage(format!("--skip {s}: {e}")))?
            .into_iter()
            .map(|i| i as usize)
            .collect(),
        None => Vec::new(),
    };
    check_openmp_env()?;
    let program = launch::resolve(&cli.command[0])?;
    launch::check_preloadable(&program)?;
    let library = launch::library()?;

    let log_path = match &cli.report {
        Some(_) => Some(new_log()?),
        None => None,
    };
    let config = RunConfig {
        slots: slots.clone(),
        rset_cpus: cpus.iter().map(|c| c.0).collect(),
        rset_nodes: rset_nodes.clone(),
        memory_nodes,
        skip,
        log: log_path.as_ref().map(|p| p.display().to_string()),
        verbose: cli.verbose,
    };
    let plan_entries: Vec<PlanEntry> = slots
        .iter()
        .enumerate()
        .map(|(i, s)| PlanEntry {
            slot: i,
            cpu: s.cpu,
            node: s.node,
            policy: s.policy.clone(),
        })
        .collect();
    if cli.verbose {
        eprintln!(
            "rset-run: RSet `{}` (CPUs {}, memory nodes {}), {} placement, memory {}",
            cli.rset,
            list(&config.rset_cpus),
            list(&rset_nodes),
            cli.threads,
            cli.mem
        );
        eprintln!("rset-run: slot  cpu  node  memory");
        for e in &plan_entries {
            eprintln!(
                "rset-run: {:>4} {:>4} {:>5}  {}",
                e.slot, e.cpu, e.node, e.policy
            );
        }
    }
    let json = serde_json::to_string(&config).map_err(Failure::runtime)?;
    let mut cmd = Command::new(&program);
    cmd.arg0(&cli.command[0])
        .args(&cli.command[1..])
        .env("LD_PRELOAD", launch::ld_preload(&library))
        .env(RUN_ENV, json)
        .env_remove(MON_ENV);
    if std::env::var_os("OMP_NUM_THREADS").is_none() {
        cmd.env("OMP_NUM_THREADS", slots.len().to_string());
    }
    if std::env::var_os("KMP_AFFINITY").is_none() {
        cmd.env("KMP_AFFINITY", "disabled");
    }
    let Some(report) = &cli.report else {
        let err = cmd.exec();
        return Err(
            Failure::runtime(format!("cannot run {}: {err}", program.display())).with_code(126),
        );
    };
    let log_path = log_path.unwrap_or_default();
    let status = cmd.status().map_err(|e| {
        Failure::runtime(format!("cannot run {}: {e}", program.display())).with_code(126)
    })?;
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    let _ = std::fs::remove_file(&log_path);
    write_report(report, cli, &plan_entries, &log, status)?;
    Ok(exit_code(status))
}

fn unreachable_policy(mem: &str) -> Result<String, Failure> {
    Err(Failure::runtime(format!(
        "--mem {mem}: no single remote node"
    )))
}

fn list(v: &[u32]) -> String {
    rset::list::format_list(v)
}

/// OpenMP settings that would re-pin the threads rset-run places.
fn check_openmp_env() -> Result<(), Failure> {
    for var in ["OMP_PLACES", "GOMP_CPU_AFFINITY"] {
        if std::env::var_os(var).is_some_and(|v| !v.is_empty()) {
            return Err(Failure::usage(format!(
                "{var} is set: the OpenMP runtime would re-pin the threads rset-run places; \
                 unset it (rset-run pins OpenMP threads itself)"
            )));
        }
    }
    if let Some(v) = std::env::var_os("OMP_PROC_BIND") {
        let v = v.to_string_lossy().to_ascii_lowercase();
        if !v.is_empty() && v != "false" {
            return Err(Failure::usage(format!(
                "OMP_PROC_BIND={v}: the OpenMP runtime would re-pin the threads rset-run \
                 places; unset it or set it to false"
            )));
        }
    }
    Ok(())
}

fn new_log() -> Result<PathBuf, Failure> {
    let dir = std::env::temp_dir();
    for i in 0..100u32 {
        let p = dir.join(format!("rset-run.{}.{i}.log", std::process::id()));
        if std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&p)
            .is_ok()
        {
            return Ok(p);
        }
    }
    Err(Failure::runtime(format!(
        "cannot create a log file in {}",
        dir.display()
    )))
}

fn exit_code(status: ExitStatus) -> ExitCode {
    ExitCode::from(launch::status_code(status))
}

#[derive(Serialize)]
struct Report<'a> {
    program: Vec<String>,
    rset: &'a str,
    threads_placement: String,
    mem: &'a str,
    plan: &'a [PlanEntry],
    threads: Vec<Record>,
    memory: Vec<Record>,
    exit_code: Option<i32>,
    signal: Option<i32>,
}

fn write_report(
    path: &PathBuf,
    cli: &Cli,
    plan: &[PlanEntry],
    log: &str,
    status: std::process::ExitStatus,
) -> Result<(), Failure> {
    let mut threads = Vec::new();
    let mut memory = Vec::new();
    let mut bad = 0usize;
    for line in log.lines().filter(|l| !l.is_empty()) {
        match serde_json::from_str::<Record>(line) {
            Ok(r @ Record::Thread { .. }) => threads.push(r),
            Ok(r @ Record::Exit { .. }) => memory.push(r),
            Err(_) => bad += 1,
        }
    }
    if bad > 0 {
        eprintln!("rset-run: {bad} unreadable lines in the run's log were left out of the report");
    }
    let report = Report {
        program: cli
            .command
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect(),
        rset: &cli.rset,
        threads_placement: cli.threads.to_string(),
        mem: &cli.mem,
        plan,
        threads,
        memory,
        exit_code: status.code(),
        signal: status.signal(),
    };
    let text = serde_json::to_string_pretty(&report).map_err(Failure::runtime)? + "\n";
    std::fs::write(path, text)
        .map_err(|e| Failure::runtime(format!("writing the report {}: {e}", path.display())))?;
    Ok(())
}
