//! Value parsers shared by the subcommands: every value is checked while parsing, so a bad one
//! exits with status 2 and clap's usage line, as `--help` promises.

use clap::builder::{PossibleValuesParser, TypedValueParser};

use crate::named::Named;

/// Choices from an engine enum's names (listed in `--help` and in the error).
pub fn named<T: Named + Clone + Send + Sync + 'static>() -> impl TypedValueParser<Value = T> {
    PossibleValuesParser::new(T::ALL.iter().map(|v| v.name()))
        .try_map(|s| T::from_name(&s).ok_or_else(|| format!("unknown value '{s}'; use {}", T::choices())))
}

/// A count of at least 1.
pub fn positive(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("'{s}' is not a whole number")),
    }
}

/// A truncation in (0, 1]: the batch-norm statistics of BigGAN-deep are only defined there.
pub fn truncation(s: &str) -> Result<f64, String> {
    let t: f64 = s.trim().parse().map_err(|_| format!("'{s}' is not a number"))?;
    if t > 0.0 && t <= 1.0 {
        Ok(t)
    } else {
        Err(format!("must lie in (0, 1], got {t}"))
    }
}

/// A finite, non-negative number.
pub fn non_negative(s: &str) -> Result<f64, String> {
    let v: f64 = s.trim().parse().map_err(|_| format!("'{s}' is not a number"))?;
    if v.is_finite() && v >= 0.0 {
        Ok(v)
    } else {
        Err(format!("must be a finite number ≥ 0, got {v}"))
    }
}

/// A finite, positive number.
pub fn positive_f64(s: &str) -> Result<f64, String> {
    let v: f64 = s.trim().parse().map_err(|_| format!("'{s}' is not a number"))?;
    if v.is_finite() && v > 0.0 {
        Ok(v)
    } else {
        Err(format!("must be a finite number > 0, got {v}"))
    }
}

/// "LO,HI" → (LO, HI); the range itself is the engine's to check (e.g. `MaskSize::validate`).
pub fn interval(s: &str) -> Result<(f64, f64), String> {
    let (a, b) = s.split_once(',').ok_or_else(|| format!("expected LO,HI such as 0.05,0.3, got '{s}'"))?;
    let p = |t: &str| t.trim().parse::<f64>().map_err(|_| format!("'{t}' is not a number"));
    Ok((p(a)?, p(b)?))
}
