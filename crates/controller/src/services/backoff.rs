//! The backoff of the controllers' watches. kube applies one backoff to all the watches of a
//! controller together, so every error of any watch (a Tekton watch while Tekton is absent, the
//! 410s that follow an API server restart) delays them all; its default grows to 30 s and
//! resets only after two quiet minutes, which left reconciles waiting about three minutes after
//! a kube-apiserver restart. This one starts at 250 ms, doubles to at most 2 s and resets once
//! a watch delivers again.

use std::time::Duration;

use kube::runtime::utils::Backoff;

/// Doubling from 250 ms, capped at 2 s.
#[derive(Debug, Clone)]
pub struct WatchBackoff {
    next: Duration,
}

const FIRST: Duration = Duration::from_millis(250);
const MAX: Duration = Duration::from_secs(2);

impl Default for WatchBackoff {
    fn default() -> Self {
        Self { next: FIRST }
    }
}

impl Iterator for WatchBackoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let current = self.next;
        self.next = (self.next * 2).min(MAX);
        Some(current)
    }
}

impl Backoff for WatchBackoff {
    fn reset(&mut self) {
        self.next = FIRST;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_to_a_cap_and_resets() {
        let mut b = WatchBackoff::default();
        let first: Vec<u128> = b.by_ref().take(5).map(|d| d.as_millis()).collect();
        assert_eq!(first, [250, 500, 1000, 2000, 2000]);
        b.reset();
        assert_eq!(b.next(), Some(Duration::from_millis(250)));
    }
}
