//! The monitoring unit of a filter: a power of two from a 64-byte cache line to a
//! 2 MiB huge page.
//!
//! The Opium card counted "from 2 MB to a 32-byte cache line"; today's lines are
//! 64 bytes, so that is the floor here.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Why a number or a string is not a granularity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GranularityError {
    /// The number of bytes is not a power of two.
    #[error("granularity {0} is not a power of two")]
    NotPowerOfTwo(u64),
    /// The number of bytes is outside 64 B ..= 2 MiB.
    #[error("granularity {0} is outside 64 bytes ..= 2 MiB")]
    OutOfRange(u64),
    /// The text is neither a size nor `line`, `page` or `huge`.
    #[error("cannot read {0:?} as a granularity (try line, page, 2MiB or a number of bytes)")]
    Parse(String),
}

/// A monitoring granule size: a power of two in `64 ..= 2 MiB` bytes.
///
/// In JSON it is a plain number of bytes. As text ([`FromStr`]) it reads `line` (64),
/// `page` (4096), `huge` (2 MiB), a number of bytes (`256`), or a number with a binary
/// unit (`4K`, `4KiB`, `2M`, `2MiB`, `2MB`: all powers of 1024). [`fmt::Display`]
/// writes the form with the largest unit that divides it (`64`, `4KiB`, `2MiB`), which
/// reads back to the same value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "u64", into = "u64")]
pub struct Granularity(u64);

impl Granularity {
    /// The smallest granule: one 64-byte cache line.
    pub const LINE: Granularity = Granularity(64);
    /// A 4 KiB base page.
    pub const PAGE: Granularity = Granularity(4096);
    /// The largest granule: a 2 MiB huge page.
    pub const HUGE: Granularity = Granularity(2 << 20);
    /// The smallest number of bytes accepted.
    pub const MIN_BYTES: u64 = 64;
    /// The largest number of bytes accepted.
    pub const MAX_BYTES: u64 = 2 << 20;

    /// A granularity of `bytes` bytes.
    ///
    /// # Errors
    /// [`GranularityError::NotPowerOfTwo`] or [`GranularityError::OutOfRange`], with
    /// `bytes`.
    pub fn new(bytes: u64) -> Result<Self, GranularityError> {
        if !bytes.is_power_of_two() {
            return Err(GranularityError::NotPowerOfTwo(bytes));
        }
        if !(Self::MIN_BYTES..=Self::MAX_BYTES).contains(&bytes) {
            return Err(GranularityError::OutOfRange(bytes));
        }
        Ok(Granularity(bytes))
    }

    /// Its size in bytes.
    pub fn bytes(self) -> u64 {
        self.0
    }

    /// Its base-2 logarithm (6 for a line, 12 for a page).
    pub fn shift(self) -> u32 {
        self.0.trailing_zeros()
    }

    /// `addr` rounded down to a multiple of this granularity.
    pub fn align_down(self, addr: u64) -> u64 {
        addr & !(self.0 - 1)
    }
}

impl Default for Granularity {
    /// A page, the paper's first round.
    fn default() -> Self {
        Granularity::PAGE
    }
}

impl TryFrom<u64> for Granularity {
    type Error = GranularityError;

    fn try_from(bytes: u64) -> Result<Self, Self::Error> {
        Granularity::new(bytes)
    }
}

impl From<Granularity> for u64 {
    fn from(g: Granularity) -> u64 {
        g.0
    }
}

impl fmt::Display for Granularity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        if b >= 1 << 20 && b.is_multiple_of(1 << 20) {
            write!(f, "{}MiB", b >> 20)
        } else if b >= 1 << 10 && b.is_multiple_of(1 << 10) {
            write!(f, "{}KiB", b >> 10)
        } else {
            write!(f, "{b}")
        }
    }
}

impl FromStr for Granularity {
    type Err = GranularityError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let text = s.trim();
        let lower = text.to_ascii_lowercase();
        match lower.as_str() {
            "line" | "cacheline" | "cache-line" => return Ok(Granularity::LINE),
            "page" => return Ok(Granularity::PAGE),
            "huge" | "hugepage" | "huge-page" => return Ok(Granularity::HUGE),
            _ => {}
        }
        let digits_end = lower
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(lower.len());
        let (digits, unit) = lower.split_at(digits_end);
        let parse_err = || GranularityError::Parse(s.to_owned());
        let number: u64 = digits.parse().map_err(|_| parse_err())?;
        let scale: u64 = match unit.trim() {
            "" | "b" => 1,
            "k" | "kb" | "kib" => 1 << 10,
            "m" | "mb" | "mib" => 1 << 20,
            _ => return Err(parse_err()),
        };
        let bytes = number
            .checked_mul(scale)
            .ok_or(GranularityError::OutOfRange(u64::MAX))?;
        Granularity::new(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_and_units() {
        assert_eq!("line".parse(), Ok(Granularity::LINE));
        assert_eq!("page".parse(), Ok(Granularity::PAGE));
        assert_eq!("2M".parse(), Ok(Granularity::HUGE));
        assert_eq!("2MiB".parse(), Ok(Granularity::HUGE));
        assert_eq!("4k".parse(), Ok(Granularity::PAGE));
        assert_eq!(
            "256".parse::<Granularity>().map(Granularity::bytes),
            Ok(256)
        );
        assert_eq!(
            "100".parse::<Granularity>(),
            Err(GranularityError::NotPowerOfTwo(100))
        );
        assert_eq!(
            "32".parse::<Granularity>(),
            Err(GranularityError::OutOfRange(32))
        );
        assert_eq!(
            "4M".parse::<Granularity>(),
            Err(GranularityError::OutOfRange(4 << 20))
        );
        assert!(matches!(
            "x".parse::<Granularity>(),
            Err(GranularityError::Parse(_))
        ));
        assert!(matches!(
            "".parse::<Granularity>(),
            Err(GranularityError::Parse(_))
        ));
    }

    #[test]
    fn display_reads_back() {
        for shift in 6..=21 {
            let g = Granularity::new(1 << shift).unwrap();
            assert_eq!(g.to_string().parse(), Ok(g));
            assert_eq!(g.shift(), shift);
        }
    }
}
