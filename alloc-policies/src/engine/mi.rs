//! mimalloc under [`crate::NumaAlloc`]: exclusive arenas made from memory this
//! crate mapped, one heap per arena ([`Heap`]), mimalloc's default heap (Float),
//! and the thread's one-entry CPU-to-heap cache ([`CpuHeapCache`]).
//!
//! # Safety
//! - **Heaps.** A [`Heap`] can only be made from `mi_heap_new_in_arena` and is never
//!   deleted, so every `Heap` is live for the rest of the process; [`HeapSlot`] and
//!   [`CpuHeapCache`] store only such pointers. mimalloc v3 heaps may be used and
//!   freed into from any thread (all per-thread state lives in the `theap` mimalloc
//!   looks up for the calling thread), hence `Send` and `Sync`.
//! - **Allocation.** `mi_heap_malloc`/`mi_malloc` and the `zalloc` variants take any
//!   size; the `_aligned` variants check that the alignment is a power of two and
//!   return null otherwise. Neither ever enters Rust's global allocator.
//! - **Blocks.** Functions that take a block ([`Heap::realloc`], [`default_realloc`],
//!   [`free`], [`usable_size`]) are `unsafe fn`: the block must be a live mimalloc
//!   block (of the alignment given). [`is_mimalloc`] only compares an address with
//!   mimalloc's own maps and never dereferences it.
//! - **Arenas.** [`Heap::new_arena`] hands mimalloc a fresh, zero, read-write
//!   mapping aligned to [`MI_ARENA_ALIGN`] that nothing else can reach, and never
//!   touches, unmaps or reuses it once mimalloc took it.
//! - **Cache.** [`CpuHeapCache`] keeps a heap pointer next to the CPU it was cached
//!   for; the pointer is non-null (a live heap) whenever the CPU is not
//!   `CpuHeapCache::EMPTY`, a value no CPU number read from rseq takes.
#![allow(unsafe_code)]

use std::cell::Cell;
use std::ffi::c_void;
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicPtr, Ordering};

use libmimalloc_sys as mi;

use crate::sys::anon::{FreshMap, unmap};
use crate::sys::cpu::CpuIdSource;
use crate::sys::mman::page_size;

/// The alignment every mimalloc block of at least that size already has
/// (`MI_MAX_ALIGN_SIZE`); smaller blocks are aligned to their size class.
pub(crate) const MI_MIN_ALIGN: usize = 16;

/// The largest alignment an exclusive mimalloc arena can serve
/// (`MI_PAGE_MAX_OVERALLOC_ALIGN`, 64 KiB): beyond it mimalloc would fall back to
/// OS memory, which an exclusive heap refuses.
pub(crate) const MI_MAX_ARENA_ALIGN: usize = 64 << 10;

/// Arenas must start on a slice boundary (`MI_ARENA_SLICE_ALIGN`, 64 KiB).
pub(crate) const MI_ARENA_ALIGN: usize = 64 << 10;

/// One mimalloc arena covers at most this much (`MI_ARENA_MAX_SIZE`, 16 GiB); larger
/// managed areas are split into sub-arenas, of which a process may have only 160.
pub(crate) const MI_ARENA_MAX: usize = 16 << 30;

/// The smallest area mimalloc accepts as an arena (`MI_ARENA_MIN_SIZE`, 32 MiB).
pub(crate) const MI_ARENA_MIN: usize = 32 << 20;

/// Truth that a block of `size` bytes aligned to `align` needs an aligned call:
/// mimalloc's plain calls align to [`MI_MIN_ALIGN`] or to the size class.
#[inline(always)]
fn plain_aligned(size: usize, align: usize) -> bool {
    align <= MI_MIN_ALIGN && align <= size
}

/// A mimalloc arena made from memory this crate mapped.
#[derive(Debug, Clone, Copy)]
struct ArenaId(mi::mi_arena_id_t);

/// Hands `[start, start + len)` to mimalloc as an exclusive arena
/// (`mi_manage_os_memory_ex(.., is_committed = true, is_pinned = false,
/// is_zero = true, numa_node = -1, exclusive = true, ..)`): only heaps made for it
/// with [`Heap::new_in`] allocate there, and mimalloc never asks the OS for more on
/// their behalf.
///
/// # Safety
/// The range must be a fresh read-write anonymous mapping this crate made (so it is
/// zero and committed), aligned to [`MI_ARENA_ALIGN`], and must never be unmapped or
/// used by anything else afterwards: mimalloc owns it for the rest of the process.
unsafe fn manage_arena(start: NonNull<u8>, len: usize) -> Option<ArenaId> {
    let mut id: mi::mi_arena_id_t = ptr::null_mut();
    // SAFETY: the range is ours, mapped, zero, aligned and given up for good
    // (function contract); `id` is a live out-parameter.
    let ok = unsafe {
        mi::mi_manage_os_memory_ex(
            start.as_ptr().cast::<c_void>(),
            len,
            true,
            false,
            true,
            -1,
            true,
            &mut id,
        )
    };
    ok.then_some(ArenaId(id))
}

/// A mimalloc (v3) heap that allocates only in one exclusive arena. mimalloc gives
/// every thread that uses it its own thread-local `theap` (the thread cache); the
/// heap itself may be used from any thread. Heaps are never deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Heap(NonNull<mi::mi_heap_t>);

// SAFETY: mimalloc v3 heaps are "first-class: can allocate from any thread (and be
// freed from any thread)" (mimalloc.h); all per-thread state lives in theaps that
// mimalloc looks up for the calling thread.
unsafe impl Send for Heap {}
// SAFETY: as for Send: every operation on a heap is thread-safe in mimalloc v3.
unsafe impl Sync for Heap {}

impl Heap {
    /// `mi_heap_new_in_arena(arena)`. `None` if mimalloc cannot make the heap.
    fn new_in(arena: ArenaId) -> Option<Heap> {
        // SAFETY: `arena` came from a successful mi_manage_os_memory_ex; the call
        // allocates the heap's own record from mimalloc's main heap, not from us.
        let h = unsafe { mi::mi_heap_new_in_arena(arena.0) };
        NonNull::new(h).map(Heap)
    }

    /// Makes an exclusive mimalloc arena of `len` bytes (a multiple of 32 MiB) and
    /// a heap for it: reserves the range aligned for mimalloc, lets `place` set its
    /// memory policy while nothing can touch it (returning false aborts), opens it
    /// and hands it to mimalloc for good. `None` if any step fails (the range is
    /// then unmapped, unless mimalloc already owns it).
    pub(crate) fn new_arena(
        len: usize,
        place: impl FnOnce(NonNull<u8>, usize) -> bool,
    ) -> Option<Heap> {
        let map = FreshMap::new(len, (MI_ARENA_ALIGN / page_size()).max(1))?;
        if !place(map.start(), len) {
            return None;
        }
        let start = map.into_raw()?;
        // SAFETY: `[start, start + len)` is the fresh, zero, read-write mapping made
        // above, aligned to MI_ARENA_ALIGN; after success we never touch, unmap or
        // reuse it again.
        match unsafe { manage_arena(start, len) } {
            Some(arena) => Heap::new_in(arena),
            None => {
                // SAFETY: mimalloc refused the range, so it is still ours alone.
                unsafe { unmap(start.as_ptr(), len) };
                None
            }
        }
    }

    /// A block of `size` bytes aligned to `align` (a power of two), or null.
    #[inline]
    pub(crate) fn alloc(self, size: usize, align: usize, zero: bool) -> *mut u8 {
        let h = self.0.as_ptr();
        // SAFETY (all four): `h` is a live heap (type invariant); the aligned
        // variants check that `align` is a power of two and return null otherwise.
        let p = match (plain_aligned(size, align), zero) {
            // SAFETY: see above.
            (true, false) => unsafe { mi::mi_heap_malloc(h, size) },
            // SAFETY: see above.
            (true, true) => unsafe { mi::mi_heap_zalloc(h, size) },
            // SAFETY: see above.
            (false, false) => unsafe { mi::mi_heap_malloc_aligned(h, size, align) },
            // SAFETY: see above.
            (false, true) => unsafe { mi::mi_heap_zalloc_aligned(h, size, align) },
        };
        p.cast()
    }

    /// Resizes a block to `new_size` bytes (same alignment), in place when it fits,
    /// otherwise by a new block from this heap. Null on failure (the old block is
    /// then untouched).
    ///
    /// # Safety
    /// `p` must be a live mimalloc block, allocated with alignment `align`.
    #[inline]
    pub(crate) unsafe fn realloc(self, p: *mut u8, new_size: usize, align: usize) -> *mut u8 {
        let h = self.0.as_ptr();
        let q = if plain_aligned(new_size, align) {
            // SAFETY: `h` is live (type invariant), `p` is a live mimalloc block
            // (function contract).
            unsafe { mi::mi_heap_realloc(h, p.cast(), new_size) }
        } else {
            // SAFETY: as above.
            unsafe { mi::mi_heap_realloc_aligned(h, p.cast(), new_size, align) }
        };
        q.cast()
    }
}

/// A block from mimalloc's default (main) heap, placed by first touch: the Float
/// policy. Null on failure.
#[inline]
pub(crate) fn default_alloc(size: usize, align: usize, zero: bool) -> *mut u8 {
    // SAFETY (all four): the default heap always exists; the aligned variants
    // reject a non-power-of-two alignment with null.
    let p = match (plain_aligned(size, align), zero) {
        // SAFETY: see above.
        (true, false) => unsafe { mi::mi_malloc(size) },
        // SAFETY: see above.
        (true, true) => unsafe { mi::mi_zalloc(size) },
        // SAFETY: see above.
        (false, false) => unsafe { mi::mi_malloc_aligned(size, align) },
        // SAFETY: see above.
        (false, true) => unsafe { mi::mi_zalloc_aligned(size, align) },
    };
    p.cast()
}

/// [`Heap::realloc`] for the default heap.
///
/// # Safety
/// `p` must be a live mimalloc block, allocated with alignment `align`.
#[inline]
pub(crate) unsafe fn default_realloc(p: *mut u8, new_size: usize, align: usize) -> *mut u8 {
    let q = if plain_aligned(new_size, align) {
        // SAFETY: `p` is a live mimalloc block (function contract).
        unsafe { mi::mi_realloc(p.cast(), new_size) }
    } else {
        // SAFETY: as above.
        unsafe { mi::mi_realloc_aligned(p.cast(), new_size, align) }
    };
    q.cast()
}

/// `mi_free(p)`: returns a block of any mimalloc heap, from any thread.
///
/// # Safety
/// `p` must be a live block from mimalloc, not used afterwards.
#[inline]
pub(crate) unsafe fn free(p: *mut u8) {
    // SAFETY: function contract.
    unsafe { mi::mi_free(p.cast()) }
}

/// `mi_is_in_heap_region(p)`: truth that `p` lies in memory mimalloc manages (a
/// small block of any heap), as opposed to a large block mapped directly.
#[inline]
pub(crate) fn is_mimalloc(p: *const u8) -> bool {
    // SAFETY: the call only compares `p` with mimalloc's own maps; it never
    // dereferences it.
    unsafe { mi::mi_is_in_heap_region(p.cast()) }
}

/// `mi_usable_size(p)`: the bytes a mimalloc block really has.
///
/// # Safety
/// `p` must be a live mimalloc block.
#[inline]
pub(crate) unsafe fn usable_size(p: *const u8) -> usize {
    // SAFETY: function contract.
    unsafe { mi::mi_usable_size(p.cast()) }
}

/// An atomic cell holding either nothing or a [`Heap`].
pub(crate) struct HeapSlot(AtomicPtr<mi::mi_heap_t>);

impl HeapSlot {
    /// An empty slot.
    pub(crate) const fn empty() -> HeapSlot {
        HeapSlot(AtomicPtr::new(ptr::null_mut()))
    }

    /// The heap, once [`HeapSlot::set`] has stored one.
    #[inline]
    pub(crate) fn get(&self) -> Option<Heap> {
        NonNull::new(self.0.load(Ordering::Acquire)).map(Heap)
    }

    /// Stores `heap` (publishing it to every thread).
    pub(crate) fn set(&self, heap: Heap) {
        self.0.store(heap.0.as_ptr(), Ordering::Release);
    }
}

/// A thread's one-entry cache from "the CPU I run on" to "the heap of its node":
/// the whole fast path of Local is one read of the rseq `cpu_id` through `src`, one
/// compare with `cpu`, and `heap`.
///
/// Invariant: unless `cpu` is [`CpuHeapCache::EMPTY`], `heap` is a live heap.
/// `EMPTY` is no value `cpu_id` takes (CPU numbers are below 2^31; the kernel's
/// "unregistered" values are -1 and -2).
pub(crate) struct CpuHeapCache {
    src: Cell<CpuIdSource>,
    cpu: Cell<u32>,
    heap: Cell<*mut mi::mi_heap_t>,
}

impl CpuHeapCache {
    /// The `cpu` of an empty cache.
    const EMPTY: u32 = 1 << 31;

    /// An empty cache.
    pub(crate) const fn new() -> CpuHeapCache {
        CpuHeapCache {
            src: Cell::new(CpuIdSource::none()),
            cpu: Cell::new(Self::EMPTY),
            heap: Cell::new(ptr::null_mut()),
        }
    }

    /// The cached heap, if the thread still runs on the CPU it was cached for.
    #[inline(always)]
    pub(crate) fn get(&self) -> Option<Heap> {
        let now = self.src.get().read() as u32;
        if now == self.cpu.get() {
            // SAFETY: `now` is not EMPTY (no cpu_id value is), so `cpu` is not
            // either, and by the invariant `heap` is a live, non-null heap.
            Some(Heap(unsafe { NonNull::new_unchecked(self.heap.get()) }))
        } else {
            None
        }
    }

    /// Caches `heap` for `cpu`, which the thread ran on just now. Must be called
    /// by the thread that owns the cache (it records that thread's rseq area).
    pub(crate) fn set(&self, cpu: u32, heap: Heap) {
        if cpu < Self::EMPTY {
            self.heap.set(heap.0.as_ptr());
            self.cpu.set(cpu);
            if let Some(src) = CpuIdSource::this_thread() {
                self.src.set(src);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_cache_never_hits() {
        let cache = CpuHeapCache::new();
        assert!(cache.get().is_none());
    }

    #[test]
    fn plain_calls_serve_small_alignments_only() {
        assert!(plain_aligned(24, 8));
        assert!(plain_aligned(64, 16));
        assert!(!plain_aligned(8, 16));
        assert!(!plain_aligned(4096, 64));
    }
}
