//! GitLab's REST API (`/api/v4`): merge requests and commit statuses.

use serde_json::Value;

use crate::provider::{Provider, RepoPath};
use crate::{CommitState, CommitStatus, PullRequest};

/// GitLab.
pub(crate) struct GitLab;

impl Provider for GitLab {
    fn default_api(&self, repo: &RepoPath) -> String {
        format!("{}/api/v4", repo.web)
    }

    fn auth(&self, token: &str) -> (&'static str, String) {
        ("private-token", token.to_string())
    }

    fn pulls_url(&self, api: &str, repo: &RepoPath) -> String {
        format!("{api}/projects/{}/merge_requests?state=opened&per_page=100", repo.escaped())
    }

    fn parse_pulls(&self, body: &Value) -> Result<Vec<PullRequest>, String> {
        let items = body.as_array().ok_or("the listing is not a JSON array")?;
        items
            .iter()
            .map(|mr| {
                let text = |key: &str| {
                    mr.get(key)
                        .and_then(Value::as_str)
                        .map(str::to_string)
                        .ok_or_else(|| format!("a merge request has no {key}"))
                };
                let project = |key: &str| mr.get(key).and_then(Value::as_u64);
                Ok(PullRequest {
                    number: mr.get("iid").and_then(Value::as_u64).ok_or("a merge request has no iid")?,
                    head_sha: text("sha")?,
                    head_branch: text("source_branch")?,
                    labels: mr
                        .get("labels")
                        .and_then(Value::as_array)
                        .map(|l| l.iter().filter_map(Value::as_str).map(str::to_string).collect())
                        .unwrap_or_default(),
                    from_fork: project("source_project_id").is_none()
                        || project("source_project_id") != project("target_project_id"),
                    title: mr.get("title").and_then(Value::as_str).unwrap_or_default().to_string(),
                })
            })
            .collect()
    }

    fn status_url(&self, api: &str, repo: &RepoPath, sha: &str) -> String {
        format!("{api}/projects/{}/statuses/{sha}", repo.escaped())
    }

    fn status_body(&self, status: &CommitStatus) -> Value {
        let state = match status.state {
            CommitState::Pending => "pending",
            CommitState::Success => "success",
            CommitState::Failure => "failed",
        };
        let mut body =
            serde_json::json!({"state": state, "name": status.context, "description": status.short_description()});
        if let Some(url) = &status.target_url {
            body["target_url"] = Value::String(url.clone());
        }
        body
    }

    fn already_set(&self, code: u16, body: &str) -> bool {
        code == 400 && body.contains("Cannot transition status")
    }
}
