//! [`Region`]: the owned, mapped, typed array, its accessors and the traits that
//! make it a slice.

use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};

use crate::policy::{Layout, Policy};
use crate::registry::{self, AllocId};
use crate::sys::mman::{self, Mapping};

/// An owned array of `len` elements of `T` in its own anonymous mapping (a whole
/// number of pages), every page placed by a policy before first touch (see the
/// module docs). Derefs to `[T]`; unmapped and unregistered on drop.
///
/// `T` is [`bytemuck::Pod`]: the memory starts as zeros, which must be a valid `T`.
pub struct Region<T> {
    pub(super) map: Mapping,
    pub(super) len: usize,
    pub(super) layout: Layout,
    pub(super) policy: Policy,
    pub(super) populated: bool,
    pub(super) locked: bool,
    pub(super) id: AllocId,
    pub(super) _elements: PhantomData<T>,
}

/// A region of bytes.
pub type ByteRegion = Region<u8>;

impl<T: bytemuck::Pod> Region<T> {
    /// The elements.
    pub fn as_slice(&self) -> &[T] {
        bytemuck::cast_slice(&self.map.bytes()[..self.len * size_of::<T>()])
    }

    /// The elements, writable.
    pub fn as_mut_slice(&mut self) -> &mut [T] {
        let n = self.len * size_of::<T>();
        bytemuck::cast_slice_mut(&mut self.map.bytes_mut()[..n])
    }

    /// The first element.
    pub fn as_ptr(&self) -> *const T {
        self.map.as_ptr().cast()
    }

    /// The first element, for writing.
    pub fn as_mut_ptr(&mut self) -> *mut T {
        self.map.bytes_mut().as_mut_ptr().cast()
    }
}

impl<T> Region<T> {
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always false: a region has at least one element.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Number of pages mapped.
    pub fn pages(&self) -> usize {
        self.map.len() / mman::page_size()
    }

    /// Bytes mapped (whole pages; at least `len * size_of::<T>()`).
    pub fn mapped_bytes(&self) -> usize {
        self.map.len()
    }

    /// The layout its pages follow.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The policy it was made (or last re-placed) with.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Its id in the [`registry`].
    pub fn id(&self) -> AllocId {
        self.id
    }

    /// Whether its pages are locked in memory.
    pub fn is_locked(&self) -> bool {
        self.locked
    }

    /// Whether every page was faulted in (at build or by [`Region::replace`]).
    pub fn is_populated(&self) -> bool {
        self.populated
    }
}

impl<T> Drop for Region<T> {
    fn drop(&mut self) {
        registry::unregister(self.id);
        // The mapping unmaps itself.
    }
}

impl<T: bytemuck::Pod> Deref for Region<T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        self.as_slice()
    }
}

impl<T: bytemuck::Pod> DerefMut for Region<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        self.as_mut_slice()
    }
}

impl<T: bytemuck::Pod> AsRef<[T]> for Region<T> {
    fn as_ref(&self) -> &[T] {
        self.as_slice()
    }
}

impl<T: bytemuck::Pod> AsMut<[T]> for Region<T> {
    fn as_mut(&mut self) -> &mut [T] {
        self.as_mut_slice()
    }
}

impl<T> fmt::Debug for Region<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Region")
            .field("addr", &self.map.as_ptr())
            .field("len", &self.len)
            .field("pages", &self.pages())
            .field("policy", &self.policy)
            .field("layout", &self.layout)
            .field("populated", &self.populated)
            .field("locked", &self.locked)
            .field("id", &self.id)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::region::RegionBuilder;
    use crate::region::RegionError;

    #[test]
    fn regions_cross_threads_like_their_elements() {
        fn send_sync<X: Send + Sync>() {}
        send_sync::<Region<f64>>();
        send_sync::<RegionBuilder<u8>>();
        send_sync::<RegionError>();
    }
}
