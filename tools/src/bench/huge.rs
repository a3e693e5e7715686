//! Transparent huge pages for a benchmark buffer: on, off, or as the system
//! decides (`/sys/kernel/mm/transparent_hugepage/enabled`).
//!
//! # Safety
//!
//! The one `unsafe` call of this crate (its other unsafe item is the marker symbol
//! in `mon/passive.rs`) is `madvise(2)` with `MADV_HUGEPAGE` or
//! `MADV_NOHUGEPAGE` over memory the caller borrows: that advice only changes how
//! the range is backed (huge or base pages), never its contents or its mapping, so
//! it is sound for any range of a live, borrowed mapping.
#![allow(unsafe_code)]

use std::fmt;
use std::io;
use std::str::FromStr;

use serde::Serialize;

/// Whether the buffer may use transparent huge pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HugePages {
    /// As the system's THP setting decides (no advice).
    #[default]
    System,
    /// `MADV_HUGEPAGE` before the first touch: 2 MiB pages where the kernel can.
    On,
    /// `MADV_NOHUGEPAGE` before the first touch: base pages only.
    Off,
}

impl FromStr for HugePages {
    type Err = String;

    fn from_str(s: &str) -> Result<HugePages, String> {
        match s {
            "system" => Ok(HugePages::System),
            "on" => Ok(HugePages::On),
            "off" => Ok(HugePages::Off),
            _ => Err(format!(
                "unknown huge-page mode `{s}` (expected on, off or system)"
            )),
        }
    }
}

impl fmt::Display for HugePages {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HugePages::System => "system",
            HugePages::On => "on",
            HugePages::Off => "off",
        })
    }
}

/// Gives the advice of `mode` for the pages of `buf` (nothing for
/// [`HugePages::System`]). Call it before the pages are first touched: advice does
/// not turn pages already present into huge ones (khugepaged may, later).
///
/// # Errors
/// What `madvise` says (`EINVAL` on a kernel without transparent huge pages).
#[doc(alias = "madvise")]
pub fn advise<T>(buf: &[T], mode: HugePages) -> io::Result<()> {
    let advice = match mode {
        HugePages::System => return Ok(()),
        HugePages::On => libc::MADV_HUGEPAGE,
        HugePages::Off => libc::MADV_NOHUGEPAGE,
    };
    let page = alloc_policies::sys::mman::page_size();
    let start = buf.as_ptr() as usize / page * page;
    let end = (buf.as_ptr() as usize + size_of_val(buf)).div_ceil(page) * page;
    if end <= start {
        return Ok(());
    }
    // SAFETY:
    // - `[start, end)` is the page-rounded range of `buf`, which the caller
    //   borrows, so it is mapped for the whole call;
    // - MADV_HUGEPAGE / MADV_NOHUGEPAGE only change how the range is backed, never
    //   what it holds (see the module docs), so the borrow's contents stay valid.
    let rc = unsafe { libc::madvise(start as *mut libc::c_void, end - start, advice) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The share (0 to 1) of `buf`'s bytes backed by transparent huge pages, from
/// `/proc/self/smaps` (`None` if it cannot be read).
pub fn huge_share<T>(buf: &[T]) -> Option<f64> {
    let start = buf.as_ptr() as usize;
    let bytes = size_of_val(buf);
    let huge = alloc_policies::sys::meminfo::anon_huge_bytes(start, start + bytes).ok()?;
    Some((huge as f64 / bytes.max(1) as f64).min(1.0))
}
