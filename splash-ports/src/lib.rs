//! Ports of SPLASH-2 programs, run on RSets with the paper's "orig" and "reorg"
//! memory layouts, to prove the toolkit on real workloads (section 6 of the paper).
//!
//! - [`framework`]: the SPLASH run-time (placed threads, barriers, global sums) and
//!   labelled shared arrays, striped (`orig`) or placed on their owners' nodes
//!   (`reorg`), with an optional monitor session of the run.
//! - [`fft`]: the SPLASH-2 FFT kernel (radix-√n six-step, blocked transposes).
//! - [`fft3d`]: the paper's 3D-FFT, parallel over planes, with transposes.
//! - [`refine`]: successive refinement from one monitored run to the next (by array
//!   label), and the orig-vs-reorg comparison of the paper's Table 2.
//!
//! Each program module has `run(args, common, out)`: `args` are the original
//! program's flags, `out` gets its output lines. The `splash` command (in
//! `rset-tools`) parses the common flags and dispatches to them.
#![deny(missing_docs)]
#![deny(unsafe_code)]

pub mod fft;
pub mod fft3d;
pub mod framework;
pub mod ocean;
pub mod refine;
