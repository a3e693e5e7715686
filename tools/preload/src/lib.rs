//! `librset_preload.so`: what `rset-run` and `rset-mon record` preload into an
//! unmodified program (`LD_PRELOAD`).
//!
//! - **Threads** (`rset-run`): `pthread_create` is wrapped; each new thread gets the
//!   next slot of the plan in creation order (the main thread is slot 0) and, from
//!   inside itself before its start routine runs, binds its CPU and memory and sets
//!   its allocator policy. See `place.rs`.
//! - **Heap**: the whole `malloc` family is served by the NUMA allocator of
//!   `alloc-policies` ([`alloc_policies::cmalloc`]), so every heap block follows the
//!   policy of the thread that asks for it (float: first touch, as glibc would).
//! - **Monitor** (`rset-mon record`): the software sampler watches the program's
//!   large heap blocks (or given ranges) and writes a session at exit. See `record.rs`.
//!
//! Configuration comes from the environment, decoded and checked by the protocol
//! crate ([`rset_protocol`], shared with the tools).
//! A program that exports the symbol `rset_preload_passive` (the rset tools do) is
//! left alone: no binding, no policy, no monitor; its children are not.
#![deny(unsafe_code)]

mod exports;
mod lifecycle;
mod log;
mod place;
mod real;
mod record;

use std::sync::atomic::{AtomicBool, Ordering};

#[global_allocator]
static ALLOC: alloc_policies::NumaAlloc = alloc_policies::NumaAlloc::new();

/// Set once the constructor found the passive marker.
static PASSIVE: AtomicBool = AtomicBool::new(false);

/// Truth that this process is one of the rset tools (left alone).
pub(crate) fn passive() -> bool {
    PASSIVE.load(Ordering::Relaxed)
}

/// The constructor ([`lifecycle`] registers it): runs before the program's own
/// constructors and `main`.
extern "C" fn init() {
    if real::defines(c"rset_preload_passive") {
        PASSIVE.store(true, Ordering::Relaxed);
        return;
    }
    if let Ok(json) = std::env::var(rset_protocol::RUN_ENV) {
        if let Err(e) = place::init(&json) {
            log::stderr(&format!("rset-run: {e}; the program runs unplaced\n"));
        }
    }
    place::place_main();
    if let Ok(json) = std::env::var(rset_protocol::MON_ENV) {
        record::init(&json);
    }
}

/// The destructor ([`lifecycle`] registers it): runs at `exit`, after the
/// program's own.
extern "C" fn fini() {
    if passive() {
        return;
    }
    record::finish();
    place::exit_record();
}
