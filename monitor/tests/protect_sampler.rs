//! The page-protection sampler on the host: counts proportional to references,
//! reads told from writes, other SIGSEGVs chained to the program's own handler,
//! unmapped ranges survived, system calls protected by `pause`.
//!
//! # Safety
//!
//! The test program itself: it references watched memory through raw addresses (volatile
//! loads and stores the sampler must see) and installs its own signal handlers; each
//! block says which mapping it touches.
#![allow(unsafe_code)]

use std::io::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use monitor::sample::{Access, Sample, Sampler};
use monitor::sampler::{ProtectConfig, ProtectError, ProtectSampler, pause};
use nix::sys::signal::{SigSet, SigmaskHow, pthread_sigmask};
use numa_tests::{Mapping, Rng, page_size};

/// One sampler per process: the tests take turns.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn config(rate_hz: u64) -> ProtectConfig {
    ProtectConfig {
        rate_hz,
        window: Duration::from_millis(20),
        seed: 12345,
        check_every: 10,
        max_overhead: 0.0,
    }
}

fn range(m: &Mapping) -> (usize, usize) {
    (m.ptr as usize, m.len)
}

fn within(s: &Sample, m: &Mapping) -> bool {
    let a = s.addr as usize;
    a >= m.ptr as usize && a < m.ptr as usize + m.len
}

/// Runs `work` on a thread until `samples` samples arrived (or a time limit).
fn sample_while(
    sampler: &mut ProtectSampler,
    samples: usize,
    work: impl Fn(&AtomicBool) + Send + Sync,
) -> Vec<Sample> {
    let stop = AtomicBool::new(false);
    let mut got = Vec::new();
    std::thread::scope(|s| {
        s.spawn(|| work(&stop));
        let limit = Instant::now() + Duration::from_secs(60);
        while got.len() < samples && Instant::now() < limit {
            std::thread::sleep(Duration::from_millis(20));
            sampler.drain(&mut got);
        }
        stop.store(true, Ordering::Release);
    });
    sampler.stop();
    sampler.drain(&mut got);
    got
}

#[test]
fn counts_are_proportional_to_reference_frequency() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let (a, b) = (Mapping::new(8), Mapping::new(8));
    a.touch();
    b.touch();
    let mut sampler = ProtectSampler::start(&[range(&a), range(&b)], config(2000)).unwrap();
    let (pa, pb, len) = (a.ptr as usize, b.ptr as usize, a.len);
    let counts = [AtomicUsize::new(0), AtomicUsize::new(0)];
    let got = sample_while(&mut sampler, 1200, |stop| {
        let mut rng = Rng(99);
        let mut local = [0usize; 2];
        while !stop.load(Ordering::Acquire) {
            let r = rng.next_u64();
            // Region A is referenced 3 times as often as region B.
            let a = r % 4 < 3;
            local[usize::from(!a)] += 1;
            let base = if a { pa } else { pb };
            let off = (r >> 8) as usize % len;
            // SAFETY: `off` < len and both mappings stay alive while sampling runs.
            unsafe { std::ptr::read_volatile((base + off) as *const u8) };
        }
        counts[0].store(local[0], Ordering::Release);
        counts[1].store(local[1], Ordering::Release);
    });
    let (ta, tb) = (
        counts[0].load(Ordering::Acquire),
        counts[1].load(Ordering::Acquire),
    );
    eprintln!(
        "truth: A {ta} B {tb} share {:.3}; stats {:?}",
        ta as f64 / (ta + tb) as f64,
        sampler.protect_stats()
    );
    let in_a = got.iter().filter(|s| within(s, &a)).count() as f64;
    let in_b = got.iter().filter(|s| within(s, &b)).count() as f64;
    assert!(in_a + in_b >= 500.0, "only {} samples", in_a + in_b);
    assert_eq!(
        in_a + in_b,
        got.len() as f64,
        "samples outside the watched ranges"
    );
    let share_a = in_a / (in_a + in_b);
    eprintln!("share of A {share_a:.3}");
    // Truth 0.75; 5 standard errors at n >= 500 is under 0.1.
    assert!(
        (share_a - 0.75).abs() < 0.1,
        "share of A {share_a:.3} (A {in_a}, B {in_b})"
    );
    assert!(got.iter().all(|s| s.access == Access::Read));
    assert!(got.iter().all(|s| s.tid > 0));
    assert!(got.windows(2).all(|w| w[0].time_ns <= w[1].time_ns));
}

#[test]
fn writes_are_told_from_reads() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let (r, w) = (Mapping::new(4), Mapping::new(4));
    r.touch();
    w.touch();
    let mut sampler = ProtectSampler::start(&[range(&r), range(&w)], config(1000)).unwrap();
    let (pr, pw, len) = (r.ptr as usize, w.ptr as usize, r.len);
    let got = sample_while(&mut sampler, 200, |stop| {
        let mut rng = Rng(7);
        while !stop.load(Ordering::Acquire) {
            let x = rng.next_u64();
            let off = (x >> 8) as usize % len;
            if x.is_multiple_of(2) {
                // SAFETY: inside the live mapping `r`.
                unsafe { std::ptr::read_volatile((pr + off) as *const u8) };
            } else {
                // SAFETY: inside the live mapping `w`.
                unsafe { std::ptr::write_volatile((pw + off) as *mut u8, 1) };
            }
        }
    });
    assert!(got.len() >= 100, "{} samples", got.len());
    for s in &got {
        let want = if within(s, &r) {
            Access::Read
        } else {
            Access::Write
        };
        assert_eq!(s.access, want, "sample at {:#x}", s.addr);
    }
}

static APP_HANDLER_CALLS: AtomicUsize = AtomicUsize::new(0);
static APP_GUARD: AtomicUsize = AtomicUsize::new(0);

extern "C" fn app_handler(_sig: i32, info: *mut libc::siginfo_t, _ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo for SIGSEGV.
    let info = unsafe { &*info };
    // SAFETY: si_addr is the member the kernel fills for SIGSEGV.
    let addr = unsafe { info.si_addr() } as usize;
    let guard = APP_GUARD.load(Ordering::Acquire);
    if addr >= guard && addr < guard + page_size() {
        APP_HANDLER_CALLS.fetch_add(1, Ordering::AcqRel);
        // The application's own recovery: make its guard page accessible.
        // SAFETY: the guard page is the application's own mapping.
        unsafe {
            libc::mprotect(
                guard as *mut libc::c_void,
                page_size(),
                libc::PROT_READ | libc::PROT_WRITE,
            )
        };
    }
}

#[test]
fn the_programs_own_sigsegv_handler_still_works() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    // The application installs its handler first, as applications do.
    let guard = Mapping::new(1);
    APP_GUARD.store(guard.ptr as usize, Ordering::Release);
    // SAFETY: a zeroed sigaction is a valid value; we set the handler and SA_SIGINFO.
    let mut act: libc::sigaction = unsafe { std::mem::zeroed() };
    act.sa_sigaction = app_handler as *const () as usize;
    act.sa_flags = libc::SA_SIGINFO;
    // SAFETY: a live sigaction value; installs the test's handler.
    let installed = unsafe { libc::sigaction(libc::SIGSEGV, &act, std::ptr::null_mut()) };
    assert_eq!(installed, 0);

    let watched = Mapping::new(4);
    watched.touch();
    let mut sampler = ProtectSampler::start(&[range(&watched)], config(500)).unwrap();
    for round in 1..=3 {
        // SAFETY: the application's own guard page, made inaccessible on purpose.
        unsafe { libc::mprotect(guard.ptr.cast(), page_size(), libc::PROT_NONE) };
        // SAFETY: faults, and the application's handler makes the page accessible.
        unsafe { std::ptr::write_volatile(guard.ptr, round as u8) };
        // SAFETY: accessible again.
        assert_eq!(unsafe { std::ptr::read_volatile(guard.ptr) }, round as u8);
        assert_eq!(APP_HANDLER_CALLS.load(Ordering::Acquire), round);
        // Meanwhile the watched memory is sampled as usual.
        for i in 0..4 {
            // SAFETY: inside the live watched mapping.
            unsafe { std::ptr::write_volatile(watched.page(i), 2) };
        }
    }
    Sampler::stop(&mut sampler);
}

/// The permissions `/proc/self/maps` shows for the mapping holding `addr`.
fn perms_at(addr: usize) -> String {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    for line in maps.lines() {
        let mut f = line.split_whitespace();
        let (range, perms) = (f.next().unwrap(), f.next().unwrap());
        let (a, b) = range.split_once('-').unwrap();
        let (a, b) = (
            usize::from_str_radix(a, 16).unwrap(),
            usize::from_str_radix(b, 16).unwrap(),
        );
        if a <= addr && addr < b {
            return perms.to_owned();
        }
    }
    "unmapped".to_owned()
}

#[test]
fn a_watched_range_unmapped_by_the_program_is_dropped_not_fatal() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let keep = Mapping::new(2);
    keep.touch();
    let doomed = Mapping::new(2);
    doomed.touch();
    let (at, len) = range(&doomed);
    let check_each_round = ProtectConfig {
        check_every: 1,
        ..config(1000)
    };
    let mut sampler =
        ProtectSampler::start(&[range(&keep), range(&doomed)], check_each_round).unwrap();
    {
        let _calm = pause(); // not in the middle of an armed round
        std::mem::forget(doomed);
        // The program unmaps the range and maps something read-only in its place.
        // SAFETY: the range is ours (forgotten above); MAP_FIXED replaces it.
        let p = unsafe {
            libc::mmap(
                at as *mut libc::c_void,
                len,
                libc::PROT_READ,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
                -1,
                0,
            )
        };
        assert_eq!(p as usize, at);
    }
    let limit = Instant::now() + Duration::from_secs(20);
    while sampler.protect_stats().dropped_ranges == 0 && Instant::now() < limit {
        for i in 0..2 {
            // SAFETY: inside the live mapping `keep`.
            unsafe { std::ptr::read_volatile(keep.page(i)) };
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(sampler.protect_stats().dropped_ranges, 1);
    // The remaining range still works, and the program's new mapping kept its rights.
    // SAFETY: inside the live mapping `keep`.
    unsafe { std::ptr::write_volatile(keep.page(0), 9) };
    Sampler::stop(&mut sampler);
    assert_eq!(perms_at(at), "r--p");
    // SAFETY: the read-only mapping made above.
    unsafe { libc::munmap(at as *mut libc::c_void, len) };
}

#[test]
fn system_calls_inside_pause_never_see_efault() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let buf = Mapping::new(4);
    buf.touch();
    let mut sampler = ProtectSampler::start(&[range(&buf)], config(0)).unwrap();
    let zero = std::fs::File::open("/dev/zero").unwrap();
    use std::os::fd::AsRawFd;
    for _ in 0..2000 {
        let _calm = pause();
        // SAFETY: reads 4 pages into the live mapping `buf`.
        let n = unsafe { libc::read(zero.as_raw_fd(), buf.ptr.cast(), buf.len) };
        assert_eq!(n, buf.len as isize, "{}", std::io::Error::last_os_error());
    }
    Sampler::stop(&mut sampler);
}

#[test]
fn bad_ranges_and_a_second_sampler_are_refused() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let m = Mapping::new(2);
    let e = ProtectSampler::start(&[(m.ptr as usize + 1, 4096)], config(10))
        .err()
        .unwrap();
    assert!(matches!(e, ProtectError::BadRange { .. }), "{e}");
    let e = ProtectSampler::start(&[(m.ptr as usize, 0)], config(10))
        .err()
        .unwrap();
    assert!(
        e.to_string().contains("not a non-empty run of whole pages"),
        "{e}"
    );
    let mut first = ProtectSampler::start(&[range(&m)], config(10)).unwrap();
    let e = ProtectSampler::start(&[range(&m)], config(10))
        .err()
        .unwrap();
    assert!(matches!(e, ProtectError::AlreadyRunning), "{e}");
    Sampler::stop(&mut first);
    let mut again = ProtectSampler::start(&[range(&m)], config(10)).unwrap();
    Sampler::stop(&mut again);
}

#[test]
fn a_live_session_publishes_counters_and_obeys_its_control_area() {
    use monitor::live::{CMD_ADD_FILTER, Command, read_live, send_command};
    use monitor::session::Session;
    use monitor::{FilterSpec, Granularity};
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let (a, b) = (Mapping::new(4), Mapping::new(4));
    a.touch();
    b.touch();
    let dir = std::env::temp_dir().join(format!("live-session-{}", std::process::id()));
    let session = Session::builder()
        .rate_hz(1000)
        .max_overhead(0.0)
        .live(&dir)
        .filter(FilterSpec::new(a.ptr as u64, a.len as u64, Granularity::PAGE).name("a"))
        .start()
        .unwrap();
    let path = session.live_path().unwrap().to_owned();
    let stop = AtomicBool::new(false);
    let (pa, pb, len) = (a.ptr as usize, b.ptr as usize, a.len);
    let total = |f: &monitor::live::LiveFilter| -> u64 {
        f.counts.iter().flatten().map(|c| c[2] + c[3]).sum()
    };
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut rng = Rng(5);
            while !stop.load(Ordering::Acquire) {
                let r = rng.next_u64();
                let base = if r.is_multiple_of(2) { pa } else { pb };
                // SAFETY: inside one of the two live mappings.
                unsafe { std::ptr::read_volatile((base + (r >> 8) as usize % len) as *const u8) };
            }
        });
        let limit = Instant::now() + Duration::from_secs(30);
        let mut snap = read_live(&path).unwrap();
        while total(&snap.filters[0]) < 50 && Instant::now() < limit {
            std::thread::sleep(Duration::from_millis(50));
            snap = read_live(&path).unwrap();
        }
        assert!(total(&snap.filters[0]) >= 50, "{snap:?}");
        assert_eq!(snap.filters.len(), 1);
        // A viewer asks for b at line granularity.
        send_command(
            &path,
            Command {
                cmd: CMD_ADD_FILTER,
                args: [pb as u64, len as u64, 64],
            },
        )
        .unwrap();
        while (snap.filters.len() < 2 || total(&snap.filters[1]) < 20) && Instant::now() < limit {
            std::thread::sleep(Duration::from_millis(50));
            snap = read_live(&path).unwrap();
        }
        stop.store(true, Ordering::Release);
        assert_eq!(snap.filters.len(), 2);
        assert_eq!(snap.filters[1].granularity, 64);
        assert!(total(&snap.filters[1]) >= 20, "{snap:?}");
    });
    let done = session.stop().unwrap();
    assert!(!path.exists(), "the live file goes with the session");
    assert_eq!(done.file.filters.len(), 2);
}

#[test]
fn data_areas_are_named_from_the_allocation_registry() {
    use alloc_policies::{Policy, Region};
    use monitor::session::Session;
    use monitor::{FilterSpec, Granularity};
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let psi: Region<u64> = Region::builder(4096)
        .policy(Policy::Float)
        .label("ocean.psi")
        .build()
        .unwrap();
    let (start, len) = (psi.as_ptr() as usize, psi.len() * 8);
    let session = Session::builder()
        .rate_hz(1000)
        .max_overhead(0.0)
        .labels_from_registry()
        .filter(FilterSpec::new(start as u64, len as u64, Granularity::PAGE))
        .start()
        .unwrap();
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut rng = Rng(3);
            while !stop.load(Ordering::Acquire) {
                let off = rng.next_u64() as usize % len;
                // SAFETY: inside the live region.
                unsafe { std::ptr::read_volatile((start + off) as *const u8) };
            }
        });
        let limit = Instant::now() + Duration::from_secs(20);
        while session.snapshot().card.matched < 20 && Instant::now() < limit {
            std::thread::sleep(Duration::from_millis(20));
        }
        stop.store(true, Ordering::Release);
    });
    let report = session.stop().unwrap().report();
    assert_eq!(report.regions[0].name, "ocean.psi", "{report:?}");
    assert!(report.to_text(5).contains("ocean.psi"));
}

/// Threads parked in the middle of `malloc`, or of reading the counters, must not
/// stop the round: 24 threads churn the allocator (more than glibc has arenas for on
/// a small machine, so arenas are shared with the controller's), one reads the stats
/// in a loop, and rounds run back to back, parking every thread. Every thread must
/// keep making progress. (Before the fix the controller listed the threads while
/// signalling them, allocating as it went, and bumped its counters under a mutex: CI's
/// monitored Ocean hung with its threads in `realloc`.)
#[test]
fn threads_parked_inside_malloc_or_stats_never_stop_the_rounds() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let watched = Mapping::new(4);
    watched.touch();
    let cfg = ProtectConfig {
        window: Duration::from_millis(1),
        ..config(0)
    };
    let sampler = std::sync::Arc::new(Mutex::new(
        ProtectSampler::start(&[range(&watched)], cfg).unwrap(),
    ));
    const CHURNERS: usize = 24;
    let progress: std::sync::Arc<Vec<AtomicUsize>> =
        std::sync::Arc::new((0..=CHURNERS).map(|_| AtomicUsize::new(0)).collect());
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let mut handles = Vec::new();
    for t in 0..CHURNERS {
        let (progress, stop) = (progress.clone(), stop.clone());
        handles.push(std::thread::spawn(move || {
            let mut rng = Rng(t as u64 + 7);
            while !stop.load(Ordering::Acquire) {
                let mut v: Vec<u64> = Vec::new();
                for i in 0..(rng.next_u64() % 2000) {
                    v.push(i);
                }
                std::hint::black_box(&v);
                progress[t].fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    {
        let (progress, stop, sampler) = (progress.clone(), stop.clone(), sampler.clone());
        handles.push(std::thread::spawn(move || {
            while !stop.load(Ordering::Acquire) {
                let s = Sampler::stats(&*sampler.lock().unwrap_or_else(|p| p.into_inner()));
                std::hint::black_box(s);
                progress[CHURNERS].fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    // This thread watches the others, so it must not be parked with them: it blocks
    // every signal (last, as threads spawned later would inherit its mask). It then
    // never parks, so each round waits out PARK_WAIT and counts
    // itself unparked, which is when the old controller took its counters' lock with
    // the stats reader perhaps parked holding it.
    let mut saved = SigSet::empty();
    pthread_sigmask(
        SigmaskHow::SIG_BLOCK,
        Some(&SigSet::all()),
        Some(&mut saved),
    )
    .unwrap();
    // Watch for 6 s: in every 1.5 s slice, every thread must have moved.
    // (Arrays, not vectors: nothing here may wait on an allocator lock.)
    let read = || -> [usize; CHURNERS + 1] {
        std::array::from_fn(|i| progress[i].load(Ordering::Relaxed))
    };
    let mut last = read();
    for slice in 0..4 {
        std::thread::sleep(Duration::from_millis(1500));
        let now = read();
        let mut stuck = [0usize; CHURNERS + 1];
        let mut stuck_n = 0;
        for i in 0..=CHURNERS {
            if now[i] == last[i] {
                stuck[stuck_n] = i;
                stuck_n += 1;
            }
        }
        if stuck_n > 0 {
            // The other threads may be stuck for good, holding allocator locks: no
            // unwinding, no allocation; say which and leave.
            let mut msg = [0u8; 512];
            let mut w = &mut msg[..];
            let _ = writeln!(
                w,
                "threads_parked_inside_malloc_or_stats_never_stop_the_rounds: FAILED: \
                 threads {:?} (0..{CHURNERS} churn the allocator, {CHURNERS} reads the \
                 stats) made no progress in slice {slice} of 4",
                Stuck(&stuck[..stuck_n])
            );
            let len = 512 - w.len();
            let _ = nix::unistd::write(std::io::stderr(), &msg[..len]);
            // SAFETY: ends the process at once; nothing runs that could wait on a
            // parked thread (no atexit handlers, no flushing of locked streams).
            unsafe { libc::_exit(101) };
        }
        last = now;
    }
    stop.store(true, Ordering::Release);
    for h in handles {
        h.join().unwrap();
    }
    let mut sampler = sampler.lock().unwrap_or_else(|p| p.into_inner());
    let stats = sampler.protect_stats();
    let rounds = stats.rounds;
    pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&saved), None).unwrap();
    Sampler::stop(&mut *sampler);
    eprintln!("{stats:?}, progress {last:?}");
    // 25 busy threads on 2 CPUs park slowly, and each round waits out PARK_WAIT for
    // the thread that never parks: about 16 rounds a second here.
    assert!(rounds >= 20, "only {rounds} rounds in 6 s");
    assert!(stats.unparked_rounds > 0, "{stats:?}");
}

/// Thread indices, printed without allocating.
struct Stuck<'a>(&'a [usize]);

impl std::fmt::Debug for Stuck<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.0).finish()
    }
}
