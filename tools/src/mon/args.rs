//! The values `rset-mon` parses beyond clap: granularities, sizes and filter
//! ranges.

use monitor::Granularity;

use crate::cli::Failure;

/// `page`, `line`, `huge` or a power of two of bytes.
pub(super) fn granularity(text: &str) -> Result<Granularity, Failure> {
    let bytes = match text {
        "page" => Granularity::PAGE.bytes(),
        "line" => Granularity::LINE.bytes(),
        "huge" => Granularity::HUGE.bytes(),
        other => size(other)?,
    };
    Granularity::new(bytes).map_err(|e| Failure::usage(format!("granularity `{text}`: {e}")))
}

/// Decimal or 0x hex, with an optional K, M or G suffix (powers of 1024).
pub(super) fn size(text: &str) -> Result<u64, Failure> {
    let bad = || {
        Failure::usage(format!(
            "`{text}` is not a size (e.g. 4096, 0x1000, 64K, 8M)"
        ))
    };
    let t = text.trim();
    let (digits, mult) = match t.char_indices().last() {
        Some((i, 'k' | 'K')) => (&t[..i], 1u64 << 10),
        Some((i, 'm' | 'M')) => (&t[..i], 1 << 20),
        Some((i, 'g' | 'G')) => (&t[..i], 1 << 30),
        _ => (t, 1),
    };
    let n = match digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
    {
        Some(hex) => u64::from_str_radix(hex, 16).map_err(|_| bad())?,
        None => digits.parse::<u64>().map_err(|_| bad())?,
    };
    n.checked_mul(mult).ok_or_else(bad)
}

/// `START:SIZE:GRAN`.
pub(super) fn filter(text: &str) -> Result<(u64, u64, u64), Failure> {
    let parts: Vec<&str> = text.split(':').collect();
    let [start, len, gran] = parts[..] else {
        return Err(Failure::usage(format!(
            "--filter `{text}`: expected START:SIZE:GRAN, e.g. 0x7ffff0000000:8M:page"
        )));
    };
    let (start, len, gran) = (size(start)?, size(len)?, granularity(gran)?);
    if len == 0 {
        return Err(Failure::usage(format!("--filter `{text}`: the size is 0")));
    }
    Ok((start, len, gran.bytes()))
}
