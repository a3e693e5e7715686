//! The live file's shared mapping: mapping it (`mmap(2)` through memmap2) and viewing
//! its 8-byte words as atomics.
//!
//! # Safety
//!
//! The file is mapped `MAP_SHARED` by the writer (a session) and by viewers in other
//! processes. Every word that changes after the file is published is read and written
//! through [`word`], as an `AtomicU64`; a viewer writes only the control words, the
//! same way. So concurrent changes through the mapping are atomic accesses, never data
//! races, and the mapping outlives every view borrowed from it.
#![allow(unsafe_code)]

use std::fs::File;
use std::sync::atomic::AtomicU64;

use memmap2::MmapMut;

/// A word of the mapping, accessed atomically (the file is shared with readers).
pub(super) fn word(map: &MmapMut, off: usize) -> &AtomicU64 {
    let bytes = &map[off..off + 8];
    // The mapping is page aligned and every offset used is a multiple of 8; an
    // AtomicU64 view of an aligned, in-bounds u64 is what `AtomicU64::from_ptr` needs.
    assert!(bytes.as_ptr().cast::<u64>().is_aligned());
    atomic_at(bytes)
}

fn atomic_at(bytes: &[u8]) -> &AtomicU64 {
    // SAFETY: `bytes` is 8 bytes, 8-aligned (checked by the caller), inside a shared
    // file mapping that outlives the borrow; all access to these words, ours and the
    // readers', is atomic.
    unsafe { AtomicU64::from_ptr(bytes.as_ptr().cast_mut().cast::<u64>()) }
}

/// Maps the whole live file, shared and writable.
pub(super) fn map_mut(file: &File) -> std::io::Result<MmapMut> {
    // SAFETY: the file is ours (mode 0600); the only other writers are viewers that
    // write the control words, atomically; every access we make goes through
    // atomics, so concurrent changes cannot produce undefined behaviour.
    unsafe { MmapMut::map_mut(file) }
}
