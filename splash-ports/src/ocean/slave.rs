//! One thread's work: the original's `slave.C` (set-up and the time loop) and `slave2.C`
//! (the ten phases of a time step), on the thread's own subgrids.

use super::geometry::{DOWN, LEFT, ProcInfo, RIGHT, UP};
use super::grids::{Field, Ghosts, Grid, View};
use super::team::{ProcStats, Team, clock};
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
    /// The multigrid's halo copies between their read phase and their write phase:
    /// ghost points of `q_multi` and of `rhs_multi`, and the neighbours' points that
    /// `rescal` reads (the left one's column, the upper one's row).
    pub(crate) q_ghosts: Ghosts,
    pub(crate) rhs_ghosts: Ghosts,
    pub(crate) left_col: Vec<f64>,
    pub(crate) up_row: Vec<f64>,
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
            q_ghosts: Ghosts::default(),
            rhs_ghosts: Ghosts::default(),
            left_col: Vec::new(),
            up_row: Vec::new(),
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
    fn map(&self, dst: &mut Grid<'_>, f: impl Fn(usize, usize) -> f64) {
        let (i0, i1, j0, j1) = self.rect();
        for i in i0..=i1 {
            let row = &mut dst.row_mut(i)[..=j1];
            for (j, v) in row.iter_mut().enumerate().skip(j0) {
                *v = f(i, j);
            }
        }
    }

    /// `dst = f(dst, [src[0], .., src[N-1]])` point by point over [`Self::rect`].
    #[inline(always)]
    fn zip<const N: usize>(
        &self,
        dst: &mut Grid<'_>,
        src: [View<'_>; N],
        f: impl Fn(f64, [f64; N]) -> f64,
    ) {
        let (i0, i1, j0, j1) = self.rect();
        for i in i0..=i1 {
            let d = &mut dst.row_mut(i)[j0..=j1];
            let s: [&[f64]; N] = src.map(|p| &p.row(i)[j0..=j1]);
            for (k, v) in d.iter_mut().enumerate() {
                *v = f(*v, std::array::from_fn(|n| s[n][k]));
            }
        }
    }

    /// `dst = v` over [`Self::rect`].
    fn fill(&self, dst: &mut Grid<'_>, v: f64) {
        self.zip(dst, [], |_, []| v);
    }

    /// `dst = src` over [`Self::rect`].
    fn copy(&self, dst: &mut Grid<'_>, src: View<'_>) {
        self.zip(dst, [src], |_, [x]| x);
    }

    /// `dst = src` on the ocean's boundary points of this thread's subgrid (the outer ring
    /// of [`Self::rect`] where it lies on the ocean's edge).
    fn ring_copy(&self, dst: &mut Grid<'_>, src: View<'_>) {
        let (i0, i1, j0, j1) = self.rect();
        let (im, jm) = (self.im, self.jm);
        for i in [0, im - 1] {
            if (i == 0 && self.edge(UP)) || (i == im - 1 && self.edge(DOWN)) {
                dst.row_mut(i)[j0..=j1].copy_from_slice(&src.row(i)[j0..=j1]);
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
    fn weighted_sum(&self, a: View<'_>) -> f64 {
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
            for v in &a.row(i)[1..=lastcol] {
                s += v;
            }
        }
        s
    }

    /// The original's `slave()`: set-up, the one-time solve for psib, then time steps
    /// until day 2. Returns early (on every thread alike) if the solver gives up.
    pub(crate) fn slave(&mut self) -> Result<(), super::OceanError> {
        let t = self.team;
        let g = t.geom;
        let c = &t.c;
        let (im, jm) = (self.im, self.jm);
        let top = g.numlev - 1;
        let ressqr = g.lev_res[top] * g.lev_res[top];
        let numcols = g.xpts_per_proc[top];
        let j_off = self.info.colnum * numcols;
        let ysca1 = 0.5 * c.ysca;

        self.proc.barrier();

        {
            let p = &*self.proc;
            for a in [&t.oldga, &t.oldgb] {
                let [mut a] = a.own(p);
                for i in 0..im {
                    a.row_mut(i).fill(0.0);
                }
            }
            if self.master() {
                let f = t.f.own_mut(p);
                for (idx, v) in f.iter_mut().enumerate().take(g.jmx[top]) {
                    let y = idx as f64 * t.params.res;
                    *v = c.f0 + c.beta * (y - ysca1);
                }
            }
            let [mut psium] = t.psium.own(p);
            let [mut psilm] = t.psilm.own(p);
            let [mut psib] = t.psib.own(p);
            self.fill(&mut psium, 0.0);
            self.fill(&mut psilm, 0.0);
            self.map(&mut psib, |i, j| {
                if i == 0 || i == im - 1 || j == 0 || j == jm - 1 {
                    1.0
                } else {
                    0.0
                }
            });
        }

        self.proc.barrier();

        // Compute psib (one-time solve) and integrate it into psibi.
        {
            let p = &*self.proc;
            let [psib] = t.psib.own(p);
            let (mut q, mut rhs) = (t.q.own(p), t.rhs.own(p));
            self.zip(&mut rhs.level(top), [psib.view()], |_, [b]| b * ressqr);
            self.ring_copy(&mut q.level(top), psib.view());
        }

        self.proc.barrier();

        let [ghosts] = self.fetch_field(&t.psib, false);

        self.proc.barrier();

        {
            let p = &*self.proc;
            let [mut psib] = t.psib.own(p);
            ghosts.apply(&mut psib);
            let mut q = t.q.own(p);
            let mut q = q.level(top);
            let fac = 1.0 / (4.0 - ressqr * c.eig2);
            for i in 1..=im - 2 {
                let (b, bu, bd) = (psib.row(i), psib.row(i - 1), psib.row(i + 1));
                let qr = q.row_mut(i);
                for j in 1..=jm - 2 {
                    qr[j] = fac * (bd[j] + bu[j] + b[j + 1] + b[j - 1] - ressqr * b[j]);
                }
            }
        }

        self.multig()?;

        {
            let p = &*self.proc;
            let [mut psib] = t.psib.own(p);
            let mut q = t.q.own(p);
            self.copy(&mut psib, q.level(top).view());
        }

        self.proc.barrier();

        {
            let p = &*self.proc;
            let [psib] = t.psib.own(p);
            t.psibi.contribute(self.id, self.weighted_sum(psib.view()));
            for a in [&t.psim, &t.psi] {
                for mut s in a.own::<2>(p) {
                    self.fill(&mut s, 0.0);
                }
            }

            // Curl of the wind stress.
            let factor = -c.t0 * c.pi / ysca1;
            let left = self.edge(LEFT);
            let res = t.params.res;
            let [mut tauz] = t.tauz.own(p);
            self.map(&mut tauz, |_, j| {
                if j == 0 && left {
                    0.0
                } else {
                    factor * (c.pi * (j + j_off) as f64 * res / ysca1).sin()
                }
            });
        }

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

            {
                let p = &*self.proc;
                let [mut psium] = t.psium.own(p);
                let [mut psilm] = t.psilm.own(p);
                let [psim0, psim1] = t.psim.own(p);
                self.zip(&mut psium, [psim0.view()], |a, [b]| a + b);
                self.zip(&mut psilm, [psim1.view()], |a, [b]| a + b);
            }
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
    /// Phases 1 to 4 fetch the ghost rings their stencils need in a read phase of their
    /// own first (the halo copies' first half, `grids.rs`).
    fn slave2(&mut self, psibi: f64) -> Result<(), super::OceanError> {
        let t = self.team;
        let g = t.geom;
        let c = &t.c;
        let (im, jm) = (self.im, self.jm);
        let top = g.numlev - 1;
        let ressqr = g.lev_res[top] * g.lev_res[top];
        let numrows = g.ypts_per_proc[top];
        let numcols = g.xpts_per_proc[top];
        let i_off = self.info.rownum * numrows;
        let j_off = self.info.colnum * numcols;
        let hh3 = c.h3 / c.h;
        let hh1 = c.h1 / c.h;
        let (i0, i1, j0, j1) = self.rect();

        // Phase 1.
        let psi_edges: [Ghosts; 2] = self.fetch_field(&t.psi, false);
        self.proc.barrier();
        {
            let p = &*self.proc;
            let [mut ga] = t.ga.own(p);
            let [mut gb] = t.gb.own(p);
            self.fill(&mut ga, 0.0);
            self.fill(&mut gb, 0.0);

            // Laplacian of psi{1,3} in work1{1,2}.
            let mut psi = t.psi.own::<2>(p);
            let mut work1 = t.work1.own::<2>(p);
            for s in 0..2 {
                self.zero_corners_of(&mut work1[s], im, jm);
                psi_edges[s].apply(&mut psi[s]);
                self.laplacalc(psi[s].view(), &mut work1[s]);
            }

            // work2 = psi1 - psi3.
            let [psi0, psi1] = &psi;
            let [mut work2] = t.work2.own(p);
            let [mut work3] = t.work3.own(p);
            self.zip(&mut work2, [psi0.view(), psi1.view()], |_, [a, b]| a - b);

            // work3 = h3/h * work3 + h1/h * psi3 (the original reads work3 here, not psi1).
            self.zip(&mut work3, [psi1.view()], |w, [p]| hh3 * w + hh1 * p);

            // temparray{1,3} = psi{1,3}.
            for (mut d, src) in t.temparray.own::<2>(p).into_iter().zip(&psi) {
                self.copy(&mut d, src.view());
            }
        }
        self.proc.barrier();

        // Phase 2: psi{1,3} = psim{1,3}.
        let psim_edges: [Ghosts; 2] = self.fetch_field(&t.psim, false);
        self.proc.barrier();
        {
            let p = &*self.proc;
            let mut psim = t.psim.own::<2>(p);
            for (mut d, src) in t.psi.own::<2>(p).into_iter().zip(&psim) {
                self.copy(&mut d, src.view());
            }

            // Laplacian of psim in work7: first of the three for the friction terms.
            let mut work7 = t.work7.own::<2>(p);
            for s in 0..2 {
                self.zero_corners_of(&mut work7[s], im, jm);
                psim_edges[s].apply(&mut psim[s]);
                self.laplacalc(psim[s].view(), &mut work7[s]);
            }

            // work1{1,2} += f (the Coriolis parameter), by column; the side columns use
            // the row index, as in the original.
            let f = t.f.read_all(p);
            let fcol_last = g.jmx[top] - 1;
            for mut w in t.work1.own::<2>(p) {
                for i in i0..=i1 {
                    let row = w.row_mut(i);
                    let fmid = &f[1 + j_off..=jm - 2 + j_off];
                    for (v, fv) in row[1..=jm - 2].iter_mut().zip(fmid) {
                        *v += fv;
                    }
                    let side_row = i == 0 || i == im - 1;
                    let side_f = |j: usize| match (side_row, j) {
                        (true, 0) => 0,
                        (true, _) => fcol_last,
                        (false, _) => i + i_off,
                    };
                    if j0 == 0 {
                        row[0] += f[side_f(0)];
                    }
                    if j1 == jm - 1 {
                        row[jm - 1] += f[side_f(jm - 1)];
                    }
                }
            }
        }
        self.proc.barrier();

        // Phase 3: Jacobian of work1 and psi (in temparray) in work5.
        let work1_ghosts: [Ghosts; 2] = self.fetch_field(&t.work1, true);
        let temp_ghosts: [Ghosts; 2] = self.fetch_field(&t.temparray, true);
        let work7_edges: [Ghosts; 2] = self.fetch_field(&t.work7, false);
        self.proc.barrier();
        {
            let p = &*self.proc;
            let mut work1 = t.work1.own::<2>(p);
            let mut temp = t.temparray.own::<2>(p);
            let mut work5 = t.work5.own::<2>(p);
            for s in 0..2 {
                temp_ghosts[s].apply(&mut temp[s]);
                work1_ghosts[s].apply(&mut work1[s]);
                self.jacobcalc(work1[s].view(), temp[s].view(), &mut work5[s]);
            }

            // psim{1,3} = temparray{1,3}.
            for (mut d, src) in t.psim.own::<2>(p).into_iter().zip(&temp) {
                self.copy(&mut d, src.view());
            }

            // Laplacian of work7 in work4: second of the three.
            let mut work7 = t.work7.own::<2>(p);
            let mut work4 = t.work4.own::<2>(p);
            for s in 0..2 {
                work7_edges[s].apply(&mut work7[s]);
                self.laplacalc(work7[s].view(), &mut work4[s]);
            }
        }
        self.proc.barrier();

        // Phase 4: Jacobian of work2 and work3 in work6.
        let [work2_ghosts] = self.fetch_field(&t.work2, true);
        let [work3_ghosts] = self.fetch_field(&t.work3, true);
        let work4_edges: [Ghosts; 2] = self.fetch_field(&t.work4, false);
        self.proc.barrier();
        {
            let p = &*self.proc;
            let [mut work2] = t.work2.own(p);
            let [mut work3] = t.work3.own(p);
            let [mut work6] = t.work6.own(p);
            work3_ghosts.apply(&mut work3);
            work2_ghosts.apply(&mut work2);
            self.jacobcalc(work2.view(), work3.view(), &mut work6);

            // Laplacian of work4 in work7: third of the three.
            let mut work4 = t.work4.own::<2>(p);
            let mut work7 = t.work7.own::<2>(p);
            for s in 0..2 {
                work4_edges[s].apply(&mut work4[s]);
                self.laplacalc(work4[s].view(), &mut work7[s]);
            }
        }
        self.proc.barrier();

        // Phase 5: ga and gb from work5, work6, work7 and the wind.
        {
            let p = &*self.proc;
            let hinv = 1.0 / c.h;
            let h1inv = 1.0 / c.h1;
            let (lf, eig2) = (c.lf, c.eig2);
            let [mut ga] = t.ga.own(p);
            let [mut gb] = t.gb.own(p);
            let [w50, w51] = t.work5.own(p);
            let [w70, w71] = t.work7.own(p);
            let [w6] = t.work6.own(p);
            let [tauz] = t.tauz.own(p);
            for i in i0..=i1 {
                fn r<'g>(p: &'g Grid<'_>, i: usize, j0: usize, j1: usize) -> &'g [f64] {
                    &p.row(i)[j0..=j1]
                }
                let (r50, r51, r70, r71, r6, rt) = (
                    r(&w50, i, j0, j1),
                    r(&w51, i, j0, j1),
                    r(&w70, i, j0, j1),
                    r(&w71, i, j0, j1),
                    r(&w6, i, j0, j1),
                    r(&tauz, i, j0, j1),
                );
                let ra = &mut ga.row_mut(i)[j0..=j1];
                for k in 0..ra.len() {
                    ra[k] =
                        r50[k] - r51[k] + eig2 * r6[k] + h1inv * rt[k] + lf * r70[k] - lf * r71[k];
                }
                let rb = &mut gb.row_mut(i)[j0..=j1];
                for k in 0..rb.len() {
                    rb[k] = hh1 * r50[k]
                        + hh3 * r51[k]
                        + hinv * rt[k]
                        + lf * hh1 * r70[k]
                        + lf * hh3 * r71[k];
                }
            }
        }
        self.proc.barrier();

        // Phase 6: solve for ga with multigrid, starting from the last solution.
        self.solve(&t.ga, &t.oldga, ressqr, None)?;

        self.proc.barrier();

        // Phase 7: integrate ga.
        {
            let [ga] = t.ga.own(&*self.proc);
            t.psiai.contribute(self.id, self.weighted_sum(ga.view()));
        }

        self.proc.barrier();

        // Phase 8: ga += (-psiai/psibi) * psib, then solve for gb.
        let f4 = (-t.psiai.total()) / psibi;
        self.solve(&t.gb, &t.oldgb, ressqr, Some(f4))?;

        self.proc.barrier();

        // Phase 9: work2, work3 from ga and gb.
        {
            let p = &*self.proc;
            let [ga] = t.ga.own(p);
            let [gb] = t.gb.own(p);
            let [mut work2] = t.work2.own(p);
            let [mut work3] = t.work3.own(p);
            self.zip(&mut work3, [gb.view(), ga.view()], |_, [b, a]| b + hh3 * a);
            self.zip(&mut work2, [gb.view(), ga.view()], |_, [b, a]| b - hh1 * a);
        }

        self.proc.barrier();

        // Phase 10: psi{1,3} += 2 dtau work{3,2}.
        {
            let p = &*self.proc;
            let timst = 2.0 * t.params.dtau;
            let [mut psi0, mut psi1] = t.psi.own(p);
            let [work2] = t.work2.own(p);
            let [work3] = t.work3.own(p);
            self.zip(&mut psi0, [work3.view()], |p, [w]| p + timst * w);
            self.zip(&mut psi1, [work2.view()], |p, [w]| p + timst * w);
        }

        self.proc.barrier();
        Ok(())
    }

    /// Phases 6 and 8: put `g * res^2` in the finest right-hand side, `g`'s boundary and
    /// the previous solution `old` in the finest unknowns, run the multigrid solver, and
    /// copy the solution back into `g` and `old`. In phase 8, `ga += ga_psib * psib`
    /// first (in the same phase).
    fn solve(
        &mut self,
        g: &Field<'_>,
        old: &Field<'_>,
        ressqr: f64,
        ga_psib: Option<f64>,
    ) -> Result<(), super::OceanError> {
        let t = self.team;
        let top = t.geom.numlev - 1;
        {
            let p = &*self.proc;
            if let Some(f4) = ga_psib {
                let [mut ga] = t.ga.own(p);
                let [psib] = t.psib.own(p);
                self.zip(&mut ga, [psib.view()], |a, [b]| a + f4 * b);
            }
            let [gv] = g.own(p);
            let [oldv] = old.own(p);
            let (mut q, mut rhs) = (t.q.own(p), t.rhs.own(p));
            self.zip(&mut rhs.level(top), [gv.view()], |_, [x]| x * ressqr);
            // Boundary from g (the rect's outer ring lies on the ocean's edge), the rest
            // from the last solution.
            let mut q = q.level(top);
            self.copy(&mut q, oldv.view());
            self.ring_copy(&mut q, gv.view());
        }
        let start = self.measure.then(super::clock);
        self.multig()?;
        if let Some(start) = start {
            self.stats.multi_time += clock().saturating_sub(start) as f64;
        }
        // Both copies in one pass, as the original does.
        let p = &*self.proc;
        let [mut gv] = g.own(p);
        let [mut oldv] = old.own(p);
        let mut q = t.q.own(p);
        let q = q.level(top);
        let (i0, i1, j0, j1) = self.rect();
        for i in i0..=i1 {
            let src = &q.row(i)[j0..=j1];
            gv.row_mut(i)[j0..=j1].copy_from_slice(src);
            oldv.row_mut(i)[j0..=j1].copy_from_slice(src);
        }
        Ok(())
    }
}
