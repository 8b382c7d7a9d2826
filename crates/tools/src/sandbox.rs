//! Runs kustomize or helm as a contained child: an empty environment with no way to the
//! network (no PATH, so no `git`; proxies pointed at a closed port), its own process group,
//! killed whole at the time limit or as soon as its output passes the size limit.

use std::ffi::OsString;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use crate::{Limits, RenderError};

/// Most of a failing tool's standard error kept for its message.
const STDERR_KEPT: u64 = 8 * 1024;
/// A closed port on loopback: any HTTP(S) request the tool makes fails at once.
const NO_PROXY_ANSWERS: &str = "http://127.0.0.1:9";

/// One run of a tool.
pub(crate) struct Invocation<'a> {
    /// `kustomize` or `helm`.
    pub tool: &'static str,
    /// Its binary.
    pub binary: &'a Path,
    /// Its arguments.
    pub args: Vec<OsString>,
    /// Working directory (the repository tree).
    pub cwd: &'a Path,
    /// A private, empty home for the tool's caches and configuration.
    pub home: &'a Path,
    /// What it renders, for messages.
    pub what: &'a str,
}

/// Runs `run` within `limits`; its standard output on success.
pub(crate) fn run(run: Invocation<'_>, limits: &Limits) -> Result<String, RenderError> {
    let home = run.home.display().to_string();
    let mut command = Command::new(run.binary);
    command
        .args(&run.args)
        .current_dir(run.cwd)
        .env_clear()
        .env("HOME", &home)
        .env("TMPDIR", &home)
        .env("PATH", "")
        .env("XDG_CACHE_HOME", format!("{home}/cache"))
        .env("XDG_CONFIG_HOME", format!("{home}/config"))
        .env("XDG_DATA_HOME", format!("{home}/data"))
        .env("HELM_CACHE_HOME", format!("{home}/cache"))
        .env("HELM_CONFIG_HOME", format!("{home}/config"))
        .env("HELM_DATA_HOME", format!("{home}/data"))
        .env("KUBECONFIG", "/dev/null")
        .env("HTTP_PROXY", NO_PROXY_ANSWERS)
        .env("HTTPS_PROXY", NO_PROXY_ANSWERS)
        .env("http_proxy", NO_PROXY_ANSWERS)
        .env("https_proxy", NO_PROXY_ANSWERS)
        .env("NO_PROXY", "")
        .env("GIT_TERMINAL_PROMPT", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut child = command.spawn().map_err(|e| RenderError::Missing {
        tool: run.tool,
        binary: run.binary.display().to_string(),
        why: e.to_string(),
    })?;
    let group = Pid::from_raw(child.id() as i32);
    let max = limits.max_output_bytes;
    let stdout = child.stdout.take();
    let out = thread::spawn(move || {
        let mut buffer = Vec::new();
        if let Some(pipe) = stdout {
            let _ = pipe.take(max + 1).read_to_end(&mut buffer);
        }
        if buffer.len() as u64 > max {
            // Stop it now rather than let it write on into a full pipe until the deadline.
            let _ = killpg(group, Signal::SIGKILL);
        }
        buffer
    });
    let stderr = child.stderr.take();
    let err = thread::spawn(move || {
        let mut buffer = Vec::new();
        if let Some(mut pipe) = stderr {
            let _ = (&mut pipe).take(STDERR_KEPT).read_to_end(&mut buffer);
            let _ = std::io::copy(&mut pipe, &mut std::io::sink());
        }
        buffer
    });
    let deadline = Instant::now() + limits.timeout;
    let mut pause = Duration::from_millis(1);
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Ok(status),
            Ok(None) if Instant::now() >= deadline => {
                let _ = killpg(group, Signal::SIGKILL);
                let _ = child.wait();
                break Err(());
            }
            Ok(None) => {
                thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(20));
            }
            Err(_) => {
                let _ = killpg(group, Signal::SIGKILL);
                let _ = child.wait();
                break Err(());
            }
        }
    };
    let output = out.join().unwrap_or_default();
    let errors = err.join().unwrap_or_default();
    if output.len() as u64 > max {
        return Err(RenderError::TooLarge {
            tool: run.tool,
            path: run.what.to_string(),
            why: format!("output is larger than the limit of {max} bytes"),
        });
    }
    let Ok(status) = status else {
        return Err(RenderError::Timeout {
            tool: run.tool,
            path: run.what.to_string(),
            seconds: limits.timeout.as_secs().max(1),
        });
    };
    if !status.success() {
        let message = String::from_utf8_lossy(&errors).trim().replace(&format!("{}/", run.cwd.display()), "");
        return Err(RenderError::Failed { tool: run.tool, path: run.what.to_string(), message });
    }
    String::from_utf8(output).map_err(|_| RenderError::Failed {
        tool: run.tool,
        path: run.what.to_string(),
        message: "output is not UTF-8".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str, limits: &Limits) -> Result<String, RenderError> {
        let dir = tempfile::tempdir().expect("tempdir");
        let invocation = Invocation {
            tool: "kustomize",
            binary: Path::new("/bin/sh"),
            args: vec!["-c".into(), script.into()],
            cwd: dir.path(),
            home: dir.path(),
            what: "x",
        };
        run(invocation, limits)
    }

    #[test]
    fn output_errors_time_and_size_are_bounded() {
        let limits = Limits { timeout: Duration::from_millis(500), max_output_bytes: 1000, max_objects: 10 };
        assert_eq!(sh("echo hi", &limits), Ok("hi\n".into()));
        let started = Instant::now();
        // A child of the tool is stopped with it (the whole group).
        assert!(matches!(sh("/bin/sleep 30 & /bin/sleep 30", &limits), Err(RenderError::Timeout { .. })));
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(matches!(sh("while :; do echo xxxxxxxx; done", &limits), Err(RenderError::TooLarge { .. })));
        let failed = sh("echo broken >&2; exit 3", &limits);
        assert!(matches!(&failed, Err(RenderError::Failed { message, .. }) if message == "broken"), "{failed:?}");
        // Nothing of the operator's environment reaches the tool.
        assert_eq!(sh("echo \"$PATH|$HTTPS_PROXY\"", &limits), Ok("|http://127.0.0.1:9\n".into()));
    }
}
