//! `rset bind`: runs a program bound to an RSet (CPU affinity and strict memory
//! binding), by exec.

use std::ffi::OsString;

use ::rset::RSet;
use clap::Args;

use super::source::TopologyArg;
use crate::cli::Failure;

#[derive(Args)]
pub(super) struct BindArgs {
    /// The resource spec (see the grammar in `rset --help`).
    spec: String,
    /// The program and its arguments, after `--`.
    #[arg(last = true, required = true, value_name = "PROGRAM")]
    program: Vec<OsString>,
}

pub(super) fn bind(args: &BindArgs) -> Result<(), Failure> {
    let topo = TopologyArg::system().load()?;
    let rset = RSet::parse(&args.spec, &topo).map_err(Failure::usage)?;
    ::rset::bind::bind_current_thread(&rset).map_err(|e| Failure {
        message: e.to_string(),
        code: 1,
    })?;
    let program = &args.program[0];
    let err = std::os::unix::process::CommandExt::exec(
        std::process::Command::new(program).args(&args.program[1..]),
    );
    let code = if err.kind() == std::io::ErrorKind::NotFound {
        127
    } else {
        126
    };
    Err(Failure {
        message: format!("cannot run `{}`: {err}", program.to_string_lossy()),
        code,
    })
}
