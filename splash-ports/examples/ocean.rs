//! Ocean on its own: `ocean [--rset SPEC] [--placement P] [--layout orig|reorg]
//! [--monitor FILE] [--monitor-rate HZ] [--monitor-overhead SHARE] [OCEAN FLAGS]`,
//! the original's flags last (`-n258 -p8 -o`). The same run as `splash ocean`, for
//! trying the port alone; `--monitor-overhead` (default 0.05, 0: no limit) lets the
//! sampler take more of a slow machine's time for more samples.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use splash_ports::framework::{self, MonitorOptions, RunConfig, SplashError};

fn parse(argv: &[String]) -> Result<(RunConfig, Vec<String>), String> {
    let mut cfg = RunConfig::default();
    let mut rest = Vec::new();
    let mut monitor = MonitorOptions::default();
    let mut it = argv.iter();
    while let Some(a) = it.next() {
        let Some(name) = a.strip_prefix("--") else {
            rest.push(a.clone());
            continue;
        };
        let mut value = || it.next().cloned().ok_or(format!("--{name} needs a value"));
        match name {
            "rset" => cfg.rset = value()?,
            "placement" => {
                cfg.placement = value()?.parse().map_err(|e| format!("--placement: {e}"))?;
            }
            "layout" => cfg.layout = value()?.parse().map_err(|e| format!("--layout: {e}"))?,
            "monitor" => cfg.monitor = Some(PathBuf::from(value()?)),
            "monitor-rate" => {
                let v = value()?;
                monitor.rate_hz = v
                    .parse::<u64>()
                    .ok()
                    .filter(|&h| h > 0)
                    .ok_or(format!("--monitor-rate: `{v}` is not a positive number"))?;
            }
            "monitor-overhead" => {
                let v = value()?;
                monitor.max_overhead = v
                    .parse::<f64>()
                    .ok()
                    .filter(|s| (0.0..=1.0).contains(s))
                    .ok_or(format!("--monitor-overhead: `{v}` is not a share in 0..=1"))?;
            }
            _ => return Err(format!("unknown flag `{a}`")),
        }
    }
    framework::set_monitor_options(monitor);
    Ok((cfg, rest))
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let (cfg, args) = match parse(&argv) {
        Ok(p) => p,
        Err(msg) => {
            eprintln!("ocean: {msg}");
            return ExitCode::from(2);
        }
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let result = splash_ports::ocean::run(&args, &cfg, &mut out);
    let _ = out.flush();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(SplashError::Usage(msg)) => {
            eprintln!("ocean: ERROR: {msg}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("ocean: {e}");
            ExitCode::from(2)
        }
    }
}
