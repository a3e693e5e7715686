//! Placing a region's pages after it is mapped: making its layout real
//! ([`Region::populate`] and the building step), re-placing it under a new policy
//! ([`Region::replace`]), moving misplaced pages and splitting the huge pages that
//! hold pages of several stripes.

use rset::sys::mempolicy::{self, Mode, PageStatus};
use rset::{NodeId, RSet};

use super::array::Region;
use super::budget::{check_memory, need};
use super::check::{MOVE_PAGES_BATCH, locate};
use super::error::{RegionError, no_huge_pages_error};
use super::mechanism::{
    Mechanism, huge_page_pages, mbind_region, populate_range, populate_stripes, prefault_pages,
};
use crate::policy::{Layout, Policy, current_node};
use crate::registry::{self, InlineStr};
use crate::sys::meminfo;
use crate::sys::mman::{self, Advice};

impl<T> Region<T> {
    /// Faults in the region's pages `pages` (page indices) under its policy from the
    /// calling thread, without changing their contents. A head start for
    /// [`Region::populate`] that several threads can share, each taking its own
    /// part (the kernel zeroes a new page on the CPU that faults it in), so that a
    /// big lazy region is populated in parallel. Does nothing on kernels without
    /// `MADV_POPULATE_WRITE` (before Linux 5.14); `populate` then does all the work.
    ///
    /// # Errors
    /// [`RegionError::PageRange`] for pages outside the region;
    /// [`RegionError::Populate`] when the kernel cannot fault a page in (no memory
    /// left on the nodes the policy allows).
    pub fn prefault(&self, pages: std::ops::Range<usize>) -> Result<(), RegionError> {
        prefault_pages(&self.map, self.pages(), pages)
    }

    /// Populates a region built with `populate(false)`: faults in every page not
    /// yet present under the region's policy, from the calling thread, and checks
    /// an interleaved region's phase as `build` does, so that afterwards
    /// [`Region::is_populated`] holds and [`Region::verify`] wants every page
    /// present. Pages already present ([`Region::prefault`], first touches) stay as
    /// they are. Does nothing for a populated region.
    ///
    /// # Errors
    /// [`RegionError::NodeFull`] and [`RegionError::NodesFull`] when the pages
    /// still to come cannot fit their nodes; [`RegionError::Populate`] and
    /// [`RegionError::MovePages`] as for `build`.
    pub fn populate(&mut self) -> Result<(), RegionError> {
        self.populate_with(|_, _| Ok(()))
    }

    /// [`Region::populate`] with the faulting shared out: after the memory check,
    /// `spread(pages, fault)` may run `fault(range)` ([`Region::prefault`] of a
    /// page range) on as many threads as it likes, each its own range of the
    /// region's `pages`; then the calling thread fills what is left. The check
    /// comes first, so that a region too big for its nodes is refused before any
    /// thread faults a page in.
    ///
    /// # Errors
    /// As [`Region::populate`], and the first error of `spread`.
    pub fn populate_with<F>(&mut self, spread: F) -> Result<(), RegionError>
    where
        F: FnOnce(
            usize,
            &(dyn Fn(std::ops::Range<usize>) -> Result<(), RegionError> + Sync),
        ) -> Result<(), RegionError>,
    {
        if self.populated {
            return Ok(());
        }
        if !matches!(self.layout, Layout::Default) {
            let status = self.locate()?;
            check_memory(need(&self.layout, self.pages(), Some(&status)))?;
        }
        let (map, total) = (&self.map, self.pages());
        spread(total, &|pages| prefault_pages(map, total, pages))?;
        let mech = Mechanism::of(&self.layout);
        self.place(&mech, true, false)
    }

    /// Moves the present pages that are not on the node the layout gives them;
    /// returns how many it asked to move.
    fn fix_misplaced(&self, status: &[PageStatus]) -> Result<usize, RegionError> {
        let page = mman::page_size();
        let base = self.map.as_ptr() as usize;
        let mut addrs = Vec::with_capacity(MOVE_PAGES_BATCH);
        let mut targets = Vec::with_capacity(MOVE_PAGES_BATCH);
        let mut moved = 0;
        let mut flush = |addrs: &mut Vec<*const u8>, targets: &mut Vec<u32>| {
            if addrs.is_empty() {
                return Ok(());
            }
            mempolicy::move_pages_to(addrs, targets)
                .map_err(|source| RegionError::MovePages { source })?;
            moved += addrs.len();
            addrs.clear();
            targets.clear();
            Ok::<(), RegionError>(())
        };
        for (p, s) in status.iter().enumerate() {
            let Some(target) = self.layout.node_of_page(p) else {
                continue;
            };
            if matches!(s, PageStatus::Node(n) if *n != target.0) {
                addrs.push((base + p * page) as *const u8);
                targets.push(target.0);
                if addrs.len() == MOVE_PAGES_BATCH {
                    flush(&mut addrs, &mut targets)?;
                }
            }
        }
        flush(&mut addrs, &mut targets)?;
        Ok(moved)
    }

    pub(super) fn lock_pages(&mut self) -> Result<(), RegionError> {
        self.map.lock().map_err(|source| RegionError::Lock {
            bytes: self.map.len(),
            limit: mman::memlock_limit().ok().flatten(),
            source,
        })?;
        self.locked = true;
        self.populated = true;
        Ok(())
    }

    /// Makes the layout real: VMA policy, huge-page advice, population, and, when
    /// re-placing, moving the pages already present.
    pub(super) fn place(
        &mut self,
        mech: &Mechanism,
        populate: bool,
        replacing: bool,
    ) -> Result<(), RegionError> {
        let len = self.map.len();
        if mech.needs_base_pages() {
            self.map
                .advise(0, len, Advice::NoHugePage)
                .map_err(no_huge_pages_error)?;
        }
        match mech {
            Mechanism::Default => {
                if replacing {
                    mbind_region(&self.map, Mode::Default, &[], false)?;
                }
            }
            Mechanism::Bind(nodes) => mbind_region(&self.map, Mode::Bind, nodes, replacing)?,
            Mechanism::Interleave(nodes) => {
                mbind_region(&self.map, Mode::Interleave, nodes, false)?
            }
            Mechanism::Stripes { stride, nodes } => {
                if replacing {
                    // A VMA policy would override the thread policy that places stripes.
                    mbind_region(&self.map, Mode::Default, &[], false)?;
                }
                populate_stripes(&mut self.map, *stride, nodes)?;
                self.populated = true;
                mbind_region(&self.map, Mode::Bind, nodes, false)?;
            }
        }
        if populate && !self.populated {
            populate_range(&mut self.map, 0, len)?;
            self.populated = true;
        }
        if replacing {
            self.move_into_place(mech)
        } else if let (Mechanism::Interleave(nodes), true) = (mech, self.populated) {
            // map_interleaved put page 0 in phase; check the first and the last N
            // pages (the phase of a 6.1 kernel jumps where the page number crosses
            // a multiple of 2^32) and repair the whole region should one be off.
            let page = mman::page_size();
            let n = nodes.len().min(self.pages());
            let tail = self.pages() - n;
            let head = locate(self.map.as_ptr(), n * page);
            let last = locate(self.map.as_ptr().wrapping_add(tail * page), n * page);
            let (head, last) = head
                .and_then(|h| Ok((h, last?)))
                .map_err(|source| RegionError::MovePages { source })?;
            let wrong = |first: usize, st: &[PageStatus]| {
                st.iter().enumerate().any(|(i, s)| {
                    !matches!(s, PageStatus::Node(x) if Some(NodeId(*x)) == self.layout.node_of_page(first + i))
                })
            };
            let off = wrong(0, &head) || wrong(tail, &last);
            if off {
                self.move_into_place(mech)
            } else {
                Ok(())
            }
        } else {
            Ok(())
        }
    }

    /// Moves misplaced present pages to their nodes; splits transparent huge pages
    /// that hold pages of several stripes (by copying their contents out, dropping
    /// them and writing the contents back as base pages) when moving alone cannot.
    fn move_into_place(&mut self, mech: &Mechanism) -> Result<(), RegionError> {
        if matches!(self.layout, Layout::Default | Layout::Bind(_)) {
            return Ok(()); // mbind(MPOL_MF_MOVE) did it.
        }
        let mut status = self.locate()?;
        let start = self.map.as_ptr() as usize;
        if mech.needs_base_pages()
            && meminfo::anon_huge_bytes(start, start + self.map.len()).unwrap_or(0) > 0
        {
            // move_pages would move each huge page whole (to the node of whichever
            // of its pages it meets last): split them first.
            self.split_huge_blocks(&status)?;
            status = self.locate()?;
        }
        if self.fix_misplaced(&status)? == 0 || !mech.needs_base_pages() {
            return Ok(());
        }
        // Huge pages the check above missed (khugepaged meanwhile, or no /proc).
        let status = self.locate()?;
        if self.split_huge_blocks(&status)? {
            let status = self.locate()?;
            self.fix_misplaced(&status)?;
        }
        Ok(())
    }

    /// Rewrites as base pages every 2 MiB block that holds a misplaced page: copies
    /// its contents out, drops it (`MADV_DONTNEED`) and writes the contents back.
    /// Returns whether there was any.
    fn split_huge_blocks(&mut self, status: &[PageStatus]) -> Result<bool, RegionError> {
        let page = mman::page_size();
        let hp = huge_page_pages();
        let base_page = self.map.as_ptr() as usize / page;
        let mut blocks: Vec<usize> = status
            .iter()
            .enumerate()
            .filter(|(p, s)| {
                matches!(s, PageStatus::Node(n) if self.layout.node_of_page(*p) != Some(NodeId(*n)))
            })
            .map(|(p, _)| (base_page + p) / hp)
            .collect();
        blocks.dedup();
        if blocks.is_empty() {
            return Ok(false);
        }
        let lock_error = |source| RegionError::Lock {
            bytes: self.map.len(),
            limit: mman::memlock_limit().ok().flatten(),
            source,
        };
        if self.locked {
            // MADV_DONTNEED refuses locked pages.
            self.map.unlock().map_err(lock_error)?;
        }
        let pages = self.pages();
        let mut saved = Vec::new();
        let mut result = Ok(true);
        for b in blocks {
            let first = (b * hp).max(base_page) - base_page;
            let end = ((b + 1) * hp - base_page).min(pages);
            let (off, len) = (first * page, (end - first) * page);
            saved.clear();
            saved.extend_from_slice(&self.map.bytes()[off..off + len]);
            if let Err(source) = self.map.discard(off, len) {
                result = Err(RegionError::Populate { bytes: len, source });
                break;
            }
            self.map.bytes_mut()[off..off + len].copy_from_slice(&saved);
        }
        if self.locked {
            self.map.lock().map_err(|source| RegionError::Lock {
                bytes: self.map.len(),
                limit: mman::memlock_limit().ok().flatten(),
                source,
            })?;
        }
        result
    }
}

impl<T: bytemuck::Pod> Region<T> {
    /// Re-places the region under `policy` over `rset` (resolved for the calling
    /// thread's node): sets the new VMA policy, faults in any page not yet present,
    /// and moves every present page that is not where the new layout puts it
    /// (`mbind(MPOL_MF_MOVE)` for `MPOL_BIND` layouts, `move_pages` page by page
    /// for interleave and stripes); contents are kept. Afterwards every page is
    /// present (except under Float). The address does not change; a locked region
    /// stays locked.
    ///
    /// # Errors
    /// [`RegionError`]: the policy, nodes that cannot take the pages moving onto
    /// them, the kernel's refusals, and [`RegionError::Misplaced`] if pages could
    /// not be moved.
    pub fn replace(&mut self, policy: Policy, rset: &RSet) -> Result<(), RegionError> {
        let layout = policy.resolve(rset, current_node())?;
        let mech = Mechanism::of(&layout);
        let status = self.locate()?;
        check_memory(need(&layout, self.pages(), Some(&status)))?;
        let old = std::mem::replace(&mut self.layout, layout);
        let populate = !matches!(mech, Mechanism::Default);
        if let Err(e) = self.place(&mech, populate, true) {
            // Pages may have moved already; the layout is the new one only if
            // placing succeeded.
            self.layout = old;
            return Err(e);
        }
        self.policy = policy;
        registry::set_policy(self.id, InlineStr::display(&self.policy));
        self.verify()
    }
}
