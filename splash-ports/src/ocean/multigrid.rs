//! The original's `multi.C`: a W-cycle multigrid solver with red-black Gauss-Seidel
//! relaxation and half-injection, run by every thread on its own subgrids, with the
//! original's barriers and its lock-protected global error.

use super::cells::Plane;
use super::cfmt;
use super::error::OceanError;
use super::geometry::{LEFT, UP, UPLEFT};
use super::slave::Worker;

/// The original's `maxwork`: relaxation sweeps (in finest-grid units) before giving up.
pub(crate) const MAXWORK: f64 = 10000.0;

impl<'a> Worker<'_, 'a, '_> {
    fn q(&self, p: usize, k: usize) -> Plane<'a> {
        self.team.q.level(p, k)
    }

    fn rhs(&self, p: usize, k: usize) -> Plane<'a> {
        self.team.rhs.level(p, k)
    }

    /// Solves for `q_multi` on the finest level (the original's `multig`). Every thread
    /// takes the same path through the levels, as all of them decide on the same global
    /// error.
    pub(crate) fn multig(&mut self) -> Result<(), OceanError> {
        let t = self.team;
        let g = t.geom;
        let m = g.numlev - 1;
        let mut k = m;
        let mut iter = 0u64;
        let mut wu = 0.0f64;
        let mut g_error = 1.0e30f64;
        loop {
            let errp = g_error;
            iter += 1;
            if self.master() {
                *t.err_multi.lock().unwrap_or_else(|e| e.into_inner()) = 0.0;
            }

            // All threads have finished intadd or rescal before relaxing.
            self.proc.barrier();
            self.copy_black(k);
            let (red_local_err, inner_black_err) = self.relax_red_and_inner_black(k);

            // All red points are done.
            self.proc.barrier();
            self.copy_red(k);
            let outer_black_err = self.relax_outer_black(k);
            let black_local_err = max_err(inner_black_err, outer_black_err);

            let local_err = if red_local_err > black_local_err {
                red_local_err
            } else {
                black_local_err
            };
            {
                let mut e = t.err_multi.lock().unwrap_or_else(|e| e.into_inner());
                if local_err > *e {
                    *e = local_err;
                }
            }

            // One sweep on the finest grid is one unit of work.
            wu += 0.25f64.powi((m - k) as i32);

            // Every thread has merged its error ...
            self.proc.barrier();
            g_error = *t.err_multi.lock().unwrap_or_else(|e| e.into_inner());
            // ... and read the result before the master resets it.
            self.proc.barrier();

            if g_error >= self.lev_tol[k] {
                if wu > MAXWORK {
                    return Err(OceanError::MaxWork { limit: MAXWORK });
                }
                if k != 0 && g_error / errp >= 0.6 && k > g.minlevel {
                    // Go to the coarser grid.
                    self.copy_borders(k);
                    self.copy_rhs_borders(k);
                    // rescal reads the neighbours' border points.
                    self.proc.barrier();
                    self.rescal(k);
                    self.lev_tol[k - 1] = 0.3 * g_error;
                    k -= 1;
                    self.putz(k);
                    g_error = 1.0e30;
                }
            } else if k == m {
                break;
            } else {
                // Converged on a coarse grid: back to the next finer one.
                self.copy_borders(k);
                self.intadd(k);
                k += 1;
                g_error = 1.0e30;
            }
        }
        if t.params.do_output && self.master() {
            let line = format!(
                "iter {iter}, level {k}, residual norm {:>12}, work = {wu:7.3}",
                cfmt::exp(g_error, 8)
            );
            t.lines.lock().unwrap_or_else(|e| e.into_inner()).push(line);
        }
        Ok(())
    }

    /// Gauss-Seidel on row `i` of level `k` for the points of one colour (red: `i + j`
    /// even) in columns `j0..=j1`; returns the largest change, as the original's
    /// `relax` computes it.
    #[inline(always)]
    fn relax_row(&self, k: usize, i: usize, j0: usize, j1: usize, red: bool, factor: f64) -> f64 {
        let q = self.q(self.id, k);
        let r = self.rhs(self.id, k);
        let cols = j1 + 2;
        let a = &q.row(i)[..cols];
        let up = &q.row(i - 1)[..cols];
        let dn = &q.row(i + 1)[..cols];
        let b = &r.row(i)[..cols];
        // One point: `left` is a[j - 1], `right` a[j + 1] (points of the other colour,
        // which this half-sweep does not change); the sum in the original's order.
        let point = |j: usize, left: f64, right: f64, maxerr: &mut f64| {
            let s = right + left + up[j].get() + dn[j].get() - b[j].get();
            let oldval = a[j].get();
            let newval = s / factor;
            let newerr = oldval - newval;
            a[j].set(newval);
            if newerr.abs() > *maxerr {
                *maxerr = newerr.abs();
            }
        };
        // Two points at a time with two running maxima (the largest change does not
        // depend on the order), so the divisions of neighbouring points overlap; each
        // other-colour point between two of them is read once.
        let (mut m0, mut m1) = (0.0f64, 0.0f64);
        let mut j = if (i + j0).is_multiple_of(2) {
            j0 + usize::from(!red)
        } else {
            j0 + usize::from(red)
        };
        let mut left = a[j - 1].get();
        while j + 2 <= j1 {
            let mid = a[j + 1].get();
            let right = a[j + 3].get();
            point(j, left, mid, &mut m0);
            point(j + 2, mid, right, &mut m1);
            left = right;
            j += 4;
        }
        if j <= j1 {
            point(j, left, a[j + 1].get(), &mut m0);
        }
        max_err(m0, m1)
    }

    /// Columns of the black points that can be relaxed before the barrier: all but the
    /// border columns a side neighbour reads in its `copy_black` (and whose red ghost
    /// points it only provides after the barrier).
    fn inner_black_cols(&self, k: usize) -> (usize, usize) {
        let lastcol = self.team.geom.xpts_per_proc[k];
        let j0 = if self.info.nb[LEFT].is_some() { 2 } else { 1 };
        let j1 = if self.info.nb[super::geometry::RIGHT].is_some() {
            lastcol - 1
        } else {
            lastcol
        };
        (j0, j1)
    }

    /// The red half-sweep on level `k` (the original's `relax(k, .., RED_ITER, ..)`),
    /// and, one row behind it, the black half-sweep of the points that depend only on
    /// this thread's red points and that no neighbour reads before the next barrier:
    /// rows `2..lastrow`, without the side columns next to a neighbour. Returns the
    /// largest red change and the largest black change so far.
    ///
    /// Points of one colour depend only on points of the other, so this order gives
    /// the original's values bit for bit: a black point is updated after its four red
    /// neighbours, a red point before its four black neighbours. Doing both in one pass
    /// over the grid halves the memory traffic of the solver's finest sweeps.
    fn relax_red_and_inner_black(&self, k: usize) -> (f64, f64) {
        let g = self.team.geom;
        let h = g.lev_res[k];
        let factor = 4.0 - self.team.c.eig2 * h * h;
        let (lastrow, lastcol) = (g.ypts_per_proc[k], g.xpts_per_proc[k]);
        let (bj0, bj1) = self.inner_black_cols(k);
        let (mut red, mut black) = (0.0f64, 0.0f64);
        for i in 1..=lastrow {
            red = max_err(red, self.relax_row(k, i, 1, lastcol, true, factor));
            // Black row i - 1 now has its final red neighbours (rows i - 2 ..= i).
            let b = i - 1;
            if b >= 2 && b < lastrow {
                black = max_err(black, self.relax_row(k, b, bj0, bj1, false, factor));
            }
        }
        (red, black)
    }

    /// The black points [`Self::relax_red_and_inner_black`] left for after the barrier
    /// and `copy_red`: rows 1 and `lastrow`, and the side columns next to a neighbour.
    fn relax_outer_black(&self, k: usize) -> f64 {
        let g = self.team.geom;
        let h = g.lev_res[k];
        let factor = 4.0 - self.team.c.eig2 * h * h;
        let (lastrow, lastcol) = (g.ypts_per_proc[k], g.xpts_per_proc[k]);
        let (bj0, bj1) = self.inner_black_cols(k);
        let mut black = 0.0f64;
        for i in [1, lastrow] {
            black = max_err(black, self.relax_row(k, i, 1, lastcol, false, factor));
        }
        for i in 2..lastrow {
            if bj0 > 1 {
                black = max_err(black, self.relax_row(k, i, 1, 1, false, factor));
            }
            if bj1 < lastcol {
                black = max_err(black, self.relax_row(k, i, lastcol, lastcol, false, factor));
            }
        }
        black
    }

    /// Residual of level `kf`, restricted by half-injection with bilinear interpolation
    /// into the right-hand side of level `kf - 1` (the original's `rescal`).
    fn rescal(&self, kf: usize) {
        let g = self.team.geom;
        let krc = kf - 1;
        let hf = g.lev_res[kf];
        let i_off = self.info.rownum * g.ypts_per_proc[krc];
        let j_off = self.info.colnum * g.xpts_per_proc[krc];
        let up_proc = self.info.nb[UP];
        let left_proc = self.info.nb[LEFT];
        // Interior points of a fine subgrid.
        let im = (g.imx[kf] - 2) / g.yprocs;
        let jm = (g.jmx[kf] - 2) / g.xprocs;
        let iend = g.ypts_per_proc[krc];
        let jend = g.xpts_per_proc[krc];
        let factor = 4.0 - self.team.c.eig2 * hf * hf;
        let i_coeff = g.i_int_coeff[krc];
        let j_coeff = g.j_int_coeff[krc];
        let up_edge = self.edge(UP);
        let left_edge = self.edge(LEFT);

        let qf = self.q(self.id, kf);
        let bf = self.rhs(self.id, kf);
        let rc = self.rhs(self.id, krc);
        let qleft = left_proc.map(|p| self.q(p, kf));
        let qup = up_proc.map(|p| self.q(p, kf));
        let mut if17 = 0usize;
        for ic in 1..=iend {
            if17 += 2;
            let i_int_factor = (ic + i_off) as f64 * i_coeff * 0.5;
            let t1a = qf.row(if17);
            let t1b = bf.row(if17);
            let t1c = rc.row(ic);
            let t1d = qf.row(if17 - 1);
            let t1e = qf.row(if17 + 1);
            let t1f = qf.row(if17 - 2);
            // Row if17 - 3 is used only from if17 = 4 on (the original forms a pointer
            // to row -1 for if17 = 2 and never reads it).
            let t1g = qf.row(if17.saturating_sub(3));
            let t1h = bf.row(if17 - 2);
            let mut jf = 0usize;
            for (jc, out) in t1c.iter().enumerate().take(jend + 1).skip(1) {
                jf += 2;
                let j_int_factor = (jc + j_off) as f64 * j_coeff * 0.5;

                // The method of half-injection uses 2.0 instead of 4.0.
                let s = t1a[jf + 1].get() + t1a[jf - 1].get() + t1d[jf].get() + t1e[jf].get();
                let s1 = 2.0 * (t1b[jf].get() - s + factor * t1a[jf].get());
                let (s2, s3, s4);
                if (if17 == 2 && up_edge) || (jf == 2 && left_edge) {
                    s2 = 0.0;
                    s3 = 0.0;
                    s4 = 0.0;
                } else if if17 == 2 || jf == 2 {
                    let temp = match (jf == 2, qleft) {
                        (true, Some(l)) => l.get(if17, jm - 1),
                        _ => t1a[jf - 3].get(),
                    };
                    let s = t1a[jf - 1].get() + temp + t1d[jf - 2].get() + t1e[jf - 2].get();
                    s2 = 2.0 * (t1b[jf - 2].get() - s + factor * t1a[jf - 2].get());
                    let temp = match (if17 == 2, qup) {
                        (true, Some(u)) => u.get(im - 1, jf),
                        _ => t1g[jf].get(),
                    };
                    let s = t1f[jf + 1].get() + t1f[jf - 1].get() + temp + t1d[jf].get();
                    s3 = 2.0 * (t1h[jf].get() - s + factor * t1f[jf].get());
                    let temp = match (jf == 2, qleft) {
                        (true, Some(l)) => l.get(if17 - 2, jm - 1),
                        _ => t1f[jf - 3].get(),
                    };
                    let temp2 = match (if17 == 2, qup) {
                        (true, Some(u)) => u.get(im - 1, jf - 2),
                        _ => t1g[jf - 2].get(),
                    };
                    let s = t1f[jf - 1].get() + temp + temp2 + t1d[jf - 2].get();
                    s4 = 2.0 * (t1h[jf - 2].get() - s + factor * t1f[jf - 2].get());
                } else {
                    let s = t1a[jf - 1].get()
                        + t1a[jf - 3].get()
                        + t1d[jf - 2].get()
                        + t1e[jf - 2].get();
                    s2 = 2.0 * (t1b[jf - 2].get() - s + factor * t1a[jf - 2].get());
                    let s = t1f[jf + 1].get() + t1f[jf - 1].get() + t1g[jf].get() + t1d[jf].get();
                    s3 = 2.0 * (t1h[jf].get() - s + factor * t1f[jf].get());
                    let s = t1f[jf - 1].get()
                        + t1f[jf - 3].get()
                        + t1g[jf - 2].get()
                        + t1d[jf - 2].get();
                    s4 = 2.0 * (t1h[jf - 2].get() - s + factor * t1f[jf - 2].get());
                }
                let int1 = j_int_factor * s4 + (1.0 - j_int_factor) * s3;
                let int2 = j_int_factor * s2 + (1.0 - j_int_factor) * s1;
                out.set(i_int_factor * int1 + (1.0 - i_int_factor) * int2);
            }
        }
    }

    /// Interpolates level `kc`'s correction and adds it to level `kc + 1` (the original's
    /// `intadd`).
    fn intadd(&self, kc: usize) {
        let g = self.team.geom;
        let kf = kc + 1;
        let iend = g.ypts_per_proc[kc];
        let jend = g.xpts_per_proc[kc];
        let i_off = self.info.rownum * g.ypts_per_proc[kc];
        let j_off = self.info.colnum * g.xpts_per_proc[kc];
        let (ci, cj) = (g.imx[kc] - 2, g.jmx[kc] - 2);
        let i_coeff = g.i_int_coeff[kf];
        let j_coeff = g.j_int_coeff[kf];

        let qc = self.q(self.id, kc);
        let qf = self.q(self.id, kf);
        let mut if17 = 0usize;
        for ic in 1..=iend {
            if17 += 2;
            let i_int_factor1 = (ci - (ic + i_off - 1)) as f64 * i_coeff;
            let i_int_factor2 = (ic + i_off) as f64 * i_coeff;
            let t1a = qc.row(ic);
            let t1b = qc.row(ic - 1);
            let t1c = qc.row(ic + 1);
            let t1d = qf.row(if17);
            let t1e = qf.row(if17 - 1);
            let mut jf = 0usize;
            for jc in 1..=jend {
                jf += 2;
                let j_int_factor1 = (cj - (jc + j_off - 1)) as f64 * j_coeff;
                let j_int_factor2 = (jc + j_off) as f64 * j_coeff;

                let mut int1 =
                    j_int_factor1 * t1a[jc - 1].get() + (1.0 - j_int_factor1) * t1a[jc].get();
                let mut int2 =
                    j_int_factor1 * t1b[jc - 1].get() + (1.0 - j_int_factor1) * t1b[jc].get();
                add(
                    &t1e[jf - 1],
                    i_int_factor1 * int2 + (1.0 - i_int_factor1) * int1,
                );
                int2 = j_int_factor1 * t1c[jc - 1].get() + (1.0 - j_int_factor1) * t1c[jc].get();
                add(
                    &t1d[jf - 1],
                    i_int_factor2 * int2 + (1.0 - i_int_factor2) * int1,
                );
                int1 = j_int_factor2 * t1a[jc + 1].get() + (1.0 - j_int_factor2) * t1a[jc].get();
                int2 = j_int_factor2 * t1b[jc + 1].get() + (1.0 - j_int_factor2) * t1b[jc].get();
                add(
                    &t1e[jf],
                    i_int_factor1 * int2 + (1.0 - i_int_factor1) * int1,
                );
                int2 = j_int_factor2 * t1c[jc + 1].get() + (1.0 - j_int_factor2) * t1c[jc].get();
                add(
                    &t1d[jf],
                    i_int_factor2 * int2 + (1.0 - i_int_factor2) * int1,
                );
            }
        }
    }

    /// Zeroes this thread's unknowns on level `k` (the initial guess on a coarser grid).
    fn putz(&self, k: usize) {
        let g = self.team.geom;
        let q = self.q(self.id, k);
        let (iend, jend) = (1 + g.ypts_per_proc[k], 1 + g.xpts_per_proc[k]);
        for i in 1..=iend {
            for c in &q.row(i)[1..=jend] {
                c.set(0.0);
            }
        }
    }

    /// Fetches the whole ghost border of level `k`'s unknowns.
    fn copy_borders(&self, k: usize) {
        let g = self.team.geom;
        let own = self.q(self.id, k);
        self.exchange_ghosts(own, &|p| self.q(p, k), g.rows(k), g.cols(k));
    }

    /// Fetches the neighbours' right-hand side border points (even ones) that `rescal`
    /// reads on level `k`.
    fn copy_rhs_borders(&self, k: usize) {
        let g = self.team.geom;
        let (im, jm) = (g.rows(k), g.cols(k));
        let (lastrow, lastcol) = (im - 2, jm - 2);
        let own = self.rhs(self.id, k);
        if let Some(p) = self.info.nb[UPLEFT] {
            own.set(0, 0, self.rhs(p, k).get(im - 2, jm - 2));
        }
        if let Some(p) = self.info.nb[UP] {
            let src = self.rhs(p, k).row(im - 2);
            let dst = own.row(0);
            for i in (2..=lastcol).step_by(2) {
                dst[i].set(src[i].get());
            }
        }
        if let Some(p) = self.info.nb[LEFT] {
            let src = self.rhs(p, k);
            for i in (2..=lastrow).step_by(2) {
                own.set(i, 0, src.get(i, jm - 2));
            }
        }
    }

    /// Fetches the neighbours' red border points on level `k`.
    fn copy_red(&self, k: usize) {
        self.copy_colour(k, 2, 1);
    }

    /// Fetches the neighbours' black border points on level `k`.
    fn copy_black(&self, k: usize) {
        self.copy_colour(k, 1, 2);
    }

    /// Ghost points of one colour: from the neighbour above and on the left starting at
    /// index `first_ul`, from below and on the right starting at `first_dr`, every other.
    fn copy_colour(&self, k: usize, first_ul: usize, first_dr: usize) {
        use super::geometry::{DOWN, RIGHT};
        let g = self.team.geom;
        let (im, jm) = (g.rows(k), g.cols(k));
        let (lastrow, lastcol) = (im - 2, jm - 2);
        let own = self.q(self.id, k);
        let n = &self.info.nb;
        if let Some(p) = n[UP] {
            let (src, dst) = (self.q(p, k).row(im - 2), own.row(0));
            for i in (first_ul..=lastcol).step_by(2) {
                dst[i].set(src[i].get());
            }
        }
        if let Some(p) = n[DOWN] {
            let (src, dst) = (self.q(p, k).row(1), own.row(im - 1));
            for i in (first_dr..=lastcol).step_by(2) {
                dst[i].set(src[i].get());
            }
        }
        if let Some(p) = n[LEFT] {
            let src = self.q(p, k);
            for i in (first_ul..=lastrow).step_by(2) {
                own.set(i, 0, src.get(i, jm - 2));
            }
        }
        if let Some(p) = n[RIGHT] {
            let src = self.q(p, k);
            for i in (first_dr..=lastrow).step_by(2) {
                own.set(i, jm - 1, src.get(i, 1));
            }
        }
    }
}

/// The larger of two changes, as the original compares them (`a > b ? a : b`).
#[inline(always)]
fn max_err(a: f64, b: f64) -> f64 {
    if a > b { a } else { b }
}

/// `*c += v`, as C's `+=`.
#[inline(always)]
fn add(c: &crate::framework::Cell64, v: f64) {
    c.set(c.get() + v);
}
