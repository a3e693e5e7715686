//! Resource sets for NUMA machines.
//!
//! An [RSet] in the sense of the IBM ccNUMA paper is a set of CPUs plus a set of
//! memory nodes: a thread bound to it runs only on its CPUs and allocates only from
//! its nodes. This crate builds them from the real topology and binds threads to them.
//!
//! The raw system calls live in [`sys`], one module per syscall family; the rest of
//! the crate is safe code.
#![deny(missing_docs)]
#![deny(unsafe_code)]

pub mod list;
pub mod sys;
