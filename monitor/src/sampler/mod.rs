//! Samplers: the software page-protection sampler that runs anywhere (VMs, our
//! emulated machine), and the probe for hardware memory sampling.

pub mod pmu;
pub mod protect;
mod sys;

pub use protect::{
    Pause, ProtectConfig, ProtectError, ProtectSampler, ProtectStats, chain_action, pause,
};
