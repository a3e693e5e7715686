//! Thin wrappers over the Linux interfaces regions need, one module per family.
//! Every `unsafe` block of the crate lives below this module (the memory-policy
//! calls themselves are [`rset::sys::mempolicy`]'s).

pub mod meminfo;
pub mod mman;
