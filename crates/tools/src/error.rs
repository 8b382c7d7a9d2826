//! Why a render failed, with the file (or chart) it concerns.

/// A refused or failed `kustomize build` or `helm template`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    /// A base, resource or dependency is fetched from the network.
    #[error("{file}: {entry} is remote; only paths inside the repository are rendered (vendor it)")]
    Remote {
        /// The kustomization or Chart.yaml naming it.
        file: String,
        /// The entry.
        entry: String,
    },
    /// A path leaves the repository.
    #[error("{file}: {entry} leaves the repository")]
    Escapes {
        /// The kustomization or Chart.yaml naming it.
        file: String,
        /// The entry.
        entry: String,
    },
    /// A plugin or function that would run a program.
    #[error("{file}: {what} would run a program; exec and container plugins are not run")]
    Plugin {
        /// The file naming it.
        file: String,
        /// What it is.
        what: String,
    },
    /// The input cannot be read (not YAML, missing).
    #[error("{file}: {why}")]
    Input {
        /// The file.
        file: String,
        /// Why.
        why: String,
    },
    /// The tool ran past its time limit and was stopped.
    #[error("{tool} on {path} ran longer than {seconds}s and was stopped")]
    Timeout {
        /// `kustomize` or `helm`.
        tool: &'static str,
        /// What it rendered.
        path: String,
        /// The limit.
        seconds: u64,
    },
    /// The output passed the size or object limit.
    #[error("{tool} on {path}: {why}")]
    TooLarge {
        /// `kustomize` or `helm`.
        tool: &'static str,
        /// What it rendered.
        path: String,
        /// Which limit.
        why: String,
    },
    /// The tool failed; its own message says why.
    #[error("{tool} on {path} failed: {message}")]
    Failed {
        /// `kustomize` or `helm`.
        tool: &'static str,
        /// What it rendered.
        path: String,
        /// Its standard error, trimmed.
        message: String,
    },
    /// The tool could not be started (missing binary).
    #[error("cannot run {tool} ({binary}): {why}")]
    Missing {
        /// `kustomize` or `helm`.
        tool: &'static str,
        /// The binary tried.
        binary: String,
        /// The OS error.
        why: String,
    },
    /// The repository's content was refused while reading it for the tool (a symlink leaving
    /// it, a limit); the reader's message names the file.
    #[error("{0}")]
    Refused(String),
    /// Writing the repository tree for the tool failed.
    #[error("preparing the tree at {path}: {why}")]
    Tree {
        /// The directory.
        path: String,
        /// Why.
        why: String,
    },
}
