//! A monitoring session: a sampler feeding a [`Card`] in the background, then a
//! [`SessionFile`] and a [`Report`].
//!
//! ```no_run
//! use monitor::{FilterSpec, Granularity, session::Session};
//! # let (start, size) = (0u64, 1u64 << 20);
//! let session = Session::builder()
//!     .filter(FilterSpec::new(start, size, Granularity::PAGE).name("ocean.psi"))
//!     .rate_hz(1000)
//!     .start()?;
//! // ... the program runs ...
//! let done = session.stop()?;
//! println!("{}", done.report().to_text(10));
//! # Ok::<(), monitor::session::SessionError>(())
//! ```
//!
//! The software sampler watches the pages that cover the filters (whole pages: a
//! reference to a neighbour of a filter on the same page takes a round and is then
//! discarded, which costs time but no accuracy). Where hardware memory sampling
//! exists it is reported ([`SessionOutcome::hardware`]); this version samples in
//! software everywhere.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::card::{Card, CardError};
use crate::filter::FilterSpec;
use crate::granularity::Granularity;
use crate::home::HomeCache;
use crate::live::{self, LiveError, LiveWriter};
use crate::report::Report;
use crate::sample::{Sample, Sampler, SamplerStats};
use crate::sampler::{ProtectConfig, ProtectError, ProtectSampler, pmu};
use crate::session_file::{Label, SessionFile};

/// Why a session could not start or finish.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// No filter was given.
    #[error("nothing to monitor: give at least one filter")]
    NoFilters,
    /// The card refused a filter (bad granularity, over budget, ...).
    #[error(transparent)]
    Card(#[from] CardError),
    /// The software sampler could not start.
    #[error(transparent)]
    Sampler(#[from] ProtectError),
    /// The tick sampler could not start.
    #[error("{0}")]
    Tick(String),
    /// The machine's topology could not be read.
    #[error("cannot read the machine's NUMA nodes: {0}")]
    Topology(String),
    /// The live file could not be created.
    #[error(transparent)]
    Live(#[from] LiveError),
    /// The background thread could not start, or panicked.
    #[error("the session's worker thread failed: {0}")]
    Worker(String),
}

/// Which software sampler a session starts (see [`crate::sampler`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Software {
    /// The default: the tick sampler where the kernel gives it (x86-64, Linux 5.13,
    /// perf events allowed) and the watched memory is more than
    /// [`SMALL_WATCH`] bytes, else the protect sampler. The tick sampler's cost
    /// per sample does not grow with the watched size, but its samples fall with
    /// the share of time the program spends on watched memory; the protect
    /// sampler takes the first access after each instant however rare, at a cost
    /// per round that grows with the watched pages: a few pages (the zoomed rounds
    /// of a refinement) are its case.
    #[default]
    Auto,
    /// Time-based ticks, the address decoded from the interrupted instruction.
    Tick,
    /// Page protection: the first access after a random instant, over all watched
    /// pages at once (any architecture; its cost grows with the watched size).
    Protect,
}

impl std::str::FromStr for Software {
    type Err = String;
    fn from_str(s: &str) -> Result<Software, String> {
        match s {
            "auto" => Ok(Software::Auto),
            "tick" => Ok(Software::Tick),
            "protect" => Ok(Software::Protect),
            other => Err(format!(
                "unknown sampler {other:?}: expected auto, tick or protect"
            )),
        }
    }
}

/// Up to this many watched bytes (256 pages of 4 KiB), [`Software::Auto`] chooses
/// the protect sampler: arming them costs less than one trap.
pub const SMALL_WATCH: usize = 1 << 20;

/// Whether [`Software::Auto`] would choose the tick sampler for these ranges
/// (`dynamic`: more ranges are coming, the watched size is not known yet).
fn auto_prefers_tick(ranges: &[(usize, usize)], dynamic: bool) -> bool {
    let bytes: usize = ranges.iter().map(|r| r.1).sum();
    (dynamic && ranges.is_empty()) || bytes > SMALL_WATCH
}

#[cfg(target_arch = "x86_64")]
type TickSettings = crate::sampler::tick::TickConfig;
#[cfg(not(target_arch = "x86_64"))]
#[derive(Default)]
struct TickSettings {
    rate_hz: u64,
    max_overhead: f64,
}

#[cfg(target_arch = "x86_64")]
fn start_software(
    which: Software,
    ranges: &[(usize, usize)],
    dynamic: bool,
    protect: ProtectConfig,
    tick: TickSettings,
) -> Result<Box<dyn Sampler>, SessionError> {
    use crate::sampler::tick::{self, TickSampler};
    let use_tick = match which {
        Software::Tick => true,
        Software::Protect => false,
        Software::Auto => {
            auto_prefers_tick(ranges, dynamic)
                && tick::available().is_ok()
                && ranges.len() <= tick::MAX_RANGES
        }
    };
    if use_tick {
        return Ok(Box::new(
            TickSampler::start(ranges, tick).map_err(|e| SessionError::Tick(e.to_string()))?,
        ));
    }
    Ok(Box::new(ProtectSampler::start(ranges, protect)?))
}

#[cfg(not(target_arch = "x86_64"))]
fn start_software(
    which: Software,
    ranges: &[(usize, usize)],
    _dynamic: bool,
    protect: ProtectConfig,
    _tick: TickSettings,
) -> Result<Box<dyn Sampler>, SessionError> {
    if which == Software::Tick {
        return Err(SessionError::Tick(format!(
            "the tick sampler decodes x86-64 instructions; this is {}",
            std::env::consts::ARCH
        )));
    }
    Ok(Box::new(ProtectSampler::start(ranges, protect)?))
}

/// Builds a [`Session`].
pub struct SessionBuilder {
    filters: Vec<FilterSpec>,
    labels: Vec<Label>,
    budget: Option<u64>,
    protect: ProtectConfig,
    tick: TickSettings,
    software: Software,
    sampler: Option<Box<dyn Sampler>>,
    drain_every: Duration,
    home_refresh: Duration,
    nodes: Option<u32>,
    live: Option<std::path::PathBuf>,
    dynamic: bool,
}

impl SessionBuilder {
    /// Lets the session start with no filter, for filters added while it runs
    /// ([`Session::add_filter`]): memory that does not exist yet, such as the heap
    /// blocks of a program being monitored from a preloaded library.
    pub fn dynamic(mut self) -> Self {
        self.dynamic = true;
        self
    }

    /// Exports the counters live in a memory-mapped file in `dir` (see
    /// [`crate::live`]; [`live::live_dir`] is the usual place), readable by `rset-top`
    /// and reprogrammable through its control area.
    pub fn live(mut self, dir: impl Into<std::path::PathBuf>) -> Self {
        self.live = Some(dir.into());
        self
    }

    /// Programs a filter (as many as the counter budget allows).
    pub fn filter(mut self, spec: FilterSpec) -> Self {
        self.filters.push(spec);
        self
    }

    /// Names a data area for the report (from the alloc-policies registry, say).
    pub fn label(mut self, label: Label) -> Self {
        self.labels.push(label);
        self
    }

    /// Names data areas after every allocation the alloc-policies registry holds now
    /// (regions and recorded heap blocks: their label, or the file:line that made
    /// them), as the paper named Water-spatial's molecules from allocation records.
    pub fn labels_from_registry(mut self) -> Self {
        self.labels.extend(registry_labels());
        self
    }

    /// Total counters the card may allocate (the card's SRAM; default: the card's).
    pub fn budget(mut self, counters: u64) -> Self {
        self.budget = Some(counters);
        self
    }

    /// The software sampler's rate: samples per second of each thread's CPU time
    /// for the tick sampler (default 1000), arming rounds per second for the
    /// protect sampler (default 100).
    pub fn rate_hz(mut self, hz: u64) -> Self {
        self.protect.rate_hz = hz;
        self.tick.rate_hz = hz;
        self
    }

    /// The largest share of the program's time sampling may cost (default 0.02 for
    /// the tick sampler, 0.01 for the protect sampler; 0: no limit, sample at
    /// `rate_hz` whatever it costs).
    pub fn max_overhead(mut self, share: f64) -> Self {
        self.protect.max_overhead = share;
        self.tick.max_overhead = share;
        self
    }

    /// Which software sampler to use (default [`Software::Auto`]).
    pub fn software(mut self, which: Software) -> Self {
        self.software = which;
        self
    }

    /// The tick sampler's full configuration (x86-64).
    #[cfg(target_arch = "x86_64")]
    pub fn tick(mut self, config: crate::sampler::tick::TickConfig) -> Self {
        self.tick = config;
        self
    }

    /// The software sampler's full configuration.
    pub fn protect(mut self, config: ProtectConfig) -> Self {
        self.protect = config;
        self
    }

    /// Uses this sampler (a [`crate::Replay`], say) instead of the software sampler.
    pub fn sampler(mut self, sampler: Box<dyn Sampler>) -> Self {
        self.sampler = Some(sampler);
        self
    }

    /// Counts for a machine of this many nodes instead of the running one's.
    pub fn nodes(mut self, nodes: u32) -> Self {
        self.nodes = Some(nodes);
        self
    }

    /// Re-query a page's home node once its entry is older than this (default 1 s).
    pub fn home_refresh(mut self, every: Duration) -> Self {
        self.home_refresh = every;
        self
    }

    /// Programs the card, starts the sampler and the background thread.
    ///
    /// # Errors
    /// [`SessionError`] naming what was refused.
    pub fn start(self) -> Result<Session, SessionError> {
        if self.filters.is_empty() && !self.dynamic {
            return Err(SessionError::NoFilters);
        }
        let nodes = match self.nodes {
            Some(n) => n,
            None => machine_nodes()?,
        };
        let mut card = match self.budget {
            Some(b) => Card::with_budget(nodes, b)?,
            None => Card::new(nodes)?,
        };
        for f in &self.filters {
            card.program(f.clone())?;
        }
        let sampler: Box<dyn Sampler> = match self.sampler {
            Some(s) => s,
            None => start_software(
                self.software,
                &watch_ranges(&self.filters),
                self.dynamic,
                self.protect,
                self.tick,
            )?,
        };
        let how = match sampler.stats().name.as_str() {
            "tick" => "software (ticks of each thread's CPU time)",
            "protect" => "software (page protection)",
            _ => "the sampler it was given",
        };
        let hardware = match pmu::detect() {
            Ok(found) => format!("{found} is present; this version samples in {how}."),
            Err(why) => why.to_string(),
        };
        let live = match &self.live {
            Some(dir) => Some(LiveWriter::create(dir, &card)?),
            None => None,
        };
        let live_path = live.as_ref().map(|l| l.path().to_owned());
        let card = Arc::new(Mutex::new(card));
        let sampler = Arc::new(Mutex::new(sampler));
        let stop = Arc::new(AtomicBool::new(false));
        let (card2, stop2, sampler2) = (card.clone(), stop.clone(), sampler.clone());
        let (drain_every, refresh) = (self.drain_every, self.home_refresh);
        let worker = std::thread::Builder::new()
            .name("rset-mon-session".into())
            .spawn(move || feed(&sampler2, &card2, &stop2, drain_every, refresh, live))
            .map_err(|e| SessionError::Worker(e.to_string()))?;
        Ok(Session {
            card,
            sampler,
            watched: Mutex::new(self.filters),
            stop,
            live_path,
            worker: Mutex::new(Some(worker)),
            labels: Mutex::new(self.labels),
            hardware,
            started: Instant::now(),
        })
    }
}

/// The alloc-policies registry's live allocations as report labels.
pub fn registry_labels() -> Vec<Label> {
    alloc_policies::registry::snapshot()
        .into_iter()
        .map(|a| Label::new(a.addr as u64, a.len as u64, a.label.to_string()))
        .collect()
}

/// Node count of the running machine (highest node id + 1).
///
/// Read from sysfs (`/sys/devices/system/node/possible`, 1 without NUMA), not
/// hwloc, so that a monitor inside a preloaded library does not load libhwloc into
/// the program.
fn machine_nodes() -> Result<u32, SessionError> {
    let text = match std::fs::read_to_string("/sys/devices/system/node/possible") {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(1),
        Err(e) => return Err(SessionError::Topology(e.to_string())),
    };
    let ids = rset::list::parse_list(text.trim())
        .map_err(|e| SessionError::Topology(format!("/sys/devices/system/node/possible: {e}")))?;
    Ok(ids.into_iter().max().map_or(1, |m| m + 1))
}

/// The whole pages covering the filters, merged.
pub fn watch_ranges(filters: &[FilterSpec]) -> Vec<(usize, usize)> {
    let page = rset::sys::mempolicy::page_size() as u64;
    let mut spans: Vec<(u64, u64)> = filters
        .iter()
        .filter(|f| f.size > 0)
        .map(|f| {
            let lo = f.start / page * page;
            let hi = f.start.saturating_add(f.size).div_ceil(page) * page;
            (lo, hi)
        })
        .collect();
    spans.sort_unstable();
    let mut merged: Vec<(u64, u64)> = Vec::new();
    for (lo, hi) in spans {
        match merged.last_mut() {
            Some(last) if lo <= last.1 => last.1 = last.1.max(hi),
            _ => merged.push((lo, hi)),
        }
    }
    merged
        .into_iter()
        .map(|(lo, hi)| (lo as usize, (hi - lo) as usize))
        .collect()
}

/// What the background thread hands back.
struct Fed {
    stats: SamplerStats,
    unresolved: u64,
    timeline: Vec<crate::TimelinePoint>,
}

/// Applies a command from the live file's control area.
fn apply(cmd: live::Command, card: &Mutex<Card>, sampler: &mut Box<dyn Sampler>) -> bool {
    let mut card = card.lock().unwrap_or_else(|p| p.into_inner());
    match cmd.cmd {
        live::CMD_RESET => {
            card.reset();
            true
        }
        live::CMD_ADD_FILTER => {
            let [start, size, gran] = cmd.args;
            let Ok(g) = Granularity::new(gran) else {
                return false;
            };
            if card.program(FilterSpec::new(start, size, g)).is_err() {
                return false;
            }
            let specs: Vec<FilterSpec> = card.filters().map(|(_, f)| f.clone()).collect();
            drop(card);
            let _calm = crate::sampler::pause();
            sampler.watch(&watch_ranges(&specs)).is_ok()
        }
        _ => false,
    }
}

fn feed(
    sampler: &Mutex<Box<dyn Sampler>>,
    card: &Mutex<Card>,
    stop: &AtomicBool,
    every: Duration,
    refresh: Duration,
    mut live: Option<LiveWriter>,
) -> Fed {
    let mut homes = HomeCache::new(refresh);
    let mut buf: Vec<Sample> = Vec::new();
    let mut drain = |sampler: &mut Box<dyn Sampler>, buf: &mut Vec<Sample>| {
        buf.clear();
        sampler.drain(buf);
        if buf.is_empty() {
            return;
        }
        let now = buf.last().map_or(0, |s| s.time_ns);
        // Armed pages read as absent to move_pages: hold arming off while asking.
        let resolved = {
            let _calm = crate::sampler::pause();
            homes.resolve(buf, now)
        };
        let mut card = card.lock().unwrap_or_else(|p| p.into_inner());
        for (s, home) in buf.iter().zip(resolved) {
            if let Some(h) = home {
                card.record(s, h);
            }
        }
    };
    let lock = || sampler.lock().unwrap_or_else(|p| p.into_inner());
    let mut ticks = 0u32;
    let started = std::time::Instant::now();
    let mut timeline = crate::Timeline::new();
    let mut last_point = Duration::ZERO;
    while !stop.load(Ordering::Acquire) {
        std::thread::sleep(every);
        drain(&mut lock(), &mut buf);
        ticks += 1;
        let elapsed = started.elapsed();
        if timeline.due(elapsed, last_point) {
            let counts = card
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .filter_counts();
            timeline.take(elapsed.as_millis() as u64, &counts);
            last_point = elapsed;
        }
        if let Some(l) = live.as_mut()
            && ticks.is_multiple_of(10)
        {
            if let Some(cmd) = l.take_command() {
                let ok = apply(cmd, card, &mut lock());
                l.finish_command(ok);
            }
            let stats = lock().stats();
            l.publish(&card.lock().unwrap_or_else(|p| p.into_inner()), &stats);
        }
    }
    let mut sampler = lock();
    sampler.stop();
    drain(&mut sampler, &mut buf);
    Fed {
        stats: sampler.stats(),
        unresolved: homes.unresolved(),
        timeline: timeline.into_points(),
    }
}

/// A running session.
pub struct Session {
    card: Arc<Mutex<Card>>,
    sampler: Arc<Mutex<Box<dyn Sampler>>>,
    /// The filters whose memory is watched now.
    watched: Mutex<Vec<FilterSpec>>,
    stop: Arc<AtomicBool>,
    live_path: Option<std::path::PathBuf>,
    worker: Mutex<Option<JoinHandle<Fed>>>,
    labels: Mutex<Vec<Label>>,
    hardware: String,
    started: Instant,
}

/// A finished session.
#[derive(Debug)]
pub struct SessionOutcome {
    /// The session file (save it for `rset-mon report`).
    pub file: SessionFile,
    /// Samples whose page had no home node any more (unmapped meanwhile).
    pub unresolved: u64,
    /// One sentence on hardware memory sampling here.
    pub hardware: String,
    /// How long the session ran.
    pub elapsed: Duration,
}

impl SessionOutcome {
    /// The report of the session.
    pub fn report(&self) -> Report {
        Report::from_session(&self.file)
    }
}

impl Session {
    /// A builder with the defaults ([`Software::Auto`]: the tick sampler at 1000
    /// samples per second of CPU time within 2 %, or for small watched sets the
    /// protect sampler at 100 rounds/s within 1 %).
    pub fn builder() -> SessionBuilder {
        SessionBuilder {
            filters: Vec::new(),
            labels: Vec::new(),
            budget: None,
            protect: ProtectConfig::default(),
            tick: TickSettings::default(),
            software: Software::Auto,
            sampler: None,
            drain_every: Duration::from_millis(10),
            home_refresh: Duration::from_secs(1),
            nodes: None,
            live: None,
            dynamic: false,
        }
    }

    /// Programs one more filter while the session runs and watches its memory (a
    /// heap block that just appeared), naming it with `label` in the report.
    ///
    /// # Errors
    /// [`SessionError::Card`] if the card refuses it (over budget, bad granularity);
    /// [`SessionError::Sampler`]-like failures of the sampler come back as
    /// [`SessionError::Worker`] with its message.
    pub fn add_filter(&self, spec: FilterSpec, label: Option<Label>) -> Result<(), SessionError> {
        self.card
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .program(spec.clone())?;
        if let Some(l) = label {
            self.labels
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(l);
        }
        let mut watched = self.watched.lock().unwrap_or_else(|p| p.into_inner());
        watched.push(spec);
        let ranges = watch_ranges(&watched);
        drop(watched);
        self.sampler
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .watch(&ranges)
            .map_err(SessionError::Worker)
    }

    /// Stops watching the filters inside `[start, start + len)` at once (memory
    /// about to be unmapped, a heap block about to be freed): when this returns,
    /// none of their pages is armed any more. Their counters stay in the report.
    pub fn unwatch(&self, start: u64, len: u64) {
        let end = start.saturating_add(len);
        let mut watched = self.watched.lock().unwrap_or_else(|p| p.into_inner());
        let before = watched.len();
        watched.retain(|f| f.start.saturating_add(f.size) <= start || f.start >= end);
        if watched.len() == before {
            return;
        }
        let ranges = watch_ranges(&watched);
        drop(watched);
        let _ = self
            .sampler
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .watch(&ranges);
    }

    /// The counters so far, as a report (the sampler facts are filled in at the end).
    pub fn snapshot(&self) -> Report {
        let card = self.card.lock().unwrap_or_else(|p| p.into_inner());
        let labels = self
            .labels
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let file = SessionFile::from_card(&card, SamplerStats::default()).with_labels(labels);
        Report::from_session(&file)
    }

    /// The live file, when exporting (see [`SessionBuilder::live`]).
    pub fn live_path(&self) -> Option<&std::path::Path> {
        self.live_path.as_deref()
    }

    /// One sentence on hardware memory sampling here.
    pub fn hardware(&self) -> &str {
        &self.hardware
    }

    /// Stops sampling, counts what is left, and returns the session.
    ///
    /// # Errors
    /// [`SessionError::Worker`] if the background thread panicked.
    pub fn stop(self) -> Result<SessionOutcome, SessionError> {
        self.finish()
    }

    /// [`Session::stop`] through a shared reference, for a session kept where it
    /// cannot be moved out (a static in a preloaded library). Once stopped, later
    /// calls fail with [`SessionError::Worker`].
    ///
    /// # Errors
    /// [`SessionError::Worker`] if the background thread panicked or the session
    /// was already stopped.
    pub fn finish(&self) -> Result<SessionOutcome, SessionError> {
        self.stop.store(true, Ordering::Release);
        let worker = self
            .worker
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .ok_or_else(|| SessionError::Worker("the session was already stopped".into()))?;
        let fed = worker
            .join()
            .map_err(|_| SessionError::Worker("it panicked".into()))?;
        let card = self.card.lock().unwrap_or_else(|p| p.into_inner());
        let labels = self
            .labels
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let file = SessionFile::from_card(&card, fed.stats)
            .with_labels(labels)
            .with_timeline(fed.timeline);
        Ok(SessionOutcome {
            file,
            unresolved: fed.unresolved,
            hardware: self.hardware.clone(),
            elapsed: self.started.elapsed(),
        })
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(w) = self
            .worker
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            let _ = w.join();
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn auto_takes_ticks_for_big_or_unknown_sets_and_protection_for_a_few_pages() {
        use super::{SMALL_WATCH, auto_prefers_tick};
        assert!(auto_prefers_tick(&[(0x1000, 48 << 20)], false));
        assert!(auto_prefers_tick(
            &[(0x1000, SMALL_WATCH), (0x9000_0000, 4096)],
            false
        ));
        assert!(!auto_prefers_tick(&[(0x1000, SMALL_WATCH)], false));
        assert!(!auto_prefers_tick(&[(0x1000, 4 * 4096)], true));
        assert!(auto_prefers_tick(&[], true));
        assert!(!auto_prefers_tick(&[], false));
    }

    use super::*;
    use crate::granularity::Granularity;

    #[test]
    fn watched_ranges_are_whole_merged_pages() {
        let p = rset::sys::mempolicy::page_size() as u64;
        let g = Granularity::LINE;
        let filters = vec![
            FilterSpec::new(p + 10, 100, g),
            FilterSpec::new(p + 200, p, g),
            FilterSpec::new(10 * p, p, g),
        ];
        assert_eq!(
            watch_ranges(&filters),
            vec![(p as usize, 2 * p as usize), (10 * p as usize, p as usize)]
        );
    }

    #[test]
    fn a_session_needs_a_filter() {
        assert!(matches!(
            Session::builder().start().err(),
            Some(SessionError::NoFilters)
        ));
    }
}
