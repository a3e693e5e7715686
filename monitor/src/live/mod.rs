//! Live export: the card's counters in a memory-mapped file, as the Opium card was
//! read through mapped memory, with a control area through which a viewer
//! (`rset-top`) may reprogram it.
//!
//! The file lives in `$XDG_RUNTIME_DIR/rset-mon/` (else `/tmp/rset-mon-UID/`, mode
//! 0700), is named `PID.live`, and is created with mode 0600 under a temporary name
//! (`O_EXCL | O_NOFOLLOW`), then renamed into place. All numbers are little-endian
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
//! | 88 | offset of the name table |
//! | 128 | control area: `cmd`, `arg0`..`arg2`, `done` (the `seq` of the last command applied), `status` (0 ok, else an error code) |
//! | 192 | filter table: per filter `start`, `size`, `granularity`, `counters offset`, `granules` |
//! | ... | name table: per filter 64 bytes, its name in UTF-8 padded with NULs (empty: none) |
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
pub const LIVE_VERSION: u64 = 2;
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
const OFF_NAMES: usize = 88;
/// Bytes of a filter's name in the name table.
pub const NAME_BYTES: usize = 64;

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

/// Creates `dir` (mode 0700) if it is missing; refuses a symbolic link or a
/// directory another user owns, where a live file could be swapped for a link.
fn private_dir(dir: &Path) -> Result<(), LiveError> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    if let Some(parent) = dir.parent() {
        std::fs::create_dir_all(parent).map_err(io(parent))?;
    }
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => {
            return Err(LiveError::Io {
                path: dir.to_owned(),
                source: e,
            });
        }
    }
    let m = std::fs::symlink_metadata(dir).map_err(io(dir))?;
    let unsafe_dir = |why: &str| LiveError::Io {
        path: dir.to_owned(),
        source: std::io::Error::new(std::io::ErrorKind::PermissionDenied, why.to_string()),
    };
    if !m.is_dir() {
        return Err(unsafe_dir(
            "not a directory (a symbolic link?); refusing to write there",
        ));
    }
    if effective_uid().is_some_and(|uid| uid != m.uid()) {
        return Err(unsafe_dir("owned by another user; refusing to write there"));
    }
    Ok(())
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character.
fn truncated(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
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
        private_dir(dir)?;
        let path = dir.join(format!("{}.live", std::process::id()));
        let tmp = dir.join(format!(".{}.live.new", std::process::id()));
        // A file left by an earlier process of the same pid, never a link.
        let _ = std::fs::remove_file(&tmp);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .custom_flags(libc::O_NOFOLLOW)
            .mode(0o600)
            .open(&tmp)
            .map_err(io(&tmp))?;
        let len = Self::length(card);
        let ready = file
            .set_len(len as u64)
            .and_then(|()| map_mut(&file))
            .map_err(io(&tmp));
        let map = match ready {
            Ok(m) => m,
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(e);
            }
        };
        let mut w = LiveWriter {
            path,
            file,
            map,
            layout: 0,
            seq: 0,
            last_cmd_seq: 0,
        };
        w.write_layout(card);
        if let Err(e) = std::fs::rename(&tmp, &w.path) {
            let _ = std::fs::remove_file(&tmp);
            return Err(LiveError::Io {
                path: w.path.clone(),
                source: e,
            });
        }
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
        TABLE + card.filters().count() * (ENTRY + NAME_BYTES) + cells * 8
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
        let names = TABLE + card.filters().count() * ENTRY;
        self.set(OFF_NAMES, names as u64);
        let mut counters = names + card.filters().count() * NAME_BYTES;
        for (i, (id, spec)) in card.filters().enumerate() {
            let slot = &mut self.map[names + i * NAME_BYTES..names + (i + 1) * NAME_BYTES];
            slot.fill(0);
            let name = truncated(spec.name.as_deref().unwrap_or(""), NAME_BYTES);
            slot[..name.len()].copy_from_slice(name.as_bytes());
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
    /// Its name (the filter spec's, at most [`NAME_BYTES`] bytes), if it has one.
    pub name: Option<String>,
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
    use std::os::unix::fs::FileExt;
    let file = File::open(path).map_err(io(path))?;
    let seq_now = || -> Option<u64> {
        let mut w = [0u8; 8];
        file.read_exact_at(&mut w, OFF_SEQ as u64).ok()?;
        Some(u64::from_le_bytes(w))
    };
    let not_live = || LiveError::NotLive {
        path: path.to_owned(),
    };
    let mut b = Vec::new();
    for _ in 0..100 {
        b.clear();
        let len = file.metadata().map_err(io(path))?.len() as usize;
        b.resize(len, 0);
        let n = read_all_at(&file, &mut b).map_err(io(path))?;
        b.truncate(n);
        if b.len() < TABLE || &b[0..8] != MAGIC || word_at(&b, 8) != Some(LIVE_VERSION) {
            return Err(not_live());
        }
        let seq = word_at(&b, OFF_SEQ).unwrap_or(1);
        if seq % 2 == 1 {
            std::thread::yield_now();
            continue;
        }
        let parsed = parse(&b);
        // A copy taken while the writer worked is torn: the sequence tells.
        if seq_now() == Some(seq)
            && let Some(snap) = parsed
        {
            return Ok(snap);
        }
        std::thread::yield_now();
    }
    Err(not_live())
}

/// Reads from offset 0 until `buf` is full or the file ends; the bytes read.
fn read_all_at(file: &File, buf: &mut [u8]) -> std::io::Result<usize> {
    use std::os::unix::fs::FileExt;
    let mut at = 0;
    while at < buf.len() {
        match file.read_at(&mut buf[at..], at as u64) {
            Ok(0) => break,
            Ok(n) => at += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(at)
}

fn word_at(b: &[u8], off: usize) -> Option<u64> {
    b.get(off..off.checked_add(8)?)
        .map(|s| u64::from_le_bytes(s.try_into().expect("8 bytes")))
}

/// The snapshot in a copy of the file, `None` if it does not hold together (a torn
/// or truncated copy, or not one of ours).
fn parse(b: &[u8]) -> Option<LiveSnapshot> {
    let get = |off: usize| word_at(b, off);
    let nodes = get(40)?;
    if nodes == 0 || nodes > 1024 {
        return None;
    }
    let nfilters = usize::try_from(get(48)?).ok()?;
    if nfilters > 1 << 16 {
        return None;
    }
    let names = usize::try_from(get(OFF_NAMES)?).ok()?;
    let mut filters = Vec::with_capacity(nfilters);
    for i in 0..nfilters {
        let at = TABLE + i * ENTRY;
        let base = usize::try_from(get(at + 24)?).ok()?;
        let granules = usize::try_from(get(at + 32)?).ok()?;
        let row = nodes as usize * 32;
        let cells = b.get(base..base.checked_add(granules.checked_mul(row)?)?)?;
        let counts = cells
            .chunks_exact(row)
            .map(|g| {
                g.chunks_exact(32)
                    .map(|c| std::array::from_fn(|k| word_at(c, k * 8).unwrap_or(0)))
                    .collect()
            })
            .collect();
        let raw = b.get(names + i * NAME_BYTES..names + (i + 1) * NAME_BYTES)?;
        let name = raw.split(|&c| c == 0).next().unwrap_or(&[]);
        let name = std::str::from_utf8(name).ok()?;
        filters.push(LiveFilter {
            name: (!name.is_empty()).then(|| name.to_string()),
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
        assert_eq!(f.name, None);
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
        card.program(FilterSpec::new(8192, 4096, Granularity::LINE).name("hot line"))
            .unwrap();
        w.publish(&card, &SamplerStats::default());
        let snap = read_live(w.path()).unwrap();
        assert_eq!(snap.filters.len(), 2);
        assert_eq!(snap.filters[1].name.as_deref(), Some("hot line"));
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
    fn a_link_in_the_files_place_is_replaced_not_followed() {
        let mut card = Card::new(1).unwrap();
        let long = "é".repeat(40); // 80 bytes: cut at a character, within 64
        card.program(FilterSpec::new(0, 4096, Granularity::PAGE).name(long.clone()))
            .unwrap();
        let dir = tmpdir();
        let victim = dir.join("victim");
        std::fs::write(&victim, b"precious").unwrap();
        let at = dir.join(format!("{}.live", std::process::id()));
        std::os::unix::fs::symlink(&victim, &at).unwrap();
        let w = LiveWriter::create(&dir, &card).unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
        assert!(std::fs::symlink_metadata(&at).unwrap().is_file());
        let snap = read_live(w.path()).unwrap();
        assert_eq!(snap.filters[0].name.as_deref(), Some(&long[..64]));
        // A directory that is a link is refused, naming it.
        let link = dir.join("linkdir");
        std::os::unix::fs::symlink(&dir, &link).unwrap();
        let e = LiveWriter::create(&link, &card).err().unwrap().to_string();
        assert!(
            e.contains("linkdir") && e.contains("not a directory"),
            "{e}"
        );
    }

    #[test]
    fn a_truncated_file_is_not_live_and_does_not_panic() {
        let mut card = Card::new(2).unwrap();
        card.program(FilterSpec::new(0, 1 << 20, Granularity::LINE))
            .unwrap();
        let dir = tmpdir();
        let w = LiveWriter::create(&dir, &card).unwrap();
        let whole = std::fs::read(w.path()).unwrap();
        let copy = dir.join("copy.live");
        for cut in [TABLE, TABLE + 8, whole.len() / 2, whole.len() - 1] {
            std::fs::write(&copy, &whole[..cut]).unwrap();
            assert!(
                matches!(read_live(&copy), Err(LiveError::NotLive { .. })),
                "cut at {cut}"
            );
        }
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
