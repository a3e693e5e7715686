//! `rset-mon`: the Opium-style remote-access monitor's command line. One file per
//! subcommand (`record.rs`, `refine.rs`, `report.rs`), the arguments (`cli.rs`)
//! and the values they parse (`args.rs`), and the marker that keeps the preloaded
//! library away from rset-mon itself ([`passive`]).

mod args;
mod cli;
pub mod passive;
mod record;
mod refine;
mod report;

use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command};

/// The `rset-mon` command: parses the arguments, runs the subcommand, and gives
/// the exit status.
pub fn main() -> ExitCode {
    passive::keep();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Report {
            file,
            json,
            csv,
            svg,
            metric,
            top,
        } => report::report(&file, json, csv, svg, &metric, top),
        Command::Record {
            opts,
            output,
            filter,
            heap,
            command,
        } => record::record(&opts, &output, &filter, heap, &command),
        Command::Refine {
            opts,
            rounds,
            top,
            output,
            command,
        } => refine::refine(&opts, rounds, top, &output, &command),
    };
    match result {
        Ok(code) => code,
        Err(f) => f.report("rset-mon"),
    }
}
