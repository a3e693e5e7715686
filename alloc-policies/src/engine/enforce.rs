//! Memory policies the kernel may refuse altogether (`ENOSYS`: a kernel without
//! NUMA; `EPERM`: a seccomp filter, such as a container's default one, that
//! forbids `mbind`): the allocator then keeps serving memory placed by first touch
//! rather than fail every allocation of the process.

use std::sync::atomic::{AtomicBool, Ordering};

use rset::sys::mempolicy::{self, MbindFlags, Mode};

/// Set once the kernel refused memory policies altogether.
static UNENFORCED: AtomicBool = AtomicBool::new(false);

/// False once the kernel refused memory policies altogether (`ENOSYS`: a kernel
/// without NUMA; `EPERM`: a seccomp filter, such as a container's default one,
/// that forbids `mbind`). The allocator then keeps serving memory, placed by first
/// touch, rather than fail every allocation of the process.
pub(crate) fn placement_enforced() -> bool {
    !UNENFORCED.load(Ordering::Relaxed)
}

/// `mbind(at, len, mode, nodes)`, which "succeeds" without a policy where the
/// kernel refuses memory policies altogether (see [`placement_enforced`]).
pub(super) fn mbind(at: *const u8, len: usize, mode: Mode, nodes: &[u32]) -> Result<(), ()> {
    enforced(
        mempolicy::mbind(at, len, mode, nodes, MbindFlags::default())
            .map_err(|e| e.raw_os_error().unwrap_or(0)),
    )
}

/// The outcome of an `mbind`: an error, except where the kernel refuses memory
/// policies altogether (see [`placement_enforced`]).
pub(super) fn enforced(result: Result<(), i32>) -> Result<(), ()> {
    match result {
        Ok(()) => Ok(()),
        Err(libc::ENOSYS | libc::EPERM) => {
            UNENFORCED.store(true, Ordering::Relaxed);
            Ok(())
        }
        Err(_) => Err(()),
    }
}
