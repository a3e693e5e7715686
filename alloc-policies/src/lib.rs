//! Memory placement policies of the IBM ccNUMA paper (Float, Local, Remote,
//! Striped with a stride of k pages) over resource sets.
//!
//! [`Policy`] names where memory should come from; [`Policy::resolve`] turns it, for
//! one RSet and one allocating thread, into a [`Layout`] that says exactly which node
//! each page must be on.
//!
//! Two ways to get placed memory:
//!
//! - [`Region`]: an owned, mmap-backed, typed array placed *before first touch* and
//!   verified page by page ([`Region::locate`], [`Region::verify`]); exact striping in a
//!   single mapping (no `vm.max_map_count` trouble), re-placement ([`Region::replace`]),
//!   optional locking, and an entry in the allocation [`registry`] that monitors use
//!   to name data areas.
//! - [`NumaAlloc`]: a `#[global_allocator]` (and allocator-api2 `Allocator`) whose
//!   placement follows the calling thread's policy, set for a scope with
//!   [`with_policy`]; small objects come from per-node mimalloc arenas with thread
//!   caches, large ones are mapped directly with the policy's page layout.
//!
//! ```no_run
//! use alloc_policies::{with_policy, NumaAlloc, Policy, Region, Stride};
//!
//! #[global_allocator]
//! static A: NumaAlloc = NumaAlloc::new();
//!
//! let grid: Region<f64> = Region::builder(1 << 20)
//!     .policy(Policy::Striped { stride_pages: Stride::new(4)? })
//!     .label("ocean.psi")
//!     .build()?;
//! let far = with_policy(Policy::Remote, || vec![0u8; 1 << 20]);
//! # drop((grid, far));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]
#![deny(unsafe_code)]

pub mod cmalloc;
mod engine;
mod error;
pub mod global;
pub mod policy;
pub mod region;
pub mod registry;
pub mod sys;

pub use global::{
    LARGE_THRESHOLD, MAX_NODES, NumaAlloc, NumaAllocError, PolicyAlloc, current_policy,
    set_thread_policy, with_policy,
};
pub use policy::{Layout, Policy, PolicyError, Stride, current_node};
pub use region::{ByteRegion, PageStatus, Region, RegionBuilder, RegionError, locate};
