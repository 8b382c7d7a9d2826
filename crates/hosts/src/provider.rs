//! The one interface the three hosts share, and naming a repository on its host.

use serde_json::Value;

use crate::{CommitState, CommitStatus, HostError, PullRequest};

/// Which host software serves a repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Gitea (and Forgejo).
    Gitea,
    /// GitHub or GitHub Enterprise Server.
    GitHub,
    /// GitLab.
    GitLab,
}

/// What differs between hosts: URLs, headers and payload shapes. Nothing here does I/O.
pub trait Provider: Send + Sync {
    /// The API root for a repository when the configuration names none.
    fn default_api(&self, repo: &RepoPath) -> String;
    /// The header that carries the token.
    fn auth(&self, token: &str) -> (&'static str, String);
    /// The URL listing the repository's open pull requests (one page, the largest the host allows).
    fn pulls_url(&self, api: &str, repo: &RepoPath) -> String;
    /// The open pull requests in a listing's body.
    fn parse_pulls(&self, body: &Value) -> Result<Vec<PullRequest>, String>;
    /// The URL a commit status of `sha` is posted to.
    fn status_url(&self, api: &str, repo: &RepoPath, sha: &str) -> String;
    /// The body of that request.
    fn status_body(&self, status: &CommitStatus) -> Value;
    /// Whether an error answer to a status post means the host already holds that state
    /// (GitLab refuses to move a status to the state it is in).
    fn already_set(&self, _code: u16, _body: &str) -> bool {
        false
    }
}

impl Kind {
    /// This host's provider.
    pub fn provider(self) -> &'static dyn Provider {
        match self {
            Kind::Gitea => &crate::gitea::Gitea,
            Kind::GitHub => &crate::github::GitHub,
            Kind::GitLab => &crate::gitlab::GitLab,
        }
    }
}

/// A repository on its host: `https://git.example.com` and `team/app`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RepoPath {
    /// Scheme, host and port, without a trailing slash (SSH URLs are taken as HTTPS).
    pub web: String,
    /// The host name alone, lower case.
    pub host: String,
    /// `owner/name` (GitLab: `group/subgroup/name`), without `.git`.
    pub path: String,
}

impl RepoPath {
    /// Parses a clone URL: `https://host[:port]/owner/name[.git]`, `ssh://git@host/owner/name.git`
    /// or `git@host:owner/name.git`. Credentials in the URL are dropped.
    pub fn parse(url: &str) -> Result<Self, HostError> {
        let bad = |why: &str| HostError::Config(format!("repository URL {url:?}: {why}"));
        let url = url.trim();
        let (scheme, rest) = match url.split_once("://") {
            Some((scheme, rest)) => (scheme.to_ascii_lowercase(), rest.to_string()),
            None => match url.split_once(':') {
                // scp-like: git@host:owner/name.git
                Some((host, path)) if !host.contains('/') => ("ssh".to_string(), format!("{host}/{path}")),
                _ => return Err(bad("not a URL")),
            },
        };
        let (authority, path) = rest.split_once('/').ok_or_else(|| bad("no repository path"))?;
        let authority = authority.rsplit('@').next().unwrap_or(authority).to_ascii_lowercase();
        let host = authority.split(':').next().unwrap_or_default().to_string();
        let path = path.trim_end_matches('/').trim_end_matches(".git").to_string();
        if host.is_empty() || !path.contains('/') || path.split('/').any(|s| s.is_empty() || s == "..") {
            return Err(bad("expected <host>/<owner>/<name>"));
        }
        let web = match scheme.as_str() {
            "https" | "http" => format!("{scheme}://{authority}"),
            // An SSH port is not the web's port.
            _ => format!("https://{host}"),
        };
        Ok(Self { web, host, path })
    }

    /// The path with every `/` escaped, as GitLab's API wants a project id.
    pub fn escaped(&self) -> String {
        self.path.replace('/', "%2F")
    }
}

/// The common GitHub/Gitea status body.
pub(crate) fn github_like_status(status: &CommitStatus) -> Value {
    let state = match status.state {
        CommitState::Pending => "pending",
        CommitState::Success => "success",
        CommitState::Failure => "failure",
    };
    let mut body = serde_json::json!({
        "state": state, "context": status.context, "description": status.short_description(),
    });
    if let Some(url) = &status.target_url {
        body["target_url"] = Value::String(url.clone());
    }
    body
}

/// Reads a GitHub/Gitea pull-request listing; `fork` says whether a head is another repository.
pub(crate) fn github_like_pulls(body: &Value, fork: impl Fn(&Value) -> bool) -> Result<Vec<PullRequest>, String> {
    let items = body.as_array().ok_or("the listing is not a JSON array")?;
    items
        .iter()
        .map(|pr| {
            let text = |v: Option<&Value>, what: &str| {
                v.and_then(Value::as_str).map(str::to_string).ok_or_else(|| format!("a pull request has no {what}"))
            };
            Ok(PullRequest {
                number: pr.get("number").and_then(Value::as_u64).ok_or("a pull request has no number")?,
                head_sha: text(pr.pointer("/head/sha"), "head.sha")?,
                head_branch: text(pr.pointer("/head/ref"), "head.ref")?,
                labels: label_names(pr.get("labels")),
                from_fork: fork(pr),
                title: pr.get("title").and_then(Value::as_str).unwrap_or_default().to_string(),
            })
        })
        .collect()
}

fn label_names(labels: Option<&Value>) -> Vec<String> {
    labels
        .and_then(Value::as_array)
        .map(|labels| {
            labels
                .iter()
                .filter_map(|l| l.as_str().or_else(|| l.get("name").and_then(Value::as_str)))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clone_urls_of_every_form_name_the_repository() {
        let https = RepoPath::parse("https://user:tok@Git.Example.com:3443/team/app.git/").expect("https");
        assert_eq!(https.web, "https://git.example.com:3443");
        assert_eq!(https.host, "git.example.com");
        assert_eq!(https.path, "team/app");
        let scp = RepoPath::parse("git@github.com:org/app.git").expect("scp");
        assert_eq!((scp.web.as_str(), scp.path.as_str()), ("https://github.com", "org/app"));
        let ssh = RepoPath::parse("ssh://git@gitlab.example.com:2222/group/sub/app.git").expect("ssh");
        assert_eq!((ssh.web.as_str(), ssh.escaped().as_str()), ("https://gitlab.example.com", "group%2Fsub%2Fapp"));
        for bad in ["app", "https://host/", "https://host/onlyowner", "https://host/a/../b"] {
            assert!(RepoPath::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn descriptions_are_cut_for_every_host() {
        let status = CommitStatus {
            state: CommitState::Failure,
            context: "c".into(),
            description: "é".repeat(200),
            target_url: None,
        };
        let short = status.short_description();
        assert_eq!(short.chars().count(), 140);
        assert!(short.ends_with('…'));
    }
}
