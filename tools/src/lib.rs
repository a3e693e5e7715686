//! The rset command-line tools, laid out by command.
//!
//! Each binary in `src/bin/` is one line: it calls the `main` of its command's
//! module here, which parses the arguments (clap), runs, prints, and gives the
//! exit status. Each command has a folder of its own, one file per subcommand or
//! concern:
//!
//! | module | command | what is in it |
//! | --- | --- | --- |
//! | [`rset`] | `rset` | `show`, `calc`, `bind`; RSet partitions (`rset part`) get a file here |
//! | [`run`] | `rset-run` | arguments, the plan handed to the preloaded library, the report; the adaptation loop (`--adapt`) gets a file here |
//! | [`mon`] | `rset-mon` | `record`, `refine`, `report`, their value parsers, the passive marker |
//! | [`bench`](mod@bench) | `rset-bench` | the latency and bandwidth kernels; the command in [`bench::cmd`] (`lat`, `bw`, `matrix`) |
//! | [`splash`] | `splash` | the SPLASH-2 programs' flags (clap, the originals' getopt rules), dispatch, `compare` |
//! | [`top`] | `rset-top` | the live viewer: frames from live files and sessions, the views' model, the key state machine, ratatui drawing, batch mode |
//!
//! Shared by several commands: [`cli`] (a failure with its exit status, output
//! that survives a closed pipe, JSON) and [`launch`] (starting an unmodified
//! program under `librset_preload.so`, for `rset-run` and `rset-mon`). What the
//! tools tell the library, and what it writes back, is the `rset-protocol` crate
//! ([`rset_protocol`]), which the library uses too.
//!
//! Unsafe code is denied here; the files that opt back in, each with a `# Safety`
//! paragraph, are `bench/huge.rs` (`madvise`) and `mon/passive.rs` (the
//! unmangled marker symbol).
#![deny(missing_docs)]
#![deny(unsafe_code)]

pub mod bench;
pub mod cli;
pub mod launch;
pub mod mon;
pub mod rset;
pub mod run;
pub mod splash;
pub mod top;
