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
#![allow(unsafe_code)]

use std::alloc::Layout;
use std::ffi::c_void;
use std::ptr::{self, NonNull};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crate::arena::{LARGE_THRESHOLD, is_direct};
use crate::arena_sys::{self, MI_MIN_ALIGN};
use crate::global::{alloc_block, free_large, resize_block, thread_policy};

/// Slots in the table of live large blocks (a power of two). Each holds one live
/// block; a process with more live large blocks than this (at least 1 MiB each,
/// so a petabyte) gets null from further large allocations.
const SLOTS: usize = 1 << 20;

/// One live large block.
#[derive(Clone, Copy)]
struct Entry {
    addr: usize,
    size: usize,
    align: usize,
}

/// Live large blocks: open addressing with linear probing and backward-shift
/// deletion (no tombstones), under a lock: large blocks cost a system call each,
/// which dwarfs the lock.
struct Table {
    slots: *mut Entry,
}

// SAFETY: the table's memory is only touched while the lock around it is held.
unsafe impl Send for Table {}

static TABLE: Mutex<Table> = Mutex::new(Table {
    slots: ptr::null_mut(),
});
static FOREIGN_FREES: AtomicU64 = AtomicU64::new(0);
static LIVE_LARGE: AtomicUsize = AtomicUsize::new(0);

impl Table {
    /// The slots, mapped on first use; `None` if the kernel refuses the mapping.
    fn slots(&mut self) -> Option<&mut [Entry]> {
        if self.slots.is_null() {
            let p = arena_sys::map_table(SLOTS * size_of::<Entry>())?;
            self.slots = p.as_ptr().cast();
        }
        // SAFETY: `slots` is a private zeroed mapping of SLOTS entries (an all-zero
        // Entry is a valid empty slot), made once and never freed; the lock
        // around `self` makes this the only reference.
        Some(unsafe { std::slice::from_raw_parts_mut(self.slots, SLOTS) })
    }

    fn home(addr: usize) -> usize {
        ((addr >> 12).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - SLOTS.trailing_zeros()))
            & (SLOTS - 1)
    }

    fn insert(&mut self, e: Entry) -> bool {
        let Some(slots) = self.slots() else {
            return false;
        };
        let mut i = Self::home(e.addr);
        for _ in 0..SLOTS {
            if slots[i].addr == 0 {
                slots[i] = e;
                LIVE_LARGE.fetch_add(1, Ordering::Relaxed);
                return true;
            }
            i = (i + 1) & (SLOTS - 1);
        }
        false
    }

    fn find(&mut self, addr: usize) -> Option<(usize, Entry)> {
        let slots = self.slots()?;
        let mut i = Self::home(addr);
        for _ in 0..SLOTS {
            match slots[i].addr {
                0 => return None,
                a if a == addr => return Some((i, slots[i])),
                _ => i = (i + 1) & (SLOTS - 1),
            }
        }
        None
    }

    fn remove(&mut self, addr: usize) -> Option<Entry> {
        let (mut hole, found) = self.find(addr)?;
        let slots = self.slots()?;
        // Backward-shift deletion: move later entries of the run into the hole
        // when their home is not between the hole and them.
        let mut j = hole;
        loop {
            j = (j + 1) & (SLOTS - 1);
            if slots[j].addr == 0 {
                break;
            }
            let home = Self::home(slots[j].addr);
            let between = if hole <= j {
                hole < home && home <= j
            } else {
                hole < home || home <= j
            };
            if !between {
                slots[hole] = slots[j];
                hole = j;
            }
        }
        slots[hole] = Entry {
            addr: 0,
            size: 0,
            align: 0,
        };
        LIVE_LARGE.fetch_sub(1, Ordering::Relaxed);
        Some(found)
    }
}

fn table() -> std::sync::MutexGuard<'static, Table> {
    TABLE.lock().unwrap_or_else(|p| p.into_inner())
}

fn errno_slot() -> *mut i32 {
    // SAFETY: __errno_location has no preconditions; it returns the calling
    // thread's errno slot, valid for the thread's life.
    unsafe { libc::__errno_location() }
}

fn set_errno(e: i32) {
    // SAFETY: the calling thread's errno slot (errno_slot).
    unsafe { errno_slot().write(e) };
}

/// Frees of pointers this allocator never made (ignored).
pub fn foreign_frees() -> u64 {
    FOREIGN_FREES.load(Ordering::Relaxed)
}

/// Large blocks live now.
pub fn live_large_blocks() -> usize {
    LIVE_LARGE.load(Ordering::Relaxed)
}

/// Allocates `size` bytes aligned to `align` (a power of two) under the calling
/// thread's policy; null with `errno` set on failure.
fn alloc(size: usize, align: usize, zero: bool) -> *mut c_void {
    let align = align.max(MI_MIN_ALIGN);
    let Ok(layout) = Layout::from_size_align(size.max(1), align) else {
        set_errno(libc::ENOMEM);
        return ptr::null_mut();
    };
    let direct = is_direct(layout.size(), layout.align());
    let mut guard = direct.then(table);
    match thread_policy(|p| alloc_block(p, layout, zero)) {
        Ok(p) => {
            if let Some(t) = guard.as_mut() {
                let entry = Entry {
                    addr: p.as_ptr() as usize,
                    size: layout.size(),
                    align: layout.align(),
                };
                if !t.insert(entry) {
                    // SAFETY: the block was just mapped for `layout.size()` bytes
                    // and was never handed out.
                    unsafe { free_large(p.as_ptr(), layout.size()) };
                    set_errno(libc::ENOMEM);
                    return ptr::null_mut();
                }
            }
            p.as_ptr().cast()
        }
        Err(_) => {
            set_errno(libc::ENOMEM);
            ptr::null_mut()
        }
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
        None => {
            set_errno(libc::ENOMEM);
            ptr::null_mut()
        }
    }
}

/// `aligned_alloc(align, size)` / `memalign`: null with `EINVAL` unless `align` is
/// a power of two.
pub fn aligned(align: usize, size: usize) -> *mut c_void {
    if !align.is_power_of_two() {
        set_errno(libc::EINVAL);
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
    // SAFETY: the calling thread's errno slot (errno_slot).
    let saved = unsafe { errno_slot().read() };
    let p = alloc(size, align, false);
    set_errno(saved);
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
    if arena_sys::is_mimalloc(p) {
        // SAFETY: a live mimalloc block (contract).
        unsafe { arena_sys::free(p) };
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
    if arena_sys::is_mimalloc(p) {
        // SAFETY: a live mimalloc block (contract).
        return unsafe { arena_sys::usable_size(p) };
    }
    table().find(p as usize).map_or(0, |(_, e)| e.size)
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
    let oom = || {
        set_errno(libc::ENOMEM);
        ptr::null_mut()
    };
    if arena_sys::is_mimalloc(old) {
        // A small block: its usable size, below the large threshold, is all the
        // caller may have written.
        // SAFETY: a live mimalloc block (contract).
        let have = unsafe { arena_sys::usable_size(old) }.min(LARGE_THRESHOLD - 1);
        let Ok(layout) = Layout::from_size_align(have, MI_MIN_ALIGN) else {
            return oom();
        };
        let mut guard = is_direct(size, MI_MIN_ALIGN).then(table);
        // SAFETY: `old` is a live small block; `layout` describes it as a small one.
        return match thread_policy(|pol| unsafe { resize_block(pol, old, layout, size) }) {
            Ok(q) => {
                if let Some(t) = guard.as_mut() {
                    let e = Entry {
                        addr: q.as_ptr() as usize,
                        size,
                        align: MI_MIN_ALIGN,
                    };
                    if !t.insert(e) {
                        // Cannot be tracked: give it back; the old block is gone,
                        // so this is the one place where realloc loses data. With
                        // a million live large blocks, no program reaches it.
                        // SAFETY: a fresh large block of `size` bytes at `q`.
                        unsafe { free_large(q.as_ptr(), size) };
                        return oom();
                    }
                }
                q.as_ptr().cast()
            }
            Err(_) => oom(),
        };
    }
    // A large block: hold the table across the resize so that its address cannot
    // be reused by another thread before the table says so.
    let mut t = table();
    let Some((_, e)) = t.find(old as usize) else {
        FOREIGN_FREES.fetch_add(1, Ordering::Relaxed);
        return oom();
    };
    let Ok(layout) = Layout::from_size_align(e.size, e.align) else {
        return oom();
    };
    // SAFETY: `old` is the live large block of `layout` (table entry).
    match thread_policy(|pol| unsafe { resize_block(pol, old, layout, size) }) {
        Ok(q) => {
            t.remove(old as usize);
            if is_direct(size, e.align) {
                let entry = Entry {
                    addr: q.as_ptr() as usize,
                    size,
                    align: e.align,
                };
                if !t.insert(entry) {
                    // SAFETY: a live large block of `size` bytes at `q`.
                    unsafe { free_large(q.as_ptr(), size) };
                    return oom();
                }
            }
            q.as_ptr().cast()
        }
        Err(_) => oom(),
    }
}

/// The start of the large block containing `addr`, its size: `None` for small
/// blocks and foreign memory. For monitors naming what a sample hit.
pub fn large_block_at(addr: usize) -> Option<(NonNull<u8>, usize)> {
    let mut t = table();
    let (_, e) = t.find(addr)?;
    NonNull::new(e.addr as *mut u8).map(|p| (p, e.size))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
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
    fn foreign_pointers_are_ignored_and_counted() {
        let before = foreign_frees();
        let mut x = 5u64;
        // SAFETY: not ours: free must ignore it (documented).
        unsafe { free((&raw mut x).cast()) };
        assert_eq!(foreign_frees(), before + 1);
    }
}
