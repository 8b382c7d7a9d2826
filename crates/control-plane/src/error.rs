//! Errors of the control plane, each saying what to do about it.

use std::path::PathBuf;

/// Something went wrong building or running the control plane.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The Go toolchain is missing or too old.
    #[error(
        "the Go toolchain is needed to build the control plane ({detail}); install Go 1.26 or newer \
         (https://go.dev/doc/install, or `apt-get install golang`) and run `cargo xtask control-plane build`"
    )]
    GoMissing {
        /// What went wrong running `go`.
        detail: String,
    },
    /// A `go` command failed.
    #[error("`{command}` failed with {status}; its output:\n{output}")]
    GoCommand {
        /// The command line.
        command: String,
        /// Exit status.
        status: String,
        /// Combined stdout and stderr, last lines.
        output: String,
    },
    /// A component did not become ready in time.
    #[error("{component} did not become ready within {seconds}s; last lines of its log {log}:\n{tail}")]
    NotReady {
        /// Which component.
        component: String,
        /// How long we waited.
        seconds: u64,
        /// Where its full log is.
        log: PathBuf,
        /// The end of the log.
        tail: String,
    },
    /// A component exited while we were waiting for it.
    #[error("{component} exited during start-up ({status}); last lines of its log {log}:\n{tail}")]
    Exited {
        /// Which component.
        component: String,
        /// Its exit status.
        status: String,
        /// Where its full log is.
        log: PathBuf,
        /// The end of the log.
        tail: String,
    },
    /// `kubectl` failed while installing or checking something.
    #[error("`kubectl {args}` failed: {output}")]
    Kubectl {
        /// Arguments passed.
        args: String,
        /// What it printed.
        output: String,
    },
    /// A certificate or key could not be generated.
    #[error("generating certificates: {0}")]
    Certificate(#[from] rcgen::Error),
    /// A YAML file could not be read or written.
    #[error("YAML in {path}: {source}")]
    Yaml {
        /// The file.
        path: PathBuf,
        /// The parser's error.
        source: serde_yaml::Error,
    },
    /// Reading or writing a file, or starting a process, failed.
    #[error("{action}: {source}")]
    Io {
        /// What we were doing, with the path.
        action: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// No control plane state was found where one was expected.
    #[error("no control plane is running from {0} (start one with `cargo xtask control-plane start`)")]
    NotRunning(PathBuf),
}

/// Adds context to an I/O error: `io(result, || format!("reading {path}"))`.
pub(crate) fn io<T>(result: std::io::Result<T>, action: impl FnOnce() -> String) -> Result<T, Error> {
    result.map_err(|source| Error::Io { action: action(), source })
}
