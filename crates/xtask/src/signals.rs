//! Stopping on Ctrl-C or SIGTERM by dropping the task's future, so everything it started (the
//! operator, a git daemon in a process group of its own) is stopped by its `Drop`: killed by the
//! default signal action instead, such children outlived the task.

use anyhow::Result;

/// Waits for Ctrl-C (SIGINT) or SIGTERM; says which.
pub async fn stop_signal() -> Result<&'static str> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        interrupted = tokio::signal::ctrl_c() => interrupted.map(|()| "interrupted").map_err(Into::into),
        _ = term.recv() => Ok("terminated"),
    }
}
