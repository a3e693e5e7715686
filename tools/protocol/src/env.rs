//! The names both sides agree on: environment variables, the library, the
//! passive marker.

/// Environment variable holding a [`RunConfig`](crate::RunConfig) as JSON.
pub const RUN_ENV: &str = "RSET_RUN";
/// Environment variable holding a [`MonConfig`](crate::MonConfig) as JSON.
pub const MON_ENV: &str = "RSET_MON";
/// Name of the preloaded library.
pub const LIBRARY: &str = "librset_preload.so";
/// A symbol a program exports (`-Wl,--export-dynamic-symbol=`) to make the library
/// leave it alone: no binding, no policy, no monitor (the rset tools themselves).
pub const PASSIVE_SYMBOL: &str = "rset_preload_passive";
