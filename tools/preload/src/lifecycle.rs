//! The library's hooks into the life of the process it is loaded into: its
//! constructor and destructor (entries in `.init_array` and `.fini_array`, which
//! the dynamic loader runs at load and at `exit`), and fork handlers
//! (`pthread_atfork(3)`).
//!
//! # Safety
//! The section attributes are unsafe because the loader calls whatever the
//! sections hold: here each holds one `extern "C" fn()` taking nothing, the type
//! the loader calls them as (the ELF ABI's `DT_INIT_ARRAY`/`DT_FINI_ARRAY`
//! entries). `pthread_atfork` stores three function pointers and calls them at
//! each `fork`; [`at_fork`] takes only `extern "C" fn()`s, which live as long as
//! the process (a function is never unloaded while the library is).
#![allow(unsafe_code)]

#[used]
#[unsafe(link_section = ".init_array")]
static INIT: extern "C" fn() = crate::init;

#[used]
#[unsafe(link_section = ".fini_array")]
static FINI: extern "C" fn() = crate::fini;

/// Runs `prepare` before each `fork`, then `parent` in the parent and `child` in
/// the child after it (`pthread_atfork(3)`).
pub fn at_fork(prepare: extern "C" fn(), parent: extern "C" fn(), child: extern "C" fn()) {
    // SAFETY: three plain extern "C" functions that live as long as the process
    // (module docs).
    unsafe { libc::pthread_atfork(Some(prepare), Some(parent), Some(child)) };
}
