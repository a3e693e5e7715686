//! `rset-top`: the live NUMA hotspot viewer. The command lives in
//! [`rset_tools::top`].

use std::process::ExitCode;

fn main() -> ExitCode {
    rset_tools::top::main()
}
