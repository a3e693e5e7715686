//! The original's `multi.C`: a W-cycle multigrid solver with red-black Gauss-Seidel
//! relaxation and half-injection, run by every thread on its own subgrids, with the
//! original's barriers (plus those ending the halo copies' read phases, see
//! [`Worker::multig`]) and its lock-protected global error.

use super::cfmt;
use super::error::OceanError;
use super::geometry::{DOWN, LEFT, RIGHT, UP, UPLEFT};
use super::grids::{Grid, View};
use super::slave::Worker;

/// The original's `maxwork`: relaxation sweeps (in finest-grid units) before giving up.
pub(crate) const MAXWORK: f64 = 10000.0;

impl Worker<'_, '_, '_> {
    /// Solves for `q_multi` on the finest level (the original's `multig`). Every thread
    /// takes the same path through the levels, as all of them decide on the same global
    /// error.
    ///
    /// Each halo copy of the original (`copy_black`, `copy_red`, `copy_borders`,
    /// `copy_rhs_borders`) is a read phase here, ended by a barrier, whose points the
    /// next compute phase writes into the own ghost ring first. Where the original
    /// relaxes again on the same level, the black points are read in the phase that
    /// reads the global error, which needs no barrier of its own.
    pub(crate) fn multig(&mut self) -> Result<(), OceanError> {
        let t = self.team;
        let g = t.geom;
        let m = g.numlev - 1;
        let mut k = m;
        let mut iter = 0u64;
        let mut wu = 0.0f64;
        let mut g_error = 1.0e30f64;
        // Whether the black ghost points of level `k` are fetched already.
        let mut fetched = false;
        loop {
            let errp = g_error;
            iter += 1;

            // All threads have finished intadd or rescal before relaxing, and have read
            // the last global error before the master resets it.
            self.proc.barrier();
            if self.master() {
                *t.err_multi.lock().unwrap_or_else(|e| e.into_inner()) = 0.0;
            }
            if !fetched {
                self.fetch_colour(k, 1, 2);
                self.proc.barrier();
            }
            let (red_local_err, inner_black_err) = {
                let p = &*self.proc;
                let (mut q, mut rhs) = (t.q.own(p), t.rhs.own(p));
                let mut qk = q.level(k);
                self.q_ghosts.apply(&mut qk);
                self.relax_red_and_inner_black(k, &mut qk, rhs.level(k).view())
            };

            // All red points are done.
            self.proc.barrier();
            self.fetch_colour(k, 2, 1);
            self.proc.barrier();
            let outer_black_err = {
                let p = &*self.proc;
                let (mut q, mut rhs) = (t.q.own(p), t.rhs.own(p));
                let mut qk = q.level(k);
                self.q_ghosts.apply(&mut qk);
                self.relax_outer_black(k, &mut qk, rhs.level(k).view())
            };
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

            // Every thread has merged its error.
            self.proc.barrier();
            g_error = *t.err_multi.lock().unwrap_or_else(|e| e.into_inner());

            if g_error >= self.lev_tol[k] {
                if wu > MAXWORK {
                    return Err(OceanError::MaxWork { limit: MAXWORK });
                }
                if k != 0 && g_error / errp >= 0.6 && k > g.minlevel {
                    // Go to the coarser grid: rescal reads the neighbours' border points.
                    self.fetch_for_rescal(k);
                    self.proc.barrier();
                    {
                        let p = &*self.proc;
                        let (mut q, mut rhs) = (t.q.own(p), t.rhs.own(p));
                        self.q_ghosts.apply(&mut q.level(k));
                        self.rhs_ghosts.apply(&mut rhs.level(k));
                        let (mut rc, bf) = rhs.pair(k - 1);
                        self.rescal(k, q.level(k).view(), bf.view(), &mut rc);
                        self.putz(k - 1, &mut q.level(k - 1));
                    }
                    self.lev_tol[k - 1] = 0.3 * g_error;
                    k -= 1;
                    g_error = 1.0e30;
                    fetched = false;
                } else {
                    // Again on this level: its black ghost points, in this read phase.
                    self.fetch_colour(k, 1, 2);
                    fetched = true;
                }
            } else if k == m {
                break;
            } else {
                // Converged on a coarse grid: back to the next finer one.
                self.fetch_borders(k);
                self.proc.barrier();
                {
                    let mut q = t.q.own(&*self.proc);
                    let (mut qc, mut qf) = q.pair(k);
                    self.q_ghosts.apply(&mut qc);
                    self.intadd(k, qc.view(), &mut qf);
                }
                k += 1;
                g_error = 1.0e30;
                fetched = false;
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

    /// Gauss-Seidel on row `i` of level `k`'s `q` for the points of one colour (red:
    /// `i + j` even) in columns `j0..=j1`, with right-hand side `rhs`; returns the largest
    /// change, as the original's `relax` computes it.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn relax_row(
        q: &mut Grid<'_>,
        rhs: View<'_>,
        i: usize,
        j0: usize,
        j1: usize,
        red: bool,
        factor: f64,
    ) -> f64 {
        let cols = j1 + 2;
        let (up, a, dn) = q.rows3(i);
        let (up, a, dn) = (&up[..cols], &mut a[..cols], &dn[..cols]);
        let b = &rhs.row(i)[..cols];
        // One point: `left` is a[j - 1], `right` a[j + 1] (points of the other colour,
        // which this half-sweep does not change); the sum in the original's order.
        #[inline(always)]
        fn point(
            a: &mut [f64],
            (up, dn, b): (&[f64], &[f64], &[f64]),
            j: usize,
            (left, right): (f64, f64),
            factor: f64,
            maxerr: &mut f64,
        ) {
            let s = right + left + up[j] + dn[j] - b[j];
            let oldval = a[j];
            let newval = s / factor;
            let newerr = oldval - newval;
            a[j] = newval;
            if newerr.abs() > *maxerr {
                *maxerr = newerr.abs();
            }
        }
        // Two points at a time with two running maxima (the largest change does not
        // depend on the order), so the divisions of neighbouring points overlap; each
        // other-colour point between two of them is read once.
        let (mut m0, mut m1) = (0.0f64, 0.0f64);
        let mut j = if (i + j0).is_multiple_of(2) {
            j0 + usize::from(!red)
        } else {
            j0 + usize::from(red)
        };
        let rows = (up, dn, b);
        let mut left = a[j - 1];
        while j + 2 <= j1 {
            let mid = a[j + 1];
            let right = a[j + 3];
            point(a, rows, j, (left, mid), factor, &mut m0);
            point(a, rows, j + 2, (mid, right), factor, &mut m1);
            left = right;
            j += 4;
        }
        if j <= j1 {
            let right = a[j + 1];
            point(a, rows, j, (left, right), factor, &mut m0);
        }
        max_err(m0, m1)
    }

    /// Columns of the black points that can be relaxed before `copy_red`: all but the
    /// border columns next to a side neighbour (whose red ghost points come from it).
    fn inner_black_cols(&self, k: usize) -> (usize, usize) {
        let lastcol = self.team.geom.xpts_per_proc[k];
        let j0 = if self.info.nb[LEFT].is_some() { 2 } else { 1 };
        let j1 = if self.info.nb[RIGHT].is_some() {
            lastcol - 1
        } else {
            lastcol
        };
        (j0, j1)
    }

    /// The red half-sweep on level `k`'s `q` (the original's `relax(k, .., RED_ITER,
    /// ..)`), and, one row behind it, the black half-sweep of the points that depend only
    /// on this thread's red points: rows `2..lastrow`, without the side columns next to a
    /// neighbour. Returns the largest red change and the largest black change so far.
    ///
    /// Points of one colour depend only on points of the other, so this order gives
    /// the original's values bit for bit: a black point is updated after its four red
    /// neighbours, a red point before its four black neighbours. Doing both in one pass
    /// over the grid halves the memory traffic of the solver's finest sweeps.
    fn relax_red_and_inner_black(&self, k: usize, q: &mut Grid<'_>, rhs: View<'_>) -> (f64, f64) {
        let g = self.team.geom;
        let h = g.lev_res[k];
        let factor = 4.0 - self.team.c.eig2 * h * h;
        let (lastrow, lastcol) = (g.ypts_per_proc[k], g.xpts_per_proc[k]);
        let (bj0, bj1) = self.inner_black_cols(k);
        let (mut red, mut black) = (0.0f64, 0.0f64);
        for i in 1..=lastrow {
            red = max_err(red, Self::relax_row(q, rhs, i, 1, lastcol, true, factor));
            // Black row i - 1 now has its final red neighbours (rows i - 2 ..= i).
            let b = i - 1;
            if b >= 2 && b < lastrow {
                black = max_err(black, Self::relax_row(q, rhs, b, bj0, bj1, false, factor));
            }
        }
        (red, black)
    }

    /// The black points [`Self::relax_red_and_inner_black`] left for after `copy_red`:
    /// rows 1 and `lastrow`, and the side columns next to a neighbour.
    fn relax_outer_black(&self, k: usize, q: &mut Grid<'_>, rhs: View<'_>) -> f64 {
        let g = self.team.geom;
        let h = g.lev_res[k];
        let factor = 4.0 - self.team.c.eig2 * h * h;
        let (lastrow, lastcol) = (g.ypts_per_proc[k], g.xpts_per_proc[k]);
        let (bj0, bj1) = self.inner_black_cols(k);
        let mut black = 0.0f64;
        for i in [1, lastrow] {
            black = max_err(black, Self::relax_row(q, rhs, i, 1, lastcol, false, factor));
        }
        for i in 2..lastrow {
            if bj0 > 1 {
                black = max_err(black, Self::relax_row(q, rhs, i, 1, 1, false, factor));
            }
            if bj1 < lastcol {
                black = max_err(
                    black,
                    Self::relax_row(q, rhs, i, lastcol, lastcol, false, factor),
                );
            }
        }
        black
    }

    /// Residual of level `kf` (`qf`, `bf`: its `q` and right-hand side, ghost rings in
    /// place), restricted by half-injection with bilinear interpolation into `rc`, the
    /// right-hand side of level `kf - 1` (the original's `rescal`). The neighbours'
    /// points it reads are in `left_col` and `up_row` ([`Self::fetch_for_rescal`]).
    fn rescal(&self, kf: usize, qf: View<'_>, bf: View<'_>, rc: &mut Grid<'_>) {
        let g = self.team.geom;
        let krc = kf - 1;
        let hf = g.lev_res[kf];
        let i_off = self.info.rownum * g.ypts_per_proc[krc];
        let j_off = self.info.colnum * g.xpts_per_proc[krc];
        let qleft = self.info.nb[LEFT].map(|_| &self.left_col[..]);
        let qup = self.info.nb[UP].map(|_| &self.up_row[..]);
        let iend = g.ypts_per_proc[krc];
        let jend = g.xpts_per_proc[krc];
        let factor = 4.0 - self.team.c.eig2 * hf * hf;
        let i_coeff = g.i_int_coeff[krc];
        let j_coeff = g.j_int_coeff[krc];
        let up_edge = self.edge(UP);
        let left_edge = self.edge(LEFT);

        let mut if17 = 0usize;
        for ic in 1..=iend {
            if17 += 2;
            let i_int_factor = (ic + i_off) as f64 * i_coeff * 0.5;
            let t1a = qf.row(if17);
            let t1b = bf.row(if17);
            let t1d = qf.row(if17 - 1);
            let t1e = qf.row(if17 + 1);
            let t1f = qf.row(if17 - 2);
            // Row if17 - 3 is used only from if17 = 4 on (the original forms a pointer
            // to row -1 for if17 = 2 and never reads it).
            let t1g = qf.row(if17.saturating_sub(3));
            let t1h = bf.row(if17 - 2);
            let t1c = rc.row_mut(ic);
            let mut jf = 0usize;
            for (jc, out) in t1c.iter_mut().enumerate().take(jend + 1).skip(1) {
                jf += 2;
                let j_int_factor = (jc + j_off) as f64 * j_coeff * 0.5;

                // The method of half-injection uses 2.0 instead of 4.0.
                let s = t1a[jf + 1] + t1a[jf - 1] + t1d[jf] + t1e[jf];
                let s1 = 2.0 * (t1b[jf] - s + factor * t1a[jf]);
                let (s2, s3, s4);
                if (if17 == 2 && up_edge) || (jf == 2 && left_edge) {
                    s2 = 0.0;
                    s3 = 0.0;
                    s4 = 0.0;
                } else if if17 == 2 || jf == 2 {
                    let temp = match (jf == 2, qleft) {
                        (true, Some(l)) => l[if17],
                        _ => t1a[jf - 3],
                    };
                    let s = t1a[jf - 1] + temp + t1d[jf - 2] + t1e[jf - 2];
                    s2 = 2.0 * (t1b[jf - 2] - s + factor * t1a[jf - 2]);
                    let temp = match (if17 == 2, qup) {
                        (true, Some(u)) => u[jf],
                        _ => t1g[jf],
                    };
                    let s = t1f[jf + 1] + t1f[jf - 1] + temp + t1d[jf];
                    s3 = 2.0 * (t1h[jf] - s + factor * t1f[jf]);
                    let temp = match (jf == 2, qleft) {
                        (true, Some(l)) => l[if17 - 2],
                        _ => t1f[jf - 3],
                    };
                    let temp2 = match (if17 == 2, qup) {
                        (true, Some(u)) => u[jf - 2],
                        _ => t1g[jf - 2],
                    };
                    let s = t1f[jf - 1] + temp + temp2 + t1d[jf - 2];
                    s4 = 2.0 * (t1h[jf - 2] - s + factor * t1f[jf - 2]);
                } else {
                    let s = t1a[jf - 1] + t1a[jf - 3] + t1d[jf - 2] + t1e[jf - 2];
                    s2 = 2.0 * (t1b[jf - 2] - s + factor * t1a[jf - 2]);
                    let s = t1f[jf + 1] + t1f[jf - 1] + t1g[jf] + t1d[jf];
                    s3 = 2.0 * (t1h[jf] - s + factor * t1f[jf]);
                    let s = t1f[jf - 1] + t1f[jf - 3] + t1g[jf - 2] + t1d[jf - 2];
                    s4 = 2.0 * (t1h[jf - 2] - s + factor * t1f[jf - 2]);
                }
                let int1 = j_int_factor * s4 + (1.0 - j_int_factor) * s3;
                let int2 = j_int_factor * s2 + (1.0 - j_int_factor) * s1;
                *out = i_int_factor * int1 + (1.0 - i_int_factor) * int2;
            }
        }
    }

    /// Interpolates level `kc`'s correction `qc` (ghost ring in place) and adds it to
    /// `qf`, level `kc + 1` (the original's `intadd`).
    fn intadd(&self, kc: usize, qc: View<'_>, qf: &mut Grid<'_>) {
        let g = self.team.geom;
        let kf = kc + 1;
        let iend = g.ypts_per_proc[kc];
        let jend = g.xpts_per_proc[kc];
        let i_off = self.info.rownum * g.ypts_per_proc[kc];
        let j_off = self.info.colnum * g.xpts_per_proc[kc];
        let (ci, cj) = (g.imx[kc] - 2, g.jmx[kc] - 2);
        let i_coeff = g.i_int_coeff[kf];
        let j_coeff = g.j_int_coeff[kf];

        let mut if17 = 0usize;
        for ic in 1..=iend {
            if17 += 2;
            let i_int_factor1 = (ci - (ic + i_off - 1)) as f64 * i_coeff;
            let i_int_factor2 = (ic + i_off) as f64 * i_coeff;
            let t1a = qc.row(ic);
            let t1b = qc.row(ic - 1);
            let t1c = qc.row(ic + 1);
            // Rows if17 - 1 and if17 of the fine grid.
            let (t1e, t1d) = qf.rows2(if17 - 1);
            let mut jf = 0usize;
            for jc in 1..=jend {
                jf += 2;
                let j_int_factor1 = (cj - (jc + j_off - 1)) as f64 * j_coeff;
                let j_int_factor2 = (jc + j_off) as f64 * j_coeff;

                let mut int1 = j_int_factor1 * t1a[jc - 1] + (1.0 - j_int_factor1) * t1a[jc];
                let mut int2 = j_int_factor1 * t1b[jc - 1] + (1.0 - j_int_factor1) * t1b[jc];
                t1e[jf - 1] += i_int_factor1 * int2 + (1.0 - i_int_factor1) * int1;
                int2 = j_int_factor1 * t1c[jc - 1] + (1.0 - j_int_factor1) * t1c[jc];
                t1d[jf - 1] += i_int_factor2 * int2 + (1.0 - i_int_factor2) * int1;
                int1 = j_int_factor2 * t1a[jc + 1] + (1.0 - j_int_factor2) * t1a[jc];
                int2 = j_int_factor2 * t1b[jc + 1] + (1.0 - j_int_factor2) * t1b[jc];
                t1e[jf] += i_int_factor1 * int2 + (1.0 - i_int_factor1) * int1;
                int2 = j_int_factor2 * t1c[jc + 1] + (1.0 - j_int_factor2) * t1c[jc];
                t1d[jf] += i_int_factor2 * int2 + (1.0 - i_int_factor2) * int1;
            }
        }
    }

    /// Zeroes this thread's unknowns `q` on level `k` (the initial guess on a coarser
    /// grid).
    fn putz(&self, k: usize, q: &mut Grid<'_>) {
        let g = self.team.geom;
        let (iend, jend) = (1 + g.ypts_per_proc[k], 1 + g.xpts_per_proc[k]);
        for i in 1..=iend {
            q.row_mut(i)[1..=jend].fill(0.0);
        }
    }

    /// Reads the neighbours' points for the whole ghost ring of level `k`'s unknowns into
    /// `q_ghosts` (the original's `copy_borders`; call in a read phase of `q_multi`).
    fn fetch_borders(&mut self, k: usize) {
        let g = self.team.geom;
        let mut out = std::mem::take(&mut self.q_ghosts);
        out.reset(g.cols(k));
        let q = self.team.q.read(&*self.proc);
        self.fetch_ghosts(&|p| q.level(p, k), g.rows(k), g.cols(k), &mut out);
        self.q_ghosts = out;
    }

    /// What `rescal` on level `k` needs from the neighbours, in one read phase of
    /// `q_multi` and `rhs_multi`: `q`'s ghost ring ([`Self::fetch_borders`]), the even
    /// right-hand side border points (the original's `copy_rhs_borders`) into
    /// `rhs_ghosts`, and the left neighbour's column and the upper neighbour's row next
    /// to their border into `left_col` and `up_row`.
    fn fetch_for_rescal(&mut self, k: usize) {
        self.fetch_borders(k);
        let g = self.team.geom;
        let (im, jm) = (g.rows(k), g.cols(k));
        let (lastrow, lastcol) = (im - 2, jm - 2);
        let mut out = std::mem::take(&mut self.rhs_ghosts);
        let (mut left_col, mut up_row) = (
            std::mem::take(&mut self.left_col),
            std::mem::take(&mut self.up_row),
        );
        out.reset(jm);
        left_col.clear();
        up_row.clear();
        // The original's interior rows and columns of a fine subgrid.
        let (fim, fjm) = ((g.imx[k] - 2) / g.yprocs, (g.jmx[k] - 2) / g.xprocs);
        let p = &*self.proc;
        let (q, rhs) = (self.team.q.read(p), self.team.rhs.read(p));
        let n = &self.info.nb;
        if let Some(p) = n[UPLEFT] {
            out.put(0, 0, rhs.level(p, k).get(im - 2, jm - 2));
        }
        if let Some(p) = n[UP] {
            let src = rhs.level(p, k).row(im - 2);
            for j in (2..=lastcol).step_by(2) {
                out.put(0, j, src[j]);
            }
            up_row.extend_from_slice(q.level(p, k).row(fim - 1));
            // Its column 0 is a ghost column where it has a left neighbour (our upper
            // left one): the original reads it after that neighbour's `copy_borders`
            // filled it, from the upper left neighbour's column jm - 2.
            if let Some(ul) = n[UPLEFT] {
                up_row[0] = q.level(ul, k).get(fim - 1, jm - 2);
            }
        }
        if let Some(p) = n[LEFT] {
            let src = rhs.level(p, k);
            for i in (2..=lastrow).step_by(2) {
                out.put(i, 0, src.get(i, jm - 2));
            }
            let src = q.level(p, k);
            left_col.extend((0..im).map(|i| src.get(i, fjm - 1)));
            // Its row 0 likewise, from the upper left neighbour's row im - 2.
            if let Some(ul) = n[UPLEFT] {
                left_col[0] = q.level(ul, k).get(im - 2, fjm - 1);
            }
        }
        self.rhs_ghosts = out;
        (self.left_col, self.up_row) = (left_col, up_row);
    }

    /// Reads the neighbours' ghost points of one colour on level `k` into `q_ghosts`
    /// (the original's `copy_red`: `2, 1`; `copy_black`: `1, 2`; call in a read phase
    /// of `q_multi`): from the neighbour above and on the left starting at index
    /// `first_ul`, from below and on the right starting at `first_dr`, every other.
    fn fetch_colour(&mut self, k: usize, first_ul: usize, first_dr: usize) {
        let g = self.team.geom;
        let (im, jm) = (g.rows(k), g.cols(k));
        let (lastrow, lastcol) = (im - 2, jm - 2);
        let mut out = std::mem::take(&mut self.q_ghosts);
        out.reset(jm);
        let q = self.team.q.read(&*self.proc);
        let n = &self.info.nb;
        if let Some(p) = n[UP] {
            let src = q.level(p, k).row(im - 2);
            for j in (first_ul..=lastcol).step_by(2) {
                out.put(0, j, src[j]);
            }
        }
        if let Some(p) = n[DOWN] {
            let src = q.level(p, k).row(1);
            for j in (first_dr..=lastcol).step_by(2) {
                out.put(im - 1, j, src[j]);
            }
        }
        if let Some(p) = n[LEFT] {
            let src = q.level(p, k);
            for i in (first_ul..=lastrow).step_by(2) {
                out.put(i, 0, src.get(i, jm - 2));
            }
        }
        if let Some(p) = n[RIGHT] {
            let src = q.level(p, k);
            for i in (first_dr..=lastrow).step_by(2) {
                out.put(i, jm - 1, src.get(i, 1));
            }
        }
        self.q_ghosts = out;
    }
}

/// The larger of two changes, as the original compares them (`a > b ? a : b`).
#[inline(always)]
fn max_err(a: f64, b: f64) -> f64 {
    if a > b { a } else { b }
}
