//! Views of Ocean's shared grids, element by element, as the original's threads see them.
//!
//! # Safety
//!
//! Ocean's threads share every grid: each thread writes only its own subgrids, and reads
//! its neighbours' border points, with barriers between the phases, exactly as the C
//! program does. A Rust reference to a whole subgrid cannot express that (a neighbour
//! reads the border points of a row while its owner updates the other points of the same
//! row), so the grids are seen as arrays of [`Cell64`], an `UnsafeCell<f64>` shared
//! between threads: reads and writes go through raw pointers and never assert exclusive
//! access to more than the one element.
//!
//! What remains is the rule that no element is written by one thread while another reads
//! or writes it without a barrier in between. The views are created by the one `unsafe`
//! function [`cells`], whose caller takes on that rule for the whole run; the port keeps
//! the original's phases and barriers to honour it.

use std::cell::UnsafeCell;

use crate::framework::Shared;

/// One `f64` of a shared grid (same layout as `f64`).
#[repr(transparent)]
pub(crate) struct Cell64(UnsafeCell<f64>);

// SAFETY: the element is only accessed through `get` and `set`, which copy the value in
// or out; concurrent accesses are ordered by the program's barriers (module rule above).
unsafe impl Sync for Cell64 {}

impl Cell64 {
    /// Reads the element.
    #[inline(always)]
    pub(crate) fn get(&self) -> f64 {
        // SAFETY: valid, aligned f64; no thread writes it concurrently (module rule).
        unsafe { *self.0.get() }
    }

    /// Writes the element.
    #[inline(always)]
    pub(crate) fn set(&self, v: f64) {
        // SAFETY: valid, aligned f64; no thread accesses it concurrently (module rule).
        unsafe { *self.0.get() = v }
    }
}

/// The whole of a shared array as cells.
///
/// # Safety
///
/// For as long as the returned slice lives, no element may be written by one thread while
/// another thread reads or writes it, unless a barrier separates the two accesses.
pub(crate) unsafe fn cells(shared: &Shared<f64>) -> &[Cell64] {
    let len = shared.len();
    let ptr = shared.as_ptr().cast::<Cell64>().cast_const();
    // SAFETY: `Shared` owns `len` initialised (zeroed) f64 for as long as it is borrowed;
    // Cell64 is a transparent UnsafeCell<f64>, so it has f64's layout and allows shared
    // mutation through `&`; the concurrency rule is the caller's (see above).
    unsafe { std::slice::from_raw_parts(ptr, len) }
}

/// One subgrid: `rows` x `cols` cells, row-major.
#[derive(Clone, Copy)]
pub(crate) struct Plane<'a> {
    cells: &'a [Cell64],
    cols: usize,
}

impl<'a> Plane<'a> {
    pub(crate) fn new(cells: &'a [Cell64], cols: usize) -> Plane<'a> {
        Plane { cells, cols }
    }

    /// Row `i` (all `cols` cells).
    #[inline(always)]
    pub(crate) fn row(&self, i: usize) -> &'a [Cell64] {
        &self.cells[i * self.cols..(i + 1) * self.cols]
    }

    #[inline(always)]
    pub(crate) fn get(&self, i: usize, j: usize) -> f64 {
        self.cells[i * self.cols + j].get()
    }

    #[inline(always)]
    pub(crate) fn set(&self, i: usize, j: usize, v: f64) {
        self.cells[i * self.cols + j].set(v)
    }
}

/// A labelled grid array: for every thread, `nsub` finest-level subgrids side by side
/// (`psi` has two: psi1 and psi3), each thread's block padded to whole pages.
#[derive(Clone, Copy)]
pub(crate) struct Field<'a> {
    cells: &'a [Cell64],
    block: usize,
    plane: usize,
    cols: usize,
}

impl<'a> Field<'a> {
    pub(crate) fn new(cells: &'a [Cell64], layout: &FieldLayout) -> Field<'a> {
        Field {
            cells,
            block: layout.block,
            plane: layout.plane_len[0],
            cols: layout.cols[0],
        }
    }

    /// Subgrid `sub` of thread `p`.
    #[inline]
    pub(crate) fn plane(&self, p: usize, sub: usize) -> Plane<'a> {
        let start = p * self.block + sub * self.plane;
        Plane::new(&self.cells[start..start + self.plane], self.cols)
    }
}

/// A multigrid array (`q_multi`, `rhs_multi`): for every thread, its subgrid on every level,
/// coarsest first, in one page-padded block.
#[derive(Clone)]
pub(crate) struct MgField<'a> {
    cells: &'a [Cell64],
    layout: FieldLayout,
}

impl<'a> MgField<'a> {
    pub(crate) fn new(cells: &'a [Cell64], layout: &FieldLayout) -> MgField<'a> {
        MgField {
            cells,
            layout: layout.clone(),
        }
    }

    /// Thread `p`'s subgrid on level `k`.
    #[inline]
    pub(crate) fn level(&self, p: usize, k: usize) -> Plane<'a> {
        let start = p * self.layout.block + self.layout.offset[k];
        Plane::new(
            &self.cells[start..start + self.layout.plane_len[k]],
            self.layout.cols[k],
        )
    }
}

/// Doubles per page: each thread's block starts on a page, so `--layout reorg` can give
/// every page to exactly one thread's node.
pub(crate) const PAGE_DOUBLES: usize = 4096 / std::mem::size_of::<f64>();

/// Where the subgrids of one array lie: per thread a block of `block` elements holding
/// planes of `plane_len[s]` elements (`cols[s]` per row) at `offset[s]`.
#[derive(Clone, Debug)]
pub(crate) struct FieldLayout {
    pub(crate) block: usize,
    pub(crate) offset: Vec<usize>,
    pub(crate) plane_len: Vec<usize>,
    pub(crate) cols: Vec<usize>,
}

impl FieldLayout {
    /// Planes of `rows[s]` x `cols[s]`, one after the other, per thread.
    pub(crate) fn new(dims: &[(usize, usize)]) -> Option<FieldLayout> {
        let mut offset = Vec::with_capacity(dims.len());
        let mut plane_len = Vec::with_capacity(dims.len());
        let mut at = 0usize;
        for &(rows, cols) in dims {
            let len = rows.checked_mul(cols)?;
            offset.push(at);
            plane_len.push(len);
            at = at.checked_add(len)?;
        }
        let block = at.checked_next_multiple_of(PAGE_DOUBLES)?;
        Some(FieldLayout {
            block,
            offset,
            plane_len,
            cols: dims.iter().map(|d| d.1).collect(),
        })
    }
}
