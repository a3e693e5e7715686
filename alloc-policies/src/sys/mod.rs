//! Thin wrappers over the Linux interfaces regions and the allocator need, one
//! module per family. Together with the allocator's internals (`engine/mi.rs`,
//! `engine/block.rs`, `engine/thread_policy.rs`) and the thin front ends that
//! forward to them (the `GlobalAlloc` and `Allocator` impls of
//! [`global`](crate::global), the C calls of [`cmalloc`](crate::cmalloc)), these
//! are the only places of the crate that hold `unsafe` code (the memory-policy
//! calls themselves are [`rset::sys::mempolicy`]'s); each opens by allowing
//! `unsafe_code` and with a `# Safety` paragraph.

pub(crate) mod anon;
pub(crate) mod cpu;
pub(crate) mod errno;
pub(crate) mod file;
pub(crate) mod mbind;
pub mod meminfo;
pub mod mman;
