//! Where a region's pages are, asked with `move_pages` ([`locate`]), and the
//! page-by-page check against its layout ([`Region::verify`]).

use std::collections::BTreeMap;
use std::io;

use rset::NodeId;
use rset::sys::mempolicy::{self, PageStatus};

use super::array::Region;
use super::error::RegionError;
use crate::policy::Layout;
use crate::sys::mman;

/// Pages per `move_pages` call in [`locate`] and when moving pages.
pub const MOVE_PAGES_BATCH: usize = 1024;

/// Where each page overlapping `[addr, addr + len)` of the calling process is,
/// one [`PageStatus`] per page, asked with `move_pages` in batches of
/// [`MOVE_PAGES_BATCH`]. A page never touched reads as
/// [`PageStatus::NotPresent`] (the kernel says `ENOENT`, or `EFAULT` on 6.1).
/// Nothing is read, written or moved: any address is safe to ask about.
///
/// # Errors
/// The kernel's for a whole call (`ENOMEM`).
pub fn locate(addr: *const u8, len: usize) -> io::Result<Vec<PageStatus>> {
    if len == 0 {
        return Ok(Vec::new());
    }
    let page = mman::page_size();
    let first = addr as usize / page;
    let last = (addr as usize).saturating_add(len - 1) / page;
    let mut out = Vec::with_capacity(last - first + 1);
    let mut batch: Vec<*const u8> = Vec::with_capacity(MOVE_PAGES_BATCH);
    let mut p = first;
    while p <= last {
        batch.clear();
        let n = (last - p + 1).min(MOVE_PAGES_BATCH);
        batch.extend((p..p + n).map(|q| (q * page) as *const u8));
        out.extend(mempolicy::move_pages_query(&batch)?);
        p += n;
    }
    Ok(out)
}

impl<T> Region<T> {
    /// Where each page is, page 0 first (see [`locate`]).
    ///
    /// # Errors
    /// [`RegionError::MovePages`] when the kernel refuses the query.
    pub fn locate(&self) -> Result<Vec<PageStatus>, RegionError> {
        locate(self.map.as_ptr(), self.map.len())
            .map_err(|source| RegionError::MovePages { source })
    }

    /// How many pages each node holds (pages not present are left out).
    ///
    /// # Errors
    /// As [`Region::locate`].
    pub fn pages_per_node(&self) -> Result<BTreeMap<NodeId, usize>, RegionError> {
        let mut m = BTreeMap::new();
        for s in self.locate()? {
            if let PageStatus::Node(n) = s {
                *m.entry(NodeId(n)).or_insert(0) += 1;
            }
        }
        Ok(m)
    }

    /// Checks every page against the layout: on its node (`Node`, `Interleave`,
    /// `Stripes`), on one of the nodes (`Bind`), anywhere (`Default`); present,
    /// if the region was populated.
    ///
    /// # Errors
    /// [`RegionError::Misplaced`] naming the first misplaced page and the count.
    pub fn verify(&self) -> Result<(), RegionError> {
        let status = self.locate()?;
        let mut first = None;
        let mut misplaced = 0;
        for (p, s) in status.iter().enumerate() {
            let ok = match (s, &self.layout) {
                (PageStatus::NotPresent, _) => !self.populated,
                (PageStatus::Error(_), _) => false,
                (PageStatus::Node(_), Layout::Default) => true,
                (PageStatus::Node(n), Layout::Bind(set)) => set.contains(NodeId(*n)),
                (PageStatus::Node(n), layout) => layout.node_of_page(p) == Some(NodeId(*n)),
            };
            if !ok {
                misplaced += 1;
                first.get_or_insert((p, *s));
            }
        }
        match first {
            None => Ok(()),
            Some((page, found)) => Err(RegionError::Misplaced {
                page,
                expected: self.expected_text(page),
                found,
                misplaced,
                pages: status.len(),
            }),
        }
    }

    fn expected_text(&self, page: usize) -> String {
        match &self.layout {
            Layout::Default => "present".to_owned(),
            Layout::Bind(set) => format!("on one of nodes {set}"),
            layout => match layout.node_of_page(page) {
                Some(n) => format!("on node {n}"),
                None => "present".to_owned(),
            },
        }
    }
}
