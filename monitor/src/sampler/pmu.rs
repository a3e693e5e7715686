//! Is there hardware memory sampling here? Intel PEBS (the `mem-loads` /
//! `mem-stores` events), AMD IBS op, or ARM SPE, as the kernel's perf sysfs tree
//! announces them, and may this process use them (`perf_event_paranoid`).
//!
//! Virtual machines, and so our emulated NUMA machine, expose none of them; the
//! software page-protection sampler ([`super::protect`]) is what runs there, and
//! [`detect`] says so in one plain sentence.

use std::fmt;
use std::path::{Path, PathBuf};

/// The hardware memory-sampling facility found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PmuSupport {
    /// Intel PEBS load latency (and stores, when the event exists), on this PMU.
    IntelPebs {
        /// The PMU directory (`cpu`, or `cpu_core` on hybrid parts).
        pmu: String,
        /// The `mem-loads` event encoding from sysfs.
        loads: String,
        /// The `mem-stores` event encoding, if any.
        stores: Option<String>,
    },
    /// AMD Instruction-Based Sampling, op flavour.
    AmdIbsOp {
        /// Its perf PMU type number.
        pmu_type: u32,
    },
    /// ARM Statistical Profiling Extension.
    ArmSpe {
        /// The PMU directory (`arm_spe_0`).
        pmu: String,
        /// Its perf PMU type number.
        pmu_type: u32,
    },
}

impl fmt::Display for PmuSupport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PmuSupport::IntelPebs { pmu, stores, .. } => write!(
                f,
                "Intel PEBS memory sampling on PMU `{pmu}` (loads{})",
                if stores.is_some() { " and stores" } else { "" }
            ),
            PmuSupport::AmdIbsOp { .. } => f.write_str("AMD IBS op sampling"),
            PmuSupport::ArmSpe { pmu, .. } => write!(f, "ARM SPE on `{pmu}`"),
        }
    }
}

/// Why hardware memory sampling is not available; its `Display` is one sentence.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PmuUnavailable {
    /// No PMU here offers memory sampling.
    #[error(
        "No hardware memory sampling here: the PMU offers no Intel PEBS mem-loads event, \
         no AMD IBS op and no ARM SPE (usual in virtual machines), so the software \
         page-protection sampler is used."
    )]
    NoFacility,
    /// The facility exists but `perf_event_paranoid` forbids it to this process.
    #[error(
        "{facility} exists but kernel.perf_event_paranoid is {paranoid}: run as root, \
         grant CAP_PERFMON, or set it to 1 or lower to sample in hardware; the software \
         page-protection sampler is used meanwhile."
    )]
    NotPermitted {
        /// What was found.
        facility: String,
        /// The sysctl's value.
        paranoid: i32,
    },
}

fn read_trim(p: &Path) -> Option<String> {
    std::fs::read_to_string(p).ok().map(|s| s.trim().to_owned())
}

/// Looks for a memory-sampling PMU under `root` (normally
/// `/sys/bus/event_source/devices`).
pub fn detect_in(root: &Path) -> Option<PmuSupport> {
    for pmu in ["cpu_core", "cpu"] {
        let events = root.join(pmu).join("events");
        if let Some(loads) = read_trim(&events.join("mem-loads")) {
            return Some(PmuSupport::IntelPebs {
                pmu: pmu.to_owned(),
                loads,
                stores: read_trim(&events.join("mem-stores")),
            });
        }
    }
    if let Some(t) = read_trim(&root.join("ibs_op").join("type")).and_then(|t| t.parse().ok()) {
        return Some(PmuSupport::AmdIbsOp { pmu_type: t });
    }
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    dirs.sort();
    for d in dirs {
        let name = d.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if name.starts_with("arm_spe")
            && let Some(t) = read_trim(&d.join("type")).and_then(|t| t.parse().ok())
        {
            return Some(PmuSupport::ArmSpe {
                pmu: name.to_owned(),
                pmu_type: t,
            });
        }
    }
    None
}

/// Whether this process may use hardware sampling: root, or a paranoid level of at
/// most 1 (memory sampling with addresses needs kernel-level detail).
fn permitted(paranoid: i32) -> bool {
    let root = crate::live::effective_uid() == Some(0);
    root || paranoid <= 1
}

/// Detects hardware memory sampling on this machine for this process.
///
/// # Errors
/// [`PmuUnavailable`], whose message is the one plain sentence to show users.
pub fn detect() -> Result<PmuSupport, PmuUnavailable> {
    let found =
        detect_in(Path::new("/sys/bus/event_source/devices")).ok_or(PmuUnavailable::NoFacility)?;
    let paranoid = read_trim(Path::new("/proc/sys/kernel/perf_event_paranoid"))
        .and_then(|v| v.parse().ok())
        .unwrap_or(2);
    if permitted(paranoid) {
        Ok(found)
    } else {
        Err(PmuUnavailable::NotPermitted {
            facility: found.to_string(),
            paranoid,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake(files: &[(&str, &str)]) -> PathBuf {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let root = std::env::temp_dir().join(format!("pmu-{}-{n}", std::process::id()));
        for (path, content) in files {
            let p = root.join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, content).unwrap();
        }
        std::fs::create_dir_all(&root).unwrap();
        root
    }

    #[test]
    fn intel_pebs_is_found_with_its_events() {
        let root = fake(&[
            ("cpu/events/mem-loads", "event=0xcd,umask=0x1,ldlat=3\n"),
            ("cpu/events/mem-stores", "event=0xd0,umask=0x82\n"),
        ]);
        assert_eq!(
            detect_in(&root),
            Some(PmuSupport::IntelPebs {
                pmu: "cpu".into(),
                loads: "event=0xcd,umask=0x1,ldlat=3".into(),
                stores: Some("event=0xd0,umask=0x82".into()),
            })
        );
    }

    #[test]
    fn amd_ibs_and_arm_spe_are_found() {
        let amd = fake(&[("ibs_op/type", "11\n")]);
        assert_eq!(detect_in(&amd), Some(PmuSupport::AmdIbsOp { pmu_type: 11 }));
        let arm = fake(&[("arm_spe_0/type", "9\n")]);
        assert_eq!(
            detect_in(&arm),
            Some(PmuSupport::ArmSpe {
                pmu: "arm_spe_0".into(),
                pmu_type: 9
            })
        );
    }

    #[test]
    fn a_virtual_machine_has_none_and_says_so_in_one_sentence() {
        let vm = fake(&[("software/type", "1\n"), ("breakpoint/type", "5\n")]);
        assert_eq!(detect_in(&vm), None);
        let msg = PmuUnavailable::NoFacility.to_string();
        assert_eq!(msg.matches(". ").count(), 0, "{msg}");
        assert!(msg.ends_with("is used."), "{msg}");
    }
}
