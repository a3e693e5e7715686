//! `rset-bench`: memory latency and bandwidth on placed threads and placed memory,
//! the synthetic tests of the IBM ccNUMA paper (Fig. 5-7). The command lives in
//! [`rset_tools::bench::cmd`], the kernels in [`rset_tools::bench`].

use std::process::ExitCode;

fn main() -> ExitCode {
    rset_tools::bench::cmd::main()
}
