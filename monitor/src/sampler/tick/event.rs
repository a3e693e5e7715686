//! `perf_event_open(2)` for one thread's task clock with a synchronous signal on
//! each overflow (`sigtrap`, Linux 5.13), and the `ioctl`s on it.
//! <https://man7.org/linux/man-pages/man2/perf_event_open.2.html>
//!
//! # Safety
//!
//! Each unsafe block is one system call on plain data: a `perf_event_attr` built
//! here (its layout is checked by a test against the kernel's `PERF_ATTR_SIZE_VER7`),
//! a file descriptor this module opened, a pointer to a live `u64`.
#![allow(unsafe_code)]

use std::io;

/// `struct perf_event_attr` up to `sig_data` (`PERF_ATTR_SIZE_VER7`, 128 bytes).
/// Issue 17's perf sampler may bring a bindings crate; this one needs eight fields.
#[repr(C)]
#[derive(Default)]
struct Attr {
    type_: u32,
    size: u32,
    config: u64,
    sample_period: u64,
    sample_type: u64,
    read_format: u64,
    flags: u64,
    wakeup_events: u32,
    bp_type: u32,
    config1: u64,
    config2: u64,
    branch_sample_type: u64,
    sample_regs_user: u64,
    sample_stack_user: u32,
    clockid: i32,
    sample_regs_intr: u64,
    aux_watermark: u32,
    sample_max_stack: u16,
    reserved_2: u16,
    aux_sample_size: u32,
    reserved_3: u32,
    sig_data: u64,
}

const PERF_TYPE_SOFTWARE: u32 = 1;
const PERF_COUNT_SW_TASK_CLOCK: u64 = 1;
// perf_event_attr flag bits (include/uapi/linux/perf_event.h).
const DISABLED: u64 = 1 << 0;
const EXCLUDE_KERNEL: u64 = 1 << 5;
const EXCLUDE_HV: u64 = 1 << 6;
const REMOVE_ON_EXEC: u64 = 1 << 36;
const SIGTRAP: u64 = 1 << 37;
const PERF_FLAG_FD_CLOEXEC: libc::c_ulong = 8;
/// `_IO('$', 0)`, `_IO('$', 1)`, `_IOW('$', 4, __u64)`.
const IOC_ENABLE: libc::c_ulong = 0x2400;
const IOC_PERIOD: libc::c_ulong = 0x4008_2404;

/// Opens a task-clock event on thread `tid` of this process that sends it a
/// synchronous SIGTRAP (`si_code` TRAP_PERF, `si_perf_data` = `sig_data`) every
/// `period_ns` of its user-mode CPU time. Returns the descriptor, enabled.
///
/// # Errors
/// The kernel's: `ENOENT`/`ESRCH` (the thread ended), `EACCES`/`EPERM`
/// (`perf_event_paranoid`), `EINVAL` (no `sigtrap`: a kernel before 5.13).
pub fn open_task_clock(tid: i32, period_ns: u64, sig_data: u64) -> io::Result<i32> {
    let attr = Attr {
        type_: PERF_TYPE_SOFTWARE,
        size: std::mem::size_of::<Attr>() as u32,
        config: PERF_COUNT_SW_TASK_CLOCK,
        sample_period: period_ns.max(1),
        flags: DISABLED | EXCLUDE_KERNEL | EXCLUDE_HV | REMOVE_ON_EXEC | SIGTRAP,
        sig_data,
        ..Attr::default()
    };
    // SAFETY: perf_event_open reads `attr` (a live, fully initialised struct whose
    // `size` says how much); the other arguments are integers.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_perf_event_open,
            &attr as *const Attr,
            tid,
            -1i32,
            -1i32,
            PERF_FLAG_FD_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd = fd as i32;
    // SAFETY: ioctl on the descriptor just opened, no argument.
    if unsafe { libc::ioctl(fd, IOC_ENABLE, 0) } != 0 {
        let e = io::Error::last_os_error();
        close(fd);
        return Err(e);
    }
    Ok(fd)
}

/// Sets the event's next period (`PERF_EVENT_IOC_PERIOD`); async-signal-safe.
pub fn set_period(fd: i32, period_ns: u64) -> bool {
    let p: u64 = period_ns.max(1);
    // SAFETY: the kernel reads one u64 through the pointer, which is live.
    unsafe { libc::ioctl(fd, IOC_PERIOD, &p as *const u64) == 0 }
}

/// Closes the descriptor (the event stops).
pub fn close(fd: i32) {
    // SAFETY: closes a descriptor this module opened and nothing else holds.
    unsafe { libc::close(fd) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_attribute_has_the_kernels_ver7_layout() {
        assert_eq!(std::mem::size_of::<Attr>(), 128);
        let a = Attr::default();
        let base = &a as *const Attr as usize;
        assert_eq!(&a.sample_period as *const u64 as usize - base, 16);
        assert_eq!(&a.flags as *const u64 as usize - base, 40);
        assert_eq!(&a.sig_data as *const u64 as usize - base, 120);
    }
}
