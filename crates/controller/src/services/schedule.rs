//! When to look again: polls and resyncs of many objects spread over time.

use std::time::Duration;

/// Spreads polls of many objects over ±10% of the interval.
pub fn jitter(interval: Duration, name: &str) -> Duration {
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    let seed = name.bytes().fold(u64::from(nanos), |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    let span = interval.as_millis() as u64 / 5;
    if span == 0 {
        return interval;
    }
    Duration::from_millis(interval.as_millis() as u64 - span / 2 + seed % span)
}
