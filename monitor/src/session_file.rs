//! The session file that `rset-mon report FILE` reads: one JSON document holding the
//! machine, the sampler's facts, every filter with its counters, the secondary
//! counters, and the names of data areas.
//!
//! # Format (version 1)
//!
//! ```json
//! {
//!   "format": "rset-monitor-session",
//!   "version": 1,
//!   "machine": { "nodes": 2, "distances": [[10, 20], [20, 10]] },
//!   "sampler": { "name": "perf-mem", "samples": 400, "lost": 0, "idle_rounds": 0, "rate_hz": 1000 },
//!   "card": { "samples": 400, "matched": 400, "unmatched": 0, "bad_node": 0, "unknown_locality": 0 },
//!   "filters": [
//!     { "id": 0,
//!       "spec": { "start": 4096, "size": 8192, "granularity": 4096,
//!                 "mask": { "reads": true, "writes": true }, "direction": "all",
//!                 "node": null, "name": "grid" },
//!       "granules": [ { "offset": 0, "home_node": 0,
//!                       "by_node": { "0": { "local": 300, "remote": 0, "reads": 300, "writes": 0 } } } ] }
//!   ],
//!   "secondaries": [
//!     { "id": 0, "spec": { "sources": [ { "filter": 0 }, { "range": { "start": 65536, "size": 4096 } } ],
//!                          "mask": { "reads": false, "writes": true }, "name": "grid writes" },
//!       "by_node": {} }
//!   ],
//!   "labels": [ { "start": 4096, "size": 8192, "name": "grid" } ],
//!   "mappings": [ { "start": 0, "size": 1048576, "name": "[heap]" } ]
//! }
//! ```
//!
//! Addresses and counts are JSON numbers; granules with no reference are left out;
//! `by_node` keys are accessing nodes. `distances`, `card`, `secondaries`, `labels`
//! (names supplied by the program, e.g. the allocation registry) and `mappings`
//! (mapping names, e.g. from `/proc/PID/maps`) may be absent. Unknown fields are
//! ignored, so later minor additions keep version 1 readable.
//!
//! Parsing never panics on any input: it returns a [`SessionError`], and a parsed file
//! is checked ([`SessionFile::validate`]) so that every report built from it is sound.

use std::collections::BTreeSet;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::card::{Card, CardStats, FilterCounts, MAX_NODES, SecondaryCounts, SecondarySource};
use crate::sample::SamplerStats;
use crate::timeline::TimelinePoint;

/// The value of the `format` field.
pub const SESSION_FORMAT: &str = "rset-monitor-session";

/// The version this crate writes and reads.
pub const SESSION_VERSION: u32 = 1;

/// The machine a session ran on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Machine {
    /// Its NUMA node count (accessing and home nodes are below it).
    pub nodes: u32,
    /// The node distance matrix (`nodes x nodes`, 10 = local), if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distances: Option<Vec<Vec<u32>>>,
}

impl Machine {
    /// A machine of `nodes` nodes, distances unknown.
    pub fn new(nodes: u32) -> Machine {
        Machine {
            nodes,
            distances: None,
        }
    }
}

/// A name for an address range: a data area's label or a mapping's name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Label {
    /// First byte.
    pub start: u64,
    /// Bytes (not zero).
    pub size: u64,
    /// The name.
    pub name: String,
}

impl Label {
    /// A label `name` for `start .. start + size`.
    pub fn new(start: u64, size: u64, name: impl Into<String>) -> Label {
        Label {
            start,
            size,
            name: name.into(),
        }
    }

    /// One past its last byte (saturating).
    pub fn end(&self) -> u64 {
        self.start.saturating_add(self.size)
    }
}

/// Why a session file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// Reading or writing the file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        source: io::Error,
    },
    /// The bytes are not JSON, or not of the session's shape.
    #[error("not a readable session file: {0}")]
    Json(#[from] serde_json::Error),
    /// The `format` field is missing or names something else.
    #[error("not a session file (format {0:?}, expected {SESSION_FORMAT:?})")]
    NotASession(String),
    /// A version this crate does not read.
    #[error(
        "session file version {0} is not supported (this build reads version {SESSION_VERSION})"
    )]
    UnsupportedVersion(u64),
    /// A field holds a value that cannot be right.
    #[error("invalid session file: {0}")]
    Invalid(String),
}

/// A saved monitoring session (see the module docs for the JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionFile {
    /// Always [`SESSION_FORMAT`].
    pub format: String,
    /// Always [`SESSION_VERSION`] when written by this crate.
    pub version: u32,
    /// The machine.
    pub machine: Machine,
    /// The sampler's facts: name, rate, samples, lost samples.
    pub sampler: SamplerStats,
    /// What the card saw besides its counters.
    #[serde(default)]
    pub card: CardStats,
    /// Every filter with its touched granules.
    pub filters: Vec<FilterCounts>,
    /// Every secondary counter.
    #[serde(default)]
    pub secondaries: Vec<SecondaryCounts>,
    /// Names of data areas supplied by the program (they name report areas first).
    #[serde(default)]
    pub labels: Vec<Label>,
    /// Names of mappings (used where no label covers an address).
    #[serde(default)]
    pub mappings: Vec<Label>,
    /// The counts over time, a point a second (see [`crate::timeline`]); empty for a
    /// session that kept none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub timeline: Vec<TimelinePoint>,
}

/// The checks of [`SessionFile::validate`] on one filter's programming and granules.
fn check_filter(
    f: &FilterCounts,
    what: &str,
    node_ok: &dyn Fn(u32, &str) -> Result<(), SessionError>,
) -> Result<(), SessionError> {
    let spec = &f.spec;
    if spec.size == 0 {
        return Err(invalid(format!("{what} has size 0")));
    }
    if spec.mask.is_empty() {
        return Err(invalid(format!("{what} has an empty mask")));
    }
    let end = spec
        .end()
        .ok_or_else(|| invalid(format!("{what} passes the end of the address space")))?;
    if let Some(n) = spec.node {
        node_ok(n, what)?;
    }
    let span = end - spec.start;
    let mut last: Option<u64> = None;
    for g in &f.granules {
        if g.offset >= span || !g.offset.is_multiple_of(spec.granularity.bytes()) {
            return Err(invalid(format!(
                "{what}: offset {} is not a granule of the filter",
                g.offset
            )));
        }
        if last.is_some_and(|l| l >= g.offset) {
            return Err(invalid(format!(
                "{what}: offset {} is not after the previous one",
                g.offset
            )));
        }
        last = Some(g.offset);
        if let Some(h) = g.home_node {
            node_ok(h, what)?;
        }
        for &n in g.by_node.keys() {
            node_ok(n, what)?;
        }
    }
    Ok(())
}

fn invalid(msg: String) -> SessionError {
    SessionError::Invalid(msg)
}

impl SessionFile {
    /// A session of `card`'s counters with the sampler facts `sampler`, on a machine of
    /// the card's node count (distances unknown, no labels).
    pub fn from_card(card: &Card, sampler: SamplerStats) -> SessionFile {
        SessionFile {
            format: SESSION_FORMAT.to_owned(),
            version: SESSION_VERSION,
            machine: Machine::new(card.nodes()),
            sampler,
            card: card.stats(),
            filters: card.filter_counts(),
            secondaries: card.secondary_counts_all(),
            labels: Vec::new(),
            mappings: Vec::new(),
            timeline: Vec::new(),
        }
    }

    /// The same session with the node distance matrix `distances`.
    pub fn with_distances(mut self, distances: Vec<Vec<u32>>) -> SessionFile {
        self.machine.distances = Some(distances);
        self
    }

    /// The same session with data-area labels `labels`.
    pub fn with_labels(mut self, labels: Vec<Label>) -> SessionFile {
        self.labels = labels;
        self
    }

    /// The same session with the counts over time `timeline`.
    pub fn with_timeline(mut self, timeline: Vec<TimelinePoint>) -> SessionFile {
        self.timeline = timeline;
        self
    }

    /// The same session with mapping names `mappings`.
    pub fn with_mappings(mut self, mappings: Vec<Label>) -> SessionFile {
        self.mappings = mappings;
        self
    }

    /// Parses and checks a session file's bytes. Never panics.
    ///
    /// # Errors
    /// [`SessionError::Json`] for bytes that are not JSON of the right shape,
    /// [`SessionError::NotASession`], [`SessionError::UnsupportedVersion`],
    /// [`SessionError::Invalid`] (see [`SessionFile::validate`]).
    pub fn from_bytes(bytes: &[u8]) -> Result<SessionFile, SessionError> {
        let probe: serde_json::Value = serde_json::from_slice(bytes)?;
        let Some(probe) = probe.as_object() else {
            return Err(SessionError::NotASession("(not a JSON object)".into()));
        };
        match probe.get("format") {
            Some(serde_json::Value::String(f)) if f == SESSION_FORMAT => {}
            Some(serde_json::Value::String(f)) => return Err(SessionError::NotASession(f.clone())),
            Some(other) => return Err(SessionError::NotASession(other.to_string())),
            None => return Err(SessionError::NotASession(String::new())),
        }
        match probe.get("version").and_then(serde_json::Value::as_u64) {
            Some(v) if v == u64::from(SESSION_VERSION) => {}
            Some(v) => return Err(SessionError::UnsupportedVersion(v)),
            None => return Err(invalid("the version is missing or not a number".into())),
        }
        let file: SessionFile = serde_json::from_slice(bytes)?;
        file.validate()?;
        Ok(file)
    }

    /// Checks what the JSON shape cannot: a node count in `1 ..= MAX_NODES`, a square
    /// distance matrix, filters that are programmable (size not zero, mask not empty,
    /// range within the address space, node in range) with distinct ids, granules at
    /// ascending granule-aligned offsets inside their filter, nodes in range, secondary
    /// sources naming filters of the file, and non-empty labels within the address
    /// space.
    ///
    /// # Errors
    /// [`SessionError::Invalid`], saying what and where.
    pub fn validate(&self) -> Result<(), SessionError> {
        let nodes = self.machine.nodes;
        if nodes == 0 || nodes > MAX_NODES {
            return Err(invalid(format!(
                "node count {nodes} is not in 1..={MAX_NODES}"
            )));
        }
        if let Some(d) = &self.machine.distances {
            if d.len() != nodes as usize || d.iter().any(|row| row.len() != nodes as usize) {
                return Err(invalid(format!(
                    "the distance matrix is not {nodes} x {nodes}"
                )));
            }
        }
        let node_ok = |n: u32, what: &str| {
            if n < nodes {
                Ok(())
            } else {
                Err(invalid(format!("{what}: node {n} is not below {nodes}")))
            }
        };
        let mut ids = BTreeSet::new();
        for f in &self.filters {
            let what = format!("filter {}", f.id.0);
            if !ids.insert(f.id) {
                return Err(invalid(format!("{what} appears twice")));
            }
            check_filter(f, &what, &node_ok)?;
        }
        let mut last_ms = None;
        for (i, p) in self.timeline.iter().enumerate() {
            if last_ms.is_some_and(|l| l >= p.at_ms) {
                return Err(invalid(format!(
                    "timeline point {i}: {} ms is not after the previous point",
                    p.at_ms
                )));
            }
            last_ms = Some(p.at_ms);
            for f in &p.filters {
                check_filter(
                    f,
                    &format!("timeline point {i}, filter {}", f.id.0),
                    &node_ok,
                )?;
            }
        }
        let mut sec_ids = BTreeSet::new();
        for s in &self.secondaries {
            let what = format!("secondary {}", s.id.0);
            if !sec_ids.insert(s.id) {
                return Err(invalid(format!("{what} appears twice")));
            }
            for &n in s.by_node.keys() {
                node_ok(n, &what)?;
            }
            for source in &s.spec.sources {
                match *source {
                    SecondarySource::Filter(id) if !ids.contains(&id) => {
                        return Err(invalid(format!("{what} shadows unknown {id}")));
                    }
                    SecondarySource::Range { start, size }
                        if size == 0 || start.checked_add(size).is_none() =>
                    {
                        return Err(invalid(format!(
                            "{what}: range {start:#x} + {size:#x} is empty or too large"
                        )));
                    }
                    _ => {}
                }
            }
        }
        for l in self.labels.iter().chain(&self.mappings) {
            if l.size == 0 || l.start.checked_add(l.size).is_none() {
                return Err(invalid(format!(
                    "label {:?} at {:#x} + {:#x} is empty or too large",
                    l.name, l.start, l.size
                )));
            }
        }
        Ok(())
    }

    /// The file as pretty-printed JSON.
    pub fn to_json(&self) -> String {
        // Serializing these types cannot fail: all map keys are integers.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Writes the file to `path` (through a temporary file beside it, then renamed).
    ///
    /// # Errors
    /// [`SessionError::Io`].
    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), SessionError> {
        let path = path.as_ref();
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let io_err = |p: &Path| {
            let p = p.to_path_buf();
            move |source| SessionError::Io { path: p, source }
        };
        let mut text = self.to_json();
        text.push('\n');
        std::fs::write(&tmp, text).map_err(io_err(&tmp))?;
        std::fs::rename(&tmp, path).map_err(io_err(path))
    }

    /// Reads and checks the session file at `path`.
    ///
    /// # Errors
    /// [`SessionError::Io`], and those of [`SessionFile::from_bytes`].
    pub fn load(path: impl AsRef<Path>) -> Result<SessionFile, SessionError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| SessionError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        SessionFile::from_bytes(&bytes)
    }
}
