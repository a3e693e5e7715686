//! Samplers: the software samplers that run anywhere (VMs, our emulated machine) —
//! [`tick`] (time-based, decodes the interrupted instruction; x86-64) and
//! [`protect`] (page protection) — and the probe for hardware memory sampling.

pub mod pmu;
pub mod protect;
mod sys;
#[cfg(target_arch = "x86_64")]
pub mod tick;

pub use protect::{
    Pause, ProtectConfig, ProtectError, ProtectSampler, ProtectStats, chain_action, pause,
};
