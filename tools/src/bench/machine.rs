//! Is this real hardware, a virtual machine, or an emulator? Timings mean
//! different things on each, and `rset-bench` says so.
//!
//! The evidence, read once: the firmware's DMI strings
//! (`/sys/class/dmi/id/sys_vendor`, `product_name`), the `hypervisor` CPU flag of
//! `/proc/cpuinfo`, and the clock sources the kernel offers
//! (`/sys/devices/system/clocksource/clocksource0/available_clocksource`), where a
//! paravirtual clock (`kvm-clock`, `hyperv_clocksource_tsc_page`, `xen`) names the
//! hypervisor. QEMU firmware without a paravirtual clock is QEMU's own CPU emulator
//! (TCG), where timings mean nothing.

use serde::Serialize;

/// What runs this program, as far as the evidence tells.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Machine {
    /// No sign of a hypervisor.
    Hardware,
    /// A hardware-assisted virtual machine: timings are indicative only.
    Virtual {
        /// The hypervisor, e.g. `KVM`, or `unknown hypervisor`.
        hypervisor: String,
    },
    /// An emulated CPU (QEMU TCG): timings are not meaningful.
    Emulated {
        /// The firmware strings that said so.
        firmware: String,
    },
}

/// The evidence [`Machine::classify`] decides from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Evidence {
    /// `/sys/class/dmi/id/sys_vendor`.
    pub sys_vendor: String,
    /// `/sys/class/dmi/id/product_name`.
    pub product_name: String,
    /// The `hypervisor` flag in `/proc/cpuinfo`.
    pub hypervisor_flag: bool,
    /// The available clock sources, space separated.
    pub clocksources: String,
}

impl Evidence {
    /// Reads the evidence of this machine; missing files read as empty.
    pub fn read() -> Evidence {
        let read = |p: &str| {
            std::fs::read_to_string(p)
                .unwrap_or_default()
                .trim()
                .to_owned()
        };
        let cpuinfo = read("/proc/cpuinfo");
        Evidence {
            sys_vendor: read("/sys/class/dmi/id/sys_vendor"),
            product_name: read("/sys/class/dmi/id/product_name"),
            hypervisor_flag: cpuinfo
                .lines()
                .filter(|l| l.starts_with("flags"))
                .any(|l| l.split_whitespace().any(|w| w == "hypervisor")),
            clocksources: read(
                "/sys/devices/system/clocksource/clocksource0/available_clocksource",
            ),
        }
    }
}

impl Machine {
    /// This machine.
    pub fn detect() -> Machine {
        Machine::classify(&Evidence::read())
    }

    /// Decides from the evidence (pure, for tests).
    pub fn classify(e: &Evidence) -> Machine {
        let clocks: Vec<&str> = e.clocksources.split_whitespace().collect();
        let paravirt = if clocks.contains(&"kvm-clock") {
            Some("KVM")
        } else if clocks.iter().any(|c| c.starts_with("hyperv")) {
            Some("Hyper-V")
        } else if clocks.contains(&"xen") {
            Some("Xen")
        } else {
            None
        };
        let firmware = format!("{} {}", e.sys_vendor, e.product_name);
        let qemu_firmware = ["QEMU", "Bochs"].iter().any(|w| {
            firmware
                .to_ascii_uppercase()
                .contains(&w.to_ascii_uppercase())
        });
        match (paravirt, qemu_firmware, e.hypervisor_flag) {
            (Some(h), _, _) => Machine::Virtual {
                hypervisor: h.to_owned(),
            },
            (None, true, _) => Machine::Emulated {
                firmware: firmware.trim().to_owned(),
            },
            (None, false, true) => Machine::Virtual {
                hypervisor: "unknown hypervisor".to_owned(),
            },
            (None, false, false) => Machine::Hardware,
        }
    }

    /// Truth that the CPU is emulated.
    pub fn is_emulated(&self) -> bool {
        matches!(self, Machine::Emulated { .. })
    }

    /// The sentence to print beside timings, if any.
    pub fn notice(&self) -> Option<String> {
        match self {
            Machine::Hardware => None,
            Machine::Virtual { hypervisor } => Some(format!(
                "note: this is a virtual machine ({hypervisor}): timings are indicative only"
            )),
            Machine::Emulated { firmware } => Some(format!(
                "note: this is an emulated machine ({firmware}, no hardware virtualization): \
                 timings in an emulated/virtual machine are not meaningful (placements are)"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(vendor: &str, product: &str, flag: bool, clocks: &str) -> Evidence {
        Evidence {
            sys_vendor: vendor.into(),
            product_name: product.into(),
            hypervisor_flag: flag,
            clocksources: clocks.into(),
        }
    }

    #[test]
    fn qemu_without_a_paravirtual_clock_is_emulated() {
        let m = Machine::classify(&ev(
            "QEMU",
            "Standard PC (i440FX + PIIX, 1996)",
            true,
            "tsc acpi_pm",
        ));
        assert!(m.is_emulated());
        assert!(m.notice().unwrap().contains("not meaningful"));
    }

    #[test]
    fn kvm_clock_means_a_virtual_machine() {
        let m = Machine::classify(&ev("QEMU", "Standard PC", true, "tsc kvm-clock"));
        assert_eq!(
            m,
            Machine::Virtual {
                hypervisor: "KVM".into()
            }
        );
        assert!(m.notice().unwrap().contains("indicative only"));
        // Firecracker: no DMI at all.
        let m = Machine::classify(&ev("", "", true, "tsc kvm-clock"));
        assert_eq!(
            m,
            Machine::Virtual {
                hypervisor: "KVM".into()
            }
        );
    }

    #[test]
    fn a_hypervisor_flag_alone_is_a_virtual_machine_and_nothing_is_hardware() {
        let m = Machine::classify(&ev("Dell Inc.", "PowerEdge", true, "tsc hpet"));
        assert_eq!(
            m,
            Machine::Virtual {
                hypervisor: "unknown hypervisor".into()
            }
        );
        assert_eq!(
            Machine::classify(&ev("Dell Inc.", "PowerEdge", false, "tsc hpet")),
            Machine::Hardware
        );
        assert_eq!(Machine::Hardware.notice(), None);
    }
}
