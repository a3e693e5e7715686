//! The grid hierarchy and its division among threads (the original's `main.C` set-up and
//! `subblock.C`): the processors form an `xprocs` x `yprocs` mesh and thread `p` owns the
//! square-like subgrid at mesh row `p / xprocs`, column `p % xprocs`, on every level.

use super::error::OceanError;

/// Neighbour directions, numbered as in the original (`decs.H`).
pub(crate) const UP: usize = 0;
pub(crate) const DOWN: usize = 1;
pub(crate) const LEFT: usize = 2;
pub(crate) const RIGHT: usize = 3;
pub(crate) const UPLEFT: usize = 4;
pub(crate) const UPRIGHT: usize = 5;
pub(crate) const DOWNLEFT: usize = 6;
pub(crate) const DOWNRIGHT: usize = 7;

/// Everything about the grids that depends only on the flags.
#[derive(Debug, Clone)]
pub(crate) struct Geometry {
    pub(crate) nprocs: usize,
    pub(crate) xprocs: usize,
    pub(crate) yprocs: usize,
    /// Number of multigrid levels; level `numlev - 1` is the finest.
    pub(crate) numlev: usize,
    pub(crate) minlevel: usize,
    /// Global grid rows / columns (with the boundary) per level.
    pub(crate) imx: Vec<usize>,
    pub(crate) jmx: Vec<usize>,
    /// Grid spacing per level, in metres.
    pub(crate) lev_res: Vec<f64>,
    /// Interior points per thread along x (columns) and y (rows), per level.
    pub(crate) xpts_per_proc: Vec<usize>,
    pub(crate) ypts_per_proc: Vec<usize>,
    pub(crate) i_int_coeff: Vec<f64>,
    pub(crate) j_int_coeff: Vec<f64>,
    /// Rows and columns of one thread's finest subgrid, ghost border included.
    pub(crate) im: usize,
    pub(crate) jm: usize,
}

/// The original's `log_2`: the exponent if `number` is a power of two, else `None`.
pub(crate) fn log_2(number: i64) -> Option<u32> {
    let mut cumulative: i64 = 1;
    let mut out = 0u32;
    while cumulative < number && out < 50 {
        cumulative *= 2;
        out += 1;
    }
    (cumulative == number).then_some(out)
}

impl Geometry {
    /// The original's set-up for an `n` x `n` grid and `nprocs` processors (both already
    /// checked to be 2^k+2 and a power of two).
    pub(crate) fn new(n: usize, nprocs: usize, res: f64) -> Result<Geometry, OceanError> {
        // Factor nprocs into the most square xprocs * yprocs with yprocs >= xprocs.
        let mut xprocs = 0;
        let mut yprocs = 0;
        let mut j = (nprocs as f64).sqrt() as usize;
        while xprocs == 0 && j > 0 {
            let k = nprocs / j;
            if k * j == nprocs {
                if k > j {
                    xprocs = j;
                    yprocs = k;
                } else {
                    xprocs = k;
                    yprocs = j;
                }
            }
            j -= 1;
        }
        if xprocs == 0 {
            return Err(OceanError::NoFactors { nprocs });
        }

        // One level per halving that leaves every thread at least two points each way.
        let mut itemp = 1usize;
        let mut numlev = 0usize;
        while itemp < n - 2 {
            itemp *= 2;
            if itemp / yprocs > 1 && itemp / xprocs > 1 {
                numlev += 1;
            }
        }
        if numlev == 0 {
            return Err(OceanError::TooManyProcs { n, nprocs });
        }

        let mut imx = vec![0; numlev];
        let mut jmx = vec![0; numlev];
        let mut lev_res = vec![0.0; numlev];
        imx[numlev - 1] = n;
        jmx[numlev - 1] = n;
        lev_res[numlev - 1] = res;
        for i in (0..numlev - 1).rev() {
            imx[i] = (imx[i + 1] - 2) / 2 + 2;
            jmx[i] = (jmx[i + 1] - 2) / 2 + 2;
            lev_res[i] = lev_res[i + 1] * 2.0;
        }
        let xpts_per_proc: Vec<usize> = jmx.iter().map(|&j| (j - 2) / xprocs).collect();
        let ypts_per_proc: Vec<usize> = imx.iter().map(|&i| (i - 2) / yprocs).collect();
        let mut minlevel = 0;
        for i in (0..numlev).rev() {
            if xpts_per_proc[i] < 2 || ypts_per_proc[i] < 2 {
                minlevel = i + 1;
                break;
            }
        }
        let i_int_coeff = imx.iter().map(|&i| 1.0 / (i - 1) as f64).collect();
        let j_int_coeff = jmx.iter().map(|&j| 1.0 / (j - 1) as f64).collect();
        Ok(Geometry {
            nprocs,
            xprocs,
            yprocs,
            numlev,
            minlevel,
            im: (n - 2) / yprocs + 2,
            jm: (n - 2) / xprocs + 2,
            imx,
            jmx,
            lev_res,
            xpts_per_proc,
            ypts_per_proc,
            i_int_coeff,
            j_int_coeff,
        })
    }

    /// Rows (with ghosts) of a thread's subgrid on level `k`.
    pub(crate) fn rows(&self, k: usize) -> usize {
        self.ypts_per_proc[k] + 2
    }

    /// Columns (with ghosts) of a thread's subgrid on level `k`.
    pub(crate) fn cols(&self, k: usize) -> usize {
        self.xpts_per_proc[k] + 2
    }

    /// Where thread `p` sits in the processor mesh and who its neighbours are.
    pub(crate) fn proc_info(&self, p: usize) -> ProcInfo {
        let (x, n) = (self.xprocs, self.nprocs);
        let mut nb = [None; 8];
        if p >= x {
            nb[UP] = Some(p - x);
        }
        if p < n - x {
            nb[DOWN] = Some(p + x);
        }
        if !p.is_multiple_of(x) {
            nb[LEFT] = Some(p - 1);
        }
        if p % x < x - 1 {
            nb[RIGHT] = Some(p + 1);
        }
        if let Some(j) = nb[UP] {
            if !j.is_multiple_of(x) {
                nb[UPLEFT] = Some(j - 1);
            }
            if j % x < x - 1 {
                nb[UPRIGHT] = Some(j + 1);
            }
        }
        if let Some(j) = nb[DOWN] {
            if !j.is_multiple_of(x) {
                nb[DOWNLEFT] = Some(j - 1);
            }
            if j % x < x - 1 {
                nb[DOWNRIGHT] = Some(j + 1);
            }
        }
        ProcInfo {
            rownum: p / x,
            colnum: p % x,
            nb,
        }
    }
}

/// One thread's place in the processor mesh (the original's `Global_Private`, less the
/// per-level bounds, which are the same for every thread and come from [`Geometry`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ProcInfo {
    pub(crate) rownum: usize,
    pub(crate) colnum: usize,
    /// Neighbouring threads, indexed by [`UP`] .. [`DOWNRIGHT`]; `None` at the ocean's edge.
    pub(crate) nb: [Option<usize>; 8],
}

impl ProcInfo {
    /// True when this thread's subgrid touches the ocean's boundary in direction `dir`.
    pub(crate) fn edge(&self, dir: usize) -> bool {
        self.nb[dir].is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_2_as_original() {
        assert_eq!(log_2(256), Some(8));
        assert_eq!(log_2(1), Some(0));
        assert_eq!(log_2(100), None);
        assert_eq!(log_2(0), None);
        assert_eq!(log_2(-2), None);
    }

    #[test]
    fn levels_depend_on_the_mesh() {
        let g1 = Geometry::new(258, 1, 20000.0).unwrap();
        assert_eq!((g1.xprocs, g1.yprocs, g1.numlev), (1, 1, 8));
        let g2 = Geometry::new(258, 2, 20000.0).unwrap();
        assert_eq!((g2.xprocs, g2.yprocs, g2.numlev), (1, 2, 7));
        let g8 = Geometry::new(258, 8, 20000.0).unwrap();
        assert_eq!((g8.xprocs, g8.yprocs, g8.im, g8.jm), (2, 4, 66, 130));
        assert!(matches!(
            Geometry::new(18, 256, 1.0),
            Err(OceanError::TooManyProcs { .. })
        ));
    }

    #[test]
    fn neighbours_of_a_2x4_mesh() {
        let g = Geometry::new(66, 8, 1.0).unwrap();
        let p = g.proc_info(2);
        assert_eq!((p.rownum, p.colnum), (1, 0));
        assert_eq!(p.nb[UP], Some(0));
        assert_eq!(p.nb[DOWN], Some(4));
        assert_eq!(p.nb[LEFT], None);
        assert_eq!(p.nb[RIGHT], Some(3));
        assert_eq!(p.nb[UPRIGHT], Some(1));
        assert_eq!(p.nb[DOWNRIGHT], Some(5));
        assert_eq!(p.nb[UPLEFT], None);
    }
}
