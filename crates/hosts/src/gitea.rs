//! Gitea's API (`/api/v1`), which Forgejo shares.

use serde_json::Value;

use crate::provider::{Provider, RepoPath, github_like_pulls, github_like_status};
use crate::{CommitStatus, PullRequest};

/// Gitea.
pub(crate) struct Gitea;

impl Provider for Gitea {
    fn default_api(&self, repo: &RepoPath) -> String {
        format!("{}/api/v1", repo.web)
    }

    fn auth(&self, token: &str) -> (&'static str, String) {
        ("authorization", format!("token {token}"))
    }

    fn pulls_url(&self, api: &str, repo: &RepoPath) -> String {
        // 50 is Gitea's default largest page (`[api] MAX_RESPONSE_ITEMS`).
        format!("{api}/repos/{}/pulls?state=open&limit=50", repo.path)
    }

    fn parse_pulls(&self, body: &Value) -> Result<Vec<PullRequest>, String> {
        github_like_pulls(body, |pr| {
            let id = |side: &str| pr.pointer(&format!("/{side}/repo_id")).and_then(Value::as_i64);
            // A fork whose repository was deleted has no head repository left.
            id("head").is_none() || id("head") != id("base")
        })
    }

    fn status_url(&self, api: &str, repo: &RepoPath, sha: &str) -> String {
        format!("{api}/repos/{}/statuses/{sha}", repo.path)
    }

    fn status_body(&self, status: &CommitStatus) -> Value {
        github_like_status(status)
    }
}
