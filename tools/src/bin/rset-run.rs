//! `rset-run`: places every thread and every heap block of an unmodified program.
//! The command lives in [`rset_tools::run`].

use std::process::ExitCode;

fn main() -> ExitCode {
    rset_tools::run::main()
}
