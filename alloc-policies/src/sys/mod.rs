//! Thin wrappers over the Linux interfaces regions and the allocator need, one
//! module per family. Together with the allocator's mimalloc, block and thread
//! policy files in `engine/`, these are the only places of the crate that hold
//! `unsafe` code (the memory-policy calls themselves are
//! [`rset::sys::mempolicy`]'s); each opens with `#![allow(unsafe_code)]` and a
//! `# Safety` paragraph.

pub(crate) mod anon;
pub(crate) mod cpu;
pub(crate) mod errno;
pub(crate) mod file;
pub(crate) mod mbind;
pub mod meminfo;
pub mod mman;
