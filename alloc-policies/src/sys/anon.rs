//! Anonymous mappings for the global allocator: `mmap(2)`, `munmap(2)`,
//! `mprotect(2)`, `mremap(2)` and `madvise(2)`, with errors as `Option`s and never
//! an allocation (everything here runs inside the allocator). Regions use
//! [`super::mman::Mapping`] instead, which reports `io::Error`s.
//!
//! # Safety
//! - A [`FreshMap`] owns the fresh anonymous mapping it made (at an address the
//!   kernel chose, so it overlaps nothing that exists); it unmaps only parts of it
//!   that nothing uses, and exposes its bytes only once [`FreshMap::open`] made it
//!   read-write: [`FreshMap::probe_node`] writes one byte of a page that holds
//!   nothing yet.
//! - [`unmap`] and [`remap`] take ranges the caller must own: they are `unsafe fn`
//!   with a `# Safety` section.
//! - [`no_huge_pages`] only sets a VMA flag: the kernel validates the range and
//!   never reads or writes through it.
//! - [`leak_zeroed`] turns a fresh zeroed mapping into a `&'static mut [T]`: it is
//!   never unmapped and never handed out again, all-zero is a valid `T`
//!   ([`bytemuck::Zeroable`]), and it is aligned to a page, at least `T`'s alignment.
//!
//! # References
//! - <https://man7.org/linux/man-pages/man2/mmap.2.html>
//! - <https://man7.org/linux/man-pages/man2/mprotect.2.html>
//! - <https://man7.org/linux/man-pages/man2/mremap.2.html>
//! - <https://man7.org/linux/man-pages/man2/madvise.2.html>
#![allow(unsafe_code)]

use std::ptr::{self, NonNull};

use super::mman::page_size;

/// `mmap(NULL, len, PROT_NONE, MAP_PRIVATE|MAP_ANONYMOUS|MAP_NORESERVE)`: fresh
/// address space that no page backs and that nothing can touch yet (see
/// [`FreshMap`]). `None` on failure.
fn reserve_anon(len: usize) -> Option<NonNull<u8>> {
    if len == 0 {
        return None;
    }
    // SAFETY: a new anonymous mapping at an address the kernel chooses cannot
    // overlap anything that exists; we pass no fd and no fixed address.
    let p = unsafe {
        libc::mmap(
            ptr::null_mut(),
            len,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        None
    } else {
        NonNull::new(p.cast())
    }
}

/// A fresh anonymous mapping owned by this value: unmapped on drop unless
/// [`FreshMap::into_raw`] hands it over.
///
/// It is made inaccessible (`PROT_NONE`) and stays so until [`FreshMap::open`],
/// which the caller does only once the range's memory policy and huge-page advice
/// are set. A fresh read-write mapping without a policy would be merged by the
/// kernel into an adjacent anonymous mapping of the same flags and no policy (a
/// thread's stack, mimalloc's own memory, a Float block, another thread's fresh
/// range), and until the `mbind` splits it off again, a fault in that neighbour
/// can bring in a transparent huge page for the 2 MiB-aligned block that straddles
/// the boundary: our first or last pages, placed by the faulting thread's policy,
/// and left there by `mbind` (which does not move present pages). khugepaged can
/// do the same. An inaccessible mapping merges only with other inaccessible ones,
/// where nothing can be faulted in; once open, it merges only with neighbours of
/// the same policy and advice, whose huge pages follow that same policy.
#[derive(Debug)]
pub(crate) struct FreshMap {
    start: NonNull<u8>,
    len: usize,
    /// Readable and writable ([`FreshMap::open`] succeeded).
    open: bool,
}

impl FreshMap {
    /// Reserves `len` bytes (a multiple of the page size), inaccessible, starting
    /// on a multiple of `align_pages` pages: over-maps by `align_pages - 1` pages
    /// and unmaps the unused head and tail. `None` if the kernel refuses.
    pub(crate) fn new(len: usize, align_pages: usize) -> Option<FreshMap> {
        let page = page_size();
        let slack = align_pages.checked_sub(1)?.checked_mul(page)?;
        let total = len.checked_add(slack)?;
        let raw = reserve_anon(total)?;
        let pfn = raw.as_ptr() as usize / page;
        let skip = (align_pages - pfn % align_pages) % align_pages * page;
        let start = raw.as_ptr().wrapping_add(skip);
        // SAFETY: the head `[raw, raw + skip)` is a page-aligned part of the mapping
        // made just above, which nothing uses.
        unsafe { unmap(raw.as_ptr(), skip) };
        // SAFETY: so is the tail `[start + len, raw + total)`.
        unsafe { unmap(start.wrapping_add(len), total - skip - len) };
        NonNull::new(start).map(|start| FreshMap {
            start,
            len,
            open: false,
        })
    }

    /// The first byte.
    pub(crate) fn start(&self) -> NonNull<u8> {
        self.start
    }

    /// Makes the whole range readable and writable: call it once its memory policy
    /// (and huge-page advice) is in place. False if the kernel refuses (the range
    /// then stays inaccessible).
    pub(crate) fn open(&mut self) -> bool {
        if !self.open {
            // SAFETY: the range is this live mapping, which is ours and holds
            // nothing yet; mprotect changes only its access rights.
            let ret = unsafe {
                libc::mprotect(
                    self.start.as_ptr().cast(),
                    self.len,
                    libc::PROT_READ | libc::PROT_WRITE,
                )
            };
            self.open = ret == 0;
        }
        self.open
    }

    /// Writes a byte to page `index` of the open range, which faults it in under
    /// the range's memory policy, and returns the node the kernel put it on. The
    /// page is no longer fresh (zero) afterwards: [`FreshMap::keep`] only a range
    /// without it. `None` before [`FreshMap::open`].
    pub(crate) fn probe_node(&self, index: usize) -> Option<u32> {
        let off = index.checked_mul(page_size()).filter(|&o| o < self.len)?;
        if !self.open {
            return None;
        }
        let p = self.start.as_ptr().wrapping_add(off);
        // SAFETY: `p` lies inside this live mapping, which is ours and open
        // (read-write).
        unsafe { p.write_volatile(1) };
        rset::sys::mempolicy::node_of_address(p).ok()
    }

    /// Keeps `[start + head, start + head + len)` (page multiples, inside the
    /// mapping) and unmaps the rest.
    pub(crate) fn keep(self, head: usize, len: usize) -> Option<FreshMap> {
        let page = page_size();
        let end = head.checked_add(len)?;
        if end > self.len || !head.is_multiple_of(page) || !len.is_multiple_of(page) || len == 0 {
            return None;
        }
        let (start, total, open) = (self.start.as_ptr(), self.len, self.open);
        std::mem::forget(self);
        // SAFETY: the head and the tail are page-aligned parts of this mapping,
        // which is ours and which nothing else uses.
        unsafe { unmap(start, head) };
        // SAFETY: as above.
        unsafe { unmap(start.wrapping_add(end), total - end) };
        NonNull::new(start.wrapping_add(head)).map(|start| FreshMap { start, len, open })
    }

    /// Opens the range (if not yet: [`FreshMap::open`]) and gives it up to the
    /// caller, who now owns `[start, start + len)`, readable and writable. `None`
    /// (and the range unmapped) if it cannot be opened.
    pub(crate) fn into_raw(mut self) -> Option<NonNull<u8>> {
        if !self.open() {
            return None;
        }
        let start = self.start;
        std::mem::forget(self);
        Some(start)
    }
}

impl Drop for FreshMap {
    fn drop(&mut self) {
        // SAFETY: the mapping is ours (made by `new`, never handed out).
        unsafe { unmap(self.start.as_ptr(), self.len) };
    }
}

/// `munmap(ptr, len)`.
///
/// # Safety
/// `[ptr, ptr + len)` must be page aligned, lie in mappings this crate made with
/// [`FreshMap`] (or [`remap`]), and nothing may use that memory afterwards.
pub(crate) unsafe fn unmap(ptr: *mut u8, len: usize) {
    if len == 0 {
        return;
    }
    // SAFETY: the caller owns the range and gives it up (function contract).
    unsafe { libc::munmap(ptr.cast(), len) };
}

/// `mremap(ptr, old_len, new_len, MREMAP_MAYMOVE)`: grows or shrinks a mapping,
/// moving it if needed. The pages keep their nodes and the mapping keeps its memory
/// policy. `None` if the kernel refuses (the old mapping is then unchanged), for
/// instance when the range spans several VMAs.
///
/// # Safety
/// `[ptr, ptr + old_len)` must be a mapping this crate made and owns; after success
/// the old address must no longer be used.
pub(crate) unsafe fn remap(ptr: *mut u8, old_len: usize, new_len: usize) -> Option<NonNull<u8>> {
    // SAFETY: the caller owns the old range (function contract); MREMAP_MAYMOVE lets
    // the kernel pick a new, non-overlapping place.
    let p = unsafe { libc::mremap(ptr.cast(), old_len, new_len, libc::MREMAP_MAYMOVE) };
    if p == libc::MAP_FAILED {
        None
    } else {
        NonNull::new(p.cast())
    }
}

/// `madvise(ptr, len, MADV_NOHUGEPAGE)`: keep the range in base pages, so that a
/// page-granular placement (stripes, interleave) is not undone by a 2 MiB THP, and
/// so that a range without a policy (Float) never shares a huge page with a
/// neighbour it was merged with. Advice only: it changes neither contents nor
/// placement of present pages. Ignored where the kernel has no THP.
pub(crate) fn no_huge_pages(ptr: *const u8, len: usize) {
    // SAFETY: MADV_NOHUGEPAGE only sets a VMA flag; the kernel validates the range
    // and never reads or writes through it.
    unsafe { libc::madvise(ptr.cast_mut().cast(), len, libc::MADV_NOHUGEPAGE) };
}

/// `n` zeroed `T`s in a fresh read-write anonymous mapping, pages committed lazily
/// (`MAP_NORESERVE`), never freed; `None` if the kernel refuses.
pub(crate) fn leak_zeroed<T: bytemuck::Zeroable>(n: usize) -> Option<&'static mut [T]> {
    let bytes = n.checked_mul(size_of::<T>())?.max(1);
    let page = page_size();
    if align_of::<T>() > page {
        return None;
    }
    let mut map = FreshMap::new(bytes.checked_next_multiple_of(page)?, 1)?;
    if !map.open() {
        return None;
    }
    let p = map.into_raw()?;
    // SAFETY: `p` starts a fresh, zeroed, read-write mapping of at least
    // `n * size_of::<T>()` bytes, page aligned (so aligned for T), that nothing
    // else can reach and that is never unmapped; all-zero bytes are a valid T.
    Some(unsafe { std::slice::from_raw_parts_mut(p.as_ptr().cast::<T>(), n) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg_attr(miri, ignore)] // mmap with PROT_NONE and mprotect are not emulated
    fn fresh_maps_align_keep_and_open() {
        let page = page_size();
        let map = FreshMap::new(8 * page, 4).unwrap();
        assert_eq!(map.start().as_ptr() as usize % (4 * page), 0);
        let mut kept = map.keep(2 * page, 4 * page).unwrap();
        assert!(kept.open());
        let p = kept.into_raw().unwrap();
        // SAFETY: the 4 pages at `p` are ours and open.
        unsafe { p.as_ptr().write(7) };
        // SAFETY: they are ours and nothing uses them afterwards.
        unsafe { unmap(p.as_ptr(), 4 * page) };
        let table = leak_zeroed::<u64>(1000).unwrap();
        assert!(table.iter().all(|&x| x == 0));
    }
}
