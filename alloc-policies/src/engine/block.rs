//! Giving a block back and resizing it: [`free_block`], [`free_large`] and
//! [`resize`], the one resize behind `GlobalAlloc::realloc`, allocator-api2's
//! `grow`, `grow_zeroed` and `shrink`, and the C `realloc`.
//!
//! # Safety
//! Every function here takes a block the caller vouches for (`unsafe fn` with a
//! `# Safety` section): a live block of this allocator, made for the layout given.
//! From the layout alone ([`is_direct`]) a block is known to be either a mimalloc
//! block (small) or the whole mapping `[ptr, ptr + size rounded up to pages)` that
//! [`map_large`](super::place::map_large) made or `mremap` resized (direct), which
//! is what `mi_free`, `mi_realloc`, `munmap` and `mremap` need. When a block moves,
//! the new one is distinct from the old, and at least as long as the bytes copied;
//! zeroing writes only inside the new block.

#![allow(unsafe_code)]

use std::alloc::Layout;
use std::ptr::{self, NonNull};

use super::alloc::{alloc_block, allocate, dangling, small_heap};
use super::class::is_direct;
use super::mi;
use super::place::may_grow_by_remap;
use super::record;
use crate::error::NumaAllocError;
use crate::policy::Policy;
use crate::sys::anon::{remap, unmap};
use crate::sys::mman::page_size;

/// Frees a non-zero-sized block.
///
/// # Safety
/// `ptr` must be a live block from this allocator made for `layout`, not used
/// afterwards.
#[inline(always)]
pub(crate) unsafe fn free_block(ptr: *mut u8, layout: Layout) {
    if is_direct(layout.size(), layout.align()) {
        // SAFETY: a direct block is a whole mapping (function contract).
        unsafe { free_large(ptr, layout.size()) }
    } else {
        // SAFETY: a small block comes from mimalloc (function contract).
        unsafe { mi::free(ptr) }
    }
}

/// Unmaps a large block.
///
/// # Safety
/// `ptr` must be the start of a live large block of `size` bytes, not used
/// afterwards.
#[cold]
#[inline(never)]
pub(crate) unsafe fn free_large(ptr: *mut u8, size: usize) {
    record::large_unmapped(ptr, None);
    let len = size.next_multiple_of(page_size());
    // SAFETY: the block is the whole mapping `[ptr, ptr + len)` that map_large made
    // (or remap resized); the caller gives it up.
    unsafe { unmap(ptr, len) }
}

/// Resizes the block at `ptr`, made for `old`, to the layout `new`, keeping its
/// contents up to the smaller size: in place when it can (a small block within
/// mimalloc's size class, a large one by `mremap`), else by a new block under
/// `policy`. A zero-sized `old` is allocated afresh; a zero-sized `new` frees the
/// block and gives a dangling pointer. With `zero`, the bytes from `old.size()` to
/// `new.size()` read as zero. The old block stays valid on failure.
///
/// # Safety
/// Unless `old` is zero-sized, `ptr` must be a live block from this allocator made
/// for `old`; after success it must not be used.
pub(crate) unsafe fn resize(
    policy: Option<&Policy>,
    ptr: *mut u8,
    old: Layout,
    new: Layout,
    zero: bool,
) -> Result<NonNull<u8>, NumaAllocError> {
    if old.size() == 0 {
        return allocate(policy, new, zero);
    }
    if new.size() == 0 {
        // SAFETY: a live non-zero-sized block for `old`, given up (contract).
        unsafe { free_block(ptr, old) };
        return Ok(dangling(new.align()));
    }
    let q = if old.align() == new.align() {
        // SAFETY: a live non-zero-sized block for `old` (contract).
        unsafe { resize_aligned(policy, ptr, old, new) }?
    } else {
        // SAFETY: as above.
        unsafe { move_block(policy, ptr, old, new) }?
    };
    if zero && new.size() > old.size() {
        // Fresh mappings are zero already: clear only what mimalloc may have reused,
        // or the stale end of a mapping's last page after an earlier shrink.
        let end = if is_direct(new.size(), new.align()) {
            old.size().next_multiple_of(page_size()).min(new.size())
        } else {
            new.size()
        };
        let tail = q.as_ptr().wrapping_add(old.size());
        // SAFETY: `[old.size(), end)` lies inside the new block of `new.size()` bytes.
        unsafe { ptr::write_bytes(tail, 0, end - old.size()) };
    }
    Ok(q)
}

/// [`resize`] of a non-zero-sized block to a non-zero size of the same alignment.
///
/// # Safety
/// As [`resize`], with `old` and `new` of the same alignment and not zero-sized.
unsafe fn resize_aligned(
    policy: Option<&Policy>,
    ptr: *mut u8,
    old: Layout,
    new: Layout,
) -> Result<NonNull<u8>, NumaAllocError> {
    let (align, new_size) = (old.align(), new.size());
    let oom = NumaAllocError::OutOfMemory {
        size: new_size,
        align,
    };
    let (old_direct, new_direct) = (is_direct(old.size(), align), is_direct(new_size, align));
    if !old_direct && !new_direct {
        let q = match small_heap(policy)? {
            // SAFETY: `ptr` is a live mimalloc block of alignment `align` (contract).
            Some(heap) => unsafe { heap.realloc(ptr, new_size, align) },
            // SAFETY: as above.
            None => unsafe { mi::default_realloc(ptr, new_size, align) },
        };
        return NonNull::new(q).ok_or(oom);
    }
    let page = page_size();
    if old_direct && new_direct && align <= page {
        let old_len = old.size().next_multiple_of(page);
        let new_len = new_size.checked_next_multiple_of(page).ok_or(oom)?;
        if old_len == new_len {
            return NonNull::new(ptr).ok_or(oom);
        }
        if new_len < old_len || may_grow_by_remap(ptr) {
            // SAFETY: the block is the whole mapping `[ptr, ptr + old_len)`
            // (contract); on success we return the new address and never use the
            // old one.
            if let Some(q) = unsafe { remap(ptr, old_len, new_len) } {
                record::large_unmapped(ptr, Some((q, new_size)));
                return Ok(q);
            }
        }
    }
    // SAFETY: as this function's contract.
    unsafe { move_block(policy, ptr, old, new) }
}

/// Moves a block into a new one for `new` under `policy`: allocates, copies the
/// common bytes, frees the old block.
///
/// # Safety
/// `ptr` must be a live non-zero-sized block for `old`; `new` is not zero-sized.
unsafe fn move_block(
    policy: Option<&Policy>,
    ptr: *mut u8,
    old: Layout,
    new: Layout,
) -> Result<NonNull<u8>, NumaAllocError> {
    let q = alloc_block(policy, new, false)?;
    // SAFETY: both blocks are live, distinct, and at least `min(old, new)` long.
    unsafe { ptr::copy_nonoverlapping(ptr, q.as_ptr(), old.size().min(new.size())) };
    // SAFETY: the old block is ours for `old` (contract) and no longer used.
    unsafe { free_block(ptr, old) };
    Ok(q)
}
