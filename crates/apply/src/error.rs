//! Errors of the apply engine. Every failure names the object and where it came from.

use std::fmt;

/// One object that failed, with the place in the repository it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectFailure {
    /// The object and its location, such as `ClusterRole viewer (cluster/roles.yaml:1 (document 1))`.
    pub object: String,
    /// PascalCase reason: `Forbidden`, `Invalid`, `UnknownKind`, `NotFound`, `Conflict`, …
    pub reason: String,
    /// What the API server said.
    pub message: String,
}

impl fmt::Display for ObjectFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.object, self.reason, self.message)
    }
}

/// The engine failed; nothing was pruned.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// Objects of the revision were refused by discovery or by the server-side dry-run;
    /// nothing of the revision was written.
    #[error("{} object(s) failed validation, nothing was applied: {}", .0.len(), join(.0))]
    Validation(Vec<ObjectFailure>),
    /// Writing objects failed part way; what was written stays, nothing was pruned.
    #[error("{} object(s) failed to apply: {}", .0.len(), join(.0))]
    Apply(Vec<ObjectFailure>),
    /// API discovery failed.
    #[error("API discovery failed: {0}")]
    Discovery(#[source] kube::Error),
}

fn join(failures: &[ObjectFailure]) -> String {
    failures.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
}

impl ApplyError {
    /// A PascalCase reason for conditions, Events and metrics: `Forbidden` when every failure
    /// is one, else `ValidationFailed` / `ApplyFailed`.
    pub fn reason(&self) -> &'static str {
        let failures = match self {
            ApplyError::Validation(f) | ApplyError::Apply(f) => f,
            ApplyError::Discovery(_) => return "DiscoveryFailed",
        };
        if !failures.is_empty() && failures.iter().all(|f| f.reason == "Forbidden") {
            return "Forbidden";
        }
        match self {
            ApplyError::Validation(_) => "ValidationFailed",
            _ => "ApplyFailed",
        }
    }

    /// The failures, if any.
    pub fn failures(&self) -> &[ObjectFailure] {
        match self {
            ApplyError::Validation(f) | ApplyError::Apply(f) => f,
            ApplyError::Discovery(_) => &[],
        }
    }
}
