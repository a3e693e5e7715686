//! Anonymous memory mappings: `mmap(2)`, `munmap(2)`, `madvise(2)`, `mlock(2)`,
//! `getrlimit(2)`.
//!
//! # Safety
//!
//! [`Mapping`] owns one private anonymous read-write mapping, as a `Box<[u8]>`
//! owns its heap block: it is created here, never shared with another owner, and
//! unmapped exactly once on drop. Every method that exposes the bytes borrows the
//! `Mapping` (shared for reads, exclusive for writes), so the usual aliasing rules
//! hold. The advice it can give ([`Advice`]) and `mlock` never change what the
//! memory holds (they only decide how and where it is backed), so they take
//! `&self`; the one call that does ([`Mapping::discard`], `MADV_DONTNEED`) takes
//! `&mut self`. Moving pages between nodes (`mbind`, `move_pages`) preserves their
//! contents, so the callers may do it while slices are borrowed.
//!
//! # References
//! - <https://man7.org/linux/man-pages/man2/mmap.2.html>
//! - <https://man7.org/linux/man-pages/man2/madvise.2.html>
//! - <https://man7.org/linux/man-pages/man2/mlock.2.html>
//! - <https://man7.org/linux/man-pages/man2/getrlimit.2.html>
#![allow(unsafe_code)]

use std::ffi::{c_int, c_void};
use std::io;
use std::ptr::NonNull;
use std::sync::OnceLock;

/// The base page size (`sysconf(_SC_PAGESIZE)`), read once.
pub fn page_size() -> usize {
    static PAGE: OnceLock<usize> = OnceLock::new();
    *PAGE.get_or_init(|| {
        // SAFETY: sysconf has no preconditions.
        let raw = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        if raw > 0 { raw as usize } else { 4096 }
    })
}

/// Advice that changes how a range is backed, never what it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Advice {
    /// `MADV_NOHUGEPAGE`: back the range with base pages only (no transparent huge
    /// pages, and khugepaged leaves it alone).
    NoHugePage,
    /// `MADV_POPULATE_WRITE` (Linux 5.14): fault every page in, writable, as a
    /// write would, under the memory policy in force. `EINVAL` on older kernels.
    PopulateWrite,
}

impl Advice {
    fn raw(self) -> c_int {
        match self {
            Advice::NoHugePage => libc::MADV_NOHUGEPAGE,
            Advice::PopulateWrite => libc::MADV_POPULATE_WRITE,
        }
    }
}

/// One private anonymous read-write mapping, unmapped on drop.
///
/// Its start is page aligned, and aligned further when asked
/// ([`Mapping::anonymous`]); its length is a whole number of pages.
#[derive(Debug)]
pub struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: a Mapping owns its memory exclusively, like a Box<[u8]>; nothing in it
// is tied to the thread that created it.
unsafe impl Send for Mapping {}
// SAFETY: shared access only reads the bytes (or gives content-preserving advice),
// which is safe from any number of threads, as for &[u8].
unsafe impl Sync for Mapping {}

impl Mapping {
    /// `mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)`, with
    /// the start address a multiple of `align_pages` pages (any positive count, not
    /// only powers of two: the kernel's interleave counts pages from address 0, so
    /// an `N`-node interleave wants a start page that is a multiple of `N`). It maps
    /// `align_pages - 1` extra pages and unmaps the slack on either side.
    ///
    /// Nothing is touched: no page is allocated until it is first written (or
    /// populated).
    ///
    /// # Errors
    /// `InvalidInput` when `len` is 0 or not a multiple of the page size, or
    /// `align_pages` is 0; `ENOMEM` (as `OutOfMemory`) when the kernel will not map
    /// that much (address space, overcommit, `RLIMIT_AS`).
    #[doc(alias = "mmap")]
    pub fn anonymous(len: usize, align_pages: usize) -> io::Result<Mapping> {
        let page = page_size();
        if len == 0 || !len.is_multiple_of(page) || align_pages == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "mmap: a length of {len} bytes and an alignment of {align_pages} pages \
                     (want a positive multiple of {page} bytes and at least 1 page)"
                ),
            ));
        }
        let slack = (align_pages - 1)
            .checked_mul(page)
            .ok_or_else(|| io::Error::from(io::ErrorKind::OutOfMemory))?;
        let total = len
            .checked_add(slack)
            .filter(|&t| t <= isize::MAX as usize)
            .ok_or_else(|| io::Error::from_raw_os_error(libc::ENOMEM))?;
        // SAFETY: a fresh private anonymous mapping at an address of the kernel's
        // choosing; no existing memory is affected.
        let raw = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                total,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if raw == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = NonNull::new(raw.cast::<u8>())
            .ok_or_else(|| io::Error::other("mmap returned address 0 for an anonymous mapping"))?;
        let whole = Mapping { ptr, len: total };
        let base_page = raw as usize / page;
        let start_page = base_page.div_ceil(align_pages) * align_pages;
        Ok(whole.trim((start_page - base_page) * page, len))
    }

    /// Keeps `[offset, offset + len)` and unmaps the rest (both ends are rounded
    /// down to pages; a range reaching past the end is cut at the end).
    pub fn trim(self, offset: usize, len: usize) -> Mapping {
        let page = page_size();
        let offset = (offset / page * page).min(self.len - page);
        let len = (len / page * page).clamp(page, self.len - offset);
        let base = self.ptr.as_ptr();
        // SAFETY: offset < self.len, so the result stays inside the mapping.
        let start = unsafe { self.ptr.add(offset) };
        let total = self.len;
        // Ownership moves to the trimmed mapping made below.
        std::mem::forget(self);
        if offset > 0 {
            // SAFETY: [base, base + offset) is the head of a mapping this function
            // owns (self was consumed), which nothing else refers to.
            unsafe { libc::munmap(base.cast(), offset) };
        }
        let tail = total - offset - len;
        if tail > 0 {
            // SAFETY: [base + offset + len, base + total) is the tail of the same
            // owned mapping, which nothing else refers to.
            unsafe { libc::munmap(base.wrapping_add(offset + len).cast(), tail) };
        }
        Mapping { ptr: start, len }
    }

    /// The first byte.
    pub fn as_ptr(&self) -> *const u8 {
        self.ptr.as_ptr()
    }

    /// Length in bytes (whole pages).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always false: a mapping has at least one page.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The bytes. Pages never touched read as zero.
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: [ptr, ptr + len) is one live readable mapping owned by self, at
        // most isize::MAX bytes long (checked in `anonymous`); the shared borrow of
        // self keeps writers away for the slice's lifetime.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    /// The bytes, writable.
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `bytes`, and the exclusive borrow of self makes this the
        // only reference to the memory for the slice's lifetime.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }

    fn check_range(&self, offset: usize, len: usize) -> io::Result<*mut c_void> {
        let page = page_size();
        let end = offset.checked_add(len);
        if !offset.is_multiple_of(page) || end.is_none_or(|e| e > self.len) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "range of {len} bytes at offset {offset} is not page aligned inside a \
                     mapping of {} bytes",
                    self.len
                ),
            ));
        }
        Ok(self.ptr.as_ptr().wrapping_add(offset).cast())
    }

    /// `madvise(start + offset, len, advice)`. `offset` must be page aligned.
    ///
    /// # Errors
    /// `InvalidInput` for a range outside the mapping; the kernel's (`EINVAL` for
    /// advice it does not know, `ENOMEM` or `EFAULT` when populating fails).
    #[doc(alias = "madvise")]
    pub fn advise(&self, offset: usize, len: usize, advice: Advice) -> io::Result<()> {
        let addr = self.check_range(offset, len)?;
        // SAFETY: the range lies inside the mapping self owns; the advice given
        // never changes its contents (see Advice), so borrowed slices stay valid.
        let ret = unsafe { libc::madvise(addr, len, advice.raw()) };
        if ret != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Faults in every page of the range by writing to it from the calling thread,
    /// one byte per page (read, then written back unchanged): what
    /// [`Advice::PopulateWrite`] does on kernels that lack it.
    ///
    /// # Errors
    /// `InvalidInput` for a range outside the mapping.
    pub fn touch(&mut self, offset: usize, len: usize) -> io::Result<()> {
        let addr = self.check_range(offset, len)?.cast::<u8>();
        let page = page_size();
        for i in 0..len.div_ceil(page) {
            let p = addr.wrapping_add(i * page);
            // SAFETY: p lies inside the mapping (check_range), readable, and self
            // is borrowed exclusively.
            let byte = unsafe { p.read_volatile() };
            // SAFETY: as above, and writable; writing back the byte just read keeps
            // the contents, and a volatile write cannot be optimised away.
            unsafe { p.write_volatile(byte) };
        }
        Ok(())
    }

    /// `madvise(MADV_DONTNEED)`: frees the pages of the range; they read as zero
    /// afterwards and are allocated again, under the memory policy in force, on
    /// the next touch. Splits transparent huge pages that straddle the range.
    ///
    /// # Errors
    /// `InvalidInput` for a range outside the mapping; `EINVAL` on locked pages.
    pub fn discard(&mut self, offset: usize, len: usize) -> io::Result<()> {
        let addr = self.check_range(offset, len)?;
        // SAFETY: the range lies inside the mapping self borrows exclusively, so no
        // slice observes its contents becoming zero.
        let ret = unsafe { libc::madvise(addr, len, libc::MADV_DONTNEED) };
        if ret != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// `mlock(start, len)`: faults every page in (under the memory policy in force)
    /// and keeps it resident: never paged out. Unmapping unlocks.
    ///
    /// # Errors
    /// `ENOMEM` or `EPERM` when `RLIMIT_MEMLOCK` ([`memlock_limit`]) is too low and
    /// the process lacks `CAP_IPC_LOCK`; `EAGAIN` when some pages could not be
    /// locked.
    #[doc(alias = "mlock")]
    pub fn lock(&self) -> io::Result<()> {
        // SAFETY: the range is exactly the mapping self owns; mlock never changes
        // its contents.
        let ret = unsafe { libc::mlock(self.ptr.as_ptr().cast_const().cast(), self.len) };
        if ret != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// `munlock(start, len)`: undoes [`Mapping::lock`].
    ///
    /// # Errors
    /// The kernel's (`ENOMEM` for an unmapped range, which cannot happen here).
    pub fn unlock(&self) -> io::Result<()> {
        // SAFETY: the range is exactly the mapping self owns; munlock never changes
        // its contents.
        let ret = unsafe { libc::munlock(self.ptr.as_ptr().cast_const().cast(), self.len) };
        if ret != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping created in `anonymous`, owned by self
        // alone; no borrow of it outlives self.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// `getrlimit(RLIMIT_MEMLOCK)`: the soft limit on locked memory in bytes, `None`
/// when unlimited.
///
/// # Errors
/// The kernel's, which should not happen for this query.
#[doc(alias = "getrlimit")]
pub fn memlock_limit() -> io::Result<Option<u64>> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a live rlimit the call writes and nothing else.
    let ret = unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut lim) };
    if ret != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((lim.rlim_cur != libc::RLIM_INFINITY).then_some(lim.rlim_cur))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg_attr(miri, ignore)] // Miri's mmap cannot unmap part of a mapping (nor madvise)
    fn aligned_mappings_start_on_the_asked_page_multiple() {
        let page = page_size();
        for align in [1, 2, 3, 4, 7, 512] {
            let m = Mapping::anonymous(5 * page, align).unwrap();
            assert_eq!((m.as_ptr() as usize / page) % align, 0, "align {align}");
            assert_eq!(m.len(), 5 * page);
            assert!(m.bytes().iter().all(|&b| b == 0));
        }
    }

    #[test]
    #[cfg_attr(miri, ignore)] // Miri's mmap cannot unmap part of a mapping (nor madvise)
    fn trimming_keeps_the_middle() {
        let page = page_size();
        let mut m = Mapping::anonymous(6 * page, 1).unwrap();
        m.bytes_mut()[2 * page] = 5;
        let base = m.as_ptr() as usize;
        let m = m.trim(2 * page, 3 * page);
        assert_eq!(m.as_ptr() as usize, base + 2 * page);
        assert_eq!(m.len(), 3 * page);
        assert_eq!(m.bytes()[0], 5);
        let m = m.trim(0, 100 * page);
        assert_eq!(m.len(), 3 * page);
    }

    #[test]
    #[cfg_attr(miri, ignore)] // Miri backs a mapping with real memory: a huge one exhausts it
    fn bad_lengths_are_refused() {
        let page = page_size();
        assert_eq!(
            Mapping::anonymous(0, 1).unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
        assert_eq!(
            Mapping::anonymous(page + 1, 1).unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
        let huge = (isize::MAX as usize / page) * page;
        assert!(Mapping::anonymous(huge, 1).is_err());
    }

    #[test]
    #[cfg_attr(miri, ignore)] // Miri's mmap cannot unmap part of a mapping (nor madvise)
    fn touch_populate_and_discard_keep_or_clear_contents() {
        let page = page_size();
        let mut m = Mapping::anonymous(4 * page, 1).unwrap();
        m.bytes_mut()[page + 3] = 7;
        m.touch(0, 4 * page).unwrap();
        m.advise(0, 4 * page, Advice::NoHugePage).unwrap();
        // PopulateWrite is Linux 5.14+; older kernels say EINVAL.
        if let Err(e) = m.advise(0, 4 * page, Advice::PopulateWrite) {
            assert_eq!(e.raw_os_error(), Some(libc::EINVAL));
        }
        assert_eq!(m.bytes()[page + 3], 7);
        m.discard(page, page).unwrap();
        assert_eq!(m.bytes()[page + 3], 0);
        assert!(m.advise(3, page, Advice::NoHugePage).is_err());
        assert!(m.advise(0, 5 * page, Advice::NoHugePage).is_err());
    }
}
