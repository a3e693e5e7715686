//! The monitoring request (`rset-mon record`).

use serde::{Deserialize, Serialize};

use crate::{MON_ENV, ProtocolError};

/// Monitoring of an unmodified program (`rset-mon record`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MonConfig {
    /// Only the process whose parent has this pid is monitored (the program
    /// `rset-mon` started, not what it forks and execs).
    pub parent: u32,
    /// Where the session file goes.
    pub output: String,
    /// Granularity of the heap blocks' filters, in bytes (a power of two).
    pub granularity: u64,
    /// Heap blocks at least this large are watched.
    pub min_size: u64,
    /// Explicit ranges `(start, size, granularity)`, watched instead of the heap
    /// blocks when not empty... or in addition to them when `heap` is true.
    pub filters: Vec<(u64, u64, u64)>,
    /// Watch heap blocks.
    pub heap: bool,
    /// Refinement: watch only these parts of heap blocks, named by block sequence
    /// number (the n-th watched heap block of the run, from 0): `(seq, offset,
    /// size, granularity)`.
    pub zoom: Vec<(u64, u64, u64, u64)>,
    /// Samples per second of each thread's CPU time (tick sampler) or arming
    /// rounds per second (protect sampler).
    pub rate_hz: u64,
    /// Largest share of the program's time sampling may cost (0: no limit).
    pub max_overhead: f64,
    /// Which software sampler (absent in older requests: auto).
    #[serde(default)]
    pub sampler: monitor::session::Software,
}

impl MonConfig {
    /// Decodes the value of [`MON_ENV`].
    ///
    /// # Errors
    /// [`ProtocolError::Json`] for text that is not a configuration.
    pub fn from_env_value(value: &str) -> Result<MonConfig, ProtocolError> {
        serde_json::from_str(value).map_err(|e| ProtocolError::Json {
            var: MON_ENV,
            message: e.to_string(),
        })
    }

    /// The value of [`MON_ENV`] for this configuration.
    ///
    /// # Errors
    /// [`ProtocolError::Encode`] (not expected: every field has a JSON form).
    pub fn to_env_value(&self) -> Result<String, ProtocolError> {
        serde_json::to_string(self).map_err(|e| ProtocolError::Encode {
            var: MON_ENV,
            message: e.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_travels_unchanged_and_garbage_is_refused() {
        let cfg = MonConfig {
            parent: 42,
            output: "/tmp/x.session".into(),
            granularity: 4096,
            min_size: 1 << 20,
            filters: vec![(0x1000, 8192, 4096)],
            heap: true,
            zoom: vec![(0, 64, 128, 64)],
            rate_hz: 1000,
            max_overhead: 0.01,
            sampler: monitor::session::Software::Tick,
        };
        let json = cfg.to_env_value().unwrap();
        assert_eq!(MonConfig::from_env_value(&json), Ok(cfg));
        let e = MonConfig::from_env_value("[]").unwrap_err();
        assert!(e.to_string().starts_with("bad RSET_MON: "), "{e}");
    }
}
