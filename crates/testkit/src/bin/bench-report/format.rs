//! Number formatting as the benchmark summaries print it (the format specs
//! of the Python summaries they replace: `8.2f`, `+.1f`, `g`), and rounding
//! to a number of decimals as the JSON figures carry it.

use serde_json::Value;

/// `x` with `decimals` decimals right-aligned in `width` characters, or `-`
/// (right-aligned) when there is no figure.
pub fn fixed(x: Option<f64>, width: usize, decimals: usize) -> String {
    match x {
        Some(x) => format!("{x:>width$.decimals$}"),
        None => format!("{:>width$}", "-"),
    }
}

/// `x` in the shortest of fixed and scientific notation with six
/// significant digits, trailing zeros dropped (`100`, `1500`, `0.5`,
/// `1.23457e+06`): the `g` format.
pub fn general(x: f64) -> String {
    const PRECISION: i32 = 6;
    if !x.is_finite() {
        return if x.is_nan() {
            "nan".into()
        } else if x > 0.0 {
            "inf".into()
        } else {
            "-inf".into()
        };
    }
    if x == 0.0 {
        return if x.is_sign_negative() { "-0" } else { "0" }.into();
    }
    // The exponent after rounding to the precision (9.999995 -> 1e+01).
    let scientific = format!("{:.*e}", (PRECISION - 1) as usize, x);
    let exponent: i32 = scientific
        .split_once('e')
        .and_then(|(_, e)| e.parse().ok())
        .unwrap_or(0);
    if (-4..PRECISION).contains(&exponent) {
        let decimals = (PRECISION - 1 - exponent) as usize;
        trim_zeros(&format!("{x:.decimals$}")).to_string()
    } else {
        let (mantissa, _) = scientific.split_once('e').unwrap_or((&scientific, ""));
        let sign = if exponent < 0 { '-' } else { '+' };
        format!("{}e{sign}{:02}", trim_zeros(mantissa), exponent.abs())
    }
}

fn trim_zeros(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

/// `x` rounded to `decimals` decimals (half to even on its exact value,
/// as the figures were always rounded).
pub fn round(x: f64, decimals: usize) -> f64 {
    format!("{x:.decimals$}").parse().unwrap_or(x)
}

/// A JSON value as a summary line shows it: strings bare, `None` for null,
/// everything else as JSON.
pub fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "None".into(),
        other => other.to_string(),
    }
}

/// Kibibytes as mebibytes with one decimal (`45.0 MiB`), or `-`.
pub fn mib(kib: Option<f64>) -> String {
    kib.map_or_else(|| "-".into(), |kib| format!("{:.1} MiB", kib / 1024.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fixed_width() {
        assert_eq!(fixed(Some(0.374), 10, 2), "      0.37");
        assert_eq!(fixed(Some(-0.16), 8, 2), "   -0.16");
        assert_eq!(fixed(None, 8, 2), "       -");
        assert_eq!(fixed(Some(1.5), 0, 2), "1.50");
        assert_eq!(fixed(None, 0, 2), "-");
    }

    #[test]
    fn general_format() {
        assert_eq!(general(100.0), "100");
        assert_eq!(general(1500.0), "1500");
        assert_eq!(general(0.5), "0.5");
        assert_eq!(general(2.25), "2.25");
        assert_eq!(general(123456.0), "123456");
        assert_eq!(general(1234567.0), "1.23457e+06");
        assert_eq!(general(0.0001), "0.0001");
        assert_eq!(general(0.00001), "1e-05");
        assert_eq!(general(0.0), "0");
    }

    #[test]
    fn rounding_half_to_even_on_the_exact_value() {
        assert_eq!(round(2.3849999, 3), 2.385);
        assert_eq!(round(0.125, 2), 0.12);
        assert_eq!(round(0.375, 2), 0.38);
        assert_eq!(round(302.04, 3), 302.04);
        assert_eq!(format!("{:.0}", 2.5), "2");
        assert_eq!(format!("{:.1}", 0.25), "0.2");
        assert!(round(f64::INFINITY, 3).is_infinite());
    }

    #[test]
    fn plain_values() {
        assert_eq!(plain(&json!(0)), "0");
        assert_eq!(plain(&json!("a")), "a");
        assert_eq!(plain(&Value::Null), "None");
        assert_eq!(mib(Some(46080.0)), "45.0 MiB");
        assert_eq!(mib(None), "-");
    }
}
