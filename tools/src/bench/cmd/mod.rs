//! `rset-bench`, the command: parses, runs the kernels of [`crate::bench`] and
//! prints. One file per subcommand (`lat.rs`, `bw.rs`, `matrix.rs`); what they
//! share (timing options, the machine, progress) is in `setup.rs`.

mod bw;
mod lat;
mod matrix;
mod sampler;
mod setup;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

const EXAMPLES: &str = "\
EXAMPLES:
  rset-bench lat                                  ns per load, local memory, one size
  rset-bench lat --sweep --plot lat.svg           4 KiB to past the last-level cache: the cache steps
  rset-bench lat --size 256M --huge-pages on      the same with 2 MiB pages: less TLB cost
  rset-bench lat --cpus node:0 --mem remote       Fig. 5: remote memory, nearest other node
  rset-bench bw --op copy --threads 2             GB/s, counted as STREAM / likwid-bench do
  rset-bench bw --op read --cpus node:0 --sweep-threads --plot fig6.svg
  rset-bench bw --op copy --mem striped:4 --placement round-robin --threads 8
  rset-bench matrix lat --json                    every (CPU node, memory node) pair
  rset-bench matrix bw --op read --plot fig7.svg  Fig. 7: bandwidth normalised to local
  rset-bench sampler --size 1G                    rset-mon record's cost and samples/s on a stream
  rset-bench sampler --record-arg=--sampler=protect   the same with the protect sampler

SPECS AND POLICIES:
  --cpus takes an rset spec (`rset --help`): all, node:LIST, cpu:LIST, with + & -.
  --mem takes a policy (float, local, remote, remote:N, striped:K, bind:LIST,
  interleave:LIST), resolved on the thread that owns the buffer, or a spec whose
  memory nodes the buffer is bound to (mem:2, node:1-2).

COUNTING: read counts bytes read, write bytes written, copy bytes read + bytes
written (as STREAM and likwid-bench); --size is each thread's working set (copy:
half source, half destination). Bandwidth is the best repetition after a warm-up.

In a virtual machine timings are indicative only; in an emulator (QEMU without
KVM) they are not meaningful, and every report says so.

EXIT STATUS: 0 on success, 2 for bad arguments, 1 when the system refuses.";

/// Memory latency and bandwidth of placed threads and placed memory.
///
/// Threads run on CPUs of a resource set; each buffer is placed by a memory policy
/// and checked page by page. Every command prints a table, or JSON with --json.
#[derive(Parser)]
#[command(name = "rset-bench", version, after_help = EXAMPLES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Load latency: a dependent pointer chase over a random cycle of cache lines.
    Lat(lat::LatArgs),
    /// Bandwidth of placed threads: read, write or copy, in GB/s.
    Bw(bw::BwArgs),
    /// Every (CPU node, memory node) pair: latency or bandwidth and the ratio to local.
    Matrix(matrix::MatrixArgs),
    /// What `rset-mon record` costs a streaming program and how many samples it
    /// takes: runs alone and monitored, interleaved, medians compared.
    Sampler(sampler::SamplerArgs),
    /// The streaming program `sampler` runs (prints one report line).
    #[command(hide = true)]
    StreamWorkload(sampler::WorkloadArgs),
}

/// The `rset-bench` command: parses the arguments, runs the subcommand, and gives
/// the exit status.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(
                e.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) {
                e.exit();
            }
            let text = e.to_string();
            let line = text.lines().next().unwrap_or("bad arguments");
            eprintln!(
                "rset-bench: {} (see --help)",
                line.trim_start_matches("error: ")
            );
            return ExitCode::from(2);
        }
    };
    let result = match cli.command {
        Command::Lat(a) => lat::lat(&a),
        Command::Bw(a) => bw::bw(&a),
        Command::Matrix(a) => matrix::matrix(&a),
        Command::Sampler(a) => sampler::sampler(&a),
        Command::StreamWorkload(a) => sampler::workload(&a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("rset-bench: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}
