//! What Ocean's threads share: the grids (allocated through the framework, used through
//! its phase views, `grids.rs`), the constants of the original's `main`, and its
//! globals guarded by locks.

use std::sync::Mutex;

use super::error::OceanError;
use super::geometry::Geometry;
use super::grids::{Field, FieldLayout, MgField};
use super::params::Params;
use crate::framework::{self, Machine, Partition, Shared, SplashError};

/// Timing of one thread, in clock ticks (microseconds), as the original's `gp[p]`.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct ProcStats {
    pub(super) total_time: f64,
    pub(super) multi_time: f64,
}

/// The original's `CLOCK`: microseconds.
pub(super) fn clock() -> u64 {
    framework::clock_us()
}

/// The physical constants and derived values of the original's `main`.
pub(super) struct Consts {
    pub(super) h1: f64,
    pub(super) h3: f64,
    pub(super) h: f64,
    pub(super) lf: f64,
    pub(super) f0: f64,
    pub(super) beta: f64,
    pub(super) t0: f64,
    pub(super) pi: f64,
    pub(super) eig2: f64,
    pub(super) ysca: f64,
    pub(super) factjacob: f64,
    pub(super) factlap: f64,
}

impl Consts {
    fn new(p: &Params) -> Consts {
        let (h1, h3, h) = (1000.0, 4000.0, 5000.0);
        let (f0, gpr) = (8.3e-5, 0.02);
        let res = p.res;
        let pi = 4.0 * 1.0f64.atan();
        let jmm1 = p.n - 1;
        Consts {
            h1,
            h3,
            h,
            lf: -5.12e11,
            f0,
            beta: 2.0e-11,
            t0: 0.5e-4,
            pi,
            eig2: -h * f0 * f0 / (h1 * h3 * gpr),
            ysca: jmm1 as f64 * res,
            factjacob: -1.0 / (12.0 * res * res),
            factlap: 1.0 / (res * res),
        }
    }
}

/// A global sum made of one partial sum per thread (the original adds them into one
/// shared variable under a lock, in whatever order the threads come; we keep them apart
/// and add them in thread order, one of those orders, so runs are reproducible).
pub(super) struct Sums(Mutex<Vec<f64>>);

impl Sums {
    pub(super) fn new(n: usize) -> Sums {
        Sums(Mutex::new(vec![0.0; n]))
    }

    pub(super) fn contribute(&self, id: usize, v: f64) {
        self.0.lock().unwrap_or_else(|e| e.into_inner())[id] = v;
    }

    /// The sum; call after a barrier that follows every thread's `contribute`.
    pub(super) fn total(&self) -> f64 {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .fold(0.0, |s, v| s + v)
    }
}

/// The finest-level grids of the original, with their number of subgrids.
const FIELDS: [(&str, usize); 18] = [
    ("psi", 2),
    ("psim", 2),
    ("psium", 1),
    ("psilm", 1),
    ("psib", 1),
    ("ga", 1),
    ("gb", 1),
    ("work1", 2),
    ("work2", 1),
    ("work3", 1),
    ("work4", 2),
    ("work5", 2),
    ("work6", 1),
    ("work7", 2),
    ("temparray", 2),
    ("tauz", 1),
    ("oldga", 1),
    ("oldgb", 1),
];

/// The shared arrays, allocated through the framework.
pub(super) struct Store {
    fields: Vec<(Shared<f64>, FieldLayout)>,
    q: Shared<f64>,
    rhs: Shared<f64>,
    mg: FieldLayout,
    f: Shared<f64>,
}

impl Store {
    pub(super) fn allocate(
        machine: &Machine,
        g: &Geometry,
        n: usize,
    ) -> Result<Store, SplashError> {
        let too_large = || SplashError::from(OceanError::TooLarge { n });
        let nprocs = g.nprocs;
        let parts = |layout: &FieldLayout| {
            Partition::by_thread(
                (0..nprocs)
                    .map(|p| (p * layout.block..(p + 1) * layout.block, p))
                    .collect(),
            )
        };
        let mut fields = Vec::with_capacity(FIELDS.len());
        for (name, nsub) in FIELDS {
            let layout = FieldLayout::new(&vec![(g.im, g.jm); nsub]).ok_or_else(too_large)?;
            let len = layout.block.checked_mul(nprocs).ok_or_else(too_large)?;
            let shared = machine.shared::<f64>(&format!("ocean.{name}"), len, &parts(&layout))?;
            fields.push((shared, layout));
        }
        let dims: Vec<(usize, usize)> = (0..g.numlev).map(|k| (g.rows(k), g.cols(k))).collect();
        let mg = FieldLayout::new(&dims).ok_or_else(too_large)?;
        let len = mg.block.checked_mul(nprocs).ok_or_else(too_large)?;
        let q = machine.shared::<f64>("ocean.q_multi", len, &parts(&mg))?;
        let rhs = machine.shared::<f64>("ocean.rhs_multi", len, &parts(&mg))?;
        // f (the Coriolis parameter by column) is written by thread 0 and read by all.
        let f = machine.shared::<f64>("ocean.f", n, &Partition::by_thread(vec![(0..n, 0)]))?;
        Ok(Store {
            fields,
            q,
            rhs,
            mg,
            f,
        })
    }
}

/// What the threads share: the grids (phase views), the constants, and the original's
/// globals guarded by its locks.
pub(super) struct Team<'a> {
    pub(super) params: &'a Params,
    pub(super) geom: &'a Geometry,
    pub(super) c: Consts,
    pub(super) psi: Field<'a>,
    pub(super) psim: Field<'a>,
    pub(super) psium: Field<'a>,
    pub(super) psilm: Field<'a>,
    pub(super) psib: Field<'a>,
    pub(super) ga: Field<'a>,
    pub(super) gb: Field<'a>,
    pub(super) work1: Field<'a>,
    pub(super) work2: Field<'a>,
    pub(super) work3: Field<'a>,
    pub(super) work4: Field<'a>,
    pub(super) work5: Field<'a>,
    pub(super) work6: Field<'a>,
    pub(super) work7: Field<'a>,
    pub(super) temparray: Field<'a>,
    pub(super) tauz: Field<'a>,
    pub(super) oldga: Field<'a>,
    pub(super) oldgb: Field<'a>,
    pub(super) q: MgField<'a>,
    pub(super) rhs: MgField<'a>,
    /// The Coriolis parameter by column, written by thread 0 before the time loop.
    pub(super) f: &'a Shared<f64>,
    /// The multigrid's global error (`multi->err_multi`, under `error_lock`).
    pub(super) err_multi: Mutex<f64>,
    pub(super) psiai: Sums,
    pub(super) psibi: Sums,
    /// Lines printed by the master thread during the run (`-o`).
    pub(super) lines: Mutex<Vec<String>>,
    pub(super) stats: Mutex<Vec<ProcStats>>,
    pub(super) trackstart: Mutex<u64>,
    pub(super) failure: Mutex<Option<OceanError>>,
}

impl<'a> Team<'a> {
    /// The team over `store`'s arrays.
    pub(super) fn new(params: &'a Params, geom: &'a Geometry, store: &'a Store) -> Team<'a> {
        let Store {
            fields,
            q,
            rhs,
            mg,
            f,
        } = store;
        let mut fields = fields
            .iter()
            .map(|(shared, layout)| Field::new(shared, layout));
        let mut field = || fields.next().expect("one array per field");
        Team {
            params,
            geom,
            c: Consts::new(params),
            psi: field(),
            psim: field(),
            psium: field(),
            psilm: field(),
            psib: field(),
            ga: field(),
            gb: field(),
            work1: field(),
            work2: field(),
            work3: field(),
            work4: field(),
            work5: field(),
            work6: field(),
            work7: field(),
            temparray: field(),
            tauz: field(),
            oldga: field(),
            oldgb: field(),
            q: MgField::new(q, mg),
            rhs: MgField::new(rhs, mg),
            f,
            err_multi: Mutex::new(0.0),
            psiai: Sums::new(geom.nprocs),
            psibi: Sums::new(geom.nprocs),
            lines: Mutex::new(Vec::new()),
            stats: Mutex::new(vec![ProcStats::default(); geom.nprocs]),
            trackstart: Mutex::new(0),
            failure: Mutex::new(None),
        }
    }
}
