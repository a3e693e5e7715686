//! Successive refinement across runs of a splash program, and the orig-vs-reorg
//! comparison of the paper's Table 2.
//!
//! # Zooming from one run into the next
//!
//! The paper's method (section 6): count every shared array at page granularity,
//! then program the next measurement only over the hottest pages, at cache-line
//! granularity. A splash program's arrays are mapped afresh by every run, at other
//! addresses, so a plan made from one run's session ([`monitor::plan_next_round`])
//! is carried to the next run by array *label*: a planned filter at offset `o` of
//! array `fft3d.a` in the previous run watches offset `o` of `fft3d.a` in this run.
//! The previous run's array starts come from its session's labels (the
//! alloc-policies registry's regions, which the framework's sessions record);
//! [`zoom_filters`] does the translation and checks that the arrays match (same
//! label, same size: the same program with the same flags).
//!
//! # Orig vs reorg
//!
//! [`Tally`] sums the sampled references of one or more sessions of a layout;
//! [`Reduction`] compares two tallies. Both runs of a comparison run the same
//! program with the same flags, so they make the same references; the share of
//! sampled references that were remote, times that common total, is the number of
//! remote references, and the ratio of the two shares is the ratio of the remote
//! references. Its 95% interval is the usual one for a ratio of two binomial
//! proportions, on the log scale (Katz et al., 1978).

use std::collections::BTreeMap;
use std::fmt;

use monitor::refine::verdicts_text;
use monitor::report::RegionReport;
use monitor::{FilterSpec, Granularity, Report, SessionFile, line_verdicts, plan_next_round};

/// One shared array of a run, as the monitor sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArrayRange {
    /// Its label (`fft3d.a`).
    pub label: String,
    /// Its first byte.
    pub start: u64,
    /// Its mapped bytes (whole pages, as the registry records them).
    pub bytes: u64,
}

/// Why a zoomed run cannot be planned from a previous run's session.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ZoomError {
    /// Zero granules to keep.
    #[error("--monitor-top 0: keep at least one granule")]
    KeepNone,
    /// The previous run counted no remote reference: there is no hot granule.
    #[error(
        "no granule had a remote reference (a one-node machine, or a layout with nothing left to fix): nothing to zoom into"
    )]
    NothingHot,
    /// The next granularity is not finer than the previous run's.
    #[error(
        "--monitor-granularity {next} B is not finer than the previous run's {previous} B granules of `{label}`"
    )]
    NotFiner {
        /// The array.
        label: String,
        /// The previous run's granule size, bytes.
        previous: u64,
        /// The requested one.
        next: u64,
    },
    /// A hot range of the previous run lies in no labelled array of it.
    #[error("the hot range at {addr:#x} of the previous run lies in no array labelled `{label}`")]
    Unlabelled {
        /// The filter's name in the previous run.
        label: String,
        /// Its first byte there.
        addr: u64,
    },
    /// This run made no array of that label.
    #[error(
        "the previous run's array `{0}` is not made by this run (another program, or other flags?)"
    )]
    MissingArray(String),
    /// Two arrays of this run carry the label.
    #[error("two arrays of this run are labelled `{0}`: cannot tell which one to watch")]
    Ambiguous(String),
    /// The array has another size than in the previous run.
    #[error(
        "array `{label}` is {here} bytes in this run but was {before} bytes in the previous one: run the same program with the same flags"
    )]
    SizeChanged {
        /// The array.
        label: String,
        /// Its mapped bytes here.
        here: u64,
        /// Its mapped bytes in the previous run.
        before: u64,
    },
}

/// A zoom planned from a previous run's session: the ranges to watch, each as an
/// offset into an array named by its label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoomPlan {
    ranges: Vec<PlannedRange>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct PlannedRange {
    /// The filter, at the previous run's address.
    spec: FilterSpec,
    label: String,
    offset: u64,
    /// The array's mapped bytes in the previous run.
    array_bytes: u64,
}

impl ZoomPlan {
    /// Plans the zoom: the `top` granules of `previous` with the most remote
    /// references, at granularity `next` (adjacent ones merged, as
    /// [`monitor::plan_next_round`] plans them), each located in its labelled array.
    ///
    /// # Errors
    /// [`ZoomError::KeepNone`], [`ZoomError::NothingHot`], [`ZoomError::NotFiner`],
    /// [`ZoomError::Unlabelled`].
    pub fn new(
        previous: &SessionFile,
        top: usize,
        next: Granularity,
    ) -> Result<ZoomPlan, ZoomError> {
        if top == 0 {
            return Err(ZoomError::KeepNone);
        }
        let report = Report::from_session(previous);
        let plan = plan_next_round(&report, top, next);
        if plan.is_empty() {
            return Err(ZoomError::NothingHot);
        }
        let mut ranges = Vec::with_capacity(plan.len());
        for spec in plan {
            let label = spec.name.clone().unwrap_or_default();
            if let Some(parent) = region_at(&report.regions, spec.start) {
                if next >= parent.granularity {
                    return Err(ZoomError::NotFiner {
                        label,
                        previous: parent.granularity.bytes(),
                        next: next.bytes(),
                    });
                }
            }
            let array = previous
                .labels
                .iter()
                .filter(|l| l.name == label && l.start <= spec.start && spec.start < l.end())
                .min_by_key(|l| l.size)
                .ok_or_else(|| ZoomError::Unlabelled {
                    label: label.clone(),
                    addr: spec.start,
                })?;
            ranges.push(PlannedRange {
                offset: spec.start - array.start,
                array_bytes: array.size,
                label,
                spec,
            });
        }
        Ok(ZoomPlan { ranges })
    }

    /// Ranges planned (after merging adjacent granules).
    pub fn len(&self) -> usize {
        self.ranges.len()
    }

    /// Truth that nothing is planned (never: [`ZoomPlan::new`] refuses that).
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// The filters over this run's `arrays`: each planned range at the same offset
    /// of the array of the same label, named by the label, sorted by address.
    ///
    /// # Errors
    /// [`ZoomError::MissingArray`], [`ZoomError::Ambiguous`],
    /// [`ZoomError::SizeChanged`], naming the array.
    pub fn filters(&self, arrays: &[ArrayRange]) -> Result<Vec<FilterSpec>, ZoomError> {
        let mut out = Vec::with_capacity(self.ranges.len());
        for r in &self.ranges {
            let mut here = arrays.iter().filter(|a| a.label == r.label);
            let array = here
                .next()
                .ok_or_else(|| ZoomError::MissingArray(r.label.clone()))?;
            if here.next().is_some() {
                return Err(ZoomError::Ambiguous(r.label.clone()));
            }
            if array.bytes != r.array_bytes {
                return Err(ZoomError::SizeChanged {
                    label: r.label.clone(),
                    here: array.bytes,
                    before: r.array_bytes,
                });
            }
            let mut moved = r.spec.clone();
            moved.start = array.start + r.offset;
            // Same size and offset in an array of the same size: inside it.
            moved.size = r.spec.size.min(array.bytes - r.offset);
            out.push(moved);
        }
        out.sort_by_key(|s| (s.start, s.size));
        Ok(out)
    }
}

/// The filters of a zoomed run in one step: [`ZoomPlan::new`] then
/// [`ZoomPlan::filters`].
///
/// # Errors
/// Theirs.
pub fn zoom_filters(
    previous: &SessionFile,
    top: usize,
    next: Granularity,
    arrays: &[ArrayRange],
) -> Result<Vec<FilterSpec>, ZoomError> {
    ZoomPlan::new(previous, top, next)?.filters(arrays)
}

/// The final table of a refinement: the report (its 20 hottest granules) and a
/// verdict for every touched granule ([`monitor::line_verdicts`]), what
/// `rset-mon refine` prints at its last round.
pub fn lines_text(report: &Report) -> String {
    let verdicts = line_verdicts(report);
    let shared = verdicts.iter().filter(|v| v.write_shared).count();
    format!(
        "{}\nLINE VERDICTS ({} lines, {shared} written from two or more nodes)\n{}",
        report.to_text(20),
        verdicts.len(),
        verdicts_text(&verdicts)
    )
}

fn region_at(regions: &[RegionReport], addr: u64) -> Option<&RegionReport> {
    regions
        .iter()
        .find(|r| r.start <= addr && addr < r.end().max(r.start + 1))
}

/// Sampled references of one layout: one session or several pooled.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// Sampled references to the program's arrays.
    pub samples: u64,
    /// Those served by another node's memory.
    pub remote: u64,
    /// Sessions pooled.
    pub sessions: u32,
    /// Nodes of the machine (the largest of the sessions').
    pub nodes: u32,
}

impl Tally {
    /// Adds a session's references (every filter's).
    pub fn add(&mut self, session: &SessionFile) {
        let all = Report::from_session(session).totals.all;
        self.samples += all.local + all.remote;
        self.remote += all.remote;
        self.sessions += 1;
        self.nodes = self.nodes.max(session.machine.nodes);
    }

    /// The remote share, 0 ..= 1 (0 without samples).
    pub fn share(&self) -> f64 {
        if self.samples == 0 {
            0.0
        } else {
            self.remote as f64 / self.samples as f64
        }
    }

    /// The share's 95% margin, `1.96·√(p(1−p)/n)` (0 without samples).
    pub fn margin95(&self) -> f64 {
        if self.samples == 0 {
            return 0.0;
        }
        let p = self.share();
        1.96 * (p * (1.0 - p) / self.samples as f64).sqrt()
    }
}

/// How many times fewer remote references reorg made than orig.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Reduction {
    /// Orig had no remote sample (a one-node machine): nothing to reduce.
    NothingRemote,
    /// Reorg had no remote sample: the factor is at least `at_least` (95%: orig's
    /// lower bound over reorg's upper bound by the rule of three, `3/n`).
    Unbounded {
        /// The 95% lower bound.
        at_least: f64,
    },
    /// The ratio of the remote shares with its 95% interval.
    Factor {
        /// orig share / reorg share.
        estimate: f64,
        /// Lower end of the 95% interval.
        low: f64,
        /// Upper end.
        high: f64,
    },
}

impl Reduction {
    /// Compares the remote shares of `orig` and `reorg`.
    pub fn of(orig: &Tally, reorg: &Tally) -> Reduction {
        if orig.remote == 0 || reorg.samples == 0 {
            return Reduction::NothingRemote;
        }
        if reorg.remote == 0 {
            let low = (orig.share() - orig.margin95()).max(0.0);
            return Reduction::Unbounded {
                at_least: low / (3.0 / reorg.samples as f64),
            };
        }
        let (p1, p2) = (orig.share(), reorg.share());
        let se = ((1.0 - p1) / orig.remote as f64 + (1.0 - p2) / reorg.remote as f64).sqrt();
        let estimate = p1 / p2;
        Reduction::Factor {
            estimate,
            low: estimate * (-1.96 * se).exp(),
            high: estimate * (1.96 * se).exp(),
        }
    }

    /// The factor's point estimate, if there is one.
    pub fn estimate(&self) -> Option<f64> {
        match self {
            Reduction::Factor { estimate, .. } => Some(*estimate),
            _ => None,
        }
    }

    /// The lower end of the 95% interval, if there is one.
    pub fn low(&self) -> Option<f64> {
        match self {
            Reduction::Factor { low, .. } => Some(*low),
            Reduction::Unbounded { at_least } => Some(*at_least),
            Reduction::NothingRemote => None,
        }
    }
}

impl fmt::Display for Reduction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reduction::NothingRemote => f.write_str("-"),
            Reduction::Unbounded { at_least } => write!(f, ">= {at_least:.1}x"),
            Reduction::Factor {
                estimate,
                low,
                high,
            } => write!(f, "{estimate:.1}x ({low:.1}-{high:.1})"),
        }
    }
}

/// The paper's reduction of interconnect packets from orig to reorg (Table 2, total
/// packets), for the programs it measured and we port; `program` may carry a tag
/// after a slash (`fft3d/n128`).
pub fn paper_factor(program: &str) -> Option<f64> {
    let name = program.split('/').next().unwrap_or_default();
    match name.to_ascii_lowercase().as_str() {
        // 806.31 / 135.58 million packets.
        "fft3d" | "3d-fft" | "3dfft" => Some(5.9),
        // 60.62 / 4.91 million packets.
        "ocean" => Some(12.3),
        _ => None,
    }
}

/// Sampled references per array label, remote and all, over the sessions of a tally
/// (what carries the remote references that are left).
pub fn by_array(sessions: &[SessionFile]) -> BTreeMap<String, (u64, u64)> {
    let mut out: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for s in sessions {
        for r in Report::from_session(s).regions {
            let e = out.entry(r.name).or_default();
            e.0 += r.totals.all.remote;
            e.1 += r.totals.all.local + r.totals.all.remote;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use monitor::card::Card;
    use monitor::sample::{Access, Sample, SamplerStats};
    use monitor::{Label, SessionFile};

    const PAGE: u64 = 4096;

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

    /// A 2-node session of two page-granular arrays, `x.a` at 0x10000 (16 pages)
    /// and `x.b` at 0x40000 (8 pages), with remote references where `hot` says:
    /// (array start, page, count).
    fn session(hot: &[(u64, u64, u32)]) -> SessionFile {
        let mut card = Card::new(2).unwrap();
        card.program(FilterSpec::new(0x10000, 16 * PAGE, Granularity::PAGE).name("x.a"))
            .unwrap();
        card.program(FilterSpec::new(0x40000, 8 * PAGE, Granularity::PAGE).name("x.b"))
            .unwrap();
        for &(base, page, count) in hot {
            for i in 0..count {
                let s = sample(base + page * PAGE + 64 * u64::from(i % 64), 1, Access::Read);
                card.record(&s, 0);
            }
        }
        // Some local references everywhere, which must not be chosen.
        for p in 0..16 {
            card.record(&sample(0x10000 + p * PAGE, 0, Access::Write), 0);
        }
        SessionFile::from_card(&card, SamplerStats::default()).with_labels(vec![
            Label::new(0x10000, 16 * PAGE, "x.a"),
            Label::new(0x40000, 8 * PAGE, "x.b"),
        ])
    }

    fn arrays(a: u64, b: u64) -> Vec<ArrayRange> {
        vec![
            ArrayRange {
                label: "x.b".into(),
                start: b,
                bytes: 8 * PAGE,
            },
            ArrayRange {
                label: "x.a".into(),
                start: a,
                bytes: 16 * PAGE,
            },
        ]
    }

    #[test]
    fn hot_pages_move_to_the_same_offsets_of_the_same_arrays() {
        // Hottest: a page 3 (9), b page 5 (7), a page 4 (5, adjacent to 3), a page 10 (1).
        let prev = session(&[
            (0x10000, 3, 9),
            (0x40000, 5, 7),
            (0x10000, 4, 5),
            (0x10000, 10, 1),
        ]);
        let got = zoom_filters(&prev, 3, Granularity::LINE, &arrays(0x900000, 0x500000)).unwrap();
        let spans: Vec<(u64, u64, &str)> = got
            .iter()
            .map(|f| (f.start, f.size, f.name.as_deref().unwrap()))
            .collect();
        assert_eq!(
            spans,
            vec![
                (0x500000 + 5 * PAGE, PAGE, "x.b"),
                (0x900000 + 3 * PAGE, 2 * PAGE, "x.a"),
            ]
        );
        assert!(got.iter().all(|f| f.granularity == Granularity::LINE));
    }

    #[test]
    fn mismatched_runs_are_refused_naming_the_array() {
        let prev = session(&[(0x40000, 2, 3)]);
        let mut other = arrays(0x900000, 0x500000);
        other[0].bytes = 16 * PAGE;
        assert_eq!(
            zoom_filters(&prev, 4, Granularity::LINE, &other),
            Err(ZoomError::SizeChanged {
                label: "x.b".into(),
                here: 16 * PAGE,
                before: 8 * PAGE
            })
        );
        let only_a = &arrays(0x900000, 0x500000)[1..];
        assert_eq!(
            zoom_filters(&prev, 4, Granularity::LINE, only_a),
            Err(ZoomError::MissingArray("x.b".into()))
        );
        let mut twice = arrays(0x900000, 0x500000);
        twice.push(twice[0].clone());
        assert_eq!(
            zoom_filters(&prev, 4, Granularity::LINE, &twice),
            Err(ZoomError::Ambiguous("x.b".into()))
        );
        let e = zoom_filters(&prev, 4, Granularity::PAGE, &arrays(0, 0x100000)).unwrap_err();
        assert!(
            matches!(
                e,
                ZoomError::NotFiner {
                    previous: 4096,
                    next: 4096,
                    ..
                }
            ),
            "{e}"
        );
        assert_eq!(
            zoom_filters(&session(&[]), 4, Granularity::LINE, &arrays(0, 0x100000)),
            Err(ZoomError::NothingHot)
        );
        assert_eq!(
            zoom_filters(&prev, 0, Granularity::LINE, &arrays(0, 0x100000)),
            Err(ZoomError::KeepNone)
        );
        let mut unlabelled = session(&[(0x10000, 1, 2)]);
        unlabelled.labels.clear();
        assert!(matches!(
            zoom_filters(&unlabelled, 4, Granularity::LINE, &arrays(0, 0x100000)),
            Err(ZoomError::Unlabelled { addr: 0x11000, .. })
        ));
    }

    #[test]
    fn a_zoomed_session_zooms_again_by_its_labels() {
        // Round 2 watched a's page 3 at 512 B; its hot granule moves on to round 3.
        let mut card = Card::new(2).unwrap();
        let g512 = Granularity::new(512).unwrap();
        card.program(FilterSpec::new(0x10000 + 3 * PAGE, PAGE, g512).name("x.a"))
            .unwrap();
        card.record(&sample(0x10000 + 3 * PAGE + 1024 + 8, 1, Access::Write), 0);
        let prev = SessionFile::from_card(&card, SamplerStats::default())
            .with_labels(vec![Label::new(0x10000, 16 * PAGE, "x.a")]);
        let got = zoom_filters(&prev, 8, Granularity::LINE, &arrays(0x200000, 0x300000)).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(
            (got[0].start, got[0].size),
            (0x200000 + 3 * PAGE + 1024, 512)
        );
    }

    #[test]
    fn reductions_and_their_intervals() {
        let orig = Tally {
            samples: 1000,
            remote: 750,
            sessions: 1,
            nodes: 4,
        };
        let reorg = Tally {
            samples: 1000,
            remote: 50,
            ..orig
        };
        let r = Reduction::of(&orig, &reorg);
        let Reduction::Factor {
            estimate,
            low,
            high,
        } = r
        else {
            panic!("{r:?}");
        };
        assert!((estimate - 15.0).abs() < 1e-9);
        // se = sqrt(0.25/750 + 0.95/50) = 0.1390; exp(±1.96·se) = 1.313.
        assert!((low - 15.0 / 1.3134).abs() < 0.01, "{low}");
        assert!((high - 15.0 * 1.3134).abs() < 0.02, "{high}");
        assert_eq!(r.to_string(), "15.0x (11.4-19.7)");
        let none = Tally { remote: 0, ..reorg };
        assert!(matches!(
            Reduction::of(&orig, &none),
            Reduction::Unbounded { at_least } if (at_least - (0.75 - 0.02684) / 0.003).abs() < 0.1
        ));
        assert_eq!(Reduction::of(&none, &reorg), Reduction::NothingRemote);
        assert!((orig.margin95() - 1.96 * (0.75f64 * 0.25 / 1000.0).sqrt()).abs() < 1e-12);
        assert_eq!(paper_factor("fft3d"), Some(5.9));
        assert_eq!(paper_factor("Ocean"), Some(12.3));
        assert_eq!(paper_factor("fft3d/n128"), Some(5.9));
        assert_eq!(paper_factor("fft"), None);
    }
}
