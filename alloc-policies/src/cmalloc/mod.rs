//! The C `malloc` family served by [`NumaAlloc`](crate::NumaAlloc): what a preloaded
//! library (`rset-run`, `rset-mon record`) exports as `malloc`, `free`, `calloc`,
//! `realloc`, `posix_memalign`, `aligned_alloc`, `memalign`, `valloc`, `pvalloc`
//! and `malloc_usable_size`, so that every heap allocation of an unmodified C, C++
//! or Fortran program follows the calling thread's policy
//! ([`set_thread_policy`](crate::set_thread_policy)).
//!
//! The C calls do not say how large a block is when it is freed. Small blocks are
//! mimalloc's, which knows; large blocks (at least [`LARGE_THRESHOLD`] bytes, or
//! aligned beyond 64 KiB) are mappings of their own, recorded here in a table of
//! live large blocks (address, size, alignment) kept in its own mapping, so that
//! nothing here allocates. A pointer that is neither (one from before the library
//! was loaded) is ignored by `free` rather than corrupting anything, and counted
//! ([`foreign_frees`]).
//!
//! Failures return null and set `errno` to `ENOMEM` (or `EINVAL` for a bad
//! alignment), as C expects; nothing here panics or unwinds.
//!
//! # Safety
//! The `unsafe fn`s here are the C calls that take a pointer ([`free`],
//! [`realloc`], [`usable_size`], [`posix_memalign`]); each forwards to the
//! allocator's internals (`engine`) and relies on the C contract its caller keeps:
//! - a pointer passed in is null or a live block from this module, not used again
//!   after `free` or a successful `realloc`; such a block is either a mimalloc block
//!   (which [`mi_is_in_heap_region`](libmimalloc_sys::mi_is_in_heap_region) tells
//!   without dereferencing it) or a large block, then the whole mapping the table
//!   records with its size and alignment, the layout `free_large` and `resize` need;
//! - a large block is in the table from its mapping until its unmapping, and the
//!   table's lock is held across a resize, so no other thread can reuse its address
//!   meanwhile;
//! - a large block just made that the table cannot take was never handed out, so
//!   it is unmapped at once;
//! - `posix_memalign`'s `out` is valid for a pointer write.
#![allow(unsafe_code)]

mod table;

use std::alloc::Layout;
use std::ffi::c_void;
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use crate::engine::alloc::alloc_block;
use crate::engine::block::{free_large, resize};
use crate::engine::class::{LARGE_THRESHOLD, is_direct};
use crate::engine::mi::{self, MI_MIN_ALIGN};
use crate::engine::thread_policy::thread_policy;
use crate::sys::errno;
use table::{Entry, Table};

static TABLE: Mutex<Table> = Mutex::new(Table::new());
static FOREIGN_FREES: AtomicU64 = AtomicU64::new(0);

fn table() -> MutexGuard<'static, Table> {
    TABLE.lock().unwrap_or_else(|p| p.into_inner())
}

/// Null with `errno` set to `ENOMEM`.
fn oom() -> *mut c_void {
    errno::set(libc::ENOMEM);
    ptr::null_mut()
}

/// Frees of pointers this allocator never made (ignored).
pub fn foreign_frees() -> u64 {
    FOREIGN_FREES.load(Ordering::Relaxed)
}

/// Large blocks live now.
pub fn live_large_blocks() -> usize {
    table::live()
}

/// Hands out the block `q` of `layout` just made: a large one is entered in `t`
/// (held since before the block was made) first, and given back with null
/// (`ENOMEM`) if the table is full.
fn track(
    t: Option<&mut MutexGuard<'static, Table>>,
    q: NonNull<u8>,
    layout: Layout,
) -> *mut c_void {
    if let Some(t) = t {
        let entry = Entry {
            addr: q.as_ptr() as usize,
            size: layout.size(),
            align: layout.align(),
        };
        if !t.insert(entry) {
            // Cannot be tracked: give it back. After a realloc the old block is
            // gone, so this is the one place where realloc loses data; with a
            // million live large blocks, no program reaches it.
            // SAFETY: a fresh large block of `layout.size()` bytes at `q`, never
            // handed out.
            unsafe { free_large(q.as_ptr(), layout.size()) };
            return oom();
        }
    }
    q.as_ptr().cast()
}

/// Allocates `size` bytes aligned to `align` (a power of two) under the calling
/// thread's policy; null with `errno` set on failure.
fn alloc(size: usize, align: usize, zero: bool) -> *mut c_void {
    let align = align.max(MI_MIN_ALIGN);
    let Ok(layout) = Layout::from_size_align(size.max(1), align) else {
        return oom();
    };
    let mut guard = is_direct(layout.size(), layout.align()).then(table);
    match thread_policy(|p| alloc_block(p, layout, zero)) {
        Ok(p) => track(guard.as_mut(), p, layout),
        Err(_) => oom(),
    }
}

/// `malloc(size)`.
pub fn malloc(size: usize) -> *mut c_void {
    alloc(size, MI_MIN_ALIGN, false)
}

/// `calloc(n, size)`: zeroed; null (`ENOMEM`) when `n * size` overflows.
pub fn calloc(n: usize, size: usize) -> *mut c_void {
    match n.checked_mul(size) {
        Some(total) => alloc(total, MI_MIN_ALIGN, true),
        None => oom(),
    }
}

/// `aligned_alloc(align, size)` / `memalign`: null with `EINVAL` unless `align` is
/// a power of two.
pub fn aligned(align: usize, size: usize) -> *mut c_void {
    if !align.is_power_of_two() {
        errno::set(libc::EINVAL);
        return ptr::null_mut();
    }
    alloc(size, align, false)
}

/// `posix_memalign(out, align, size)`: returns 0, `EINVAL` (alignment not a power
/// of two multiple of `sizeof(void *)`) or `ENOMEM`, and leaves `errno` alone.
///
/// # Safety
/// `out` must be valid for a pointer write.
pub unsafe fn posix_memalign(out: *mut *mut c_void, align: usize, size: usize) -> i32 {
    if !align.is_power_of_two() || !align.is_multiple_of(size_of::<*mut c_void>()) {
        return libc::EINVAL;
    }
    let saved = errno::get();
    let p = alloc(size, align, false);
    errno::set(saved);
    if p.is_null() {
        return libc::ENOMEM;
    }
    // SAFETY: function contract.
    unsafe { out.write(p) };
    0
}

/// `free(p)`.
///
/// # Safety
/// `p` must be null or a live block from this module, not used afterwards.
pub unsafe fn free(p: *mut c_void) {
    let p = p.cast::<u8>();
    if p.is_null() {
        return;
    }
    if mi::is_mimalloc(p) {
        // SAFETY: a live mimalloc block (contract).
        unsafe { mi::free(p) };
        return;
    }
    let removed = table().remove(p as usize);
    match removed {
        // SAFETY: a live large block of `size` bytes, the whole mapping at `p`,
        // now forgotten by the table (contract: not used afterwards).
        Some(e) => unsafe { free_large(p, e.size) },
        None => {
            FOREIGN_FREES.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// `malloc_usable_size(p)`: 0 for null or a pointer not from here.
///
/// # Safety
/// `p` must be null or a live block from this module.
pub unsafe fn usable_size(p: *mut c_void) -> usize {
    let p = p.cast::<u8>();
    if p.is_null() {
        return 0;
    }
    if mi::is_mimalloc(p) {
        // SAFETY: a live mimalloc block (contract).
        return unsafe { mi::usable_size(p) };
    }
    table().find(p as usize).map_or(0, |e| e.size)
}

/// `realloc(p, size)`: glibc's rules (null `p`: malloc; `size` 0: free, null).
///
/// # Safety
/// `p` must be null or a live block from this module; after a non-null return it
/// must not be used.
pub unsafe fn realloc(p: *mut c_void, size: usize) -> *mut c_void {
    if p.is_null() {
        return malloc(size);
    }
    if size == 0 {
        // SAFETY: contract.
        unsafe { free(p) };
        return ptr::null_mut();
    }
    let old = p.cast::<u8>();
    let small = mi::is_mimalloc(old);
    // A large block: hold the table across the resize so that its address cannot
    // be reused by another thread before the table says so.
    let mut guard = (!small || is_direct(size, MI_MIN_ALIGN)).then(table);
    let layout = if small {
        // A small block: its usable size, below the large threshold, is all the
        // caller may have written.
        // SAFETY: a live mimalloc block (contract).
        let have = unsafe { mi::usable_size(old) }.min(LARGE_THRESHOLD - 1);
        Layout::from_size_align(have, MI_MIN_ALIGN)
    } else {
        let found = guard.as_mut().and_then(|t| t.find(old as usize));
        let Some(e) = found else {
            FOREIGN_FREES.fetch_add(1, Ordering::Relaxed);
            return oom();
        };
        Layout::from_size_align(e.size, e.align)
    };
    let Ok(layout) = layout else {
        return oom();
    };
    let Ok(new) = Layout::from_size_align(size, layout.align()) else {
        return oom();
    };
    // SAFETY: `old` is a live block of `layout`: a small one (its usable size) or
    // the large one the table records.
    match thread_policy(|pol| unsafe { resize(pol, old, layout, new, false) }) {
        Ok(q) => {
            if let (false, Some(t)) = (small, guard.as_mut()) {
                t.remove(old as usize);
            }
            let large = guard.as_mut().filter(|_| is_direct(size, layout.align()));
            track(large, q, new)
        }
        Err(_) => oom(),
    }
}

/// The start of the large block containing `addr`, its size: `None` for small
/// blocks and foreign memory. For monitors naming what a sample hit.
pub fn large_block_at(addr: usize) -> Option<(NonNull<u8>, usize)> {
    let e = table().find(addr)?;
    NonNull::new(e.addr as *mut u8).map(|p| (p, e.size))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg_attr(miri, ignore)] // mimalloc and mmap are foreign calls
    fn small_and_large_blocks_round_trip() {
        for &size in &[0usize, 1, 24, 4096, 100_000, LARGE_THRESHOLD, 5 << 20] {
            let p = malloc(size);
            assert!(!p.is_null(), "malloc({size})");
            // SAFETY: a fresh block of at least `size` bytes.
            unsafe { ptr::write_bytes(p.cast::<u8>(), 0xab, size) };
            // SAFETY: live block from here.
            let usable = unsafe { usable_size(p) };
            assert!(usable >= size, "usable {usable} < {size}");
            // SAFETY: live block from here, not used afterwards.
            unsafe { free(p) };
        }
    }

    #[test]
    #[cfg_attr(miri, ignore)] // mimalloc and mmap are foreign calls
    fn calloc_zeroes_and_refuses_overflow() {
        let p = calloc(1000, 8).cast::<u8>();
        assert!(!p.is_null());
        // SAFETY: 8000 fresh bytes, read only here.
        let bytes = unsafe { std::slice::from_raw_parts(p, 8000) };
        assert!(bytes.iter().all(|&b| b == 0));
        // SAFETY: live block.
        unsafe { free(p.cast()) };
        assert!(calloc(usize::MAX, 2).is_null());
    }

    #[test]
    #[cfg_attr(miri, ignore)] // mimalloc and mmap are foreign calls
    fn realloc_keeps_contents_across_small_and_large() {
        let mut p = malloc(100).cast::<u8>();
        {
            // SAFETY: 100 fresh bytes, used only here.
            let bytes = unsafe { std::slice::from_raw_parts_mut(p, 100) };
            for (i, b) in bytes.iter_mut().enumerate() {
                *b = i as u8;
            }
        }
        for &size in &[3 << 20, 200, 8 << 20, 1 << 20, 50] {
            // SAFETY: a live block from here.
            p = unsafe { realloc(p.cast(), size) }.cast();
            assert!(!p.is_null());
            let keep = size.min(100);
            // SAFETY: at least `keep` bytes, read only here.
            let bytes = unsafe { std::slice::from_raw_parts(p, keep) };
            for (i, &b) in bytes.iter().enumerate() {
                assert_eq!(b, i as u8, "byte {i} after realloc to {size}");
            }
        }
        // SAFETY: live block.
        unsafe { free(p.cast()) };
    }

    #[test]
    #[cfg_attr(miri, ignore)] // mimalloc and mmap are foreign calls
    fn aligned_blocks_are_aligned_and_bad_alignments_refused() {
        for &(align, size) in &[
            (64usize, 10usize),
            (4096, 5000),
            (1 << 21, 100),
            (1 << 16, 3 << 20),
        ] {
            let p = aligned(align, size);
            assert!(!p.is_null());
            assert_eq!(p as usize % align, 0, "align {align}");
            // SAFETY: live block.
            unsafe { free(p) };
        }
        assert!(aligned(24, 100).is_null());
        let mut out = ptr::null_mut();
        // SAFETY: `out` is a valid pointer slot.
        assert_eq!(unsafe { posix_memalign(&mut out, 4, 100) }, libc::EINVAL);
        // SAFETY: as above.
        assert_eq!(unsafe { posix_memalign(&mut out, 256, 100) }, 0);
        assert_eq!(out as usize % 256, 0);
        // SAFETY: live block.
        unsafe { free(out) };
    }

    #[test]
    #[cfg_attr(miri, ignore)] // mimalloc and mmap are foreign calls
    fn table_survives_many_large_blocks_freed_in_any_order() {
        let blocks: Vec<_> = (0..300).map(|i| malloc((1 << 20) + i * 4096)).collect();
        assert!(blocks.iter().all(|p| !p.is_null()));
        for (i, &p) in blocks.iter().enumerate() {
            assert_eq!(
                large_block_at(p as usize).map(|(_, s)| s),
                Some((1 << 20) + i * 4096)
            );
        }
        for &p in blocks
            .iter()
            .step_by(2)
            .chain(blocks.iter().skip(1).step_by(2))
        {
            // SAFETY: live blocks, each freed once.
            unsafe { free(p) };
        }
        for &p in &blocks {
            assert!(large_block_at(p as usize).is_none());
        }
    }

    #[test]
    #[cfg_attr(miri, ignore)] // mimalloc and mmap are foreign calls
    fn foreign_pointers_are_ignored_and_counted() {
        let before = foreign_frees();
        let mut x = 5u64;
        // SAFETY: not ours: free must ignore it (documented).
        unsafe { free((&raw mut x).cast()) };
        assert_eq!(foreign_frees(), before + 1);
    }
}
