//! The calling thread's memory policy: a thread-local pointer to the [`Policy`] of
//! the innermost running [`with_policy`] frame (or a `'static` one from
//! [`set_thread_policy`]), null for Local.
//!
//! # Safety
//! The pointer is null or points at a live `Policy`: [`with_policy`] stores the
//! address of its own argument and puts the previous pointer back (on unwinding
//! too, from a guard dropped before the argument) before that argument is dropped;
//! [`set_thread_policy`] stores a `'static` one. [`thread_policy`] lends the
//! reference only for the duration of its closure, which runs inside the frame
//! that owns the policy, and the thread-local is never shared with other threads.

#![allow(unsafe_code)]

use std::cell::Cell;
use std::ptr;

use crate::policy::Policy;

thread_local! {
    /// The calling thread's policy: null for Local, else the policy of the innermost
    /// running `with_policy` frame. `const` and without a destructor, so reading it
    /// never allocates and works at any time in the thread's life.
    static POLICY: Cell<*const Policy> = const { Cell::new(ptr::null()) };
}

/// Runs `f` with `policy` as the calling thread's memory policy, then restores the
/// previous one (also when `f` panics). Nests.
///
/// ```
/// use alloc_policies::{current_policy, with_policy, Policy};
/// assert_eq!(current_policy(), Policy::Local);
/// with_policy(Policy::Float, || assert_eq!(current_policy(), Policy::Float));
/// assert_eq!(current_policy(), Policy::Local);
/// ```
pub fn with_policy<R>(policy: Policy, f: impl FnOnce() -> R) -> R {
    /// Puts the previous pointer back when dropped.
    struct Restore(*const Policy);
    impl Drop for Restore {
        fn drop(&mut self) {
            let previous = self.0;
            POLICY.with(|p| p.set(previous));
        }
    }
    let this: *const Policy = if policy == Policy::Local {
        ptr::null()
    } else {
        &policy
    };
    let _restore = Restore(POLICY.with(|p| p.replace(this)));
    f()
    // `_restore` drops here, before `policy`.
}

/// Sets the calling thread's policy for the rest of its life, with no scope to end
/// it: for code that cannot wrap a thread's work in a closure, such as a preloaded
/// library's thread start routine (`rset-run`). A [`with_policy`] inside still nests
/// on top of it and restores it.
///
/// ```
/// use alloc_policies::{current_policy, set_thread_policy, Policy};
/// static FLOAT: Policy = Policy::Float;
/// std::thread::spawn(|| {
///     set_thread_policy(&FLOAT);
///     assert_eq!(current_policy(), Policy::Float);
/// }).join().unwrap();
/// ```
pub fn set_thread_policy(policy: &'static Policy) {
    let this: *const Policy = if *policy == Policy::Local {
        ptr::null()
    } else {
        policy
    };
    POLICY.with(|p| p.set(this));
}

/// The calling thread's memory policy (`Local` outside any [`with_policy`]).
pub fn current_policy() -> Policy {
    thread_policy(|p| p.cloned().unwrap_or(Policy::Local))
}

/// Calls `f` with the calling thread's policy (`None` for Local).
#[inline(always)]
pub(crate) fn thread_policy<R>(f: impl FnOnce(Option<&Policy>) -> R) -> R {
    let p = POLICY.with(Cell::get);
    // SAFETY: POLICY is null or points at the policy of the innermost with_policy
    // frame running on this thread (or a 'static one); that frame outlives this
    // call (we run inside it) and resets POLICY before its policy is dropped. The
    // reference does not escape `f`.
    f(unsafe { p.as_ref() })
}

/// Truth that the calling thread's policy is Local (the fast path's test).
#[inline(always)]
pub(crate) fn thread_is_local() -> bool {
    POLICY.with(Cell::get).is_null()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_nest_and_unwind() {
        with_policy(Policy::Float, || {
            with_policy(Policy::Remote, || {
                assert_eq!(current_policy(), Policy::Remote)
            });
            assert_eq!(current_policy(), Policy::Float);
            let caught = std::panic::catch_unwind(|| {
                with_policy(Policy::Local, || panic!("inside"));
            });
            assert!(caught.is_err());
            assert_eq!(current_policy(), Policy::Float);
            assert!(!thread_is_local());
        });
        assert!(thread_is_local());
    }
}
