//! What a sampler delivers: one observed memory reference, and the trait every
//! sampler (hardware, software, replay) implements.

use serde::{Deserialize, Serialize};

/// Whether a reference read or wrote memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    /// A load.
    Read,
    /// A store.
    Write,
    /// The sampler cannot tell (counted as a read by filters whose mask has reads).
    Unknown,
}

/// Where the PMU says a load was served from, when it says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DataSource {
    /// A cache of the accessing CPU's node.
    LocalCache,
    /// DRAM of the accessing CPU's node.
    LocalDram,
    /// A cache on another node.
    RemoteCache,
    /// DRAM of another node.
    RemoteDram,
    /// Memory the PMU could not classify.
    Other,
}

impl DataSource {
    /// Truth that the source is on another node than the accessing CPU, when known.
    pub fn is_remote(self) -> Option<bool> {
        match self {
            DataSource::LocalCache | DataSource::LocalDram => Some(false),
            DataSource::RemoteCache | DataSource::RemoteDram => Some(true),
            DataSource::Other => None,
        }
    }
}

/// One sampled memory reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sample {
    /// The exact virtual address referenced.
    pub addr: u64,
    /// The kernel thread id of the referencing thread.
    pub tid: i32,
    /// The CPU it ran on.
    pub cpu: u32,
    /// The node of that CPU (the *accessing* node).
    pub node: u32,
    /// Nanoseconds since the session started.
    pub time_ns: u64,
    /// Read or write.
    pub access: Access,
    /// The PMU's data source, if the sampler has one.
    pub source: Option<DataSource>,
}

/// What a sampler says about itself at the end of a session (and in reports).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SamplerStats {
    /// The sampler's name (`protect`, `perf-mem`, `replay`).
    pub name: String,
    /// Samples delivered.
    pub samples: u64,
    /// Samples taken but lost (full buffers, ring overruns, ...). Never silent.
    pub lost: u64,
    /// Arming rounds that saw no access before they timed out (software sampler).
    pub idle_rounds: u64,
    /// The requested sampling rate, samples per second (0: as fast as it comes).
    pub rate_hz: u64,
}

/// A source of samples. A session drains samples periodically.
pub trait Sampler: Send {
    /// Samples gathered since the last call, in time order.
    fn drain(&mut self, into: &mut Vec<Sample>);
    /// Its counters so far.
    fn stats(&self) -> SamplerStats;
    /// Stops sampling; later `drain`s return what is left.
    fn stop(&mut self);
    /// Watches these page-aligned `(start, len)` ranges from now on (a filter was
    /// added). Samplers that see every address (hardware, replay) need not care.
    ///
    /// # Errors
    /// A sentence saying why the ranges cannot be watched.
    fn watch(&mut self, ranges: &[(usize, usize)]) -> Result<(), String> {
        let _ = ranges;
        Ok(())
    }
}
