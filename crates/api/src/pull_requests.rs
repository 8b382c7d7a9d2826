//! Previews from pull requests: which pull requests of an application get one, the git host
//! the operator asks and reports to, and how a preview is reached.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

/// The application's git host, as the operator talks to it: it posts commit statuses there
/// (each release's rollout in each environment, each pull-request preview) and lists pull
/// requests for `pullRequests`.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "!has(self.apiURL) || self.apiURL.startsWith('https://') || self.apiURL.startsWith('http://')",
     "message": "apiURL must be an http(s) URL"}
]))]
pub struct GitHostAccess {
    /// The software serving the application's repository: `Gitea`, `GitHub` or `GitLab`.
    pub provider: GitHost,
    /// The host's API root, when not the usual one for the repository's URL
    /// (`<host>/api/v1` for Gitea, `api.github.com` or `<host>/api/v3`, `<host>/api/v4` for GitLab).
    #[serde(rename = "apiURL")]
    #[schemars(length(min = 1, max = 2048))]
    pub api_url: Option<String>,
    /// Secret in the cicd namespace, read with the team's rights: `token` (an API token that
    /// may read pull requests and write commit statuses) and optionally `ca.crt` (the host's
    /// CA, for a private host).
    pub secret_ref: LocalSecretReference,
}

/// One preview per open pull request of the application, following its head commit and
/// deleted when it closes or merges; its state is posted on the pull request's head as a
/// commit status (`factory/<factory>/preview`). Needs the application's `host`.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PullRequestPreviews {
    /// Only pull requests carrying this label get a preview.
    #[schemars(length(min = 1, max = 255))]
    pub label: Option<String>,
    /// Only pull requests from branches matching this glob (such as `feature/*`) get a preview.
    #[schemars(length(min = 1, max = 255))]
    pub branches: Option<String>,
    /// Whether pull requests whose head is in another repository (a fork) get a preview.
    /// Defaults to false: a fork's code is never deployed, and gets no credential.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_forks: bool,
    /// How often the open pull requests are listed, as a Go duration between 10s and 24h, in
    /// case a webhook was missed. Defaults to `1m`. A pull-request webhook lists them at once.
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(s|m|h))+$"))]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "duration(self) >= duration('10s') && duration(self) <= duration('24h')",
         "message": "interval must be between 10s and 24h"}
    ]))]
    pub interval: Option<String>,
}

/// A git host's software.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum GitHost {
    /// Gitea or Forgejo.
    #[default]
    Gitea,
    /// GitHub or GitHub Enterprise Server.
    GitHub,
    /// GitLab (merge requests).
    GitLab,
}

/// A Secret in the namespace of the object naming it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LocalSecretReference {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// The Service of an application that a preview's Ingress sends requests to.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Expose {
    /// The Service's name, as the application's configuration creates it.
    #[schemars(length(min = 1, max = 63), regex(pattern = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"))]
    pub service: String,
    /// The Service's port.
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,
}

/// How previews are reached: an Ingress per preview of an application with `expose`, set by
/// the platform (team factories are written by it, so a team cannot choose another class or
/// certificate).
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "self.host.contains('${preview}')", "message": "host must contain ${preview}, so that every preview gets its own"}
]))]
pub struct PreviewIngress {
    /// Host name template: `${preview}` (the preview's name), `${application}` and
    /// `${factory}` are replaced, such as `${preview}.${factory}.preview.example.com`.
    #[schemars(length(min = 1, max = 253))]
    pub host: String,
    /// The IngressClass of preview Ingresses.
    #[schemars(length(min = 1, max = 253))]
    pub class_name: Option<String>,
    /// A TLS Secret (in every preview namespace, such as a wildcard certificate the platform
    /// delivers) that makes the preview's URL `https://`.
    #[schemars(length(min = 1, max = 253))]
    pub tls_secret_name: Option<String>,
}
