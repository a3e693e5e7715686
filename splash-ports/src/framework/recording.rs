//! The `--monitor` session of a machine's runs: started with the first run, one
//! filter per shared array (or the hot granules of a previous session), stopped
//! and saved by [`Machine::finish`](super::Machine::finish).

use std::path::PathBuf;
use std::sync::Mutex;

use monitor::session::Session;
use monitor::{FilterSpec, Granularity, Report, SessionFile};
use rset::Topology;

use super::config::{RunConfig, monitor_options};
use super::error::SplashError;
use crate::refine::{ArrayRange, ZoomPlan};

/// A shared array as the monitor watches it: label, first byte, bytes mapped.
pub(super) type Watched = (String, usize, usize);

/// The session of a `--monitor` run, if any.
pub(super) struct Recorder {
    pub(super) path: Option<PathBuf>,
    granularity: Granularity,
    zoom: Option<(PathBuf, ZoomPlan)>,
    session: Mutex<Option<Session>>,
}

impl Recorder {
    /// Reads `cfg`'s monitor flags; a zoom's previous session is read and planned
    /// here, so that a bad one is refused before the program runs.
    pub(super) fn new(cfg: &RunConfig) -> Result<Recorder, SplashError> {
        let zoom = match &cfg.monitor_zoom {
            None => None,
            Some(_) if cfg.monitor.is_none() => {
                return Err(SplashError::Usage(
                    "--monitor-zoom needs --monitor FILE for the zoomed run's session".into(),
                ));
            }
            Some(z) => {
                let previous =
                    SessionFile::load(&z.previous).map_err(|source| SplashError::SessionFile {
                        flag: "--monitor-zoom",
                        path: z.previous.clone(),
                        source,
                    })?;
                let next = cfg.monitor_granularity.unwrap_or(Granularity::LINE);
                let plan =
                    ZoomPlan::new(&previous, z.top, next).map_err(|source| SplashError::Zoom {
                        path: z.previous.clone(),
                        source,
                    })?;
                Some((z.previous.clone(), plan))
            }
        };
        Ok(Recorder {
            path: cfg.monitor.clone(),
            granularity: cfg.monitor_granularity.unwrap_or(if zoom.is_some() {
                Granularity::LINE
            } else {
                Granularity::PAGE
            }),
            zoom,
            session: Mutex::new(None),
        })
    }

    /// Starts the session over `arrays` unless it runs already (or there is none).
    pub(super) fn start(&self, arrays: &[Watched]) -> Result<(), SplashError> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let mut session = self.session.lock().unwrap_or_else(|p| p.into_inner());
        if session.is_some() {
            return Ok(());
        }
        if arrays.is_empty() {
            return Err(SplashError::NothingToMonitor(path.clone()));
        }
        let opts = monitor_options();
        let mut b = Session::builder()
            .rate_hz(opts.rate_hz)
            .max_overhead(opts.max_overhead);
        let filters = match &self.zoom {
            None => arrays
                .iter()
                .map(|(label, addr, bytes)| {
                    FilterSpec::new(*addr as u64, *bytes as u64, self.granularity).name(label)
                })
                .collect(),
            Some((previous, plan)) => {
                let here: Vec<ArrayRange> = arrays
                    .iter()
                    .map(|(label, addr, bytes)| ArrayRange {
                        label: label.clone(),
                        start: *addr as u64,
                        bytes: *bytes as u64,
                    })
                    .collect();
                plan.filters(&here).map_err(|source| SplashError::Zoom {
                    path: previous.clone(),
                    source,
                })?
            }
        };
        for f in filters {
            b = b.filter(f);
        }
        let started = b
            .labels_from_registry()
            .start()
            .map_err(|source| SplashError::Monitor {
                path: path.clone(),
                source,
            })?;
        *session = Some(started);
        Ok(())
    }

    /// Stops the session and writes its file (see [`super::Machine::finish`]).
    pub(super) fn finish(self, topo: &Topology) -> Result<(), SplashError> {
        let Some(path) = self.path.clone() else {
            return Ok(());
        };
        let session = self
            .session
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        let Some(session) = session else {
            return Err(SplashError::NothingToMonitor(path));
        };
        let err = |source| SplashError::Monitor {
            path: path.clone(),
            source,
        };
        let done = session.stop().map_err(err)?;
        let distances = distances(topo);
        let file = match distances {
            Some(d) => done.file.with_distances(d),
            None => done.file,
        };
        file.save(&path)
            .map_err(|source| SplashError::SessionFile {
                flag: "--monitor",
                path: path.clone(),
                source,
            })?;
        let lines = lines_path(&path);
        if self.granularity < Granularity::PAGE {
            let report = Report::from_session(&file);
            std::fs::write(&lines, crate::refine::lines_text(&report)).map_err(|source| {
                SplashError::SessionFile {
                    flag: "--monitor",
                    path: path.clone(),
                    source: monitor::SessionError::Io {
                        path: lines.clone(),
                        source,
                    },
                }
            })?;
        } else {
            // A page-granular run has no line verdicts: none of an earlier run stays.
            let _ = std::fs::remove_file(&lines);
        }
        Ok(())
    }
}

/// Where a session at finer than page granularity keeps its line verdicts: the
/// session file's name with `.lines` added.
pub fn lines_path(session: &std::path::Path) -> PathBuf {
    let mut name = session.as_os_str().to_owned();
    name.push(".lines");
    PathBuf::from(name)
}

/// The node distance matrix by node id, when the ids are `0..N`.
fn distances(topo: &Topology) -> Option<Vec<Vec<u32>>> {
    let nodes = topo.nodes();
    if nodes.iter().enumerate().any(|(i, n)| n.id.0 as usize != i) {
        return None;
    }
    Some(
        nodes
            .iter()
            .map(|n| n.distances.iter().map(|&d| d as u32).collect())
            .collect(),
    )
}
