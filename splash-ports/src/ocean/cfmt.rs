//! The few C `printf` conversions Ocean's output uses (`%e`, `%g`), so our lines match
//! the C program's character for character. Rust's `{:.N}` already rounds like glibc
//! (exact decimal expansion, ties to even), so `%f` needs nothing here.

/// C's `%.{prec}e`: mantissa with `prec` decimals, exponent with a sign and at least
/// two digits (`8.00274594e-08`, where Rust writes `8.00274594e-8`).
pub(crate) fn exp(x: f64, prec: usize) -> String {
    if !x.is_finite() {
        return non_finite(x);
    }
    let s = format!("{x:.prec$e}");
    match s.split_once('e') {
        Some((mantissa, e)) => {
            let e: i32 = e.parse().unwrap_or(0);
            let sign = if e < 0 { '-' } else { '+' };
            format!("{mantissa}e{sign}{:02}", e.unsigned_abs())
        }
        None => s,
    }
}

/// C's `%.{prec}g`: `%e` or `%f` style by the decimal exponent, trailing zeros removed.
pub(crate) fn general(x: f64, prec: usize) -> String {
    if !x.is_finite() {
        return non_finite(x);
    }
    let p = prec.max(1);
    if x == 0.0 {
        return if x.is_sign_negative() { "-0" } else { "0" }.to_string();
    }
    // The exponent the %e conversion with p significant digits would print.
    let e_form = format!("{x:.prec$e}", prec = p - 1);
    let e: i32 = e_form
        .split_once('e')
        .and_then(|(_, e)| e.parse().ok())
        .unwrap_or(0);
    let p_i = i32::try_from(p).unwrap_or(i32::MAX);
    if e < -4 || e >= p_i {
        let formatted = exp(x, p - 1);
        match formatted.split_once('e') {
            Some((m, rest)) => format!("{}e{rest}", strip_zeros(m)),
            None => formatted,
        }
    } else {
        let decimals = usize::try_from(p_i - 1 - e).unwrap_or(0);
        strip_zeros(&format!("{x:.decimals$}")).to_string()
    }
}

fn strip_zeros(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

fn non_finite(x: f64) -> String {
    if x.is_nan() {
        "nan".to_string()
    } else if x > 0.0 {
        "inf".to_string()
    } else {
        "-inf".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_matches_c() {
        assert_eq!(exp(8.00274594e-08, 8), "8.00274594e-08");
        assert_eq!(exp(1.5e120, 2), "1.50e+120");
        assert_eq!(exp(2.0, 3), "2.000e+00");
    }

    #[test]
    fn general_matches_c() {
        assert_eq!(general(1e-7, 7), "1e-07");
        assert_eq!(general(1e-7, 6), "1e-07");
        assert_eq!(general(20000.0, 6), "20000");
        assert_eq!(general(28800.0, 6), "28800");
        assert_eq!(general(0.0001, 6), "0.0001");
        assert_eq!(general(1234567.0, 6), "1.23457e+06");
        assert_eq!(general(2.5e-3, 7), "0.0025");
    }
}
