//! `splash compare NAME ORIG REORG ...`: the paper's Table 2 from session files of
//! monitored runs: per program, the remote share of orig and reorg with 95%
//! margins, the reduction with its interval, beside the paper's factor.

use std::io::Write;
use std::process::ExitCode;

use monitor::SessionFile;
use splash_ports::refine::{Reduction, Tally, by_array, paper_factor};

/// A row of `splash compare`: the program's name and its two tallies.
struct Row {
    name: String,
    orig: Tally,
    reorg: Tally,
    /// Sampled (remote, all) references per array under reorg.
    left: std::collections::BTreeMap<String, (u64, u64)>,
}

fn load_all(list: &str) -> Result<Vec<SessionFile>, String> {
    list.split(',')
        .filter(|p| !p.is_empty())
        .map(|p| SessionFile::load(p).map_err(|e| format!("compare: {p}: {e}")))
        .collect()
}

fn tally(sessions: &[SessionFile]) -> Tally {
    let mut t = Tally::default();
    for s in sessions {
        t.add(s);
    }
    t
}

/// `splash compare NAME ORIG REORG ...`: the paper's Table 2 from session files.
pub(super) fn compare(args: &[String]) -> ExitCode {
    match compare_rows(args) {
        Ok(rows) => {
            let text = table2(&rows);
            let mut out = std::io::stdout().lock();
            // A closed pipe is not an error.
            let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
            ExitCode::SUCCESS
        }
        Err(msg) => {
            eprintln!("splash {msg}");
            ExitCode::from(2)
        }
    }
}

fn compare_rows(args: &[String]) -> Result<Vec<Row>, String> {
    if args.is_empty() || !args.len().is_multiple_of(3) {
        return Err(format!(
            "compare: expected NAME ORIG.session REORG.session, one triple per program (got {} arguments)",
            args.len()
        ));
    }
    args.chunks(3)
        .map(|t| {
            let orig = load_all(&t[1])?;
            let reorg = load_all(&t[2])?;
            if orig.is_empty() || reorg.is_empty() {
                return Err(format!("compare: {}: no session file given", t[0]));
            }
            Ok(Row {
                name: t[0].clone(),
                orig: tally(&orig),
                reorg: tally(&reorg),
                left: by_array(&reorg),
            })
        })
        .collect()
}

fn share_text(t: &Tally) -> String {
    if t.samples == 0 {
        "-".to_owned()
    } else {
        format!("{:.1}% ±{:.1}", 100.0 * t.share(), 100.0 * t.margin95())
    }
}

/// The table: per program, orig and reorg rows, the reduction with its interval and
/// the paper's factor; then what carries reorg's remaining remote references.
fn table2(rows: &[Row]) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Remote references, orig vs reorg (the paper's Table 2; sampled references, 95% intervals)\n"
    );
    let w = rows
        .iter()
        .map(|r| r.name.chars().count())
        .max()
        .unwrap_or(0)
        .max("PROGRAM".len());
    let _ = writeln!(
        out,
        "{:<w$} {:<6} {:>5} {:>8} {:>7} {:>14}   {:<22} {:>6}",
        "PROGRAM",
        "LAYOUT",
        "RUNS",
        "SAMPLES",
        "REMOTE",
        "REMOTE SHARE",
        "REDUCTION (95% CI)",
        "PAPER"
    );
    let mut notes = Vec::new();
    for r in rows {
        let reduction = Reduction::of(&r.orig, &r.reorg);
        let paper = paper_factor(&r.name).map_or("-".to_owned(), |f| format!("{f:.1}x"));
        for (layout, t) in [("orig", &r.orig), ("reorg", &r.reorg)] {
            let last = layout == "reorg";
            let row = format!(
                "{:<w$} {:<6} {:>5} {:>8} {:>7} {:>14}   {:<22} {:>6}",
                if last { "" } else { r.name.as_str() },
                layout,
                t.sessions,
                t.samples,
                t.remote,
                share_text(t),
                if last {
                    reduction.to_string()
                } else {
                    String::new()
                },
                if last { paper.as_str() } else { "" },
            );
            let _ = writeln!(out, "{}", row.trim_end());
        }
        let nodes = r.orig.nodes.max(r.reorg.nodes);
        match reduction {
            Reduction::NothingRemote if nodes <= 1 => notes.push(format!(
                "{}: a one-node machine has no remote memory: nothing to reduce\n  (see it on the emulated 4-node machine: cargo xtask demo)",
                r.name
            )),
            Reduction::NothingRemote => notes.push(format!(
                "{}: orig had no remote sample: nothing to compare",
                r.name
            )),
            _ => {
                if let (Some(paper), Some(est), Some(low)) = (
                    paper_factor(&r.name),
                    reduction.estimate().or(reduction.low()),
                    reduction.low(),
                ) {
                    let verdict = if low >= paper {
                        "at least the paper's, with 95% confidence"
                    } else if est >= paper {
                        "at least the paper's, but its interval reaches below it: more samples would settle it"
                    } else {
                        "below the paper's"
                    };
                    notes.push(format!(
                        "{}: {est:.1}x fewer remote references, {verdict} ({paper:.1}x)",
                        r.name
                    ));
                }
                let mut carriers: Vec<(&String, &(u64, u64))> =
                    r.left.iter().filter(|(_, (rem, _))| *rem > 0).collect();
                carriers.sort_by(|a, b| b.1.0.cmp(&a.1.0).then(a.0.cmp(b.0)));
                if !carriers.is_empty() {
                    let list: Vec<String> = carriers
                        .iter()
                        .take(5)
                        .map(|(name, (rem, all))| format!("{name} {rem} of {all}"))
                        .collect();
                    notes.push(format!(
                        "{}: reorg's remote samples by array: {}",
                        r.name,
                        list.join(", ")
                    ));
                }
            }
        }
    }
    out.push('\n');
    for n in notes {
        let _ = writeln!(out, "{n}");
    }
    out.push_str(
        "(Both layouts run the same program with the same flags, so they make the same\n\
         references: the ratio of the remote shares is the ratio of remote references.\n\
         The paper counted interconnect packets on its 4-node machine.)\n",
    );
    out
}
