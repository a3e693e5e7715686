//! Byte sizes as people write them: `4096`, `32K`, `64MiB`, `1G`, `1.5M`.

/// Parses a size in bytes. Suffixes are binary (`K` = 1024) and case-insensitive:
/// `K`, `M`, `G`, `T`, each optionally followed by `iB` or `B`; a bare `B` means
/// bytes. A fraction is allowed with a suffix (`1.5M`). Zero is an error here: no
/// benchmark runs on an empty buffer.
///
/// # Errors
/// A one-line message naming the input.
pub fn parse_size(text: &str) -> Result<usize, String> {
    let s = text.trim();
    let bad = || {
        format!(
            "`{text}` is not a size (examples: 4096, 32K, 64MiB, 1G; suffixes are powers of 1024)"
        )
    };
    let lower = s.to_ascii_lowercase();
    let digits_end = lower
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(lower.len());
    let (number, suffix) = lower.split_at(digits_end);
    if number.is_empty() {
        return Err(bad());
    }
    let shift = match suffix.trim() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => return Err(bad()),
    };
    let bytes = if number.contains('.') {
        let x: f64 = number.parse().map_err(|_| bad())?;
        let b = x * (1u64 << shift) as f64;
        if !b.is_finite() || b >= usize::MAX as f64 {
            return Err(bad());
        }
        b.round() as usize
    } else {
        let n: usize = number.parse().map_err(|_| bad())?;
        n.checked_mul(1usize << shift).ok_or_else(bad)?
    };
    if bytes == 0 {
        return Err(format!(
            "`{text}` is 0 bytes: give a size of at least one cache line (64)"
        ));
    }
    Ok(bytes)
}

/// Formats bytes compactly in binary units: `48 KiB`, `1 MiB`, `1.5 MiB`, `100 B`.
pub fn format_size(bytes: usize) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if (value - value.round()).abs() < 1e-9 {
        format!("{value:.0} {}", UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_binary_suffixes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("32K"), Ok(32 << 10));
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("1g"), Ok(1 << 30));
        assert_eq!(parse_size("1.5M"), Ok(3 << 19));
        assert_eq!(parse_size("12B"), Ok(12));
    }

    #[test]
    fn bad_sizes_name_the_input() {
        for s in ["", "K", "12Q", "-1", "1.2.3M", "99999999999999999999T"] {
            let e = parse_size(s).unwrap_err();
            assert!(e.contains(&format!("`{s}`")), "{e}");
        }
        assert!(parse_size("0").unwrap_err().contains("0 bytes"));
        assert!(parse_size("0K").unwrap_err().contains("0 bytes"));
    }

    #[test]
    fn sizes_format_in_binary_units() {
        assert_eq!(format_size(48 << 10), "48 KiB");
        assert_eq!(format_size(3 << 19), "1.5 MiB");
        assert_eq!(format_size(100), "100 B");
    }
}
