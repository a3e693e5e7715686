//! `rset-mon`: the Opium-style remote-access monitor's command line. The command
//! lives in [`rset_tools::mon`].

use std::process::ExitCode;

fn main() -> ExitCode {
    rset_tools::mon::main()
}
