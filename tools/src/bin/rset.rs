//! `rset`: the machine's NUMA topology, resource-set specs, thread plans and
//! binding. The command lives in [`rset_tools::rset`].

use std::process::ExitCode;

fn main() -> ExitCode {
    rset_tools::rset::main()
}
