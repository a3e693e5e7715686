//! Lists of ids in the form numactl, taskset and sysfs use: `0-3,5,8-9`.

use std::fmt;

/// Why a list such as `0-3,5` could not be read. Carries the offending text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ListError {
    /// The list, or one of its comma-separated items, is empty.
    #[error("empty item in list `{list}`")]
    EmptyItem {
        /// The whole list.
        list: String,
    },
    /// An item is not a number or a `LOW-HIGH` range of numbers.
    #[error("`{item}` is not a number or a range LOW-HIGH")]
    NotANumber {
        /// The offending item.
        item: String,
    },
    /// A range whose low end is above its high end.
    #[error("range `{item}` runs backwards")]
    Backwards {
        /// The offending item.
        item: String,
    },
}

/// Largest id a list may name; keeps a typo such as `0-4000000000` from
/// allocating gigabytes.
pub const MAX_ID: u32 = 1 << 20;

/// Parses `0-3,5,8-9` into sorted, de-duplicated ids. Whitespace around items is
/// allowed; an empty list is an error (callers that accept "no ids" check first).
///
/// # Errors
/// [`ListError`] naming the offending item.
pub fn parse_list(list: &str) -> Result<Vec<u32>, ListError> {
    let mut ids = Vec::new();
    for raw in list.split(',') {
        let item = raw.trim();
        if item.is_empty() {
            return Err(ListError::EmptyItem {
                list: list.to_owned(),
            });
        }
        let num = |s: &str| -> Result<u32, ListError> {
            let s = s.trim();
            if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
                return Err(ListError::NotANumber {
                    item: item.to_owned(),
                });
            }
            match s.parse::<u32>() {
                Ok(v) if v <= MAX_ID => Ok(v),
                _ => Err(ListError::NotANumber {
                    item: item.to_owned(),
                }),
            }
        };
        match item.split_once('-') {
            Some((lo, hi)) => {
                let (lo, hi) = (num(lo)?, num(hi)?);
                if lo > hi {
                    return Err(ListError::Backwards {
                        item: item.to_owned(),
                    });
                }
                ids.extend(lo..=hi);
            }
            None => ids.push(num(item)?),
        }
    }
    ids.sort_unstable();
    ids.dedup();
    Ok(ids)
}

/// Writes sorted ids back in the compact form: `[0,1,2,3,5]` -> `0-3,5`.
pub fn format_list(ids: &[u32]) -> String {
    struct Compact<'a>(&'a [u32]);
    impl fmt::Display for Compact<'_> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            let mut i = 0;
            let mut first = true;
            while i < self.0.len() {
                let start = self.0[i];
                let mut end = start;
                while i + 1 < self.0.len() && self.0[i + 1] == end + 1 {
                    i += 1;
                    end = self.0[i];
                }
                if !first {
                    f.write_str(",")?;
                }
                first = false;
                if start == end {
                    write!(f, "{start}")?;
                } else {
                    write!(f, "{start}-{end}")?;
                }
                i += 1;
            }
            Ok(())
        }
    }
    Compact(ids).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ranges_and_singles() {
        assert_eq!(parse_list("0-3,5").unwrap(), vec![0, 1, 2, 3, 5]);
        assert_eq!(parse_list(" 7 , 2-2,1").unwrap(), vec![1, 2, 7]);
    }

    #[test]
    fn rejects_bad_items_naming_them() {
        assert_eq!(
            parse_list("0-3,x").unwrap_err().to_string(),
            "`x` is not a number or a range LOW-HIGH"
        );
        assert_eq!(
            parse_list("3-1").unwrap_err().to_string(),
            "range `3-1` runs backwards"
        );
        assert_eq!(
            parse_list("1,,2").unwrap_err().to_string(),
            "empty item in list `1,,2`"
        );
        assert!(parse_list("").is_err());
        assert!(parse_list("-1").is_err());
        assert!(parse_list("0-99999999999").is_err());
    }

    #[test]
    fn formats_compactly() {
        assert_eq!(format_list(&[0, 1, 2, 3, 5, 8, 9]), "0-3,5,8-9");
        assert_eq!(format_list(&[]), "");
        assert_eq!(format_list(&[4]), "4");
    }
}
