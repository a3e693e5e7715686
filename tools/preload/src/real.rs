//! The definitions our exports hide: `dlsym(RTLD_NEXT, name)`, looked up once.
//!
//! # Safety
//! `dlsym` takes NUL-terminated names (`&CStr`); an address it returns is turned
//! into a function pointer only with the type of the C function looked up, and
//! called with the arguments our caller's contract guarantees.
#![allow(unsafe_code)]

use std::ffi::{CStr, c_int, c_void};
use std::sync::atomic::{AtomicUsize, Ordering};

/// `pthread_create`'s C type.
pub type PthreadCreate = unsafe extern "C" fn(
    *mut libc::pthread_t,
    *const libc::pthread_attr_t,
    extern "C" fn(*mut c_void) -> *mut c_void,
    *mut c_void,
) -> c_int;

/// A lazily resolved next definition of a C function.
pub struct Next {
    name: &'static CStr,
    addr: AtomicUsize,
}

impl Next {
    /// The next definition of `name`.
    pub const fn new(name: &'static CStr) -> Next {
        Next {
            name,
            addr: AtomicUsize::new(0),
        }
    }

    /// Its address, or `None` if no later object defines it.
    pub fn addr(&self) -> Option<usize> {
        let a = self.addr.load(Ordering::Acquire);
        if a != 0 {
            return Some(a);
        }
        // SAFETY: `name` is a NUL-terminated string; RTLD_NEXT asks for the
        // definition after this library's in the lookup order.
        let p = unsafe { libc::dlsym(libc::RTLD_NEXT, self.name.as_ptr()) };
        if p.is_null() {
            return None;
        }
        self.addr.store(p as usize, Ordering::Release);
        Some(p as usize)
    }
}

/// glibc's `pthread_create`.
pub static PTHREAD_CREATE: Next = Next::new(c"pthread_create");

/// Truth that the program (or a library it loaded) defines `symbol` (the passive
/// marker of the rset tools).
pub fn defines(symbol: &CStr) -> bool {
    // SAFETY: a NUL-terminated name; RTLD_DEFAULT searches the global scope.
    !unsafe { libc::dlsym(libc::RTLD_DEFAULT, symbol.as_ptr()) }.is_null()
}

/// Calls glibc's `pthread_create`.
///
/// # Safety
/// The arguments must be valid for `pthread_create`.
pub unsafe fn pthread_create(
    thread: *mut libc::pthread_t,
    attr: *const libc::pthread_attr_t,
    start: extern "C" fn(*mut c_void) -> *mut c_void,
    arg: *mut c_void,
) -> c_int {
    match PTHREAD_CREATE.addr() {
        Some(a) => {
            // SAFETY: `a` is the address dlsym gave for pthread_create, whose type
            // is PthreadCreate.
            let f: PthreadCreate = unsafe { std::mem::transmute::<usize, PthreadCreate>(a) };
            // SAFETY: the caller's arguments, passed on (function contract).
            unsafe { f(thread, attr, start, arg) }
        }
        None => libc::ENOSYS,
    }
}
