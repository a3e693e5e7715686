//! The marker that makes librset_preload.so leave `rset-mon` alone when `rset-run`
//! starts it (`rset-run -- rset-mon record -- PROGRAM`): rset-mon's own threads
//! take no slot and its allocations no policy; PROGRAM's do. The library looks the
//! symbol up with `dlsym(RTLD_DEFAULT, "rset_preload_passive")`; tools/build.rs
//! exports it from the `rset-mon` binary's dynamic symbol table.
//!
//! # Safety
//! `#[unsafe(no_mangle)]` is unsafe because an unmangled symbol may clash with a
//! definition of the same name elsewhere in the process. The name is the
//! protocol's [`PASSIVE_SYMBOL`](rset_protocol::PASSIVE_SYMBOL), which nothing
//! else defines (the library only looks it up), and only its presence is read,
//! never its value.
#![allow(unsafe_code)]

/// The marker itself (`rset_protocol::PASSIVE_SYMBOL`).
#[unsafe(no_mangle)]
#[used]
pub static rset_preload_passive: u8 = 1;

/// Keeps the marker in the binary: the linker pulls in the code that calls this,
/// and with it the marker.
pub(super) fn keep() {
    std::hint::black_box(&rset_preload_passive);
}
