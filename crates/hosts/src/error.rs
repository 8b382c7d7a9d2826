//! What can go wrong talking to a git host.

/// A git host request failed.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// The configuration cannot name a repository or an API.
    #[error("{0}")]
    Config(String),
    /// The request did not get an answer.
    #[error("{method} {url}: {source}")]
    Request {
        /// GET or POST.
        method: &'static str,
        /// The URL asked.
        url: String,
        /// Why.
        #[source]
        source: reqwest::Error,
    },
    /// The host answered with an error status.
    #[error("{method} {url}: the host answered {code}: {body}")]
    Status {
        /// GET or POST.
        method: &'static str,
        /// The URL asked.
        url: String,
        /// HTTP status code.
        code: u16,
        /// The start of the answer's body.
        body: String,
    },
    /// The answer is not what the host documents.
    #[error("{url}: unexpected answer: {why}")]
    Payload {
        /// The URL asked.
        url: String,
        /// What was wrong.
        why: String,
    },
}

impl HostError {
    /// Whether asking again later may succeed (the host or network was unavailable, or it limited us).
    pub fn is_transient(&self) -> bool {
        match self {
            HostError::Request { .. } => true,
            HostError::Status { code, .. } => *code == 429 || *code >= 500,
            HostError::Config(_) | HostError::Payload { .. } => false,
        }
    }
}
