//! Views of Ocean's shared grids, element by element, as the original's threads see them.
//!
//! Ocean's threads share every grid: each thread writes only its own subgrids, and reads
//! its neighbours' border points, with barriers between the phases, exactly as the C
//! program does. A Rust reference to a whole subgrid cannot express that (a neighbour
//! reads the border points of a row while its owner updates the other points of the same
//! row), so the grids are seen as arrays of the framework's [`Cell64`]: relaxed atomic
//! loads and stores, never a reference to more than one element, ordered by the
//! barriers ([`crate::framework::Shared::cells`]).

use crate::framework::Cell64;

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

/// Copies of consecutive rows of a plane in plain `f64`, for stencils: the cells are
/// read once per row into the window (relaxed loads, plain moves), so the arithmetic
/// runs on plain slices that the compiler vectorises.
pub(crate) struct Rows<const K: usize> {
    rows: [Vec<f64>; K],
}

impl<const K: usize> Rows<K> {
    /// Rows `first..first + K` of `plane`.
    pub(crate) fn new(plane: &Plane<'_>, first: usize) -> Rows<K> {
        Rows {
            rows: std::array::from_fn(|k| plane.row(first + k).iter().map(Cell64::get).collect()),
        }
    }

    /// Row `k` of the window.
    #[inline(always)]
    pub(crate) fn row(&self, k: usize) -> &[f64] {
        &self.rows[k]
    }

    /// Moves the window one row down: row `next` of `plane` comes in last.
    pub(crate) fn advance(&mut self, plane: &Plane<'_>, next: usize) {
        self.rows.rotate_left(1);
        load(plane.row(next), &mut self.rows[K - 1]);
    }
}

/// `buf = src`, cell by cell.
#[inline(always)]
pub(crate) fn load(src: &[Cell64], buf: &mut [f64]) {
    for (b, c) in buf.iter_mut().zip(src) {
        *b = c.get();
    }
}

/// `dst = buf`, cell by cell.
#[inline(always)]
pub(crate) fn store(dst: &[Cell64], buf: &[f64]) {
    for (c, b) in dst.iter().zip(buf) {
        c.set(*b);
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
