//! The original's `laplacalc.C` and `jacobcalc.C`/`jacobcalc2.C` (the Laplacian and the
//! Arakawa Jacobian of a thread's subgrid), and the ghost-ring fetches they and the
//! multigrid's `copy_borders` share (the first half of a halo copy, `grids.rs`).

use super::geometry::{DOWN, DOWNLEFT, DOWNRIGHT, LEFT, RIGHT, UP, UPLEFT, UPRIGHT};
use super::grids::{Field, Ghosts, Grid, View};
use super::slave::Worker;

impl Worker<'_, '_, '_> {
    /// Laplacian of `x`, a finest-level subgrid whose ghost edges are in place, into `z`;
    /// `z` is zero on the ocean's edges.
    pub(crate) fn laplacalc(&self, x: View<'_>, z: &mut Grid<'_>) {
        let (im, jm) = (self.im, self.jm);
        let (lastrow, lastcol) = (im - 2, jm - 2);
        let factlap = self.team.c.factlap;
        let n = lastcol;
        for i in 1..=lastrow {
            // Exact-length windows of points 1..=n, in the original's order of sums.
            let row = x.row(i);
            let (al, a, ar) = (&row[0..n], &row[1..=n], &row[2..n + 2]);
            let up = &x.row(i - 1)[1..=n];
            let dn = &x.row(i + 1)[1..=n];
            let b = &mut z.row_mut(i)[1..=n];
            for k in 0..n {
                b[k] = factlap * (dn[k] + up[k] + ar[k] + al[k] - 4.0 * a[k]);
            }
        }
        self.zero_edges(z, im, jm);
    }

    /// Sets the edges (not the corners) of `z` that lie on the ocean's boundary to zero.
    fn zero_edges(&self, z: &mut Grid<'_>, im: usize, jm: usize) {
        let (lastrow, lastcol) = (im - 2, jm - 2);
        if self.edge(UP) {
            z.row_mut(0)[1..=lastcol].fill(0.0);
        }
        if self.edge(DOWN) {
            z.row_mut(im - 1)[1..=lastcol].fill(0.0);
        }
        if self.edge(LEFT) {
            for i in 1..=lastrow {
                z.set(i, 0, 0.0);
            }
        }
        if self.edge(RIGHT) {
            for i in 1..=lastrow {
                z.set(i, jm - 1, 0.0);
            }
        }
    }

    /// The neighbours' border rows and columns for the ghost ring of an `im` x `jm`
    /// subgrid (edges only, no corners), as the original copies them before a 5-point
    /// stencil. `nb(p)` is thread `p`'s subgrid of the same array.
    pub(crate) fn fetch_edges<'v>(
        &self,
        nb: &impl Fn(usize) -> View<'v>,
        im: usize,
        jm: usize,
        out: &mut Ghosts,
    ) {
        let (lastrow, lastcol) = (im - 2, jm - 2);
        if let Some(n) = self.info.nb[UP] {
            for (j, &v) in nb(n)
                .row(im - 2)
                .iter()
                .enumerate()
                .take(lastcol + 1)
                .skip(1)
            {
                out.put(0, j, v);
            }
        }
        if let Some(n) = self.info.nb[DOWN] {
            for (j, &v) in nb(n).row(1).iter().enumerate().take(lastcol + 1).skip(1) {
                out.put(im - 1, j, v);
            }
        }
        if let Some(n) = self.info.nb[LEFT] {
            let src = nb(n);
            for i in 1..=lastrow {
                out.put(i, 0, src.get(i, jm - 2));
            }
        }
        if let Some(n) = self.info.nb[RIGHT] {
            let src = nb(n);
            for i in 1..=lastrow {
                out.put(i, jm - 1, src.get(i, 1));
            }
        }
    }

    /// The whole ghost ring of an `im` x `jm` subgrid: corners from the diagonal
    /// neighbours, the corners on the ocean's edge from the side neighbours (the
    /// original's special cases, kept as they are), then the edges.
    pub(crate) fn fetch_ghosts<'v>(
        &self,
        nb: &impl Fn(usize) -> View<'v>,
        im: usize,
        jm: usize,
        out: &mut Ghosts,
    ) {
        let n = &self.info.nb;
        if let Some(p) = n[UPLEFT] {
            out.put(0, 0, nb(p).get(im - 2, jm - 2));
        }
        if let Some(p) = n[UPRIGHT] {
            out.put(0, jm - 1, nb(p).get(im - 2, 1));
        }
        if let Some(p) = n[DOWNLEFT] {
            out.put(im - 1, 0, nb(p).get(1, jm - 2));
        }
        if let Some(p) = n[DOWNRIGHT] {
            out.put(im - 1, jm - 1, nb(p).get(1, 1));
        }

        if self.edge(UP) {
            if let Some(p) = n[LEFT] {
                out.put(0, 0, nb(p).get(0, jm - 2));
            } else if let Some(p) = n[DOWN] {
                out.put(im - 1, 0, nb(p).get(1, 0));
            }
            if let Some(p) = n[RIGHT] {
                out.put(0, jm - 1, nb(p).get(0, 1));
            } else if let Some(p) = n[DOWN] {
                out.put(im - 1, jm - 1, nb(p).get(1, jm - 1));
            }
        } else if self.edge(DOWN) {
            if let Some(p) = n[LEFT] {
                out.put(im - 1, 0, nb(p).get(im - 1, jm - 2));
            } else if let Some(p) = n[UP] {
                out.put(0, 0, nb(p).get(im - 2, 0));
            }
            if let Some(p) = n[RIGHT] {
                out.put(im - 1, jm - 1, nb(p).get(im - 1, 1));
            } else if let Some(p) = n[UP] {
                out.put(0, jm - 1, nb(p).get(im - 2, jm - 1));
            }
        } else if self.edge(LEFT) {
            if let Some(p) = n[UP] {
                out.put(0, 0, nb(p).get(im - 2, 0));
            }
            if let Some(p) = n[DOWN] {
                out.put(im - 1, 0, nb(p).get(1, 0));
            }
        } else if self.edge(RIGHT) {
            if let Some(p) = n[UP] {
                out.put(0, jm - 1, nb(p).get(im - 2, jm - 1));
            }
            if let Some(p) = n[DOWN] {
                out.put(im - 1, jm - 1, nb(p).get(1, jm - 1));
            }
        }

        self.fetch_edges(nb, im, jm, out);
    }

    /// A read phase's half of the halo copy of the finest-level array `x`: every one of
    /// its `N` subgrids' ghost edges (`corners`: the whole ring).
    pub(crate) fn fetch_field<const N: usize>(&self, x: &Field<'_>, corners: bool) -> [Ghosts; N] {
        let (im, jm) = (self.im, self.jm);
        let all = x.read(&*self.proc);
        std::array::from_fn(|s| {
            let mut out = Ghosts::new(jm);
            let nb = |p: usize| all.plane(p, s);
            if corners {
                self.fetch_ghosts(&nb, im, jm, &mut out);
            } else {
                self.fetch_edges(&nb, im, jm, &mut out);
            }
            out
        })
    }

    /// Arakawa Jacobian of `x` and `y` (finest level, ghost rings in place) into `z`.
    pub(crate) fn jacobcalc(&self, x: View<'_>, y: View<'_>, z: &mut Grid<'_>) {
        let (im, jm) = (self.im, self.jm);
        let (lastrow, lastcol) = (im - 2, jm - 2);
        self.zero_corners_of(z, im, jm);

        let factjacob = self.team.c.factjacob;
        let n = lastcol;
        // Left, centre and right windows (exact length n) of a row around points 1..=n.
        fn w3(r: &[f64], n: usize) -> [&[f64]; 3] {
            [&r[0..n], &r[1..=n], &r[2..n + 2]]
        }
        for i in 1..=lastrow {
            let [al, a, ar] = w3(x.row(i), n);
            let [bl, _, br] = w3(y.row(i), n);
            let [dl, d, dr] = w3(y.row(i + 1), n);
            let [el, e, er] = w3(y.row(i - 1), n);
            let [fl, f, fr] = w3(x.row(i + 1), n);
            let [gl, g, gr] = w3(x.row(i - 1), n);
            let c = &mut z.row_mut(i)[1..=n];
            for k in 0..n {
                let ak = a[k];
                let f1 = (bl[k] + dl[k] - br[k] - dr[k]) * (f[k] - ak);
                let f2 = (el[k] + bl[k] - er[k] - br[k]) * (ak - g[k]);
                let f3 = (d[k] + dr[k] - e[k] - er[k]) * (ar[k] - ak);
                let f4 = (dl[k] + d[k] - el[k] - e[k]) * (ak - al[k]);
                let f5 = (d[k] - br[k]) * (fr[k] - ak);
                let f6 = (bl[k] - e[k]) * (ak - gl[k]);
                let f7 = (br[k] - e[k]) * (gr[k] - ak);
                let f8 = (d[k] - bl[k]) * (ak - fl[k]);
                c[k] = factjacob * (f1 + f2 + f3 + f4 + f5 + f6 + f7 + f8);
            }
        }
        self.zero_edges(z, im, jm);
    }

    /// Sets the corners of an `im` x `jm` subgrid that lie on the ocean's corners to zero.
    pub(crate) fn zero_corners_of(&self, a: &mut Grid<'_>, im: usize, jm: usize) {
        if self.edge(UP) && self.edge(LEFT) {
            a.set(0, 0, 0.0);
        }
        if self.edge(DOWN) && self.edge(LEFT) {
            a.set(im - 1, 0, 0.0);
        }
        if self.edge(UP) && self.edge(RIGHT) {
            a.set(0, jm - 1, 0.0);
        }
        if self.edge(DOWN) && self.edge(RIGHT) {
            a.set(im - 1, jm - 1, 0.0);
        }
    }
}
