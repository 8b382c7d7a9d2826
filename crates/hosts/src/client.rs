//! Talking to one repository's host: listing its pull requests and posting commit statuses.

use std::time::Duration;

use serde_json::Value;

use crate::provider::{Kind, Provider, RepoPath};
use crate::{CommitStatus, HostError, PullRequest};

/// What a listing found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listing {
    /// The host said nothing changed since the listing with this ETag (no rate-limit cost on GitHub).
    NotModified,
    /// The open pull requests, with the ETag to send next time, if the host gave one.
    Open {
        /// The pull requests.
        pulls: Vec<PullRequest>,
        /// The answer's `ETag`.
        etag: Option<String>,
    },
}

/// One repository on its host, with the token the operator acts with there.
#[derive(Clone)]
pub struct Host {
    provider: &'static dyn Provider,
    repo: RepoPath,
    api: String,
    token: String,
    client: reqwest::Client,
}

impl std::fmt::Debug for Host {
    // Never print the token.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Host").field("repo", &self.repo).field("api", &self.api).finish_non_exhaustive()
    }
}

/// How long one request may take: a slow host must not hold a reconcile for long.
const TIMEOUT: Duration = Duration::from_secs(10);

impl Host {
    /// The host of the repository at `clone_url`. `api` overrides the provider's default API
    /// root; `ca_pem` adds a CA (the host's own, for a private host) to the system's roots.
    pub fn new(
        kind: Kind,
        clone_url: &str,
        api: Option<&str>,
        token: &str,
        ca_pem: Option<&[u8]>,
    ) -> Result<Self, HostError> {
        let provider = kind.provider();
        let repo = RepoPath::parse(clone_url)?;
        let api = api.map(|a| a.trim_end_matches('/').to_string()).unwrap_or_else(|| provider.default_api(&repo));
        let mut builder = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .user_agent(concat!("factory-operator/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none());
        if let Some(pem) = ca_pem {
            for cert in reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| HostError::Config(format!("the CA bundle (ca.crt) is not PEM: {e}")))?
            {
                builder = builder.add_root_certificate(cert);
            }
        }
        let client = builder.build().map_err(|e| HostError::Config(format!("cannot set up HTTPS: {e}")))?;
        Ok(Self { provider, repo, api, token: token.to_string(), client })
    }

    /// The repository this host handle is for.
    pub fn repo(&self) -> &RepoPath {
        &self.repo
    }

    /// The open pull requests: one request, conditional on `etag` when given.
    pub async fn open_pulls(&self, etag: Option<&str>) -> Result<Listing, HostError> {
        let url = self.provider.pulls_url(&self.api, &self.repo);
        let (name, value) = self.provider.auth(&self.token);
        let mut request = self.client.get(&url).header(name, value).header("accept", "application/json");
        if let Some(etag) = etag {
            request = request.header("if-none-match", etag);
        }
        let answer =
            request.send().await.map_err(|source| HostError::Request { method: "GET", url: url.clone(), source })?;
        if answer.status() == reqwest::StatusCode::NOT_MODIFIED {
            return Ok(Listing::NotModified);
        }
        let etag = answer.headers().get("etag").and_then(|v| v.to_str().ok()).map(str::to_string);
        let body = checked("GET", &url, answer).await?;
        let value: Value = serde_json::from_str(&body)
            .map_err(|e| HostError::Payload { url: url.clone(), why: format!("not JSON: {e}") })?;
        let pulls = self.provider.parse_pulls(&value).map_err(|why| HostError::Payload { url, why })?;
        Ok(Listing::Open { pulls, etag })
    }

    /// Posts `status` on commit `sha`.
    pub async fn set_status(&self, sha: &str, status: &CommitStatus) -> Result<(), HostError> {
        if sha.len() != 40 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(HostError::Config(format!("{sha:?} is not a commit SHA")));
        }
        let url = self.provider.status_url(&self.api, &self.repo, sha);
        let (name, value) = self.provider.auth(&self.token);
        let answer = self
            .client
            .post(&url)
            .header(name, value)
            .json(&self.provider.status_body(status))
            .send()
            .await
            .map_err(|source| HostError::Request { method: "POST", url: url.clone(), source })?;
        match checked("POST", &url, answer).await {
            Err(HostError::Status { code, body, .. }) if self.provider.already_set(code, &body) => Ok(()),
            other => other.map(drop),
        }
    }
}

/// The body of a successful answer, or the error naming the status and the body's start.
async fn checked(method: &'static str, url: &str, answer: reqwest::Response) -> Result<String, HostError> {
    let code = answer.status();
    let body = answer.text().await.map_err(|source| HostError::Request { method, url: url.to_string(), source })?;
    if code.is_success() {
        Ok(body)
    } else {
        Err(HostError::Status {
            method,
            url: url.to_string(),
            code: code.as_u16(),
            body: body.chars().take(300).collect(),
        })
    }
}
