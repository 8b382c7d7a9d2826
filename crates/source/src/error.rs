//! Errors of fetching a git source.

use factory_api::conditions::Reason;

/// Fetching a git source failed.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The server refused the credentials, or asked for some and none were configured.
    #[error("authentication to {url} failed: {message}")]
    Authentication {
        /// The repository URL.
        url: String,
        /// What the server or git said.
        message: String,
    },
    /// The branch, tag or commit does not exist in the repository.
    #[error("{reference} not found in {url}")]
    ReferenceNotFound {
        /// The repository URL.
        url: String,
        /// The reference asked for.
        reference: String,
    },
    /// The repository could not be reached or read.
    #[error("fetching {url} failed: {source}")]
    Fetch {
        /// The repository URL.
        url: String,
        /// git2's error.
        #[source]
        source: git2::Error,
    },
    /// The repository content was refused: a symlink leaving the repository, a file or tree
    /// over the limits.
    #[error("{path}: {why}")]
    Content {
        /// Path in the repository.
        path: String,
        /// Why it was refused.
        why: String,
    },
    /// The local repository cache could not be used.
    #[error("local git cache {path}: {source}")]
    Cache {
        /// The cache path.
        path: String,
        /// git2's error.
        #[source]
        source: git2::Error,
    },
}

impl SourceError {
    /// A PascalCase reason for conditions, Events and metrics.
    pub fn reason(&self) -> Reason {
        match self {
            SourceError::Authentication { .. } => Reason::AuthenticationFailed,
            SourceError::ReferenceNotFound { .. } => Reason::ReferenceNotFound,
            SourceError::Content { .. } => Reason::ContentRejected,
            SourceError::Fetch { .. } | SourceError::Cache { .. } => Reason::FetchFailed,
        }
    }

    /// Whether retrying without a change of spec, secret or repository cannot help.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            SourceError::Authentication { .. } | SourceError::ReferenceNotFound { .. } | SourceError::Content { .. }
        )
    }
}
