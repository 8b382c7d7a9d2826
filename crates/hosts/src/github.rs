//! GitHub's REST API (api.github.com, or `/api/v3` of GitHub Enterprise Server).

use serde_json::Value;

use crate::provider::{Provider, RepoPath, github_like_pulls, github_like_status};
use crate::{CommitStatus, PullRequest};

/// GitHub.
pub(crate) struct GitHub;

impl Provider for GitHub {
    fn default_api(&self, repo: &RepoPath) -> String {
        if repo.host == "github.com" { "https://api.github.com".to_string() } else { format!("{}/api/v3", repo.web) }
    }

    fn auth(&self, token: &str) -> (&'static str, String) {
        ("authorization", format!("Bearer {token}"))
    }

    fn pulls_url(&self, api: &str, repo: &RepoPath) -> String {
        format!("{api}/repos/{}/pulls?state=open&per_page=100", repo.path)
    }

    fn parse_pulls(&self, body: &Value) -> Result<Vec<PullRequest>, String> {
        github_like_pulls(body, |pr| {
            let name = |side: &str| pr.pointer(&format!("/{side}/repo/full_name")).and_then(Value::as_str);
            name("head").is_none() || name("head") != name("base")
        })
    }

    fn status_url(&self, api: &str, repo: &RepoPath, sha: &str) -> String {
        format!("{api}/repos/{}/statuses/{sha}", repo.path)
    }

    fn status_body(&self, status: &CommitStatus) -> Value {
        github_like_status(status)
    }
}
