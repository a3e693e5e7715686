//! The programs' own flags, SPLASH style, with clap: short letters, values attached
//! (`-m16`) or next (`-m 16`, even `-l -1`), flags combined (`-st`, `-tm10`), the
//! last of a repeated flag winning, `--` ending the options; every message as
//! POSIX `getopt` or the original program words it.
//!
//! A program declares its flags as a `clap::Args` struct whose value parsers make
//! the original's checks (so, as in the original's `getopt` loop, the first bad
//! flag in order is the one reported), and reads them with [`parse_flags`]. The
//! `splash` command uses the same structs as its subcommands, and
//! [`usage_message`] for its errors.
//!
//! ```
//! use splash_ports::framework::args::{parse_flags, whole};
//! #[derive(clap::Args, Debug)]
//! struct Flags {
//!     /// -mM
//!     #[arg(short = 'm', value_parser = |s: &str| whole('m', s), allow_hyphen_values = true)]
//!     m: Option<i64>,
//!     /// -t (a toggle, as in the original: given twice, off again)
//!     #[arg(short = 't', action = clap::ArgAction::Count)]
//!     t: u8,
//! }
//! let args: Vec<String> = ["-tm", "16"].iter().map(|s| s.to_string()).collect();
//! let f: Flags = parse_flags("fft", &args)?;
//! assert_eq!((f.m, f.t), (Some(16), 1));
//! # Ok::<(), splash_ports::framework::SplashError>(())
//! ```

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{Args, Command, FromArgMatches};

use super::error::SplashError;

/// The clap command of a program's flags `A`, named `name`, set up as the
/// original's `getopt` reads them (no `--help`, `-h` is the program's own; the
/// last of a repeated flag wins).
pub fn program_command<A: Args>(name: &'static str) -> Command {
    A::augment_args(
        Command::new(name)
            .no_binary_name(true)
            .disable_help_flag(true)
            .disable_version_flag(true)
            .args_override_self(true),
    )
}

/// Reads the program flags `args` (the program's `argv` without its name).
///
/// # Errors
/// [`SplashError::Usage`] with [`usage_message`]'s text for the first bad flag.
pub fn parse_flags<A: Args + FromArgMatches>(
    name: &'static str,
    args: &[String],
) -> Result<A, SplashError> {
    let usage = |e: clap::Error| SplashError::Usage(usage_message(&e));
    let matches = program_command::<A>(name)
        .try_get_matches_from(args)
        .map_err(usage)?;
    A::from_arg_matches(&matches).map_err(usage)
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

    /// The flags of `getopt(argc, argv, "p:m:n:l:stoh")`.
    #[derive(clap::Args, Debug)]
    struct Flags {
        #[arg(short = 'p', value_parser = |s: &str| whole('p', s), allow_hyphen_values = true)]
        p: Option<i64>,
        #[arg(short = 'm', value_parser = |s: &str| whole('m', s), allow_hyphen_values = true)]
        m: Option<i64>,
        #[arg(short = 'l', value_parser = |s: &str| whole('l', s), allow_hyphen_values = true)]
        l: Option<i64>,
        #[arg(short = 's', action = ArgAction::Count)]
        s: u8,
        #[arg(short = 't', action = ArgAction::Count)]
        t: u8,
    }

    fn parse(v: &[&str]) -> Result<Flags, SplashError> {
        let args: Vec<String> = v.iter().map(|s| s.to_string()).collect();
        parse_flags("test", &args)
    }

    #[test]
    fn flags_read_as_posix_getopt_does() {
        let f = parse(&["-m16", "-p", "2", "-st", "-l4"]).unwrap();
        assert_eq!(
            (f.m, f.p, f.l, f.s, f.t),
            (Some(16), Some(2), Some(4), 1, 1)
        );
        let f = parse(&["-tm10", "--"]).unwrap();
        assert_eq!((f.t, f.m), (1, Some(10)));
        // A value may start with a dash; the last of a repeated flag wins; a toggle
        // given twice counts twice.
        let f = parse(&["-l", "-1", "-m4", "-m6", "-t", "-t"]).unwrap();
        assert_eq!((f.l, f.m, f.t), (Some(-1), Some(6), 2));
        let e = |v: &[&str]| parse(v).unwrap_err().to_string();
        assert_eq!(e(&["-x"]), "invalid option -- 'x'");
        assert_eq!(e(&["-tx"]), "invalid option -- 'x'");
        assert_eq!(e(&["-t", "-m"]), "option requires an argument -- 'm'");
        assert!(e(&["16"]).contains("`16`"), "{}", e(&["16"]));
        assert!(e(&["--", "16"]).contains("`16`"));
        assert!(parse(&["-:"]).is_err());
        assert_eq!(e(&["--foo"]), "unknown flag `--foo` (see splash --help)");
        assert_eq!(parse(&["-m", " 12"]).unwrap().m, Some(12));
        assert!(e(&["-m1x"]).contains("-m: `1x`"), "{}", e(&["-m1x"]));
        // The first bad flag in order is the one reported.
        assert!(e(&["-mx", "-q"]).contains("-m: `x`"));
        assert_eq!(e(&["-q", "-mx"]), "invalid option -- 'q'");
    }
}
