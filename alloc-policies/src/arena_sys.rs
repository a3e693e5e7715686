//! The raw calls under [`crate::NumaAlloc`]: anonymous mappings (`mmap`, `munmap`,
//! `mremap`, `madvise`), mimalloc's arena and heap API, the CPU the thread runs on,
//! and reads of small sysfs files into caller-provided buffers.
//!
//! The rule of this module, like a talc `Source`: **nothing here allocates through
//! the global allocator**, because everything here runs inside it. Errors are
//! `Option`s or raw `errno` values, never `io::Error` with a message.
//!
//! # Safety
//! Each `unsafe` block says which precondition of the C call it meets. The mimalloc
//! heap pointer is wrapped in [`Heap`], which can only be made from
//! `mi_heap_new_in_arena` and is never deleted, so every `Heap` is live for the rest
//! of the process; [`HeapSlot`] stores only such pointers. Functions that take a
//! pointer to memory the caller must own are `unsafe fn` with a `# Safety` section.
#![allow(unsafe_code)]

use std::cell::Cell;
use std::ffi::{CStr, c_int, c_ulong, c_void};
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicIsize, AtomicPtr, AtomicUsize, Ordering};

use libmimalloc_sys as mi;

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

/// The size of a page (`sysconf(_SC_PAGESIZE)`), read once.
#[inline]
pub(crate) fn page_size() -> usize {
    static PAGE: AtomicUsize = AtomicUsize::new(0);
    let p = PAGE.load(Ordering::Relaxed);
    if p != 0 {
        return p;
    }
    // SAFETY: sysconf only reads a configuration value.
    let raw = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    let p = if raw > 0 { raw as usize } else { 4096 };
    PAGE.store(p, Ordering::Relaxed);
    p
}

/// Offset of glibc's per-thread `struct rseq` from the thread pointer
/// (`__rseq_offset`), or 0 when the kernel and glibc do not maintain one.
static RSEQ_OFFSET: AtomicIsize = AtomicIsize::new(0);

/// Looks up glibc's rseq area (glibc >= 2.35 registers one for every thread), so
/// that [`current_cpu`] can read the CPU number the kernel keeps there. Without it
/// (an older glibc, `glibc.pthread.rseq=0`), [`current_cpu`] calls `sched_getcpu`.
/// `dlsym` is C code: it never enters Rust's global allocator.
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

/// The address of the calling thread's rseq `cpu_id` (an `i32` the kernel keeps up
/// to date whenever the thread is scheduled), when [`find_rseq`] found glibc's rseq
/// area.
#[inline(always)]
fn rseq_cpu_id() -> Option<*const i32> {
    #[cfg(all(target_arch = "x86_64", target_env = "gnu"))]
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
            return Some(std::ptr::with_exposed_provenance::<i32>(
                tp.wrapping_add_signed(offset).wrapping_add(4),
            ));
        }
    }
    None
}

/// The CPU the calling thread runs on now, `u32::MAX` if unknown: read from the
/// thread's rseq area when [`find_rseq`] found one (no call, no system call), else
/// `sched_getcpu`.
#[inline]
pub(crate) fn current_cpu() -> u32 {
    if let Some(cpu_id) = rseq_cpu_id() {
        // SAFETY: `cpu_id` points into this thread's live rseq area (rseq_cpu_id);
        // the kernel writes it, hence volatile.
        let cpu = unsafe { cpu_id.read_volatile() };
        if cpu >= 0 {
            return cpu as u32;
        }
    }
    // SAFETY: sched_getcpu has no preconditions and touches no memory of ours.
    let cpu = unsafe { libc::sched_getcpu() };
    u32::try_from(cpu).unwrap_or(u32::MAX)
}

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

/// Makes an exclusive mimalloc arena of `len` bytes (a multiple of 32 MiB) and a
/// heap for it: reserves the range aligned for mimalloc, lets `place` set its
/// memory policy while nothing can touch it (returning false aborts), opens it and
/// hands it to mimalloc for good. `None` if any step fails (the range is then
/// unmapped, unless mimalloc already owns it).
pub(crate) fn new_arena_heap(
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

/// `MPOL_BIND` (`<linux/mempolicy.h>`).
const MPOL_BIND: c_int = 2;
/// `MPOL_F_STATIC_NODES`: a mode flag that keeps the node set as given when the
/// task's cpuset changes. For a range we bind once, to one node we serve, it
/// places pages exactly as a plain `MPOL_BIND`; we use it as a mark that the
/// kernel keeps with the range and reports back (see [`bind_marked`]).
const MPOL_F_STATIC_NODES: c_int = 1 << 15;
/// `MPOL_F_ADDR` for `get_mempolicy`: the policy of the mapping at an address.
const MPOL_F_ADDR: c_ulong = 2;

/// The `errno` of the last failed call.
fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// `mbind(ptr, len, MPOL_BIND | MPOL_F_STATIC_NODES, {node}, 0)`: binds the range
/// to `node` (below 64) like a plain `MPOL_BIND`, and marks it so that
/// [`is_marked_bind`] can tell it from one. `Err(errno)` if the kernel refuses.
pub(crate) fn bind_marked(ptr: *const u8, len: usize, node: u8) -> Result<(), i32> {
    const BITS: usize = c_ulong::BITS as usize;
    if node >= 64 {
        return Err(libc::EINVAL);
    }
    let mut mask = [0 as c_ulong; 64 / BITS];
    mask[node as usize / BITS] = 1 << (node as usize % BITS);
    // SAFETY: `mask` is live and holds 64 bits, which is maxnode - 1, so the kernel
    // reads only inside it; mbind only changes the policy of `[ptr, ptr + len)`,
    // which it validates, and never reads or writes through it.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mbind,
            ptr.cast_mut().cast::<c_void>(),
            len as c_ulong,
            (MPOL_BIND | MPOL_F_STATIC_NODES) as c_ulong,
            mask.as_ptr(),
            65 as c_ulong,
            0 as c_ulong,
        )
    };
    if ret == 0 { Ok(()) } else { Err(errno()) }
}

/// Truth that the mapping holding `ptr` has a policy set by [`bind_marked`]
/// (`get_mempolicy(&mode, NULL, 0, ptr, MPOL_F_ADDR)`). `Err(errno)` if the kernel
/// refuses (`EFAULT` where nothing is mapped).
pub(crate) fn is_marked_bind(ptr: *const u8) -> Result<bool, i32> {
    let mut mode: c_int = 0;
    // SAFETY: `mode` is a live c_int the kernel writes; no mask is passed (NULL,
    // maxnode 0); the kernel only looks up the mapping at `ptr`.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_get_mempolicy,
            &mut mode as *mut c_int,
            ptr::null_mut::<c_ulong>(),
            0 as c_ulong,
            ptr.cast_mut().cast::<c_void>(),
            MPOL_F_ADDR,
        )
    };
    if ret == 0 {
        Ok(mode & 0xff == MPOL_BIND && mode & MPOL_F_STATIC_NODES != 0)
    } else {
        Err(errno())
    }
}

/// Reads the file at `path` into `buf` with raw `open`/`read` (no allocation).
/// Returns the bytes read; `None` if it cannot be opened or read. Files longer than
/// `buf` are cut.
pub(crate) fn read_file<'b>(path: &CStr, buf: &'b mut [u8]) -> Option<&'b [u8]> {
    // SAFETY: `path` is a valid NUL-terminated string for the duration of the call.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return None;
    }
    let mut filled = 0;
    let ok = loop {
        if filled == buf.len() {
            break true;
        }
        let rest = &mut buf[filled..];
        // SAFETY: `rest` is a live, writable buffer of `rest.len()` bytes.
        let n = unsafe { libc::read(fd, rest.as_mut_ptr().cast(), rest.len()) };
        match n {
            0 => break true,
            n if n > 0 => filled += n as usize,
            _ if std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) => {}
            _ => break false,
        }
    };
    // SAFETY: `fd` is the descriptor opened above, closed exactly once.
    unsafe { libc::close(fd) };
    ok.then_some(&buf[..filled])
}

/// A mimalloc arena made from memory this crate mapped.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ArenaId(mi::mi_arena_id_t);

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
pub(crate) unsafe fn manage_arena(start: NonNull<u8>, len: usize) -> Option<ArenaId> {
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
    pub(crate) fn new_in(arena: ArenaId) -> Option<Heap> {
        // SAFETY: `arena` came from a successful mi_manage_os_memory_ex; the call
        // allocates the heap's own record from mimalloc's main heap, not from us.
        let h = unsafe { mi::mi_heap_new_in_arena(arena.0) };
        NonNull::new(h).map(Heap)
    }

    /// A block of `size` bytes aligned to `align` (a power of two), or null.
    #[inline]
    pub(crate) fn alloc(self, size: usize, align: usize, zero: bool) -> *mut u8 {
        let h = self.0.as_ptr();
        // SAFETY (all four): `h` is a live heap (type invariant); the aligned
        // variants check that `align` is a power of two and return null otherwise.
        let p = match (align <= MI_MIN_ALIGN && align <= size, zero) {
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
        let q = if align <= MI_MIN_ALIGN && align <= new_size {
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
    let p = match (align <= MI_MIN_ALIGN && align <= size, zero) {
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
    let q = if align <= MI_MIN_ALIGN && align <= new_size {
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

/// What a [`CpuHeapCache`] reads as "the current CPU" where the thread has no rseq
/// area: -1, which matches no cached CPU, so the cache always misses.
static NO_RSEQ_CPU: i32 = -1;

/// A thread's one-entry cache from "the CPU I run on" to "the heap of its node":
/// the whole fast path of Local is one read of the rseq `cpu_id` through `src`, one
/// compare with `cpu`, and `heap`.
///
/// Invariants: `src` points at this thread's rseq `cpu_id` or at [`NO_RSEQ_CPU`],
/// both live as long as the thread; unless `cpu` is [`CpuHeapCache::EMPTY`], `heap`
/// is a live heap. `EMPTY` is no value `cpu_id` takes (CPU numbers are below 2^31;
/// the kernel's "unregistered" values are -1 and -2).
pub(crate) struct CpuHeapCache {
    src: Cell<*const i32>,
    cpu: Cell<u32>,
    heap: Cell<*mut mi::mi_heap_t>,
}

impl CpuHeapCache {
    /// The `cpu` of an empty cache.
    const EMPTY: u32 = 1 << 31;

    /// An empty cache.
    pub(crate) const fn new() -> CpuHeapCache {
        CpuHeapCache {
            src: Cell::new(&raw const NO_RSEQ_CPU),
            cpu: Cell::new(Self::EMPTY),
            heap: Cell::new(ptr::null_mut()),
        }
    }

    /// The cached heap, if the thread still runs on the CPU it was cached for.
    #[inline(always)]
    pub(crate) fn get(&self) -> Option<Heap> {
        // SAFETY: `src` points at a live i32 (invariant), which the kernel may
        // write at any time, hence volatile.
        let now = unsafe { self.src.get().read_volatile() } as u32;
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
            if let Some(src) = rseq_cpu_id() {
                self.src.set(src);
            }
        }
    }
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

/// A fresh zeroed read-write anonymous mapping of `len` bytes, pages committed
/// lazily (`MAP_NORESERVE`); `None` if the kernel refuses. Never freed.
pub(crate) fn map_table(len: usize) -> Option<NonNull<u8>> {
    let mut map = FreshMap::new(len.next_multiple_of(page_size()), 1)?;
    if !map.open() {
        return None;
    }
    map.into_raw()
}
