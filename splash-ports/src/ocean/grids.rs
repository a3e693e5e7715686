//! Views of Ocean's shared grids, as the original's threads use them.
//!
//! Every grid is one framework [`Shared`] array with one page-padded block per thread
//! (its range of the array's partition), holding that thread's subgrids, ghost ring
//! included. As in the C program, a thread computes only on its own subgrids, and gets
//! its neighbours' edge points into its own ghost ring by halo copies. Both are phase
//! views of the framework:
//!
//! - a compute phase takes each array's own block mutably ([`Field::own`],
//!   [`MgField::own`]): plain slices ([`Grid`]) that the compiler optimises;
//! - a halo copy is two steps: in a phase of its own every thread reads the neighbours'
//!   edge points of the whole array ([`Field::read`], [`MgField::read`]) into a private
//!   [`Ghosts`]; after the barrier that ends it, the thread writes them into its own
//!   ghost ring ([`Ghosts::apply`]) in the compute phase that needs them.
//!
//! A view that breaks this (a read of the whole array in a phase where its blocks are
//! written) panics in the framework, naming the array.

use crate::framework::{Proc, Shared};

/// One subgrid of a thread's own block, mutably: `rows` x `cols`, row-major.
pub(crate) struct Grid<'a> {
    data: &'a mut [f64],
    cols: usize,
}

impl<'a> Grid<'a> {
    fn new(data: &'a mut [f64], cols: usize) -> Grid<'a> {
        Grid { data, cols }
    }

    /// Row `i` (all `cols` points).
    #[inline(always)]
    pub(crate) fn row(&self, i: usize) -> &[f64] {
        &self.data[i * self.cols..(i + 1) * self.cols]
    }

    /// Row `i`, mutably.
    #[inline(always)]
    pub(crate) fn row_mut(&mut self, i: usize) -> &mut [f64] {
        &mut self.data[i * self.cols..(i + 1) * self.cols]
    }

    /// Rows `i - 1` and `i + 1`, and row `i` mutably between them.
    #[inline(always)]
    pub(crate) fn rows3(&mut self, i: usize) -> (&[f64], &mut [f64], &[f64]) {
        let c = self.cols;
        let (up, rest) = self.data[(i - 1) * c..(i + 2) * c].split_at_mut(c);
        let (mid, down) = rest.split_at_mut(c);
        (up, mid, down)
    }

    /// Rows `i` and `i + 1`, both mutably.
    #[inline(always)]
    pub(crate) fn rows2(&mut self, i: usize) -> (&mut [f64], &mut [f64]) {
        let c = self.cols;
        self.data[i * c..(i + 2) * c].split_at_mut(c)
    }

    #[inline(always)]
    pub(crate) fn set(&mut self, i: usize, j: usize, v: f64) {
        self.data[i * self.cols + j] = v;
    }

    /// The subgrid, read-only.
    #[inline(always)]
    pub(crate) fn view(&self) -> View<'_> {
        View {
            data: self.data,
            cols: self.cols,
        }
    }
}

/// One subgrid, read-only: a thread's own, or a neighbour's in a read phase.
#[derive(Clone, Copy)]
pub(crate) struct View<'a> {
    data: &'a [f64],
    cols: usize,
}

impl<'a> View<'a> {
    /// Row `i` (all `cols` points).
    #[inline(always)]
    pub(crate) fn row(&self, i: usize) -> &'a [f64] {
        &self.data[i * self.cols..(i + 1) * self.cols]
    }

    #[inline(always)]
    pub(crate) fn get(&self, i: usize, j: usize) -> f64 {
        self.data[i * self.cols + j]
    }
}

/// Ghost-ring points fetched from the neighbours in a read phase, to be written into the
/// thread's own subgrid after the barrier: (index in the subgrid, value), in the order
/// the original writes them (a later write of a point wins, as there).
#[derive(Default)]
pub(crate) struct Ghosts {
    cols: usize,
    vals: Vec<(usize, f64)>,
}

impl Ghosts {
    /// Empty, for a subgrid of `cols` columns.
    pub(crate) fn new(cols: usize) -> Ghosts {
        Ghosts {
            cols,
            vals: Vec::new(),
        }
    }

    /// Empties it for a subgrid of `cols` columns (keeping its memory).
    pub(crate) fn reset(&mut self, cols: usize) {
        self.cols = cols;
        self.vals.clear();
    }

    /// Point `(i, j)` of the own subgrid gets `v`.
    #[inline(always)]
    pub(crate) fn put(&mut self, i: usize, j: usize, v: f64) {
        self.vals.push((i * self.cols + j, v));
    }

    /// Writes the points into `g`, the own subgrid they were fetched for.
    pub(crate) fn apply(&self, g: &mut Grid<'_>) {
        debug_assert_eq!(g.cols, self.cols, "ghosts of another subgrid");
        for &(at, v) in &self.vals {
            g.data[at] = v;
        }
    }
}

/// A labelled grid array: for every thread, `nsub` finest-level subgrids side by side
/// (`psi` has two: psi1 and psi3), each thread's block padded to whole pages.
#[derive(Clone, Copy)]
pub(crate) struct Field<'a> {
    shared: &'a Shared<f64>,
    nsub: usize,
    block: usize,
    plane: usize,
    cols: usize,
}

impl<'a> Field<'a> {
    pub(crate) fn new(shared: &'a Shared<f64>, layout: &FieldLayout) -> Field<'a> {
        Field {
            shared,
            nsub: layout.plane_len.len(),
            block: layout.block,
            plane: layout.plane_len[0],
            cols: layout.cols[0],
        }
    }

    /// The calling thread's `N` subgrids (all of them), mutably, for this phase.
    pub(crate) fn own<'s, const N: usize>(&'s self, p: &'s Proc<'_>) -> [Grid<'s>; N] {
        assert_eq!(N, self.nsub, "array `{}`: subgrids", self.shared.label());
        let mut parts = self.shared.own_mut(p).chunks_exact_mut(self.plane);
        std::array::from_fn(|_| Grid::new(parts.next().expect("N subgrids"), self.cols))
    }

    /// Every thread's subgrids, read-only, for this phase.
    pub(crate) fn read<'s>(&'s self, p: &'s Proc<'_>) -> FieldView<'s> {
        FieldView {
            data: self.shared.read_all(p),
            block: self.block,
            plane: self.plane,
            cols: self.cols,
        }
    }
}

/// Every thread's subgrids of a [`Field`], read-only.
#[derive(Clone, Copy)]
pub(crate) struct FieldView<'a> {
    data: &'a [f64],
    block: usize,
    plane: usize,
    cols: usize,
}

impl<'a> FieldView<'a> {
    /// Subgrid `sub` of thread `p`.
    #[inline]
    pub(crate) fn plane(&self, p: usize, sub: usize) -> View<'a> {
        let start = p * self.block + sub * self.plane;
        View {
            data: &self.data[start..start + self.plane],
            cols: self.cols,
        }
    }
}

/// A multigrid array (`q_multi`, `rhs_multi`): for every thread, its subgrid on every level,
/// coarsest first, in one page-padded block.
#[derive(Clone)]
pub(crate) struct MgField<'a> {
    shared: &'a Shared<f64>,
    layout: FieldLayout,
}

impl<'a> MgField<'a> {
    pub(crate) fn new(shared: &'a Shared<f64>, layout: &FieldLayout) -> MgField<'a> {
        MgField {
            shared,
            layout: layout.clone(),
        }
    }

    /// The calling thread's subgrids on all levels, mutably, for this phase.
    pub(crate) fn own<'s>(&'s self, p: &'s Proc<'_>) -> MgOwn<'s> {
        MgOwn {
            data: self.shared.own_mut(p),
            layout: &self.layout,
        }
    }

    /// Every thread's subgrids on all levels, read-only, for this phase.
    pub(crate) fn read<'s>(&'s self, p: &'s Proc<'_>) -> MgView<'s> {
        MgView {
            data: self.shared.read_all(p),
            layout: &self.layout,
        }
    }
}

/// A thread's own block of a [`MgField`].
pub(crate) struct MgOwn<'a> {
    data: &'a mut [f64],
    layout: &'a FieldLayout,
}

impl MgOwn<'_> {
    /// Level `k`, mutably.
    pub(crate) fn level(&mut self, k: usize) -> Grid<'_> {
        let l = self.layout;
        Grid::new(
            &mut self.data[l.offset[k]..l.offset[k] + l.plane_len[k]],
            l.cols[k],
        )
    }

    /// Levels `kc` and `kc + 1`, both mutably.
    pub(crate) fn pair(&mut self, kc: usize) -> (Grid<'_>, Grid<'_>) {
        let l = self.layout;
        let (coarse, fine) = self.data.split_at_mut(l.offset[kc + 1]);
        (
            Grid::new(
                &mut coarse[l.offset[kc]..l.offset[kc] + l.plane_len[kc]],
                l.cols[kc],
            ),
            Grid::new(&mut fine[..l.plane_len[kc + 1]], l.cols[kc + 1]),
        )
    }
}

/// Every thread's block of a [`MgField`], read-only.
#[derive(Clone, Copy)]
pub(crate) struct MgView<'a> {
    data: &'a [f64],
    layout: &'a FieldLayout,
}

impl<'a> MgView<'a> {
    /// Thread `p`'s subgrid on level `k`.
    #[inline]
    pub(crate) fn level(&self, p: usize, k: usize) -> View<'a> {
        let l = self.layout;
        let start = p * l.block + l.offset[k];
        View {
            data: &self.data[start..start + l.plane_len[k]],
            cols: l.cols[k],
        }
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
