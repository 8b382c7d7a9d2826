//! Waiting for something to become true, with a deadline and a useful failure message.

use std::future::Future;
use std::time::{Duration, Instant};

/// Polls `check` every 100 ms until it returns `Ok(Some(value))`, and returns that value.
/// Fails after `timeout` with `what` and the last error or `None` seen, so a timed-out wait
/// says what it was waiting for and what it saw instead.
pub async fn eventually<T, E, F, Fut>(what: &str, timeout: Duration, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>, E>>,
    E: std::fmt::Display,
{
    let deadline = Instant::now() + timeout;
    loop {
        let last = match check().await {
            Ok(Some(value)) => return Ok(value),
            Ok(None) => String::from("condition not met yet"),
            Err(e) => format!("last error: {e}"),
        };
        if Instant::now() >= deadline {
            anyhow::bail!("timed out after {timeout:?} waiting for {what} ({last})");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
