//! Git hosts as the operator talks to them: the open pull requests of a repository (one API
//! call, conditional where the host supports it) and commit statuses on a pull request's head.
//! Gitea, GitHub and GitLab share one interface ([`Provider`]); what differs between them —
//! URLs, headers, payload shapes — is pure and tested against their documented payloads.

mod client;
mod error;
mod gitea;
mod github;
mod gitlab;
mod provider;

pub use client::{Host, Listing};
pub use error::HostError;
pub use provider::{Kind, Provider, RepoPath};

/// An open pull request (a merge request on GitLab).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullRequest {
    /// Its number (GitLab's `iid`).
    pub number: u64,
    /// The head commit.
    pub head_sha: String,
    /// The head branch, as the author named it (any characters git allows).
    pub head_branch: String,
    /// Label names.
    pub labels: Vec<String>,
    /// Whether the head is in another repository than the base.
    pub from_fork: bool,
    /// Its title.
    pub title: String,
}

/// The state of a commit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CommitState {
    /// Building or deploying.
    Pending,
    /// Done and healthy.
    Success,
    /// Failed, for a reason in the description.
    Failure,
}

/// A commit status as the operator posts it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CommitStatus {
    /// Pending, success or failure.
    pub state: CommitState,
    /// Names the check, so a later status replaces it: `factory/<factory>/preview`.
    pub context: String,
    /// One line for people (hosts cut it at 140 characters; so do we).
    pub description: String,
    /// Where to look: the preview's URL.
    pub target_url: Option<String>,
}

impl CommitStatus {
    /// The description cut to what every host accepts, on a character boundary.
    pub fn short_description(&self) -> String {
        let mut text: String = self.description.chars().take(140).collect();
        if text.len() < self.description.len() {
            text.pop();
            text.push('…');
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> serde_json::Value {
        let path = format!("{}/../../tests/testdata/units/hosts/{name}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn summary(pulls: &[PullRequest]) -> Vec<(u64, &str, &str, bool, Vec<&str>)> {
        pulls
            .iter()
            .map(|p| {
                (
                    p.number,
                    p.head_branch.as_str(),
                    &p.head_sha[..8],
                    p.from_fork,
                    p.labels.iter().map(String::as_str).collect(),
                )
            })
            .collect()
    }

    #[test]
    fn github_listings_read_as_documented() {
        let pulls = Kind::GitHub.provider().parse_pulls(&fixture("github-pulls.json")).expect("parses");
        assert_eq!(
            summary(&pulls),
            vec![
                (1347, "new-topic", "6dcb09b5", false, vec!["bug"]),
                (1348, "main", "aaaaaaaa", true, vec![]),
                (1349, "gone", "bbbbbbbb", true, vec![]),
            ]
        );
    }

    #[test]
    fn gitlab_merge_requests_read_as_documented() {
        let pulls = Kind::GitLab.provider().parse_pulls(&fixture("gitlab-merge-requests.json")).expect("parses");
        assert_eq!(
            summary(&pulls),
            vec![
                (1, "test1", "88888888", true, vec!["Community contribution", "Manage"]),
                (7, "feature/x", "77777777", false, vec![]),
            ]
        );
    }

    #[test]
    fn gitea_listings_read_as_documented() {
        let pulls = Kind::Gitea.provider().parse_pulls(&fixture("gitea-pulls.json")).expect("parses");
        assert_eq!(
            summary(&pulls),
            vec![(3, "feat/x", "22222222", false, vec!["preview"]), (4, "main", "33333333", true, vec![])]
        );
        let broken = serde_json::json!([{"number": 1, "head": {"ref": "x"}}]);
        assert_eq!(Kind::Gitea.provider().parse_pulls(&broken), Err("a pull request has no head.sha".to_string()));
    }

    #[test]
    fn each_host_gets_its_own_urls_headers_and_status_shape() {
        let repo = RepoPath::parse("https://github.com/octo/app.git").expect("repo");
        let gh = Kind::GitHub.provider();
        assert_eq!(gh.default_api(&repo), "https://api.github.com");
        assert_eq!(
            gh.pulls_url("https://api.github.com", &repo),
            "https://api.github.com/repos/octo/app/pulls?state=open&per_page=100"
        );
        assert_eq!(gh.auth("t"), ("authorization", "Bearer t".to_string()));
        let ghe = RepoPath::parse("https://ghe.corp/octo/app").expect("repo");
        assert_eq!(gh.default_api(&ghe), "https://ghe.corp/api/v3");
        let status = CommitStatus {
            state: CommitState::Failure,
            context: "factory/team/preview".into(),
            description: "Deployment web: not healthy".into(),
            target_url: Some("https://app-pr-3.example.com".into()),
        };
        assert_eq!(
            gh.status_body(&status),
            serde_json::json!({"state": "failure", "context": "factory/team/preview",
                               "description": "Deployment web: not healthy", "target_url": "https://app-pr-3.example.com"})
        );
        let lab = RepoPath::parse("https://gitlab.example.com/group/sub/app.git").expect("repo");
        let gl = Kind::GitLab.provider();
        assert_eq!(
            gl.status_url(&gl.default_api(&lab), &lab, "abc"),
            "https://gitlab.example.com/api/v4/projects/group%2Fsub%2Fapp/statuses/abc"
        );
        assert_eq!(gl.status_body(&status)["state"], "failed");
        assert_eq!(gl.status_body(&status)["name"], "factory/team/preview");
        assert_eq!(gl.auth("t"), ("private-token", "t".to_string()));
        assert!(gl.already_set(400, r#"{"message":"Cannot transition status via :run from :running"}"#));
        let tea = RepoPath::parse("https://127.0.0.1:3443/team/app.git").expect("repo");
        let gt = Kind::Gitea.provider();
        assert_eq!(
            gt.pulls_url(&gt.default_api(&tea), &tea),
            "https://127.0.0.1:3443/api/v1/repos/team/app/pulls?state=open&limit=50"
        );
        assert_eq!(gt.auth("t"), ("authorization", "token t".to_string()));
    }
}
