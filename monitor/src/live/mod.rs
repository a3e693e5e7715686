//! Live export: the card's counters in a memory-mapped file, as the Opium card was
//! read through mapped memory, with a control area through which a viewer
//! (`rset-top`) may reprogram it.
//!
//! The file lives in `$XDG_RUNTIME_DIR/rset-mon/` (else `/tmp/rset-mon-UID/`), is
//! named `PID.live`, and is created with mode 0600. All numbers are little-endian
//! `u64`s:
//!
//! | offset | field |
//! | --- | --- |
//! | 0 | magic `RSETLIVE` |
//! | 8 | format version ([`LIVE_VERSION`]) |
//! | 16 | `seq`: a seqlock, odd while the writer updates the file |
//! | 24 | `layout`: bumped whenever the filters change (remap the file then) |
//! | 32 | pid of the monitored process |
//! | 40 | nodes |
//! | 48 | filters |
//! | 56 | samples delivered so far |
//! | 64 | samples lost so far |
//! | 72 | sampling rate, Hz |
//! | 80 | total file length |
//! | 128 | control area: `cmd`, `arg0`..`arg2`, `done` (the `seq` of the last command applied), `status` (0 ok, else an error code) |
//! | 192 | filter table: per filter `start`, `size`, `granularity`, `counters offset`, `granules` |
//! | ... | counters: per filter, granule-major, per node `local`, `remote`, `reads`, `writes` |
//!
//! A reader copies what it needs, then checks that `seq` is even and unchanged (else
//! it tries again). To send a command it writes the arguments, then `cmd` last; the
//! session applies it within a publication period and clears `cmd`.
//!
//! Commands: [`CMD_RESET`] (zero the counters), [`CMD_ADD_FILTER`] (`arg0` start,
//! `arg1` size, `arg2` granularity in bytes: a new page- or line-granularity filter,
//! which the sampler starts watching).

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use memmap2::MmapMut;

mod shm;

use self::shm::{map_mut, word};

use crate::card::Card;
use crate::filter::FilterId;
use crate::sample::SamplerStats;

/// The format version.
pub const LIVE_VERSION: u64 = 1;
/// Zero every counter.
pub const CMD_RESET: u64 = 1;
/// Add a filter: `arg0` start, `arg1` size, `arg2` granularity (bytes).
pub const CMD_ADD_FILTER: u64 = 2;
/// `status` after a refused command.
pub const STATUS_REFUSED: u64 = 1;

const MAGIC: &[u8; 8] = b"RSETLIVE";
const OFF_SEQ: usize = 16;
const OFF_LAYOUT: usize = 24;
const CONTROL: usize = 128;
const TABLE: usize = 192;
const ENTRY: usize = 5 * 8;

/// The effective user id, from the `Uid:` line of `/proc/self/status` (its second
/// field); `None` if it cannot be read.
pub(crate) fn effective_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

/// Why the live file could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    /// File system trouble, with the path.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// Not a live file of this version.
    #[error("{path}: not an rset-mon live file (version {LIVE_VERSION})")]
    NotLive {
        /// The file.
        path: PathBuf,
    },
}

/// The directory live files go to.
pub fn live_dir() -> PathBuf {
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d).join("rset-mon"),
        _ => {
            let uid = effective_uid().unwrap_or(0);
            std::env::temp_dir().join(format!("rset-mon-{uid}"))
        }
    }
}

/// The writer side, owned by a session.
pub struct LiveWriter {
    path: PathBuf,
    file: File,
    map: MmapMut,
    layout: u64,
    seq: u64,
    last_cmd_seq: u64,
}

/// A command read from the control area.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Command {
    /// [`CMD_RESET`] or [`CMD_ADD_FILTER`] (or an unknown code).
    pub cmd: u64,
    /// Its arguments.
    pub args: [u64; 3],
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> LiveError + '_ {
    move |source| LiveError::Io {
        path: path.to_owned(),
        source,
    }
}

impl LiveWriter {
    /// Creates `dir/PID.live` (mode 0600) for `card`.
    ///
    /// # Errors
    /// [`LiveError::Io`] naming the path.
    pub fn create(dir: &Path, card: &Card) -> Result<LiveWriter, LiveError> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let path = dir.join(format!("{}.live", std::process::id()));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)
            .map_err(io(&path))?;
        let len = Self::length(card);
        file.set_len(len as u64).map_err(io(&path))?;
        let map = map_mut(&file).map_err(io(&path))?;
        let mut w = LiveWriter {
            path,
            file,
            map,
            layout: 0,
            seq: 0,
            last_cmd_seq: 0,
        };
        w.write_layout(card);
        Ok(w)
    }

    /// Where the file is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn length(card: &Card) -> usize {
        let nodes = card.nodes() as usize;
        let cells: usize = card
            .filters()
            .map(|(id, _)| card.granule_count(id).unwrap_or(0) as usize * nodes * 4)
            .sum();
        TABLE + card.filters().count() * ENTRY + cells * 8
    }

    fn set(&self, off: usize, v: u64) {
        word(&self.map, off).store(v, Ordering::Relaxed);
    }

    /// Rewrites the header and filter table (after the filters changed), growing the
    /// file as needed.
    fn write_layout(&mut self, card: &Card) {
        let len = Self::length(card);
        if self.map.len() < len {
            if self.file.set_len(len as u64).is_err() {
                return;
            }
            match map_mut(&self.file) {
                Ok(m) => self.map = m,
                Err(_) => return,
            }
        }
        self.begin();
        self.map[0..8].copy_from_slice(MAGIC);
        self.set(8, LIVE_VERSION);
        self.layout += 1;
        self.set(OFF_LAYOUT, self.layout);
        self.set(32, u64::from(std::process::id()));
        self.set(40, u64::from(card.nodes()));
        self.set(48, card.filters().count() as u64);
        self.set(80, len as u64);
        let nodes = card.nodes() as usize;
        let mut counters = TABLE + card.filters().count() * ENTRY;
        for (i, (id, spec)) in card.filters().enumerate() {
            let at = TABLE + i * ENTRY;
            let granules = card.granule_count(id).unwrap_or(0);
            self.set(at, spec.start);
            self.set(at + 8, spec.size);
            self.set(at + 16, spec.granularity.bytes());
            self.set(at + 24, counters as u64);
            self.set(at + 32, granules);
            counters += granules as usize * nodes * 4 * 8;
        }
        self.end();
    }

    fn begin(&mut self) {
        self.seq += 1;
        word(&self.map, OFF_SEQ).store(self.seq, Ordering::Release);
    }

    fn end(&mut self) {
        self.seq += 1;
        word(&self.map, OFF_SEQ).store(self.seq, Ordering::Release);
    }

    /// Publishes the card's counters and the sampler's facts.
    pub fn publish(&mut self, card: &Card, stats: &SamplerStats) {
        if card.filters().count() as u64 != word(&self.map, 48).load(Ordering::Relaxed) {
            self.write_layout(card);
        }
        self.begin();
        self.set(56, stats.samples);
        self.set(64, stats.lost);
        self.set(72, stats.rate_hz);
        let nodes = card.nodes();
        for (i, (id, _)) in card.filters().enumerate() {
            let at = TABLE + i * ENTRY;
            let base = word(&self.map, at + 24).load(Ordering::Relaxed) as usize;
            let granules = card.granule_count(id).unwrap_or(0);
            for g in 0..granules {
                for n in 0..nodes {
                    let c = card.counts(id, g, n).unwrap_or_default();
                    let off = base + ((g as usize * nodes as usize + n as usize) * 4) * 8;
                    self.set(off, c.local);
                    self.set(off + 8, c.remote);
                    self.set(off + 16, c.reads);
                    self.set(off + 24, c.writes);
                }
            }
        }
        self.end();
    }

    /// A command a viewer left in the control area, if any (each is returned once).
    pub fn take_command(&mut self) -> Option<Command> {
        let cmd = word(&self.map, CONTROL).load(Ordering::Acquire);
        if cmd == 0 {
            return None;
        }
        let args = [1, 2, 3].map(|i| word(&self.map, CONTROL + 8 * i).load(Ordering::Relaxed));
        self.last_cmd_seq += 1;
        Some(Command { cmd, args })
    }

    /// Reports how a command went and clears it.
    pub fn finish_command(&mut self, ok: bool) {
        self.set(CONTROL + 40, if ok { 0 } else { STATUS_REFUSED });
        self.set(CONTROL + 32, self.last_cmd_seq);
        word(&self.map, CONTROL).store(0, Ordering::Release);
    }
}

impl Drop for LiveWriter {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// One filter's counters as a reader sees them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveFilter {
    /// First byte.
    pub start: u64,
    /// Bytes.
    pub size: u64,
    /// Granule size.
    pub granularity: u64,
    /// Per granule, per node: `[local, remote, reads, writes]`.
    pub counts: Vec<Vec<[u64; 4]>>,
}

/// A consistent copy of a live file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveSnapshot {
    /// The monitored process.
    pub pid: u64,
    /// Nodes.
    pub nodes: u64,
    /// Samples delivered.
    pub samples: u64,
    /// Samples lost.
    pub lost: u64,
    /// Sampling rate, Hz.
    pub rate_hz: u64,
    /// The layout generation.
    pub layout: u64,
    /// The filters.
    pub filters: Vec<LiveFilter>,
}

/// Reads a consistent snapshot of a live file (retrying while the writer is busy).
///
/// # Errors
/// [`LiveError`] naming the path.
pub fn read_live(path: &Path) -> Result<LiveSnapshot, LiveError> {
    let bytes_of = || std::fs::read(path).map_err(io(path));
    for _ in 0..100 {
        let b = bytes_of()?;
        let get = |off: usize| -> Option<u64> {
            b.get(off..off + 8)
                .map(|s| u64::from_le_bytes(s.try_into().expect("8 bytes")))
        };
        if b.len() < TABLE || &b[0..8] != MAGIC || get(8) != Some(LIVE_VERSION) {
            return Err(LiveError::NotLive {
                path: path.to_owned(),
            });
        }
        let seq = get(OFF_SEQ).unwrap_or(1);
        if seq % 2 == 1 {
            std::thread::yield_now();
            continue;
        }
        let parsed = (|| -> Option<LiveSnapshot> {
            let nodes = get(40)?;
            let nfilters = get(48)?;
            let mut filters = Vec::new();
            for i in 0..nfilters.min(1 << 16) as usize {
                let at = TABLE + i * ENTRY;
                let (base, granules) = (get(at + 24)? as usize, get(at + 32)?);
                let mut counts = Vec::new();
                for g in 0..granules.min(1 << 24) as usize {
                    let row = (0..nodes.min(1024) as usize)
                        .map(|n| {
                            let off = base + ((g * nodes as usize + n) * 4) * 8;
                            Some([get(off)?, get(off + 8)?, get(off + 16)?, get(off + 24)?])
                        })
                        .collect::<Option<Vec<_>>>()?;
                    counts.push(row);
                }
                filters.push(LiveFilter {
                    start: get(at)?,
                    size: get(at + 8)?,
                    granularity: get(at + 16)?,
                    counts,
                });
            }
            Some(LiveSnapshot {
                pid: get(32)?,
                nodes,
                samples: get(56)?,
                lost: get(64)?,
                rate_hz: get(72)?,
                layout: get(OFF_LAYOUT)?,
                filters,
            })
        })();
        // A copy taken while the writer worked is torn: the sequence tells.
        let b2 = bytes_of()?;
        let seq2 = b2
            .get(OFF_SEQ..OFF_SEQ + 8)
            .map(|s| u64::from_le_bytes(s.try_into().expect("8 bytes")));
        if Some(seq) == seq2
            && let Some(snap) = parsed
        {
            return Ok(snap);
        }
    }
    Err(LiveError::NotLive {
        path: path.to_owned(),
    })
}

/// Leaves a command in a live file's control area for the session to apply.
///
/// # Errors
/// [`LiveError`] naming the path.
pub fn send_command(path: &Path, cmd: Command) -> Result<(), LiveError> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(io(path))?;
    let map = map_mut(&file).map_err(io(path))?;
    if map.len() < TABLE || &map[0..8] != MAGIC {
        return Err(LiveError::NotLive {
            path: path.to_owned(),
        });
    }
    for (i, a) in cmd.args.iter().enumerate() {
        word(&map, CONTROL + 8 * (i + 1)).store(*a, Ordering::Relaxed);
    }
    word(&map, CONTROL).store(cmd.cmd, Ordering::Release);
    Ok(())
}

/// The filter id a live filter index stands for.
pub fn filter_id(index: usize) -> FilterId {
    FilterId(index as u32)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU64;

    use super::*;
    use crate::filter::FilterSpec;
    use crate::granularity::Granularity;
    use crate::sample::{Access, Sample};

    fn tmpdir() -> PathBuf {
        static N: AtomicU64 = AtomicU64::new(0);
        let d = std::env::temp_dir().join(format!(
            "live-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn sample(addr: u64, node: u32, access: Access) -> Sample {
        Sample {
            addr,
            tid: 1,
            cpu: node,
            node,
            time_ns: 0,
            access,
            source: None,
        }
    }

    #[test]
    fn counters_are_published_and_read_back() {
        let mut card = Card::new(2).unwrap();
        card.program(FilterSpec::new(0x10000, 0x2000, Granularity::PAGE))
            .unwrap();
        card.record(&sample(0x10010, 0, Access::Read), 0);
        card.record(&sample(0x11010, 1, Access::Write), 0);
        card.record(&sample(0x11020, 1, Access::Read), 0);
        let dir = tmpdir();
        let mut w = LiveWriter::create(&dir, &card).unwrap();
        let stats = SamplerStats {
            name: "protect".into(),
            samples: 3,
            lost: 1,
            idle_rounds: 0,
            rate_hz: 100,
        };
        w.publish(&card, &stats);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(w.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let snap = read_live(w.path()).unwrap();
        assert_eq!(
            (snap.nodes, snap.samples, snap.lost, snap.rate_hz),
            (2, 3, 1, 100)
        );
        assert_eq!(snap.pid, u64::from(std::process::id()));
        let f = &snap.filters[0];
        assert_eq!((f.start, f.size, f.granularity), (0x10000, 0x2000, 4096));
        assert_eq!(f.counts[0], vec![[1, 0, 1, 0], [0, 0, 0, 0]]);
        assert_eq!(f.counts[1], vec![[0, 0, 0, 0], [0, 2, 1, 1]]);
    }

    #[test]
    fn commands_travel_through_the_control_area() {
        let mut card = Card::new(1).unwrap();
        card.program(FilterSpec::new(0, 4096, Granularity::PAGE))
            .unwrap();
        let dir = tmpdir();
        let mut w = LiveWriter::create(&dir, &card).unwrap();
        assert_eq!(w.take_command(), None);
        send_command(
            w.path(),
            Command {
                cmd: CMD_ADD_FILTER,
                args: [8192, 4096, 64],
            },
        )
        .unwrap();
        let c = w.take_command().unwrap();
        assert_eq!(c.cmd, CMD_ADD_FILTER);
        assert_eq!(c.args, [8192, 4096, 64]);
        w.finish_command(true);
        assert_eq!(w.take_command(), None);
        // The new layout after a filter is added.
        card.program(FilterSpec::new(8192, 4096, Granularity::LINE))
            .unwrap();
        w.publish(&card, &SamplerStats::default());
        let snap = read_live(w.path()).unwrap();
        assert_eq!(snap.filters.len(), 2);
        assert_eq!(snap.filters[1].counts.len(), 64);
        assert!(snap.layout >= 2);
    }

    #[test]
    fn garbage_is_not_a_live_file() {
        let dir = tmpdir();
        let p = dir.join("junk.live");
        std::fs::write(&p, b"hello").unwrap();
        assert!(matches!(read_live(&p), Err(LiveError::NotLive { .. })));
        assert!(matches!(
            read_live(&dir.join("absent")),
            Err(LiveError::Io { .. })
        ));
    }

    #[test]
    fn the_file_is_removed_when_the_writer_goes() {
        let mut card = Card::new(1).unwrap();
        card.program(FilterSpec::new(0, 4096, Granularity::PAGE))
            .unwrap();
        let dir = tmpdir();
        let w = LiveWriter::create(&dir, &card).unwrap();
        let p = w.path().to_owned();
        assert!(p.exists());
        drop(w);
        assert!(!p.exists());
    }
}
