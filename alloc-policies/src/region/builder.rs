//! [`RegionBuilder`]: how a region is asked for (length, policy, RSet, label,
//! locking, population) and made.

use std::marker::PhantomData;
use std::panic::Location;
use std::sync::OnceLock;

use rset::{RSet, Topology};

use super::array::Region;
use super::budget::{check_memory, need};
use super::error::{RegionError, mmap_error};
use super::mechanism::{Mechanism, lcm, map_interleaved};
use crate::policy::{Layout, Policy, PolicyError, Stride, current_node};
use crate::registry::{self, AllocId, AllocKind, Allocation, InlineStr, Label};
use crate::sys::mman::{self, Mapping};

/// The RSet of the whole machine (`Topology::from_system().global_rset()`), read
/// once: the RSet of regions built without one.
///
/// # Errors
/// [`RegionError::Topology`] when hwloc cannot read the machine.
pub fn global_rset() -> Result<&'static RSet, RegionError> {
    static GLOBAL: OnceLock<Result<RSet, String>> = OnceLock::new();
    GLOBAL
        .get_or_init(|| {
            Topology::from_system()
                .map(|t| t.global_rset())
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|reason| RegionError::Topology {
            reason: reason.clone(),
        })
}

/// Builds a [`Region`]: `Region::<f64>::builder(len).policy(..).rset(..).build()`.
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until build() is called"]
pub struct RegionBuilder<T> {
    len: usize,
    policy: Result<Policy, PolicyError>,
    rset: Option<RSet>,
    label: Option<InlineStr>,
    lock: bool,
    populate: bool,
    _elements: PhantomData<fn() -> T>,
}

impl<T: bytemuck::Pod> RegionBuilder<T> {
    /// The placement policy (default [`Policy::Local`]).
    pub fn policy(mut self, policy: Policy) -> Self {
        self.policy = Ok(policy);
        self
    }

    /// Shorthand for `Policy::Striped` with `stride_pages` pages per stripe; 0 is
    /// reported by `build` as [`PolicyError::ZeroStride`].
    pub fn striped(mut self, stride_pages: usize) -> Self {
        self.policy =
            Stride::new(stride_pages).map(|stride_pages| Policy::Striped { stride_pages });
        self
    }

    /// The RSet whose nodes the policy uses (default: the machine's,
    /// [`global_rset`]).
    pub fn rset(mut self, rset: &RSet) -> Self {
        self.rset = Some(rset.clone());
        self
    }

    /// The name the registry and the monitor show (default: the source location
    /// of `build`). Cut to [`registry::INLINE_STR_BYTES`] bytes.
    pub fn label(mut self, label: &str) -> Self {
        self.label = Some(InlineStr::new(label));
        self
    }

    /// Lock the pages in memory (`mlock`) once placed: never paged out, so never
    /// refaulted elsewhere. Implies populating.
    pub fn lock(mut self, lock: bool) -> Self {
        self.lock = lock;
        self
    }

    /// Fault every page in when building (default true). See the module docs.
    pub fn populate(mut self, populate: bool) -> Self {
        self.populate = populate;
        self
    }

    /// Maps, places, populates (and locks) the region and records it in the
    /// registry. The policy is resolved for the node the calling thread runs on.
    ///
    /// # Errors
    /// [`RegionError`]: bad sizes and policies before anything is mapped; then
    /// memory that does not fit its nodes, and the kernel's refusals.
    #[track_caller]
    pub fn build(self) -> Result<Region<T>, RegionError> {
        let caller = Location::caller();
        let policy = self.policy?;
        let elem = size_of::<T>();
        if self.len == 0 || elem == 0 {
            return Err(RegionError::ZeroSize {
                elements: self.len,
                element_bytes: elem,
            });
        }
        let page = mman::page_size();
        let too_large = RegionError::TooLarge {
            bytes: self.len as u128 * elem as u128,
        };
        let bytes = self
            .len
            .checked_mul(elem)
            .filter(|&b| b <= isize::MAX as usize - page)
            .ok_or(too_large)?;
        let pages = bytes.div_ceil(page);
        let map_bytes = pages * page;

        let rset = match &self.rset {
            Some(r) => r,
            None => global_rset()?,
        };
        let node = current_node();
        let layout = policy.resolve(rset, node)?;
        let mech = Mechanism::of(&layout);
        let populate = self.populate || self.lock;
        if let (Mechanism::Stripes { .. }, Layout::Stripes { stride, .. }) = (&mech, &layout) {
            if !populate {
                return Err(RegionError::LazyStripes { stride: *stride });
            }
        }

        if populate {
            check_memory(need(&layout, pages, None))?;
        }
        let align = lcm(mech.start_alignment(pages), align_of::<T>().div_ceil(page));
        let map = match &mech {
            Mechanism::Interleave(nodes) => map_interleaved(map_bytes, nodes, align)?,
            _ => Mapping::anonymous(map_bytes, align).map_err(|e| mmap_error(e, map_bytes))?,
        };

        let label = match self.label {
            Some(name) => Label::Name(name),
            None => Label::Caller(caller),
        };
        let mut region = Region {
            map,
            len: self.len,
            layout,
            policy,
            populated: false,
            locked: false,
            id: AllocId(0),
            _elements: PhantomData,
        };
        region.place(&mech, populate, false)?;
        if self.lock {
            region.lock_pages()?;
        }
        let record = Allocation::here(
            AllocKind::Region,
            label,
            region.map.as_ptr() as usize,
            region.map.len(),
        )
        .with_node(node);
        region.id = registry::register(Allocation {
            policy: InlineStr::display(&region.policy),
            ..record
        });
        Ok(region)
    }
}

impl<T: bytemuck::Pod> Region<T> {
    /// A builder for a region of `len` elements (policy Local over the machine's
    /// RSet until told otherwise).
    pub fn builder(len: usize) -> RegionBuilder<T> {
        RegionBuilder {
            len,
            policy: Ok(Policy::Local),
            rset: None,
            label: None,
            lock: false,
            populate: true,
            _elements: PhantomData,
        }
    }

    /// `len` elements placed by `policy` over the machine's RSet, populated,
    /// labelled with the caller's source location.
    ///
    /// # Errors
    /// As [`RegionBuilder::build`].
    #[track_caller]
    pub fn new(len: usize, policy: Policy) -> Result<Region<T>, RegionError> {
        Region::builder(len).policy(policy).build()
    }

    /// `len` elements placed by `policy` over `rset`, populated.
    ///
    /// # Errors
    /// As [`RegionBuilder::build`].
    #[track_caller]
    pub fn new_in(len: usize, policy: Policy, rset: &RSet) -> Result<Region<T>, RegionError> {
        Region::builder(len).policy(policy).rset(rset).build()
    }
}
