//! The programs' own flags, SPLASH style, with clap: short letters, values attached
//! (`-m16`) or next (`-m 16`, even `-l -1`), flags combined (`-st`, `-tm10`), `--`
//! ending the options; every message as POSIX `getopt` or the original program
//! words it.
//!
//! As the originals' `getopt` loops, in two passes: clap reads the words (an
//! unknown letter, a missing value or a stray word is an error, wherever it is),
//! then the program checks the flags one by one in the order given ([`in_order`]),
//! each value as the original checks it, stopping at `-h`. A program declares its
//! flags as a `clap::Args` struct (values as text, every occurrence kept: `Append`,
//! with `num_args = 0` for flags of no value), for clap and
//! for the help; the `splash` command uses the same structs as its subcommands,
//! and [`usage_message`] for its errors.
//!
//! ```
//! use splash_ports::framework::args::{parse_flags, whole};
//! #[derive(clap::Args, Debug)]
//! struct Flags {
//!     /// -mM
//!     #[arg(short = 'm', action = clap::ArgAction::Append, allow_hyphen_values = true)]
//!     m: Vec<String>,
//!     /// -t (each occurrence kept: a toggle)
//!     #[arg(short = 't', action = clap::ArgAction::Append, num_args = 0, default_missing_value = "")]
//!     t: Vec<String>,
//! }
//! let args: Vec<String> = ["-tm", "16", "-t"].iter().map(|s| s.to_string()).collect();
//! let flags = parse_flags::<Flags>("fft", &args)?;
//! assert_eq!(flags, [('t', None), ('m', Some("16".to_owned())), ('t', None)]);
//! assert_eq!(whole('m', "16"), Ok(16));
//! # Ok::<(), splash_ports::framework::SplashError>(())
//! ```

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::parser::ValueSource;
use clap::{ArgMatches, Args, Command};

use super::error::SplashError;

/// One flag as `getopt` returns it: its letter and, for flags that take one, its
/// value.
pub type Opt = (char, Option<String>);

/// The clap command of a program's flags `A`, named `name`, set up as the
/// original's `getopt` reads them (no `--help`: `-h` is the program's own).
pub fn program_command<A: Args>(name: &'static str) -> Command {
    A::augment_args(
        Command::new(name)
            .no_binary_name(true)
            .disable_help_flag(true)
            .disable_version_flag(true),
    )
}

/// Reads the program flags `args` (the program's `argv` without its name): the
/// flags in the order given.
///
/// # Errors
/// [`SplashError::Usage`] with [`usage_message`]'s text for a word clap refuses.
pub fn parse_flags<A: Args>(name: &'static str, args: &[String]) -> Result<Vec<Opt>, SplashError> {
    let cmd = program_command::<A>(name);
    let matches = cmd
        .clone()
        .try_get_matches_from(args)
        .map_err(|e| SplashError::Usage(usage_message(&e)))?;
    Ok(in_order(&cmd, &matches))
}

/// The short flags of `cmd` found in `matches`, in the order they were given
/// (each occurrence, each value).
pub fn in_order(cmd: &Command, matches: &ArgMatches) -> Vec<Opt> {
    let mut all: Vec<(usize, char, Option<String>)> = Vec::new();
    for arg in cmd.get_arguments() {
        let (Some(letter), id) = (arg.get_short(), arg.get_id().as_str()) else {
            continue;
        };
        // Flags not given have a default (a count of 0), not a place.
        if matches.value_source(id) != Some(ValueSource::CommandLine) {
            continue;
        }
        let Some(at) = matches.indices_of(id) else {
            continue;
        };
        // A toggle is given as a flag of no value, recorded once per occurrence.
        let valued = arg.get_num_args().is_none_or(|n| n.min_values() > 0);
        let values = matches.get_raw(id).into_iter().flatten();
        for (i, v) in at.zip(values) {
            let value = valued.then(|| v.to_string_lossy().into_owned());
            all.push((i, letter, value));
        }
    }
    all.sort_by_key(|o| o.0);
    all.into_iter().map(|(_, c, v)| (c, v)).collect()
}

/// A whole number as C's `atoi` would read a well-formed one (surrounding blanks
/// allowed), the value of flag `-letter`.
///
/// # Errors
/// `-letter: `text` is not a whole number` (`atoi` would have read 0).
pub fn whole(letter: char, text: &str) -> Result<i64, String> {
    text.trim()
        .parse::<i64>()
        .map_err(|_| format!("-{letter}: `{text}` is not a whole number"))
}

/// The flag a clap error names (`-m <M>`, `--monitor <FILE>`, `16`), without its
/// value name.
fn culprit(e: &clap::Error) -> Option<String> {
    match e.get(ContextKind::InvalidArg)? {
        ContextValue::String(s) => Some(s.split(' ').next().unwrap_or(s).to_owned()),
        _ => None,
    }
}

/// One line for a clap error, in the words of the original programs (`getopt`'s
/// for program flags) and of `splash`:
///
/// | clap's error | message |
/// | --- | --- |
/// | unknown short flag `-q` | `invalid option -- 'q'` |
/// | unknown long flag `--foo` | ``unknown flag `--foo` (see splash --help)`` |
/// | a word where no operand is taken | ``unexpected argument `16` `` |
/// | `-m` with no value | `option requires an argument -- 'm'` |
/// | `--monitor` with no value | `--monitor needs a value` |
/// | a value its parser refused | the parser's message (the original's) |
/// | an unknown program | ``unknown program `x` (fft, fft3d, ocean); see splash --help`` |
pub fn usage_message(e: &clap::Error) -> String {
    let arg = culprit(e);
    match (e.kind(), arg.as_deref()) {
        (ErrorKind::UnknownArgument, Some(a)) if a.starts_with("--") => {
            format!("unknown flag `{a}` (see splash --help)")
        }
        (ErrorKind::UnknownArgument, Some(a)) if a.len() > 1 && a.starts_with('-') => {
            let letter = a[1..].chars().next().unwrap_or('-');
            format!("invalid option -- '{letter}'")
        }
        (ErrorKind::UnknownArgument, Some(a)) => format!("unexpected argument `{a}`"),
        (ErrorKind::InvalidValue, Some(a)) if a.starts_with("--") => {
            format!("{a} needs a value")
        }
        (ErrorKind::InvalidValue, Some(a)) if a.starts_with('-') => {
            let letter = a[1..].chars().next().unwrap_or('-');
            format!("option requires an argument -- '{letter}'")
        }
        (ErrorKind::ValueValidation, _) => match std::error::Error::source(e) {
            Some(source) => source.to_string(),
            None => first_line(e),
        },
        (ErrorKind::InvalidSubcommand, _) => match e.get(ContextKind::InvalidSubcommand) {
            Some(ContextValue::String(s)) => {
                format!("unknown program `{s}` (fft, fft3d, ocean); see splash --help")
            }
            _ => first_line(e),
        },
        _ => first_line(e),
    }
}

/// Clap's own message, first line, without its `error: ` tag.
fn first_line(e: &clap::Error) -> String {
    let text = e.render().to_string();
    let line = text.lines().next().unwrap_or_default();
    line.strip_prefix("error: ").unwrap_or(line).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::ArgAction;

    /// The flags of `getopt(argc, argv, "p:m:l:sth")`.
    #[derive(clap::Args, Debug)]
    struct Flags {
        #[arg(short = 'p', action = ArgAction::Append, allow_hyphen_values = true)]
        p: Vec<String>,
        #[arg(short = 'm', action = ArgAction::Append, allow_hyphen_values = true)]
        m: Vec<String>,
        #[arg(short = 'l', action = ArgAction::Append, allow_hyphen_values = true)]
        l: Vec<String>,
        #[arg(short = 's', action = ArgAction::Append, num_args = 0, default_missing_value = "")]
        s: Vec<String>,
        #[arg(short = 't', action = ArgAction::Append, num_args = 0, default_missing_value = "")]
        t: Vec<String>,
        #[arg(short = 'h', action = ArgAction::Append, num_args = 0, default_missing_value = "")]
        h: Vec<String>,
    }

    fn parse(v: &[&str]) -> Result<Vec<Opt>, SplashError> {
        let args: Vec<String> = v.iter().map(|s| s.to_string()).collect();
        parse_flags::<Flags>("test", &args)
    }

    fn opts(v: &[(char, Option<&str>)]) -> Vec<Opt> {
        v.iter().map(|(c, a)| (*c, a.map(str::to_owned))).collect()
    }

    #[test]
    fn flags_read_as_posix_getopt_does() {
        assert_eq!(
            parse(&["-m16", "-p", "2", "-st", "-l4"]).unwrap(),
            opts(&[
                ('m', Some("16")),
                ('p', Some("2")),
                ('s', None),
                ('t', None),
                ('l', Some("4"))
            ])
        );
        let o = parse(&["-tm10", "--"]).unwrap();
        assert_eq!(o, opts(&[('t', None), ('m', Some("10"))]));
        // A value may start with a dash; repeated flags come once each, in order.
        let o = parse(&["-l", "-1", "-m4", "-t", "-m6", "-t", "-h"]).unwrap();
        assert_eq!(
            o,
            opts(&[
                ('l', Some("-1")),
                ('m', Some("4")),
                ('t', None),
                ('m', Some("6")),
                ('t', None),
                ('h', None)
            ])
        );
        let e = |v: &[&str]| parse(v).unwrap_err().to_string();
        assert_eq!(e(&["-x"]), "invalid option -- 'x'");
        assert_eq!(e(&["-tx"]), "invalid option -- 'x'");
        // Words are read before any value is checked: a bad letter anywhere, -h
        // before it or not, is the error.
        assert_eq!(e(&["-h", "-mx", "-q"]), "invalid option -- 'q'");
        assert_eq!(e(&["-t", "-m"]), "option requires an argument -- 'm'");
        assert!(e(&["16"]).contains("`16`"), "{}", e(&["16"]));
        assert!(e(&["--", "16"]).contains("`16`"));
        assert!(parse(&["-:"]).is_err());
        assert_eq!(e(&["--foo"]), "unknown flag `--foo` (see splash --help)");
        assert_eq!(whole('m', " 12"), Ok(12));
        assert!(whole('m', "1x").unwrap_err().contains("-m: `1x`"));
    }
}
