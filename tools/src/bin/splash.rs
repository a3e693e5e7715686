//! `splash`: SPLASH-2 programs on RSets, with the paper's orig/reorg layouts (see
//! `rset_tools::splash`).

fn main() -> std::process::ExitCode {
    rset_tools::splash::main()
}
