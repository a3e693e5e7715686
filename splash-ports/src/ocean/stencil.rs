//! The original's `laplacalc.C` and `jacobcalc.C`/`jacobcalc2.C` (the Laplacian and the
//! Arakawa Jacobian of a thread's subgrid), and the ghost-border exchange with corners
//! that the Jacobian and the multigrid's `copy_borders` share.

use super::cells::{Field, Plane, Rows, store};
use super::geometry::{DOWN, DOWNLEFT, DOWNRIGHT, LEFT, RIGHT, UP, UPLEFT, UPRIGHT};
use super::slave::Worker;

impl<'a> Worker<'_, 'a, '_> {
    /// Laplacian of subgrid `s` of `x` into subgrid `s` of `z` (finest level), after
    /// fetching `x`'s ghost edges from the neighbours; `z` is zero on the ocean's edges.
    pub(crate) fn laplacalc(&self, x: Field<'a>, z: Field<'a>, s: usize) {
        let (im, jm) = (self.im, self.jm);
        let (lastrow, lastcol) = (im - 2, jm - 2);
        let own = x.plane(self.id, s);
        self.exchange_edges(own, &|p| x.plane(p, s), im, jm);

        let out = z.plane(self.id, s);
        let factlap = self.team.c.factlap;
        let n = lastcol;
        for i in 1..=lastrow {
            // Exact-length windows of points 1..=n; each cell of row i read once (the
            // left and centre values slide along), in the original's order of sums.
            let a = own.row(i);
            let up = &own.row(i - 1)[1..=n];
            let dn = &own.row(i + 1)[1..=n];
            let b = &out.row(i)[1..=n];
            let (mut al, mut ac) = (a[0].get(), a[1].get());
            for (((bk, dk), uk), rk) in b.iter().zip(dn).zip(up).zip(&a[2..n + 2]) {
                let ar = rk.get();
                bk.set(factlap * (dk.get() + uk.get() + ar + al - 4.0 * ac));
                (al, ac) = (ac, ar);
            }
        }
        self.zero_edges(out, im, jm);
    }

    /// Sets the edges (not the corners) of `z` that lie on the ocean's boundary to zero.
    fn zero_edges(&self, z: Plane<'_>, im: usize, jm: usize) {
        let (lastrow, lastcol) = (im - 2, jm - 2);
        if self.edge(UP) {
            for c in &z.row(0)[1..=lastcol] {
                c.set(0.0);
            }
        }
        if self.edge(DOWN) {
            for c in &z.row(im - 1)[1..=lastcol] {
                c.set(0.0);
            }
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

    /// Fills the whole ghost border of `own` (an `im` x `jm` subgrid): corners from the
    /// diagonal neighbours, the corners on the ocean's edge from the side neighbours (the
    /// original's special cases, kept as they are), then the edges.
    pub(crate) fn exchange_ghosts(
        &self,
        own: Plane<'_>,
        nb: &impl Fn(usize) -> Plane<'a>,
        im: usize,
        jm: usize,
    ) {
        let n = &self.info.nb;
        if let Some(p) = n[UPLEFT] {
            own.set(0, 0, nb(p).get(im - 2, jm - 2));
        }
        if let Some(p) = n[UPRIGHT] {
            own.set(0, jm - 1, nb(p).get(im - 2, 1));
        }
        if let Some(p) = n[DOWNLEFT] {
            own.set(im - 1, 0, nb(p).get(1, jm - 2));
        }
        if let Some(p) = n[DOWNRIGHT] {
            own.set(im - 1, jm - 1, nb(p).get(1, 1));
        }

        if self.edge(UP) {
            if let Some(p) = n[LEFT] {
                own.set(0, 0, nb(p).get(0, jm - 2));
            } else if let Some(p) = n[DOWN] {
                own.set(im - 1, 0, nb(p).get(1, 0));
            }
            if let Some(p) = n[RIGHT] {
                own.set(0, jm - 1, nb(p).get(0, 1));
            } else if let Some(p) = n[DOWN] {
                own.set(im - 1, jm - 1, nb(p).get(1, jm - 1));
            }
        } else if self.edge(DOWN) {
            if let Some(p) = n[LEFT] {
                own.set(im - 1, 0, nb(p).get(im - 1, jm - 2));
            } else if let Some(p) = n[UP] {
                own.set(0, 0, nb(p).get(im - 2, 0));
            }
            if let Some(p) = n[RIGHT] {
                own.set(im - 1, jm - 1, nb(p).get(im - 1, 1));
            } else if let Some(p) = n[UP] {
                own.set(0, jm - 1, nb(p).get(im - 2, jm - 1));
            }
        } else if self.edge(LEFT) {
            if let Some(p) = n[UP] {
                own.set(0, 0, nb(p).get(im - 2, 0));
            }
            if let Some(p) = n[DOWN] {
                own.set(im - 1, 0, nb(p).get(1, 0));
            }
        } else if self.edge(RIGHT) {
            if let Some(p) = n[UP] {
                own.set(0, jm - 1, nb(p).get(im - 2, jm - 1));
            }
            if let Some(p) = n[DOWN] {
                own.set(im - 1, jm - 1, nb(p).get(1, jm - 1));
            }
        }

        self.exchange_edges(own, nb, im, jm);
    }

    /// Arakawa Jacobian of `x` and `y` (finest level) into `z`, this thread's subgrid;
    /// `x(p)` and `y(p)` give thread `p`'s subgrids.
    pub(crate) fn jacobcalc(
        &self,
        x: impl Fn(usize) -> Plane<'a>,
        y: impl Fn(usize) -> Plane<'a>,
        z: Plane<'_>,
    ) {
        let (im, jm) = (self.im, self.jm);
        let (lastrow, lastcol) = (im - 2, jm - 2);
        self.zero_corners_of(z, im, jm);
        let (xo, yo) = (x(self.id), y(self.id));
        self.exchange_ghosts(yo, &y, im, jm);
        self.exchange_ghosts(xo, &x, im, jm);

        let factjacob = self.team.c.factjacob;
        let n = lastcol;
        // Rows i - 1, i, i + 1 of x and y (z is another array).
        let (mut x3, mut y3) = (Rows::<3>::new(&xo, 0), Rows::<3>::new(&yo, 0));
        let mut c = vec![0.0; n];
        // Left, centre and right windows (exact length n) of a row around points 1..=n.
        fn w3(r: &[f64], n: usize) -> [&[f64]; 3] {
            [&r[0..n], &r[1..=n], &r[2..n + 2]]
        }
        for i in 1..=lastrow {
            if i > 1 {
                x3.advance(&xo, i + 1);
                y3.advance(&yo, i + 1);
            }
            let [al, a, ar] = w3(x3.row(1), n);
            let [bl, _, br] = w3(y3.row(1), n);
            let [dl, d, dr] = w3(y3.row(2), n);
            let [el, e, er] = w3(y3.row(0), n);
            let [fl, f, fr] = w3(x3.row(2), n);
            let [gl, g, gr] = w3(x3.row(0), n);
            let c = &mut c[..n];
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
            store(&z.row(i)[1..=n], c);
        }
        self.zero_edges(z, im, jm);
    }

    /// Sets the corners of an `im` x `jm` subgrid that lie on the ocean's corners to zero.
    pub(crate) fn zero_corners_of(&self, a: Plane<'_>, im: usize, jm: usize) {
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
