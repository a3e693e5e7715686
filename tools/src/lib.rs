//! Library side of the rset command-line tools.
//!
//! The binaries in `src/bin/` are thin: they parse arguments, print tables and JSON.
//! Code that is worth testing on its own, or reusing, lives here; today that is
//! [`bench`], the memory latency and bandwidth kernels behind `rset-bench`.
#![deny(missing_docs)]
#![deny(unsafe_code)]

pub mod bench;
pub mod cli;
pub mod launch;
pub mod preload_protocol;
pub mod splash;
