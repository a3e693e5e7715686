//! Recorded sample streams: a writer, a reader, and [`Replay`], a [`Sampler`] that
//! plays a recording back (offline analysis, deterministic tests).
//!
//! Each recorded sample carries its page's home node, so counting a replay needs no
//! page lookup. Two encodings, told apart by their first bytes:
//!
//! # JSON lines (`StreamFormat::JsonLines`)
//!
//! The first line is the header, each further non-blank line one sample:
//!
//! ```text
//! {"format":"rset-monitor-samples","version":1,"nodes":2,"sampler":{"name":"perf-mem","samples":2,"lost":0,"idle_rounds":0,"rate_hz":1000}}
//! {"addr":4096,"tid":41,"cpu":0,"node":0,"time_ns":1000,"access":"read","source":null,"home":0}
//! {"addr":8192,"tid":41,"cpu":0,"node":0,"time_ns":2000,"access":"write","source":"remote_dram","home":1}
//! ```
//!
//! `nodes` and `sampler` (the recording sampler's facts) may be `null` or absent;
//! `access` is `read`, `write` or `unknown`; `source` is `null` or one of
//! `local_cache`, `local_dram`, `remote_cache`, `remote_dram`, `other`.
//!
//! # Binary (`StreamFormat::Binary`)
//!
//! All integers little-endian:
//!
//! | bytes | what |
//! | --- | --- |
//! | 8 | magic `RSETSMPL` |
//! | 2 | version, 1 |
//! | 2 | record size, 40 |
//! | 4 | header length `n` |
//! | `n` | the header, as the JSON of the first JSON line |
//! | 40 each | records: `addr` u64, `time_ns` u64, `tid` i32, `cpu` u32, `node` u32, `home` u32, `access` u8 (0 read, 1 write, 2 unknown), `source` u8 (0 none, 1 local cache, 2 local DRAM, 3 remote cache, 4 remote DRAM, 5 other), 6 zero bytes |
//!
//! Reading never panics: malformed input is a [`ReplayError`].

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::sample::{Access, DataSource, Sample, Sampler, SamplerStats};

/// The value of the header's `format` field.
pub const STREAM_FORMAT: &str = "rset-monitor-samples";

/// The stream version this crate writes and reads.
pub const STREAM_VERSION: u32 = 1;

/// The binary encoding's magic bytes.
pub const BINARY_MAGIC: [u8; 8] = *b"RSETSMPL";

const RECORD_SIZE: usize = 40;
const PAGE_SHIFT: u32 = 12;

/// A sample with its page's home node, as recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedSample {
    /// The sample.
    pub sample: Sample,
    /// The node of the page it referenced.
    pub home: u32,
}

/// The header of a recorded stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamHeader {
    /// Always [`STREAM_FORMAT`].
    pub format: String,
    /// Always [`STREAM_VERSION`] when written by this crate.
    pub version: u32,
    /// The machine's node count, if known.
    #[serde(default)]
    pub nodes: Option<u32>,
    /// The recording sampler's facts, if known.
    #[serde(default)]
    pub sampler: Option<SamplerStats>,
}

impl StreamHeader {
    /// A header for a machine of `nodes` nodes (if known) and the recording sampler's
    /// facts (if known).
    pub fn new(nodes: Option<u32>, sampler: Option<SamplerStats>) -> StreamHeader {
        StreamHeader {
            format: STREAM_FORMAT.to_owned(),
            version: STREAM_VERSION,
            nodes,
            sampler,
        }
    }
}

/// The encodings of a recorded stream (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StreamFormat {
    /// One JSON document per line.
    JsonLines,
    /// Fixed 40-byte records after a header.
    Binary,
}

/// Why a stream could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// Reading or writing failed.
    #[error("{}: {source}", path.as_deref().map_or("sample stream".into(), |p| p.display().to_string()))]
    Io {
        /// The file, if there is one.
        path: Option<PathBuf>,
        /// What failed.
        source: io::Error,
    },
    /// The stream is empty.
    #[error("the sample stream is empty")]
    Empty,
    /// Neither a JSON-lines header nor the binary magic.
    #[error("not a sample stream (no header)")]
    NoHeader,
    /// The header is not of the right shape, or names another format.
    #[error("bad sample stream header: {0}")]
    BadHeader(String),
    /// A version this crate does not read.
    #[error(
        "sample stream version {0} is not supported (this build reads version {STREAM_VERSION})"
    )]
    UnsupportedVersion(u32),
    /// A JSON line that is not a sample.
    #[error("line {line}: {source}")]
    BadLine {
        /// Its number, from 1.
        line: usize,
        /// Why.
        source: serde_json::Error,
    },
    /// A binary record size other than 40.
    #[error("binary record size {0} is not {RECORD_SIZE}")]
    BadRecordSize(u16),
    /// The binary stream ends inside a header or a record.
    #[error("the binary stream is truncated at byte {0}")]
    Truncated(usize),
    /// A binary record with an access or source code out of range.
    #[error("binary record {index}: bad {field} code {code}")]
    BadCode {
        /// The record's index, from 0.
        index: usize,
        /// `access` or `source`.
        field: &'static str,
        /// The code.
        code: u8,
    },
}

fn io_error(source: io::Error) -> ReplayError {
    ReplayError::Io { path: None, source }
}

#[derive(Serialize, Deserialize)]
struct Line {
    addr: u64,
    tid: i32,
    cpu: u32,
    node: u32,
    time_ns: u64,
    access: Access,
    #[serde(default)]
    source: Option<DataSource>,
    home: u32,
}

impl From<&RecordedSample> for Line {
    fn from(r: &RecordedSample) -> Line {
        let s = &r.sample;
        Line {
            addr: s.addr,
            tid: s.tid,
            cpu: s.cpu,
            node: s.node,
            time_ns: s.time_ns,
            access: s.access,
            source: s.source,
            home: r.home,
        }
    }
}

impl From<Line> for RecordedSample {
    fn from(l: Line) -> RecordedSample {
        RecordedSample {
            sample: Sample {
                addr: l.addr,
                tid: l.tid,
                cpu: l.cpu,
                node: l.node,
                time_ns: l.time_ns,
                access: l.access,
                source: l.source,
            },
            home: l.home,
        }
    }
}

fn access_code(a: Access) -> u8 {
    match a {
        Access::Read => 0,
        Access::Write => 1,
        Access::Unknown => 2,
    }
}

fn source_code(s: Option<DataSource>) -> u8 {
    match s {
        None => 0,
        Some(DataSource::LocalCache) => 1,
        Some(DataSource::LocalDram) => 2,
        Some(DataSource::RemoteCache) => 3,
        Some(DataSource::RemoteDram) => 4,
        Some(DataSource::Other) => 5,
    }
}

/// Writes a recorded stream.
#[derive(Debug)]
pub struct StreamWriter<W: Write> {
    out: W,
    format: StreamFormat,
    written: u64,
}

impl<W: Write> StreamWriter<W> {
    /// Starts a stream in `format` on `out` by writing `header`.
    ///
    /// # Errors
    /// [`ReplayError::Io`].
    pub fn new(
        mut out: W,
        format: StreamFormat,
        header: &StreamHeader,
    ) -> Result<Self, ReplayError> {
        let json = serde_json::to_vec(header).map_err(|e| io_error(e.into()))?;
        match format {
            StreamFormat::JsonLines => {
                out.write_all(&json).map_err(io_error)?;
                out.write_all(b"\n").map_err(io_error)?;
            }
            StreamFormat::Binary => {
                let len = u32::try_from(json.len())
                    .map_err(|_| ReplayError::BadHeader("header too long".into()))?;
                out.write_all(&BINARY_MAGIC).map_err(io_error)?;
                out.write_all(&(STREAM_VERSION as u16).to_le_bytes())
                    .map_err(io_error)?;
                out.write_all(&(RECORD_SIZE as u16).to_le_bytes())
                    .map_err(io_error)?;
                out.write_all(&len.to_le_bytes()).map_err(io_error)?;
                out.write_all(&json).map_err(io_error)?;
            }
        }
        Ok(StreamWriter {
            out,
            format,
            written: 0,
        })
    }

    /// Appends one sample.
    ///
    /// # Errors
    /// [`ReplayError::Io`].
    pub fn write(&mut self, r: &RecordedSample) -> Result<(), ReplayError> {
        match self.format {
            StreamFormat::JsonLines => {
                let mut json =
                    serde_json::to_vec(&Line::from(r)).map_err(|e| io_error(e.into()))?;
                json.push(b'\n');
                self.out.write_all(&json).map_err(io_error)?;
            }
            StreamFormat::Binary => {
                let s = &r.sample;
                let mut rec = [0u8; RECORD_SIZE];
                rec[0..8].copy_from_slice(&s.addr.to_le_bytes());
                rec[8..16].copy_from_slice(&s.time_ns.to_le_bytes());
                rec[16..20].copy_from_slice(&s.tid.to_le_bytes());
                rec[20..24].copy_from_slice(&s.cpu.to_le_bytes());
                rec[24..28].copy_from_slice(&s.node.to_le_bytes());
                rec[28..32].copy_from_slice(&r.home.to_le_bytes());
                rec[32] = access_code(s.access);
                rec[33] = source_code(s.source);
                self.out.write_all(&rec).map_err(io_error)?;
            }
        }
        self.written += 1;
        Ok(())
    }

    /// Samples written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Flushes and returns the output.
    ///
    /// # Errors
    /// [`ReplayError::Io`].
    pub fn finish(mut self) -> Result<W, ReplayError> {
        self.out.flush().map_err(io_error)?;
        Ok(self.out)
    }
}

fn check_header(header: &StreamHeader) -> Result<(), ReplayError> {
    if header.format != STREAM_FORMAT {
        return Err(ReplayError::BadHeader(format!(
            "format {:?}, expected {STREAM_FORMAT:?}",
            header.format
        )));
    }
    if header.version != STREAM_VERSION {
        return Err(ReplayError::UnsupportedVersion(header.version));
    }
    Ok(())
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

fn read_binary(bytes: &[u8]) -> Result<(StreamHeader, Vec<RecordedSample>), ReplayError> {
    if bytes.len() < 16 {
        return Err(ReplayError::Truncated(bytes.len()));
    }
    let version = u32::from(u16::from_le_bytes([bytes[8], bytes[9]]));
    if version != STREAM_VERSION {
        return Err(ReplayError::UnsupportedVersion(version));
    }
    let record_size = u16::from_le_bytes([bytes[10], bytes[11]]);
    if usize::from(record_size) != RECORD_SIZE {
        return Err(ReplayError::BadRecordSize(record_size));
    }
    let header_len = u32_at(bytes, 12) as usize;
    let body = 16usize
        .checked_add(header_len)
        .filter(|&end| end <= bytes.len())
        .ok_or(ReplayError::Truncated(bytes.len()))?;
    let header: StreamHeader = serde_json::from_slice(&bytes[16..body])
        .map_err(|e| ReplayError::BadHeader(e.to_string()))?;
    check_header(&header)?;
    let records = &bytes[body..];
    if !records.len().is_multiple_of(RECORD_SIZE) {
        return Err(ReplayError::Truncated(
            body + records.len() / RECORD_SIZE * RECORD_SIZE,
        ));
    }
    let mut out = Vec::with_capacity(records.len() / RECORD_SIZE);
    for (index, rec) in records.chunks_exact(RECORD_SIZE).enumerate() {
        let access = match rec[32] {
            0 => Access::Read,
            1 => Access::Write,
            2 => Access::Unknown,
            code => {
                return Err(ReplayError::BadCode {
                    index,
                    field: "access",
                    code,
                });
            }
        };
        let source = match rec[33] {
            0 => None,
            1 => Some(DataSource::LocalCache),
            2 => Some(DataSource::LocalDram),
            3 => Some(DataSource::RemoteCache),
            4 => Some(DataSource::RemoteDram),
            5 => Some(DataSource::Other),
            code => {
                return Err(ReplayError::BadCode {
                    index,
                    field: "source",
                    code,
                });
            }
        };
        out.push(RecordedSample {
            sample: Sample {
                addr: u64_at(rec, 0),
                time_ns: u64_at(rec, 8),
                tid: u32_at(rec, 16) as i32,
                cpu: u32_at(rec, 20),
                node: u32_at(rec, 24),
                access,
                source,
            },
            home: u32_at(rec, 28),
        });
    }
    Ok((header, out))
}

fn read_json_lines(bytes: &[u8]) -> Result<(StreamHeader, Vec<RecordedSample>), ReplayError> {
    let mut lines = bytes.split(|&b| b == b'\n').enumerate();
    let header = loop {
        match lines.next() {
            None => return Err(ReplayError::Empty),
            Some((_, l)) if l.trim_ascii().is_empty() => continue,
            Some((_, l)) => {
                break serde_json::from_slice::<StreamHeader>(l)
                    .map_err(|e| ReplayError::BadHeader(e.to_string()))?;
            }
        }
    };
    check_header(&header)?;
    let mut out = Vec::new();
    for (i, l) in lines {
        if l.trim_ascii().is_empty() {
            continue;
        }
        let line: Line = serde_json::from_slice(l).map_err(|source| ReplayError::BadLine {
            line: i + 1,
            source,
        })?;
        out.push(line.into());
    }
    Ok((header, out))
}

/// Reads a whole recorded stream (either encoding) from its bytes. Never panics.
///
/// # Errors
/// Any [`ReplayError`] but `Io`.
pub fn read_stream(bytes: &[u8]) -> Result<(StreamHeader, Vec<RecordedSample>), ReplayError> {
    if bytes.starts_with(&BINARY_MAGIC) {
        return read_binary(bytes);
    }
    match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        None => Err(ReplayError::Empty),
        Some(b'{') => read_json_lines(bytes),
        Some(_) => Err(ReplayError::NoHeader),
    }
}

/// A [`Sampler`] that plays back a recorded stream, in recorded order.
#[derive(Debug, Clone)]
pub struct Replay {
    header: StreamHeader,
    samples: Vec<RecordedSample>,
    pos: usize,
    batch: usize,
    stopped: bool,
    homes: BTreeMap<u64, u32>,
}

impl Replay {
    /// A replay of `samples`, described by `header`.
    pub fn new(header: StreamHeader, samples: Vec<RecordedSample>) -> Replay {
        let homes = samples
            .iter()
            .map(|r| (r.sample.addr >> PAGE_SHIFT, r.home))
            .collect();
        Replay {
            header,
            samples,
            pos: 0,
            batch: usize::MAX,
            stopped: false,
            homes,
        }
    }

    /// A replay of a stream's bytes.
    ///
    /// # Errors
    /// As [`read_stream`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Replay, ReplayError> {
        let (header, samples) = read_stream(bytes)?;
        Ok(Replay::new(header, samples))
    }

    /// A replay of everything `reader` yields.
    ///
    /// # Errors
    /// [`ReplayError::Io`], and those of [`read_stream`].
    pub fn from_reader(mut reader: impl Read) -> Result<Replay, ReplayError> {
        let mut bytes = Vec::new();
        reader.read_to_end(&mut bytes).map_err(io_error)?;
        Replay::from_bytes(&bytes)
    }

    /// A replay of the stream file at `path`.
    ///
    /// # Errors
    /// [`ReplayError::Io`] with the path, and those of [`read_stream`].
    pub fn from_path(path: impl AsRef<Path>) -> Result<Replay, ReplayError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| ReplayError::Io {
            path: Some(path.to_path_buf()),
            source,
        })?;
        Replay::from_bytes(&bytes)
    }

    /// The same replay delivering at most `n` (at least 1) samples per drain, as a
    /// live sampler would.
    pub fn with_batch(mut self, n: usize) -> Replay {
        self.batch = n.max(1);
        self
    }

    /// The stream's header.
    pub fn header(&self) -> &StreamHeader {
        &self.header
    }

    /// Every recorded sample.
    pub fn samples(&self) -> &[RecordedSample] {
        &self.samples
    }

    /// Samples not yet drained.
    pub fn remaining(&self) -> usize {
        self.samples.len() - self.pos
    }

    /// The home node recorded last for the page (4 KiB) holding `addr`, as a live
    /// session would look it up.
    pub fn home_node(&self, addr: u64) -> Option<u32> {
        self.homes.get(&(addr >> PAGE_SHIFT)).copied()
    }

    fn next_batch(&mut self) -> &[RecordedSample] {
        let end = self.pos.saturating_add(self.batch).min(self.samples.len());
        let batch = &self.samples[self.pos..end];
        self.pos = end;
        batch
    }

    /// Like [`Sampler::drain`], with each sample's recorded home node.
    pub fn drain_recorded(&mut self, into: &mut Vec<RecordedSample>) {
        let batch = self.next_batch();
        into.extend_from_slice(batch);
    }
}

impl Sampler for Replay {
    fn drain(&mut self, into: &mut Vec<Sample>) {
        let batch = self.next_batch();
        into.extend(batch.iter().map(|r| r.sample));
    }

    /// Named `replay`: samples delivered so far; the rate and the lost samples of the
    /// recording sampler, when the header has them.
    fn stats(&self) -> SamplerStats {
        let rec = self.header.sampler.as_ref();
        SamplerStats {
            name: "replay".to_owned(),
            samples: self.pos as u64,
            lost: rec.map_or(0, |s| s.lost),
            idle_rounds: 0,
            rate_hz: rec.map_or(0, |s| s.rate_hz),
        }
    }

    /// Marks the replay stopped; later drains still deliver what is left.
    fn stop(&mut self) {
        self.stopped = true;
    }
}

impl Replay {
    /// Truth that [`Sampler::stop`] was called.
    pub fn is_stopped(&self) -> bool {
        self.stopped
    }
}
