//! Go-style durations (`90s`, `1h30m`, `72h`) as used in the API's `interval` and `ttl` fields.

use std::time::Duration;

/// A duration string that does not parse.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid duration {input:?}: {why}")]
pub struct ParseDurationError {
    /// The text that failed to parse.
    pub input: String,
    /// What is wrong with it.
    pub why: &'static str,
}

/// Parses a Go duration made of `<number><unit>` parts with units `ms`, `s`, `m` and `h`.
pub fn parse(input: &str) -> Result<Duration, ParseDurationError> {
    let err = |why| ParseDurationError { input: input.to_string(), why };
    if input.is_empty() {
        return Err(err("empty"));
    }
    let mut total = 0f64;
    let mut rest = input;
    while !rest.is_empty() {
        let num_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        if num_len == 0 {
            return Err(err("expected a number"));
        }
        let value: f64 = rest[..num_len].parse().map_err(|_| err("bad number"))?;
        rest = &rest[num_len..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let seconds = match &rest[..unit_len] {
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "" => return Err(err("missing unit (ms, s, m or h)")),
            _ => return Err(err("unknown unit (use ms, s, m or h)")),
        };
        rest = &rest[unit_len..];
        total += value * seconds;
    }
    Duration::try_from_secs_f64(total).map_err(|_| err("out of range"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_compound_durations() {
        assert_eq!(parse("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse("72h").unwrap(), Duration::from_secs(72 * 3600));
        assert_eq!(parse("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse("250ms").unwrap(), Duration::from_millis(250));
    }

    #[test]
    fn rejects_malformed_durations() {
        for bad in ["", "5", "h", "5d", "1h-5m", "abc"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
