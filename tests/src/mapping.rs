//! Fresh anonymous mappings for placement tests (`mmap(2)`, `munmap(2)`).
//!
//! # Safety
//!
//! A [`Mapping`] owns the pages it mapped: it unmaps exactly them, once, on drop, and
//! hands out raw page addresses that the tests write through while it lives.
#![allow(unsafe_code)]

/// An anonymous private mapping of `pages` pages, unmapped on drop.
pub struct Mapping {
    /// Start of the mapping.
    pub ptr: *mut u8,
    /// Length in bytes.
    pub len: usize,
}

impl Mapping {
    /// Maps `pages` fresh pages (none touched yet).
    pub fn new(pages: usize) -> Mapping {
        let len = pages * page_size();
        // SAFETY: a fresh anonymous mapping; no existing memory is affected.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(
            ptr,
            libc::MAP_FAILED,
            "mmap: {}",
            std::io::Error::last_os_error()
        );
        Mapping {
            ptr: ptr.cast(),
            len,
        }
    }

    /// Address of page `i`.
    pub fn page(&self, i: usize) -> *mut u8 {
        self.ptr.wrapping_add(i * page_size())
    }

    /// Writes one byte to every page, from the calling thread (first touch).
    pub fn touch(&self) {
        for i in 0..self.len / page_size() {
            // SAFETY: page i lies inside the live read-write mapping.
            unsafe { self.page(i).write_volatile(1) };
        }
    }
}

/// The address of every page, for `move_pages`.
impl Mapping {
    /// One address per page.
    pub fn pages(&self) -> Vec<*const u8> {
        (0..self.len / page_size())
            .map(|i| self.page(i).cast_const())
            .collect()
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping created in `new`, used by nobody else.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

/// The base page size.
pub fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    unsafe { libc::sysconf(libc::_SC_PAGESIZE) as usize }
}
