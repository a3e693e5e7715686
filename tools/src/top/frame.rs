//! One reading of the monitor's counters, whatever it came from: a live file
//! ([`monitor::live`]) or a saved session ([`monitor::SessionFile`]).

use std::path::{Path, PathBuf};

use monitor::SessionFile;
use monitor::live::{self, LiveSnapshot};

/// Counts of one granule (or region) from one accessing node.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// References the node's own memory served.
    pub local: u64,
    /// References another node served.
    pub remote: u64,
    /// Loads (and references of unknown type).
    pub reads: u64,
    /// Stores.
    pub writes: u64,
}

impl Counts {
    /// Every reference.
    pub fn total(&self) -> u64 {
        self.reads.saturating_add(self.writes)
    }

    /// Adds `o` in.
    pub fn add(&mut self, o: &Counts) {
        self.local += o.local;
        self.remote += o.remote;
        self.reads += o.reads;
        self.writes += o.writes;
    }

    /// Remote share of the references whose home was known (0 with none).
    pub fn remote_share(&self) -> f64 {
        let known = self.local + self.remote;
        if known == 0 {
            0.0
        } else {
            self.remote as f64 / known as f64
        }
    }
}

/// A granule with at least one reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Granule {
    /// Its index in the region (offset / granularity).
    pub index: u64,
    /// Counts per accessing node (indexed by node).
    pub by_node: Vec<Counts>,
    /// The sum of `by_node`, kept (sorting 100,000 granules asks for it often).
    all: Counts,
}

impl Granule {
    /// A granule with these counts.
    pub fn new(index: u64, by_node: Vec<Counts>) -> Granule {
        let mut all = Counts::default();
        by_node.iter().for_each(|n| all.add(n));
        Granule {
            index,
            by_node,
            all,
        }
    }

    /// The counts of every node together.
    pub fn all(&self) -> Counts {
        self.all
    }
}

/// A monitored data area.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Region {
    /// Its name: the filter's, the label covering it, or its address.
    pub name: String,
    /// First byte.
    pub start: u64,
    /// Bytes.
    pub size: u64,
    /// Granule size, bytes.
    pub granularity: u64,
    /// The granules with references, in address order.
    pub granules: Vec<Granule>,
}

impl Region {
    /// Granules in the region.
    pub fn granule_count(&self) -> u64 {
        self.size.div_ceil(self.granularity.max(1))
    }

    /// Counts per accessing node, over every granule.
    pub fn by_node(&self, nodes: usize) -> Vec<Counts> {
        let mut v = vec![Counts::default(); nodes];
        for g in &self.granules {
            for (n, c) in g.by_node.iter().enumerate().take(nodes) {
                v[n].add(c);
            }
        }
        v
    }

    /// Counts of every node together.
    pub fn all(&self) -> Counts {
        let mut c = Counts::default();
        self.granules.iter().for_each(|g| c.add(&g.all));
        c
    }

    /// Identity across frames: where it is and how finely it is counted.
    pub fn key(&self) -> (u64, u64, u64) {
        (self.start, self.size, self.granularity)
    }
}

/// A reading of the counters.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    /// The monitored process (0 for a session file, which does not say).
    pub pid: u64,
    /// Nodes the counters distinguish.
    pub nodes: usize,
    /// Samples delivered so far.
    pub samples: u64,
    /// Samples lost so far.
    pub lost: u64,
    /// The sampling rate asked for, Hz.
    pub rate_hz: u64,
    /// The monitor's name for its sampler, when known.
    pub sampler: Option<String>,
    /// The regions, in the monitor's order.
    pub regions: Vec<Region>,
}

/// Names filters that have none: a filter inside a named one (a refinement the
/// viewer asked for) is `parent+0xOFF`, any other its start address.
fn name_unnamed(regions: &mut [Region], names: &[Option<String>]) {
    for i in 0..regions.len() {
        if names[i].is_some() {
            continue;
        }
        let (start, end) = (regions[i].start, regions[i].start + regions[i].size);
        let parent = (0..regions.len()).find(|&j| {
            j != i
                && names[j].is_some()
                && regions[j].start <= start
                && end <= regions[j].start + regions[j].size
        });
        regions[i].name = match parent {
            Some(j) => format!(
                "{}+{:#x}",
                names[j].as_deref().unwrap_or(""),
                start - regions[j].start
            ),
            None => format!("{start:#x}"),
        };
    }
}

impl Frame {
    /// The frame a live snapshot holds.
    pub fn from_live(s: &LiveSnapshot) -> Frame {
        let nodes = s.nodes as usize;
        let names: Vec<Option<String>> = s.filters.iter().map(|f| f.name.clone()).collect();
        let mut regions: Vec<Region> = s
            .filters
            .iter()
            .map(|f| Region {
                name: f.name.clone().unwrap_or_default(),
                start: f.start,
                size: f.size,
                granularity: f.granularity,
                granules: f
                    .counts
                    .iter()
                    .enumerate()
                    .filter(|(_, row)| row.iter().any(|c| c[2] + c[3] > 0))
                    .map(|(i, row)| {
                        let by_node = row
                            .iter()
                            .map(|c| Counts {
                                local: c[0],
                                remote: c[1],
                                reads: c[2],
                                writes: c[3],
                            })
                            .collect();
                        Granule::new(i as u64, by_node)
                    })
                    .collect(),
            })
            .collect();
        name_unnamed(&mut regions, &names);
        Frame {
            pid: s.pid,
            nodes,
            samples: s.samples,
            lost: s.lost,
            rate_hz: s.rate_hz,
            sampler: None,
            regions,
        }
    }

    /// The frame of a saved session: its final counts.
    pub fn from_session(f: &SessionFile) -> Frame {
        let nodes = f.machine.nodes as usize;
        let label_of = |start: u64, size: u64| {
            f.labels
                .iter()
                .find(|l| l.start <= start && start + size <= l.end())
                .map(|l| l.name.clone())
        };
        let names: Vec<Option<String>> = f
            .filters
            .iter()
            .map(|fc| {
                fc.spec
                    .name
                    .clone()
                    .or_else(|| label_of(fc.spec.start, fc.spec.size))
            })
            .collect();
        let mut regions: Vec<Region> = f
            .filters
            .iter()
            .zip(&names)
            .map(|(fc, name)| {
                let gran = fc.spec.granularity.bytes();
                let mut granules: Vec<Granule> = fc
                    .granules
                    .iter()
                    .map(|g| {
                        let mut by_node = vec![Counts::default(); nodes];
                        for (&n, c) in &g.by_node {
                            if let Some(slot) = by_node.get_mut(n as usize) {
                                *slot = Counts {
                                    local: c.local,
                                    remote: c.remote,
                                    reads: c.reads,
                                    writes: c.writes,
                                };
                            }
                        }
                        Granule::new(g.offset / gran.max(1), by_node)
                    })
                    .filter(|g| g.all().total() > 0)
                    .collect();
                granules.sort_by_key(|g| g.index);
                Region {
                    name: name.clone().unwrap_or_default(),
                    start: fc.spec.start,
                    size: fc.spec.size,
                    granularity: gran,
                    granules,
                }
            })
            .collect();
        name_unnamed(&mut regions, &names);
        Frame {
            pid: 0,
            nodes,
            samples: f.sampler.samples,
            lost: f.sampler.lost,
            rate_hz: f.sampler.rate_hz,
            sampler: Some(f.sampler.name.clone()).filter(|n| !n.is_empty()),
            regions,
        }
    }

    /// Counts per accessing node over every region.
    pub fn by_node(&self) -> Vec<Counts> {
        let mut v = vec![Counts::default(); self.nodes];
        for r in &self.regions {
            for (n, c) in r.by_node(self.nodes).iter().enumerate() {
                v[n].add(c);
            }
        }
        v
    }
}

/// Where the counters come from.
#[derive(Debug, Clone)]
pub enum Source {
    /// A running session's live file.
    Live {
        /// The file.
        path: PathBuf,
    },
    /// A saved session, played back.
    Replay {
        /// The file it came from.
        path: PathBuf,
        /// The session, as frames over time.
        replay: Replayed,
    },
}

/// A saved session as frames: one per point of its timeline (the counts as they
/// stood a second, two, … into the run), then its final counts. Frames are built
/// when shown, so a long run of many granules costs one frame's memory.
#[derive(Debug, Clone)]
pub struct Replayed {
    file: Box<SessionFile>,
}

impl Replayed {
    /// Frames of `file`.
    pub fn new(file: SessionFile) -> Replayed {
        Replayed {
            file: Box::new(file),
        }
    }

    /// How many frames: the timeline's points and the final counts (never zero).
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> usize {
        self.file.timeline.len() + 1
    }

    /// Milliseconds into the run of frame `k`; `None` for the final counts.
    pub fn at_ms(&self, k: usize) -> Option<u64> {
        self.file.timeline.get(k).map(|p| p.at_ms)
    }

    /// Frame `k` (the final counts from `len() - 1` on).
    pub fn frame(&self, k: usize) -> Frame {
        if k + 1 >= self.len() {
            return Frame::from_session(&self.file);
        }
        // What a frame reads of the file, without copying its timeline or counts.
        let f = &self.file;
        let then = SessionFile {
            format: String::new(),
            version: f.version,
            machine: f.machine.clone(),
            sampler: f.sampler.clone(),
            card: f.card,
            filters: monitor::timeline::counts_at(&f.timeline, k),
            secondaries: Vec::new(),
            labels: f.labels.clone(),
            mappings: f.mappings.clone(),
            timeline: Vec::new(),
        };
        Frame::from_session(&then)
    }
}

/// Why no frame could be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadError {
    /// The live file is gone (the session ended).
    Gone,
    /// The file is there but not readable as a live file (truncated, another
    /// version, being rewritten): the message says which.
    Unreadable(String),
}

impl Source {
    /// Reads the live file now (a replay has nothing new).
    pub fn read(&self) -> Result<Option<Frame>, ReadError> {
        match self {
            Source::Live { path } => match live::read_live(path) {
                Ok(s) => Ok(Some(Frame::from_live(&s))),
                Err(live::LiveError::Io { source, .. })
                    if source.kind() == std::io::ErrorKind::NotFound =>
                {
                    Err(ReadError::Gone)
                }
                Err(e) => Err(ReadError::Unreadable(e.to_string())),
            },
            Source::Replay { .. } => Ok(None),
        }
    }

    /// What the title bar names.
    pub fn describe(&self) -> String {
        match self {
            Source::Live { path } => path.display().to_string(),
            Source::Replay { path, .. } => format!("replay of {}", path.display()),
        }
    }
}

/// A live session found in the runtime directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// Its process.
    pub pid: u32,
    /// Its live file.
    pub path: PathBuf,
    /// The process's name (`/proc/PID/comm`), if it still runs.
    pub comm: Option<String>,
}

/// The live files in `dir`, by pid.
pub fn discover(dir: &Path) -> Vec<Found> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found: Vec<Found> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name();
            let pid: u32 = name.to_str()?.strip_suffix(".live")?.parse().ok()?;
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .ok()
                .map(|c| c.trim().to_string());
            Some(Found {
                pid,
                path: e.path(),
                comm,
            })
        })
        .collect();
    found.sort_by_key(|f| f.pid);
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use monitor::sample::{Access, Sample, SamplerStats};
    use monitor::{Card, FilterSpec, Granularity};

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
    fn live_and_saved_sessions_give_the_same_frame() {
        let mut card = Card::new(2).unwrap();
        card.program(FilterSpec::new(0x10000, 0x3000, Granularity::PAGE).name("grid"))
            .unwrap();
        card.program(FilterSpec::new(0x11000, 0x1000, Granularity::LINE))
            .unwrap();
        card.record(&sample(0x10010, 0, Access::Read), 0);
        card.record(&sample(0x11010, 1, Access::Write), 0);
        card.record(&sample(0x11010, 1, Access::Read), 0);
        let dir = std::env::temp_dir().join(format!("top-frame-{}", std::process::id()));
        let mut w = monitor::live::LiveWriter::create(&dir, &card).unwrap();
        w.publish(&card, &SamplerStats::default());
        let live = Frame::from_live(&monitor::live::read_live(w.path()).unwrap());
        let saved = Frame::from_session(&SessionFile::from_card(&card, SamplerStats::default()));
        assert_eq!(live.regions, saved.regions);
        let grid = &live.regions[0];
        assert_eq!(grid.name, "grid");
        assert_eq!(grid.granules.len(), 2);
        assert_eq!(grid.granules[1].index, 1);
        assert_eq!(
            grid.granules[1].by_node[1],
            Counts {
                local: 0,
                remote: 2,
                reads: 1,
                writes: 1
            }
        );
        assert_eq!(grid.all().remote_share(), 2.0 / 3.0);
        // The unnamed line filter inside it is named after it.
        assert_eq!(live.regions[1].name, "grid+0x1000");
        assert_eq!(live.regions[1].granules[0].index, 0);
        assert_eq!(live.by_node()[1].total(), 4);
        assert_eq!(discover(&dir)[0].pid, std::process::id());
    }

    #[test]
    fn a_replay_moves_through_the_timeline_to_the_final_counts() {
        let mut card = Card::new(2).unwrap();
        card.program(FilterSpec::new(0x10000, 0x3000, Granularity::PAGE).name("grid"))
            .unwrap();
        let mut timeline = monitor::Timeline::new();
        card.record(&sample(0x10010, 0, Access::Read), 0);
        timeline.take(1000, &card.filter_counts());
        card.record(&sample(0x11010, 1, Access::Read), 0);
        card.record(&sample(0x12010, 1, Access::Write), 0);
        timeline.take(2000, &card.filter_counts());
        card.record(&sample(0x12010, 0, Access::Read), 0);
        let file = SessionFile::from_card(&card, SamplerStats::default())
            .with_timeline(timeline.into_points());
        let replay = Replayed::new(file.clone());
        assert_eq!(replay.len(), 3);
        assert_eq!(
            (replay.at_ms(0), replay.at_ms(1), replay.at_ms(2)),
            (Some(1000), Some(2000), None)
        );
        let refs = |k: usize| {
            let f = replay.frame(k);
            (
                f.regions[0].granules.len(),
                f.by_node()[0].total(),
                f.by_node()[1].total(),
            )
        };
        // One reference from node 0, then two from node 1, then one more from node 0.
        assert_eq!(refs(0), (1, 1, 0));
        assert_eq!(refs(1), (3, 1, 2));
        assert_eq!(refs(2), (3, 2, 2));
        assert_eq!(replay.frame(2).regions, Frame::from_session(&file).regions);
        assert_eq!(replay.frame(1).regions[0].name, "grid");
    }
}
