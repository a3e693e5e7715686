//! Ports of SPLASH-2 programs used to prove the toolkit on real workloads.
//!
//! Not built yet: this crate is the subject of issue 8. It exists so that the
//! workspace layout is fixed from the start.
#![deny(missing_docs)]
