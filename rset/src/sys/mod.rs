//! Thin wrappers over the Linux system calls this crate needs, one module per
//! syscall family. Every `unsafe` block of the crate lives below this module.

pub mod affinity;
pub mod mempolicy;
