//! Errors of the apply engine. Every failure names the object and where it came from.

use std::fmt;

use factory_api::conditions::Reason;

/// What the API server said, without the response's debug dump: its message for an API error
/// (RBAC's "... is forbidden: User ... cannot get resource ...", an admission policy's reason),
/// else the error.
pub fn api_message(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) => status.message.clone(),
        other => other.to_string(),
    }
}

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

impl ObjectFailure {
    /// Whether the API server refused the object itself (invalid, forbidden, unknown), as
    /// opposed to failing to answer: trying the same object again would fail the same way.
    pub fn is_refusal(&self) -> bool {
        !matches!(
            self.reason.as_str(),
            "Unavailable" | "ServiceUnavailable" | "InternalError" | "Timeout" | "ServerTimeout" | "TooManyRequests"
        ) && !self.reason.starts_with("HTTP5")
    }
}

impl fmt::Display for ObjectFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.object, self.reason, self.message)
    }
}

/// The engine failed; nothing was pruned.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// Objects of the revision were refused by discovery or by the server-side dry-run (or, in
    /// a run that only creates, by the write, and what it created was deleted again); nothing
    /// of the revision was written but the namespaces it creates.
    #[error("{} object(s) failed validation, nothing was applied: {}", .0.len(), join(.0))]
    Validation(Vec<ObjectFailure>),
    /// Writing objects failed part way; what was written stays, nothing was pruned (in a run
    /// that only creates, what it created was deleted again).
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
    pub fn reason(&self) -> Reason {
        let failures = match self {
            ApplyError::Validation(f) | ApplyError::Apply(f) => f,
            ApplyError::Discovery(_) => return Reason::DiscoveryFailed,
        };
        // The API server's own word for a refusal (`metav1.StatusReasonForbidden`).
        if !failures.is_empty() && failures.iter().all(|f| f.reason == "Forbidden") {
            return Reason::Forbidden;
        }
        match self {
            ApplyError::Validation(_) => Reason::ValidationFailed,
            _ => Reason::ApplyFailed,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(reason: &str) -> ObjectFailure {
        ObjectFailure { object: "ConfigMap x/y".into(), reason: reason.into(), message: String::new() }
    }

    #[test]
    fn a_refusal_is_about_the_object_not_the_server() {
        for refused in ["Invalid", "Forbidden", "NotFound", "BadRequest", "UnknownKind"] {
            assert!(failure(refused).is_refusal(), "{refused}");
        }
        for failed in ["Unavailable", "ServiceUnavailable", "InternalError", "Timeout", "TooManyRequests", "HTTP503"] {
            assert!(!failure(failed).is_refusal(), "{failed}");
        }
    }
}
