//! `cargo xtask`: the project's task runner.
//!
//! - `cargo xtask vm [TOPOLOGY] -- COMMAND [ARGS]...` boots an emulated multi-node
//!   NUMA machine (QEMU, TCG) and runs COMMAND in it.
//! - `cargo xtask test` runs every check: fmt, clippy, host tests, then the guest
//!   tests in three emulated machines.
//! - `cargo xtask demo` walks through the toolkit on the emulated 4-node machine.
//!
//! Missing Debian packages are installed when running as root; otherwise the exact
//! command to run is printed. The guest kernel and busybox are fetched as Debian
//! packages and cached under `target/xtask/`.

mod cargo;
mod demo;
mod guest;
mod initramfs;
mod setup;
mod stacks;
mod test;
mod topology;

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// Project tasks for the rset NUMA toolkit.
#[derive(Parser)]
#[command(name = "cargo xtask", bin_name = "cargo xtask", version)]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Boot an emulated NUMA machine and run COMMAND inside it.
    ///
    /// The workspace is built (release) first; every workspace binary is on the
    /// guest's PATH, at the same absolute path as on the host. The guest has a
    /// writable /tmp, /proc, /sys, devtmpfs on /dev and cgroup2 on /sys/fs/cgroup.
    /// COMMAND's stdout and stderr are streamed to ours, and this exits with
    /// COMMAND's status: 127 when COMMAND is not found in the guest, 124 on a
    /// time-out, 125 when the guest fails (kernel panic, QEMU error).
    ///
    /// Example: cargo xtask vm --nodes 4 --cpuless-nodes 1 -- rset show
    #[command(verbatim_doc_comment)]
    Vm(VmArgs),
    /// Run every check: fmt, clippy, host tests, then the guest tests.
    ///
    /// Guest tests (test targets named `guest*`, marked `test = false`) run in three
    /// emulated machines, one boot each: 2 nodes x 2 CPUs, 4 nodes x 2 CPUs, and
    /// 2 nodes x 2 CPUs plus one CPU-less memory node. Ends with one line
    /// `N passed, N failed` summed over host and guests; exits non-zero on any
    /// failure.
    #[command(verbatim_doc_comment)]
    Test(TestArgs),
    /// Walk through the toolkit on the emulated 4-node machine (or the host).
    Demo(DemoArgs),
    /// Install missing system packages and fetch the guest kernel, then stop.
    Setup,
    /// Print every thread of PID: state, wait channel, instruction pointer and the
    /// likely return addresses on its stack (the guest test runner's hang report).
    #[command(hide = true)]
    Stacks {
        /// The process.
        pid: i32,
    },
}

/// The emulated machine's shape.
#[derive(Args, Clone, Debug)]
struct TopologyArgs {
    /// NUMA nodes with CPUs.
    #[arg(long, default_value_t = 2, value_name = "N")]
    nodes: u32,
    /// CPUs on each of those nodes.
    #[arg(long, default_value_t = 2, value_name = "C")]
    cpus_per_node: u32,
    /// Memory on every node (CPU-less ones too), MiB.
    #[arg(long, default_value_t = 512, value_name = "MIB")]
    mem_per_node: u64,
    /// Extra memory-only nodes, numbered after the CPU nodes (like CXL memory).
    #[arg(long, default_value_t = 0, value_name = "K")]
    cpuless_nodes: u32,
    /// Distance between any two different nodes (local is always 10).
    #[arg(long, default_value_t = 20, value_name = "D")]
    remote_distance: u32,
    /// Override one distance, both directions: `--distance 0-2=30`. Repeatable.
    #[arg(long = "distance", value_name = "A-B=D")]
    distances: Vec<String>,
}

#[derive(Args)]
struct VmArgs {
    #[command(flatten)]
    topology: TopologyArgs,
    #[command(flatten)]
    guest: GuestArgs,
    /// Copy this host file or directory into the guest at the same absolute path,
    /// with the shared libraries it needs. Repeatable.
    #[arg(long = "copy", value_name = "PATH")]
    copies: Vec<PathBuf>,
    /// Skip building the workspace (use the binaries already in target/release).
    #[arg(long)]
    no_build: bool,
    /// The command to run in the guest, after `--`.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    command: Vec<String>,
}

/// Guest options shared by `vm` and `demo`.
#[derive(Args, Clone, Debug)]
struct GuestArgs {
    /// Leave automatic NUMA balancing on (it is off by default: it moves pages).
    #[arg(long)]
    numa_balancing: bool,
    /// Set an environment variable in the guest: `--env RUST_LOG=debug`. Repeatable.
    #[arg(long = "env", value_name = "KEY=VALUE")]
    env: Vec<String>,
    /// Kill the guest after this many seconds.
    #[arg(long, default_value_t = 900, value_name = "SECS")]
    timeout: u64,
    /// Show the guest's boot log and QEMU's command line.
    #[arg(short, long)]
    verbose: bool,
}

#[derive(Args)]
struct TestArgs {
    /// Skip `cargo fmt --check` and clippy.
    #[arg(long)]
    no_lint: bool,
    /// Run only the host steps (no guest boots).
    #[arg(long, conflicts_with = "guest_only")]
    host_only: bool,
    /// Run only the guest tests.
    #[arg(long)]
    guest_only: bool,
    /// Show the guests' boot logs and QEMU command lines.
    #[arg(short, long)]
    verbose: bool,
}

#[derive(Args)]
struct DemoArgs {
    /// Run on this machine instead of the emulated one.
    #[arg(long)]
    host: bool,
    /// NUMA nodes with CPUs in the emulated machine.
    #[arg(long, default_value_t = 4, value_name = "N")]
    nodes: u32,
    /// CPUs per node in the emulated machine.
    #[arg(long, default_value_t = 2, value_name = "C")]
    cpus_per_node: u32,
    /// Memory-only nodes in the emulated machine.
    #[arg(long, default_value_t = 0, value_name = "K")]
    cpuless_nodes: u32,
    /// Show the guest's boot log and QEMU's command line.
    #[arg(short, long)]
    verbose: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.task {
        Task::Vm(args) => vm(args),
        Task::Test(args) => test::run(&test::Options {
            lint: !args.no_lint,
            host: !args.guest_only,
            guest: !args.host_only,
            verbose: args.verbose,
        }),
        Task::Demo(args) => demo::run(&args),
        Task::Stacks { pid } => stacks::run(pid),
        Task::Setup => setup::host_packages()
            .and_then(|()| setup::guest_assets(&cargo::metadata()?.xtask_dir()))
            .map(|assets| {
                println!("kernel:  {}", assets.kernel.display());
                println!("busybox: {}", assets.busybox.display());
                0
            }),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            ExitCode::from(guest::EXIT_HARNESS)
        }
    }
}

/// An error and its causes on one line: `outer: inner: root`.
fn one_line(e: &anyhow::Error) -> String {
    e.chain()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(": ")
}

fn vm(args: VmArgs) -> anyhow::Result<u8> {
    let topology = topology::VmTopology::from_args(&args.topology)?;
    let env = guest::parse_env(&args.guest.env)?;
    setup::host_packages()?;
    let meta = cargo::metadata()?;
    let assets = setup::guest_assets(&meta.xtask_dir())?;
    let bins = if args.no_build {
        cargo::existing_release_bins(&meta)?
    } else {
        cargo::build_release_bins()?
    };
    let mut fs = initramfs::Initramfs::new();
    for bin in &bins {
        fs.add_host_path(bin)?;
    }
    for path in &args.copies {
        let abs = std::path::absolute(path)
            .map_err(|e| anyhow::anyhow!("--copy {}: {e}", path.display()))?;
        if !abs.exists() {
            anyhow::bail!("--copy {}: no such file or directory", path.display());
        }
        fs.add_host_path(&abs)?;
    }
    let run = guest::GuestRun {
        topology,
        command: args.command,
        env,
        path_dirs: cargo::bin_dirs(&bins),
        numa_balancing: args.guest.numa_balancing,
        timeout: std::time::Duration::from_secs(args.guest.timeout),
        verbose: args.guest.verbose,
        echo: true,
    };
    let outcome = guest::boot(&assets, fs, &run)?;
    Ok(outcome.exit_code())
}
