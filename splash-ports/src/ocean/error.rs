//! [`OceanError`]: bad flags (with the original's messages) or a solver that does
//! not converge.

use crate::framework::SplashError;

/// What can go wrong in Ocean: bad flags (with the original's messages) or a solver that
/// does not converge.
#[derive(Debug, thiserror::Error)]
pub enum OceanError {
    /// `-n` is not (a power of 2) + 2.
    #[error("-n{value}: Grid must be ((power of 2)+2) in each dimension")]
    BadGrid {
        /// The value given.
        value: String,
    },
    /// `-p` is below 1.
    #[error("-p{value}: P must be >= 1")]
    TooFewProcs {
        /// The value given.
        value: String,
    },
    /// `-p` is not a power of 2.
    #[error("-p{value}: P must be a power of 2")]
    ProcsNotPowerOf2 {
        /// The value given.
        value: String,
    },
    /// A number flag's value is not a number.
    #[error("-{flag}{value}: not a number")]
    NotANumber {
        /// The flag.
        flag: char,
        /// The value given.
        value: String,
    },
    /// `-r` or `-t` is not positive.
    #[error("-{flag}{value}: must be > 0")]
    NotPositive {
        /// The flag.
        flag: char,
        /// The value given.
        value: String,
    },
    /// No factorisation of the thread count into a mesh.
    #[error("-p{nprocs}: Could not find factors for subblocking")]
    NoFactors {
        /// The thread count.
        nprocs: usize,
    },
    /// More threads than the grid allows: each needs at least 2 x 2 points.
    #[error("-n{n} -p{nprocs}: Must have at least 2 grid points per processor in each dimension")]
    TooManyProcs {
        /// The grid size.
        n: usize,
        /// The thread count.
        nprocs: usize,
    },
    /// The grid does not fit in memory addresses.
    #[error("-n{n}: grid too large")]
    TooLarge {
        /// The grid size.
        n: usize,
    },
    /// The time step never reaches the end of day 2 (the original would loop forever),
    /// or takes more than 10^8 steps.
    #[error("-t{dtau}: the simulation would never end with this time step")]
    EndlessTimestep {
        /// The time step, in seconds.
        dtau: f64,
    },
    /// The multigrid solver did not converge within its work limit.
    #[error("Maximum work limit {limit:.5} exceeded")]
    MaxWork {
        /// The limit, in finest-grid sweeps.
        limit: f64,
    },
    /// Writing the output failed.
    #[error("writing the output: {0}")]
    Output(#[from] std::io::Error),
}

impl From<OceanError> for SplashError {
    /// Everything but an output error reads as the C original's `ERROR:` messages
    /// (the solver's work limit included: it follows from the flags `-e -r -t`).
    fn from(e: OceanError) -> SplashError {
        match e {
            OceanError::Output(e) => SplashError::Output(e),
            e => SplashError::Usage(e.to_string()),
        }
    }
}
