//! The allocator's internals, under [`crate::NumaAlloc`] and [`crate::cmalloc`]:
//! where a block's memory comes from (per-node mimalloc arenas, direct mappings),
//! how a policy becomes a placement, and the block operations both front ends
//! forward to.
//!
//! Everything here runs inside the global allocator, so nothing here allocates
//! through it: tables are fixed-size, node sets are 64-bit masks, errors are
//! `Copy` values, and the raw calls are the allocation-free ones of `crate::sys`.
//!
//! The files that hold `unsafe` code, each with its `# Safety` paragraph:
//! [`mi`] (mimalloc's arena and heap API, the CPU-to-heap cache), [`block`]
//! (freeing and resizing a block the caller vouches for) and [`thread_policy`]
//! (the thread's policy pointer). The rest is safe code: [`class`] (small or
//! direct), [`machine`] (the nodes, from sysfs), [`arena`] (one arena per node),
//! [`place`] (policies resolved into placements, large blocks mapped),
//! [`enforce`], [`alloc`] and [`record`].

pub(crate) mod alloc;
pub(crate) mod arena;
pub(crate) mod block;
pub(crate) mod class;
pub(crate) mod enforce;
pub(crate) mod machine;
pub(crate) mod mi;
pub(crate) mod place;
pub(crate) mod record;
pub(crate) mod thread_policy;
