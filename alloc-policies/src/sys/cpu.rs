//! The CPU the calling thread runs on: the `cpu_id` the kernel keeps in the
//! thread's rseq area (glibc >= 2.35 registers one per thread, found through
//! `dlsym(3)` of `__rseq_offset`), else `sched_getcpu(3)`. Allocation-free: the
//! global allocator calls these.
//!
//! # Safety
//! - `dlsym` with `RTLD_DEFAULT` and NUL-terminated names only looks symbols up;
//!   the two symbols read are glibc's `const ptrdiff_t __rseq_offset` and
//!   `const unsigned int __rseq_size`, at the addresses `dlsym` gave.
//! - The thread pointer is read from `%fs:0` (x86-64 Linux keeps the TCB's self
//!   pointer there); reading it has no side effect.
//! - A [`CpuIdSource`] points at the rseq `cpu_id` of the thread that made it (thread
//!   pointer + `__rseq_offset` + 4, inside the `struct rseq` glibc registered for
//!   that thread, which lives as long as the thread), or at a static `-1`. It holds
//!   a raw pointer, so it is neither `Send` nor `Sync`: it is only ever read on the
//!   thread it was made on, while that thread (and so its rseq area) lives. The
//!   kernel writes `cpu_id` at any time, hence volatile reads.
//! - `sched_getcpu` has no preconditions and touches no memory of ours.
//!
//! # References
//! - <https://man7.org/linux/man-pages/man3/sched_getcpu.3.html>
//! - <https://man7.org/linux/man-pages/man2/rseq.2.html>
//! - <https://man7.org/linux/man-pages/man3/dlsym.3.html>
#![allow(unsafe_code)]

use std::sync::atomic::{AtomicIsize, Ordering};

/// Offset of glibc's per-thread `struct rseq` from the thread pointer
/// (`__rseq_offset`), or 0 when the kernel and glibc do not maintain one.
static RSEQ_OFFSET: AtomicIsize = AtomicIsize::new(0);

/// What a [`CpuIdSource`] reads where the thread has no rseq area: -1, which is no
/// CPU number.
static NO_RSEQ_CPU: i32 = -1;

/// Looks up glibc's rseq area, so that [`current_cpu`] and [`CpuIdSource`] can read
/// the CPU number the kernel keeps there. Without it (an older glibc,
/// `glibc.pthread.rseq=0`), [`current_cpu`] calls `sched_getcpu`. `dlsym` is C
/// code: it never enters Rust's global allocator.
pub(crate) fn find_rseq() {
    if !cfg!(all(target_arch = "x86_64", target_env = "gnu")) {
        return;
    }
    // SAFETY: dlsym with RTLD_DEFAULT and NUL-terminated names only looks symbols up.
    let offset = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"__rseq_offset".as_ptr()) };
    // SAFETY: as above.
    let size = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"__rseq_size".as_ptr()) };
    if offset.is_null() || size.is_null() {
        return;
    }
    // SAFETY: glibc defines `const ptrdiff_t __rseq_offset`; dlsym gave its address.
    let offset = unsafe { *offset.cast::<isize>() };
    // SAFETY: and `const unsigned int __rseq_size`.
    let size = unsafe { *size.cast::<u32>() };
    // `cpu_id` is the second u32 of struct rseq: the area must hold it.
    if size >= 8 && offset != 0 {
        RSEQ_OFFSET.store(offset, Ordering::Relaxed);
    }
}

/// Where a thread reads "the CPU I run on" without a call: its rseq `cpu_id` (an
/// `i32` the kernel keeps up to date whenever the thread is scheduled), or a
/// constant -1 where it has none. Not `Send`: valid on the thread that made it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CpuIdSource(*const i32);

impl CpuIdSource {
    /// The source that always reads -1 (no CPU).
    pub(crate) const fn none() -> CpuIdSource {
        CpuIdSource(&raw const NO_RSEQ_CPU)
    }

    /// The calling thread's rseq `cpu_id`, when [`find_rseq`] found glibc's rseq area.
    #[inline(always)]
    pub(crate) fn this_thread() -> Option<CpuIdSource> {
        #[cfg(all(target_arch = "x86_64", target_env = "gnu", not(miri)))]
        {
            let offset = RSEQ_OFFSET.load(Ordering::Relaxed);
            if offset != 0 {
                let tp: usize;
                // SAFETY: on x86-64 Linux `%fs:0` holds the thread pointer (the TCB's
                // self pointer); reading it has no side effect.
                unsafe {
                    std::arch::asm!(
                        "mov {}, qword ptr fs:[0]",
                        out(reg) tp,
                        options(nostack, readonly, preserves_flags, pure)
                    );
                }
                // glibc registered this thread's `struct rseq` at thread pointer +
                // __rseq_offset (find_rseq checked it exists); `cpu_id` is its aligned
                // i32 at offset 4.
                return Some(CpuIdSource(std::ptr::with_exposed_provenance::<i32>(
                    tp.wrapping_add_signed(offset).wrapping_add(4),
                )));
            }
        }
        None
    }

    /// The CPU number now (negative: none, or rseq not registered).
    #[inline(always)]
    pub(crate) fn read(self) -> i32 {
        // SAFETY: `self.0` points at a live i32 of this thread (type invariant),
        // which the kernel may write at any time, hence volatile.
        unsafe { self.0.read_volatile() }
    }
}

/// The CPU the calling thread runs on now, `u32::MAX` if unknown: read from the
/// thread's rseq area when [`find_rseq`] found one (no call, no system call), else
/// `sched_getcpu`.
#[inline]
pub(crate) fn current_cpu() -> u32 {
    if let Some(src) = CpuIdSource::this_thread() {
        let cpu = src.read();
        if cpu >= 0 {
            return cpu as u32;
        }
    }
    // SAFETY: sched_getcpu has no preconditions and touches no memory of ours.
    let cpu = unsafe { libc::sched_getcpu() };
    u32::try_from(cpu).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_empty_source_reads_no_cpu() {
        assert_eq!(CpuIdSource::none().read(), -1);
    }

    #[test]
    #[cfg_attr(miri, ignore)] // sched_getcpu and dlsym are foreign calls
    fn the_current_cpu_is_known_on_linux() {
        find_rseq();
        assert_ne!(current_cpu(), u32::MAX);
    }
}
