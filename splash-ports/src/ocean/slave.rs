//! One thread's work: the original's `slave.C` (set-up and the time loop) and `slave2.C`
//! (the ten phases of a time step), on the thread's own subgrids.

use super::cells::Plane;
use super::geometry::{DOWN, LEFT, ProcInfo, RIGHT, UP};
use super::team::{ProcStats, Team, clock};
use crate::framework::Cell64;
use crate::framework::Proc;

/// The original's `outday0` and `outday3`: the run ends once day 2 is passed.
pub(crate) const OUTDAY0: f64 = 1.0;
pub(crate) const OUTDAY3: f64 = 2.0;

/// A thread of the team, with its private copies of the original's per-process values.
pub(crate) struct Worker<'t, 'a, 'p> {
    pub(crate) team: &'t Team<'a>,
    pub(crate) proc: &'t mut Proc<'p>,
    pub(crate) id: usize,
    pub(crate) info: ProcInfo,
    /// Rows and columns of the finest subgrid, ghost border included.
    pub(crate) im: usize,
    pub(crate) jm: usize,
    /// Per-level tolerances (the original shares one array; every thread writes the same
    /// values into it, so a private copy behaves the same).
    pub(crate) lev_tol: Vec<f64>,
    pub(crate) stats: ProcStats,
    pub(crate) measure: bool,
}

impl<'t, 'a, 'p> Worker<'t, 'a, 'p> {
    pub(crate) fn new(team: &'t Team<'a>, proc: &'t mut Proc<'p>) -> Worker<'t, 'a, 'p> {
        let id = proc.id();
        let g = team.geom;
        let mut lev_tol = vec![0.0; g.numlev];
        lev_tol[g.numlev - 1] = team.params.tolerance;
        Worker {
            team,
            proc,
            id,
            info: g.proc_info(id),
            im: g.im,
            jm: g.jm,
            lev_tol,
            stats: ProcStats::default(),
            measure: id == 0 || team.params.do_stats,
        }
    }

    pub(crate) fn master(&self) -> bool {
        self.id == 0
    }

    pub(crate) fn edge(&self, dir: usize) -> bool {
        self.info.edge(dir)
    }

    /// Rows and columns this thread computes on the finest level: its interior plus the
    /// ocean's boundary where its subgrid touches it (inclusive bounds).
    fn rect(&self) -> (usize, usize, usize, usize) {
        let i0 = if self.edge(UP) { 0 } else { 1 };
        let i1 = if self.edge(DOWN) {
            self.im - 1
        } else {
            self.im - 2
        };
        let j0 = if self.edge(LEFT) { 0 } else { 1 };
        let j1 = if self.edge(RIGHT) {
            self.jm - 1
        } else {
            self.jm - 2
        };
        (i0, i1, j0, j1)
    }

    /// `dst[i][j] = f(i, j)` over [`Self::rect`]. Every use is point by point, so the
    /// order (the original does corners, edges, then the interior) does not matter.
    #[inline(always)]
    fn map(&self, dst: Plane<'_>, f: impl Fn(usize, usize) -> f64) {
        let (i0, i1, j0, j1) = self.rect();
        for i in i0..=i1 {
            let row = &dst.row(i)[..=j1];
            for (j, cell) in row.iter().enumerate().skip(j0) {
                cell.set(f(i, j));
            }
        }
    }

    /// `dst = f(src[0], .., src[N-1])` point by point over [`Self::rect`] (`dst` may be
    /// one of the sources).
    #[inline(always)]
    fn zip<const N: usize>(
        &self,
        dst: Plane<'_>,
        src: [Plane<'_>; N],
        f: impl Fn([f64; N]) -> f64,
    ) {
        let (i0, i1, j0, j1) = self.rect();
        for i in i0..=i1 {
            let d = &dst.row(i)[j0..=j1];
            let s: [&[Cell64]; N] = src.map(|p| &p.row(i)[j0..=j1]);
            for (k, cell) in d.iter().enumerate() {
                cell.set(f(std::array::from_fn(|n| s[n][k].get())));
            }
        }
    }

    /// `dst = v` over [`Self::rect`].
    fn fill(&self, dst: Plane<'_>, v: f64) {
        self.zip(dst, [], |[]| v);
    }

    /// `dst = src` over [`Self::rect`].
    fn copy(&self, dst: Plane<'_>, src: Plane<'_>) {
        self.zip(dst, [src], |[x]| x);
    }

    /// `dst = src` on the ocean's boundary cells of this thread's subgrid (the outer ring
    /// of [`Self::rect`] where it lies on the ocean's edge).
    fn ring_copy(&self, dst: Plane<'_>, src: Plane<'_>) {
        let (i0, i1, j0, j1) = self.rect();
        let (im, jm) = (self.im, self.jm);
        for i in [0, im - 1] {
            if (i == 0 && self.edge(UP)) || (i == im - 1 && self.edge(DOWN)) {
                for (d, s) in dst.row(i)[j0..=j1].iter().zip(&src.row(i)[j0..=j1]) {
                    d.set(s.get());
                }
            }
        }
        for j in [0, jm - 1] {
            if (j == 0 && self.edge(LEFT)) || (j == jm - 1 && self.edge(RIGHT)) {
                for i in i0..=i1 {
                    dst.set(i, j, src.get(i, j));
                }
            }
        }
    }

    /// The original's boundary-weighted sum of a field over this thread's part (corners
    /// count 1/4, edges 1/2), in the original's order of additions.
    fn weighted_sum(&self, a: Plane<'_>) -> f64 {
        let (im, jm) = (self.im, self.jm);
        let (lastrow, lastcol) = (im - 2, jm - 2);
        let mut s = 0.0;
        if self.edge(UP) && self.edge(LEFT) {
            s += 0.25 * a.get(0, 0);
        }
        if self.edge(UP) && self.edge(RIGHT) {
            s += 0.25 * a.get(0, jm - 1);
        }
        if self.edge(DOWN) && self.edge(LEFT) {
            s += 0.25 * a.get(im - 1, 0);
        }
        if self.edge(DOWN) && self.edge(RIGHT) {
            s += 0.25 * a.get(im - 1, jm - 1);
        }
        if self.edge(UP) {
            for j in 1..=lastcol {
                s += 0.5 * a.get(0, j);
            }
        }
        if self.edge(DOWN) {
            for j in 1..=lastcol {
                s += 0.5 * a.get(im - 1, j);
            }
        }
        if self.edge(LEFT) {
            for i in 1..=lastrow {
                s += 0.5 * a.get(i, 0);
            }
        }
        if self.edge(RIGHT) {
            for i in 1..=lastrow {
                s += 0.5 * a.get(i, jm - 1);
            }
        }
        for i in 1..=lastrow {
            for cell in &a.row(i)[1..=lastcol] {
                s += cell.get();
            }
        }
        s
    }

    /// Copies the neighbours' border rows and columns into the ghost border of `own`, a
    /// subgrid of `im` x `jm` (edges only, no corners), as the original does before a
    /// 5-point stencil. `nb_plane(p)` is thread `p`'s subgrid of the same array.
    pub(crate) fn exchange_edges(
        &self,
        own: Plane<'_>,
        nb_plane: &impl Fn(usize) -> Plane<'a>,
        im: usize,
        jm: usize,
    ) {
        let (lastrow, lastcol) = (im - 2, jm - 2);
        if let Some(n) = self.info.nb[UP] {
            let src = &nb_plane(n).row(im - 2)[1..=lastcol];
            for (d, s) in own.row(0)[1..=lastcol].iter().zip(src) {
                d.set(s.get());
            }
        }
        if let Some(n) = self.info.nb[DOWN] {
            let src = &nb_plane(n).row(1)[1..=lastcol];
            for (d, s) in own.row(im - 1)[1..=lastcol].iter().zip(src) {
                d.set(s.get());
            }
        }
        if let Some(n) = self.info.nb[LEFT] {
            let src = nb_plane(n);
            for i in 1..=lastrow {
                own.set(i, 0, src.get(i, jm - 2));
            }
        }
        if let Some(n) = self.info.nb[RIGHT] {
            let src = nb_plane(n);
            for i in 1..=lastrow {
                own.set(i, jm - 1, src.get(i, 1));
            }
        }
    }

    /// The original's `slave()`: set-up, the one-time solve for psib, then time steps
    /// until day 2. Returns early (on every thread alike) if the solver gives up.
    pub(crate) fn slave(&mut self) -> Result<(), super::OceanError> {
        let t = self.team;
        let g = t.geom;
        let c = &t.c;
        let id = self.id;
        let (im, jm) = (self.im, self.jm);
        let top = g.numlev - 1;
        let ressqr = g.lev_res[top] * g.lev_res[top];

        self.proc.barrier();

        for a in [t.oldga.plane(id, 0), t.oldgb.plane(id, 0)] {
            for i in 0..im {
                for cell in a.row(i) {
                    cell.set(0.0);
                }
            }
        }

        let numcols = g.xpts_per_proc[top];
        let j_off = self.info.colnum * numcols;

        let ysca1 = 0.5 * c.ysca;
        if self.master() {
            for (idx, cell) in t.f.iter().enumerate().take(g.jmx[top]) {
                let y = idx as f64 * t.params.res;
                cell.set(c.f0 + c.beta * (y - ysca1));
            }
        }

        self.fill(t.psium.plane(id, 0), 0.0);
        self.fill(t.psilm.plane(id, 0), 0.0);
        self.map(t.psib.plane(id, 0), |i, j| {
            if i == 0 || i == im - 1 || j == 0 || j == jm - 1 {
                1.0
            } else {
                0.0
            }
        });

        self.proc.barrier();

        // Compute psib (one-time solve) and integrate it into psibi.
        let psib = t.psib.plane(id, 0);
        let q = t.q.level(id, top);
        let rhs = t.rhs.level(id, top);
        self.zip(rhs, [psib], |[b]| b * ressqr);
        self.ring_copy(q, psib);

        self.proc.barrier();

        self.exchange_edges(psib, &|n| t.psib.plane(n, 0), im, jm);
        let fac = 1.0 / (4.0 - ressqr * c.eig2);
        for i in 1..=im - 2 {
            let (b, bu, bd) = (psib.row(i), psib.row(i - 1), psib.row(i + 1));
            let qr = q.row(i);
            for j in 1..=jm - 2 {
                qr[j].set(
                    fac * (bd[j].get() + bu[j].get() + b[j + 1].get() + b[j - 1].get()
                        - ressqr * b[j].get()),
                );
            }
        }

        self.multig()?;

        self.copy(psib, q);

        self.proc.barrier();

        let psibipriv = self.weighted_sum(psib);
        t.psibi.contribute(id, psibipriv);

        for s in 0..2 {
            self.fill(t.psim.plane(id, s), 0.0);
        }
        for s in 0..2 {
            self.fill(t.psi.plane(id, s), 0.0);
        }

        // Curl of the wind stress.
        let factor = -c.t0 * c.pi / ysca1;
        let left = self.edge(LEFT);
        let res = t.params.res;
        self.map(t.tauz.plane(id, 0), |_, j| {
            if j == 0 && left {
                0.0
            } else {
                factor * (c.pi * (j + j_off) as f64 * res / ysca1).sin()
            }
        });

        self.proc.barrier();
        let psibi = t.psibi.total();

        // The time loop, with the original's day counters.
        let dtau = t.params.dtau;
        let (mut ttime, mut dhour) = (0.0f64, 0.0f64);
        let mut nstep = 0usize;
        let mut iday = 0i64;
        let (mut dayflag, mut dhourflag) = (false, false);
        let mut endflag = false;
        while !endflag {
            while !dayflag || !dhourflag {
                dayflag = false;
                dhourflag = false;
                if nstep == 1 {
                    if self.master() {
                        *t.trackstart.lock().unwrap_or_else(|e| e.into_inner()) = clock();
                    }
                    if self.measure {
                        self.stats.total_time = clock() as f64;
                        self.stats.multi_time = 0.0;
                    }
                }
                self.slave2(psibi)?;
                ttime += dtau;
                nstep += 1;
                let day = ttime / 86400.0;
                if day > OUTDAY0 {
                    dayflag = true;
                    iday = day as i64;
                    dhour += dtau;
                    if dhour >= 86400.0 {
                        dhourflag = true;
                    }
                }
            }
            dhour = 0.0;

            let (psium, psilm) = (t.psium.plane(id, 0), t.psilm.plane(id, 0));
            let (psim0, psim1) = (t.psim.plane(id, 0), t.psim.plane(id, 1));
            self.zip(psium, [psium, psim0], |[a, b]| a + b);
            self.zip(psilm, [psilm, psim1], |[a, b]| a + b);
            if iday >= OUTDAY3 as i64 {
                endflag = true;
            }
        }
        if self.measure {
            self.stats.total_time = clock() as f64 - self.stats.total_time;
        }
        Ok(())
    }

    /// The original's `slave2()`: one time step in ten phases separated by barriers.
    fn slave2(&mut self, psibi: f64) -> Result<(), super::OceanError> {
        let t = self.team;
        let g = t.geom;
        let c = &t.c;
        let id = self.id;
        let (im, jm) = (self.im, self.jm);
        let top = g.numlev - 1;
        let ressqr = g.lev_res[top] * g.lev_res[top];
        let numrows = g.ypts_per_proc[top];
        let numcols = g.xpts_per_proc[top];
        let i_off = self.info.rownum * numrows;
        let j_off = self.info.colnum * numcols;

        // Phase 1.
        let (ga, gb) = (t.ga.plane(id, 0), t.gb.plane(id, 0));
        self.fill(ga, 0.0);
        self.fill(gb, 0.0);

        // Laplacian of psi{1,3} in work1{1,2}.
        for s in 0..2 {
            self.zero_corners_of(t.work1.plane(id, s), im, jm);
            self.laplacalc(t.psi, t.work1, s);
        }

        // work2 = psi1 - psi3.
        let (psi0, psi1) = (t.psi.plane(id, 0), t.psi.plane(id, 1));
        let (work2, work3) = (t.work2.plane(id, 0), t.work3.plane(id, 0));
        self.zip(work2, [psi0, psi1], |[a, b]| a - b);

        // work3 = h3/h * work3 + h1/h * psi3 (the original reads work3 here, not psi1).
        let hh3 = c.h3 / c.h;
        let hh1 = c.h1 / c.h;
        self.zip(work3, [work3, psi1], |[w, p]| hh3 * w + hh1 * p);

        // temparray{1,3} = psi{1,3}.
        for s in 0..2 {
            let (d, src) = (t.temparray.plane(id, s), t.psi.plane(id, s));
            self.copy(d, src);
        }

        self.proc.barrier();

        // Phase 2: psi{1,3} = psim{1,3}.
        for s in 0..2 {
            let (d, src) = (t.psi.plane(id, s), t.psim.plane(id, s));
            self.copy(d, src);
        }

        // Laplacian of psim in work7: first of the three for the friction terms.
        for s in 0..2 {
            self.zero_corners_of(t.work7.plane(id, s), im, jm);
            self.laplacalc(t.psim, t.work7, s);
        }

        // work1{1,2} += f (the Coriolis parameter), by column; the side columns use the
        // row index, as in the original.
        let fcol_last = g.jmx[top] - 1;
        let (i0, i1, j0, j1) = self.rect();
        for s in 0..2 {
            let w = t.work1.plane(id, s);
            for i in i0..=i1 {
                let row = w.row(i);
                let fmid = &t.f[1 + j_off..=jm - 2 + j_off];
                for (c, fv) in row[1..=jm - 2].iter().zip(fmid) {
                    c.set(c.get() + fv.get());
                }
                let side_row = i == 0 || i == im - 1;
                let side_f = |j: usize| match (side_row, j) {
                    (true, 0) => 0,
                    (true, _) => fcol_last,
                    (false, _) => i + i_off,
                };
                if j0 == 0 {
                    row[0].set(row[0].get() + t.f[side_f(0)].get());
                }
                if j1 == jm - 1 {
                    row[jm - 1].set(row[jm - 1].get() + t.f[side_f(jm - 1)].get());
                }
            }
        }

        self.proc.barrier();

        // Phase 3: Jacobian of work1 and psi (in temparray) in work5.
        for s in 0..2 {
            self.jacobcalc(
                |p| t.work1.plane(p, s),
                |p| t.temparray.plane(p, s),
                t.work5.plane(id, s),
            );
        }

        // psim{1,3} = temparray{1,3}.
        for s in 0..2 {
            let (d, src) = (t.psim.plane(id, s), t.temparray.plane(id, s));
            self.copy(d, src);
        }

        // Laplacian of work7 in work4: second of the three.
        for s in 0..2 {
            self.laplacalc(t.work7, t.work4, s);
        }

        self.proc.barrier();

        // Phase 4: Jacobian of work2 and work3 in work6.
        self.jacobcalc(
            |p| t.work2.plane(p, 0),
            |p| t.work3.plane(p, 0),
            t.work6.plane(id, 0),
        );

        // Laplacian of work4 in work7: third of the three.
        for s in 0..2 {
            self.laplacalc(t.work4, t.work7, s);
        }

        self.proc.barrier();

        // Phase 5: ga and gb from work5, work6, work7 and the wind.
        let hinv = 1.0 / c.h;
        let h1inv = 1.0 / c.h1;
        let (w50, w51) = (t.work5.plane(id, 0), t.work5.plane(id, 1));
        let (w70, w71) = (t.work7.plane(id, 0), t.work7.plane(id, 1));
        let (w6, tauz) = (t.work6.plane(id, 0), t.tauz.plane(id, 0));
        let lf = c.lf;
        let eig2 = c.eig2;
        for i in i0..=i1 {
            let r = |p: Plane<'a>| &p.row(i)[j0..=j1];
            let (ra, rb) = (r(ga), r(gb));
            let (r50, r51, r70, r71, r6, rt) = (r(w50), r(w51), r(w70), r(w71), r(w6), r(tauz));
            for k in 0..ra.len() {
                let (c5, d5) = (r50[k].get(), r51[k].get());
                let (e7, f7) = (r70[k].get(), r71[k].get());
                let (g6, ht) = (r6[k].get(), rt[k].get());
                ra[k].set(c5 - d5 + eig2 * g6 + h1inv * ht + lf * e7 - lf * f7);
                rb[k].set(hh1 * c5 + hh3 * d5 + hinv * ht + lf * hh1 * e7 + lf * hh3 * f7);
            }
        }

        self.proc.barrier();

        // Phase 6: solve for ga with multigrid, starting from the last solution.
        let q = t.q.level(id, top);
        let rhs = t.rhs.level(id, top);
        let (oldga, oldgb) = (t.oldga.plane(id, 0), t.oldgb.plane(id, 0));
        self.solve(ga, oldga, q, rhs, ressqr)?;

        self.proc.barrier();

        // Phase 7: integrate ga.
        let psiaipriv = self.weighted_sum(ga);
        t.psiai.contribute(id, psiaipriv);

        self.proc.barrier();

        // Phase 8: ga += (-psiai/psibi) * psib, then solve for gb.
        let f4 = (-t.psiai.total()) / psibi;
        let psib = t.psib.plane(id, 0);
        self.zip(ga, [ga, psib], |[a, b]| a + f4 * b);
        self.solve(gb, oldgb, q, rhs, ressqr)?;

        self.proc.barrier();

        // Phase 9: work2, work3 from ga and gb.
        self.zip(work3, [gb, ga], |[b, a]| b + hh3 * a);
        self.zip(work2, [gb, ga], |[b, a]| b - hh1 * a);

        self.proc.barrier();

        // Phase 10: psi{1,3} += 2 dtau work{3,2}.
        let timst = 2.0 * t.params.dtau;
        self.zip(psi0, [psi0, work3], |[p, w]| p + timst * w);
        self.zip(psi1, [psi1, work2], |[p, w]| p + timst * w);

        self.proc.barrier();
        Ok(())
    }

    /// Phases 6 and 8: put `g * res^2` in the finest right-hand side, `g`'s boundary and
    /// the previous solution `old` in the finest unknowns, run the multigrid solver, and
    /// copy the solution back into `g` and `old`.
    fn solve(
        &mut self,
        g: Plane<'_>,
        old: Plane<'_>,
        q: Plane<'_>,
        rhs: Plane<'_>,
        ressqr: f64,
    ) -> Result<(), super::OceanError> {
        self.zip(rhs, [g], |[x]| x * ressqr);
        // Boundary from g (the rect's outer ring lies on the ocean's edge), the rest
        // from the last solution.
        self.copy(q, old);
        self.ring_copy(q, g);
        let start = self.measure.then(super::clock);
        self.multig()?;
        if let Some(start) = start {
            self.stats.multi_time += clock().saturating_sub(start) as f64;
        }
        // Both copies in one pass, as the original does.
        let (i0, i1, j0, j1) = self.rect();
        for i in i0..=i1 {
            let (src, d1, d2) = (&q.row(i)[j0..=j1], &g.row(i)[j0..=j1], &old.row(i)[j0..=j1]);
            for ((s, a), b) in src.iter().zip(d1).zip(d2) {
                let v = s.get();
                a.set(v);
                b.set(v);
            }
        }
        Ok(())
    }
}
