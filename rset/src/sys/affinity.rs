//! CPU affinity: `sched_setaffinity(2)`, `sched_getaffinity(2)`, `gettid(2)` and
//! `getcpu(2)`.
//!
//! The masks are sized for [`MASK_BITS`] CPUs rather than glibc's fixed 1024-CPU
//! `cpu_set_t`, so machines with more CPUs work.
//!
//! # References
//! - <https://man7.org/linux/man-pages/man2/sched_setaffinity.2.html>
//! - <https://man7.org/linux/man-pages/man2/getcpu.2.html>
#![allow(unsafe_code)]

use std::ffi::{c_long, c_uint, c_ulong};
use std::io;

/// CPUs our masks can name (the kernel's `NR_CPUS` is at most 8192 on distribution
/// kernels).
pub const MASK_BITS: usize = 8192;
const WORD_BITS: usize = c_ulong::BITS as usize;
const MASK_WORDS: usize = MASK_BITS / WORD_BITS;

/// A kernel thread id (what `gettid` returns and `/proc/PID/task` lists).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tid(pub i32);

impl std::fmt::Display for Tid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

fn check(ret: c_long) -> io::Result<c_long> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// `gettid()`: the calling thread's id.
pub fn gettid() -> Tid {
    // SAFETY: gettid takes no arguments and cannot fail.
    let tid = unsafe { libc::syscall(libc::SYS_gettid) };
    Tid(tid as i32)
}

/// `sched_setaffinity(tid, mask)`: restrict a thread (`None`: the calling one) to
/// `cpus`.
///
/// # Errors
/// `EINVAL` when no CPU of `cpus` is online and allowed (cpuset cgroups), `ESRCH`
/// for an unknown thread, `EPERM` for another user's thread, `InvalidInput` for a
/// CPU beyond [`MASK_BITS`].
pub fn set_affinity(tid: Option<Tid>, cpus: &[u32]) -> io::Result<()> {
    let mut mask = [0 as c_ulong; MASK_WORDS];
    for &c in cpus {
        let c = c as usize;
        if c >= MASK_BITS {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("CPU {c} is beyond the {MASK_BITS} CPUs an affinity mask can name"),
            ));
        }
        mask[c / WORD_BITS] |= 1 << (c % WORD_BITS);
    }
    // SAFETY: `mask` is a live array of exactly the size passed; the kernel only reads it.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_sched_setaffinity,
            tid.map_or(0, |t| t.0),
            std::mem::size_of_val(&mask),
            mask.as_ptr(),
        )
    };
    check(ret).map(drop)
}

/// `sched_getaffinity(tid)`: the CPUs a thread (`None`: the calling one) may run on.
///
/// # Errors
/// `ESRCH` for an unknown thread.
pub fn get_affinity(tid: Option<Tid>) -> io::Result<Vec<u32>> {
    let mut mask = [0 as c_ulong; MASK_WORDS];
    // SAFETY: `mask` is a live, writable array of exactly the size passed; the
    // kernel writes at most that many bytes and returns how many.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_sched_getaffinity,
            tid.map_or(0, |t| t.0),
            std::mem::size_of_val(&mask),
            mask.as_mut_ptr(),
        )
    };
    let bytes = check(ret)? as usize;
    let bits = (bytes * 8).min(MASK_BITS);
    Ok((0..bits)
        .filter(|&c| mask[c / WORD_BITS] & (1 << (c % WORD_BITS)) != 0)
        .map(|c| c as u32)
        .collect())
}

/// `getcpu(&cpu, &node)`: the CPU and node the calling thread is running on now
/// (it may move right after, unless its affinity is a single CPU).
///
/// # Errors
/// None expected; the kernel's if any.
pub fn getcpu() -> io::Result<(u32, u32)> {
    let mut cpu: c_uint = 0;
    let mut node: c_uint = 0;
    // SAFETY: `cpu` and `node` are live c_uints the kernel writes; the third
    // (cache) argument is NULL, as the man page requires since 2.6.24.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_getcpu,
            &mut cpu as *mut c_uint,
            &mut node as *mut c_uint,
            std::ptr::null_mut::<libc::c_void>(),
        )
    };
    check(ret)?;
    Ok((cpu, node))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn affinity_round_trips_on_a_fresh_thread() {
        std::thread::spawn(|| {
            let all = get_affinity(None).unwrap();
            assert!(!all.is_empty());
            let first = all[0];
            set_affinity(None, &[first]).unwrap();
            assert_eq!(get_affinity(None).unwrap(), vec![first]);
            assert_eq!(get_affinity(Some(gettid())).unwrap(), vec![first]);
            std::thread::yield_now();
            assert_eq!(getcpu().unwrap().0, first);
        })
        .join()
        .unwrap();
    }

    #[test]
    fn out_of_range_cpu_is_refused() {
        let e = set_affinity(None, &[MASK_BITS as u32]).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        assert!(e.to_string().contains("CPU 8192"), "{e}");
    }

    #[test]
    fn unknown_thread_is_an_error() {
        assert!(get_affinity(Some(Tid(i32::MAX))).is_err());
    }
}
